//! The DFU app's logic: bulk-scan batches in, the `adv-transfer` receiver in the middle, staging
//! through the kernel's staged-update driver out. Generic over [`Kernel`], what the app needs from
//! the kernel, so the same code runs as the Tock app (`apps/dfu`, over libtock-rs syscalls) and in
//! the simulator (`tools/ota-sim`, over the update-region policy and the hardware models).
//!
//! Life of an update, as this app sees it:
//! 1. At start: wait (at most [`STARTUP_WAIT_MS`]) for the kernel's start-up scan of the update
//!    region, confirm the running kernel (the bootloader boots a new kernel as a trial until a
//!    Confirm record follows its boot request; "nothing to confirm" is normal), then read the
//!    staged-update status and tag to resume an interrupted transfer. A step that fails is
//!    retried with backoff while the app listens.
//! 2. Scan continuously; feed every advertisement's AdvData to the receiver; perform the staging
//!    operations it asks for (begin, erase, write, read back, finalize) through the driver; when
//!    the kernel has no batch waiting and [`STATUS_INTERVAL_MS`] have passed, advertise the
//!    receiver's status so the sender resends what is missing. With the ext_scan driver
//!    ([`run_with_bearers`]) the receiver also offers the extended and periodic bearers; once
//!    its status names a chained pick the app follows the sender through that driver instead
//!    (each event to `Receiver::on_ext_adv`), and leaves it for the bulk scanner to advertise
//!    each status, after [`FOLLOW_SILENCE_MS`] of silence (a look at legacy advertising), and
//!    when the session ends.
//! 3. When finalize succeeds the kernel has written the boot request itself; tell the sender,
//!    then ask the kernel to reboot.
//!
//! Every wait has a deadline (a lost upcall costs a time-out, never a hang), every transient
//! failure is retried with backoff, and time is [`clock::Clock`]'s monotonic milliseconds, built
//! from wrapping tick differences. [`run`] returns only when a driver is missing, the kernel
//! accepted the reboot, or the platform halts the app ([`Kernel::halted`]).
#![no_std]
#![forbid(unsafe_code)]

pub mod clock;
pub mod rebuild;

use core::fmt;

use adv_transfer::bearer::{Bearer, BearerSet, Geometry};
use adv_transfer::receiver::READ_LEN;
use adv_transfer::wire::{self, ADV_DATA_MAX, CHUNK_LEN};
use adv_transfer::{session_address, Receiver, RxState, StageError, StageOp, DEFAULT_COMPANY_ID};
use dfu_abi::{error, ext_scan, scan, update};

use clock::Clock;

/// Largest image the app accepts: the kernel slot (224 KiB) plus room for the image header and
/// TLVs, rounded to whole 4 KiB blocks.
pub const MAX_IMAGE_LEN: u32 = 232 * 1024;

/// Bitmap bytes for [`MAX_IMAGE_LEN`].
pub const BITMAP_LEN: usize = Receiver::bitmap_len(MAX_IMAGE_LEN);

/// Scan batch buffer size.
pub const BATCH_LEN: usize = 1024;

/// The ext_scan batch buffer: one whole report of the longest event. The kernel copies whole
/// reports only, so a shorter buffer would never take a full chained event.
pub const EXT_BATCH_LEN: usize = ext_scan::MAX_REPORT;

/// The longest chunk of any chained bearer (`Geometry::for_bearer`): the RAM queue of a
/// receiver that follows them holds chunks this long.
pub const CHAINED_CHUNK_MAX: usize = {
    let mut max = CHUNK_LEN;
    let mut i = 0;
    while i < Bearer::ALL.len() {
        let len = Geometry::for_bearer(Bearer::ALL[i]).chunk_len as usize;
        if len > max {
            max = len;
        }
        i += 1;
    }
    max
};

/// The bearers the app offers when the kernel has the ext_scan driver: what its follower
/// (`ble_ext::Follower` through `aux_radio`) hears, extended and periodic advertising at LE 1M
/// and LE 2M.
pub const EXT_BEARERS: BearerSet = BearerSet::ALL;

/// Following a chained session for this long without one of its PDUs, the app listens on
/// legacy advertising for [`LEGACY_LOOK_MS`] (where the receiver's own rules apply: a new
/// sender's announce replaces a session idle for `SESSION_TIMEOUT_MS`), then follows again.
/// Longer than a few status intervals: the sender takes the pick from a status.
pub const FOLLOW_SILENCE_MS: u64 = 3_000;

/// See [`FOLLOW_SILENCE_MS`]: about 40 legacy advertising events.
pub const LEGACY_LOOK_MS: u64 = 1_000;

/// After a status advertised while following, the app stays on the bulk scanner this long
/// before it follows again: the kernel's ADVERTISE needs the bulk scanner (its owner) and the
/// RADIO for its three PDUs (about 3 ms).
pub const STATUS_LEGACY_MS: u32 = 10;

/// A `FOLLOW` answered `BUSY` (the RADIO still held by the legacy driver, or a stopped listen
/// still ending), or following stopped with `BUSY`, is tried again after this long, up to
/// [`FOLLOW_BUSY_TRIES`] times in a row; then with the backoff of any other refusal.
pub const FOLLOW_BUSY_MS: u32 = 5;
pub const FOLLOW_BUSY_TRIES: u32 = 20;

/// How often, at most, the receiver advertises its status (which chunks it misses).
pub const STATUS_INTERVAL_MS: u64 = 250;

/// Following a chained session, a due status is held while the sender's first pass keeps
/// coming (chunks beyond every index taken so far, `Receiver::frontier`): each status costs the
/// follow (`STOP`, the advertisement, a new sync: an event or two of data), while the sender
/// sends its first pass whatever it hears, so what a status would ask for mid-pass can wait
/// until the pass ends. Resends, below the frontier, keep the usual cadence. The status goes
/// out once the frontier has not moved for this long (over two events at the shortest extended
/// interval, 20 ms plus advDelay)...
pub const CHAINED_QUIET_MS: u64 = 60;

/// ...or once it is this late, so the sender hears from a receiver that keeps receiving.
pub const CHAINED_STATUS_HOLD_MS: u64 = 1_000;

/// How long to wait, at most, for the kernel's start-up scan of the update region (status
/// answers `BUSY` until then); polled every [`STARTUP_POLL_MS`].
pub const STARTUP_WAIT_MS: u64 = 5_000;
pub const STARTUP_POLL_MS: u32 = 20;

