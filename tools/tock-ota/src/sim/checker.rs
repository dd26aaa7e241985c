//! The bootloader core's image check for the simulator: `ota-image`'s streaming verification
//! (structure, SHA-256, ECDSA P-256 with the RustCrypto verifier, security counter, size, load
//! address) over the staging slot, mapped onto the reasons the bootloader records.
use boot_core::{CheckPolicy, CheckedImage, ImageChecker, Reason, Region};
use embedded_storage::nor_flash::ReadNorFlash;
use ota_image::{verify_image, FlashSlot, ImageError, PublicKey, RustCryptoVerifier, VerifyPolicy};

/// Verifies staged images against one trusted key.
pub struct OtaImageChecker<'a> {
    pub key: &'a PublicKey,
}

impl ImageChecker for OtaImageChecker<'_> {
    fn check<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        slot: Region,
        policy: &CheckPolicy,
    ) -> Result<CheckedImage, Reason> {
        let mut src = FlashSlot::new(flash, slot.start, slot.len);
        let v = verify_image(
            &mut src,
            self.key,
            &RustCryptoVerifier,
            &VerifyPolicy {
                min_security_counter: Some(policy.min_security_counter),
                max_payload_len: Some(policy.max_payload_len),
                expected_load_addr: Some(policy.kernel_addr),
            },
        )
        .map_err(reason)?;
        Ok(CheckedImage {
            hash: v.hash,
            payload_offset: v.payload_offset,
            payload_len: v.payload_len,
            hashed_after_payload: v.header.protected_tlv_size as u32,
            total_len: v.total_len,
            security_counter: v.security_counter,
        })
    }
}

fn reason<E>(e: ImageError<E>) -> Reason {
    match e {
        ImageError::Read(_) => Reason::ReadFailed,
        ImageError::TruncatedHeader => Reason::TruncatedHeader,
        ImageError::BadMagic(_) => Reason::BadMagic,
        ImageError::MissingHash => Reason::MissingHash,
        ImageError::HashMismatch => Reason::HashMismatch,
        ImageError::MissingSignature | ImageError::MissingKeyId | ImageError::KeyMismatch => {
            Reason::MissingSignature
        }
        ImageError::BadSignature | ImageError::BadSignatureEncoding => Reason::BadSignature,
        ImageError::SecurityCounterBelowFloor { .. } => Reason::Downgrade,
        ImageError::PayloadTooLarge { .. } => Reason::TooLarge,
        ImageError::BadLoadAddress { .. } => Reason::WrongLoadAddress,
        ImageError::UnsupportedFlags(_) => Reason::Other,
        _ => Reason::Malformed,
    }
}
