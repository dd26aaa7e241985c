//! A decoder for the payload of compressed images (MCUboot's format, imgtool `--compression
//! lzma2|lzma2armthumb`): imgtool's 2-byte header, a raw LZMA2 stream, and for `lzma2armthumb`
//! the ARM-Thumb BCJ filter undone on the way out.
//!
//! # Why our own decoder
//!
//! The crates.io decoders (`lzma-rust2`, `lzma-rs`, xz's C code) keep the whole dictionary in RAM:
//! imgtool writes a 128 KiB dictionary, and with the decoder state that is 168–232 KiB of the
//! nRF52840's 256 KiB. This decoder keeps only the probability model (28 KiB for any `lc + lp <=
//! 4`) and a small window of the newest output (`W` bytes) in RAM; a match that reaches further back
//! is served from the output already written to flash. The decoder never touches flash itself: it
//! is sans-IO and asks its caller to do the work, one operation at a time:
//!
//! - [`Op::NeedInput`]: give it more of the compressed stream ([`Decoder::push_input`]), or say that
//!   there is no more ([`Decoder::finish_input`]);
//! - [`Op::Write`]: write this block of output at this offset, then [`Decoder::write_done`];
//! - [`Op::Read`]: read back output bytes `[offset, offset + len)` already written, then
//!   [`Decoder::read_done`] with them;
//! - [`Op::Done`]: the stream decoded to exactly the declared length and all of it was written.
//!
//! Input may be pushed at any moment, in pieces of any size, also while an operation is
//! outstanding; [`Decoder::poll`] returns the outstanding operation again until it is completed.
//! All state lives in the [`Decoder`] value, so decoding pauses and resumes at any point (between
//! any two calls). Output offsets start at 0 (the first payload byte); the caller adds where the
//! payload lives in its slot.
//!
//! The dictionary holds the *filtered* bytes (what LZMA2 coded) while flash receives the plain
//! ones; for `lzma2armthumb` a read-back is widened by up to 3 bytes on each side and filtered again
//! (the filter is local, see `bcj.rs`), and an output block is written only once the 3 bytes after
//! it are known.
//!
//! Every malformed, truncated or overlong stream ends in an [`Error`]; no input makes it panic or
//! loop without asking for input or an operation.
#![no_std]
#![forbid(unsafe_code)]

mod bcj;
pub mod image;
mod lzma;

use core::fmt;

use lzma::{LzmaState, Probs, RangeDecoder};

/// The longest LZMA match.
pub const MATCH_LEN_MAX: usize = 273;
/// The most input bytes one LZMA symbol can take (xz's bound: 21 normalizations at most).
const SYMBOL_INPUT_MAX: u32 = 21;
/// Input buffer: a chunk header (6 bytes) and a symbol's worth of input always fit.
const IN_BUF: usize = 256;
/// A read-back: a whole match, the next literal's match byte, and 3 bytes of filter context each side.
pub(crate) const READ_MAX: usize = MATCH_LEN_MAX + 1 + 6;
/// Output bytes held back after a block before it is written (a BCJ pair may straddle its end).
const BCJ_LAG: u32 = 3;
/// Uncompressed LZMA2 chunk bytes copied per step (bounds how far output runs ahead of writes).
const COPY_STEP: u32 = MATCH_LEN_MAX as u32;
/// How far output can run ahead of the written blocks, plus the filter context of a flush.
const WINDOW_SLACK: usize = MATCH_LEN_MAX + BCJ_LAG as usize + 2;

/// The filter imgtool applied before compressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `--compression lzma2`.
    None,
    /// `--compression lzma2armthumb`: ARM-Thumb BCJ, start offset 0.
    ArmThumb,
}

/// imgtool's 2-byte header in front of the LZMA2 stream: the dictionary-size code and the LZMA
/// properties byte `(pb * 5 + lp) * 9 + lc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The dictionary size the encoder used (the decoder does not need it in RAM).
    pub dict_size: u32,
    pub lc: u8,
    pub lp: u8,
    pub pb: u8,
}

