//! An alarm double that behaves like the nRF52840's RTC behind Tock's alarm: 32768 Hz ticks, and
//! a compare never set closer than [`SYNC_TICKS`] ahead of the counter (upstream's nrf5x `Rtc`
//! moves an alarm that is due sooner, or already due, to now + 2 ticks), so a request for a few
//! microseconds fires after 2 ticks (≈ 61 µs). Time moves only when the test says so
//! ([`FakeAlarm::advance`]), one tick at a time, firing the client when the compare matches.
//!
//! Shared by the crate's unit tests (included by path) and the integration tests.

use std::cell::Cell;

use kernel::hil::time::{Alarm, AlarmClient, Freq32KHz, Ticks, Ticks32, Time};
use kernel::utilities::cells::OptionalCell;
use kernel::ErrorCode;

/// The RTC's minimum distance between the counter and a new compare value.
pub const SYNC_TICKS: u32 = 2;

/// Where the RTC puts the compare for `set_alarm(reference, dt)` at counter `now`: at
/// `reference + dt`, unless that has passed or is no more than [`SYNC_TICKS`] ahead, then at
/// `now + SYNC_TICKS`. The one statement of the rule, for every alarm double.
pub fn rtc_compare(now: Ticks32, reference: Ticks32, dt: Ticks32) -> Ticks32 {
    let expire = reference.wrapping_add(dt);
    if !now.within_range(reference, expire) || expire.wrapping_sub(now).into_u32() <= SYNC_TICKS {
        now.wrapping_add(Ticks32::from(SYNC_TICKS))
    } else {
        expire
    }
}

#[derive(Default)]
pub struct FakeAlarm {
    now: Cell<u32>,
    /// The compare value while armed.
    compare: Cell<Option<u32>>,
    client: OptionalCell<&'static dyn AlarmClient>,
    /// How often the client was called.
    pub fired: Cell<usize>,
}

impl FakeAlarm {
    /// Move time on by `ticks`, firing the client at each compare match (it may re-arm).
    pub fn advance(&self, ticks: u32) {
        for _ in 0..ticks {
            self.now.set(self.now.get().wrapping_add(1));
            if self.compare.get() == Some(self.now.get()) {
                self.compare.set(None);
                self.fired.set(self.fired.get() + 1);
                self.client.map(|c| c.alarm());
            }
        }
    }

    /// Ticks until the alarm fires, if armed.
    pub fn due_in(&self) -> Option<u32> {
        self.compare.get().map(|c| c.wrapping_sub(self.now.get()))
    }

    /// Fire now if armed (as if its time had come), returning whether it was.
    pub fn fire(&self) -> bool {
        match self.due_in() {
            Some(ticks) => {
                self.advance(ticks);
                true
            }
            None => false,
        }
    }
}

impl Time for FakeAlarm {
    type Frequency = Freq32KHz;
    type Ticks = Ticks32;
    fn now(&self) -> Ticks32 {
        Ticks32::from(self.now.get())
    }
}

impl Alarm<'static> for FakeAlarm {
    fn set_alarm_client(&self, client: &'static dyn AlarmClient) {
        self.client.set(client);
    }
    fn set_alarm(&self, reference: Ticks32, dt: Ticks32) {
        let expire = rtc_compare(self.now(), reference, dt);
        self.compare.set(Some(expire.into_u32()));
    }
    fn get_alarm(&self) -> Ticks32 {
        Ticks32::from(self.compare.get().unwrap_or(0))
    }
    fn disarm(&self) -> Result<(), ErrorCode> {
        self.compare.set(None);
        Ok(())
    }
    fn is_armed(&self) -> bool {
        self.compare.get().is_some()
    }
    fn minimum_dt(&self) -> Ticks32 {
        Ticks32::from(SYNC_TICKS)
    }
}
