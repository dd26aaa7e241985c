//! Builds firmware ELFs for `thumbv7em-none-eabihf` with cargo, so tests and reports always run
//! the current sources. Cargo itself decides whether anything is outdated; a fresh build is a
//! no-op. Each build uses its own target directory under the workspace's `target/`, so it never
//! waits on the lock of the cargo process that runs the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The firmware target.
pub const TARGET: &str = "thumbv7em-none-eabihf";

/// The root workspace (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate lies two levels below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // Flags meant for the host build must not leak into the firmware build.
    for var in [
        "TOCK_OTA_BOOT_KEY",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cargo to build {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building {what} failed (is the {TARGET} target installed? run .ci/setup):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Builds the bootloader (`tock-ota-bootloader`, profile `firmware`) with the simulation
/// public key ([`crate::images::firmware_public_key`], passed through `TOCK_OTA_BOOT_KEY`) and
/// returns its ELF path.
pub fn bootloader_elf() -> Result<PathBuf, String> {
    let root = workspace_root();
    let target_dir = root.join("target").join("boot-emu-firmware");
    std::fs::create_dir_all(&target_dir).map_err(|e| format!("{}: {e}", target_dir.display()))?;
    let key = target_dir.join("sim-public-key.bin");
    let want = crate::images::firmware_public_key();
    if std::fs::read(&key).ok().as_deref() != Some(&want[..]) {
        std::fs::write(&key, want).map_err(|e| format!("{}: {e}", key.display()))?;
    }
    let mut cmd = cargo();
    cmd.env("TOCK_OTA_BOOT_KEY", &key);
    cmd.current_dir(&root)
        .args([
            "build",
            "-p",
            "tock-ota-bootloader",
            "--profile",
            "firmware",
        ])
        .args(["--target", TARGET])
        .env("CARGO_TARGET_DIR", &target_dir);
    run(cmd, "the bootloader")?;
    Ok(target_dir
        .join(TARGET)
        .join("firmware")
        .join("tock-ota-bootloader"))
}

/// Builds the peripheral test program in `tools/boot-emu/fixtures/periph-test` and returns its
/// ELF path.
pub fn fixture_elf() -> Result<PathBuf, String> {
    test_program_elf("periph-test")
}

/// Builds the test program `tools/boot-emu/fixtures/<name>` (package and binary `name`) and
/// returns its ELF path.
pub fn test_program_elf(name: &str) -> Result<PathBuf, String> {
    let root = workspace_root();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
        .join("Cargo.toml");
    let target_dir = root.join("target").join("boot-emu-fixtures");
    let mut cmd = cargo();
    cmd.current_dir(&root)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--release", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &target_dir);
    run(cmd, &format!("the test program {name}"))?;
    Ok(target_dir.join(TARGET).join("release").join(name))
}
