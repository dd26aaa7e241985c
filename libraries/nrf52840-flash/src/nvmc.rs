//! nRF52840 internal flash through the NVMC, behind `embedded-storage`.
//!
//! Writes are 32-bit words at word-aligned addresses (`WRITE_SIZE` 4) and erases whole 4 KiB
//! pages. Words of all ones are skipped: programming them changes nothing on the cells but
//! would spend tWRITE and one of the two writes a word allows between erases (nWRITE).

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

use crate::error::{FlashError, Misalignment};
use crate::port::NvmcPort;

/// 1 MiB of internal flash.
pub const CAPACITY: u32 = 1024 * 1024;
/// Erase unit.
pub const PAGE_SIZE: u32 = 4096;
/// tWRITE, µs: one 32-bit word (nRF52840 Product Specification, maximum).
pub const T_WRITE_US: u64 = 41;
/// tERASEPAGE, µs: one 4 KiB page (nRF52840 Product Specification, maximum).
pub const T_ERASEPAGE_US: u64 = 85_000;
/// Writes allowed per word between erases (nWRITE).
pub const N_WRITE: u8 = 2;

/// The NVMC's physical limit, in seconds, for erasing `pages` pages and writing `words` words at
/// the maxima above (the CPU stalls for both, so nothing overlaps).
pub fn erase_and_write_s(pages: u64, words: u64) -> f64 {
    (pages * T_ERASEPAGE_US + words * T_WRITE_US) as f64 / 1e6
}

/// The internal-flash driver.
pub struct NvmcFlash<P: NvmcPort> {
    port: P,
}

impl<P: NvmcPort> NvmcFlash<P> {
    /// A driver over `port`.
    pub fn new(port: P) -> Self {
        NvmcFlash { port }
    }

    /// The port (the register-backed NVMC or the host model).
    pub fn port(&mut self) -> &mut P {
        &mut self.port
    }

    fn check(offset: u32, len: usize, granule: u32) -> Result<(), FlashError> {
        if u64::from(offset) + len as u64 > u64::from(CAPACITY) {
            return Err(FlashError::OutOfBounds {
                addr: offset,
                len: len.min(u32::MAX as usize) as u32,
                capacity: CAPACITY,
            });
        }
        for v in [offset, len as u32] {
            if v % granule != 0 {
                return Err(FlashError::Misaligned {
                    what: Misalignment::Granularity,
                    value: v,
                });
            }
        }
        Ok(())
    }
}

impl<P: NvmcPort> ErrorType for NvmcFlash<P> {
    type Error = FlashError;
}

impl<P: NvmcPort> ReadNorFlash for NvmcFlash<P> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        Self::check(offset, bytes.len(), 1)?;
        self.port.read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        CAPACITY as usize
    }
}

impl<P: NvmcPort> NorFlash for NvmcFlash<P> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE_SIZE as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if from > to {
            return Err(FlashError::BadLength {
                len: 0,
                max: CAPACITY,
            });
        }
        Self::check(from, (to - from) as usize, PAGE_SIZE)?;
        for page in (from..to).step_by(PAGE_SIZE as usize) {
            self.port.erase_page(page)?;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        Self::check(offset, bytes.len(), 4)?;
        for (i, chunk) in bytes.chunks_exact(4).enumerate() {
            let word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if word != u32::MAX {
                self.port.write_word(offset + 4 * i as u32, word)?;
            }
        }
        Ok(())
    }
}
