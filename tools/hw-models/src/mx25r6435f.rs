//! Model of the Macronix MX25R6435F 64 Mbit QSPI NOR flash, at the command level.
//!
//! Rules (see `docs/flash.md` for sources):
//! - 8 MiB, erased state 0xFF; program only clears bits; a byte that would need a 0→1
//!   transition (other than 0xFF, which programs nothing) is reported as `NotErased`.
//! - Page program wraps inside its 256-byte page: bytes past the page end land at its start.
//! - Program and erase need WEL (set by WREN, cleared when the operation ends) and make the part
//!   busy (WIP) until `busy_until` on the shared clock; the part keeps working while the CPU does
//!   other things. While busy only RDSR is accepted (others are reported as `Busy`).
//! - Quad commands need the non-volatile QE bit; SCK above the power mode's limit is an error.
//! - Timings are the datasheet's typical figures for the current power mode (or the maxima with
//!   [`TimingProfile::Maximum`]).
//! - A power cut while an operation is in flight tears it: a program leaves a random subset of
//!   its bits cleared, an erase leaves the unit neither old nor erased.

use nrf52840_flash::mx25r::{self, opcode, status, Operation, PowerMode};
use nrf52840_flash::FlashError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clock::SimClock;
use crate::power::{tear_erase, tear_program, OpFate, OpKind, Power};

/// Which datasheet column the model's program/erase durations come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimingProfile {
    /// Typical values for the current power mode.
    #[default]
    Typical,
    /// Maximum values (worst-case parts).
    Maximum,
}

#[derive(Debug)]
struct InFlight {
    busy_until: u64,
    cuts_at_start: usize,
    addr: u32,
    before: Vec<u8>,
    erase: bool,
}

/// Per-command counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChipStats {
    pub page_programs: u64,
    pub sector_erases: u64,
    pub block32_erases: u64,
    pub block64_erases: u64,
    pub chip_erases: u64,
    pub bytes_read: u64,
}

/// The MX25R6435F.
#[derive(Debug)]
pub struct Mx25r6435f {
    mem: Vec<u8>,
    sector_erases: Vec<u32>,
    status: u8,
    config: [u8; 2],
    deep_power_down: bool,
    busy_until: u64,
    in_flight: Option<InFlight>,
    timing: TimingProfile,
    jedec_id: [u8; 3],
    stuck_busy: bool,
    read_flip_probability: f64,
    rng: ChaCha8Rng,
    clock: SimClock,
    power: Power,
    stats: ChipStats,
}

