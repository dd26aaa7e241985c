//! Without the `emulator` feature, `bench boot` still parses its options but fails with a message
//! that names the feature, and prints nothing on stdout (a `--json` reader sees no half report).
#![cfg(not(feature = "emulator"))]

use std::process::Command;

#[test]
fn bench_boot_without_the_emulator_names_the_feature() {
    let out = Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .args(["bench", "boot", "--json", "--cut-stride", "3"])
        .output()
        .expect("run tock-ota");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--features emulator -- bench boot"),
        "stderr: {err}"
    );
}
