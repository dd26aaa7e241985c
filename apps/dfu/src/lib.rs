//! The DFU app's logic: bulk-scan batches in, the `adv-transfer` receiver in the middle, staging
//! through the kernel's staged-update driver out. Generic over `Syscalls` so it runs on the host
//! against libtock-rs's fake kernel.
//!
//! Life of an update, as this app sees it:
//! 1. At start: confirm the running kernel (the bootloader boots a new kernel as a trial until a
//!    Confirm record follows its boot request; "nothing to confirm" is normal), then read the
//!    staged-update status and tag to resume an interrupted transfer.
//! 2. Scan continuously; feed every advertisement's AdvData to the receiver; perform the staging
//!    operations it asks for (begin, erase, write, read back, finalize) through the driver;
//!    every [`STATUS_INTERVAL_MS`] advertise the receiver's status so the sender resends what
//!    is missing.
//! 3. When finalize succeeds the kernel has written the boot request itself; ask it to reboot.
#![cfg_attr(not(test), no_std)]

pub mod drivers;

use core::fmt::Write;

use adv_transfer::receiver::READ_LEN;
use adv_transfer::wire::ADV_DATA_MAX;
use adv_transfer::{Receiver, RxState, StageError, StageOp, DEFAULT_COMPANY_ID};
use libtock_platform::{ErrorCode, Syscalls};

use drivers::{adv_data_in, BulkScan, SessionState, StagedUpdate, UpdateError};

/// Largest image the app accepts: the kernel slot (224 KiB) plus room for the image header and
/// TLVs, rounded to whole 4 KiB blocks.
pub const MAX_IMAGE_LEN: u32 = 232 * 1024;

/// Bitmap bytes for [`MAX_IMAGE_LEN`].
pub const BITMAP_LEN: usize = Receiver::bitmap_len(MAX_IMAGE_LEN);

/// How often the receiver advertises its status (which chunks it misses) to the sender.
pub const STATUS_INTERVAL_MS: u64 = 250;

/// How long to wait, at most, for the kernel's start-up scan of the update region.
pub const STARTUP_WAIT_MS: u32 = 20;
pub const STARTUP_WAIT_TRIES: u32 = 250;

/// Pause before the reboot so the last console lines go out.
pub const REBOOT_DELAY_MS: u32 = 100;

/// Scan batch buffer size.
pub const BATCH_LEN: usize = 1024;

/// The policy check numbers (capsule `policy_error_code`) the receiver must tell apart.
const DETAIL_NOT_ERASED: u32 = 10;
const DETAIL_NOT_BLANK: u32 = 11;
const DETAIL_IMAGE_FIRST: u32 = 13;
const DETAIL_IMAGE_LAST: u32 = 16;

/// The receiver's view of a failed staging operation.
pub fn stage_error(op_was_finalize: bool, error: UpdateError) -> StageError {
    match (error.code, error.detail) {
        (ErrorCode::NoAck, DETAIL_NOT_ERASED) => StageError::NotErased,
        (ErrorCode::NoAck, DETAIL_NOT_BLANK) => StageError::NotBlank,
        (ErrorCode::Fail, DETAIL_IMAGE_FIRST..=DETAIL_IMAGE_LAST) if op_was_finalize => {
            StageError::Rejected
        }
        _ => StageError::Failed,
    }
}

/// What one staging operation produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Performed {
    /// Done; `n` bytes were read into the read buffer.
    Done { read: usize },
    /// Finalize succeeded: the boot request with this sequence number is in flash.
    Finalized { sequence: u32 },
}

/// Perform one receiver staging operation through the driver.
pub fn perform<S: Syscalls>(
    op: StageOp<'_>,
    read_buf: &mut [u8; READ_LEN],
) -> Result<Performed, StageError> {
    let done = Performed::Done { read: 0 };
    match op {
        StageOp::Begin { tag, image_len } => StagedUpdate::<S>::begin(&tag, image_len)
            .map(|_| done)
            .map_err(|e| stage_error(false, e)),
        StageOp::Erase { offset } => StagedUpdate::<S>::erase(offset)
            .map(|_| done)
            .map_err(|e| stage_error(false, e)),
        StageOp::Write { offset, data } => StagedUpdate::<S>::write(offset, data)
            .map(|_| done)
            .map_err(|e| stage_error(false, e)),
        StageOp::Read { offset, len } => {
            let len = (len as usize).min(READ_LEN);
            StagedUpdate::<S>::read(offset, &mut read_buf[..len])
                .map(|_| Performed::Done { read: len })
                .map_err(|e| stage_error(false, e))
        }
        StageOp::Finalize => StagedUpdate::<S>::finalize()
            .map(|sequence| Performed::Finalized { sequence })
            .map_err(|e| stage_error(true, e)),
    }
}

