//! The CLI's standard output: a reader that goes away early is not an error.

use std::process::Command;

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // A pipe whose read end is already closed: the first write fails with EPIPE.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .args(["bench", "verify"])
        .stdout(writer)
        .output()
        .expect("run tock-ota");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}

#[test]
fn an_unwritable_stdout_is_reported() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .args(["bench", "verify"])
        .stdout(full)
        .output()
        .expect("run tock-ota");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.status.success());
    assert!(stderr.contains("writing to stdout"), "{stderr}");
}
