//! The policy driven over a strict RAM NOR model (erase to 0xFF, program only clears bits).
use control_area::{Record, RecordKind};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use ota_image::build::ImageBuilder;
use ota_image::{parse_image, ImageError, ImageVersion, StreamChecker};
use proptest::prelude::*;
use update_region::blocking::{BlockingDriver, BlockingError};
use update_region::*;

const OWNER: CallerId = 0x00D0_F00D;
const SIZE: usize = 0x20_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RamError {
    OneOverZero,
    PowerLost,
}
impl NorFlashError for RamError {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

struct RamNor {
    bytes: Vec<u8>,
    /// Fail (as a power cut) the operation with this index.
    fail_at: Option<usize>,
    ops: usize,
    /// Start addresses of the erases done.
    erased_at: Vec<u32>,
}

impl RamNor {
    fn new() -> Self {
        RamNor {
            bytes: vec![0xFF; SIZE],
            fail_at: None,
            ops: 0,
            erased_at: Vec::new(),
        }
    }
    fn tick(&mut self) -> Result<(), RamError> {
        self.ops += 1;
        if self.fail_at == Some(self.ops) {
            return Err(RamError::PowerLost);
        }
        Ok(())
    }
}
impl ErrorType for RamNor {
    type Error = RamError;
}
impl ReadNorFlash for RamNor {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), RamError> {
        let o = offset as usize;
        bytes.copy_from_slice(&self.bytes[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        SIZE
    }
}
impl NorFlash for RamNor {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), RamError> {
        self.tick()?;
        assert!(from.is_multiple_of(4096) && to.is_multiple_of(4096));
        self.bytes[from as usize..to as usize].fill(0xFF);
        self.erased_at.push(from);
        Ok(())
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), RamError> {
        self.tick()?;
        let o = offset as usize;
        for (i, &b) in data.iter().enumerate() {
            if b & !self.bytes[o + i] != 0 {
                return Err(RamError::OneOverZero);
            }
            self.bytes[o + i] &= b;
        }
        Ok(())
    }
}

/// An unsigned MCUboot-format image: 32-byte header, payload, unprotected TLVs (SHA-256, then an
/// unknown TLV the walker must skip).
fn image(payload_len: usize, seed: u8) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    ImageBuilder {
        version: ImageVersion {
            major: 2,
            ..ImageVersion::default()
        },
        header_size: 32,
        unprotected: vec![(0x7F00, vec![0xAB; 8])],
        ..ImageBuilder::default()
    }
    .unsigned(&payload)
    .unwrap()
}

type Mutation = Box<dyn Fn(&mut Vec<u8>)>;

/// The image's SHA256 TLV.
fn image_hash(img: &[u8]) -> [u8; 32] {
    parse_image(&mut &img[..]).unwrap().hash.unwrap()
}

fn started(flash: &mut RamNor) -> UpdateRegion {
    let mut policy = UpdateRegion::new(Config::nrf52840dk(OWNER)).unwrap();
    BlockingDriver::new(&mut policy, flash).start().unwrap();
    policy
}

/// Stage `img` with its sectors erased in reverse order and chunks written out of order.
fn stage(d: &mut BlockingDriver<'_, RamNor>, img: &[u8]) {
    d.run(
        OWNER,
        Request::Begin {
            tag: [7; 16],
            image_len: img.len() as u32,
        },
        &[],
        &mut [],
    )
    .unwrap();
    let sectors = img.len().div_ceil(4096);
    for s in (0..sectors).rev() {
        d.run(
            OWNER,
            Request::Erase {
                offset: (s * 4096) as u32,
            },
            &[],
            &mut [],
        )
        .unwrap();
    }
    let chunks: Vec<_> = img.chunks(25).enumerate().collect();
    for (i, c) in chunks
        .iter()
        .rev()
        .step_by(2)
        .chain(chunks.iter().rev().skip(1).step_by(2))
    {
        d.write(OWNER, (*i * 25) as u32, c).unwrap();
    }
}

fn request_records(flash: &RamNor) -> Vec<Record> {
    flash.bytes[..4096]
        .chunks_exact(64)
        .filter_map(|c| Record::decode(c.try_into().unwrap()).ok())
        .collect()
}

