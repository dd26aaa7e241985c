//! Images for the simulator when no signing key is involved: MCUboot-format (header, payload,
//! SHA-256 TLV) so the update-region's finalize accepts them.
use ota_image::build::ImageBuilder;
use ota_image::ImageVersion;
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

/// An unsigned MCUboot-format image (ota-image's builder): 32-byte header, payload, unprotected
/// TLV area with SHA-256.
pub fn unsigned_image(payload: &[u8], version: (u8, u8, u16, u32)) -> Vec<u8> {
    ImageBuilder {
        version: ImageVersion {
            major: version.0,
            minor: version.1,
            revision: version.2,
            build: version.3,
        },
        header_size: 32,
        ..ImageBuilder::default()
    }
    .unsigned(payload)
    .expect("a simulated payload fits an image")
}
