//! `tock-ota send` and `tock-ota receive` over standard HCI, against controllers we did not
//! write: Bumble's emulated controllers (two on one simulated link, each speaking H:4 over TCP),
//! and against small fake controllers in this file for the error paths.
//!
//! Bumble comes from the project's venv (`.ci/setup` installs it); without it the Bumble tests
//! fail and say so.
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod support;
use support::bumble::{accepts, bumble, free_port, start_bumble, wait_until_up, Bumble};
use support::{json, run, send_to_receive, TOOL};

/// A key and a signed image of `payload` bytes in `dir`.
fn signed_image(dir: &Path, payload: usize) -> (PathBuf, PathBuf) {
    let key = dir.join("k.pem");
    let out = run(
        Command::new(TOOL).arg("keygen").arg("-o").arg(&key),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "keygen: {out:?}");
    let raw = dir.join("raw.bin");
    let bytes: Vec<u8> = (0..payload as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&raw, bytes).unwrap();
    let img = dir.join("x.img");
    let out = run(
        Command::new(TOOL)
            .args([
                "sign",
                "--version",
                "1.2.0",
                "--pad-header",
                "--header-size",
                "0x200",
            ])
            .arg("-k")
            .arg(&key)
            .arg(&raw)
            .arg(&img),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "sign: {out:?}");
    (img, dir.join("k.pub.pem"))
}

/// Receive in the background and send in the foreground; returns (send, receive) outputs.
fn transfer(
    b: &Bumble,
    img: &Path,
    pubkey: &Path,
    got: &Path,
    send_extra: &[&str],
    receive_extra: &[&str],
) -> (Output, Output) {
    let send_hci = format!("tcp:127.0.0.1:{}", b.ports[0]);
    transfer_via(&send_hci, b, img, pubkey, got, send_extra, receive_extra)
}

/// As [`transfer`], the sender on `send_hci`.
fn transfer_via(
    send_hci: &str,
    b: &Bumble,
    img: &Path,
    pubkey: &Path,
    got: &Path,
    send_extra: &[&str],
    receive_extra: &[&str],
) -> (Output, Output) {
    let mut receive_args: Vec<OsString> = vec!["--key".into(), pubkey.into()];
    receive_args.extend(receive_extra.iter().map(OsString::from));
    let mut send_args: Vec<OsString> = send_extra.iter().map(OsString::from).collect();
    send_args.push(img.into());
    send_to_receive(
        b,
        send_hci,
        &send_args,
        got,
        &receive_args,
        Duration::from_secs(90),
    )
}

fn assert_complete(tx: &Output, rx: &Output, img: &Path, got: &Path) -> serde_json::Value {
    assert!(
        tx.status.success(),
        "send failed: {}",
        String::from_utf8_lossy(&tx.stderr)
    );
    assert!(
        rx.status.success(),
        "receive failed: {}",
        String::from_utf8_lossy(&rx.stderr)
    );
    let s = json(tx);
    let r = json(rx);
    assert_eq!(s["receiver_complete"], true, "{s}");
    assert_eq!(r["state"], "complete", "{r}");
    assert_eq!(r["signature_verified"], true, "{r}");
    let sent = std::fs::read(img).unwrap();
    let received = std::fs::read(got).expect("the received image");
    assert!(sent.len() >= 8 * 1024);
    assert_eq!(s["image_bytes"], sent.len() as u64);
    assert!(
        sent == received,
        "the received image differs from the one sent"
    );
    s
}

#[test]
fn send_to_receive_through_two_bumble_controllers() {
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let (img, pubkey) = signed_image(dir.path(), 9 * 1024);
    let got = dir.path().join("got.img");
    let (tx, rx) = transfer(&b, &img, &pubkey, &got, &[], &[]);
    let s = assert_complete(&tx, &rx, &img, &got);
    // Bumble has LE extended advertising: the default path.
    assert_eq!(s["extended_advertising"], true, "{s}");
    let goodput = s["goodput_bytes_per_s"].as_f64().unwrap();
    assert!(goodput > 300.0, "goodput {goodput} B/s");
}