/// Deadline for one staging operation's completion. Finalize reads and hashes the whole image;
/// the slowest other operation is a sector erase (240 ms at most).
pub const OP_TIMEOUT_MS: u32 = 10_000;

/// Longest wait for a batch when nothing else is due.
pub const IDLE_WAIT_MS: u32 = 1_000;

/// Backoff of a failed start-up step, scan start or reboot: doubles from the first to the last.
pub const RETRY_FIRST_MS: u32 = 500;
pub const RETRY_MAX_MS: u32 = 60_000;

/// The longest single wait the app asks for; [`clock::Clock`] needs a reading at least once per
/// counter wrap (about 512 s on the nRF52840).
pub const MAX_WAIT_MS: u32 = RETRY_MAX_MS;

/// Pause before the reboot so the last console lines go out.
pub const REBOOT_DELAY_MS: u32 = 100;

/// How an asynchronous staged-update command ended without success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpError {
    /// The command was refused (a Tock error code, [`dfu_abi::error`]): nothing started and no
    /// completion follows.
    Refused(u32),
    /// The operation ran and failed: the completion's error code and the policy's check number
    /// ([`dfu_abi::update::detail`]).
    Failed { code: u32, detail: u32 },
    /// No completion arrived before the deadline.
    TimedOut,
}

impl OpError {
    /// The Tock error code, if the kernel answered at all.
    pub fn code(self) -> Option<u32> {
        match self {
            OpError::Refused(code) | OpError::Failed { code, .. } => Some(code),
            OpError::TimedOut => None,
        }
    }
}

/// One batch announced by the bulk-scan driver's upcall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub reports: u32,
    pub bytes: u32,
    pub dropped: u32,
}

/// What the ext_scan driver's upcalls announced ([`Kernel::ext_wait`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtEvent {
    /// Upcall `BATCH`: reports in the batch buffer.
    Batch(Batch),
    /// Upcall `STOPPED`: the kernel stopped following (a [`dfu_abi::error`] code: `BUSY` the
    /// RADIO was taken, `FAIL` the receiver refused what it must not); queued reports are gone.
    Stopped(u32),
}

/// What the app needs from the kernel: the staged-update driver's commands and their
/// completions, the bulk-scan driver's batches and advertise, the ext_scan driver's batches
/// (optional: the defaults are a kernel without it), a clock, a log sink. Every wait
/// takes a deadline. Error values are Tock error codes ([`dfu_abi::error`]); command, allow and
/// upcall numbers are [`dfu_abi`]'s.
pub trait Kernel {
    /// Whether driver `driver` exists (its command 0 succeeds).
    fn exists(&mut self, driver: u32) -> bool;

    /// Staged-update `STATUS`: `(state, image_len, erased_sectors)`.
    fn update_status(&mut self) -> Result<(u32, u32, u32), u32>;

    /// Staged-update `TAG`: the session tag, through read-write allow `READ`.
    fn update_tag(&mut self, tag: &mut [u8; update::TAG_LEN]) -> Result<(), u32>;

    /// One split-phase staged-update command (`BEGIN` … `CONFIRM`): share `data` as read-only
    /// allow `DATA` and `out` as read-write allow `READ`, subscribe to upcall `DONE`, issue
    /// `command` with `arg1`, `arg2`, and wait for the upcall at most `timeout_ms`. Returns the
    /// upcall's value on success.
    fn update_op(
        &mut self,
        command: u32,
        arg1: u32,
        arg2: u32,
        data: &[u8],
        out: &mut [u8],
        timeout_ms: u32,
    ) -> Result<u32, OpError>;

    /// Staged-update `REBOOT`.
    fn reboot(&mut self) -> Result<(), u32>;

    /// Bulk-scan `command` (`START` or `RELEASE`) with `buffer` shared as the batch buffer, then
    /// wait at most `timeout_ms` for the batch upcall. `Ok(None)`: no batch in time (a batch
    /// already queued by the kernel comes back at once, even with a zero time-out).
    fn scan_wait(
        &mut self,
        command: u32,
        buffer: &mut [u8],
        timeout_ms: u32,
    ) -> Result<Option<Batch>, u32>;

    /// Bulk-scan `STOP`.
    fn scan_stop(&mut self) -> Result<(), u32>;

    /// Bulk-scan `ADVERTISE` of `adv_data` (read-only allow `ADV_DATA`).
    fn advertise(&mut self, adv_data: &[u8]) -> Result<(), u32>;

    /// Ext-scan `command` (`FOLLOW` with `arg1`, `arg2` = `ext_scan::filter_args`, or
    /// `RELEASE`) with `buffer` shared as the batch buffer (read-write allow `BATCH`), then wait
    /// at most `timeout_ms` for upcall `BATCH` or `STOPPED`. `Ok(None)`: neither in time. The
    /// default is a kernel without the driver.
    fn ext_wait(
        &mut self,
        _command: u32,
        _arg1: u32,
        _arg2: u32,
        _buffer: &mut [u8],
        _timeout_ms: u32,
    ) -> Result<Option<ExtEvent>, u32> {
        Err(error::NODEVICE)
    }

    /// Ext-scan `STOP`.
    fn ext_stop(&mut self) -> Result<(), u32> {
        Err(error::NODEVICE)
    }

    /// The free-running tick counter (wraps at 2^32).
    fn ticks(&mut self) -> u32;

    /// The counter's frequency; 0 if the kernel has no alarm.
    fn ticks_per_second(&mut self) -> u32;

    /// Wait `ms` milliseconds.
    fn sleep(&mut self, ms: u32);

