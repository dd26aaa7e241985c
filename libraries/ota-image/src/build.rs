//! The one image builder (host only, feature `build`): header, header padding, payload,
//! protected TLV area, SHA-256, KEYHASH and ECDSA P-256 signature, as imgtool writes them.
//!
//! [`ImageBuilder::sign`] is what `tock-ota sign` writes: the same bytes as
//! `imgtool sign --key <p256>` up to the signature, whose nonce is RFC 6979's here (so a given
//! key and image always give the same signature). [`ImageBuilder::unsigned`] leaves out the key
//! (only the SHA256 TLV: what the update-region's finalize checks). The pieces, [`tlv_area`]
//! and [`signature_tlvs`], are public for tests that build malformed images on purpose; so is
//! [`WordFlash`], the tests' word-granular flash.
use std::fmt;
use std::vec::Vec;

use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

use crate::{
    flags, raw_to_der_signature, tlv, ImageHeader, ImageVersion, PublicKey, Sha256,
    IMAGE_HEADER_SIZE, IMAGE_MAGIC, MAX_DER_SIGNATURE_LEN, TLV_HEADER_SIZE, TLV_INFO_MAGIC,
    TLV_PROT_INFO_MAGIC,
};

/// Why an image could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// The header size is smaller than the 32-byte header.
    HeaderSizeTooSmall(u16),
    /// The payload does not fit the header's 32-bit size field.
    PayloadTooLarge(usize),
    /// A TLV area (info header included) does not fit its 16-bit length field.
    TlvAreaTooLong(usize),
    /// A TLV value does not fit its 16-bit length field.
    TlvTooLong { kind: u16, len: usize },
    /// The key cannot sign (it is not a P-256 key).
    Signing,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::HeaderSizeTooSmall(h) => {
                write!(f, "header size {h:#x} is smaller than 32 bytes")
            }
            BuildError::PayloadTooLarge(n) => {
                write!(f, "payload of {n} bytes is larger than 4 GiB")
            }
            BuildError::TlvAreaTooLong(n) => write!(f, "TLV area of {n} bytes is too long"),
            BuildError::TlvTooLong { kind, len } => write!(
                f,
                "TLV {} ({kind:#04x}) of {len} bytes is too long",
                tlv::name(*kind)
            ),
            BuildError::Signing => write!(f, "signing failed"),
        }
    }
}

impl std::error::Error for BuildError {}

/// A TLV area: its info header (`magic`, total length) and the entries in the order given.
pub fn tlv_area(magic: u16, tlvs: &[(u16, &[u8])]) -> Result<Vec<u8>, BuildError> {
    let body: usize = tlvs.iter().map(|(_, v)| 4 + v.len()).sum();
    let total = body + TLV_HEADER_SIZE as usize;
    let total16 = u16::try_from(total).map_err(|_| BuildError::TlvAreaTooLong(total))?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&total16.to_le_bytes());
    for &(kind, value) in tlvs {
        let len = u16::try_from(value.len()).map_err(|_| BuildError::TlvTooLong {
            kind,
            len: value.len(),
        })?;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(value);
    }
    Ok(out)
}

/// The 64 bytes `x ‖ y` of `key`'s public point, as [`PublicKey::from_raw`] takes them.
pub fn raw_public_key(key: &SigningKey) -> [u8; 64] {
    let point = VerifyingKey::from(key).to_sec1_point(false);
    let mut raw = [0u8; 64];
    raw.copy_from_slice(&point.as_bytes()[1..65]);
    raw
}

/// The [`PublicKey`] of `key`.
pub fn public_key(key: &SigningKey) -> PublicKey {
    // A signing key's public point is on the curve.
    PublicKey::from_raw(&raw_public_key(key)).unwrap_or_else(|_| unreachable!())
}

/// DER ECDSA P-256 signature of a SHA-256 `digest` (RFC 6979 nonce).
pub fn sign_digest(digest: &[u8; 32], key: &SigningKey) -> Result<Vec<u8>, BuildError> {
    let sig: Signature = key.sign_prehash(digest).map_err(|_| BuildError::Signing)?;
    let mut raw = [0u8; 64];
    raw.copy_from_slice(&sig.to_bytes());
    let mut der = [0u8; MAX_DER_SIGNATURE_LEN];
    let n = raw_to_der_signature(&raw, &mut der);
    Ok(der[..n].to_vec())
}

/// The unprotected TLVs imgtool writes for a P-256 key over the hashed region `hashed`: SHA256,
/// KEYHASH, ECDSASIG, in that order.
pub fn signature_tlvs(hashed: &[u8], key: &SigningKey) -> Result<Vec<(u16, Vec<u8>)>, BuildError> {
    let digest = Sha256::digest(hashed);
    Ok(std::vec![
        (tlv::SHA256, digest.to_vec()),
        (tlv::KEYHASH, public_key(key).key_hash().to_vec()),
        (tlv::ECDSA_SIG, sign_digest(&digest, key)?),
    ])
}

/// How to build an image. `Default`: version 0.0.0+0, header size 0x200 filled with 0xff (what
/// `--pad-header` puts in front of the payload), load address 0, no flags, no security counter,
/// no further TLVs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuilder {
    pub version: ImageVersion,
    /// Header size (>= 32); the payload starts here.
    pub header_size: u16,
    /// The byte between the 32-byte header and the payload: 0xff for imgtool's `--pad-header`,
    /// 0x00 for an input that already starts with zeros in the header's place.
    pub header_fill: u8,
    /// Header load address; non-zero sets the RAM_LOAD flag, as imgtool does.
    pub load_addr: u32,
    /// Header flags besides RAM_LOAD (e.g. the compression flags).
    pub flags: u32,
    /// The protected SEC_CNT TLV; `None` leaves it out.
    pub security_counter: Option<u32>,
    /// Protected TLVs after SEC_CNT, in this order.
    pub protected: Vec<(u16, Vec<u8>)>,
    /// Unprotected TLVs after the hash and signature TLVs, in this order.
    pub unprotected: Vec<(u16, Vec<u8>)>,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        ImageBuilder {
            version: ImageVersion::default(),
            header_size: 0x200,
            header_fill: 0xff,
            load_addr: 0,
            flags: 0,
            security_counter: None,
            protected: Vec::new(),
            unprotected: Vec::new(),
        }
    }
}