#[test]
fn resends_complete_an_image_when_the_receiver_misses_a_third() {
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let (img, pubkey) = signed_image(dir.path(), 8 * 1024);
    let got = dir.path().join("got.img");
    let (tx, rx) = transfer(
        &b,
        &img,
        &pubkey,
        &got,
        &[],
        &["--drop", "0.33", "--seed", "7"],
    );
    let s = assert_complete(&tx, &rx, &img, &got);
    let r = json(&rx);
    assert!(r["dropped_on_purpose"].as_u64().unwrap() > 50, "{r}");
    assert!(s["resent_chunks"].as_u64().unwrap() > 20, "{s}");
}

#[test]
fn legacy_commands_with_connectable_pdus_work_too() {
    // Bumble's legacy advertiser emits ADV_IND only (nothing for ADV_NONCONN_IND).
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let (img, pubkey) = signed_image(dir.path(), 8 * 1024);
    let got = dir.path().join("got.img");
    let legacy = ["--force-legacy", "--adv-type", "ind"];
    let (tx, rx) = transfer(&b, &img, &pubkey, &got, &legacy, &legacy);
    let s = assert_complete(&tx, &rx, &img, &got);
    assert_eq!(s["extended_advertising"], false, "{s}");
}

#[test]
fn the_serial_transport_carries_a_transfer() {
    // Bumble's first controller on a pty (H:4 over a "UART"), the second on TCP.
    let dir = tempfile::tempdir().unwrap();
    let pty = dir.path().join("controller.pty");
    let port = free_port();
    let b = start_bumble(
        &[
            format!("pty:{}", pty.display()),
            format!("tcp-server:127.0.0.1:{port}"),
        ],
        [0, port],
    );
    wait_until_up(|| pty.exists() && accepts(port));
    let (img, pubkey) = signed_image(dir.path(), 8 * 1024);
    let got = dir.path().join("got.img");
    let send_hci = format!("serial:{}", pty.display());
    let (tx, rx) = transfer_via(&send_hci, &b, &img, &pubkey, &got, &[], &[]);
    let s = assert_complete(&tx, &rx, &img, &got);
    assert_eq!(s["transport"], format!("{send_hci}:1000000"), "{s}");
}

#[test]
fn a_dead_tcp_endpoint_is_named_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.img");
    std::fs::write(&img, vec![0x5Au8; 9000]).unwrap();
    let t0 = Instant::now();
    let out = run(
        Command::new(TOOL)
            .args(["send", "--hci", "tcp:127.0.0.1:1"])
            .arg(&img),
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(stderr.contains("tcp:127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A fake controller on a local port: answers every command with Command Complete, success
/// and zeroed return parameters of the right size, except as `answer` says. Serves one
/// connection.
fn fake_controller(
    answer: impl Fn(u16) -> Option<Vec<u8>> + Send + 'static,
) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
        loop {
            let mut head = [0u8; 4];
            if s.read_exact(&mut head).is_err() {
                return;
            }
            assert_eq!(head[0], 0x01, "an H:4 command packet");
            let opcode = u16::from_le_bytes([head[1], head[2]]);
            let mut params = vec![0u8; head[3] as usize];
            if s.read_exact(&mut params).is_err() {
                return;
            }
            let Some(ret) = answer(opcode) else {
                continue; // silence
            };
            let mut ev = vec![0x04, 0x0E, (3 + ret.len()) as u8, 1];
            ev.extend(opcode.to_le_bytes());
            ev.extend(ret);
            if s.write_all(&ev).is_err() {
                return;
            }
        }
    });
    (port, h)
}

/// Return parameters (status first) a healthy LE-only legacy controller gives.
fn healthy(opcode: u16) -> Vec<u8> {
    match opcode {
        // Read Local Supported Features: bit 38 "LE Supported (Controller)".
        0x1003 => {
            let mut r = vec![0u8; 9];
            r[1 + 4] = 1 << 6;
            r
        }
        0x1002 => vec![0u8; 65],
        // LE Read Local Supported Features: none of the optional ones.
        0x2003 => vec![0u8; 9],
        _ => vec![0],
    }
}

