//! The DFU app's binding to Tock: [`TockKernel`] implements `dfu_app::Kernel` with libtock-rs
//! syscalls (allow, subscribe, command, yield) against the kernel's staged-update (0xA0000),
//! bulk-scan (0xA0001), app-update (0xA0002, `INSTALL` of an app session's staged TBF) and
//! ext_scan (0xA0003, following the sender's extended or periodic advertising, when the kernel
//! has it) drivers and Tock's alarm; the logic is `dfu-app`'s [`run_with_bearers`]. The driver
//! interfaces are documented in the capsules (`capsules/src/staged_update.rs`,
//! `capsules/src/bulk_scan.rs`, `capsules/src/ext_scan.rs`); their numbers are `dfu-abi`'s.
//!
//! Each split-phase operation shares its buffers, subscribes to the driver's upcall and to the
//! alarm, issues the command and yields until the upcall or the alarm's deadline, all inside one
//! `share::scope`: leaving the scope unshares the buffers and unsubscribes, so a completion that
//! arrives after its deadline finds no subscriber and is dropped.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::cell::Cell;
use core::fmt::{self, Write};
use core::marker::PhantomData;

use dfu_abi::{app, ext_scan, scan, update};
use dfu_app::{Batch, ExtEvent, OpError};
use libtock_platform::allow_ro::AllowRo;
use libtock_platform::allow_rw::AllowRw;
use libtock_platform::share;
use libtock_platform::subscribe::Subscribe;
use libtock_platform::{DefaultConfig, ErrorCode, Syscalls};

pub use dfu_app::{run, run_with_bearers, Exit, BATCH_LEN, BITMAP_LEN, EXT_BATCH_LEN};

/// Tock's alarm driver (`capsules/core/src/alarm.rs`): its ticks are left-justified to 32 bits,
/// so they wrap at 2^32 whatever the hardware counter's width.
mod alarm {
    pub const DRIVER_NUM: u32 = 0x0;
    pub const FREQUENCY: u32 = 1;
    pub const TIME: u32 = 2;
    pub const STOP: u32 = 3;
    pub const SET_RELATIVE: u32 = 5;
    pub const UPCALL: u32 = 0;
}

const UPDATE: u32 = update::DRIVER_NUM;
const SCAN: u32 = scan::DRIVER_NUM;
const UPDATE_DATA: u32 = update::ro_allow::DATA;
const UPDATE_READ: u32 = update::rw_allow::READ;
const UPDATE_DONE: u32 = update::upcall::DONE;
const SCAN_ADV: u32 = scan::ro_allow::ADV_DATA;
const SCAN_BUFFER: u32 = scan::rw_allow::BATCH;
const SCAN_BATCH: u32 = scan::upcall::BATCH;
const ALARM: u32 = alarm::DRIVER_NUM;
const APP: u32 = app::DRIVER_NUM;
const APP_DONE: u32 = app::upcall::DONE;
const EXT: u32 = ext_scan::DRIVER_NUM;
const EXT_BUFFER: u32 = ext_scan::rw_allow::BATCH;
const EXT_BATCH: u32 = ext_scan::upcall::BATCH;
const EXT_STOPPED: u32 = ext_scan::upcall::STOPPED;
const ALARM_UPCALL: u32 = alarm::UPCALL;

/// `dfu_app::Kernel` over libtock-rs syscalls `S`, logging to `console`.
pub struct TockKernel<'a, S: Syscalls, W: Write> {
    console: W,
    /// The host tests' way to end a run (`dfu_app::Kernel::halted`); `&|| false` on a device.
    halt: &'a dyn Fn() -> bool,
    syscalls: PhantomData<S>,
}

impl<'a, S: Syscalls, W: Write> TockKernel<'a, S, W> {
    pub fn new(console: W, halt: &'a dyn Fn() -> bool) -> Self {
        TockKernel {
            console,
            halt,
            syscalls: PhantomData,
        }
    }

    pub fn console(&self) -> &W {
        &self.console
    }
}

fn code(e: ErrorCode) -> u32 {
    e as u32
}

