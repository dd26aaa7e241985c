//! Links the app for the flash and RAM addresses libtock-rs knows for the platform named by
//! `LIBTOCK_PLATFORM` (the DK: `nrf52840`).
fn main() {
    libtock_build_scripts::auto_layout();
}
