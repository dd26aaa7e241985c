//! The decoder against lzma-rust2: the same output on random, structured and code-like data, with
//! either filter, imgtool's and other encoder settings, several window sizes, any input chunking
//! and any completion order.
mod common;

use common::*;
use ota_lzma::Filter;
use proptest::prelude::*;

fn check(plain: &[u8], filter: Filter, e: &Enc, s: Schedule) {
    let payload = compress(plain, filter, e);
    assert_eq!(
        reference(&payload, filter),
        plain,
        "the reference decoder disagrees"
    );
    let out = decode(&payload, filter, plain.len() as u32, s)
        .unwrap_or_else(|err| panic!("{e:?} {s:?}: {err}"));
    assert!(out == plain, "{e:?} {s:?}: output differs");
}

const BOTH: [Filter; 2] = [Filter::None, Filter::ArmThumb];

#[test]
fn code_like_data_decodes_as_lzma_rust2_decodes_it() {
    for filter in BOTH {
        for seed in 0..3 {
            check(&code_like(100_000, seed), filter, &IMGTOOL, STRAIGHT);
        }
    }
}

#[test]
fn random_data_in_uncompressed_chunks_decodes() {
    // Incompressible: the encoder writes uncompressed chunks (control 1 and 2).
    for filter in BOTH {
        check(&random_bytes(150_000, 7), filter, &IMGTOOL, STRAIGHT);
    }
}

#[test]
fn structured_data_decodes() {
    let zeros = vec![0u8; 200_000];
    let ff = vec![0xffu8; 70_000];
    let ramp: Vec<u8> = (0..180_000u32).map(|i| (i / 3) as u8).collect();
    // Long matches far back: the same 8 KiB block again and again with little changes.
    let block = code_like(8192, 3);
    let mut reps = Vec::new();
    for i in 0..20u8 {
        reps.extend_from_slice(&block);
        reps.push(i);
    }
    // Compressible and incompressible stretches mixed, so chunk kinds alternate.
    let mut mixed = Vec::new();
    for i in 0..6 {
        mixed.extend_from_slice(&code_like(20_000, i));
        mixed.extend_from_slice(&random_bytes(70_000, i));
    }
    for data in [&zeros, &ff, &ramp, &reps, &mixed] {
        for filter in BOTH {
            check(data, filter, &IMGTOOL, STRAIGHT);
        }
    }
}

#[test]
fn short_outputs_decode_including_pairs_at_the_very_end() {
    // A BL pair that ends exactly at the end is converted, one a byte short is not.
    let bl = [0x00, 0xF0, 0x10, 0xF8];
    for len in 0..12usize {
        let mut v: Vec<u8> = bl.iter().cycle().take(len).copied().collect();
        for filter in BOTH {
            check(&v, filter, &IMGTOOL, STRAIGHT);
        }
        v.insert(0, 0x55);
        for filter in BOTH {
            check(&v, filter, &IMGTOOL, STRAIGHT);
        }
    }
}

#[test]
fn other_encoder_settings_decode() {
    let data = code_like(120_000, 11);
    let settings = [
        Enc {
            lc: 0,
            lp: 0,
            pb: 0,
            ..IMGTOOL
        },
        Enc {
            lc: 4,
            lp: 0,
            pb: 4,
            ..IMGTOOL
        },
        Enc {
            lc: 0,
            lp: 4,
            pb: 1,
            ..IMGTOOL
        },
        Enc {
            preset: 0,
            ..IMGTOOL
        },
        Enc {
            preset: 6,
            dict: 4096,
            ..IMGTOOL
        },
        Enc {
            dict: 1 << 20,
            ..IMGTOOL
        },
        // Many chunks, each with a state reset (and new properties).
        Enc {
            chunk: Some(4096),
            dict: 4096,
            ..IMGTOOL
        },
    ];
    for e in &settings {
        for filter in BOTH {
            check(&data, filter, e, STRAIGHT);
        }
    }
}

/// Same output with every window size, and fewer read-backs the larger the window.
#[test]
fn window_sizes_agree_and_a_larger_window_reads_less() {
    let data = code_like(150_000, 5);
    for filter in BOTH {
        let payload = compress(&data, filter, &IMGTOOL);
        let n = data.len() as u32;
        let small = run::<1024, 512>(&payload, filter, n, n, STRAIGHT).unwrap();
        let mid = run::<4096, 2048>(&payload, filter, n, n, STRAIGHT).unwrap();
        let big = run::<16384, 4096>(&payload, filter, n, n, STRAIGHT).unwrap();
        for r in [&small, &mid, &big] {
            assert!(r.flash == data);
        }
        assert!(
            small.stats.reads > mid.stats.reads,
            "{:?} {:?}",
            small.stats,
            mid.stats
        );
        assert!(
            mid.stats.reads > big.stats.reads,
            "{:?} {:?}",
            mid.stats,
            big.stats
        );
        assert!(
            big.stats.reads > 0,
            "the test data must reach beyond the window"
        );
        assert_eq!(mid.stats.bytes_written, n);
        assert_eq!(mid.stats.writes, n.div_ceil(2048));
    }
}