#[test]
fn staged_out_of_order_image_finalizes_into_one_boot_request() {
    let mut flash = RamNor::new();
    let img = image(10_000, 1);
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    stage(&mut d, &img);
    let done = d.run(OWNER, Request::Finalize, &[], &mut []).unwrap();
    assert_eq!(
        done,
        Completion::Finalized {
            sequence: 1,
            image_len: img.len() as u32,
            image_hash: image_hash(&img)
        }
    );
    assert_eq!(&flash.bytes[0x10_0000..0x10_0000 + img.len()], &img[..]);
    let records = request_records(&flash);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].kind, RecordKind::BootRequest);
    assert_eq!(records[0].image_hash, image_hash(&img));
    // After a reboot the session is known to be finalized: no second request can be made.
    let mut policy = started(&mut flash);
    assert_eq!(policy.status().state, SessionState::Finalized);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    assert_eq!(
        d.run(OWNER, Request::Finalize, &[], &mut []),
        Err(BlockingError::Policy(Error::AlreadyFinalized))
    );
    // Confirm after the trial boot appends a Confirm for the same image; a second is a no-op.
    assert_eq!(
        d.run(OWNER, Request::Confirm, &[], &mut []),
        Ok(Completion::Confirmed { sequence: 2 })
    );
    assert_eq!(
        d.run(OWNER, Request::Confirm, &[], &mut []),
        Ok(Completion::Confirmed { sequence: 2 })
    );
    let records = request_records(&flash);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].kind, RecordKind::Confirm);
    assert_eq!(records[1].image_hash, image_hash(&img));
}

#[test]
fn only_the_owner_may_change_anything() {
    let mut flash = RamNor::new();
    let img = image(5000, 2);
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    stage(&mut d, &img);
    let before = flash.bytes.clone();
    let mut policy2 = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy2, &mut flash);
    let intruder = OWNER + 1;
    let mut buf = [0u8; 4];
    for req in [
        Request::Begin {
            tag: [0; 16],
            image_len: 100,
        },
        Request::Erase { offset: 0 },
        Request::Write { offset: 0, len: 4 },
        Request::Read { offset: 0, len: 4 },
        Request::Finalize,
        Request::Abort,
        Request::Confirm,
    ] {
        let data = [0u8; 4];
        let (data, buf): (&[u8], &mut [u8]) = match req {
            Request::Write { .. } => (&data, &mut []),
            Request::Read { .. } => (&[], &mut buf),
            _ => (&[], &mut []),
        };
        assert_eq!(
            d.run(intruder, req, data, buf),
            Err(BlockingError::Policy(Error::NotOwner))
        );
    }
    assert!(flash.bytes == before, "a refused caller changed flash");
}

#[test]
fn writes_stay_in_erased_never_written_ranges_inside_the_image() {
    let mut flash = RamNor::new();
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    assert_eq!(
        d.write(OWNER, 0, &[1]),
        Err(BlockingError::Policy(Error::NoSession))
    );
    d.run(
        OWNER,
        Request::Begin {
            tag: [1; 16],
            image_len: 10_000,
        },
        &[],
        &mut [],
    )
    .unwrap();
    assert_eq!(
        d.write(OWNER, 0, &[1]),
        Err(BlockingError::Policy(Error::NotErased { offset: 0 }))
    );
    d.run(OWNER, Request::Erase { offset: 0 }, &[], &mut [])
        .unwrap();
    d.write(OWNER, 10, &[1, 2, 3]).unwrap();
    assert_eq!(
        d.write(OWNER, 8, &[0; 4]),
        Err(BlockingError::Policy(Error::NotBlank { offset: 10 }))
    );
    // Crossing into a sector not erased yet.
    assert_eq!(
        d.write(OWNER, 4090, &[0; 10]),
        Err(BlockingError::Policy(Error::NotErased { offset: 4096 }))
    );
    assert_eq!(
        d.write(OWNER, 9_999, &[0; 2]),
        Err(BlockingError::Policy(Error::OutOfBounds {
            offset: 9_999,
            len: 2
        }))
    );
    assert_eq!(
        d.run(
            OWNER,
            Request::Write {
                offset: u32::MAX,
                len: 2
            },
            &[0; 2],
            &mut []
        ),
        Err(BlockingError::Policy(Error::OutOfBounds {
            offset: u32::MAX,
            len: 2
        }))
    );
    assert_eq!(
        d.run(OWNER, Request::Erase { offset: 100 }, &[], &mut []),
        Err(BlockingError::Policy(Error::Unaligned { offset: 100 }))
    );
    assert_eq!(
        d.run(OWNER, Request::Erase { offset: 12288 }, &[], &mut []),
        Err(BlockingError::Policy(Error::OutOfBounds {
            offset: 12288,
            len: 4096
        }))
    );
    assert_eq!(
        d.run(
            OWNER,
            Request::Begin {
                tag: [0; 16],
                image_len: 0x10_0000
            },
            &[],
            &mut []
        ),
        Err(BlockingError::Policy(Error::BadLength { len: 0x10_0000 }))
    );
    let mut back = [0u8; 3];
    d.read(OWNER, 10, &mut back).unwrap();
    assert_eq!(back, [1, 2, 3]);
    // Nothing outside the staging slot's first sector and the progress sector was touched.
    let progress = 0x1F_F000;
    for (i, &b) in flash.bytes.iter().enumerate() {
        if !(0x10_0000..0x10_1000).contains(&i) && !(progress..progress + 4096).contains(&i) {
            assert_eq!(b, 0xFF, "byte {i:#x} written");
        }
    }
}

