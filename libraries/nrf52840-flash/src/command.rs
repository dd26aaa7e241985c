//! MX25R6435F command sequences, sans-IO.
//!
//! A [`Sequence`] says which bus action comes next ([`Sequence::action`]) and is told when it
//! has completed ([`Sequence::complete`], with the bytes a custom instruction clocked in). The
//! blocking [`crate::qspi::QspiFlash`] runs a sequence in a loop over its port; a split-phase
//! Tock driver issues the same actions from its QSPI-ready interrupt and alarm callbacks. Both
//! therefore send exactly the same commands in the same order.
//!
//! What the nRF52840 QSPI peripheral does by itself and what is left to these sequences:
//! - WRITE task: sends WREN and the page program(s) itself, splitting at IFCONFIG0.PPSIZE
//!   (256 B); READY means the data is out, not that the flash finished.
//! - ERASE task: sends WREN and SE (4 KiB), BE64K or CE itself; READY when the command is out.
//!   32 KiB erase (BE32K) is not offered and goes through a custom instruction with
//!   CINSTRCONF.WREN.
//! - Neither task waits for the flash to finish: the sequences poll WIP (RDSR) with a delay of
//!   a fraction of the expected duration between polls, and give up after twice the datasheet
//!   maximum.

use crate::error::{FlashError, Misalignment};
use crate::mx25r::{self, opcode, status, Operation, PowerMode};
use crate::port::QspiEraseLen;

/// SCK used until the flash is known to be in high-performance mode.
pub const ULP_SCK_HZ: u32 = 8_000_000;
/// Fastest SCK of the nRF52840 QSPI.
pub const HP_SCK_HZ: u32 = 32_000_000;
/// Polls per expected duration: bounds the time lost to polling granularity below 1 %.
pub const POLLS_PER_OPERATION: u64 = 128;
/// tRES1, µs: release from deep power-down until commands are accepted.
pub const T_RELEASE_DPD_US: u32 = 35;
/// tDP, µs: time to enter deep power-down.
pub const T_ENTER_DPD_US: u32 = 10;
/// Largest EasyDMA transfer (READ.CNT / WRITE.CNT are 18 bits wide).
pub const MAX_DMA_LEN: u32 = 0x3_FFFF;

/// EasyDMA rules for a READ/WRITE task: word-aligned flash address, length a non-zero
/// multiple of 4 up to `max`, inside the part.
fn check_dma(addr: u32, len: u32, max: u32) -> Result<(), FlashError> {
    if len == 0 || len > max {
        return Err(FlashError::BadLength { len, max });
    }
    if !len.is_multiple_of(4) {
        return Err(FlashError::Misaligned {
            what: Misalignment::DmaLength,
            value: len,
        });
    }
    if !addr.is_multiple_of(4) {
        return Err(FlashError::Misaligned {
            what: Misalignment::QspiFlashAddress,
            value: addr,
        });
    }
    if u64::from(addr) + u64::from(len) > u64::from(mx25r::CAPACITY) {
        return Err(FlashError::OutOfBounds {
            addr,
            len,
            capacity: mx25r::CAPACITY,
        });
    }
    Ok(())
}

/// A custom instruction: `opcode` and up to 8 data bytes (full duplex).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub opcode: u8,
    pub data: [u8; 8],
    pub len: u8,
    /// Send WREN first (CINSTRCONF.WREN).
    pub wren: bool,
}

impl Instruction {
    const fn new(opcode: u8, len: u8) -> Self {
        Instruction {
            opcode,
            data: [0; 8],
            len,
            wren: false,
        }
    }

    /// The data bytes to send.
    pub fn data(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
}

/// The next bus action of a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a custom instruction and report the bytes read back.
    Instruction(Instruction),
    /// Start the QSPI ERASE task.
    Erase { addr: u32, len: QspiEraseLen },
    /// Start the QSPI WRITE task with the caller's word-aligned buffer of `len` bytes.
    Write { addr: u32, len: u32 },
    /// Start the QSPI READ task into the caller's word-aligned buffer of `len` bytes.
    Read { addr: u32, len: u32 },
    /// Wait this long (timer/alarm), then report completion.
    Delay { us: u32 },
    /// Set the SCK frequency, then report completion.
    SetSck { hz: u32 },
    /// The sequence is over.
    Done(Result<(), FlashError>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    // Init.
    SlowClock,
    Release,
    ReleaseDelay,
    ReadId,
    IdlePoll,
    ReadStatus,
    ReadConfig,
    WriteConfig,
    ConfigPoll,
    FastClock,
    // Generic.
    Start,
    Poll,
    PollDelay,
    EnterDelay,
    Finished(Result<(), FlashError>),
}

/// Which sequence is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Init,
    WaitIdle,
    Erase(Operation, u32),
    Program(u32, u32),
    Read(u32, u32),
    DeepPowerDown,
    Wake,
}

