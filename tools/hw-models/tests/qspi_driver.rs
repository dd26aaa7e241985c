//! The QSPI driver over the models: byte-exact round trips for every buffer alignment and
//! length, non-blocking operation and overlap with the NVMC.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use hw_models::SimBoard;
use nrf52840_flash::{FlashError, PowerMode};

/// Deterministic pattern without 0xFF bytes (0xFF programs nothing and would hide errors).
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(97));
            ((x >> 13) % 255) as u8
        })
        .collect()
}

#[repr(C, align(4))]
struct Aligned([u8; 1100]);

#[test]
fn round_trip_all_offsets_and_lengths_across_pages() {
    let mut board = SimBoard::new(1);
    let mut buf = Aligned([0; 1100]);
    let mut back = Aligned([0; 1100]);
    let mut flash_addr: u32 = 0x10_0000 - 1; // starts just before a sector/page boundary
    let mut case = 0u32;
    for len in 1..=1024usize {
        for buf_off in 0..4usize {
            // Move through flash, 1..3 bytes off word alignment, so programs cross pages.
            let data = pattern(case, len);
            buf.0[buf_off..buf_off + len].copy_from_slice(&data);
            board
                .qspi
                .write(flash_addr, &buf.0[buf_off..buf_off + len])
                .unwrap_or_else(|e| panic!("write len {len} off {buf_off}: {e}"));
            let read_off = (buf_off + 1) % 4; // a different RAM alignment for the read
            let out = &mut back.0[read_off..read_off + len];
            board.qspi.read(flash_addr, out).unwrap();
            assert_eq!(out, &data[..], "len {len} buffer offset {buf_off}");
            assert_eq!(
                &board.chip().raw()[flash_addr as usize..flash_addr as usize + len],
                &data[..]
            );
            // Neighbours untouched.
            assert_eq!(board.chip().raw()[flash_addr as usize + len], 0xFF);
            flash_addr += len as u32 + (case % 3) + 1;
            case += 1;
        }
    }
    assert!(flash_addr < 0x80_0000);
}

#[test]
fn reads_at_every_alignment_pairing() {
    let mut board = SimBoard::new(2);
    let data = pattern(9, 2048);
    board.chip().load(0x2000, &data);
    let mut buf = Aligned([0; 1100]);
    for flash_off in 0..4u32 {
        for ram_off in 0..4usize {
            for len in [1usize, 2, 3, 4, 5, 7, 8, 255, 256, 257, 600, 1024] {
                let out = &mut buf.0[ram_off..ram_off + len];
                board.qspi.read(0x2000 + flash_off, out).unwrap();
                let f = flash_off as usize;
                assert_eq!(
                    out,
                    &data[f..f + len],
                    "flash+{flash_off} ram+{ram_off} len {len}"
                );
            }
        }
    }
}

#[test]
fn out_of_bounds_is_reported_and_changes_nothing() {
    let mut board = SimBoard::new(3);
    let cap = board.qspi.capacity() as u32;
    assert!(matches!(
        board.qspi.write(cap - 2, &[0; 4]),
        Err(FlashError::OutOfBounds { .. })
    ));
    assert!(matches!(
        board.qspi.read(cap, &mut [0; 1]),
        Err(FlashError::OutOfBounds { .. })
    ));
    assert!(matches!(
        board.qspi.erase(cap - 4096, cap + 4096),
        Err(FlashError::OutOfBounds { .. })
    ));
    assert!(matches!(
        board.qspi.erase(1, 4096),
        Err(FlashError::Misaligned { .. })
    ));
    assert!(board.chip().raw().iter().all(|&b| b == 0xFF));
}

#[test]
fn programming_a_programmed_byte_to_other_bits_is_caught() {
    let mut board = SimBoard::new(4);
    board.qspi.write(0x100, &[0x0F]).unwrap();
    assert_eq!(
        board.qspi.write(0x100, &[0xF0]),
        Err(FlashError::NotErased { addr: 0x100 })
    );
    // Clearing more bits is fine.
    board.qspi.write(0x100, &[0x0E]).unwrap();
    assert_eq!(board.chip().raw()[0x100], 0x0E);
}

