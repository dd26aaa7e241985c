//! MX25R6435F over the nRF52840 QSPI peripheral, behind `embedded-storage`.
//!
//! Usage
//! -----
//!
//! ```ignore
//! let mut flash = QspiFlash::new(port, PowerMode::HighPerformance);
//! flash.init()?;                       // JEDEC check, QE bit, power mode, SCK
//! flash.write(0x1003, &bytes)?;        // any offset, any buffer alignment, any length
//! flash.start_erase_sector(0x10000)?;  // returns at once; the chip erases in the background
//! // ... other work (e.g. NVMC programming) ...
//! flash.wait()?;
//! ```
//!
//! EasyDMA moves only word-aligned Data RAM buffers of word-multiple length to word-aligned
//! flash addresses. The driver hides this: reads DMA straight into the caller's buffer where RAM
//! and flash alignment agree and go through a word-aligned bounce buffer for heads, tails and
//! mismatched buffers; programs always go through the bounce buffer (the caller's bytes may be
//! constants in flash, which EasyDMA cannot read), split at 256-byte pages and padded with 0xFF,
//! which leaves the neighbouring bytes untouched.

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

use crate::command::{Action, Sequence};
use crate::error::{FlashError, Misalignment};
use crate::mx25r::{self, opcode, status, Operation, PowerMode};
use crate::port::QspiPort;

/// Largest direct EasyDMA read the driver issues (READ.CNT is an 18-bit field).
const MAX_DMA_CHUNK: usize = 0x1_0000;

/// How `NorFlash::erase` covers a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EraseStrategy {
    /// 64 KiB block erases where a whole aligned block is covered, 4 KiB sectors elsewhere.
    /// (32 KiB blocks are never chosen: per the datasheet they take longer than 8 sectors.)
    #[default]
    LargestBlocks,
    /// Only 4 KiB sector erases.
    SectorsOnly,
}

#[repr(C, align(4))]
struct Bounce([u8; mx25r::PAGE_SIZE as usize]);

/// The QSPI NOR flash driver.
pub struct QspiFlash<P: QspiPort> {
    port: P,
    mode: PowerMode,
    erase_strategy: EraseStrategy,
    /// The program/erase in flight, parked in its WIP-polling phase.
    pending: Option<Sequence>,
    bounce: Bounce,
}

impl<P: QspiPort> QspiFlash<P> {
    /// A driver for the flash behind `port`, to be put in `mode` by [`QspiFlash::init`].
    pub fn new(port: P, mode: PowerMode) -> Self {
        QspiFlash {
            port,
            mode,
            erase_strategy: EraseStrategy::default(),
            pending: None,
            bounce: Bounce([0xFF; mx25r::PAGE_SIZE as usize]),
        }
    }

    /// Wakes the flash, checks its JEDEC ID, waits out any operation left running, sets QE
    /// and the power mode, then raises SCK ([`Sequence::init`]).
    pub fn init(&mut self) -> Result<(), FlashError> {
        self.pending = None;
        self.run(Sequence::init(self.mode))
    }

    /// Runs a command sequence to its end over the port.
    pub fn run(&mut self, mut seq: Sequence) -> Result<(), FlashError> {
        loop {
            if let Some(r) = step(&mut self.port, &mut seq, &[], &mut []) {
                return r;
            }
        }
    }

    /// Runs a program/erase sequence until its command is out and parks it as pending.
    fn start(&mut self, mut seq: Sequence, data: &[u8]) -> Result<(), FlashError> {
        loop {
            if seq.is_started() {
                self.pending = Some(seq);
                return Ok(());
            }
            if let Some(r) = step(&mut self.port, &mut seq, data, &mut []) {
                return r;
            }
        }
    }

    /// The power mode the driver put the flash in.
    pub fn mode(&self) -> PowerMode {
        self.mode
    }

    /// Chooses how `NorFlash::erase` covers ranges.
    pub fn set_erase_strategy(&mut self, strategy: EraseStrategy) {
        self.erase_strategy = strategy;
    }

    /// The port (the register-backed peripheral or the host model).
    pub fn port(&mut self) -> &mut P {
        &mut self.port
    }

    /// JEDEC manufacturer, type and density bytes.
    pub fn read_jedec_id(&mut self) -> Result<[u8; 3], FlashError> {
        let mut id = [0u8; 3];
        self.port.custom(opcode::RDID, &mut id, false)?;
        Ok(id)
    }

    /// The status register.
    pub fn read_status(&mut self) -> Result<u8, FlashError> {
        let mut sr = [0u8; 1];
        self.port.custom(opcode::RDSR, &mut sr, false)?;
        Ok(sr[0])
    }

