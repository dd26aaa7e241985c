//! Following one advertiser's BLE 5 extended advertising chains and periodic train, with each
//! event's AdvData (up to 1,650 bytes) delivered to one process in batches.
//!
//! The capsule joins two halves that know nothing of each other: the sans-IO
//! [`ble_ext::Follower`] decides where and when to listen and reassembles each event's chain;
//! [`crate::aux_radio`] listens exactly then (TIMER0 and PPI switch the RADIO on). Each of the
//! follower's operations becomes one listen, and each listen's completion goes back to the
//! follower:
//!
//! - `Op::Listen(listen)` goes to the receiver as it is (`aux_radio`'s [`Listen`] is
//!   `ble_ext`'s); a received PDU goes back as
//!   `follower.received(address_us, channel, phy, pdu)`, a window that closed with nothing or a
//!   CRC error as `follower.missed()`.
//! - `Op::ScanPrimary { channel }` is a listen too, on channel 37, 38 or 39 at LE 1M with the
//!   advertising access address and CRC init, for a scan window of [`SCAN_WINDOW_US`] opening
//!   [`SCAN_LEAD_US`] after the timer is read. So every ADV_EXT_IND gets its ADDRESS time from
//!   the hardware, which its AuxPtr offset counts from. After a packet that does not move the
//!   follower on (a legacy advertisement, another advertiser), or a CRC error, the rest of the
//!   same window is listened to; when the window ends, `follower.missed()` moves it to the next
//!   primary channel.
//! - A listen the hardware cannot honour in time ([`ListenError::StartPassed`]) is a
//!   `follower.missed()`: the follower goes on with what comes next (the next anchor, or the
//!   primary channels) and nothing stalls. So are the refusals of a listen the follower should
//!   never ask for (channel, CRC init, window), counted with them ([`ExtCounters::refused`]).
//!   A scan window whose start passed is opened again from the timer's new value.
//!
//! Every event the follower hands back (AdvA, ADI or periodic event counter, AdvData, whether
//! its chain was cut) is encoded as one report (`dfu_abi::ext_scan::REPORT_HEADER` bytes, then
//! the AdvData) into a kernel ring and handed to the process in batches, exactly as
//! [`crate::bulk_scan`] delivers legacy reports: the ring ([`ReportRing`]) and the copy into the
//! process's buffer with its upcall ([`deliver_batch`]) are bulk-scan's, with this driver's
//! [`ExtReport`] format. A report that does not fit in the ring is dropped and counted, never
//! overwriting a queued one.
//!
//! **Filter.** The process names the advertiser to follow: its AdvA and/or its advertising set
//! id (from the sender's offer). Other advertisers' chains and trains are ignored by the follower
//! ([`ble_ext::Filter`]).
//!
//! **Sharing the RADIO.** While following, this capsule keeps the RADIO: every listen is
//! refused (`RadioInUse`) while the legacy driver holds it. A listen refused so, or any other
//! refusal that means the driver and this capsule disagree (`Busy`, `BufferOut`), ends
//! following: the process gets the `STOPPED` upcall (`BUSY` or `FAIL`), or, during `FOLLOW`,
//! the command's failure. So the DFU app stops the bulk scanner before `FOLLOW`, and `STOP`s
//! this one before it scans or advertises legacy again. A loop of refusals or completions that
//! would keep the kernel busy is cut after [`MAX_STEPS`] listens in one go (`FAIL`).
//!
//! **Wiring** (the DK board does it when built with its cargo feature `ble5`, off by default:
//! every kernel byte travels with each update; docs/ble5.md, "On the DK board"): the board
//! gives the RADIO interrupt to `aux_radio` before `adv_radio`, reserves TIMER0 and PPI channels
//! 20–31 for `aux_radio`, sets this capsule as `aux_radio`'s client and gives it a ring of at
//! least one [`MAX_REPORT`]-byte report (a few events' worth is better; the DK's has five).
//!
//! Syscall interface
//! -----------------
//!
//! The numbers below are defined once in `dfu_abi::ext_scan`.
//!
//! Driver number `0xA0003`. Every command but `0` is for the DFU process only (its `ShortId`,
//! the rule [`crate::identity::filter`] applies to the other update drivers): others get
//! `NODEVICE`, checked here, so nothing depends on the board's filter listing this driver.
//!
//! - Command `0`: exists.
//! - Command `1`: follow. `arg1`, `arg2`: the advertiser (`dfu_abi::ext_scan::filter_args`;
//!   `INVAL` if malformed). The caller becomes the owner (`BUSY` if another live process is);
//!   an owner following already starts again from the primary channels with the new filter,
//!   its queued reports discarded. `BUSY` also while a stopped listen is still ending (try
//!   again) or while the legacy driver holds the RADIO.
//! - Command `2`: stop. Queued reports are discarded; the RADIO is free once its DISABLED
//!   interrupt has come.
//! - Command `3`: release the current batch; the next one is delivered at once if reports are
//!   queued.
//! - Read-write allow `0`: the batch buffer. A batch is a sequence of reports, each
//!   `REPORT_HEADER` bytes (AdvData length, how the chain ended, AdvA, ADI or periodic event
//!   counter: `dfu_abi::ext_scan`'s table) and the AdvData.
//! - Upcall `0`: `(reports, bytes, dropped)`, as bulk-scan's.
//! - Upcall `1`: `(error, 0, 0)`: the kernel stopped following (`BUSY`: the RADIO was taken;
//!   `FAIL`: the receiver refused what it must not refuse). Queued reports are discarded.

