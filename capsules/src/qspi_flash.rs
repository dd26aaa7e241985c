//! nRF52840 QSPI driver for the DK's external NOR flash (MX25R6435F).
//!
//! Interrupt driven and split-phase, the Tock way: each operation starts one QSPI task (or an
//! alarm) and returns; the QSPI `READY` interrupt ([`QspiFlash::handle_interrupt`]) and the
//! alarm callback advance it, and the client hears the end. It implements
//!
//! - `kernel::hil::flash::Flash` with 4 KiB pages (`write_page` erases the sector, then programs
//!   it 256 bytes at a time), for any Tock capsule that speaks the flash HIL, and
//! - [`AsyncNor`], byte addressed, for the staged-update driver.
//!
//! What to send is not decided here: every operation is an `nrf52840_flash::command::Sequence`
//! (power-up with JEDEC-ID check and QE/power-mode setup, quad read, page program, sector erase,
//! WIP polling with datasheet-derived intervals and time-outs), the same sequences the blocking
//! bootloader driver runs. This driver only performs each sequence's next action on the
//! registers (`nrf52840_flash::regs`) and feeds the result back.
//!
//! Every wait is bounded in time that elapsed, read from the alarm's counter (on the nRF52840 the
//! RTC: 32768 Hz, and an alarm never fires sooner than about 2 ticks, ≈ 61 µs):
//!
//! - A sequence's `Delay` lasts at least what it asks for: the alarm is re-armed until the
//!   counter has moved by enough ticks (one more than the delay, for the unknown phase of the
//!   first tick), so a 35 µs wake-up wait never ends after one 30.5 µs tick.
//! - A sequence (one operation: power-up, read, program, erase) fails with a time-out once the
//!   time its delays took adds up to its bound, twice the part's maximum for the operation
//!   polled (the command layer's bound, counted here in elapsed time: the sequence's own count
//!   adds up the delays it asked for, and a 6 µs status poll that the RTC stretches to 61 µs
//!   would make a 20 ms bound 0.2 s).
//! - Each task or custom instruction must raise READY within [`READY_TIMEOUT_US`] (an erase task
//!   within its operation's bound). If it does not, the peripheral is disabled and brought up
//!   again (activation and the part's power-up sequence), the operation in flight ends with
//!   `FAIL`, and requests get `OFF` until the power-up has finished.
//!
//! EasyDMA needs word-aligned RAM buffers and lengths and the flash address of READ/WRITE word
//! aligned: page buffers are `#[repr(align(4))]`; byte operations go through a word-aligned
//! bounce buffer. Reads fetch the aligned superset; programs pad the head and tail with 0xFF
//! (programming 0xFF leaves NOR bits as they are) and never cross a 256-byte page.

use core::cell::Cell;

use kernel::hil;
use kernel::hil::time::{Alarm, AlarmClient, Frequency, Ticks};
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::utilities::registers::interfaces::{Readable, Writeable};
use kernel::utilities::StaticRef;
use kernel::ErrorCode;
use nrf52840_flash::command::{Action, Instruction, Sequence};
use nrf52840_flash::mx25r::{self, Operation};
use nrf52840_flash::port::QspiEraseLen;
use nrf52840_flash::regs::{
    self, CinstrConf, Event, IfConfig0, IfConfig1, Psel, QspiCount, QspiEnable, QspiInt,
    QspiRegisters, Task,
};
use nrf52840_flash::PowerMode;

use crate::nor::{range_ok, AsyncNor, AsyncNorClient, SECTOR_SIZE};

pub use nrf52840_flash::regs::QspiRegisters as Registers;
pub use nrf52840_flash::regs::QSPI_BASE;

/// Longest a task or custom instruction other than an erase may take to raise READY. The
/// longest one is a 4 KiB quad read at 8 MHz SCK, about 1 ms.
pub const READY_TIMEOUT_US: u32 = 10_000;

/// Time-out of an operation whose part-side duration is at most `max_us`: twice that, as the
/// command layer's own bound.
const fn limit_us(op: Operation) -> u64 {
    2 * mx25r::max_us(op)
}

