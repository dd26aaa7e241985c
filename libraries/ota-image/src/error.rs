//! The one error type: a variant for each way an image can be wrong.
use core::fmt;

/// Why an image was rejected. `E` is the source's read error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageError<E> {
    /// The source failed to read.
    Read(E),
    /// The slot is shorter than the 32-byte image header.
    TruncatedHeader,
    /// The header does not start with the image magic.
    BadMagic(u32),
    /// The header's `hdr_size` is smaller than the 32-byte header itself.
    HeaderSizeTooSmall(u16),
    /// The header's `hdr_size` reaches past the end of the slot.
    HeaderBeyondSlot { header_size: u16, capacity: u32 },
    /// Header plus payload (`img_size`) reaches past the end of the slot.
    PayloadBeyondSlot { end: u64, capacity: u32 },
    /// The protected TLV area does not match the header's `protect_tlv_size`.
    ProtectedTlvSizeMismatch { header: u16, area: u16 },
    /// No TLV info header (magic 0x6907) after the payload and protected TLVs.
    BadTlvInfoMagic(u16),
    /// A TLV area's declared length is smaller than its own info header.
    BadTlvAreaLength(u16),
    /// A TLV area reaches past the end of the slot.
    TlvAreaBeyondSlot { end: u64, capacity: u32 },
    /// A TLV entry's header or value reaches past the end of its area.
    TlvPastAreaEnd { kind: u16, offset: u32 },
    /// A TLV this crate interprets has the wrong length for its type.
    BadTlvLength { kind: u16, len: u16 },
    /// The same interpreted TLV occurs twice.
    DuplicateTlv(u16),
    /// A TLV that must be hashed (security counter, dependency, boot record, decompression TLVs)
    /// is in the unprotected area.
    TlvNotProtected(u16),
    /// No SHA-256 TLV.
    MissingHash,
    /// No ECDSA P-256 signature TLV.
    MissingSignature,
    /// Neither a KEYHASH nor a PUBKEY TLV names the signing key.
    MissingKeyId,
    /// The KEYHASH/PUBKEY TLV names a different key than the one we trust.
    KeyMismatch,
    /// The SHA-256 of header, payload and protected TLVs differs from the SHA-256 TLV.
    HashMismatch,
    /// The signature TLV is not a well-formed DER ECDSA signature.
    BadSignatureEncoding,
    /// The signature does not verify for the image digest and the trusted key.
    BadSignature,
    /// The image's security counter (0 if absent) is below the floor.
    SecurityCounterBelowFloor { counter: u32, floor: u32 },
    /// The payload is larger than the destination allows.
    PayloadTooLarge { len: u32, max: u32 },
    /// The load address is neither 0 nor the expected address.
    BadLoadAddress { found: u32, expected: u32 },
    /// The header sets flags we cannot honour (encrypted, compressed, non-bootable).
    UnsupportedFlags(u32),
}

