//! The Cortex-M4 exception engine and the MPU enforcement, driven from the CPU by the
//! `exc-test` program (built for the target at test time): its handlers trace what they see
//! (stacked registers, EXC_RETURN, CFSR/HFSR/MMFAR/BFAR) and send the trace to the console.

use boot_emu::mpu::Access;
use boot_emu::nvic::{BUSFAULT, HARDFAULT, MEMMANAGE};
use boot_emu::{build, run, BootConfig, Exit, Firmware, RunReport};
use hw_models::SimBoard;

fn firmware() -> Firmware {
    static FW: std::sync::OnceLock<Firmware> = std::sync::OnceLock::new();
    FW.get_or_init(|| {
        let elf = build::test_program_elf("exc-test").unwrap_or_else(|e| panic!("{e}"));
        Firmware::from_path(&elf).unwrap()
    })
    .clone()
}

fn run_program() -> (Firmware, RunReport) {
    run_program_with(None)
}

fn run_program_with(at_svc: Option<boot_emu::SvcHook>) -> (Firmware, RunReport) {
    let fw = firmware();
    let mut board = SimBoard::new(3);
    for (addr, bytes) in &fw.flash_segments {
        board.nvmc().load(*addr, bytes);
    }
    let clock = board.clock.clone();
    let cfg = BootConfig {
        // The program is its own "kernel": WFI sites are looked for in this range.
        kernel_slot: 0..0x8000,
        stop_at_kernel: false,
        max_instructions: 5_000_000,
        at_svc,
        ..BootConfig::default()
    };
    let report = run(&fw, board.qspi.port(), board.internal.port(), &clock, &cfg)
        .unwrap_or_else(|e| panic!("{e}"));
    (fw, report)
}

fn console(report: &RunReport) -> String {
    String::from_utf8_lossy(&report.console).into_owned()
}

#[test]
fn exceptions_enter_and_return_by_priority_through_vtor() {
    let (_, report) = run_program();
    assert!(
        matches!(report.exit, Exit::Halted { .. }),
        "{:?}\n{}",
        report.exit,
        console(&report)
    );
    let trace = console(&report);
    let expect = [
        // SVC from the main stack: EXC_RETURN 0xFFFFFFF9, the answer in the stacked r0.
        "svc1/f9;add=2a;",
        // PendSV taken at once; with PRIMASK set only after CPSIE.
        "P;masked;P;",
        // A software-pended disabled interrupt stays pending and is not taken.
        "pending-disabled;",
        // SWI0 (0xC0) is preempted by SWI1 (0x40), which pends SWI2 (0xC0): SWI2 waits for
        // SWI0 to return, then tail-chains.
        "A<Bb",
        "A>C;",
        // SysTick wakes the WFI.
        "T;",
        // SVC from thread mode on PSP: EXC_RETURN 0xFFFFFFFD; CONTROL.SPSEL cleared again after.
        "svc1/fd;add=3;ctrl=0;",
    ];
    let mut rest = trace.as_str();
    for part in expect {
        let at = rest
            .find(part)
            .unwrap_or_else(|| panic!("{part:?} missing or out of order in {trace:?}"));
        rest = &rest[at + part.len()..];
    }
    assert!(!trace.contains('!'), "a wait timed out: {trace:?}");
    assert!(!trace.contains("unexpected"), "{trace:?}");
}

