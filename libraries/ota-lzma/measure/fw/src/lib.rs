//! Entry points for measure/run.sh: `lzma_start` + `lzma_step` reach every path of the payload
//! decoder, `image_restart` + `image_step` add the reconstruction kind; `decode_all` decodes the
//! payload embedded at build time into a stack buffer standing in for the staging slot and
//! returns the read-back count and an FNV-1a hash of the output for the host to check.
//!
//! No unsafe code: the only items the lint counts are the `#[no_mangle]` exports the linker and
//! the emulator look up by name, each allowed where it stands.
#![no_std]
#![deny(unsafe_code)]

use ota_lzma::image::CompressedImage;
use ota_lzma::{Decoder, Filter, Op};
use ota_reconstruct::Decoder as _;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

type D = Decoder<4096, 256>;

const PAYLOAD: &[u8] = include_bytes!(env!("OTA_LZMA_PAYLOAD"));
const OUT_MAX: usize = 0x3_8000;

const fn parse(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0u32;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    v
}
const LEN: u32 = parse(env!("OTA_LZMA_LEN"));
const THUMB: u32 = parse(env!("OTA_LZMA_THUMB"));

#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn lzma_start(d: &mut D, h: &[u8; 2], thumb: bool, len: u32) -> bool {
    let f = if thumb {
        Filter::ArmThumb
    } else {
        Filter::None
    };
    d.start(*h, f, len, 0x3_8000).is_ok()
}

#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn lzma_step(d: &mut D, io: &mut [u8; 300], n: usize) -> i32 {
    let k = d.push_input(&io[..n.min(300)]);
    let r = match d.poll() {
        Ok(Op::NeedInput) => 1,
        Ok(Op::Write { data, .. }) => {
            io[..data.len()].copy_from_slice(data);
            2
        }
        Ok(Op::Read { len, .. }) => {
            let _ = d.read_done(&io[..len.min(300)]);
            3
        }
        Ok(Op::Done { .. }) => 4,
        Err(_) => -1,
    };
    if n == 0 {
        d.finish_input();
        let _ = d.write_done();
    }
    r + k as i32
}

#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn image_restart(d: &mut CompressedImage) {
    d.restart(0x3_8000);
}

#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn image_step(
    d: &mut CompressedImage,
    io: &mut [u8; 256],
    out: &mut [u8; 256],
    n: usize,
) -> i32 {
    match d.decode(&io[..n.min(256)], out) {
        Ok(p) => (p.consumed + p.produced) as i32,
        Err(_) => d.provide(&io[..1]).map_or(-1, |()| 0),
    }
}

/// Read-backs (low 32 bits) and the output's FNV-1a (high 32 bits); u64::MAX on an error.
#[allow(unsafe_code)]
#[no_mangle]
pub extern "C" fn decode_all() -> u64 {
    let mut d = D::IDLE;
    let mut out = [0u8; OUT_MAX];
    let n = (LEN as usize).min(OUT_MAX);
    let f = if THUMB != 0 {
        Filter::ArmThumb
    } else {
        Filter::None
    };
    if d.start([PAYLOAD[0], PAYLOAD[1]], f, n as u32, OUT_MAX as u32)
        .is_err()
    {
        return u64::MAX;
    }
    let mut input = &PAYLOAD[2..];
    let reads = loop {
        match d.poll() {
            Ok(Op::NeedInput) if input.is_empty() => d.finish_input(),
            Ok(Op::NeedInput) => {
                let k = d.push_input(&input[..input.len().min(256)]);
                input = &input[k..];
            }
            Ok(Op::Write { offset, data }) => {
                out[offset as usize..offset as usize + data.len()].copy_from_slice(data);
                let _ = d.write_done();
            }
            Ok(Op::Read { offset, len }) => {
                let mut b = [0u8; 288];
                b[..len].copy_from_slice(&out[offset as usize..offset as usize + len]);
                let _ = d.read_done(&b[..len]);
            }
            Ok(Op::Done { .. }) => break d.stats().reads,
            Err(_) => return u64::MAX,
        }
    };
    let mut h = 0x811c_9dc5u32;
    for &b in &out[..n] {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    u64::from(h) << 32 | u64::from(reads)
}
