//! The peripheral models, driven from the CPU by the `periph-test` program (built for the
//! target at test time).

use boot_emu::{build, run, stub_kernel, BootConfig, EmuError, Exit, Firmware, HwError};
use hw_models::SimBoard;

const KERNEL_SP: u32 = 0x2003_F000;

fn firmware() -> Firmware {
    static FW: std::sync::OnceLock<Firmware> = std::sync::OnceLock::new();
    FW.get_or_init(|| {
        let elf = build::fixture_elf().unwrap_or_else(|e| panic!("{e}"));
        Firmware::from_path(&elf).unwrap()
    })
    .clone()
}

fn board(fw: &Firmware) -> SimBoard {
    let board = SimBoard::new(11);
    for (addr, bytes) in &fw.flash_segments {
        board.nvmc().load(*addr, bytes);
    }
    board.nvmc().load(0x8000, &stub_kernel(0x8000, KERNEL_SP));
    board
}

fn boot(
    board: &mut SimBoard,
    fw: &Firmware,
    gpregret: u32,
    stop_at_kernel: bool,
) -> Result<boot_emu::RunReport, EmuError> {
    let clock = board.clock.clone();
    let cfg = BootConfig {
        gpregret,
        stop_at_kernel,
        max_instructions: 5_000_000,
        ..BootConfig::default()
    };
    run(fw, board.qspi.port(), board.internal.port(), &clock, &cfg)
}

#[test]
fn normal_scenario_drives_nvmc_and_qspi_and_jumps_to_the_kernel() {
    let fw = firmware();
    let mut b = board(&fw);
    let vectors = b.nvmc().raw()[..8].to_vec();
    let report = boot(&mut b, &fw, 0, true).unwrap();
    // The run stops at the jump: the stub kernel's store into word 0 never reaches the flash.
    assert_eq!(b.nvmc().raw()[..8], vectors[..]);
    assert_eq!(
        report.exit,
        Exit::KernelJump {
            pc: 0x8008,
            sp: KERNEL_SP
        },
        "{report:?}"
    );
    assert_eq!(report.gpregret, 0x42);
    assert!(report.icache_enabled);
    assert_eq!(report.counters.nvmc_page_erases, 1);
    assert_eq!(report.counters.nvmc_word_writes, 3);
    assert_eq!(report.counters.qspi_erases, 1);
    assert_eq!(report.counters.qspi_write_bytes, 256);
    assert_eq!(report.counters.qspi_read_bytes, 260);
    assert!(
        report.peak_stack_bytes > 500 && report.peak_stack_bytes < 4096,
        "{}",
        report.peak_stack_bytes
    );
    // The models hold what the CPU wrote.
    assert_eq!(
        &b.nvmc().raw()[0x8_0000..0x8_0008],
        &[0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0]
    );
    let chip = b.chip().raw()[0x1000..0x1100].to_vec();
    assert!(chip
        .iter()
        .enumerate()
        .all(|(i, &v)| v == (i as u8).wrapping_mul(7)));
    // NVMC time (one page erase, three word writes) is on the simulated clock.
    assert!(report.simulated_us >= 85_000, "{}", report.simulated_us);
    assert!(report.instructions_to_jump.unwrap() > 100);
}

#[test]
fn without_acl_the_stub_kernel_overwrites_the_bootloader() {
    let fw = firmware();
    let mut b = board(&fw);
    let report = boot(&mut b, &fw, 0, false).unwrap();
    assert_eq!(report.exit, Exit::Halted { pc: 0x8012 });
    assert_eq!(&b.nvmc().raw()[0..4], &[0, 0, 0, 0]);
}

#[test]
fn acl_protected_write_faults() {
    let fw = firmware();
    let mut b = board(&fw);
    let err = boot(&mut b, &fw, 1, true).unwrap_err();
    assert!(
        matches!(
            err,
            EmuError::Hw {
                err: HwError::AclViolation {
                    addr: 0x7000,
                    region: 0
                },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(b.nvmc().raw()[0x7000], 0xFF);
}

#[test]
fn misaligned_easydma_buffer_is_refused() {
    let fw = firmware();
    let mut b = board(&fw);
    let err = boot(&mut b, &fw, 2, true).unwrap_err();
    assert!(
        matches!(
            err,
            EmuError::Hw {
                err: HwError::DmaRule {
                    task: "READSTART",
                    ..
                },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn unknown_register_is_an_error() {
    let fw = firmware();
    let mut b = board(&fw);
    let err = boot(&mut b, &fw, 3, true).unwrap_err();
    assert!(
        matches!(
            err,
            EmuError::Hw {
                err: HwError::UnknownRegister {
                    addr: 0x4001_E50C,
                    write: true
                },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn single_register_ldm_w_runs_like_ldr() {
    let fw = firmware();
    let mut b = board(&fw);
    let report = boot(&mut b, &fw, 4, true).unwrap();
    assert!(matches!(report.exit, Exit::Halted { .. }));
    assert_eq!(report.gpregret, 0x44);
}

#[test]
fn fpu_needs_cpacr() {
    let fw = firmware();
    assert!(!fw.fpu_sites.is_empty());
    let mut b = board(&fw);
    let err = boot(&mut b, &fw, 5, true).unwrap_err();
    assert!(matches!(err, EmuError::FpuDisabled { .. }), "{err}");
    let report = boot(&mut b, &fw, 6, true).unwrap();
    assert_eq!(report.gpregret, 0x46);
    assert!(report.fpu_enabled);
}

#[test]
fn flash_store_without_write_enable_faults() {
    let fw = firmware();
    let mut b = board(&fw);
    let err = boot(&mut b, &fw, 7, true).unwrap_err();
    assert!(
        matches!(
            err,
            EmuError::Hw {
                err: HwError::FlashWriteNotEnabled { addr: 0x8_0000, .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn power_cut_stops_the_run_and_tears_the_operation() {
    let fw = firmware();
    let mut b = board(&fw);
    // The first program/erase operation of the run (the NVMC page erase) is torn.
    b.power.cut_inside(1);
    let report = boot(&mut b, &fw, 0, true).unwrap();
    assert_eq!(report.exit, Exit::PowerLost);
    b.power_cycle().unwrap();
    let report = boot(&mut b, &fw, 0, true).unwrap();
    assert!(matches!(report.exit, Exit::KernelJump { .. }));
}

#[test]
fn an_unfed_watchdog_resets_the_chip() {
    let fw = firmware();
    let mut b = board(&fw);
    let clock = b.clock.clone();
    // 10 ms timeout; the program's page erase alone takes 85 ms and it never feeds.
    let cfg = BootConfig {
        watchdog: Some((327, 1)),
        max_instructions: 5_000_000,
        ..BootConfig::default()
    };
    let report = run(&fw, b.qspi.port(), b.internal.port(), &clock, &cfg).unwrap();
    assert_eq!(report.exit, Exit::WatchdogReset);
    assert_eq!(report.counters.wdt_feeds, 0);
}
