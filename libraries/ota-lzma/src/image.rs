//! The compressed-image kind of the reconstruction step (`ota_reconstruct::Decoder`): the
//! received stream is a compressed image as imgtool writes it (`--compression lzma2|
//! lzma2armthumb`), the output is the plain signed image imgtool would have written without
//! compression, which today's finalize and the unchanged bootloader then verify and install.
//!
//! The plain image is the outer one with the compression flags cleared, `img_size` =
//! DECOMP_SIZE and `protect_tlv_size` shrunk by the DECOMP_* entries (0 when none is left); the
//! same header padding; the decoded payload; the protected TLVs other than DECOMP_* in their
//! order; then the unprotected TLVs in their order with the SHA256 value replaced by DECOMP_SHA and
//! the signature by DECOMP_SIGNATURE (KEYHASH or PUBKEY as they are). Its header needs DECOMP_SIZE
//! and the protected TLV sizes, which the stream carries after the payload: so before any output
//! the decoder reads the stream's TLV tail (a few hundred bytes) with `Demand::Read` of
//! `Area::Stream`, then takes the stream front to back. It hashes the plain image's hashed region
//! as it produces it and refuses (`Error::OutputHash`) before writing the unprotected TLVs if the
//! hash is not DECOMP_SHA, which the outer signature covers; the plain signature itself is checked
//! by the finalize that follows, as for any staged image.
//!
//! The outer image's own hash and signature are checked before this step runs, by whoever
//! received it (the DFU app, against the update key, before it begins the staging slot:
//! docs/delta-updates.md); the plain image's signature (DECOMP_SIGNATURE) is checked by the
//! bootloader before it installs, as for any image.
use ota_image::{flags, tlv, ImageHeader, Sha256, IMAGE_HEADER_SIZE, IMAGE_MAGIC};
use ota_image::{TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC};
use ota_reconstruct::{Area, Decoder as StreamDecoder, Demand, Error, Plan, Progress, CHUNK};

use crate::{Decoder, Filter, Op, READ_MAX};

/// The largest TLV tail (protected + unprotected areas) accepted.
pub const TAIL_MAX: usize = 512;

/// Window and block of the LZMA decoder here: 4 KiB of newest output, 256-byte blocks (the
/// reconstruction's page), about 33 KiB of RAM in all with the model.
pub type ImageLzma = Decoder<4096, 256>;

// `repr(u8)` here and on `Asked`: the first variant's tag is 0, as `CompressedImage::EMPTY`
// (all zero) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Taking the 32-byte outer header from the input.
    Head,
    /// Reading the TLV tail from the stream; `want` bytes in all so far known to be needed.
    Tail {
        want: usize,
    },
    /// The plan is out; emitting the plain header and copying the padding (`at` bytes done).
    Prefix {
        at: u32,
    },
    /// Decoding the payload.
    Payload,
    /// Consuming the outer TLV tail from the input (`left` bytes).
    SkipTail {
        left: u32,
    },
    /// Emitting the plain TLVs (`at` bytes done).
    Trailer {
        at: usize,
    },
    Finished,
}

/// What the last `Demand::Read` asked, if it is outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Asked {
    Nothing,
    /// Area, offset, length.
    Read(Area, u32, usize),
}

