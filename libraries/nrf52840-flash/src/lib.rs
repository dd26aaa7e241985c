//! nRF52840 flash access for tock-ota: the MX25R6435F external QSPI NOR flash and the internal
//! flash through the NVMC, both behind `embedded-storage` 0.3 (`ReadNorFlash`, `NorFlash`).
//!
//! - [`qspi::QspiFlash`]: external flash; any offset, length and buffer alignment; blocking
//!   `NorFlash` plus non-blocking `start_*`/`is_busy`/`wait` so program/erase overlaps other work.
//! - [`nvmc::NvmcFlash`]: internal flash; 32-bit words, 4 KiB pages.
//! - [`port`]: what one peripheral task does; implemented by the register-backed ports in [`hw`]
//!   and by the host models (`hw-models`).
//! - [`command`]: the MX25R6435F command sequences (init, mode switch, erase, WIP polling,
//!   deep power-down), sans-IO, shared by the blocking driver and split-phase Tock drivers.
//! - [`mx25r`]: the external part's geometry, opcodes and datasheet timings.
//! - [`regs`]: `tock-registers` blocks for QSPI, NVMC, ACL, POWER, CLOCK and WDT.
//! - [`error::FlashError`]: tells a power cut from a misuse.
#![no_std]

pub mod command;
pub mod error;
pub mod hw;
pub mod mx25r;
pub mod nvmc;
pub mod port;
pub mod qspi;
pub mod regs;

pub use error::{FlashError, Misalignment};
pub use mx25r::PowerMode;
pub use nvmc::NvmcFlash;
pub use port::{NvmcPort, QspiEraseLen, QspiPort};
pub use qspi::{EraseStrategy, QspiFlash};