use core::cell::Cell;
use core::num::NonZeroU32;

use ble_ext::{is_after, Config, Cut, Filter, Follower, Op, Report};
use ble_ext::{ADV_ACCESS_ADDRESS, ADV_CRC_INIT};
use kernel::grant::{AllowRoCount, AllowRwCount, Grant, UpcallCount};
use kernel::syscall::{CommandReturn, SyscallDriver};
use kernel::utilities::cells::{MapCell, OptionalCell};
use kernel::{ErrorCode, ProcessId};

use adv_transfer::bearer::{Phy, CHAIN_ADV_DATA_MAX};
use dfu_abi::ext_scan as abi;

use crate::aux_radio::{
    AuxClient, AuxRadio, Listen, ListenError, Missed, AUX_RX_BUF_LEN, RAMP_UP_US, RX_GUARD_US,
};
use crate::bulk_scan::{
    deliver_batch, owner_present, BatchQueue, BatchSink, Delivery, ReportFormat, ReportRing,
    HOP_AFTER_MS,
};
use crate::identity;

/// Syscall driver number.
pub const DRIVER_NUM: usize = abi::DRIVER_NUM as usize;

/// Bytes a report takes before its AdvData.
pub const REPORT_HEADER: usize = abi::REPORT_HEADER;
/// The longest report.
pub const MAX_REPORT: usize = abi::MAX_REPORT;
const _: () = assert!(abi::MAX_ADV_DATA == CHAIN_ADV_DATA_MAX);

pub mod upcall {
    use dfu_abi::ext_scan::upcall as abi;
    pub const BATCH: usize = abi::BATCH as usize;
    pub const STOPPED: usize = abi::STOPPED as usize;
    pub const COUNT: u8 = abi::COUNT;
}

pub mod rw_allow {
    use dfu_abi::ext_scan::rw_allow as abi;
    pub const BATCH: usize = abi::BATCH as usize;
    pub const COUNT: u8 = abi::COUNT;
}

pub mod command {
    use dfu_abi::ext_scan::command as abi;
    pub const EXISTS: usize = abi::EXISTS as usize;
    pub const FOLLOW: usize = abi::FOLLOW as usize;
    pub const STOP: usize = abi::STOP as usize;
    pub const RELEASE: usize = abi::RELEASE as usize;
}

/// How long one primary channel is listened to before the next: bulk-scan's dwell, for the
/// same reason (longer than one advertising event period of the fastest sender, 20 ms
/// advInterval + up to 10 ms advDelay, which holds for an extended set's ADV_EXT_IND too).
pub const SCAN_WINDOW_US: u32 = HOP_AFTER_MS * 1000;

/// From reading the timer to the opening of a scan window: the RADIO's ramp-up and guard
/// before the window ([`crate::aux_radio::rxen_at`]), and 50 µs for `listen` to program the
/// RADIO (a few hundred register writes at 64 MHz take a few µs).
pub const SCAN_LEAD_US: u32 = RAMP_UP_US + RX_GUARD_US + 50;

