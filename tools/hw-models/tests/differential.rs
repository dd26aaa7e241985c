//! Random operation sequences on both drivers, checked against a plain byte-array shadow:
//! any offset, length and RAM alignment, erases of every size, non-blocking operations
//! interleaved with NVMC work.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use hw_models::SimBoard;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[repr(C, align(4))]
struct Aligned([u8; 4200]);

/// A window of the external flash small enough to shadow cheaply.
const WINDOW: u32 = 0x4_0000;

#[test]
fn qspi_driver_matches_a_shadow_under_random_operations() {
    for seed in 0..4u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut board = SimBoard::new(seed);
        let mut shadow = vec![0xFFu8; WINDOW as usize];
        let mut buf = Aligned([0; 4200]);
        for step in 0..400 {
            match rng.gen_range(0..10) {
                0 => {
                    let sector = rng.gen_range(0..WINDOW / 4096) * 4096;
                    let count = rng.gen_range(1..=20u32).min((WINDOW - sector) / 4096);
                    board.qspi.erase(sector, sector + count * 4096).unwrap();
                    shadow[sector as usize..(sector + count * 4096) as usize].fill(0xFF);
                }
                1 => {
                    let sector = rng.gen_range(0..WINDOW / 4096) * 4096;
                    board.qspi.start_erase_sector(sector).unwrap();
                    // Overlap with NVMC work, then make sure the erase finished.
                    board.internal.erase(0xF_0000, 0xF_1000).unwrap();
                    board.qspi.wait().unwrap();
                    shadow[sector as usize..sector as usize + 4096].fill(0xFF);
                }
                2..=5 => {
                    // Program only erased bytes, so every write is legal.
                    let len = rng.gen_range(1..=4096usize);
                    let addr = rng.gen_range(0..WINDOW - len as u32);
                    let range = addr as usize..addr as usize + len;
                    if shadow[range.clone()].iter().any(|&b| b != 0xFF) {
                        continue;
                    }
                    let off = rng.gen_range(0..4usize);
                    for b in &mut buf.0[off..off + len] {
                        *b = rng.gen_range(0..0xFF);
                    }
                    board.qspi.write(addr, &buf.0[off..off + len]).unwrap();
                    shadow[range].copy_from_slice(&buf.0[off..off + len]);
                }
                _ => {
                    let len = rng.gen_range(1..=4096usize);
                    let addr = rng.gen_range(0..WINDOW - len as u32);
                    let off = rng.gen_range(0..4usize);
                    board.qspi.read(addr, &mut buf.0[off..off + len]).unwrap();
                    assert_eq!(
                        &buf.0[off..off + len],
                        &shadow[addr as usize..addr as usize + len],
                        "seed {seed} step {step}: read {len} at {addr:#x}"
                    );
                }
            }
        }
        assert_eq!(&board.chip().raw()[..WINDOW as usize], &shadow[..]);
    }
}

#[test]
fn nvmc_driver_matches_a_shadow_under_random_operations() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut board = SimBoard::new(9);
    let region = 0x1_0000usize;
    let mut shadow = vec![0xFFu8; region];
    let mut writes = vec![0u8; region / 4];
    for _ in 0..2000 {
        if rng.gen_bool(0.05) {
            let page = rng.gen_range(0..region / 4096) * 4096;
            board
                .internal
                .erase(page as u32, page as u32 + 4096)
                .unwrap();
            shadow[page..page + 4096].fill(0xFF);
            writes[page / 4..(page + 4096) / 4].fill(0);
            continue;
        }
        let words = rng.gen_range(1..=16usize);
        let addr = rng.gen_range(0..region / 4 - words) * 4;
        // Clear a random subset of bits of what is stored: always legal if the word has a
        // write left.
        let mut data = shadow[addr..addr + 4 * words].to_vec();
        for b in &mut data {
            *b &= rng.gen::<u8>() | rng.gen::<u8>();
        }
        let needs_write = |i: usize| data[4 * i..4 * i + 4] != [0xFF; 4];
        if (0..words).any(|i| needs_write(i) && writes[addr / 4 + i] >= 2) {
            continue;
        }
        board.internal.write(addr as u32, &data).unwrap();
        for i in 0..words {
            if needs_write(i) {
                writes[addr / 4 + i] += 1;
            }
        }
        shadow[addr..addr + 4 * words].copy_from_slice(&data);
        let mut back = vec![0u8; 4 * words];
        board.internal.read(addr as u32, &mut back).unwrap();
        assert_eq!(back, data);
    }
    assert_eq!(&board.nvmc().raw()[..region], &shadow[..]);
}
