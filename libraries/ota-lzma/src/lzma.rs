//! The LZMA symbol decoder: range coder, probability model, state and rep distances. It decodes
//! one symbol at a time and leaves the dictionary to its caller (which passes the previous byte and
//! the match byte in, and copies matches itself).

/// Probabilities are 11-bit, start at one half.
const PROB_INIT: u16 = 1 << 10;
const PROB_BITS: u32 = 11;
const MOVE_BITS: u32 = 5;
const STATES: usize = 12;
const POS_STATES_MAX: usize = 1 << 4;
/// One literal coder: 0x300 probabilities; `lc + lp <= 4` gives at most 16 of them.
const LITERAL_CODER: usize = 0x300;
const LITERAL_PROBS: usize = LITERAL_CODER << 4;
const DIST_STATES: usize = 4;
const DIST_SLOT_BITS: u32 = 6;
const DIST_MODEL_END: u32 = 14;
/// Distances below 128 use `dist_special` (+1 so that xz's "pointer - 1" indexing fits).
const DIST_SPECIAL: usize = 128 - DIST_MODEL_END as usize + 1;
const ALIGN_BITS: u32 = 4;
const TOP: u32 = 1 << 24;

/// The range decoder, with the input buffer it reads from and the count of the current chunk's
/// compressed bytes left.
pub(crate) struct RangeDecoder<const N: usize> {
    buf: [u8; N],
    start: usize,
    end: usize,
    range: u32,
    code: u32,
    packed_left: u32,
    overrun: bool,
}

impl<const N: usize> RangeDecoder<N> {
    pub(crate) const fn new() -> Self {
        RangeDecoder {
            buf: [0; N],
            start: 0,
            end: 0,
            range: 0,
            code: 0,
            packed_left: 0,
            overrun: false,
        }
    }

    /// Empties the input buffer (a new stream).
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        self.packed_left = 0;
        self.overrun = false;
    }

    /// Copies as much of `data` as fits; returns how much.
    pub(crate) fn push(&mut self, data: &[u8]) -> usize {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = data.len().min(N - self.end);
        self.buf[self.end..self.end + n].copy_from_slice(&data[..n]);
        self.end += n;
        n
    }

    pub(crate) fn available(&self) -> u32 {
        (self.end - self.start) as u32
    }

    pub(crate) fn peek(&self, i: usize) -> Option<u8> {
        (self.start + i < self.end).then(|| self.buf[self.start + i])
    }

    pub(crate) fn skip(&mut self, n: u32) {
        self.start = (self.start + n as usize).min(self.end);
    }

    /// One byte outside the range coder (uncompressed chunks); the caller checked `available`.
    pub(crate) fn take_raw(&mut self) -> u8 {
        let b = self.peek(0).unwrap_or(0);
        self.skip(1);
        b
    }

    pub(crate) fn set_packed(&mut self, n: u32) {
        self.packed_left = n;
        self.overrun = false;
    }

    pub(crate) fn packed_left(&self) -> u32 {
        self.packed_left
    }

    /// Whether a read went past the buffered input or the chunk's compressed size.
    pub(crate) fn overrun(&self) -> bool {
        self.overrun
    }

    /// Starts a chunk from its first 5 bytes (the caller checked they are buffered): false if the
    /// first is not 0, which an encoder never writes.
    pub(crate) fn init(&mut self) -> bool {
        let first = self.take_raw();
        self.code = 0;
        for _ in 0..4 {
            self.code = self.code << 8 | u32::from(self.take_raw());
        }
        self.range = u32::MAX;
        first == 0
    }

    /// Ends a chunk with the last normalization (the caller buffered a byte for it, if the chunk
    /// has one left): true if the chunk ended cleanly, all its compressed bytes used and the coder
    /// flushed.
    pub(crate) fn finish(&mut self) -> bool {
        self.normalize();
        !self.overrun && self.packed_left == 0 && self.code == 0
    }

    fn next_byte(&mut self) -> u8 {
        if self.packed_left == 0 || self.start == self.end {
            self.overrun = true;
            return 0;
        }
        self.packed_left -= 1;
        self.take_raw()
    }

    fn normalize(&mut self) {
        if self.range < TOP {
            self.range <<= 8;
            self.code = self.code << 8 | u32::from(self.next_byte());
        }
    }

    fn bit(&mut self, prob: &mut u16) -> u32 {
        self.normalize();
        let bound = (self.range >> PROB_BITS) * u32::from(*prob);
        if self.code < bound {
            self.range = bound;
            *prob += ((1 << PROB_BITS) - *prob) >> MOVE_BITS;
            0
        } else {
            self.range -= bound;
            self.code -= bound;
            *prob -= *prob >> MOVE_BITS;
            1
        }
    }

    /// A `bits`-bit symbol, most significant bit first; `probs` has `1 << bits` entries.
    fn bittree(&mut self, probs: &mut [u16], bits: u32) -> u32 {
        let mut sym = 1usize;
        while sym < 1 << bits {
            sym = sym << 1 | self.bit(&mut probs[sym]) as usize;
        }
        (sym - (1 << bits)) as u32
    }

    /// A `bits`-bit symbol, least significant bit first; `probs[1..1 << bits]` are used.
    fn reverse(&mut self, probs: &mut [u16], bits: u32) -> u32 {
        let mut sym = 1usize;
        let mut out = 0;
        for i in 0..bits {
            let b = self.bit(&mut probs[sym]);
            sym = sym << 1 | b as usize;
            out |= b << i;
        }
        out
    }

    /// `count` bits of fixed probability one half.
    fn direct(&mut self, count: u32) -> u32 {
        let mut out = 0u32;
        for _ in 0..count {
            self.normalize();
            self.range >>= 1;
            self.code = self.code.wrapping_sub(self.range);
            let mask = 0u32.wrapping_sub(self.code >> 31);
            self.code = self.code.wrapping_add(self.range & mask);
            out = (out << 1) | mask.wrapping_add(1);
        }
        out
    }
}

