//! Compressed images in MCUboot's format (imgtool `--compression lzma2|lzma2armthumb`), checked
//! on the host: the outer image as usual, then the image the payload decompresses to.
//!
//! Layout (MCUboot `docs/compression_format.md`, imgtool's `sign`):
//! - header flags `COMPRESSED_LZMA2` (+ `COMPRESSED_ARM_THUMB`);
//! - payload = a 2-byte LZMA2 header (dictionary-size code, `lc/lp/pb` properties byte) and a raw
//!   LZMA2 stream of the plain payload, ARM-Thumb BCJ-filtered first when that flag is set;
//! - protected TLVs `DECOMP_SIZE` (plain payload length), `DECOMP_SHA` and `DECOMP_SIGNATURE`:
//!   the SHA256 TLV and the signature the *plain* image would carry. The plain image is the outer
//!   one with the compression flags cleared, `img_size` = DECOMP_SIZE, the same header padding,
//!   the plain payload and the protected TLVs other than DECOMP_* (so `protect_tlv_size` shrinks
//!   by theirs, to 0 when none is left).
//!
//! Host-only (feature `decompress`, std): the bootloader build does not include it.
use std::io::Read;
use std::string::{String, ToString};
use std::vec::Vec;

use core::fmt;

use crate::{
    der_to_raw_signature, flags, parse_image, tlv, ImageError, ImageHeader, PublicKey, Sha256,
    SignatureVerifier, SlotReadError, StreamChecker, VerifiedImage, VerifyPolicy,
    MAX_DER_SIGNATURE_LEN, TLV_HEADER_SIZE, TLV_PROT_INFO_MAGIC,
};

/// The compression an image's flags name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw LZMA2.
    Lzma2,
    /// ARM-Thumb BCJ filter, then raw LZMA2.
    Lzma2ArmThumb,
}

impl Compression {
    /// The header flags this compression sets.
    pub const fn flags(self) -> u32 {
        match self {
            Compression::Lzma2 => flags::COMPRESSED_LZMA2,
            Compression::Lzma2ArmThumb => flags::COMPRESSED_LZMA2 | flags::COMPRESSED_ARM_THUMB,
        }
    }

    /// imgtool's name (`--compression`).
    pub const fn name(self) -> &'static str {
        match self {
            Compression::Lzma2 => "lzma2",
            Compression::Lzma2ArmThumb => "lzma2armthumb",
        }
    }

    /// The compression named by header `flags`: `Ok(None)` for an uncompressed image, `Err`
    /// for combinations MCUboot does not define (LZMA1, ARM-Thumb without LZMA2).
    pub const fn from_flags(f: u32) -> Result<Option<Self>, u32> {
        match f & flags::COMPRESSED {
            0 => Ok(None),
            flags::COMPRESSED_LZMA2 => Ok(Some(Compression::Lzma2)),
            x if x == flags::COMPRESSED_LZMA2 | flags::COMPRESSED_ARM_THUMB => {
                Ok(Some(Compression::Lzma2ArmThumb))
            }
            x => Err(x),
        }
    }
}

/// imgtool's LZMA2 settings: 128 KiB dictionary, lc=3, lp=1, pb=2.
pub const DICT_SIZE: u32 = 128 * 1024;
pub const LC: u32 = 3;
pub const LP: u32 = 1;
pub const PB: u32 = 2;
/// The largest dictionary this crate decodes (a larger one is refused before allocating).
pub const MAX_DICT_SIZE: u32 = 1 << 20;

/// The 2-byte header in front of the LZMA2 stream: the smallest dictionary-size code whose size
/// covers `dict_size` (xz's LZMA2 dictionary byte), and the properties byte.
pub fn lzma2_header(dict_size: u32, lc: u32, lp: u32, pb: u32) -> [u8; 2] {
    let code = (0u8..40)
        .find(|&c| u64::from(dict_size) <= dict_size_of(c))
        .unwrap_or(40);
    [code, ((pb * 5 + lp) * 9 + lc) as u8]
}

/// The dictionary size a dictionary-size code stands for.
fn dict_size_of(code: u8) -> u64 {
    // Codes above 40 are invalid; a huge code must not overflow the shift.
    u64::from(2 | (code & 1))
        .checked_shl(u32::from(code / 2 + 11))
        .unwrap_or(u64::MAX)
}