#[test]
fn a_reboot_mid_staging_resumes_with_what_was_staged() {
    let mut flash = RamNor::new();
    let img = image(20_000, 3);
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    d.run(
        OWNER,
        Request::Begin {
            tag: [9; 16],
            image_len: img.len() as u32,
        },
        &[],
        &mut [],
    )
    .unwrap();
    for s in [0u32, 2, 4] {
        d.run(OWNER, Request::Erase { offset: s * 4096 }, &[], &mut [])
            .unwrap();
    }
    d.write(OWNER, 0, &img[..4096]).unwrap();
    // Reboot.
    let mut policy = started(&mut flash);
    let status = policy.status();
    assert_eq!(status.state, SessionState::Staging);
    assert_eq!(status.tag, [9; 16]);
    assert_eq!(status.image_len, img.len() as u32);
    assert_eq!(status.erased_sectors, 3);
    assert!(policy.sector_erased(8192) && !policy.sector_erased(4096));
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    assert_eq!(
        d.write(OWNER, 0, &img[..1]),
        Err(BlockingError::Policy(Error::NotBlank { offset: 0 }))
    );
    for s in [1u32, 3] {
        d.run(OWNER, Request::Erase { offset: s * 4096 }, &[], &mut [])
            .unwrap();
    }
    d.write(OWNER, 4096, &img[4096..]).unwrap();
    assert!(matches!(
        d.run(OWNER, Request::Finalize, &[], &mut []),
        Ok(Completion::Finalized { .. })
    ));
}

#[test]
fn finalize_rejects_bad_images_without_writing_a_request() {
    let mut cases: Vec<(Mutation, Error)> = vec![
        (Box::new(|i: &mut Vec<u8>| i[0] ^= 1), Error::ImageBadMagic),
        (
            Box::new(|i: &mut Vec<u8>| i[100] ^= 1),
            Error::ImageHashMismatch,
        ),
        (
            Box::new(|i: &mut Vec<u8>| i[12..16].copy_from_slice(&u32::MAX.to_le_bytes())),
            Error::ImageBadLayout,
        ),
        (
            Box::new(|i: &mut Vec<u8>| {
                let at = parse_image(&mut &i[..]).unwrap().tlv_offset as usize + 4;
                i[at] = 0x7F; // the SHA-256 TLV becomes one of an unknown type
            }),
            Error::ImageHashMissing,
        ),
        (
            Box::new(|i: &mut Vec<u8>| {
                let at = 32 + 3000;
                i[at] = 0x00; // TLV info magic
            }),
            Error::ImageBadLayout,
        ),
    ];
    // Shorter than a header: refused before any read.
    cases.push((
        Box::new(|i: &mut Vec<u8>| i.truncate(31)),
        Error::ImageBadLayout,
    ));
    for (mutate, expected) in cases {
        let mut flash = RamNor::new();
        let mut img = image(3000, 4);
        mutate(&mut img);
        let mut policy = started(&mut flash);
        let mut d = BlockingDriver::new(&mut policy, &mut flash);
        stage(&mut d, &img);
        assert_eq!(
            d.run(OWNER, Request::Finalize, &[], &mut []),
            Err(BlockingError::Policy(expected))
        );
        assert!(request_records(&flash).is_empty());
        assert_eq!(policy.status().state, SessionState::Staging);
    }
}

