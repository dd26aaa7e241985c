//! boot-core on the nRF52840 and its DK (as `embassy-boot-nrf` sits beside `embassy-boot`):
//! the chip's QSPI flash driver as boot-core's [`BackgroundNor`], the POWER.RESETREAS decode, and
//! the DK's flash layout [`NRF52840_DK`]. boot-core itself knows no chip.
#![no_std]
#![forbid(unsafe_code)]

use boot_core::{BackgroundNor, Layout, Region, ResetReason};
use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use nrf52840_flash::port::QspiPort;
use nrf52840_flash::QspiFlash;

/// The nRF52840-DK layout (`docs/layout.md`). The bootloader's linker script, the Tock board's
/// `layout.ld`, the update-region's `Config::nrf52840dk` and the DFU app's image limit are tested
/// against it.
pub const NRF52840_DK: Layout = Layout {
    bootloader: Region::new(0x0000_0000, 0x7000),
    state_page: Region::new(0x0000_7000, 0x1000),
    kernel_slot: Region::new(0x0000_8000, 0x3_8000),
    apps: Region::new(0x0004_0000, 0xC_0000),
    request_sector: Region::new(0x00_0000, 0x1000),
    journal: Region::new(0x00_1000, 0xF000),
    staging: Region::new(0x10_0000, 0x10_0000),
    revert: Region::new(0x20_0000, 0x10_0000),
    max_trial_boots: 3,
};

/// QSPI: the DK's received-stream area. A compressed image or a delta patch is received here
/// (not into the staging slot); the kernel then rebuilds the plain signed image from it into the
/// staging slot (`ota-reconstruct`), and finalize, request and install run as for a plain image.
/// Shaped like the staging slot (its last sector is the progress record), so the update-region
/// policy runs on it unchanged (`update_region::Config::nrf52840dk_stream`). The bootloader never
/// reads it.
pub const NRF52840_DK_STREAM: Region = Region::new(0x30_0000, 0x4_0000);

/// The DK kernel's report ring for legacy advertising (bulk-scan), bytes: about 100 full-size
/// advertisements. The board allocates it; the simulator's kernel model gives the DFU app the same.
pub const NRF52840_DK_SCAN_RING_BYTES: usize = 4096;
/// The DK kernel's report ring for extended and periodic events (ext_scan, with the board's
/// `ble5` feature), in whole reports of `dfu_abi::ext_scan::MAX_REPORT` bytes: the fewest with no
/// report dropped in the simulator as the DFU app runs (docs/ble5.md, "On the DK board"). The
/// board allocates it; the simulator's kernel model gives the DFU app the same.
pub const NRF52840_DK_EXT_RING_REPORTS: usize = 5;

/// Why the chip last reset, from the nRF52840 POWER.RESETREAS register value (bit 1 = DOG).
pub fn reset_reason(resetreas: u32) -> ResetReason {
    ResetReason {
        watchdog: resetreas & (1 << 1) != 0,
    }
}

/// The QSPI flash driver, owned or borrowed.
pub trait Qspi {
    type Port: QspiPort;
    fn qspi(&mut self) -> &mut QspiFlash<Self::Port>;
    fn qspi_ref(&self) -> &QspiFlash<Self::Port>;
}

impl<P: QspiPort> Qspi for QspiFlash<P> {
    type Port = P;
    fn qspi(&mut self) -> &mut QspiFlash<P> {
        self
    }
    fn qspi_ref(&self) -> &QspiFlash<P> {
        self
    }
}

impl<P: QspiPort> Qspi for &mut QspiFlash<P> {
    type Port = P;
    fn qspi(&mut self) -> &mut QspiFlash<P> {
        self
    }
    fn qspi_ref(&self) -> &QspiFlash<P> {
        self
    }
}

/// The QSPI flash driver (owned, or `&mut` borrowed) lent to boot-core: its `NorFlash`
/// operations, plus erase and program started in the chip's background while the CPU copies
/// internal flash.
pub struct BackgroundQspi<F>(pub F);

type Flash<F> = QspiFlash<<F as Qspi>::Port>;

impl<F: Qspi> ErrorType for BackgroundQspi<F> {
    type Error = <Flash<F> as ErrorType>::Error;
}

impl<F: Qspi> ReadNorFlash for BackgroundQspi<F> {
    const READ_SIZE: usize = <Flash<F> as ReadNorFlash>::READ_SIZE;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        ReadNorFlash::read(self.0.qspi(), offset, bytes)
    }
    fn capacity(&self) -> usize {
        ReadNorFlash::capacity(self.0.qspi_ref())
    }
}

impl<F: Qspi> NorFlash for BackgroundQspi<F> {
    const WRITE_SIZE: usize = <Flash<F> as NorFlash>::WRITE_SIZE;
    const ERASE_SIZE: usize = <Flash<F> as NorFlash>::ERASE_SIZE;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        NorFlash::erase(self.0.qspi(), from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        NorFlash::write(self.0.qspi(), offset, bytes)
    }
}

impl<F: Qspi> BackgroundNor for BackgroundQspi<F> {
    fn start_erase_sector(&mut self, addr: u32) -> Result<(), Self::Error> {
        self.0.qspi().start_erase_sector(addr)
    }
    fn start_program_page(&mut self, addr: u32, data: &[u8]) -> Result<(), Self::Error> {
        self.0.qspi().start_program_page(addr, data)
    }
    fn is_busy(&mut self) -> Result<bool, Self::Error> {
        self.0.qspi().is_busy()
    }
    fn wait_idle(&mut self) -> Result<(), Self::Error> {
        self.0.qspi().wait()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boot_core::{LayoutError, PAGE};

    #[test]
    fn dk_layout_is_valid_and_locks_the_first_32_kib() {
        assert_eq!(NRF52840_DK.validate(), Ok(()));
        assert_eq!(NRF52840_DK.locked_region(), Region::new(0, 0x8000));
        assert_eq!(NRF52840_DK.kernel_slot.start, 0x8000);
    }

    #[test]
    fn bad_layouts_are_named() {
        let mut l = NRF52840_DK;
        l.journal.len = PAGE;
        assert_eq!(l.validate(), Err(LayoutError::JournalTooSmall));
        let mut l = NRF52840_DK;
        l.kernel_slot.start = 0x7800;
        assert_eq!(l.validate(), Err(LayoutError::Unaligned));
        let mut l = NRF52840_DK;
        l.state_page.start = 0x6000;
        assert_eq!(l.validate(), Err(LayoutError::Overlap));
    }

    #[test]
    fn resetreas_dog_bit_is_the_watchdog() {
        assert!(reset_reason(1 << 1).watchdog);
        assert!(reset_reason(u32::MAX).watchdog);
        assert!(!reset_reason(0).watchdog);
        assert!(!reset_reason(!(1 << 1)).watchdog);
    }
}
