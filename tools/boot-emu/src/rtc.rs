//! RTC (real-time counter), register level: nRF52840 Product Specification v1.7, section 6.22.
//! Tock's alarm runs on RTC1 (`chips/nrf5x/src/rtc.rs`).
//!
//! - A 24-bit COUNTER clocked by LFCLK (32,768 Hz) through a 12-bit PRESCALER
//!   (f = 32,768 / (PRESCALER + 1)); PRESCALER can be written only while the RTC is stopped.
//! - TASKS_START/STOP/CLEAR/TRIGOVRFLW (TRIGOVRFLW sets COUNTER to 0xFFFFF0).
//! - EVENTS_TICK, EVENTS_OVRFLW and EVENTS_COMPARE[n]: an event register is set when the event
//!   happens whatever INTEN says; the interrupt line is high while an event is set whose INTEN
//!   bit is set.
//! - COMPARE[n] happens when COUNTER goes from CC[n] − 1 to CC[n]. PS 6.22.7: writing N or N+1
//!   to a CC register while COUNTER is N may not trigger a COMPARE event. The model loses the
//!   N+1 event when the write comes in the second half of tick N ([`LATE_WRITE_US`]): the
//!   compare is synchronised into the 32 kHz domain, so a late write misses the next tick's
//!   comparison while an early one makes it. (Taking every N+1 write as lost made Tock's alarm,
//!   which reads COUNTER and writes COUNTER + 2 a few instructions later, lose about one alarm
//!   in a hundred to a 512 s counter wrap; its two-tick margin, SYNC_TICS, is meant to keep
//!   clear of this rule. The half-tick threshold is this model's assumption: the PS gives none.)
//!   N written at N fires only after a full wrap.
//!
//! Time is the simulated clock in microseconds; COUNTER is the number of whole ticks since the
//! last start or clear.

/// LFCLK frequency.
pub const LFCLK_HZ: u64 = 32_768;
const COUNTER_MASK: u32 = 0x00FF_FFFF;
/// A CC write this close before the next tick (half a tick at PRESCALER 0) misses that tick's
/// comparison.
pub const LATE_WRITE_US: u64 = 15;
/// Number of compare registers (RTC0: 3, RTC1 and RTC2: 4).
pub const CC_COUNT: usize = 4;

/// Bits of INTEN/EVTEN.
const TICK_BIT: u32 = 1 << 0;
const OVRFLW_BIT: u32 = 1 << 1;
fn compare_bit(n: usize) -> u32 {
    1 << (16 + n)
}

/// One RTC instance.
#[derive(Clone, Debug)]
pub struct Rtc {
    running: bool,
    prescaler: u32,
    /// COUNTER at `base_us` (while running), or the frozen COUNTER (while stopped).
    base_counter: u32,
    /// Simulated time of the last start or clear, µs.
    base_us: u64,
    /// Ticks since `base_us` whose events have been raised.
    evaluated_ticks: u64,
    cc: [u32; CC_COUNT],
    /// Per compare register: the tick (counted like `evaluated_ticks`) whose COMPARE event is
    /// lost because CC was written with N+1 while COUNTER was N (PS 6.22.7).
    cc_lost_tick: [Option<u64>; CC_COUNT],
    events_tick: bool,
    events_ovrflw: bool,
    events_compare: [bool; CC_COUNT],
    inten: u32,
    evten: u32,
}

impl Default for Rtc {
    fn default() -> Self {
        Self::new()
    }
}

impl Rtc {
    /// Reset state: stopped, COUNTER 0, PRESCALER 0.
    pub fn new() -> Self {
        Rtc {
            running: false,
            prescaler: 0,
            base_counter: 0,
            base_us: 0,
            evaluated_ticks: 0,
            cc: [0; CC_COUNT],
            cc_lost_tick: [None; CC_COUNT],
            events_tick: false,
            events_ovrflw: false,
            events_compare: [false; CC_COUNT],
            inten: 0,
            evten: 0,
        }
    }

    fn us_per_tick_scaled(&self) -> u64 {
        1_000_000 * u64::from(self.prescaler + 1)
    }

    /// Whole ticks between the last start or clear and `now_us`.
    fn ticks(&self, now_us: u64) -> u64 {
        if !self.running {
            return 0;
        }
        now_us.saturating_sub(self.base_us) * LFCLK_HZ / self.us_per_tick_scaled()
    }

    /// The earliest time at which `ticks` whole ticks have elapsed.
    fn time_of_tick(&self, ticks: u64) -> u64 {
        self.base_us + (ticks * self.us_per_tick_scaled()).div_ceil(LFCLK_HZ)
    }

    fn counter(&self, now_us: u64) -> u32 {
        ((u64::from(self.base_counter) + self.ticks(now_us)) & u64::from(COUNTER_MASK)) as u32
    }

