//! Register-level model of the nRF52840 QSPI peripheral (Product Specification v1.7 §6.19):
//! the register block, its tasks and READY event, and EasyDMA, over a [`QspiPort`] (normally
//! [`crate::QspiPeripheral`], which brings the MX25R6435F's datasheet timings and rules).
//!
//! Both the CPU emulator (`boot-emu`) and the Tock capsule's host tests drive the peripheral
//! through this one model. EasyDMA moves bytes through a [`DmaMemory`], the address space of
//! whoever runs the model (the emulator's guest RAM, or the buffers a host test handed its
//! driver); the model never turns an address into a host reference.
//!
//! Rules a driver can break, each reported as a [`QspiFault`] naming it (the silicon would
//! move wrong bytes, hang or bus-fault):
//! - a task or custom instruction while the peripheral is disabled or not activated;
//! - EasyDMA: RAM pointer and flash address word aligned, length a non-zero multiple of 4 of
//!   at most 0x3FFFF (the CNT field), the RAM range reachable ([`DmaMemory`] refuses it
//!   otherwise);
//! - CINSTRCONF: LENGTH 1..=9, no long frame, IO3 (HOLD#) high, as the part needs.
//!
//! Every task completes within the register write that triggers it (the port advances the
//! simulated clock by its transfer time), then raises EVENTS_READY; a command the part refused
//! still raises READY (the peripheral cannot tell) and is reported as [`QspiFault::Flash`]. ACTIVATE on a peripheral
//! already active raises no READY (a driver must not wait for one).

use nrf52840_flash::{FlashError, QspiEraseLen, QspiPort};

use crate::qspi::MAX_DMA_LEN;

/// TASKS_ACTIVATE.
pub const TASKS_ACTIVATE: u32 = 0x000;
/// TASKS_READSTART.
pub const TASKS_READSTART: u32 = 0x004;
/// TASKS_WRITESTART.
pub const TASKS_WRITESTART: u32 = 0x008;
/// TASKS_ERASESTART.
pub const TASKS_ERASESTART: u32 = 0x00C;
/// TASKS_DEACTIVATE.
pub const TASKS_DEACTIVATE: u32 = 0x010;
/// EVENTS_READY.
pub const EVENTS_READY: u32 = 0x100;
/// INTEN, INTENSET, INTENCLR.
pub const INTEN: u32 = 0x300;
pub const INTENSET: u32 = 0x304;
pub const INTENCLR: u32 = 0x308;
/// ENABLE.
pub const ENABLE: u32 = 0x500;
/// READ.SRC, READ.DST, READ.CNT.
pub const READ_SRC: u32 = 0x504;
pub const READ_DST: u32 = 0x508;
pub const READ_CNT: u32 = 0x50C;
/// WRITE.DST, WRITE.SRC, WRITE.CNT.
pub const WRITE_DST: u32 = 0x510;
pub const WRITE_SRC: u32 = 0x514;
pub const WRITE_CNT: u32 = 0x518;
/// ERASE.PTR, ERASE.LEN.
pub const ERASE_PTR: u32 = 0x51C;
pub const ERASE_LEN: u32 = 0x520;
/// PSEL.SCK (then CSN; IO0..IO3 from 0x530).
pub const PSEL_SCK: u32 = 0x524;
/// PSEL.IO3.
pub const PSEL_IO3: u32 = 0x53C;
/// XIPOFFSET.
pub const XIPOFFSET: u32 = 0x540;
/// IFCONFIG0.
pub const IFCONFIG0: u32 = 0x544;
/// IFCONFIG1 (SCKFREQ in bits 28..32).
pub const IFCONFIG1: u32 = 0x600;
/// STATUS (read only).
pub const STATUS: u32 = 0x604;
/// DPMDUR.
pub const DPMDUR: u32 = 0x614;
/// ADDRCONF.
pub const ADDRCONF: u32 = 0x624;
/// CINSTRCONF: writing it sends the custom instruction.
pub const CINSTRCONF: u32 = 0x634;
/// CINSTRDAT0, CINSTRDAT1.
pub const CINSTRDAT0: u32 = 0x638;
pub const CINSTRDAT1: u32 = 0x63C;
/// IFTIMING.
pub const IFTIMING: u32 = 0x640;

