//! Library half of the `tock-ota` CLI: the glue it owns (`send`/`receive` over HCI) and the two
//! emulator commands as they are in a build without the `emulator` feature. The commands
//! themselves live in their product crates: `ota-imgtool` (keys, sign, verify, inspect), `ota-sim`
//! (demo), `ota-bench` (the host benches) and `ota-emulate` (`bench boot`, `emulate system`).
#![forbid(unsafe_code)]
#[cfg(feature = "emulator")]
pub use ota_emulate::bench_boot;
/// `bench boot` without the `emulator` feature: the same command, saying how to get it.
#[cfg(not(feature = "emulator"))]
#[path = "bench_boot_off.rs"]
pub mod bench_boot;
#[cfg(feature = "emulator")]
pub use ota_emulate::system as emulate_system;
/// `emulate system` without the `emulator` feature: the same command, saying how to get it.
#[cfg(not(feature = "emulator"))]
#[path = "emulate_system_off.rs"]
pub mod emulate_system;
pub mod over_hci;
pub mod receive_app;
pub mod send_app;
#[cfg(feature = "emulator")]
pub use ota_emulate::power_cuts as power_cuts_emulated;
/// `bench power-cuts --emulated` without the `emulator` feature: says how to get it.
#[cfg(not(feature = "emulator"))]
#[path = "power_cuts_emulated_off.rs"]
pub mod power_cuts_emulated;
