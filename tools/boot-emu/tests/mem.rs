//! The bootloader's `memcpy`/`memmove`/`memset`/`memcmp` and EABI entry points
//! (`bootloader/src/mem.rs`), run under the emulator by the `mem-test` program
//! (`fixtures/mem-test`, which includes the same source): every source/destination alignment
//! pair 0..3 × 0..3, lengths 0..=70 and a 4 KiB page, memmove overlapping both ways, memset
//! with 0, 0xFF and 0x1A5, memcmp's sign and first difference. Each result is checked against
//! what the case must produce, computed here.

use boot_emu::{build, run, BootConfig, Exit, Firmware};
use hw_models::SimBoard;

#[allow(dead_code)]
#[path = "../fixtures/mem-test/src/cases.rs"]
mod cases;

use cases::{Case, Fill, GUARD};

/// Where the program writes its results, and the case count just below.
const RESULTS: usize = 0x8_0000;
/// GPREGRET when the program finished every case.
const DONE: u32 = 0x4D;

fn digest(buf: &[u8], returned_offset: Option<usize>) -> u32 {
    let off = returned_offset.map_or(cases::NO_RETURN, |o| o as u32);
    cases::fnv(cases::fnv(cases::FNV_START, buf), &off.to_le_bytes())
}

/// The word the program must write for `case`.
fn expected(case: Case) -> u32 {
    let w = case.window();
    match case {
        Case::Copy {
            src_align,
            dst_align,
            len,
        } => {
            let src: Vec<u8> = (0..w).map(cases::source_pattern).collect();
            let mut dst: Vec<u8> = (0..w).map(cases::destination_pattern).collect();
            let (s, d) = (GUARD + src_align, GUARD + dst_align);
            dst[d..d + len].copy_from_slice(&src[s..s + len]);
            digest(&dst, Some(d))
        }
        Case::Move {
            src_align,
            shift,
            len,
        } => {
            let mut buf: Vec<u8> = (0..w).map(cases::source_pattern).collect();
            let s = GUARD + src_align;
            let d = s.wrapping_add_signed(shift);
            buf.copy_within(s..s + len, d);
            digest(&buf, Some(d))
        }
        Case::Fill {
            func,
            dst_align,
            c,
            len,
        } => {
            let mut dst: Vec<u8> = (0..w).map(cases::destination_pattern).collect();
            let d = GUARD + dst_align;
            dst[d..d + len].fill(c as u8);
            digest(&dst, (func == Fill::Memset).then_some(d))
        }
        Case::Compare { len, diff, .. } => {
            let mut a: Vec<u8> = (0..len + GUARD).map(cases::compare_pattern).collect();
            let mut b = a.clone();
            if let Some((k, a_greater)) = diff {
                for (j, (va, vb)) in cases::difference(a_greater).into_iter().enumerate() {
                    a[k + j] = va;
                    b[k + j] = vb;
                }
            }
            let order = a[..len].cmp(&b[..len]) as i32;
            cases::compare_word(order, i32::from(a[..len] != b[..len]))
        }
    }
}

#[test]
fn mem_functions_match_their_definitions_for_every_alignment_and_length() {
    let elf = build::test_program_elf("mem-test").unwrap_or_else(|e| panic!("{e}"));
    let fw = Firmware::from_path(&elf).unwrap();
    let mut board = SimBoard::new(1);
    for (addr, bytes) in &fw.flash_segments {
        board.nvmc().load(*addr, bytes);
    }
    let clock = board.clock.clone();
    let cfg = BootConfig {
        stop_at_kernel: false,
        max_instructions: 500_000_000,
        ..BootConfig::default()
    };
    let report = run(&fw, board.qspi.port(), board.internal.port(), &clock, &cfg).unwrap();
    assert!(
        matches!(report.exit, Exit::Halted { .. }) && report.gpregret == DONE,
        "the program did not finish: {:?}, GPREGRET {:#x}",
        report.exit,
        report.gpregret
    );

    let mut all = Vec::new();
    cases::for_each(|c| all.push(c));
    let flash = board.nvmc().raw().to_vec();
    let word = |at: usize| u32::from_le_bytes(flash[at..at + 4].try_into().unwrap());
    assert_eq!(word(RESULTS - 4) as usize, all.len(), "cases run");
    let wrong: Vec<String> = all
        .iter()
        .enumerate()
        .filter_map(|(i, &case)| {
            let (got, want) = (word(RESULTS + 4 * i), expected(case));
            (got != want).then(|| format!("{case:?}: got {got:#010x}, want {want:#010x}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong, first ones:\n{}",
        wrong.len(),
        all.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
}
