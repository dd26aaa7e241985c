//! Userspace bindings for the kernel's staged-update (0xA0000) and bulk-scan (0xA0001)
//! drivers. The interfaces are documented in the capsules' doc headers
//! (`capsules/src/staged_update.rs`, `capsules/src/bulk_scan.rs`).

use core::cell::Cell;

use libtock_platform::allow_ro::AllowRo;
use libtock_platform::allow_rw::AllowRw;
use libtock_platform::share;
use libtock_platform::subscribe::Subscribe;
use libtock_platform::{DefaultConfig, ErrorCode, Syscalls};

pub const UPDATE_DRIVER: u32 = 0xA0000;
pub const SCAN_DRIVER: u32 = 0xA0001;

/// Staged-update command numbers.
pub mod update_cmd {
    pub const EXISTS: u32 = 0;
    pub const STATUS: u32 = 1;
    pub const BEGIN: u32 = 2;
    pub const ERASE: u32 = 3;
    pub const WRITE: u32 = 4;
    pub const READ: u32 = 5;
    pub const FINALIZE: u32 = 6;
    pub const ABORT: u32 = 7;
    pub const CONFIRM: u32 = 8;
    pub const TAG: u32 = 9;
    pub const REBOOT: u32 = 10;
}

/// Bulk-scan command numbers.
pub mod scan_cmd {
    pub const EXISTS: u32 = 0;
    pub const START: u32 = 1;
    pub const STOP: u32 = 2;
    pub const RELEASE: u32 = 3;
    pub const ADVERTISE: u32 = 4;
}

/// Session state reported by the status command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    Idle,
    Staging,
    Finalized,
}

/// The update driver's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateStatus {
    pub state: SessionState,
    pub image_len: u32,
    pub erased_sectors: u32,
}

/// Why an update operation failed: the syscall error, and for asynchronous failures the
/// policy's check number (`staged_update::policy_error_code` in the capsule; 0 if none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateError {
    pub code: ErrorCode,
    pub detail: u32,
}

impl From<ErrorCode> for UpdateError {
    fn from(code: ErrorCode) -> Self {
        UpdateError { code, detail: 0 }
    }
}

/// The staged-update driver.
pub struct StagedUpdate<S: Syscalls>(S);

impl<S: Syscalls> StagedUpdate<S> {
    pub fn exists() -> bool {
        S::command(UPDATE_DRIVER, update_cmd::EXISTS, 0, 0).is_success()
    }

    pub fn status() -> Result<UpdateStatus, ErrorCode> {
        let (state, image_len, erased_sectors) =
            S::command(UPDATE_DRIVER, update_cmd::STATUS, 0, 0)
                .to_result::<(u32, u32, u32), ErrorCode>()?;
        let state = match state {
            0 => SessionState::Idle,
            1 => SessionState::Staging,
            _ => SessionState::Finalized,
        };
        Ok(UpdateStatus {
            state,
            image_len,
            erased_sectors,
        })
    }

    /// The session tag (to resume after a reboot).
    pub fn tag() -> Result<[u8; 16], ErrorCode> {
        let mut tag = [0u8; 16];
        share::scope::<(AllowRw<_, UPDATE_DRIVER, 0>,), _, _>(|handle| {
            let (allow,) = handle.split();
            S::allow_rw::<DefaultConfig, UPDATE_DRIVER, 0>(allow, &mut tag)?;
            S::command(UPDATE_DRIVER, update_cmd::TAG, 0, 0).to_result::<(), ErrorCode>()
        })?;
        Ok(tag)
    }