/// Most listens armed (or refused, or completed inside `listen`) in one go before the capsule
/// gives up with `FAIL` rather than keep the kernel busy.
pub const MAX_STEPS: usize = 16;

/// This driver's reports in a [`ReportRing`]: `[len_lo, len_hi, …]`, `REPORT_HEADER + len`
/// bytes.
pub struct ExtReport;

impl ReportFormat for ExtReport {
    fn report_len(storage: &[u8], at: usize) -> usize {
        let hi = storage[(at + 1) % storage.len()];
        REPORT_HEADER + usize::from(u16::from_le_bytes([storage[at], hi]))
    }
}

/// The header of `report`'s encoding (`dfu_abi::ext_scan::REPORT_HEADER`'s table).
pub fn report_header(report: &Report<'_>) -> [u8; REPORT_HEADER] {
    let mut h = [0u8; REPORT_HEADER];
    // The follower gathers at most CHAIN_ADV_DATA_MAX (1,650) octets: no more is stored.
    let len = report.adv_data.len().min(abi::MAX_ADV_DATA) as u16;
    h[0..2].copy_from_slice(&len.to_le_bytes());
    h[2] = match report.cut {
        None => abi::cut::WHOLE,
        Some(Cut::Lost) => abi::cut::LOST,
        Some(Cut::NotFollowed) => abi::cut::NOT_FOLLOWED,
        Some(Cut::Overflow) => abi::cut::OVERFLOW,
    };
    if let Some(a) = report.adv_a {
        h[3] |= abi::has::ADV_A;
        h[4..10].copy_from_slice(&a);
    }
    if let Some(adi) = report.adi {
        h[3] |= abi::has::ADI;
        h[10..12].copy_from_slice(&adi.to_bytes());
    } else if let Some(counter) = report.periodic_counter {
        h[3] |= abi::has::PERIODIC_COUNTER;
        h[10..12].copy_from_slice(&counter.to_le_bytes());
    }
    h
}

/// The timed receiver this capsule drives: [`AuxRadio`] on a board. A trait so the capsule's
/// own tests can also run it on receivers the hardware cannot be, e.g. one that completes
/// inside `listen`.
pub trait TimedReceiver {
    fn now_us(&self) -> u32;
    fn is_idle(&self) -> bool;
    fn listen(&self, listen: Listen) -> Result<(), ListenError>;
    fn cancel(&self);
    fn buffer_back(&self, buf: &'static mut [u8; AUX_RX_BUF_LEN]);
}

impl TimedReceiver for AuxRadio<'_> {
    fn now_us(&self) -> u32 {
        AuxRadio::now_us(self)
    }
    fn is_idle(&self) -> bool {
        AuxRadio::is_idle(self)
    }
    fn listen(&self, listen: Listen) -> Result<(), ListenError> {
        AuxRadio::listen(self, listen)
    }
    fn cancel(&self) {
        AuxRadio::cancel(self)
    }
    fn buffer_back(&self, buf: &'static mut [u8; AUX_RX_BUF_LEN]) {
        AuxRadio::buffer_back(self, buf)
    }
}

/// Where batches go, and who hears that following stopped.
pub trait ExtSink: BatchSink<ExtReport> {
    /// The kernel stopped following with `error` (not called for the consumer's own `STOP`).
    fn stopped(&self, error: ErrorCode);
}

/// What the capsule did, beyond the follower's own [`ble_ext::Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtCounters {
    /// Listens refused by the receiver and given to the follower as missed (a start passed,
    /// or an operation the receiver cannot perform).
    pub refused: u32,
    /// Scan windows whose start passed before the RADIO could be switched on: opened again.
    pub scan_late: u32,
    /// Reports dropped because the ring was full (all of them, not reset by a batch).
    pub dropped: u32,
    /// Completions that came inside `listen` (the listen loop went on after it returned).
    pub early_completions: u32,
}

/// The listen outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Armed {
    /// For a scan window (`Op::ScanPrimary`), not a follower's `Op::Listen`.
    scan: bool,
}

