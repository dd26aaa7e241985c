//! Host models of the tock-ota flash hardware: the Macronix MX25R6435F QSPI NOR flash, the
//! nRF52840 QSPI peripheral and the nRF52840 internal flash with its NVMC, on one simulated
//! clock, with power-cut and fault injection, deterministic from a seed.
//!
//! The models enforce what the silicon requires (see `docs/flash.md`), so a driver that would
//! misbehave on hardware fails here with an error naming the broken rule.
//!
//! # `SimBoard`
//!
//! ```
//! use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
//! use hw_models::SimBoard;
//!
//! let mut board = SimBoard::new(7); // QSPI in high-performance mode
//! board.qspi.erase(0, 4096).unwrap();
//! board.qspi.write(3, b"hello").unwrap(); // any offset, alignment and length
//! let mut back = [0u8; 5];
//! board.qspi.read(3, &mut back).unwrap();
//! assert_eq!(&back, b"hello");
//!
//! // Overlap: the external flash erases in the background while the NVMC works.
//! board.qspi.start_erase_sector(0x1000).unwrap();
//! board.internal.erase(0x80000, 0x81000).unwrap(); // CPU stalls 85 ms
//! board.qspi.wait().unwrap(); // the 40 ms sector erase is already done
//!
//! // Power cuts: the 2nd program/erase from now is torn, later ones fail with PowerLost.
//! board.power.cut_inside(2);
//! assert!(board.internal.write(0x80000, &[0u8; 8]).is_err());
//! assert!(!board.power.is_on());
//! board.power_cycle().unwrap();
//! assert_eq!(board.nvmc().raw()[0x80000..0x80004], [0, 0, 0, 0]); // the first word landed
//! ```
//!
//! - `board.clock`: [`SimClock`], µs; NVMC operations advance it (the CPU stalls), QSPI program
//!   and erase set the chip's busy-until time on it.
//! - `board.power`: [`Power`]; `cut_after(n)` lets `n` more program/erase operations (on any
//!   device) run and fails the next one before it starts; `cut_inside(n)` tears the `n`-th;
//!   `cut_now()`; a cut also tears an external-flash operation still in flight.
//! - `board.qspi` / `board.internal`: the real drivers from `nrf52840-flash` over the models.
//! - `board.chip()` / `board.nvmc()`: the raw models (bytes, wear counters, timing profile,
//!   read bit flips, ACL).
//! - [`qspi_regs::QspiRegisters`]: the QSPI peripheral at register level (tasks, READY, EasyDMA
//!   through the owner's [`DmaMemory`]) over [`QspiPeripheral`], for whoever runs a driver that
//!   writes registers: the CPU emulator and the QSPI capsule's host tests.
//! - `board.power_cycle()`: contents persist, volatile state resets, drivers re-initialise;
//!   an external-flash operation in flight is torn.
//! - `board.reset()`: a soft reset with power on: the external flash finishes what it was doing
//!   (the driver's init waits for it) and keeps its mode.
#![forbid(unsafe_code)]

mod board;
pub mod clock;
pub mod mx25r6435f;
pub mod nvmc;
pub mod power;
pub mod ppi;
pub mod qspi;
pub mod qspi_regs;
pub mod radio;
pub mod radio_bus;
pub mod timer;

pub use board::{SimBoard, SimInternalFlash, SimQspiFlash};
pub use clock::SimClock;
pub use mx25r6435f::{ChipStats, Mx25r6435f, TimingProfile};
pub use nvmc::{AclRegion, InternalFlash, NvmcPeripheral, NvmcStats};
pub use power::{OpFate, OpKind, Power};
pub use qspi::QspiPeripheral;
pub use qspi_regs::{DmaMemory, DmaUnreachable, QspiFault, QspiRegisters};

/// The driver crate the models are built for (re-exported so users need one dependency).
pub use nrf52840_flash;
