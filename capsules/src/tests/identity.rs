//! ShortId assignment from the signing key, and the syscall filter.

use core::num::NonZeroU32;

use kernel::errorcode::ErrorCode;
use kernel::process::ShortId;
use kernel::syscall::Syscall;
use kernel::utilities::capability_ptr::CapabilityPtr;
use kernel::utilities::machine_register::MachineRegister;

use crate::identity::{filter, short_id_for, DFU_KEY_INDEX};
use crate::{bulk_scan, staged_update};

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
        assert_eq!(
            filter(DFU_ID, caller, &command(bulk_scan::DRIVER_NUM, 1)),
            Ok(())
        );
        assert_eq!(filter(DFU_ID, caller, &command(1, 1)), Ok(()));
    }
    for cmd in 0..=10 {
        assert_eq!(
            filter(DFU_ID, ShortId::Fixed(DFU_ID), &command(driver, cmd)),
            Ok(())
        );
    }
}
