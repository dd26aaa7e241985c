//! The real bootloader ELF (built for the target at test time) under emulation, on the DK
//! layout, against the hw-models flash models.

use boot_core::{Reason, State};
use boot_emu::bench::ImageMaker;
use boot_emu::images::McuBoot;
use boot_emu::rig::{kernel_image, Rig, NEW_KERNEL_SP, OLD_KERNEL_SP};
use boot_emu::{build, EmuError, Exit, Firmware, HwError, RunReport};
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
}

const NEW_KERNEL_LEN: usize = 12 * 1024 + 100;

fn new_kernel() -> Vec<u8> {
    kernel_image(0x8000, NEW_KERNEL_SP, NEW_KERNEL_LEN, 9)
}

fn old_kernel() -> Vec<u8> {
    kernel_image(0x8000, OLD_KERNEL_SP, OLD_KERNEL_LEN, 1)
}

/// A rig with `image` staged and requested.
fn staged(image: &[u8], hash: [u8; 32], seed: u64) -> Rig {
    let mut rig = Rig::new(firmware(), seed, OLD_KERNEL_LEN);
    rig.stage(image);
    rig.request_boot(hash, image.len() as u32);
    rig
}

/// Boots until the CPU reaches a kernel (resets in between are fine; a fault is not).
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

#[test]
fn a_valid_staged_image_is_installed_verified_and_booted_as_a_trial() {
    let maker = McuBoot {
        opts: SimSign::default(),
    };
    let (image, hash) = maker.signed(&new_kernel());
    let mut rig = staged(&image, hash, 3);
    let r = rig.boot(true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.exit,
        Exit::KernelJump {
            pc: 0x8008,
            sp: NEW_KERNEL_SP
        },
        "{r:?}"
    );
    assert!(rig.kernel_is(&new_kernel()));
    let status = rig.status().expect("a status record");
    assert_eq!(status.state, State::Trial);
    assert_eq!(status.image_hash, hash);
    assert!(r.acl_protects(0..0x8000));
    // The previous kernel's pages went to the revert slot first.
    let revert = rig.layout.revert.start as usize;
    assert_eq!(
        rig.board.chip().raw()[revert..revert + NEW_KERNEL_LEN],
        old_kernel()[..NEW_KERNEL_LEN]
    );

    // The kernel confirms; the next boot keeps it.
    rig.confirm(hash);
    let r = boot_to_kernel(&mut rig);
    assert_eq!(
        r.exit,
        Exit::KernelJump {
            pc: 0x8008,
            sp: NEW_KERNEL_SP
        }
    );
    assert_eq!(rig.status().unwrap().state, State::Confirmed);
}

#[test]
fn an_unconfirmed_trial_is_reverted() {
    let maker = McuBoot {
        opts: SimSign::default(),
    };
    let (image, hash) = maker.signed(&new_kernel());
    let mut rig = staged(&image, hash, 4);
    let mut last = None;
    for _ in 0..=rig.layout.max_trial_boots {
        last = Some(boot_to_kernel(&mut rig));
    }
    assert_eq!(
        last.unwrap().exit,
        Exit::KernelJump {
            pc: 0x8008,
            sp: OLD_KERNEL_SP
        }
    );
    assert!(rig.kernel_is(&old_kernel()));
    let status = rig.status().unwrap();
    assert_eq!(
        (status.state, status.reason),
        (State::Reverted, Reason::NotConfirmed)
    );
}

fn assert_refused(image: &[u8], hash: [u8; 32], reason: Reason) {
    let mut rig = staged(image, hash, 5);
    let r = rig.boot(true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.exit,
        Exit::KernelJump {
            pc: 0x8008,
            sp: OLD_KERNEL_SP
        },
        "{reason:?}"
    );
    assert!(rig.kernel_is(&old_kernel()), "{reason:?}");
    assert_eq!(
        r.counters.nvmc_page_erases + r.counters.nvmc_word_writes,
        0,
        "{reason:?}"
    );
    let status = rig.status().expect("a status record");
    assert_eq!((status.state, status.reason), (State::Rejected, reason));
}

