//! The binding and `dfu-app`'s logic together on libtock-rs's fake kernel, with fake
//! staged-update, bulk-scan, ext_scan and alarm drivers that follow the capsules' documented
//! interfaces. The app runs as on the device (`run_with_bearers`); the tests without the
//! ext_scan driver are the kernels of today.

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::string::String;
use std::vec;
use std::vec::Vec;

use adv_transfer::bearer::{Bearer, BearerSet, Phy};
use adv_transfer::wire::{ADV_DATA_MAX, EXT_ADV_DATA_MAX};
use adv_transfer::{session_address, Sender, DEFAULT_COMPANY_ID};
use dfu_abi::update::{command as cmd, detail, state};
use dfu_abi::{ext_scan, scan, update};
use dfu_app::{confirm_trial_boot, Exit, BATCH_LEN, BITMAP_LEN, EXT_BATCH_LEN, REBOOT_DELAY_MS};
use libtock_platform::{CommandReturn, ErrorCode};
use libtock_unittest::{
    command_return, fake, DriverInfo, DriverShareRef, RoAllowBuffer, RwAllowBuffer,
};

use crate::{alarm, run_with_bearers, TockKernel};

const SECTOR: usize = 4096;

/// The nRF52840's alarm as Tock reports it: the 24-bit RTC at 32,768 Hz, left-justified.
const HZ: u32 = 32_768 * 256;

/// Tock's alarm: ticks wrap at 2^32. Reading the time lets 1 ms pass; an alarm that was set and
/// not stopped fired, so its time has passed by the next command.
struct FakeAlarm {
    share: DriverShareRef,
    now: Cell<u32>,
    elapsed_ticks: Cell<u64>,
    armed: Cell<Option<u32>>,
}

impl FakeAlarm {
    fn new(start_ticks: u32) -> Rc<FakeAlarm> {
        Rc::new(FakeAlarm {
            share: Default::default(),
            now: Cell::new(start_ticks),
            elapsed_ticks: Cell::new(0),
            armed: Cell::new(None),
        })
    }

    fn advance(&self, ticks: u32) {
        self.now.set(self.now.get().wrapping_add(ticks));
        self.elapsed_ticks
            .set(self.elapsed_ticks.get() + ticks as u64);
    }

    fn settle(&self) {
        if let Some(dt) = self.armed.take() {
            self.advance(dt);
        }
    }

    /// Milliseconds since the start of the test (an alarm left armed by the app's last wait has
    /// fired by the time another driver is called).
    fn elapsed_ms(&self) -> u64 {
        self.settle();
        self.elapsed_ticks.get() * 1000 / HZ as u64
    }
}

impl fake::SyscallDriver for FakeAlarm {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(alarm::DRIVER_NUM).upcall_count(1)
    }

    fn register(&self, share_ref: DriverShareRef) {
        self.share.replace(share_ref);
    }

    fn command(&self, command: u32, arg1: u32, _: u32) -> CommandReturn {
        if command == alarm::STOP {
            // Stopped before it fired: no time passed.
            self.armed.set(None);
            return command_return::success();
        }
        self.settle();
        match command {
            0 => command_return::success(),
            alarm::FREQUENCY => command_return::success_u32(HZ),
            alarm::TIME => {
                self.advance(HZ / 1000);
                command_return::success_u32(self.now.get())
            }
            alarm::SET_RELATIVE => {
                let at = self.now.get().wrapping_add(arg1);
                self.armed.set(Some(arg1));
                self.share
                    .schedule_upcall(alarm::UPCALL, (at, 0, 0))
                    .expect("upcall");
                command_return::success_u32(at)
            }
            _ => command_return::failure(ErrorCode::NoSupport),
        }
    }
}

/// Follows `capsules/src/staged_update.rs`: erase before write, write only erased bytes,
/// completions by upcall `DONE` `(command, status, value)`.
struct FakeUpdate {
    alarm: Rc<FakeAlarm>,
    ro: Cell<RoAllowBuffer>,
    rw: RefCell<RwAllowBuffer>,
    share: DriverShareRef,
    memory: RefCell<Vec<u8>>,
    erased: RefCell<Vec<bool>>,
    state: Cell<u32>,
    tag: Cell<[u8; 16]>,
    /// The newest boot request's sequence (0: none).
    sequence: Cell<u32>,
    confirmed: Cell<bool>,
    confirms: Cell<u32>,
    /// Confirm upcalls still to be lost.
    lose_confirms: Cell<u32>,
    finalized_at_ms: Cell<u64>,
    rebooted_at_ms: Cell<Option<u64>>,
    /// Finalize refuses the image (hash mismatch).
    reject: Cell<bool>,
    /// Everything but exists answers BUSY until this time: the kernel's start-up scan.
    busy_until_ms: Cell<u64>,
}

