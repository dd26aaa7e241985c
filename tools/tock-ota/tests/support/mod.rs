//! Shared by the tool's tests: running `tock-ota` with a time limit, its JSON, the TABs the app
//! tests send, and Bumble's controllers (ota-hci's test helper, included by path).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use app_sim::tab::arm_elf;

#[path = "../../../ota-hci/tests/support/bumble.rs"]
pub mod bumble;

pub const TOOL: &str = env!("CARGO_BIN_EXE_tock-ota");

/// `path` from the repository's root.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Run with a time limit; a run over the limit is killed and fails the test.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tock-ota");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} ran over {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `tock-ota receive` on the second of `b`'s controllers (`--out got --json --idle-timeout-s 30`
/// and `receive_args`) in the background, then `tock-ota send` on `send_hci` (`--json
/// --status-timeout-s 20` and `send_args`) in the foreground, each within `limit`; returns
/// (send, receive).
pub fn send_to_receive<S: AsRef<OsStr>, R: AsRef<OsStr>>(
    b: &bumble::Bumble,
    send_hci: &str,
    send_args: &[S],
    got: &Path,
    receive_args: &[R],
    limit: Duration,
) -> (Output, Output) {
    let mut rx = Command::new(TOOL);
    rx.arg("receive")
        .arg("--hci")
        .arg(format!("tcp:127.0.0.1:{}", b.ports[1]))
        .arg("--out")
        .arg(got)
        .args(["--json", "--idle-timeout-s", "30"])
        .args(receive_args);
    let rx = std::thread::spawn(move || run(&mut rx, limit));
    std::thread::sleep(Duration::from_millis(500));
    let tx = run(
        Command::new(TOOL)
            .arg("send")
            .arg("--hci")
            .arg(send_hci)
            .args(["--json", "--status-timeout-s", "20"])
            .args(send_args),
        limit,
    );
    (tx, rx.join().expect("receive thread"))
}

/// A run's standard output as JSON; a test failure showing both outputs if it is not.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A TAB of app "sensor" at `version` made by elf2tab, signed with the development app key if
/// `signed`.
pub fn app_tab(dir: &Path, version: u32, signed: bool) -> PathBuf {
    let elf = dir.join("app.elf");
    let code: Vec<u8> = (0..900u32).map(|i| (i * 11 % 253) as u8).collect();
    std::fs::write(&elf, arm_elf(&code)).unwrap();
    let out = dir.join(format!("app-{version}-{signed}.tab"));
    let mut cmd = Command::new("elf2tab");
    cmd.args(["--kernel-major", "2", "--kernel-minor", "0", "-n", "sensor"])
        .args(["--app-version", &version.to_string()])
        .args(["--minimum-footer-size", "256", "-o"])
        .arg(&out);
    if signed {
        cmd.arg("--ecdsa-nist-p256-private")
            .arg(repo("apps/dfu/dev-keys/app-dev-key.pk8"));
    }
    let made = cmd
        .arg(format!("{},cortex-m4", elf.display()))
        .output()
        .expect("elf2tab runs (.ci/setup installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    out
}