/// Why a compressed image was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompressedError {
    /// The outer image (layout, policy, hash, signature over the compressed payload).
    Outer(ImageError<SlotReadError<()>>),
    /// The header sets a compression combination MCUboot does not define.
    BadCompressionFlags(u32),
    /// A compressed image lacks this protected TLV.
    MissingTlv(u16),
    /// The 2-byte LZMA2 header is missing or names an impossible dictionary or properties.
    BadLzmaHeader([u8; 2]),
    /// DECOMP_SIZE exceeds the destination slot (the policy's payload maximum).
    DecompressedTooLarge { len: u32, max: u32 },
    /// The LZMA2 stream is corrupt or truncated.
    BadStream(String),
    /// The stream decompresses to a different length than DECOMP_SIZE.
    DecompressedSizeMismatch { declared: u32, actual: u64 },
    /// The decompressed image's SHA-256 differs from DECOMP_SHA.
    DecompressedHashMismatch,
    /// DECOMP_SIGNATURE is not a well-formed DER ECDSA signature.
    BadDecompressedSignatureEncoding,
    /// DECOMP_SIGNATURE does not verify over DECOMP_SHA with the trusted key.
    BadDecompressedSignature,
}

impl fmt::Display for CompressedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use CompressedError::*;
        match self {
            Outer(e) => write!(f, "compressed image: {e}"),
            BadCompressionFlags(x) => write!(f, "unsupported compression flags {x:#x}"),
            MissingTlv(k) => write!(
                f,
                "compressed image lacks the protected {} TLV ({k:#04x})",
                tlv::name(*k)
            ),
            BadLzmaHeader(h) => write!(
                f,
                "bad LZMA2 header {:02x} {:02x} (dictionary code, properties)",
                h[0], h[1]
            ),
            DecompressedTooLarge { len, max } => write!(
                f,
                "DECOMP_SIZE {len} bytes exceeds the slot's maximum payload {max}"
            ),
            BadStream(e) => write!(f, "corrupt LZMA2 stream: {e}"),
            DecompressedSizeMismatch { declared, actual } => write!(
                f,
                "stream decompresses to {actual} bytes but DECOMP_SIZE says {declared}"
            ),
            DecompressedHashMismatch => {
                write!(f, "decompressed image's SHA-256 differs from DECOMP_SHA")
            }
            BadDecompressedSignatureEncoding => {
                write!(f, "malformed DER ECDSA signature in DECOMP_SIGNATURE")
            }
            BadDecompressedSignature => write!(f, "bad DECOMP_SIGNATURE"),
        }
    }
}

impl From<ImageError<SlotReadError<()>>> for CompressedError {
    fn from(e: ImageError<SlotReadError<()>>) -> Self {
        CompressedError::Outer(e)
    }
}

/// A verified image: the outer image and, when compressed, the decompressed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedImage {
    /// The image as stored and sent (hash and signature over the compressed payload).
    pub outer: VerifiedImage,
    /// `None` for an uncompressed image.
    pub decompressed: Option<DecompressedImage>,
}

/// The image a compressed payload stands for, checked against DECOMP_*.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecompressedImage {
    pub compression: Compression,
    /// The plain image: header, padding, payload and protected TLVs (its hashed region).
    pub image: Vec<u8>,
    /// Length of the plain payload (= DECOMP_SIZE).
    pub payload_len: u32,
    /// DECOMP_SHA, which the plain image hashes to.
    pub hash: [u8; 32],
}

/// Decompresses an LZMA2 payload (2-byte header + raw stream), undoing the ARM-Thumb filter when
/// asked; stops with an error rather than produce more than `limit` bytes.
pub fn decompress(
    payload: &[u8],
    compression: Compression,
    limit: u32,
) -> Result<Vec<u8>, CompressedError> {
    let (head, stream) = payload
        .split_first_chunk::<2>()
        .ok_or(CompressedError::BadLzmaHeader([0; 2]))?;
    let dict = dict_size_of(head[0]);
    let props = head[1];
    let (lc, lp) = (u32::from(props % 9), u32::from(props / 9 % 5));
    if head[0] > 40 || dict > u64::from(MAX_DICT_SIZE) || props >= 9 * 5 * 5 || lc + lp > 4 {
        return Err(CompressedError::BadLzmaHeader(*head));
    }
    let reader = lzma_rust2::Lzma2Reader::new(stream, dict as u32, None);
    let mut out = Vec::new();
    // One byte past the limit shows an overlong stream without decoding all of it.
    let take = u64::from(limit) + 1;
    let res = match compression {
        Compression::Lzma2 => reader.take(take).read_to_end(&mut out),
        Compression::Lzma2ArmThumb => lzma_rust2::filter::bcj::BcjReader::new_arm_thumb(reader, 0)
            .take(take)
            .read_to_end(&mut out),
    };
    res.map_err(|e| CompressedError::BadStream(e.to_string()))?;
    Ok(out)
}