    /// Run one asynchronous command to its upcall. `data` is shared read-only, `out` read-write.
    /// Returns the upcall's value.
    pub fn run(
        command: u32,
        arg1: u32,
        arg2: u32,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<u32, UpdateError> {
        let done: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
        share::scope::<
            (
                AllowRo<_, UPDATE_DRIVER, 0>,
                AllowRw<_, UPDATE_DRIVER, 0>,
                Subscribe<_, UPDATE_DRIVER, 0>,
            ),
            _,
            _,
        >(|handle| {
            let (allow_ro, allow_rw, subscribe) = handle.split();
            S::allow_ro::<DefaultConfig, UPDATE_DRIVER, 0>(allow_ro, data)?;
            S::allow_rw::<DefaultConfig, UPDATE_DRIVER, 0>(allow_rw, out)?;
            S::subscribe::<_, _, DefaultConfig, UPDATE_DRIVER, 0>(subscribe, &done)?;
            S::command(UPDATE_DRIVER, command, arg1, arg2).to_result::<(), ErrorCode>()?;
            loop {
                S::yield_wait();
                if let Some((_, status, value)) = done.get() {
                    return match ErrorCode::try_from(status) {
                        Ok(code) => Err(UpdateError {
                            code,
                            detail: value,
                        }),
                        Err(_) => Ok(value),
                    };
                }
            }
        })
    }

    pub fn begin(tag: &[u8; 16], image_len: u32) -> Result<u32, UpdateError> {
        Self::run(update_cmd::BEGIN, image_len, 0, tag, &mut [])
    }

    pub fn erase(offset: u32) -> Result<u32, UpdateError> {
        Self::run(update_cmd::ERASE, offset, 0, &[], &mut [])
    }

    pub fn write(offset: u32, data: &[u8]) -> Result<u32, UpdateError> {
        Self::run(update_cmd::WRITE, offset, data.len() as u32, data, &mut [])
    }

    pub fn read(offset: u32, out: &mut [u8]) -> Result<u32, UpdateError> {
        let len = out.len() as u32;
        Self::run(update_cmd::READ, offset, len, &[], out)
    }

    /// Returns the boot request's sequence number.
    pub fn finalize() -> Result<u32, UpdateError> {
        Self::run(update_cmd::FINALIZE, 0, 0, &[], &mut [])
    }

    pub fn abort() -> Result<u32, UpdateError> {
        Self::run(update_cmd::ABORT, 0, 0, &[], &mut [])
    }

    /// Returns the confirmed sequence number.
    pub fn confirm() -> Result<u32, UpdateError> {
        Self::run(update_cmd::CONFIRM, 0, 0, &[], &mut [])
    }

    pub fn reboot() -> Result<(), ErrorCode> {
        S::command(UPDATE_DRIVER, update_cmd::REBOOT, 0, 0).to_result()
    }
}

/// One batch announced by the scanner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub reports: u32,
    pub bytes: u32,
    pub dropped: u32,
}

/// The bulk-scan driver.
pub struct BulkScan<S: Syscalls>(S);

impl<S: Syscalls> BulkScan<S> {
    pub fn exists() -> bool {
        S::command(SCAN_DRIVER, scan_cmd::EXISTS, 0, 0).is_success()
    }

    pub fn stop() -> Result<(), ErrorCode> {
        S::command(SCAN_DRIVER, scan_cmd::STOP, 0, 0).to_result()
    }

    /// Advertise `adv_data` once on each advertising channel (the receiver's status).
    pub fn advertise(adv_data: &[u8]) -> Result<(), ErrorCode> {
        share::scope::<(AllowRo<_, SCAN_DRIVER, 0>,), _, _>(|handle| {
            let (allow,) = handle.split();
            S::allow_ro::<DefaultConfig, SCAN_DRIVER, 0>(allow, adv_data)?;
            S::command(SCAN_DRIVER, scan_cmd::ADVERTISE, 0, 0).to_result::<(), ErrorCode>()
        })
    }

    /// Wait for the next batch into `buffer`. `first`: start scanning; otherwise release the
    /// previous batch (which lets the kernel deliver the next one).
    pub fn next_batch(buffer: &mut [u8], first: bool) -> Result<Batch, ErrorCode> {
        let got: Cell<Option<(u32, u32, u32)>> = Cell::new(None);
        share::scope::<(AllowRw<_, SCAN_DRIVER, 0>, Subscribe<_, SCAN_DRIVER, 0>), _, _>(|handle| {
            let (allow, subscribe) = handle.split();
            S::allow_rw::<DefaultConfig, SCAN_DRIVER, 0>(allow, buffer)?;
            S::subscribe::<_, _, DefaultConfig, SCAN_DRIVER, 0>(subscribe, &got)?;
            let command = if first {
                scan_cmd::START
            } else {
                scan_cmd::RELEASE
            };
            S::command(SCAN_DRIVER, command, 0, 0).to_result::<(), ErrorCode>()?;
            loop {
                S::yield_wait();
                if let Some((reports, bytes, dropped)) = got.get() {
                    return Ok(Batch {
                        reports,
                        bytes,
                        dropped,
                    });
                }
            }
        })
    }
}

/// The AdvData of each report in a batch (`[len, channel, pdu[len]]`...), skipping PDU types
/// that carry no AdvData and malformed reports.
pub fn adv_data_in(batch: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = batch;
    core::iter::from_fn(move || loop {
        let (&len, tail) = rest.split_first()?;
        let len = len as usize;
        if tail.len() < 1 + len {
            rest = &[];
            return None;
        }
        let pdu = &tail[1..1 + len];
        rest = &tail[1 + len..];
        // PDU header: type in the low 4 bits; ADV_IND 0, ADV_NONCONN_IND 2, ADV_SCAN_IND 6
        // carry AdvA (6 bytes) then AdvData. The header's length byte bounds the payload.
        if pdu.len() < 8 {
            continue;
        }
        let pdu_type = pdu[0] & 0x0F;
        let payload_len = (pdu[1] as usize).min(pdu.len() - 2);
        if matches!(pdu_type, 0 | 2 | 6) && payload_len >= 6 {
            return Some(&pdu[8..2 + payload_len]);
        }
    })
}
