//! The app's loop on a fake kernel with the ext_scan driver (or without it): a sender on the
//! air, the bulk scanner and the follower as their capsules' contracts say, the staging driver
//! keeping erase-before-write. Time is the fake's milliseconds; it passes in waits, sleeps and
//! staging operations.
extern crate std;

use std::collections::VecDeque;
use std::string::String;
use std::vec;
use std::vec::Vec;

use adv_transfer::bearer::{Bearer, BearerSet, Phy};
use adv_transfer::wire::{ADV_DATA_MAX, EXT_ADV_DATA_MAX};
use adv_transfer::{session_address, Sender, DEFAULT_COMPANY_ID};
use dfu_abi::update::{command as cmd, detail, state};
use dfu_abi::{error, ext_scan, scan};

use crate::{
    ext_reports_in, run, run_with_bearers, Batch, Exit, ExtEvent, Kernel, OpError, BATCH_LEN,
    BITMAP_LEN, EXT_BATCH_LEN, FOLLOW_SILENCE_MS, LEGACY_LOOK_MS,
};

const SECTOR: usize = 4096;
/// A legacy advertising event every 25 ms (20 ms advInterval, mean advDelay 5 ms); a chained
/// event every 20 ms.
const LEGACY_EVENT_MS: u64 = 25;
const CHAINED_EVENT_MS: u64 = 20;
/// The fake ends the app after this much time: a test that does not finish fails, never hangs.
const HALT_AT_MS: u64 = 300_000;

/// The sender on air: one, then silence from `stall_at_ms`, then `next` from `resume_ms`.
struct Air {
    sender: Option<Sender<'static>>,
    stall_at_ms: u64,
    resume_ms: u64,
    next: Option<Sender<'static>>,
}

struct Fake {
    now_ms: u64,
    next_event_ms: u64,
    air: Air,
    /// Chained events lost, in percent (a fixed pseudo-random sequence).
    loss_percent: u32,
    rng: u32,
    ext_driver: bool,
    scanning: bool,
    legacy_pending: VecDeque<([u8; 6], Vec<u8>)>,
    /// The advertiser followed (FOLLOW's filter).
    following: Option<[u8; 6]>,
    ext_pending: VecDeque<([u8; 6], Vec<u8>)>,
    /// Upcall STOPPED with this error after this many more ext batches.
    stop_after: Option<(u32, u32)>,
    /// FOLLOW answers BUSY this many more times.
    follow_busy: u32,
    /// Every this many ext batches the kernel's ring had no room for an event: it is lost
    /// and counted as dropped in the batch (0: never).
    ring_drop_every: u32,
    ext_batches: u32,
    memory: Vec<u8>,
    erased: Vec<bool>,
    /// The staging session's tag (BEGIN's), kept across a power cut.
    tag: Option<[u8; 16]>,
    finalized: bool,
    /// The app is halted (a power cut, or the test's end) at this time.
    halt_at_ms: u64,
    rebooted: bool,
    /// Every call, in order, with the time (for comparing two runs).
    trace: Vec<String>,
    /// Broken rules of the drivers' contracts.
    violations: Vec<String>,
    console: String,
    follows: u32,
    ext_reports: u32,
    statuses: u32,
}

fn test_image(len: usize, seed: u32) -> &'static [u8] {
    let image: Vec<u8> = (0..len)
        .map(|i| (i as u32 ^ seed).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect();
    Vec::leak(image)
}

