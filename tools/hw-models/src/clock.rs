//! The simulated clock shared by every model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Simulated time in microseconds since the board was created. Clones share one clock.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    now_us: Arc<AtomicU64>,
}

impl SimClock {
    /// A clock at t = 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Current time in µs.
    pub fn now_us(&self) -> u64 {
        self.now_us.load(Ordering::SeqCst)
    }

    /// Current time in seconds.
    pub fn now_s(&self) -> f64 {
        self.now_us() as f64 / 1e6
    }

    /// Lets `us` microseconds pass.
    pub fn advance_us(&self, us: u64) {
        self.now_us.fetch_add(us, Ordering::SeqCst);
    }

    /// Lets time pass until `t_us` (no-op if already later).
    pub fn advance_to(&self, t_us: u64) {
        self.now_us.fetch_max(t_us, Ordering::SeqCst);
    }
}