/// The radio side: the follower, the receiver, the report ring and batch hand-off. Knows
/// nothing of processes.
pub struct ExtFollow<'a, R: TimedReceiver> {
    radio: &'a R,
    follower: MapCell<Follower<&'static mut [u8]>>,
    queue: BatchQueue<ExtReport>,
    sink: OptionalCell<&'a dyn ExtSink>,
    following: Cell<bool>,
    armed: Cell<Option<Armed>>,
    /// The scan window on a primary channel: (channel, its end).
    scan_window: Cell<Option<(u8, u32)>>,
    /// Inside the listen loop; `again`: a completion came meanwhile, arm what follows it.
    stepping: Cell<bool>,
    again: Cell<bool>,
    /// Inside `start`: a failure is its return value, not an upcall.
    starting: Cell<bool>,
    halted: Cell<Option<ErrorCode>>,
    counters: Cell<ExtCounters>,
}

impl<'a, R: TimedReceiver> ExtFollow<'a, R> {
    /// `adv_data`: where the follower gathers an event's AdvData (it uses at most 1,650
    /// bytes); `ring`: where reports wait for the process.
    pub fn new(
        radio: &'a R,
        adv_data: &'static mut [u8],
        ring: &'static mut ReportRing<ExtReport>,
    ) -> ExtFollow<'a, R> {
        ExtFollow {
            radio,
            follower: MapCell::new(Follower::new(Config::default(), adv_data)),
            queue: BatchQueue::new(ring),
            sink: OptionalCell::empty(),
            following: Cell::new(false),
            armed: Cell::new(None),
            scan_window: Cell::new(None),
            stepping: Cell::new(false),
            again: Cell::new(false),
            starting: Cell::new(false),
            halted: Cell::new(None),
            counters: Cell::new(ExtCounters::default()),
        }
    }

    pub fn set_sink(&self, sink: &'a dyn ExtSink) {
        self.sink.set(sink);
    }

    pub fn is_following(&self) -> bool {
        self.following.get()
    }

    pub fn counters(&self) -> ExtCounters {
        self.counters.get()
    }

    /// The follower's counters (events, anchors, syncs, foreign packets).
    pub fn follower_counters(&self) -> ble_ext::Counters {
        self.follower.map(|f| f.counters()).unwrap_or_default()
    }

    /// Follow the advertiser `filter` names, from the primary channels. Queued reports are
    /// discarded. `BUSY` while a cancelled listen is still ending or the RADIO is taken.
    pub fn start(&self, filter: Filter) -> Result<(), ErrorCode> {
        self.stop();
        if !self.radio.is_idle() {
            return Err(ErrorCode::BUSY);
        }
        self.halted.set(None);
        self.following.set(true);
        self.follower.map(|f| f.follow(filter));
        self.starting.set(true);
        self.arm();
        self.starting.set(false);
        match self.halted.get() {
            Some(e) if !self.following.get() => Err(e),
            _ => Ok(()),
        }
    }

    /// Stop following: the outstanding listen is cancelled (no completion follows), queued
    /// reports are discarded.
    pub fn stop(&self) {
        self.following.set(false);
        self.follower.map(|f| f.stop());
        if self.armed.take().is_some() {
            self.radio.cancel();
        }
        self.scan_window.set(None);
        self.queue.clear();
    }

    /// The consumer is done with its batch: deliver the next one if reports are queued.
    pub fn release(&self) {
        self.queue.release();
        self.deliver();
    }

    /// Stop because the receiver refused what it must not; tell the consumer (unless the
    /// failure is `start`'s answer).
    fn halt(&self, error: ErrorCode) {
        self.stop();
        self.halted.set(Some(error));
        if !self.starting.get() {
            self.sink.map(|s| s.stopped(error));
        }
    }

    fn count(&self, f: impl FnOnce(&mut ExtCounters)) {
        let mut c = self.counters.get();
        f(&mut c);
        self.counters.set(c);
    }

    /// An event ended: into the ring, or dropped and counted.
    fn store(&self, report: &Report<'_>) {
        // The length the header says (the follower gathers no more than that).
        let adv_data = &report.adv_data[..report.adv_data.len().min(abi::MAX_ADV_DATA)];
        if !self
            .queue
            .push(|ring| ring.push_parts(report_header(report), adv_data))
        {
            self.count(|c| c.dropped = c.dropped.saturating_add(1));
        }
    }

    /// The follower's window closed (or could not be listened to).
    fn follower_missed(&self) {
        self.follower.map(|f| {
            if let Some(report) = f.missed() {
                self.store(&report);
            }
        });
    }

    /// The listen for a scan window on `channel`: the rest of the current window, or a new
    /// one. `None` when the current window has no time left: it has ended.
    fn scan_listen(&self, channel: u8) -> Option<Listen> {
        let start = self.radio.now_us().wrapping_add(SCAN_LEAD_US);
        let end = match self.scan_window.get() {
            Some((c, end)) if c == channel => {
                if !is_after(end, start) {
                    self.scan_window.set(None);
                    return None;
                }
                end
            }
            _ => {
                let end = start.wrapping_add(SCAN_WINDOW_US);
                self.scan_window.set(Some((channel, end)));
                end
            }
        };
        Some(Listen {
            start_us: start,
            window_us: end.wrapping_sub(start),
            channel,
            phy: Phy::Le1M,
            access_address: ADV_ACCESS_ADDRESS,
            crc_init: ADV_CRC_INIT,
        })
    }

    /// Arm the listen for what the follower wants next; refusals are misses, completions that
    /// come inside `listen` are followed by the next listen. At most [`MAX_STEPS`] in one go.
    fn arm(&self) {
        if self.stepping.get() {
            // A completion inside `listen`: the loop below arms what follows it.
            self.again.set(true);
            return;
        }
        self.stepping.set(true);
        let mut steps = 0;
        while self.following.get() && self.armed.get().is_none() {
            if steps == MAX_STEPS {
                self.halt(ErrorCode::FAIL);
                break;
            }
            steps += 1;
            self.again.set(false);
            let op = self.follower.map(|f| f.op()).unwrap_or(Op::Idle);
            let (listen, scan) = match op {
                Op::Idle => break,
                Op::ScanPrimary { channel } => match self.scan_listen(channel) {
                    Some(listen) => (listen, true),
                    None => {
                        self.follower_missed();
                        continue;
                    }
                },
                Op::Listen(listen) => {
                    self.scan_window.set(None);
                    (listen, false)
                }
            };
            // The state first: a completion, however early, finds the listen.
            self.armed.set(Some(Armed { scan }));
            match self.radio.listen(listen) {
                Ok(()) => {
                    if self.again.get() {
                        self.count(|c| c.early_completions += 1);
                    }
                }
                Err(e) => {
                    self.armed.set(None);
                    match e {
                        ListenError::StartPassed { .. } if scan => {
                            self.count(|c| c.scan_late += 1);
                            self.scan_window.set(None);
                        }
                        ListenError::StartPassed { .. }
                        | ListenError::Channel(_)
                        | ListenError::CrcInit(_)
                        | ListenError::WindowTooLong { .. } => {
                            self.count(|c| c.refused += 1);
                            self.follower_missed();
                        }
                        ListenError::RadioInUse => {
                            self.halt(ErrorCode::BUSY);
                            break;
                        }
                        ListenError::Busy | ListenError::BufferOut => {
                            self.halt(ErrorCode::FAIL);
                            break;
                        }
                    }
                }
            }
        }
        self.stepping.set(false);
    }

    /// Hand queued reports to the consumer if it is ready for a batch; stop if it is gone.
    fn deliver(&self) {
        if !self.following.get() {
            return;
        }
        if self.queue.deliver(self.sink.get()) == Delivery::ConsumerGone {
            self.stop();
        }
    }
}

