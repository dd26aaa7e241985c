//! Header and TLV walk: where everything is, with every bound checked, and no cryptography.
use core::fmt;

use crate::{
    tlv, ImageError, ImageSource, IMAGE_HEADER_SIZE, IMAGE_MAGIC, TLV_HEADER_SIZE, TLV_INFO_MAGIC,
    TLV_PROT_INFO_MAGIC,
};

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

fn read<S: ImageSource>(src: &mut S, off: u32, buf: &mut [u8]) -> Result<(), ImageError<S::Error>> {
    src.read_at(off, buf).map_err(ImageError::Read)
}

/// Reads the 4-byte info header at `off` (already checked to be inside the slot).
fn read_info<S: ImageSource>(
    src: &mut S,
    off: u32,
) -> Result<Option<(u16, u16)>, ImageError<S::Error>> {
    let cap = src.capacity();
    if u64::from(off) + u64::from(TLV_HEADER_SIZE) > u64::from(cap) {
        return Ok(None);
    }
    let mut b = [0u8; 4];
    read(src, off, &mut b)?;
    Ok(Some((
        u16::from_le_bytes([b[0], b[1]]),
        u16::from_le_bytes([b[2], b[3]]),
    )))
}

/// Walks the header and both TLV areas; checks every bound against `src.capacity()`, the
/// length of every TLV type whose length the format fixes, duplicates, and that the types which
/// must be hashed ([`tlv::must_be_protected`]) are in the protected area. Performs no hashing or signature check (see [`crate::verify_image`]).
pub fn parse_image<S: ImageSource>(src: &mut S) -> Result<ImageInfo, ImageError<S::Error>> {
    let cap = src.capacity();
    if cap < IMAGE_HEADER_SIZE {
        return Err(ImageError::TruncatedHeader);
    }
    let mut hb = [0u8; 32];
    read(src, 0, &mut hb)?;
    let header = ImageHeader::decode(&hb);
    if header.magic != IMAGE_MAGIC {
        return Err(ImageError::BadMagic(header.magic));
    }
    if u32::from(header.header_size) < IMAGE_HEADER_SIZE {
        return Err(ImageError::HeaderSizeTooSmall(header.header_size));
    }
    if u32::from(header.header_size) > cap {
        return Err(ImageError::HeaderBeyondSlot {
            header_size: header.header_size,
            capacity: cap,
        });
    }
    let payload_end = u64::from(header.header_size) + u64::from(header.image_size);
    if payload_end > u64::from(cap) {
        return Err(ImageError::PayloadBeyondSlot {
            end: payload_end,
            capacity: cap,
        });
    }
    let payload_end = payload_end as u32; // <= cap

    let mut info = ImageInfo {
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
    };

    // Protected area: present exactly when the header says so, with the same length.
    let first = read_info(src, payload_end)?;
    let mut tlv_off = payload_end;
    match first {
        Some((TLV_PROT_INFO_MAGIC, area_len)) => {
            if area_len != header.protected_tlv_size {
                return Err(ImageError::ProtectedTlvSizeMismatch {
                    header: header.protected_tlv_size,
                    area: area_len,
                });
            }
            let end = walk_area(src, &mut info, TlvArea::Protected, payload_end, area_len)?;
            info.protected_tlv_len = u32::from(area_len);
            tlv_off = end;
        }
        _ if header.protected_tlv_size != 0 => {
            return Err(ImageError::ProtectedTlvSizeMismatch {
                header: header.protected_tlv_size,
                area: 0,
            });
        }
        _ => {}
    }

    let (magic, area_len) = match read_info(src, tlv_off)? {
        Some(v) => v,
        None => {
            return Err(ImageError::TlvAreaBeyondSlot {
                end: u64::from(tlv_off) + u64::from(TLV_HEADER_SIZE),
                capacity: cap,
            })
        }
    };
    if magic != TLV_INFO_MAGIC {
        return Err(ImageError::BadTlvInfoMagic(magic));
    }
    let end = walk_area(src, &mut info, TlvArea::Unprotected, tlv_off, area_len)?;
    info.tlv_offset = tlv_off;
    info.tlv_len = u32::from(area_len);
    info.total_len = end;
    Ok(info)
}

