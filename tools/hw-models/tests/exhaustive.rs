//! Exhaustive small cases: every old/new byte pair, every page-program start and length,
//! plus the driver's reaction to hung or wrong parts.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use hw_models::SimBoard;
use nrf52840_flash::mx25r::Operation;
use nrf52840_flash::FlashError;

const SCK: u32 = 32_000_000;

#[test]
fn qspi_program_rule_for_every_byte_pair() {
    let board = SimBoard::new(1);
    let mut chip = board.chip();
    for old in 0..=255u8 {
        chip.load(0, &[old; 256]);
        for new in 0..=255u8 {
            let addr = u32::from(new);
            chip.write_enable().unwrap();
            let r = chip.page_program(addr, &[new], SCK);
            let allowed = new == 0xFF || new & !old == 0;
            if allowed {
                assert_eq!(r, Ok(()), "old {old:#04x} new {new:#04x}");
                board.clock.advance_us(1_000);
                assert_eq!(chip.raw()[addr as usize], old & new);
            } else {
                assert_eq!(
                    r,
                    Err(FlashError::NotErased { addr }),
                    "old {old:#04x} new {new:#04x}"
                );
                assert_eq!(
                    chip.raw()[addr as usize],
                    old,
                    "refused program changed nothing"
                );
                // The refused command left WEL set; clear it the way the part would on the
                // next completed program.
                chip.page_program(addr, &[0xFF], SCK).unwrap();
                board.clock.advance_us(1_000);
            }
        }
    }
}

#[test]
fn nvmc_program_rule_for_every_byte_pair() {
    let board = SimBoard::new(2);
    let mut nvmc = board.nvmc();
    for old in 0..=255u8 {
        for new in 0..=255u8 {
            let addr = (u32::from(old) << 10) | (u32::from(new) << 2);
            nvmc.load(addr, &[old, 0xFF, 0xFF, 0xFF]);
            let word = u32::from(new) | 0xFFFF_FF00;
            let r = nvmc.write_word(addr, word);
            if word == u32::MAX || new & !old == 0 {
                assert_eq!(r, Ok(()), "old {old:#04x} new {new:#04x}");
                assert_eq!(nvmc.raw()[addr as usize], old & new);
            } else {
                assert_eq!(r, Err(FlashError::NotErased { addr }));
                assert_eq!(nvmc.raw()[addr as usize], old);
            }
        }
    }
}

#[test]
fn page_program_every_start_and_length_wraps_in_page() {
    let board = SimBoard::new(3);
    let mut chip = board.chip();
    let page = 0x700u32;
    for start in 0..256u32 {
        for len in [1usize, 2, 3, 4, 5, 31, 64, 127, 128, 200, 255, 256] {
            chip.load(page, &[0xFF; 256]);
            let data: Vec<u8> = (0..len).map(|i| (i as u8) & 0x7F).collect();
            chip.write_enable().unwrap();
            chip.page_program(page + start, &data, SCK).unwrap();
            board.clock.advance_us(1_000);
            let raw = chip.raw()[page as usize..page as usize + 256].to_vec();
            let mut want = [0xFFu8; 256];
            for (i, &d) in data.iter().enumerate() {
                want[(start as usize + i) % 256] = d;
            }
            assert_eq!(raw, want, "start {start} len {len}");
            assert_eq!(chip.raw()[page as usize + 256], 0xFF);
            assert_eq!(chip.raw()[page as usize - 1], 0xFF);
        }
    }
}

#[test]
fn every_erase_kind_restores_exactly_its_unit() {
    for (op, size) in [
        (Operation::EraseSector, 0x1000usize),
        (Operation::EraseBlock32, 0x8000),
        (Operation::EraseBlock64, 0x1_0000),
    ] {
        let board = SimBoard::new(4);
        let mut chip = board.chip();
        chip.load(0, &vec![0u8; 0x3_0000]);
        for offset in [0usize, 1, size / 2, size - 1] {
            let base = size;
            chip.load(0, &vec![0u8; 0x3_0000]);
            chip.write_enable().unwrap();
            chip.erase(op, (base + offset) as u32).unwrap();
            board.clock.advance_us(4_000_000);
            let raw = chip.raw();
            assert!(raw[base..base + size].iter().all(|&b| b == 0xFF));
            assert_eq!(raw[base - 1], 0);
            assert_eq!(raw[base + size], 0);
        }
    }
}

#[test]
fn a_hung_part_times_out_instead_of_spinning() {
    let mut board = SimBoard::new(5);
    board.qspi.start_erase_sector(0).unwrap();
    board.chip().set_stuck_busy(true);
    let t0 = board.clock.now_us();
    assert_eq!(board.qspi.wait(), Err(FlashError::Timeout));
    let waited = board.clock.now_us() - t0;
    // Twice the 240 ms sector-erase maximum, plus at most one poll interval.
    assert!((480_000..490_000).contains(&waited), "waited {waited} µs");
}

#[test]
fn a_wrong_or_missing_part_is_named() {
    let mut board = SimBoard::new(6);
    board.chip().set_jedec_id([0xEF, 0x40, 0x18]);
    assert_eq!(
        board.power_cycle(),
        Err(FlashError::WrongJedecId {
            found: [0xEF, 0x40, 0x18]
        })
    );
}

#[test]
fn reads_wait_for_a_running_operation() {
    let mut board = SimBoard::new(7);
    board.qspi.write(0x2000, &[0x12; 16]).unwrap();
    board.qspi.start_erase_sector(0x2000).unwrap();
    let mut b = [0u8; 16];
    board.qspi.read(0x2000, &mut b).unwrap();
    assert_eq!(b, [0xFF; 16]);
    assert_eq!(board.qspi.capacity(), 8 * 1024 * 1024);
}

#[test]
fn power_cut_mid_write_keeps_earlier_pages_and_loses_nothing_else() {
    let mut board = SimBoard::new(8);
    board.qspi.write(0x3000, &[0x21; 64]).unwrap();
    let data = vec![0x42u8; 1024];
    board.power.cut_after(2); // pages 1 and 2 of 4 are programmed
    assert_eq!(board.qspi.write(0x4000, &data), Err(FlashError::PowerLost));
    board.power_cycle().unwrap();
    let raw = board.chip().raw()[0x3000..0x4400].to_vec();
    assert_eq!(&raw[..64], &[0x21; 64], "data stored before is intact");
    assert_eq!(&raw[0x1000..0x1200], &data[..512]);
    assert!(raw[0x1200..0x1400].iter().all(|&b| b == 0xFF));
}
