//! The reconstruction step end to end on in-memory NOR flash: patches made by the differ rebuild
//! the new image exactly; a wrong base, an oversized output, truncated, corrupt and over-long
//! patches are refused with a reason; a power cut during reconstruction costs only a retry; and a
//! decoder that reads back its own output (as an LZ dictionary in flash) is served correctly.
use ota_image::build::ImageBuilder;
use ota_image::{ImageVersion, Sha256};
use ota_reconstruct::blocking::{run, RunError, Storage};
use ota_reconstruct::delta::{DeltaDecoder, HEADER_LEN};
use ota_reconstruct::diff::{make_image_patch, make_patch, DiffError, SignedImage};
use ota_reconstruct::{
    Area, Decoder, Demand, Error, Limits, Outcome, Plan, Progress, Rebuild, CHUNK,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SECTOR: usize = 4096;
const KERNEL_SLOT: usize = 0x3_8000;

/// Stream, base and output areas; the output behaves as NOR flash (erase to 0xFF, program ANDs).
struct Mem {
    stream: Vec<u8>,
    base: Vec<u8>,
    out: Vec<u8>,
    writes: usize,
    /// Fail (a power cut) at this write, after programming half of it.
    cut_at: Option<usize>,
}

#[derive(Debug, PartialEq)]
struct Cut;

impl Mem {
    fn new(stream: &[u8], base: &[u8], out_len: usize) -> Mem {
        // The base area is the whole kernel slot: the installed payload, then erased flash.
        let mut slot = base.to_vec();
        slot.resize(KERNEL_SLOT, 0xFF);
        Mem {
            stream: stream.to_vec(),
            base: slot,
            out: vec![0x5A; out_len],
            writes: 0,
            cut_at: None,
        }
    }
}

impl Storage for Mem {
    type Error = Cut;
    fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), Cut> {
        let src = match area {
            Area::Stream => &self.stream,
            Area::Base => &self.base,
            Area::Output => &self.out,
        };
        let at = offset as usize;
        buf.copy_from_slice(&src[at..at + buf.len()]);
        Ok(())
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Cut> {
        let at = offset as usize;
        if at.is_multiple_of(SECTOR) {
            let end = (at + SECTOR).min(self.out.len());
            self.out[at..end].fill(0xFF);
        }
        let n = if self.cut_at == Some(self.writes) {
            data.len() / 2
        } else {
            data.len()
        };
        for (o, d) in self.out[at..at + n].iter_mut().zip(data) {
            *o &= d;
        }
        if n < data.len() {
            return Err(Cut);
        }
        self.writes += 1;
        Ok(())
    }
}

fn limits(stream: &[u8]) -> Limits {
    Limits {
        stream_len: stream.len() as u32,
        base_max: KERNEL_SLOT as u32,
        output_max: 0xF_F000,
    }
}

fn apply(patch: &[u8], base: &[u8]) -> (Result<Outcome, RunError<Cut>>, Mem) {
    let mut mem = Mem::new(patch, base, 0x10_0000);
    let mut rebuild = Rebuild::new(DeltaDecoder::new(), limits(patch));
    let result = run(&mut rebuild, &mut mem);
    (result, mem)
}

fn refusal(patch: &[u8], base: &[u8]) -> Error {
    match apply(patch, base).0 {
        Err(RunError::Rebuild(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A "new build" of `base`: some bytes changed, some stretches inserted and removed.
fn mutate(base: &[u8], rng: &mut ChaCha8Rng, edits: usize) -> Vec<u8> {
    let mut new = base.to_vec();
    for _ in 0..edits {
        if new.is_empty() {
            new.push(rng.gen());
            continue;
        }
        let at = rng.gen_range(0..new.len());
        match rng.gen_range(0..3) {
            0 => new[at] = rng.gen(),
            1 => {
                let len = rng.gen_range(1..40);
                let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                new.splice(at..at, bytes);
            }
            _ => {
                let end = (at + rng.gen_range(1..40)).min(new.len());
                new.drain(at..end);
            }
        }
    }
    new
}

fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.gen()).collect()
}

#[test]
fn patch_rebuilds_the_new_image_and_is_small_for_a_small_change() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let base = random(&mut rng, 100_000);
    let new = mutate(&base, &mut rng, 20);
    let patch = make_patch(&base, &new).unwrap();
    let (result, mem) = apply(&patch, &base);
    let outcome = result.unwrap();
    assert_eq!(outcome.output_len as usize, new.len());
    assert_eq!(outcome.output_sha256, Sha256::digest(&new));
    assert_eq!(&mem.out[..new.len()], &new[..]);
    // 20 edits of at most 40 bytes each: the patch is a few hundred bytes, not the image.
    assert!(patch.len() < 2_000, "patch of {} bytes", patch.len());
}

#[test]
fn patch_from_nothing_and_to_nothing() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let data = random(&mut rng, 5_000);
    let patch = make_patch(&[], &data).unwrap();
    let (result, mem) = apply(&patch, &[]);
    assert_eq!(result.unwrap().output_len as usize, data.len());
    assert_eq!(&mem.out[..data.len()], &data[..]);
    // No image is empty: a patch to nothing is refused before anything is written.
    for base in [&data[..], &[][..]] {
        let patch = make_patch(base, &[]).unwrap();
        assert_eq!(refusal(&patch, base), Error::Corrupt("empty output"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn differ_then_applier_round_trips(seed in any::<u64>(), len in 0usize..20_000, edits in 0usize..30) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let base = random(&mut rng, len);
        let new = mutate(&base, &mut rng, edits);
        prop_assume!(!new.is_empty());
        let patch = make_patch(&base, &new).unwrap();
        let (result, mem) = apply(&patch, &base);
        prop_assert_eq!(result.unwrap().output_len as usize, new.len());
        prop_assert_eq!(&mem.out[..new.len()], &new[..]);
    }

    /// Any byte of a patch corrupted: refused with a reason, never accepted, never a panic.
    #[test]
    fn corrupt_patches_are_refused(seed in any::<u64>(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let base = random(&mut rng, 3_000);
        let new = mutate(&base, &mut rng, 8);
        let mut patch = make_patch(&base, &new).unwrap();
        let i = at.index(patch.len());
        patch[i] ^= flip;
        let (result, _) = apply(&patch, &base);
        prop_assert!(matches!(result, Err(RunError::Rebuild(_))), "{:?}", result);
    }

    /// Arbitrary bytes after a valid header: refused or (rarely) a valid patch, never a panic
    /// or a hang.
    #[test]
    fn garbage_operations_never_panic(body in prop::collection::vec(any::<u8>(), 0..400)) {
        let base = vec![7u8; 1000];
        let mut patch = make_patch(&base, &base).unwrap();
        patch.truncate(HEADER_LEN);
        patch.extend_from_slice(&body);
        let _ = apply(&patch, &base);
    }
}

#[test]
fn every_truncation_is_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let base = random(&mut rng, 20_000);
    let new = mutate(&base, &mut rng, 10);
    let patch = make_patch(&base, &new).unwrap();
    for len in 0..patch.len() {
        let e = refusal(&patch[..len], &base);
        assert_eq!(e, Error::Truncated, "patch cut to {len} bytes");
    }
}

#[test]
fn trailing_bytes_are_refused() {
    let base = vec![1u8; 1000];
    let mut patch = make_patch(&base, &[2u8; 900]).unwrap();
    patch.push(0);
    assert_eq!(refusal(&patch, &base), Error::TrailingData);
}

#[test]
fn wrong_base_is_refused_before_anything_is_written() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let base = random(&mut rng, 10_000);
    let new = mutate(&base, &mut rng, 5);
    let patch = make_patch(&base, &new).unwrap();

    let mut other = base.clone();
    other[9_999] ^= 1;
    let (result, mem) = apply(&patch, &other);
    assert_eq!(result, Err(RunError::Rebuild(Error::WrongBase)));
    assert_eq!(mem.writes, 0);
    assert!(mem.out.iter().all(|b| *b == 0x5A), "output untouched");

    // A base longer than the kernel slot is refused without reading it.
    let mut rebuild = Rebuild::new(
        DeltaDecoder::new(),
        Limits {
            base_max: 9_999,
            ..limits(&patch)
        },
    );
    let mut mem = Mem::new(&patch, &base, 0x10_0000);
    assert_eq!(
        run(&mut rebuild, &mut mem),
        Err(RunError::Rebuild(Error::WrongBase))
    );
    assert_eq!(mem.writes, 0);
}

#[test]
fn output_beyond_the_slot_is_refused_before_anything_is_written() {
    let base = vec![0u8; 100];
    let new = vec![1u8; 5000];
    let patch = make_patch(&base, &new).unwrap();
    let mut rebuild = Rebuild::new(
        DeltaDecoder::new(),
        Limits {
            output_max: 4999,
            ..limits(&patch)
        },
    );
    let mut mem = Mem::new(&patch, &base, 0x10_0000);
    assert_eq!(
        run(&mut rebuild, &mut mem),
        Err(RunError::Rebuild(Error::OutputTooLong {
            len: 5000,
            max: 4999
        }))
    );
    assert_eq!(mem.writes, 0);
}

#[test]
fn a_header_that_lies_about_the_output_is_refused() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let base = random(&mut rng, 4_000);
    let new = mutate(&base, &mut rng, 4);
    let patch = make_patch(&base, &new).unwrap();
    for delta in [-1i64, 1] {
        let mut p = patch.clone();
        let len = (new.len() as i64 + delta) as u32;
        p[44..48].copy_from_slice(&len.to_le_bytes());
        assert!(
            matches!(refusal(&p, &base), Error::LengthMismatch { expected, .. } if expected == len),
            "output length {len}"
        );
    }
    let mut p = patch.clone();
    p[60] ^= 1;
    assert_eq!(refusal(&p, &base), Error::OutputHash);
    let mut p = patch.clone();
    p[0] = b'X';
    assert_eq!(refusal(&p, &base), Error::BadMagic);
    let mut p = patch;
    p[4] = 2;
    assert_eq!(refusal(&p, &base), Error::Unsupported);
}

#[test]
fn power_cut_at_every_write_then_a_retry_rebuilds() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let base = random(&mut rng, 12_000);
    let new = mutate(&base, &mut rng, 12);
    let patch = make_patch(&base, &new).unwrap();
    let pages = new.len().div_ceil(CHUNK);
    for cut in 0..pages {
        let mut mem = Mem::new(&patch, &base, 0x10_0000);
        mem.cut_at = Some(cut);
        let mut rebuild = Rebuild::new(DeltaDecoder::new(), limits(&patch));
        assert_eq!(run(&mut rebuild, &mut mem), Err(RunError::Storage(Cut)));
        // The retry starts from the stream's first byte over what the cut left.
        mem.cut_at = None;
        let mut rebuild = Rebuild::new(DeltaDecoder::new(), limits(&patch));
        let outcome = run(&mut rebuild, &mut mem).unwrap();
        assert_eq!(
            outcome.output_sha256,
            Sha256::digest(&new),
            "cut at write {cut}"
        );
        assert_eq!(&mem.out[..new.len()], &new[..]);
    }
}

