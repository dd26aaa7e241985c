//! MCUboot/imgtool image format: parse, stream-hash and verify signed firmware images.
//!
//! Usage
//! -----
//!
//! ```rust,ignore
//! let key = PublicKey::from_raw(&BOOT_KEY)?;
//! let mut slot = FlashSlot::new(&mut qspi, STAGING_BASE, STAGING_LEN);
//! let image = verify_image(&mut slot, &key, &RustCryptoVerifier, &VerifyPolicy::default())?;
//! // image.payload_offset / image.payload_len locate the payload inside the slot.
//! ```
//!
//! The image is read through an [`ImageSource`] in bounded chunks (at most [`CHUNK`] bytes at a
//! time), so a megabyte image verifies with a few hundred bytes of RAM. Every offset and length
//! taken from the image is checked against the source's capacity before it is used: a malformed
//! image yields an [`ImageError`], never a panic, an overflow or a read outside the slot.
//!
//! The byte layout is documented in `docs/image-format.md`; it follows MCUboot's `image.h` and
//! imgtool's `image.py`.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(feature = "decompress", feature = "build"))]
extern crate std;

#[cfg(feature = "build")]
pub mod build;
mod check;
#[cfg(feature = "decompress")]
pub mod compressed;
mod der;
mod error;
mod in_place;
mod key;
mod parse;
mod sha256;
mod source;
mod verify;

#[cfg(test)]
mod tests;

pub use check::{CheckError, CheckedImage, StreamChecker};
pub use der::{der_to_raw_signature, raw_to_der_signature, MAX_DER_SIGNATURE_LEN};
pub use error::ImageError;
pub use in_place::verify_in_place;
#[cfg(feature = "rustcrypto")]
pub use key::RustCryptoVerifier;
pub use key::{KeyError, PublicKey, SignatureVerifier, SPKI_DER_LEN};
pub use parse::{
    parse_image, ImageHeader, ImageInfo, ImageVersion, TlvArea, TlvEntry, MAX_LISTED_TLVS,
};
pub use sha256::Sha256;
pub use source::{FlashSlot, ImageSource, SliceSource, SlotReadError};
pub use verify::{hash_region, verify_image, VerifiedImage, VerifyPolicy, WordAligned};

/// Image header magic (`IMAGE_MAGIC`).
pub const IMAGE_MAGIC: u32 = 0x96f3_b83d;
/// Size of the fixed image header; `hdr_size` may be larger (the rest is padding).
pub const IMAGE_HEADER_SIZE: u32 = 32;
/// Magic of the unprotected TLV area's info header.
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// Magic of the protected (hashed) TLV area's info header.
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;
/// Size of a TLV area's info header (magic, total length) and of one TLV entry header.
pub const TLV_HEADER_SIZE: u32 = 4;
/// Bytes read from the source at a time while hashing.
pub const CHUNK: usize = 512;

/// TLV types this crate interprets (MCUboot `IMAGE_TLV_*`).
pub mod tlv {
    /// SHA-256 of the DER SubjectPublicKeyInfo of the signing key.
    pub const KEYHASH: u16 = 0x01;
    /// The DER SubjectPublicKeyInfo of the signing key itself.
    pub const PUBKEY: u16 = 0x02;
    /// SHA-256 over header, payload and protected TLV area.
    pub const SHA256: u16 = 0x10;
    /// ECDSA signature (DER) over the SHA-256 digest; P-256 here.
    pub const ECDSA_SIG: u16 = 0x22;
    /// SHA-384 over the hashed region (images this crate does not verify).
    pub const SHA384: u16 = 0x11;
    /// SHA-512 over the hashed region (images this crate does not verify).
    pub const SHA512: u16 = 0x12;
    /// Dependency on another image's version (multi-image; not evaluated here).
    pub const DEPENDENCY: u16 = 0x40;
    /// Security counter (little-endian u32), protected area only.
    pub const SEC_CNT: u16 = 0x50;
    /// Measured-boot record (CBOR; not evaluated here).
    pub const BOOT_RECORD: u16 = 0x60;
    /// Size of the decompressed payload (compressed images; checked by `compressed::verify_image_bytes`).
    pub const DECOMP_SIZE: u16 = 0x70;
    /// SHA-256 of the decompressed image.
    pub const DECOMP_SHA: u16 = 0x71;
    /// Signature (DER, like ECDSA_SIG) over DECOMP_SHA.
    pub const DECOMP_SIGNATURE: u16 = 0x72;

