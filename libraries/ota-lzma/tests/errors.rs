//! Bad input ends in a named error, never a panic or a hang: bad headers, sizes beyond the room,
//! streams longer or shorter than declared, truncated, corrupt and trailing bytes, malformed
//! chunks, and completions that match no operation.
mod common;

use common::*;
use ota_lzma::{Decoder, Error, Filter, Op};

fn payload(filter: Filter) -> (Vec<u8>, Vec<u8>) {
    let data = code_like(20_000, 1);
    let p = compress(&data, filter, &IMGTOOL);
    (data, p)
}

fn err(payload: &[u8], filter: Filter, len: u32, capacity: u32) -> Error {
    match run::<1024, 512>(payload, filter, len, capacity, STRAIGHT) {
        Ok(_) => panic!("accepted"),
        Err(e) => e,
    }
}

#[test]
fn a_declared_size_beyond_the_room_is_refused_before_decoding() {
    let (data, p) = payload(Filter::ArmThumb);
    let n = data.len() as u32;
    assert_eq!(
        err(&p, Filter::ArmThumb, n, n - 1),
        Error::DeclaredSizeTooLarge {
            len: n,
            capacity: n - 1
        }
    );
    assert!(matches!(
        Decoder::<4096, 2048>::new(p[..2].try_into().unwrap(), Filter::None, u32::MAX, 229_376),
        Err(Error::DeclaredSizeTooLarge { .. })
    ));
}

#[test]
fn a_stream_longer_or_shorter_than_declared_is_refused() {
    let (data, p) = payload(Filter::None);
    let n = data.len() as u32;
    assert_eq!(
        err(&p, Filter::None, n - 1, n),
        Error::OutputTooLong { declared: n - 1 }
    );
    assert_eq!(
        err(&p, Filter::None, n + 1, n + 1),
        Error::OutputTooShort {
            declared: n + 1,
            actual: n
        }
    );
}

#[test]
fn bad_headers_are_refused() {
    for h in [[41, 102], [21, 102], [10, 225], [10, 4 + 9], [10, 5 * 45]] {
        assert!(
            matches!(Decoder::<4096, 2048>::new(h, Filter::None, 10, 10), Err(Error::BadHeader(x)) if x == h),
            "{h:?}"
        );
    }
    assert!(Decoder::<4096, 2048>::new([10, 102], Filter::None, 10, 10).is_ok());
}

#[test]
fn every_truncation_is_refused() {
    for filter in [Filter::None, Filter::ArmThumb] {
        let (data, p) = payload(filter);
        let n = data.len() as u32;
        for cut in 2..p.len() {
            let e = err(&p[..cut], filter, n, n);
            // Cutting off the end byte alone, or more: the stream never reaches its end.
            assert!(
                matches!(e, Error::Truncated | Error::CorruptChunk),
                "cut at {cut}: {e:?}"
            );
        }
    }
}

#[test]
fn bytes_after_the_end_are_refused() {
    let (data, mut p) = payload(Filter::None);
    p.push(0);
    let n = data.len() as u32;
    assert_eq!(err(&p, Filter::None, n, n), Error::TrailingData);
}

/// Every single-byte corruption of a stream: an error, or (when the damage falls where the
/// decoder cannot see it) some output of the declared length; never a panic or a hang.
#[test]
fn corrupt_streams_end_in_an_error_or_an_output_never_a_panic() {
    for filter in [Filter::None, Filter::ArmThumb] {
        let data = code_like(3000, 2);
        let p = compress(&data, filter, &IMGTOOL);
        let n = data.len() as u32;
        let mut refused = 0;
        for i in 2..p.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut q = p.clone();
                q[i] ^= x;
                if run::<1024, 512>(&q, filter, n, n, STRAIGHT).is_err() {
                    refused += 1;
                }
            }
        }
        // Most damage is seen by the decoder itself (the rest falls to the image's hash check).
        assert!(
            refused * 2 > 3 * (p.len() - 2),
            "{refused} of {}",
            3 * (p.len() - 2)
        );
    }
}

