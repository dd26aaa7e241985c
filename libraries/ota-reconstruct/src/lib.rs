//! The reconstruction step: the kernel rebuilds a plain signed image in the staging slot from
//! what was received over the air into the QSPI received-stream area, before today's finalize,
//! boot request and bootloader path run unchanged.
//!
//! Two kinds of received stream rebuild the same way:
//!
//! - a delta patch ([`delta`]) against the running kernel (the payload installed in the kernel
//!   slot), made on the host by `tock-ota delta`;
//! - a compressed image (LZMA2 with the ARM-Thumb filter), decoded by a [`Decoder`] that lives
//!   in its own crate and plugs in here.
//!
//! A kind is a [`Decoder`]: it turns stream bytes into output bytes, front to back, and may ask
//! to read back bytes of the base (delta) or of the output already produced (an LZ dictionary
//! kept in flash rather than RAM). [`Rebuild`] drives any decoder sans-IO: it yields one
//! [`Action`] at a time (read the stream, the base or the output; program a page of the output)
//! and never touches flash itself, so the Tock capsule runs it split-phase from flash callbacks
//! and the simulator and tests run it over models ([`blocking::run`]). Before it writes
//! anything it checks the decoder's [`Plan`]: sizes against the limits and, for a delta, the
//! base's length and SHA-256; at the end it checks the output length and SHA-256.
//!
//! Nothing here installs anything: a wrong base, a corrupt or truncated stream or a power cut
//! leaves at most a half-written staging slot that is never finalized, and the next attempt
//! starts again from the stream's first byte.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "diff")]
extern crate std;

pub mod blocking;
pub mod delta;
#[cfg(feature = "diff")]
pub mod diff;
pub mod stream;

use ota_image::Sha256;

/// Unit of every read and write [`Rebuild`] asks for: stream reads, base reads, decoder reads
/// and output pages (the MX25R6435F's program page). The caller's buffer must hold this much.
pub const CHUNK: usize = 256;

/// The three places a reconstruction reads or writes. Offsets are relative to each area's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// The received stream (patch or compressed image), read front to back.
    Stream,
    /// The base: the payload installed in the kernel slot (internal flash).
    Base,
    /// The output: the staging slot, as far as it is written.
    Output,
}

/// What a decoder knows once it has read its stream's header, before it produces any output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Exact length of the output (the plain signed image).
    pub output_len: u32,
    /// SHA-256 of the whole output, when the stream names it. [`Rebuild`] checks it at the end.
    pub output_sha256: Option<[u8; 32]>,
    /// The base this stream applies to: its length and the SHA-256 of its first `len` bytes.
    /// `None` for a stream that needs no base (a compressed image).
    pub base: Option<BaseId>,
}

/// The base a delta patch was made against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaseId {
    pub len: u32,
    pub sha256: [u8; 32],
}

/// Why a decoder stopped. See [`Decoder::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Demand {
    /// The header is read: check this plan before any output. Returned exactly once, first.
    Header(Plan),
    /// Every input byte given was consumed; call again with the stream's next bytes.
    Input,
    /// `out` is full; call again with room.
    OutputFull,
    /// Read `len` (1..=[`CHUNK`]) bytes of `area` (any; [`Area::Stream`] also before the header) at
    /// `offset` and hand them to [`Decoder::provide`] before the next `decode`.
    Read { area: Area, offset: u32, len: usize },
    /// The stream's end marker is read and all output is produced.
    Finished,
}

/// Progress of one [`Decoder::decode`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Input bytes consumed (a prefix of `input`).
    pub consumed: usize,
    /// Output bytes produced (a prefix of `out`).
    pub produced: usize,
    pub demand: Demand,
}

