//! Model semantics: the hardware rules, misuse detection, power cuts and determinism.

use std::sync::{Arc, Mutex};

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use hw_models::{AclRegion, Mx25r6435f, Power, QspiPeripheral, SimBoard, SimClock};
use nrf52840_flash::mx25r::{opcode, Operation};
use nrf52840_flash::{FlashError, Misalignment, QspiEraseLen, QspiPort};

fn raw_port(seed: u64) -> (QspiPeripheral, SimClock, Power) {
    let clock = SimClock::new();
    let power = Power::new(clock.clone(), seed);
    let chip = Arc::new(Mutex::new(Mx25r6435f::new(
        clock.clone(),
        power.clone(),
        seed,
    )));
    let mut port = QspiPeripheral::new(chip, clock.clone(), power.clone());
    // QE on, as the driver's init does.
    port.custom(opcode::WRSR, &mut [0x40, 0, 0], true).unwrap();
    clock.advance_us(100);
    (port, clock, power)
}

#[repr(C, align(4))]
struct Aligned([u8; 64]);

#[test]
fn easydma_rules_are_enforced() {
    let (mut port, _, _) = raw_port(1);
    let mut buf = Aligned([0; 64]);
    for off in 1..4 {
        assert_eq!(
            port.read(0, &mut buf.0[off..off + 8]),
            Err(FlashError::Misaligned {
                what: Misalignment::DmaBuffer,
                value: off as u32
            })
        );
        assert_eq!(
            port.write(0, &buf.0[off..off + 8]),
            Err(FlashError::Misaligned {
                what: Misalignment::DmaBuffer,
                value: off as u32
            })
        );
    }
    for len in [1usize, 2, 3, 5, 6, 7] {
        assert!(matches!(
            port.read(0, &mut buf.0[..len]),
            Err(FlashError::Misaligned {
                what: Misalignment::DmaLength,
                ..
            })
        ));
    }
    assert!(matches!(
        port.read(2, &mut buf.0[..8]),
        Err(FlashError::Misaligned {
            what: Misalignment::QspiFlashAddress,
            ..
        })
    ));
    assert!(matches!(
        port.read(0, &mut buf.0[..0]),
        Err(FlashError::BadLength { .. })
    ));
    assert!(matches!(
        port.custom(opcode::RDID, &mut [0; 9], false),
        Err(FlashError::BadLength { .. })
    ));
}

#[test]
fn page_program_wraps_inside_the_page() {
    let (port, clock, _) = raw_port(2);
    let data: Vec<u8> = (0..16).collect();
    port.chip().write_enable().unwrap();
    port.chip().page_program(0x1F8, &data, 8_000_000).unwrap();
    clock.advance_us(10_000);
    let mut chip = port.chip();
    let raw = chip.raw();
    assert_eq!(&raw[0x1F8..0x200], &data[..8]);
    assert_eq!(&raw[0x100..0x108], &data[8..]); // wrapped to the page start
    assert_eq!(raw[0x200], 0xFF);
}

#[test]
fn program_and_erase_need_write_enable_and_idle() {
    let (port, clock, _) = raw_port(3);
    let mut chip = port.chip();
    assert_eq!(
        chip.page_program(0, &[0], 8_000_000),
        Err(FlashError::WriteNotEnabled)
    );
    assert_eq!(
        chip.erase(Operation::EraseSector, 0),
        Err(FlashError::WriteNotEnabled)
    );
    chip.write_enable().unwrap();
    chip.erase(Operation::EraseSector, 0).unwrap();
    assert!(chip.is_busy());
    assert_eq!(chip.write_enable(), Err(FlashError::Busy));
    assert_eq!(
        chip.read_quad(0, &mut [0; 4], 8_000_000),
        Err(FlashError::Busy)
    );
    let mut sr = [0];
    chip.custom(opcode::RDSR, &mut sr).unwrap();
    assert_eq!(sr[0] & 1, 1);
    clock.advance_us(58_000); // ULP typical sector erase
    chip.custom(opcode::RDSR, &mut sr).unwrap();
    assert_eq!(sr[0] & 3, 0, "WIP and WEL clear after the erase");
}

#[test]
fn quad_needs_qe_and_clock_within_mode() {
    let clock = SimClock::new();
    let power = Power::new(clock.clone(), 0);
    let mut chip = Mx25r6435f::new(clock.clone(), power, 0);
    assert_eq!(
        chip.read_quad(0, &mut [0; 4], 8_000_000),
        Err(FlashError::QuadNotEnabled)
    );
    chip.write_enable().unwrap();
    chip.custom(opcode::WRSR, &mut [0x40]).unwrap();
    clock.advance_us(100);
    assert_eq!(
        chip.read_quad(0, &mut [0; 4], 32_000_000),
        Err(FlashError::ClockTooFast {
            sck_hz: 32_000_000,
            max_hz: 8_000_000
        })
    );
    chip.read_quad(0, &mut [0; 4], 8_000_000).unwrap();
}