/// Where a change lands: anywhere, in the header, or in the last bytes (the TLV areas).
fn at(image_len: usize, region: u8, i: prop::sample::Index) -> usize {
    match region % 3 {
        0 => i.index(image_len),
        1 => i.index(32.min(image_len)),
        _ => image_len - 1 - i.index(80.min(image_len)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Finalize gives ota-image's checker's verdict on the staged bytes: it finalizes exactly
    /// the images the checker finds whole (with their hash and length) and refuses every other
    /// one with the checker's refusal.
    #[test]
    fn finalize_gives_the_checkers_verdict(
        len in 1usize..5000,
        sets in proptest::collection::vec((any::<u8>(), any::<prop::sample::Index>(), any::<u8>()), 0..3),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut img = image(len, 3);
        for (region, i, v) in sets {
            let at = at(img.len(), region, i);
            img[at] = v;
        }
        if let Some(c) = cut {
            img.truncate(c.index(img.len()).max(1));
        }
        let mut c = StreamChecker::new(img.len() as u32);
        let expected = c
            .feed(&img)
            .and_then(|()| c.finish())
            .and_then(|c| Ok((c.check_hash()?, c.info().total_len)));
        let mut flash = RamNor::new();
        let mut policy = started(&mut flash);
        let mut d = BlockingDriver::new(&mut policy, &mut flash);
        stage(&mut d, &img);
        let got = d.run(OWNER, Request::Finalize, &[], &mut []);
        match expected {
            Ok((image_hash, image_len)) => prop_assert_eq!(
                got,
                Ok(Completion::Finalized { sequence: 1, image_len, image_hash })
            ),
            Err(e) => {
                prop_assert_eq!(got, Err(BlockingError::Policy(Error::from(e))));
                prop_assert!(request_records(&flash).is_empty());
            }
        }
    }
}

/// Each of ota-image's refusals that the update region can see (it has no key, so not the
/// signature's, the key's or the policy's) is its own finalize refusal.
#[test]
fn every_checker_refusal_maps_to_a_finalize_refusal() {
    let layout = [
        ImageError::TruncatedHeader,
        ImageError::HeaderSizeTooSmall(4),
        ImageError::HeaderBeyondSlot {
            header_size: 9,
            capacity: 8,
        },
        ImageError::PayloadBeyondSlot {
            end: 9,
            capacity: 8,
        },
        ImageError::ProtectedTlvSizeMismatch { header: 1, area: 2 },
        ImageError::BadTlvInfoMagic(0),
        ImageError::BadTlvAreaLength(2),
        ImageError::TlvAreaBeyondSlot {
            end: 9,
            capacity: 8,
        },
        ImageError::TlvPastAreaEnd { kind: 1, offset: 2 },
        ImageError::BadTlvLength { kind: 0x10, len: 3 },
        ImageError::DuplicateTlv(0x10),
        ImageError::TlvNotProtected(0x50),
    ];
    for e in layout {
        assert_eq!(Error::from(e), Error::ImageBadLayout, "{e:?}");
    }
    assert_eq!(Error::from(ImageError::BadMagic(0)), Error::ImageBadMagic);
    assert_eq!(
        Error::from(ImageError::MissingHash),
        Error::ImageHashMissing
    );
    assert_eq!(
        Error::from(ImageError::HashMismatch),
        Error::ImageHashMismatch
    );
}

#[test]
fn abort_forgets_the_session_and_confirm_needs_a_request() {
    let mut flash = RamNor::new();
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    assert_eq!(
        d.run(OWNER, Request::Confirm, &[], &mut []),
        Err(BlockingError::Policy(Error::NothingToConfirm))
    );
    stage(&mut d, &image(100, 5));
    d.run(OWNER, Request::Abort, &[], &mut []).unwrap();
    let policy = started(&mut flash);
    assert_eq!(policy.status().state, SessionState::Idle);
}

#[test]
fn a_full_request_sector_is_recycled_and_sequences_keep_rising() {
    let mut flash = RamNor::new();
    for seq in 1..=64u32 {
        let r = Record {
            kind: RecordKind::Confirm,
            sequence: seq,
            image_len: 0,
            image_hash: [0; 32],
        };
        let at = (seq as usize - 1) * 64;
        flash.bytes[at..at + 64].copy_from_slice(&r.encode());
    }
    let img = image(500, 6);
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    stage(&mut d, &img);
    assert!(matches!(
        d.run(OWNER, Request::Finalize, &[], &mut []),
        Ok(Completion::Finalized { sequence: 65, .. })
    ));
    let records = request_records(&flash);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].sequence, 65);
}

