//! SHA-256 (FIPS 180-4), written for the bootloader's budget of flash and time.
//!
//! The bootloader hashes every staged image (up to the whole kernel slot) and, after an install,
//! the installed kernel again, on a 64 MHz Cortex-M4 without hardware hashing. General-purpose
//! software SHA-256 crates offer either a fully unrolled compression function (fast, about 7 KB of
//! code) or a rolled loop (about 1 KB, but it shuffles the eight working variables every round).
//! This one unrolls sixteen rounds: the working variables are renamed instead of moved, the
//! round constants are indexed by constants, and the sixteen-word message schedule is updated
//! in place between groups of sixteen rounds. That costs about 2 KB and runs at about 36
//! instructions per byte on the Cortex-M4 (`tock-ota bench boot`, `docs/emulation.md`).
//!
//! Built with `--cfg ota_image_sha256_rolled` (the DK kernel's build flags), the compression
//! function is one round in a loop instead: about 1.9 KB less code, for a kernel whose hashing is
//! not on the boot path and whose image is sent over the air (`docs/delta-updates.md`). The
//! bootloader keeps the unrolled one.
//!
//! The rotations are written in the folded forms `ROTR(x ^ ROTR(x, a) ^ ROTR(x, b), c)` so that the
//! outer rotation merges into the Thumb-2 shifted-operand addition.

/// Round constants, in the four groups of sixteen rounds the compression function runs.
const K: [[u32; 16]; 4] = [
    [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174,
    ],
    [
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc,
        0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
        0x06ca6351, 0x14292967,
    ],
    [
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e,
        0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624,
        0xf40e3585, 0x106aa070,
    ],
    [
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
        0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb,
        0xbef9a3f7, 0xc67178f2,
    ],
];

/// Initial hash value.
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Streaming SHA-256.
#[derive(Clone, Debug)]
pub struct Sha256 {
    state: [u32; 8],
    /// A partial block waiting for more input; `buffered` bytes of it are valid (always < 64).
    block: [u8; 64],
    buffered: usize,
    /// Total input length in bytes.
    len: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    pub const fn new() -> Self {
        Sha256 {
            state: H0,
            block: [0; 64],
            buffered: 0,
            len: 0,
        }
    }

    /// The digest of `data`.
    pub fn digest(data: &[u8]) -> [u8; 32] {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buffered > 0 {
            let Some(room) = self.block.get_mut(self.buffered..) else {
                return;
            };
            let take = room.len().min(data.len());
            let (head, rest) = data.split_at(take);
            room[..take].copy_from_slice(head);
            self.buffered += take;
            data = rest;
            if self.buffered < 64 {
                return;
            }
            compress(&mut self.state, &self.block);
            self.buffered = 0;
        }
        // Whole blocks straight from the input, without copying them.
        let (blocks, tail) = data.as_chunks::<64>();
        for block in blocks {
            compress(&mut self.state, block);
        }
        self.block[..tail.len()].copy_from_slice(tail);
        self.buffered = tail.len();
    }

    pub fn finalize(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        // `buffered` < 64: there is always room for the 0x80 marker.
        let at = self.buffered.min(63);
        self.block[at] = 0x80;
        self.block[at + 1..].fill(0);
        if at >= 56 {
            compress(&mut self.state, &self.block);
            self.block = [0; 64];
        }
        self.block[56..].copy_from_slice(&bits.to_be_bytes());
        compress(&mut self.state, &self.block);
        let mut out = [0u8; 32];
        for (o, s) in out.as_chunks_mut::<4>().0.iter_mut().zip(self.state) {
            *o = s.to_be_bytes();
        }
        out
    }
}

/// `Σ0(a) + Maj(a, b, c)`.
#[inline(always)]
fn sum0_maj(a: u32, b: u32, c: u32) -> u32 {
    let sum0 = (a ^ a.rotate_right(11) ^ a.rotate_right(20)).rotate_right(2);
    let maj = ((a ^ b) & (b ^ c)) ^ b;
    sum0.wrapping_add(maj)
}