impl FakeUpdate {
    fn new(alarm: &Rc<FakeAlarm>) -> Rc<FakeUpdate> {
        Rc::new(FakeUpdate {
            alarm: alarm.clone(),
            ro: Default::default(),
            rw: Default::default(),
            share: Default::default(),
            memory: Default::default(),
            erased: Default::default(),
            state: Cell::new(state::IDLE),
            tag: Cell::new([0xFF; 16]),
            sequence: Cell::new(0),
            confirmed: Cell::new(false),
            confirms: Cell::new(0),
            lose_confirms: Cell::new(0),
            finalized_at_ms: Cell::new(0),
            rebooted_at_ms: Cell::new(None),
            reject: Cell::new(false),
            busy_until_ms: Cell::new(0),
        })
    }

    fn done(&self, command: u32, status: u32, value: u32) -> CommandReturn {
        self.share
            .schedule_upcall(update::upcall::DONE, (command, status, value))
            .expect("upcall");
        command_return::success()
    }

    fn write(&self, offset: usize, len: usize) -> Result<(), u32> {
        let ro = self.ro.take();
        let result = (|| {
            if (offset / SECTOR..=(offset + len - 1) / SECTOR).any(|s| !self.erased.borrow()[s]) {
                return Err(detail::NOT_ERASED);
            }
            let mut memory = self.memory.borrow_mut();
            if memory[offset..offset + len].iter().any(|&b| b != 0xFF) {
                return Err(detail::NOT_BLANK);
            }
            memory[offset..offset + len].copy_from_slice(&ro[..len]);
            Ok(())
        })();
        self.ro.set(ro);
        result
    }
}

impl fake::SyscallDriver for FakeUpdate {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(update::DRIVER_NUM).upcall_count(1)
    }

    fn register(&self, share_ref: DriverShareRef) {
        self.share.replace(share_ref);
    }

    fn allow_readonly(
        &self,
        _num: u32,
        buffer: RoAllowBuffer,
    ) -> Result<RoAllowBuffer, (RoAllowBuffer, ErrorCode)> {
        Ok(self.ro.replace(buffer))
    }

    fn allow_readwrite(
        &self,
        _num: u32,
        buffer: RwAllowBuffer,
    ) -> Result<RwAllowBuffer, (RwAllowBuffer, ErrorCode)> {
        Ok(self.rw.replace(buffer))
    }

    fn command(&self, command: u32, arg1: u32, arg2: u32) -> CommandReturn {
        let (offset, len) = (arg1 as usize, arg2 as usize);
        if command != cmd::EXISTS && self.alarm.elapsed_ms() < self.busy_until_ms.get() {
            return command_return::failure(ErrorCode::Busy);
        }
        match command {
            cmd::EXISTS => command_return::success(),
            cmd::STATUS => command_return::success_3_u32(
                self.state.get(),
                self.memory.borrow().len() as u32,
                0,
            ),
            cmd::TAG => {
                self.rw.borrow_mut()[..16].copy_from_slice(&self.tag.get());
                command_return::success()
            }
            cmd::BEGIN => {
                let ro = self.ro.take();
                let mut tag = [0; 16];
                tag.copy_from_slice(&ro[..16]);
                self.ro.set(ro);
                // The update-region policy's rule: no prepare session while a finalized image
                // awaits its install (its boot request not confirmed).
                if tag == update::PREPARE_TAG
                    && self.state.get() == state::FINALIZED
                    && !self.confirmed.get()
                {
                    return command_return::failure(ErrorCode::Already);
                }
                self.tag.set(tag);
                // Old contents: not erased.
                *self.memory.borrow_mut() = vec![0x00; offset];
                *self.erased.borrow_mut() = vec![false; offset.div_ceil(SECTOR)];
                self.state.set(state::STAGING);
                self.done(command, 0, 0)
            }
            cmd::ERASE => {
                if self.state.get() != state::STAGING {
                    return command_return::failure(ErrorCode::Reserve);
                }
                if offset % SECTOR != 0 || offset >= self.memory.borrow().len() {
                    return command_return::failure(ErrorCode::Size);
                }
                let end = (offset + SECTOR).min(self.memory.borrow().len());
                self.memory.borrow_mut()[offset..end].fill(0xFF);
                self.erased.borrow_mut()[offset / SECTOR] = true;
                self.done(command, 0, 0)
            }
            cmd::WRITE => {
                if len == 0 || offset + len > self.memory.borrow().len() {
                    return command_return::failure(ErrorCode::Size);
                }
                match self.write(offset, len) {
                    Ok(()) => self.done(command, 0, 0),
                    Err(d) => self.done(command, ErrorCode::NoAck as u32, d),
                }
            }
            cmd::READ => {
                let memory = self.memory.borrow();
                if offset + len > memory.len() {
                    return command_return::failure(ErrorCode::Size);
                }
                self.rw.borrow_mut()[..len].copy_from_slice(&memory[offset..offset + len]);
                drop(memory);
                self.done(command, 0, 0)
            }
            cmd::FINALIZE => {
                if self.reject.get() {
                    return self.done(command, ErrorCode::Fail as u32, detail::IMAGE_HASH_MISMATCH);
                }
                self.state.set(state::FINALIZED);
                self.sequence.set(self.sequence.get() + 1);
                self.finalized_at_ms.set(self.alarm.elapsed_ms());
                self.done(command, 0, self.sequence.get())
            }
            cmd::CONFIRM => {
                if self.sequence.get() == 0 {
                    return command_return::failure(ErrorCode::Reserve);
                }
                self.confirms.set(self.confirms.get() + 1);
                if self.lose_confirms.get() > 0 {
                    // The operation runs, but its upcall never reaches the app.
                    self.lose_confirms.set(self.lose_confirms.get() - 1);
                    return command_return::success();
                }
                self.confirmed.set(true);
                self.done(command, 0, self.sequence.get())
            }
            cmd::REBOOT => {
                if self.state.get() != state::FINALIZED {
                    return command_return::failure(ErrorCode::Reserve);
                }
                self.rebooted_at_ms.set(Some(self.alarm.elapsed_ms()));
                command_return::success()
            }
            _ => command_return::failure(ErrorCode::NoSupport),
        }
    }
}