impl<R: TimedReceiver> AuxClient for ExtFollow<'_, R> {
    fn received(
        &self,
        listen: &Listen,
        address_us: u32,
        buf: &'static mut [u8; AUX_RX_BUF_LEN],
        len: usize,
    ) {
        let armed = self.armed.take();
        if self.following.get() && armed.is_some() {
            let pdu = &buf[..len.min(AUX_RX_BUF_LEN)];
            self.follower.map(|f| {
                if let Some(report) = f.received(address_us, listen.channel, listen.phy, pdu) {
                    self.store(&report);
                }
            });
        }
        self.radio.buffer_back(buf);
        self.arm();
        self.deliver();
    }

    fn missed(&self, _listen: &Listen, why: Missed) {
        let Some(armed) = self.armed.take() else {
            return;
        };
        if !self.following.get() {
            return;
        }
        match (armed.scan, why) {
            // Not the window's end: listen to the rest of it.
            (true, Missed::CrcError) => {}
            (true, Missed::NothingInWindow) => {
                self.scan_window.set(None);
                self.follower_missed();
                // A quiet room brings no report to notice a dead consumer by: check at every
                // scan window, so the RADIO is not kept for nobody.
                if !self.sink.map_or(true, |sink| sink.present()) {
                    self.stop();
                    return;
                }
            }
            (false, _) => self.follower_missed(),
        }
        self.arm();
        self.deliver();
    }
}