/// Run every staging operation the receiver has ready. Returns the boot request's sequence
/// number once finalize succeeded.
pub fn pump<S: Syscalls>(rx: &mut Receiver<'_>, read_buf: &mut [u8; READ_LEN]) -> Option<u32> {
    let mut finalized = None;
    while let Some(op) = rx.poll_op() {
        let result = perform::<S>(op, read_buf);
        match result {
            Ok(Performed::Done { read }) => rx.op_done(Ok(&read_buf[..read])),
            Ok(Performed::Finalized { sequence }) => {
                finalized = Some(sequence);
                rx.op_done(Ok(&[]));
            }
            Err(e) => {
                rx.op_done(Err(e));
                // Transient failures are retried on the next batch, not in a tight loop.
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
pub fn confirm_trial_boot<S: Syscalls>() -> Result<Option<u32>, UpdateError> {
    match StagedUpdate::<S>::confirm() {
        Ok(sequence) => Ok(Some(sequence)),
        Err(e) if e.code == ErrorCode::Reserve => Ok(None),
        Err(e) => Err(e),
    }
}

/// The resume information for a new receiver: the staged session's tag (if any) and whether it
/// was finalized.
pub fn resume_info<S: Syscalls>() -> Result<(Option<[u8; 16]>, bool), ErrorCode> {
    let status = StagedUpdate::<S>::status()?;
    if status.state == SessionState::Idle {
        return Ok((None, false));
    }
    let tag = StagedUpdate::<S>::tag()?;
    Ok((Some(tag), status.state == SessionState::Finalized))
}

/// The app: never returns unless a driver is missing or refuses.
pub fn run<S: Syscalls, W: Write>(
    console: &mut W,
    now_ms: &dyn Fn() -> u64,
    sleep_ms: &dyn Fn(u32),
    bitmap: &mut [u8],
    batch: &mut [u8],
) -> Result<(), ErrorCode> {
    if !StagedUpdate::<S>::exists() || !BulkScan::<S>::exists() {
        let _ = writeln!(
            console,
            "dfu: kernel lacks the staged-update or bulk-scan driver"
        );
        return Err(ErrorCode::NoDevice);
    }
    // The kernel scans the update region shortly after boot; until then status is BUSY.
    let mut tries = 0;
    while StagedUpdate::<S>::status() == Err(ErrorCode::Busy) && tries < STARTUP_WAIT_TRIES {
        sleep_ms(STARTUP_WAIT_MS);
        tries += 1;
    }
    match confirm_trial_boot::<S>() {
        Ok(Some(sequence)) => {
            let _ = writeln!(
                console,
                "dfu: confirmed this kernel (boot request {sequence})"
            );
        }
        Ok(None) => {}
        Err(e) => {
            let _ = writeln!(console, "dfu: confirm failed: {:?} ({})", e.code, e.detail);
        }
    }
    let (resume, finalized) = resume_info::<S>()?;
    if resume.is_some() {
        let _ = writeln!(
            console,
            "dfu: resuming staged session (finalized: {finalized})"
        );
    }
    let mut rx = Receiver::new(DEFAULT_COMPANY_ID, MAX_IMAGE_LEN, bitmap, resume, finalized);
    let mut read_buf = [0u8; READ_LEN];
    let mut first = true;
    let mut shown_percent = u32::MAX;
    let mut last_status_ms = 0u64;
    let mut shown_state = RxState::Listening;
    let _ = writeln!(console, "dfu: listening");
    loop {
        let got = BulkScan::<S>::next_batch(batch, first)?;
        first = false;
        let now = now_ms();
        rx.tick(now);
        let bytes = (got.bytes as usize).min(batch.len());
        let mut finalized = None;
        for adv in adv_data_in(&batch[..bytes]) {
            rx.on_adv(adv);
            // Stage as we go: the receiver holds only a few chunks in RAM.
            finalized = finalized.or(pump::<S>(&mut rx, &mut read_buf));
        }
        finalized = finalized.or(pump::<S>(&mut rx, &mut read_buf));
        if rx.session().is_some() && now.wrapping_sub(last_status_ms) >= STATUS_INTERVAL_MS {
            last_status_ms = now;
            let mut status = [0u8; ADV_DATA_MAX];
            let len = rx.status_adv(&mut status);
            // A status that cannot go out now goes out with a later batch.
            let _ = BulkScan::<S>::advertise(&status[..len]);
        }
        let progress = rx.progress();
        if progress.state != shown_state {
            shown_state = progress.state;
            match shown_state {
                RxState::Unsupported => {
                    let _ = writeln!(console, "dfu: sender needs a capability this app lacks");
                }
                RxState::TooLarge => {
                    let _ = writeln!(console, "dfu: image too large for the kernel slot");
                }
                RxState::Rejected => {
                    let _ = writeln!(console, "dfu: the kernel refused the staged image");
                }
                _ => {}
            }
        }
        if progress.total_chunks > 0 {
            let percent = progress.received_chunks * 100 / progress.total_chunks;
            if percent / 10 != shown_percent / 10 {
                shown_percent = percent;
                let _ = writeln!(
                    console,
                    "dfu: {percent}% ({}/{} chunks, {}/{} blocks verified)",
                    progress.received_chunks,
                    progress.total_chunks,
                    progress.verified_blocks,
                    progress.total_blocks
                );
            }
        }
        if let Some(sequence) = finalized {
            let _ = writeln!(
                console,
                "dfu: image verified, boot request {sequence} written; rebooting"
            );
            let _ = BulkScan::<S>::stop();
            // Let the console drain before the reset cuts it off.
            sleep_ms(REBOOT_DELAY_MS);
            StagedUpdate::<S>::reboot()?;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests;
