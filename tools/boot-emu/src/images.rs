//! Staged images for the emulated bootloader.

use crate::bench::ImageMaker;

/// boot-core's stand-in image format (`boot_sim::make_image`: MCUboot-shaped header,
/// payload, SHA-256 and a keyed SHA-256 "signature"), for firmware built with the stand-in checker.
pub struct StandIn {
    /// Header load address.
    pub load: u32,
    /// Security counter.
    pub counter: u32,
}

impl ImageMaker for StandIn {
    fn signed(&self, payload: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let image = boot_sim::make_image(payload, self.load, self.counter);
        let hash = boot_sim::image_hash(&image);
        (image, hash)
    }

    fn bad_signature(&self, payload: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let (mut image, hash) = self.signed(payload);
        let last = image.len() - 1;
        image[last] ^= 0x01;
        (image, hash)
    }
}

/// MCUboot/imgtool-format images signed with ECDSA P-256 by `boot_sim::sign_mcuboot`
/// with the simulation key; the firmware under test is built with the matching public key
/// ([`crate::build::bootloader_elf`]).
pub struct McuBoot {
    pub opts: boot_sim::SimSign,
}

pub use boot_sim::mcuboot_hash;

impl ImageMaker for McuBoot {
    fn signed(&self, payload: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let image = boot_sim::sign_mcuboot(payload, &boot_sim::SIM_SIGNING_KEY, &self.opts);
        let hash = mcuboot_hash(&image);
        (image, hash)
    }

    fn bad_signature(&self, payload: &[u8]) -> (Vec<u8>, [u8; 32]) {
        let (mut image, hash) = self.signed(payload);
        // The image ends with the DER signature: its last byte is the low byte of s.
        let last = image.len() - 1;
        image[last] ^= 0x01;
        (image, hash)
    }
}

/// The public key (raw x‖y) the firmware under test embeds.
pub fn firmware_public_key() -> [u8; 64] {
    boot_sim::sim_public_key(&boot_sim::SIM_SIGNING_KEY)
}

/// The image format the bootloader firmware checks.
pub fn firmware_images() -> Box<dyn ImageMaker> {
    Box::new(McuBoot {
        opts: boot_sim::SimSign::default(),
    })
}