fn sender(image: &'static [u8], session: u32, offer: BearerSet) -> Sender<'static> {
    let mut s = Sender::new(DEFAULT_COMPANY_ID, image, session, 0).unwrap();
    s.offer_bearers(offer);
    s
}

impl Fake {
    fn new(air: Air, ext_driver: bool) -> Fake {
        Fake {
            now_ms: 0,
            next_event_ms: 0,
            air,
            loss_percent: 0,
            rng: 1,
            ext_driver,
            scanning: false,
            legacy_pending: VecDeque::new(),
            following: None,
            ext_pending: VecDeque::new(),
            stop_after: None,
            follow_busy: 0,
            ring_drop_every: 0,
            ext_batches: 0,
            memory: Vec::new(),
            erased: Vec::new(),
            tag: None,
            finalized: false,
            halt_at_ms: HALT_AT_MS,
            rebooted: false,
            trace: Vec::new(),
            violations: Vec::new(),
            console: String::new(),
            follows: 0,
            ext_reports: 0,
            statuses: 0,
        }
    }

    fn sender(&self) -> &Sender<'static> {
        self.air.sender.as_ref().expect("a sender")
    }

    /// Let time pass to `t`: the sender's events in between reach the listener active now.
    fn advance_to(&mut self, t: u64) {
        while self.next_event_ms <= t {
            let at = self.next_event_ms;
            if at >= self.air.stall_at_ms && at < self.air.resume_ms {
                self.next_event_ms = self.air.resume_ms;
                continue;
            }
            if at >= self.air.resume_ms {
                if let Some(next) = self.air.next.take() {
                    self.air.sender = Some(next);
                }
            }
            let Some(s) = self.air.sender.as_mut() else {
                self.next_event_ms = u64::MAX;
                break;
            };
            let addr = s.address();
            if s.bearer().is_some_and(|b| b.chained()) {
                let mut ev = [0u8; EXT_ADV_DATA_MAX];
                let n = s.next_event(&mut ev);
                self.rng = self.rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let lost = (self.rng >> 16) % 100 < self.loss_percent;
                if self.following == Some(addr) && !lost {
                    self.ext_pending.push_back((addr, ev[..n].to_vec()));
                }
                self.next_event_ms = at + CHAINED_EVENT_MS;
            } else {
                let mut adv = [0u8; ADV_DATA_MAX];
                let n = s.next_adv(&mut adv);
                if self.scanning {
                    self.legacy_pending.push_back((addr, adv[..n].to_vec()));
                }
                self.next_event_ms = at + LEGACY_EVENT_MS;
            }
        }
        self.now_ms = self.now_ms.max(t);
    }

    /// Wait at most `timeout_ms` for something in `queue` (`ext`: the follower's).
    fn wait(&mut self, ext: bool, timeout_ms: u32) -> bool {
        let deadline = self.now_ms + timeout_ms as u64;
        loop {
            self.advance_to(self.now_ms);
            let pending = if ext {
                !self.ext_pending.is_empty()
            } else {
                !self.legacy_pending.is_empty()
            };
            if pending {
                return true;
            }
            if self.now_ms >= deadline {
                return false;
            }
            let next = self.next_event_ms.min(deadline);
            self.advance_to(next);
        }
    }

    fn note(&mut self, call: &str) {
        self.trace.push(std::format!("{} {call}", self.now_ms));
    }
}

impl Kernel for Fake {
    fn exists(&mut self, driver: u32) -> bool {
        self.note(&std::format!("exists {driver:#x}"));
        match driver {
            dfu_abi::update::DRIVER_NUM | scan::DRIVER_NUM => true,
            ext_scan::DRIVER_NUM => self.ext_driver,
            _ => false,
        }
    }

    fn update_status(&mut self) -> Result<(u32, u32, u32), u32> {
        let state = match (self.tag, self.finalized) {
            (None, _) => state::IDLE,
            (Some(_), false) => state::STAGING,
            (Some(_), true) => state::FINALIZED,
        };
        Ok((state, self.memory.len() as u32, 0))
    }

    fn update_tag(&mut self, tag: &mut [u8; 16]) -> Result<(), u32> {
        *tag = self.tag.ok_or(error::RESERVE)?;
        Ok(())
    }

