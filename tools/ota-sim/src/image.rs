//! Images for the simulator when no signing key is involved: MCUboot-format (header, payload,
//! SHA-256 TLV) so the update-region's finalize accepts them.
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A kernel-like payload: random code-like bytes with some zero padding, deterministic.
pub fn kernel_payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = vec![0u8; len];
    rng.fill_bytes(&mut p);
    // The tail of a linked kernel is mostly zero-initialised data and padding.
    let tail = len / 16;
    p[len - tail..].fill(0);
    p
}

/// An unsigned MCUboot-format image: 32-byte header, payload, unprotected TLV area with SHA-256.
pub fn unsigned_image(payload: &[u8], version: (u8, u8, u16, u32)) -> Vec<u8> {
    use sha2::Digest;
    let mut img = vec![0u8; 32];
    img[0..4].copy_from_slice(&ota_image::IMAGE_MAGIC.to_le_bytes());
    img[8..10].copy_from_slice(&32u16.to_le_bytes());
    img[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    img[20] = version.0;
    img[21] = version.1;
    img[22..24].copy_from_slice(&version.2.to_le_bytes());
    img[24..28].copy_from_slice(&version.3.to_le_bytes());
    img.extend_from_slice(payload);
    let hash: [u8; 32] = sha2::Sha256::digest(&img).into();
    img.extend(ota_image::TLV_INFO_MAGIC.to_le_bytes());
    img.extend(40u16.to_le_bytes());
    img.extend(0x10u16.to_le_bytes());
    img.extend(32u16.to_le_bytes());
    img.extend(hash);
    img
}
