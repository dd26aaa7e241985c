//! Register-backed ports: the real nRF52840 QSPI and NVMC behind [`QspiPort`] / [`NvmcPort`].
//!
//! Each method starts one peripheral task and spins on its READY event/flag; all logic stays in
//! the drivers. These are the only places that dereference peripheral addresses.

use core::ptr;

use tock_registers::interfaces::{Readable, Writeable};

use crate::error::FlashError;
use crate::port::{NvmcPort, QspiEraseLen, QspiPort};
use crate::regs::{
    self, CinstrConf, Event, GpioRegisters, IfConfig0, IfConfig1, NvmcConfig, NvmcReady,
    NvmcRegisters, PinCnf, Psel, QspiCount, QspiEnable, QspiRegisters, Task,
};

/// QSPI pins of the nRF52840-DK (P0.19 SCK, P0.17 CSN, P0.20..P0.23 IO0..IO3).
#[derive(Clone, Copy, Debug)]
pub struct QspiPins {
    pub sck: u8,
    pub csn: u8,
    pub io: [u8; 4],
}

impl QspiPins {
    /// The nRF52840-DK wiring of the MX25R6435F.
    pub const NRF52840_DK: QspiPins = QspiPins {
        sck: 19,
        csn: 17,
        io: [20, 21, 22, 23],
    };
}

/// Rough busy-wait calibration: loop iterations per µs at 64 MHz.
const SPINS_PER_US: u32 = 16;

fn spin_us(us: u32) {
    for _ in 0..us.saturating_mul(SPINS_PER_US) {
        core::hint::spin_loop();
    }
}

/// Custom-instruction data bytes as CINSTRDAT0/1 hold them: byte 0 in DAT0 bits 7:0,
/// byte 4 in DAT1 bits 7:0 (at most 8 bytes).
pub fn pack_cinstr_data(data: &[u8]) -> [u32; 2] {
    let mut words = [0u32; 2];
    for (i, b) in data.iter().take(8).enumerate() {
        words[i / 4] |= u32::from(*b) << (8 * (i % 4));
    }
    words
}

/// The inverse of [`pack_cinstr_data`]: fills `data` (at most 8 bytes) from CINSTRDAT0/1.
pub fn unpack_cinstr_data(words: [u32; 2], data: &mut [u8]) {
    for (i, b) in data.iter_mut().take(8).enumerate() {
        *b = (words[i / 4] >> (8 * (i % 4))) as u8;
    }
}

/// The nRF52840 QSPI peripheral.
pub struct RegisterQspiPort {
    regs: &'static QspiRegisters,
    sck_hz: u32,
}

impl RegisterQspiPort {
    /// Takes the QSPI peripheral.
    ///
    /// # Safety
    /// Must run on an nRF52840, and nothing else may use the QSPI peripheral while this port
    /// exists.
    pub unsafe fn new() -> Self {
        // SAFETY: the caller guarantees an nRF52840 (QSPI_BASE is its QSPI block, valid for the
        // whole program) and exclusive use of the peripheral.
        let regs = unsafe { &*(regs::QSPI_BASE as *const QspiRegisters) };
        RegisterQspiPort { regs, sck_hz: 0 }
    }