/// Alarm ticks for `ms` at `hz`, rounded up, at most the counter's range.
fn ms_to_ticks(ms: u32, hz: u32) -> u32 {
    (ms as u64 * hz as u64).div_ceil(1000).min(u32::MAX as u64) as u32
}

/// Yield until `done` returns a value or `timeout_ms` pass (the alarm's upcall lands in
/// `fired`). Call inside the scope that subscribed both.
fn wait_for<S: Syscalls, T>(
    done: impl Fn() -> Option<T>,
    fired: &Cell<Option<(u32, u32)>>,
    timeout_ms: u32,
) -> Option<T> {
    let hz = S::command(ALARM, alarm::FREQUENCY, 0, 0)
        .to_result::<u32, ErrorCode>()
        .unwrap_or(0);
    let armed = hz > 0
        && S::command(ALARM, alarm::SET_RELATIVE, ms_to_ticks(timeout_ms, hz), 0)
            .to_result::<u32, ErrorCode>()
            .is_ok();
    if !armed {
        // Without a deadline a lost upcall would hang the app: count it as timed out.
        return done();
    }
    loop {
        S::yield_wait();
        if let Some(value) = done() {
            let _ = S::command(ALARM, alarm::STOP, 0, 0);
            return Some(value);
        }
        if fired.get().is_some() {
            return None;
        }
    }
}

