//! Library half of the `tock-ota` host tool: every subcommand lives in a module so tests can call it.
#![forbid(unsafe_code)]
#[cfg(feature = "emulator")]
pub mod bench_boot;
/// `bench boot` without the `emulator` feature: the same command, saying how to get it.
#[cfg(not(feature = "emulator"))]
#[path = "bench_boot_off.rs"]
pub mod bench_boot;
pub mod bench_flash;
pub mod bench_install;
pub mod bench_power_cuts;
pub mod bench_transfer;
pub mod bench_verify;
pub mod compress;
pub mod demo;
#[cfg(feature = "emulator")]
pub mod emulate_system;
/// `emulate system` without the `emulator` feature: the same command, saying how to get it.
#[cfg(not(feature = "emulator"))]
#[path = "emulate_system_off.rs"]
pub mod emulate_system;
pub mod inspect;
pub mod keys;
pub mod output;
pub mod over_hci;
pub mod sign;
pub mod sim;