/// Who is on air: a sender, silence until a time, then the next sender.
struct Air {
    sender: Option<Sender<'static>>,
    /// After this many batches the current sender stalls; `next` takes over at `resume_ms`.
    stall_after: usize,
    resume_ms: u64,
    next: Option<Sender<'static>>,
}

/// Follows `capsules/src/bulk_scan.rs`: on start or release, the next reports on air (as
/// ADV_NONCONN_IND PDUs) land in the batch buffer and upcall `BATCH` announces them; with nothing
/// on air, no upcall.
struct FakeScan {
    alarm: Rc<FakeAlarm>,
    ro: Cell<RoAllowBuffer>,
    rw: RefCell<RwAllowBuffer>,
    share: DriverShareRef,
    air: RefCell<Air>,
    per_batch: usize,
    /// Advertisements lost on air, in percent (a fixed pseudo-random sequence).
    loss_percent: u32,
    rng: Cell<u32>,
    sent: Cell<usize>,
    batches: Cell<usize>,
    waits: Cell<usize>,
    statuses: Cell<usize>,
    /// START answers BUSY this many more times (another process holds the scanner).
    start_failures: Cell<u32>,
    /// Halt the app (the test's end) at this many waits for a batch.
    max_waits: Cell<usize>,
    /// Started and not stopped (the legacy driver holds the RADIO).
    started: Cell<bool>,
    /// The ext_scan driver follows for the app (set by [`FakeExtScan`]).
    following: Cell<bool>,
    /// Calls that broke the drivers' contract on sharing the RADIO.
    violations: RefCell<Vec<String>>,
}

impl FakeScan {
    fn halted(&self) -> bool {
        self.waits.get() >= self.max_waits.get()
    }

    fn on_air(&self) -> bool {
        let mut air = self.air.borrow_mut();
        if self.batches.get() >= air.stall_after {
            if self.alarm.elapsed_ms() < air.resume_ms {
                return false;
            }
            if let Some(next) = air.next.take() {
                air.sender = Some(next);
            }
        }
        air.sender.is_some()
    }

    fn deliver(&self) {
        let mut buffer = self.rw.borrow_mut();
        let mut air = self.air.borrow_mut();
        let sender = air.sender.as_mut().expect("a sender on air");
        if sender.bearer().is_some_and(|b| b.chained()) {
            // Its data is on the secondary channels: nothing for the legacy scanner.
            return;
        }
        let (mut at, mut reports) = (0, 0);
        while reports < self.per_batch {
            let mut adv = [0u8; ADV_DATA_MAX];
            let n = sender.next_adv(&mut adv);
            self.sent.set(self.sent.get() + 1);
            let r = self
                .rng
                .get()
                .wrapping_mul(1_103_515_245)
                .wrapping_add(12_345);
            self.rng.set(r);
            if (r >> 16) % 100 < self.loss_percent {
                continue;
            }
            let pdu_len = 2 + 6 + n;
            if at + scan::REPORT_HEADER + pdu_len > buffer.len() {
                break;
            }
            buffer[at] = pdu_len as u8;
            buffer[at + 1] = 37;
            buffer[at + 2] = 0x02; // ADV_NONCONN_IND
            buffer[at + 3] = (6 + n) as u8;
            buffer[at + 4..at + 10].copy_from_slice(&sender.address());
            buffer[at + 10..at + 10 + n].copy_from_slice(&adv[..n]);
            at += scan::REPORT_HEADER + pdu_len;
            reports += 1;
        }
        self.batches.set(self.batches.get() + 1);
        self.share
            .schedule_upcall(scan::upcall::BATCH, (reports as u32, at as u32, 0))
            .expect("upcall");
    }
}