/// Registers that only hold what the driver writes (no side effect but the value; IFCONFIG1
/// also sets SCK), in address order.
pub const STORAGE_REGISTERS: [u32; 24] = [
    INTEN, ENABLE, READ_SRC, READ_DST, READ_CNT, WRITE_DST, WRITE_SRC, WRITE_CNT, ERASE_PTR,
    ERASE_LEN, 0x524, 0x528, 0x530, 0x534, 0x538, PSEL_IO3, XIPOFFSET, IFCONFIG0, IFCONFIG1,
    DPMDUR, ADDRCONF, CINSTRDAT0, CINSTRDAT1, IFTIMING,
];

/// The reason an EasyDMA access could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaUnreachable;

/// The address space EasyDMA reads and writes: the owner of the model copies bytes in and out
/// of its memory. An address the bus cannot reach is an error, never a panic.
pub trait DmaMemory {
    /// Copies `dst.len()` bytes starting at `addr` into `dst`.
    fn dma_read(&mut self, addr: u32, dst: &mut [u8]) -> Result<(), DmaUnreachable>;
    /// Copies `src` to `addr`.
    fn dma_write(&mut self, addr: u32, src: &[u8]) -> Result<(), DmaUnreachable>;
}

/// A rule the driver broke, or what the flash reported.
#[derive(Clone, Debug, PartialEq)]
pub enum QspiFault {
    /// An offset the peripheral does not have (or a write to a read-only one).
    UnknownRegister { offset: u32, write: bool },
    /// An EasyDMA transfer that breaks the rules.
    DmaRule {
        task: &'static str,
        what: &'static str,
        value: u32,
    },
    /// A task or custom instruction while the peripheral is disabled or not activated.
    NotReady { task: &'static str },
    /// A register value the model does not support or the part cannot take.
    Unsupported {
        offset: u32,
        value: u32,
        what: &'static str,
    },
    /// The flash model refused the operation (or the power is off: `FlashError::PowerLost`).
    Flash(FlashError),
}

impl From<FlashError> for QspiFault {
    fn from(e: FlashError) -> Self {
        QspiFault::Flash(e)
    }
}

/// The QSPI register block; reset values per the PS.
#[derive(Clone, Debug)]
pub struct QspiRegisters {
    enable: u32,
    active: bool,
    ready: u32,
    inten: u32,
    read: [u32; 3],
    write: [u32; 3],
    erase: [u32; 2],
    psel: [u32; 6],
    xipoffset: u32,
    ifconfig0: u32,
    ifconfig1: u32,
    dpmdur: u32,
    addrconf: u32,
    iftiming: u32,
    cinstrconf: u32,
    cinstrdat: [u32; 2],
    /// ACTIVATE tasks triggered while already active.
    pub activations_while_active: u64,
    /// Bytes EasyDMA moved, erases and custom instructions sent.
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub erases: u64,
    pub custom: u64,
}

impl Default for QspiRegisters {
    fn default() -> Self {
        Self::new()
    }
}

impl QspiRegisters {
    /// Reset state.
    pub fn new() -> Self {
        QspiRegisters {
            enable: 0,
            active: false,
            ready: 0,
            inten: 0,
            read: [0; 3],
            write: [0; 3],
            erase: [0; 2],
            psel: [0xFFFF_FFFF; 6],
            xipoffset: 0,
            ifconfig0: 0,
            ifconfig1: 0x0004_0480,
            dpmdur: 0xFFFF_FFFF,
            addrconf: 0x0000_00B7,
            iftiming: 0x0000_0200,
            cinstrconf: 0,
            cinstrdat: [0; 2],
            activations_while_active: 0,
            read_bytes: 0,
            write_bytes: 0,
            erases: 0,
            custom: 0,
        }
    }