    /// Connects the pins (high drive, as the Product Specification asks for QSPI), selects
    /// READ4IO / PP4IO / 24-bit addresses / 256-byte pages, sets SCK to 8 MHz, enables and
    /// activates the peripheral.
    pub fn configure(&mut self, pins: QspiPins) {
        let r = self.regs;
        for (p, output) in [
            (pins.sck, true),
            (pins.csn, true),
            (pins.io[0], false),
            (pins.io[1], false),
            (pins.io[2], false),
            (pins.io[3], false),
        ] {
            let port = regs::GPIO_P0_BASE + 0x300 * usize::from(p >> 5);
            // SAFETY: GPIO P0/P1 register blocks of the nRF52840 (the `new` contract); only the
            // configuration of the QSPI pins, which this port owns, is written.
            let gpio = unsafe { &*(port as *const GpioRegisters) };
            let dir = if output {
                PinCnf::DIR::Output
            } else {
                PinCnf::DIR::Input
            };
            gpio.pin_cnf[usize::from(p & 31)]
                .write(dir + PinCnf::INPUT::Connect + PinCnf::DRIVE::H0H1);
        }
        let pin = |p: u8| Psel::PIN.val(u32::from(p & 31)) + Psel::PORT.val(u32::from(p >> 5));
        r.psel_sck.write(pin(pins.sck));
        r.psel_csn.write(pin(pins.csn));
        r.psel_io0.write(pin(pins.io[0]));
        r.psel_io1.write(pin(pins.io[1]));
        r.psel_io2.write(pin(pins.io[2]));
        r.psel_io3.write(pin(pins.io[3]));
        r.ifconfig0.write(
            IfConfig0::READOC::Read4IO
                + IfConfig0::WRITEOC::Pp4IO
                + IfConfig0::ADDRMODE::Bit24
                + IfConfig0::PPSIZE::Bytes256,
        );
        self.set_sck_hz(8_000_000);
        r.enable.write(QspiEnable::ENABLE::Enabled);
        self.run_task(&r.tasks_activate);
    }

    fn run_task(&self, task: &tock_registers::registers::WriteOnly<u32, Task::Register>) {
        self.regs.events_ready.write(Event::GENERATED::CLEAR);
        task.write(Task::TRIGGER::SET);
        while !self.regs.events_ready.is_set(Event::GENERATED) {
            core::hint::spin_loop();
        }
    }
}

impl QspiPort for RegisterQspiPort {
    fn read(&mut self, flash_addr: u32, dst: &mut [u8]) -> Result<(), FlashError> {
        debug_assert!((dst.as_ptr() as usize).is_multiple_of(4) && dst.len().is_multiple_of(4));
        let r = self.regs;
        r.read_src.set(flash_addr);
        r.read_dst.set(dst.as_mut_ptr() as u32);
        r.read_cnt.write(QspiCount::CNT.val(dst.len() as u32));
        self.run_task(&r.tasks_readstart);
        Ok(())
    }

    fn write(&mut self, flash_addr: u32, src: &[u8]) -> Result<(), FlashError> {
        debug_assert!((src.as_ptr() as usize).is_multiple_of(4) && src.len().is_multiple_of(4));
        // EasyDMA reads only Data RAM (0x2000_0000..0x2004_0000 on the nRF52840).
        #[cfg(target_arch = "arm")]
        debug_assert!((0x2000_0000..0x2004_0000).contains(&(src.as_ptr() as usize)));
        let r = self.regs;
        r.write_dst.set(flash_addr);
        r.write_src.set(src.as_ptr() as u32);
        r.write_cnt.write(QspiCount::CNT.val(src.len() as u32));
        self.run_task(&r.tasks_writestart);
        Ok(())
    }

    fn erase(&mut self, flash_addr: u32, len: QspiEraseLen) -> Result<(), FlashError> {
        let r = self.regs;
        r.erase_ptr.set(flash_addr);
        r.erase_len.write(match len {
            QspiEraseLen::Sector4K => regs::QspiEraseLen::LEN::Len4KB,
            QspiEraseLen::Block64K => regs::QspiEraseLen::LEN::Len64KB,
            QspiEraseLen::All => regs::QspiEraseLen::LEN::All,
        });
        self.run_task(&r.tasks_erasestart);
        Ok(())
    }