impl<E> ImageError<E> {
    /// The same error with the read error mapped.
    pub fn map_read<F>(self, f: impl FnOnce(E) -> F) -> ImageError<F> {
        use ImageError::*;
        match self {
            Read(e) => Read(f(e)),
            TruncatedHeader => TruncatedHeader,
            BadMagic(m) => BadMagic(m),
            HeaderSizeTooSmall(h) => HeaderSizeTooSmall(h),
            HeaderBeyondSlot {
                header_size,
                capacity,
            } => HeaderBeyondSlot {
                header_size,
                capacity,
            },
            PayloadBeyondSlot { end, capacity } => PayloadBeyondSlot { end, capacity },
            ProtectedTlvSizeMismatch { header, area } => ProtectedTlvSizeMismatch { header, area },
            BadTlvInfoMagic(m) => BadTlvInfoMagic(m),
            BadTlvAreaLength(l) => BadTlvAreaLength(l),
            TlvAreaBeyondSlot { end, capacity } => TlvAreaBeyondSlot { end, capacity },
            TlvPastAreaEnd { kind, offset } => TlvPastAreaEnd { kind, offset },
            BadTlvLength { kind, len } => BadTlvLength { kind, len },
            DuplicateTlv(k) => DuplicateTlv(k),
            TlvNotProtected(k) => TlvNotProtected(k),
            MissingHash => MissingHash,
            MissingSignature => MissingSignature,
            MissingKeyId => MissingKeyId,
            KeyMismatch => KeyMismatch,
            HashMismatch => HashMismatch,
            BadSignatureEncoding => BadSignatureEncoding,
            BadSignature => BadSignature,
            SecurityCounterBelowFloor { counter, floor } => {
                SecurityCounterBelowFloor { counter, floor }
            }
            PayloadTooLarge { len, max } => PayloadTooLarge { len, max },
            BadLoadAddress { found, expected } => BadLoadAddress { found, expected },
            UnsupportedFlags(f) => UnsupportedFlags(f),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for ImageError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ImageError::*;
        match self {
            Read(e) => write!(f, "read error: {e:?}"),
            TruncatedHeader => write!(f, "truncated header: the slot is shorter than 32 bytes"),
            BadMagic(m) => write!(f, "bad image magic {m:#010x} (expected 0x96f3b83d)"),
            HeaderSizeTooSmall(h) => write!(f, "header size {h:#x} is smaller than 32 bytes"),
            HeaderBeyondSlot {
                header_size,
                capacity,
            } => {
                write!(
                    f,
                    "header size {header_size:#x} is beyond the slot ({capacity:#x} bytes)"
                )
            }
            PayloadBeyondSlot { end, capacity } => {
                write!(
                    f,
                    "payload ends at {end:#x}, beyond the slot ({capacity:#x} bytes)"
                )
            }
            ProtectedTlvSizeMismatch { header, area } => write!(
                f,
                "protected TLV size mismatch: header says {header:#x}, area says {area:#x}"
            ),
            BadTlvInfoMagic(m) => write!(f, "bad TLV info magic {m:#06x} (expected 0x6907)"),
            BadTlvAreaLength(l) => write!(f, "TLV area length {l:#x} is shorter than its header"),
            TlvAreaBeyondSlot { end, capacity } => {
                write!(
                    f,
                    "TLV area ends at {end:#x}, beyond the slot ({capacity:#x} bytes)"
                )
            }
            TlvPastAreaEnd { kind, offset } => {
                write!(
                    f,
                    "TLV {kind:#04x} at {offset:#x} runs past the end of its area"
                )
            }
            BadTlvLength { kind, len } => write!(
                f,
                "TLV {} ({kind:#04x}) has bad length {len}",
                crate::tlv::name(*kind)
            ),
            DuplicateTlv(k) => write!(f, "duplicate TLV {} ({k:#04x})", crate::tlv::name(*k)),
            TlvNotProtected(k) => write!(
                f,
                "TLV {} ({k:#04x}) must be in the protected area",
                crate::tlv::name(*k)
            ),
            MissingHash => write!(f, "missing SHA256 TLV"),
            MissingSignature => write!(f, "missing ECDSA P-256 signature TLV"),
            MissingKeyId => write!(f, "missing KEYHASH or PUBKEY TLV"),
            KeyMismatch => write!(f, "image is signed with a different key"),
            HashMismatch => write!(
                f,
                "hash mismatch: image contents differ from the SHA256 TLV"
            ),
            BadSignatureEncoding => write!(f, "malformed DER ECDSA signature"),
            BadSignature => write!(f, "bad signature"),
            SecurityCounterBelowFloor { counter, floor } => {
                write!(f, "security counter {counter} is below the floor {floor}")
            }
            PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds the maximum {max}")
            }
            BadLoadAddress { found, expected } => {
                write!(f, "load address {found:#x} is neither 0 nor {expected:#x}")
            }
            UnsupportedFlags(fl) => write!(f, "unsupported image flags {fl:#x}"),
        }
    }
}
