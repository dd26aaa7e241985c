//! Delta patches (`ota_reconstruct::delta`) driven by `ota_reconstruct::Rebuild`. First byte
//! even: the rest is a base and an arbitrary patch; the rebuild must never panic, must end,
//! must write in order from 0 and never before the base's hash matched, and a patch it accepts
//! must have produced exactly the length its header names with that hash. First byte odd: the
//! rest is a base and a new image; the differ's patch must rebuild the new image exactly.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ota_reconstruct::delta::{DeltaDecoder, Header, HEADER_LEN};
use ota_reconstruct::diff::{apply_patch, make_patch};
use ota_reconstruct::{Action, Area, Limits, Rebuild};

const OUT_MAX: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(rest.first().copied().unwrap_or(0)) * rest.len() / 256;
    let (base, other) = rest.split_at(split);
    if mode & 1 == 1 {
        let patch = make_patch(base, other).expect("the differ takes any input");
        if !other.is_empty() {
            assert_eq!(apply_patch(&patch, base).expect("its own patch"), other);
        }
        return;
    }
    let patch = other;
    let limits = Limits {
        stream_len: patch.len() as u32,
        base_max: base.len() as u32,
        output_max: OUT_MAX,
    };
    let mut r = Rebuild::new(DeltaDecoder::new(), limits);
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    let mut base_read = 0usize;
    let mut action = r.start();
    let mut turns = 0u64;
    loop {
        turns += 1;
        assert!(
            turns < 8 * (patch.len() as u64 + u64::from(OUT_MAX)) + 1000,
            "no end"
        );
        action = match action {
            Action::Read { area, offset, len } => {
                let src = match area {
                    Area::Stream => patch,
                    Area::Base => base,
                    Area::Output => &out[..],
                };
                let at = offset as usize;
                let bytes = src.get(at..at + len).expect("reads stay inside their area");
                if area == Area::Base {
                    base_read += len;
                }
                buf[..len].copy_from_slice(bytes);
                r.read_done(&buf[..len])
            }
            Action::Write { offset, data } => {
                assert_eq!(offset as usize, out.len(), "writes in order");
                let header = Header::parse(patch[..HEADER_LEN].try_into().unwrap()).unwrap();
                assert!(
                    base_read >= header.base.len as usize,
                    "write before the base check"
                );
                out.extend_from_slice(data);
                assert!(out.len() <= OUT_MAX as usize);
                r.write_done()
            }
            Action::Done(Ok(outcome)) => {
                let header = Header::parse(patch[..HEADER_LEN].try_into().unwrap()).unwrap();
                assert_eq!(outcome.output_len, header.output_len);
                assert_eq!(out.len(), header.output_len as usize);
                assert_eq!(outcome.output_sha256, header.output_sha256);
                return;
            }
            Action::Done(Err(_)) => return,
        };
    }
});