fn send_through(port: u16) -> (Output, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.img");
    std::fs::write(&img, vec![0x5Au8; 9000]).unwrap();
    let t0 = Instant::now();
    let out = run(
        Command::new(TOOL)
            .args(["send", "--hci"])
            .arg(format!("tcp:127.0.0.1:{port}"))
            .arg(&img),
        Duration::from_secs(20),
    );
    (out, t0.elapsed())
}

#[test]
fn a_controller_refusing_a_command_is_named_with_its_status() {
    // LE Set Advertising Parameters answered with 0x12, Invalid HCI Command Parameters.
    let (port, h) = fake_controller(|op| match op {
        0x2006 => Some(vec![0x12]),
        op => Some(healthy(op)),
    });
    let (out, _) = send_through(port);
    h.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("refused LeSetAdvParams"), "{stderr}");
    assert!(stderr.contains("0x12"), "{stderr}");
    assert!(
        stderr.contains("InvalidHciCommandParameters") || stderr.contains("Invalid"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("tcp:127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn a_controller_without_le_is_reported() {
    let (port, h) = fake_controller(|op| match op {
        0x1003 => Some(vec![0u8; 9]),
        op => Some(healthy(op)),
    });
    let (out, _) = send_through(port);
    h.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("does not support Bluetooth LE"), "{stderr}");
}

#[test]
fn a_silent_endpoint_is_no_controller() {
    let (port, h) = fake_controller(|_| None);
    let (out, took) = send_through(port);
    h.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        stderr.contains(&format!("no controller answering on tcp:127.0.0.1:{port}")),
        "{stderr}"
    );
}

/// A TCP relay between the tool and a controller that cuts both ways after `budget` bytes from
/// the tool (the controller's link dies mid-transfer).
fn cutting_relay(to: u16, budget: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((tool, _)) = listener.accept() else {
            return;
        };
        let Ok(ctrl) = TcpStream::connect(("127.0.0.1", to)) else {
            return;
        };
        let (mut tool_r, mut ctrl_w) = (tool.try_clone().unwrap(), ctrl.try_clone().unwrap());
        let (mut ctrl_r, mut tool_w) = (ctrl.try_clone().unwrap(), tool.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut ctrl_r, &mut tool_w);
        });
        let mut sent = 0;
        let mut buf = [0u8; 256];
        while sent < budget {
            match tool_r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ctrl_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    sent += n;
                }
            }
        }
        let _ = tool.shutdown(std::net::Shutdown::Both);
        let _ = ctrl.shutdown(std::net::Shutdown::Both);
    });
    port
}