/// Program page of the MX25R6435F.
const PROGRAM_PAGE: u32 = mx25r::PAGE_SIZE;
/// Bounce buffer: one program page plus a word of head and tail padding.
const BOUNCE_WORDS: usize = (PROGRAM_PAGE as usize + 8) / 4;

/// What a board chooses: pins (`port * 32 + pin`), power mode, capacity.
#[derive(Clone, Copy, Debug)]
pub struct QspiConfig {
    pub sck: u8,
    pub csn: u8,
    pub io: [u8; 4],
    /// Ultra-low-power (8 MHz SCK) or high-performance (32 MHz SCK, faster program/erase).
    pub mode: PowerMode,
    /// Flash size in bytes.
    pub capacity: u32,
}

impl QspiConfig {
    /// The nRF52840-DK: MX25R6435F (8 MiB) on P0.19 (SCK), P0.17 (CSN), P0.20–P0.23 (IO0–IO3).
    pub const fn nrf52840dk() -> QspiConfig {
        QspiConfig {
            sck: 19,
            csn: 17,
            io: [20, 21, 22, 23],
            mode: PowerMode::HighPerformance,
            capacity: mx25r::CAPACITY,
        }
    }
}

/// A 4 KiB flash-HIL page, word aligned for EasyDMA.
#[repr(align(4))]
pub struct QspiPage(pub [u8; SECTOR_SIZE as usize]);

impl Default for QspiPage {
    fn default() -> Self {
        QspiPage([0xFF; SECTOR_SIZE as usize])
    }
}

impl AsMut<[u8]> for QspiPage {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// Word-aligned scratch for byte-granular operations.
pub struct Bounce(pub [u32; BOUNCE_WORDS]);

impl Bounce {
    pub const fn new() -> Bounce {
        Bounce([0xFFFF_FFFF; BOUNCE_WORDS])
    }

    fn byte(&self, at: usize) -> u8 {
        self.0[at / 4].to_le_bytes()[at % 4]
    }

    fn set_byte(&mut self, at: usize, value: u8) {
        let mut bytes = self.0[at / 4].to_le_bytes();
        bytes[at % 4] = value;
        self.0[at / 4] = u32::from_le_bytes(bytes);
    }
}

impl Default for Bounce {
    fn default() -> Self {
        Bounce::new()
    }
}

/// The operation a client asked for, and how far it got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Job {
    /// Power-up sequence not run (or it failed: the device is unusable).
    Off,
    Init,
    Idle,
    NorRead {
        address: u32,
        len: u32,
        done: u32,
    },
    NorProgram {
        address: u32,
        len: u32,
        done: u32,
    },
    NorErase,
    PageRead,
    /// `erased`: the sector erase is done; `done`: bytes programmed since.
    PageWrite {
        address: u32,
        erased: bool,
        done: u32,
    },
    PageErase,
}

/// What the hardware is doing for the current sequence action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    Nothing,
    /// A task; for a custom instruction, how many data bytes to read back.
    Ready {
        instruction_len: Option<u8>,
    },
    /// A sequence delay: the counter at its start and the ticks it must move.
    Alarm {
        from: u32,
        ticks: u32,
    },
}

/// Where bringing the peripheral up stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bringup {
    Done,
    /// DEACTIVATE is out (the peripheral was left enabled); its READY, or its time-out, goes on
    /// to disable, configure and activate.
    Deactivating,
    /// ACTIVATE is out; its READY starts the power-up sequence.
    Activating,
}

/// The QSPI flash driver. See the module docs.
pub struct QspiFlash<'a, A: Alarm<'a>> {
    regs: StaticRef<QspiRegisters>,
    alarm: &'a A,
    config: QspiConfig,
    job: Cell<Job>,
    sequence: Cell<Option<Sequence>>,
    waiting: Cell<Waiting>,
    bringup: Cell<Bringup>,
    /// Byte offset in the page buffer of the current page transfer.
    page_offset: Cell<u32>,
    /// Time the current sequence's delays took, and its bound (µs).
    elapsed_us: Cell<u64>,
    limit_us: Cell<u64>,
    /// `ready` was reported (a recovery's power-up does not report it again).
    announced: Cell<bool>,
    page_client: OptionalCell<&'a dyn hil::flash::Client<QspiFlash<'a, A>>>,
    nor_client: OptionalCell<&'a dyn AsyncNorClient>,
    page: TakeCell<'static, QspiPage>,
    nor_buffer: TakeCell<'static, [u8]>,
    bounce: TakeCell<'static, Bounce>,
}