impl fake::SyscallDriver for FakeScan {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(scan::DRIVER_NUM).upcall_count(1)
    }

    fn register(&self, share_ref: DriverShareRef) {
        self.share.replace(share_ref);
    }

    fn allow_readwrite(
        &self,
        _num: u32,
        buffer: RwAllowBuffer,
    ) -> Result<RwAllowBuffer, (RwAllowBuffer, ErrorCode)> {
        Ok(self.rw.replace(buffer))
    }

    fn allow_readonly(
        &self,
        _num: u32,
        buffer: RoAllowBuffer,
    ) -> Result<RoAllowBuffer, (RoAllowBuffer, ErrorCode)> {
        Ok(self.ro.replace(buffer))
    }

    fn command(&self, command: u32, _: u32, _: u32) -> CommandReturn {
        match command {
            scan::command::EXISTS => command_return::success(),
            scan::command::STOP => {
                self.started.set(false);
                command_return::success()
            }
            scan::command::ADVERTISE => {
                if self.following.get() || !self.started.get() {
                    self.violations
                        .borrow_mut()
                        .push(String::from("ADVERTISE while following or not started"));
                }
                // The receiver's status reaches the sender.
                let ro = self.ro.take();
                assert!(
                    ro.len() <= scan::MAX_ADV_DATA,
                    "status AdvData longer than 31 bytes"
                );
                if let Some(sender) = self.air.borrow_mut().sender.as_mut() {
                    sender.on_adv(&ro);
                }
                self.ro.set(ro);
                self.statuses.set(self.statuses.get() + 1);
                command_return::success()
            }
            scan::command::START | scan::command::RELEASE => {
                if command == scan::command::START && self.start_failures.get() > 0 {
                    self.start_failures.set(self.start_failures.get() - 1);
                    return command_return::failure(ErrorCode::Busy);
                }
                if self.following.get() {
                    self.violations
                        .borrow_mut()
                        .push(String::from("bulk scan while following"));
                }
                self.started.set(true);
                self.waits.set(self.waits.get() + 1);
                assert!(
                    self.batches.get() < 20_000,
                    "the transfer never finished: {:?}",
                    self.air.borrow().sender.as_ref().map(|s| s.counters())
                );
                if !self.halted() && self.on_air() {
                    self.deliver();
                }
                command_return::success()
            }
            _ => command_return::failure(ErrorCode::NoSupport),
        }
    }
}

fn test_image(len: usize, seed: u32) -> &'static [u8] {
    let image: Vec<u8> = (0..len)
        .map(|i| (i as u32 ^ seed).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect();
    Box::leak(image.into_boxed_slice())
}

