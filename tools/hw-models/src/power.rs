//! The power supply and fault controller shared by every model.
//!
//! Every program or erase operation on any device asks [`Power::begin_op`] first; that is where
//! power cuts are injected. Reads, status polls and register writes are not counted.

use std::sync::{Arc, Mutex, MutexGuard};

use nrf52840_flash::FlashError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::clock::SimClock;

/// What happens to an operation that was allowed to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpFate {
    /// It runs to completion (unless a later cut tears it while it is still in flight).
    Complete,
    /// Power fails during it: the model leaves the target half-done and power is off.
    Torn,
}

/// The kind of a program/erase operation, for campaigns that report per kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// One NVMC word write.
    NvmcWrite,
    /// One NVMC page erase.
    NvmcErase,
    /// One MX25R6435F page program.
    QspiProgram,
    /// One MX25R6435F sector, block or chip erase.
    QspiErase,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 4] = [
        OpKind::NvmcWrite,
        OpKind::NvmcErase,
        OpKind::QspiProgram,
        OpKind::QspiErase,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::NvmcWrite => "nvmc-write",
            OpKind::NvmcErase => "nvmc-erase",
            OpKind::QspiProgram => "qspi-program",
            OpKind::QspiErase => "qspi-erase",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Cut {
    Before(u64),
    Inside(u64),
}

#[derive(Debug)]
struct PowerState {
    on: bool,
    ops: u64,
    cut: Option<Cut>,
    cut_times_us: Vec<u64>,
    rng: ChaCha8Rng,
    /// Kinds of the operations started, while logging.
    log: Option<Vec<OpKind>>,
}

/// Shared power/fault controller. Clones share one state.
#[derive(Clone, Debug)]
pub struct Power {
    state: Arc<Mutex<PowerState>>,
    clock: SimClock,
}

impl Power {
    /// Power on, no cut armed, fault randomness from `seed`.
    pub fn new(clock: SimClock, seed: u64) -> Self {
        Power {
            state: Arc::new(Mutex::new(PowerState {
                on: true,
                ops: 0,
                cut: None,
                cut_times_us: Vec::new(),
                log: None,
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5057_5243_5554),
            })),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, PowerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Program/erase operations started so far on all devices.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// From now on, remember the kind of every operation that starts ([`Power::op_log`]).
    pub fn log_ops(&self) {
        self.lock().log.get_or_insert_with(Vec::new);
    }

    /// The kinds of the operations started since [`Power::log_ops`], in order.
    pub fn op_log(&self) -> Vec<OpKind> {
        self.lock().log.clone().unwrap_or_default()
    }

    /// Whether power is on.
    pub fn is_on(&self) -> bool {
        self.lock().on
    }

    /// Power fails before the (`n`+1)-th operation from now starts: `n` more operations run.
    pub fn cut_after(&self, n: u64) {
        let mut s = self.lock();
        let at = s.ops + n;
        s.cut = Some(Cut::Before(at));
    }

    /// The `n`-th operation from now (1-based) is torn and power fails inside it.
    pub fn cut_inside(&self, n: u64) {
        let mut s = self.lock();
        let at = s.ops + n.max(1);
        s.cut = Some(Cut::Inside(at));
    }

    /// Cuts power now; operations in flight on the external flash are torn.
    pub fn cut_now(&self) {
        let now = self.clock.now_us();
        let mut s = self.lock();
        if s.on {
            s.on = false;
            s.cut = None;
            s.cut_times_us.push(now);
        }
    }

    /// Power back on with no cut armed. Device models keep their non-volatile contents; use
    /// `SimBoard::power_cycle` to also reset their volatile state.
    pub fn restore(&self) {
        let mut s = self.lock();
        s.on = true;
        s.cut = None;
    }

    /// Number of power failures so far.
    pub fn cuts(&self) -> usize {
        self.lock().cut_times_us.len()
    }

    /// Time of the `index`-th power failure (0-based).
    pub fn cut_time_us(&self, index: usize) -> Option<u64> {
        self.lock().cut_times_us.get(index).copied()
    }

    /// Gatekeeper of every program/erase: fails with `PowerLost` when power is off or a cut
    /// is due before this operation, otherwise counts it and says whether it is torn.
    pub fn begin_op(&self, kind: OpKind) -> Result<OpFate, FlashError> {
        let now = self.clock.now_us();
        let mut s = self.lock();
        if !s.on {
            return Err(FlashError::PowerLost);
        }
        if let Some(Cut::Before(at)) = s.cut {
            if s.ops >= at {
                s.on = false;
                s.cut = None;
                s.cut_times_us.push(now);
                return Err(FlashError::PowerLost);
            }
        }
        s.ops += 1;
        if let Some(log) = s.log.as_mut() {
            log.push(kind);
        }
        if let Some(Cut::Inside(at)) = s.cut {
            if s.ops == at {
                s.on = false;
                s.cut = None;
                s.cut_times_us.push(now);
                return Ok(OpFate::Torn);
            }
        }
        Ok(OpFate::Complete)
    }

    /// Fails with `PowerLost` if power is off (for reads and other uncounted accesses).
    pub fn check_on(&self) -> Result<(), FlashError> {
        if self.is_on() {
            Ok(())
        } else {
            Err(FlashError::PowerLost)
        }
    }

    /// Draws from the shared, seeded fault RNG.
    pub fn random_u64(&self) -> u64 {
        self.lock().rng.gen()
    }
}

/// Applies a torn program: a random subset of the bits `before → after` clears is cleared.
pub(crate) fn tear_program(power: &Power, before: &[u8], after: &mut [u8]) {
    for (b, a) in before.iter().zip(after.iter_mut()) {
        let clearing = b & !*a;
        if clearing != 0 {
            let keep = power.random_u64() as u8;
            *a = b & !(clearing & keep);
        }
    }
}

/// Applies a torn erase: `region` ends neither as `before` nor all 0xFF (when they differ).
pub(crate) fn tear_erase(power: &Power, before: &[u8], region: &mut [u8]) {
    for (b, r) in before.iter().zip(region.iter_mut()) {
        *r = b | power.random_u64() as u8;
    }
    if before.iter().all(|&b| b == 0xFF) {
        return;
    }
    if region == before {
        if let Some(i) = before.iter().position(|&b| b != 0xFF) {
            region[i] = 0xFF;
        }
    }
    if region.iter().all(|&b| b == 0xFF) {
        if let Some(i) = before.iter().position(|&b| b != 0xFF) {
            region[i] = before[i];
        }
    }
    if region == before {
        // A single non-erased byte: erase it only partly.
        if let Some(i) = before.iter().position(|&b| b != 0xFF) {
            let missing = !before[i];
            region[i] = before[i] | (missing & missing.wrapping_neg());
            if region[i] == 0xFF {
                region[i] = before[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OpKind;
    use crate::SimBoard;
    use embedded_storage::nor_flash::NorFlash;

    #[test]
    fn the_op_log_names_each_operation_in_order_once_enabled() {
        let mut board = SimBoard::new(3);
        board.qspi.erase(0, 4096).unwrap();
        assert!(board.power.op_log().is_empty(), "not logging yet");
        board.power.log_ops();
        let ops0 = board.power.ops();
        board.internal.erase(0x8_0000, 0x8_1000).unwrap();
        board.internal.write(0x8_0000, &[0; 4]).unwrap();
        board.qspi.erase(0x1000, 0x2000).unwrap();
        board.qspi.write(0x1000, &[0; 4]).unwrap();
        let log = board.power.op_log();
        assert_eq!(
            log,
            [
                OpKind::NvmcErase,
                OpKind::NvmcWrite,
                OpKind::QspiErase,
                OpKind::QspiProgram
            ]
        );
        assert_eq!(board.power.ops() - ops0, log.len() as u64);
    }
}
