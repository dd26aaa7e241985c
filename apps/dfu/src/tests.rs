//! The app's logic on libtock-rs's fake kernel, with fake staged-update and bulk-scan drivers
//! that follow the capsules' documented interfaces.

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::string::String;
use std::vec;
use std::vec::Vec;

use adv_transfer::wire::ADV_DATA_MAX;
use adv_transfer::{Sender, DEFAULT_COMPANY_ID};
use libtock_platform::{CommandReturn, ErrorCode};
use libtock_unittest::{
    command_return, fake, DriverInfo, DriverShareRef, RoAllowBuffer, RwAllowBuffer,
};

use crate::drivers::{adv_data_in, update_cmd, SCAN_DRIVER, UPDATE_DRIVER};
use crate::{confirm_trial_boot, run, stage_error, BATCH_LEN, BITMAP_LEN};

const SECTOR: usize = 4096;

/// Follows `capsules/src/staged_update.rs`: erase before write, write only erased bytes,
/// completions by upcall 0 `(command, status, value)`.
#[derive(Default)]
struct FakeUpdate {
    ro: Cell<RoAllowBuffer>,
    rw: RefCell<RwAllowBuffer>,
    share: DriverShareRef,
    memory: RefCell<Vec<u8>>,
    erased: RefCell<Vec<bool>>,
    /// 0 idle, 1 staging, 2 finalized.
    state: Cell<u32>,
    tag: Cell<[u8; 16]>,
    sequence: Cell<u32>,
    confirmed: Cell<bool>,
    rebooted: Cell<bool>,
    writes: Cell<usize>,
    /// Finalize refuses the image (hash mismatch, policy check 16).
    reject: Cell<bool>,
    /// Status answers BUSY this many more times (the kernel's start-up scan).
    busy_for: Cell<u32>,
}

impl FakeUpdate {
    fn done(&self, command: u32, status: u32, value: u32) -> CommandReturn {
        self.share
            .schedule_upcall(0, (command, status, value))
            .expect("upcall");
        command_return::success()
    }
}