    fn custom(&mut self, opcode: u8, data: &mut [u8], wren: bool) -> Result<(), FlashError> {
        if data.len() > 8 {
            return Err(FlashError::BadLength {
                len: data.len() as u32,
                max: 8,
            });
        }
        let r = self.regs;
        let words = pack_cinstr_data(data);
        r.cinstrdat0.set(words[0]);
        r.cinstrdat1.set(words[1]);
        r.events_ready.write(Event::GENERATED::CLEAR);
        // Writing CINSTRCONF starts the instruction; IO2/IO3 stay high (no WP#/HOLD#).
        r.cinstrconf.write(
            CinstrConf::OPCODE.val(u32::from(opcode))
                + CinstrConf::LENGTH.val(data.len() as u32 + 1)
                + CinstrConf::LIO2::SET
                + CinstrConf::LIO3::SET
                + if wren {
                    CinstrConf::WREN::SET
                } else {
                    CinstrConf::WREN::CLEAR
                },
        );
        while !r.events_ready.is_set(Event::GENERATED) {
            core::hint::spin_loop();
        }
        unpack_cinstr_data([r.cinstrdat0.get(), r.cinstrdat1.get()], data);
        Ok(())
    }

    fn set_sck_hz(&mut self, hz: u32) -> u32 {
        let div = 32_000_000u32.div_ceil(hz.max(1)).clamp(1, 16);
        self.regs.ifconfig1.write(
            IfConfig1::SCKDELAY.val(1)
                + IfConfig1::SPIMODE::Mode0
                + IfConfig1::SCKFREQ.val(div - 1),
        );
        self.sck_hz = 32_000_000 / div;
        self.sck_hz
    }

    fn delay_us(&mut self, us: u32) {
        // Only paces WIP polling; the drivers never rely on its accuracy for correctness.
        spin_us(us);
    }
}

/// The nRF52840 NVMC.
pub struct RegisterNvmcPort {
    regs: &'static NvmcRegisters,
}

impl RegisterNvmcPort {
    /// Takes the NVMC.
    ///
    /// # Safety
    /// Must run on an nRF52840 from code executing in RAM or in flash that is not being
    /// written, and nothing else may use the NVMC while this port exists.
    pub unsafe fn new() -> Self {
        // SAFETY: the caller guarantees an nRF52840 (NVMC_BASE is its NVMC block, valid for the
        // whole program) and exclusive use of the NVMC.
        let regs = unsafe { &*(regs::NVMC_BASE as *const NvmcRegisters) };
        RegisterNvmcPort { regs }
    }

    fn wait_ready(&self) {
        while !self.regs.ready.is_set(NvmcReady::READY) {
            core::hint::spin_loop();
        }
    }
}

impl NvmcPort for RegisterNvmcPort {
    fn read(&mut self, addr: u32, dst: &mut [u8]) -> Result<(), FlashError> {
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: internal flash is memory-mapped at 0..1 MiB and always readable (the
            // driver checked the range); volatile because the NVMC may have just changed it.
            *b = unsafe { ptr::read_volatile((addr as usize + i) as *const u8) };
        }
        Ok(())
    }

    fn write_word(&mut self, addr: u32, word: u32) -> Result<(), FlashError> {
        self.regs.config.write(NvmcConfig::WEN::Wen);
        self.wait_ready();
        // SAFETY: `addr` is a word-aligned internal-flash address checked by the driver; with
        // CONFIG = WEN a 32-bit store there programs the word.
        unsafe { ptr::write_volatile(addr as usize as *mut u32, word) };
        self.wait_ready();
        self.regs.config.write(NvmcConfig::WEN::Ren);
        Ok(())
    }

    fn erase_page(&mut self, addr: u32) -> Result<(), FlashError> {
        self.regs.config.write(NvmcConfig::WEN::Een);
        self.wait_ready();
        self.regs.erasepage.set(addr);
        self.wait_ready();
        self.regs.config.write(NvmcConfig::WEN::Ren);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cinstr_data_packing_round_trips_in_register_byte_order() {
        assert_eq!(pack_cinstr_data(&[0x40, 0x00, 0x02]), [0x0002_0040, 0]);
        let bytes = [1u8, 2, 3, 4, 5, 6, 7, 8];
        let words = pack_cinstr_data(&bytes);
        assert_eq!(words, [0x0403_0201, 0x0807_0605]);
        for n in 0..=8 {
            let mut back = [0u8; 8];
            unpack_cinstr_data(words, &mut back[..n]);
            assert_eq!(&back[..n], &bytes[..n]);
        }
    }
}