/// One kind of received stream: a streaming, sans-IO decoder from stream bytes to output bytes.
///
/// Contract, which [`Rebuild`] relies on and checks where it can:
///
/// - `decode` consumes a prefix of `input`, writes a prefix of `out` and says why it stopped
///   ([`Demand`]). It keeps whatever partial state it needs (a header split across calls, a
///   varint, a literal run): [`Demand::Input`] means it consumed all of `input`.
/// - Its first stop is [`Demand::Header`], before any output (`out` is empty until then).
/// - Output is sequential: byte `n` of the output is the `n`-th byte any `decode` produced.
/// - It may read its own stream at any offset, also before its header (a stream read past the
///   stream's end is [`Error::Truncated`]).
/// - It may read back the base or the output already produced with [`Demand::Read`]; the data
///   arrives through [`Decoder::provide`], possibly shorter than asked (at least one byte: the
///   part of an output range already in flash is provided first), in which case the decoder asks
///   again for the rest. So a dictionary may live in flash: an LZMA2 decoder's match distance
///   becomes a read of `Area::Output` at `produced - distance`.
/// - It never panics on any input: malformed data is an [`Error`].
pub trait Decoder {
    fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Progress, Error>;
    /// The bytes asked for by the last [`Demand::Read`] (a non-empty prefix of them).
    fn provide(&mut self, data: &[u8]) -> Result<(), Error>;
}

/// Why a reconstruction failed. Nothing is finalized after any of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The stream does not start with a known magic.
    BadMagic,
    /// A stream format version or flag this build does not know.
    Unsupported,
    /// The stream is malformed; the text names the field.
    Corrupt(&'static str),
    /// The stream ended before its end marker.
    Truncated,
    /// Bytes follow the stream's end marker.
    TrailingData,
    /// The stream's base is not the one in the kernel slot (length beyond the slot or SHA-256
    /// differs). Nothing was written.
    WrongBase,
    /// The output would not fit the staging slot. Nothing was written.
    OutputTooLong { len: u32, max: u32 },
    /// The stream refers to bytes outside the base or before the output produced so far.
    BadReference { area: Area, offset: u32, len: u32 },
    /// The stream produces more or fewer bytes than its header says.
    LengthMismatch { expected: u32, produced: u32 },
    /// The output's SHA-256 differs from the one the stream names.
    OutputHash,
    /// The decoder broke its contract (a bug, not bad input).
    Decoder,
}

impl Error {
    /// The staged-update driver's error detail for this refusal (`dfu_abi::update::detail`),
    /// reported by finalize of a received stream. [`Error::Decoder`] is a kernel bug, not the
    /// stream's fault: it reports as a plain failure (`FLASH` would invite a retry; so does
    /// this), never as a verdict on the stream.
    pub fn abi_detail(&self) -> u32 {
        use dfu_abi::update::detail;
        match self {
            Error::BadMagic
            | Error::Unsupported
            | Error::Corrupt(_)
            | Error::TrailingData
            | Error::BadReference { .. }
            | Error::LengthMismatch { .. } => detail::STREAM_BAD_FORMAT,
            Error::Truncated => detail::STREAM_TRUNCATED,
            Error::WrongBase => detail::STREAM_WRONG_BASE,
            Error::OutputTooLong { .. } => detail::STREAM_TOO_LONG,
            Error::OutputHash => detail::STREAM_OUTPUT_HASH,
            Error::Decoder => detail::NONE,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::BadMagic => write!(f, "not a patch or compressed stream (bad magic)"),
            Error::Unsupported => write!(f, "unsupported stream version or flags"),
            Error::Corrupt(what) => write!(f, "corrupt stream: {what}"),
            Error::Truncated => write!(f, "stream truncated before its end marker"),
            Error::TrailingData => write!(f, "bytes after the stream's end marker"),
            Error::WrongBase => write!(
                f,
                "wrong base: the patch was made against another kernel than the one installed"
            ),
            Error::OutputTooLong { len, max } => {
                write!(f, "output of {len} bytes exceeds the staging slot ({max})")
            }
            Error::BadReference { area, offset, len } => {
                write!(f, "reference outside {area:?}: {len} bytes at {offset}")
            }
            Error::LengthMismatch { expected, produced } => {
                write!(
                    f,
                    "stream produced {produced} bytes, its header says {expected}"
                )
            }
            Error::OutputHash => write!(f, "rebuilt image's SHA-256 differs from the stream's"),
            Error::Decoder => write!(f, "decoder contract violated"),
        }
    }
}