#[test]
fn a_flash_failure_at_any_step_leaves_a_usable_policy_and_a_consistent_slot() {
    let img = image(9000, 7);
    // Count the operations of a clean run, then fail each one in turn and finish after a reboot.
    let mut flash = RamNor::new();
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    stage(&mut d, &img);
    d.run(OWNER, Request::Finalize, &[], &mut []).unwrap();
    let total_ops = flash.ops;
    for fail in 1..=total_ops {
        let mut flash = RamNor::new();
        flash.fail_at = Some(fail);
        let mut policy = started(&mut flash);
        let mut d = BlockingDriver::new(&mut policy, &mut flash);
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stage(&mut d, &img);
            d.run(OWNER, Request::Finalize, &[], &mut []).map(|_| ())
        }));
        assert!(!d.policy.is_busy());
        // Whatever happened, a reboot and a fresh session always finalize the same image.
        flash.fail_at = None;
        let mut policy = started(&mut flash);
        let mut d = BlockingDriver::new(&mut policy, &mut flash);
        if !matches!(failed, Ok(Ok(()))) {
            stage(&mut d, &img);
            assert!(matches!(
                d.run(OWNER, Request::Finalize, &[], &mut []),
                Ok(Completion::Finalized { .. })
            ));
        }
        let records = request_records(&flash);
        let last = records.iter().max_by_key(|r| r.sequence).unwrap();
        assert_eq!(last.image_hash, image_hash(&img), "failure at op {fail}");
    }
}

/// Offsets and lengths near the integer limits, asked of the policy itself (no driver between):
/// each is refused with its error before any flash operation. MCUboot's counterpart is its
/// serial recovery's unchecked offsets and lengths (wave-2 research E: "serial-recovery index
/// not bounds-checked"); here `offset + len` must never wrap into a range inside the image.
#[test]
fn offsets_and_lengths_near_u32_max_are_refused_before_any_flash_operation() {
    let mut flash = RamNor::new();
    let mut policy = started(&mut flash);
    let image_len = 10_000u32;
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    for len in [0, u32::MAX, Config::nrf52840dk(OWNER).max_image_len() + 1] {
        let begin = Request::Begin {
            tag: [2; 16],
            image_len: len,
        };
        assert_eq!(
            d.run(OWNER, begin, &[], &mut []),
            Err(BlockingError::Policy(Error::BadLength { len }))
        );
    }
    let begin = Request::Begin {
        tag: [2; 16],
        image_len,
    };
    d.run(OWNER, begin, &[], &mut []).unwrap();
    for s in 0..3 {
        let erase = Request::Erase { offset: s * 4096 };
        d.run(OWNER, erase, &[], &mut []).unwrap();
    }
    let ops_before = flash.ops;
    let ranges = [
        (u32::MAX, 1),
        (u32::MAX, u32::MAX),
        (1, u32::MAX),
        (image_len - 1, u32::MAX),
        (image_len - 1, 2),
        (image_len, 1),
        (0, image_len + 1),
        // offset + len = 2^32 + 16: wraps to 16, inside the image, in 32-bit arithmetic.
        (u32::MAX - 15, 33),
    ];
    for (offset, len) in ranges {
        for request in [
            Request::Write { offset, len },
            Request::Read { offset, len },
        ] {
            assert_eq!(
                policy.request(OWNER, request),
                Step::Done(Err(Error::OutOfBounds { offset, len })),
                "{request:?}"
            );
        }
    }
    for offset in [
        !0xFFFu32,
        0x1_0000 * 0x1000 - 0x1000,
        image_len.next_multiple_of(4096),
    ] {
        assert_eq!(
            policy.request(OWNER, Request::Erase { offset }),
            Step::Done(Err(Error::OutOfBounds { offset, len: 4096 })),
        );
    }
    assert_eq!(flash.ops, ops_before, "a refused request touched the flash");
    // The last byte of the image is still writable: the bounds are exact.
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    d.write(OWNER, image_len - 1, &[0x5A]).unwrap();
}