    fn update_op(
        &mut self,
        command: u32,
        arg1: u32,
        arg2: u32,
        data: &[u8],
        out: &mut [u8],
        _timeout_ms: u32,
    ) -> Result<u32, OpError> {
        self.note(&std::format!("update {command} {arg1} {arg2}"));
        let (offset, len) = (arg1 as usize, arg2 as usize);
        let t = self.now_ms;
        let result = match command {
            cmd::CONFIRM => return Err(OpError::Refused(error::RESERVE)),
            cmd::BEGIN => {
                let mut tag = [0u8; 16];
                tag.copy_from_slice(&data[..16]);
                self.tag = Some(tag);
                self.memory = vec![0; offset];
                self.erased = vec![false; offset.div_ceil(SECTOR)];
                Ok(0)
            }
            cmd::ERASE => {
                self.advance_to(t + 40);
                let end = (offset + SECTOR).min(self.memory.len());
                self.memory[offset..end].fill(0xFF);
                self.erased[offset / SECTOR] = true;
                Ok(0)
            }
            cmd::WRITE => {
                self.advance_to(t + 1);
                if (offset / SECTOR..=(offset + len - 1) / SECTOR).any(|s| !self.erased[s]) {
                    Err(detail::NOT_ERASED)
                } else if self.memory[offset..offset + len].iter().any(|&b| b != 0xFF) {
                    Err(detail::NOT_BLANK)
                } else {
                    self.memory[offset..offset + len].copy_from_slice(&data[..len]);
                    Ok(0)
                }
            }
            cmd::READ => {
                self.advance_to(t + 1);
                out[..len].copy_from_slice(&self.memory[offset..offset + len]);
                Ok(0)
            }
            cmd::FINALIZE => {
                self.advance_to(t + 100);
                self.finalized = true;
                Ok(1)
            }
            _ => return Err(OpError::Refused(error::NOSUPPORT)),
        };
        result.map_err(|detail| OpError::Failed {
            code: error::NOACK,
            detail,
        })
    }

    fn reboot(&mut self) -> Result<(), u32> {
        self.note("reboot");
        self.rebooted = self.finalized;
        if self.finalized {
            Ok(())
        } else {
            Err(error::RESERVE)
        }
    }

    fn scan_wait(
        &mut self,
        command: u32,
        buffer: &mut [u8],
        timeout_ms: u32,
    ) -> Result<Option<Batch>, u32> {
        self.note(&std::format!("scan {command} {timeout_ms}"));
        if self.following.is_some() {
            self.violations
                .push(std::format!("{} bulk scan while following", self.now_ms));
        }
        self.scanning = true;
        if !self.wait(false, timeout_ms) {
            return Ok(None);
        }
        let (mut at, mut reports) = (0, 0);
        while let Some((addr, adv)) = self.legacy_pending.front() {
            let pdu_len = 2 + 6 + adv.len();
            if at + scan::REPORT_HEADER + pdu_len > buffer.len() {
                break;
            }
            buffer[at] = pdu_len as u8;
            buffer[at + 1] = 37;
            buffer[at + 2] = 0x02;
            buffer[at + 3] = (6 + adv.len()) as u8;
            buffer[at + 4..at + 10].copy_from_slice(addr);
            buffer[at + 10..at + 10 + adv.len()].copy_from_slice(adv);
            at += scan::REPORT_HEADER + pdu_len;
            reports += 1;
            self.legacy_pending.pop_front();
        }
        Ok(Some(Batch {
            reports,
            bytes: at as u32,
            dropped: 0,
        }))
    }

    fn scan_stop(&mut self) -> Result<(), u32> {
        self.note("scan stop");
        self.scanning = false;
        self.legacy_pending.clear();
        Ok(())
    }

    fn advertise(&mut self, adv_data: &[u8]) -> Result<(), u32> {
        self.note("advertise");
        if self.following.is_some() {
            self.violations
                .push(std::format!("{} advertised while following", self.now_ms));
        }
        if !self.scanning {
            // ADVERTISE is the bulk scanner owner's.
            return Err(error::RESERVE);
        }
        self.statuses += 1;
        if let Some(s) = self.air.sender.as_mut() {
            s.on_adv(adv_data);
        }
        Ok(())
    }