impl core::error::Error for Error {}

/// The device's limits a stream is checked against before anything is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Length of the received stream in the stream area.
    pub stream_len: u32,
    /// Bytes of base that may be read (the kernel slot's length).
    pub base_max: u32,
    /// Largest output (the staging slot's image limit).
    pub output_max: u32,
}

/// What the caller does next. See [`Rebuild`].
#[derive(Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Read `len` (1..=[`CHUNK`]) bytes of `area` at `offset`, then call [`Rebuild::read_done`].
    Read { area: Area, offset: u32, len: usize },
    /// Program `data` (at most [`CHUNK`] bytes) at output `offset`, then call
    /// [`Rebuild::write_done`]. Writes are sequential from 0 and every one but the last is a full
    /// [`CHUNK`]; a write at a 4 KiB boundary is the first into that sector (erase it first).
    Write { offset: u32, data: &'a [u8] },
    /// Finished: the rebuilt output's length and SHA-256, or why it failed.
    Done(Result<Outcome, Error>),
}

/// A finished reconstruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub output_len: u32,
    pub output_sha256: [u8; 32],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Decode,
    /// Reading the stream's next chunk.
    ReadInput,
    /// Hashing the base before any output; `at` bytes hashed so far.
    HashBase {
        at: u32,
    },
    /// Reading bytes the decoder asked for.
    DecoderRead,
    /// A page write is under way; `last` when it is the final one.
    Write {
        last: bool,
    },
    Done,
}

/// Drives a [`Decoder`] over the stream, base and output areas, one [`Action`] at a time.
///
/// ```text
/// let mut act = rebuild.start();
/// loop { match act {
///     Action::Read { area, offset, len } => { read into buf; act = rebuild.read_done(&buf[..len]) }
///     Action::Write { offset, data } => { program; act = rebuild.write_done() }
///     Action::Done(result) => break result,
/// } }
/// ```
pub struct Rebuild<D> {
    decoder: D,
    limits: Limits,
    state: State,
    plan: Option<Plan>,
    input: [u8; CHUNK],
    in_start: usize,
    in_end: usize,
    /// Stream offset of the byte after `input[in_end - 1]`.
    stream_pos: u32,
    page: [u8; CHUNK],
    page_len: usize,
    /// Output bytes already handed out in writes.
    written: u32,
    hash: Sha256,
    base_hash: Sha256,
    pending: (Area, u32, usize),
}

impl<D: Decoder> Rebuild<D> {
    pub fn new(decoder: D, limits: Limits) -> Self {
        Rebuild {
            decoder,
            limits,
            state: State::Idle,
            plan: None,
            input: [0; CHUNK],
            in_start: 0,
            in_end: 0,
            stream_pos: 0,
            page: [0; CHUNK],
            page_len: 0,
            written: 0,
            hash: Sha256::new(),
            base_hash: Sha256::new(),
            pending: (Area::Stream, 0, 0),
        }
    }

    /// The decoder's plan, once its header is read.
    pub fn plan(&self) -> Option<Plan> {
        self.plan
    }

    /// Output bytes written so far.
    pub fn written(&self) -> u32 {
        self.written
    }

    /// Stream bytes read so far.
    pub fn stream_read(&self) -> u32 {
        self.stream_pos
    }

    /// The decoder back (e.g. a borrow of static storage, for the next stream).
    pub fn into_decoder(self) -> D {
        self.decoder
    }

