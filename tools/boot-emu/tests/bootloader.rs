//! The real bootloader ELF (built for the target at test time) under emulation, on the DK
//! layout, against the hw-models flash models.

use boot_emu::rig::{kernel_image, Rig, NEW_KERNEL_SP, OLD_KERNEL_SP};
use boot_emu::{build, EmuError, Exit, Firmware, HwError};
use std::sync::OnceLock;

fn firmware() -> Firmware {
    static FW: OnceLock<Firmware> = OnceLock::new();
    FW.get_or_init(|| {
        let elf = build::bootloader_elf().unwrap_or_else(|e| panic!("{e}"));
        Firmware::from_path(&elf).unwrap()
    })
    .clone()
}

const OLD_KERNEL_LEN: usize = 16 * 1024;

#[test]
fn nothing_pending_jumps_to_the_kernel_with_its_stack_and_locks_the_bootloader() {
    let fw = firmware();
    let jump = fw.symbol("boot_jump");
    let mut rig = Rig::new(fw, 1, OLD_KERNEL_LEN);
    let slot = rig.layout.kernel_slot.start;
    let r = rig.boot(true).unwrap();
    assert_eq!(
        r.exit,
        Exit::KernelJump {
            pc: slot + 8,
            sp: OLD_KERNEL_SP
        },
        "{r:?}"
    );
    assert!(jump.is_some(), "the firmware exports boot_jump");
    assert_eq!(r.vtor, slot);
    let locked = rig.layout.locked_region();
    assert!(r.acl_protects(locked.start..locked.end()), "{:?}", r.acl);
    assert!(r.acl_protects(rig.layout.bootloader.start..rig.layout.state_page.end()));
    assert!(r.icache_enabled);
    // Nothing pending: no flash was written or erased.
    assert_eq!(r.counters.nvmc_word_writes + r.counters.nvmc_page_erases, 0);
    assert_eq!(r.counters.qspi_write_bytes + r.counters.qspi_erases, 0);
    assert!(rig.kernel_is(&kernel_image(slot, OLD_KERNEL_SP, OLD_KERNEL_LEN, 1)));
    eprintln!(
        "nothing pending: {} instructions, {} us, peak stack {} B",
        r.instructions_to_jump.unwrap(),
        r.simulated_us,
        r.peak_stack_bytes
    );
}

#[test]
fn the_kernel_cannot_write_the_bootloader_after_the_jump() {
    let mut rig = Rig::new(firmware(), 2, OLD_KERNEL_LEN);
    let before = rig.board.nvmc().raw()[..4].to_vec();
    let err = rig.boot(false).unwrap_err();
    assert!(
        matches!(err, EmuError::Hw { err: HwError::AclViolation { addr: 0, .. }, pc } if pc >= rig.layout.kernel_slot.start),
        "{err}"
    );
    assert_eq!(rig.board.nvmc().raw()[..4], before[..]);
    let _ = NEW_KERNEL_SP;
}
