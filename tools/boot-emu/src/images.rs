//! Staged images for the emulated bootloader.

use crate::bench::ImageMaker;

/// boot-core's stand-in image format (`boot_core::sim::make_image`: MCUboot-shaped header,
/// payload, SHA-256 and a keyed SHA-256 "signature"), for firmware built with the stand-in checker.
pub struct StandIn {
    /// Header load address.
    pub load: u32,
    /// Security counter.
    pub counter: u32,
}

impl ImageMaker for StandIn {
    fn signed(&self, payload: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let image = boot_core::sim::make_image(payload, self.load, self.counter);
        let hash = boot_core::sim::image_hash(&image);
        (image, hash)
    }

    fn bad_signature(&self, payload: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let (mut image, hash) = self.signed(payload);
        let last = image.len() - 1;
        image[last] ^= 0x01;
        (image, hash)
    }
}

/// The image format the bootloader firmware checks.
pub fn firmware_images() -> Box<dyn ImageMaker> {
    Box::new(StandIn {
        load: 0,
        counter: 1,
    })
}
