//! Boots the device artifacts of `.ci/build-device` (bootloader ELF, kernel v1, DFU app TBF)
//! from reset under the emulator and reports how each power-on ends: the exit or the error that
//! names the first unmodelled register or behaviour, the console output, and where the
//! instructions went (kernel functions included). Power-ons follow each other with the UICR and
//! RESETREAS carried over, as on the board, until one does not end in a reset.
//!
//!     cargo run --release -p boot-emu --example device_probe -- target/device [instructions]

use boot_emu::{run, BootConfig, Exit, Firmware};
use hw_models::SimBoard;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: device_probe DEVICE_DIR")?);
    let budget: u64 = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("instruction budget: {e}"))?,
        None => 100_000_000,
    };
    let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let bootloader = Firmware::from_elf(&read("bootloader.elf")?).map_err(|e| e.to_string())?;
    let kernel = Firmware::from_elf(&read("kernel-v1.elf")?).map_err(|e| e.to_string())?;
    let mut board = SimBoard::new(1);
    for (addr, bytes) in &bootloader.flash_segments {
        board.nvmc().load(*addr, bytes);
    }
    board.nvmc().load(0x8000, &read("kernel-v1.bin")?);
    let dfu = read("tock-ota-dfu.tbf")?;
    board.nvmc().load(0x4_0000, &dfu);
    // Further apps after it, as tockloader would place them: every `extra-app-*.tbf`, by name.
    let mut extra: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("extra-app-") && n.ends_with(".tbf"))
        .collect();
    extra.sort();
    let mut at = 0x4_0000 + dfu.len() as u32;
    for name in extra {
        let tbf = read(&name)?;
        println!("{name} at {at:#x}");
        board.nvmc().load(at, &tbf);
        at += tbf.len() as u32;
    }
    // Profiles name kernel functions too.
    let mut symbols = bootloader.clone();
    symbols.symbols.extend(kernel.symbols);

    let mut cfg = BootConfig {
        stop_at_kernel: false,
        max_instructions: budget,
        budget_ends_run: true,
        profile: true,
        ..BootConfig::default()
    };
    for boot in 1..=4 {
        let clock = board.clock.clone();
        let report = run(
            &symbols,
            board.qspi.port(),
            board.internal.port(),
            &clock,
            &cfg,
        )
        .map_err(|e| format!("power-on {boot}: {e}"))?;
        println!(
            "power-on {boot}: {:?} after {} instructions, {} us simulated",
            report.exit, report.instructions, report.simulated_us
        );
        println!("console: {:?}", String::from_utf8_lossy(&report.console));
        for f in &report.faults {
            println!("fault: {f:?} in {}", symbols.function_at(f.pc));
        }
        let mut profile: Vec<_> = report.profile.iter().collect();
        profile.sort_by_key(|(_, n)| std::cmp::Reverse(**n));
        for (function, n) in profile.iter().take(15) {
            println!("{n:>12} {function}");
        }
        if report.exit != Exit::SystemReset {
            break;
        }
        cfg.uicr = report.uicr.clone();
        cfg.resetreas = boot_emu::rig::RESETREAS_SREQ;
    }
    Ok(())
}
