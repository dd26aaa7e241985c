//! The delta patch format and its [`Decoder`].
//!
//! A patch rebuilds a new signed image (header, payload, TLVs: the whole file the staging slot
//! holds) from a base, the payload installed in the kernel slot. It is sequential over the
//! output, bsdiff-style: "copy from the base, adding a difference" and "insert new bytes"
//! operations, so the device writes the staging slot front to back and reads the base at will.
//! The differences of a copy are mostly zero (code that moved keeps its bytes, and only some
//! operands change), so they are stored sparse: runs of unchanged bytes as a count, changed ones
//! as bytes. That is the patch's compression; it needs no dictionary in RAM.
//!
//! Layout (integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `TOTD` |
//! | 4 | 1 | version, 1 |
//! | 5 | 3 | reserved, zero |
//! | 8 | 4 | base length |
//! | 12 | 32 | base SHA-256 (of its first `base length` bytes) |
//! | 44 | 4 | output length (the new signed image) |
//! | 48 | 32 | output SHA-256 |
//! | 80 | … | operations, then the end marker |
//!
//! Operations, each starting with a LEB128 `tag`:
//!
//! - `tag = 0`: end of patch.
//! - `tag = len << 2 | 1`, `len ≥ 1`: insert; `len` literal bytes follow.
//! - `tag = len << 2 | 2`, `len ≥ 1`: fill; one byte follows, written `len` times (the header's
//!   padding, erased-looking tails).
//! - `tag = len << 2`, `len ≥ 1`: copy `len` bytes from the base; a zigzag LEB128 `seek` follows
//!   (added to the base cursor first; the cursor starts at 0 and each copy advances it by `len`),
//!   then runs until their `skip + n` sum to `len`. A run is a LEB128 `head = skip << 2 | c`
//!   (`skip` bytes copied unchanged; `n = c + 1` for `c` < 3, else a LEB128 `n` follows), then
//!   `n` bytes added (mod 256) to the next `n` base bytes. Most runs are a few unchanged bytes
//!   and one changed byte: one byte of head. A run with `skip = n = 0` is corrupt (no progress).
//! - `tag & 3 = 3`: corrupt.
use crate::{Area, BaseId, Decoder, Demand, Error, Plan, Progress};

pub const MAGIC: [u8; 4] = *b"TOTD";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 80;

/// Base bytes the decoder buffers per read.
const BASE_BUF: usize = 64;

/// A patch's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub base: BaseId,
    pub output_len: u32,
    pub output_sha256: [u8; 32],
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[8..12].copy_from_slice(&self.base.len.to_le_bytes());
        h[12..44].copy_from_slice(&self.base.sha256);
        h[44..48].copy_from_slice(&self.output_len.to_le_bytes());
        h[48..80].copy_from_slice(&self.output_sha256);
        h
    }

    pub fn parse(h: &[u8; HEADER_LEN]) -> Result<Header, Error> {
        if h[0..4] != MAGIC {
            return Err(Error::BadMagic);
        }
        if h[4] != VERSION || h[5..8] != [0, 0, 0] {
            return Err(Error::Unsupported);
        }
        let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let hash = |at: usize| {
            let mut d = [0u8; 32];
            d.copy_from_slice(&h[at..at + 32]);
            d
        };
        Ok(Header {
            base: BaseId {
                len: word(8),
                sha256: hash(12),
            },
            output_len: word(44),
            output_sha256: hash(48),
        })
    }

    fn plan(&self) -> Plan {
        Plan {
            output_len: self.output_len,
            output_sha256: Some(self.output_sha256),
            base: Some(self.base),
        }
    }
}

/// What an operation does (the low two bits of its tag).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Copy = 0,
    Insert = 1,
    Fill = 2,
}

/// An operation's tag: its length and kind.
pub fn tag(len: u32, kind: OpKind) -> u64 {
    (u64::from(len) << 2) | kind as u64
}

/// Appends `v` as LEB128.
pub fn put_varint(out: &mut impl Extend<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.extend([byte]);
            return;
        }
        out.extend([byte | 0x80]);
    }
}

