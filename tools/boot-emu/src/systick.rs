//! SysTick, register level (ARMv7-M ARM B3.3; Cortex-M4 Generic User Guide 4.4). Tock's
//! scheduler uses it for process time slices (`arch/cortex-m/src/systick.rs`, processor clock).
//!
//! A 24-bit down-counter: enabled, it decrements every clock; when it counts from 1 to 0 it sets
//! COUNTFLAG and, with TICKINT, pends the SysTick exception; from 0 it reloads RVR on the next
//! clock. A counter that sits at 0 without having counted there (after a write to CVR, which
//! clears it and COUNTFLAG, or with RVR 0) only reloads: "a write to SYST_CVR does not trigger
//! the SysTick exception logic" (ARMv7-M ARM B3.3.1), and RVR 0 "has no effect because the
//! SysTick exception request and COUNTFLAG are activated when counting from 1 to 0" (Generic
//! User Guide 4.4.2). Reading CSR returns COUNTFLAG as of that clock and clears it; writing CSR
//! or RVR leaves it. CLKSOURCE = 1 counts the 64 MHz processor clock; the nRF52840 gives no
//! external reference (CALIB.NOREF = 1), so CLKSOURCE = 0 is refused.
//!
//! Time is the processor clock in cycles ([`CYCLES_PER_US`] per simulated µs), finer than the
//! simulated clock: Tock's `start()` clears CVR and enables the counter, and its
//! `get_remaining_us()` reads CVR a few dozen cycles later; a counter that still read 0 there
//! (as it would if it moved only at µs boundaries) ends the time slice before the process runs.

const MASK: u64 = 0x00FF_FFFF;
/// Processor cycles per microsecond.
pub const CYCLES_PER_US: u64 = 64;

/// The SysTick timer.
#[derive(Clone, Debug, Default)]
pub struct SysTick {
    enable: bool,
    tickint: bool,
    clksource: bool,
    rvr: u32,
    /// CVR at `base_cycle`.
    base_cvr: u32,
    base_cycle: u64,
    countflag: bool,
    /// Counts to 0 since `base_cycle` already accounted (COUNTFLAG set, exceptions owed).
    zeros_seen: u64,
    /// SysTick exceptions accounted but not yet handed to the NVIC by [`SysTick::poll`].
    owed: u64,
}

impl SysTick {
    pub fn new() -> Self {
        Self::default()
    }

    fn running(&self) -> bool {
        self.enable && self.clksource
    }

    /// (CVR, counts from 1 to 0 since the base) at cycle `now`.
    fn state(&self, now: u64) -> (u32, u64) {
        if !self.running() {
            return (self.base_cvr, 0);
        }
        let elapsed = now.saturating_sub(self.base_cycle);
        let cvr = u64::from(self.base_cvr);
        let from_nonzero = u64::from(cvr > 0);
        if elapsed < cvr {
            return ((cvr - elapsed) as u32, 0);
        }
        if elapsed == cvr {
            return (0, from_nonzero);
        }
        // The counter reloaded RVR at elapsed = CVR + 1 and counts down from there.
        let since_reload = elapsed - cvr - 1;
        if self.rvr == 0 {
            // RVR 0: the counter stays at 0 and counts to 0 no more.
            return (0, from_nonzero);
        }
        let period = u64::from(self.rvr) + 1;
        let value = u64::from(self.rvr) - since_reload % period;
        (value as u32, from_nonzero + (since_reload + 1) / period)
    }

    /// Sets COUNTFLAG and owes an exception (with TICKINT) for each count to 0 up to `now`.
    fn account(&mut self, now: u64) {
        let (_, zeros) = self.state(now);
        if zeros > self.zeros_seen {
            if self.tickint {
                self.owed += zeros - self.zeros_seen;
            }
            self.zeros_seen = zeros;
            self.countflag = true;
        }
    }

    /// Brings COUNTFLAG up to cycle `now`; returns how many SysTick exceptions to pend.
    pub fn poll(&mut self, now: u64) -> u64 {
        self.account(now);
        std::mem::take(&mut self.owed)
    }

    fn rebase(&mut self, now: u64) {
        self.account(now);
        let (cvr, _) = self.state(now);
        self.base_cvr = cvr;
        self.base_cycle = now;
        self.zeros_seen = 0;
    }

    /// Reads SYST_CSR (0x010), RVR (0x014), CVR (0x018) or CALIB (0x01C) at cycle `now`.
    pub fn read(&mut self, offset: u32, now: u64) -> Option<u32> {
        Some(match offset {
            0x010 => {
                self.account(now);
                let flag = self.countflag;
                self.countflag = false;
                u32::from(self.enable)
                    | u32::from(self.tickint) << 1
                    | u32::from(self.clksource) << 2
                    | u32::from(flag) << 16
            }
            0x014 => self.rvr,
            0x018 => self.state(now).0,
            // NOREF, TENMS unknown.
            0x01C => 1 << 31,
            _ => return None,
        })
    }