#[test]
fn random_streams_never_panic_or_hang() {
    for seed in 0..300 {
        let mut q = random_bytes(200 + seed as usize * 7, seed);
        q[0] = 10;
        q[1] = 102;
        // Make most of them start like a real stream so that decoding gets going.
        if seed % 2 == 0 {
            q[2] = 0xE0;
            q[3] = 0x1f;
            q[7] = 102;
            q[8] = 0;
        }
        let _ = run::<1024, 512>(&q, Filter::ArmThumb, 4000, 4000, STRAIGHT);
    }
}

/// A hand-made stream: header, chunks, end.
fn stream(chunks: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![10, 102];
    for c in chunks {
        v.extend_from_slice(c);
    }
    v
}

#[test]
fn malformed_chunks_are_named() {
    // An uncompressed chunk of 3 bytes with a dictionary reset, then the end: fine.
    let ok = stream(&[&[0x01, 0x00, 0x02, b'a', b'b', b'c'], &[0x00]]);
    let r = run::<1024, 512>(&ok, Filter::None, 3, 3, STRAIGHT).unwrap();
    assert_eq!(&r.flash, b"abc");

    let cases: [(&[&[u8]], Error); 6] = [
        (&[&[0x03]], Error::BadControl(0x03)),
        (&[&[0x7f]], Error::BadControl(0x7f)),
        // No dictionary reset first.
        (
            &[&[0x02, 0x00, 0x02, b'a', b'b', b'c']],
            Error::MissingDictionaryReset,
        ),
        (
            &[&[0xA0, 0x00, 0x02, 0x00, 0x05]],
            Error::MissingDictionaryReset,
        ),
        // LZMA chunk after a dictionary reset without properties.
        (
            &[&[0x01, 0x00, 0x00, b'a'], &[0x80, 0x00, 0x00, 0x00, 0x05]],
            Error::MissingProperties,
        ),
        // Properties LZMA2 does not allow (lc = 5, lp = 0: lc + lp > 4).
        (
            &[&[0xE0, 0x00, 0x00, 0x00, 0x05, 0x05]],
            Error::BadProperties(0x05),
        ),
    ];
    for (chunks, want) in cases {
        let s = stream(chunks);
        assert_eq!(err(&s, Filter::None, 3, 3), want, "{chunks:02x?}");
    }
    // A range coder whose first byte is not 0.
    let s = stream(&[&[0xE0, 0x00, 0x00, 0x00, 0x05, 102, 1, 0, 0, 0, 0]]);
    assert_eq!(err(&s, Filter::None, 1, 1), Error::CorruptChunk);
    // A chunk whose declared compressed size is too short for its coder.
    let s = stream(&[&[0xE0, 0x00, 0x00, 0x00, 0x03, 102]]);
    assert_eq!(err(&s, Filter::None, 1, 1), Error::CorruptChunk);
}

#[test]
fn completions_that_match_no_operation_are_refused() {
    let (data, p) = payload(Filter::None);
    let n = data.len() as u32;
    let mut d = Decoder::<1024, 512>::new([p[0], p[1]], Filter::None, n, n).unwrap();
    assert_eq!(d.write_done(), Err(Error::UnexpectedCompletion));
    assert_eq!(
        d.poll(),
        Err(Error::UnexpectedCompletion),
        "errors are final"
    );

    // A read-back answered with the wrong length.
    let p = compress(&code_like(60_000, 4), Filter::None, &IMGTOOL);
    let mut d = Decoder::<1024, 512>::new([p[0], p[1]], Filter::None, 60_000, 60_000).unwrap();
    let mut input = &p[2..];
    loop {
        match d.poll().unwrap() {
            Op::NeedInput => {
                let k = d.push_input(input);
                input = &input[k..];
            }
            Op::Write { .. } => d.write_done().unwrap(),
            Op::Read { len, .. } => {
                assert_eq!(
                    d.read_done(&vec![0; len + 1]),
                    Err(Error::ReadLength {
                        expected: len,
                        got: len + 1
                    })
                );
                break;
            }
            Op::Done { .. } => panic!("the data must need a read-back"),
        }
    }
    assert!(matches!(d.poll(), Err(Error::ReadLength { .. })));
}