struct LenProbs {
    choice: u16,
    choice2: u16,
    low: [[u16; 8]; POS_STATES_MAX],
    mid: [[u16; 8]; POS_STATES_MAX],
    high: [u16; 256],
}

impl LenProbs {
    const fn unset() -> Self {
        LenProbs {
            choice: 0,
            choice2: 0,
            low: [[0; 8]; POS_STATES_MAX],
            mid: [[0; 8]; POS_STATES_MAX],
            high: [0; 256],
        }
    }

    fn reset(&mut self) {
        self.choice = PROB_INIT;
        self.choice2 = PROB_INIT;
        for row in self.low.iter_mut().chain(self.mid.iter_mut()) {
            row.fill(PROB_INIT);
        }
        self.high.fill(PROB_INIT);
    }

    /// A match length, 2..=273.
    fn decode<const N: usize>(&mut self, rc: &mut RangeDecoder<N>, pos_state: usize) -> u32 {
        if rc.bit(&mut self.choice) == 0 {
            2 + rc.bittree(&mut self.low[pos_state], 3)
        } else if rc.bit(&mut self.choice2) == 0 {
            2 + 8 + rc.bittree(&mut self.mid[pos_state], 3)
        } else {
            2 + 16 + rc.bittree(&mut self.high, 8)
        }
    }
}

/// The adaptive probability model (28 KiB).
pub(crate) struct Probs {
    is_match: [[u16; POS_STATES_MAX]; STATES],
    is_rep: [u16; STATES],
    is_rep0: [u16; STATES],
    is_rep1: [u16; STATES],
    is_rep2: [u16; STATES],
    is_rep0_long: [[u16; POS_STATES_MAX]; STATES],
    dist_slot: [[u16; 1 << DIST_SLOT_BITS]; DIST_STATES],
    dist_special: [u16; DIST_SPECIAL],
    dist_align: [u16; 1 << ALIGN_BITS],
    match_len: LenProbs,
    rep_len: LenProbs,
    literal: [u16; LITERAL_PROBS],
}

impl Probs {
    /// All zero, which is no model: [`reset`](Self::reset) before decoding. Zero so that an idle
    /// decoder in a `static` is all zero bytes (`.bss`, no flash for an initial image).
    pub(crate) const fn unset() -> Self {
        Probs {
            is_match: [[0; POS_STATES_MAX]; STATES],
            is_rep: [0; STATES],
            is_rep0: [0; STATES],
            is_rep1: [0; STATES],
            is_rep2: [0; STATES],
            is_rep0_long: [[0; POS_STATES_MAX]; STATES],
            dist_slot: [[0; 1 << DIST_SLOT_BITS]; DIST_STATES],
            dist_special: [0; DIST_SPECIAL],
            dist_align: [0; 1 << ALIGN_BITS],
            match_len: LenProbs::unset(),
            rep_len: LenProbs::unset(),
            literal: [0; LITERAL_PROBS],
        }
    }

    /// Back to one half everywhere (an LZMA2 state reset), in place.
    pub(crate) fn reset(&mut self) {
        for row in &mut self.is_match {
            row.fill(PROB_INIT);
        }
        for row in &mut self.is_rep0_long {
            row.fill(PROB_INIT);
        }
        for row in &mut self.dist_slot {
            row.fill(PROB_INIT);
        }
        self.is_rep.fill(PROB_INIT);
        self.is_rep0.fill(PROB_INIT);
        self.is_rep1.fill(PROB_INIT);
        self.is_rep2.fill(PROB_INIT);
        self.dist_special.fill(PROB_INIT);
        self.dist_align.fill(PROB_INIT);
        self.match_len.reset();
        self.rep_len.reset();
        self.literal.fill(PROB_INIT);
    }
}

/// What one symbol decoded to.
pub(crate) enum Symbol {
    Literal(u8),
    /// Copy `len` bytes from `dist` back (1-based; 0 is the end marker's distance).
    Match {
        len: u32,
        dist: u32,
    },
}

