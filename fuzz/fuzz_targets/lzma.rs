//! The compressed-image decoder (`ota_lzma::Decoder`, 1 KiB window so that read-backs are many)
//! on arbitrary payloads, declared lengths, filters and input chunkings. It must never panic,
//! must keep asking for something (input, a write, a read-back) until it ends, must write in
//! order onto erased room only, must read back only bytes it wrote, and must end with exactly the
//! declared length written or an error. When it accepts a stream, lzma-rust2 must not decode that
//! stream to other bytes.
//!
//! Input: byte 0 = filter (bit 0) and largest input piece (bits 1..=7, plus 1); bytes 1..=3 =
//! declared length (little-endian, at most 256 KiB); the rest = payload (2-byte header + stream).
#![no_main]
use std::io::Read;

use libfuzzer_sys::fuzz_target;
use ota_lzma::{Decoder, Filter, Op};

const CAPACITY: u32 = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let [opts, l0, l1, l2, h0, h1, rest @ ..] = data else {
        return;
    };
    let filter = if opts & 1 == 1 {
        Filter::ArmThumb
    } else {
        Filter::None
    };
    let piece = usize::from(opts >> 1) + 1;
    let len = u32::from_le_bytes([*l0, *l1, *l2, 0]).min(CAPACITY);
    let Ok(mut d) = Decoder::<1024, 512>::new([*h0, *h1], filter, len, CAPACITY) else {
        return;
    };
    let mut flash = vec![0xffu8; CAPACITY as usize];
    let mut written = 0usize;
    let mut input = rest;
    let mut finished = false;
    let mut turns = 0u64;
    let result = loop {
        turns += 1;
        assert!(
            turns < 64 * (rest.len() as u64 + u64::from(len)) + 1000,
            "no progress"
        );
        match d.poll() {
            Err(e) => break Err(e),
            Ok(Op::Done { len: n }) => {
                assert_eq!(n, len);
                assert_eq!(written, len as usize);
                break Ok(());
            }
            Ok(Op::NeedInput) => {
                if input.is_empty() {
                    assert!(!finished);
                    d.finish_input();
                    finished = true;
                } else {
                    let k = d.push_input(&input[..piece.min(input.len())]);
                    assert!(k > 0);
                    input = &input[k..];
                }
            }
            Ok(Op::Write { offset, data }) => {
                let o = offset as usize;
                assert_eq!(o, written);
                assert!(!data.is_empty() && o + data.len() <= len as usize);
                assert!(flash[o..o + data.len()].iter().all(|&b| b == 0xff));
                flash[o..o + data.len()].copy_from_slice(data);
                written += data.len();
                d.write_done().unwrap();
            }
            Ok(Op::Read { offset, len: n }) => {
                let o = offset as usize;
                assert!(n > 0 && o + n <= written);
                let bytes = flash[o..o + n].to_vec();
                d.read_done(&bytes).unwrap();
            }
        }
    };
    if result.is_ok() && input.is_empty() {
        let r = lzma_rust2::Lzma2Reader::new(rest, 1 << 20, None);
        let mut out = Vec::new();
        let res = match filter {
            Filter::None => r.take(u64::from(len) + 1).read_to_end(&mut out),
            Filter::ArmThumb => lzma_rust2::filter::bcj::BcjReader::new_arm_thumb(r, 0)
                .take(u64::from(len) + 1)
                .read_to_end(&mut out),
        };
        if res.is_ok() {
            assert!(
                out[..] == flash[..len as usize],
                "lzma-rust2 decodes otherwise"
            );
        }
    }
});