    /// Whether ACTIVATE has run (and no DEACTIVATE or disable since).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The interrupt line (READY with INTEN.READY).
    pub fn irq(&self) -> bool {
        self.ready & self.inten & 1 != 0
    }

    /// The RAM range (`address`, `length`) the write of `value` to `offset` reads by EasyDMA
    /// (a WRITESTART trigger), so an owner that cannot lend its memory during the write can
    /// fetch it first.
    pub fn dma_source(&self, offset: u32, value: u32) -> Option<(u32, u32)> {
        let [_, src, cnt] = self.write;
        (offset == TASKS_WRITESTART && value & 1 != 0 && cnt as usize <= MAX_DMA_LEN)
            .then_some((src, cnt))
    }

    fn psel_index(offset: u32) -> Option<usize> {
        match offset {
            0x524 | 0x528 => Some(((offset - 0x524) / 4) as usize),
            0x530..=0x53C => Some(((offset - 0x530) / 4) as usize + 2),
            _ => None,
        }
    }

    /// Reads the register at `offset` (STATUS polls the part's status register through
    /// `port`, as the peripheral does).
    pub fn read(&self, offset: u32, port: &mut impl QspiPort) -> Result<u32, QspiFault> {
        let unknown = QspiFault::UnknownRegister {
            offset,
            write: false,
        };
        Ok(match offset {
            TASKS_ACTIVATE..=TASKS_DEACTIVATE if offset.is_multiple_of(4) => 0,
            EVENTS_READY => self.ready,
            INTEN | INTENSET | INTENCLR => self.inten,
            ENABLE => self.enable,
            READ_SRC..=READ_CNT => self.read[((offset - READ_SRC) / 4) as usize],
            WRITE_DST..=WRITE_CNT => self.write[((offset - WRITE_DST) / 4) as usize],
            ERASE_PTR | ERASE_LEN => self.erase[((offset - ERASE_PTR) / 4) as usize],
            XIPOFFSET => self.xipoffset,
            IFCONFIG0 => self.ifconfig0,
            IFCONFIG1 => self.ifconfig1,
            STATUS => {
                // READY (every task completes at once here) and SREG, the part's status.
                let mut sr = [0u8; 1];
                port.custom(0x05, &mut sr, false)?;
                (u32::from(sr[0]) << 24) | (1 << 3)
            }
            DPMDUR => self.dpmdur,
            ADDRCONF => self.addrconf,
            CINSTRCONF => self.cinstrconf,
            CINSTRDAT0 => self.cinstrdat[0],
            CINSTRDAT1 => self.cinstrdat[1],
            IFTIMING => self.iftiming,
            o => match Self::psel_index(o) {
                Some(i) => self.psel[i],
                None => return Err(unknown),
            },
        })
    }

