//! Shared by the tests: an encoder (lzma-rust2, imgtool's settings unless told otherwise), a
//! reference decoder (lzma-rust2), and a driver that runs [`Decoder`] against a flash stand-in
//! with a chosen input chunking and completion order.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::num::NonZeroU64;

use lzma_rust2::filter::bcj::{BcjReader, BcjWriter};
use lzma_rust2::{Lzma2Options, Lzma2Reader, Lzma2Writer};
use ota_lzma::{Decoder, Error, Filter, Op, Stats};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Encoder settings.
#[derive(Debug, Clone, Copy)]
pub struct Enc {
    pub preset: u32,
    pub dict: u32,
    pub lc: u32,
    pub lp: u32,
    pub pb: u32,
    pub chunk: Option<u64>,
}

/// imgtool's: preset 9, 128 KiB dictionary, lc=3 lp=1 pb=2, one chunk run.
pub const IMGTOOL: Enc = Enc {
    preset: 9,
    dict: 128 * 1024,
    lc: 3,
    lp: 1,
    pb: 2,
    chunk: None,
};

/// imgtool's 2-byte header for `e`.
pub fn header(e: &Enc) -> [u8; 2] {
    let code = (0u8..40)
        .find(|&c| u64::from(e.dict) <= u64::from(2 | (c & 1)) << (c / 2 + 11))
        .unwrap();
    [code, ((e.pb * 5 + e.lp) * 9 + e.lc) as u8]
}

/// The compressed payload as imgtool lays it out: 2-byte header, then the raw LZMA2 stream.
pub fn compress(plain: &[u8], filter: Filter, e: &Enc) -> Vec<u8> {
    let mut opts = Lzma2Options::with_preset(e.preset);
    opts.lzma_options.dict_size = e.dict;
    opts.lzma_options.lc = e.lc;
    opts.lzma_options.lp = e.lp;
    opts.lzma_options.pb = e.pb;
    opts.set_chunk_size(e.chunk.and_then(NonZeroU64::new));
    let out = header(e).to_vec();
    let w = Lzma2Writer::new(out, opts);
    match filter {
        Filter::None => {
            let mut w = w;
            w.write_all(plain).unwrap();
            w.finish().unwrap()
        }
        Filter::ArmThumb => {
            let mut w = BcjWriter::new_arm_thumb(w, 0);
            w.write_all(plain).unwrap();
            w.finish().unwrap().finish().unwrap()
        }
    }
}

/// lzma-rust2's decoding of a payload (header + stream).
pub fn reference(payload: &[u8], filter: Filter) -> Vec<u8> {
    let r = Lzma2Reader::new(&payload[2..], 1 << 20, None);
    let mut out = Vec::new();
    match filter {
        Filter::None => r.take(1 << 24).read_to_end(&mut out).unwrap(),
        Filter::ArmThumb => BcjReader::new_arm_thumb(r, 0)
            .take(1 << 24)
            .read_to_end(&mut out)
            .unwrap(),
    };
    out
}

/// How the driver feeds input and completes operations.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub seed: u64,
    /// Largest input piece pushed at once (pieces are 1..=max_piece, random).
    pub max_piece: usize,
    /// Chance in percent that an outstanding operation is left pending for a turn while input is
    /// pushed or the decoder is polled again.
    pub delay_pct: u32,
}

pub const STRAIGHT: Schedule = Schedule {
    seed: 0,
    max_piece: 4096,
    delay_pct: 0,
};

/// The outcome of a run: the output room's content (0xff where never written) and the counters.
pub struct Run {
    pub flash: Vec<u8>,
    pub stats: Stats,
    pub polls: u64,
}