/// Per-process state.
#[derive(Default)]
pub struct App;

/// The grant type of [`ExtScan`].
pub type ExtGrant =
    Grant<App, UpcallCount<{ upcall::COUNT }>, AllowRoCount<0>, AllowRwCount<{ rw_allow::COUNT }>>;

/// The syscall driver over an [`ExtFollow`]. See the module docs.
pub struct ExtScan<'a, R: TimedReceiver> {
    follow: &'a ExtFollow<'a, R>,
    apps: ExtGrant,
    owner: OptionalCell<ProcessId>,
    dfu_short_id: NonZeroU32,
}

impl<'a, R: TimedReceiver> ExtScan<'a, R> {
    /// `dfu_short_id`: the DFU app's `ShortId` (the board's, as the syscall filter has it).
    pub fn new(
        follow: &'a ExtFollow<'a, R>,
        apps: ExtGrant,
        dfu_short_id: NonZeroU32,
    ) -> ExtScan<'a, R> {
        ExtScan {
            follow,
            apps,
            owner: OptionalCell::empty(),
            dfu_short_id,
        }
    }
}

impl<R: TimedReceiver> BatchSink<ExtReport> for ExtScan<'_, R> {
    fn deliver(&self, ring: &mut ReportRing<ExtReport>, dropped: usize) -> Delivery {
        deliver_batch(
            &self.apps,
            &self.owner,
            ring,
            dropped,
            (rw_allow::BATCH, upcall::BATCH),
        )
    }

    fn present(&self) -> bool {
        owner_present(&self.apps, &self.owner)
    }
}

impl<R: TimedReceiver> ExtSink for ExtScan<'_, R> {
    fn stopped(&self, error: ErrorCode) {
        if let Some(owner) = self.owner.take() {
            let _ = self.apps.enter(owner, |_, kernel_data| {
                kernel_data.schedule_upcall(upcall::STOPPED, (usize::from(error), 0, 0))
            });
        }
    }
}

impl<R: TimedReceiver> SyscallDriver for ExtScan<'_, R> {
    fn command(
        &self,
        command_num: usize,
        arg1: usize,
        arg2: usize,
        processid: ProcessId,
    ) -> CommandReturn {
        if command_num == command::EXISTS {
            return CommandReturn::success();
        }
        if !identity::is_dfu(self.dfu_short_id, processid.short_app_id()) {
            return CommandReturn::failure(ErrorCode::NODEVICE);
        }
        let owned = self.owner.get() == Some(processid);
        match command_num {
            command::FOLLOW => {
                let Some((adv_a, sid)) = abi::filter_from_args(arg1 as u32, arg2 as u32) else {
                    return CommandReturn::failure(ErrorCode::INVAL);
                };
                if let Some(owner) = self.owner.get() {
                    // A previous owner that no longer exists gives the follower up.
                    if !owned && self.apps.enter(owner, |_, _| ()).is_ok() {
                        return CommandReturn::failure(ErrorCode::BUSY);
                    }
                }
                self.owner.set(processid);
                match self.follow.start(Filter { adv_a, sid }) {
                    Ok(()) => CommandReturn::success(),
                    Err(e) => {
                        self.owner.clear();
                        CommandReturn::failure(e)
                    }
                }
            }
            command::STOP if owned => {
                self.owner.clear();
                self.follow.stop();
                CommandReturn::success()
            }
            command::RELEASE if owned => {
                self.follow.release();
                CommandReturn::success()
            }
            command::STOP | command::RELEASE => CommandReturn::failure(ErrorCode::RESERVE),
            _ => CommandReturn::failure(ErrorCode::NOSUPPORT),
        }
    }

    fn allocate_grant(&self, processid: ProcessId) -> Result<(), kernel::process::Error> {
        self.apps.enter(processid, |_, _| {})
    }
}
