//! Flash timing report: simulated device time for program, read and erase on the
//! MX25R6435F (both power modes, sector vs 64 KiB block erase) and the nRF52840 internal
//! flash, beside the datasheet arithmetic the simulation should reproduce.
//!
//! The simulated figures run the real drivers (`nrf52840-flash`) over the host models
//! (`hw-models`), so they include what the arithmetic leaves out: WREN and command bytes,
//! WIP polling granularity, bounce-buffer and chunking overheads. They must agree within 2 %.

use std::fmt::Write as _;

use anyhow::{bail, Result};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use hw_models::nrf52840_flash::mx25r::{self, Operation, PowerMode};
use hw_models::nrf52840_flash::EraseStrategy;
use hw_models::SimBoard;
use serde::Serialize;

/// Largest allowed disagreement between simulation and arithmetic.
pub const TOLERANCE: f64 = 0.02;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Amount of data per operation, KiB (a multiple of 64).
    #[arg(long, default_value_t = 512)]
    pub kib: u32,
    /// Print a JSON list of rows instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One report row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub device: String,
    pub mode: String,
    pub operation: String,
    pub bytes: u64,
    pub simulated_s: f64,
    pub datasheet_s: f64,
}

impl Row {
    /// Relative difference of the simulation from the arithmetic.
    pub fn deviation(&self) -> f64 {
        (self.simulated_s - self.datasheet_s).abs() / self.datasheet_s
    }
}

/// QSPI SCK the driver uses in `mode`.
fn sck_hz(mode: PowerMode) -> f64 {
    match mode {
        PowerMode::HighPerformance => 32e6,
        PowerMode::UltraLowPower => 8e6,
    }
}

fn mode_name(mode: PowerMode) -> &'static str {
    match mode {
        PowerMode::HighPerformance => "high-performance",
        PowerMode::UltraLowPower => "ultra-low-power",
    }
}

/// Test data without 0xFF bytes (0xFF would program nothing).
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn timed(board: &mut SimBoard, f: impl FnOnce(&mut SimBoard) -> Result<()>) -> Result<f64> {
    let t0 = board.clock.now_us();
    f(board)?;
    Ok((board.clock.now_us() - t0) as f64 / 1e6)
}

fn qspi_rows(mode: PowerMode, bytes: u32) -> Result<Vec<Row>> {
    let mut board = SimBoard::with_mode(1, mode);
    let sck = sck_hz(mode);
    let pages = f64::from(bytes / mx25r::PAGE_SIZE);
    let typ = |op| mx25r::typical_us(op, mode) as f64 / 1e6;
    let mut rows = Vec::new();
    let mut row = |operation: &str, simulated_s, datasheet_s| {
        rows.push(Row {
            device: "MX25R6435F".into(),
            mode: mode_name(mode).into(),
            operation: operation.into(),
            bytes: u64::from(bytes),
            simulated_s,
            datasheet_s,
        })
    };

    // Sector erase: one 4 KiB tSE per sector.
    board.qspi.set_erase_strategy(EraseStrategy::SectorsOnly);
    let t = timed(&mut board, |board| Ok(board.qspi.erase(0, bytes)?))?;
    let sectors = f64::from(bytes / mx25r::SECTOR_SIZE);
    row(
        "erase (4 KiB sectors)",
        t,
        sectors * typ(Operation::EraseSector),
    );

    // 64 KiB block erase.
    board.qspi.set_erase_strategy(EraseStrategy::LargestBlocks);
    let t = timed(&mut board, |board| Ok(board.qspi.erase(0, bytes)?))?;
    let blocks = f64::from(bytes / mx25r::BLOCK64_SIZE);
    row(
        "erase (64 KiB blocks)",
        t,
        blocks * typ(Operation::EraseBlock64),
    );

    // Program: per page tPP plus WREN (8 clocks) and PP4IO (8 opcode + 6 address clocks,
    // 2 clocks per byte on four lines).
    let payload = data(bytes as usize);
    let t = timed(&mut board, |board| Ok(board.qspi.write(0, &payload)?))?;
    let per_page_clocks = 8.0 + 8.0 + 6.0 + 2.0 * f64::from(mx25r::PAGE_SIZE);
    row(
        "program (256 B pages)",
        t,
        pages * (typ(Operation::PageProgram) + per_page_clocks / sck),
    );

    // Read: READ4IO, 2 clocks per byte on four lines.
    let mut back = vec![0u8; bytes as usize];
    let t = timed(&mut board, |board| Ok(board.qspi.read(0, &mut back)?))?;
    if back != payload {
        bail!("read-back of {bytes} bytes differs from what was programmed");
    }
    row("read (quad I/O)", t, 2.0 * f64::from(bytes) / sck);
    Ok(rows)
}

