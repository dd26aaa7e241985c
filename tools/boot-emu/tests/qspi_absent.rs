//! The real bootloader ELF under emulation with the QSPI chip not answering at start-up
//! (a wrong JEDEC ID: the driver's bring-up fails) after sampled program/erase operations of an
//! install and of a revert. It may start the kernel only when the slot holds a whole kernel;
//! otherwise it waits in `safe_wait`, feeding a running watchdog. With the chip back, the next
//! power-on ends in a whole kernel. (The host campaign, `boot-sim`'s `tests/qspi_absent.rs`,
//! covers every operation.)

use boot_emu::bench::ImageMaker;
use boot_emu::images::McuBoot;
use boot_emu::rig::{kernel_image, Rig, NEW_KERNEL_SP, OLD_KERNEL_SP};
use boot_emu::{build, run, BootConfig, Exit, Firmware, RunReport};
use boot_sim::SimSign;
use std::sync::OnceLock;

fn firmware() -> Firmware {
    static FW: OnceLock<Firmware> = OnceLock::new();
    FW.get_or_init(|| {
        let elf = build::bootloader_elf().unwrap_or_else(|e| panic!("{e}"));
        Firmware::from_path(&elf).unwrap()
    })
    .clone()
}

const OLD_LEN: usize = 16 * 1024;
const NEW_LEN: usize = 12 * 1024 + 100;

fn old_kernel() -> Vec<u8> {
    kernel_image(0x8000, OLD_KERNEL_SP, OLD_LEN, 1)
}
fn new_kernel() -> Vec<u8> {
    kernel_image(0x8000, NEW_KERNEL_SP, NEW_LEN, 9)
}

/// A DK with the signed new kernel staged and its boot request written.
fn staged(seed: u64) -> Rig {
    let (image, hash) = McuBoot {
        opts: SimSign::default(),
    }
    .signed(&new_kernel());
    let mut rig = Rig::new(firmware(), seed, OLD_LEN);
    rig.stage(&image);
    rig.request_boot(hash, image.len() as u32);
    rig
}

/// Boots (power-on resets in between) until the CPU reaches a kernel.
fn boot_to_kernel(rig: &mut Rig) -> RunReport {
    for _ in 0..5 {
        let r = rig.boot(true).unwrap_or_else(|e| panic!("{e}"));
        match r.exit {
            Exit::KernelJump { .. } => return r,
            Exit::SystemReset | Exit::WatchdogReset => continue,
            Exit::PowerLost => rig.power_cycle(),
            other => panic!("boot ended with {other:?}"),
        }
    }
    panic!("no kernel reached in 5 boots");
}

fn whole(rig: &Rig) -> bool {
    rig.kernel_is(&old_kernel()) || rig.kernel_is(&new_kernel())
}

/// One power-on with the QSPI chip not answering and a running watchdog (0.25 s): whether the
/// bootloader jumped into the kernel (`true`) or waited in `safe_wait` (`false`).
fn start_without_qspi(rig: &mut Rig, what: &str) -> bool {
    let wait = rig
        .fw
        .symbol("safe_wait")
        .expect("the firmware exports safe_wait")
        & !1;
    rig.board.chip().set_jedec_id([0xFF; 3]);
    let cfg = BootConfig {
        kernel_slot: rig.kernel_slot(),
        max_instructions: 20_000_000,
        budget_ends_run: true,
        watch: vec![wait],
        watchdog: Some((8192 - 1, 1)),
        ..BootConfig::default()
    };
    let clock = rig.board.clock.clone();
    let r = run(
        &rig.fw,
        rig.board.qspi.port(),
        rig.board.internal.port(),
        &clock,
        &cfg,
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"));
    rig.board
        .chip()
        .set_jedec_id(nrf52840_flash::mx25r::JEDEC_ID);
    match r.exit {
        Exit::KernelJump { sp, .. } => {
            let want = if sp == NEW_KERNEL_SP {
                new_kernel()
            } else {
                assert_eq!(sp, OLD_KERNEL_SP, "{what}");
                old_kernel()
            };
            assert!(
                rig.kernel_is(&want),
                "{what}: jumped into a half-written slot"
            );
            true
        }
        Exit::Budget { pc } => {
            assert!(
                !r.watch_hits[&wait].is_empty(),
                "{what}: not in safe_wait (pc {pc:#x})"
            );
            assert!(r.simulated_us > 250_000, "{what}: {} us", r.simulated_us);
            assert!(r.counters.wdt_feeds > 0, "{what}: watchdog not fed");
            false
        }
        other => panic!("{what}: ended with {other:?}"),
    }
}

/// After a cut at each of `picks`, a start-up without QSPI, then the chip back.
fn sample(picks: &[u64], prepare: impl Fn(u64) -> Rig, what: &str) -> (u32, u32) {
    let (mut jumped, mut waited) = (0, 0);
    for (i, &n) in picks.iter().enumerate() {
        let mut rig = prepare(200 + i as u64);
        rig.board.power.cut_after(n);
        let r = rig.boot(true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.exit, Exit::PowerLost, "{what} op {n}");
        rig.power_cycle();
        let was_whole = whole(&rig);
        if start_without_qspi(&mut rig, &format!("{what} op {n}")) {
            jumped += 1;
        } else {
            waited += 1;
        }
        assert!(was_whole || waited > 0, "{what} op {n}");
        rig.power_cycle();
        boot_to_kernel(&mut rig);
        assert!(
            whole(&rig),
            "{what} op {n}: no whole kernel with the chip back"
        );
    }
    (jumped, waited)
}

#[test]
fn without_qspi_mid_install_the_bootloader_waits_and_finishes_once_it_is_back() {
    let mut rig = staged(1);
    let ops0 = rig.board.power.ops();
    boot_to_kernel(&mut rig);
    let total = rig.board.power.ops() - ops0;
    let picks = [1, total / 8, total / 3, total / 2, 3 * total / 4, total - 1];
    let (jumped, waited) = sample(&picks, staged, "install");
    assert!(
        waited >= 4 && jumped >= 1,
        "jumped {jumped} waited {waited}"
    );
}

#[test]
fn without_qspi_mid_revert_the_bootloader_waits_and_finishes_once_it_is_back() {
    // After the install, the trial kernel is reset by the watchdog: that boot reverts.
    let trial = |seed| {
        let mut rig = staged(seed);
        boot_to_kernel(&mut rig);
        rig.resetreas = boot_emu::rig::RESETREAS_DOG;
        rig
    };
    let mut rig = trial(2);
    let ops0 = rig.board.power.ops();
    boot_to_kernel(&mut rig);
    assert!(rig.kernel_is(&old_kernel()));
    let total = rig.board.power.ops() - ops0;
    let picks = [total / 4, total / 2, 3 * total / 4];
    let (_, waited) = sample(&picks, trial, "revert");
    assert!(waited >= 2, "waited {waited}");
}