/// A compressed image as a reconstruction kind. About 34 KiB; give it static storage on a device
/// ([`EMPTY`](Self::EMPTY), all zero bytes: a `static` of it lies in `.bss`).
pub struct CompressedImage {
    phase: Phase,
    max_payload: u32,
    /// The outer header as received.
    head: [u8; 32],
    head_len: usize,
    /// The payload's 2-byte LZMA2 header, `lz_head` bytes of it taken.
    lz: [u8; 2],
    lz_head: usize,
    header_size: u16,
    image_size: u32,
    protected_tlv_size: u16,
    filter: Filter,
    /// The outer TLV tail as read from the stream.
    tail: [u8; TAIL_MAX],
    tail_len: usize,
    /// The plain image's TLVs: protected area (`hashed_tlvs` bytes), then the unprotected one.
    trailer: [u8; TAIL_MAX],
    trailer_len: usize,
    hashed_tlvs: usize,
    decomp_size: u32,
    decomp_sha: [u8; 32],
    plain_header: [u8; 32],
    payload_left: u32,
    lzma: ImageLzma,
    lz_started: bool,
    /// Bytes of the LZMA decoder's outstanding write already handed out.
    block_at: usize,
    /// A read-back for the LZMA decoder being gathered.
    read_buf: [u8; READ_MAX],
    read_got: usize,
    /// What the last `Demand::Read` asked.
    asked: Asked,
    /// The plain image's hash so far; `None` (the zero state) until the first hashed byte.
    hash: Option<Sha256>,
}

impl CompressedImage {
    /// A decoder that refuses a DECOMP_SIZE over `max_payload` before producing anything. A
    /// constant expression.
    pub const fn new(max_payload: u32) -> Self {
        CompressedImage {
            max_payload,
            ..Self::EMPTY
        }
    }

    /// A decoder whose every byte is zero: on a device, keep one in a `static` (it lands in
    /// `.bss`, so its 34 KiB cost RAM but no flash for an initial image, and never pass through
    /// the stack), [`restart`](Self::restart) it with the room for the output before each
    /// stream and hand `&mut` of it to `Rebuild::new`. Not restarted, it refuses any payload
    /// (its room is 0 bytes).
    pub const EMPTY: Self = CompressedImage {
        phase: Phase::Head,
        max_payload: 0,
        head: [0; 32],
        head_len: 0,
        lz: [0; 2],
        lz_head: 0,
        header_size: 0,
        image_size: 0,
        protected_tlv_size: 0,
        filter: Filter::None,
        tail: [0; TAIL_MAX],
        tail_len: 0,
        trailer: [0; TAIL_MAX],
        trailer_len: 0,
        hashed_tlvs: 0,
        decomp_size: 0,
        decomp_sha: [0; 32],
        plain_header: [0; 32],
        payload_left: 0,
        lzma: ImageLzma::IDLE,
        lz_started: false,
        block_at: 0,
        read_buf: [0; READ_MAX],
        read_got: 0,
        asked: Asked::Nothing,
        hash: None,
    };

    /// Ready for a new stream, in place.
    pub fn restart(&mut self, max_payload: u32) {
        self.phase = Phase::Head;
        self.max_payload = max_payload;
        self.head_len = 0;
        self.lz_head = 0;
        self.tail_len = 0;
        self.trailer_len = 0;
        self.hashed_tlvs = 0;
        self.lz_started = false;
        self.block_at = 0;
        self.read_got = 0;
        self.asked = Asked::Nothing;
        self.hash = None;
    }

    fn tail_start(&self) -> u32 {
        u32::from(self.header_size) + self.image_size
    }

    fn ask(&mut self, area: Area, offset: u32, len: usize) -> Demand {
        let len = len.min(CHUNK);
        self.asked = Asked::Read(area, offset, len);
        Demand::Read { area, offset, len }
    }

    /// Checks the outer header and starts reading the tail.
    fn take_header(&mut self) -> Result<Demand, Error> {
        let h = ImageHeader::decode(&self.head);
        if h.magic != IMAGE_MAGIC {
            return Err(Error::BadMagic);
        }
        self.filter = match h.flags & flags::COMPRESSED {
            flags::COMPRESSED_LZMA2 => Filter::None,
            x if x == flags::COMPRESSED_LZMA2 | flags::COMPRESSED_ARM_THUMB => Filter::ArmThumb,
            _ => return Err(Error::Unsupported),
        };
        if u32::from(h.header_size) < IMAGE_HEADER_SIZE || h.image_size < 2 {
            return Err(Error::Corrupt("compressed image header"));
        }
        // The protected area and the unprotected area's 4-byte info header.
        let want = usize::from(h.protected_tlv_size) + 4;
        if want > TAIL_MAX || h.image_size.checked_add(u32::from(h.header_size)).is_none() {
            return Err(Error::Corrupt("compressed image TLV area"));
        }
        self.header_size = h.header_size;
        self.image_size = h.image_size;
        self.protected_tlv_size = h.protected_tlv_size;
        self.phase = Phase::Tail { want };
        Ok(self.ask(Area::Stream, self.tail_start(), want))
    }