/// Decodes `payload` (header + stream) with a `Decoder<W, B>` into a flash stand-in of
/// `capacity` bytes. Checks the decoder's promises on the way: writes are in order and each
/// lands on erased flash, reads ask only for bytes already written, and every poll either
/// makes progress or asks for something.
pub fn run<const W: usize, const B: usize>(
    payload: &[u8],
    filter: Filter,
    len: u32,
    capacity: u32,
    s: Schedule,
) -> Result<Run, Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let head: [u8; 2] = payload
        .get(..2)
        .and_then(|h| h.try_into().ok())
        .unwrap_or([0xff; 2]);
    let mut d = Decoder::<W, B>::new(head, filter, len, capacity)?;
    let mut flash = vec![0xffu8; capacity as usize];
    let mut written = 0usize;
    let mut input = payload.get(2..).unwrap_or(&[]);
    let mut finished = false;
    let mut polls = 0u64;
    // Every turn either pushes input, completes an operation or gets a new answer; a decoder that
    // loops would exceed this.
    let limit = 64 * (payload.len() as u64 + u64::from(len)) + 10_000;
    loop {
        polls += 1;
        assert!(polls < limit, "decoder made no progress");
        // Sometimes push input before polling, whatever is outstanding.
        if !input.is_empty() && rng.gen_range(0..100) < s.delay_pct {
            let n = rng.gen_range(1..=s.max_piece.min(input.len()));
            let took = d.push_input(&input[..n]);
            input = &input[took..];
        }
        let op = d.poll()?;
        let delay = rng.gen_range(0..100) < s.delay_pct;
        match op {
            Op::Done { len: n } => {
                assert_eq!(n, len);
                assert_eq!(written, len as usize, "done before all output was written");
                return Ok(Run {
                    flash,
                    stats: d.stats(),
                    polls,
                });
            }
            Op::NeedInput => {
                if input.is_empty() {
                    assert!(!finished, "NeedInput after finish_input");
                    d.finish_input();
                    finished = true;
                } else {
                    let n = rng.gen_range(1..=s.max_piece.min(input.len()));
                    let took = d.push_input(&input[..n]);
                    assert!(took > 0, "asked for input but took none");
                    input = &input[took..];
                }
            }
            Op::Write { offset, data } => {
                if delay {
                    continue;
                }
                let (o, n) = (offset as usize, data.len());
                assert_eq!(o, written, "writes out of order");
                assert!(
                    n > 0 && o + n <= capacity as usize,
                    "write outside the room"
                );
                assert!(
                    flash[o..o + n].iter().all(|&b| b == 0xff),
                    "write over written flash"
                );
                flash[o..o + n].copy_from_slice(data);
                written += n;
                d.write_done()?;
            }
            Op::Read { offset, len: n } => {
                if delay {
                    continue;
                }
                let o = offset as usize;
                assert!(o + n <= written, "read of bytes not written yet");
                let bytes = flash[o..o + n].to_vec();
                d.read_done(&bytes)?;
            }
        }
    }
}

/// Decodes with the defaults (4 KiB window, 2 KiB blocks) and returns the plain bytes.
pub fn decode(payload: &[u8], filter: Filter, len: u32, s: Schedule) -> Result<Vec<u8>, Error> {
    let r = run::<4096, 2048>(payload, filter, len, len, s)?;
    Ok(r.flash)
}

/// Thumb-2-like code: BL pairs, literal pools, repeated strings and noise.
pub fn code_like(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::with_capacity(len);
    let strings: [&[u8]; 3] = [b"panicked at ", b"index out of bounds\0", b"capsules/src/"];
    while v.len() < len {
        match rng.gen_range(0..10) {
            0..=3 => {
                let target: u32 = rng.gen_range(0..0x4_0000) & !1;
                let rel = target.wrapping_sub(v.len() as u32 + 4) >> 1;
                v.extend_from_slice(&[
                    (rel >> 11) as u8,
                    0xF0 | ((rel >> 19) & 7) as u8,
                    rel as u8,
                    0xF8 | ((rel >> 8) & 7) as u8,
                ]);
            }
            4..=6 => v.extend_from_slice(&[0x10, 0xb5, 0x04, 0x46, 0x00, 0x28, 0x01, 0xd0]),
            7 => v.extend_from_slice(strings[rng.gen_range(0..3)]),
            8 => v.extend_from_slice(&rng.gen::<u32>().to_le_bytes()),
            _ => v.extend(std::iter::repeat_n(0, rng.gen_range(1..64))),
        }
    }
    v.truncate(len);
    v
}

pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.gen()).collect()
}

/// The parts of an imgtool image the tests need: header size, payload, flags and protected TLVs.
pub struct Image<'a> {
    pub header_size: usize,
    pub flags: u32,
    pub payload: &'a [u8],
    pub protected: Vec<(u16, &'a [u8])>,
}

pub fn parse(img: &[u8]) -> Image<'_> {
    let info = ota_image::parse_image(&mut &img[..]).expect("an MCUboot image");
    let header_size = info.payload_offset as usize;
    let protected = info
        .tlvs()
        .filter(|t| t.area == ota_image::TlvArea::Protected)
        .map(|t| {
            let at = t.value_offset as usize;
            (t.kind, &img[at..at + usize::from(t.len)])
        })
        .collect();
    Image {
        header_size,
        flags: info.header.flags,
        payload: &img[header_size..header_size + info.payload_len as usize],
        protected,
    }
}

impl Image<'_> {
    pub fn tlv(&self, kind: u16) -> Option<&[u8]> {
        self.protected.iter().find(|t| t.0 == kind).map(|t| t.1)
    }

    /// DECOMP_SIZE.
    pub fn decomp_size(&self) -> u32 {
        u32::from_le_bytes(self.tlv(0x70).expect("DECOMP_SIZE").try_into().unwrap())
    }

    pub fn filter(&self) -> Filter {
        match self.flags & 0xe00 {
            0x400 => Filter::None,
            0xc00 => Filter::ArmThumb,
            f => panic!("compression flags {f:#x}"),
        }
    }
}

/// `<repo>/.venv/bin/imgtool`, else `imgtool` on PATH.
pub fn imgtool() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/imgtool");
    if venv.exists() {
        venv
    } else {
        "imgtool".into()
    }
}

/// Signs `plain` with imgtool (`--pad-header -H 0x200`, a fresh key, `compression` =
/// `lzma2` / `lzma2armthumb`, or `none`) and returns the image.
pub fn imgtool_sign(plain: &[u8], compression: &str, dir: &std::path::Path) -> Vec<u8> {
    use std::process::Command;
    let key = dir.join("key.pem");
    if !key.exists() {
        let st = Command::new(imgtool())
            .args(["keygen", "-t", "ecdsa-p256", "-k"])
            .arg(&key)
            .status()
            .expect("imgtool (bash .ci/setup installs it into .venv)");
        assert!(st.success());
    }
    let input = dir.join("plain.bin");
    let out = dir.join(format!("signed-{compression}.bin"));
    std::fs::write(&input, plain).unwrap();
    let st = Command::new(imgtool())
        .args(["sign", "-k"])
        .arg(&key)
        .args([
            "--pad-header",
            "-H",
            "0x200",
            "-v",
            "1.2.3",
            "-S",
            "0x40000",
        ])
        .args(["--security-counter", "5"])
        .args(if compression == "none" {
            vec![]
        } else {
            vec!["--compression", compression]
        })
        .arg(&input)
        .arg(&out)
        .output()
        .expect("imgtool");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    std::fs::read(out).unwrap()
}

/// The public key of the key `imgtool_sign` made in `dir` (x then y).
pub fn imgtool_pub(dir: &std::path::Path) -> [u8; 64] {
    let out = std::process::Command::new(imgtool())
        .args(["getpub", "-e", "raw", "-k"])
        .arg(dir.join("key.pem"))
        .output()
        .unwrap();
    assert!(out.status.success());
    // DER SubjectPublicKeyInfo: the uncompressed point's x and y are its last 64 bytes.
    out.stdout[out.stdout.len() - 64..].try_into().unwrap()
}
