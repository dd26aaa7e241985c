//! The boundary between the drivers and the hardware.
//!
//! A port performs exactly what one nRF52840 peripheral task does and nothing more: the
//! register-backed ports in [`crate::hw`] start the task and wait for its READY event, the host
//! models in `hw-models` simulate the same task. Everything above (alignment fix-ups, page
//! splitting, busy polling, erase planning) lives in the drivers so that it is tested on the host.

use crate::error::FlashError;

/// Length selector of the QSPI ERASE task (`ERASE.LEN`): the peripheral offers only these three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QspiEraseLen {
    /// 4 KiB sector erase (opcode 0x20).
    Sector4K,
    /// 64 KiB block erase (opcode 0xD8).
    Block64K,
    /// Whole-chip erase (opcode 0xC7).
    All,
}

/// One nRF52840 QSPI peripheral, configured for quad I/O read (READ4IO) and quad page
/// program (PP4IO) with 24-bit addresses and 256-byte program pages.
pub trait QspiPort {
    /// READSTART: EasyDMA `dst.len()` bytes from `flash_addr` into `dst`.
    ///
    /// `dst` must be word aligned in RAM, its length a non-zero multiple of 4 and `flash_addr`
    /// word aligned; the peripheral does not check this, it transfers wrong data.
    fn read(&mut self, flash_addr: u32, dst: &mut [u8]) -> Result<(), FlashError>;

    /// WRITESTART: the peripheral sends WREN, then a page program for each 256-byte page the
    /// transfer touches (polling WIP between pages), and signals READY once the last data byte
    /// is out. The flash keeps programming the last page after this returns.
    /// Same alignment rules as [`QspiPort::read`].
    fn write(&mut self, flash_addr: u32, src: &[u8]) -> Result<(), FlashError>;

    /// ERASESTART: the peripheral sends WREN and the erase command; READY comes once the
    /// command is out and the flash erases in the background.
    fn erase(&mut self, flash_addr: u32, len: QspiEraseLen) -> Result<(), FlashError>;

    /// Custom instruction (CINSTRCONF/CINSTRDAT): `opcode` followed by `data.len()` (≤ 8)
    /// bytes, full duplex: on return `data` holds the bytes clocked in. With `wren` the
    /// peripheral sends WREN first (CINSTRCONF.WREN).
    fn custom(&mut self, opcode: u8, data: &mut [u8], wren: bool) -> Result<(), FlashError>;

    /// Sets the SCK frequency (IFCONFIG1.SCKFREQ); returns the frequency actually used.
    fn set_sck_hz(&mut self, hz: u32) -> u32;

    /// Waits `us` microseconds (a timer on the board, the simulated clock on the host).
    fn delay_us(&mut self, us: u32);
}

/// The nRF52840 NVMC and the memory-mapped internal flash.
pub trait NvmcPort {
    /// Reads through the memory map (any alignment).
    fn read(&mut self, addr: u32, dst: &mut [u8]) -> Result<(), FlashError>;
    /// CONFIG = WEN, one 32-bit store at `addr` (word aligned), wait for READY (tWRITE).
    fn write_word(&mut self, addr: u32, word: u32) -> Result<(), FlashError>;
    /// CONFIG = EEN, ERASEPAGE = `addr` (page aligned), wait for READY (tERASEPAGE).
    fn erase_page(&mut self, addr: u32) -> Result<(), FlashError>;
}
