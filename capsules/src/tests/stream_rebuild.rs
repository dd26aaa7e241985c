//! Received streams on the staged-update core: a delta patch and a compressed image staged in
//! the received-stream area and rebuilt into the staging slot at finalize over the flash model;
//! a wrong base, a corrupt stream and a truncated patch refused with a reason and nothing
//! requested; a power cut during the rebuild costs a finalize.

use core::num::NonZeroU32;
use std::boxed::Box;
use std::cell::RefCell;
use std::vec;
use std::vec::Vec;

use dfu_abi::update::detail;
use kernel::process::ShortId;
use kernel::ErrorCode;
use update_region::{Completion, Config, Error, Request, SessionState, MAX_POLICY_READ, TAG_LEN};

use super::fake_nor::FakeNor;
use crate::nor::AsyncNor;
use crate::staged_update::{command, StagedUpdate, StagedUpdateClient, BUF_LEN};
use crate::stream_rebuild::{is_stream_tag, Compressed, StreamArea, READ_BUF_LEN};

const DFU: u32 = 0x0D0F_0001;
const CAPACITY: usize = 8 * 1024 * 1024;
const REQUEST_SECTOR: core::ops::Range<usize> = 0..4096;
/// The kernel slot (224 KiB, as the DK's).
const SLOT_LEN: usize = 224 * 1024;
const STAGING: Config = Config::nrf52840dk(DFU);
const STREAM: Config = Config::nrf52840dk_stream(DFU);

fn dfu() -> ShortId {
    ShortId::Fixed(NonZeroU32::new(DFU).unwrap())
}

type Done = (usize, Result<Completion, Error>);

#[derive(Default)]
struct Recorder {
    done: RefCell<Vec<Done>>,
}

impl StagedUpdateClient for Recorder {
    fn request_done(&self, command: usize, result: Result<Completion, Error>, _read: &[u8]) {
        self.done.borrow_mut().push((command, result));
    }
}

struct Rig {
    flash: &'static FakeNor,
    core: &'static StagedUpdate<'static, FakeNor>,
    recorder: &'static Recorder,
}

fn leak(len: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; len].into_boxed_slice())
}

/// The kernel slot holding `payload` (an installed image's payload), erased after it.
fn kernel_slot(payload: &[u8]) -> &'static [u8] {
    let slot = Box::leak(vec![0xFF; SLOT_LEN].into_boxed_slice());
    slot[..payload.len()].copy_from_slice(payload);
    slot
}

impl Rig {
    /// A booted core over `memory` (a fresh flash, or the one a cut left) with the stream area;
    /// `compressed`: with the compressed-image decoder, made as the board makes it (`EMPTY`: the
    /// core restarts it with the slot's length for each stream).
    fn boot(memory: Option<Vec<u8>>, slot: &'static [u8], compressed: bool) -> Rig {
        let flash = FakeNor::new(CAPACITY);
        if let Some(memory) = memory {
            *flash.memory.borrow_mut() = memory;
        }
        let decoder: Option<&'static mut Compressed> =
            compressed.then(|| Box::leak(Box::new(Compressed::EMPTY)));
        let core = StagedUpdate::new(flash, STAGING, leak(BUF_LEN), leak(MAX_POLICY_READ))
            .unwrap()
            .with_streams(StreamArea {
                config: STREAM,
                kernel_slot: slot,
                read_buf: leak(READ_BUF_LEN),
                compressed: decoder,
            })
            .unwrap();
        let core = Box::leak(Box::new(core));
        let recorder: &'static Recorder = Box::leak(Box::default());
        flash.set_nor_client(core);
        core.set_client(recorder);
        crate::nor::AsyncNorClient::ready(core);
        flash.run();
        assert!(core.status().is_some(), "the start-up scan did not finish");
        Rig {
            flash,
            core,
            recorder,
        }
    }

    /// The same flash after a power cut: a new boot's core over the bytes it holds.
    fn reboot(&self, slot: &'static [u8], compressed: bool) -> Rig {
        Rig::boot(Some(self.flash.memory.borrow().clone()), slot, compressed)
    }

    /// Starts `request`; the completion may come before this returns (immediate flash) or
    /// after the flash operations run.
    fn owner(
        &self,
        cmd: usize,
        request: Request,
        data: Option<&[u8]>,
    ) -> Result<Completion, Error> {
        let fill = |dst: &mut [u8]| -> Result<(), ErrorCode> {
            let src = data.unwrap_or(&[]);
            dst.copy_from_slice(&src[..dst.len()]);
            Ok(())
        };
        let fill_ref: &dyn Fn(&mut [u8]) -> Result<(), ErrorCode> = &fill;
        self.core
            .request(dfu(), cmd, request, data.map(|_| fill_ref))
            .expect("request accepted");
        self.flash.run();
        let mut done = self.recorder.done.borrow_mut();
        assert_eq!(done.len(), 1, "one completion per request");
        let (c, result) = done.pop().unwrap();
        assert_eq!(c, cmd);
        result
    }