/// `Σ1(e) + Ch(e, f, g)`.
#[inline(always)]
fn sum1_ch(e: u32, f: u32, g: u32) -> u32 {
    let sum1 = (e ^ e.rotate_right(5) ^ e.rotate_right(19)).rotate_right(6);
    let ch = ((f ^ g) & e) ^ g;
    sum1.wrapping_add(ch)
}

/// One round; the caller rotates the names of the working variables instead of their values.
#[cfg(not(ota_image_sha256_rolled))]
macro_rules! round {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $kw:expr) => {
        let t1 = $h.wrapping_add(sum1_ch($e, $f, $g)).wrapping_add($kw);
        $d = $d.wrapping_add(t1);
        $h = t1.wrapping_add(sum0_maj($a, $b, $c));
    };
}

/// Sixteen rounds over the schedule `w` with the constants `k`.
#[cfg(not(ota_image_sha256_rolled))]
macro_rules! sixteen_rounds {
    ($a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident, $k:ident, $w:ident) => {
        round!($a, $b, $c, $d, $e, $f, $g, $h, $k[0].wrapping_add($w[0]));
        round!($h, $a, $b, $c, $d, $e, $f, $g, $k[1].wrapping_add($w[1]));
        round!($g, $h, $a, $b, $c, $d, $e, $f, $k[2].wrapping_add($w[2]));
        round!($f, $g, $h, $a, $b, $c, $d, $e, $k[3].wrapping_add($w[3]));
        round!($e, $f, $g, $h, $a, $b, $c, $d, $k[4].wrapping_add($w[4]));
        round!($d, $e, $f, $g, $h, $a, $b, $c, $k[5].wrapping_add($w[5]));
        round!($c, $d, $e, $f, $g, $h, $a, $b, $k[6].wrapping_add($w[6]));
        round!($b, $c, $d, $e, $f, $g, $h, $a, $k[7].wrapping_add($w[7]));
        round!($a, $b, $c, $d, $e, $f, $g, $h, $k[8].wrapping_add($w[8]));
        round!($h, $a, $b, $c, $d, $e, $f, $g, $k[9].wrapping_add($w[9]));
        round!($g, $h, $a, $b, $c, $d, $e, $f, $k[10].wrapping_add($w[10]));
        round!($f, $g, $h, $a, $b, $c, $d, $e, $k[11].wrapping_add($w[11]));
        round!($e, $f, $g, $h, $a, $b, $c, $d, $k[12].wrapping_add($w[12]));
        round!($d, $e, $f, $g, $h, $a, $b, $c, $k[13].wrapping_add($w[13]));
        round!($c, $d, $e, $f, $g, $h, $a, $b, $k[14].wrapping_add($w[14]));
        round!($b, $c, $d, $e, $f, $g, $h, $a, $k[15].wrapping_add($w[15]));
    };
}

/// The next sixteen schedule words, in place: `W[t] = σ1(W[t-2]) + W[t-7] + σ0(W[t-15]) + W[t-16]`.
/// Spelled out per index so that every index is a constant even in a size-optimised build.
#[cfg(not(ota_image_sha256_rolled))]
macro_rules! next_schedule {
    ($w:ident; $($t:literal)*) => {
        $(
            let w15 = $w[($t + 1) % 16];
            let w2 = $w[($t + 14) % 16];
            let sigma0 = (w15 ^ w15.rotate_right(11)).rotate_right(7) ^ (w15 >> 3);
            let sigma1 = (w2 ^ w2.rotate_right(2)).rotate_right(17) ^ (w2 >> 10);
            $w[$t] = $w[$t]
                .wrapping_add(sigma0)
                .wrapping_add($w[($t + 9) % 16])
                .wrapping_add(sigma1);
        )*
    };
}

/// The message block as big-endian words.
#[cfg(not(ota_image_sha256_rolled))]
macro_rules! load_words {
    ($block:ident; $($t:literal)*) => {
        [$(u32::from_be_bytes([
            $block[4 * $t],
            $block[4 * $t + 1],
            $block[4 * $t + 2],
            $block[4 * $t + 3],
        ])),*]
    };
}