    /// One console line (without the newline).
    fn log(&mut self, line: fmt::Arguments<'_>);

    /// The first 16 bytes of the SHA-256 hash TLV of the kernel image the device runs (the
    /// bootloader's journal names it once the image was installed as a trial or confirmed), when
    /// the kernel can tell. The receiver joins a delta session only against this image; `None`
    /// (the default, a kernel that cannot tell) refuses every delta session, so a sender falls
    /// back to the full image.
    fn running_image(&mut self) -> Option<[u8; 16]> {
        None
    }

    /// The update-signing public key (`x ‖ y`, as the bootloader embeds it): a received
    /// compressed image's outer signature is checked against it before the app decodes
    /// anything ([`rebuild`]). `None` (the default): no check here; the bootloader still checks
    /// the decoded image's own signature before it installs.
    fn update_key(&mut self) -> Option<[u8; 64]> {
        None
    }

    /// The staging flash's sector erase and page program times, when the platform knows them:
    /// the receiver then pre-erases only the head start a chained bearer needs and erases the
    /// rest ahead while the data flows (`Receiver::set_flash_timing`). `None` (the default):
    /// a chained session's whole image is erased before its pick.
    fn flash_timing(&mut self) -> Option<adv_transfer::FlashTiming> {
        None
    }

    /// True when the platform stops the app (the simulator after a power cut or once the
    /// transfer it runs is over; host tests). A device never halts.
    fn halted(&mut self) -> bool {
        false
    }

    /// Sees the receiver after every batch (for displays and the simulator's counters).
    fn observe(&mut self, _receiver: &Receiver<'_>) {}

    /// [`Kernel::observe`] for the receiver of [`run_with_bearers`], whose queue holds chained
    /// chunks.
    fn observe_chained(&mut self, _receiver: &Receiver<'_, CHAINED_CHUNK_MAX>) {}

    /// App-update `INSTALL` (`dfu_abi::app`) of the staged TBF of `len` bytes: subscribe to
    /// upcall `DONE`, issue the command and wait for the upcall at most `timeout_ms`. The default
    /// is a kernel without the driver (the app then refuses app sessions: [`run`] offers them
    /// only when [`Kernel::exists`] says the driver is there).
    fn app_install(&mut self, _len: u32, _timeout_ms: u32) -> Result<u32, OpError> {
        Err(OpError::Refused(error::NODEVICE))
    }
}

/// Deadline for `INSTALL`: the credential check hashes the staged TBF and the copy erases and
/// programs its pages through the page journal (about 1 s for 2 KiB in the simulator).
pub const INSTALL_TIMEOUT_MS: u32 = 60_000;

/// The receiver's view of a failed `INSTALL`: a verdict on the TBF (or on the board's room for
/// it) is [`StageError::Rejected`]; a busy driver, a staging read failure or no answer is
/// tried again with the next batch.
pub fn install_error(error: OpError) -> StageError {
    use dfu_abi::app::detail;
    match error {
        OpError::Failed { detail, .. }
            if !matches!(detail, detail::BUSY | detail::STAGING_FLASH | detail::NONE) =>
        {
            StageError::Rejected
        }
        OpError::Refused(code) if code != error::BUSY => StageError::Rejected,
        _ => StageError::Failed,
    }
}

/// Why [`run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The kernel lacks the staged-update or bulk-scan driver, or an alarm (the ext_scan driver
    /// is optional).
    NoDriver,
    /// Finalized, and the kernel accepted the reboot request.
    Rebooting,
    /// [`Kernel::halted`] said so.
    Halted,
}

/// The receiver's view of a failed staging operation.
pub fn stage_error(op_was_finalize: bool, error: OpError) -> StageError {
    use update::detail;
    match error {
        // The driver refuses a write into a sector not erased in this session at once (the
        // command's error carries no detail); the completion names the check.
        OpError::Refused(error::NOACK)
        | OpError::Failed {
            code: error::NOACK,
            detail: detail::NOT_ERASED,
        } => StageError::NotErased,
        OpError::Failed {
            code: error::NOACK,
            detail: detail::NOT_BLANK,
        } => StageError::NotBlank,
        OpError::Failed {
            code: error::FAIL,
            detail,
        } if op_was_finalize
            && (detail::IMAGE_REFUSED.contains(&detail)
                || detail::STREAM_REFUSED.contains(&detail)) =>
        {
            StageError::Rejected
        }
        _ => StageError::Failed,
    }
}

/// What one staging operation produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Performed {
    /// Done; `read` bytes were read into the read buffer.
    Done { read: usize },
    /// Finalize succeeded: the boot request with this sequence number is in flash.
    Finalized { sequence: u32 },
}

/// Perform one receiver staging operation through the staged-update driver (read data lands in
/// `read_buf`).
pub fn perform<K: Kernel>(
    k: &mut K,
    op: StageOp<'_>,
    read_buf: &mut [u8; READ_LEN],
) -> Result<Performed, StageError> {
    use update::command;
    let done = |_| Performed::Done { read: 0 };
    let t = OP_TIMEOUT_MS;
    match op {
        StageOp::Begin { tag, image_len } => k
            .update_op(command::BEGIN, image_len, 0, &tag, &mut [], t)
            .map(done),
        StageOp::Erase { offset } => k
            .update_op(command::ERASE, offset, 0, &[], &mut [], t)
            .map(done),
        StageOp::Write { offset, data } => k
            .update_op(command::WRITE, offset, data.len() as u32, data, &mut [], t)
            .map(done),
        StageOp::Read { offset, len } => {
            let len = (len as usize).min(READ_LEN);
            k.update_op(
                command::READ,
                offset,
                len as u32,
                &[],
                &mut read_buf[..len],
                t,
            )
            .map(|_| Performed::Done { read: len })
        }
        StageOp::Finalize => {
            return k
                .update_op(command::FINALIZE, 0, 0, &[], &mut [], t)
                .map(|sequence| Performed::Finalized { sequence })
                .map_err(|e| stage_error(true, e))
        }
    }
    .map_err(|e| stage_error(false, e))
}

/// Run every staging operation the receiver has ready. Returns the boot request's sequence
/// number once finalize succeeded. An app session's `INSTALL` that failed for a reason worth
/// retrying (the driver busy, a staging read) is tried again only once `install_retry` is due
/// at `now_ms` (doubling delays, as the other retries here), not with every batch.
fn pump<K: Kernel, const N: usize>(
    k: &mut K,
    rx: &mut Receiver<'_, N>,
    read_buf: &mut [u8; READ_LEN],
    install_retry: &mut Backoff,
    now_ms: u64,
) -> Option<u32> {
    let mut finalized = None;
    // An app session (the receiver names its target) ends with the app-update driver's
    // INSTALL instead of the kernel finalize, and without a reboot: the new version runs in
    // trial at once.
    let app_len = rx.target().and(rx.session()).map(|s| s.image_len);
    // A received stream is staged in the kernel's stream area and rebuilt by the app.
    let stream = rx.session().is_some_and(|s| wire::is_stream_tag(&s.tag()));
    while let Some(op) = rx.poll_op() {
        if let (StageOp::Finalize, Some(len)) = (&op, app_len) {
            if !install_retry.due(now_ms) {
                // Not yet: the receiver asks again with a later batch.
                rx.op_done(Err(StageError::Failed));
                break;
            }
            let result = k.app_install(len, INSTALL_TIMEOUT_MS);
            if k.halted() {
                break;
            }
            match result {
                Ok(_) => {
                    install_retry.succeeded();
                    k.log(format_args!("dfu: app installed; it runs in trial"));
                    rx.op_done(Ok(&[]));
                }
                Err(e) => {
                    let verdict = install_error(e);
                    if verdict == StageError::Failed {
                        let delay = install_retry.failed(now_ms);
                        k.log(format_args!(
                            "dfu: app install failed: {e:?}; trying again in {delay} ms"
                        ));
                    } else {
                        k.log(format_args!("dfu: app install failed: {e:?}"));
                    }
                    rx.op_done(Err(verdict));
                    if verdict == StageError::Failed {
                        break;
                    }
                }
            }
            continue;
        }
        let erase = matches!(op, StageOp::Erase { .. });
        let result = if matches!(op, StageOp::Finalize) && stream {
            // A compressed image or delta patch: the app rebuilds the plain image first.
            rebuild::finalize_stream(k).map(|sequence| Performed::Finalized { sequence })
        } else {
            perform(k, op, read_buf)
        };
        if k.halted() {
            break;
        }
        match result {
            Ok(Performed::Done { read }) => {
                rx.op_done(Ok(&read_buf[..read]));
                // While the data flows on a chained bearer, one erase ahead (nothing queued)
                // per turn: the batches that came in during it are taken before the next.
                let flowing = rx.bearer().is_some_and(|b| b.chained()) && !rx.preparing();
                if erase && flowing && rx.queue_free() == adv_transfer::receiver::QUEUE_LEN {
                    break;
                }
            }
            Ok(Performed::Finalized { sequence }) => {
                finalized = Some(sequence);
                rx.op_done(Ok(&[]));
            }
            Err(e) => {
                rx.op_done(Err(e));
                // Transient failures are retried with the next batch, not in a tight loop.
                if e == StageError::Failed {
                    break;
                }
            }
        }
    }
    finalized
}

/// Confirm the running kernel if a boot request is waiting for it. Returns the confirmed
/// sequence number, `None` if there was nothing to confirm.
pub fn confirm_trial_boot<K: Kernel>(k: &mut K) -> Result<Option<u32>, OpError> {
    match k.update_op(update::command::CONFIRM, 0, 0, &[], &mut [], OP_TIMEOUT_MS) {
        Ok(sequence) => Ok(Some(sequence)),
        Err(e) if e.code() == Some(error::RESERVE) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The resume information for a new receiver: the staged session's tag (if any) and whether it
/// was finalized.
pub fn resume_info<K: Kernel>(k: &mut K) -> Result<(Option<[u8; update::TAG_LEN]>, bool), u32> {
    let (state, _, _) = k.update_status()?;
    if state == update::state::IDLE {
        return Ok((None, false));
    }
    let mut tag = [0u8; update::TAG_LEN];
    k.update_tag(&mut tag)?;
    Ok((Some(tag), state == update::state::FINALIZED))
}

/// The AdvData of each report in a batch (`[len, channel, pdu[len]]`...), skipping PDU types
/// that carry no AdvData and malformed reports.
pub fn adv_data_in(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    reports_in(batch).map(|(_, adv_data)| adv_data)
}

/// The advertiser address (AdvA, as sent) and AdvData of each report in a batch, as
/// [`adv_data_in`] walks them.
pub fn reports_in(batch: &[u8]) -> impl Iterator<Item = ([u8; 6], &[u8])> {
    /// PDU header (2 bytes) and AdvA (6 bytes) before the AdvData.
    const ADV_A_END: usize = 8;
    let mut rest = batch;
    core::iter::from_fn(move || loop {
        if rest.len() < scan::REPORT_HEADER {
            return None;
        }
        let len = rest[0] as usize;
        let tail = &rest[scan::REPORT_HEADER..];
        if tail.len() < len {
            rest = &[];
            return None;
        }
        let pdu = &tail[..len];
        rest = &tail[len..];
        // PDU header: type in the low 4 bits; ADV_IND 0, ADV_NONCONN_IND 2, ADV_SCAN_IND 6
        // carry AdvA (6 bytes) then AdvData. The header's length byte bounds the payload.
        if pdu.len() < ADV_A_END {
            continue;
        }
        let pdu_type = pdu[0] & 0x0F;
        let payload_len = (pdu[1] as usize).min(pdu.len() - 2);
        if matches!(pdu_type, 0 | 2 | 6) && payload_len >= 6 {
            let mut adv_a = [0u8; 6];
            adv_a.copy_from_slice(&pdu[2..ADV_A_END]);
            return Some((adv_a, &pdu[ADV_A_END..2 + payload_len]));
        }
    })
}

/// One report of an ext_scan batch (`dfu_abi::ext_scan::REPORT_HEADER`'s table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtReport<'a> {
    /// The advertiser, when the report names it.
    pub adv_a: Option<[u8; 6]>,
    /// How the event's chain ended (`dfu_abi::ext_scan::cut`).
    pub cut: u8,
    /// The event's AdvData (cut short where a chain PDU was lost).
    pub adv_data: &'a [u8],
}

/// The reports of an ext_scan batch, in order. A report whose length runs past the batch, or
/// past [`ext_scan::MAX_ADV_DATA`], ends the walk: the kernel copies whole reports only, so
/// such bytes are not a report.
pub fn ext_reports_in(batch: &[u8]) -> impl Iterator<Item = ExtReport<'_>> {
    let mut rest = batch;
    core::iter::from_fn(move || {
        if rest.len() < ext_scan::REPORT_HEADER {
            return None;
        }
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let tail = &rest[ext_scan::REPORT_HEADER..];
        if len > ext_scan::MAX_ADV_DATA || tail.len() < len {
            rest = &[];
            return None;
        }
        let mut adv_a = None;
        if rest[3] & ext_scan::has::ADV_A != 0 {
            let mut a = [0u8; 6];
            a.copy_from_slice(&rest[4..10]);
            adv_a = Some(a);
        }
        let report = ExtReport {
            adv_a,
            cut: rest[2],
            adv_data: &tail[..len],
        };
        rest = &tail[len..];
        Some(report)
    })
}

/// When a failed step is tried again.
#[derive(Clone, Copy, Debug)]
struct Backoff {
    at_ms: u64,
    delay_ms: u32,
}

impl Backoff {
    const fn new() -> Backoff {
        Backoff {
            at_ms: 0,
            delay_ms: RETRY_FIRST_MS,
        }
    }

