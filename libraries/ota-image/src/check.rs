//! The one MCUboot image checker: incremental and sans-IO.
//!
//! [`StreamChecker`] takes a slot's bytes in order, in pieces of any size, and never reads
//! anything itself: it parses the header, hashes the hashed region (header, payload, protected
//! TLV area) as it goes by, walks both TLV areas, and keeps the values the verdict needs. Every
//! offset and length the image claims is checked against the slot's capacity when it is read, so
//! a malformed image is refused with an [`ImageError`] as soon as its bytes show it, and the
//! checker never asks for a byte past the slot.
//!
//! [`crate::verify_image`] and [`crate::parse_image`] drive it from an [`crate::ImageSource`];
//! the update-region's finalize drives it from flash reads it asks its caller for; both get the
//! same refusals.
use core::convert::Infallible;

use crate::parse::{ImageHeader, ImageInfo, TlvArea, TlvEntry};
use crate::verify::{VerifiedImage, VerifyPolicy};
use crate::{
    der_to_raw_signature, tlv, ImageError, PublicKey, Sha256, SignatureVerifier, IMAGE_HEADER_SIZE,
    IMAGE_MAGIC, MAX_DER_SIGNATURE_LEN, SPKI_DER_LEN, TLV_HEADER_SIZE, TLV_INFO_MAGIC,
    TLV_PROT_INFO_MAGIC,
};

/// A refusal by the checker: an [`ImageError`] that cannot be a read error (the checker reads
/// nothing). [`ImageError::widen`] turns it into any source's error type.
pub type CheckError = ImageError<Infallible>;

impl ImageError<Infallible> {
    /// The same error as an `ImageError<E>` for any read error `E`.
    pub fn widen<E>(self) -> ImageError<E> {
        self.map_read(|never| match never {})
    }
}

/// What the checker is reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// The 32-byte header.
    Header,
    /// Header padding and payload, up to the end of the payload.
    Payload,
    /// The 4-byte info header after the payload: the protected area's or the unprotected one's.
    FirstInfo,
    /// The unprotected area's 4-byte info header, after a protected area.
    Info,
    /// A TLV entry's 4-byte header (type, length).
    EntryHead,
    /// The value of a TLV entry of this type.
    Value(u16),
    /// The whole image was read, or it was refused.
    Done,
}

/// Incremental check of an MCUboot/imgtool image in a slot of a given capacity. See the module
/// docs. Feed the slot's bytes from offset 0 with [`StreamChecker::feed`] until
/// [`StreamChecker::is_done`] (or all of the slot is fed), then take the result with
/// [`StreamChecker::finish`] and judge it with [`CheckedImage::verify`] (signature, key and
/// policy) or [`CheckedImage::check_hash`] (integrity only).
#[derive(Clone, Debug)]
pub struct StreamChecker {
    capacity: u32,
    /// Offset of the next byte to feed.
    pos: u32,
    /// Where the current stage's bytes end: the next decision.
    next: u32,
    /// Bytes below this offset are hashed.
    hash_end: u32,
    stage: Stage,
    /// Whether the current stage's bytes are kept in `field`.
    keep: bool,
    /// `false`: only the layout is wanted; the payload is not fed (and nothing is hashed).
    hashing: bool,
    /// Offset where the bytes kept in `field` start.
    field_at: u32,
    field: [u8; SPKI_DER_LEN],
    area: TlvArea,
    area_end: u32,
    hasher: Sha256,
    info: ImageInfo,
    signature: [u8; MAX_DER_SIGNATURE_LEN],
    pubkey: Option<[u8; SPKI_DER_LEN]>,
    error: Option<CheckError>,
}

impl StreamChecker {
    /// A checker for a slot of `capacity` bytes.
    pub fn new(capacity: u32) -> Self {
        StreamChecker {
            capacity,
            pos: 0,
            next: IMAGE_HEADER_SIZE,
            hash_end: IMAGE_HEADER_SIZE,
            stage: Stage::Header,
            keep: true,
            hashing: true,
            field_at: 0,
            field: [0; SPKI_DER_LEN],
            area: TlvArea::Protected,
            area_end: 0,
            hasher: Sha256::new(),
            info: ImageInfo::new(ImageHeader::decode(&[0; 32])),
            signature: [0; MAX_DER_SIGNATURE_LEN],
            pubkey: None,
            error: (capacity < IMAGE_HEADER_SIZE).then_some(ImageError::TruncatedHeader),
        }
    }

    /// A checker that wants the layout only: after the header it skips the payload (its driver
    /// must feed exactly [`StreamChecker::wanted`] bytes at [`StreamChecker::position`]) and
    /// hashes nothing.
    pub(crate) fn layout_only(capacity: u32) -> Self {
        StreamChecker {
            hashing: false,
            ..Self::new(capacity)
        }
    }