    /// Writes a SysTick register at cycle `now`; `Err` names a value the model refuses.
    pub fn write(&mut self, offset: u32, value: u32, now: u64) -> Option<Result<(), &'static str>> {
        match offset {
            0x010 => {
                self.rebase(now);
                self.enable = value & 1 != 0;
                self.tickint = value & 2 != 0;
                self.clksource = value & 4 != 0;
                if self.enable && !self.clksource {
                    return Some(Err(
                        "SysTick on the external reference: the nRF52840 has none",
                    ));
                }
            }
            0x014 => {
                self.rebase(now);
                self.rvr = value & MASK as u32;
            }
            0x018 => {
                self.rebase(now);
                self.base_cvr = 0;
                self.countflag = false;
            }
            _ => return None,
        }
        Some(Ok(()))
    }

    /// The simulated µs (rounded up) of the next count to 0 that pends the exception, for WFI
    /// to skip to; `now` in cycles.
    pub fn next_irq_us(&self, now: u64) -> Option<u64> {
        if !self.running() || !self.tickint {
            return None;
        }
        let at = match self.state(now).0 {
            0 if self.rvr == 0 => return None,
            // At 0: reloads RVR on the next clock, then counts it down.
            0 => now + u64::from(self.rvr) + 1,
            cvr => now + u64::from(cvr),
        };
        Some(at.div_ceil(CYCLES_PER_US))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tock's `start()`: RVR, CVR cleared, CSR with TICKINT, ENABLE and the processor clock.
    fn start(s: &mut SysTick, reload: u32, at: u64) {
        s.write(0x014, reload, at).unwrap().unwrap();
        s.write(0x018, 0, at).unwrap().unwrap();
        s.write(0x010, 0b111, at).unwrap().unwrap();
    }

    fn countflag(s: &mut SysTick, at: u64) -> bool {
        s.read(0x010, at).unwrap() >> 16 & 1 == 1
    }

    #[test]
    fn counts_down_per_cycle_and_pends_when_it_counts_to_zero() {
        let mut s = SysTick::new();
        // A 100 µs period.
        start(&mut s, 6399, 0);
        // CVR was written 0: the first clock reloads 6399, which is no count to 0.
        assert_eq!(s.read(0x018, 1), Some(6399));
        assert_eq!(s.read(0x018, 640), Some(6399 - 639));
        assert_eq!(s.poll(640), 0, "the reload from a written 0 pends nothing");
        assert!(!countflag(&mut s, 640), "nor sets COUNTFLAG");
        assert_eq!(s.poll(6399), 0);
        assert_eq!(s.read(0x018, 6400), Some(0));
        assert_eq!(s.poll(6400), 1, "counted from 1 to 0");
        assert_eq!(s.read(0x018, 6401), Some(6399), "reloaded");
        assert_eq!(s.poll(6400 * 3), 2);
        assert!(countflag(&mut s, 6400 * 3), "COUNTFLAG");
        assert!(!countflag(&mut s, 6400 * 3), "cleared by the read");
    }

    #[test]
    fn a_time_slice_started_reads_its_reload_within_the_same_microsecond() {
        // Tock's do_process: reset(), start(10 ms), then get_remaining_us() reads CVR and CSR
        // some dozens of cycles later, all inside one simulated µs.
        let mut s = SysTick::new();
        let t0 = 1_000 * CYCLES_PER_US + 7;
        s.write(0x010, 0, t0).unwrap().unwrap();
        s.write(0x014, 0, t0).unwrap().unwrap();
        s.write(0x018, 0, t0).unwrap().unwrap();
        start(&mut s, 640_000, t0 + 10);
        assert_eq!(s.poll(t0 + 12), 0);
        assert_eq!(s.read(0x018, t0 + 40), Some(640_000 - 29));
        assert!(!countflag(&mut s, t0 + 45), "the slice has not expired");
        assert_eq!(
            s.next_irq_us(t0 + 45),
            Some((t0 + 11 + 640_000).div_ceil(CYCLES_PER_US))
        );
    }

    #[test]
    fn csr_shows_a_count_to_zero_not_yet_polled_and_csr_writes_keep_it() {
        let mut s = SysTick::new();
        start(&mut s, 99, 0);
        assert!(
            countflag(&mut s, 100),
            "read at the count to 0, no poll between"
        );
        let mut s = SysTick::new();
        start(&mut s, 99, 0);
        // Tock's arm()/disarm() rewrite CSR without reading it, to keep COUNTFLAG.
        s.write(0x010, 0b101, 150).unwrap().unwrap();
        assert!(countflag(&mut s, 150), "COUNTFLAG survives a CSR write");
        assert_eq!(
            s.poll(150),
            1,
            "and so does the exception owed (TICKINT was set)"
        );
    }

    #[test]
    fn reload_zero_never_counts_to_zero() {
        let mut s = SysTick::new();
        start(&mut s, 0, 0);
        assert_eq!(s.poll(10_000), 0);
        assert!(!countflag(&mut s, 10_000));
        assert_eq!(s.next_irq_us(10_000), None);
    }

    #[test]
    fn disabled_counter_holds_and_tickint_off_pends_nothing() {
        let mut s = SysTick::new();
        s.write(0x014, 1000, 0).unwrap().unwrap();
        s.write(0x018, 0, 0).unwrap().unwrap();
        assert_eq!(s.read(0x018, 500), Some(0));
        s.write(0x010, 0b101, 500).unwrap().unwrap();
        assert_eq!(s.poll(500 + 1001 * 3), 0);
        assert!(
            countflag(&mut s, 500 + 1001 * 3),
            "it counts, without TICKINT"
        );
        assert_eq!(s.next_irq_us(500 + 1001 * 3), None);
    }

    #[test]
    fn external_clock_is_refused() {
        let mut s = SysTick::new();
        assert!(s.write(0x010, 0b011, 0).unwrap().is_err());
    }
}