    /// Begins (the first action is a read of the stream).
    pub fn start(&mut self) -> Action<'_> {
        if self.state != State::Idle {
            return self.fail(Error::Decoder);
        }
        self.state = State::Decode;
        self.run()
    }

    /// The bytes of the last [`Action::Read`].
    pub fn read_done(&mut self, data: &[u8]) -> Action<'_> {
        let (_, _, len) = self.pending;
        if data.len() != len {
            return self.fail(Error::Decoder);
        }
        match self.state {
            State::ReadInput => {
                self.input[..len].copy_from_slice(data);
                self.in_start = 0;
                self.in_end = len;
                self.stream_pos += len as u32;
                self.state = State::Decode;
            }
            State::HashBase { at } => {
                self.base_hash.update(data);
                let at = at + len as u32;
                let base = self.plan.and_then(|p| p.base);
                let Some(base) = base else {
                    return self.fail(Error::Decoder);
                };
                if at < base.len {
                    return self.read(State::HashBase { at }, Area::Base, at, base.len - at);
                }
                let digest = core::mem::take(&mut self.base_hash).finalize();
                if digest != base.sha256 {
                    return self.fail(Error::WrongBase);
                }
                self.state = State::Decode;
            }
            State::DecoderRead => {
                if let Err(e) = self.decoder.provide(data) {
                    return self.fail(e);
                }
                self.state = State::Decode;
            }
            _ => return self.fail(Error::Decoder),
        }
        self.run()
    }

    /// The last [`Action::Write`] is done.
    pub fn write_done(&mut self) -> Action<'_> {
        let State::Write { last } = self.state else {
            return self.fail(Error::Decoder);
        };
        self.written += self.page_len as u32;
        self.page_len = 0;
        if last {
            return self.finish();
        }
        self.state = State::Decode;
        self.run()
    }

    fn fail(&mut self, e: Error) -> Action<'_> {
        self.state = State::Done;
        Action::Done(Err(e))
    }

    fn read(&mut self, next: State, area: Area, offset: u32, len: u32) -> Action<'_> {
        let len = (len as usize).min(CHUNK);
        self.pending = (area, offset, len);
        self.state = next;
        Action::Read { area, offset, len }
    }

    fn write(&mut self, last: bool) -> Action<'_> {
        self.hash.update(&self.page[..self.page_len]);
        self.state = State::Write { last };
        Action::Write {
            offset: self.written,
            data: &self.page[..self.page_len],
        }
    }

    fn finish(&mut self) -> Action<'_> {
        let Some(plan) = self.plan else {
            return self.fail(Error::Decoder);
        };
        let digest = core::mem::take(&mut self.hash).finalize();
        if plan.output_sha256.is_some_and(|h| h != digest) {
            return self.fail(Error::OutputHash);
        }
        self.state = State::Done;
        Action::Done(Ok(Outcome {
            output_len: self.written,
            output_sha256: digest,
        }))
    }

    fn run(&mut self) -> Action<'_> {
        loop {
            if self.state != State::Decode {
                return self.fail(Error::Decoder);
            }
            let produced_total = self.written + self.page_len as u32;
            let room = match self.plan {
                None => 0,
                Some(p) => {
                    let left = (p.output_len - produced_total) as usize;
                    left.min(CHUNK - self.page_len)
                }
            };
            let input = &self.input[self.in_start..self.in_end];
            let out = &mut self.page[self.page_len..self.page_len + room];
            let progress = match self.decoder.decode(input, out) {
                Ok(p) => p,
                Err(e) => return self.fail(e),
            };
            if progress.consumed > input.len() || progress.produced > room {
                return self.fail(Error::Decoder);
            }
            let stalled = progress.consumed == 0 && progress.produced == 0;
            self.in_start += progress.consumed;
            self.page_len += progress.produced;
            if self.page_len == CHUNK {
                // A full page goes out first; the demand is asked again after it.
                return self.write(false);
            }
            match progress.demand {
                Demand::Header(plan) => {
                    if self.plan.is_some() || progress.produced != 0 {
                        return self.fail(Error::Decoder);
                    }
                    if plan.output_len == 0 {
                        // No image is empty; finalize must never see a slot nothing was
                        // written to.
                        return self.fail(Error::Corrupt("empty output"));
                    }
                    if plan.output_len > self.limits.output_max {
                        return self.fail(Error::OutputTooLong {
                            len: plan.output_len,
                            max: self.limits.output_max,
                        });
                    }
                    self.plan = Some(plan);
                    if let Some(base) = plan.base {
                        if base.len > self.limits.base_max {
                            return self.fail(Error::WrongBase);
                        }
                        if base.len > 0 {
                            return self.read(State::HashBase { at: 0 }, Area::Base, 0, base.len);
                        }
                        if Sha256::digest(&[]) != base.sha256 {
                            return self.fail(Error::WrongBase);
                        }
                    }
                }
                Demand::Input => {
                    if self.in_start != self.in_end {
                        return self.fail(Error::Decoder);
                    }
                    if self.stream_pos >= self.limits.stream_len {
                        return self.fail(Error::Truncated);
                    }
                    let left = self.limits.stream_len - self.stream_pos;
                    return self.read(State::ReadInput, Area::Stream, self.stream_pos, left);
                }
                Demand::OutputFull => {
                    if room == 0 {
                        // The page is never full here, so the output is complete (or the
                        // header not read yet) and the stream goes on producing.
                        let expected = self.plan.map_or(0, |p| p.output_len);
                        return self.fail(Error::LengthMismatch {
                            expected,
                            produced: expected.saturating_add(1),
                        });
                    }
                    if stalled {
                        return self.fail(Error::Decoder);
                    }
                }
                Demand::Read { area, offset, len } => {
                    if area == Area::Stream {
                        // Its own stream, out of order and before the header too: a compressed
                        // image's output header needs the TLVs that follow its payload.
                        if len == 0 || len > CHUNK {
                            return self.fail(Error::Decoder);
                        }
                        if offset
                            .checked_add(len as u32)
                            .is_none_or(|e| e > self.limits.stream_len)
                        {
                            return self.fail(Error::Truncated);
                        }
                        return self.read(State::DecoderRead, area, offset, len as u32);
                    }
                    let Some(plan) = self.plan else {
                        return self.fail(Error::Decoder);
                    };
                    let bad = Error::BadReference {
                        area,
                        offset,
                        len: len as u32,
                    };
                    if len == 0 || len > CHUNK {
                        return self.fail(Error::Decoder);
                    }
                    let Some(end) = offset.checked_add(len as u32) else {
                        return self.fail(bad);
                    };
                    match area {
                        Area::Base => {
                            if end > plan.base.map_or(0, |b| b.len) {
                                return self.fail(bad);
                            }
                            return self.read(State::DecoderRead, area, offset, len as u32);
                        }
                        Area::Output => {
                            let produced = self.written + self.page_len as u32;
                            if end > produced {
                                return self.fail(bad);
                            }
                            if offset < self.written {
                                let n = (self.written - offset).min(len as u32);
                                return self.read(State::DecoderRead, area, offset, n);
                            }
                            let at = (offset - self.written) as usize;
                            let data = &self.page[at..at + len];
                            if let Err(e) = self.decoder.provide(data) {
                                return self.fail(e);
                            }
                        }
                        Area::Stream => return self.fail(Error::Decoder),
                    }
                }
                Demand::Finished => {
                    let Some(plan) = self.plan else {
                        return self.fail(Error::Decoder);
                    };
                    let produced = self.written + self.page_len as u32;
                    if produced != plan.output_len {
                        return self.fail(Error::LengthMismatch {
                            expected: plan.output_len,
                            produced,
                        });
                    }
                    if self.in_start != self.in_end || self.stream_pos != self.limits.stream_len {
                        return self.fail(Error::TrailingData);
                    }
                    if self.page_len > 0 {
                        return self.write(true);
                    }
                    return self.finish();
                }
            }
        }
    }
}
