//! The staged-update driver at the syscall layer: `SyscallDriver::command` with a real
//! `kernel::grant::Grant` and a real `ProcessId` (a process double in the kernel's process
//! slots), the upcalls counted as the kernel queues them.
//!
//! The contract under test (module docs of `staged_update`): every update command that returns
//! success is followed by exactly one upcall, whenever its completion arrives (later, before the
//! command returns, or with no flash operation at all); a command that fails queues none.

// Shared test support; each test crate uses a part of it.
#[path = "support/fake_nor.rs"]
#[allow(dead_code)]
mod fake_nor;
#[path = "support/image.rs"]
#[allow(dead_code)]
mod image;
#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use core::num::NonZeroU32;
use std::boxed::Box;
use std::cell::Cell;
use std::vec::Vec;

use fake_nor::FakeNor;
use image::{image, image_hash};
use kernel::process::ShortId;
use kernel::syscall::SyscallDriver;
use kernel::ErrorCode;
use process::{FakeProcess, Harness};
use tock_ota_capsules::nor::AsyncNor;
use tock_ota_capsules::staged_update::{
    command, policy_error_code, ro_allow, rw_allow, upcall, StagedUpdate, StagedUpdateDriver,
    SystemReset, BUF_LEN, DRIVER_NUM,
};
use update_region::{Config, Error, MAX_POLICY_READ, SECTOR_SIZE, TAG_LEN};

const DFU: u32 = 0x0D0F_0001;
const CAPACITY: usize = 8 * 1024 * 1024;

struct NoReset;

impl SystemReset for NoReset {
    fn reset(&self) {
        panic!("no test reboots");
    }
}

type Driver = StagedUpdateDriver<'static, FakeNor>;

struct Rig {
    harness: Harness,
    flash: &'static FakeNor,
    driver: &'static Driver,
    dfu: &'static FakeProcess,
    /// The DFU process's read-write allow 0.
    read_buffer: &'static [Cell<u8>],
}

/// What a command led to: its failure, or the one upcall's `(status, value)`.
type Outcome = Result<(usize, usize), ErrorCode>;

impl Rig {
    fn new() -> Rig {
        Rig::with_streams(false)
    }

    /// With `streams`: the core takes received streams.
    fn with_streams(streams: bool) -> Rig {
        let harness = Harness::new();
        let flash = FakeNor::new(CAPACITY);
        let data: &'static mut [u8] = Box::leak(vec![0u8; BUF_LEN].into_boxed_slice());
        let scratch: &'static mut [u8] = Box::leak(vec![0u8; MAX_POLICY_READ].into_boxed_slice());
        let mut core = StagedUpdate::new(flash, Config::nrf52840dk(DFU), data, scratch).unwrap();
        if streams {
            let area = tock_ota_capsules::stream_rebuild::StreamArea {
                config: Config::nrf52840dk_stream(DFU),
                kernel_slot: Box::leak(vec![0xFF; 4096].into_boxed_slice()),
            };
            core = core.with_streams(area).unwrap();
        }
        let core: &'static StagedUpdate<'static, FakeNor> = Box::leak(Box::new(core));
        let driver: &'static Driver = Box::leak(Box::new(StagedUpdateDriver::new(
            core,
            harness.grant(DRIVER_NUM),
            &NoReset,
        )));
        flash.set_nor_client(core);
        core.set_client(driver);
        tock_ota_capsules::nor::AsyncNorClient::ready(core);
        flash.run();

        let dfu = harness.add_process(0, 7, ShortId::Fixed(NonZeroU32::new(DFU).unwrap()));
        driver.allocate_grant(dfu.id()).unwrap();
        let read_buffer: &'static [Cell<u8>] =
            Box::leak((0..BUF_LEN).map(|_| Cell::new(0)).collect::<Box<[_]>>());
        dfu.allow_rw(DRIVER_NUM, rw_allow::READ, read_buffer);
        Rig {
            harness,
            flash,
            driver,
            dfu,
            read_buffer,
        }
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

    fn read_back(&self, len: usize) -> Vec<u8> {
        self.read_buffer[..len].iter().map(Cell::get).collect()
    }

    /// Begin a session for `img`, erase its sectors and write it in `BUF_LEN` pieces.
    fn stage(&self, img: &[u8]) {
        // No capability bits (byte 12, `adv_transfer::wire::SessionInfo::tag`): a plain image.
        let mut tag = [0x5A; TAG_LEN];
        tag[12] = 0;
        self.allow_data(&tag);
        assert_eq!(self.command(command::BEGIN, img.len(), 0), Ok((0, 0)));
        for offset in (0..img.len()).step_by(SECTOR_SIZE as usize) {
            assert_eq!(self.command(command::ERASE, offset, 0), Ok((0, 0)));
        }
        for (i, piece) in img.chunks(BUF_LEN).enumerate() {
            self.allow_data(piece);
            assert_eq!(
                self.command(command::WRITE, i * BUF_LEN, piece.len()),
                Ok((0, 0))
            );
        }
    }
}

