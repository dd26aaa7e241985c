//! Who may update: `ShortId` assignment from the signing key, and the syscall filter.
//!
//! The board's process loader checks every process's TBF ECDSA P-256 credential against a list
//! of public keys (`SignatureVerifyInMemoryKeys`); the index of the key that verified it comes
//! back as the credential's metadata. [`KeyIndexAssigner`] turns that into the `ShortId`:
//!
//! - key index [`DFU_KEY_INDEX`] (the DFU signing key) → `ShortId::Fixed(dfu_short_id)`, one id,
//!   whatever the app's package name says, so a second binary signed with that key is refused
//!   by the kernel's uniqueness check rather than running as a second updater;
//! - any other accepted key → a fixed id with bit 31 set and the CRC of the package name below
//!   it (never the DFU id, which has bit 31 clear);
//! - no accepted credential → `ShortId::LocallyUnique`, which equals nothing.
//!
//! [`UpdateSyscallFilter`] then hides the staged-update driver's write paths, and the bulk-scan
//! driver, from everything but the DFU id (defense in depth: the update capsule checks again).

use core::num::NonZeroU32;

use kernel::errorcode::ErrorCode;
use kernel::process::{Process, ProcessBinary, ShortId};
use kernel::process_checker::{AppUniqueness, Compress};
use kernel::syscall::Syscall;

use crate::{app_update, bulk_scan, staged_update};

/// Index of the DFU signing key in the board's key list.
pub const DFU_KEY_INDEX: usize = 0;

/// Bit set in every non-DFU fixed id.
const OTHER_KEY_BIT: u32 = 1 << 31;

/// The `ShortId` for a process accepted with key `key_index` (None: no credential accepted).
/// `dfu_short_id` must have bit 31 clear.
pub fn short_id_for(dfu_short_id: NonZeroU32, key_index: Option<usize>, name: &str) -> ShortId {
    match key_index {
        Some(DFU_KEY_INDEX) if dfu_short_id.get() & OTHER_KEY_BIT == 0 => {
            ShortId::Fixed(dfu_short_id)
        }
        Some(_) => {
            let crc = kernel::utilities::helpers::crc32_posix(name.as_bytes());
            ShortId::Fixed(
                NonZeroU32::new(OTHER_KEY_BIT | (crc & !OTHER_KEY_BIT)).unwrap_or(
                    // OTHER_KEY_BIT is non-zero, so this arm is unreachable; keep a valid value.
                    NonZeroU32::MIN,
                ),
            )
        }
        None => ShortId::LocallyUnique,
    }
}

/// Whether `short_id` is the DFU app's: the board's DFU id, which only a binary the DFU key
/// signed gets ([`short_id_for`]). What the syscall filter and the capsules that check again
/// ask.
pub fn is_dfu(dfu_short_id: NonZeroU32, short_id: ShortId) -> bool {
    short_id == ShortId::Fixed(dfu_short_id)
}

/// `Compress` + `AppUniqueness` for the board's process loader. See the module docs.
pub struct KeyIndexAssigner {
    dfu_short_id: NonZeroU32,
}

impl KeyIndexAssigner {
    pub const fn new(dfu_short_id: NonZeroU32) -> KeyIndexAssigner {
        KeyIndexAssigner { dfu_short_id }
    }
}

impl Compress for KeyIndexAssigner {
    fn to_short_id(&self, process: &ProcessBinary) -> ShortId {
        let key_index = process
            .credential
            .get()
            .and_then(|accepted| accepted.metadata.map(|m| m.metadata));
        let name = process.header.get_package_name().unwrap_or("");
        short_id_for(self.dfu_short_id, key_index, name)
    }
}

impl AppUniqueness for KeyIndexAssigner {
    fn different_identifier(&self, a: &ProcessBinary, b: &ProcessBinary) -> bool {
        self.to_short_id(a) != self.to_short_id(b)
    }

    fn different_identifier_process(&self, a: &ProcessBinary, b: &dyn Process) -> bool {
        self.to_short_id(a) != b.short_app_id()
    }

    fn different_identifier_processes(&self, a: &dyn Process, b: &dyn Process) -> bool {
        a.short_app_id() != b.short_app_id()
    }
}

/// The filter decision for `syscall` from a process with `short_id`. The staged-update driver
/// answers "exists" and "status" to anyone, the bulk-scan driver "exists", the app-update
/// driver "exists", "status" and "confirm" and lets anyone subscribe to its completion upcall
/// (an app in trial hears its confirm's answer; the driver answers only the caller); every other command,
/// allow and subscribe on either is for the DFU process only (`NODEVICE` otherwise): another
/// process that held the scanner could keep the DFU app from ever receiving an update.
/// Everything else passes.
pub fn filter(
    dfu_short_id: NonZeroU32,
    short_id: ShortId,
    syscall: &Syscall,
) -> Result<(), ErrorCode> {
    let open_to_all: &[usize] = match syscall.driver_number() {
        Some(staged_update::DRIVER_NUM) => &[
            staged_update::command::EXISTS,
            staged_update::command::STATUS,
        ],
        Some(bulk_scan::DRIVER_NUM) => &[bulk_scan::command::EXISTS],
        // Confirm is for the updated app itself (the capsule checks it is the one in trial).
        Some(app_update::DRIVER_NUM) => &[
            app_update::command::EXISTS,
            app_update::command::STATUS,
            app_update::command::CONFIRM,
        ],
        _ => return Ok(()),
    };
    if is_dfu(dfu_short_id, short_id) {
        return Ok(());
    }
    match syscall {
        Syscall::Command {
            subdriver_number, ..
        } if open_to_all.contains(subdriver_number) => Ok(()),
        // The app in trial hears its confirm's answer (the driver sends it to the caller only).
        Syscall::Subscribe {
            driver_number: app_update::DRIVER_NUM,
            subdriver_number: app_update::upcall::DONE,
            ..
        } => Ok(()),
        _ => Err(ErrorCode::NODEVICE),
    }
}

/// The board's `SyscallFilter`. See [`filter`].
pub struct UpdateSyscallFilter {
    dfu_short_id: NonZeroU32,
}

impl UpdateSyscallFilter {
    pub const fn new(dfu_short_id: NonZeroU32) -> UpdateSyscallFilter {
        UpdateSyscallFilter { dfu_short_id }
    }
}

impl kernel::platform::SyscallFilter for UpdateSyscallFilter {
    fn filter_syscall(&self, process: &dyn Process, syscall: &Syscall) -> Result<(), ErrorCode> {
        filter(self.dfu_short_id, process.short_app_id(), syscall)
    }
}