impl<S: Syscalls, W: Write> dfu_app::Kernel for TockKernel<'_, S, W> {
    fn exists(&mut self, driver: u32) -> bool {
        S::command(driver, 0, 0, 0).is_success()
    }

    fn update_status(&mut self) -> Result<(u32, u32, u32), u32> {
        S::command(UPDATE, update::command::STATUS, 0, 0)
            .to_result::<(u32, u32, u32), ErrorCode>()
            .map_err(code)
    }

    fn update_tag(&mut self, tag: &mut [u8; update::TAG_LEN]) -> Result<(), u32> {
        share::scope::<(AllowRw<_, UPDATE, UPDATE_READ>,), _, _>(|handle| {
            let (allow,) = handle.split();
            S::allow_rw::<DefaultConfig, UPDATE, UPDATE_READ>(allow, tag)?;
            S::command(UPDATE, update::command::TAG, 0, 0).to_result::<(), ErrorCode>()
        })
        .map_err(code)
    }

    /// The kernel's answer (`RUNNING`), computed by the kernel; `None` when it cannot tell.
    /// The key this app was built with (`build.rs`: the bootloader's).
    fn update_key(&mut self) -> Option<[u8; 64]> {
        Some(*include_bytes!(concat!(env!("OUT_DIR"), "/update-key.bin")))
    }

    fn running_image(&mut self) -> Option<[u8; update::IMAGE_ID_LEN]> {
        let mut id = [0u8; update::IMAGE_ID_LEN];
        share::scope::<(AllowRw<_, UPDATE, UPDATE_READ>,), _, _>(|handle| {
            let (allow,) = handle.split();
            S::allow_rw::<DefaultConfig, UPDATE, UPDATE_READ>(allow, &mut id)?;
            S::command(UPDATE, update::command::RUNNING, 0, 0).to_result::<(), ErrorCode>()
        })
        .ok()?;
        Some(id)
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
        let done: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
        let fired: Cell<Option<(u32, u32)>> = Cell::new(None);
        share::scope::<
            (
                AllowRo<_, UPDATE, UPDATE_DATA>,
                AllowRw<_, UPDATE, UPDATE_READ>,
                Subscribe<_, UPDATE, UPDATE_DONE>,
                Subscribe<_, ALARM, ALARM_UPCALL>,
            ),
            _,
            _,
        >(|handle| {
            let (allow_ro, allow_rw, subscribe, alarm) = handle.split();
            let refused = |e: ErrorCode| OpError::Refused(code(e));
            S::allow_ro::<DefaultConfig, UPDATE, UPDATE_DATA>(allow_ro, data).map_err(refused)?;
            S::allow_rw::<DefaultConfig, UPDATE, UPDATE_READ>(allow_rw, out).map_err(refused)?;
            S::subscribe::<_, _, DefaultConfig, UPDATE, UPDATE_DONE>(subscribe, &done)
                .map_err(refused)?;
            S::subscribe::<_, _, DefaultConfig, ALARM, ALARM_UPCALL>(alarm, &fired)
                .map_err(refused)?;
            S::command(UPDATE, command, arg1, arg2)
                .to_result::<(), ErrorCode>()
                .map_err(refused)?;
            match wait_for::<S, _>(|| done.get(), &fired, timeout_ms) {
                None => Err(OpError::TimedOut),
                Some((_, 0, value)) => Ok(value),
                Some((_, status, detail)) => Err(OpError::Failed {
                    code: status,
                    detail,
                }),
            }
        })
    }

    fn reboot(&mut self) -> Result<(), u32> {
        S::command(UPDATE, update::command::REBOOT, 0, 0)
            .to_result::<(), ErrorCode>()
            .map_err(code)
    }

    fn scan_wait(
        &mut self,
        command: u32,
        buffer: &mut [u8],
        timeout_ms: u32,
    ) -> Result<Option<Batch>, u32> {
        let got: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
        let fired: Cell<Option<(u32, u32)>> = Cell::new(None);
        share::scope::<
            (
                AllowRw<_, SCAN, SCAN_BUFFER>,
                Subscribe<_, SCAN, SCAN_BATCH>,
                Subscribe<_, ALARM, ALARM_UPCALL>,
            ),
            _,
            _,
        >(|handle| {
            let (allow, subscribe, alarm) = handle.split();
            S::allow_rw::<DefaultConfig, SCAN, SCAN_BUFFER>(allow, buffer)?;
            S::subscribe::<_, _, DefaultConfig, SCAN, SCAN_BATCH>(subscribe, &got)?;
            S::subscribe::<_, _, DefaultConfig, ALARM, ALARM_UPCALL>(alarm, &fired)?;
            S::command(SCAN, command, 0, 0).to_result::<(), ErrorCode>()?;
            Ok(wait_for::<S, _>(|| got.get(), &fired, timeout_ms).map(
                |(reports, bytes, dropped)| Batch {
                    reports,
                    bytes,
                    dropped,
                },
            ))
        })
        .map_err(code)
    }

    fn scan_stop(&mut self) -> Result<(), u32> {
        S::command(SCAN, scan::command::STOP, 0, 0)
            .to_result::<(), ErrorCode>()
            .map_err(code)
    }

    fn advertise(&mut self, adv_data: &[u8]) -> Result<(), u32> {
        share::scope::<(AllowRo<_, SCAN, SCAN_ADV>,), _, _>(|handle| {
            let (allow,) = handle.split();
            S::allow_ro::<DefaultConfig, SCAN, SCAN_ADV>(allow, adv_data)?;
            S::command(SCAN, scan::command::ADVERTISE, 0, 0).to_result::<(), ErrorCode>()
        })
        .map_err(code)
    }

    /// `FOLLOW` or `RELEASE` on the ext_scan driver with the batch buffer shared, then the
    /// first of upcall `BATCH` `(reports, bytes, dropped)` and `STOPPED` `(error, 0, 0)`.
    fn ext_wait(
        &mut self,
        command: u32,
        arg1: u32,
        arg2: u32,
        buffer: &mut [u8],
        timeout_ms: u32,
    ) -> Result<Option<ExtEvent>, u32> {
        let batch: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
        let stopped: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
        let fired: Cell<Option<(u32, u32)>> = Cell::new(None);
        share::scope::<
            (
                AllowRw<_, EXT, EXT_BUFFER>,
                Subscribe<_, EXT, EXT_BATCH>,
                Subscribe<_, EXT, EXT_STOPPED>,
                Subscribe<_, ALARM, ALARM_UPCALL>,
            ),
            _,
            _,
        >(|handle| {
            let (allow, on_batch, on_stopped, alarm) = handle.split();
            S::allow_rw::<DefaultConfig, EXT, EXT_BUFFER>(allow, buffer)?;
            S::subscribe::<_, _, DefaultConfig, EXT, EXT_BATCH>(on_batch, &batch)?;
            S::subscribe::<_, _, DefaultConfig, EXT, EXT_STOPPED>(on_stopped, &stopped)?;
            S::subscribe::<_, _, DefaultConfig, ALARM, ALARM_UPCALL>(alarm, &fired)?;
            S::command(EXT, command, arg1, arg2).to_result::<(), ErrorCode>()?;
            // Either upcall ends the wait. A stop wins over a batch that came with it: following
            // must start again (`FOLLOW`), and the stop discarded what was queued anyway.
            let either = || match (stopped.get(), batch.get()) {
                (Some((error, _, _)), _) => Some(ExtEvent::Stopped(error)),
                (None, Some((reports, bytes, dropped))) => Some(ExtEvent::Batch(Batch {
                    reports,
                    bytes,
                    dropped,
                })),
                (None, None) => None,
            };
            Ok(wait_for::<S, _>(either, &fired, timeout_ms))
        })
        .map_err(code)
    }

    fn ext_stop(&mut self) -> Result<(), u32> {
        S::command(EXT, ext_scan::command::STOP, 0, 0)
            .to_result::<(), ErrorCode>()
            .map_err(code)
    }

    fn ticks(&mut self) -> u32 {
        S::command(ALARM, alarm::TIME, 0, 0)
            .to_result::<u32, ErrorCode>()
            .unwrap_or(0)
    }

    fn ticks_per_second(&mut self) -> u32 {
        S::command(ALARM, alarm::FREQUENCY, 0, 0)
            .to_result::<u32, ErrorCode>()
            .unwrap_or(0)
    }

    fn sleep(&mut self, ms: u32) {
        let never: Cell<Option<()>> = Cell::new(None);
        let fired: Cell<Option<(u32, u32)>> = Cell::new(None);
        let _ = share::scope::<(Subscribe<_, ALARM, ALARM_UPCALL>,), _, _>(|handle| {
            let (alarm,) = handle.split();
            S::subscribe::<_, _, DefaultConfig, ALARM, ALARM_UPCALL>(alarm, &fired)?;
            wait_for::<S, _>(|| never.get(), &fired, ms);
            Ok::<(), ErrorCode>(())
        });
    }

    fn log(&mut self, line: fmt::Arguments<'_>) {
        let _ = self.console.write_fmt(line);
        let _ = self.console.write_char('\n');
    }

    fn halted(&mut self) -> bool {
        (self.halt)()
    }

    /// `INSTALL` on the app-update driver: no buffer, one upcall `(INSTALL, status, value)`:
    /// status 0 and the installed version, or `FAIL` and the refusal's detail.
    fn app_install(&mut self, len: u32, timeout_ms: u32) -> Result<u32, OpError> {
        let done: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
        let fired: Cell<Option<(u32, u32)>> = Cell::new(None);
        share::scope::<
            (
                Subscribe<_, APP, APP_DONE>,
                Subscribe<_, ALARM, ALARM_UPCALL>,
            ),
            _,
            _,
        >(|handle| {
            let (subscribe, alarm) = handle.split();
            let refused = |e: ErrorCode| OpError::Refused(code(e));
            S::subscribe::<_, _, DefaultConfig, APP, APP_DONE>(subscribe, &done)
                .map_err(refused)?;
            S::subscribe::<_, _, DefaultConfig, ALARM, ALARM_UPCALL>(alarm, &fired)
                .map_err(refused)?;
            S::command(APP, app::command::INSTALL, len, 0)
                .to_result::<(), ErrorCode>()
                .map_err(refused)?;
            match wait_for::<S, _>(|| done.get(), &fired, timeout_ms) {
                None => Err(OpError::TimedOut),
                Some((_, 0, version)) => Ok(version),
                Some((_, status, detail)) => Err(OpError::Failed {
                    code: status,
                    detail,
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests;