    /// Types that MCUboot reads only from the protected area: found in the unprotected area, an
    /// attacker could add or change them without breaking the signature (MCUboot before 1.11
    /// took dependencies, boot records and the security counter from either area).
    pub const fn must_be_protected(kind: u16) -> bool {
        matches!(
            kind,
            DEPENDENCY | SEC_CNT | BOOT_RECORD | DECOMP_SIZE | DECOMP_SHA | DECOMP_SIGNATURE
        )
    }

    /// The exact value length of a type whose length the format fixes (`None`: variable or
    /// unknown). A digest TLV is exactly its algorithm's digest size, so a buffer sized by the
    /// algorithm always holds it.
    pub const fn fixed_len(kind: u16) -> Option<u16> {
        match kind {
            KEYHASH | SHA256 | DECOMP_SHA => Some(32),
            SHA384 => Some(48),
            SHA512 => Some(64),
            SEC_CNT | DECOMP_SIZE => Some(4),
            DEPENDENCY => Some(12),
            _ => None,
        }
    }

    /// A short name for a TLV type, as imgtool spells it.
    pub fn name(kind: u16) -> &'static str {
        match kind {
            KEYHASH => "KEYHASH",
            PUBKEY => "PUBKEY",
            SHA256 => "SHA256",
            SHA384 => "SHA384",
            SHA512 => "SHA512",
            0x20 => "RSA2048",
            ECDSA_SIG => "ECDSASIG",
            0x23 => "RSA3072",
            0x24 => "ED25519",
            0x25 => "SIG_PURE",
            0x30 => "ENCRSA2048",
            0x31 => "ENCKW",
            0x32 => "ENCEC256",
            0x33 => "ENCX25519",
            DEPENDENCY => "DEPENDENCY",
            SEC_CNT => "SEC_CNT",
            BOOT_RECORD => "BOOT_RECORD",
            DECOMP_SIZE => "DECOMP_SIZE",
            DECOMP_SHA => "DECOMP_SHA",
            DECOMP_SIGNATURE => "DECOMP_SIGNATURE",
            _ => "UNKNOWN",
        }
    }
}

/// Header flags (MCUboot `IMAGE_F_*`).
pub mod flags {
    /// Position-independent image (unused by MCUboot).
    pub const PIC: u32 = 0x0000_0001;
    /// Encrypted with AES-128.
    pub const ENCRYPTED_AES128: u32 = 0x0000_0004;
    /// Encrypted with AES-256.
    pub const ENCRYPTED_AES256: u32 = 0x0000_0008;
    /// Not bootable (e.g. a data image).
    pub const NON_BOOTABLE: u32 = 0x0000_0010;
    /// Load into RAM at the header's load address (imgtool sets it for `--load-addr`).
    pub const RAM_LOAD: u32 = 0x0000_0020;
    /// Fixed ROM address (imgtool `--rom-fixed`).
    pub const ROM_FIXED: u32 = 0x0000_0100;
    /// LZMA1-compressed payload (MCUboot reserves it; imgtool never writes it).
    pub const COMPRESSED_LZMA1: u32 = 0x0000_0200;
    /// LZMA2-compressed payload (imgtool `--compression lzma2`).
    pub const COMPRESSED_LZMA2: u32 = 0x0000_0400;
    /// ARM-Thumb BCJ filter applied before LZMA2 (imgtool `--compression lzma2armthumb`).
    pub const COMPRESSED_ARM_THUMB: u32 = 0x0000_0800;
    /// Every compression flag.
    pub const COMPRESSED: u32 = COMPRESSED_LZMA1 | COMPRESSED_LZMA2 | COMPRESSED_ARM_THUMB;
    /// The compression flags of the images imgtool writes and we decode (`lzma2`,
    /// `lzma2armthumb`).
    pub const COMPRESSED_DECODED: u32 = COMPRESSED_LZMA2 | COMPRESSED_ARM_THUMB;

    /// Every flag with its imgtool name, in bit order.
    pub const NAMES: [(u32, &str); 9] = [
        (PIC, "PIC"),
        (ENCRYPTED_AES128, "ENCRYPTED_AES128"),
        (ENCRYPTED_AES256, "ENCRYPTED_AES256"),
        (NON_BOOTABLE, "NON_BOOTABLE"),
        (RAM_LOAD, "RAM_LOAD"),
        (ROM_FIXED, "ROM_FIXED"),
        (COMPRESSED_LZMA1, "COMPRESSED_LZMA1"),
        (COMPRESSED_LZMA2, "COMPRESSED_LZMA2"),
        (COMPRESSED_ARM_THUMB, "COMPRESSED_ARM_THUMB"),
    ];

    /// Flags whose payload this crate cannot hand over as plain executable bytes.
    pub const UNSUPPORTED: u32 = ENCRYPTED_AES128 | ENCRYPTED_AES256 | NON_BOOTABLE | COMPRESSED;
}