/// One MX25R6435F command sequence in progress.
#[derive(Clone, Copy, Debug)]
pub struct Sequence {
    kind: Kind,
    step: Step,
    mode: PowerMode,
    /// Operation whose completion is being polled (sets poll interval and timeout).
    polled: Operation,
    waited_us: u64,
    status: u8,
    config: [u8; 2],
}

impl Sequence {
    fn new(kind: Kind, step: Step, mode: PowerMode, polled: Operation) -> Self {
        Sequence {
            kind,
            step,
            mode,
            polled,
            waited_us: 0,
            status: 0,
            config: [0; 2],
        }
    }

    /// Wake the part, wait out any operation left running across a soft reset (the part
    /// ignores everything but RDSR until then), check its JEDEC ID, set QE and the power mode
    /// (one WRSR, only if needed), then raise SCK.
    pub fn init(mode: PowerMode) -> Self {
        Self::new(Kind::Init, Step::SlowClock, mode, Operation::EraseChip)
    }

    /// Poll WIP until `op` (running in power mode `mode`) has finished.
    pub fn wait_idle(op: Operation, mode: PowerMode) -> Self {
        Self::new(Kind::WaitIdle, Step::Poll, mode, op)
    }

    /// Erase (sector, 32/64 KiB block or chip) at `addr`, then poll WIP until done.
    /// [`Sequence::is_started`] turns true once the command is out.
    pub fn erase(op: Operation, addr: u32, mode: PowerMode) -> Self {
        let unit = match op {
            Operation::EraseSector => mx25r::SECTOR_SIZE,
            Operation::EraseBlock32 => mx25r::BLOCK32_SIZE,
            Operation::EraseBlock64 => mx25r::BLOCK64_SIZE,
            _ => mx25r::CAPACITY,
        };
        let mut s = Self::new(Kind::Erase(op, addr), Step::Start, mode, op);
        if !addr.is_multiple_of(unit) {
            s.step = Step::Finished(Err(FlashError::Misaligned {
                what: Misalignment::EraseUnit,
                value: addr,
            }));
        } else if addr >= mx25r::CAPACITY {
            s.step = Step::Finished(Err(FlashError::OutOfBounds {
                addr,
                len: unit,
                capacity: mx25r::CAPACITY,
            }));
        }
        s
    }

    /// Program `len` bytes at `addr` from a word-aligned buffer (one QSPI WRITE task, so `addr`
    /// and `len` must be multiples of 4, 1..=256 bytes inside one page), then poll WIP.
    pub fn program_page(addr: u32, len: u32, mode: PowerMode) -> Self {
        let mut s = Self::new(
            Kind::Program(addr, len),
            Step::Start,
            mode,
            Operation::PageProgram,
        );
        if let Err(e) = check_dma(addr, len, mx25r::PAGE_SIZE) {
            s.step = Step::Finished(Err(e));
        } else if addr % mx25r::PAGE_SIZE + len > mx25r::PAGE_SIZE {
            s.step = Step::Finished(Err(FlashError::CrossesPage { addr, len }));
        }
        s
    }

    /// Quad I/O read of `len` bytes at `addr` into a word-aligned buffer (one READ task).
    pub fn read(addr: u32, len: u32) -> Self {
        let mut s = Self::new(
            Kind::Read(addr, len),
            Step::Start,
            PowerMode::UltraLowPower,
            Operation::PageProgram,
        );
        if let Err(e) = check_dma(addr, len, MAX_DMA_LEN) {
            s.step = Step::Finished(Err(e));
        }
        s
    }

    /// Whether the program/erase command is out and the sequence is now polling WIP: a
    /// non-blocking caller may leave the rest for later.
    pub fn is_started(&self) -> bool {
        matches!(self.kind, Kind::Erase(..) | Kind::Program(..))
            && matches!(self.step, Step::Poll | Step::PollDelay)
    }

    /// Enter deep power-down.
    pub fn deep_power_down() -> Self {
        Self::new(
            Kind::DeepPowerDown,
            Step::Start,
            PowerMode::UltraLowPower,
            Operation::WriteStatus,
        )
    }