#[cfg(not(ota_image_sha256_rolled))]
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w: [u32; 16] = load_words!(block; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
    for (group, k) in K.iter().enumerate() {
        if group > 0 {
            next_schedule!(w; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
        }
        sixteen_rounds!(a, b, c, d, e, f, g, h, k, w);
    }
    for (s, x) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(x);
    }
}

#[cfg(ota_image_sha256_rolled)]
use compress_rolled as compress;

/// The same compression function, one round per loop iteration: the working variables move
/// instead of being renamed, and the schedule word of round `t` is computed in round `t`.
#[cfg(any(ota_image_sha256_rolled, test))]
fn compress_rolled(state: &mut [u32; 8], block: &[u8; 64]) {
    let mut w = [0u32; 16];
    for (w, bytes) in w.iter_mut().zip(block.as_chunks::<4>().0) {
        *w = u32::from_be_bytes(*bytes);
    }
    let mut v = *state;
    for (t, k) in K.as_flattened().iter().enumerate() {
        let i = t % 16;
        if t >= 16 {
            let w15 = w[(i + 1) % 16];
            let w2 = w[(i + 14) % 16];
            let sigma0 = (w15 ^ w15.rotate_right(11)).rotate_right(7) ^ (w15 >> 3);
            let sigma1 = (w2 ^ w2.rotate_right(2)).rotate_right(17) ^ (w2 >> 10);
            w[i] = w[i]
                .wrapping_add(sigma0)
                .wrapping_add(w[(i + 9) % 16])
                .wrapping_add(sigma1);
        }
        let [a, b, c, d, e, f, g, h] = v;
        let t1 = h
            .wrapping_add(sum1_ch(e, f, g))
            .wrapping_add(k.wrapping_add(w[i]));
        v = [
            t1.wrapping_add(sum0_maj(a, b, c)),
            a,
            b,
            c,
            d.wrapping_add(t1),
            e,
            f,
            g,
        ];
    }
    for (s, x) in state.iter_mut().zip(v) {
        *s = s.wrapping_add(x);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::Sha256;
    use sha2::Digest;
    use std::{format, string::String, vec::Vec};

    fn hex(d: [u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn fips_180_examples() {
        assert_eq!(
            hex(Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(Sha256::digest(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        let mut h = Sha256::new();
        for _ in 0..15_625 {
            h.update(&[b'a'; 64]);
        }
        assert_eq!(
            hex(h.finalize()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    /// The rolled compression function (kernel builds) gives the unrolled one's state for
    /// every block and chaining state drawn here.
    #[cfg(not(ota_image_sha256_rolled))]
    #[test]
    fn rolled_compression_agrees_with_unrolled() {
        let mut x = 0x2545_f491_u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..500 {
            let mut state = [0u32; 8];
            state.iter_mut().for_each(|s| *s = next());
            let mut block = [0u8; 64];
            block.iter_mut().for_each(|b| *b = next() as u8);
            let (mut unrolled, mut rolled) = (state, state);
            super::compress(&mut unrolled, &block);
            super::compress_rolled(&mut rolled, &block);
            assert_eq!(rolled, unrolled, "state {state:08x?} block {block:02x?}");
        }
    }

    /// Every length around the padding boundaries, fed whole and in uneven pieces, against sha2.
    #[test]
    fn agrees_with_sha2_for_every_length_and_split() {
        let data: Vec<u8> = (0..700u32).map(|i| (i * 31 + i / 7) as u8).collect();
        for len in 0..data.len() {
            let msg = &data[..len];
            let want: [u8; 32] = sha2::Sha256::digest(msg).into();
            assert_eq!(Sha256::digest(msg), want, "length {len}");
            for piece in [1, 3, 55, 63, 64, 65, 200] {
                let mut h = Sha256::new();
                for chunk in msg.chunks(piece) {
                    h.update(chunk);
                }
                h.update(&[]);
                assert_eq!(h.finalize(), want, "length {len} in pieces of {piece}");
            }
        }
    }
}