    /// The first tick after `after` (counted since the base) at which COUNTER equals `value`.
    fn next_tick_at(&self, value: u32, after: u64) -> u64 {
        let span = u64::from(COUNTER_MASK) + 1;
        let at = u64::from(self.base_counter) + after;
        let mut hit = (at & !u64::from(COUNTER_MASK)) + u64::from(value);
        if hit <= at {
            hit += span;
        }
        hit - u64::from(self.base_counter)
    }

    /// Raises the events of every tick up to `now_us`.
    fn evaluate(&mut self, now_us: u64) {
        let to = self.ticks(now_us);
        let from = self.evaluated_ticks;
        if to <= from {
            return;
        }
        self.events_tick = true;
        let start = u64::from(self.base_counter);
        if (start + to) >> 24 > (start + from) >> 24 {
            self.events_ovrflw = true;
        }
        for n in 0..CC_COUNT {
            let hit = self.next_tick_at(self.cc[n], from);
            let lost = self.cc_lost_tick[n];
            if hit <= to && lost != Some(hit) {
                self.events_compare[n] = true;
            }
            if lost.is_some_and(|t| t <= to) {
                self.cc_lost_tick[n] = None;
            }
        }
        self.evaluated_ticks = to;
    }

    /// Restarts the count at `counter` from `now_us`.
    fn rebase(&mut self, counter: u32, now_us: u64) {
        self.base_counter = counter;
        self.base_us = now_us;
        self.evaluated_ticks = 0;
        self.cc_lost_tick = [None; CC_COUNT];
    }

    /// Reads the register at `offset`; `None` for a register the model does not know.
    pub fn read(&mut self, offset: u32, now_us: u64) -> Option<u32> {
        self.evaluate(now_us);
        Some(match offset {
            0x100 => u32::from(self.events_tick),
            0x104 => u32::from(self.events_ovrflw),
            0x140..=0x14C => u32::from(self.events_compare[((offset - 0x140) / 4) as usize]),
            0x304 | 0x308 => self.inten,
            0x340 | 0x344 | 0x348 => self.evten,
            0x504 => self.counter(now_us),
            0x508 => self.prescaler,
            0x540..=0x54C => self.cc[((offset - 0x540) / 4) as usize],
            _ => return None,
        })
    }

    /// Writes the register at `offset`; `None` for a register the model does not know.
    pub fn write(&mut self, offset: u32, value: u32, now_us: u64) -> Option<()> {
        self.evaluate(now_us);
        let counter = self.counter(now_us);
        match offset {
            0x000 if value & 1 != 0 => {
                if !self.running {
                    self.running = true;
                    self.rebase(counter, now_us);
                }
            }
            0x004 if value & 1 != 0 => {
                self.rebase(counter, now_us);
                self.running = false;
            }
            0x008 if value & 1 != 0 => self.rebase(0, now_us),
            0x00C if value & 1 != 0 => self.rebase(0xFF_FFF0, now_us),
            0x000..=0x00C => {}
            0x100 => self.events_tick = value & 1 != 0,
            0x104 => self.events_ovrflw = value & 1 != 0,
            0x140..=0x14C => self.events_compare[((offset - 0x140) / 4) as usize] = value & 1 != 0,
            0x304 => self.inten |= value & Self::EVENT_BITS,
            0x308 => self.inten &= !(value & Self::EVENT_BITS),
            0x340 => self.evten = value & Self::EVENT_BITS,
            0x344 => self.evten |= value & Self::EVENT_BITS,
            0x348 => self.evten &= !(value & Self::EVENT_BITS),
            // PRESCALER is read-only while the RTC runs (PS 6.22.8).
            0x508 if !self.running => self.prescaler = value & 0xFFF,
            0x508 => {}
            0x540..=0x54C => {
                let n = ((offset - 0x540) / 4) as usize;
                let v = value & COUNTER_MASK;
                self.cc[n] = v;
                // N+1 written late in tick N: that tick's event is lost.
                let next = self.ticks(now_us) + 1;
                let late = self.time_of_tick(next).saturating_sub(now_us) < LATE_WRITE_US;
                self.cc_lost_tick[n] =
                    (self.running && late && v == (counter + 1) & COUNTER_MASK).then_some(next);
            }
            _ => return None,
        }
        Some(())
    }

    const EVENT_BITS: u32 = TICK_BIT | OVRFLW_BIT | 0xF << 16;

    /// Whether the interrupt line is high at `now_us`.
    pub fn irq(&mut self, now_us: u64) -> bool {
        self.evaluate(now_us);
        let mut ev = 0;
        if self.events_tick {
            ev |= TICK_BIT;
        }
        if self.events_ovrflw {
            ev |= OVRFLW_BIT;
        }
        for n in 0..CC_COUNT {
            if self.events_compare[n] {
                ev |= compare_bit(n);
            }
        }
        ev & self.inten != 0
    }