    fn ext_wait(
        &mut self,
        command: u32,
        arg1: u32,
        arg2: u32,
        buffer: &mut [u8],
        timeout_ms: u32,
    ) -> Result<Option<ExtEvent>, u32> {
        self.note(&std::format!(
            "ext {command} {arg1:#x} {arg2:#x} {timeout_ms}"
        ));
        if !self.ext_driver {
            return Err(error::NODEVICE);
        }
        match command {
            ext_scan::command::FOLLOW => {
                if self.scanning {
                    // The legacy driver holds the RADIO.
                    return Err(error::BUSY);
                }
                if self.follow_busy > 0 {
                    self.follow_busy -= 1;
                    return Err(error::BUSY);
                }
                let Some((Some(adv_a), _)) = ext_scan::filter_from_args(arg1, arg2) else {
                    return Err(error::INVAL);
                };
                self.following = Some(adv_a);
                self.follows += 1;
                self.ext_pending.clear();
            }
            ext_scan::command::RELEASE if self.following.is_some() => {}
            _ => return Err(error::RESERVE),
        }
        if !self.wait(true, timeout_ms) {
            return Ok(None);
        }
        if let Some((code, after)) = self.stop_after {
            if after == 0 {
                self.stop_after = None;
                self.following = None;
                self.ext_pending.clear();
                return Ok(Some(ExtEvent::Stopped(code)));
            }
            self.stop_after = Some((code, after - 1));
        }
        self.ext_batches += 1;
        let mut dropped = 0;
        if self.ring_drop_every > 0 && self.ext_batches.is_multiple_of(self.ring_drop_every) {
            dropped = u32::from(self.ext_pending.pop_front().is_some());
        }
        let (mut at, mut reports) = (0, 0);
        while let Some((addr, adv)) = self.ext_pending.front() {
            let len = ext_scan::REPORT_HEADER + adv.len();
            if at + len > buffer.len() {
                break;
            }
            let r = &mut buffer[at..at + len];
            r[0..2].copy_from_slice(&(adv.len() as u16).to_le_bytes());
            r[2] = ext_scan::cut::WHOLE;
            r[3] = ext_scan::has::ADV_A | ext_scan::has::ADI;
            r[4..10].copy_from_slice(addr);
            r[10..12].copy_from_slice(&[0x00, 0x30]);
            r[12..].copy_from_slice(adv);
            at += len;
            reports += 1;
            self.ext_pending.pop_front();
        }
        self.ext_reports += reports;
        Ok(Some(ExtEvent::Batch(Batch {
            reports,
            bytes: at as u32,
            dropped,
        })))
    }

    fn ext_stop(&mut self) -> Result<(), u32> {
        self.note("ext stop");
        if !self.ext_driver {
            return Err(error::NODEVICE);
        }
        self.following = None;
        self.ext_pending.clear();
        Ok(())
    }

    fn ticks(&mut self) -> u32 {
        self.now_ms as u32
    }

    fn ticks_per_second(&mut self) -> u32 {
        1000
    }

    fn sleep(&mut self, ms: u32) {
        self.note(&std::format!("sleep {ms}"));
        let t = self.now_ms + ms as u64;
        self.advance_to(t);
    }

    fn log(&mut self, line: core::fmt::Arguments<'_>) {
        self.console
            .push_str(&std::format!("{} {line}\n", self.now_ms));
    }

    fn halted(&mut self) -> bool {
        self.now_ms >= self.halt_at_ms
    }
}

fn one_sender(image: &'static [u8], offer: BearerSet) -> Air {
    Air {
        sender: Some(sender(image, 0x1234_5678, offer)),
        stall_at_ms: u64::MAX,
        resume_ms: u64::MAX,
        next: None,
    }
}

fn boot_with_bearers(k: &mut Fake) -> Exit {
    let mut bitmap = vec![0u8; BITMAP_LEN];
    let mut batch = vec![0u8; BATCH_LEN];
    let mut ext_batch = vec![0u8; EXT_BATCH_LEN];
    run_with_bearers(k, &mut bitmap, &mut batch, &mut ext_batch)
}

fn boot_legacy(k: &mut Fake) -> Exit {
    let mut bitmap = vec![0u8; BITMAP_LEN];
    let mut batch = vec![0u8; BATCH_LEN];
    run(k, &mut bitmap, &mut batch)
}

