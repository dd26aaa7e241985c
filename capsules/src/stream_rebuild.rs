//! Compressed images and delta patches on the device: what the staged-update core
//! ([`crate::staged_update`]) needs to stage a received stream in the QSPI received-stream area
//! and rebuild the plain signed image from it at finalize.
//!
//! A session whose tag has the compressed or delta capability bit (byte 12 of the session tag,
//! `adv_transfer::wire::SessionInfo::tag`) is staged in the received-stream area under its own
//! update-region policy (`update_region::Config::nrf52840dk_stream`); status, tag, erase, write,
//! read, abort and finalize are that session's while it exists, and a plain begin forgets it.
//! Finalize of such a session drives `ota_reconstruct::Rebuild` split-phase: the stream is read
//! from the QSPI, a patch's base from the kernel slot (internal flash, memory mapped, read
//! only), and each rebuilt page goes into the staging slot through the staging slot's own
//! policy (begin, erase, write: its bounds and erase rules hold as for an image the app writes);
//! then the staging slot's finalize checks the image and appends the boot request, and the
//! stream session is forgotten. Which decoder and which limits: `ota_reconstruct::stream`, as
//! in the simulator.
//!
//! A refused stream (wrong base, corrupt, truncated, output hash) ends finalize with
//! `update_region::Error::StreamRefused` (the detail says why) and no boot request; a flash
//! failure (a power cut) leaves the stream session as it was, so the next finalize rebuilds
//! again from the stream's first byte.
//!
//! RAM: the rebuild state (`Rebuild`, about 0.9 KiB with the delta decoder) lives in the core;
//! the compressed-image decoder (`ota_lzma::image::CompressedImage`, about 34 KiB: LZMA
//! probabilities, a 4 KiB window, TLV buffers) is optional static storage the board gives
//! (`CompressedImage::EMPTY`: all zero bytes, so the static lies in `.bss` and costs no flash;
//! the core restarts it for each stream).
//! Without it the device rebuilds delta patches only and refuses compressed streams at finalize
//! (`STREAM_BAD_FORMAT`).

use ota_reconstruct::stream::AnyStream;
use ota_reconstruct::Rebuild;
use update_region::{Config, TAG_LEN};

/// The compressed-image decoder (static storage on a device: it is about 34 KiB).
#[cfg(feature = "compressed-updates")]
pub type Compressed = ota_lzma::image::CompressedImage;
/// Without the `compressed-updates` feature there is no compressed-image decoder: a type with
/// no values, so the compressed paths are dead code and no LZMA code is linked.
#[cfg(not(feature = "compressed-updates"))]
pub type Compressed = NoCompressedDecoder;

/// The compressed-image decoder of a kernel built without one; it cannot be made.
#[cfg(not(feature = "compressed-updates"))]
pub enum NoCompressedDecoder {}

#[cfg(not(feature = "compressed-updates"))]
impl NoCompressedDecoder {
    /// Never called: there is no value to call it on.
    pub fn restart(&mut self, _max_payload: u32) {
        match *self {}
    }
}

#[cfg(not(feature = "compressed-updates"))]
impl ota_reconstruct::Decoder for &mut NoCompressedDecoder {
    fn decode(
        &mut self,
        _input: &[u8],
        _out: &mut [u8],
    ) -> Result<ota_reconstruct::Progress, ota_reconstruct::Error> {
        match **self {}
    }

    fn provide(&mut self, _data: &[u8]) -> Result<(), ota_reconstruct::Error> {
        match **self {}
    }
}

/// The rebuild the core drives.
pub type StreamRebuild = Rebuild<AnyStream<&'static mut Compressed>>;

/// Bytes of the buffer for stream and output reads.
pub const READ_BUF_LEN: usize = ota_reconstruct::CHUNK;

/// Byte of the session tag that carries the sender's capability bits
/// (`adv_transfer::wire::SessionInfo::tag`).
pub const TAG_CAPABILITIES: usize = 12;

/// Whether a session with `tag` is a received stream (compressed image or delta patch).
pub fn is_stream_tag(tag: &[u8; TAG_LEN]) -> bool {
    use adv_transfer::wire::capability::{COMPRESSED, DELTA};
    tag[TAG_CAPABILITIES] & (COMPRESSED | DELTA) != 0
}

/// What the board gives the staged-update core to take received streams.
pub struct StreamArea {
    /// The received-stream area's policy configuration (same owner as the staging slot's).
    pub config: Config,
    /// The running kernel slot, read only: a delta patch's base.
    pub kernel_slot: &'static [u8],
    /// [`READ_BUF_LEN`] bytes for stream and output reads.
    pub read_buf: &'static mut [u8],
    /// The compressed-image decoder; `None`: delta patches only.
    pub compressed: Option<&'static mut Compressed>,
}