    /// Writes `value` to the register at `offset`; a task or custom instruction runs to its
    /// end on `port`, moving bytes through `mem`.
    pub fn write(
        &mut self,
        offset: u32,
        value: u32,
        port: &mut impl QspiPort,
        mem: &mut dyn DmaMemory,
    ) -> Result<(), QspiFault> {
        let trigger = value & 1 != 0;
        match offset {
            TASKS_ACTIVATE if trigger => {
                if self.enable & 1 == 0 {
                    return Err(QspiFault::NotReady { task: "ACTIVATE" });
                }
                if self.active {
                    self.activations_while_active += 1;
                } else {
                    self.active = true;
                    self.ready = 1;
                }
            }
            TASKS_READSTART if trigger => self.readstart(port, mem)?,
            TASKS_WRITESTART if trigger => self.writestart(port, mem)?,
            TASKS_ERASESTART if trigger => self.erasestart(port)?,
            TASKS_DEACTIVATE if trigger => {
                self.active = false;
                self.ready = 1;
            }
            TASKS_ACTIVATE | TASKS_READSTART | TASKS_WRITESTART | TASKS_ERASESTART
            | TASKS_DEACTIVATE => {}
            EVENTS_READY => self.ready = value & 1,
            INTEN => self.inten = value & 1,
            INTENSET => self.inten |= value & 1,
            INTENCLR => self.inten &= !(value & 1),
            ENABLE => {
                self.enable = value & 1;
                if self.enable == 0 {
                    self.active = false;
                }
            }
            READ_SRC..=READ_CNT => self.read[((offset - READ_SRC) / 4) as usize] = value,
            WRITE_DST..=WRITE_CNT => self.write[((offset - WRITE_DST) / 4) as usize] = value,
            ERASE_PTR | ERASE_LEN => self.erase[((offset - ERASE_PTR) / 4) as usize] = value,
            XIPOFFSET => self.xipoffset = value,
            IFCONFIG0 => self.ifconfig0 = value,
            IFCONFIG1 => {
                self.ifconfig1 = value;
                port.set_sck_hz(32_000_000 / ((value >> 28) + 1));
            }
            DPMDUR => self.dpmdur = value,
            ADDRCONF => self.addrconf = value,
            CINSTRCONF => self.custom(value, port)?,
            CINSTRDAT0 => self.cinstrdat[0] = value,
            CINSTRDAT1 => self.cinstrdat[1] = value,
            IFTIMING => self.iftiming = value,
            o => match Self::psel_index(o) {
                Some(i) => self.psel[i] = value,
                None => {
                    return Err(QspiFault::UnknownRegister {
                        offset,
                        write: true,
                    })
                }
            },
        }
        Ok(())
    }

    /// What the part made of a transfer the peripheral clocked out. A part that refuses it
    /// (busy, write not enabled, ...) is reported, but the peripheral has no way to know: it
    /// raises READY all the same. With the power gone nothing completes.
    fn on_bus(&mut self, result: Result<(), FlashError>) -> Result<(), QspiFault> {
        match result {
            Ok(()) => Ok(()),
            Err(FlashError::PowerLost) => Err(QspiFault::Flash(FlashError::PowerLost)),
            Err(e) => {
                self.ready = 1;
                Err(QspiFault::Flash(e))
            }
        }
    }

    fn require_active(&self, task: &'static str) -> Result<(), QspiFault> {
        if self.enable & 1 == 0 || !self.active {
            return Err(QspiFault::NotReady { task });
        }
        Ok(())
    }

    /// The EasyDMA rules on the register values.
    fn dma_rules(task: &'static str, ram: u32, flash: u32, cnt: u32) -> Result<(), QspiFault> {
        let fail = |what, value| Err(QspiFault::DmaRule { task, what, value });
        if !ram.is_multiple_of(4) {
            return fail("RAM buffer not word aligned", ram);
        }
        if !flash.is_multiple_of(4) {
            return fail("flash address not word aligned", flash);
        }
        if cnt == 0 || !cnt.is_multiple_of(4) || cnt as usize > MAX_DMA_LEN {
            return fail("length not a non-zero multiple of 4 within CNT", cnt);
        }
        Ok(())
    }

    fn readstart(
        &mut self,
        port: &mut impl QspiPort,
        mem: &mut dyn DmaMemory,
    ) -> Result<(), QspiFault> {
        self.require_active("READSTART")?;
        let [src, dst, cnt] = self.read;
        Self::dma_rules("READSTART", dst, src, cnt)?;
        let mut buf = AlignedBuf::new(cnt as usize);
        self.on_bus(port.read(src, buf.as_mut()))?;
        mem.dma_write(dst, buf.as_mut())
            .map_err(|_| QspiFault::DmaRule {
                task: "READSTART",
                what: "RAM buffer not reachable by EasyDMA",
                value: dst,
            })?;
        self.read_bytes += u64::from(cnt);
        self.ready = 1;
        Ok(())
    }

