//! ShortId assignment from the signing key, and the syscall filter.

use core::num::NonZeroU32;

use kernel::errorcode::ErrorCode;
use kernel::process::ShortId;
use kernel::syscall::Syscall;
use kernel::utilities::capability_ptr::CapabilityPtr;
use kernel::utilities::machine_register::MachineRegister;

use crate::identity::{filter, short_id_for, DFU_KEY_INDEX};
use crate::{app_update, bulk_scan, staged_update};

const DFU_ID: NonZeroU32 = NonZeroU32::new(0x0D0F_0001).unwrap();

fn command(driver_number: usize, subdriver_number: usize) -> Syscall {
    Syscall::Command {
        driver_number,
        subdriver_number,
        arg0: 0,
        arg1: 0,
    }
}

#[test]
fn the_dfu_key_gets_the_dfu_id_whatever_the_name() {
    assert!(short_id_for(DFU_ID, Some(DFU_KEY_INDEX), "dfu") == ShortId::Fixed(DFU_ID));
    assert!(short_id_for(DFU_ID, Some(DFU_KEY_INDEX), "anything") == ShortId::Fixed(DFU_ID));
}

#[test]
fn another_key_never_yields_the_dfu_id_even_with_the_dfu_name() {
    for name in ["tock-ota-dfu", "dfu", "", "blink"] {
        let id = short_id_for(DFU_ID, Some(1), name);
        assert!(id != ShortId::Fixed(DFU_ID), "{name}");
        let ShortId::Fixed(value) = id else {
            panic!("an accepted credential gets a fixed id");
        };
        assert_ne!(value.get() & (1 << 31), 0);
    }
    assert!(short_id_for(DFU_ID, Some(1), "a") != short_id_for(DFU_ID, Some(1), "b"));
}

#[test]
fn no_credential_means_locally_unique_which_equals_nothing() {
    let id = short_id_for(DFU_ID, None, "tock-ota-dfu");
    assert!(matches!(id, ShortId::LocallyUnique));
    // LocallyUnique compares equal to nothing, itself included.
    assert!(id != ShortId::LocallyUnique);
    assert!(id != ShortId::Fixed(DFU_ID));
}

#[test]
fn a_dfu_id_with_bit_31_set_is_not_granted() {
    let bad = NonZeroU32::new(0x8000_0001).unwrap();
    assert!(short_id_for(bad, Some(DFU_KEY_INDEX), "x") != ShortId::Fixed(bad));
}

#[test]
fn the_filter_hides_update_write_paths_from_everyone_but_the_dfu_app() {
    let other = ShortId::Fixed(NonZeroU32::new(0x8000_1234).unwrap());
    let driver = staged_update::DRIVER_NUM;
    for caller in [ShortId::LocallyUnique, other] {
        assert_eq!(
            filter(
                DFU_ID,
                caller,
                &command(driver, staged_update::command::EXISTS)
            ),
            Ok(())
        );
        assert_eq!(
            filter(
                DFU_ID,
                caller,
                &command(driver, staged_update::command::STATUS)
            ),
            Ok(())
        );
        for cmd in 2..=10 {
            assert_eq!(
                filter(DFU_ID, caller, &command(driver, cmd)),
                Err(ErrorCode::NODEVICE),
                "command {cmd}"
            );
        }
        let allow = Syscall::ReadOnlyAllow {
            driver_number: driver,
            subdriver_number: 0,
            allow_address: core::ptr::null(),
            allow_size: 0,
        };
        assert_eq!(filter(DFU_ID, caller, &allow), Err(ErrorCode::NODEVICE));
        let subscribe = Syscall::Subscribe {
            driver_number: driver,
            subdriver_number: 0,
            upcall_ptr: CapabilityPtr::default(),
            appdata: MachineRegister::default(),
        };
        assert_eq!(filter(DFU_ID, caller, &subscribe), Err(ErrorCode::NODEVICE));
        // Other drivers are not this filter's business.
        assert_eq!(filter(DFU_ID, caller, &command(1, 1)), Ok(()));
    }
    for cmd in 0..=10 {
        assert_eq!(
            filter(DFU_ID, ShortId::Fixed(DFU_ID), &command(driver, cmd)),
            Ok(())
        );
    }
}

