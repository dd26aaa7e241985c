//! The tock-ota bootloader for the nRF52840-DK.
//!
//! Reset → clear and read RESETREAS → enable the NVMC instruction cache → bring up QSPI (MX25R6435F
//! in high-performance mode) and the NVMC → `boot_core::boot` (validate, back up, install, trial,
//! confirm, revert as the journal says) → lock the bootloader region and state page with the
//! ACL → `boot_jump` to the kernel's vector table. Polling only, no interrupts; the watchdog is
//! fed before every flash operation if something started it.
//!
//! On the host this builds as an empty stub (plus tests) so `cargo test --workspace` works.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod checker;
#[cfg(target_os = "none")]
mod firmware;
#[cfg(target_os = "none")]
mod mem;

/// The embedded public key (P-256, x‖y, 64 bytes). See `docs/bootloader.md` to replace it.
pub const PUBLIC_KEY: [u8; 64] = *include_bytes!(concat!(env!("OUT_DIR"), "/public.bin"));

#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(all(test, not(target_os = "none")))]
mod tests {
    /// The linker script's region is the layout's bootloader region, and the key is 64 bytes.
    #[test]
    fn linker_script_matches_the_layout() {
        let ld = include_str!("../link.ld");
        let l = boot_nrf::NRF52840_DK;
        let want = format!(
            "FLASH (rx)  : ORIGIN = 0x{:08X}, LENGTH = 0x{:X}",
            l.bootloader.start, l.bootloader.len
        );
        assert!(ld.contains(&want), "link.ld lacks `{want}`");
        assert_eq!(l.state_page.start, l.bootloader.end());
        assert_eq!(super::PUBLIC_KEY.len(), 64);
        assert_ne!(super::PUBLIC_KEY, [0; 64]);
    }
}
