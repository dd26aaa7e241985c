//! The syscall ABI between tock-ota's kernel drivers (`capsules/`) and the DFU app: every number
//! both sides must agree on, defined once. The capsules, the app's binding and the simulator's
//! kernel all use these constants; the semantics are documented in the capsules' module docs
//! (`capsules/src/staged_update.rs`, `capsules/src/bulk_scan.rs`).
//!
//! Plain `u32` values: userspace (libtock-rs) speaks `u32`, the kernel `usize`; each side
//! converts at its boundary.
#![no_std]
#![forbid(unsafe_code)]

/// Tock's `ErrorCode` values as they travel in upcall arguments (TRD104; `kernel::ErrorCode`).
pub mod error {
    pub const FAIL: u32 = 1;
    pub const BUSY: u32 = 2;
    pub const ALREADY: u32 = 3;
    pub const OFF: u32 = 4;
    pub const RESERVE: u32 = 5;
    pub const INVAL: u32 = 6;
    pub const SIZE: u32 = 7;
    pub const CANCEL: u32 = 8;
    pub const NOMEM: u32 = 9;
    pub const NOSUPPORT: u32 = 10;
    pub const NODEVICE: u32 = 11;
    pub const UNINSTALLED: u32 = 12;
    pub const NOACK: u32 = 13;
}

/// The staged-update driver.
pub mod update {
    /// Driver number: the first unallocated category of Tock's registry (see the capsule).
    pub const DRIVER_NUM: u32 = 0xA0000;

    /// Largest write or read per command (the kernel buffer userspace data is copied through).
    pub const BUF_LEN: usize = 1024;

    /// Bytes of the session tag (read-only allow 0 at begin; read-write allow 0 for `TAG`).
    pub const TAG_LEN: usize = 16;

    /// The erase unit of `ERASE` (the staging flash's sector, the MX25R6435F's 4 KiB).
    pub const SECTOR_SIZE: u32 = 4096;

    /// The tag of a prepare session: the owner erases the staging slot ahead of a transfer and
    /// writes nothing (the update-region policy refuses writes and finalize in it); a session
    /// begun after it erases those sectors no more. No transfer's tag is this one (its image
    /// length field, bytes 4..8, is 0).
    pub const PREPARE_TAG: [u8; TAG_LEN] = [0; TAG_LEN];

    /// Bytes of the running image's id (`RUNNING` into read-write allow 0): the first bytes of
    /// its SHA-256 hash TLV, what a delta sender's base PDU names.
    pub const IMAGE_ID_LEN: usize = 16;

    pub mod command {
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
        /// The running image's id into read-write allow 0 (`RESERVE`: the kernel cannot tell,
        /// or takes no delta patches).
        pub const RUNNING: u32 = 11;
        /// The rebuild of a received stream (a session whose tag has the compressed or delta
        /// capability, staged in the received-stream area): the DFU app decodes the stream and
        /// writes the plain signed image into the staging slot with these, then `FINALIZE`s.
        /// Each is split-phase (upcall `DONE`) and `RESERVE` without a stream session.
        ///
        /// `OUTPUT_BEGIN` (`arg1`: the plain image's length): begin the staging slot's session
        /// with the stream session's tag (again, after a power cut: the rebuild starts over).
        pub const OUTPUT_BEGIN: u32 = 12;
        /// `OUTPUT_ERASE` (`arg1`: offset): erase a sector of that session, as `ERASE`.
        pub const OUTPUT_ERASE: u32 = 13;
        /// `OUTPUT_WRITE` (`arg1`: offset, `arg2`: length from read-only allow `DATA`), as `WRITE`.
        pub const OUTPUT_WRITE: u32 = 14;
        /// `OUTPUT_READ` (`arg1`: offset, `arg2`: length into read-write allow `READ`), as `READ`.
        pub const OUTPUT_READ: u32 = 15;
        /// `BASE_READ` (`arg1`: offset, `arg2`: length ≤ `BUF_LEN` into read-write allow `READ`):
        /// bytes of the running kernel's slot, a delta patch's base (`SIZE` beyond the slot).
        pub const BASE_READ: u32 = 16;

        /// The command an output command is on the staging slot's session (`OUTPUT_BEGIN` is
        /// `BEGIN`, with the stream session's tag, …); `None` for any other command.
        pub const fn output_of(command: u32) -> Option<u32> {
            match command {
                OUTPUT_BEGIN => Some(BEGIN),
                OUTPUT_ERASE => Some(ERASE),
                OUTPUT_WRITE => Some(WRITE),
                OUTPUT_READ => Some(READ),
                _ => None,
            }
        }
    }

