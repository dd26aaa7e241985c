//! Links the app for the flash and RAM addresses in `LIBTOCK_LINKER_FLASH`/`LIBTOCK_LINKER_RAM`
//! (and their lengths), which `.cargo/config.toml` sets for the DK. Host builds (the library's
//! tests) link nothing.
//!
//! Also copies the update-signing public key into OUT_DIR as the bootloader's build does (one
//! key for both): `bootloader/keys/public.bin`, or the 64-byte raw x‖y file named by
//! `TOCK_OTA_BOOT_KEY` (`.ci/build-device` names the key it signs updates with). The app checks
//! a received compressed image's signature against it before decoding (`dfu_app::rebuild`).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    println!("cargo:rerun-if-env-changed=TOCK_OTA_BOOT_KEY");
    let key_path = std::env::var("TOCK_OTA_BOOT_KEY")
        .unwrap_or(format!("{dir}/../../bootloader/keys/public.bin"));
    println!("cargo:rerun-if-changed={key_path}");
    let key = std::fs::read(&key_path).unwrap_or_default();
    if key.len() != 64 {
        panic!("{key_path}: the public key must be 64 bytes (x then y, big-endian)");
    }
    if let Err(e) = std::fs::write(format!("{out}/update-key.bin"), &key) {
        panic!("cannot write OUT_DIR/update-key.bin: {e}");
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        libtock_build_scripts::auto_layout();
    }
}
