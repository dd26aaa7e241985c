//! Tock capsules for tock-ota: staged, signed kernel updates on the nRF52840.
//!
//! - [`qspi_flash`]: the nRF52840 QSPI driver for the external NOR flash (`hil::flash` and
//!   [`nor::AsyncNor`]).
//! - [`staged_update`]: the staged-update syscall driver over the update-region policy.
//! - [`stream_rebuild`]: compressed images and delta patches: staged in the received-stream
//!   area; the DFU app rebuilds them into the staging slot through the output commands.
//! - [`bulk_scan`]: continuous passive BLE scanning with batched delivery to one process.
//! - [`app_update`]: install a staged, signed TBF as a new app version through upstream's
//!   dynamic process loading (see `docs/app-updates.md`).
//! - [`journaled_flash`]: atomic app-region page writes through the app-update page journal.
//! - [`nor_share`]: one QSPI flash shared by the staged-update and app-update cores.
//! - [`p256_verifier`]: ECDSA P-256 behind `hil::public_key_crypto` for the app credential
//!   checker, the one P-256 verifier of the kernel (and of the bootloader).
//! - [`adv_radio`]: the nRF52840 RADIO for BLE advertising, its receive bounded by `MAXLEN`.
//! - [`aux_radio`]: the nRF52840 RADIO receiving one PDU of up to 255 bytes on any BLE channel
//!   at 1M or 2M, switched on at an exact time by TIMER0 and PPI (following extended and
//!   periodic advertising).
//! - [`ext_scan`]: follows one advertiser's extended and periodic advertising (`ble_ext`'s
//!   follower on [`aux_radio`]), each event's AdvData delivered in batches to one process.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod adv_radio;
pub mod app_update;
pub mod aux_radio;
pub mod bulk_scan;
pub mod ext_scan;
pub mod identity;
pub mod journaled_flash;
pub mod kept_upcall;
pub mod nor;
pub mod nor_share;
pub mod p256_verifier;
pub mod qspi_flash;
pub mod sha256_digest;
pub mod staged_update;
pub mod stream_rebuild;

#[cfg(test)]
mod tests;

// The test support shared with the integration tests (`tests/support/`) names this crate.
#[cfg(test)]
extern crate self as tock_ota_capsules;