fn assert_delivered(k: &Fake, image: &[u8]) {
    assert!(k.rebooted, "{}", k.console);
    assert_eq!(&k.memory[..], image, "staged bytes differ: {}", k.console);
    assert!(k.violations.is_empty(), "{:?}", k.violations);
}

#[test]
fn a_ble5_sender_is_followed_through_ext_scan_and_the_image_arrives_on_the_chained_bearer() {
    let image = test_image(30_000, 1);
    let mut k = Fake::new(one_sender(image, BearerSet::ALL), true);
    assert_eq!(boot_with_bearers(&mut k), Exit::Rebooting, "{}", k.console);
    assert_delivered(&k, image);
    // The fastest bearer both have: the receiver offered all the follower hears.
    assert_eq!(k.sender().bearer(), Some(Bearer::Periodic(Phy::Le2M)));
    assert!(k.ext_reports > 0);
    // FOLLOW named the session's sender.
    let (a1, a2) = ext_scan::filter_args(Some(session_address(0x1234_5678)), None);
    let follow = std::format!("ext {} {a1:#x} {a2:#x}", ext_scan::command::FOLLOW);
    assert!(k.trace.iter().any(|l| l.contains(&follow)), "{:?}", k.trace);
    // Statuses went out through the bulk scanner, each costing a FOLLOW again.
    assert!(
        k.statuses > 2 && k.follows > 2,
        "{} {}",
        k.statuses,
        k.follows
    );
    assert!(k.follows <= k.statuses + 1, "{} {}", k.follows, k.statuses);
}

#[test]
fn without_the_ext_driver_the_app_does_exactly_what_run_does() {
    let image = test_image(12_000, 2);
    let mut with = Fake::new(one_sender(image, BearerSet::ALL), false);
    let mut plain = Fake::new(one_sender(image, BearerSet::ALL), false);
    assert_eq!(
        boot_with_bearers(&mut with),
        Exit::Rebooting,
        "{}",
        with.console
    );
    assert_eq!(
        boot_legacy(&mut plain),
        Exit::Rebooting,
        "{}",
        plain.console
    );
    assert_delivered(&with, image);
    // The receiver answered the offer with legacy (after the sender's three statuses).
    assert_eq!(with.sender().bearer(), Some(Bearer::Legacy));
    // The same calls at the same times, but the ext_scan driver's EXISTS.
    let ext_exists = std::format!("exists {:#x}", ext_scan::DRIVER_NUM);
    let calls: Vec<&String> = with
        .trace
        .iter()
        .filter(|l| !l.ends_with(&ext_exists))
        .collect();
    assert!(calls.len() > 100);
    assert_eq!(calls, plain.trace.iter().collect::<Vec<_>>());
    assert_eq!(with.trace.len(), calls.len() + 1);
    assert_eq!(with.console, plain.console);
}

#[test]
fn a_legacy_only_sender_updates_an_app_that_has_the_ext_driver() {
    let image = test_image(8_000, 3);
    let mut k = Fake::new(one_sender(image, BearerSet::LEGACY), true);
    assert_eq!(boot_with_bearers(&mut k), Exit::Rebooting, "{}", k.console);
    assert_delivered(&k, image);
    assert_eq!(k.follows, 0, "nothing to follow on a legacy session");
}

#[test]
fn lost_events_and_kernel_stops_are_recovered() {
    let image = test_image(40_000, 4);
    let mut k = Fake::new(one_sender(image, BearerSet::ALL), true);
    k.loss_percent = 15;
    k.stop_after = Some((error::FAIL, 20));
    k.follow_busy = 3;
    assert_eq!(boot_with_bearers(&mut k), Exit::Rebooting, "{}", k.console);
    assert_delivered(&k, image);
    assert!(k.sender().counters().retransmissions > 0);
    assert!(
        k.console
            .contains("the kernel stopped following (error 1); following again in 500 ms"),
        "{}",
        k.console
    );
    assert_eq!(k.follow_busy, 0);
}

