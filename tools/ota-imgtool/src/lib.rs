//! The image tool, `imgtool`'s counterpart for tock-ota: P-256 keys, signing (plain and
//! compressed), verifying and inspecting MCUboot-format images. Each command is a module with its
//! clap `Args` and `run`; `tock-ota` wires them into its CLI.
#![forbid(unsafe_code)]
pub mod compress;
pub mod inspect;
pub mod keys;
pub mod sign;
