//! Verification of an image in an [`ImageSource`]: [`StreamChecker`] fed from the source.
use crate::check::{CheckedImage, StreamChecker};
use crate::{ImageError, ImageHeader, ImageSource, PublicKey, Sha256, SignatureVerifier, CHUNK};

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

/// Feeds `checker` from `src`, reading at most [`CHUNK`] bytes at a time and no byte past the
/// image, until it has the verdict on the layout.
pub(crate) fn drive<S: ImageSource>(
    src: &mut S,
    mut checker: StreamChecker,
) -> Result<CheckedImage, ImageError<S::Error>> {
    let mut buf = WordAligned([0u8; CHUNK]);
    loop {
        let n = (checker.wanted() as usize).min(CHUNK);
        let Some(buf) = buf.0.get_mut(..n).filter(|b| !b.is_empty()) else {
            break;
        };
        src.read_at(checker.position(), buf)
            .map_err(ImageError::Read)?;
        checker.feed(buf).map_err(ImageError::widen)?;
    }
    checker.finish().map_err(ImageError::widen)
}

/// Verifies the image in `src` against the trusted `key` and `policy`: the slot is read once,
/// in order, through [`StreamChecker`] (layout, then SHA-256 over the hashed region), then
/// [`CheckedImage::verify`] gives the verdict (flags, policy, key identity, hash, signature).
pub fn verify_image<S: ImageSource, V: SignatureVerifier>(
    src: &mut S,
    key: &PublicKey,
    verifier: &V,
    policy: &VerifyPolicy,
) -> Result<VerifiedImage, ImageError<S::Error>> {
    drive(src, StreamChecker::new(src.capacity()))?
        .verify(key, verifier, policy)
        .map_err(ImageError::widen)
}