const OK: usize = 0;

fn failed(error: Error) -> (usize, usize) {
    (
        usize::from(tock_ota_capsules::staged_update::error_code(error)),
        policy_error_code(error),
    )
}

/// Every update command, from begin to a second confirm, with the flash completing later
/// (`immediate == false`) or before the call that started the operation returns.
fn full_cycle(immediate: bool) {
    let rig = Rig::new();
    rig.flash.immediate.set(immediate);
    let img = image(7000);
    rig.stage(&img);

    assert_eq!(rig.command(command::READ, 1000, 300), Ok((OK, 0)));
    assert_eq!(rig.read_back(300), img[1000..1300]);

    let (status, sequence) = rig.command(command::FINALIZE, 0, 0).unwrap();
    assert_eq!(status, OK);
    assert!(sequence > 0, "finalize reports the boot-request sequence");

    // After the trial boot: confirm, then (every later boot) confirm again. The second one is
    // answered from the newest record alone, with no flash operation.
    let (status, confirmed) = rig.command(command::CONFIRM, 0, 0).unwrap();
    assert_eq!(status, OK);
    assert!(
        confirmed > sequence,
        "the Confirm record follows the request"
    );
    let ops = rig.flash.operations.get();
    assert_eq!(rig.command(command::CONFIRM, 0, 0), Ok((OK, confirmed)));
    assert_eq!(rig.command(command::CONFIRM, 0, 0), Ok((OK, confirmed)));
    assert_eq!(
        rig.flash.operations.get(),
        ops,
        "a repeated confirm touched flash"
    );

    // A new session, abandoned.
    rig.allow_data(&[1; TAG_LEN]);
    assert_eq!(rig.command(command::BEGIN, 5000, 0), Ok((OK, 0)));
    assert_eq!(rig.command(command::ABORT, 0, 0), Ok((OK, 0)));
    // The driver is free again: nothing was left pending.
    assert_eq!(rig.command(command::CONFIRM, 0, 0), Ok((OK, confirmed)));
}

#[test]
fn every_successful_update_command_queues_exactly_one_upcall() {
    full_cycle(false);
}

#[test]
fn completions_before_the_starting_call_returns_each_queue_exactly_one_upcall() {
    full_cycle(true);
}

#[test]
fn a_repeated_confirm_after_a_confirmed_update_is_answered_every_time() {
    // The field symptom: after the first confirmed update, the DFU app confirms on every boot
    // and waits for the upcall. Each confirm must be answered.
    let rig = Rig::new();
    rig.stage(&image(3000));
    assert_eq!(rig.command(command::FINALIZE, 0, 0).map(|r| r.0), Ok(OK));
    let (status, confirmed) = rig.command(command::CONFIRM, 0, 0).unwrap();
    assert_eq!(status, OK);
    for _ in 0..3 {
        assert_eq!(rig.command(command::CONFIRM, 0, 0), Ok((OK, confirmed)));
    }
}

