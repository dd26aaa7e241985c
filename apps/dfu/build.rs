//! Links the app for the flash and RAM addresses libtock-rs knows for the platform named by
//! `LIBTOCK_PLATFORM` (the DK: `nrf52840`). Host builds (the library's tests) link nothing.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        libtock_build_scripts::auto_layout();
    }
}