    /// Begin a session with `capabilities` in its tag, erase and write `bytes`.
    fn stage(&self, bytes: &[u8], capabilities: u8) {
        // Each session its own tag (as the sender's session number makes it).
        let mut tag = [0x11; TAG_LEN];
        tag[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        tag[4] = bytes[bytes.len() / 2];
        tag[crate::stream_rebuild::TAG_CAPABILITIES] = capabilities;
        let begin = Request::Begin {
            tag,
            image_len: bytes.len() as u32,
        };
        assert_eq!(
            self.owner(command::BEGIN, begin, None),
            Ok(Completion::Begun)
        );
        for offset in (0..bytes.len() as u32).step_by(4096) {
            let erase = Request::Erase { offset };
            assert_eq!(
                self.owner(command::ERASE, erase, None),
                Ok(Completion::Erased)
            );
        }
        for (i, piece) in bytes.chunks(BUF_LEN).enumerate() {
            let write = Request::Write {
                offset: (i * BUF_LEN) as u32,
                len: piece.len() as u32,
            };
            assert_eq!(
                self.owner(command::WRITE, write, Some(piece)),
                Ok(Completion::Written)
            );
        }
    }

    fn finalize(&self) -> Result<Completion, Error> {
        self.owner(command::FINALIZE, Request::Finalize, None)
    }

    fn no_request(&self) -> bool {
        self.flash.memory.borrow()[REQUEST_SECTOR]
            .iter()
            .all(|&b| b == 0xFF)
    }

    fn staged(&self, len: usize) -> Vec<u8> {
        let at = STAGING.staging_base as usize;
        self.flash.memory.borrow()[at..at + len].to_vec()
    }
}

fn key() -> p256_host::ecdsa::SigningKey {
    p256_host::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap()
}

/// A kernel-like payload: repetitive enough to compress, different per `seed` in a few places.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len)
        .map(|i| [0x00, 0xB5, 0x10, 0x4B, (i / 64) as u8, 0x47, 0x70, 0xBD][i % 8])
        .collect();
    for at in [100, len / 2, len - 7] {
        p[at] = p[at].wrapping_add(seed);
    }
    p
}

fn signed(payload: &[u8], version: u8) -> Vec<u8> {
    let opts = ota_imgtool::sign::SignOptions {
        version: ota_image::ImageVersion {
            major: version,
            ..Default::default()
        },
        ..Default::default()
    };
    ota_imgtool::sign::sign_image(payload, &opts, &key()).unwrap()
}

fn compressed(payload: &[u8], version: u8) -> (Vec<u8>, Vec<u8>) {
    let opts = ota_imgtool::sign::SignOptions {
        version: ota_image::ImageVersion {
            major: version,
            ..Default::default()
        },
        ..Default::default()
    };
    let out = ota_imgtool::compress::sign_compressed(
        payload,
        &opts,
        &key(),
        ota_image::compressed::Compression::Lzma2ArmThumb,
    )
    .unwrap();
    assert!(out.compressed_len.is_some(), "the test payload compresses");
    (
        out.image,
        ota_imgtool::sign::sign_image(payload, &opts, &key()).unwrap(),
    )
}

/// v1 installed (its payload in the kernel slot), v2 and the patch between them.
fn delta_case(len: usize) -> (&'static [u8], Vec<u8>, Vec<u8>) {
    let v1 = payload(len, 0);
    let old = signed(&v1, 1);
    let new = signed(&payload(len + 300, 9), 2);
    let patch = ota_reconstruct::diff::make_image_patch(&old, &new).unwrap();
    assert!(patch.len() < new.len() / 4, "the patch is small");
    (kernel_slot(&v1), new, patch)
}

fn assert_finalized(rig: &Rig, result: Result<Completion, Error>, image: &[u8]) {
    let Ok(Completion::Finalized { image_len, .. }) = result else {
        panic!("finalize failed: {result:?}");
    };
    assert_eq!(image_len, image.len() as u32);
    assert!(
        rig.staged(image.len()) == image,
        "the staging slot holds the rebuilt image"
    );
    assert!(!rig.no_request(), "finalize wrote the boot request");
    let status = rig.core.status().unwrap();
    assert_eq!(status.state, SessionState::Finalized);
    assert_eq!(status.image_len, image.len() as u32);
}

