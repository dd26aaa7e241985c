//! Links the app for the flash and RAM addresses in `LIBTOCK_LINKER_FLASH`/`LIBTOCK_LINKER_RAM`
//! (and their lengths), which `.cargo/config.toml` sets for the DK. Host builds (the library's
//! tests) link nothing.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        libtock_build_scripts::auto_layout();
    }
}
