//! The nRF52840 TIMER0, register level: nRF52840 Product Specification v1.7, section 6.30
//! (TIMER), in timer mode.
//!
//! Time is the 16 MHz clock's ticks (`tick16`, u64, from the emulation's start): the counter
//! steps once every 2^PRESCALER ticks (f = 16 MHz / 2^PRESCALER) while the timer runs, and wraps
//! at its BITMODE width (8, 16, 24 or 32 bits). The caller derives the ticks from the emulated
//! clock (the CPU runs at 64 MHz: four cycles a tick), so the timer is exact to the cycle.
//!
//! - Tasks: START, STOP, CLEAR (counter to 0, the step phase restarts), CAPTURE\[n\] (CC\[n\] =
//!   the counter now). COUNT and SHUTDOWN are refused (counter mode is not modelled; SHUTDOWN is
//!   deprecated).
//! - COMPARE\[n\]: its event is set when the counter *steps to* CC\[n\] (PS 6.30.4): a CC written
//!   or captured equal to the counter fires only after a full wrap. [`Timer::next_compare`]
//!   tells when each comes, for PPI and for a sleeping CPU.
//! - MODE, BITMODE and PRESCALER are refused while the timer runs (the PS says to change them
//!   only while stopped); MODE other than Timer is refused at START, PRESCALER above 9 at
//!   the write.
//! - SHORTS other than 0 are refused (nothing the receiver uses; not modelled).
//! - INTENSET/INTENCLR: COMPARE\[n\] at bit 16 + n; the interrupt line (TIMER0 is IRQ 8) is high
//!   while an enabled event is set.
//! - Four CC registers (TIMER0–2 have four, TIMER3–4 six: PS 6.30, "Instances").
//!
//! Any other offset is [`TimerError::Unknown`].

/// Compare/capture registers of TIMER0.
pub const CC_COUNT: usize = 4;
/// TIMER0's interrupt number (PS, "Instantiation": ID 8).
pub const TIMER0_IRQ: u32 = 8;

/// Why a TIMER access is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    /// An offset the model does not know.
    Unknown,
    /// A task or value the model does not support, or the hardware would misbehave on.
    Unsupported(&'static str, u32),
}

/// One TIMER (TIMER0's four CC registers).
#[derive(Clone, Debug)]
pub struct Timer {
    running: bool,
    /// The counter's value at `base_tick`; while running it steps every 2^prescaler ticks from
    /// there.
    base_count: u64,
    base_tick: u64,
    /// The latest tick the model has been brought to (events up to it are set).
    at_tick: u64,
    mode: u32,
    bitmode: u32,
    prescaler: u32,
    inten: u32,
    events: u32,
    cc: [u32; CC_COUNT],
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    /// Reset state: stopped at 0, timer mode, 16 bits, PRESCALER 4.
    pub fn new() -> Self {
        Timer {
            running: false,
            base_count: 0,
            base_tick: 0,
            at_tick: 0,
            mode: 0,
            bitmode: 0,
            prescaler: 4,
            inten: 0,
            events: 0,
            cc: [0; CC_COUNT],
        }
    }

    fn width_mask(&self) -> u64 {
        match self.bitmode & 3 {
            0 => 0xFFFF,
            1 => 0xFF,
            2 => 0xFF_FFFF,
            _ => 0xFFFF_FFFF,
        }
    }

    /// Steps taken since `base_tick` by `tick` (unwrapped).
    fn steps_at(&self, tick: u64) -> u64 {
        if !self.running || tick <= self.base_tick {
            return 0;
        }
        (tick - self.base_tick) >> self.prescaler
    }

    /// The counter at `tick` (wrapped to BITMODE).
    pub fn counter(&self, tick: u64) -> u32 {
        ((self.base_count + self.steps_at(tick)) & self.width_mask()) as u32
    }

    /// Re-bases the counter at `tick` (after which settings may change).
    fn rebase(&mut self, tick: u64) {
        self.base_count = u64::from(self.counter(tick));
        self.base_tick = tick;
    }

    /// The tick at which COMPARE\[n\] next comes after `after_tick` (the counter stepping to
    /// CC\[n\]), if the timer runs.
    pub fn next_compare(&self, n: usize, after_tick: u64) -> Option<u64> {
        if !self.running {
            return None;
        }
        let mask = self.width_mask();
        let steps_done = self.steps_at(after_tick);
        let now = (self.base_count + steps_done) & mask;
        // Steps until the counter equals CC[n] again, at least one.
        let k = (u64::from(self.cc[n]).wrapping_sub(now).wrapping_sub(1) & mask) + 1;
        Some(self.base_tick + ((steps_done + k) << self.prescaler))
    }

