//! Links the firmware with `link.ld` (only for the bare-metal target; the host build is a stub).

//! Also copies the public key into OUT_DIR: `keys/public.bin`, or the 64-byte raw x‖y file named
//! by `TOCK_OTA_BOOT_KEY` (for test builds with another key).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let out = std::env::var("OUT_DIR").unwrap_or_default();
    println!("cargo:rerun-if-env-changed=TOCK_OTA_BOOT_KEY");
    let key_path = std::env::var("TOCK_OTA_BOOT_KEY").unwrap_or(format!("{dir}/keys/public.bin"));
    println!("cargo:rerun-if-changed={key_path}");
    let key = std::fs::read(&key_path).unwrap_or_default();
    if key.len() != 64 {
        panic!("{key_path}: the public key must be 64 bytes (x then y, big-endian)");
    }
    if let Err(e) = std::fs::write(format!("{out}/public.bin"), &key) {
        panic!("cannot write OUT_DIR/public.bin: {e}");
    }
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-search={dir}");
        println!("cargo:rustc-link-arg-bins=-Tlink.ld");
        println!("cargo:rustc-link-arg-bins=--nmagic");
    }
}