#[test]
fn erase_units_and_wear() {
    let (mut port, clock, _) = raw_port(4);
    let mut chip = port.chip();
    chip.load(0, &[0u8; 0x3_0000]);
    for (op, addr, size) in [
        (Operation::EraseSector, 0x1234, 0x1000u32),
        (Operation::EraseBlock32, 0x8000, 0x8000),
        (Operation::EraseBlock64, 0x1_0000, 0x1_0000),
    ] {
        chip.write_enable().unwrap();
        chip.erase(op, addr).unwrap();
        clock.advance_us(5_000_000);
        let base = addr & !(size - 1);
        let raw = chip.raw();
        assert!(raw[base as usize..(base + size) as usize]
            .iter()
            .all(|&b| b == 0xFF));
        assert_eq!(
            raw[(base + size) as usize],
            0,
            "erase stays inside its unit"
        );
        assert_eq!(chip.sector_erase_count(base), 1);
    }
    assert_eq!(chip.raw()[0xFFF], 0, "sector erase stays inside its sector");
    drop(chip);
    assert!(matches!(
        port.erase(2, QspiEraseLen::Sector4K),
        Err(FlashError::Misaligned {
            what: Misalignment::QspiFlashAddress,
            ..
        })
    ));
}

#[test]
fn nvmc_rules() {
    let mut board = SimBoard::new(5);
    let mut nvmc = board.nvmc();
    assert!(matches!(
        nvmc.write_word(0x1002, 0),
        Err(FlashError::Misaligned {
            what: Misalignment::NvmcWord,
            ..
        })
    ));
    nvmc.write_word(0x1000, 0xFFFF_00FF).unwrap();
    assert_eq!(
        nvmc.write_word(0x1000, 0xFF00_FFFF),
        Err(FlashError::NotErased { addr: 0x1000 })
    );
    nvmc.write_word(0x1000, 0x0F0F_00FF).unwrap();
    assert_eq!(nvmc.word_write_count(0x1000), 2);
    assert_eq!(
        nvmc.write_word(0x1000, 0x0000_0000),
        Err(FlashError::WriteLimitExceeded { addr: 0x1000 })
    );
    assert_eq!(nvmc.raw()[0x1000..0x1004], 0x0F0F_00FFu32.to_le_bytes());
    let t0 = board.clock.now_us();
    nvmc.erase_page(0x1000).unwrap();
    assert_eq!(board.clock.now_us() - t0, 85_000);
    assert_eq!(nvmc.word_write_count(0x1000), 0);
    assert_eq!(nvmc.page_erase_count(0x1000), 1);
    let t0 = board.clock.now_us();
    nvmc.write_word(0x1000, 0).unwrap();
    assert_eq!(board.clock.now_us() - t0, 41);
    drop(nvmc);
    // Driver granularity.
    assert!(matches!(
        board.internal.write(2, &[0; 4]),
        Err(FlashError::Misaligned { .. })
    ));
    assert!(matches!(
        board.internal.write(0, &[0; 3]),
        Err(FlashError::Misaligned { .. })
    ));
}

#[test]
fn acl_protects_until_reset() {
    let mut board = SimBoard::new(6);
    board
        .nvmc()
        .protect(AclRegion {
            addr: 0,
            size: 0x8000,
            deny_write: true,
            deny_read: false,
        })
        .unwrap();
    assert_eq!(
        board.internal.write(0x7FFC, &[0; 4]),
        Err(FlashError::AclProtected { addr: 0x7FFC })
    );
    assert_eq!(
        board.internal.erase(0x7000, 0x8000),
        Err(FlashError::AclProtected { addr: 0x7000 })
    );
    board.internal.write(0x8000, &[0; 4]).unwrap();
    let mut b = [0; 4];
    board.internal.read(0x7000, &mut b).unwrap();
    assert_eq!(b, [0xFF; 4]);
    board.power_cycle().unwrap();
    board.internal.write(0x7FFC, &[0; 4]).unwrap();
}

#[test]
fn cut_after_stops_before_the_next_operation() {
    let mut board = SimBoard::new(7);
    board.power.cut_after(3);
    assert_eq!(
        board.internal.write(0, &[0u8; 32]),
        Err(FlashError::PowerLost)
    );
    assert!(!board.power.is_on());
    assert_eq!(board.qspi.read(0, &mut [0; 4]), Err(FlashError::PowerLost));
    board.power_cycle().unwrap();
    let raw = board.nvmc().raw()[..32].to_vec();
    assert_eq!(&raw[..12], &[0; 12]);
    assert_eq!(&raw[12..], &[0xFF; 20]);
}