    /// The earliest COMPARE after `after_tick` among the CC registers in `which` (bit n):
    /// (tick, n).
    pub fn next_compare_of(&self, which: u32, after_tick: u64) -> Option<(u64, usize)> {
        (0..CC_COUNT)
            .filter(|n| which & (1 << n) != 0)
            .filter_map(|n| Some((self.next_compare(n, after_tick)?, n)))
            .min()
    }

    /// Brings the model to `tick`: sets the COMPARE events that came in between. Returns the
    /// CC registers whose COMPARE came (bit n).
    pub fn advance(&mut self, tick: u64) -> u32 {
        let mut fired = 0;
        if tick > self.at_tick {
            for n in 0..CC_COUNT {
                if self
                    .next_compare(n, self.at_tick)
                    .is_some_and(|t| t <= tick)
                {
                    fired |= 1 << n;
                }
            }
            self.at_tick = tick;
        }
        self.events |= fired;
        fired
    }

    /// A task at `tick` (by register access or through PPI): TASKS_x at `offset`.
    pub fn task(&mut self, offset: u32, tick: u64) -> Result<(), TimerError> {
        self.advance(tick);
        match offset {
            0x000 => {
                if self.mode & 3 != 0 {
                    return Err(TimerError::Unsupported(
                        "START with MODE other than Timer (counter modes are not modelled)",
                        self.mode,
                    ));
                }
                if !self.running {
                    self.base_tick = tick;
                    self.running = true;
                }
            }
            0x004 => {
                self.rebase(tick);
                self.running = false;
            }
            0x00C => {
                self.base_count = 0;
                self.base_tick = tick;
            }
            0x040..=0x04C => self.cc[((offset - 0x040) / 4) as usize] = self.counter(tick),
            0x008 => return Err(TimerError::Unsupported("TASKS_COUNT (counter mode)", 1)),
            0x010 => return Err(TimerError::Unsupported("TASKS_SHUTDOWN (deprecated)", 1)),
            _ => return Err(TimerError::Unknown),
        }
        Ok(())
    }

    /// Reads the register at `offset` at `tick`.
    pub fn read(&mut self, offset: u32, tick: u64) -> Result<u32, TimerError> {
        self.advance(tick);
        Ok(match offset {
            0x000..=0x010 | 0x040..=0x04C => 0,
            0x140..=0x14C => (self.events >> ((offset - 0x140) / 4)) & 1,
            0x200 => 0,
            0x304 | 0x308 => self.inten,
            0x504 => self.mode,
            0x508 => self.bitmode,
            0x510 => self.prescaler,
            0x540..=0x54C => self.cc[((offset - 0x540) / 4) as usize],
            _ => return Err(TimerError::Unknown),
        })
    }

    /// Writes the register at `offset` at `tick`.
    pub fn write(&mut self, offset: u32, value: u32, tick: u64) -> Result<(), TimerError> {
        self.advance(tick);
        let stopped = |what| {
            if self.running {
                Err(TimerError::Unsupported(what, value))
            } else {
                Ok(())
            }
        };
        match offset {
            0x000..=0x010 | 0x040..=0x04C => {
                if value & 1 != 0 {
                    self.task(offset, tick)?;
                }
            }
            0x140..=0x14C => {
                let bit = 1 << ((offset - 0x140) / 4);
                if value & 1 == 0 {
                    self.events &= !bit;
                } else {
                    self.events |= bit;
                }
            }
            0x200 if value == 0 => {}
            0x200 => {
                return Err(TimerError::Unsupported(
                    "TIMER SHORTS (not modelled)",
                    value,
                ))
            }
            0x304 => self.inten |= value & (0xF << 16),
            0x308 => self.inten &= !(value & (0xF << 16)),
            0x504 => {
                stopped("MODE written while the timer runs")?;
                self.mode = value & 3;
            }
            0x508 => {
                stopped("BITMODE written while the timer runs")?;
                self.bitmode = value & 3;
            }
            0x510 => {
                stopped("PRESCALER written while the timer runs")?;
                if value & 0xF > 9 {
                    return Err(TimerError::Unsupported("PRESCALER above 9", value));
                }
                self.prescaler = value & 0xF;
            }
            0x540..=0x54C => self.cc[((offset - 0x540) / 4) as usize] = value,
            _ => return Err(TimerError::Unknown),
        }
        Ok(())
    }

    /// Whether the interrupt line is high at `tick`.
    pub fn irq(&mut self, tick: u64) -> bool {
        self.advance(tick);
        (self.events << 16) & self.inten != 0
    }