/// The largest dictionary accepted (the host check in ota-image refuses larger ones too).
pub const MAX_DICT_SIZE: u32 = 1 << 20;

impl Header {
    /// Parses and checks the 2 header bytes: a dictionary code up to [`MAX_DICT_SIZE`], and
    /// properties LZMA2 allows (`lc + lp <= 4`, `pb <= 4`).
    pub fn parse(bytes: [u8; 2]) -> Result<Self, Error> {
        let [code, props] = bytes;
        let (lc, lp, pb) = split_props(props).ok_or(Error::BadHeader(bytes))?;
        if code > 40 {
            return Err(Error::BadHeader(bytes));
        }
        let dict = u64::from(2 | (code & 1)) << (code / 2 + 11);
        if dict > u64::from(MAX_DICT_SIZE) {
            return Err(Error::BadHeader(bytes));
        }
        Ok(Header {
            dict_size: dict as u32,
            lc,
            lp,
            pb,
        })
    }
}

/// `lc`, `lp`, `pb` of an LZMA properties byte, if LZMA2 allows them.
fn split_props(props: u8) -> Option<(u8, u8, u8)> {
    let (lc, lp, pb) = (props % 9, props / 9 % 5, props / 45);
    (props < 225 && lc + lp <= 4 && pb <= 4).then_some((lc, lp, pb))
}

/// Why decoding stopped. Each is final: [`Decoder::poll`] keeps returning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The 2-byte header names a dictionary over [`MAX_DICT_SIZE`] or impossible properties.
    BadHeader([u8; 2]),
    /// The declared output length (DECOMP_SIZE) exceeds the room the caller has for it.
    DeclaredSizeTooLarge { len: u32, capacity: u32 },
    /// An LZMA2 control byte that does not exist (0x03..=0x7F).
    BadControl(u8),
    /// The first chunk does not reset the dictionary.
    MissingDictionaryReset,
    /// An LZMA chunk without properties where they are needed (first LZMA chunk after a reset).
    MissingProperties,
    /// A chunk's properties byte is invalid for LZMA2.
    BadProperties(u8),
    /// The range coder's data is inconsistent (nonzero first byte, a chunk that does not end
    /// where its compressed size says, or reads past it).
    CorruptChunk,
    /// A match reaches back before the start of the dictionary.
    DistanceTooFar { distance: u32, available: u32 },
    /// An end-of-payload marker inside an LZMA2 chunk (LZMA2 never writes one).
    EndMarker,
    /// A match runs past the end of its chunk.
    MatchPastChunk,
    /// The stream holds more output than the declared length.
    OutputTooLong { declared: u32 },
    /// The stream ended after `actual` of the declared output bytes.
    OutputTooShort { declared: u32, actual: u32 },
    /// The input ended before the stream's end byte.
    Truncated,
    /// Bytes follow the stream's end byte.
    TrailingData,
    /// A read-back completed with a different number of bytes than asked.
    ReadLength { expected: usize, got: usize },
    /// A completion that matches no outstanding operation.
    UnexpectedCompletion,
    /// [`Decoder::IDLE`] was never [`start`](Decoder::start)ed.
    NotStarted,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            BadHeader(h) => write!(
                f,
                "bad LZMA2 header {:02x} {:02x} (dictionary code, properties)",
                h[0], h[1]
            ),
            DeclaredSizeTooLarge { len, capacity } => write!(
                f,
                "declared decompressed size {len} bytes exceeds the room for it ({capacity})"
            ),
            BadControl(c) => write!(f, "invalid LZMA2 control byte {c:#04x}"),
            MissingDictionaryReset => {
                write!(f, "LZMA2 stream does not start with a dictionary reset")
            }
            MissingProperties => write!(f, "LZMA2 chunk lacks the properties it needs"),
            BadProperties(p) => write!(f, "invalid LZMA properties byte {p:#04x}"),
            CorruptChunk => write!(f, "corrupt LZMA2 chunk (range coder data inconsistent)"),
            DistanceTooFar {
                distance,
                available,
            } => write!(
                f,
                "match distance {distance} reaches before the dictionary ({available} bytes)"
            ),
            EndMarker => write!(f, "end marker inside an LZMA2 chunk"),
            MatchPastChunk => write!(f, "match runs past the end of its LZMA2 chunk"),
            OutputTooLong { declared } => {
                write!(
                    f,
                    "stream decodes to more than the declared {declared} bytes"
                )
            }
            OutputTooShort { declared, actual } => write!(
                f,
                "stream decodes to {actual} bytes but {declared} are declared"
            ),
            Truncated => write!(f, "compressed stream truncated"),
            TrailingData => write!(f, "bytes after the end of the compressed stream"),
            ReadLength { expected, got } => {
                write!(f, "read-back returned {got} bytes, {expected} asked")
            }
            UnexpectedCompletion => write!(f, "completion without an outstanding operation"),
            NotStarted => write!(f, "decoder not started"),
        }
    }
}

