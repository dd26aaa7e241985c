//! The simulated kernel of a transfer over the chained bearers: [`SimKernel`]'s staged-update
//! driver and alarm, with the bulk-scan and ext_scan drivers over [`ChainRadio`], so the DFU
//! app's own loop (`dfu_app::run_with_bearers`) receives there as it does on the board.
//!
//! The drivers keep the capsules' contracts (`capsules/src/bulk_scan.rs`,
//! `capsules/src/ext_scan.rs`): batches of whole reports in `dfu_abi`'s formats, released by
//! the app; ext_scan's `FOLLOW` refused (`BUSY`) while the bulk scanner holds the RADIO and
//! restarting from the primary channels with its queue discarded; `STOP` dropping the sync and
//! the queue; `ADVERTISE` only for the bulk scanner's owner. Waits take no host time: they
//! move the board's clock to the next thing on air or the deadline.
use adv_transfer::bearer::Bearer;
use adv_transfer::{Receiver, RxCounters};
use dfu_abi::{error, ext_scan, scan};
use dfu_app::{Batch, ExtEvent, Kernel, OpError, CHAINED_CHUNK_MAX};

use crate::kernel::{Record, SimKernel};
use crate::radio::ChainRadio;

/// Stop a run that never converges (in the sender's advertising events).
const MAX_EVENTS: u64 = 5_000_000;

/// What the app did through the drivers: only `dfu_app`'s loop makes these calls.
#[derive(Clone, Debug, Default)]
pub struct AppTrace {
    /// Ext-scan `FOLLOW` and `STOP` commands, statuses `ADVERTISE`d.
    pub follows: u64,
    pub ext_stops: u64,
    pub statuses: u64,
    /// Ext-scan batches handed to the app, and times it showed its receiver.
    pub ext_batches: u64,
    pub observed: u64,
    /// The receiver's counters and bearer as last shown.
    pub rx: RxCounters,
    pub bearer: Option<Bearer>,
    /// When (board µs) the sender first sent on a bearer the receiver picked.
    pub picked_us: Option<u64>,
    /// The run did not converge.
    pub gave_up: bool,
}

/// One boot's kernel for a bearer transfer.
pub struct ExtKernel<'k, 'r> {
    inner: SimKernel<'k, 'k>,
    radio: &'k mut ChainRadio<'r>,
    /// Whether the kernel has the ext_scan driver.
    ext_scan: bool,
    flash: Option<adv_transfer::FlashTiming>,
    halted: bool,
    pub trace: AppTrace,
}

impl<'k, 'r> ExtKernel<'k, 'r> {
    /// `inner` without a legacy radio: its staged-update driver and alarm are used.
    /// `flash`: the staging flash's timing the kernel gives the app, if any.
    pub fn new(
        inner: SimKernel<'k, 'k>,
        radio: &'k mut ChainRadio<'r>,
        ext_scan: bool,
        flash: Option<adv_transfer::FlashTiming>,
    ) -> Self {
        ExtKernel {
            inner,
            radio,
            ext_scan,
            flash,
            halted: false,
            trace: AppTrace::default(),
        }
    }

    /// What the app did: the staged-update record and the drivers' trace.
    pub fn finish(mut self) -> (Record, AppTrace) {
        (std::mem::take(&mut self.inner.record), self.trace)
    }

    fn now_us(&mut self) -> u64 {
        self.inner.board().clock.now_us()
    }

    fn advance_to(&mut self, us: u64) {
        let clock = &mut self.inner.board().clock;
        if clock.now_us() < us {
            clock.advance_to(us);
        }
    }

    /// The run is over once the sender heard the image complete or refused, or it never ends.
    fn check_done(&mut self) {
        let sender = &self.radio.sender;
        if self.trace.picked_us.is_none() && sender.bearer().is_some() {
            self.trace.picked_us = Some(self.now_us());
        }
        let sender = &self.radio.sender;
        if sender.is_over() {
            self.halted = true;
        }
        let s = &self.radio.stats;
        if s.legacy_events + s.chained_events > MAX_EVENTS {
            self.trace.gave_up = true;
            self.halted = true;
        }
    }

    /// Wait at most `timeout_ms` for `take` to hand out a batch, the sender advertising and
    /// the board hearing meanwhile.
    fn wait(
        &mut self,
        timeout_ms: u32,
        buffer: &mut [u8],
        take: fn(&mut ChainRadio<'r>, &mut [u8]) -> Option<Batch>,
    ) -> Option<Batch> {
        let now = self.now_us();
        let deadline = now + timeout_ms as u64 * 1000;
        self.radio.catch_up(now);
        let got = loop {
            if let Some(batch) = take(self.radio, buffer) {
                break Some(batch);
            }
            self.check_done();
            if self.halted {
                break None;
            }
            match self.radio.next_event_at() {
                Some(t) if t <= deadline => {
                    let t = t.max(self.now_us() + 1);
                    self.advance_to(t);
                    self.radio.catch_up(t);
                }
                _ => {
                    self.advance_to(deadline);
                    self.radio.catch_up(deadline);
                    break take(self.radio, buffer);
                }
            }
        };
        self.check_done();
        got
    }
}

impl Kernel for ExtKernel<'_, '_> {
    fn exists(&mut self, driver: u32) -> bool {
        (driver == ext_scan::DRIVER_NUM && self.ext_scan) || self.inner.exists(driver)
    }