    /// The slot offset of the next byte to feed.
    pub fn position(&self) -> u32 {
        self.pos
    }

    /// Bytes still to feed before the checker's next decision (0 when it is done). Feeding more
    /// at once is fine; a driver that reads flash may ask for at most this much to read no byte
    /// past the image.
    pub fn wanted(&self) -> u32 {
        if self.is_done() {
            0
        } else {
            self.next - self.pos
        }
    }

    /// True once the image's last TLV was read or the image was refused; later bytes are not
    /// part of the image and are ignored.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done || self.error.is_some()
    }

    /// Takes the next bytes of the slot (starting at [`StreamChecker::position`]). Fails with the
    /// image's first refusal, as soon as the bytes fed show it, and again on every later call.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), CheckError> {
        self.settle()?;
        while !data.is_empty() && self.stage != Stage::Done {
            let n = ((self.next - self.pos) as usize).min(data.len());
            let (piece, rest) = data.split_at(n);
            let hashed = (self.hash_end.saturating_sub(self.pos) as usize).min(n);
            if let Some(h) = piece.get(..hashed) {
                self.hasher.update(h);
            }
            if self.keep {
                let at = (self.pos - self.field_at) as usize;
                if let Some(dst) = self.field.get_mut(at..at + n) {
                    dst.copy_from_slice(piece);
                }
            }
            self.pos += n as u32;
            data = rest;
            self.settle()?;
        }
        Ok(())
    }

    /// The verdict on the layout, with the digest of the hashed region. Before the image was
    /// fed to its end, it is the refusal of a slot that ends where the bytes fed end.
    pub fn finish(mut self) -> Result<CheckedImage, CheckError> {
        self.settle()?;
        if self.stage != Stage::Done {
            return Err(if self.pos < IMAGE_HEADER_SIZE {
                ImageError::TruncatedHeader
            } else {
                ImageError::TlvAreaBeyondSlot {
                    end: u64::from(self.next),
                    capacity: self.pos,
                }
            });
        }
        Ok(CheckedImage {
            info: self.info,
            digest: self.hasher.finalize(),
            signature: self.signature,
            pubkey: self.pubkey,
        })
    }

    /// Takes every decision that is due at the current offset.
    fn settle(&mut self) -> Result<(), CheckError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        while self.pos == self.next && self.stage != Stage::Done {
            if let Err(e) = self.decide() {
                self.error = Some(e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reads `len` more bytes in `stage`, keeping them if `keep`.
    fn expect(&mut self, stage: Stage, len: u32, keep: bool) {
        self.stage = stage;
        self.keep = keep;
        self.field_at = self.pos;
        self.next = self.pos + len;
    }

    /// The 4 bytes kept last as two little-endian halves: an info header (magic, length) or a
    /// TLV entry header (type, length).
    fn halves(&self) -> (u16, u16) {
        let [a, b, c, d, ..] = self.field;
        (u16::from_le_bytes([a, b]), u16::from_le_bytes([c, d]))
    }

    /// The decision at the end of the current stage (`pos == next`).
    fn decide(&mut self) -> Result<(), CheckError> {
        let cap = self.capacity;
        match self.stage {
            Stage::Header => {
                let mut hb = [0u8; 32];
                hb.copy_from_slice(&self.field[..32]);
                let header = ImageHeader::decode(&hb);
                if header.magic != IMAGE_MAGIC {
                    return Err(ImageError::BadMagic(header.magic));
                }
                let header_size = u32::from(header.header_size);
                if header_size < IMAGE_HEADER_SIZE {
                    return Err(ImageError::HeaderSizeTooSmall(header.header_size));
                }
                if header_size > cap {
                    return Err(ImageError::HeaderBeyondSlot {
                        header_size: header.header_size,
                        capacity: cap,
                    });
                }
                let payload_end = u64::from(header_size) + u64::from(header.image_size);
                if payload_end > u64::from(cap) {
                    return Err(ImageError::PayloadBeyondSlot {
                        end: payload_end,
                        capacity: cap,
                    });
                }
                let payload_end = payload_end as u32; // <= cap
                                                      // No room for an info header after the payload.
                let info_end = u64::from(payload_end) + u64::from(TLV_HEADER_SIZE);
                if info_end > u64::from(cap) {
                    return Err(if header.protected_tlv_size != 0 {
                        ImageError::ProtectedTlvSizeMismatch {
                            header: header.protected_tlv_size,
                            area: 0,
                        }
                    } else {
                        ImageError::TlvAreaBeyondSlot {
                            end: info_end,
                            capacity: cap,
                        }
                    });
                }
                let info = &mut self.info;
                info.header = header;
                info.payload_offset = header_size;
                info.payload_len = header.image_size;
                self.hash_end = payload_end;
                if !self.hashing {
                    self.pos = payload_end;
                }
                self.expect(Stage::Payload, payload_end - self.pos, false);
            }
            Stage::Payload => self.expect(Stage::FirstInfo, TLV_HEADER_SIZE, true),
            Stage::FirstInfo => {
                let (magic, len) = self.halves();
                let declared = self.info.header.protected_tlv_size;
                if magic == TLV_PROT_INFO_MAGIC {
                    if len != declared {
                        return Err(ImageError::ProtectedTlvSizeMismatch {
                            header: declared,
                            area: len,
                        });
                    }
                    if self.hashing {
                        self.hasher.update(&self.field[..4]);
                    }
                    self.open_area(TlvArea::Protected, len)?;
                } else if declared != 0 {
                    return Err(ImageError::ProtectedTlvSizeMismatch {
                        header: declared,
                        area: 0,
                    });
                } else {
                    self.open_unprotected(magic, len)?;
                }
            }
            Stage::Info => {
                let (magic, len) = self.halves();
                self.open_unprotected(magic, len)?
            }
            Stage::EntryHead => {
                let (kind, len) = self.halves();
                if u32::from(len) > self.area_end - self.pos {
                    return Err(ImageError::TlvPastAreaEnd {
                        kind,
                        offset: self.field_at,
                    });
                }
                let entry = TlvEntry {
                    area: self.area,
                    kind,
                    value_offset: self.pos,
                    len,
                };
                let keep = self.record_head(entry)?;
                self.expect(Stage::Value(kind), u32::from(len), keep);
            }
            Stage::Value(kind) => {
                if self.keep {
                    self.record_value(kind)?;
                }
                self.enter_entry()?;
            }
            Stage::Done => {}
        }
        Ok(())
    }

    /// A TLV area whose info header (`len` bytes in all, with the header) was just read.
    fn open_area(&mut self, area: TlvArea, len: u16) -> Result<(), CheckError> {
        let cap = self.capacity;
        if u32::from(len) < TLV_HEADER_SIZE {
            return Err(ImageError::BadTlvAreaLength(len));
        }
        let start = self.pos - TLV_HEADER_SIZE;
        let end = u64::from(start) + u64::from(len);
        if end > u64::from(cap) {
            return Err(ImageError::TlvAreaBeyondSlot { end, capacity: cap });
        }
        self.area = area;
        self.area_end = end as u32; // <= cap
        match area {
            TlvArea::Protected => {
                self.info.protected_tlv_len = u32::from(len);
                if self.hashing {
                    self.hash_end = self.area_end;
                }
            }
            TlvArea::Unprotected => {
                self.info.tlv_offset = start;
                self.info.tlv_len = u32::from(len);
            }
        }
        self.enter_entry()
    }

    fn open_unprotected(&mut self, magic: u16, len: u16) -> Result<(), CheckError> {
        if magic != TLV_INFO_MAGIC {
            return Err(ImageError::BadTlvInfoMagic(magic));
        }
        self.open_area(TlvArea::Unprotected, len)
    }

    /// At the next entry of the current area, or at its end.
    fn enter_entry(&mut self) -> Result<(), CheckError> {
        let off = self.pos;
        if off >= self.area_end {
            if self.area == TlvArea::Unprotected {
                self.info.total_len = self.area_end;
                self.stage = Stage::Done;
                return Ok(());
            }
            let info_end = u64::from(off) + u64::from(TLV_HEADER_SIZE);
            if info_end > u64::from(self.capacity) {
                return Err(ImageError::TlvAreaBeyondSlot {
                    end: info_end,
                    capacity: self.capacity,
                });
            }
            self.expect(Stage::Info, TLV_HEADER_SIZE, true);
        } else if self.area_end - off < TLV_HEADER_SIZE {
            return Err(ImageError::TlvPastAreaEnd {
                kind: 0,
                offset: off,
            });
        } else {
            self.expect(Stage::EntryHead, TLV_HEADER_SIZE, true);
        }
        Ok(())
    }

    /// Lists the entry and checks what its header alone shows; `true` if its value is kept.
    fn record_head(&mut self, e: TlvEntry) -> Result<bool, CheckError> {
        let info = &mut self.info;
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
        Ok(match e.kind {
            tlv::SHA256 | tlv::KEYHASH | tlv::SEC_CNT => true,
            tlv::PUBKEY => {
                if e.len == 0 || usize::from(e.len) > SPKI_DER_LEN * 2 {
                    return Err(bad_len);
                }
                if info.pubkey.replace(e).is_some() {
                    return Err(dup);
                }
                usize::from(e.len) == SPKI_DER_LEN
            }
            tlv::ECDSA_SIG => {
                if e.len < 8 || usize::from(e.len) > MAX_DER_SIGNATURE_LEN {
                    return Err(bad_len);
                }
                if info.signature.replace(e).is_some() {
                    return Err(dup);
                }
                true
            }
            _ => false,
        })
    }

    /// Keeps the value of a TLV the verdict needs (its length was checked by `record_head`).
    fn record_value(&mut self, kind: u16) -> Result<(), CheckError> {
        let dup = ImageError::DuplicateTlv(kind);
        let info = &mut self.info;
        let [v0, v1, v2, v3, ..] = self.field;
        match kind {
            tlv::SHA256 | tlv::KEYHASH => {
                let slot = if kind == tlv::SHA256 {
                    &mut info.hash
                } else {
                    &mut info.key_hash
                };
                let mut v = [0u8; 32];
                v.copy_from_slice(&self.field[..32]);
                if slot.replace(v).is_some() {
                    return Err(dup);
                }
            }
            tlv::SEC_CNT => {
                let v = u32::from_le_bytes([v0, v1, v2, v3]);
                if info.security_counter.replace(v).is_some() {
                    return Err(dup);
                }
            }
            tlv::ECDSA_SIG => {
                // Bytes past the value's length are ignored (the DER length bounds it).
                let mut sig = [0u8; MAX_DER_SIGNATURE_LEN];
                sig.copy_from_slice(&self.field[..MAX_DER_SIGNATURE_LEN]);
                self.signature = sig;
            }
            tlv::PUBKEY => self.pubkey = Some(self.field),
            _ => {}
        }
        Ok(())
    }
}

/// An image whose layout checked out, with the digest of its hashed region: the input of the
/// verdict.
#[derive(Clone, Debug)]
pub struct CheckedImage {
    info: ImageInfo,
    digest: [u8; 32],
    signature: [u8; MAX_DER_SIGNATURE_LEN],
    pubkey: Option<[u8; SPKI_DER_LEN]>,
}

impl CheckedImage {
    /// Where everything is, and the TLV values.
    pub fn info(&self) -> &ImageInfo {
        &self.info
    }

    /// The layout, dropping the rest.
    pub fn into_info(self) -> ImageInfo {
        self.info
    }

    /// SHA-256 over the hashed region as fed (header, payload, protected TLV area).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Integrity only: the image has a SHA256 TLV and the hashed region hashes to it.
    pub fn check_hash(&self) -> Result<[u8; 32], CheckError> {
        let expected = self.info.hash.ok_or(ImageError::MissingHash)?;
        if expected != self.digest {
            return Err(ImageError::HashMismatch);
        }
        Ok(expected)
    }

    /// The full verdict against the trusted `key` and `policy`.
    ///
    /// Order: flags, policy (payload size, load address, security counter), SHA256 and
    /// signature TLVs present, key identity (KEYHASH or PUBKEY), hash, signature.
    pub fn verify<V: SignatureVerifier>(
        &self,
        key: &PublicKey,
        verifier: &V,
        policy: &VerifyPolicy,
    ) -> Result<VerifiedImage, CheckError> {
        self.verify_accepting(key, verifier, policy, 0)
    }

    /// [`CheckedImage::verify`] of a compressed image's outer image as received: its header may
    /// name the compression (`flags::COMPRESSED_DECODED`); the signature covers the compressed
    /// image. Its payload is not decoded here: a device decodes it afterwards and checks the
    /// result against the signed DECOMP_SHA.
    pub fn verify_compressed_outer<V: SignatureVerifier>(
        &self,
        key: &PublicKey,
        verifier: &V,
        policy: &VerifyPolicy,
    ) -> Result<VerifiedImage, CheckError> {
        self.verify_accepting(key, verifier, policy, crate::flags::COMPRESSED_DECODED)
    }

    /// [`CheckedImage::verify`], accepting the header flags in `accept` besides the supported
    /// ones (the compressed-image check accepts the compression flags and checks the payload
    /// itself).
    pub(crate) fn verify_accepting<V: SignatureVerifier>(
        &self,
        key: &PublicKey,
        verifier: &V,
        policy: &VerifyPolicy,
        accept: u32,
    ) -> Result<VerifiedImage, CheckError> {
        let info = &self.info;
        let header = info.header;
        info.check_policy(policy, accept)?;

        info.hash.ok_or(ImageError::MissingHash)?;
        let sig_tlv = info.signature.ok_or(ImageError::MissingSignature)?;
        match (info.key_hash, info.pubkey) {
            (None, None) => return Err(ImageError::MissingKeyId),
            (Some(kh), _) if kh != key.key_hash() => return Err(ImageError::KeyMismatch),
            (_, Some(_)) if self.pubkey != Some(key.spki_der()) => {
                return Err(ImageError::KeyMismatch)
            }
            _ => {}
        }
        let hash = self.check_hash()?;

        // The length was checked by the walk.
        let der = &self.signature[..usize::from(sig_tlv.len).min(MAX_DER_SIGNATURE_LEN)];
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
}