    pub mod upcall {
        /// An operation finished: `(command, status, value)`.
        pub const DONE: u32 = 0;
        pub const COUNT: u8 = 1;
    }

    pub mod ro_allow {
        /// Data for `WRITE`; the session tag for `BEGIN`.
        pub const DATA: u32 = 0;
        pub const COUNT: u8 = 1;
    }

    pub mod rw_allow {
        /// Destination of `READ` and `TAG`.
        pub const READ: u32 = 0;
        pub const COUNT: u8 = 1;
    }

    /// The session state in `STATUS`'s first value.
    pub mod state {
        pub const IDLE: u32 = 0;
        pub const STAGING: u32 = 1;
        pub const FINALIZED: u32 = 2;
    }

    /// Which policy check failed: the upcall's `value` when `status` is an error (stable,
    /// documented numbers; the capsule maps `update_region::Error` onto them).
    pub mod detail {
        pub const NONE: u32 = 0;
        pub const BAD_CONFIG: u32 = 1;
        pub const NOT_OWNER: u32 = 2;
        pub const BUSY: u32 = 3;
        pub const NOT_STARTED: u32 = 4;
        pub const NO_SESSION: u32 = 5;
        pub const ALREADY_FINALIZED: u32 = 6;
        pub const OUT_OF_BOUNDS: u32 = 7;
        pub const UNALIGNED: u32 = 8;
        pub const BAD_LENGTH: u32 = 9;
        pub const NOT_ERASED: u32 = 10;
        pub const NOT_BLANK: u32 = 11;
        pub const FLASH: u32 = 12;
        pub const IMAGE_BAD_MAGIC: u32 = 13;
        pub const IMAGE_BAD_LAYOUT: u32 = 14;
        pub const IMAGE_HASH_MISSING: u32 = 15;
        pub const IMAGE_HASH_MISMATCH: u32 = 16;
        pub const NOTHING_TO_CONFIRM: u32 = 17;

        /// The details that mean the staged image itself was refused by finalize's check.
        pub const IMAGE_REFUSED: core::ops::RangeInclusive<u32> =
            IMAGE_BAD_MAGIC..=IMAGE_HASH_MISMATCH;

        // Finalize of a session staged in the received-stream area (a delta patch): the kernel
        // rebuilds the image into the staging slot first (`ota_reconstruct::Error::abi_detail`).
        /// The stream is malformed (magic, version, an operation, a reference, its lengths).
        pub const STREAM_BAD_FORMAT: u32 = 18;
        /// The stream ends before its end marker.
        pub const STREAM_TRUNCATED: u32 = 19;
        /// The patch was made against another kernel than the one installed.
        pub const STREAM_WRONG_BASE: u32 = 20;
        /// The rebuilt image would not fit the staging slot.
        pub const STREAM_TOO_LONG: u32 = 21;
        /// The rebuilt image's SHA-256 is not the one the stream names.
        pub const STREAM_OUTPUT_HASH: u32 = 22;

        /// The details that mean the received stream was refused: like [`IMAGE_REFUSED`],
        /// sending it again cannot help.
        pub const STREAM_REFUSED: core::ops::RangeInclusive<u32> =
            STREAM_BAD_FORMAT..=STREAM_OUTPUT_HASH;
    }
}

/// The app-update driver: install a TBF staged in the QSPI staging slot (through the
/// staged-update driver) as a new version of a userspace app, then confirm or revert it.
/// A driver of its own (not more commands on `update`): it changes the app region and the
/// process table rather than asking the bootloader for an install, and `CONFIRM` is open to the
/// updated app itself while every state-changing `update` command is DFU-only. Design:
/// `docs/app-updates.md`.
pub mod app {
    /// Driver number (next to the bulk-scan driver).
    pub const DRIVER_NUM: u32 = 0xA0002;

    pub mod command {
        pub const EXISTS: u32 = 0;
        /// `(state, version of the app in trial or 0)`.
        pub const STATUS: u32 = 1;
        /// Install the TBF of `arg1` bytes at staging offset 0 (DFU app only).
        pub const INSTALL: u32 = 2;
        /// Confirm the version in trial: the updated app itself, or the DFU app on its behalf.
        pub const CONFIRM: u32 = 3;
        /// Revert the version in trial (DFU app only).
        pub const REVERT: u32 = 4;
    }

    pub mod upcall {
        /// An operation finished: `(command, status, detail)`.
        pub const DONE: u32 = 0;
        pub const COUNT: u8 = 1;
    }

