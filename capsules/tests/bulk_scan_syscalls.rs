//! The bulk-scan driver at the syscall layer: `SyscallDriver::command` with a real
//! `kernel::grant::Grant` and real `ProcessId`s (process doubles in the kernel's process slots),
//! batches counted as the kernel queues their upcalls.

// Shared test support; each test crate uses a part of it.
#[path = "support/fake_alarm.rs"]
#[allow(dead_code)]
mod fake_alarm;
#[path = "support/fake_radio.rs"]
#[allow(dead_code)]
mod fake_radio;
#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use std::boxed::Box;
use std::cell::Cell;
use std::vec::Vec;

use fake_alarm::FakeAlarm;
use fake_radio::{adv_pdu, scan_rig, Call, FakeRadio, Scan};
use kernel::process::ShortId;
use kernel::syscall::SyscallDriver;
use kernel::ErrorCode;
use process::{FakeProcess, Harness};
use tock_ota_capsules::bulk_scan::{command, rw_allow, upcall, BulkScan, DRIVER_NUM};

struct Rig {
    harness: Harness,
    radio: &'static FakeRadio,
    scan: &'static Scan,
    alarm: &'static FakeAlarm,
    driver: &'static BulkScan<'static, FakeRadio, FakeAlarm>,
}

impl Rig {
    fn new() -> Rig {
        let harness = Harness::new();
        let (radio, scan, alarm) = scan_rig(512);
        let driver = Box::leak(Box::new(BulkScan::new(scan, harness.grant(DRIVER_NUM))));
        scan.set_sink(driver);
        Rig {
            harness,
            radio,
            scan,
            alarm,
            driver,
        }
    }

    /// A process in slot `index` with a batch buffer of `len` bytes allowed.
    fn process(&self, index: usize, identifier: usize, len: usize) -> Process {
        let process = self
            .harness
            .add_process(index, identifier, ShortId::LocallyUnique);
        self.driver.allocate_grant(process.id()).unwrap();
        let buffer: &'static [Cell<u8>] =
            Box::leak((0..len).map(|_| Cell::new(0)).collect::<Box<[_]>>());
        process.allow_rw(DRIVER_NUM, rw_allow::BATCH, buffer);
        Process { process, buffer }
    }

    fn command(&self, p: &Process, cmd: usize) -> Result<(), ErrorCode> {
        let ret = self.driver.command(cmd, 0, 0, p.process.id());
        match ret.get_failure() {
            Some(e) => Err(e),
            None => {
                assert!(ret.is_success());
                Ok(())
            }
        }
    }
}

struct Process {
    process: &'static FakeProcess,
    buffer: &'static [Cell<u8>],
}

impl Process {
    /// The batches announced since the last call: `(reports, bytes, dropped)` each.
    fn batches(&self) -> Vec<(usize, usize, usize)> {
        self.process
            .take_upcalls()
            .into_iter()
            .map(|q| {
                assert_eq!((q.driver_num, q.subscribe_num), (DRIVER_NUM, upcall::BATCH));
                q.args
            })
            .collect()
    }

    fn batch_bytes(&self, len: usize) -> Vec<u8> {
        self.buffer[..len].iter().map(Cell::get).collect()
    }
}

fn report(channel: u8, tag: u8) -> Vec<u8> {
    let pdu = adv_pdu(tag);
    let mut r = vec![pdu.len() as u8, channel];
    r.extend(pdu);
    r
}

#[test]
fn each_batch_is_announced_by_exactly_one_upcall() {
    let rig = Rig::new();
    let app = rig.process(0, 1, 256);
    assert_eq!(rig.command(&app, command::START), Ok(()));
    assert_eq!(rig.radio.take_calls(), vec![Call::Receive(37)]);
    rig.radio.packet(&adv_pdu(1), true);
    assert_eq!(app.batches(), vec![(1, 13, 0)]);
    assert_eq!(app.batch_bytes(13), report(37, 1));
    // While the batch is held, reports queue.
    rig.radio.packet(&adv_pdu(2), true);
    rig.radio.packet(&adv_pdu(3), true);
    assert!(app.batches().is_empty());
    assert_eq!(rig.command(&app, command::RELEASE), Ok(()));
    assert_eq!(app.batches(), vec![(2, 26, 0)]);
    let mut expected = report(38, 2);
    expected.extend(report(39, 3));
    assert_eq!(app.batch_bytes(26), expected);
    // Nothing queued: a release announces nothing.
    assert_eq!(rig.command(&app, command::RELEASE), Ok(()));
    assert!(app.batches().is_empty());
}

