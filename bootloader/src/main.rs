//! The tock-ota bootloader for the nRF52840-DK. On the host this builds as an empty stub so the
//! workspace tests; the firmware is built for `thumbv7em-none-eabihf`.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {}