    /// The next tick after `after_tick` at which the interrupt line rises, if any (an enabled
    /// COMPARE).
    pub fn next_irq(&self, after_tick: u64) -> Option<u64> {
        self.next_compare_of(self.inten >> 16, after_tick)
            .map(|(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TIMER0 set up as `aux_radio` does: stop, timer mode, 32 bits, 1 MHz, start.
    fn one_mhz(at: u64) -> Timer {
        let mut t = Timer::new();
        t.write(0x004, 1, at).unwrap();
        t.write(0x308, u32::MAX, at).unwrap();
        t.write(0x504, 0, at).unwrap();
        t.write(0x508, 3, at).unwrap();
        t.write(0x510, 4, at).unwrap();
        t.write(0x000, 1, at).unwrap();
        t
    }

    fn capture(t: &mut Timer, n: u32, tick: u64) -> u32 {
        t.write(0x040 + 4 * n, 1, tick).unwrap();
        t.read(0x540 + 4 * n, tick).unwrap()
    }

    #[test]
    fn counts_at_16_mhz_over_the_prescaler_from_start() {
        // Started at tick 5: one step every 16 ticks from there.
        let mut t = one_mhz(5);
        assert_eq!(capture(&mut t, 3, 5), 0);
        assert_eq!(capture(&mut t, 3, 20), 0);
        assert_eq!(capture(&mut t, 3, 21), 1);
        assert_eq!(capture(&mut t, 3, 5 + 16 * 1_000_000), 1_000_000);
        // Stopped, it holds; started again, it goes on from there.
        t.write(0x004, 1, 5 + 16 * 10).unwrap();
        assert_eq!(capture(&mut t, 2, 5 + 16 * 100), 10);
        t.write(0x000, 1, 1000).unwrap();
        assert_eq!(capture(&mut t, 2, 1000 + 16 * 3), 13);
        // CLEAR: back to 0.
        t.write(0x00C, 1, 2000).unwrap();
        assert_eq!(capture(&mut t, 2, 2000 + 15), 0);
        // PRESCALER 0: 16 MHz.
        let mut t = Timer::new();
        t.write(0x510, 0, 0).unwrap();
        t.write(0x000, 1, 0).unwrap();
        assert_eq!(capture(&mut t, 0, 7), 7);
    }

    #[test]
    fn wraps_at_the_bitmode_width() {
        let mut t = Timer::new(); // 16 bits, 1 MHz
        t.write(0x000, 1, 0).unwrap();
        assert_eq!(capture(&mut t, 0, 16 * 65_537), 1);
        let mut t = one_mhz(0);
        assert_eq!(capture(&mut t, 0, 16 * ((1 << 32) + 2)), 2);
    }

    #[test]
    fn compare_fires_when_the_counter_steps_to_cc() {
        let mut t = one_mhz(0);
        t.write(0x540, 100, 0).unwrap();
        assert_eq!(t.next_compare(0, 0), Some(1600));
        assert_eq!(t.read(0x140, 1599), Ok(0));
        assert_eq!(t.read(0x140, 1600), Ok(1));
        assert_eq!(t.advance(1700), 0, "fired once");
        // A CC captured equal to the counter fires only after a full wrap.
        let now = capture(&mut t, 1, 1700);
        assert_eq!(now, 106);
        assert_eq!(t.next_compare(1, 1700), Some(16 * (1 << 32) + 16 * 106));
        // An interrupt only where enabled.
        t.write(0x140, 0, 1700).unwrap();
        t.write(0x548, 200, 1700).unwrap();
        assert!(!t.irq(16 * 201));
        t.write(0x304, 1 << 18, 16 * 201).unwrap();
        assert!(t.irq(16 * 201), "COMPARE[2] set and enabled");
        assert_eq!(t.next_irq(16 * 201), Some(16 * ((1 << 32) + 200)));
        // Stopped: no compare ever.
        t.write(0x004, 1, 16 * 201).unwrap();
        assert_eq!(t.next_compare(0, 16 * 201), None);
    }

    #[test]
    fn misuse_is_refused() {
        let mut t = one_mhz(0);
        for (offset, value) in [(0x510, 3), (0x508, 0), (0x504, 1), (0x200, 1), (0x008, 1)] {
            assert!(
                matches!(t.write(offset, value, 10), Err(TimerError::Unsupported(..))),
                "{offset:#x}"
            );
        }
        assert_eq!(
            t.read(0x550, 0),
            Err(TimerError::Unknown),
            "CC[4] on TIMER0"
        );
        assert_eq!(t.write(0x600, 0, 0), Err(TimerError::Unknown));
        let mut t = Timer::new();
        assert!(t.write(0x510, 10, 0).is_err());
        t.write(0x504, 1, 0).unwrap();
        assert!(t.write(0x000, 1, 0).is_err(), "counter mode");
    }
}