    /// Leave deep power-down.
    pub fn wake() -> Self {
        Self::new(
            Kind::Wake,
            Step::Release,
            PowerMode::UltraLowPower,
            Operation::WriteStatus,
        )
    }

    fn poll_step_us(&self) -> u32 {
        (mx25r::typical_us(self.polled, self.mode) / POLLS_PER_OPERATION).clamp(1, 100_000) as u32
    }

    /// What to do now.
    pub fn action(&self) -> Action {
        match self.step {
            Step::SlowClock => Action::SetSck { hz: ULP_SCK_HZ },
            Step::Release => Action::Instruction(Instruction::new(opcode::RDP, 0)),
            Step::ReleaseDelay => Action::Delay {
                us: T_RELEASE_DPD_US,
            },
            Step::ReadId => Action::Instruction(Instruction::new(opcode::RDID, 3)),
            Step::IdlePoll | Step::Poll | Step::ConfigPoll => {
                Action::Instruction(Instruction::new(opcode::RDSR, 1))
            }
            Step::PollDelay => Action::Delay {
                us: self.poll_step_us(),
            },
            Step::ReadStatus => Action::Instruction(Instruction::new(opcode::RDSR, 1)),
            Step::ReadConfig => Action::Instruction(Instruction::new(opcode::RDCR, 2)),
            Step::WriteConfig => {
                let mut i = Instruction::new(opcode::WRSR, 3);
                i.data[0] = self.status | status::QE;
                i.data[1] = self.config[0];
                i.data[2] = self.wanted_cr2();
                i.wren = true;
                Action::Instruction(i)
            }
            Step::FastClock => Action::SetSck {
                hz: match self.mode {
                    PowerMode::HighPerformance => HP_SCK_HZ,
                    PowerMode::UltraLowPower => ULP_SCK_HZ,
                },
            },
            Step::Start => match self.kind {
                Kind::Erase(Operation::EraseSector, addr) => Action::Erase {
                    addr,
                    len: QspiEraseLen::Sector4K,
                },
                Kind::Erase(Operation::EraseBlock64, addr) => Action::Erase {
                    addr,
                    len: QspiEraseLen::Block64K,
                },
                Kind::Erase(Operation::EraseBlock32, addr) => {
                    let mut i = Instruction::new(opcode::BE32K, 3);
                    i.data[..3].copy_from_slice(&[
                        (addr >> 16) as u8,
                        (addr >> 8) as u8,
                        addr as u8,
                    ]);
                    i.wren = true;
                    Action::Instruction(i)
                }
                Kind::Erase(_, _) => Action::Erase {
                    addr: 0,
                    len: QspiEraseLen::All,
                },
                Kind::Program(addr, len) => Action::Write { addr, len },
                Kind::Read(addr, len) => Action::Read { addr, len },
                Kind::DeepPowerDown => Action::Instruction(Instruction::new(opcode::DP, 0)),
                _ => Action::Done(Ok(())),
            },
            Step::EnterDelay => Action::Delay { us: T_ENTER_DPD_US },
            Step::Finished(r) => Action::Done(r),
        }
    }

    fn wanted_cr2(&self) -> u8 {
        match self.mode {
            PowerMode::HighPerformance => self.config[1] | mx25r::CR2_HIGH_PERFORMANCE,
            PowerMode::UltraLowPower => self.config[1] & !mx25r::CR2_HIGH_PERFORMANCE,
        }
    }