#[test]
fn non_blocking_program_and_busy() {
    let mut board = SimBoard::new(5);
    board.qspi.start_program_page(0x300, &[1, 2, 3]).unwrap();
    assert!(board.qspi.is_busy().unwrap());
    assert_eq!(
        board.qspi.start_program_page(0x400, &[1]),
        Err(FlashError::Busy)
    );
    board.qspi.wait().unwrap();
    assert!(!board.qspi.is_busy().unwrap());
    assert_eq!(&board.chip().raw()[0x300..0x303], &[1, 2, 3]);
    assert!(matches!(
        board.qspi.start_program_page(0x3FF, &[1, 2]),
        Err(FlashError::CrossesPage { .. })
    ));
    assert!(matches!(
        board.qspi.start_program_page(0x300, &[0; 257]),
        Err(FlashError::BadLength { .. })
    ));
}

#[test]
fn qspi_erase_overlaps_nvmc_work() {
    let mut board = SimBoard::new(6);
    let t0 = board.clock.now_us();
    board.qspi.start_erase_sector(0x1000).unwrap();
    board.internal.erase(0x8_0000, 0x8_1000).unwrap(); // 85 ms CPU stall
    board.qspi.wait().unwrap(); // 40 ms erase finished meanwhile
    let elapsed = board.clock.now_us() - t0;
    assert!((85_000..86_000).contains(&elapsed), "elapsed {elapsed} µs");
}

#[test]
fn block_erase_plan_and_32k_custom_instruction() {
    let mut board = SimBoard::new(7);
    board.qspi.write(0x1_0000, &[0; 16]).unwrap();
    board.qspi.erase(0, 0x2_1000).unwrap();
    let stats = board.chip().stats();
    assert_eq!(stats.block64_erases, 2);
    assert_eq!(stats.sector_erases, 1);
    board.qspi.start_erase_block32(0x8000).unwrap();
    board.qspi.wait().unwrap();
    assert_eq!(board.chip().stats().block32_erases, 1);
    assert!(matches!(
        board.qspi.start_erase_block32(0x1000),
        Err(FlashError::Misaligned { .. })
    ));
    assert!(board.chip().raw()[..0x2_1000].iter().all(|&b| b == 0xFF));
}

#[test]
fn ultra_low_power_mode_runs_at_8_mhz_and_slower() {
    let mut board = SimBoard::with_mode(8, PowerMode::UltraLowPower);
    assert_eq!(board.chip().mode(), PowerMode::UltraLowPower);
    assert_eq!(board.qspi.port().sck_hz(), 8_000_000);
    let t0 = board.clock.now_us();
    board.qspi.write(0, &[0u8; 256]).unwrap();
    let t = board.clock.now_us() - t0;
    assert!((3_200..3_300).contains(&t), "ULP page program took {t} µs");

    let mut hp = SimBoard::new(8);
    assert_eq!(hp.chip().mode(), PowerMode::HighPerformance);
    let t0 = hp.clock.now_us();
    hp.qspi.write(0, &[0u8; 256]).unwrap();
    let t = hp.clock.now_us() - t0;
    assert!((850..900).contains(&t), "HP page program took {t} µs");
}

#[test]
fn deep_power_down_and_wake() {
    let mut board = SimBoard::new(9);
    board.qspi.deep_power_down().unwrap();
    assert!(board.chip().is_deep_power_down());
    assert_eq!(
        board.qspi.read(0, &mut [0; 4]),
        Err(FlashError::DeepPowerDown)
    );
    board.qspi.wake().unwrap();
    board.qspi.read(0, &mut [0; 4]).unwrap();
    assert_eq!(board.qspi.read_jedec_id().unwrap(), [0xC2, 0x28, 0x17]);
}

#[test]
fn boards_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<SimBoard>();
    let mut board = SimBoard::new(10);
    let handle = std::thread::spawn(move || {
        board.qspi.write(0, &[7; 8]).unwrap();
        board
    });
    let board = handle.join().unwrap();
    assert_eq!(&board.chip().raw()[..8], &[7; 8]);
}
