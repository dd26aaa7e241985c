//! A ready-made simulated nRF52840-DK flash subsystem.

use std::sync::{Arc, Mutex, MutexGuard};

use nrf52840_flash::{FlashError, NvmcFlash, PowerMode, QspiFlash};

use crate::clock::SimClock;
use crate::mx25r6435f::Mx25r6435f;
use crate::nvmc::{InternalFlash, NvmcPeripheral};
use crate::power::Power;
use crate::qspi::QspiPeripheral;

/// The QSPI driver over the model.
pub type SimQspiFlash = QspiFlash<QspiPeripheral>;
/// The internal-flash driver over the model.
pub type SimInternalFlash = NvmcFlash<NvmcPeripheral>;

/// Clock, power, the external flash (QSPI driver over the MX25R6435F model) and the internal
/// flash (NVMC driver over its model), all deterministic from one seed.
pub struct SimBoard {
    /// Shared simulated clock (µs).
    pub clock: SimClock,
    /// Shared power / fault controller.
    pub power: Power,
    /// External flash driver: `NorFlash` plus `start_*`/`is_busy`/`wait`.
    pub qspi: SimQspiFlash,
    /// Internal flash driver: `NorFlash`.
    pub internal: SimInternalFlash,
    chip: Arc<Mutex<Mx25r6435f>>,
    nvmc: Arc<Mutex<InternalFlash>>,
    mode: PowerMode,
}

impl SimBoard {
    /// Erased flashes, QSPI in high-performance mode at 32 MHz.
    pub fn new(seed: u64) -> Self {
        Self::with_mode(seed, PowerMode::HighPerformance)
    }

    /// Erased flashes, QSPI driver initialised in `mode` (8 MHz SCK in ultra-low-power).
    pub fn with_mode(seed: u64, mode: PowerMode) -> Self {
        let clock = SimClock::new();
        let power = Power::new(clock.clone(), seed);
        let chip = Arc::new(Mutex::new(Mx25r6435f::new(
            clock.clone(),
            power.clone(),
            seed,
        )));
        let nvmc = Arc::new(Mutex::new(InternalFlash::new(
            clock.clone(),
            power.clone(),
            seed,
        )));
        let mut board = SimBoard {
            qspi: QspiFlash::new(
                QspiPeripheral::new(chip.clone(), clock.clone(), power.clone()),
                mode,
            ),
            internal: NvmcFlash::new(NvmcPeripheral::new(nvmc.clone())),
            clock,
            power,
            chip,
            nvmc,
            mode,
        };
        board
            .qspi
            .init()
            .expect("a fresh MX25R6435F model initialises");
        board
    }

    /// The QSPI power mode the driver is set up for.
    pub fn mode(&self) -> PowerMode {
        self.mode
    }

    /// The MX25R6435F model (raw bytes, wear, timing profile, read faults).
    pub fn chip(&self) -> MutexGuard<'_, Mx25r6435f> {
        self.chip.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The internal flash + NVMC model (raw bytes, wear, ACL, read faults).
    pub fn nvmc(&self) -> MutexGuard<'_, InternalFlash> {
        self.nvmc.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Soft reset of the nRF52840 (e.g. `NVIC_SystemReset` or a watchdog reset) with power
    /// kept on: the NVMC/ACL and driver state reset and the QSPI driver initialises again, but
    /// the external flash keeps its mode and finishes (not tears) any operation in flight —
    /// the driver's init waits for it. Armed power cuts stay armed.
    pub fn reset(&mut self) -> Result<(), FlashError> {
        self.nvmc().power_cycle();
        self.qspi = QspiFlash::new(
            QspiPeripheral::new(self.chip.clone(), self.clock.clone(), self.power.clone()),
            self.mode,
        );
        self.internal = NvmcFlash::new(NvmcPeripheral::new(self.nvmc.clone()));
        self.qspi.init()
    }

    /// Power off and on: torn operations are resolved, flash contents stay, volatile state
    /// (chip mode and WEL, deep power-down, ACL, driver state) resets, and the QSPI driver is
    /// initialised again. Any armed cut is disarmed.
    pub fn power_cycle(&mut self) -> Result<(), FlashError> {
        self.power.cut_now();
        self.chip().power_cycle();
        self.nvmc().power_cycle();
        self.power.restore();
        self.qspi = QspiFlash::new(
            QspiPeripheral::new(self.chip.clone(), self.clock.clone(), self.power.clone()),
            self.mode,
        );
        self.internal = NvmcFlash::new(NvmcPeripheral::new(self.nvmc.clone()));
        self.qspi.init()
    }
}