    /// `STATUS`'s first value.
    pub mod state {
        pub const IDLE: u32 = 0;
        pub const INSTALLING: u32 = 1;
        pub const TRIAL: u32 = 2;
    }

    /// Why an install was refused or failed: the upcall's `detail` (stable numbers).
    pub mod detail {
        pub const NONE: u32 = 0;
        /// The caller is not the DFU app.
        pub const NOT_DFU: u32 = 1;
        /// Another install or a trial is in progress.
        pub const BUSY: u32 = 2;
        /// Not a TBF version 2, or its lengths disagree with the staged length.
        pub const NOT_TBF: u32 = 3;
        /// The TBF header does not parse (checksum, TLVs).
        pub const BAD_HEADER: u32 = 4;
        /// No program header or no package name: not an app this driver can update.
        pub const NOT_APP: u32 = 5;
        /// No ECDSA P-256 credential in the footers.
        pub const UNSIGNED: u32 = 6;
        /// `binary_version` not higher than the installed version (anti-rollback).
        pub const NOT_NEWER: u32 = 7;
        /// The TBF names the DFU app: self-update is refused.
        pub const SELF_UPDATE: u32 = 8;
        /// Reading the staging flash failed.
        pub const STAGING_FLASH: u32 = 9;
        /// No room in the app region, or writing it failed.
        pub const STORE: u32 = 10;
        /// Stopping the installed version failed.
        pub const UNLOAD: u32 = 11;
        /// The kernel did not load the new version (no memory for it).
        pub const LOAD: u32 = 12;
        /// The ECDSA P-256 credential does not verify against any key the board accepts for
        /// an updated app: refused before the installed version is stopped.
        pub const KEY_REJECTED: u32 = 13;
    }
}

/// The bulk-scan driver.
pub mod scan {
    /// Driver number (next to the staged-update driver).
    pub const DRIVER_NUM: u32 = 0xA0001;

    pub mod command {
        pub const EXISTS: u32 = 0;
        pub const START: u32 = 1;
        pub const STOP: u32 = 2;
        pub const RELEASE: u32 = 3;
        pub const ADVERTISE: u32 = 4;
    }

    pub mod upcall {
        /// A batch: `(reports, bytes, dropped)`.
        pub const BATCH: u32 = 0;
        pub const COUNT: u8 = 1;
    }

    pub mod ro_allow {
        /// The AdvData for `ADVERTISE`.
        pub const ADV_DATA: u32 = 0;
        pub const COUNT: u8 = 1;
    }

    pub mod rw_allow {
        /// The batch buffer.
        pub const BATCH: u32 = 0;
        pub const COUNT: u8 = 1;
    }

    /// Longest legacy advertising PDU: 2-byte header + 37-byte payload.
    pub const MAX_PDU: usize = 39;
    /// Bytes a report takes before its PDU: `[len, channel]`.
    pub const REPORT_HEADER: usize = 2;
    /// Longest AdvData of a legacy advertisement (what `ADVERTISE` accepts).
    pub const MAX_ADV_DATA: usize = 31;
}

/// The extended and periodic advertising follower driver (`capsules/src/ext_scan.rs`): follows
/// one advertiser's extended advertising chains and periodic train and delivers each event's
/// AdvData to the DFU app in batches, as the bulk-scan driver delivers legacy advertisements.
pub mod ext_scan {
    /// Driver number (next to the app-update driver).
    pub const DRIVER_NUM: u32 = 0xA0003;

    pub mod command {
        pub const EXISTS: u32 = 0;
        /// Follow the advertiser the two arguments name ([`super::filter_args`]); restarts
        /// from the primary channels if already following.
        pub const FOLLOW: u32 = 1;
        pub const STOP: u32 = 2;
        pub const RELEASE: u32 = 3;
    }

    pub mod upcall {
        /// A batch: `(reports, bytes, dropped)`.
        pub const BATCH: u32 = 0;
        /// Following stopped by the kernel: `(error, 0, 0)`, an `error` code.
        pub const STOPPED: u32 = 1;
        pub const COUNT: u8 = 2;
    }

    pub mod rw_allow {
        /// The batch buffer.
        pub const BATCH: u32 = 0;
        pub const COUNT: u8 = 1;
    }

    /// Most AdvData of one event (the chain limit, Core Specification Vol 4 Part E §7.8.57;
    /// `adv_transfer::bearer::CHAIN_ADV_DATA_MAX`, which the capsule checks equal).
    pub const MAX_ADV_DATA: usize = 1650;

