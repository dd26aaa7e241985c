//! The bootloader's way to verify an image: the header and the TLV areas are read in place
//! first, then the hashed region is streamed through SHA-256.
//!
//! It makes the same checks, in the same order and with the same errors, as
//! [`crate::StreamChecker`] followed by [`crate::CheckedImage::verify`] (the property test
//! `in_place_and_streamed_verdicts_agree` holds the two to it). It exists because driving the
//! streamed checker costs the bootloader firmware about 900 bytes of flash more than this walk
//! (`arm-none-eabi-size -A` of the firmware build, all loaded sections); everything else uses
//! the streamed checker.
use crate::parse::{ImageInfo, TlvArea, TlvEntry};
use crate::{
    der_to_raw_signature, hash_region, tlv, ImageError, ImageHeader, ImageSource, PublicKey,
    SignatureVerifier, VerifiedImage, VerifyPolicy, IMAGE_HEADER_SIZE, IMAGE_MAGIC,
    MAX_DER_SIGNATURE_LEN, SPKI_DER_LEN, TLV_HEADER_SIZE, TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC,
};

/// [`crate::verify_image`]'s verdict, reading the slot in place (see the module docs): for the
/// bootloader, whose flash budget the streamed checker does not fit.
pub fn verify_in_place<S: ImageSource, V: SignatureVerifier>(
    src: &mut S,
    key: &PublicKey,
    verifier: &V,
    policy: &VerifyPolicy,
) -> Result<VerifiedImage, ImageError<S::Error>> {
    let info = walk(src)?;
    let header = info.header;

    info.check_policy(policy, 0)?;

    let expected_hash = info.hash.ok_or(ImageError::MissingHash)?;
    let sig_tlv = info.signature.ok_or(ImageError::MissingSignature)?;
    match (info.key_hash, info.pubkey) {
        (None, None) => return Err(ImageError::MissingKeyId),
        (Some(kh), _) if kh != key.key_hash() => return Err(ImageError::KeyMismatch),
        (_, Some(pk)) => {
            if usize::from(pk.len) != SPKI_DER_LEN {
                return Err(ImageError::KeyMismatch);
            }
            let mut der = [0u8; SPKI_DER_LEN];
            src.read_at(pk.value_offset, &mut der)
                .map_err(ImageError::Read)?;
            if der != key.spki_der() {
                return Err(ImageError::KeyMismatch);
            }
        }
        _ => {}
    }

    let hash = hash_region(src, info.tlv_offset)?;
    if hash != expected_hash {
        return Err(ImageError::HashMismatch);
    }

    let mut der = [0u8; MAX_DER_SIGNATURE_LEN];
    let der = &mut der[..usize::from(sig_tlv.len)]; // len checked by the parser
    src.read_at(sig_tlv.value_offset, der)
        .map_err(ImageError::Read)?;
    let raw = der_to_raw_signature(der).ok_or(ImageError::BadSignatureEncoding)?;
    if !verifier.verify_prehash(key, &hash, &raw) {
        return Err(ImageError::BadSignature);
    }

    Ok(VerifiedImage {
        header,
        security_counter: info.security_counter,
        payload_offset: info.payload_offset,
        payload_len: info.payload_len,
        total_len: info.total_len,
        hash,
    })
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

/// The layout walk of [`crate::StreamChecker`], reading the header and the TLV areas in place.
fn walk<S: ImageSource>(src: &mut S) -> Result<ImageInfo, ImageError<S::Error>> {
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

    let mut info = ImageInfo::new(header);

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
    info.list(e);
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
            if e.len == 0 || usize::from(e.len) > SPKI_DER_LEN * 2 {
                return Err(bad_len);
            }
            if info.pubkey.replace(e).is_some() {
                return Err(dup);
            }
        }
        tlv::ECDSA_SIG => {
            if e.len < 8 || usize::from(e.len) > MAX_DER_SIGNATURE_LEN {
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