/// Every split of the input into two pieces decodes the same.
#[test]
fn every_split_point_of_the_input_decodes() {
    let data = code_like(6000, 21);
    for filter in BOTH {
        let payload = compress(&data, filter, &IMGTOOL);
        let stream = &payload[2..];
        for k in 0..=stream.len() {
            let out = two_pieces(
                &payload[..2],
                &stream[..k],
                &stream[k..],
                filter,
                data.len(),
            );
            assert!(out == data, "split at {k}");
        }
    }
}

fn two_pieces(head: &[u8], a: &[u8], b: &[u8], filter: Filter, len: usize) -> Vec<u8> {
    use ota_lzma::{Decoder, Op};
    let mut d = Decoder::<1024, 512>::new(head.try_into().unwrap(), filter, len as u32, len as u32)
        .unwrap();
    let mut pieces = [a, b].into_iter();
    let mut cur: &[u8] = &[];
    let mut flash = Vec::new();
    loop {
        match d.poll().unwrap() {
            Op::NeedInput => {
                while cur.is_empty() {
                    match pieces.next() {
                        Some(p) => cur = p,
                        None => {
                            d.finish_input();
                            break;
                        }
                    }
                }
                let n = d.push_input(cur);
                cur = &cur[n..];
            }
            Op::Write { data, .. } => {
                flash.extend_from_slice(data);
                d.write_done().unwrap();
            }
            Op::Read { offset, len } => {
                let b = flash[offset as usize..offset as usize + len].to_vec();
                d.read_done(&b).unwrap();
            }
            Op::Done { .. } => return flash,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any input chunking (pieces of 1..=max bytes) and any delay of completions behind pushes and
    /// polls give the same output.
    #[test]
    fn any_chunking_and_completion_order_decodes(
        seed in any::<u64>(),
        max_piece in 1usize..600,
        delay_pct in 0u32..90,
        thumb in any::<bool>(),
        data_seed in 0u64..4,
    ) {
        let data = code_like(40_000, data_seed);
        let filter = if thumb { Filter::ArmThumb } else { Filter::None };
        let payload = compress(&data, filter, &IMGTOOL);
        let n = data.len() as u32;
        let s = Schedule { seed, max_piece, delay_pct };
        let r = run::<1024, 512>(&payload, filter, n, n, s).unwrap();
        prop_assert!(r.flash == data);
    }
}

/// A decoder kept in one place and started again (as a device keeps it in a `static`) decodes
/// the next payload as a new one would; an idle one refuses to run.
#[test]
fn a_restarted_decoder_decodes_like_a_new_one() {
    use ota_lzma::{Decoder, Error, Op};
    let mut d = Decoder::<1024, 512>::IDLE;
    assert_eq!(d.poll(), Err(Error::NotStarted));
    for (seed, filter) in [
        (1, Filter::ArmThumb),
        (2, Filter::None),
        (3, Filter::ArmThumb),
    ] {
        let data = code_like(30_000, seed);
        let p = compress(&data, filter, &IMGTOOL);
        let n = data.len() as u32;
        d.start([p[0], p[1]], filter, n, n).unwrap();
        let mut input = &p[2..];
        let mut out = Vec::new();
        loop {
            match d.poll().unwrap() {
                Op::NeedInput if input.is_empty() => d.finish_input(),
                Op::NeedInput => {
                    let k = d.push_input(input);
                    input = &input[k..];
                }
                Op::Write { data, .. } => {
                    out.extend_from_slice(data);
                    d.write_done().unwrap();
                }
                Op::Read { offset, len } => {
                    let b = out[offset as usize..offset as usize + len].to_vec();
                    d.read_done(&b).unwrap();
                }
                Op::Done { .. } => break,
            }
        }
        assert!(out == data, "payload {seed}");
    }
    assert_eq!(
        d.start([41, 102], Filter::None, 1, 1),
        Err(Error::BadHeader([41, 102]))
    );
    assert_eq!(
        d.poll(),
        Err(Error::BadHeader([41, 102])),
        "a refused start stays refused"
    );
}