    /// The last action finished; `rx` holds the bytes an instruction clocked in (else empty).
    pub fn complete(&mut self, rx: &[u8]) {
        let first = rx.first().copied().unwrap_or(0);
        self.step = match (self.kind, self.step) {
            (_, Step::SlowClock) => Step::Release,
            (Kind::Wake, Step::Release) => Step::ReleaseDelay,
            (Kind::Wake, Step::ReleaseDelay) => Step::Finished(Ok(())),
            (_, Step::Release) => Step::ReleaseDelay,
            (_, Step::ReleaseDelay) => Step::IdlePoll,
            // An absent part reads as all ones: go on to the ID check, which names it.
            (_, Step::IdlePoll) if first == 0xFF => Step::ReadId,
            (_, Step::IdlePoll) => self.poll_result(first, Step::ReadId),
            (_, Step::ConfigPoll) => self.poll_result(first, Step::FastClock),
            (_, Step::ReadId) => {
                let mut id = [0u8; 3];
                for (d, s) in id.iter_mut().zip(rx) {
                    *d = *s;
                }
                if id == mx25r::JEDEC_ID {
                    Step::ReadStatus
                } else {
                    Step::Finished(Err(FlashError::WrongJedecId { found: id }))
                }
            }
            (_, Step::ReadStatus) => {
                self.status = first;
                Step::ReadConfig
            }
            (_, Step::ReadConfig) => {
                self.config = [first, rx.get(1).copied().unwrap_or(0)];
                if self.status & status::QE == 0 || self.config[1] != self.wanted_cr2() {
                    Step::WriteConfig
                } else {
                    Step::FastClock
                }
            }
            (_, Step::WriteConfig) => {
                self.polled = Operation::WriteStatus;
                self.waited_us = 0;
                Step::ConfigPoll
            }
            (_, Step::FastClock) => Step::Finished(Ok(())),
            (_, Step::Poll) => self.poll_result(first, Step::Finished(Ok(()))),
            (Kind::Init, Step::PollDelay) => {
                if self.polled == Operation::WriteStatus {
                    Step::ConfigPoll
                } else {
                    Step::IdlePoll
                }
            }
            (_, Step::PollDelay) => Step::Poll,
            (Kind::DeepPowerDown, Step::Start) => Step::EnterDelay,
            (Kind::Erase(..), Step::Start) | (Kind::Program(..), Step::Start) => {
                self.waited_us = 0;
                Step::Poll
            }
            (_, Step::Start) => Step::Finished(Ok(())),
            (_, Step::EnterDelay) => Step::Finished(Ok(())),
            (_, s @ Step::Finished(_)) => s,
        };
    }

    fn poll_result(&mut self, sr: u8, done: Step) -> Step {
        if sr & status::WIP == 0 {
            return done;
        }
        if self.waited_us > 2 * mx25r::max_us(self.polled) {
            return Step::Finished(Err(FlashError::Timeout));
        }
        self.waited_us += u64::from(self.poll_step_us());
        Step::PollDelay
    }