impl fake::SyscallDriver for FakeUpdate {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(UPDATE_DRIVER).upcall_count(1)
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
        match command {
            update_cmd::EXISTS => command_return::success(),
            update_cmd::STATUS if self.busy_for.get() > 0 => {
                self.busy_for.set(self.busy_for.get() - 1);
                command_return::failure(ErrorCode::Busy)
            }
            update_cmd::STATUS => command_return::success_3_u32(
                self.state.get(),
                self.memory.borrow().len() as u32,
                0,
            ),
            update_cmd::TAG => {
                self.rw.borrow_mut()[..16].copy_from_slice(&self.tag.get());
                command_return::success()
            }
            update_cmd::BEGIN => {
                let ro = self.ro.take();
                let mut tag = [0; 16];
                tag.copy_from_slice(&ro[..16]);
                self.ro.set(ro);
                self.tag.set(tag);
                // Old contents: not erased.
                *self.memory.borrow_mut() = vec![0x00; offset];
                *self.erased.borrow_mut() = vec![false; offset.div_ceil(SECTOR)];
                self.state.set(1);
                self.done(command, 0, 0)
            }
            update_cmd::ERASE => {
                if self.state.get() != 1 {
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
            update_cmd::WRITE => {
                if offset + len > self.memory.borrow().len() {
                    return command_return::failure(ErrorCode::Size);
                }
                let ro = self.ro.take();
                let result = (|| {
                    if (offset / SECTOR..=(offset + len - 1) / SECTOR)
                        .any(|s| !self.erased.borrow()[s])
                    {
                        return Err(10);
                    }
                    let mut memory = self.memory.borrow_mut();
                    if memory[offset..offset + len].iter().any(|&b| b != 0xFF) {
                        return Err(11);
                    }
                    memory[offset..offset + len].copy_from_slice(&ro[..len]);
                    Ok(())
                })();
                self.ro.set(ro);
                self.writes.set(self.writes.get() + 1);
                match result {
                    Ok(()) => self.done(command, 0, 0),
                    Err(detail) => self.done(command, ErrorCode::NoAck as u32, detail),
                }
            }
            update_cmd::READ => {
                let memory = self.memory.borrow();
                if offset + len > memory.len() {
                    return command_return::failure(ErrorCode::Size);
                }
                self.rw.borrow_mut()[..len].copy_from_slice(&memory[offset..offset + len]);
                drop(memory);
                self.done(command, 0, 0)
            }
            update_cmd::FINALIZE => {
                if self.reject.get() {
                    return self.done(command, ErrorCode::Fail as u32, 16);
                }
                self.state.set(2);
                self.sequence.set(self.sequence.get() + 1);
                self.done(command, 0, self.sequence.get())
            }
            update_cmd::CONFIRM => {
                if self.sequence.get() == 0 {
                    return command_return::failure(ErrorCode::Reserve);
                }
                self.confirmed.set(true);
                self.done(command, 0, self.sequence.get())
            }
            update_cmd::REBOOT => {
                if self.state.get() != 2 {
                    return command_return::failure(ErrorCode::Reserve);
                }
                self.rebooted.set(true);
                command_return::success()
            }
            _ => command_return::failure(ErrorCode::NoSupport),
        }
    }
}

/// Follows `capsules/src/bulk_scan.rs`: on start or release, the next reports from a sender
/// (as ADV_NONCONN_IND PDUs) land in the batch buffer and upcall 0 announces them.
struct FakeScan {
    ro: Cell<RoAllowBuffer>,
    rw: RefCell<RwAllowBuffer>,
    share: DriverShareRef,
    sender: RefCell<Sender<'static>>,
    per_batch: usize,
    /// Advertisements lost on air, in percent (a fixed pseudo-random sequence).
    loss_percent: u32,
    rng: Cell<u32>,
    sent: Cell<usize>,
    batches: Cell<usize>,
    statuses: Cell<usize>,
    /// Stop the run (command failure) after this many batches.
    max_batches: Cell<usize>,
}

impl FakeScan {
    fn deliver(&self) {
        let mut buffer = self.rw.borrow_mut();
        let (mut at, mut reports) = (0, 0);
        while reports < self.per_batch {
            let mut adv = [0u8; ADV_DATA_MAX];
            let n = self.sender.borrow_mut().next_adv(&mut adv);
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
            if at + 2 + pdu_len > buffer.len() {
                break;
            }
            buffer[at] = pdu_len as u8;
            buffer[at + 1] = 37;
            buffer[at + 2] = 0x02; // ADV_NONCONN_IND
            buffer[at + 3] = (6 + n) as u8;
            buffer[at + 4..at + 10].copy_from_slice(&[0xC0; 6]);
            buffer[at + 10..at + 10 + n].copy_from_slice(&adv[..n]);
            at += 2 + pdu_len;
            reports += 1;
        }
        self.batches.set(self.batches.get() + 1);
        self.share
            .schedule_upcall(0, (reports as u32, at as u32, 0))
            .expect("upcall");
    }
}

impl fake::SyscallDriver for FakeScan {
    fn info(&self) -> DriverInfo {
        DriverInfo::new(SCAN_DRIVER).upcall_count(1)
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
            0 | 2 => command_return::success(),
            4 => {
                // The receiver's status reaches the sender.
                let ro = self.ro.take();
                assert!(ro.len() <= 31, "status AdvData longer than 31 bytes");
                self.sender.borrow_mut().on_adv(&ro);
                self.ro.set(ro);
                self.statuses.set(self.statuses.get() + 1);
                command_return::success()
            }
            1 | 3 => {
                if self.batches.get() >= self.max_batches.get() {
                    return command_return::failure(ErrorCode::Fail);
                }
                assert!(
                    self.batches.get() < 20_000,
                    "the transfer never finished: {:?}",
                    self.sender.borrow().counters()
                );
                self.deliver();
                command_return::success()
            }
            _ => command_return::failure(ErrorCode::NoSupport),
        }
    }
}

fn test_image(len: usize) -> &'static [u8] {
    let image: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect();
    Box::leak(image.into_boxed_slice())
}

fn rig(
    image: &'static [u8],
    loss_percent: u32,
) -> (fake::Kernel, std::rc::Rc<FakeUpdate>, std::rc::Rc<FakeScan>) {
    let kernel = fake::Kernel::new();
    let update = std::rc::Rc::new(FakeUpdate::default());
    let scan = std::rc::Rc::new(FakeScan {
        ro: Default::default(),
        rw: Default::default(),
        share: Default::default(),
        sender: RefCell::new(Sender::new(DEFAULT_COMPANY_ID, image, 0x1234_5678, 0).unwrap()),
        per_batch: 12,
        loss_percent,
        rng: Cell::new(1),
        sent: Cell::new(0),
        batches: Cell::new(0),
        statuses: Cell::new(0),
        max_batches: Cell::new(usize::MAX),
    });
    kernel.add_driver(&update);
    kernel.add_driver(&scan);
    (kernel, update, scan)
}

fn run_app() -> (Result<(), ErrorCode>, String) {
    let mut console = String::new();
    let clock = Cell::new(0u64);
    let now = || {
        clock.set(clock.get() + 10);
        clock.get()
    };
    let mut bitmap = vec![0u8; BITMAP_LEN];
    let mut batch = vec![0u8; BATCH_LEN];
    let slept = Cell::new(0u32);
    let sleep = |ms: u32| slept.set(slept.get() + ms);
    let result = run::<fake::Syscalls, _>(&mut console, &now, &sleep, &mut bitmap, &mut batch);
    if result.is_ok() {
        assert!(
            slept.get() >= crate::REBOOT_DELAY_MS,
            "rebooted without letting the console drain"
        );
    }
    (result, console)
}