#[test]
fn unprivileged_accesses_outside_the_mpu_regions_fault_as_on_silicon() {
    let (fw, report) = run_program();
    let trace = console(&report);
    let sym = |name: &str| {
        fw.symbol(name)
            .unwrap_or_else(|| panic!("no symbol {name}"))
    };
    // What the harness took, instruction by instruction.
    let taken: Vec<(u32, u32, u32, Access)> = report
        .faults
        .iter()
        .map(|f| (f.exception, f.pc, f.addr, f.access))
        .collect();
    assert_eq!(
        taken,
        vec![
            (MEMMANAGE, sym("exc_bad_load"), 0x2000_0F00, Access::Read),
            (MEMMANAGE, sym("exc_bad_store"), 0x2000_0F00, Access::Write),
            (
                MEMMANAGE,
                sym("exc_bad_subregion"),
                0x2002_1C00,
                Access::Read
            ),
            (BUSFAULT, sym("exc_bad_ppb"), 0xE000_ED04, Access::Read),
            (MEMMANAGE, 0x2002_0100, 0x2002_0100, Access::Fetch),
            (MEMMANAGE, sym("exc_bad_flash_store"), 0, Access::Write),
            (HARDFAULT, sym("exc_escalated"), 0x2000_0F00, Access::Read),
        ],
        "{trace}"
    );
    // What the program's handlers saw: MMFSR.DACCVIOL|MMARVALID with MMFAR; BFSR.PRECISERR|
    // BFARVALID with BFAR (BFSR read by byte); IACCVIOL without an address; the refused loads
    // left r0 as it was (7); HFSR.FORCED for the escalated one.
    let expect = "svc2/fd;\
        M:82,0,20000f00,r0=7;\
        M:82,0,20000f00,r0=7;\
        M:82,0,20021c00,r0=7;\
        B:8200,0,e000ed04,r0=7;\
        M:1,0,-,r0=7;\
        M:82,0,0,r0=7;\
        svc3/fd;";
    assert!(trace.contains(expect), "{trace:?}");
    // The refused store left kernel RAM and flash unchanged, the refused loads never wrote
    // their register (the routine stored r0 = 7 into its own RAM), and privilege came back.
    assert!(trace.contains("ctrl=0;secret=c0ffee00;own=7;"), "{trace:?}");
    assert!(
        trace.contains("svc2/fd;H:82,40000000,20000f00,r0=9;svc3/fd;"),
        "{trace:?}"
    );
}

#[test]
fn the_svc_hook_sees_every_svc_with_its_immediate() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let hook = boot_emu::SvcHook(std::sync::Arc::new(move |imm, r| {
        log.lock().unwrap().push((imm, r));
    }));
    let (_, report) = run_program_with(Some(hook));
    let trace = console(&report);
    // The program's SVC handler traces `svc<immediate>/...` for each SVC it takes.
    let traced: Vec<u8> = trace
        .match_indices("svc")
        .filter_map(|(i, _)| trace[i + 3..].chars().next()?.to_digit(10))
        .map(|d| d as u8)
        .collect();
    let seen = seen.lock().unwrap();
    let immediates: Vec<u8> = seen.iter().map(|(imm, _)| *imm).collect();
    assert!(traced.len() >= 3, "{trace}");
    assert_eq!(immediates, traced, "{trace}");
}

