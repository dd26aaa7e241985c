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

use crate::error::FlashError;
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

    /// Wake the part, check its JEDEC ID, wait out any operation a previous boot left running,
    /// set QE and the power mode (one WRSR, only if needed), then raise SCK.
    pub fn init(mode: PowerMode) -> Self {
        Self::new(Kind::Init, Step::SlowClock, mode, Operation::EraseChip)
    }

    /// Poll WIP until `op` (running in power mode `mode`) has finished.
    pub fn wait_idle(op: Operation, mode: PowerMode) -> Self {
        Self::new(Kind::WaitIdle, Step::Poll, mode, op)
    }

    /// Start an erase (sector, 32/64 KiB block or chip) at `addr`. The sequence ends once the
    /// command is out; follow with [`Sequence::wait_idle`].
    pub fn start_erase(op: Operation, addr: u32, mode: PowerMode) -> Self {
        Self::new(Kind::Erase(op, addr), Step::Start, mode, op)
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
            (_, Step::ReleaseDelay) => Step::ReadId,
            (_, Step::ReadId) => {
                let mut id = [0u8; 3];
                for (d, s) in id.iter_mut().zip(rx) {
                    *d = *s;
                }
                if id == mx25r::JEDEC_ID {
                    Step::IdlePoll
                } else {
                    Step::Finished(Err(FlashError::WrongJedecId { found: id }))
                }
            }
            (_, Step::IdlePoll) | (_, Step::ConfigPoll) => {
                let next = if self.step == Step::IdlePoll {
                    Step::ReadStatus
                } else {
                    Step::FastClock
                };
                self.poll_result(first, next)
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
        assert_eq!(instr(s.action()).opcode, opcode::RDID);
        s.complete(&mx25r::JEDEC_ID);
        assert_eq!(instr(s.action()).opcode, opcode::RDSR);
        s.complete(&[0]);
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
            &mx25r::JEDEC_ID,
            &[0],
            &[status::QE],
            &[0, 0],
        ] {
            s.complete(rx);
        }
        assert_eq!(s.action(), Action::SetSck { hz: ULP_SCK_HZ });

        let mut s = Sequence::init(PowerMode::UltraLowPower);
        for rx in [&[][..], &[], &[], &[0xEF, 0x40, 0x18]] {
            s.complete(rx);
        }
        assert_eq!(
            s.action(),
            Action::Done(Err(FlashError::WrongJedecId {
                found: [0xEF, 0x40, 0x18]
            }))
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
            Sequence::start_erase(Operation::EraseSector, 0x3000, hp).action(),
            Action::Erase {
                addr: 0x3000,
                len: QspiEraseLen::Sector4K
            }
        );
        assert_eq!(
            Sequence::start_erase(Operation::EraseBlock64, 0x1_0000, hp).action(),
            Action::Erase {
                addr: 0x1_0000,
                len: QspiEraseLen::Block64K
            }
        );
        let be32 = instr(Sequence::start_erase(Operation::EraseBlock32, 0x12_8000, hp).action());
        assert_eq!(
            (be32.opcode, be32.data(), be32.wren),
            (opcode::BE32K, &[0x12, 0x80, 0x00][..], true)
        );
    }
}