fn sender(image: &'static [u8], session: u32) -> Sender<'static> {
    Sender::new(DEFAULT_COMPANY_ID, image, session, 0).unwrap()
}

struct Rig {
    _kernel: fake::Kernel,
    alarm: Rc<FakeAlarm>,
    update: Rc<FakeUpdate>,
    scan: Rc<FakeScan>,
}

fn rig_at(start_ticks: u32, air: Air, loss_percent: u32) -> Rig {
    let kernel = fake::Kernel::new();
    let alarm = FakeAlarm::new(start_ticks);
    let update = FakeUpdate::new(&alarm);
    let scan = Rc::new(FakeScan {
        alarm: alarm.clone(),
        ro: Default::default(),
        rw: Default::default(),
        share: Default::default(),
        air: RefCell::new(air),
        per_batch: 12,
        loss_percent,
        rng: Cell::new(1),
        sent: Cell::new(0),
        batches: Cell::new(0),
        waits: Cell::new(0),
        statuses: Cell::new(0),
        start_failures: Cell::new(0),
        max_waits: Cell::new(usize::MAX),
        started: Cell::new(false),
        following: Cell::new(false),
        violations: Default::default(),
    });
    kernel.add_driver(&alarm);
    kernel.add_driver(&update);
    kernel.add_driver(&scan);
    Rig {
        _kernel: kernel,
        alarm,
        update,
        scan,
    }
}

fn one_sender(image: &'static [u8]) -> Air {
    Air {
        sender: Some(sender(image, 0x1234_5678)),
        stall_after: usize::MAX,
        resume_ms: 0,
        next: None,
    }
}

fn silence() -> Air {
    Air {
        sender: None,
        stall_after: usize::MAX,
        resume_ms: 0,
        next: None,
    }
}

fn rig(image: &'static [u8], loss_percent: u32) -> Rig {
    rig_at(0, one_sender(image), loss_percent)
}

/// One boot of the app; it runs until it exits or the fake scanner halts it.
fn boot(rig: &Rig) -> (Exit, String) {
    let scan = rig.scan.clone();
    let halt = move || scan.halted();
    let mut kernel = TockKernel::<fake::Syscalls, String>::new(String::new(), &halt);
    let mut bitmap = vec![0u8; BITMAP_LEN];
    let mut batch = vec![0u8; BATCH_LEN];
    let mut ext_batch = vec![0u8; EXT_BATCH_LEN];
    let exit = run_with_bearers(&mut kernel, &mut bitmap, &mut batch, &mut ext_batch);
    assert!(
        rig.scan.violations.borrow().is_empty(),
        "{:?}",
        rig.scan.violations
    );
    if exit == Exit::Rebooting {
        let rebooted = rig.update.rebooted_at_ms.get().expect("reboot requested");
        assert!(
            rebooted >= rig.update.finalized_at_ms.get() + REBOOT_DELAY_MS as u64,
            "rebooted without letting the console drain"
        );
    }
    (exit, kernel.console().clone())
}

#[test]
fn the_app_receives_stages_finalizes_and_asks_for_the_reboot() {
    let image = test_image(20_000, 0);
    let rig = rig(image, 0);
    // The kernel is still scanning the update region when the app starts.
    rig.update.busy_until_ms.set(60);
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Rebooting, "{console}");
    assert_eq!(
        &rig.update.memory.borrow()[..],
        image,
        "staged bytes differ from the image"
    );
    assert_eq!(rig.update.state.get(), state::FINALIZED);
    assert!(console.contains("rebooting"), "{console}");
    assert!(console.contains("100%"), "{console}");
    assert!(
        !console.contains("retrying"),
        "the app did not wait for the start-up scan: {console}"
    );
}

#[test]
fn lost_advertisements_are_recovered_from_the_retransmissions() {
    let image = test_image(9_000, 0);
    let rig = rig(image, 15);
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Rebooting, "{console}");
    assert_eq!(&rig.update.memory.borrow()[..], image);
    assert!(
        rig.scan.statuses.get() > 0,
        "the receiver never reported its status"
    );
    assert!(
        rig.scan.sent.get() > image.len() / 25,
        "nothing was retransmitted"
    );
}

#[test]
fn a_kernel_without_the_drivers_is_reported() {
    let _kernel = fake::Kernel::new();
    let mut kernel = TockKernel::<fake::Syscalls, String>::new(String::new(), &|| false);
    let exit = run_with_bearers(
        &mut kernel,
        &mut [0; BITMAP_LEN],
        &mut [0; BATCH_LEN],
        &mut [0; EXT_BATCH_LEN],
    );
    assert_eq!(exit, Exit::NoDriver);
    assert!(kernel.console().contains("lacks"), "{}", kernel.console());
}

#[test]
fn confirm_after_a_trial_boot_and_nothing_to_confirm_otherwise() {
    let rig = rig(test_image(100, 0), 0);
    let mut kernel = TockKernel::<fake::Syscalls, String>::new(String::new(), &|| false);
    assert_eq!(confirm_trial_boot(&mut kernel), Ok(None));
    assert!(!rig.update.confirmed.get());
    rig.update.sequence.set(3);
    assert_eq!(confirm_trial_boot(&mut kernel), Ok(Some(3)));
    assert!(rig.update.confirmed.get());
}