impl<'a, A: Alarm<'a>> QspiFlash<'a, A> {
    pub fn new(
        regs: StaticRef<QspiRegisters>,
        alarm: &'a A,
        config: QspiConfig,
        bounce: &'static mut Bounce,
    ) -> QspiFlash<'a, A> {
        QspiFlash {
            regs,
            alarm,
            config,
            job: Cell::new(Job::Off),
            sequence: Cell::new(None),
            waiting: Cell::new(Waiting::Nothing),
            bringup: Cell::new(Bringup::Done),
            page_offset: Cell::new(0),
            elapsed_us: Cell::new(0),
            limit_us: Cell::new(0),
            announced: Cell::new(false),
            page_client: OptionalCell::empty(),
            nor_client: OptionalCell::empty(),
            page: TakeCell::empty(),
            nor_buffer: TakeCell::empty(),
            bounce: TakeCell::new(bounce),
        }
    }

    /// Connect the pins, select quad read / quad page program / 24-bit addresses / 256-byte
    /// pages, enable and activate the peripheral, then run the part's power-up sequence. The
    /// NOR client's `ready` follows; operations before that get `OFF`.
    ///
    /// Correct from reset and from whatever the bootloader left: a peripheral found enabled
    /// (and active) is deactivated and disabled first, since PSEL may be written only while
    /// it is disabled and ACTIVATE is meant for an inactive one; SCK starts slow and the part's
    /// power mode is set by the power-up sequence whatever it was. (Pin drive strength is GPIO
    /// configuration: the board sets it.)
    pub fn initialize(&self) {
        let r = &*self.regs;
        self.job.set(Job::Init);
        self.sequence.set(None);
        r.events_ready.write(Event::GENERATED::CLEAR);
        r.intenset.write(QspiInt::READY::SET);
        if r.enable.matches_all(QspiEnable::ENABLE::Enabled) {
            self.bringup.set(Bringup::Deactivating);
            self.expect_ready(None, READY_TIMEOUT_US);
            r.tasks_deactivate.write(Task::TRIGGER::SET);
        } else {
            self.configure_and_activate();
        }
    }

    /// Disable, configure, enable and activate the peripheral.
    fn configure_and_activate(&self) {
        let r = &*self.regs;
        r.enable.write(QspiEnable::ENABLE::Disabled);
        let pin = |p: u8| Psel::PIN.val(u32::from(p & 31)) + Psel::PORT.val(u32::from(p >> 5));
        r.psel_sck.write(pin(self.config.sck));
        r.psel_csn.write(pin(self.config.csn));
        r.psel_io0.write(pin(self.config.io[0]));
        r.psel_io1.write(pin(self.config.io[1]));
        r.psel_io2.write(pin(self.config.io[2]));
        r.psel_io3.write(pin(self.config.io[3]));
        r.ifconfig0.write(
            IfConfig0::READOC::Read4IO
                + IfConfig0::WRITEOC::Pp4IO
                + IfConfig0::ADDRMODE::Bit24
                + IfConfig0::PPSIZE::Bytes256,
        );
        self.set_sck_hz(nrf52840_flash::command::ULP_SCK_HZ);
        r.events_ready.write(Event::GENERATED::CLEAR);
        r.enable.write(QspiEnable::ENABLE::Enabled);
        // The activation's READY starts the power-up sequence.
        self.sequence.set(Some(Sequence::init(self.config.mode)));
        self.elapsed_us.set(0);
        // Power-up may wait out a chip erase left running across a reset, then a status write.
        self.limit_us.set(
            limit_us(Operation::EraseChip)
                + limit_us(Operation::WriteStatus)
                + u64::from(nrf52840_flash::command::T_RELEASE_DPD_US),
        );
        self.bringup.set(Bringup::Activating);
        self.expect_ready(None, READY_TIMEOUT_US);
        r.tasks_activate.write(Task::TRIGGER::SET);
    }

    /// Wait for READY (for a custom instruction: with `instruction_len` bytes to read back),
    /// at most `timeout_us`.
    fn expect_ready(&self, instruction_len: Option<u8>, timeout_us: u32) {
        self.waiting.set(Waiting::Ready { instruction_len });
        self.alarm.set_alarm(
            self.alarm.now(),
            Self::ticks_at_least(u64::from(timeout_us)),
        );
    }

    /// Alarm ticks that cover `us` whatever the phase of the first tick: rounded up, plus one.
    fn ticks_at_least(us: u64) -> A::Ticks {
        let hz = u64::from(<A::Frequency as Frequency>::frequency());
        let ticks = (us * hz).div_ceil(1_000_000) + 1;
        A::Ticks::from(u32::try_from(ticks).unwrap_or(u32::MAX))
    }

    /// Microseconds in `ticks` of the alarm (rounded down).
    fn ticks_to_us(ticks: u32) -> u64 {
        let hz = u64::from(<A::Frequency as Frequency>::frequency()).max(1);
        u64::from(ticks) * 1_000_000 / hz
    }

    /// READY did not come: end the operation in flight with `FAIL` and bring the peripheral
    /// (deactivated and disabled first) and the part up again.
    fn recover(&self) {
        let failed = self.job.get();
        self.waiting.set(Waiting::Nothing);
        self.bringup.set(Bringup::Done);
        let _ = self.alarm.disarm();
        // Requests are refused (`OFF`) from here until the power-up has finished.
        self.initialize();
        match failed {
            Job::NorRead { .. } => self.report_nor(false, false),
            Job::NorProgram { .. } => self.report_nor(false, true),
            Job::NorErase => self.nor_client.map(|c| c.erase_done(Err(ErrorCode::FAIL))),
            Job::PageRead => self.report_page(false, false),
            Job::PageWrite { .. } => self.report_page(false, true),
            Job::PageErase => self
                .page_client
                .map(|c| c.erase_complete(Err(hil::flash::Error::FlashError))),
            Job::Off | Job::Init | Job::Idle => None,
        };
    }

    fn set_sck_hz(&self, hz: u32) {
        let div = 32_000_000u32.div_ceil(hz.max(1)).clamp(1, 16);
        self.regs.ifconfig1.write(
            IfConfig1::SCKDELAY.val(1)
                + IfConfig1::SPIMODE::Mode0
                + IfConfig1::SCKFREQ.val(div - 1),
        );
    }

    /// The QSPI interrupt: a task or custom instruction finished.
    pub fn handle_interrupt(&self) {
        let r = &*self.regs;
        if !r.events_ready.is_set(Event::GENERATED) {
            return;
        }
        r.events_ready.write(Event::GENERATED::CLEAR);
        if matches!(self.waiting.get(), Waiting::Ready { .. }) {
            let _ = self.alarm.disarm();
        }
        match self.bringup.replace(Bringup::Done) {
            Bringup::Deactivating => {
                self.waiting.set(Waiting::Nothing);
                self.configure_and_activate();
                return;
            }
            Bringup::Activating => {
                // Activation done: nothing to feed back, start the power-up sequence.
                self.waiting.set(Waiting::Nothing);
                self.run();
                return;
            }
            Bringup::Done => {}
        }
        let Waiting::Ready { instruction_len } = self.waiting.get() else {
            return;
        };
        self.waiting.set(Waiting::Nothing);
        let mut rx = [0u8; 8];
        let len = instruction_len.map_or(0, |n| (n as usize).min(8));
        if len > 0 {
            let words = [r.cinstrdat0.get(), r.cinstrdat1.get()];
            for (i, b) in rx[..len].iter_mut().enumerate() {
                *b = (words[i / 4] >> (8 * (i % 4))) as u8;
            }
        }
        self.complete_action(&rx[..len]);
    }

    fn complete_action(&self, rx: &[u8]) {
        if let Some(mut sequence) = self.sequence.get() {
            sequence.complete(rx);
            self.sequence.set(Some(sequence));
        }
        self.run();
    }

    /// Perform the current sequence's actions until one needs the hardware or it is done.
    fn run(&self) {
        loop {
            let Some(sequence) = self.sequence.get() else {
                return;
            };
            match sequence.action() {
                Action::SetSck { hz } => {
                    self.set_sck_hz(hz);
                    let mut sequence = sequence;
                    sequence.complete(&[]);
                    self.sequence.set(Some(sequence));
                }
                Action::Done(result) => {
                    self.sequence.set(None);
                    self.sequence_done(result.is_ok());
                    return;
                }
                Action::Instruction(instruction) => {
                    self.start_instruction(&instruction);
                    return;
                }
                Action::Erase { addr, len } => {
                    let r = &*self.regs;
                    r.erase_ptr.set(addr);
                    r.erase_len.write(match len {
                        QspiEraseLen::Sector4K => regs::QspiEraseLen::LEN::Len4KB,
                        QspiEraseLen::Block64K => regs::QspiEraseLen::LEN::Len64KB,
                        QspiEraseLen::All => regs::QspiEraseLen::LEN::All,
                    });
                    let op = match len {
                        QspiEraseLen::Sector4K => Operation::EraseSector,
                        QspiEraseLen::Block64K => Operation::EraseBlock64,
                        QspiEraseLen::All => Operation::EraseChip,
                    };
                    let timeout = u32::try_from(limit_us(op)).unwrap_or(u32::MAX);
                    self.start_task(&r.tasks_erasestart, timeout);
                    return;
                }
                Action::Write { addr, len } => {
                    let r = &*self.regs;
                    r.write_dst.set(addr);
                    r.write_src.set(self.dma_address());
                    r.write_cnt.write(QspiCount::CNT.val(len));
                    self.start_task(&r.tasks_writestart, READY_TIMEOUT_US);
                    return;
                }
                Action::Read { addr, len } => {
                    let r = &*self.regs;
                    r.read_src.set(addr);
                    r.read_dst.set(self.dma_address());
                    r.read_cnt.write(QspiCount::CNT.val(len));
                    self.start_task(&r.tasks_readstart, READY_TIMEOUT_US);
                    return;
                }
                Action::Delay { us } => {
                    let from = self.alarm.now();
                    let ticks = Self::ticks_at_least(u64::from(us));
                    self.waiting.set(Waiting::Alarm {
                        from: from.into_u32(),
                        ticks: ticks.into_u32(),
                    });
                    self.alarm.set_alarm(from, ticks);
                    return;
                }
            }
        }
    }

    /// RAM address for the current transfer: the page buffer (at the current offset) for page
    /// jobs, the bounce buffer otherwise. A mutable pointer: EasyDMA may write through it.
    fn dma_address(&self) -> u32 {
        match self.job.get() {
            Job::PageRead | Job::PageWrite { .. } => self.page.map_or(0, |p| {
                p.0.as_mut_ptr() as usize as u32 + self.page_offset.get()
            }),
            _ => self.bounce.map_or(0, |b| b.0.as_mut_ptr() as usize as u32),
        }
    }

    fn start_task(
        &self,
        task: &kernel::utilities::registers::WriteOnly<u32, Task::Register>,
        timeout_us: u32,
    ) {
        self.expect_ready(None, timeout_us);
        task.write(Task::TRIGGER::SET);
    }

    fn start_instruction(&self, instruction: &Instruction) {
        let r = &*self.regs;
        let data = instruction.data();
        let mut words = [0u32; 2];
        for (i, b) in data.iter().enumerate() {
            words[i / 4] |= u32::from(*b) << (8 * (i % 4));
        }
        r.cinstrdat0.set(words[0]);
        r.cinstrdat1.set(words[1]);
        self.expect_ready(Some(data.len() as u8), READY_TIMEOUT_US);
        // Writing CINSTRCONF starts the instruction; IO2/IO3 stay high (no WP#/HOLD#).
        r.cinstrconf.write(
            CinstrConf::OPCODE.val(u32::from(instruction.opcode))
                + CinstrConf::LENGTH.val(data.len() as u32 + 1)
                + CinstrConf::LIO2::SET
                + CinstrConf::LIO3::SET
                + if instruction.wren {
                    CinstrConf::WREN::SET
                } else {
                    CinstrConf::WREN::CLEAR
                },
        );
    }

    /// A sequence ended: continue the job or report it.
    fn sequence_done(&self, ok: bool) {
        match self.job.get() {
            Job::Off | Job::Idle => {}
            Job::Init => {
                self.job.set(if ok { Job::Idle } else { Job::Off });
                if ok && !self.announced.replace(true) {
                    self.nor_client.map(|c| c.ready());
                }
            }
            Job::NorRead { address, len, done } => {
                if !ok {
                    return self.finish_nor(false, false);
                }
                let chunk = Self::read_chunk(address + done, len - done);
                self.copy_out_of_bounce(address + done, done, chunk);
                let done = done + chunk;
                if done >= len {
                    self.finish_nor(true, false);
                } else {
                    self.job.set(Job::NorRead { address, len, done });
                    self.start_nor_read(address + done, len - done);
                }
            }
            Job::NorProgram { address, len, done } => {
                if !ok {
                    return self.finish_nor(false, true);
                }
                let done = done + Self::program_chunk(address + done, len - done);
                if done >= len {
                    self.finish_nor(true, true);
                } else {
                    self.job.set(Job::NorProgram { address, len, done });
                    self.start_nor_program(address, len, done);
                }
            }
            Job::NorErase => {
                self.job.set(Job::Idle);
                self.nor_client
                    .map(|c| c.erase_done(if ok { Ok(()) } else { Err(ErrorCode::FAIL) }));
            }
            Job::PageRead => self.finish_page(ok, false),
            Job::PageWrite {
                address,
                erased,
                done,
            } => {
                if !ok {
                    return self.finish_page(false, true);
                }
                let done = if erased { done + PROGRAM_PAGE } else { 0 };
                if done >= SECTOR_SIZE {
                    return self.finish_page(true, true);
                }
                self.job.set(Job::PageWrite {
                    address,
                    erased: true,
                    done,
                });
                self.page_offset.set(done);
                self.start(
                    Sequence::program_page(address + done, PROGRAM_PAGE, self.config.mode),
                    limit_us(Operation::PageProgram),
                );
            }
            Job::PageErase => {
                self.job.set(Job::Idle);
                self.page_client.map(|c| {
                    c.erase_complete(if ok {
                        Ok(())
                    } else {
                        Err(hil::flash::Error::FlashError)
                    })
                });
            }
        }
    }

    /// Run `sequence`, which fails with a time-out once its delays have taken `limit_us`.
    fn start(&self, sequence: Sequence, limit_us: u64) {
        self.sequence.set(Some(sequence));
        self.elapsed_us.set(0);
        self.limit_us.set(limit_us);
        self.run();
    }

    fn finish_nor(&self, ok: bool, program: bool) {
        self.job.set(Job::Idle);
        self.report_nor(ok, program);
    }

    /// Hand the NOR buffer back with the result.
    fn report_nor(&self, ok: bool, program: bool) -> Option<()> {
        let result = if ok { Ok(()) } else { Err(ErrorCode::FAIL) };
        let buffer = self.nor_buffer.take()?;
        self.nor_client.map(move |c| {
            if program {
                c.program_done(buffer, result)
            } else {
                c.read_done(buffer, result)
            }
        })
    }

    fn finish_page(&self, ok: bool, write: bool) {
        self.job.set(Job::Idle);
        self.report_page(ok, write);
    }

    /// Hand the page back with the result.
    fn report_page(&self, ok: bool, write: bool) -> Option<()> {
        let result = if ok {
            Ok(())
        } else {
            Err(hil::flash::Error::FlashError)
        };
        let page = self.page.take()?;
        self.page_client.map(move |c| {
            if write {
                c.write_complete(page, result)
            } else {
                c.read_complete(page, result)
            }
        })
    }

    /// Bytes one bounce-buffer read covers from `address`.
    fn read_chunk(address: u32, remaining: u32) -> u32 {
        remaining.min(PROGRAM_PAGE - address % 4)
    }

    /// Bytes one program covers from `address`: up to the end of its 256-byte page.
    fn program_chunk(address: u32, remaining: u32) -> u32 {
        remaining.min(PROGRAM_PAGE - address % PROGRAM_PAGE)
    }

    fn start_nor_read(&self, at: u32, remaining: u32) {
        let chunk = Self::read_chunk(at, remaining);
        let aligned = at & !3;
        let count = (at - aligned + chunk).next_multiple_of(4);
        // A read has no delay to bound; READY's time-out covers it.
        self.start(Sequence::read(aligned, count), 0);
    }

    /// Copy `chunk` bytes read at `address` from the bounce buffer into the client's buffer at
    /// `offset`.
    fn copy_out_of_bounce(&self, address: u32, offset: u32, chunk: u32) {
        let head = (address % 4) as usize;
        self.bounce.map(|bounce| {
            self.nor_buffer.map(|buffer| {
                for i in 0..chunk as usize {
                    if let Some(slot) = buffer.get_mut(offset as usize + i) {
                        *slot = bounce.byte(head + i);
                    }
                }
            });
        });
    }

    /// Program bytes `done..` of a job of `len` at `address`: pad to whole words with 0xFF.
    fn start_nor_program(&self, address: u32, len: u32, done: u32) {
        let at = address + done;
        let chunk = Self::program_chunk(at, len - done);
        let head = at % 4;
        let count = (head + chunk).next_multiple_of(4);
        self.bounce.map(|bounce| {
            bounce.0.iter_mut().for_each(|w| *w = 0xFFFF_FFFF);
            self.nor_buffer.map(|buffer| {
                for i in 0..chunk as usize {
                    let byte = buffer.get(done as usize + i).copied().unwrap_or(0xFF);
                    bounce.set_byte(head as usize + i, byte);
                }
            });
        });
        self.start(
            Sequence::program_page(at - head, count, self.config.mode),
            limit_us(Operation::PageProgram),
        );
    }

    fn idle(&self) -> Result<(), ErrorCode> {
        match self.job.get() {
            Job::Idle => Ok(()),
            Job::Off | Job::Init => Err(ErrorCode::OFF),
            _ => Err(ErrorCode::BUSY),
        }
    }

    fn page_address(&self, page_number: usize) -> Option<u32> {
        let address = u32::try_from(page_number).ok()?.checked_mul(SECTOR_SIZE)?;
        range_ok(address, SECTOR_SIZE as usize, self.config.capacity).then_some(address)
    }
}