/// Walks one TLV area whose info header is at `start`; returns the offset just past the area.
fn walk_area<S: ImageSource>(
    src: &mut S,
    info: &mut ImageInfo,
    area: TlvArea,
    start: u32,
    area_len: u16,
) -> Result<u32, ImageError<S::Error>> {
    let cap = src.capacity();
    if u32::from(area_len) < TLV_HEADER_SIZE {
        return Err(ImageError::BadTlvAreaLength(area_len));
    }
    let end = u64::from(start) + u64::from(area_len);
    if end > u64::from(cap) {
        return Err(ImageError::TlvAreaBeyondSlot { end, capacity: cap });
    }
    let end = end as u32; // <= cap
    let mut off = start + TLV_HEADER_SIZE;
    while off < end {
        if end - off < TLV_HEADER_SIZE {
            return Err(ImageError::TlvPastAreaEnd {
                kind: 0,
                offset: off,
            });
        }
        let mut eh = [0u8; 4];
        read(src, off, &mut eh)?;
        let kind = u16::from_le_bytes([eh[0], eh[1]]);
        let len = u16::from_le_bytes([eh[2], eh[3]]);
        let value_offset = off + TLV_HEADER_SIZE;
        if u32::from(len) > end - value_offset {
            return Err(ImageError::TlvPastAreaEnd { kind, offset: off });
        }
        let entry = TlvEntry {
            area,
            kind,
            value_offset,
            len,
        };
        record(src, info, entry)?;
        off = value_offset + u32::from(len);
    }
    Ok(end)
}

fn record<S: ImageSource>(
    src: &mut S,
    info: &mut ImageInfo,
    e: TlvEntry,
) -> Result<(), ImageError<S::Error>> {
    if info.tlv_count < MAX_LISTED_TLVS {
        info.tlvs[info.tlv_count] = Some(e);
    }
    info.tlv_count = info.tlv_count.saturating_add(1);
    let bad_len = ImageError::BadTlvLength {
        kind: e.kind,
        len: e.len,
    };
    let dup = ImageError::DuplicateTlv(e.kind);
    if tlv::must_be_protected(e.kind) && e.area != TlvArea::Protected {
        return Err(ImageError::TlvNotProtected(e.kind));
    }
    if tlv::fixed_len(e.kind).is_some_and(|n| n != e.len) {
        return Err(bad_len);
    }
    match e.kind {
        tlv::SHA256 | tlv::KEYHASH => {
            let mut v = [0u8; 32];
            read(src, e.value_offset, &mut v)?;
            let slot = if e.kind == tlv::SHA256 {
                &mut info.hash
            } else {
                &mut info.key_hash
            };
            if slot.replace(v).is_some() {
                return Err(dup);
            }
        }
        tlv::PUBKEY => {
            if e.len == 0 || usize::from(e.len) > crate::SPKI_DER_LEN * 2 {
                return Err(bad_len);
            }
            if info.pubkey.replace(e).is_some() {
                return Err(dup);
            }
        }
        tlv::ECDSA_SIG => {
            if e.len < 8 || usize::from(e.len) > crate::MAX_DER_SIGNATURE_LEN {
                return Err(bad_len);
            }
            if info.signature.replace(e).is_some() {
                return Err(dup);
            }
        }
        tlv::SEC_CNT => {
            let mut v = [0u8; 4];
            read(src, e.value_offset, &mut v)?;
            if info
                .security_counter
                .replace(u32::from_le_bytes(v))
                .is_some()
            {
                return Err(dup);
            }
        }
        _ => {}
    }
    Ok(())
}
