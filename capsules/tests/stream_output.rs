//! Received streams at the syscall layer: a delta patch and a compressed image staged in the
//! received-stream area, rebuilt by the test as the DFU app rebuilds them (`ota_reconstruct`'s
//! `Rebuild`, driven through `READ`, `BASE_READ` and the `OUTPUT_*` commands), then `FINALIZE`:
//! the boot request, the plain image in the staging slot, the stream session forgotten.
//!
//! Also: the output commands refused without a stream session or before `OUTPUT_BEGIN`,
//! `BASE_READ`'s bounds, a refused image at finalize keeping the stream session, a power cut
//! (a reboot, or a failed flash operation) during the output or the finalize costing only a new
//! `OUTPUT_BEGIN`, and every path with completions arriving before the command returns.

// Shared test support; each test crate uses a part of it.
#[path = "support/fake_nor.rs"]
#[allow(dead_code)]
mod fake_nor;
#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use core::num::NonZeroU32;
use std::boxed::Box;
use std::cell::Cell;
use std::vec;
use std::vec::Vec;

use dfu_abi::update::detail;
use fake_nor::FakeNor;
use kernel::process::ShortId;
use kernel::syscall::SyscallDriver;
use kernel::ErrorCode;
use ota_lzma::image::CompressedImage;
use ota_reconstruct::stream::{AnyStream, Kind};
use ota_reconstruct::{Area, Rebuild, CHUNK};
use process::{FakeProcess, Harness};
use tock_ota_capsules::nor::AsyncNor;
use tock_ota_capsules::staged_update::{
    command, error_code, ro_allow, rw_allow, upcall, StagedUpdate, StagedUpdateDriver, SystemReset,
    BUF_LEN, DRIVER_NUM,
};
use tock_ota_capsules::stream_rebuild::StreamArea;
use update_region::{Config, Error, SessionState, MAX_POLICY_READ, SECTOR_SIZE, TAG_LEN};

const DFU: u32 = 0x0D0F_0001;
const CAPACITY: usize = 8 * 1024 * 1024;
/// The kernel slot (224 KiB, as the DK's).
const SLOT_LEN: usize = 224 * 1024;
const STAGING: Config = Config::nrf52840dk(DFU);
const STREAM: Config = Config::nrf52840dk_stream(DFU);
const REQUEST_SECTOR: core::ops::Range<usize> = 0..4096;
const DELTA: u8 = adv_transfer::wire::capability::DELTA;
const COMPRESSED: u8 = adv_transfer::wire::capability::COMPRESSED;

struct NoReset;

impl SystemReset for NoReset {
    fn reset(&self) {
        panic!("no test reboots through the driver");
    }
}

type Core = StagedUpdate<'static, FakeNor>;
type Driver = StagedUpdateDriver<'static, FakeNor>;

/// What a command led to: its failure, or the one upcall's `(status, value)`.
type Outcome = Result<(usize, usize), ErrorCode>;

struct Rig {
    harness: Harness,
    flash: &'static FakeNor,
    core: &'static Core,
    driver: &'static Driver,
    dfu: &'static FakeProcess,
    read_buffer: &'static [Cell<u8>],
    slot: &'static [u8],
}