    /// Puts the flash in deep power-down (it then ignores everything but [`QspiFlash::wake`]).
    pub fn deep_power_down(&mut self) -> Result<(), FlashError> {
        self.wait()?;
        self.run(Sequence::deep_power_down())
    }

    /// Releases the flash from deep power-down (harmless when it is awake).
    pub fn wake(&mut self) -> Result<(), FlashError> {
        self.run(Sequence::wake())
    }

    /// Whether a program or erase is still running; clears the pending operation when done.
    pub fn is_busy(&mut self) -> Result<bool, FlashError> {
        if self.pending.is_none() {
            return Ok(false);
        }
        let busy = self.read_status()? & status::WIP != 0;
        if !busy {
            self.pending = None;
        }
        Ok(busy)
    }

    /// Same as [`QspiFlash::is_busy`]: one status poll, for split-phase callers.
    pub fn poll(&mut self) -> Result<bool, FlashError> {
        self.is_busy()
    }

    /// Blocks until the running program/erase (if any) has finished.
    pub fn wait(&mut self) -> Result<(), FlashError> {
        match self.pending.take() {
            Some(seq) => self.run(seq),
            None => Ok(()),
        }
    }

    fn check_bounds(addr: u32, len: usize) -> Result<(), FlashError> {
        let end = u64::from(addr) + len as u64;
        if end > u64::from(mx25r::CAPACITY) {
            return Err(FlashError::OutOfBounds {
                addr,
                len: len.min(u32::MAX as usize) as u32,
                capacity: mx25r::CAPACITY,
            });
        }
        Ok(())
    }

    fn ensure_idle(&mut self) -> Result<(), FlashError> {
        if self.is_busy()? {
            Err(FlashError::Busy)
        } else {
            Ok(())
        }
    }

    /// Starts programming `data` (1..=256 bytes, inside one 256-byte page, any alignment) at
    /// `addr` and returns once the data is out; the flash programs in the background.
    /// Fails with [`FlashError::Busy`] if the previous operation is still running.
    pub fn start_program_page(&mut self, addr: u32, data: &[u8]) -> Result<(), FlashError> {
        let len = data.len();
        if len == 0 || len > mx25r::PAGE_SIZE as usize {
            return Err(FlashError::BadLength {
                len: len.min(u32::MAX as usize) as u32,
                max: mx25r::PAGE_SIZE,
            });
        }
        Self::check_bounds(addr, len)?;
        if addr % mx25r::PAGE_SIZE + len as u32 > mx25r::PAGE_SIZE {
            return Err(FlashError::CrossesPage {
                addr,
                len: len as u32,
            });
        }
        self.ensure_idle()?;
        // Always through the bounce buffer: EasyDMA reads only Data RAM, and the caller's
        // bytes may live in flash (constants); the copy costs ~1 % of a page program.
        let base = addr & !3;
        let end = (addr + len as u32 + 3) & !3;
        let head = (addr - base) as usize;
        let mut bounce = Bounce([0xFF; mx25r::PAGE_SIZE as usize]);
        let window = &mut bounce.0[..(end - base) as usize];
        window[head..head + len].copy_from_slice(data);
        self.start(Sequence::program_page(base, end - base, self.mode), window)
    }

    fn start_erase(&mut self, addr: u32, op: Operation) -> Result<(), FlashError> {
        let seq = Sequence::erase(op, addr, self.mode);
        if let Action::Done(r) = seq.action() {
            // Rejected before anything was sent.
            return r;
        }
        self.ensure_idle()?;
        self.start(seq, &[])
    }

    /// Starts erasing the 4 KiB sector at `addr` (sector aligned).
    pub fn start_erase_sector(&mut self, addr: u32) -> Result<(), FlashError> {
        self.start_erase(addr, Operation::EraseSector)
    }

    /// Starts erasing the 32 KiB block at `addr` (custom instruction: the ERASE task has no
    /// 32 KiB length).
    pub fn start_erase_block32(&mut self, addr: u32) -> Result<(), FlashError> {
        self.start_erase(addr, Operation::EraseBlock32)
    }

    /// Starts erasing the 64 KiB block at `addr`.
    pub fn start_erase_block64(&mut self, addr: u32) -> Result<(), FlashError> {
        self.start_erase(addr, Operation::EraseBlock64)
    }

    /// Starts erasing the whole chip.
    pub fn start_erase_chip(&mut self) -> Result<(), FlashError> {
        self.start_erase(0, Operation::EraseChip)
    }

    /// Reads `len` bytes at `addr` through the bounce buffer into `out` (`len` ≤ 252).
    fn read_bounced(&mut self, addr: u32, out: &mut [u8]) -> Result<(), FlashError> {
        let base = addr & !3;
        let head = (addr - base) as usize;
        let end = (addr + out.len() as u32 + 3) & !3;
        let window = &mut self.bounce.0[..(end - base) as usize];
        let seq = Sequence::read(base, end - base);
        run_with(&mut self.port, seq, window)?;
        out.copy_from_slice(&window[head..head + out.len()]);
        Ok(())
    }
}