/// A configuration whose regions reach the top of the 32-bit address space is refused or
/// accepted, never a panic (the overlap check adds region lengths to bases).
#[test]
fn configurations_at_the_top_of_the_address_space_never_panic() {
    let top = !0xFFFu32;
    for (staging_base, staging_len, request_base) in [
        (0, 0x2_0000, top),
        (top - 0x1_0000, 0x1_0000, 0),
        (top - 0x1_0000, 0x2_0000, 0),
        (top, 0x2000, 0x1000),
        (0x1000, 0x2_0000, top),
    ] {
        let config = Config {
            owner: OWNER,
            staging_base,
            staging_len,
            request_base,
        };
        let _ = UpdateRegion::new(config);
    }
    let config = Config {
        owner: OWNER,
        staging_base: 0,
        staging_len: 0x2_0000,
        request_base: top,
    };
    assert!(
        UpdateRegion::new(config).is_ok(),
        "a request sector in the last 4 KiB"
    );
}

const PREPARE: [u8; 16] = dfu_abi::update::PREPARE_TAG;
const STAGING: u32 = 0x10_0000;

/// Erases of image sectors `sectors` of the staging slot done since `since` (an index into
/// `erased_at`).
fn image_erases(flash: &RamNor, since: usize, sectors: std::ops::Range<u32>) -> usize {
    flash.erased_at[since..]
        .iter()
        .filter(|&&a| a >= STAGING + sectors.start * 4096 && a < STAGING + sectors.end * 4096)
        .count()
}

fn begin(d: &mut BlockingDriver<'_, RamNor>, tag: [u8; 16], image_len: u32) -> Result<(), Error> {
    match d.run(OWNER, Request::Begin { tag, image_len }, &[], &mut []) {
        Ok(_) => Ok(()),
        Err(BlockingError::Policy(e)) => Err(e),
        Err(e) => panic!("{e:?}"),
    }
}

fn erase(d: &mut BlockingDriver<'_, RamNor>, sectors: std::ops::Range<u32>) {
    for s in sectors {
        d.run(OWNER, Request::Erase { offset: s * 4096 }, &[], &mut [])
            .unwrap();
    }
}

/// Prepare `sectors` of the slot (a prepare session erasing them).
fn prepare(d: &mut BlockingDriver<'_, RamNor>, sectors: std::ops::Range<u32>) {
    let max = Config::nrf52840dk(OWNER).max_image_len();
    begin(d, PREPARE, max).unwrap();
    erase(d, sectors);
}

#[test]
fn a_session_after_a_prepare_session_erases_its_sectors_no_more() {
    let mut flash = RamNor::new();
    let img = image(30_000, 4);
    let sectors = img.len().div_ceil(4096) as u32;
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    prepare(&mut d, 0..sectors);
    assert_eq!(image_erases(&flash, 0, 0..sectors), sectors as usize);
    let mark = flash.erased_at.len();
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    // The transfer's session: its erases of the prepared sectors only record them.
    stage(&mut d, &img);
    assert!(matches!(
        d.run(OWNER, Request::Finalize, &[], &mut []),
        Ok(Completion::Finalized { .. })
    ));
    assert_eq!(image_erases(&flash, mark, 0..sectors), 0);
    assert_eq!(
        &flash.bytes[STAGING as usize..STAGING as usize + img.len()],
        &img[..]
    );
}