#[test]
fn the_filter_keeps_the_scanner_for_the_dfu_app() {
    let other = ShortId::Fixed(NonZeroU32::new(0x8000_1234).unwrap());
    let driver = bulk_scan::DRIVER_NUM;
    for caller in [ShortId::LocallyUnique, other] {
        assert_eq!(
            filter(DFU_ID, caller, &command(driver, bulk_scan::command::EXISTS)),
            Ok(())
        );
        for cmd in [
            bulk_scan::command::START,
            bulk_scan::command::STOP,
            bulk_scan::command::RELEASE,
            bulk_scan::command::ADVERTISE,
        ] {
            assert_eq!(
                filter(DFU_ID, caller, &command(driver, cmd)),
                Err(ErrorCode::NODEVICE),
                "command {cmd}"
            );
        }
        let allow = Syscall::ReadWriteAllow {
            driver_number: driver,
            subdriver_number: bulk_scan::rw_allow::BATCH,
            allow_address: core::ptr::null_mut(),
            allow_size: 0,
        };
        assert_eq!(filter(DFU_ID, caller, &allow), Err(ErrorCode::NODEVICE));
        let subscribe = Syscall::Subscribe {
            driver_number: driver,
            subdriver_number: bulk_scan::upcall::BATCH,
            upcall_ptr: CapabilityPtr::default(),
            appdata: MachineRegister::default(),
        };
        assert_eq!(filter(DFU_ID, caller, &subscribe), Err(ErrorCode::NODEVICE));
    }
    for cmd in 0..=4 {
        assert_eq!(
            filter(DFU_ID, ShortId::Fixed(DFU_ID), &command(driver, cmd)),
            Ok(())
        );
    }
}

mod assigner {
    use super::DFU_ID;
    use kernel::process::{ProcessBinary, ShortId};
    use kernel::process_checker::{
        AcceptedCredential, AppUniqueness, CheckResultAcceptMetadata, Compress,
    };
    use kernel::utilities::cells::OptionalCell;
    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;
    use tock_tbf::types::TbfFooterV2Credentials;

    use crate::identity::KeyIndexAssigner;