#[test]
fn a_silent_sender_sends_the_app_back_to_legacy_and_a_new_sender_takes_over_after_the_session_timeout(
) {
    let stalled = test_image(150_000, 5);
    let image = test_image(9_000, 6);
    // A goes silent 2.5 s in, after the pick (its 37 sectors erased first) and before its
    // end; B (legacy only) starts at 20 s.
    const STALL_MS: u64 = 2_500;
    let air = Air {
        sender: Some(sender(stalled, 0xAAAA_0001, BearerSet::ALL)),
        stall_at_ms: STALL_MS,
        resume_ms: 20_000,
        next: Some(sender(image, 0xBBBB_0002, BearerSet::LEGACY)),
    };
    let mut k = Fake::new(air, true);
    assert_eq!(boot_with_bearers(&mut k), Exit::Rebooting, "{}", k.console);
    assert_delivered(&k, image);
    let look = "nothing heard while following";
    let first = k
        .console
        .lines()
        .find(|l| l.contains(look))
        .expect("no look at legacy advertising");
    let at: u64 = first.split(' ').next().unwrap().parse().unwrap();
    assert!(
        (STALL_MS + FOLLOW_SILENCE_MS..STALL_MS + FOLLOW_SILENCE_MS + 500).contains(&at),
        "{}",
        k.console
    );
    assert!(k.console.contains("% (") && k.sender().counters().data_pdus > 0);
    // B joined once A's session was idle for the receiver's 30 s (in a look at legacy
    // advertising), not before.
    let beginnings: Vec<&String> = k.trace.iter().filter(|l| l.contains("update 2 ")).collect();
    assert_eq!(beginnings.len(), 2, "{beginnings:?}");
    let joined_b: u64 = beginnings[1].split(' ').next().unwrap().parse().unwrap();
    let idle = STALL_MS + 30_000;
    assert!(
        (idle..idle + LEGACY_LOOK_MS + FOLLOW_SILENCE_MS + 500).contains(&joined_b),
        "B joined at {joined_b} ms: {}",
        k.console
    );
}

#[test]
fn after_a_power_cut_the_app_follows_the_staged_sessions_sender_until_its_announce_resumes_it() {
    let image = test_image(60_000, 7);
    let mut k = Fake::new(one_sender(image, BearerSet::ALL), true);
    // The power fails 1 s in: after the pick, with part of the image staged (the first pass
    // is over by about 1.3 s).
    k.halt_at_ms = 1_000;
    assert_eq!(boot_with_bearers(&mut k), Exit::Halted, "{}", k.console);
    assert!(k.sender().bearer().is_some_and(|b| b.chained()));
    let tag = k.tag.expect("a staged session");
    assert!(adv_transfer::wire::tag_bearer(&tag).is_some_and(|b| b.chained()));
    let staged_before = k.sender().counters().data_pdus;
    assert!(staged_before > 0 && k.sender().first_pass_sent() < k.sender().total_chunks());
    // The kernel restarts; the sender goes on, on its bearer only.
    k.scanning = false;
    k.following = None;
    k.legacy_pending.clear();
    k.ext_pending.clear();
    k.halt_at_ms = HALT_AT_MS;
    let follows = k.follows;
    assert_eq!(boot_with_bearers(&mut k), Exit::Rebooting, "{}", k.console);
    assert_delivered(&k, image);
    assert!(k
        .console
        .contains("resuming staged session (finalized: false)"));
    assert!(k.follows > follows);
    // Resumed, not begun again; well before any session time-out.
    let beginnings = k.trace.iter().filter(|l| l.contains("update 2 ")).count();
    assert_eq!(beginnings, 1);
    assert!(k.now_ms < 10_000, "{}", k.console);
}