    /// The tail is in: builds the plain header and TLVs and says the plan.
    fn take_tail(&mut self) -> Result<Demand, Error> {
        let prot_len = usize::from(self.protected_tlv_size);
        let tail = &self.tail[..self.tail_len];
        let u16_at = |o: usize| u16::from_le_bytes([tail[o], tail[o + 1]]);
        let bad = Error::Corrupt("compressed image TLV area");
        let (mut size, mut sha, mut sig) = (None, None, None);
        // Protected area: keep what is not DECOMP_*.
        let mut t = 4; // room for the plain protected info header
        if prot_len != 0 {
            if prot_len < 4
                || u16_at(0) != TLV_PROT_INFO_MAGIC
                || usize::from(u16_at(2)) != prot_len
            {
                return Err(bad);
            }
            let mut o = 4;
            while o < prot_len {
                let (kind, len) = entry(tail, o, prot_len).ok_or(bad)?;
                let value = &tail[o + 4..o + 4 + len];
                match kind {
                    tlv::DECOMP_SIZE => {
                        size = Some(u32::from_le_bytes(value.try_into().map_err(|_| bad)?))
                    }
                    tlv::DECOMP_SHA => sha = Some(<[u8; 32]>::try_from(value).map_err(|_| bad)?),
                    tlv::DECOMP_SIGNATURE => sig = Some((o + 4, len)),
                    _ => {
                        self.trailer[t..t + 4 + len].copy_from_slice(&tail[o..o + 4 + len]);
                        t += 4 + len;
                    }
                }
                o += 4 + len;
            }
        }
        let size = size.ok_or(Error::Corrupt("no DECOMP_SIZE"))?;
        let sha = sha.ok_or(Error::Corrupt("no DECOMP_SHA"))?;
        let (sig_at, sig_len) = sig.ok_or(Error::Corrupt("no DECOMP_SIGNATURE"))?;
        let plain_prot = if t == 4 { 0 } else { t };
        if plain_prot == 0 {
            t = 0;
        } else {
            self.trailer[0..2].copy_from_slice(&TLV_PROT_INFO_MAGIC.to_le_bytes());
            self.trailer[2..4].copy_from_slice(&(t as u16).to_le_bytes());
        }
        self.hashed_tlvs = t;
        // Unprotected area: the same entries, SHA256 and signature replaced.
        let un = prot_len;
        if u16_at(un) != TLV_INFO_MAGIC {
            return Err(bad);
        }
        let un_end = un + usize::from(u16_at(un + 2));
        if un_end > tail.len() {
            return Err(bad);
        }
        let info_at = t;
        t += 4;
        let mut o = un + 4;
        while o < un_end {
            let (kind, len) = entry(tail, o, un_end).ok_or(bad)?;
            let value: &[u8] = match kind {
                tlv::SHA256 => &sha,
                tlv::ECDSA_SIG => &tail[sig_at..sig_at + sig_len],
                _ => &tail[o + 4..o + 4 + len],
            };
            if t + 4 + value.len() > TAIL_MAX {
                return Err(bad);
            }
            self.trailer[t..t + 2].copy_from_slice(&kind.to_le_bytes());
            self.trailer[t + 2..t + 4].copy_from_slice(&(value.len() as u16).to_le_bytes());
            self.trailer[t + 4..t + 4 + value.len()].copy_from_slice(value);
            t += 4 + value.len();
            o += 4 + len;
        }
        let un_len = (t - info_at) as u16;
        self.trailer[info_at..info_at + 2].copy_from_slice(&TLV_INFO_MAGIC.to_le_bytes());
        self.trailer[info_at + 2..info_at + 4].copy_from_slice(&un_len.to_le_bytes());
        self.trailer_len = t;
        self.tail_len = un_end;

        if size > self.max_payload {
            return Err(Error::OutputTooLong {
                len: size,
                max: self.max_payload,
            });
        }
        self.decomp_size = size;
        self.decomp_sha = sha;
        let outer = ImageHeader::decode(&self.head);
        let plain = ImageHeader {
            flags: outer.flags & !flags::COMPRESSED,
            image_size: size,
            protected_tlv_size: plain_prot as u16,
            ..outer
        };
        self.plain_header = plain.encode();
        self.payload_left = self.image_size;
        let output_len = u32::from(self.header_size)
            .checked_add(size)
            .and_then(|n| n.checked_add(t as u32))
            .ok_or(Error::OutputTooLong {
                len: u32::MAX,
                max: self.max_payload,
            })?;
        self.phase = Phase::Prefix { at: 0 };
        Ok(Demand::Header(Plan {
            output_len,
            output_sha256: None,
            base: None,
        }))
    }