    fn update_status(&mut self) -> Result<(u32, u32, u32), u32> {
        self.inner.update_status()
    }

    fn update_tag(&mut self, tag: &mut [u8; dfu_abi::update::TAG_LEN]) -> Result<(), u32> {
        self.inner.update_tag(tag)
    }

    fn update_op(
        &mut self,
        command: u32,
        arg1: u32,
        arg2: u32,
        data: &[u8],
        out: &mut [u8],
        timeout_ms: u32,
    ) -> Result<u32, OpError> {
        self.inner
            .update_op(command, arg1, arg2, data, out, timeout_ms)
    }

    fn reboot(&mut self) -> Result<(), u32> {
        self.inner.reboot()
    }

    fn scan_wait(
        &mut self,
        command: u32,
        buffer: &mut [u8],
        timeout_ms: u32,
    ) -> Result<Option<Batch>, u32> {
        let now = self.now_us();
        match command {
            scan::command::START if self.radio.is_scanning() => return Err(error::ALREADY),
            // The RADIO is ext_scan's while it follows.
            scan::command::START if self.radio.is_following() => return Err(error::BUSY),
            scan::command::START => self.radio.start_scan(now),
            scan::command::RELEASE if !self.radio.is_scanning() => return Err(error::RESERVE),
            scan::command::RELEASE => {}
            _ => return Err(error::NOSUPPORT),
        }
        Ok(self.wait(timeout_ms, buffer, ChainRadio::take_batch))
    }

    fn scan_stop(&mut self) -> Result<(), u32> {
        let now = self.now_us();
        self.radio.stop_scan(now);
        Ok(())
    }

    fn advertise(&mut self, adv_data: &[u8]) -> Result<(), u32> {
        if adv_data.len() > scan::MAX_ADV_DATA {
            return Err(error::SIZE);
        }
        if !self.radio.is_scanning() {
            // ADVERTISE is the bulk scanner owner's.
            return Err(error::RESERVE);
        }
        let now = self.now_us();
        self.trace.statuses += 1;
        self.radio.advertise(now, adv_data);
        self.check_done();
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
        if !self.ext_scan {
            return Err(error::NODEVICE);
        }
        let now = self.now_us();
        match command {
            ext_scan::command::FOLLOW => {
                let Some((Some(adv_a), _)) = ext_scan::filter_from_args(arg1, arg2) else {
                    // The model follows one advertiser by address, as the app asks.
                    return Err(error::INVAL);
                };
                if self.radio.is_scanning() {
                    return Err(error::BUSY);
                }
                self.trace.follows += 1;
                self.radio.follow(now, adv_a);
            }
            ext_scan::command::RELEASE if !self.radio.is_following() => return Err(error::RESERVE),
            ext_scan::command::RELEASE => {}
            _ => return Err(error::NOSUPPORT),
        }
        let got = self.wait(timeout_ms, buffer, ChainRadio::take_ext_batch);
        self.trace.ext_batches += u64::from(got.is_some());
        Ok(got.map(ExtEvent::Batch))
    }

    fn ext_stop(&mut self) -> Result<(), u32> {
        if !self.ext_scan {
            return Err(error::NODEVICE);
        }
        let now = self.now_us();
        self.trace.ext_stops += 1;
        self.radio.stop_follow(now);
        Ok(())
    }

    fn flash_timing(&mut self) -> Option<adv_transfer::FlashTiming> {
        self.flash
    }

    fn ticks(&mut self) -> u32 {
        self.inner.ticks()
    }

    fn ticks_per_second(&mut self) -> u32 {
        self.inner.ticks_per_second()
    }

    fn sleep(&mut self, ms: u32) {
        let until = self.now_us() + ms as u64 * 1000;
        self.advance_to(until);
        self.radio.catch_up(until);
        self.check_done();
    }

    fn log(&mut self, line: std::fmt::Arguments<'_>) {
        self.inner.log(line);
    }

    fn halted(&mut self) -> bool {
        self.halted || self.inner.halted()
    }

    fn observe_chained(&mut self, receiver: &Receiver<'_, CHAINED_CHUNK_MAX>) {
        self.trace.observed += 1;
        self.trace.rx = receiver.counters();
        self.trace.bearer = receiver.bearer();
    }
}