/// A toy LZ decoder: `LEN` (4 bytes) then literals up to `DIST`, then every byte copies the one
/// `DIST` before it, read back through `Area::Output` as an LZMA2 decoder would read its
/// dictionary. The reads cross the boundary between flushed pages and the page not yet written.
struct Echo {
    len: Option<u32>,
    head: Vec<u8>,
    produced: u32,
    window: Vec<u8>,
}

const DIST: u32 = 300;

impl Decoder for Echo {
    fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<Progress, Error> {
        let mut i = 0;
        let Some(len) = self.len else {
            let n = (4 - self.head.len()).min(input.len());
            self.head.extend_from_slice(&input[..n]);
            if self.head.len() < 4 {
                return Ok(Progress {
                    consumed: n,
                    produced: 0,
                    demand: Demand::Input,
                });
            }
            let len = u32::from_le_bytes(self.head[..4].try_into().unwrap());
            self.len = Some(len);
            let plan = Plan {
                output_len: len,
                output_sha256: None,
                base: None,
            };
            return Ok(Progress {
                consumed: n,
                produced: 0,
                demand: Demand::Header(plan),
            });
        };
        let mut o = 0;
        loop {
            let stop = |i, o, demand| {
                Ok(Progress {
                    consumed: i,
                    produced: o,
                    demand,
                })
            };
            if self.produced == len {
                return if i < input.len() {
                    Err(Error::Corrupt("echo"))
                } else {
                    stop(i, o, Demand::Finished)
                };
            }
            if o == out.len() {
                return stop(i, o, Demand::OutputFull);
            }
            if self.produced < DIST {
                let Some(&b) = input.get(i) else {
                    return stop(i, o, Demand::Input);
                };
                i += 1;
                out[o] = b;
            } else {
                if self.window.is_empty() {
                    let want = (len - self.produced).min(DIST).min(CHUNK as u32) as usize;
                    // Bytes produced in this call are not yet known to the driver.
                    let want = want.min(DIST as usize - o.min(DIST as usize)).max(1);
                    if o as u32 >= DIST {
                        return stop(i, o, Demand::OutputFull);
                    }
                    let offset = self.produced - DIST;
                    return stop(
                        i,
                        o,
                        Demand::Read {
                            area: Area::Output,
                            offset,
                            len: want,
                        },
                    );
                }
                out[o] = self.window.remove(0);
            }
            o += 1;
            self.produced += 1;
        }
    }
    fn provide(&mut self, data: &[u8]) -> Result<(), Error> {
        self.window.extend_from_slice(data);
        Ok(())
    }
}