#[test]
fn the_app_receives_stages_finalizes_and_asks_for_the_reboot() {
    let image = test_image(20_000);
    let (_kernel, update, _scan) = rig(image, 0);
    // The kernel is still scanning the update region when the app starts.
    update.busy_for.set(3);
    let (result, console) = run_app();
    assert_eq!(result, Ok(()), "{console}");
    assert_eq!(
        &update.memory.borrow()[..],
        image,
        "staged bytes differ from the image"
    );
    assert_eq!(update.state.get(), 2);
    assert!(update.rebooted.get());
    assert!(console.contains("rebooting"), "{console}");
    assert!(console.contains("100%"), "{console}");
    assert_eq!(
        update.busy_for.get(),
        0,
        "the app did not wait for the start-up scan"
    );
}

#[test]
fn lost_advertisements_are_recovered_from_the_retransmissions() {
    let image = test_image(9_000);
    let (_kernel, update, scan) = rig(image, 15);
    let (result, console) = run_app();
    assert_eq!(result, Ok(()), "{console}");
    assert_eq!(&update.memory.borrow()[..], image);
    assert!(update.rebooted.get());
    assert!(
        scan.statuses.get() > 0,
        "the receiver never reported its status"
    );
    assert!(
        scan.sent.get() > image.len() / 25,
        "nothing was retransmitted"
    );
}

#[test]
fn a_kernel_without_the_drivers_is_reported() {
    let _kernel = fake::Kernel::new();
    let (result, console) = run_app();
    assert_eq!(result, Err(ErrorCode::NoDevice));
    assert!(console.contains("lacks"), "{console}");
}

#[test]
fn confirm_after_a_trial_boot_and_nothing_to_confirm_otherwise() {
    let (_kernel, update, _scan) = rig(test_image(100), 0);
    assert_eq!(confirm_trial_boot::<fake::Syscalls>(), Ok(None));
    assert!(!update.confirmed.get());
    update.sequence.set(3);
    assert_eq!(confirm_trial_boot::<fake::Syscalls>(), Ok(Some(3)));
    assert!(update.confirmed.get());
}

#[test]
fn policy_refusals_map_to_the_receivers_errors() {
    use crate::drivers::UpdateError;
    use adv_transfer::StageError;
    let e = |code, detail| UpdateError { code, detail };
    assert_eq!(
        stage_error(false, e(ErrorCode::NoAck, 10)),
        StageError::NotErased
    );
    assert_eq!(
        stage_error(false, e(ErrorCode::NoAck, 11)),
        StageError::NotBlank
    );
    assert_eq!(
        stage_error(true, e(ErrorCode::Fail, 16)),
        StageError::Rejected
    );
    // A flash failure during finalize is not a verdict on the image.
    assert_eq!(
        stage_error(true, e(ErrorCode::Fail, 12)),
        StageError::Failed
    );
    assert_eq!(
        stage_error(false, e(ErrorCode::Busy, 0)),
        StageError::Failed
    );
}

#[test]
fn batches_yield_adv_data_of_advertising_pdus_only() {
    let mut batch = Vec::new();
    // ADV_NONCONN_IND with 3 bytes of AdvData.
    batch.extend([11, 37, 0x02, 9, 1, 2, 3, 4, 5, 6, 0xAA, 0xBB, 0xCC]);
    // SCAN_REQ (type 3): no AdvData.
    batch.extend([14, 38, 0x03, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    // ADV_IND whose header length is shorter than the report: the header wins.
    batch.extend([10, 39, 0x00, 7, 1, 1, 1, 1, 1, 1, 0xDD, 0xEE]);
    // A truncated report ends the batch.
    batch.extend([30, 37, 0x02]);
    let advs: Vec<&[u8]> = adv_data_in(&batch).collect();
    assert_eq!(advs, vec![&[0xAA, 0xBB, 0xCC][..], &[0xDD][..]]);
}

#[test]
fn a_refused_image_is_reported_and_the_app_does_not_reboot() {
    let image = test_image(6_000);
    let (_kernel, update, scan) = rig(image, 0);
    update.reject.set(true);
    scan.max_batches.set(2_000);
    let (result, console) = run_app();
    assert_eq!(result, Err(ErrorCode::Fail), "{console}");
    assert!(console.contains("refused"), "{console}");
    assert!(!update.rebooted.get());
    assert_ne!(update.state.get(), 2);
}