#[test]
fn a_link_that_closes_mid_transfer_is_reported_and_send_again_finishes() {
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let (img, pubkey) = signed_image(dir.path(), 8 * 1024);
    let got = dir.path().join("got.img");
    let mut rx = Command::new(TOOL);
    rx.arg("receive")
        .arg("--hci")
        .arg(format!("tcp:127.0.0.1:{}", b.ports[1]))
        .arg("--out")
        .arg(&got)
        .arg("--key")
        .arg(&pubkey)
        .args(["--json", "--idle-timeout-s", "30"]);
    let rx = std::thread::spawn(move || run(&mut rx, Duration::from_secs(90)));
    std::thread::sleep(Duration::from_millis(500));
    // About half the image's worth of advertising commands, then the link goes.
    let relay = cutting_relay(b.ports[0], 8_000);
    let first = run(
        Command::new(TOOL)
            .arg("send")
            .arg("--hci")
            .arg(format!("tcp:127.0.0.1:{relay}"))
            .arg(&img),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(!first.status.success(), "the first send should have failed");
    assert!(stderr.contains("closed"), "{stderr}");
    assert!(stderr.contains("again to resume"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let second = run(
        Command::new(TOOL)
            .arg("send")
            .arg("--hci")
            .arg(format!("tcp:127.0.0.1:{}", b.ports[0]))
            .arg("--json")
            .arg(&img),
        Duration::from_secs(90),
    );
    let rx = rx.join().expect("receive thread");
    assert_complete(&second, &rx, &img, &got);
    // The receiver kept what it had: the second send's chunks it already held are duplicates,
    // and no chunk was staged twice.
    let r = json(&rx);
    let total = (std::fs::read(&img).unwrap().len() as u64).div_ceil(4096) * 164;
    assert!(r["duplicates"].as_u64().unwrap() > 100, "{r}");
    assert!(r["chunks"].as_u64().unwrap() <= total, "{r}");
}

#[test]
fn send_with_a_base_falls_back_to_the_full_image_when_the_receiver_cannot_take_the_patch() {
    // `tock-ota receive` cannot tell which image it runs, so it refuses every delta session.
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let (img, pubkey) = signed_image(dir.path(), 9 * 1024);
    let base_dir = dir.path().join("base");
    std::fs::create_dir(&base_dir).unwrap();
    let (base, _) = signed_image(&base_dir, 9 * 1024 - 100);
    let base = base.to_str().unwrap().to_string();
    let got = dir.path().join("got.img");
    let (tx, rx) = transfer(&b, &img, &pubkey, &got, &["--base", &base], &[]);
    let s = assert_complete(&tx, &rx, &img, &got);
    assert_eq!(s["sent"], "full", "{s}");
    let stderr = String::from_utf8_lossy(&tx.stderr);
    assert!(
        stderr.contains("cannot tell which image it runs")
            && stderr.contains("sending the full image"),
        "{stderr}"
    );

    // With --no-fallback the send stops with that reason.
    let got = dir.path().join("got2.img");
    let (tx, _) = transfer(
        &b,
        &img,
        &pubkey,
        &got,
        &["--base", &base, "--no-fallback"],
        &[],
    );
    assert!(!tx.status.success());
    let stderr = String::from_utf8_lossy(&tx.stderr);
    assert!(stderr.contains("takes no patch"), "{stderr}");
}

#[test]
fn the_periodic_bearer_carries_an_image_through_bumble() {
    // The sender offers every bearer its controller has (auto); the receiver follows them all,
    // picks periodic 2M, synchronises to the train and takes the chained events. Bumble sends
    // the periodic AdvData with each of the set's 20 ms events and reports at most 247 bytes
    // of it, so the train runs at 20 ms with events cut to 247 bytes (hidden --max-event-data).
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let (img, pubkey) = signed_image(dir.path(), 16 * 1024);
    let got = dir.path().join("got.img");
    let send = [
        "--bearer",
        "auto",
        "--periodic-interval-ms",
        "20",
        "--max-event-data",
        "247",
    ];
    let (tx, rx) = transfer(&b, &img, &pubkey, &got, &send, &[]);
    let s = assert_complete(&tx, &rx, &img, &got);
    assert_eq!(s["bearer"], "periodic 2M", "{s}");
    // 228-byte chunks: far fewer chunks than the legacy 25-byte ones (16 KiB: 72 against 660).
    let r = json(&rx);
    assert!(r["chunks"].as_u64().unwrap() < 150, "{r}");
}

#[test]
fn a_bearer_the_controller_lacks_is_refused_by_name() {
    // An LE controller without extended advertising: --bearer periodic names what is missing.
    let (port, h) = fake_controller(|op| Some(healthy(op)));
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("x.img");
    std::fs::write(&img, vec![0x5Au8; 9000]).unwrap();
    let out = run(
        Command::new(TOOL)
            .args(["send", "--bearer", "periodic", "--hci"])
            .arg(format!("tcp:127.0.0.1:{port}"))
            .arg(&img),
        Duration::from_secs(20),
    );
    h.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot send on the periodic bearer")
            && stderr.contains("LE Extended Advertising (LE feature bit 12)"),
        "{stderr}"
    );
}