/// `fixtures/<name>.S`, assembled and linked at 0 (binutils for arm-none-eabi, as `.ci/setup`
/// installs).
fn assembled(name: &str) -> Firmware {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("{name}.S"));
    let stem = name.replace('/', "-");
    let dir = std::env::temp_dir().join(format!("boot-emu-{stem}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (obj, elf) = (dir.join("program.o"), dir.join("program.elf"));
    for (tool, args) in [
        ("arm-none-eabi-as", vec!["-mcpu=cortex-m4", "-mthumb", "-o"]),
        ("arm-none-eabi-ld", vec!["-Ttext=0", "-e", "reset", "-o"]),
    ] {
        let (out, input) = if tool.ends_with("as") {
            (&obj, &src)
        } else {
            (&elf, &obj)
        };
        let status = std::process::Command::new(tool)
            .args(args)
            .arg(out)
            .arg(input)
            .status()
            .unwrap_or_else(|e| panic!("{tool}: {e} (install binutils-arm-none-eabi)"));
        assert!(status.success(), "{tool} failed");
    }
    let fw = Firmware::from_path(&elf).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    fw
}

/// `fw` with the 32-bit word at symbol `name` set to `value`.
fn with_word(mut fw: Firmware, name: &str, value: u32) -> Firmware {
    let at = fw
        .symbol(name)
        .unwrap_or_else(|| panic!("no symbol {name}"));
    let (base, bytes) = fw
        .flash_segments
        .iter_mut()
        .find(|(base, b)| (*base..*base + b.len() as u32).contains(&at))
        .unwrap();
    let off = (at - *base) as usize;
    bytes[off..off + 4].copy_from_slice(&value.to_le_bytes());
    fw
}

/// Runs an assembled program (its own "kernel": WFI sites are looked for in its 32 KiB) for at
/// most `max_instructions`.
fn run_assembled(
    fw: &Firmware,
    seed: u64,
    max_instructions: u64,
) -> Result<RunReport, boot_emu::EmuError> {
    let mut board = SimBoard::new(seed);
    for (addr, bytes) in &fw.flash_segments {
        board.nvmc().load(*addr, bytes);
    }
    let clock = board.clock.clone();
    let cfg = BootConfig {
        kernel_slot: 0..0x8000,
        stop_at_kernel: false,
        max_instructions,
        ..BootConfig::default()
    };
    run(fw, board.qspi.port(), board.internal.port(), &clock, &cfg)
}

/// `fixtures/stacking` with its process stack pointer set to `psp`.
fn stacking_program(psp: u32) -> Firmware {
    with_word(assembled("stacking/stacking"), "psp_value", psp)
}

fn run_stacking(psp: u32) -> (Firmware, Result<RunReport, boot_emu::EmuError>) {
    let fw = stacking_program(psp);
    let result = run_assembled(&fw, 4, 10_000);
    (fw, result)
}

#[test]
fn unprivileged_stacking_the_mpu_refuses_ends_the_run() {
    // The frame (0x2000_03E0..0x2000_0400) lies in the region: the SVC handler runs.
    let (fw, result) = run_stacking(0x2000_0400);
    let handler = fw.symbol("svc_handler").unwrap();
    match result {
        Ok(r) => assert_eq!(r.exit, Exit::Halted { pc: handler }),
        Err(e) => panic!("{e}"),
    }
    // With PSP 0x2000_0410 the frame is 0x2000_03F0..0x2000_0410: its last four words lie
    // past the region, so the run ends naming the first refused word, nothing is taken.
    let (_, result) = run_stacking(0x2000_0410);
    let e = result
        .expect_err("stacking outside the region was taken")
        .to_string();
    assert!(
        e.contains("refuses the unprivileged stacking at 0x20000400"),
        "{e}"
    );
}

/// Unicorn runs an IT block as one unit, so an exception entered from a hook inside one would
/// not reach its handler: the CPU would run on with the handler's SP, LR and IPSR. The harness
/// takes interrupts only outside IT blocks, however far the block reaches (IT then four 32-bit
/// instructions), and ends the run if an entry ever does not reach its vector. Here an ITEEE
/// block of 32-bit instructions runs under a SysTick of several periods (so interrupts land on
/// every instruction of the loop); its checksums must equal those of the same loop run with
/// interrupts masked.
#[test]
fn interrupts_inside_it_blocks_leave_the_interrupted_code_unchanged() {
    for reload in [319u32, 97, 211, 1009, 1999] {
        run_it_interrupt(reload);
    }
}

fn run_it_interrupt(reload: u32) {
    let fw = with_word(
        assembled("it-interrupt/it_interrupt"),
        "reload_value",
        reload,
    );
    let report =
        run_assembled(&fw, 5, 2_000_000).unwrap_or_else(|e| panic!("reload {reload}: {e}"));
    assert_eq!(
        report.exit,
        Exit::Halted {
            pc: fw.symbol("pass").unwrap()
        },
        "reload {reload}: halted at `fail` ({:#x}): checksums differ or too few interrupts",
        fw.symbol("fail").unwrap()
    );
}