#[test]
fn a_flash_operation_that_fails_to_start_ends_with_one_failure_upcall() {
    let rig = Rig::new();
    let img = image(3000);
    rig.allow_data(&[2; TAG_LEN]);
    assert_eq!(rig.command(command::BEGIN, img.len(), 0), Ok((OK, 0)));

    rig.flash.refuse_next.set(true);
    assert_eq!(rig.command(command::ERASE, 0, 0), Ok(failed(Error::Flash)));
    assert_eq!(rig.command(command::ERASE, 0, 0), Ok((OK, 0)));

    rig.allow_data(&img[..BUF_LEN]);
    rig.flash.refuse_next.set(true);
    assert_eq!(
        rig.command(command::WRITE, 0, BUF_LEN),
        Ok(failed(Error::Flash))
    );
    assert_eq!(rig.command(command::WRITE, 0, BUF_LEN), Ok((OK, 0)));

    rig.flash.refuse_next.set(true);
    assert_eq!(rig.command(command::READ, 0, 16), Ok(failed(Error::Flash)));
    assert_eq!(rig.command(command::READ, 0, 16), Ok((OK, 0)));
    assert_eq!(rig.read_back(16), img[..16]);
}

#[test]
fn a_command_while_one_is_out_is_busy_and_the_first_still_ends_once() {
    let rig = Rig::new();
    rig.allow_data(&[3; TAG_LEN]);
    let ret = rig.driver.command(command::BEGIN, 4096, 0, rig.dfu.id());
    assert!(ret.is_success());
    assert!(rig.flash.pending().is_some(), "begin waits for the flash");
    assert_eq!(
        rig.driver
            .command(command::ABORT, 0, 0, rig.dfu.id())
            .get_failure(),
        Some(ErrorCode::BUSY)
    );
    rig.flash.run();
    let upcalls = rig.dfu.take_upcalls();
    assert_eq!(upcalls.len(), 1, "{upcalls:?}");
    assert_eq!(upcalls[0].args, (command::BEGIN, OK, 0));
}

#[test]
fn refused_commands_queue_no_upcall() {
    let rig = Rig::new();
    // Not the DFU process.
    let other = rig
        .harness
        .add_process(1, 8, ShortId::Fixed(NonZeroU32::new(DFU + 1).unwrap()));
    rig.driver.allocate_grant(other.id()).unwrap();
    for cmd in [
        command::BEGIN,
        command::ERASE,
        command::WRITE,
        command::READ,
        command::FINALIZE,
        command::ABORT,
        command::CONFIRM,
    ] {
        assert_eq!(rig.command_as(other, cmd, 0, 16), Err(ErrorCode::NODEVICE));
    }
    // No session, nothing to confirm, too big, no tag.
    assert_eq!(
        rig.command(command::FINALIZE, 0, 0),
        Err(ErrorCode::RESERVE)
    );
    assert_eq!(rig.command(command::CONFIRM, 0, 0), Err(ErrorCode::RESERVE));
    assert_eq!(
        rig.command(command::READ, 0, BUF_LEN + 1),
        Err(ErrorCode::SIZE)
    );
    assert_eq!(rig.command(command::BEGIN, 4096, 0), Err(ErrorCode::INVAL));
}

#[test]
fn a_read_longer_than_the_read_write_allow_is_refused_with_inval() {
    let rig = Rig::new();
    let img = image(3000);
    rig.stage(&img);
    let small: &'static [Cell<u8>] =
        Box::leak((0..100).map(|_| Cell::new(0)).collect::<Box<[_]>>());
    rig.dfu.allow_rw(DRIVER_NUM, rw_allow::READ, small);
    let ops = rig.flash.operations.get();
    assert_eq!(rig.command(command::READ, 0, 101), Err(ErrorCode::INVAL));
    assert_eq!(
        rig.flash.operations.get(),
        ops,
        "a refused read touched flash"
    );
    // Exactly the allow's length is fine, and nothing was left pending.
    assert_eq!(rig.command(command::READ, 200, 100), Ok((OK, 0)));
    let read: Vec<u8> = small.iter().map(Cell::get).collect();
    assert_eq!(read, img[200..300]);
}