    fn due(&self, now: u64) -> bool {
        now >= self.at_ms
    }

    fn remaining(&self, now: u64) -> u32 {
        self.at_ms.saturating_sub(now).min(MAX_WAIT_MS as u64) as u32
    }

    /// Failed at `now`: the next try after the current delay, which then doubles.
    fn failed(&mut self, now: u64) -> u32 {
        let delay = self.delay_ms;
        self.at_ms = now + delay as u64;
        self.delay_ms = (delay * 2).min(RETRY_MAX_MS);
        delay
    }

    fn succeeded(&mut self) {
        *self = Backoff::new();
    }
}

/// Shown-once bookkeeping for the console.
struct Display {
    percent: u32,
    state: RxState,
}

/// The app: see the crate docs. `bitmap` holds [`BITMAP_LEN`] bytes (fewer limit the image
/// size), `batch` is the scan buffer ([`BATCH_LEN`]). Legacy advertising only, whatever the
/// kernel has: [`run_with_bearers`] also follows extended and periodic advertising.
pub fn run<K: Kernel>(k: &mut K, bitmap: &mut [u8], batch: &mut [u8]) -> Exit {
    run_on::<K, CHUNK_LEN>(k, bitmap, batch, &mut [], |k, rx| k.observe(rx))
}

/// [`run`], and when the kernel has the ext_scan driver the receiver also offers
/// [`EXT_BEARERS`]: after a chained pick the app follows the sender through that driver and
/// hands each event to `Receiver::on_ext_adv`; its statuses still go out as legacy
/// advertisements. `ext_batch` is the ext_scan batch buffer ([`EXT_BATCH_LEN`]; shorter, or a
/// kernel without the driver: legacy only, as [`run`] but with a receiver whose queue holds
/// chained chunks).
pub fn run_with_bearers<K: Kernel>(
    k: &mut K,
    bitmap: &mut [u8],
    batch: &mut [u8],
    ext_batch: &mut [u8],
) -> Exit {
    run_on::<K, CHAINED_CHUNK_MAX>(k, bitmap, batch, ext_batch, |k, rx| k.observe_chained(rx))
}

/// Which driver the app listens through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listen {
    /// The bulk scanner (legacy advertising; needed for ADVERTISE).
    Legacy,
    /// The ext_scan driver following this advertiser.
    Follow([u8; 6]),
}

