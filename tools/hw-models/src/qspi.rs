//! Model of the nRF52840 QSPI peripheral in front of the MX25R6435F; implements
//! [`nrf52840_flash::QspiPort`].
//!
//! - EasyDMA: the RAM buffer must be word aligned and its length a non-zero multiple of 4 (at
//!   most 0x3FFFF, the width of READ.CNT/WRITE.CNT); the flash address must be word aligned.
//!   Breaking a rule is reported as `Misaligned` naming the rule (the silicon would move the
//!   wrong bytes).
//! - WRITE: WREN + PP4IO per 256-byte page (IFCONFIG0.PPSIZE), waiting for WIP between pages;
//!   READY when the last byte is out, the part then programs in the background.
//! - ERASE: WREN + SE/BE64K/CE; READY when the command is out.
//! - Custom instructions: opcode + up to 8 data bytes, single line, optional WREN first.
//! - Transfer time from SCK and line count: READ4IO = 8 opcode + 6 address + 2 mode + 4 dummy
//!   clocks + 2 clocks/byte; PP4IO = 8 + 6 + 2/byte; single-line commands 8 clocks/byte.
//!   The clock advances while the CPU waits for READY.

use std::sync::{Arc, Mutex, MutexGuard};

use nrf52840_flash::mx25r::{self, Operation};
use nrf52840_flash::{FlashError, Misalignment, QspiEraseLen, QspiPort};

use crate::clock::SimClock;
use crate::mx25r6435f::Mx25r6435f;
use crate::power::Power;

/// Largest EasyDMA transfer (READ.CNT / WRITE.CNT are 18 bits wide).
pub const MAX_DMA_LEN: usize = 0x3_FFFF;
/// Clock-frequency choices of IFCONFIG1.SCKFREQ: 32 MHz / (SCKFREQ + 1).
const BASE_HZ: u32 = 32_000_000;

/// The QSPI peripheral model (the host-side `QspiPort`).
#[derive(Debug, Clone)]
pub struct QspiPeripheral {
    chip: Arc<Mutex<Mx25r6435f>>,
    clock: SimClock,
    power: Power,
    sck_hz: u32,
    residual_ps: u64,
    transactions: u64,
}

impl QspiPeripheral {
    /// A peripheral driving `chip` at 8 MHz.
    pub fn new(chip: Arc<Mutex<Mx25r6435f>>, clock: SimClock, power: Power) -> Self {
        QspiPeripheral {
            chip,
            clock,
            power,
            sck_hz: 8_000_000,
            residual_ps: 0,
            transactions: 0,
        }
    }

    /// The flash behind the peripheral.
    pub fn chip(&self) -> MutexGuard<'_, Mx25r6435f> {
        self.chip.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current SCK frequency.
    pub fn sck_hz(&self) -> u32 {
        self.sck_hz
    }

    /// Transactions (commands) sent so far.
    pub fn transactions(&self) -> u64 {
        self.transactions
    }

    fn spend_clocks(&mut self, clocks: u64) {
        self.transactions += 1;
        let ps = clocks * 1_000_000_000_000 / u64::from(self.sck_hz) + self.residual_ps;
        self.clock.advance_us(ps / 1_000_000);
        self.residual_ps = ps % 1_000_000;
    }

    fn check_dma(flash_addr: u32, ptr: usize, len: usize) -> Result<(), FlashError> {
        if !ptr.is_multiple_of(4) {
            return Err(FlashError::Misaligned {
                what: Misalignment::DmaBuffer,
                value: (ptr % 4) as u32,
            });
        }
        if len == 0 || len > MAX_DMA_LEN {
            return Err(FlashError::BadLength {
                len: len.min(u32::MAX as usize) as u32,
                max: MAX_DMA_LEN as u32,
            });
        }
        if !len.is_multiple_of(4) {
            return Err(FlashError::Misaligned {
                what: Misalignment::DmaLength,
                value: len as u32,
            });
        }
        if !flash_addr.is_multiple_of(4) {
            return Err(FlashError::Misaligned {
                what: Misalignment::QspiFlashAddress,
                value: flash_addr,
            });
        }
        if u64::from(flash_addr) + len as u64 > u64::from(mx25r::CAPACITY) {
            return Err(FlashError::OutOfBounds {
                addr: flash_addr,
                len: len as u32,
                capacity: mx25r::CAPACITY,
            });
        }
        Ok(())
    }
}

impl QspiPort for QspiPeripheral {
    fn read(&mut self, flash_addr: u32, dst: &mut [u8]) -> Result<(), FlashError> {
        self.power.check_on()?;
        Self::check_dma(flash_addr, dst.as_ptr() as usize, dst.len())?;
        let sck = self.sck_hz;
        self.chip().read_quad(flash_addr, dst, sck)?;
        self.spend_clocks(8 + 6 + 2 + 4 + 2 * dst.len() as u64);
        Ok(())
    }

    fn write(&mut self, flash_addr: u32, src: &[u8]) -> Result<(), FlashError> {
        self.power.check_on()?;
        Self::check_dma(flash_addr, src.as_ptr() as usize, src.len())?;
        let sck = self.sck_hz;
        let mut done = 0usize;
        while done < src.len() {
            let addr = flash_addr + done as u32;
            let n = ((mx25r::PAGE_SIZE - addr % mx25r::PAGE_SIZE) as usize).min(src.len() - done);
            if done > 0 {
                // The peripheral polls WIP before the next page.
                let until = self.chip().busy_until_us();
                self.clock.advance_to(until);
            }
            // Each command takes effect when CS# rises, after its bytes are clocked out.
            self.spend_clocks(8);
            self.chip().write_enable()?;
            self.spend_clocks(8 + 6 + 2 * n as u64);
            self.chip().page_program(addr, &src[done..done + n], sck)?;
            done += n;
        }
        Ok(())
    }

    fn erase(&mut self, flash_addr: u32, len: QspiEraseLen) -> Result<(), FlashError> {
        self.power.check_on()?;
        if !flash_addr.is_multiple_of(4) {
            return Err(FlashError::Misaligned {
                what: Misalignment::QspiFlashAddress,
                value: flash_addr,
            });
        }
        let op = match len {
            QspiEraseLen::Sector4K => Operation::EraseSector,
            QspiEraseLen::Block64K => Operation::EraseBlock64,
            QspiEraseLen::All => Operation::EraseChip,
        };
        self.spend_clocks(8);
        self.chip().write_enable()?;
        self.spend_clocks(if op == Operation::EraseChip { 8 } else { 32 });
        self.chip().erase(op, flash_addr)?;
        Ok(())
    }

    fn custom(&mut self, opcode: u8, data: &mut [u8], wren: bool) -> Result<(), FlashError> {
        self.power.check_on()?;
        if data.len() > 8 {
            return Err(FlashError::BadLength {
                len: data.len() as u32,
                max: 8,
            });
        }
        if wren {
            self.spend_clocks(8);
            self.chip().write_enable()?;
        }
        self.spend_clocks(8 * (1 + data.len() as u64));
        self.chip().custom(opcode, data)?;
        Ok(())
    }

    fn set_sck_hz(&mut self, hz: u32) -> u32 {
        // SCKFREQ divides 32 MHz by 1..=32; pick the fastest not above `hz`.
        let div = BASE_HZ.div_ceil(hz.max(1)).clamp(1, 32);
        self.sck_hz = BASE_HZ / div;
        self.sck_hz
    }

    fn delay_us(&mut self, us: u32) {
        self.clock.advance_us(u64::from(us));
    }
}