fn assert_refused(rig: &Rig, result: Result<Completion, Error>, want: u32) {
    assert_eq!(result, Err(Error::StreamRefused { detail: want }));
    assert!(rig.no_request(), "a refused stream requested an install");
    // The stream session stays (the app may abort it or begin another).
    assert_eq!(rig.core.status().unwrap().state, SessionState::Staging);
}

const DELTA: u8 = adv_transfer::wire::capability::DELTA;
const COMPRESSED: u8 = adv_transfer::wire::capability::COMPRESSED;

#[test]
fn stream_tags_are_the_sessions_with_a_compressed_or_delta_capability() {
    let info = |capabilities| adv_transfer::wire::SessionInfo {
        session: 7,
        image_len: 1000,
        image_crc: 3,
        capabilities,
    };
    assert!(is_stream_tag(&info(DELTA).tag()));
    assert!(is_stream_tag(&info(COMPRESSED).tag()));
    assert!(!is_stream_tag(&info(0).tag()));
}

#[test]
fn a_delta_session_is_staged_in_the_stream_area_and_rebuilt_into_the_staging_slot() {
    let (slot, new, patch) = delta_case(20_000);
    let rig = Rig::boot(None, slot, false);
    rig.stage(&patch, DELTA);
    let at = STREAM.staging_base as usize;
    assert!(
        rig.flash.memory.borrow()[at..at + patch.len()] == patch[..],
        "the patch is staged in the stream area"
    );
    assert_eq!(rig.core.status().unwrap().image_len, patch.len() as u32);
    assert_finalized(&rig, rig.finalize(), &new);
}

#[test]
fn completions_that_arrive_before_the_call_returns_rebuild_the_same() {
    let (slot, new, patch) = delta_case(3_000);
    let rig = Rig::boot(None, slot, false);
    rig.flash.immediate.set(true);
    rig.stage(&patch, DELTA);
    assert_finalized(&rig, rig.finalize(), &new);
}

#[test]
fn a_compressed_session_is_decoded_into_the_plain_image() {
    let (image, plain) = compressed(&payload(30_000, 5), 2);
    assert!(image.len() < plain.len() / 2);
    let rig = Rig::boot(None, kernel_slot(&[]), true);
    rig.stage(&image, COMPRESSED);
    assert_finalized(&rig, rig.finalize(), &plain);
    // The decoder's storage is given back: a second compressed update decodes too.
    let (image, plain) = compressed(&payload(25_000, 6), 3);
    rig.stage(&image, COMPRESSED);
    assert_finalized(&rig, rig.finalize(), &plain);
}

#[test]
fn a_device_without_the_compressed_decoder_refuses_compressed_streams() {
    let (image, _) = compressed(&payload(30_000, 5), 2);
    let rig = Rig::boot(None, kernel_slot(&[]), false);
    rig.stage(&image, COMPRESSED);
    assert_refused(&rig, rig.finalize(), detail::STREAM_BAD_FORMAT);
}

#[test]
fn a_patch_against_another_kernel_is_refused_before_anything_is_written() {
    let (_, _, patch) = delta_case(20_000);
    let mut other = payload(20_000, 0);
    other[5000] ^= 1;
    let rig = Rig::boot(None, kernel_slot(&other), false);
    rig.stage(&patch, DELTA);
    let staging_before = rig.staged(4096);
    assert_refused(&rig, rig.finalize(), detail::STREAM_WRONG_BASE);
    assert_eq!(rig.staged(4096), staging_before, "nothing was written");
}

#[test]
fn corrupt_and_truncated_streams_are_refused_with_a_reason() {
    let (slot, _, patch) = delta_case(20_000);
    // A truncated patch: its end marker is missing.
    let rig = Rig::boot(None, slot, false);
    rig.stage(&patch[..patch.len() - 40], DELTA);
    assert_refused(&rig, rig.finalize(), detail::STREAM_TRUNCATED);
    // A corrupt patch header.
    let mut bad = patch.clone();
    bad[0] ^= 0xFF;
    let rig = Rig::boot(None, slot, false);
    rig.stage(&bad, DELTA);
    assert_refused(&rig, rig.finalize(), detail::STREAM_BAD_FORMAT);
    // A corrupt compressed stream (a byte of the LZMA2 data, after its 2-byte header; the
    // payload starts after the 0x200-byte header).
    let (mut image, _) = compressed(&payload(30_000, 5), 2);
    image[0x200 + 20] ^= 0x5A;
    let rig = Rig::boot(None, kernel_slot(&[]), true);
    rig.stage(&image, COMPRESSED);
    let result = rig.finalize();
    let Err(Error::StreamRefused { detail: d }) = result else {
        panic!("a corrupt compressed stream was not refused: {result:?}");
    };
    assert!(detail::STREAM_REFUSED.contains(&d), "detail {d}");
    assert!(rig.no_request());
}

