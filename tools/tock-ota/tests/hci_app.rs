//! App sessions over standard HCI, end to end through controllers we did not write:
//! `tock-ota send --app` of a TAB elf2tab made and signed with the development app key, to
//! `tock-ota receive` (the DFU app's receiving side with the app-update driver's checks), over
//! two of Bumble's emulated controllers on one simulated link (H:4 over TCP), as
//! `hci_transfer.rs` runs kernel images. Bumble comes from the project's venv and elf2tab from
//! `.ci/setup`; without them these tests fail and say so. Each transfer is a 2 KiB TBF: a few
//! seconds.
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use app_sim::tab::{arm_elf, tar_files};

const TOOL: &str = env!("CARGO_BIN_EXE_tock-ota");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// Two Bumble controllers on one link, on free local ports; killed when dropped.
struct Bumble {
    child: Child,
    ports: [u16; 2],
}

impl Drop for Bumble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

fn bumble() -> Bumble {
    let python = repo(".venv/bin/python");
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
    let ports = [free_port(), free_port()];
    let child = Command::new(&python)
        .args(["-m", "bumble.apps.controllers"])
        .args(ports.map(|p| format!("tcp-server:127.0.0.1:{p}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bumble");
    let b = Bumble { child, ports };
    let deadline = Instant::now() + Duration::from_secs(15);
    for port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Bumble did not start listening");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Let Bumble see the probe connections close before the tool connects.
    std::thread::sleep(Duration::from_millis(200));
    b
}

/// Run with a time limit; a run over the limit is killed and fails the test.
fn run(cmd: &mut Command, limit: Duration) -> Output {
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

/// A TAB of app "sensor" at `version`, made by elf2tab and signed with the development app key
/// (as `cli_demo_app.rs` makes its TABs).
fn tab(dir: &Path, version: u32) -> PathBuf {
    let elf = dir.join("app.elf");
    let code: Vec<u8> = (0..900u32).map(|i| (i * 11 % 253) as u8).collect();
    std::fs::write(&elf, arm_elf(&code)).unwrap();
    let out = dir.join(format!("sensor-{version}.tab"));
    let made = Command::new("elf2tab")
        .args(["--kernel-major", "2", "--kernel-minor", "0", "-n", "sensor"])
        .args(["--app-version", &version.to_string()])
        .args(["--minimum-footer-size", "256", "-o"])
        .arg(&out)
        .arg("--ecdsa-nist-p256-private")
        .arg(repo("apps/dfu/dev-keys/app-dev-key.pk8"))
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

/// The TAB's `cortex-m4.tbf`, read from the tar directly (not through the sender's code).
fn cortex_m4_tbf(tab: &Path) -> Vec<u8> {
    let files = tar_files(&std::fs::read(tab).unwrap()).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    files
        .iter()
        .find(|(name, _)| name == "cortex-m4.tbf")
        .unwrap_or_else(|| panic!("no cortex-m4.tbf in the TAB: {names:?}"))
        .1
        .clone()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `receive` (with `receive_args`) in the background, `send --app tab` in the foreground;
/// returns (send, receive).
fn app_transfer(b: &Bumble, tab: &Path, got: &Path, receive_args: &[&str]) -> (Output, Output) {
    let mut rx = Command::new(TOOL);
    rx.arg("receive")
        .arg("--hci")
        .arg(format!("tcp:127.0.0.1:{}", b.ports[1]))
        .arg("--out")
        .arg(got)
        .args(["--json", "--idle-timeout-s", "30"])
        .args(receive_args);
    let rx = std::thread::spawn(move || run(&mut rx, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(500));
    let tx = run(
        Command::new(TOOL)
            .arg("send")
            .arg("--hci")
            .arg(format!("tcp:127.0.0.1:{}", b.ports[0]))
            .args(["--json", "--status-timeout-s", "20", "--app"])
            .arg(tab),
        Duration::from_secs(60),
    );
    (tx, rx.join().expect("receive thread"))
}

#[test]
fn a_signed_app_goes_through_bumble_and_passes_the_install_checks() {
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let tab = tab(dir.path(), 3);
    let got = dir.path().join("got.tbf");
    let key = repo("apps/dfu/dev-keys/app-dev-pub.pem");
    let key = key.to_str().unwrap();
    let (tx, rx) = app_transfer(
        &b,
        &tab,
        &got,
        &["--app-key", key, "--installed-version", "2"],
    );
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(tx.status.success(), "send: {}", stderr(&tx));
    assert!(rx.status.success(), "receive: {}", stderr(&rx));
    let r = json(&rx);
    assert_eq!(
        (&r["kind"], &r["app"], &r["version"], &r["verdict"]),
        (
            &"app".into(),
            &"sensor".into(),
            &3.into(),
            &"installable".into()
        ),
        "{r}"
    );
    assert_eq!(r["credential_checked"], true, "{r}");
    assert_eq!(r["installed_version"], 2, "{r}");
    let s = json(&tx);
    assert_eq!((&s["kind"], &s["app"]), (&"app".into(), &"sensor".into()));
    assert_eq!(s["receiver_complete"], true, "{s}");
    let tbf = cortex_m4_tbf(&tab);
    assert_eq!(r["image_bytes"], tbf.len() as u64);
    let received = std::fs::read(&got).expect("the received TBF");
    assert!(
        received == tbf,
        "the received TBF differs from the TAB's cortex-m4.tbf"
    );
}

#[test]
fn a_lower_version_is_refused_with_its_reason_and_the_sender_is_told() {
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let tab = tab(dir.path(), 3);
    let got = dir.path().join("got.tbf");
    let (tx, rx) = app_transfer(&b, &tab, &got, &["--installed-version", "9"]);
    assert!(!rx.status.success(), "receive took a lower version");
    let rx_err = String::from_utf8_lossy(&rx.stderr);
    assert!(
        rx_err.contains("refused app sensor v3")
            && rx_err.contains("not newer than the installed v9"),
        "{rx_err}"
    );
    let r = json(&rx);
    assert_eq!(
        (&r["kind"], &r["verdict"]),
        (&"app".into(), &"refused".into())
    );
    assert!(
        r["reason"].as_str().unwrap().contains("anti-rollback"),
        "{r}"
    );
    assert!(r["out"].is_null() && !got.exists(), "nothing is written");
    // The sender heard the receiver's Rejected status.
    assert!(
        !tx.status.success(),
        "send says a refused app was installed"
    );
    let tx_err = String::from_utf8_lossy(&tx.stderr);
    assert!(
        tx_err.contains("the receiver refused the image") && tx_err.contains("sensor v3"),
        "{tx_err}"
    );
}