    fn writestart(
        &mut self,
        port: &mut impl QspiPort,
        mem: &mut dyn DmaMemory,
    ) -> Result<(), QspiFault> {
        self.require_active("WRITESTART")?;
        let [dst, src, cnt] = self.write;
        Self::dma_rules("WRITESTART", src, dst, cnt)?;
        let mut buf = AlignedBuf::new(cnt as usize);
        mem.dma_read(src, buf.as_mut())
            .map_err(|_| QspiFault::DmaRule {
                task: "WRITESTART",
                what: "RAM buffer not reachable by EasyDMA",
                value: src,
            })?;
        self.on_bus(port.write(dst, buf.as_mut()))?;
        self.write_bytes += u64::from(cnt);
        self.ready = 1;
        Ok(())
    }

    fn erasestart(&mut self, port: &mut impl QspiPort) -> Result<(), QspiFault> {
        self.require_active("ERASESTART")?;
        let [ptr, len] = self.erase;
        let len = match len {
            0 => QspiEraseLen::Sector4K,
            1 => QspiEraseLen::Block64K,
            2 => QspiEraseLen::All,
            other => {
                return Err(QspiFault::Unsupported {
                    offset: ERASE_LEN,
                    value: other,
                    what: "ERASE.LEN",
                })
            }
        };
        self.on_bus(port.erase(ptr, len))?;
        self.erases += 1;
        self.ready = 1;
        Ok(())
    }

    fn custom(&mut self, conf: u32, port: &mut impl QspiPort) -> Result<(), QspiFault> {
        self.cinstrconf = conf;
        self.require_active("CINSTRCONF")?;
        let unsupported = |what| {
            Err(QspiFault::Unsupported {
                offset: CINSTRCONF,
                value: conf,
                what,
            })
        };
        if conf & (1 << 16) != 0 {
            return unsupported("CINSTRCONF.LFEN (long frame)");
        }
        let length = (conf >> 8) & 0xF;
        if !(1..=9).contains(&length) {
            return unsupported("CINSTRCONF.LENGTH");
        }
        if conf & (1 << 13) == 0 {
            return unsupported("CINSTRCONF.LIO3 low: HOLD# asserted, the part ignores the bus");
        }
        let wipwait = conf & (1 << 14) != 0;
        let wren = conf & (1 << 15) != 0;
        if wipwait {
            // The peripheral polls WIP before sending the instruction.
            for _ in 0..1_000_000 {
                let mut sr = [0u8; 1];
                self.on_bus(port.custom(0x05, &mut sr, false))?;
                if sr[0] & 1 == 0 {
                    break;
                }
                port.delay_us(10);
            }
        }
        let mut data = [0u8; 8];
        data[..4].copy_from_slice(&self.cinstrdat[0].to_le_bytes());
        data[4..].copy_from_slice(&self.cinstrdat[1].to_le_bytes());
        let n = (length - 1) as usize;
        self.on_bus(port.custom((conf & 0xFF) as u8, &mut data[..n], wren))?;
        self.cinstrdat[0] = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        self.cinstrdat[1] = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
        self.custom += 1;
        self.ready = 1;
        Ok(())
    }
}

/// A word-aligned host buffer, so the port model's own EasyDMA alignment checks see the
/// alignment of the device address (already checked) rather than of the host allocation.
struct AlignedBuf {
    bytes: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let bytes = vec![0u8; len + 3];
        let start = bytes.as_ptr().align_offset(4).min(3);
        AlignedBuf { bytes, start, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.start + self.len]
    }
}

/// A flat RAM at a base address: the simplest [`DmaMemory`] (tests, and owners that keep RAM
/// as one byte vector).
#[derive(Clone, Debug)]
pub struct FlatRam {
    pub base: u32,
    pub bytes: Vec<u8>,
}

impl FlatRam {
    fn range(&self, addr: u32, len: usize) -> Result<std::ops::Range<usize>, DmaUnreachable> {
        let start = addr.checked_sub(self.base).ok_or(DmaUnreachable)? as usize;
        let end = start.checked_add(len).ok_or(DmaUnreachable)?;
        if end > self.bytes.len() {
            return Err(DmaUnreachable);
        }
        Ok(start..end)
    }
}