fn run_on<K: Kernel, const N: usize>(
    k: &mut K,
    bitmap: &mut [u8],
    batch: &mut [u8],
    ext_batch: &mut [u8],
    observe: fn(&mut K, &Receiver<'_, N>),
) -> Exit {
    if !k.exists(update::DRIVER_NUM) || !k.exists(scan::DRIVER_NUM) {
        k.log(format_args!(
            "dfu: kernel lacks the staged-update or bulk-scan driver"
        ));
        return Exit::NoDriver;
    }
    let hz = k.ticks_per_second();
    if hz == 0 {
        k.log(format_args!("dfu: kernel has no alarm"));
        return Exit::NoDriver;
    }
    let now_ticks = k.ticks();
    let mut clock = Clock::new(hz, now_ticks);

    // The kernel scans the update region shortly after boot; until then status is BUSY.
    while k.update_status() == Err(error::BUSY)
        && clock.update(k.ticks()) < STARTUP_WAIT_MS
        && !k.halted()
    {
        k.sleep(STARTUP_POLL_MS);
    }

    // The chained bearers, only with room for a whole report and the driver there.
    let ext =
        N > CHUNK_LEN && ext_batch.len() >= ext_scan::MAX_REPORT && k.exists(ext_scan::DRIVER_NUM);
    let bearers = if ext { EXT_BEARERS } else { BearerSet::LEGACY };
    let mut bitmap = Some(bitmap);
    let mut rx: Option<Receiver<'_, N>> = None;
    let mut confirmed = false;
    let mut setup = Backoff::new();
    let mut scanning = false;
    let mut scan_retry = Backoff::new();
    // The advertiser the kernel follows for the app, if it does.
    let mut following: Option<[u8; 6]> = None;
    let mut follow_retry = Backoff::new();
    let mut follow_busy = 0u32;
    // Following: the last time the sender was heard (or following began); until when the
    // app listens on legacy advertising instead (a status, or a look after silence).
    let mut heard_ms = 0u64;
    let mut legacy_until_ms = 0u64;
    // A staged session on a chained bearer, resumed after a reboot: its sender sends only on
    // that bearer (announces included), so it is followed until its announce joins it.
    let mut resume_sender: Option<[u8; 6]> = None;
    let mut reboot_due: Option<Backoff> = None;
    let mut read_buf = [0u8; READ_LEN];
    let mut install_retry = Backoff::new();
    // Erasing the staging slot ahead of the next transfer (`update::PREPARE_TAG`).
    let mut prepare = Prepare::Wanted;
    // Whether the receiver's chained-bearer pick was ready at the last turn.
    let mut pick_told = false;
    let mut next_status_ms = 0u64;
    let mut last_wait_got_batch = false;
    // Following: the receiver's frontier (its first pass so far), and when it last moved.
    let mut frontier_seen = 0u32;
    let mut frontier_at_ms = 0u64;
    // The kernel dropped followed events since the last status (the app is behind): the
    // status is not held, so the follow pauses and what was dropped is asked for.
    let mut behind = false;
    let mut listening = false;
    let mut display = Display {
        percent: u32::MAX,
        state: RxState::Listening,
    };
    loop {
        if k.halted() {
            return Exit::Halted;
        }
        let now = clock.update(k.ticks());

        // Start-up steps that have not succeeded yet: confirm, then resume.
        if (!confirmed || rx.is_none()) && setup.due(now) {
            if !confirmed {
                confirmed = try_confirm(k);
            }
            if rx.is_none() {
                match resume_info(k) {
                    Ok((tag, finalized)) => {
                        // A prepare session (the slot erased ahead) is no transfer to resume.
                        let tag = tag.filter(|t| *t != update::PREPARE_TAG);
                        if tag.is_some() {
                            k.log(format_args!(
                                "dfu: resuming staged session (finalized: {finalized})"
                            ));
                        }
                        resume_sender = tag.filter(|_| !finalized).and_then(|t| {
                            let chained = wire::tag_bearer(&t)
                                .is_some_and(|b| b.chained() && bearers.contains(b));
                            chained.then(|| session_address(wire::tag_session(&t)))
                        });
                        if let Some(bitmap) = bitmap.take() {
                            let mut r = Receiver::<'_, N>::with_bearers(
                                DEFAULT_COMPANY_ID,
                                MAX_IMAGE_LEN,
                                bitmap,
                                tag,
                                finalized,
                                bearers,
                            );
                            r.set_running_image(k.running_image());
                            r.set_flash_timing(k.flash_timing());
                            r.accept_apps(k.exists(dfu_abi::app::DRIVER_NUM));
                            r.tick(now);
                            rx = Some(r);
                        }
                    }
                    Err(code) => k.log(format_args!("dfu: status unavailable (error {code})")),
                }
            }
            if confirmed && rx.is_some() {
                setup.succeeded();
            } else {
                let delay = setup.failed(now);
                k.log(format_args!(
                    "dfu: start-up incomplete; retrying in {delay} ms"
                ));
            }
            if k.halted() {
                return Exit::Halted;
            }
        }
        if !listening {
            listening = true;
            k.log(format_args!("dfu: listening"));
        }
        if let Some(retry) = reboot_due.as_mut() {
            if retry.due(now) {
                match k.reboot() {
                    Ok(()) => return Exit::Rebooting,
                    Err(code) => {
                        let delay = retry.failed(now);
                        k.log(format_args!(
                            "dfu: reboot refused (error {code}); retrying in {delay} ms"
                        ));
                    }
                }
            }
        }

        // Follow a session whose chained pick is named (its pre-erase done) while it receives;
        // statuses, a look at legacy advertising after silence and a refused FOLLOW's backoff
        // listen through the bulk scanner.
        let chained = rx.as_ref().and_then(|r| {
            let Some(info) = r.session() else {
                return resume_sender;
            };
            let on = r.bearer().is_some_and(|b| b.chained())
                && !r.preparing()
                && r.state() == RxState::Receiving;
            on.then(|| session_address(info.session))
        });
        if chained.is_none() {
            heard_ms = now;
        } else if now >= legacy_until_ms && now.saturating_sub(heard_ms) >= FOLLOW_SILENCE_MS {
            k.log(format_args!(
                "dfu: nothing heard while following for {FOLLOW_SILENCE_MS} ms; listening to legacy advertising"
            ));
            legacy_until_ms = now + LEGACY_LOOK_MS;
            heard_ms = legacy_until_ms;
        }
        let listen = match chained {
            Some(adv_a) if now >= legacy_until_ms && follow_retry.due(now) => Listen::Follow(adv_a),
            _ => Listen::Legacy,
        };
        if following.is_some() && listen == Listen::Legacy {
            let _ = k.ext_stop();
            following = None;
        }

        // How long the next wait may be. A due status waits for the kernel to run out of batches
        // (a zero wait after each batch), so it goes out just after an advertisement was handled,
        // when the next one is furthest away (the radio is deaf while it advertises); in silence
        // it goes out an interval late at most. Retries and the reboot are waited for.
        let mut wait_ms = IDLE_WAIT_MS;
        if rx.as_ref().is_some_and(|r| r.session().is_some()) {
            let held = chained.is_some()
                && !behind
                && status_held(now, next_status_ms, frontier_at_ms, following.is_some());
            if held {
                // Until the flow stops or the hold ends.
                let until = (frontier_at_ms + CHAINED_QUIET_MS)
                    .min(next_status_ms + CHAINED_STATUS_HOLD_MS)
                    .max(now + 1);
                wait_ms = wait_ms.min((until - now) as u32);
            } else if now >= next_status_ms && (last_wait_got_batch || chained.is_some()) {
                // Following, a due status goes out through the bulk scanner at once.
                wait_ms = 0;
            } else {
                let overdue = next_status_ms + STATUS_INTERVAL_MS;
                wait_ms = wait_ms.min(overdue.saturating_sub(now) as u32);
            }
        }
        if !confirmed || rx.is_none() {
            wait_ms = wait_ms.min(setup.remaining(now));
        }
        if let Some(retry) = &reboot_due {
            wait_ms = wait_ms.min(retry.remaining(now));
        }
        if confirmed
            && prepare != Prepare::Done
            && rx.as_ref().is_some_and(|r| r.session().is_none())
        {
            // Erasing ahead: one sector per turn, and a turn at least every PREPARE_TURN_MS
            // when the air is quiet.
            wait_ms = wait_ms.min(PREPARE_TURN_MS);
        }
        if chained.is_some() && listen == Listen::Legacy {
            let back = legacy_until_ms
                .saturating_sub(now)
                .max(follow_retry.at_ms.saturating_sub(now));
            wait_ms = wait_ms.min(back.min(MAX_WAIT_MS as u64) as u32);
        }

        // The wait: a batch of legacy reports, or of followed events.
        let mut got = None;
        let mut ext_got = None;
        if let Listen::Follow(adv_a) = listen {
            if scanning {
                // The capsule refuses to follow while the legacy driver holds the RADIO.
                let _ = k.scan_stop();
                scanning = false;
            }
            let (command, (arg1, arg2)) = if following == Some(adv_a) {
                (ext_scan::command::RELEASE, (0, 0))
            } else {
                (
                    ext_scan::command::FOLLOW,
                    ext_scan::filter_args(Some(adv_a), None),
                )
            };
            let (stopped, failed) = match k.ext_wait(command, arg1, arg2, ext_batch, wait_ms) {
                Ok(Some(ExtEvent::Batch(b))) => {
                    ext_got = Some(b);
                    (None, None)
                }
                Ok(None) => (None, None),
                Ok(Some(ExtEvent::Stopped(code))) => (Some(code), None),
                Err(code) => (None, Some(code)),
            };
            match stopped.or(failed) {
                None => {
                    following = Some(adv_a);
                    follow_retry.succeeded();
                    follow_busy = 0;
                }
                Some(error::BUSY) if follow_busy < FOLLOW_BUSY_TRIES => {
                    // The RADIO is still the legacy driver's (a status going out) or a
                    // stopped listen is ending: follow again in a moment.
                    following = None;
                    follow_busy += 1;
                    k.sleep(FOLLOW_BUSY_MS);
                    continue;
                }
                Some(code) => {
                    following = None;
                    follow_busy = 0;
                    let delay = follow_retry.failed(clock.update(k.ticks()));
                    let what = if stopped.is_some() {
                        "the kernel stopped following"
                    } else {
                        "follow refused"
                    };
                    k.log(format_args!(
                        "dfu: {what} (error {code}); following again in {delay} ms"
                    ));
                }
            }
            last_wait_got_batch = ext_got.is_some();
        } else {
            if !scanning && !scan_retry.due(now) {
                k.sleep(wait_ms.min(scan_retry.remaining(now)).max(1));
                continue;
            }
            let command = if scanning {
                scan::command::RELEASE
            } else {
                scan::command::START
            };
            got = match k.scan_wait(command, batch, wait_ms) {
                Ok(got) => {
                    scanning = true;
                    scan_retry.succeeded();
                    got
                }
                Err(error::ALREADY) if !scanning => {
                    // Still ours from before: release whatever batch is out.
                    scanning = true;
                    continue;
                }
                Err(code) => {
                    scanning = false;
                    let delay = scan_retry.failed(now);
                    k.log(format_args!(
                        "dfu: scan failed (error {code}); retrying in {delay} ms"
                    ));
                    continue;
                }
            };
            last_wait_got_batch = got.is_some();
        }
        let now = clock.update(k.ticks());
        let Some(rx) = rx.as_mut() else {
            // Not set up yet: the batch is dropped; the sender repeats.
            continue;
        };
        rx.tick(now);
        let mut finalized = None;
        if let Some(got) = got {
            let bytes = (got.bytes as usize).min(batch.len());
            for (adv_a, adv) in reports_in(&batch[..bytes]) {
                // Stage only when the receiver's RAM queue is full: the rest of the batch first,
                // so a forged or corrupted copy of a chunk and the genuine one right behind it
                // meet in RAM and neither is staged (`RxOutcome::Mismatch`).
                if rx.queue_full() {
                    finalized = finalized.or(pump(k, rx, &mut read_buf, &mut install_retry, now));
                    if k.halted() {
                        return Exit::Halted;
                    }
                }
                rx.on_adv(adv_a, adv);
            }
        }
        if let (Some(got), Listen::Follow(followed)) = (ext_got, listen) {
            behind |= got.dropped > 0;
            let bytes = (got.bytes as usize).min(ext_batch.len());
            for report in ext_reports_in(&ext_batch[..bytes]) {
                // Room for the event's chunks (one per AD structure at most) before it is
                // taken; a chained bearer's event has the most structures.
                let room = rx.bearer().map_or(1, |b| b.structures_per_event());
                if rx.queue_free() < room {
                    finalized = finalized.or(pump(k, rx, &mut read_buf, &mut install_retry, now));
                    if k.halted() {
                        return Exit::Halted;
                    }
                }
                // The driver delivers the followed advertiser's events only.
                let adv_a = report.adv_a.unwrap_or(followed);
                if rx.on_ext_adv(adv_a, report.adv_data).pdus > 0 {
                    heard_ms = now;
                }
            }
        }
        finalized = finalized.or(pump(k, rx, &mut read_buf, &mut install_retry, now));
        if k.halted() {
            return Exit::Halted;
        }
        observe(k, rx);
        let now = clock.update(k.ticks());
        if rx.frontier() != frontier_seen {
            frontier_seen = rx.frontier();
            frontier_at_ms = now;
        }
        // The status goes out once the kernel had no batch waiting (everything sent so far is
        // staged, so the status lists only what was lost), or when it is overdue by an interval.
        // The pick of a chained bearer, once its slot is prepared, goes out at once: the sender
        // waits for it, and the statuses' interval would only add to the wait.
        let ready = rx.bearer().is_some_and(|b| b.chained()) && !rx.preparing();
        if ready && !pick_told {
            next_status_ms = now;
        }
        let pick_told_before = pick_told;
        pick_told = ready;
        let caught_up = !last_wait_got_batch || now >= next_status_ms + STATUS_INTERVAL_MS;
        let held = ready
            && pick_told_before
            && !behind
            && status_held(now, next_status_ms, frontier_at_ms, following.is_some());
        if (rx.session().is_some() && now >= next_status_ms && caught_up && !held)
            || finalized.is_some()
        {
            behind = false;
            if following.is_some() {
                // The status is a legacy advertisement: the bulk scanner sends it, and the
                // capsule gives the RADIO up only on STOP (queued reports are discarded; the
                // follower syncs again afterwards).
                let _ = k.ext_stop();
                following = None;
            }
            if !scanning {
                // ADVERTISE is the bulk scanner owner's.
                match k.scan_wait(scan::command::START, batch, 0) {
                    Ok(_) | Err(error::ALREADY) => scanning = true,
                    Err(_) => {}
                }
            }
            next_status_ms = now + STATUS_INTERVAL_MS;
            if chained.is_some() {
                legacy_until_ms = legacy_until_ms.max(now + STATUS_LEGACY_MS as u64);
            }
            let mut status = [0u8; ADV_DATA_MAX];
            let len = rx.status_adv(&mut status);
            // A status that cannot go out now goes out with a later batch.
            let _ = k.advertise(&status[..len]);
        }
        show_progress(k, rx, &mut display);
        if rx.session().is_some() {
            // The transfer's own session took the slot (a prepare session ends with its begin).
            prepare = Prepare::Done;
        } else if prepare != Prepare::Done && finalized.is_none() && confirmed {
            // After the start-up confirm: before it, a finalized image may still await its
            // install, and the kernel refuses to prepare over it.
            prepare = prepare_step(k, prepare, &mut read_buf);
            if k.halted() {
                return Exit::Halted;
            }
        }
        if let Some(sequence) = finalized {
            k.log(format_args!(
                "dfu: image verified, boot request {sequence} written; rebooting"
            ));
            if following.is_some() {
                let _ = k.ext_stop();
                following = None;
            }
            let _ = k.scan_stop();
            scanning = false;
            // Let the console drain before the reset cuts it off.
            k.sleep(REBOOT_DELAY_MS);
            match k.reboot() {
                Ok(()) => return Exit::Rebooting,
                Err(code) => {
                    let mut retry = Backoff::new();
                    let delay = retry.failed(clock.update(k.ticks()));
                    reboot_due = Some(retry);
                    k.log(format_args!(
                        "dfu: reboot refused (error {code}); retrying in {delay} ms"
                    ));
                }
            }
        }
    }
}