/// Performs the sequence's next action over `port`; `Some` once the sequence is over.
/// `write` / `read` are the word-aligned buffers for WRITE / READ actions.
fn step<P: QspiPort>(
    port: &mut P,
    seq: &mut Sequence,
    write: &[u8],
    read: &mut [u8],
) -> Option<Result<(), FlashError>> {
    let short = |len: u32| FlashError::BadLength {
        len,
        max: write.len().max(read.len()) as u32,
    };
    let result = match seq.action() {
        Action::Instruction(i) => {
            let mut data = i.data;
            port.custom(i.opcode, &mut data[..i.len as usize], i.wren)
                .map(|()| data)
        }
        Action::Erase { addr, len } => port.erase(addr, len).map(|()| [0; 8]),
        Action::Write { addr, len } => match write.get(..len as usize) {
            Some(src) => port.write(addr, src).map(|()| [0; 8]),
            None => Err(short(len)),
        },
        Action::Read { addr, len } => match read.len() >= len as usize {
            true => port.read(addr, &mut read[..len as usize]).map(|()| [0; 8]),
            false => Err(short(len)),
        },
        Action::Delay { us } => {
            port.delay_us(us);
            Ok([0; 8])
        }
        Action::SetSck { hz } => {
            port.set_sck_hz(hz);
            Ok([0; 8])
        }
        Action::Done(r) => return Some(r),
    };
    match result {
        Ok(rx) => seq.complete(&rx),
        Err(e) => seq.fail(e),
    }
    None
}

/// Runs a read sequence into `buf`.
fn run_with<P: QspiPort>(
    port: &mut P,
    mut seq: Sequence,
    buf: &mut [u8],
) -> Result<(), FlashError> {
    loop {
        if let Some(r) = step(port, &mut seq, &[], buf) {
            return r;
        }
    }
}

impl<P: QspiPort> ErrorType for QspiFlash<P> {
    type Error = FlashError;
}

impl<P: QspiPort> ReadNorFlash for QspiFlash<P> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        Self::check_bounds(offset, bytes.len())?;
        // A busy flash answers reads with garbage.
        self.wait()?;
        let mut done = 0usize;
        while done < bytes.len() {
            let addr = offset + done as u32;
            let rest = &mut bytes[done..];
            let addr_mis = (addr % 4) as usize;
            let ptr_mis = rest.as_ptr() as usize % 4;
            let n = if addr_mis == ptr_mis {
                if addr_mis == 0 && rest.len() >= 4 {
                    let n = (rest.len() & !3).min(MAX_DMA_CHUNK);
                    run_with(&mut self.port, Sequence::read(addr, n as u32), rest)?;
                    done += n;
                    continue;
                }
                // Head up to the next word, or the final partial word.
                (4 - addr_mis).min(rest.len())
            } else {
                // RAM and flash alignment differ: everything goes through the bounce buffer.
                rest.len().min(mx25r::PAGE_SIZE as usize - 4)
            };
            self.read_bounced(addr, &mut bytes[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        mx25r::CAPACITY as usize
    }
}

impl<P: QspiPort> NorFlash for QspiFlash<P> {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = mx25r::SECTOR_SIZE as usize;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if from > to {
            return Err(FlashError::BadLength {
                len: 0,
                max: mx25r::CAPACITY,
            });
        }
        for v in [from, to] {
            if v % mx25r::SECTOR_SIZE != 0 {
                return Err(FlashError::Misaligned {
                    what: Misalignment::Granularity,
                    value: v,
                });
            }
        }
        Self::check_bounds(from, (to - from) as usize)?;
        let mut addr = from;
        while addr < to {
            self.wait()?;
            let block = self.erase_strategy == EraseStrategy::LargestBlocks
                && addr.is_multiple_of(mx25r::BLOCK64_SIZE)
                && to - addr >= mx25r::BLOCK64_SIZE;
            if block {
                self.start_erase_block64(addr)?;
                addr += mx25r::BLOCK64_SIZE;
            } else {
                self.start_erase_sector(addr)?;
                addr += mx25r::SECTOR_SIZE;
            }
        }
        self.wait()
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        Self::check_bounds(offset, bytes.len())?;
        let mut done = 0usize;
        while done < bytes.len() {
            let addr = offset + done as u32;
            let room = (mx25r::PAGE_SIZE - addr % mx25r::PAGE_SIZE) as usize;
            let n = room.min(bytes.len() - done);
            self.wait()?;
            self.start_program_page(addr, &bytes[done..done + n])?;
            done += n;
        }
        self.wait()
    }
}