impl DmaMemory for FlatRam {
    fn dma_read(&mut self, addr: u32, dst: &mut [u8]) -> Result<(), DmaUnreachable> {
        let r = self.range(addr, dst.len())?;
        dst.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn dma_write(&mut self, addr: u32, src: &[u8]) -> Result<(), DmaUnreachable> {
        let r = self.range(addr, src.len())?;
        self.bytes[r].copy_from_slice(src);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mx25r6435f, Power, QspiPeripheral, SimClock};
    use std::sync::{Arc, Mutex};

    const RAM: u32 = 0x2000_0000;

    fn rig() -> (QspiRegisters, QspiPeripheral, FlatRam, Power) {
        let clock = SimClock::new();
        let power = Power::new(clock.clone(), 1);
        let chip = Arc::new(Mutex::new(Mx25r6435f::new(clock.clone(), power.clone(), 1)));
        let port = QspiPeripheral::new(chip, clock, power.clone());
        let ram = FlatRam {
            base: RAM,
            bytes: vec![0; 0x2000],
        };
        (QspiRegisters::new(), port, ram, power)
    }

    fn busy(q: &QspiRegisters, port: &mut QspiPeripheral) -> bool {
        (q.read(STATUS, port).unwrap() >> 24) & 1 != 0
    }

    /// Enabled, activated, and the part's QE bit set (WRSR with WREN) for quad transfers.
    fn up(q: &mut QspiRegisters, port: &mut QspiPeripheral, ram: &mut FlatRam) {
        q.write(ENABLE, 1, port, ram).unwrap();
        q.write(TASKS_ACTIVATE, 1, port, ram).unwrap();
        assert_eq!(q.read(EVENTS_READY, port).unwrap(), 1);
        q.write(EVENTS_READY, 0, port, ram).unwrap();
        q.write(CINSTRDAT0, 0x40, port, ram).unwrap();
        let wrsr = 0x01 | (4 << 8) | (3 << 12) | (1 << 15);
        q.write(CINSTRCONF, wrsr, port, ram).unwrap();
        while busy(q, port) {
            port.delay_us(100);
        }
    }

    #[test]
    fn a_task_before_activate_is_refused() {
        let (mut q, mut port, mut ram, _) = rig();
        assert_eq!(
            q.write(TASKS_READSTART, 1, &mut port, &mut ram),
            Err(QspiFault::NotReady { task: "READSTART" })
        );
        assert_eq!(
            q.write(TASKS_ACTIVATE, 1, &mut port, &mut ram),
            Err(QspiFault::NotReady { task: "ACTIVATE" })
        );
    }

    #[test]
    fn write_then_read_moves_bytes_through_the_address_space() {
        let (mut q, mut port, mut ram, _) = rig();
        up(&mut q, &mut port, &mut ram);
        // Sector erase (WREN sent by the peripheral), then wait for WIP via STATUS.
        q.write(ERASE_PTR, 0x1000, &mut port, &mut ram).unwrap();
        q.write(ERASE_LEN, 0, &mut port, &mut ram).unwrap();
        q.write(TASKS_ERASESTART, 1, &mut port, &mut ram).unwrap();
        let mut polls = 0;
        while busy(&q, &mut port) {
            port.delay_us(1000);
            polls += 1;
        }
        assert!(polls > 0, "an erase keeps the part busy");
        for (i, b) in ram.bytes[0x100..0x200].iter_mut().enumerate() {
            *b = i as u8;
        }
        for (reg, v) in [
            (WRITE_DST, 0x1000),
            (WRITE_SRC, RAM + 0x100),
            (WRITE_CNT, 0x100),
        ] {
            q.write(reg, v, &mut port, &mut ram).unwrap();
        }
        assert_eq!(
            q.dma_source(TASKS_WRITESTART, 1),
            Some((RAM + 0x100, 0x100))
        );
        q.write(TASKS_WRITESTART, 1, &mut port, &mut ram).unwrap();
        while busy(&q, &mut port) {
            port.delay_us(100);
        }
        for (reg, v) in [
            (READ_SRC, 0x1000),
            (READ_DST, RAM + 0x400),
            (READ_CNT, 0x104),
        ] {
            q.write(reg, v, &mut port, &mut ram).unwrap();
        }
        q.write(TASKS_READSTART, 1, &mut port, &mut ram).unwrap();
        assert_eq!(ram.bytes[0x400..0x500], ram.bytes[0x100..0x200]);
        assert_eq!(ram.bytes[0x500..0x504], [0xFF; 4]);
        assert_eq!((q.write_bytes, q.read_bytes, q.erases), (0x100, 0x104, 1));
    }

    #[test]
    fn easydma_rules_are_enforced() {
        let (mut q, mut port, mut ram, _) = rig();
        up(&mut q, &mut port, &mut ram);
        let mut read = |src: u32, dst: u32, cnt: u32| {
            q.write(READ_SRC, src, &mut port, &mut ram).unwrap();
            q.write(READ_DST, dst, &mut port, &mut ram).unwrap();
            q.write(READ_CNT, cnt, &mut port, &mut ram).unwrap();
            match q.write(TASKS_READSTART, 1, &mut port, &mut ram) {
                Err(QspiFault::DmaRule { what, .. }) => Some(what),
                Ok(()) => None,
                Err(other) => panic!("{other:?}"),
            }
        };
        assert_eq!(read(0, RAM + 2, 4), Some("RAM buffer not word aligned"));
        assert_eq!(read(2, RAM, 4), Some("flash address not word aligned"));
        assert_eq!(
            read(0, RAM, 6),
            Some("length not a non-zero multiple of 4 within CNT")
        );
        assert_eq!(
            read(0, RAM, 0),
            Some("length not a non-zero multiple of 4 within CNT")
        );
        assert_eq!(
            read(0, RAM + 0x1FFC, 8),
            Some("RAM buffer not reachable by EasyDMA")
        );
        assert_eq!(
            read(0, 0x1000, 4),
            Some("RAM buffer not reachable by EasyDMA")
        );
        assert_eq!(read(0, RAM + 0x1FFC, 4), None);
    }

    #[test]
    fn custom_instructions_need_hold_high_and_return_data() {
        let (mut q, mut port, mut ram, _) = rig();
        up(&mut q, &mut port, &mut ram);
        // RDID, 3 data bytes, IO2/IO3 high.
        let rdid = 0x9F | (4 << 8) | (3 << 12);
        q.write(CINSTRCONF, rdid, &mut port, &mut ram).unwrap();
        assert_eq!(
            q.read(CINSTRDAT0, &mut port).unwrap() & 0xFF_FFFF,
            0x17_28C2
        );
        assert!(matches!(
            q.write(CINSTRCONF, rdid & !(1 << 13), &mut port, &mut ram),
            Err(QspiFault::Unsupported { .. })
        ));
    }

    #[test]
    fn activate_while_active_raises_no_ready_and_is_counted() {
        let (mut q, mut port, mut ram, _) = rig();
        up(&mut q, &mut port, &mut ram);
        q.write(EVENTS_READY, 0, &mut port, &mut ram).unwrap();
        q.write(TASKS_ACTIVATE, 1, &mut port, &mut ram).unwrap();
        assert_eq!(q.read(EVENTS_READY, &mut port).unwrap(), 0);
        assert_eq!(q.activations_while_active, 1);
        q.write(INTENSET, 1, &mut port, &mut ram).unwrap();
        q.write(TASKS_DEACTIVATE, 1, &mut port, &mut ram).unwrap();
        assert!(q.irq() && !q.is_active());
    }

    #[test]
    fn a_power_cut_is_reported_as_the_flash_error() {
        let (mut q, mut port, mut ram, power) = rig();
        up(&mut q, &mut port, &mut ram);
        power.cut_now();
        assert_eq!(
            q.write(TASKS_ERASESTART, 1, &mut port, &mut ram),
            Err(QspiFault::Flash(FlashError::PowerLost))
        );
    }
}