/// Erasing the staging slot ahead of a transfer, while the app only listens: a transfer's
/// session then finds the sectors its image needs erased and does not wait for them (the
/// update-region policy records them without erasing again). One sector per loop turn, so
/// batches are taken between erases; the sectors are erased in order, so after a reboot the
/// prepare session's erased count says where to go on. At most [`MAX_IMAGE_LEN`] is prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prepare {
    /// Not begun this boot.
    Wanted,
    /// In the prepare session; the next sector to erase.
    Erasing { next: u32 },
    /// Prepared, refused (a finalized image awaits its install, or a transfer's session is
    /// staged) or given up on: nothing more this boot.
    Done,
}

/// Whether a status due at `due_ms` is held at `now` ([`CHAINED_QUIET_MS`]): the app follows a
/// chained session, its frontier moved less than the quiet time ago (at `moved_ms`), and the
/// hold has not run out ([`CHAINED_STATUS_HOLD_MS`]).
fn status_held(now: u64, due_ms: u64, moved_ms: u64, following: bool) -> bool {
    following
        && now >= due_ms
        && now < moved_ms + CHAINED_QUIET_MS
        && now < due_ms + CHAINED_STATUS_HOLD_MS
}

/// The longest wait for a batch while the app erases ahead. Shorter waits cost the legacy
/// transfer that starts meanwhile resends (in the simulator, 21 chunks of a 48 KiB image with
/// 10 ms, none with 50 ms; why was not found).
const PREPARE_TURN_MS: u32 = 50;