/// A signed seek as the unsigned value its LEB128 carries.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Tag,
    Seek,
    RunHead,
    DiffLen,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Header,
    /// Reading a LEB128 field.
    Varint(Field),
    /// Copying: `skip` unchanged bytes, then `diff` changed ones, of the current run.
    Run {
        skip: u32,
        diff: u32,
    },
    Insert {
        left: u32,
    },
    /// Writing `byte` (once read) `left` more times.
    Fill {
        left: u32,
        byte: Option<u8>,
    },
    End,
}

/// Streaming decoder for one patch. Feed it to [`crate::Rebuild`].
pub struct DeltaDecoder {
    st: St,
    header: [u8; HEADER_LEN],
    header_len: usize,
    base_len: u32,
    varint: u64,
    shift: u32,
    /// Bytes of the current copy not yet covered by runs.
    copy_left: u32,
    /// Skip count read, waiting for the run's diff length.
    skip: u32,
    /// Base offset of the next byte a copy uses.
    cursor: u64,
    buf: [u8; BASE_BUF],
    /// Base offset of `buf[0]`, and how many bytes of it are valid.
    buf_at: u64,
    buf_len: usize,
}

impl Default for DeltaDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl DeltaDecoder {
    pub fn new() -> Self {
        DeltaDecoder {
            st: St::Header,
            header: [0; HEADER_LEN],
            header_len: 0,
            base_len: 0,
            varint: 0,
            shift: 0,
            copy_left: 0,
            skip: 0,
            cursor: 0,
            buf: [0; BASE_BUF],
            buf_at: 0,
            buf_len: 0,
        }
    }

    /// The base byte at the cursor, if buffered.
    fn base_byte(&self) -> Option<u8> {
        let i = self.cursor.checked_sub(self.buf_at)?;
        if i < self.buf_len as u64 {
            Some(self.buf[i as usize])
        } else {
            None
        }
    }

    /// The read that brings the cursor's bytes (up to the run's end) into the buffer.
    fn base_read(&self, run_left: u32) -> Demand {
        let want = (run_left as usize).clamp(1, BASE_BUF);
        Demand::Read {
            area: Area::Base,
            offset: self.cursor as u32,
            len: want,
        }
    }

    /// A run of `self.skip` unchanged and `diff` changed bytes of the current copy.
    fn start_run(&mut self, diff: u64) -> Result<(), Error> {
        let total = u64::from(self.skip) + diff;
        if total > u64::from(self.copy_left) {
            return Err(Error::Corrupt("run longer than its copy"));
        }
        if total == 0 {
            return Err(Error::Corrupt("empty run"));
        }
        self.copy_left -= total as u32;
        self.st = St::Run {
            skip: self.skip,
            diff: diff as u32,
        };
        Ok(())
    }

    /// The field just read is complete: act on it.
    fn field_done(&mut self, field: Field, v: u64) -> Result<(), Error> {
        match field {
            Field::Tag => {
                if v == 0 {
                    self.st = St::End;
                    return Ok(());
                }
                let len = u32::try_from(v >> 2).map_err(|_| Error::Corrupt("operation length"))?;
                if len == 0 {
                    return Err(Error::Corrupt("empty operation"));
                }
                self.st = match v & 3 {
                    0 => {
                        self.copy_left = len;
                        St::Varint(Field::Seek)
                    }
                    1 => St::Insert { left: len },
                    2 => St::Fill {
                        left: len,
                        byte: None,
                    },
                    _ => return Err(Error::Corrupt("operation kind")),
                };
            }
            Field::Seek => {
                let seek = ((v >> 1) as i64) ^ -((v & 1) as i64);
                let cursor = (self.cursor as i64)
                    .checked_add(seek)
                    .filter(|c| *c >= 0)
                    .ok_or(Error::Corrupt("copy seeks before the base"))?;
                let end = (cursor as u64) + u64::from(self.copy_left);
                if end > u64::from(self.base_len) {
                    return Err(Error::BadReference {
                        area: Area::Base,
                        offset: cursor.min(u32::MAX as i64) as u32,
                        len: self.copy_left,
                    });
                }
                self.cursor = cursor as u64;
                self.st = St::Varint(Field::RunHead);
            }
            Field::RunHead => {
                let skip = v >> 2;
                if skip > u64::from(self.copy_left) {
                    return Err(Error::Corrupt("run longer than its copy"));
                }
                self.skip = skip as u32;
                match v & 3 {
                    3 => self.st = St::Varint(Field::DiffLen),
                    short => self.start_run(short + 1)?,
                }
            }
            Field::DiffLen => self.start_run(v)?,
        }
        Ok(())
    }
}

