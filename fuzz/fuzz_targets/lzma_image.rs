//! The compressed-image kind of the reconstruction step (`ota_lzma::image::CompressedImage`
//! driven by `ota_reconstruct::Rebuild`) on arbitrary streams: it must never panic, must end
//! (every action either moves the stream or the output on, or ends), must write in order inside
//! the output room, and a stream it accepts must have produced exactly the planned length.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ota_lzma::image::CompressedImage;
use ota_reconstruct::{Action, Area, Limits, Rebuild};

const OUT_MAX: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        stream_len: data.len() as u32,
        base_max: 0,
        output_max: OUT_MAX,
    };
    let mut r = Rebuild::new(CompressedImage::new(60 * 1024), limits);
    let mut out = vec![0xffu8; OUT_MAX as usize];
    let mut written = 0usize;
    let mut buf = [0u8; 256];
    let mut action = r.start();
    let mut turns = 0u64;
    loop {
        turns += 1;
        assert!(
            turns < 4 * (data.len() as u64 + u64::from(OUT_MAX)) + 1000,
            "no end"
        );
        action = match action {
            Action::Read { area, offset, len } => {
                let src: &[u8] = match area {
                    Area::Stream => data,
                    Area::Output => &out[..written],
                    Area::Base => panic!("a compressed image reads no base"),
                };
                let o = offset as usize;
                assert!(o + len <= src.len(), "read outside {area:?}");
                buf[..len].copy_from_slice(&src[o..o + len]);
                r.read_done(&buf[..len])
            }
            Action::Write { offset, data: page } => {
                assert_eq!(offset as usize, written);
                out[written..written + page.len()].copy_from_slice(page);
                written += page.len();
                r.write_done()
            }
            Action::Done(Ok(o)) => {
                assert_eq!(o.output_len as usize, written);
                break;
            }
            Action::Done(Err(_)) => break,
        };
    }
});