/// What the decoder needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// More compressed input ([`Decoder::push_input`]) or [`Decoder::finish_input`].
    NeedInput,
    /// Write `data` at output `offset`, then [`Decoder::write_done`].
    Write { offset: u32, data: &'a [u8] },
    /// Read output bytes `[offset, offset + len)` (all written before), then [`Decoder::read_done`].
    Read { offset: u32, len: usize },
    /// All `len` declared bytes are decoded and written; the stream ended where it should.
    Done { len: u32 },
}

/// Counters for the figures: how much the decoder read back and wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub reads: u32,
    pub bytes_read: u32,
    pub writes: u32,
    pub bytes_written: u32,
}

// `repr(u8)`: the first variant's tag is 0, as `Decoder::IDLE` (all zero) needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Outstanding {
    None,
    Read { offset: u32, len: u32 },
    Write { offset: u32, len: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Chunk {
    /// Expecting a control byte (and the chunk header after it).
    Control,
    /// An LZMA chunk whose range coder still needs its 5 init bytes.
    LzmaInit { unpacked: u32 },
    /// Inside an LZMA chunk: `unpacked` output bytes left.
    Lzma { unpacked: u32 },
    /// Inside an uncompressed chunk: `left` bytes to copy.
    Uncompressed { left: u32 },
    /// The end byte was read.
    End,
}

/// The decoder: `W` bytes of newest output in RAM (a power of two), output written in blocks of
/// `B` bytes (`W >= B + 278`, so that whatever lies beyond the window is already in flash).
/// About 28.5 KiB + `W` + `B` of RAM.
pub struct Decoder<const W: usize = 4096, const B: usize = 2048> {
    filter: Filter,
    /// Declared output length (DECOMP_SIZE).
    total: u32,
    rc: RangeDecoder<IN_BUF>,
    input_done: bool,
    chunk: Chunk,
    need_dict_reset: bool,
    need_props: bool,
    /// Output position of the last dictionary reset.
    dict_start: u32,
    lzma: LzmaState,
    probs: Probs,
    /// Output bytes decoded so far (filtered form).
    pos: u32,
    /// Output bytes written (and completed) so far.
    written: u32,
    /// The newest `W` filtered output bytes; byte `p` lives at `p % W`.
    window: [u8; W],
    /// The block being written (plain form).
    out: [u8; B],
    /// The last read-back, filtered again: bytes `[read_lo, read_hi)` are valid, `read_buf[0]` is
    /// output position `read_base`.
    read_buf: [u8; READ_MAX],
    read_base: u32,
    read_lo: u32,
    read_hi: u32,
    /// A match still to be copied: length and distance (1-based).
    copy: Option<(u32, u32)>,
    outstanding: Outstanding,
    health: Health,
    stats: Stats,
}

/// Whether the decoder can go on. `NotStarted` is first (tag 0, `repr(u8)`) so that
/// [`Decoder::IDLE`] is all zero bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Health {
    NotStarted,
    Running,
    /// Stopped for good: [`Decoder::poll`] keeps returning this.
    Failed(Error),
}