/// The LZMA state machine, the four rep distances and the properties.
pub(crate) struct LzmaState {
    state: usize,
    reps: [u32; 4],
    lc: u32,
    lp_mask: u32,
    pb_mask: u32,
}

impl LzmaState {
    pub(crate) const fn new() -> Self {
        LzmaState {
            state: 0,
            reps: [0; 4],
            lc: 0,
            lp_mask: 0,
            pb_mask: 0,
        }
    }

    pub(crate) fn set_props(&mut self, lc: u8, lp: u8, pb: u8) {
        self.lc = u32::from(lc);
        self.lp_mask = (1 << lp) - 1;
        self.pb_mask = (1 << pb) - 1;
    }

    pub(crate) fn reset(&mut self) {
        self.state = 0;
        self.reps = [0; 4];
    }

    /// The last symbol was a match or a rep: the next literal is coded against the match byte.
    pub(crate) fn after_match(&self) -> bool {
        self.state >= 7
    }

    /// The newest rep distance, 0-based.
    pub(crate) fn rep0(&self) -> u32 {
        self.reps[0]
    }

    /// Decodes one symbol at dictionary position `rel`, after byte `prev`; `match_byte` is the
    /// byte at distance `rep0 + 1`, given exactly when [`after_match`](Self::after_match).
    pub(crate) fn decode<const N: usize>(
        &mut self,
        rc: &mut RangeDecoder<N>,
        p: &mut Probs,
        rel: u32,
        prev: u8,
        match_byte: Option<u8>,
    ) -> Symbol {
        let pos_state = (rel & self.pb_mask) as usize;
        let s = self.state;
        if rc.bit(&mut p.is_match[s][pos_state]) == 0 {
            let coder =
                (((rel & self.lp_mask) << self.lc) + (u32::from(prev) >> (8 - self.lc))) as usize;
            let probs = &mut p.literal[LITERAL_CODER * coder..LITERAL_CODER * (coder + 1)];
            let mut sym = 1usize;
            match match_byte {
                None => {
                    while sym < 0x100 {
                        sym = sym << 1 | rc.bit(&mut probs[sym]) as usize;
                    }
                }
                Some(m) => {
                    let mut m = usize::from(m) << 1;
                    let mut offset = 0x100;
                    while sym < 0x100 {
                        let match_bit = m & offset;
                        m <<= 1;
                        let b = rc.bit(&mut probs[offset + match_bit + sym]) as usize;
                        sym = sym << 1 | b;
                        if b == 1 {
                            offset = match_bit;
                        } else {
                            offset &= !match_bit;
                        }
                    }
                }
            }
            self.state = match s {
                0..=3 => 0,
                4..=9 => s - 3,
                _ => s - 6,
            };
            return Symbol::Literal(sym as u8);
        }
        let len = if rc.bit(&mut p.is_rep[s]) == 0 {
            self.reps = [0, self.reps[0], self.reps[1], self.reps[2]];
            let len = p.match_len.decode(rc, pos_state);
            self.state = if s < 7 { 7 } else { 10 };
            self.reps[0] = Self::distance(rc, p, len);
            len
        } else {
            if rc.bit(&mut p.is_rep0[s]) == 0 {
                if rc.bit(&mut p.is_rep0_long[s][pos_state]) == 0 {
                    self.state = if s < 7 { 9 } else { 11 };
                    return Symbol::Match {
                        len: 1,
                        dist: self.reps[0].wrapping_add(1),
                    };
                }
            } else {
                let dist = if rc.bit(&mut p.is_rep1[s]) == 0 {
                    self.reps[1]
                } else {
                    let d = if rc.bit(&mut p.is_rep2[s]) == 0 {
                        self.reps[2]
                    } else {
                        let d = self.reps[3];
                        self.reps[3] = self.reps[2];
                        d
                    };
                    self.reps[2] = self.reps[1];
                    d
                };
                self.reps[1] = self.reps[0];
                self.reps[0] = dist;
            }
            self.state = if s < 7 { 8 } else { 11 };
            p.rep_len.decode(rc, pos_state)
        };
        Symbol::Match {
            len,
            dist: self.reps[0].wrapping_add(1),
        }
    }

    /// A match distance (0-based) for a match of `len` bytes.
    fn distance<const N: usize>(rc: &mut RangeDecoder<N>, p: &mut Probs, len: u32) -> u32 {
        let dist_state = (len - 2).min(DIST_STATES as u32 - 1) as usize;
        let slot = rc.bittree(&mut p.dist_slot[dist_state], DIST_SLOT_BITS);
        if slot < 4 {
            return slot;
        }
        let limit = (slot >> 1) - 1;
        let d = 2 | (slot & 1);
        if slot < DIST_MODEL_END {
            let d = d << limit;
            let base = (d - slot) as usize;
            d + rc.reverse(&mut p.dist_special[base..], limit)
        } else {
            let d = (d << (limit - ALIGN_BITS)) | rc.direct(limit - ALIGN_BITS);
            (d << ALIGN_BITS) | rc.reverse(&mut p.dist_align, ALIGN_BITS)
        }
    }
}
