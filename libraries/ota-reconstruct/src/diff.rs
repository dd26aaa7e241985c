//! Host side: makes a [`crate::delta`] patch from a base and a new image.
//!
//! The matching (which base range each stretch of the new image copies from) is the `bsdiff`
//! crate's: it emits `(copy len, insert len, seek)` triples with the copy's differences and the
//! inserted bytes. This module re-encodes them as the device's sequential format: LEB128
//! lengths, and each copy's differences as runs of unchanged bytes and changed ones.
use std::format;
use std::string::String;
use std::vec::Vec;

use ota_image::{parse_image, Sha256, SliceSource};

use crate::blocking::{run, RunError, Storage};
use crate::delta::{put_varint, tag, zigzag, DeltaDecoder, Header, OpKind};
use crate::{Area, BaseId, Error, Limits, Rebuild};

/// Repeats at least this long become a fill (tag and byte) instead of literal bytes (a fill
/// between literals costs up to two tags).
const MIN_FILL: usize = 6;

/// Why a patch could not be made.
#[derive(Debug, PartialEq, Eq)]
pub enum DiffError {
    /// The base or the new image is 4 GiB or more.
    TooLarge,
    /// The matcher's output was not what its documentation says (a bug).
    Matcher(&'static str),
    /// A signed image could not be read; the text says which and why.
    Image(String),
}

impl core::fmt::Display for DiffError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DiffError::TooLarge => write!(f, "base or new image of 4 GiB or more"),
            DiffError::Matcher(what) => write!(f, "bsdiff output not understood: {what}"),
            DiffError::Image(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for DiffError {}

/// What a patch needs of a signed image (MCUboot format).
#[derive(Clone, Copy, Debug)]
pub struct SignedImage<'a> {
    /// The payload: what the bootloader installs in the kernel slot, so a patch's base.
    pub payload: &'a [u8],
    /// The image's SHA-256 hash TLV (what the bootloader's journal records).
    pub hash: [u8; 32],
}

impl<'a> SignedImage<'a> {
    /// Reads the header and TLVs of `bytes`; `name` goes into the error.
    pub fn parse(bytes: &'a [u8], name: &str) -> Result<Self, DiffError> {
        let info = parse_image(&mut SliceSource(bytes))
            .map_err(|e| DiffError::Image(format!("{name}: not a signed image ({e:?})")))?;
        let hash = info
            .hash
            .ok_or_else(|| DiffError::Image(format!("{name}: no SHA-256 TLV")))?;
        let start = info.payload_offset as usize;
        let payload = bytes
            .get(start..start + info.payload_len as usize)
            .ok_or_else(|| DiffError::Image(format!("{name}: payload beyond the file")))?;
        Ok(SignedImage { payload, hash })
    }

    /// The id a receiver running this image advertises and a delta session names: the first
    /// 16 bytes of its hash TLV.
    pub fn id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.hash[..16]);
        id
    }
}

/// `tock-ota delta`: the patch from the kernel a device runs after installing `old` (its
/// payload, in the kernel slot) to the whole signed image `new` (header and TLVs travel in the
/// patch). Both are checked to be signed images.
/// The patch is applied once on the host before it is returned ([`apply_patch`]).
pub fn make_image_patch(old: &[u8], new: &[u8]) -> Result<Vec<u8>, DiffError> {
    let base = SignedImage::parse(old, "base")?;
    SignedImage::parse(new, "new image")?;
    let patch = make_patch(base.payload, new)?;
    if apply_patch(&patch, base.payload).as_deref() != Ok(new) {
        return Err(DiffError::Matcher(
            "the patch does not rebuild the new image",
        ));
    }
    Ok(patch)
}