#[test]
fn a_prepare_session_takes_no_write_nor_finalize_and_no_image_awaiting_install_is_erased() {
    let mut flash = RamNor::new();
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    prepare(&mut d, 0..2);
    assert_eq!(
        d.write(OWNER, 0, &[1, 2, 3]),
        Err(BlockingError::Policy(Error::NoSession))
    );
    assert_eq!(
        d.run(OWNER, Request::Finalize, &[], &mut []),
        Err(BlockingError::Policy(Error::NoSession))
    );
    // A finalized image awaits its install: no prepare session may begin; after the confirm
    // (the image installed and running) one may.
    let img = image(9_000, 5);
    stage(&mut d, &img);
    d.run(OWNER, Request::Finalize, &[], &mut []).unwrap();
    let max = Config::nrf52840dk(OWNER).max_image_len();
    assert_eq!(begin(&mut d, PREPARE, max), Err(Error::AlreadyFinalized));
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    assert_eq!(begin(&mut d, PREPARE, max), Err(Error::AlreadyFinalized));
    d.run(OWNER, Request::Confirm, &[], &mut []).unwrap();
    assert_eq!(begin(&mut d, PREPARE, max), Ok(()));
}

#[test]
fn prepared_sectors_stay_known_across_a_reboot_and_written_ones_are_erased_again() {
    let mut flash = RamNor::new();
    let mut policy = started(&mut flash);
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    prepare(&mut d, 0..3);
    // Reboot: the prepare session's erased sectors are still clean (nothing is written in one).
    let mut policy = started(&mut flash);
    let mark = flash.erased_at.len();
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    begin(&mut d, [7; 16], 5 * 4096).unwrap();
    erase(&mut d, 0..5);
    assert_eq!(image_erases(&flash, mark, 0..3), 0);
    assert_eq!(image_erases(&flash, mark, 3..5), 2);
    // Sector 1 written: a new session's erase of it is a real one; sector 2, unwritten, not.
    let mark = flash.erased_at.len();
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    d.write(OWNER, 4096 + 10, &[0x12; 40]).unwrap();
    begin(&mut d, [8; 16], 5 * 4096).unwrap();
    erase(&mut d, 1..3);
    assert_eq!(image_erases(&flash, mark, 1..2), 1);
    assert_eq!(image_erases(&flash, mark, 2..3), 0);
    // A reboot inside a transfer's session forgets what is clean: every erase is real.
    let mut policy = started(&mut flash);
    let mark = flash.erased_at.len();
    let mut d = BlockingDriver::new(&mut policy, &mut flash);
    erase(&mut d, 2..5);
    assert_eq!(image_erases(&flash, mark, 2..5), 3);
}

#[test]
fn a_power_cut_at_any_operation_of_a_prepare_leaves_only_completed_erases_trusted() {
    let img = image(14_000, 6);
    let sectors = img.len().div_ceil(4096) as u32;
    // Operations of a prepare of the image's sectors: Begin (2), then an erase and a bitmap
    // write per sector.
    let total = 2 + 2 * sectors as usize;
    for cut in 1..=total {
        let mut flash = RamNor::new();
        // Old data everywhere the image goes: only real erases make room for it.
        flash.bytes[STAGING as usize..STAGING as usize + img.len()].fill(0x00);
        let mut policy = started(&mut flash);
        flash.fail_at = Some(flash.ops + cut);
        let mut d = BlockingDriver::new(&mut policy, &mut flash);
        let max = Config::nrf52840dk(OWNER).max_image_len();
        let begun = d.run(
            OWNER,
            Request::Begin {
                tag: PREPARE,
                image_len: max,
            },
            &[],
            &mut [],
        );
        let _ = begun.map_err(|_| Error::Flash).and_then(|_| {
            for s in 0..sectors {
                match d.run(OWNER, Request::Erase { offset: s * 4096 }, &[], &mut []) {
                    Ok(_) => {}
                    Err(BlockingError::Policy(e)) => return Err(e),
                    Err(_) => return Err(Error::Flash),
                }
            }
            Ok(())
        });
        flash.fail_at = None;
        // Reboot, then the transfer: every byte it writes lands on erased flash.
        let mut policy = started(&mut flash);
        let mut d = BlockingDriver::new(&mut policy, &mut flash);
        stage(&mut d, &img);
        assert!(
            matches!(
                d.run(OWNER, Request::Finalize, &[], &mut []),
                Ok(Completion::Finalized { .. })
            ),
            "cut at operation {cut}"
        );
    }
}