#[test]
fn every_boot_after_an_update_reaches_listening_even_when_the_confirm_upcall_is_lost() {
    // The confirm's upcall: delivered, lost once, never delivered.
    for lost in [0, 1, u32::MAX] {
        let rig = rig_at(0, silence(), 0);
        // The state after an update: a finalized session whose boot request awaits its confirm.
        rig.update.state.set(state::FINALIZED);
        rig.update.tag.set([7; 16]);
        rig.update.sequence.set(4);
        rig.update.lose_confirms.set(lost);
        for boot_number in 1..=2 {
            rig.scan.waits.set(0);
            rig.scan.max_waits.set(40);
            let (exit, console) = boot(&rig);
            assert_eq!(
                exit,
                Exit::Halted,
                "lost {lost}, boot {boot_number}: {console}"
            );
            assert!(
                console.contains("dfu: listening"),
                "lost {lost}, boot {boot_number}: {console}"
            );
            // The finalized session is resumed (its sender hears it done) until the confirm;
            // then the app erases the slot ahead (a prepare session), so the boot after has no
            // transfer's session to resume.
            let resumed = console.contains("resuming staged session (finalized: true)");
            let prepared = console.contains("erasing the staging slot ahead");
            if boot_number == 1 || lost == u32::MAX {
                assert!(resumed, "lost {lost}, boot {boot_number}: {console}");
            } else {
                assert!(!resumed, "lost {lost}, boot {boot_number}: {console}");
            }
            assert_eq!(
                prepared,
                boot_number == 1 && lost != u32::MAX,
                "lost {lost}, boot {boot_number}: {console}"
            );
            if lost == u32::MAX {
                assert!(console.contains("confirm got no answer"), "{console}");
            } else {
                assert!(
                    console.contains("confirmed this kernel (boot request 4)"),
                    "lost {lost}, boot {boot_number}: {console}"
                );
            }
        }
        assert_eq!(rig.update.confirmed.get(), lost != u32::MAX);
        if lost == u32::MAX {
            // Retried with backoff in each boot, not once and given up, not in a tight loop.
            let confirms = rig.update.confirms.get();
            assert!((4..=20).contains(&confirms), "{confirms} confirms");
        }
    }
}

#[test]
fn a_kernel_busy_past_the_startup_wait_and_refused_scans_do_not_end_the_app() {
    let image = test_image(6_000, 0);
    let rig = rig(image, 0);
    // The start-up scan takes 20 s (four times the app's start-up wait) and another process
    // holds the scanner for the first three starts.
    rig.update.busy_until_ms.set(20_000);
    rig.update.sequence.set(2);
    rig.scan.start_failures.set(3);
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Rebooting, "{console}");
    assert_eq!(&rig.update.memory.borrow()[..], image);
    assert!(rig.update.confirmed.get(), "{console}");
    assert!(
        console.contains("start-up incomplete; retrying"),
        "{console}"
    );
    assert!(
        console.contains("scan failed (error 2); retrying"),
        "{console}"
    );
    assert_eq!(rig.scan.start_failures.get(), 0);
}

#[test]
fn a_stalled_session_gives_way_to_a_new_sender_after_30_s_across_the_alarm_wrap() {
    let stalled = test_image(20_000, 1);
    let image = test_image(9_000, 2);
    // Sender A stalls after ten batches; sender B starts 45 s in. The alarm's 32-bit counter
    // wraps 5 s in (libtock's milliseconds would jump from ~512,031 back to 0 there).
    let air = Air {
        sender: Some(sender(stalled, 0xAAAA_0001)),
        stall_after: 10,
        resume_ms: 45_000,
        next: Some(sender(image, 0xBBBB_0002)),
    };
    let rig = rig_at(u32::MAX - 5 * HZ, air, 0);
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Rebooting, "{console}");
    assert!(
        rig.alarm.now.get() < u32::MAX - 5 * HZ,
        "the alarm never wrapped"
    );
    assert_eq!(&rig.update.memory.borrow()[..], image, "{console}");
    // B was taken within the session time-out of its start, not after minutes.
    let finalized = rig.update.finalized_at_ms.get();
    assert!(finalized < 90_000, "finalized at {finalized} ms");
}

#[test]
fn a_refused_image_is_reported_and_the_app_does_not_reboot() {
    let image = test_image(6_000, 0);
    let rig = rig(image, 0);
    rig.update.reject.set(true);
    rig.scan.max_waits.set(2_000);
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Halted, "{console}");
    assert!(console.contains("refused"), "{console}");
    assert_eq!(rig.update.rebooted_at_ms.get(), None);
    assert_ne!(rig.update.state.get(), state::FINALIZED);
}

/// Follows `capsules/src/app_update.rs`'s `INSTALL`: one upcall `(INSTALL, 0, version)` or
/// `(INSTALL, FAIL, detail)`.
#[derive(Default)]
struct FakeAppUpdate {
    share: DriverShareRef,
    /// The lengths `INSTALL` was called with.
    installs: RefCell<Vec<u32>>,
    /// Refuse with this detail (0: install).
    refuse: Cell<u32>,
}

impl fake::SyscallDriver for FakeAppUpdate {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(dfu_abi::app::DRIVER_NUM).upcall_count(dfu_abi::app::upcall::COUNT as u32)
    }

    fn register(&self, share_ref: DriverShareRef) {
        self.share.replace(share_ref);
    }

    fn command(&self, command: u32, arg1: u32, _: u32) -> CommandReturn {
        use dfu_abi::app::command as app;
        match command {
            app::EXISTS => command_return::success(),
            app::INSTALL => {
                self.installs.borrow_mut().push(arg1);
                let args = match self.refuse.get() {
                    0 => (command, 0, 7),
                    detail => (command, dfu_abi::error::FAIL, detail),
                };
                self.share
                    .schedule_upcall(dfu_abi::app::upcall::DONE, args)
                    .expect("upcall");
                command_return::success()
            }
            _ => command_return::failure(ErrorCode::NoSupport),
        }
    }
}