/// Sectors of the staging slot the app prepares.
const PREPARE_SECTORS: u32 = MAX_IMAGE_LEN.div_ceil(update::SECTOR_SIZE);

fn prepare_step<K: Kernel>(k: &mut K, prepare: Prepare, read_buf: &mut [u8; READ_LEN]) -> Prepare {
    use update::state;
    match prepare {
        Prepare::Done => Prepare::Done,
        Prepare::Wanted => {
            let Ok((st, _, erased)) = k.update_status() else {
                return Prepare::Done;
            };
            let mut tag = [0u8; update::TAG_LEN];
            let in_prepare = st == state::STAGING
                && k.update_tag(&mut tag).is_ok()
                && tag == update::PREPARE_TAG;
            if in_prepare {
                return Prepare::Erasing { next: erased };
            }
            // A transfer's session is staged (the receiver resumes it): leave it.
            if st == state::STAGING {
                return Prepare::Done;
            }
            let begin = StageOp::Begin {
                tag: update::PREPARE_TAG,
                image_len: PREPARE_SECTORS * update::SECTOR_SIZE,
            };
            match perform(k, begin, read_buf) {
                Ok(_) => {
                    k.log(format_args!(
                        "dfu: erasing the staging slot ahead ({PREPARE_SECTORS} sectors)"
                    ));
                    Prepare::Erasing { next: 0 }
                }
                // Refused (an image awaits its install) or failed: not this boot.
                Err(_) => Prepare::Done,
            }
        }
        Prepare::Erasing { next } if next >= PREPARE_SECTORS => {
            k.log(format_args!("dfu: staging slot erased ahead"));
            Prepare::Done
        }
        Prepare::Erasing { next } => {
            let erase = StageOp::Erase {
                offset: next * update::SECTOR_SIZE,
            };
            match perform(k, erase, read_buf) {
                Ok(_) => Prepare::Erasing { next: next + 1 },
                Err(e) => {
                    k.log(format_args!("dfu: erasing ahead stopped: {e:?}"));
                    Prepare::Done
                }
            }
        }
    }
}

