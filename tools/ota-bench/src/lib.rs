//! The `tock-ota bench` reports that run on the host alone: verify throughput, flash timings,
//! install time, the power-cut campaign and transfer goodput. (The emulated `bench boot` is in
//! `ota-emulate`.) Each report is a module with its clap `Args` and `run`.
#![forbid(unsafe_code)]
pub mod flash;
pub mod install;
pub mod kernel_update;
pub mod power_cuts;
pub mod transfer;
pub mod verify;
