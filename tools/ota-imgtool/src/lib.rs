//! The image tool, `imgtool`'s counterpart for tock-ota: P-256 keys, signing (plain and
//! compressed), verifying and inspecting MCUboot-format images, and delta patches between them.
//! Each command is a module with its clap `Args` and `run`; `tock-ota` wires them into its CLI.
#![forbid(unsafe_code)]
pub mod compress;
pub mod delta;
pub mod inspect;
pub mod keys;
pub mod sign;