#[test]
fn a_power_cut_during_the_rebuild_costs_a_finalize() {
    let (slot, new, patch) = delta_case(20_000);
    let rig = Rig::boot(None, slot, false);
    rig.stage(&patch, DELTA);
    // How many flash operations a whole rebuild and finalize take.
    let probe = rig.reboot(slot, false);
    let before = probe.flash.operations.get();
    assert_finalized(&probe, probe.finalize(), &new);
    let total = probe.flash.operations.get() - before;
    assert!(total > 20);
    for cut in [1, 2, total / 3, total / 2, total - 3] {
        let rig = rig.reboot(slot, false);
        let fin = Request::Finalize;
        rig.core
            .request(dfu(), command::FINALIZE, fin, None)
            .unwrap();
        for _ in 0..cut {
            assert!(rig.flash.complete(), "the rebuild ended before cut {cut}");
        }
        // The power fails during this operation: it does not complete, and the device reboots.
        let cut_rig = rig.reboot(slot, false);
        assert!(
            cut_rig.no_request(),
            "cut {cut}: a boot request before the rebuild ended"
        );
        assert_eq!(
            cut_rig.core.status().unwrap().state,
            SessionState::Staging,
            "cut {cut}: the stream session survives"
        );
        assert_finalized(&cut_rig, cut_rig.finalize(), &new);
    }
    // A cut after the boot request, before the stream session is forgotten: the rebuilt image
    // is requested and the finalized session is what the app sees after the reboot.
    let rig2 = rig.reboot(slot, false);
    rig2.core
        .request(dfu(), command::FINALIZE, Request::Finalize, None)
        .unwrap();
    for _ in 0..total - 1 {
        assert!(rig2.flash.complete(), "the rebuild ended early");
    }
    let cut_rig = rig2.reboot(slot, false);
    assert!(!cut_rig.no_request(), "the boot request was written");
    let status = cut_rig.core.status().unwrap();
    assert_eq!(status.state, SessionState::Finalized);
    assert_eq!(status.image_len, new.len() as u32);
    // A failed flash operation (not a reboot) ends finalize with a flash error; the next
    // finalize rebuilds from the start.
    let rig = rig.reboot(slot, false);
    rig.core
        .request(dfu(), command::FINALIZE, Request::Finalize, None)
        .unwrap();
    for _ in 0..total / 2 {
        assert!(rig.flash.complete());
    }
    rig.flash.fail_next.set(true);
    rig.flash.run();
    let (_, result) = rig.recorder.done.borrow_mut().pop().unwrap();
    assert_eq!(result, Err(Error::Flash));
    assert!(rig.no_request());
    assert_finalized(&rig, rig.finalize(), &new);
}

#[test]
fn a_plain_begin_forgets_the_stream_session() {
    let (slot, _, patch) = delta_case(3_000);
    let rig = Rig::boot(None, slot, false);
    rig.stage(&patch, DELTA);
    let plain = signed(&payload(5_000, 1), 4);
    rig.stage(&plain, 0);
    assert_eq!(rig.core.status().unwrap().image_len, plain.len() as u32);
    let result = rig.finalize();
    assert_finalized(&rig, result, &plain);
}

#[test]
fn the_running_image_is_the_newest_confirmed_one_as_a_delta_sender_names_it() {
    let (slot, new, patch) = delta_case(3_000);
    let rig = Rig::boot(None, slot, false);
    assert_eq!(rig.core.running_image(), None, "nothing confirmed yet");
    rig.stage(&patch, DELTA);
    assert_finalized(&rig, rig.finalize(), &new);
    assert_eq!(
        rig.core.running_image(),
        None,
        "a boot request newer than any confirm: the kernel cannot tell"
    );
    // The new kernel's app confirms its trial (after the reboot).
    let rig = rig.reboot(slot, false);
    assert!(matches!(
        rig.owner(command::CONFIRM, Request::Confirm, None),
        Ok(Completion::Confirmed { .. })
    ));
    let id = ota_reconstruct::diff::SignedImage::parse(&new, "v2")
        .unwrap()
        .id();
    assert_eq!(rig.core.running_image(), Some(id));
    assert_eq!(rig.reboot(slot, false).core.running_image(), Some(id));
    // A core without the stream area takes no patches and names nothing.
    let flash = FakeNor::new(CAPACITY);
    *flash.memory.borrow_mut() = rig.flash.memory.borrow().clone();
    let plain = Box::leak(Box::new(
        StagedUpdate::new(flash, STAGING, leak(BUF_LEN), leak(MAX_POLICY_READ)).unwrap(),
    ));
    flash.set_nor_client(plain);
    crate::nor::AsyncNorClient::ready(plain);
    flash.run();
    assert!(plain.status().is_some());
    assert_eq!(plain.running_image(), None);
}
