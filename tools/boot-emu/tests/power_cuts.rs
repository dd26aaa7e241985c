//! A sampled subset of the exhaustive power-cut campaign on the bootloader binary
//! (`tock-ota bench power-cuts --emulated` runs every cut): cuts before and inside every
//! `STRIDE`-th flash operation of the install, confirm and revert boots of a small update.

use boot_emu::bench::cuts::{exhaustive, Phase};
use boot_emu::images::McuBoot;
use boot_emu::{build, Firmware};
use boot_sim::SimSign;
use hw_models::OpKind;

/// The bench's update (`ota_emulate::power_cuts`): a 1 KiB kernel replaced by a two-page one.
const OLD_LEN: usize = 1024;
const NEW_LEN: usize = 4160;
/// Every 16th operation (and each phase's last): about 170 cuts, about a minute on 2 cores.
const STRIDE: u64 = 16;

#[test]
fn sampled_power_cuts_in_install_confirm_and_revert_all_recover() {
    let elf = build::bootloader_elf().unwrap_or_else(|e| panic!("{e}"));
    let fw = Firmware::from_path(&elf).unwrap();
    let maker = McuBoot {
        opts: SimSign::default(),
    };
    let c = exhaustive(&fw, &maker, OLD_LEN, NEW_LEN, STRIDE, 2);
    assert!(c.failures.is_empty(), "{:#?}", c.failures);
    assert_eq!(c.cuts, c.recovered);
    let phases: Vec<Phase> = c.by_phase.iter().map(|p| p.phase).collect();
    assert_eq!(phases, Phase::ALL);
    for p in &c.by_phase {
        assert!(p.operations > 0 && p.cuts >= 2, "{p:?}");
    }
    // The install writes and erases both flashes; the confirm and revert write the journal.
    for kind in OpKind::ALL {
        let k = c.by_kind.get(&kind).copied().unwrap_or_default();
        assert!(k.operations > 0, "no {kind:?} operation in the update");
    }
    eprintln!(
        "{} cuts over {} flash operations, {} boots",
        c.cuts, c.flash_operations, c.boots
    );
}