#[test]
fn a_batch_whose_upcall_cannot_be_queued_stays_queued_and_goes_out_later() {
    let rig = Rig::new();
    let app = rig.process(0, 1, 256);
    assert_eq!(rig.command(&app, command::START), Ok(()));
    app.process.queue_full.set(true);
    rig.radio.packet(&adv_pdu(1), true);
    assert!(app.batches().is_empty());
    app.process.queue_full.set(false);
    // The next report finds the scanner still waiting to hand over a batch: both go out.
    rig.radio.packet(&adv_pdu(2), true);
    assert_eq!(app.batches(), vec![(2, 26, 0)]);
    let mut expected = report(37, 1);
    expected.extend(report(38, 2));
    assert_eq!(app.batch_bytes(26), expected);
    assert_eq!(rig.command(&app, command::RELEASE), Ok(()));
    rig.radio.packet(&adv_pdu(3), true);
    assert_eq!(app.batches(), vec![(1, 13, 0)]);
}

#[test]
fn when_the_scanning_process_stops_running_the_radio_is_not_rearmed() {
    let rig = Rig::new();
    let app = rig.process(0, 1, 256);
    assert_eq!(rig.command(&app, command::START), Ok(()));
    rig.radio.take_calls();
    app.process.kill();
    // The receive in flight completes: the scanner finds its process gone and stops.
    rig.radio.packet(&adv_pdu(1), true);
    assert!(!rig.scan.is_scanning());
    rig.radio.take_calls();
    rig.radio.packet(&adv_pdu(2), true);
    assert_eq!(rig.radio.take_calls(), vec![], "the radio was re-armed");

    // Another process can scan, and gets none of the old reports.
    let next = rig.process(1, 2, 256);
    assert_eq!(rig.command(&next, command::START), Ok(()));
    rig.radio.packet(&adv_pdu(3), true);
    let batches = next.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].0, 1, "reports of the old owner were handed on");
}

#[test]
fn in_a_quiet_room_a_dead_scanning_process_stops_the_radio_at_the_next_hop() {
    let rig = Rig::new();
    let app = rig.process(0, 1, 256);
    assert_eq!(rig.command(&app, command::START), Ok(()));
    // Alive: every dwell without a packet hops to the next channel and receives there.
    assert!(rig.alarm.fire());
    assert!(!rig.radio.take_calls().is_empty(), "no hop while alive");
    app.process.kill();
    // No packet arrives; the hop alarm alone must notice the process is gone.
    assert!(rig.alarm.fire());
    assert!(!rig.scan.is_scanning());
    assert_eq!(
        rig.radio.take_calls(),
        vec![Call::StopReceive],
        "the receive was not ended, or the radio was re-armed for nobody"
    );
    assert!(!rig.alarm.fire(), "the hop alarm is still armed");
}

#[test]
fn when_the_process_restarts_while_holding_a_batch_scanning_stops() {
    let rig = Rig::new();
    let app = rig.process(0, 1, 256);
    assert_eq!(rig.command(&app, command::START), Ok(()));
    rig.radio.packet(&adv_pdu(1), true);
    assert_eq!(app.batches(), vec![(1, 13, 0)]);
    // The process restarts: a new process (new identifier) in the same slot.
    let restarted = rig.process(0, 9, 256);
    rig.radio.take_calls();
    rig.radio.packet(&adv_pdu(2), true);
    assert!(!rig.scan.is_scanning());
    rig.radio.take_calls();
    rig.radio.packet(&adv_pdu(3), true);
    assert_eq!(rig.radio.take_calls(), vec![], "the radio was re-armed");
    assert!(restarted.batches().is_empty());
    assert_eq!(rig.command(&restarted, command::START), Ok(()));
}