    /// Bytes a report takes before its AdvData:
    ///
    /// | offset | field |
    /// |---|---|
    /// | 0–1 | AdvData length, little-endian (≤ [`MAX_ADV_DATA`]) |
    /// | 2 | how the event ended ([`cut`]) |
    /// | 3 | which fields below hold values ([`has`]) |
    /// | 4–9 | AdvA, as on air |
    /// | 10–11 | the ADI as on air (extended events) or the periodic event counter, little-endian (periodic events) |
    pub const REPORT_HEADER: usize = 12;
    /// The longest report.
    pub const MAX_REPORT: usize = REPORT_HEADER + MAX_ADV_DATA;

    /// Byte 2 of a report: how the event's chain ended.
    pub mod cut {
        /// The whole chain was received.
        pub const WHOLE: u8 = 0;
        /// A chain PDU was not heard: the AdvData is what came before it.
        pub const LOST: u8 = 1;
        /// The sender did not send the rest, or put it where the receiver cannot follow.
        pub const NOT_FOLLOWED: u8 = 2;
        /// The chain carried more than [`super::MAX_ADV_DATA`].
        pub const OVERFLOW: u8 = 3;
    }

    /// Byte 3 of a report: bits saying which fields hold values.
    pub mod has {
        pub const ADV_A: u8 = 1 << 0;
        pub const ADI: u8 = 1 << 1;
        pub const PERIODIC_COUNTER: u8 = 1 << 2;
    }

    /// `FOLLOW`'s second argument: bits 0–15 AdvA octets 4–5, bits 16–19 the SID, and these
    /// flags saying which of the two to match (an absent one matches any).
    pub mod filter {
        pub const ADV_A: u32 = 1 << 24;
        pub const SID: u32 = 1 << 25;
        /// Every bit the second argument may have set.
        pub const ARG2_BITS: u32 = 0xFFFF | (0xF << 16) | ADV_A | SID;
    }

    /// `FOLLOW`'s arguments for an advertiser (AdvA as on air) and set id (0–15).
    pub const fn filter_args(adv_a: Option<[u8; 6]>, sid: Option<u8>) -> (u32, u32) {
        let (a, mut arg2) = match adv_a {
            Some(a) => (
                u32::from_le_bytes([a[0], a[1], a[2], a[3]]),
                a[4] as u32 | (a[5] as u32) << 8 | filter::ADV_A,
            ),
            None => (0, 0),
        };
        if let Some(sid) = sid {
            arg2 |= ((sid & 0xF) as u32) << 16 | filter::SID;
        }
        (a, arg2)
    }

    /// The advertiser and set id `FOLLOW`'s arguments name; `None` if the second sets bits
    /// outside [`filter::ARG2_BITS`], or values without their flag.
    pub const fn filter_from_args(arg1: u32, arg2: u32) -> Option<(Option<[u8; 6]>, Option<u8>)> {
        if arg2 & !filter::ARG2_BITS != 0 {
            return None;
        }
        let adv_a = if arg2 & filter::ADV_A != 0 {
            let l = arg1.to_le_bytes();
            Some([l[0], l[1], l[2], l[3], arg2 as u8, (arg2 >> 8) as u8])
        } else if arg1 != 0 || arg2 & 0xFFFF != 0 {
            return None;
        } else {
            None
        };
        let sid = if arg2 & filter::SID != 0 {
            Some((arg2 >> 16) as u8 & 0xF)
        } else if arg2 & (0xF << 16) != 0 {
            return None;
        } else {
            None
        };
        Some((adv_a, sid))
    }
}

#[cfg(test)]
mod tests {
    use super::ext_scan::{filter, filter_args, filter_from_args};

    #[test]
    fn follow_arguments_round_trip_and_refuse_stray_bits() {
        let a = [0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xC6];
        for adv_a in [None, Some(a)] {
            for sid in [None, Some(0), Some(9), Some(15)] {
                let (a1, a2) = filter_args(adv_a, sid);
                assert_eq!(filter_from_args(a1, a2), Some((adv_a, sid)));
            }
        }
        assert_eq!(
            filter_args(Some(a), None),
            (0xA4A3_A2A1, 0xC6A5 | filter::ADV_A)
        );
        assert_eq!(filter_args(None, Some(9)), (0, (9 << 16) | filter::SID));
        // A value without its flag, or a bit outside the format.
        assert_eq!(filter_from_args(1, 0), None);
        assert_eq!(filter_from_args(0, 0x0001), None);
        assert_eq!(filter_from_args(0, 3 << 16), None);
        assert_eq!(filter_from_args(0, 1 << 26), None);
        assert_eq!(filter_from_args(0, 0), Some((None, None)));
    }
}