/// Confirm the running kernel; false if that must be tried again.
fn try_confirm<K: Kernel>(k: &mut K) -> bool {
    match confirm_trial_boot(k) {
        Ok(Some(sequence)) => {
            k.log(format_args!(
                "dfu: confirmed this kernel (boot request {sequence})"
            ));
            true
        }
        Ok(None) => true,
        Err(OpError::TimedOut) => {
            k.log(format_args!("dfu: confirm got no answer"));
            false
        }
        Err(OpError::Refused(code)) => {
            k.log(format_args!("dfu: confirm refused (error {code})"));
            false
        }
        Err(OpError::Failed { code, detail }) => {
            k.log(format_args!("dfu: confirm failed: error {code} ({detail})"));
            false
        }
    }
}

fn show_progress<K: Kernel, const N: usize>(k: &mut K, rx: &Receiver<'_, N>, shown: &mut Display) {
    let progress = rx.progress();
    if progress.state != shown.state {
        shown.state = progress.state;
        match shown.state {
            RxState::Unsupported => k.log(format_args!(
                "dfu: sender needs a capability this app lacks"
            )),
            RxState::TooLarge => k.log(format_args!("dfu: image too large for the kernel slot")),
            RxState::Rejected => k.log(format_args!("dfu: the kernel refused the staged image")),
            RxState::VersionMismatch => k.log(format_args!(
                "dfu: the sender speaks another transfer protocol version"
            )),
            _ => {}
        }
    }
    if let Some(percent) = (progress.received_chunks * 100).checked_div(progress.total_chunks) {
        if percent / 10 != shown.percent / 10 {
            shown.percent = percent;
            k.log(format_args!(
                "dfu: {percent}% ({}/{} chunks, {}/{} blocks verified)",
                progress.received_chunks,
                progress.total_chunks,
                progress.verified_blocks,
                progress.total_blocks
            ));
        }
    }
}

#[cfg(test)]
mod tests;