impl<'a, A: Alarm<'a>> AlarmClient for QspiFlash<'a, A> {
    fn alarm(&self) {
        match self.waiting.get() {
            Waiting::Alarm { from, ticks } => {
                let moved = self.alarm.now().wrapping_sub(A::Ticks::from(from));
                if moved.into_u32() < ticks {
                    // Early (an alarm that fired on a tick boundary): wait out the rest.
                    self.alarm
                        .set_alarm(A::Ticks::from(from), A::Ticks::from(ticks));
                    return;
                }
                self.waiting.set(Waiting::Nothing);
                let elapsed = self.elapsed_us.get() + Self::ticks_to_us(moved.into_u32());
                self.elapsed_us.set(elapsed);
                if elapsed > self.limit_us.get() {
                    if let Some(mut sequence) = self.sequence.get() {
                        sequence.fail(nrf52840_flash::FlashError::Timeout);
                        self.sequence.set(Some(sequence));
                    }
                    self.run();
                } else {
                    self.complete_action(&[]);
                }
            }
            // A DEACTIVATE that raised no READY: disable anyway and go on.
            Waiting::Ready { .. } if self.bringup.get() == Bringup::Deactivating => {
                self.waiting.set(Waiting::Nothing);
                self.bringup.set(Bringup::Done);
                self.configure_and_activate();
            }
            // READY came but its interrupt is not served yet (the kernel serves RTC1 before
            // QSPI, and a CPU stalled by an NVMC erase lets both fire together): no time-out.
            Waiting::Ready { .. } if self.regs.events_ready.is_set(Event::GENERATED) => {
                self.handle_interrupt()
            }
            Waiting::Ready { .. } => self.recover(),
            Waiting::Nothing => {}
        }
    }
}