    fn emit(&mut self, bytes: &[u8], out: &mut [u8], produced: &mut usize, hashed: bool) {
        out[*produced..*produced + bytes.len()].copy_from_slice(bytes);
        if hashed {
            self.hash.get_or_insert_with(Sha256::new).update(bytes);
        }
        *produced += bytes.len();
    }

    fn decode_inner(
        &mut self,
        input: &[u8],
        out: &mut [u8],
        consumed: &mut usize,
        produced: &mut usize,
    ) -> Result<Demand, Error> {
        loop {
            match self.phase {
                Phase::Head => {
                    let n = (32 - self.head_len).min(input.len() - *consumed);
                    self.head[self.head_len..self.head_len + n]
                        .copy_from_slice(&input[*consumed..*consumed + n]);
                    self.head_len += n;
                    *consumed += n;
                    if self.head_len < 32 {
                        return Ok(Demand::Input);
                    }
                    return self.take_header();
                }
                Phase::Tail { .. } => return self.take_tail(),
                Phase::Prefix { at } => {
                    let header_size = u32::from(self.header_size);
                    if at == header_size {
                        self.phase = Phase::Payload;
                        continue;
                    }
                    if *produced == out.len() {
                        return Ok(Demand::OutputFull);
                    }
                    if at < 32 {
                        let n = ((32 - at) as usize).min(out.len() - *produced);
                        let h = self.plain_header;
                        self.emit(&h[at as usize..at as usize + n], out, produced, true);
                        self.phase = Phase::Prefix { at: at + n as u32 };
                        continue;
                    }
                    // Padding: as received.
                    let n = ((header_size - at) as usize)
                        .min(out.len() - *produced)
                        .min(input.len() - *consumed);
                    if n == 0 {
                        return Ok(Demand::Input);
                    }
                    let bytes = &input[*consumed..*consumed + n];
                    out[*produced..*produced + n].copy_from_slice(bytes);
                    self.hash.get_or_insert_with(Sha256::new).update(bytes);
                    *produced += n;
                    *consumed += n;
                    self.phase = Phase::Prefix { at: at + n as u32 };
                }
                Phase::Payload => {
                    if let Some(d) = self.payload(input, out, consumed, produced)? {
                        return Ok(d);
                    }
                }
                Phase::SkipTail { left } => {
                    let n = (left as usize).min(input.len() - *consumed);
                    *consumed += n;
                    let left = left - n as u32;
                    self.phase = Phase::SkipTail { left };
                    if left > 0 {
                        return Ok(Demand::Input);
                    }
                    if self.hashed_tlvs == 0 {
                        self.check_hash()?;
                    }
                    self.phase = Phase::Trailer { at: 0 };
                }
                Phase::Trailer { at } => {
                    if at == self.trailer_len {
                        self.phase = Phase::Finished;
                        continue;
                    }
                    if *produced == out.len() {
                        return Ok(Demand::OutputFull);
                    }
                    // The hashed TLVs, then (once the hash is right) the rest.
                    let end = if at < self.hashed_tlvs {
                        self.hashed_tlvs
                    } else {
                        self.trailer_len
                    };
                    let n = (end - at).min(out.len() - *produced);
                    let bytes = self.trailer;
                    let hashed = at < self.hashed_tlvs;
                    self.emit(&bytes[at..at + n], out, produced, hashed);
                    if at + n == self.hashed_tlvs {
                        self.check_hash()?;
                    }
                    self.phase = Phase::Trailer { at: at + n };
                }
                Phase::Finished => return Ok(Demand::Finished),
            }
        }
    }