impl Decoder for DeltaDecoder {
    fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Progress, Error> {
        let mut i = 0;
        let mut o = 0;
        let stop = |i, o, demand| {
            Ok(Progress {
                consumed: i,
                produced: o,
                demand,
            })
        };
        loop {
            match self.st {
                St::Header => {
                    let n = (HEADER_LEN - self.header_len).min(input.len() - i);
                    self.header[self.header_len..self.header_len + n]
                        .copy_from_slice(&input[i..i + n]);
                    self.header_len += n;
                    i += n;
                    if self.header_len < HEADER_LEN {
                        return stop(i, o, Demand::Input);
                    }
                    let header = Header::parse(&self.header)?;
                    self.base_len = header.base.len;
                    self.st = St::Varint(Field::Tag);
                    return stop(i, o, Demand::Header(header.plan()));
                }
                St::Varint(field) => {
                    let Some(&byte) = input.get(i) else {
                        return stop(i, o, Demand::Input);
                    };
                    i += 1;
                    if self.shift >= 63 {
                        return Err(Error::Corrupt("integer too long"));
                    }
                    self.varint |= u64::from(byte & 0x7f) << self.shift;
                    self.shift += 7;
                    if byte & 0x80 == 0 {
                        let v = self.varint;
                        self.varint = 0;
                        self.shift = 0;
                        self.field_done(field, v)?;
                    }
                }
                St::Run { skip, diff } => {
                    if skip == 0 && diff == 0 {
                        self.st = if self.copy_left == 0 {
                            St::Varint(Field::Tag)
                        } else {
                            St::Varint(Field::RunHead)
                        };
                        continue;
                    }
                    let Some(base) = self.base_byte() else {
                        return stop(i, o, self.base_read(skip + diff + self.copy_left));
                    };
                    let add = if skip > 0 {
                        0
                    } else {
                        let Some(&d) = input.get(i) else {
                            return stop(i, o, Demand::Input);
                        };
                        d
                    };
                    let Some(slot) = out.get_mut(o) else {
                        return stop(i, o, Demand::OutputFull);
                    };
                    *slot = base.wrapping_add(add);
                    o += 1;
                    self.cursor += 1;
                    self.st = if skip > 0 {
                        St::Run {
                            skip: skip - 1,
                            diff,
                        }
                    } else {
                        i += 1;
                        St::Run {
                            skip,
                            diff: diff - 1,
                        }
                    };
                }
                St::Insert { left } => {
                    if i == input.len() {
                        return stop(i, o, Demand::Input);
                    }
                    if o == out.len() {
                        return stop(i, o, Demand::OutputFull);
                    }
                    let n = (left as usize).min(input.len() - i).min(out.len() - o);
                    out[o..o + n].copy_from_slice(&input[i..i + n]);
                    i += n;
                    o += n;
                    let left = left - n as u32;
                    self.st = if left == 0 {
                        St::Varint(Field::Tag)
                    } else {
                        St::Insert { left }
                    };
                }
                St::Fill { left, byte: None } => {
                    let Some(&b) = input.get(i) else {
                        return stop(i, o, Demand::Input);
                    };
                    i += 1;
                    self.st = St::Fill {
                        left,
                        byte: Some(b),
                    };
                }
                St::Fill {
                    left,
                    byte: Some(b),
                } => {
                    if o == out.len() {
                        return stop(i, o, Demand::OutputFull);
                    }
                    let n = (left as usize).min(out.len() - o);
                    out[o..o + n].fill(b);
                    o += n;
                    let left = left - n as u32;
                    self.st = if left == 0 {
                        St::Varint(Field::Tag)
                    } else {
                        St::Fill {
                            left,
                            byte: Some(b),
                        }
                    };
                }
                St::End => return stop(i, o, Demand::Finished),
            }
        }
    }

    fn provide(&mut self, data: &[u8]) -> Result<(), Error> {
        if data.is_empty() || data.len() > BASE_BUF {
            return Err(Error::Decoder);
        }
        self.buf[..data.len()].copy_from_slice(data);
        self.buf_at = self.cursor;
        self.buf_len = data.len();
        Ok(())
    }
}