impl<'a, A: Alarm<'a>, C: hil::flash::Client<Self>> hil::flash::HasClient<'a, C>
    for QspiFlash<'a, A>
{
    fn set_client(&self, client: &'a C) {
        self.page_client.set(client);
    }
}

impl<'a, A: Alarm<'a>> hil::flash::Flash for QspiFlash<'a, A> {
    type Page = QspiPage;

    fn read_page(
        &self,
        page_number: usize,
        buf: &'static mut Self::Page,
    ) -> Result<(), (ErrorCode, &'static mut Self::Page)> {
        let address = self.take_page(page_number, buf)?;
        self.job.set(Job::PageRead);
        self.page_offset.set(0);
        self.start(Sequence::read(address, SECTOR_SIZE), 0);
        Ok(())
    }

    fn write_page(
        &self,
        page_number: usize,
        buf: &'static mut Self::Page,
    ) -> Result<(), (ErrorCode, &'static mut Self::Page)> {
        let address = self.take_page(page_number, buf)?;
        self.job.set(Job::PageWrite {
            address,
            erased: false,
            done: 0,
        });
        self.start(
            Sequence::erase(Operation::EraseSector, address, self.config.mode),
            limit_us(Operation::EraseSector),
        );
        Ok(())
    }

    fn erase_page(&self, page_number: usize) -> Result<(), ErrorCode> {
        let address = self.page_address(page_number).ok_or(ErrorCode::INVAL)?;
        self.idle()?;
        self.job.set(Job::PageErase);
        self.start(
            Sequence::erase(Operation::EraseSector, address, self.config.mode),
            limit_us(Operation::EraseSector),
        );
        Ok(())
    }
}