/// The patch that rebuilds `new` from `base`.
pub fn make_patch(base: &[u8], new: &[u8]) -> Result<Vec<u8>, DiffError> {
    let base_len = u32::try_from(base.len()).map_err(|_| DiffError::TooLarge)?;
    let output_len = u32::try_from(new.len()).map_err(|_| DiffError::TooLarge)?;
    let mut raw = Vec::new();
    bsdiff::diff(base, new, &mut raw).map_err(|_| DiffError::Matcher("write failed"))?;

    let header = Header {
        base: BaseId {
            len: base_len,
            sha256: Sha256::digest(base),
        },
        output_len,
        output_sha256: Sha256::digest(new),
    };
    let mut patch = Vec::from(header.encode());

    // bsdiff's stream: 24-byte controls (copy len, insert len, seek: 8-byte sign-magnitude
    // little-endian each), each followed by the copy's differences and the inserted bytes.
    let mut rest = raw.as_slice();
    let mut seek: i64 = 0;
    let mut produced = 0usize;
    while !rest.is_empty() {
        let (control, tail) = rest
            .split_at_checked(24)
            .ok_or(DiffError::Matcher("short control"))?;
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&control[at..at + 8]);
            let v = u64::from_le_bytes(b);
            let magnitude = (v & !(1 << 63)) as i64;
            if v >> 63 == 1 {
                -magnitude
            } else {
                magnitude
            }
        };
        let (copy_len, insert_len, next_seek) = (word(0), word(8), word(16));
        let copy_len = usize::try_from(copy_len).map_err(|_| DiffError::Matcher("copy len"))?;
        let insert_len =
            usize::try_from(insert_len).map_err(|_| DiffError::Matcher("insert len"))?;
        let (diff, tail) = tail
            .split_at_checked(copy_len)
            .ok_or(DiffError::Matcher("short copy"))?;
        let (insert, tail) = tail
            .split_at_checked(insert_len)
            .ok_or(DiffError::Matcher("short insert"))?;
        if copy_len > 0 {
            put_varint(&mut patch, tag(copy_len as u32, OpKind::Copy));
            put_varint(&mut patch, zigzag(seek));
            put_runs(&mut patch, diff);
            seek = 0;
        }
        put_inserts(&mut patch, insert);
        seek += next_seek;
        produced += copy_len + insert_len;
        rest = tail;
    }
    if produced != new.len() {
        return Err(DiffError::Matcher("output length"));
    }
    put_varint(&mut patch, 0);
    Ok(patch)
}

/// Bytes the base has nothing for: repeated bytes (a header's padding) as fills, the rest as
/// inserts.
fn put_inserts(patch: &mut Vec<u8>, bytes: &[u8]) {
    let mut at = 0;
    let mut literal_from = 0;
    while at < bytes.len() {
        let same = bytes[at..].iter().take_while(|b| **b == bytes[at]).count();
        if same >= MIN_FILL {
            put_literal(patch, &bytes[literal_from..at]);
            put_varint(patch, tag(same as u32, OpKind::Fill));
            patch.push(bytes[at]);
            literal_from = at + same;
        }
        at += same;
    }
    put_literal(patch, &bytes[literal_from..]);
}

fn put_literal(patch: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_varint(patch, tag(bytes.len() as u32, OpKind::Insert));
        patch.extend_from_slice(bytes);
    }
}

/// A copy's differences as runs (`crate::delta`: head, then the changed bytes).
fn put_runs(patch: &mut Vec<u8>, diff: &[u8]) {
    let mut at = 0;
    while at < diff.len() {
        let skip = diff[at..].iter().take_while(|b| **b == 0).count();
        let changed_start = at + skip;
        // A run's head is one byte for most runs, so even one unchanged byte between changed
        // ones is cheaper as a new run than as a zero difference (measured on DK kernels).
        let changed = diff[changed_start..]
            .iter()
            .take_while(|b| **b != 0)
            .count();
        let end = changed_start + changed;
        let n = (end - changed_start) as u64;
        if (1..=3).contains(&n) {
            put_varint(patch, (skip as u64) << 2 | (n - 1));
        } else {
            put_varint(patch, (skip as u64) << 2 | 3);
            put_varint(patch, n);
        }
        patch.extend_from_slice(&diff[changed_start..end]);
        at = end;
    }
}

/// Applies `patch` to `base` in memory, as the device does (the same [`Rebuild`] and checks):
/// the host's check of a patch before it is sent.
pub fn apply_patch(patch: &[u8], base: &[u8]) -> Result<Vec<u8>, Error> {
    struct Memory<'a> {
        patch: &'a [u8],
        base: &'a [u8],
        out: Vec<u8>,
    }
    impl Storage for Memory<'_> {
        type Error = Error;
        fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), Error> {
            let src = match area {
                Area::Stream => self.patch,
                Area::Base => self.base,
                Area::Output => &self.out,
            };
            let at = offset as usize;
            let bytes = src.get(at..at + buf.len()).ok_or(Error::BadReference {
                area,
                offset,
                len: buf.len() as u32,
            })?;
            buf.copy_from_slice(bytes);
            Ok(())
        }
        fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Error> {
            if offset as usize != self.out.len() {
                return Err(Error::Decoder);
            }
            self.out.extend_from_slice(data);
            Ok(())
        }
    }
    let limits = Limits {
        stream_len: u32::try_from(patch.len()).map_err(|_| Error::Corrupt("patch length"))?,
        base_max: u32::try_from(base.len()).map_err(|_| Error::WrongBase)?,
        output_max: u32::MAX,
    };
    let mut memory = Memory {
        patch,
        base,
        out: Vec::new(),
    };
    let mut rebuild = Rebuild::new(DeltaDecoder::new(), limits);
    match run(&mut rebuild, &mut memory) {
        Ok(_) => Ok(memory.out),
        Err(RunError::Rebuild(e) | RunError::Storage(e)) => Err(e),
    }
}