fn internal_rows(bytes: u32) -> Result<Vec<Row>> {
    let mut board = SimBoard::new(1);
    let base = 0x8_0000u32.min(0x10_0000 - bytes);
    let mut rows = Vec::new();
    let t = timed(&mut board, |board| {
        Ok(board.internal.erase(base, base + bytes)?)
    })?;
    rows.push(Row {
        device: "nRF52840 internal".into(),
        mode: "NVMC".into(),
        operation: "erase (4 KiB pages)".into(),
        bytes: u64::from(bytes),
        simulated_s: t,
        datasheet_s: f64::from(bytes / 4096) * 85e-3,
    });
    let payload = data(bytes as usize);
    let t = timed(&mut board, |board| {
        Ok(board.internal.write(base, &payload)?)
    })?;
    rows.push(Row {
        device: "nRF52840 internal".into(),
        mode: "NVMC".into(),
        operation: "program (32-bit words)".into(),
        bytes: u64::from(bytes),
        simulated_s: t,
        datasheet_s: f64::from(bytes / 4) * 41e-6,
    });
    rows.push(overlap_row(&mut board, base, bytes)?);
    Ok(rows)
}

/// Installing `bytes` into internal flash while the old contents are backed up into QSPI
/// (sector erase and page programs started between NVMC operations): the QSPI work hides
/// behind the CPU stalls, so the total is the NVMC floor. Timing only: a power-safe order
/// is the bootloader's business.
fn overlap_row(board: &mut SimBoard, base: u32, bytes: u32) -> Result<Row> {
    let page = 4096usize;
    let backup = 0x40_0000u32;
    let new_image = data(bytes as usize);
    let mut old = vec![0u8; page];
    let t = timed(board, |b| {
        for (i, chunk) in new_image.chunks(page).enumerate() {
            let addr = base + (i * page) as u32;
            let qaddr = backup + (i * page) as u32;
            b.internal.read(addr, &mut old)?;
            b.qspi.wait()?;
            b.qspi.start_erase_sector(qaddr)?;
            b.internal.erase(addr, addr + page as u32)?;
            for (k, part) in chunk.chunks(mx25r::PAGE_SIZE as usize).enumerate() {
                let off = k * mx25r::PAGE_SIZE as usize;
                b.qspi.wait()?;
                b.qspi
                    .start_program_page(qaddr + off as u32, &old[off..off + part.len()])?;
                b.internal.write(addr + off as u32, part)?;
            }
        }
        Ok(b.qspi.wait()?)
    })?;
    Ok(Row {
        device: "internal + MX25R6435F".into(),
        mode: "high-performance".into(),
        operation: "install + backup overlap".into(),
        bytes: u64::from(bytes),
        simulated_s: t,
        datasheet_s: f64::from(bytes / 4096) * 85e-3 + f64::from(bytes / 4) * 41e-6,
    })
}

/// All rows for `bytes` (a multiple of 64 KiB, at most 1 MiB).
pub fn rows(bytes: u32) -> Result<Vec<Row>> {
    if bytes == 0 || !bytes.is_multiple_of(mx25r::BLOCK64_SIZE) || bytes > 0x10_0000 {
        bail!("size must be a non-zero multiple of 64 KiB up to 1024 KiB, got {bytes} bytes");
    }
    let mut rows = qspi_rows(PowerMode::HighPerformance, bytes)?;
    rows.extend(qspi_rows(PowerMode::UltraLowPower, bytes)?);
    rows.extend(internal_rows(bytes)?);
    Ok(rows)
}

/// The human-readable table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:<17} {:<25} {:>6} {:>12} {:>12} {:>7}",
        "device", "mode", "operation", "KiB", "simulated s", "datasheet s", "diff"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<22} {:<17} {:<25} {:>6} {:>12.4} {:>12.4} {:>6.2}%",
            r.device,
            r.mode,
            r.operation,
            r.bytes / 1024,
            r.simulated_s,
            r.datasheet_s,
            100.0 * r.deviation()
        );
    }
    out
}

pub fn run(args: Args) -> Result<()> {
    let rows = rows(args.kib.saturating_mul(1024))?;
    let text = if args.json {
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        table(&rows)
            + &format!(
                "datasheet: MX25R6435F typical tPP/tSE/tBE64 per mode; nRF52840 PS tWRITE {} us, \
                 tERASEPAGE {} ms; QSPI SCK 32 MHz (HP) / 8 MHz (ULP), quad I/O\n",
                hw_models::nvmc::T_WRITE_US,
                hw_models::nvmc::T_ERASEPAGE_US / 1000
            )
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    let off: Vec<_> = rows.iter().filter(|r| r.deviation() > TOLERANCE).collect();
    if !off.is_empty() {
        bail!(
            "{} row(s) disagree with the datasheet by more than {}%",
            off.len(),
            TOLERANCE * 100.0
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_matches_datasheet_arithmetic_on_64_kib() {
        let rows = rows(64 * 1024).unwrap();
        assert_eq!(rows.len(), 11);
        for r in &rows {
            assert!(
                r.deviation() <= TOLERANCE,
                "{} {} {}: simulated {} s vs datasheet {} s",
                r.device,
                r.mode,
                r.operation,
                r.simulated_s,
                r.datasheet_s
            );
        }
        let json = serde_json::to_value(&rows).unwrap();
        for key in [
            "device",
            "mode",
            "operation",
            "bytes",
            "simulated_s",
            "datasheet_s",
        ] {
            assert!(json[0].get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn rejects_sizes_that_are_not_whole_blocks() {
        assert!(rows(1000).is_err());
        assert!(rows(0).is_err());
        assert!(rows(2 * 1024 * 1024).is_err());
    }
}