#[test]
fn ext_batches_yield_whole_reports_only() {
    let mut batch = Vec::new();
    // A whole report with AdvA.
    batch.extend([3, 0, ext_scan::cut::WHOLE, ext_scan::has::ADV_A]);
    batch.extend([1, 2, 3, 4, 5, 6, 0, 0, 0xA, 0xB, 0xC]);
    // A cut periodic report without AdvA.
    batch.extend([1, 0, ext_scan::cut::LOST, ext_scan::has::PERIODIC_COUNTER]);
    batch.extend([0, 0, 0, 0, 0, 0, 7, 0, 0xD]);
    // A report whose AdvData runs past the batch ends the walk.
    batch.extend([200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    let reports: Vec<_> = ext_reports_in(&batch).collect();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].adv_a, Some([1, 2, 3, 4, 5, 6]));
    assert_eq!(reports[0].adv_data, &[0xA, 0xB, 0xC]);
    assert_eq!(reports[1].adv_a, None);
    assert_eq!(reports[1].cut, ext_scan::cut::LOST);
    assert_eq!(reports[1].adv_data, &[0xD]);
    // Longer than the chain limit: not a report, however long the batch.
    let mut long = vec![0u8; ext_scan::REPORT_HEADER + 2_000];
    long[0..2].copy_from_slice(&1_651u16.to_le_bytes());
    assert_eq!(ext_reports_in(&long).count(), 0);
    assert_eq!(ext_reports_in(&[5, 0, 0]).count(), 0);
    // Arbitrary bytes: every report lies inside the batch, never a panic.
    let mut rng = 7u32;
    for len in 0..600usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                // Small lengths often enough to make reports.
                let b = (rng >> 16) as u8;
                if b < 128 {
                    b % 8
                } else {
                    b
                }
            })
            .collect();
        let mut total = 0;
        for r in ext_reports_in(&bytes) {
            assert!(r.adv_data.len() <= ext_scan::MAX_ADV_DATA);
            total += ext_scan::REPORT_HEADER + r.adv_data.len();
        }
        assert!(total <= len);
    }
}

#[test]
fn a_status_is_held_while_the_first_pass_comes_unless_the_kernel_drops_events() {
    // Each status costs the follow, so while the sender's first pass keeps coming a due
    // status waits (up to CHAINED_STATUS_HOLD_MS). Once the kernel reports events it had no
    // room for, the app is behind: the status goes out at its interval again.
    let image = test_image(120_000, 6);
    let mut clean = Fake::new(one_sender(image, BearerSet::ALL), true);
    assert_eq!(
        boot_with_bearers(&mut clean),
        Exit::Rebooting,
        "{}",
        clean.console
    );
    assert_delivered(&clean, image);
    let mut dropping = Fake::new(one_sender(image, BearerSet::ALL), true);
    dropping.ring_drop_every = 4;
    assert_eq!(
        boot_with_bearers(&mut dropping),
        Exit::Rebooting,
        "{}",
        dropping.console
    );
    assert_delivered(&dropping, image);
    // The clean run: far fewer statuses than one per interval while it followed.
    let first = first_follow_ms(&clean.trace);
    let while_following = |k: &Fake| statuses_since(&k.trace, first);
    let per_interval = (clean.now_ms - first) / crate::STATUS_INTERVAL_MS;
    let per_hold = (clean.now_ms - first).div_ceil(crate::CHAINED_STATUS_HOLD_MS);
    // One per hold, the one after the pass, the last.
    assert!(
        while_following(&clean) <= per_hold + 2 && while_following(&clean) < per_interval,
        "{} statuses in {} ms",
        while_following(&clean),
        clean.now_ms - first
    );
    assert!(
        while_following(&dropping) > while_following(&clean) * 2,
        "{} against {}",
        while_following(&dropping),
        while_following(&clean)
    );
}

/// Statuses advertised from `from_ms` on, from the fake's trace.
fn statuses_since(trace: &[String], from_ms: u64) -> u64 {
    trace
        .iter()
        .filter(|l| l.ends_with(" advertise") && trace_ms(l) >= from_ms)
        .count() as u64
}

fn trace_ms(line: &str) -> u64 {
    line.split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .expect("a time")
}

/// When the app first followed (ms), from the fake's trace.
fn first_follow_ms(trace: &[String]) -> u64 {
    let follow = std::format!("ext {} ", ext_scan::command::FOLLOW);
    trace
        .iter()
        .find(|l| l.contains(&follow))
        .map(|l| trace_ms(l))
        .expect("the app followed")
}
