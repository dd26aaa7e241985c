//! Compressed images and delta patches on the device: the received-stream area the
//! staged-update core ([`crate::staged_update`]) stages them in, and what the DFU app needs to
//! rebuild the plain signed image from them. The kernel does not decode.
//!
//! A session whose tag has the compressed or delta capability bit
//! (`adv_transfer::wire::is_stream_tag`) is staged in the received-stream area under its own
//! update-region policy (`update_region::Config::nrf52840dk_stream`); status, tag, erase, write,
//! read and abort are that session's while it exists, and a plain begin forgets it.
//!
//! The DFU app rebuilds (`ota_reconstruct::Rebuild`, in its own sandbox): it reads the stream
//! back with `READ`, a patch's base (the running kernel's slot, internal flash, memory mapped)
//! with `BASE_READ`, and writes the plain image into the staging slot with `OUTPUT_BEGIN`,
//! `OUTPUT_ERASE`, `OUTPUT_WRITE` (and reads it back with `OUTPUT_READ`) through the staging
//! slot's own policy: its bounds and erase rules hold as for an image the app writes directly.
//! `FINALIZE` then finalizes the staging slot's session (the policy checks the image's hash and
//! signature and appends the boot request; the bootloader checks it again) and forgets the
//! stream session. So the parser of radio input never runs in the kernel, and a wrong base, a
//! corrupt stream or a power cut costs the app a new `OUTPUT_BEGIN`, never an install.
//!
//! RAM and code: the kernel holds no decoder state and links no decoder.

use update_region::Config;

/// What the board gives the staged-update core to take received streams.
pub struct StreamArea {
    /// The received-stream area's policy configuration (same owner as the staging slot's).
    pub config: Config,
    /// The running kernel slot, read only: a delta patch's base (`BASE_READ`).
    pub kernel_slot: &'static [u8],
}