impl<const W: usize, const B: usize> Decoder<W, B> {
    const SIZES_OK: () = assert!(
        W.is_power_of_two() && B > 0 && W >= B + WINDOW_SLACK && W <= 1 << 30,
        "the window must be a power of two at least B + 278 bytes"
    );

    /// A decoder for a payload that starts with imgtool's 2-byte `header`, decodes to `len` bytes
    /// (DECOMP_SIZE) and must fit in `capacity` bytes of output room.
    ///
    /// The value is large (see the type's doc); on a device, keep one in static storage made with
    /// [`Decoder::IDLE`] and [`start`](Self::start) it in place instead.
    pub fn new(header: [u8; 2], filter: Filter, len: u32, capacity: u32) -> Result<Self, Error> {
        let mut d = Self::IDLE;
        d.start(header, filter, len, capacity)?;
        Ok(d)
    }

    /// A decoder that decodes nothing until [`start`](Self::start)ed: a constant, so that it can
    /// live in a `static` without passing through the stack. Every byte of it is zero (`start`
    /// sets the model, the flags and the properties), so such a static lies in `.bss` and costs
    /// no flash for an initial image.
    pub const IDLE: Self = {
        let () = Self::SIZES_OK;
        Decoder {
            filter: Filter::None,
            total: 0,
            rc: RangeDecoder::new(),
            input_done: false,
            chunk: Chunk::Control,
            need_dict_reset: false,
            need_props: false,
            dict_start: 0,
            lzma: LzmaState::new(),
            probs: Probs::unset(),
            pos: 0,
            written: 0,
            window: [0; W],
            out: [0; B],
            read_buf: [0; READ_MAX],
            read_base: 0,
            read_lo: 0,
            read_hi: 0,
            copy: None,
            outstanding: Outstanding::None,
            health: Health::NotStarted,
            stats: Stats {
                reads: 0,
                bytes_read: 0,
                writes: 0,
                bytes_written: 0,
            },
        }
    };

    /// (Re)starts this decoder in place for a new payload, as [`new`](Self::new) would make it;
    /// on an error it stays refused.
    pub fn start(
        &mut self,
        header: [u8; 2],
        filter: Filter,
        len: u32,
        capacity: u32,
    ) -> Result<(), Error> {
        let checked = Header::parse(header).and_then(|h| {
            if len > capacity {
                Err(Error::DeclaredSizeTooLarge { len, capacity })
            } else {
                Ok(h)
            }
        });
        let h = match checked {
            Ok(h) => h,
            Err(e) => {
                self.health = Health::Failed(e);
                return Err(e);
            }
        };
        self.filter = filter;
        self.total = len;
        self.rc.clear();
        self.input_done = false;
        self.chunk = Chunk::Control;
        self.need_dict_reset = true;
        self.need_props = true;
        self.dict_start = 0;
        self.lzma.reset();
        self.lzma.set_props(h.lc, h.lp, h.pb);
        self.probs.reset();
        self.pos = 0;
        self.written = 0;
        self.read_base = 0;
        self.read_lo = 0;
        self.read_hi = 0;
        self.copy = None;
        self.outstanding = Outstanding::None;
        self.health = Health::Running;
        self.stats = Stats::default();
        Ok(())
    }

    /// Takes as much of `data` as fits in the input buffer; returns how many bytes it took.
    /// Input after the stream's end byte is an error ([`Error::TrailingData`]).
    pub fn push_input(&mut self, data: &[u8]) -> usize {
        if self.chunk == Chunk::End && !data.is_empty() && self.health == Health::Running {
            self.health = Health::Failed(Error::TrailingData);
        }
        self.rc.push(data)
    }

    /// Says that all input was pushed: a stream without its end byte is then [`Error::Truncated`].
    pub fn finish_input(&mut self) {
        self.input_done = true;
    }

