//! Test images in the format the update-region policy checks (MCUboot header, SHA-256 TLV),
//! built by ota-image's builder.
//!
//! Shared by the crate's unit tests (included by path) and the integration tests.

use std::vec::Vec;

use ota_image::build::ImageBuilder;

/// An MCUboot-format image: 32-byte header, payload, TLV area with the SHA-256 TLV.
pub fn image(payload_len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(3))
        .collect();
    ImageBuilder {
        header_size: 32,
        ..ImageBuilder::default()
    }
    .unsigned(&payload)
    .unwrap()
}

pub fn image_hash(img: &[u8]) -> [u8; 32] {
    img[img.len() - 32..].try_into().unwrap()
}