impl Rig {
    /// A booted kernel over `memory` (a fresh flash, or what a power cut left) whose kernel
    /// slot is `slot`.
    fn boot(memory: Option<Vec<u8>>, slot: &'static [u8]) -> Rig {
        let harness = Harness::new();
        let flash = FakeNor::new(CAPACITY);
        if let Some(memory) = memory {
            *flash.memory.borrow_mut() = memory;
        }
        let data: &'static mut [u8] = Box::leak(vec![0u8; BUF_LEN].into_boxed_slice());
        let scratch: &'static mut [u8] = Box::leak(vec![0u8; MAX_POLICY_READ].into_boxed_slice());
        let core = StagedUpdate::new(flash, STAGING, data, scratch)
            .unwrap()
            .with_streams(StreamArea {
                config: STREAM,
                kernel_slot: slot,
            })
            .unwrap();
        let core: &'static Core = Box::leak(Box::new(core));
        let driver: &'static Driver = Box::leak(Box::new(StagedUpdateDriver::new(
            core,
            harness.grant(DRIVER_NUM),
            &NoReset,
        )));
        flash.set_nor_client(core);
        core.set_client(driver);
        tock_ota_capsules::nor::AsyncNorClient::ready(core);
        flash.run();
        assert!(core.status().is_some(), "the start-up scan did not finish");
        let dfu = harness.add_process(0, 7, ShortId::Fixed(NonZeroU32::new(DFU).unwrap()));
        driver.allocate_grant(dfu.id()).unwrap();
        let read_buffer: &'static [Cell<u8>] =
            Box::leak((0..BUF_LEN).map(|_| Cell::new(0)).collect::<Box<[_]>>());
        dfu.allow_rw(DRIVER_NUM, rw_allow::READ, read_buffer);
        Rig {
            harness,
            flash,
            core,
            driver,
            dfu,
            read_buffer,
            slot,
        }
    }

    /// The same flash after a power cut: a new boot over the bytes it holds.
    fn reboot(&self) -> Rig {
        Rig::boot(Some(self.flash.memory.borrow().clone()), self.slot)
    }

    fn allow_data(&self, bytes: &[u8]) {
        self.dfu
            .allow_ro(DRIVER_NUM, ro_allow::DATA, Box::leak(bytes.into()));
    }

    /// Issue `cmd` as `process`, let the flash finish, and check the contract: a success is
    /// followed by exactly one upcall for `cmd`, a failure by none.
    fn command_as(&self, process: &FakeProcess, cmd: usize, arg1: usize, arg2: usize) -> Outcome {
        let settle = || {
            self.flash.run();
        };
        process::command_once(
            self.driver,
            settle,
            process,
            DRIVER_NUM,
            upcall::DONE,
            cmd,
            arg1,
            arg2,
        )
    }

    fn command(&self, cmd: usize, arg1: usize, arg2: usize) -> Outcome {
        self.command_as(self.dfu, cmd, arg1, arg2)
    }

    /// `cmd` must start and end in success.
    fn ok(&self, cmd: usize, arg1: usize, arg2: usize) {
        assert_eq!(self.command(cmd, arg1, arg2), Ok((0, 0)), "command {cmd}");
    }

    fn read_back(&self, len: usize) -> Vec<u8> {
        self.read_buffer[..len].iter().map(Cell::get).collect()
    }

    /// Begin a session with `capabilities` in its tag, erase and write `bytes`.
    fn stage(&self, bytes: &[u8], capabilities: u8) {
        // Each session its own tag (as the sender's session number makes it).
        let mut tag = [0x11; TAG_LEN];
        tag[..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        tag[4] = bytes[bytes.len() / 2];
        tag[adv_transfer::wire::TAG_CAPABILITIES] = capabilities;
        self.allow_data(&tag);
        self.ok(command::BEGIN, bytes.len(), 0);
        for offset in (0..bytes.len()).step_by(SECTOR_SIZE as usize) {
            self.ok(command::ERASE, offset, 0);
        }
        for (i, piece) in bytes.chunks(BUF_LEN).enumerate() {
            self.allow_data(piece);
            self.ok(command::WRITE, i * BUF_LEN, piece.len());
        }
    }

    /// Read `len` bytes with `cmd` (`READ`, `BASE_READ`, `OUTPUT_READ`) at `offset`.
    fn read(&self, cmd: usize, offset: u32, len: usize) -> Result<Vec<u8>, Outcome> {
        match self.command(cmd, offset as usize, len) {
            Ok((0, 0)) => Ok(self.read_back(len)),
            other => Err(other),
        }
    }

    /// Write `data` into the output at `offset`: `OUTPUT_BEGIN` first at offset 0 (with the
    /// image's length), `OUTPUT_ERASE` first at a sector's start.
    fn output(&self, offset: u32, data: &[u8], output_len: u32) -> Result<(), Outcome> {
        let check = |cmd, arg1: usize, arg2| match self.command(cmd, arg1, arg2) {
            Ok((0, 0)) => Ok(()),
            other => Err(other),
        };
        if offset == 0 {
            check(command::OUTPUT_BEGIN, output_len as usize, 0)?;
        }
        if offset.is_multiple_of(SECTOR_SIZE) {
            check(command::OUTPUT_ERASE, offset as usize, 0)?;
        }
        self.allow_data(data);
        check(command::OUTPUT_WRITE, offset as usize, data.len())
    }

    /// Rebuild the staged stream as the DFU app does, through the driver's commands; stop
    /// after `max_writes` output writes (a power cut's place), if given.
    fn rebuild(&self, max_writes: Option<usize>) -> Result<(), RebuildStop> {
        let magic = self
            .read(command::READ, 0, 4)
            .map_err(RebuildStop::Command)?;
        let stream_len = self.core.status().unwrap().image_len;
        let limits =
            ota_reconstruct::stream::limits(stream_len, SLOT_LEN as u32, STAGING.max_image_len());
        let mut compressed = Box::new(CompressedImage::EMPTY);
        let decoder = match Kind::detect(magic.try_into().unwrap()) {
            Kind::Delta => AnyStream::Delta(ota_reconstruct::delta::DeltaDecoder::new()),
            Kind::Compressed => {
                compressed.restart(SLOT_LEN as u32);
                AnyStream::Compressed(&mut *compressed)
            }
        };
        let mut rebuild = Rebuild::new(decoder, limits);
        let mut writes = 0;
        let mut action = rebuild.start();
        // Every step reads or writes at most a chunk of a bounded stream and output.
        for _ in 0..1_000_000 {
            action = match action {
                ota_reconstruct::Action::Read { area, offset, len } => {
                    assert!(len <= CHUNK);
                    let cmd = match area {
                        Area::Stream => command::READ,
                        Area::Base => command::BASE_READ,
                        Area::Output => command::OUTPUT_READ,
                    };
                    let bytes = self.read(cmd, offset, len).map_err(RebuildStop::Command)?;
                    rebuild.read_done(&bytes)
                }
                ota_reconstruct::Action::Write { offset, data } => {
                    let data = data.to_vec();
                    if max_writes == Some(writes) {
                        return Err(RebuildStop::Cut);
                    }
                    writes += 1;
                    let output_len = rebuild.plan().unwrap().output_len;
                    self.output(offset, &data, output_len)
                        .map_err(RebuildStop::Command)?;
                    rebuild.write_done()
                }
                ota_reconstruct::Action::Done(result) => {
                    return result.map(|_| ()).map_err(RebuildStop::Refused)
                }
            };
        }
        panic!("the rebuild never ended");
    }

    fn finalize(&self) -> Outcome {
        self.command(command::FINALIZE, 0, 0)
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

    /// A finalize that succeeded: the boot request, the image in the staging slot, the stream
    /// session forgotten (the app sees the finalized session).
    fn assert_finalized(&self, outcome: Outcome, image: &[u8]) {
        let Ok((0, sequence)) = outcome else {
            panic!("finalize failed: {outcome:?}");
        };
        assert!(sequence > 0, "the boot request's sequence");
        assert!(
            self.staged(image.len()) == image,
            "the staging slot holds the rebuilt image"
        );
        assert!(!self.no_request(), "finalize wrote the boot request");
        assert_eq!(
            self.core.stream_tag(),
            None,
            "the stream session is forgotten"
        );
        let status = self.core.status().unwrap();
        assert_eq!(status.state, SessionState::Finalized);
        assert_eq!(status.image_len, image.len() as u32);
        // And after a reboot.
        let after = self.reboot();
        assert_eq!(after.core.stream_tag(), None);
        assert_eq!(after.core.status().unwrap().state, SessionState::Finalized);
    }
}

/// Why the test's rebuild stopped.
#[derive(Debug, PartialEq, Eq)]
enum RebuildStop {
    /// A command failed (synchronously, or its upcall carried an error).
    Command(Outcome),
    /// The decoder refused the stream.
    Refused(ota_reconstruct::Error),
    /// The test cut it short.
    Cut,
}

fn key() -> p256_host::ecdsa::SigningKey {
    p256_host::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap()
}

/// The kernel slot holding `payload` (an installed image's payload), erased after it.
fn kernel_slot(payload: &[u8]) -> &'static [u8] {
    let slot = Box::leak(vec![0xFF; SLOT_LEN].into_boxed_slice());
    slot[..payload.len()].copy_from_slice(payload);
    slot
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

fn options(version: u8) -> ota_imgtool::sign::SignOptions {
    ota_imgtool::sign::SignOptions {
        version: ota_image::ImageVersion {
            major: version,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn signed(payload: &[u8], version: u8) -> Vec<u8> {
    ota_imgtool::sign::sign_image(payload, &options(version), &key()).unwrap()
}

/// A compressed image of `payload` and the plain signed image it decodes to.
fn compressed(payload: &[u8], version: u8) -> (Vec<u8>, Vec<u8>) {
    let out = ota_imgtool::compress::sign_compressed(
        payload,
        &options(version),
        &key(),
        ota_image::compressed::Compression::Lzma2ArmThumb,
    )
    .unwrap();
    assert!(out.compressed_len.is_some(), "the test payload compresses");
    (out.image, signed(payload, version))
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

#[test]
fn a_delta_patch_is_rebuilt_by_the_app_through_the_output_commands_and_finalized() {
    for immediate in [false, true] {
        let (slot, new, patch) = delta_case(20_000);
        let rig = Rig::boot(None, slot);
        rig.flash.immediate.set(immediate);
        rig.stage(&patch, DELTA);
        let at = STREAM.staging_base as usize;
        assert!(
            rig.flash.memory.borrow()[at..at + patch.len()] == patch[..],
            "the patch is staged in the stream area"
        );
        // The stream session is what the app sees until finalize.
        assert_eq!(rig.core.status().unwrap().image_len, patch.len() as u32);
        rig.rebuild(None).unwrap();
        let status = rig.core.status().unwrap();
        assert_eq!(status.state, SessionState::Staging);
        assert_eq!(status.image_len, patch.len() as u32, "still the stream's");
        assert!(rig.no_request());
        rig.assert_finalized(rig.finalize(), &new);
    }
}

#[test]
fn a_compressed_image_is_decoded_by_the_app_and_finalized() {
    for immediate in [false, true] {
        let rig = Rig::boot(None, kernel_slot(&[]));
        rig.flash.immediate.set(immediate);
        let (image, plain) = compressed(&payload(30_000, 5), 2);
        assert!(image.len() < plain.len() / 2);
        rig.stage(&image, COMPRESSED);
        rig.rebuild(None).unwrap();
        rig.assert_finalized(rig.finalize(), &plain);
        // A second compressed update in the same boot.
        let (image, plain) = compressed(&payload(25_000, 6), 3);
        rig.stage(&image, COMPRESSED);
        rig.rebuild(None).unwrap();
        rig.assert_finalized(rig.finalize(), &plain);
    }
}

#[test]
fn the_output_commands_need_a_stream_session_and_its_output_begin() {
    let (slot, _, patch) = delta_case(3_000);
    let rig = Rig::boot(None, slot);
    rig.allow_data(&[0u8; 16]);
    let output = [
        command::OUTPUT_BEGIN,
        command::OUTPUT_ERASE,
        command::OUTPUT_WRITE,
        command::OUTPUT_READ,
        command::BASE_READ,
    ];
    // No session at all.
    for cmd in output {
        assert_eq!(rig.command(cmd, 0, 16), Err(ErrorCode::RESERVE), "{cmd}");
    }
    // A plain session: the output commands are not its.
    let plain = signed(&payload(3_000, 1), 4);
    rig.stage(&plain, 0);
    for cmd in output {
        assert_eq!(rig.command(cmd, 0, 16), Err(ErrorCode::RESERVE), "{cmd}");
    }
    // A stream session before OUTPUT_BEGIN: erase, write, read and finalize refused.
    rig.stage(&patch, DELTA);
    rig.allow_data(&[0u8; 16]);
    for cmd in [
        command::OUTPUT_ERASE,
        command::OUTPUT_WRITE,
        command::OUTPUT_READ,
        command::FINALIZE,
    ] {
        assert_eq!(rig.command(cmd, 0, 16), Err(ErrorCode::RESERVE), "{cmd}");
    }
    assert!(rig.no_request());
    // After it, they run on the staging slot's session, under its policy's rules.
    rig.ok(command::OUTPUT_BEGIN, 8192, 0);
    let staging = rig.core.stream_tag().unwrap();
    assert_eq!(rig.core.status().unwrap().tag, staging, "the stream's");
    assert_eq!(
        rig.command(command::OUTPUT_WRITE, 0, 16),
        Err(error_code(Error::NotErased { offset: 0 })),
        "a sector not erased in this session"
    );
    assert_eq!(
        rig.command(command::OUTPUT_ERASE, 100, 0),
        Err(ErrorCode::INVAL),
        "unaligned"
    );
    rig.ok(command::OUTPUT_ERASE, 0, 0);
    rig.allow_data(&[0x5A; 16]);
    rig.ok(command::OUTPUT_WRITE, 0, 16);
    assert_eq!(rig.read(command::OUTPUT_READ, 0, 16), Ok(vec![0x5A; 16]));
    assert_eq!(
        rig.command(command::OUTPUT_READ, 0, BUF_LEN + 1),
        Err(ErrorCode::SIZE)
    );
    // READ is still the stream session's.
    assert_eq!(rig.read(command::READ, 0, 16), Ok(patch[..16].to_vec()));
    // Only the DFU process.
    let other = rig
        .harness
        .add_process(1, 8, ShortId::Fixed(NonZeroU32::new(DFU + 1).unwrap()));
    rig.driver.allocate_grant(other.id()).unwrap();
    for cmd in output.into_iter().chain([command::FINALIZE]) {
        assert_eq!(
            rig.command_as(other, cmd, 0, 16),
            Err(ErrorCode::NODEVICE),
            "{cmd}"
        );
    }
    // An abort forgets the stream session: the output commands are refused again.
    rig.ok(command::ABORT, 0, 0);
    assert_eq!(rig.core.stream_tag(), None);
    for cmd in output {
        assert_eq!(rig.command(cmd, 0, 16), Err(ErrorCode::RESERVE), "{cmd}");
    }
}

#[test]
fn base_read_copies_the_kernel_slot_within_its_bounds() {
    let (slot, _, patch) = delta_case(3_000);
    let rig = Rig::boot(None, slot);
    rig.stage(&patch, DELTA);
    // The completion is queued before the command returns (no flash operation).
    let ret = rig
        .driver
        .command(command::BASE_READ, 1000, 64, rig.dfu.id());
    assert!(ret.is_success());
    let upcalls = rig.dfu.take_upcalls();
    assert_eq!(upcalls.len(), 1, "{upcalls:?}");
    assert_eq!(upcalls[0].args, (command::BASE_READ, 0, 0));
    assert_eq!(rig.read_back(64), slot[1000..1064]);
    // The slot's last bytes; then beyond it, and longer than a command moves.
    let end = SLOT_LEN - BUF_LEN;
    assert_eq!(
        rig.read(command::BASE_READ, end as u32, BUF_LEN).unwrap(),
        slot[end..]
    );
    for (offset, len) in [
        (SLOT_LEN - 3, 4),
        (SLOT_LEN, 1),
        (usize::MAX, 1),
        (0, BUF_LEN + 1),
        (u32::MAX as usize + 1, 1),
    ] {
        assert_eq!(
            rig.command(command::BASE_READ, offset, len),
            Err(ErrorCode::SIZE),
            "{offset} + {len}"
        );
    }
    // A read-write allow too short for the bytes.
    let small: &'static [Cell<u8>] = Box::leak((0..15).map(|_| Cell::new(0)).collect::<Box<[_]>>());
    rig.dfu.allow_rw(DRIVER_NUM, rw_allow::READ, small);
    assert_eq!(
        rig.command(command::BASE_READ, 0, 16),
        Err(ErrorCode::INVAL)
    );
    rig.dfu
        .allow_rw(DRIVER_NUM, rw_allow::READ, rig.read_buffer);
    // A full task queue: the completion is kept, new requests are BUSY until the process's
    // next command hands it over, once.
    rig.dfu.queue_full.set(true);
    let ret = rig
        .driver
        .command(command::BASE_READ, 2000, 8, rig.dfu.id());
    assert!(ret.is_success());
    assert!(rig.dfu.take_upcalls().is_empty());
    assert_eq!(
        rig.command(command::BASE_READ, 0, 8),
        Err(ErrorCode::BUSY),
        "the kept completion goes first"
    );
    rig.dfu.queue_full.set(false);
    let ret = rig.driver.command(command::STATUS, 0, 0, rig.dfu.id());
    assert!(ret.get_failure().is_none());
    let upcalls = rig.dfu.take_upcalls();
    assert_eq!(upcalls.len(), 1, "{upcalls:?}");
    assert_eq!(upcalls[0].args, (command::BASE_READ, 0, 0));
    assert_eq!(rig.read_back(8), slot[2000..2008]);
    // While another request is out, refused: completions stay in order.
    let ret = rig.driver.command(command::READ, 0, 16, rig.dfu.id());
    assert!(ret.is_success());
    assert_eq!(
        rig.driver
            .command(command::BASE_READ, 0, 16, rig.dfu.id())
            .get_failure(),
        Some(ErrorCode::BUSY)
    );
    rig.flash.run();
    let upcalls = rig.dfu.take_upcalls();
    assert_eq!(upcalls.len(), 1, "{upcalls:?}");
    assert_eq!(upcalls[0].args, (command::READ, 0, 0));
    assert_eq!(rig.read_back(16), patch[..16]);
}

#[test]
fn a_refused_image_at_finalize_keeps_the_stream_session() {
    let (slot, new, patch) = delta_case(20_000);
    let rig = Rig::boot(None, slot);
    rig.stage(&patch, DELTA);
    let stream = rig.core.stream_tag().unwrap();
    // The app writes an image that is not the signed one (as a decoder bug would).
    let mut wrong = new.clone();
    wrong[600] ^= 1;
    for (i, piece) in wrong.chunks(CHUNK).enumerate() {
        rig.output((i * CHUNK) as u32, piece, wrong.len() as u32)
            .unwrap();
    }
    let (status, value) = rig.finalize().unwrap();
    assert_eq!(status, usize::from(ErrorCode::FAIL));
    assert!(
        detail::IMAGE_REFUSED.contains(&(value as u32)),
        "detail {value}"
    );
    assert!(rig.no_request(), "a refused image requested an install");
    assert_eq!(
        rig.core.stream_tag(),
        Some(stream),
        "the stream session stays"
    );
    assert_eq!(rig.core.status().unwrap().image_len, patch.len() as u32);
    // The app rebuilds again (a new OUTPUT_BEGIN) and finalizes.
    rig.rebuild(None).unwrap();
    rig.assert_finalized(rig.finalize(), &new);
}

#[test]
fn a_patch_against_another_kernel_is_refused_by_the_app_before_any_output() {
    let (_, _, patch) = delta_case(20_000);
    let mut other = payload(20_000, 0);
    other[5000] ^= 1;
    let rig = Rig::boot(None, kernel_slot(&other));
    rig.stage(&patch, DELTA);
    let staging_before = rig.staged(4096);
    assert_eq!(
        rig.rebuild(None),
        Err(RebuildStop::Refused(ota_reconstruct::Error::WrongBase))
    );
    assert_eq!(rig.staged(4096), staging_before, "nothing was written");
    assert_eq!(
        rig.finalize(),
        Err(ErrorCode::RESERVE),
        "nothing to finalize"
    );
    assert!(rig.no_request());
}

#[test]
fn a_power_cut_during_the_output_costs_a_new_output_begin() {
    let (slot, new, patch) = delta_case(20_000);
    let rig = Rig::boot(None, slot);
    rig.stage(&patch, DELTA);
    let pages = new.len().div_ceil(CHUNK);
    for cut in [0, 1, 16, 17, pages / 2, pages - 1] {
        let before = rig.reboot();
        // The rebuild stops after `cut` pages; the device reboots.
        assert_eq!(before.rebuild(Some(cut)), Err(RebuildStop::Cut));
        let after = before.reboot();
        assert!(after.no_request(), "cut {cut}: a boot request");
        assert!(
            after.core.stream_tag().is_some(),
            "cut {cut}: the stream session survives"
        );
        let status = after.core.status().unwrap();
        assert_eq!(status.state, SessionState::Staging);
        assert_eq!(status.image_len, patch.len() as u32);
        // The app starts the output over; finalize succeeds.
        after.rebuild(None).unwrap();
        after.assert_finalized(after.finalize(), &new);
    }
    // A flash operation that fails in the middle of a write (no reboot): the write reports
    // FAIL, and a new OUTPUT_BEGIN and rebuild finish the update.
    let rig = rig.reboot();
    assert_eq!(rig.rebuild(Some(20)), Err(RebuildStop::Cut));
    rig.allow_data(&new[20 * CHUNK..21 * CHUNK]);
    let ret = rig
        .driver
        .command(command::OUTPUT_WRITE, 20 * CHUNK, CHUNK, rig.dfu.id());
    assert!(ret.is_success());
    rig.flash.fail_next.set(true);
    rig.flash.run();
    let upcalls = rig.dfu.take_upcalls();
    assert_eq!(upcalls.len(), 1, "{upcalls:?}");
    assert_eq!(upcalls[0].args.0, command::OUTPUT_WRITE);
    assert_eq!(upcalls[0].args.1, usize::from(ErrorCode::FAIL));
    rig.rebuild(None).unwrap();
    rig.assert_finalized(rig.finalize(), &new);
}

#[test]
fn a_power_cut_during_finalize_leaves_the_update_or_the_stream_session() {
    let (slot, new, patch) = delta_case(20_000);
    let rig = Rig::boot(None, slot);
    rig.stage(&patch, DELTA);
    rig.rebuild(None).unwrap();
    // How many flash operations the finalize takes (check, boot request, the stream's abort).
    let probe = rig.reboot();
    let before = probe.flash.operations.get();
    probe.assert_finalized(probe.finalize(), &new);
    let total = probe.flash.operations.get() - before;
    assert!(total > 3, "{total}");
    let (mut before_request, mut after_request) = (0, 0);
    for cut in 0..total {
        let run = rig.reboot();
        let ret = run.driver.command(command::FINALIZE, 0, 0, run.dfu.id());
        assert!(ret.is_success());
        for _ in 0..cut {
            assert!(run.flash.complete(), "finalize ended before cut {cut}");
        }
        // The power fails during this operation.
        let after = run.reboot();
        let status = after.core.status().unwrap();
        if status.state == SessionState::Finalized {
            // After the boot request: the finalized session is what the app sees; the stream
            // is over (forgotten, or a leftover whose tag is the finalized session's).
            assert_eq!(after.core.stream_tag(), None, "cut {cut}");
            assert_eq!(status.image_len, new.len() as u32);
            assert_eq!(after.staged(new.len()), new);
            after_request += 1;
        } else {
            // Before it (a request record half written does not count): the stream session
            // and the rebuilt output are there; finalize again (or, had the output been cut,
            // a new OUTPUT_BEGIN).
            assert!(after.core.stream_tag().is_some(), "cut {cut}");
            assert_eq!(status.image_len, patch.len() as u32, "cut {cut}");
            after.assert_finalized(after.finalize(), &new);
            before_request += 1;
        }
    }
    assert!(
        before_request > 0 && after_request > 0,
        "cuts on both sides of the request"
    );
}

#[test]
fn a_plain_begin_forgets_the_stream_session_and_its_output() {
    let (slot, _, patch) = delta_case(3_000);
    let rig = Rig::boot(None, slot);
    rig.stage(&patch, DELTA);
    rig.ok(command::OUTPUT_BEGIN, 4096, 0);
    let plain = signed(&payload(5_000, 1), 4);
    rig.stage(&plain, 0);
    assert_eq!(rig.core.stream_tag(), None);
    assert_eq!(rig.core.status().unwrap().image_len, plain.len() as u32);
    rig.assert_finalized(rig.finalize(), &plain);
}

#[test]
fn the_running_image_is_the_newest_confirmed_one_as_a_delta_sender_names_it() {
    let (slot, new, patch) = delta_case(3_000);
    let rig = Rig::boot(None, slot);
    assert_eq!(rig.core.running_image(), None, "nothing confirmed yet");
    rig.stage(&patch, DELTA);
    rig.rebuild(None).unwrap();
    rig.assert_finalized(rig.finalize(), &new);
    assert_eq!(
        rig.core.running_image(),
        None,
        "a boot request newer than any confirm: the kernel cannot tell"
    );
    // The new kernel's app confirms its trial (after the reboot).
    let rig = rig.reboot();
    assert!(matches!(rig.command(command::CONFIRM, 0, 0), Ok((0, _))));
    let id = ota_reconstruct::diff::SignedImage::parse(&new, "v2")
        .unwrap()
        .id();
    assert_eq!(rig.core.running_image(), Some(id));
    assert_eq!(rig.reboot().core.running_image(), Some(id));
}
