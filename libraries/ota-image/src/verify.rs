//! Full verification: layout, policy, streamed SHA-256, key identity and signature.
use crate::{
    der_to_raw_signature, flags, parse_image, ImageError, ImageHeader, ImageSource, PublicKey,
    Sha256, SignatureVerifier, CHUNK, MAX_DER_SIGNATURE_LEN, SPKI_DER_LEN,
};

/// What the destination accepts, beyond a good signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyPolicy {
    /// Reject images whose security counter is below this (an absent counter counts as 0).
    pub min_security_counter: Option<u32>,
    /// Reject payloads longer than this (the destination slot).
    pub max_payload_len: Option<u32>,
    /// Accept a header load address of 0 or this.
    pub expected_load_addr: Option<u32>,
}

/// A verified image: where its payload is and what it claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedImage {
    pub header: ImageHeader,
    pub security_counter: Option<u32>,
    pub payload_offset: u32,
    pub payload_len: u32,
    /// Length of the whole image in the slot (header, payload and both TLV areas).
    pub total_len: u32,
    /// SHA-256 over header, payload and protected TLVs (the SHA256 TLV's value).
    pub hash: [u8; 32],
}

/// A read buffer on a word boundary: a flash driver whose DMA needs word-aligned RAM (the
/// nRF52840 QSPI) then reads straight into it instead of through a bounce buffer.
#[repr(align(4))]
pub struct WordAligned<const N: usize>(pub [u8; N]);

/// SHA-256 of `[0, len)` of the source, read in [`CHUNK`]-byte pieces.
pub fn hash_region<S: ImageSource>(
    src: &mut S,
    len: u32,
) -> Result<[u8; 32], ImageError<S::Error>> {
    let mut hasher = Sha256::new();
    let mut buf = WordAligned([0u8; CHUNK]);
    let buf = &mut buf.0;
    let mut off = 0u32;
    while off < len {
        let n = (len - off).min(CHUNK as u32) as usize;
        src.read_at(off, &mut buf[..n]).map_err(ImageError::Read)?;
        hasher.update(&buf[..n]);
        off += n as u32;
    }
    Ok(hasher.finalize())
}

/// Verifies the image in `src` against the trusted `key` and `policy`.
///
/// Order: layout ([`parse_image`]), flags, policy (payload size, load address, security
/// counter), key identity (KEYHASH or PUBKEY), then the streamed hash, then the signature —
/// so cheap rejections never pay for hashing a megabyte.
pub fn verify_image<S: ImageSource, V: SignatureVerifier>(
    src: &mut S,
    key: &PublicKey,
    verifier: &V,
    policy: &VerifyPolicy,
) -> Result<VerifiedImage, ImageError<S::Error>> {
    verify_accepting::<S, V, 0>(src, key, verifier, policy)
}

/// [`verify_image`], accepting the header flags in `ACCEPT` besides the supported ones (the
/// compressed-image check accepts the compression flags and then checks the payload itself).
pub(crate) fn verify_accepting<S: ImageSource, V: SignatureVerifier, const ACCEPT: u32>(
    src: &mut S,
    key: &PublicKey,
    verifier: &V,
    policy: &VerifyPolicy,
) -> Result<VerifiedImage, ImageError<S::Error>> {
    let info = parse_image(src)?;
    let header = info.header;

    let unsupported = header.flags & flags::UNSUPPORTED & !ACCEPT;
    if unsupported != 0 {
        return Err(ImageError::UnsupportedFlags(unsupported));
    }
    if let Some(max) = policy.max_payload_len {
        if info.payload_len > max {
            return Err(ImageError::PayloadTooLarge {
                len: info.payload_len,
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
        let counter = info.security_counter.unwrap_or(0);
        if counter < floor {
            return Err(ImageError::SecurityCounterBelowFloor { counter, floor });
        }
    }

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