impl ImageBuilder {
    /// The header of an image with a payload of `payload_len` bytes and a protected TLV area
    /// of `protected_tlv_size` bytes.
    pub fn header(&self, payload_len: u32, protected_tlv_size: u16) -> ImageHeader {
        ImageHeader {
            magic: IMAGE_MAGIC,
            load_addr: self.load_addr,
            header_size: self.header_size,
            protected_tlv_size,
            image_size: payload_len,
            flags: self.flags
                | if self.load_addr != 0 {
                    flags::RAM_LOAD
                } else {
                    0
                },
            version: self.version,
        }
    }

    /// The hashed region: header, padding, `payload`, protected TLV area.
    pub fn hashed_region(&self, payload: &[u8]) -> Result<Vec<u8>, BuildError> {
        if u32::from(self.header_size) < IMAGE_HEADER_SIZE {
            return Err(BuildError::HeaderSizeTooSmall(self.header_size));
        }
        let payload_len =
            u32::try_from(payload.len()).map_err(|_| BuildError::PayloadTooLarge(payload.len()))?;
        let counter = self.security_counter.map(u32::to_le_bytes);
        let mut protected: Vec<(u16, &[u8])> = Vec::new();
        if let Some(c) = &counter {
            protected.push((tlv::SEC_CNT, c));
        }
        protected.extend(self.protected.iter().map(|(k, v)| (*k, v.as_slice())));
        let area = if protected.is_empty() {
            Vec::new()
        } else {
            tlv_area(TLV_PROT_INFO_MAGIC, &protected)?
        };
        let header = self.header(payload_len, area.len() as u16); // tlv_area checked the length
        let hs = usize::from(self.header_size);
        let mut image = Vec::with_capacity(hs + payload.len() + area.len() + 160);
        image.extend_from_slice(&header.encode());
        image.resize(hs, self.header_fill);
        image.extend_from_slice(payload);
        image.extend_from_slice(&area);
        Ok(image)
    }

    /// The image signed with `key`: the hashed region, then SHA256, KEYHASH, ECDSASIG and the
    /// further unprotected TLVs.
    pub fn sign(&self, payload: &[u8], key: &SigningKey) -> Result<Vec<u8>, BuildError> {
        let mut image = self.hashed_region(payload)?;
        let mut tlvs = signature_tlvs(&image, key)?;
        tlvs.extend(self.unprotected.iter().cloned());
        self.append_tlvs(&mut image, &tlvs)?;
        Ok(image)
    }

    /// The image without a signature: the hashed region, then SHA256 and the further
    /// unprotected TLVs.
    pub fn unsigned(&self, payload: &[u8]) -> Result<Vec<u8>, BuildError> {
        let mut image = self.hashed_region(payload)?;
        let mut tlvs = std::vec![(tlv::SHA256, Sha256::digest(&image).to_vec())];
        tlvs.extend(self.unprotected.iter().cloned());
        self.append_tlvs(&mut image, &tlvs)?;
        Ok(image)
    }

    fn append_tlvs(&self, image: &mut Vec<u8>, tlvs: &[(u16, Vec<u8>)]) -> Result<(), BuildError> {
        let refs: Vec<(u16, &[u8])> = tlvs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        image.extend_from_slice(&tlv_area(TLV_INFO_MAGIC, &refs)?);
        Ok(())
    }
}

/// A NOR flash in RAM that, like the nRF52840 QSPI's EasyDMA, reads only whole words at word
/// addresses, for tests of [`crate::FlashSlot`] and of verifying from flash. It can be told to
/// fail any read that covers the address `fail_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordFlash {
    pub data: Vec<u8>,
    pub fail_at: Option<u32>,
}

impl WordFlash {
    /// A flash holding `data`, failing no read.
    pub fn new(data: Vec<u8>) -> Self {
        WordFlash {
            data,
            fail_at: None,
        }
    }
}

/// Why a [`WordFlash`] read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordFlashError {
    /// The address or the length is not a multiple of 4.
    Misaligned,
    /// The read reaches past the flash.
    OutOfBounds,
    /// The read covers `fail_at`.
    Injected,
}

impl NorFlashError for WordFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            WordFlashError::Misaligned => NorFlashErrorKind::NotAligned,
            WordFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            WordFlashError::Injected => NorFlashErrorKind::Other,
        }
    }
}

impl ErrorType for WordFlash {
    type Error = WordFlashError;
}

impl ReadNorFlash for WordFlash {
    const READ_SIZE: usize = 4;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), WordFlashError> {
        if !offset.is_multiple_of(4) || !bytes.len().is_multiple_of(4) {
            return Err(WordFlashError::Misaligned);
        }
        let start = offset as usize;
        let src = start
            .checked_add(bytes.len())
            .and_then(|end| self.data.get(start..end))
            .ok_or(WordFlashError::OutOfBounds)?;
        let end = u64::from(offset) + bytes.len() as u64;
        if self
            .fail_at
            .is_some_and(|at| (u64::from(offset)..end).contains(&u64::from(at)))
        {
            return Err(WordFlashError::Injected);
        }
        bytes.copy_from_slice(src);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}