    /// A TBF v2 header with a Main TLV and a package name, checksum filled in.
    fn header(name: &str) -> &'static [u8] {
        let mut tlvs = Vec::new();
        // Main: init_fn_offset, protected_size, minimum_ram_size.
        tlvs.extend(1u16.to_le_bytes());
        tlvs.extend(12u16.to_le_bytes());
        tlvs.extend([0u8; 12]);
        // Package name, padded to a word.
        tlvs.extend(3u16.to_le_bytes());
        tlvs.extend((name.len() as u16).to_le_bytes());
        tlvs.extend(name.as_bytes());
        while tlvs.len() % 4 != 0 {
            tlvs.push(0);
        }
        let header_size = 16 + tlvs.len();
        let mut h = Vec::new();
        h.extend(2u16.to_le_bytes());
        h.extend((header_size as u16).to_le_bytes());
        h.extend(4096u32.to_le_bytes());
        h.extend(1u32.to_le_bytes()); // enabled
        h.extend(0u32.to_le_bytes()); // checksum, below
        h.extend(tlvs);
        let checksum = h
            .chunks(4)
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .fold(0u32, |x, (_, w)| {
                x ^ u32::from_le_bytes(w.try_into().unwrap())
            });
        h[12..16].copy_from_slice(&checksum.to_le_bytes());
        Box::leak(h.into_boxed_slice())
    }

    fn binary(name: &str, key_index: Option<usize>) -> ProcessBinary {
        let flash = header(name);
        let parsed = tock_tbf::parse::parse_tbf_header(flash, 2).expect("valid TBF header");
        let credential = OptionalCell::empty();
        if let Some(index) = key_index {
            let mut footer = vec![0u8; 4 + 64];
            footer[..4].copy_from_slice(&6u32.to_le_bytes()); // ECDSA NIST P-256
            let footer: &'static [u8] = Box::leak(footer.into_boxed_slice());
            credential.set(AcceptedCredential {
                credential: TbfFooterV2Credentials::try_from(footer).unwrap(),
                metadata: Some(CheckResultAcceptMetadata { metadata: index }),
            });
        }
        ProcessBinary {
            flash,
            footers: &[],
            header: parsed,
            credential,
        }
    }

    #[test]
    fn the_loader_hook_reads_the_key_index_from_the_accepted_credential() {
        let assigner = KeyIndexAssigner::new(DFU_ID);
        let dfu = binary("tock-ota-dfu", Some(0));
        let impostor = binary("tock-ota-dfu", Some(1));
        let unsigned = binary("tock-ota-dfu", None);
        assert!(assigner.to_short_id(&dfu) == ShortId::Fixed(DFU_ID));
        assert!(assigner.to_short_id(&impostor) != ShortId::Fixed(DFU_ID));
        assert!(matches!(
            assigner.to_short_id(&unsigned),
            ShortId::LocallyUnique
        ));
        // Two binaries signed with the DFU key cannot both run: same id.
        let second = binary("another-name", Some(0));
        assert!(!assigner.different_identifier(&dfu, &second));
        assert!(assigner.different_identifier(&dfu, &impostor));
    }
}

#[test]
fn the_filter_leaves_install_and_revert_to_the_dfu_app_and_confirm_to_all() {
    let other = ShortId::Fixed(NonZeroU32::new(0x8000_1234).unwrap());
    let driver = app_update::DRIVER_NUM;
    use app_update::command::{CONFIRM, EXISTS, INSTALL, REVERT, STATUS};
    for caller in [ShortId::LocallyUnique, other] {
        for cmd in [EXISTS, STATUS, CONFIRM] {
            assert_eq!(
                filter(DFU_ID, caller, &command(driver, cmd)),
                Ok(()),
                "{cmd}"
            );
        }
        for cmd in [INSTALL, REVERT] {
            assert_eq!(
                filter(DFU_ID, caller, &command(driver, cmd)),
                Err(ErrorCode::NODEVICE),
                "{cmd}"
            );
        }
    }
    // Anyone may subscribe to the completion upcall (the app in trial hears its confirm's
    // answer), to no other upcall number; allows stay the DFU app's.
    let subscribe = |subdriver_number| Syscall::Subscribe {
        driver_number: driver,
        subdriver_number,
        upcall_ptr: CapabilityPtr::default(),
        appdata: MachineRegister::default(),
    };
    for caller in [ShortId::LocallyUnique, other, ShortId::Fixed(DFU_ID)] {
        assert_eq!(
            filter(DFU_ID, caller, &subscribe(app_update::upcall::DONE)),
            Ok(())
        );
    }
    assert_eq!(
        filter(DFU_ID, other, &subscribe(app_update::upcall::DONE + 1)),
        Err(ErrorCode::NODEVICE)
    );
    let allow = Syscall::ReadOnlyAllow {
        driver_number: driver,
        subdriver_number: 0,
        allow_address: core::ptr::null(),
        allow_size: 0,
    };
    assert_eq!(filter(DFU_ID, other, &allow), Err(ErrorCode::NODEVICE));
    for cmd in [EXISTS, STATUS, INSTALL, CONFIRM, REVERT] {
        assert_eq!(
            filter(DFU_ID, ShortId::Fixed(DFU_ID), &command(driver, cmd)),
            Ok(())
        );
    }
}
