//! The app's time: a free-running tick counter that wraps, extended into milliseconds that do not.
//!
//! Tock's alarm driver reports a 32-bit tick count: on the nRF52840 the 24-bit RTC left-justified
//! (frequency reported as 32,768 × 256 Hz), so the count wraps every 2^32 ticks, about 512 s.
//! libtock's `get_milliseconds` divides the raw count and so jumps back to 0 at every wrap; a
//! time-out computed from it as `now - then` either underflows or, saturated, stalls for up to
//! one wrap period. [`Clock`] instead adds up the wrapping differences of successive readings,
//! so its milliseconds grow monotonically as long as it is read at least once per wrap period
//! (the app reads it every loop, and no wait of the app is longer than [`crate::MAX_WAIT_MS`]).

/// Monotonic milliseconds from a wrapping tick counter.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    ticks_per_s: u32,
    last: u32,
    ms: u64,
    /// Ticks × 1000 not yet worth a whole millisecond.
    rest: u64,
}

impl Clock {
    /// A clock whose counter runs at `ticks_per_s` (non-zero) and reads `ticks` now; it starts at 0 ms.
    pub fn new(ticks_per_s: u32, ticks: u32) -> Clock {
        Clock {
            ticks_per_s: ticks_per_s.max(1),
            last: ticks,
            ms: 0,
            rest: 0,
        }
    }

    /// Milliseconds since [`Clock::new`], given the counter's current reading.
    pub fn update(&mut self, ticks: u32) -> u64 {
        let elapsed = ticks.wrapping_sub(self.last) as u64;
        self.last = ticks;
        let scaled = self.rest + elapsed * 1000;
        self.ms += scaled / self.ticks_per_s as u64;
        self.rest = scaled % self.ticks_per_s as u64;
        self.ms
    }

    /// The last value [`Clock::update`] returned.
    pub fn ms(&self) -> u64 {
        self.ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nRF52840's alarm frequency as Tock reports it (24-bit RTC, left-justified).
    const NRF_HZ: u32 = 32_768 * 256;

    #[test]
    fn milliseconds_keep_growing_across_the_counter_wrap() {
        // Ten seconds before the wrap.
        let start = u32::MAX - 10 * NRF_HZ + 1;
        let mut clock = Clock::new(NRF_HZ, start);
        let mut ticks = start;
        let mut previous = 0;
        // Read every 125 ms for 40 s: the counter wraps after 10 s.
        for step in 1..=320u64 {
            ticks = ticks.wrapping_add(NRF_HZ / 8);
            let ms = clock.update(ticks);
            assert!(
                ms >= previous,
                "went back at step {step}: {ms} < {previous}"
            );
            assert_eq!(ms, step * 125, "step {step}");
            previous = ms;
        }
        assert!(ticks < start, "the counter did not wrap");
    }

    #[test]
    fn fractions_of_a_millisecond_are_carried_not_lost() {
        let mut clock = Clock::new(32_768, 0);
        // 1 tick ≈ 0.03 ms: a thousand single-tick readings are 30.5 ms, not 0.
        for t in 1..=1000u32 {
            clock.update(t);
        }
        assert_eq!(clock.ms(), 1000 * 1000 / 32_768);
    }

    #[test]
    fn a_libtock_style_millisecond_reading_would_jump_back_at_the_wrap() {
        // The arithmetic the old app relied on: ticks / (frequency / 1000).
        let ms_of = |ticks: u32| ticks as u64 / (NRF_HZ as u64 / 1000);
        let before = u32::MAX - NRF_HZ; // one second before the wrap
        let after = before.wrapping_add(2 * NRF_HZ); // one second after
        assert!(ms_of(after) < ms_of(before));
        assert!(ms_of(before) > 510_000, "wraps near 512,032 ms");
        let mut clock = Clock::new(NRF_HZ, before);
        assert_eq!(clock.update(after), 2000);
    }
}