/// A rig whose sender sends `tbf` as an app session for "blink"; with `app_driver`, the kernel
/// has the app-update driver.
fn app_rig(tbf: &'static [u8], app_driver: bool) -> (Rig, Rc<FakeAppUpdate>) {
    let air = Air {
        sender: Some(Sender::new_app(DEFAULT_COMPANY_ID, tbf, 0x0A99_0001, b"blink").unwrap()),
        stall_after: usize::MAX,
        resume_ms: 0,
        next: None,
    };
    let rig = rig_at(0, air, 0);
    let app = Rc::new(FakeAppUpdate::default());
    if app_driver {
        rig._kernel.add_driver(&app);
    }
    rig.scan.max_waits.set(3_000);
    (rig, app)
}

#[test]
fn an_app_session_is_staged_and_installed_without_a_reboot() {
    let tbf = test_image(5_000, 3);
    let (rig, app) = app_rig(tbf, true);
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Halted, "{console}");
    assert_eq!(&rig.update.memory.borrow()[..], tbf, "staged bytes differ");
    assert_eq!(&app.installs.borrow()[..], &[5_000], "{console}");
    // INSTALL instead of the kernel finalize, and no reboot.
    assert_eq!(rig.update.state.get(), state::STAGING);
    assert_eq!(rig.update.rebooted_at_ms.get(), None);
    assert!(console.contains("app installed"), "{console}");
}

#[test]
fn a_refused_app_is_reported_and_a_kernel_without_the_driver_refuses_app_sessions() {
    let tbf = test_image(3_000, 4);
    let (rig, app) = app_rig(tbf, true);
    app.refuse.set(dfu_abi::app::detail::NOT_NEWER);
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Halted, "{console}");
    // Refused once, not asked again and again.
    assert_eq!(app.installs.borrow().len(), 1, "{console}");
    assert!(console.contains("app install failed"), "{console}");
    assert_eq!(rig.update.rebooted_at_ms.get(), None);
    // One fake kernel at a time.
    drop((rig, app));

    let (rig, app) = app_rig(tbf, false);
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Halted, "{console}");
    assert!(console.contains("needs a capability"), "{console}");
    assert!(app.installs.borrow().is_empty());
    assert_eq!(rig.update.state.get(), state::IDLE, "nothing staged");
}

/// Follows `capsules/src/ext_scan.rs`: `FOLLOW` (refused `BUSY` while the bulk scanner holds
/// the RADIO) names the advertiser; on follow or release the next events of that advertiser
/// on the secondary channels land in the batch buffer as reports (`dfu_abi::ext_scan`'s
/// header, then the AdvData) and upcall `BATCH` announces them; `STOP` ends it.
struct FakeExtScan {
    scan: Rc<FakeScan>,
    rw: RefCell<RwAllowBuffer>,
    share: DriverShareRef,
    /// The advertiser followed now.
    filter: Cell<Option<[u8; 6]>>,
    /// The advertiser the last `FOLLOW` named.
    followed: Cell<Option<[u8; 6]>>,
    follows: Cell<u32>,
    reports: Cell<u32>,
    /// Upcall `STOPPED` with `BUSY` after this many more batches.
    stop_after: Cell<Option<u32>>,
}

impl FakeExtScan {
    fn deliver(&self) {
        let mut buffer = self.rw.borrow_mut();
        let mut air = self.scan.air.borrow_mut();
        let Some(sender) = air.sender.as_mut() else {
            return;
        };
        if !sender.bearer().is_some_and(|b| b.chained())
            || Some(sender.address()) != self.filter.get()
        {
            return;
        }
        if let Some(n) = self.stop_after.get() {
            if n == 0 {
                self.stop_after.set(None);
                self.filter.set(None);
                self.scan.following.set(false);
                self.share
                    .schedule_upcall(ext_scan::upcall::STOPPED, (ErrorCode::Busy as u32, 0, 0))
                    .expect("upcall");
                return;
            }
            self.stop_after.set(Some(n - 1));
        }
        let mut event = [0u8; EXT_ADV_DATA_MAX];
        let n = sender.next_event(&mut event);
        let len = ext_scan::REPORT_HEADER + n;
        assert!(buffer.len() >= len, "batch buffer shorter than a report");
        buffer[0..2].copy_from_slice(&(n as u16).to_le_bytes());
        buffer[2] = ext_scan::cut::WHOLE;
        buffer[3] = ext_scan::has::ADV_A;
        buffer[4..10].copy_from_slice(&sender.address());
        buffer[10..12].fill(0);
        buffer[12..len].copy_from_slice(&event[..n]);
        self.reports.set(self.reports.get() + 1);
        self.scan.batches.set(self.scan.batches.get() + 1);
        self.share
            .schedule_upcall(ext_scan::upcall::BATCH, (1, len as u32, 0))
            .expect("upcall");
    }
}

