//! Boots the device artifacts of `.ci/build-device` straight into the update's trial: the signed
//! v2 is put into the staging slot with a boot request (as the DFU app leaves them after a
//! finalize), then power-on after power-on runs (bootloader install, trial kernel, DFU app)
//! until one does not end in a reset. The whole-device scenario without its five-minute
//! transfer, for looking at the install and the trial boot.
//!
//!     cargo run --release -p boot-emu --example trial_probe -- target/device [instructions]
//!
//! With `TRIAL_PROFILE` set in the environment it also prints instructions per function.

use boot_emu::rig::{Rig, RESETREAS_SREQ};
use boot_emu::{run, BootConfig, Exit, Firmware};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: trial_probe DEVICE_DIR")?);
    let budget: u64 = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("instruction budget: {e}"))?,
        None => 300_000_000,
    };
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let bootloader = Firmware::from_elf(&read("bootloader.elf")?).map_err(|e| e.to_string())?;
    let kernel = Firmware::from_elf(&read("kernel-v1.elf")?).map_err(|e| e.to_string())?;
    let v2 = read("kernel-v2.signed.bin")?;
    let hash = ota_image::parse_image(&mut &v2[..])
        .map_err(|e| format!("kernel-v2.signed.bin: {e:?}"))?
        .hash
        .ok_or("kernel-v2.signed.bin has no hash TLV")?;
    let mut rig = Rig::new(bootloader.clone(), 1, 0);
    let slot = rig.kernel_slot().start;
    rig.board.nvmc().load(slot, &read("kernel-v1.bin")?);
    rig.board.nvmc().load(0x4_0000, &read("tock-ota-dfu.tbf")?);
    let mut symbols = bootloader;
    symbols.symbols.extend(kernel.symbols);
    let mut cfg = BootConfig {
        kernel_slot: rig.kernel_slot(),
        stop_at_kernel: false,
        max_instructions: budget,
        budget_ends_run: true,
        profile: std::env::var_os("TRIAL_PROFILE").is_some(),
        ..BootConfig::default()
    };
    // A new chip's first kernel boot programs the UICR and resets; the update comes later.
    let clock = rig.board.clock.clone();
    let first = run(
        &symbols,
        rig.board.qspi.port(),
        rig.board.internal.port(),
        &clock,
        &cfg,
    )
    .map_err(|e| format!("first power-on: {e}"))?;
    println!("first power-on (v1, UICR set-up): {:?}", first.exit);
    cfg.uicr = first.uicr;
    cfg.resetreas = RESETREAS_SREQ;
    rig.stage(&v2);
    rig.request_boot(hash, v2.len() as u32);
    for boot in 1..=4 {
        let clock = rig.board.clock.clone();
        let report = run(
            &symbols,
            rig.board.qspi.port(),
            rig.board.internal.port(),
            &clock,
            &cfg,
        )
        .map_err(|e| format!("power-on {boot}: {e}"))?;
        println!(
            "power-on {boot}: {:?} after {} instructions, {} us simulated, jump after {:?}",
            report.exit, report.instructions, report.simulated_us, report.instructions_to_jump
        );
        println!("console: {:?}", String::from_utf8_lossy(&report.console));
        for f in &report.faults {
            println!("fault: {f:?} in {}", symbols.function_at(f.pc));
        }
        let mut profile: Vec<_> = report.profile.iter().collect();
        profile.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        for (function, n) in profile.iter().take(40) {
            println!("{n:>12} {function}");
        }
        if let Exit::Halted { pc } = report.exit {
            println!("halted in {}", symbols.function_at(pc));
        }
        println!("status: {:?}", rig.status());
        // .ci/build-device signs kernel-v1.bin as v2: after the install the slot holds it (a
        // stale kernel-v2.signed.bin from another build would not).
        let k = read("kernel-v1.bin")?;
        println!(
            "kernel slot holds kernel-v1.bin (v2's payload): {}",
            rig.kernel_is(&k)
        );
        if report.exit != Exit::SystemReset {
            break;
        }
        cfg.uicr = report.uicr;
        cfg.resetreas = RESETREAS_SREQ;
    }
    Ok(())
}
