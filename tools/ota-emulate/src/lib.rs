//! The reports over `boot-emu`, the device binaries under the Unicorn CPU emulator:
//! `tock-ota bench boot` ([`bench_boot`]), `tock-ota bench power-cuts --emulated`
//! ([`power_cuts`]) and `tock-ota emulate system` ([`system`]). `tock-ota`
//! builds them in only with its `emulator` feature (Unicorn builds from C sources).
#![forbid(unsafe_code)]
pub mod bench_boot;
pub mod power_cuts;
pub mod system;
