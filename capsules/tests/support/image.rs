//! Test images in the format the update-region policy checks (MCUboot header, SHA-256 TLV).
//!
//! Shared by the crate's unit tests (included by path) and the integration tests.

use std::vec;
use std::vec::Vec;

use sha2::{Digest, Sha256};

/// An MCUboot-format image: 32-byte header, payload, TLV area with the SHA-256 TLV.
pub fn image(payload_len: usize) -> Vec<u8> {
    let mut img = vec![0u8; 32];
    img[0..4].copy_from_slice(&0x96f3_b83du32.to_le_bytes());
    img[8..10].copy_from_slice(&32u16.to_le_bytes());
    img[12..16].copy_from_slice(&(payload_len as u32).to_le_bytes());
    img.extend((0..payload_len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(3)));
    let hash: [u8; 32] = Sha256::digest(&img).into();
    img.extend(0x6907u16.to_le_bytes());
    img.extend(((4 + 4 + 32) as u16).to_le_bytes());
    img.extend(0x10u16.to_le_bytes());
    img.extend(32u16.to_le_bytes());
    img.extend(hash);
    img
}

pub fn image_hash(img: &[u8]) -> [u8; 32] {
    img[img.len() - 32..].try_into().unwrap()
}
