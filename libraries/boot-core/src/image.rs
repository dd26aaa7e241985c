//! What the boot flow needs from image verification, kept as a small trait so the verifier is
//! pluggable (RustCrypto or Cortex-M4 assembly P-256, or a test double).

use crate::journal::Reason;
use crate::layout::Region;
use embedded_storage::nor_flash::ReadNorFlash;

/// Limits the staged image must meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckPolicy {
    /// The stored security-counter floor.
    pub min_security_counter: u32,
    /// The kernel slot's size: the payload must fit the destination.
    pub max_payload_len: u32,
    /// The kernel slot address; the header load address must be 0 or this.
    pub kernel_addr: u32,
}

/// A staged image that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedImage {
    /// The SHA-256 TLV value (header + payload + protected TLVs).
    pub hash: [u8; 32],
    /// Payload offset in the staging slot (the header size).
    pub payload_offset: u32,
    pub payload_len: u32,
    /// Bytes after the payload that the hash also covers (the protected TLV area).
    pub hashed_after_payload: u32,
    /// Total image bytes (header, payload, TLVs).
    pub total_len: u32,
    pub security_counter: Option<u32>,
}

/// Fully validates the image in `slot` of `flash`: structure, hash, signature, security
/// counter, size and load address.
pub trait ImageChecker {
    fn check<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        slot: Region,
        policy: &CheckPolicy,
    ) -> Result<CheckedImage, Reason>;
}