    fn check_hash(&mut self) -> Result<(), Error> {
        let digest = self.hash.take().unwrap_or_default().finalize();
        if digest != self.decomp_sha {
            return Err(Error::OutputHash);
        }
        Ok(())
    }

    /// One step of payload decoding; `None` to go on.
    fn payload(
        &mut self,
        input: &[u8],
        out: &mut [u8],
        consumed: &mut usize,
        produced: &mut usize,
    ) -> Result<Option<Demand>, Error> {
        let header_size = u32::from(self.header_size);
        if !self.lz_started {
            // The payload's first 2 bytes are imgtool's LZMA2 header.
            while self.lz_head < 2 && *consumed < input.len() {
                self.lz[self.lz_head] = input[*consumed];
                self.lz_head += 1;
                *consumed += 1;
                self.payload_left -= 1;
            }
            if self.lz_head < 2 {
                return Ok(Some(Demand::Input));
            }
            self.lzma
                .start(self.lz, self.filter, self.decomp_size, self.max_payload)
                .map_err(lzma_error)?;
            self.lz_started = true;
        }
        let lzma = &mut self.lzma;
        match lzma.poll().map_err(lzma_error)? {
            Op::NeedInput => {
                if self.payload_left == 0 {
                    lzma.finish_input();
                    return Ok(None);
                }
                let avail = (input.len() - *consumed).min(self.payload_left as usize);
                if avail == 0 {
                    return Ok(Some(Demand::Input));
                }
                let n = lzma.push_input(&input[*consumed..*consumed + avail]);
                *consumed += n;
                self.payload_left -= n as u32;
                Ok(None)
            }
            Op::Write { data, .. } => {
                let n = (data.len() - self.block_at).min(out.len() - *produced);
                if n == 0 {
                    return Ok(Some(Demand::OutputFull));
                }
                let bytes = &data[self.block_at..self.block_at + n];
                out[*produced..*produced + n].copy_from_slice(bytes);
                self.hash.get_or_insert_with(Sha256::new).update(bytes);
                *produced += n;
                self.block_at += n;
                if self.block_at == data.len() {
                    self.block_at = 0;
                    lzma.write_done().map_err(lzma_error)?;
                }
                Ok(None)
            }
            Op::Read { offset, len } => {
                let at = header_size + offset + self.read_got as u32;
                Ok(Some(self.ask(Area::Output, at, len - self.read_got)))
            }
            Op::Done { .. } => {
                // Any payload bytes the stream has beyond its end byte are an error in the decoder.
                if self.payload_left != 0 {
                    return Err(Error::TrailingData);
                }
                self.phase = Phase::SkipTail {
                    left: self.tail_len as u32,
                };
                Ok(None)
            }
        }
    }
}

