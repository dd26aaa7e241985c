//! Macronix MX25R6435F: geometry, opcodes, status bits and datasheet timings.
//!
//! Figures: Macronix MX25R6435F datasheet (typical values, high-performance and ultra-low-power
//! modes) and the STM32Cube BSP component `mx25r6435f.h` (maximum erase times). See
//! `docs/flash.md`.

/// 8 MiB.
pub const CAPACITY: u32 = 8 * 1024 * 1024;
/// Page-program unit; a program wraps inside its page.
pub const PAGE_SIZE: u32 = 256;
/// Smallest erase unit.
pub const SECTOR_SIZE: u32 = 4096;
/// 32 KiB block.
pub const BLOCK32_SIZE: u32 = 32 * 1024;
/// 64 KiB block.
pub const BLOCK64_SIZE: u32 = 64 * 1024;
/// Manufacturer C2 (Macronix), memory type 28, density 17 (64 Mbit).
pub const JEDEC_ID: [u8; 3] = [0xC2, 0x28, 0x17];

/// Command opcodes.
pub mod opcode {
    /// Write enable: sets WEL.
    pub const WREN: u8 = 0x06;
    /// Read status register.
    pub const RDSR: u8 = 0x05;
    /// Read configuration registers CR1, CR2.
    pub const RDCR: u8 = 0x15;
    /// Write status + configuration registers (1 to 3 bytes).
    pub const WRSR: u8 = 0x01;
    /// Read JEDEC identification.
    pub const RDID: u8 = 0x9F;
    /// Quad I/O read.
    pub const READ4IO: u8 = 0xEB;
    /// Quad page program (4PP).
    pub const PP4IO: u8 = 0x38;
    /// 4 KiB sector erase.
    pub const SE: u8 = 0x20;
    /// 32 KiB block erase (not offered by the nRF QSPI ERASE task: sent as a custom instruction).
    pub const BE32K: u8 = 0x52;
    /// 64 KiB block erase.
    pub const BE64K: u8 = 0xD8;
    /// Chip erase.
    pub const CE: u8 = 0xC7;
    /// Deep power-down.
    pub const DP: u8 = 0xB9;
    /// Release from deep power-down.
    pub const RDP: u8 = 0xAB;
}

/// Status register bits.
pub mod status {
    /// Write in progress.
    pub const WIP: u8 = 1 << 0;
    /// Write enable latch.
    pub const WEL: u8 = 1 << 1;
    /// Quad enable (non-volatile): needed for the quad I/O commands.
    pub const QE: u8 = 1 << 6;
}

/// Configuration register 2, bit 1: 1 = high-performance mode, 0 = ultra-low-power (default).
pub const CR2_HIGH_PERFORMANCE: u8 = 1 << 1;

/// The flash's power mode; it bounds the SCK frequency and sets program/erase times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PowerMode {
    /// Ultra-low-power (power-on default): SCK up to 8 MHz, slower program/erase.
    #[default]
    UltraLowPower,
    /// High-performance: SCK up to 80 MHz (the nRF52840 QSPI stops at 32 MHz).
    HighPerformance,
}

impl PowerMode {
    /// Highest SCK frequency the flash accepts for quad I/O in this mode.
    pub const fn max_sck_hz(self) -> u32 {
        match self {
            PowerMode::UltraLowPower => 8_000_000,
            PowerMode::HighPerformance => 80_000_000,
        }
    }
}

/// Program and erase operations of the part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    PageProgram,
    EraseSector,
    EraseBlock32,
    EraseBlock64,
    EraseChip,
    WriteStatus,
}

/// Typical duration in µs (datasheet). Where the datasheet gives no high-performance figure
/// (32 KiB block, chip erase) the ultra-low-power figure is used.
pub const fn typical_us(op: Operation, mode: PowerMode) -> u64 {
    let hp = matches!(mode, PowerMode::HighPerformance);
    match op {
        Operation::PageProgram => {
            if hp {
                850
            } else {
                3_200
            }
        }
        Operation::EraseSector => {
            if hp {
                40_000
            } else {
                58_000
            }
        }
        Operation::EraseBlock32 => 1_000_000,
        Operation::EraseBlock64 => {
            if hp {
                480_000
            } else {
                800_000
            }
        }
        Operation::EraseChip => 120_000_000,
        Operation::WriteStatus => 20,
    }
}

/// Maximum duration in µs: beyond this the part is considered hung.
pub const fn max_us(op: Operation) -> u64 {
    match op {
        Operation::PageProgram => 10_000,
        Operation::EraseSector => 240_000,
        Operation::EraseBlock32 => 3_000_000,
        Operation::EraseBlock64 => 3_500_000,
        Operation::EraseChip => 240_000_000,
        Operation::WriteStatus => 30_000,
    }
}
