//! What an image's header and TLV areas say, and where everything is; the walk itself is
//! [`crate::StreamChecker`]'s.
use core::fmt;

use crate::check::StreamChecker;
use crate::verify::drive;
use crate::{flags, ImageError, ImageSource, VerifyPolicy};

/// Image version: `major.minor.revision+build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ImageVersion {
    pub major: u8,
    pub minor: u8,
    pub revision: u16,
    pub build: u32,
}

impl fmt::Display for ImageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}+{}",
            self.major, self.minor, self.revision, self.build
        )
    }
}

/// The 32-byte image header, decoded (all fields little-endian on flash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub magic: u32,
    pub load_addr: u32,
    pub header_size: u16,
    pub protected_tlv_size: u16,
    pub image_size: u32,
    pub flags: u32,
    pub version: ImageVersion,
}

impl ImageHeader {
    /// Decodes the 32 header bytes (no validation beyond the layout).
    pub fn decode(b: &[u8; 32]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        ImageHeader {
            magic: u32_at(0),
            load_addr: u32_at(4),
            header_size: u16_at(8),
            protected_tlv_size: u16_at(10),
            image_size: u32_at(12),
            flags: u32_at(16),
            version: ImageVersion {
                major: b[20],
                minor: b[21],
                revision: u16_at(22),
                build: u32_at(24),
            },
        }
    }

    /// Encodes the header; bytes 28..32 (`pad1`) are zero.
    pub fn encode(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&self.magic.to_le_bytes());
        b[4..8].copy_from_slice(&self.load_addr.to_le_bytes());
        b[8..10].copy_from_slice(&self.header_size.to_le_bytes());
        b[10..12].copy_from_slice(&self.protected_tlv_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.image_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[20] = self.version.major;
        b[21] = self.version.minor;
        b[22..24].copy_from_slice(&self.version.revision.to_le_bytes());
        b[24..28].copy_from_slice(&self.version.build.to_le_bytes());
        b
    }
}

/// Which TLV area an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvArea {
    /// Magic 0x6908, covered by the image hash.
    Protected,
    /// Magic 0x6907, after the hashed region.
    Unprotected,
}

/// One TLV: type, and where its value lies in the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlvEntry {
    pub area: TlvArea,
    pub kind: u16,
    /// Offset of the value (after the 4-byte entry header) from the start of the slot.
    pub value_offset: u32,
    pub len: u16,
}

/// How many TLVs [`ImageInfo::tlvs`] lists; further ones are still checked, just not listed.
pub const MAX_LISTED_TLVS: usize = 16;

/// The result of the header and TLV walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub header: ImageHeader,
    /// Offset of the payload (= header size).
    pub payload_offset: u32,
    pub payload_len: u32,
    /// Length of the protected TLV area including its info header (0 if none).
    pub protected_tlv_len: u32,
    /// Offset of the unprotected TLV area's info header = length of the hashed region.
    pub tlv_offset: u32,
    /// Length of the unprotected TLV area including its info header.
    pub tlv_len: u32,
    /// Offset just past the last TLV: the image's length in the slot.
    pub total_len: u32,
    pub hash: Option<[u8; 32]>,
    pub key_hash: Option<[u8; 32]>,
    /// The PUBKEY TLV, if any.
    pub pubkey: Option<TlvEntry>,
    /// The ECDSA signature TLV, if any.
    pub signature: Option<TlvEntry>,
    pub security_counter: Option<u32>,
    tlvs: [Option<TlvEntry>; MAX_LISTED_TLVS],
    tlv_count: usize,
}

impl ImageInfo {
    /// The TLVs in image order (the first [`MAX_LISTED_TLVS`]).
    pub fn tlvs(&self) -> impl Iterator<Item = &TlvEntry> {
        self.tlvs.iter().flatten()
    }

    /// How many TLVs the image holds in all.
    pub fn tlv_count(&self) -> usize {
        self.tlv_count
    }
}

impl ImageInfo {
    /// The policy's checks on a walked image, in the verifiers' order: header flags (besides
    /// the supported ones, those in `accept`), payload size, load address, security counter.
    /// Both verifiers (the streamed checker and the bootloader's in-place walk) call it.
    pub(crate) fn check_policy<E>(
        &self,
        policy: &VerifyPolicy,
        accept: u32,
    ) -> Result<(), ImageError<E>> {
        let header = &self.header;
        let unsupported = header.flags & flags::UNSUPPORTED & !accept;
        if unsupported != 0 {
            return Err(ImageError::UnsupportedFlags(unsupported));
        }
        if let Some(max) = policy.max_payload_len {
            if self.payload_len > max {
                return Err(ImageError::PayloadTooLarge {
                    len: self.payload_len,
                    max,
                });
            }
        }
        if let Some(expected) = policy.expected_load_addr {
            if header.load_addr != 0 && header.load_addr != expected {
                return Err(ImageError::BadLoadAddress {
                    found: header.load_addr,
                    expected,
                });
            }
        }
        if let Some(floor) = policy.min_security_counter {
            let counter = self.security_counter.unwrap_or(0);
            if counter < floor {
                return Err(ImageError::SecurityCounterBelowFloor { counter, floor });
            }
        }
        Ok(())
    }

    /// The layout of an image with `header`, before its TLV areas are read.
    pub(crate) fn new(header: ImageHeader) -> Self {
        ImageInfo {
            header,
            payload_offset: u32::from(header.header_size),
            payload_len: header.image_size,
            protected_tlv_len: 0,
            tlv_offset: 0,
            tlv_len: 0,
            total_len: 0,
            hash: None,
            key_hash: None,
            pubkey: None,
            signature: None,
            security_counter: None,
            tlvs: [None; MAX_LISTED_TLVS],
            tlv_count: 0,
        }
    }

    /// Lists one more TLV (the first [`MAX_LISTED_TLVS`] are kept, all are counted).
    pub(crate) fn list(&mut self, e: TlvEntry) {
        if let Some(slot) = self.tlvs.get_mut(self.tlv_count) {
            *slot = Some(e);
        }
        self.tlv_count = self.tlv_count.saturating_add(1);
    }
}

/// Walks the header and both TLV areas; checks every bound against `src.capacity()`, the
/// length of every TLV type whose length the format fixes, duplicates, and that the types which
/// must be hashed ([`crate::tlv::must_be_protected`]) are in the protected area. Reads only the
/// header and the TLV areas, skips the payload, and performs no hashing or signature check (see
/// [`crate::verify_image`]).
pub fn parse_image<S: ImageSource>(src: &mut S) -> Result<ImageInfo, ImageError<S::Error>> {
    let checker = StreamChecker::layout_only(src.capacity());
    Ok(drive(src, checker)?.into_info())
}