#[test]
fn a_decoder_reads_its_own_output_across_flushed_and_pending_pages() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for len in [1u32, 299, 300, 301, 555, 4096, 5000] {
        let lit = random(&mut rng, len.min(DIST) as usize);
        let mut stream = len.to_le_bytes().to_vec();
        stream.extend_from_slice(&lit);
        let expected: Vec<u8> = (0..len as usize).map(|k| lit[k % DIST as usize]).collect();
        let mut mem = Mem::new(&stream, &[], 0x10_0000);
        let decoder = Echo {
            len: None,
            head: Vec::new(),
            produced: 0,
            window: Vec::new(),
        };
        let mut rebuild = Rebuild::new(decoder, limits(&stream));
        let outcome = run(&mut rebuild, &mut mem).unwrap();
        assert_eq!(outcome.output_len, len);
        assert_eq!(&mem.out[..len as usize], &expected[..], "length {len}");
    }
}

/// A minimal MCUboot image (ota-image's builder): 32-byte header, payload, TLV area with the
/// SHA-256 TLV.
fn signed(payload: &[u8], version: u8) -> Vec<u8> {
    ImageBuilder {
        version: ImageVersion {
            major: version,
            ..ImageVersion::default()
        },
        header_size: 32,
        ..ImageBuilder::default()
    }
    .unsigned(payload)
    .unwrap()
}