impl Mx25r6435f {
    /// A factory-fresh part: all 0xFF, QE clear, ultra-low-power mode.
    pub fn new(clock: SimClock, power: Power, seed: u64) -> Self {
        Mx25r6435f {
            mem: vec![0xFF; mx25r::CAPACITY as usize],
            sector_erases: vec![0; (mx25r::CAPACITY / mx25r::SECTOR_SIZE) as usize],
            status: 0,
            config: [0, 0],
            deep_power_down: false,
            busy_until: 0,
            in_flight: None,
            timing: TimingProfile::Typical,
            jedec_id: mx25r::JEDEC_ID,
            stuck_busy: false,
            read_flip_probability: 0.0,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x4D58_3235),
            clock,
            power,
            stats: ChipStats::default(),
        }
    }

    /// The stored bytes (what a perfect reader would see once in-flight work is settled).
    pub fn raw(&mut self) -> &[u8] {
        self.settle();
        &self.mem
    }

    /// Overwrites stored bytes directly (test setup; no timing, no rules).
    pub fn load(&mut self, addr: u32, data: &[u8]) {
        self.settle();
        let a = addr as usize;
        self.mem[a..a + data.len()].copy_from_slice(data);
    }

    /// Erase count of the 4 KiB sector containing `addr` (block and chip erases count too).
    pub fn sector_erase_count(&self, addr: u32) -> u32 {
        self.sector_erases[(addr / mx25r::SECTOR_SIZE) as usize]
    }

    /// Highest erase count over all sectors.
    pub fn max_sector_erase_count(&self) -> u32 {
        self.sector_erases.iter().copied().max().unwrap_or(0)
    }

    /// Command counters.
    pub fn stats(&self) -> ChipStats {
        self.stats
    }

    /// Selects typical or maximum program/erase durations.
    pub fn set_timing(&mut self, timing: TimingProfile) {
        self.timing = timing;
    }

    /// Makes RDID answer `id` (a different or absent part: e.g. `[0xFF; 3]` for no chip).
    pub fn set_jedec_id(&mut self, id: [u8; 3]) {
        self.jedec_id = id;
    }

    /// A hung part: WIP stays set forever (drivers must time out, not spin).
    pub fn set_stuck_busy(&mut self, stuck: bool) {
        self.stuck_busy = stuck;
    }

    /// Probability that a read transaction returns one flipped bit (the stored data is intact).
    pub fn set_read_flip_probability(&mut self, p: f64) {
        self.read_flip_probability = p;
    }

    /// The current power mode (CR2 bit 1).
    pub fn mode(&self) -> PowerMode {
        if self.config[1] & mx25r::CR2_HIGH_PERFORMANCE != 0 {
            PowerMode::HighPerformance
        } else {
            PowerMode::UltraLowPower
        }
    }

    /// Whether a program/erase is running (WIP).
    pub fn is_busy(&self) -> bool {
        self.stuck_busy || self.clock.now_us() < self.busy_until
    }

    /// Time at which the running operation ends.
    pub fn busy_until_us(&self) -> u64 {
        self.busy_until
    }

    /// Whether the part is in deep power-down.
    pub fn is_deep_power_down(&self) -> bool {
        self.deep_power_down
    }

    /// Resolves an in-flight operation: torn if power failed before it ended.
    pub fn settle(&mut self) {
        let Some(op) = self.in_flight.as_ref() else {
            return;
        };
        let cut = self.power.cut_time_us(op.cuts_at_start);
        match cut {
            Some(t) if t < op.busy_until => {
                let op = self.in_flight.take().expect("checked above");
                let a = op.addr as usize;
                let region = &mut self.mem[a..a + op.before.len()];
                if op.erase {
                    tear_erase(&self.power, &op.before, region);
                } else {
                    tear_program(&self.power, &op.before, region);
                }
                self.busy_until = 0;
                self.status &= !(status::WEL | status::WIP);
            }
            Some(_) => self.in_flight = None,
            None if self.clock.now_us() >= op.busy_until => self.in_flight = None,
            None => {}
        }
    }

    /// Power-on reset: in-flight work settles (or is torn), volatile state clears
    /// (WEL, high-performance mode, deep power-down); contents and QE persist.
    pub fn power_cycle(&mut self) {
        self.settle();
        self.in_flight = None;
        self.busy_until = 0;
        self.status &= status::QE;
        self.config[1] &= !mx25r::CR2_HIGH_PERFORMANCE;
        self.deep_power_down = false;
    }

    fn op_us(&self, op: Operation) -> u64 {
        match self.timing {
            TimingProfile::Typical => mx25r::typical_us(op, self.mode()),
            TimingProfile::Maximum => mx25r::max_us(op),
        }
    }

    fn accept(&mut self, opcode: u8) -> Result<(), FlashError> {
        self.power.check_on()?;
        self.settle();
        if self.deep_power_down && opcode != opcode::RDP {
            return Err(FlashError::DeepPowerDown);
        }
        // While busy the part answers only RDSR; RDP is accepted as the no-op it is (a busy
        // part cannot be in deep power-down), so a wake-up after a soft reset is harmless.
        if self.is_busy() && opcode != opcode::RDSR && opcode != opcode::RDP {
            return Err(FlashError::Busy);
        }
        if !self.is_busy() {
            self.status &= !status::WIP;
        }
        Ok(())
    }

    fn check_range(addr: u32, len: usize) -> Result<(), FlashError> {
        if u64::from(addr) + len as u64 > u64::from(mx25r::CAPACITY) {
            return Err(FlashError::OutOfBounds {
                addr,
                len: len as u32,
                capacity: mx25r::CAPACITY,
            });
        }
        Ok(())
    }

    fn check_quad(&self, sck_hz: u32) -> Result<(), FlashError> {
        if self.status & status::QE == 0 {
            return Err(FlashError::QuadNotEnabled);
        }
        let max_hz = self.mode().max_sck_hz();
        if sck_hz > max_hz {
            return Err(FlashError::ClockTooFast { sck_hz, max_hz });
        }
        Ok(())
    }

    /// Quad I/O read (0xEB) of `out.len()` bytes at `addr`, SCK `sck_hz`. Wraps at the end of
    /// the array like the part does.
    pub fn read_quad(&mut self, addr: u32, out: &mut [u8], sck_hz: u32) -> Result<(), FlashError> {
        self.accept(opcode::READ4IO)?;
        self.check_quad(sck_hz)?;
        let cap = mx25r::CAPACITY as usize;
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.mem[(addr as usize + i) % cap];
        }
        if self.read_flip_probability > 0.0
            && !out.is_empty()
            && self.rng.gen_bool(self.read_flip_probability.min(1.0))
        {
            let bit = self.rng.gen_range(0..out.len() * 8);
            out[bit / 8] ^= 1 << (bit % 8);
        }
        self.stats.bytes_read += out.len() as u64;
        Ok(())
    }

    /// Write enable (0x06).
    pub fn write_enable(&mut self) -> Result<(), FlashError> {
        self.accept(opcode::WREN)?;
        self.status |= status::WEL;
        Ok(())
    }

    fn start(
        &mut self,
        op: Operation,
        addr: u32,
        len: usize,
        erase: bool,
    ) -> Result<bool, FlashError> {
        if self.status & status::WEL == 0 {
            return Err(FlashError::WriteNotEnabled);
        }
        let fate = self.power.begin_op(if erase {
            OpKind::QspiErase
        } else {
            OpKind::QspiProgram
        })?;
        let duration = self.op_us(op);
        let now = self.clock.now_us();
        self.in_flight = Some(InFlight {
            busy_until: now + duration,
            cuts_at_start: self.power.cuts() - usize::from(fate == OpFate::Torn),
            addr,
            before: self.mem[addr as usize..addr as usize + len].to_vec(),
            erase,
        });
        self.busy_until = now + duration;
        self.status = (self.status | status::WIP) & !status::WEL;
        Ok(fate == OpFate::Torn)
    }

    /// Quad page program (0x38) of `data` at `addr`; bytes past the page end wrap to the
    /// page start; more than 256 bytes keep only the last 256 (as the part does).
    pub fn page_program(&mut self, addr: u32, data: &[u8], sck_hz: u32) -> Result<(), FlashError> {
        self.accept(opcode::PP4IO)?;
        self.check_quad(sck_hz)?;
        Self::check_range(addr, 1)?;
        if data.is_empty() {
            return Ok(());
        }
        let skipped = data.len().saturating_sub(mx25r::PAGE_SIZE as usize);
        let data = &data[skipped..];
        let page = addr & !(mx25r::PAGE_SIZE - 1);
        let mut image = self.mem[page as usize..(page + mx25r::PAGE_SIZE) as usize].to_vec();
        for (i, &d) in data.iter().enumerate() {
            let off = ((addr - page) as usize + skipped + i) % mx25r::PAGE_SIZE as usize;
            let old = image[off];
            if d != 0xFF && d & !old != 0 {
                return Err(FlashError::NotErased {
                    addr: page + off as u32,
                });
            }
            image[off] = old & d;
        }
        if self.status & status::WEL == 0 {
            return Err(FlashError::WriteNotEnabled);
        }
        let torn = self.start(
            Operation::PageProgram,
            page,
            mx25r::PAGE_SIZE as usize,
            false,
        )?;
        self.mem[page as usize..(page + mx25r::PAGE_SIZE) as usize].copy_from_slice(&image);
        self.stats.page_programs += 1;
        if torn {
            self.settle();
            return Err(FlashError::PowerLost);
        }
        Ok(())
    }

    /// Sector/block/chip erase; `addr` is rounded down to the unit as the part does.
    pub fn erase(&mut self, op: Operation, addr: u32) -> Result<(), FlashError> {
        let (opc, unit) = match op {
            Operation::EraseSector => (opcode::SE, mx25r::SECTOR_SIZE),
            Operation::EraseBlock32 => (opcode::BE32K, mx25r::BLOCK32_SIZE),
            Operation::EraseBlock64 => (opcode::BE64K, mx25r::BLOCK64_SIZE),
            _ => (opcode::CE, mx25r::CAPACITY),
        };
        self.accept(opc)?;
        Self::check_range(addr, 1)?;
        let base = addr & !(unit - 1);
        let torn = self.start(op, base, unit as usize, true)?;
        self.mem[base as usize..(base + unit) as usize].fill(0xFF);
        for s in base / mx25r::SECTOR_SIZE..(base + unit) / mx25r::SECTOR_SIZE {
            self.sector_erases[s as usize] += 1;
        }
        match op {
            Operation::EraseSector => self.stats.sector_erases += 1,
            Operation::EraseBlock32 => self.stats.block32_erases += 1,
            Operation::EraseBlock64 => self.stats.block64_erases += 1,
            _ => self.stats.chip_erases += 1,
        }
        if torn {
            self.settle();
            return Err(FlashError::PowerLost);
        }
        Ok(())
    }

    /// A single-line command with up to 8 data bytes (full duplex), as sent by the QSPI
    /// custom-instruction mechanism.
    pub fn custom(&mut self, opc: u8, data: &mut [u8]) -> Result<(), FlashError> {
        self.accept(opc)?;
        match opc {
            opcode::RDSR => {
                let sr = if self.is_busy() {
                    self.status | status::WIP
                } else {
                    self.status
                };
                data.fill(sr);
            }
            opcode::RDCR => {
                for (i, d) in data.iter_mut().enumerate() {
                    *d = self.config[i % 2];
                }
            }
            opcode::RDID => {
                for (i, d) in data.iter_mut().enumerate() {
                    *d = self.jedec_id[i % 3];
                }
            }
            opcode::WREN => self.status |= status::WEL,
            opcode::WRSR => {
                if self.status & status::WEL == 0 {
                    return Err(FlashError::WriteNotEnabled);
                }
                let Some(&sr) = data.first() else {
                    return Err(FlashError::BadLength { len: 0, max: 3 });
                };
                // Status/config registers are not a flash array: no power-cut counting.
                self.status = (self.status & status::WIP) | (sr & 0xFC);
                for (i, &c) in data.iter().skip(1).take(2).enumerate() {
                    self.config[i] = c;
                }
                self.busy_until = self.clock.now_us() + self.op_us(Operation::WriteStatus);
            }
            opcode::SE | opcode::BE32K | opcode::BE64K => {
                if data.len() < 3 {
                    return Err(FlashError::BadLength {
                        len: data.len() as u32,
                        max: 3,
                    });
                }
                let addr = u32::from(data[0]) << 16 | u32::from(data[1]) << 8 | u32::from(data[2]);
                let op = match opc {
                    opcode::SE => Operation::EraseSector,
                    opcode::BE32K => Operation::EraseBlock32,
                    _ => Operation::EraseBlock64,
                };
                self.erase(op, addr)?;
            }
            opcode::CE => self.erase(Operation::EraseChip, 0)?,
            opcode::DP => self.deep_power_down = true,
            opcode::RDP => self.deep_power_down = false,
            _ => {}
        }
        Ok(())
    }
}