    /// Completes the outstanding [`Op::Write`].
    pub fn write_done(&mut self) -> Result<(), Error> {
        let Outstanding::Write { offset, len } = self.outstanding else {
            return Err(self.fail(Error::UnexpectedCompletion));
        };
        self.written = offset + len;
        self.outstanding = Outstanding::None;
        self.stats.writes += 1;
        self.stats.bytes_written += len;
        Ok(())
    }

    /// Completes the outstanding [`Op::Read`] with the bytes read.
    pub fn read_done(&mut self, data: &[u8]) -> Result<(), Error> {
        let Outstanding::Read { offset, len } = self.outstanding else {
            return Err(self.fail(Error::UnexpectedCompletion));
        };
        if data.len() != len as usize {
            return Err(self.fail(Error::ReadLength {
                expected: len as usize,
                got: data.len(),
            }));
        }
        let buf = &mut self.read_buf[..data.len()];
        buf.copy_from_slice(data);
        if self.filter == Filter::ArmThumb {
            bcj::convert_slice(buf, offset, self.total, true);
        }
        self.read_base = offset;
        self.outstanding = Outstanding::None;
        self.stats.reads += 1;
        self.stats.bytes_read += len;
        Ok(())
    }

    /// Read-back and write counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Output bytes decoded so far.
    pub fn decoded(&self) -> u32 {
        self.pos
    }

    /// Output bytes written (completed) so far.
    pub fn written(&self) -> u32 {
        self.written
    }