impl fake::SyscallDriver for FakeExtScan {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(ext_scan::DRIVER_NUM).upcall_count(ext_scan::upcall::COUNT as u32)
    }

    fn register(&self, share_ref: DriverShareRef) {
        self.share.replace(share_ref);
    }

    fn allow_readwrite(
        &self,
        _num: u32,
        buffer: RwAllowBuffer,
    ) -> Result<RwAllowBuffer, (RwAllowBuffer, ErrorCode)> {
        Ok(self.rw.replace(buffer))
    }

    fn command(&self, command: u32, arg1: u32, arg2: u32) -> CommandReturn {
        match command {
            ext_scan::command::EXISTS => return command_return::success(),
            ext_scan::command::FOLLOW => {
                if self.scan.started.get() {
                    return command_return::failure(ErrorCode::Busy);
                }
                let Some((Some(adv_a), _)) = ext_scan::filter_from_args(arg1, arg2) else {
                    return command_return::failure(ErrorCode::Invalid);
                };
                self.filter.set(Some(adv_a));
                self.followed.set(Some(adv_a));
                self.follows.set(self.follows.get() + 1);
                self.scan.following.set(true);
            }
            ext_scan::command::STOP if self.filter.get().is_some() => {
                self.filter.set(None);
                self.scan.following.set(false);
                return command_return::success();
            }
            ext_scan::command::RELEASE if self.filter.get().is_some() => {}
            ext_scan::command::STOP | ext_scan::command::RELEASE => {
                return command_return::failure(ErrorCode::Reserve)
            }
            _ => return command_return::failure(ErrorCode::NoSupport),
        }
        self.scan.waits.set(self.scan.waits.get() + 1);
        assert!(
            self.scan.batches.get() < 20_000,
            "the transfer never finished"
        );
        if !self.scan.halted() && self.scan.on_air() {
            self.deliver();
        }
        command_return::success()
    }
}

fn ble5_rig(image: &'static [u8]) -> (Rig, Rc<FakeExtScan>) {
    let mut s = sender(image, 0x1234_5678);
    s.offer_bearers(BearerSet::ALL);
    let air = Air {
        sender: Some(s),
        stall_after: usize::MAX,
        resume_ms: 0,
        next: None,
    };
    let rig = rig_at(0, air, 0);
    let ext = Rc::new(FakeExtScan {
        scan: rig.scan.clone(),
        rw: Default::default(),
        share: Default::default(),
        filter: Cell::new(None),
        followed: Cell::new(None),
        follows: Cell::new(0),
        reports: Cell::new(0),
        stop_after: Cell::new(None),
    });
    rig._kernel.add_driver(&ext);
    (rig, ext)
}

#[test]
fn the_app_follows_a_ble5_sender_through_the_ext_scan_driver() {
    let image = test_image(30_000, 5);
    let (rig, ext) = ble5_rig(image);
    // The kernel takes the RADIO once in the middle: following starts again.
    ext.stop_after.set(Some(10));
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Rebooting, "{console}");
    assert_eq!(
        &rig.update.memory.borrow()[..],
        image,
        "staged bytes differ"
    );
    let bearer = rig.scan.air.borrow().sender.as_ref().unwrap().bearer();
    assert_eq!(bearer, Some(Bearer::Periodic(Phy::Le2M)));
    // The data came as followed events; FOLLOW named the session's sender.
    assert!(ext.reports.get() >= 20, "{}", ext.reports.get());
    assert_eq!(ext.followed.get(), Some(session_address(0x1234_5678)));
    assert_eq!(ext.stop_after.get(), None);
    assert!(ext.follows.get() >= 2, "{console}");
    assert_eq!(
        ext.filter.get(),
        None,
        "still following after the reboot request"
    );
    assert!(rig.scan.statuses.get() > 0);
}

#[test]
fn a_legacy_only_sender_is_heard_as_before_by_an_app_whose_kernel_has_ext_scan() {
    let image = test_image(6_000, 6);
    let (rig, ext) = ble5_rig(image);
    rig.scan
        .air
        .borrow_mut()
        .sender
        .replace(sender(image, 0x1234_5678));
    let (exit, console) = boot(&rig);
    assert_eq!(exit, Exit::Rebooting, "{console}");
    assert_eq!(&rig.update.memory.borrow()[..], image);
    assert_eq!(ext.follows.get(), 0);
}