/// Verifies `image` against `key` and `policy`: the outer image always, and when its flags say
/// compressed, the decompressed image too (DECOMP_SIZE, DECOMP_SHA, DECOMP_SIGNATURE). The
/// policy's `max_payload_len` bounds both the compressed payload and DECOMP_SIZE.
pub fn verify_image_bytes<V: SignatureVerifier>(
    image: &[u8],
    key: &PublicKey,
    verifier: &V,
    policy: &VerifyPolicy,
) -> Result<CheckedImage, CompressedError> {
    const ACCEPT: u32 = flags::COMPRESSED_DECODED;
    let header = parse_image(&mut &image[..])?.header;
    let compression =
        Compression::from_flags(header.flags).map_err(CompressedError::BadCompressionFlags)?;
    let mut checker = StreamChecker::new(u32::try_from(image.len()).unwrap_or(u32::MAX));
    checker.feed(image).map_err(ImageError::widen)?;
    let checked = checker.finish().map_err(ImageError::widen)?;
    let accept = if compression.is_some() { ACCEPT } else { 0 };
    let outer = checked
        .verify_accepting(key, verifier, policy, accept)
        .map_err(ImageError::widen)?;
    let Some(compression) = compression else {
        return Ok(CheckedImage {
            outer,
            decompressed: None,
        });
    };
    let decompressed = check_decompressed(image, &outer, compression, key, verifier, policy)?;
    Ok(CheckedImage {
        outer,
        decompressed: Some(decompressed),
    })
}

fn check_decompressed<V: SignatureVerifier>(
    image: &[u8],
    outer: &VerifiedImage,
    compression: Compression,
    key: &PublicKey,
    verifier: &V,
    policy: &VerifyPolicy,
) -> Result<DecompressedImage, CompressedError> {
    let info = parse_image(&mut &image[..])?;
    let h = outer.header;
    // The protected area, entry by entry (parse_image checked every bound).
    let prot_start = (outer.payload_offset + outer.payload_len) as usize;
    let prot_end = prot_start + info.protected_tlv_len as usize;
    let mut kept = Vec::new();
    let (mut size, mut sha, mut sig) = (None, None, None);
    if info.protected_tlv_len != 0 {
        let mut off = prot_start + TLV_HEADER_SIZE as usize;
        while off < prot_end {
            let kind = u16::from_le_bytes([image[off], image[off + 1]]);
            let len = usize::from(u16::from_le_bytes([image[off + 2], image[off + 3]]));
            let entry = &image[off..off + 4 + len];
            let value = &entry[4..];
            match kind {
                tlv::DECOMP_SIZE => {
                    size = Some(u32::from_le_bytes(value.try_into().unwrap_or([0; 4])))
                }
                tlv::DECOMP_SHA => sha = value.try_into().ok(),
                tlv::DECOMP_SIGNATURE => sig = Some(value),
                _ => kept.extend_from_slice(entry),
            }
            off += 4 + len;
        }
    }
    let size = size.ok_or(CompressedError::MissingTlv(tlv::DECOMP_SIZE))?;
    let sha: [u8; 32] = sha.ok_or(CompressedError::MissingTlv(tlv::DECOMP_SHA))?;
    let sig = sig.ok_or(CompressedError::MissingTlv(tlv::DECOMP_SIGNATURE))?;
    if let Some(max) = policy.max_payload_len {
        if size > max {
            return Err(CompressedError::DecompressedTooLarge { len: size, max });
        }
    }
    let payload = &image[outer.payload_offset as usize..prot_start];
    let plain = decompress(payload, compression, size)?;
    if plain.len() as u64 != u64::from(size) {
        return Err(CompressedError::DecompressedSizeMismatch {
            declared: size,
            actual: plain.len() as u64,
        });
    }

    let prot_len = if kept.is_empty() { 0 } else { kept.len() + 4 };
    let plain_header = ImageHeader {
        flags: h.flags & !flags::COMPRESSED,
        image_size: size,
        // At most the outer protected area's length, which fit in 16 bits.
        protected_tlv_size: prot_len as u16,
        ..h
    };
    let mut region = Vec::with_capacity(outer.payload_offset as usize + plain.len() + prot_len);
    region.extend_from_slice(&plain_header.encode());
    region.extend_from_slice(&image[32..outer.payload_offset as usize]);
    region.extend_from_slice(&plain);
    if prot_len != 0 {
        region.extend_from_slice(&TLV_PROT_INFO_MAGIC.to_le_bytes());
        region.extend_from_slice(&(prot_len as u16).to_le_bytes());
        region.extend_from_slice(&kept);
    }
    let mut hasher = Sha256::new();
    hasher.update(&region);
    if hasher.finalize() != sha {
        return Err(CompressedError::DecompressedHashMismatch);
    }
    if sig.len() > MAX_DER_SIGNATURE_LEN {
        return Err(CompressedError::BadDecompressedSignatureEncoding);
    }
    let raw = der_to_raw_signature(sig).ok_or(CompressedError::BadDecompressedSignatureEncoding)?;
    if !verifier.verify_prehash(key, &sha, &raw) {
        return Err(CompressedError::BadDecompressedSignature);
    }
    Ok(DecompressedImage {
        compression,
        image: region,
        payload_len: size,
        hash: sha,
    })
}