#[test]
fn bad_images_are_refused_and_the_old_kernel_boots() {
    let good = McuBoot {
        opts: SimSign::default(),
    };
    let (image, hash) = good.bad_signature(&new_kernel());
    assert_refused(&image, hash, Reason::BadSignature);

    let (mut image, hash) = good.signed(&new_kernel());
    image[0x20 + 100] ^= 0x80; // payload byte: the hash no longer matches
    assert_refused(&image, hash, Reason::HashMismatch);

    let wrong_load = McuBoot {
        opts: SimSign {
            load_addr: 0x4_0000,
            ..SimSign::default()
        },
    };
    let (image, hash) = wrong_load.signed(&new_kernel());
    assert_refused(&image, hash, Reason::WrongLoadAddress);

    let too_big = kernel_image(0x8000, NEW_KERNEL_SP, 0x3_8000 + 4, 9);
    let (image, hash) = good.signed(&too_big);
    assert_refused(&image, hash, Reason::TooLarge);

    let (mut image, hash) = good.signed(&new_kernel());
    image[0] ^= 0xFF;
    assert_refused(&image, hash, Reason::BadMagic);
}

#[test]
fn power_cuts_during_install_recover_to_a_whole_kernel() {
    let maker = McuBoot {
        opts: SimSign::default(),
    };
    let (image, hash) = maker.signed(&new_kernel());
    // How many program/erase operations one install takes.
    let mut rig = staged(&image, hash, 6);
    let ops0 = rig.board.power.ops();
    boot_to_kernel(&mut rig);
    let total = rig.board.power.ops() - ops0;
    assert!(total > 4, "{total}");

    // A sample of the full campaign (`tock-ota bench power-cuts` runs every cut on the host
    // models): cuts before and inside operations spread over the install.
    let picks = [
        1,
        2,
        3,
        total / 4,
        total / 2,
        3 * total / 4,
        total - 1,
        total,
    ];
    for (i, &n) in picks.iter().enumerate() {
        for inside in [false, true] {
            let mut rig = staged(&image, hash, 100 + i as u64);
            if inside {
                rig.board.power.cut_inside(n);
            } else {
                rig.board.power.cut_after(n - 1);
            }
            let r = rig
                .boot(true)
                .unwrap_or_else(|e| panic!("cut {n} inside={inside}: {e}"));
            assert_eq!(r.exit, Exit::PowerLost, "cut {n} inside={inside}");
            rig.power_cycle();
            let r = boot_to_kernel(&mut rig);
            let Exit::KernelJump { sp, .. } = r.exit else {
                unreachable!()
            };
            if sp == NEW_KERNEL_SP {
                assert!(
                    rig.kernel_is(&new_kernel()),
                    "cut {n} inside={inside}: torn new kernel"
                );
                assert_eq!(rig.status().unwrap().state, State::Trial);
            } else {
                assert_eq!(sp, OLD_KERNEL_SP);
                assert!(
                    rig.kernel_is(&old_kernel()),
                    "cut {n} inside={inside}: torn old kernel"
                );
            }
        }
    }
}

#[test]
fn a_long_install_feeds_a_running_watchdog() {
    let maker = McuBoot {
        opts: SimSign::default(),
    };
    let (image, hash) = maker.signed(&new_kernel());
    let mut rig = staged(&image, hash, 7);
    // Started by the kernel before its soft reset: 0.25 s timeout, one reload register. The
    // install (4 page erases of 85 ms, backup, hashing) takes longer than that.
    rig.watchdog = Some((8192 - 1, 1));
    let r = rig.boot(true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.exit,
        Exit::KernelJump {
            pc: 0x8008,
            sp: NEW_KERNEL_SP
        },
        "{r:?}"
    );
    assert!(r.simulated_us > 250_000, "{}", r.simulated_us);
    assert!(r.counters.wdt_feeds > 0, "{r:?}");
}

#[test]
fn a_watchdog_reset_during_the_trial_reverts() {
    let maker = McuBoot {
        opts: SimSign::default(),
    };
    let (image, hash) = maker.signed(&new_kernel());
    let mut rig = staged(&image, hash, 8);
    let r = rig.boot(true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.exit,
        Exit::KernelJump {
            pc: 0x8008,
            sp: NEW_KERNEL_SP
        }
    );
    // The trial kernel hangs and the watchdog resets the chip.
    rig.resetreas = boot_emu::rig::RESETREAS_DOG;
    let r = boot_to_kernel(&mut rig);
    assert_eq!(
        r.exit,
        Exit::KernelJump {
            pc: 0x8008,
            sp: OLD_KERNEL_SP
        }
    );
    assert!(rig.kernel_is(&old_kernel()));
    let status = rig.status().unwrap();
    assert_eq!(
        (status.state, status.reason),
        (State::Reverted, Reason::WatchdogReset)
    );
}