    /// A failed action (e.g. power lost) ends the sequence with that error.
    pub fn fail(&mut self, error: FlashError) {
        self.step = Step::Finished(Err(error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instr(a: Action) -> Instruction {
        match a {
            Action::Instruction(i) => i,
            other => panic!("expected an instruction, got {other:?}"),
        }
    }

    #[test]
    fn init_on_a_fresh_part_sets_qe_and_high_performance_once() {
        let mut s = Sequence::init(PowerMode::HighPerformance);
        assert_eq!(s.action(), Action::SetSck { hz: ULP_SCK_HZ });
        s.complete(&[]);
        assert_eq!(instr(s.action()).opcode, opcode::RDP);
        s.complete(&[]);
        assert_eq!(s.action(), Action::Delay { us: 35 });
        s.complete(&[]);
        assert_eq!(instr(s.action()).opcode, opcode::RDSR);
        s.complete(&[status::WIP]);
        assert!(matches!(s.action(), Action::Delay { .. }));
        s.complete(&[]);
        assert_eq!(instr(s.action()).opcode, opcode::RDSR);
        s.complete(&[0]);
        assert_eq!(instr(s.action()).opcode, opcode::RDID);
        s.complete(&mx25r::JEDEC_ID);
        assert_eq!(instr(s.action()).opcode, opcode::RDSR);
        s.complete(&[0]);
        assert_eq!(instr(s.action()).opcode, opcode::RDCR);
        s.complete(&[0, 0]);
        let w = instr(s.action());
        assert_eq!(
            (w.opcode, w.data(), w.wren),
            (opcode::WRSR, &[0x40, 0, 2][..], true)
        );
        s.complete(&[0, 0, 0]);
        assert_eq!(instr(s.action()).opcode, opcode::RDSR);
        s.complete(&[status::WIP]);
        assert!(matches!(s.action(), Action::Delay { .. }));
        s.complete(&[]);
        s.complete(&[0]);
        assert_eq!(s.action(), Action::SetSck { hz: HP_SCK_HZ });
        s.complete(&[]);
        assert_eq!(s.action(), Action::Done(Ok(())));
    }

    #[test]
    fn init_skips_wrsr_when_already_configured_and_rejects_wrong_id() {
        let mut s = Sequence::init(PowerMode::UltraLowPower);
        for rx in [
            &[][..],
            &[],
            &[],
            &[0],
            &mx25r::JEDEC_ID,
            &[status::QE],
            &[0, 0],
        ] {
            s.complete(rx);
        }
        assert_eq!(s.action(), Action::SetSck { hz: ULP_SCK_HZ });

        let mut s = Sequence::init(PowerMode::UltraLowPower);
        for rx in [&[][..], &[], &[], &[0], &[0xEF, 0x40, 0x18]] {
            s.complete(rx);
        }
        assert_eq!(
            s.action(),
            Action::Done(Err(FlashError::WrongJedecId {
                found: [0xEF, 0x40, 0x18]
            }))
        );

        // No part at all: status and ID read as ones; named at once, no busy wait.
        let mut s = Sequence::init(PowerMode::UltraLowPower);
        for rx in [&[][..], &[], &[], &[0xFF], &[0xFF, 0xFF, 0xFF]] {
            s.complete(rx);
        }
        assert_eq!(
            s.action(),
            Action::Done(Err(FlashError::WrongJedecId { found: [0xFF; 3] }))
        );
    }

    #[test]
    fn wait_idle_times_out_after_twice_the_maximum() {
        let mut s = Sequence::wait_idle(Operation::PageProgram, PowerMode::HighPerformance);
        let mut polls = 0;
        loop {
            match s.action() {
                Action::Instruction(_) => {
                    polls += 1;
                    s.complete(&[status::WIP]);
                }
                Action::Delay { .. } => s.complete(&[]),
                Action::Done(r) => {
                    assert_eq!(r, Err(FlashError::Timeout));
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        // 20 ms limit / (850 µs / 128 = 6 µs per poll).
        assert!((3000..4000).contains(&polls), "{polls} polls");
    }

    #[test]
    fn erases_use_the_task_or_a_custom_instruction() {
        let hp = PowerMode::HighPerformance;
        assert_eq!(
            Sequence::erase(Operation::EraseSector, 0x3000, hp).action(),
            Action::Erase {
                addr: 0x3000,
                len: QspiEraseLen::Sector4K
            }
        );
        assert_eq!(
            Sequence::erase(Operation::EraseBlock64, 0x1_0000, hp).action(),
            Action::Erase {
                addr: 0x1_0000,
                len: QspiEraseLen::Block64K
            }
        );
        let be32 = instr(Sequence::erase(Operation::EraseBlock32, 0x12_8000, hp).action());
        assert_eq!(
            (be32.opcode, be32.data(), be32.wren),
            (opcode::BE32K, &[0x12, 0x80, 0x00][..], true)
        );
        assert!(matches!(
            Sequence::erase(Operation::EraseBlock32, 0x1000, hp).action(),
            Action::Done(Err(FlashError::Misaligned { .. }))
        ));
    }

    #[test]
    fn program_page_writes_then_polls_until_idle() {
        let mut s = Sequence::program_page(0x1F0, 16, PowerMode::HighPerformance);
        assert!(!s.is_started());
        assert_eq!(
            s.action(),
            Action::Write {
                addr: 0x1F0,
                len: 16
            }
        );
        s.complete(&[]);
        assert!(s.is_started());
        assert_eq!(instr(s.action()).opcode, opcode::RDSR);
        s.complete(&[status::WIP | status::WEL]);
        assert_eq!(s.action(), Action::Delay { us: 850 / 128 });
        s.complete(&[]);
        s.complete(&[0]);
        assert_eq!(s.action(), Action::Done(Ok(())));
    }

    #[test]
    fn program_and_read_reject_what_easydma_or_the_part_cannot_do() {
        let hp = PowerMode::HighPerformance;
        for (addr, len) in [(0x1F0u32, 32u32), (0x100, 0), (0x100, 260)] {
            assert!(
                matches!(
                    Sequence::program_page(addr, len, hp).action(),
                    Action::Done(Err(
                        FlashError::CrossesPage { .. } | FlashError::BadLength { .. }
                    ))
                ),
                "{addr:#x} {len}"
            );
        }
        assert!(matches!(
            Sequence::program_page(0x102, 4, hp).action(),
            Action::Done(Err(FlashError::Misaligned { .. }))
        ));
        assert!(matches!(
            Sequence::read(0, 6).action(),
            Action::Done(Err(FlashError::Misaligned { .. }))
        ));
        assert!(matches!(
            Sequence::read(mx25r::CAPACITY - 4, 8).action(),
            Action::Done(Err(FlashError::OutOfBounds { .. }))
        ));
        let mut r = Sequence::read(0x100, 64);
        assert_eq!(
            r.action(),
            Action::Read {
                addr: 0x100,
                len: 64
            }
        );
        r.complete(&[]);
        assert_eq!(r.action(), Action::Done(Ok(())));
    }
}