/// Length of the TLV entry at `o` (its kind and value length), if it lies before `end`.
fn entry(area: &[u8], o: usize, end: usize) -> Option<(u16, usize)> {
    if o + 4 > end {
        return None;
    }
    let kind = u16::from_le_bytes([area[o], area[o + 1]]);
    let len = usize::from(u16::from_le_bytes([area[o + 2], area[o + 3]]));
    (o + 4 + len <= end).then_some((kind, len))
}

/// The reconstruction's name for what went wrong in the payload.
fn lzma_error(e: crate::Error) -> Error {
    use crate::Error as E;
    match e {
        E::Truncated => Error::Truncated,
        E::TrailingData => Error::TrailingData,
        E::DeclaredSizeTooLarge { len, capacity } => Error::OutputTooLong { len, max: capacity },
        E::OutputTooLong { .. } | E::OutputTooShort { .. } => {
            Error::Corrupt("compressed payload length")
        }
        E::DistanceTooFar { .. } => Error::Corrupt("LZMA2 match distance"),
        E::ReadLength { .. } | E::UnexpectedCompletion => Error::Decoder,
        E::BadHeader(_) => Error::Corrupt("LZMA2 header"),
        _ => Error::Corrupt("LZMA2 stream"),
    }
}

impl StreamDecoder for CompressedImage {
    fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Progress, Error> {
        if let Asked::Read(area, offset, len) = self.asked {
            // Asked again by `provide` (the rest of a read); nothing else happens meanwhile.
            return Ok(Progress {
                consumed: 0,
                produced: 0,
                demand: Demand::Read { area, offset, len },
            });
        }
        let (mut consumed, mut produced) = (0, 0);
        let demand = self.decode_inner(input, out, &mut consumed, &mut produced)?;
        Ok(Progress {
            consumed,
            produced,
            demand,
        })
    }

    fn provide(&mut self, data: &[u8]) -> Result<(), Error> {
        let Asked::Read(area, _, len) = core::mem::replace(&mut self.asked, Asked::Nothing) else {
            return Err(Error::Decoder);
        };
        if data.is_empty() || data.len() > len {
            return Err(Error::Decoder);
        }
        match (area, self.phase) {
            (Area::Stream, Phase::Tail { want }) => {
                self.tail[self.tail_len..self.tail_len + data.len()].copy_from_slice(data);
                self.tail_len += data.len();
                let start = self.tail_start();
                if self.tail_len < want {
                    let (off, left) = (start + self.tail_len as u32, want - self.tail_len);
                    self.ask(Area::Stream, off, left);
                    return Ok(());
                }
                // The unprotected area's length is known once its info header is in.
                let un = usize::from(self.protected_tlv_size);
                let full =
                    un + usize::from(u16::from_le_bytes([self.tail[un + 2], self.tail[un + 3]]));
                if full > TAIL_MAX || full < un + 4 {
                    return Err(Error::Corrupt("compressed image TLV area"));
                }
                if self.tail_len < full {
                    self.phase = Phase::Tail { want: full };
                    let (off, left) = (start + self.tail_len as u32, full - self.tail_len);
                    self.ask(Area::Stream, off, left);
                }
                Ok(())
            }
            (Area::Output, Phase::Payload) if self.lz_started => {
                let lzma = &mut self.lzma;
                self.read_buf[self.read_got..self.read_got + data.len()].copy_from_slice(data);
                self.read_got += data.len();
                let Ok(Op::Read { len: want, .. }) = lzma.poll() else {
                    return Err(Error::Decoder);
                };
                if self.read_got == want {
                    self.read_got = 0;
                    lzma.read_done(&self.read_buf[..want]).map_err(lzma_error)?;
                }
                Ok(())
            }
            _ => Err(Error::Decoder),
        }
    }
}

/// The same decoder borrowed, so that a `Rebuild` over a `static` one stays small.
impl StreamDecoder for &mut CompressedImage {
    fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Progress, Error> {
        (**self).decode(input, out)
    }

    fn provide(&mut self, data: &[u8]) -> Result<(), Error> {
        (**self).provide(data)
    }
}
