//! SysTick, register level (ARMv7-M ARM B3.3; Cortex-M4 Generic User Guide 4.4). Tock's
//! scheduler uses it for process time slices (`arch/cortex-m/src/systick.rs`, processor clock).
//!
//! A 24-bit down-counter: enabled, it decrements every clock; from 0 it reloads RVR on the next
//! clock, sets COUNTFLAG and, with TICKINT, pends the SysTick exception. Writing CVR clears it
//! to 0 and clears COUNTFLAG; reading CSR clears COUNTFLAG. CLKSOURCE = 1 counts the 64 MHz
//! processor clock; the nRF52840 gives no external reference (CALIB.NOREF = 1), so CLKSOURCE = 0
//! is refused. Time comes from the simulated clock in µs (64 cycles per µs).

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
    /// Wraps (reloads) seen so far since `base_cycle`, to pend one exception per wrap.
    wraps_seen: u64,
}

impl SysTick {
    pub fn new() -> Self {
        Self::default()
    }

    fn running(&self) -> bool {
        self.enable && self.clksource
    }

    /// (CVR, reloads since the base) at cycle `now`.
    fn state(&self, now: u64) -> (u32, u64) {
        if !self.running() {
            return (self.base_cvr, 0);
        }
        let elapsed = now.saturating_sub(self.base_cycle);
        let cvr = u64::from(self.base_cvr);
        if elapsed <= cvr {
            return ((cvr - elapsed) as u32, 0);
        }
        let period = u64::from(self.rvr) + 1;
        let after_zero = elapsed - cvr - 1;
        if self.rvr == 0 {
            // RVR 0 stops the counter at 0 after the next reload.
            return (0, 1);
        }
        let wraps = 1 + after_zero / period;
        let cvr = u64::from(self.rvr) - after_zero % period;
        (cvr as u32, wraps)
    }

    /// Brings COUNTFLAG up to `now_us`; returns how many SysTick exceptions to pend.
    pub fn poll(&mut self, now_us: u64) -> u64 {
        let (_, wraps) = self.state(now_us * CYCLES_PER_US);
        if wraps > self.wraps_seen {
            let new = wraps - self.wraps_seen;
            self.wraps_seen = wraps;
            self.countflag = true;
            if self.tickint {
                return new;
            }
        }
        0
    }

    fn rebase(&mut self, now_us: u64) {
        let now = now_us * CYCLES_PER_US;
        let (cvr, _) = self.state(now);
        self.base_cvr = cvr;
        self.base_cycle = now;
        self.wraps_seen = 0;
    }

    /// Reads SYST_CSR (0x010), RVR (0x014), CVR (0x018) or CALIB (0x01C).
    pub fn read(&mut self, offset: u32, now_us: u64) -> Option<u32> {
        Some(match offset {
            0x010 => {
                let flag = self.countflag;
                self.countflag = false;
                u32::from(self.enable)
                    | u32::from(self.tickint) << 1
                    | u32::from(self.clksource) << 2
                    | u32::from(flag) << 16
            }
            0x014 => self.rvr,
            0x018 => self.state(now_us * CYCLES_PER_US).0,
            // NOREF, TENMS unknown.
            0x01C => 1 << 31,
            _ => return None,
        })
    }

    /// Writes a SysTick register; `Err` names a value the model refuses.
    pub fn write(
        &mut self,
        offset: u32,
        value: u32,
        now_us: u64,
    ) -> Option<Result<(), &'static str>> {
        match offset {
            0x010 => {
                self.rebase(now_us);
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
                self.rebase(now_us);
                self.rvr = value & MASK as u32;
            }
            0x018 => {
                self.rebase(now_us);
                self.base_cvr = 0;
                self.countflag = false;
            }
            _ => return None,
        }
        Some(Ok(()))
    }

    /// The time of the next reload that pends the exception, for WFI to skip to.
    pub fn next_irq_us(&self, now_us: u64) -> Option<u64> {
        if !self.running() || !self.tickint {
            return None;
        }
        let now = now_us * CYCLES_PER_US;
        let (cvr, _) = self.state(now);
        if self.rvr == 0 && cvr == 0 {
            return None;
        }
        Some((now + u64::from(cvr) + 1).div_ceil(CYCLES_PER_US))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_at_64_mhz_and_pends_once_per_wrap() {
        let mut s = SysTick::new();
        s.write(0x014, 6399, 0).unwrap().unwrap(); // 100 us period
        s.write(0x018, 0, 0).unwrap().unwrap();
        s.write(0x010, 0b111, 0).unwrap().unwrap();
        // CVR was 0: the first clock reloads 6399.
        assert_eq!(s.read(0x018, 10), Some(6399 - (640 - 1)));
        assert_eq!(s.poll(10), 1, "the reload from 0 counts as a wrap");
        assert_eq!(s.poll(50), 0);
        assert_eq!(s.poll(101), 1);
        assert_eq!(s.poll(350), 2);
        let csr = s.read(0x010, 350).unwrap();
        assert_eq!(csr >> 16 & 1, 1, "COUNTFLAG");
        assert_eq!(
            s.read(0x010, 350).unwrap() >> 16 & 1,
            0,
            "cleared by the read"
        );
    }

    #[test]
    fn disabled_counter_holds_and_tickint_off_pends_nothing() {
        let mut s = SysTick::new();
        s.write(0x014, 1000, 0).unwrap().unwrap();
        s.write(0x018, 0, 0).unwrap().unwrap();
        assert_eq!(s.read(0x018, 500), Some(0));
        s.write(0x010, 0b101, 0).unwrap().unwrap();
        assert_eq!(s.poll(1000), 0);
        assert_eq!(s.next_irq_us(1000), None);
    }

    #[test]
    fn external_clock_is_refused() {
        let mut s = SysTick::new();
        assert!(s.write(0x010, 0b011, 0).unwrap().is_err());
    }
}