#[test]
fn torn_program_clears_a_subset_of_intended_bits() {
    let mut torn_some = false;
    for seed in 0..20 {
        let mut board = SimBoard::new(seed);
        board.power.cut_inside(1);
        assert_eq!(
            board.qspi.write(0x500, &[0u8; 64]),
            Err(FlashError::PowerLost)
        );
        board.power_cycle().unwrap();
        let raw = board.chip().raw()[0x500..0x540].to_vec();
        // Nothing outside the program was touched; inside, bits only went 1->0.
        assert_eq!(board.chip().raw()[0x540], 0xFF);
        if raw.iter().any(|&b| b != 0 && b != 0xFF) || (raw.contains(&0) && raw.contains(&0xFF)) {
            torn_some = true;
        }
        let mut nvmc_board = SimBoard::new(seed);
        nvmc_board.power.cut_inside(1);
        assert_eq!(
            nvmc_board.internal.write(0x10, &[0x0F; 4]),
            Err(FlashError::PowerLost)
        );
        nvmc_board.power_cycle().unwrap();
        let w = &nvmc_board.nvmc().raw()[0x10..0x14].to_vec();
        assert!(
            w.iter().all(|&b| b & 0x0F == 0x0F),
            "only intended bits clear: {w:?}"
        );
    }
    assert!(torn_some, "a torn program must leave partial data");
}

#[test]
fn torn_erase_is_neither_old_nor_erased() {
    for seed in 0..10 {
        let mut board = SimBoard::new(seed);
        board.nvmc().load(0x2000, &[0u8; 4096]);
        board.power.cut_inside(1);
        assert_eq!(
            board.internal.erase(0x2000, 0x3000),
            Err(FlashError::PowerLost)
        );
        board.power_cycle().unwrap();
        let page = board.nvmc().raw()[0x2000..0x3000].to_vec();
        assert!(page.iter().any(|&b| b != 0xFF) && page.iter().any(|&b| b != 0));

        board.chip().load(0x4000, &[0x5Au8; 4096]);
        board.power.cut_inside(1);
        assert_eq!(board.qspi.erase(0x4000, 0x5000), Err(FlashError::PowerLost));
        board.power_cycle().unwrap();
        let sector = board.chip().raw()[0x4000..0x5000].to_vec();
        assert!(sector.iter().any(|&b| b != 0xFF) && sector != vec![0x5A; 4096]);
        assert!(
            sector.iter().all(|&b| b & 0x5A == 0x5A),
            "erase only sets bits"
        );
    }
}

#[test]
fn a_cut_tears_the_qspi_operation_in_flight() {
    let mut board = SimBoard::new(8);
    board.chip().load(0x6000, &[0u8; 4096]);
    board.qspi.start_erase_sector(0x6000).unwrap(); // 40 ms in the background
    board.power.cut_after(0);
    assert_eq!(board.internal.erase(0, 0x1000), Err(FlashError::PowerLost));
    board.power_cycle().unwrap();
    let sector = board.chip().raw()[0x6000..0x7000].to_vec();
    assert!(sector.iter().any(|&b| b != 0xFF) && sector.iter().any(|&b| b != 0));

    // The same cut after the erase has finished leaves it complete.
    board.chip().load(0x6000, &[0u8; 4096]);
    board.qspi.start_erase_sector(0x6000).unwrap();
    board.internal.erase(0, 0x1000).unwrap(); // 85 ms: the erase is done
    board.power.cut_now();
    board.power_cycle().unwrap();
    assert!(board.chip().raw()[0x6000..0x7000]
        .iter()
        .all(|&b| b == 0xFF));
}

#[test]
fn same_seed_same_faults() {
    let run = |seed: u64| {
        let mut board = SimBoard::new(seed);
        board.chip().set_read_flip_probability(0.5);
        board.qspi.write(0, &[0x11; 300]).unwrap();
        let mut reads = vec![0u8; 300 * 8];
        for chunk in reads.chunks_mut(300) {
            board.qspi.read(0, chunk).unwrap();
        }
        board.power.cut_inside(2);
        let _ = board.qspi.write(0x1000, &[0; 600]);
        board.power_cycle().unwrap();
        let torn = board.chip().raw()[0x1000..0x1300].to_vec();
        (reads, torn, board.clock.now_us())
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
    assert!(
        a.0.chunks(300).any(|c| c != [0x11; 300]),
        "flips happen at p = 0.5"
    );
}

#[test]
fn a_soft_reset_lets_the_external_flash_finish() {
    let mut board = SimBoard::new(11);
    board.chip().load(0x6000, &[0u8; 4096]);
    board.qspi.start_erase_sector(0x6000).unwrap();
    let t0 = board.clock.now_us();
    board.reset().unwrap();
    assert!(
        board.clock.now_us() - t0 >= 40_000,
        "init waited for the erase"
    );
    assert!(board.chip().raw()[0x6000..0x7000]
        .iter()
        .all(|&b| b == 0xFF));

    // The same moment with a power cycle tears the erase.
    board.chip().load(0x6000, &[0u8; 4096]);
    board.qspi.start_erase_sector(0x6000).unwrap();
    board.power_cycle().unwrap();
    let sector = board.chip().raw()[0x6000..0x7000].to_vec();
    assert!(sector.iter().any(|&b| b != 0xFF) && sector.iter().any(|&b| b != 0));
}