    /// Runs until the decoder needs something: input, a write, a read-back; or it is done.
    pub fn poll(&mut self) -> Result<Op<'_>, Error> {
        match self.health {
            Health::NotStarted => return Err(Error::NotStarted),
            Health::Failed(e) => return Err(e),
            Health::Running => {}
        }
        let step = match self.step() {
            Ok(s) => s,
            Err(e) => return Err(self.fail(e)),
        };
        Ok(match step {
            Step::NeedInput => Op::NeedInput,
            Step::Done => Op::Done { len: self.total },
            Step::Read { offset, len } => Op::Read {
                offset,
                len: len as usize,
            },
            Step::Write { offset, len } => Op::Write {
                offset,
                data: &self.out[..len as usize],
            },
        })
    }

    fn fail(&mut self, e: Error) -> Error {
        match self.health {
            Health::NotStarted => Error::NotStarted,
            Health::Failed(first) => first,
            Health::Running => {
                self.health = Health::Failed(e);
                e
            }
        }
    }

    fn lag(&self) -> u32 {
        match self.filter {
            Filter::None => 0,
            Filter::ArmThumb => BCJ_LAG,
        }
    }

    fn win(&self, p: u32) -> u8 {
        self.window[p as usize & (W - 1)]
    }

    fn emit(&mut self, b: u8) {
        self.window[self.pos as usize & (W - 1)] = b;
        self.pos += 1;
    }

    /// The dictionary byte at output position `p` (< pos), if it is in the window or the last
    /// read-back.
    fn dict_byte(&self, p: u32) -> Option<u8> {
        if self.pos - p <= W as u32 {
            Some(self.win(p))
        } else if self.read_lo <= p && p < self.read_hi {
            Some(self.read_buf[(p - self.read_base) as usize])
        } else {
            None
        }
    }

    /// Asks for output bytes `[lo, hi)` (widened for the filter's context), all in flash.
    fn request_read(&mut self, lo: u32, hi: u32) -> Step {
        let (a, b) = match self.filter {
            Filter::None => (lo, hi),
            Filter::ArmThumb => (
                (lo & !1).saturating_sub(2),
                (((hi - 1) & !1) + 4).min(self.written),
            ),
        };
        self.read_lo = lo;
        self.read_hi = hi;
        self.outstanding = Outstanding::Read {
            offset: a,
            len: b - a,
        };
        Step::Read {
            offset: a,
            len: b - a,
        }
    }

    /// Prepares the next output block in `out` if one is due.
    fn flush_due(&mut self) -> Option<Step> {
        let pending = self.pos - self.written;
        let at_end = self.pos == self.total;
        if pending == 0 || (pending < B as u32 + self.lag() && !at_end) {
            return None;
        }
        let a = self.written;
        let n = pending.min(B as u32);
        for i in 0..n {
            self.out[i as usize] = self.win(a + i);
        }
        if self.filter == Filter::ArmThumb {
            // Pairs starting up to 2 bytes before the block may reach into it.
            let mut s = a.saturating_sub(2);
            while s < a + n {
                if s + 4 <= self.total && bcj::is_pair(self.win(s + 1), self.win(s + 3)) {
                    let plain = bcj::convert(
                        [
                            self.win(s),
                            self.win(s + 1),
                            self.win(s + 2),
                            self.win(s + 3),
                        ],
                        s,
                        false,
                    );
                    for (k, &b) in plain.iter().enumerate() {
                        let p = s + k as u32;
                        if p >= a && p < a + n {
                            self.out[(p - a) as usize] = b;
                        }
                    }
                }
                s += 2;
            }
        }
        self.outstanding = Outstanding::Write { offset: a, len: n };
        Some(Step::Write { offset: a, len: n })
    }

    fn step(&mut self) -> Result<Step, Error> {
        match self.outstanding {
            Outstanding::Read { offset, len } => return Ok(Step::Read { offset, len }),
            Outstanding::Write { offset, len } => return Ok(Step::Write { offset, len }),
            Outstanding::None => {}
        }
        loop {
            if let Some(s) = self.flush_due() {
                return Ok(s);
            }
            match self.chunk {
                Chunk::End => {
                    if self.rc.available() > 0 {
                        return Err(Error::TrailingData);
                    }
                    return Ok(Step::Done);
                }
                Chunk::Control => {
                    if let Some(s) = self.control()? {
                        return Ok(s);
                    }
                }
                Chunk::LzmaInit { unpacked } => {
                    if self.rc.available() < 5 {
                        return self.need_input();
                    }
                    if !self.rc.init() {
                        return Err(Error::CorruptChunk);
                    }
                    self.chunk = Chunk::Lzma { unpacked };
                }
                Chunk::Uncompressed { left } => {
                    if left == 0 {
                        self.chunk = Chunk::Control;
                        continue;
                    }
                    let n = left.min(COPY_STEP).min(self.rc.available());
                    if n == 0 {
                        return self.need_input();
                    }
                    for _ in 0..n {
                        let b = self.rc.take_raw();
                        self.emit(b);
                    }
                    self.chunk = Chunk::Uncompressed { left: left - n };
                }
                Chunk::Lzma { unpacked } => {
                    if let Some(s) = self.lzma_step(unpacked)? {
                        return Ok(s);
                    }
                }
            }
        }
    }

    fn need_input(&self) -> Result<Step, Error> {
        if self.input_done {
            Err(Error::Truncated)
        } else {
            Ok(Step::NeedInput)
        }
    }

    /// Reads a control byte and its chunk header, if all of it is buffered.
    fn control(&mut self) -> Result<Option<Step>, Error> {
        let Some(control) = self.rc.peek(0) else {
            return self.need_input().map(Some);
        };
        if control == 0 {
            self.rc.skip(1);
            if self.pos != self.total {
                return Err(Error::OutputTooShort {
                    declared: self.total,
                    actual: self.pos,
                });
            }
            self.chunk = Chunk::End;
            return Ok(None);
        }
        if (3..0x80).contains(&control) {
            return Err(Error::BadControl(control));
        }
        let header_len = match control {
            1 | 2 => 3,
            0x80..=0xBF => 5,
            _ => 6,
        };
        if self.rc.available() < header_len {
            return self.need_input().map(Some);
        }
        let byte = |i| u32::from(self.rc.peek(i).unwrap_or(0));
        let size16 = (byte(1) << 8 | byte(2)) + 1;
        if control >= 0xE0 || control == 1 {
            self.need_props = true;
            self.need_dict_reset = false;
            self.dict_start = self.pos;
        } else if self.need_dict_reset {
            return Err(Error::MissingDictionaryReset);
        }
        let unpacked = if control >= 0x80 {
            ((u32::from(control) & 0x1F) << 16) + size16
        } else {
            size16
        };
        if unpacked > self.total - self.pos {
            return Err(Error::OutputTooLong {
                declared: self.total,
            });
        }
        if control < 0x80 {
            self.rc.skip(3);
            self.chunk = Chunk::Uncompressed { left: unpacked };
            return Ok(None);
        }
        let packed = (byte(3) << 8 | byte(4)) + 1;
        if control >= 0xC0 {
            let props = byte(5) as u8;
            let (lc, lp, pb) = split_props(props).ok_or(Error::BadProperties(props))?;
            self.lzma.set_props(lc, lp, pb);
            self.need_props = false;
        } else if self.need_props {
            return Err(Error::MissingProperties);
        }
        if control >= 0xA0 {
            self.lzma.reset();
            self.probs.reset();
        }
        if packed < 5 {
            return Err(Error::CorruptChunk);
        }
        self.rc.skip(header_len);
        self.rc.set_packed(packed - 5);
        self.chunk = Chunk::LzmaInit { unpacked };
        Ok(None)
    }

    /// One LZMA symbol (or the copy of a pending match), or what it waits for.
    fn lzma_step(&mut self, unpacked: u32) -> Result<Option<Step>, Error> {
        if let Some((len, dist)) = self.copy {
            let src = self.pos - dist;
            if dist > W as u32 && !(self.read_lo <= src && src + len <= self.read_hi) {
                // The byte after the match is the next matched literal's match byte.
                return Ok(Some(self.request_read(src, src + len + 1)));
            }
            for i in 0..len {
                let b = self.dict_byte(src + i).unwrap_or(0);
                self.emit(b);
            }
            self.copy = None;
            self.chunk = Chunk::Lzma {
                unpacked: unpacked - len,
            };
            return Ok(None);
        }
        if unpacked == 0 {
            if self.rc.packed_left() > 0 && self.rc.available() == 0 {
                return self.need_input().map(Some);
            }
            if !self.rc.finish() {
                return Err(Error::CorruptChunk);
            }
            self.chunk = Chunk::Control;
            return Ok(None);
        }
        if self.rc.available() < SYMBOL_INPUT_MAX.min(self.rc.packed_left()) {
            return self.need_input().map(Some);
        }
        let rel = self.pos - self.dict_start;
        let prev = if rel == 0 { 0 } else { self.win(self.pos - 1) };
        let match_byte = if self.lzma.after_match() {
            let dist = self.lzma.rep0() + 1;
            if dist > rel {
                return Err(Error::DistanceTooFar {
                    distance: dist,
                    available: rel,
                });
            }
            let p = self.pos - dist;
            match self.dict_byte(p) {
                Some(b) => Some(b),
                None => return Ok(Some(self.request_read(p, p + 1))),
            }
        } else {
            None
        };
        let sym = self
            .lzma
            .decode(&mut self.rc, &mut self.probs, rel, prev, match_byte);
        if self.rc.overrun() {
            return Err(Error::CorruptChunk);
        }
        match sym {
            lzma::Symbol::Literal(b) => {
                self.emit(b);
                self.chunk = Chunk::Lzma {
                    unpacked: unpacked - 1,
                };
            }
            lzma::Symbol::Match { len, dist } => {
                if dist == 0 {
                    return Err(Error::EndMarker);
                }
                if dist > rel {
                    return Err(Error::DistanceTooFar {
                        distance: dist,
                        available: rel,
                    });
                }
                if len > unpacked {
                    return Err(Error::MatchPastChunk);
                }
                self.copy = Some((len, dist));
            }
        }
        Ok(None)
    }
}

/// [`Op`] without the borrow, while the decoder works out what it needs.
enum Step {
    NeedInput,
    Done,
    Read { offset: u32, len: u32 },
    Write { offset: u32, len: u32 },
}