#[test]
fn an_image_patch_rebuilds_the_new_signed_image_from_the_installed_payload() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let v1_payload = random(&mut rng, 30_000);
    let v2_payload = mutate(&v1_payload, &mut rng, 6);
    let (v1, v2) = (signed(&v1_payload, 1), signed(&v2_payload, 2));
    let patch = make_image_patch(&v1, &v2).unwrap();
    // The device's base is the installed payload, not the signed file.
    let (result, mem) = apply(&patch, &v1_payload);
    assert_eq!(result.unwrap().output_sha256, Sha256::digest(&v2));
    assert_eq!(&mem.out[..v2.len()], &v2[..]);
    assert_eq!(refusal(&patch, &v1), Error::WrongBase);

    let id = SignedImage::parse(&v1, "base").unwrap().id();
    assert_eq!(&id[..], &v1[v1.len() - 32..v1.len() - 16]);
    let e = make_image_patch(&v1_payload, &v2).unwrap_err();
    assert!(
        matches!(&e, DiffError::Image(why) if why.starts_with("base: not a signed image")),
        "{e}"
    );
    assert!(matches!(
        make_image_patch(&v1, &v2[..100]),
        Err(DiffError::Image(_))
    ));
}

#[test]
fn every_refusal_has_its_own_stream_detail_and_counts_as_refused() {
    use dfu_abi::update::detail;
    let cases = [
        (Error::Corrupt("x"), detail::STREAM_BAD_FORMAT),
        (Error::Truncated, detail::STREAM_TRUNCATED),
        (Error::WrongBase, detail::STREAM_WRONG_BASE),
        (
            Error::OutputTooLong { len: 2, max: 1 },
            detail::STREAM_TOO_LONG,
        ),
        (Error::OutputHash, detail::STREAM_OUTPUT_HASH),
    ];
    for (e, d) in cases {
        assert_eq!(e.abi_detail(), d, "{e}");
        assert!(detail::STREAM_REFUSED.contains(&d));
    }
    assert!(!detail::STREAM_REFUSED.contains(&Error::Decoder.abi_detail()));
}

#[test]
fn repeated_new_bytes_travel_as_fills() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let base = random(&mut rng, 20_000);
    let mut new = base.clone();
    // An image header's padding, and an erased-looking tail.
    new.splice(0..0, [0xFFu8; 480]);
    new.extend_from_slice(&[0u8; 3000]);
    let patch = make_patch(&base, &new).unwrap();
    assert!(
        patch.len() < HEADER_LEN + 40,
        "patch of {} bytes",
        patch.len()
    );
    let (result, mem) = apply(&patch, &base);
    assert_eq!(result.unwrap().output_sha256, Sha256::digest(&new));
    assert_eq!(&mem.out[..new.len()], &new[..]);
    // A fill cut after its tag, before its byte: truncated.
    let fill_byte_at = patch.iter().rposition(|b| *b == 0xFF).unwrap();
    assert_eq!(refusal(&patch[..fill_byte_at], &base), Error::Truncated);
}