impl<'a, A: Alarm<'a>> QspiFlash<'a, A> {
    /// Checks a NOR read or program request (non-empty, inside the buffer and the chip, driver
    /// idle) and keeps `buffer` for it; hands the buffer back on refusal.
    fn take_nor_buffer(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<u32, (ErrorCode, &'static mut [u8])> {
        if len == 0 || len > buffer.len() || !range_ok(address, len, self.config.capacity) {
            return Err((ErrorCode::INVAL, buffer));
        }
        if let Err(e) = self.idle() {
            return Err((e, buffer));
        }
        self.nor_buffer.replace(buffer);
        Ok(len as u32)
    }

    /// Checks a page read or write request (a page of the chip, driver idle) and keeps `buf` for
    /// it; returns the page's address, or hands the buffer back on refusal.
    fn take_page(
        &self,
        page_number: usize,
        buf: &'static mut QspiPage,
    ) -> Result<u32, (ErrorCode, &'static mut QspiPage)> {
        let Some(address) = self.page_address(page_number) else {
            return Err((ErrorCode::INVAL, buf));
        };
        if let Err(e) = self.idle() {
            return Err((e, buf));
        }
        self.page.replace(buf);
        Ok(address)
    }
}

impl<'a, A: Alarm<'a>> AsyncNor<'a> for QspiFlash<'a, A> {
    fn set_nor_client(&self, client: &'a dyn AsyncNorClient) {
        self.nor_client.set(client);
    }

    fn capacity(&self) -> u32 {
        self.config.capacity
    }

    fn read(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        let len = self.take_nor_buffer(address, buffer, len)?;
        self.job.set(Job::NorRead {
            address,
            len,
            done: 0,
        });
        self.start_nor_read(address, len);
        Ok(())
    }

    fn program(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        let len = self.take_nor_buffer(address, buffer, len)?;
        self.job.set(Job::NorProgram {
            address,
            len,
            done: 0,
        });
        self.start_nor_program(address, len, 0);
        Ok(())
    }

    fn erase_sector(&self, address: u32) -> Result<(), ErrorCode> {
        if !address.is_multiple_of(SECTOR_SIZE)
            || !range_ok(address, SECTOR_SIZE as usize, self.config.capacity)
        {
            return Err(ErrorCode::INVAL);
        }
        self.idle()?;
        self.job.set(Job::NorErase);
        self.start(
            Sequence::erase(Operation::EraseSector, address, self.config.mode),
            limit_us(Operation::EraseSector),
        );
        Ok(())
    }
}