    /// The earliest simulated time after `now_us` at which an enabled event could raise the
    /// interrupt line, for WFI to skip to.
    pub fn next_irq_us(&self, now_us: u64) -> Option<u64> {
        if !self.running || self.inten == 0 {
            return None;
        }
        let now = self.ticks(now_us);
        let mut best = u64::MAX;
        if self.inten & TICK_BIT != 0 {
            best = best.min(now + 1);
        }
        if self.inten & OVRFLW_BIT != 0 {
            best = best.min(self.next_tick_at(0, now));
        }
        for n in 0..CC_COUNT {
            if self.inten & compare_bit(n) != 0 {
                let mut hit = self.next_tick_at(self.cc[n], now);
                if self.cc_lost_tick[n] == Some(hit) {
                    hit = self.next_tick_at(self.cc[n], hit);
                }
                best = best.min(hit);
            }
        }
        (best != u64::MAX).then(|| self.time_of_tick(best))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us_of_ticks(t: u64) -> u64 {
        (t * 1_000_000).div_ceil(LFCLK_HZ)
    }

    #[test]
    fn counts_at_32768_hz_after_start_only() {
        let mut rtc = Rtc::new();
        assert_eq!(rtc.read(0x504, 1_000_000), Some(0), "stopped at reset");
        rtc.write(0x000, 1, 1_000_000).unwrap();
        assert_eq!(rtc.read(0x504, 2_000_000), Some(32_768));
        rtc.write(0x004, 1, 2_000_000).unwrap();
        assert_eq!(
            rtc.read(0x504, 3_000_000),
            Some(32_768),
            "frozen when stopped"
        );
    }

    #[test]
    fn prescaler_divides_and_is_locked_while_running() {
        let mut rtc = Rtc::new();
        rtc.write(0x508, 31, 0).unwrap();
        rtc.write(0x000, 1, 0).unwrap();
        rtc.write(0x508, 0, 0).unwrap();
        assert_eq!(rtc.read(0x508, 0), Some(31));
        assert_eq!(rtc.read(0x504, 1_000_000), Some(1024));
    }

    #[test]
    fn compare_sets_its_event_and_interrupt_only_when_enabled() {
        let mut rtc = Rtc::new();
        rtc.write(0x000, 1, 0).unwrap();
        rtc.write(0x540, 100, 0).unwrap();
        assert!(!rtc.irq(us_of_ticks(100)), "INTEN clear: no interrupt");
        assert_eq!(
            rtc.read(0x140, us_of_ticks(100)),
            Some(1),
            "the event is set anyway"
        );
        rtc.write(0x140, 0, us_of_ticks(100)).unwrap();
        rtc.write(0x544, 300, us_of_ticks(100)).unwrap();
        rtc.write(0x304, 1 << 17, us_of_ticks(100)).unwrap();
        assert_eq!(rtc.next_irq_us(us_of_ticks(100)), Some(us_of_ticks(300)));
        assert!(!rtc.irq(us_of_ticks(299)));
        assert!(rtc.irq(us_of_ticks(300)));
        rtc.write(0x144, 0, us_of_ticks(300)).unwrap();
        assert!(
            !rtc.irq(us_of_ticks(301)),
            "clearing the event lowers the line"
        );
    }

    #[test]
    fn compare_written_late_in_the_tick_before_may_not_fire() {
        let mut rtc = Rtc::new();
        rtc.write(0x000, 1, 0).unwrap();
        rtc.write(0x304, 1 << 16, 0).unwrap();
        rtc.write(0x540, 51, us_of_ticks(51) - 5).unwrap();
        assert!(
            !rtc.irq(us_of_ticks(52)),
            "N+1 written late in tick N: no event (PS 6.22.7)"
        );
        rtc.write(0x540, 53, us_of_ticks(52) + 2).unwrap();
        assert!(
            rtc.irq(us_of_ticks(53)),
            "N+1 written early in tick N fires"
        );
        rtc.write(0x140, 0, us_of_ticks(53)).unwrap();
        rtc.write(0x540, 55, us_of_ticks(53) + 20).unwrap();
        assert!(rtc.irq(us_of_ticks(55)), "two ticks ahead fires");
    }

    #[test]
    fn counter_wraps_at_24_bits_with_overflow_event() {
        let mut rtc = Rtc::new();
        rtc.write(0x000, 1, 0).unwrap();
        rtc.write(0x00C, 1, 0).unwrap();
        assert_eq!(rtc.read(0x504, 0), Some(0xFF_FFF0));
        assert_eq!(rtc.read(0x504, us_of_ticks(0x20)), Some(0x10));
        assert_eq!(rtc.read(0x104, us_of_ticks(0x20)), Some(1));
    }

    #[test]
    fn unknown_register_is_refused() {
        let mut rtc = Rtc::new();
        assert_eq!(rtc.read(0x600, 0), None);
        assert_eq!(rtc.write(0x600, 0, 0), None);
    }
}