#[test]
fn a_completion_whose_upcall_cannot_be_queued_goes_out_at_the_next_command() {
    let rig = Rig::new();
    rig.allow_data(&[4; TAG_LEN]);
    assert_eq!(rig.command(command::BEGIN, 4096, 0), Ok((OK, 0)));
    // The erase finishes while the process's task queue is full.
    rig.dfu.queue_full.set(true);
    let ret = rig.driver.command(command::ERASE, 0, 0, rig.dfu.id());
    assert!(ret.is_success());
    rig.flash.run();
    assert!(rig.dfu.take_upcalls().is_empty());
    // Still full: a new request may not overtake the kept completion.
    let ret = rig.driver.command(command::ABORT, 0, 0, rig.dfu.id());
    assert_eq!(ret.get_failure(), Some(ErrorCode::BUSY));
    rig.flash.run();
    assert!(rig.dfu.take_upcalls().is_empty());
    // Room again: the process's next command (a status poll) brings the completion, once.
    rig.dfu.queue_full.set(false);
    let ret = rig.driver.command(command::STATUS, 0, 0, rig.dfu.id());
    assert_eq!(ret.get_failure(), None);
    let upcalls = rig.dfu.take_upcalls();
    assert_eq!(upcalls.len(), 1, "{upcalls:?}");
    assert_eq!(upcalls[0].args, (command::ERASE, OK, 0));
    let ret = rig.driver.command(command::STATUS, 0, 0, rig.dfu.id());
    assert_eq!(ret.get_failure(), None);
    assert!(rig.dfu.take_upcalls().is_empty(), "delivered twice");
    // And the driver is free: the next request runs and ends with its own upcall.
    assert_eq!(rig.command(command::ABORT, 0, 0), Ok((OK, 0)));
}

#[test]
fn running_answers_the_confirmed_image_into_the_read_write_allow_and_queues_no_upcall() {
    let rig = Rig::with_streams(true);
    let running = |process: &FakeProcess| {
        let ret = rig.driver.command(command::RUNNING, 0, 0, process.id());
        assert!(
            process.take_upcalls().is_empty(),
            "RUNNING queued an upcall"
        );
        ret.get_failure().map_or(Ok(()), Err)
    };
    // Nothing confirmed yet: the kernel cannot tell.
    assert_eq!(running(rig.dfu), Err(ErrorCode::RESERVE));
    let img = image(3000);
    rig.stage(&img);
    assert_eq!(rig.command(command::FINALIZE, 0, 0).map(|r| r.0), Ok(OK));
    assert_eq!(
        running(rig.dfu),
        Err(ErrorCode::RESERVE),
        "requested, not confirmed"
    );
    assert_eq!(rig.command(command::CONFIRM, 0, 0).map(|r| r.0), Ok(OK));
    assert_eq!(running(rig.dfu), Ok(()));
    assert_eq!(rig.read_back(16), image_hash(&img)[..16]);
    // Only the DFU process; a read-write allow too short for the id is refused.
    let other = rig
        .harness
        .add_process(1, 8, ShortId::Fixed(NonZeroU32::new(DFU + 1).unwrap()));
    rig.driver.allocate_grant(other.id()).unwrap();
    assert_eq!(running(other), Err(ErrorCode::NODEVICE));
    let small: &'static [Cell<u8>] = Box::leak((0..15).map(|_| Cell::new(0)).collect::<Box<[_]>>());
    rig.dfu.allow_rw(DRIVER_NUM, rw_allow::READ, small);
    assert_eq!(running(rig.dfu), Err(ErrorCode::INVAL));
    // A kernel without the received-stream area takes no patches and names no image.
    let plain = Rig::new();
    plain.stage(&img);
    assert_eq!(plain.command(command::FINALIZE, 0, 0).map(|r| r.0), Ok(OK));
    assert_eq!(plain.command(command::CONFIRM, 0, 0).map(|r| r.0), Ok(OK));
    let ret = plain.driver.command(command::RUNNING, 0, 0, plain.dfu.id());
    assert_eq!(ret.get_failure(), Some(ErrorCode::RESERVE));
}
