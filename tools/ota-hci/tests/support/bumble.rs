//! Bumble's emulated controllers, for the tests that run against them: ota-hci's and
//! tock-ota's (which include this file by path). Bumble comes from the project's venv
//! (`.ci/setup` installs it); without it those tests fail and say so.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The project venv's Python (both crates live in `tools/`).
pub fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
}

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two Bumble controllers on one link; killed when dropped. `ports`: the TCP ports the tests
/// connect to (0 for a controller on another transport).
pub struct Bumble {
    _child: Killed,
    pub ports: [u16; 2],
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// Whether something accepts connections on local `port`.
pub fn accepts(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Two controllers on free local TCP ports, listening.
pub fn bumble() -> Bumble {
    let ports = [free_port(), free_port()];
    let b = start_bumble(&ports.map(|p| format!("tcp-server:127.0.0.1:{p}")), ports);
    wait_until_up(|| ports.iter().all(|&p| accepts(p)));
    b
}

/// Bumble's two controllers on `transports` (one link), not yet waited for. Fails the test if
/// Bumble is not importable.
pub fn start_bumble(transports: &[String], ports: [u16; 2]) -> Bumble {
    let python = venv_python();
    let importable = Command::new(&python)
        .args(["-c", "import bumble.apps.controllers"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        importable,
        "Bumble is not importable from {} — run `.ci/setup` (it installs bumble into the \
         project's venv); these tests need it",
        python.display()
    );
    let child = Command::new(&python)
        .args(["-m", "bumble.apps.controllers"])
        .args(transports)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bumble");
    Bumble {
        _child: Killed(child),
        ports,
    }
}

/// Wait until `up` (at most 15 s, else the test fails), then let Bumble see the probe
/// connections close before anyone connects.
pub fn wait_until_up(mut up: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !up() {
        assert!(Instant::now() < deadline, "Bumble did not start listening");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
}
