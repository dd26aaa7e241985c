//! The extended and periodic bearers against controllers we did not write: two of Bumble's
//! emulated controllers on one simulated link. Our advertiser drives the first over HCI (H:4
//! over TCP); a scanner on Bumble's own host stack (`bumble_scanner.py`) drives the second and
//! prints what it hears. Bumble comes from the project's venv (`.ci/setup` installs it);
//! without it these tests fail and say so.
//!
//! What Bumble's controller cannot show (`docs/hci.md`, "Bumble's quirks"): it writes a report
//! as one HCI event whatever its length, so AdvData over 229 bytes (extended) or 247 bytes
//! (periodic) cannot reach a scanner through it; it sends the periodic AdvData with every
//! extended advertising event instead of on the periodic interval; and it reports every
//! advertisement once more as a scan response.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ota_hci::radio::{AdvParams, AdvType, Advertiser, BearerParams, ADV_SID};
use ota_hci::{Bearer, BearerChoice, Phy, TransportSpec};

#[path = "support/bumble.rs"]
mod bumble;
use bumble::{bumble, venv_python, Killed};

fn scanner_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bumble_scanner.py")
}

/// The scanner on `port`, synchronising to `sync` (address as Bumble writes it, SID) if given;
/// its lines arrive on the receiver once it said "ready".
fn scanner(port: u16, sync: Option<(&str, u8)>) -> (Killed, mpsc::Receiver<String>) {
    let mut cmd = Command::new(venv_python());
    cmd.arg(scanner_script())
        .arg(format!("tcp-client:127.0.0.1:{port}"))
        .arg("50");
    if let Some((addr, sid)) = sync {
        cmd.arg(addr).arg(sid.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Bumble scanner");
    let stdout: ChildStdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the scanner says ready within 20 s");
    assert_eq!(first, "ready");
    (child, rx)
}

/// Everything the scanner printed until now (waiting `settle` for the last lines).
fn lines(rx: &mpsc::Receiver<String>, settle: Duration) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let deadline = Instant::now() + settle;
    while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        out.push(l.split(' ').map(str::to_string).collect());
    }
    out
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// The advertiser's address (as sent, least significant byte first) and as Bumble writes it.
const ADDR: [u8; 6] = [0x11, 0x22, 0x33, 0x44, 0x55, 0xC6];
const ADDR_TEXT: &str = "C6:55:44:33:22:11";

/// `n` bytes of well-formed AD structures (manufacturer data, Bumble's host parses them),
/// distinct for each `tag`.
fn adv_data(n: usize, tag: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let room = n - out.len();
        if room < 3 {
            out.extend(std::iter::repeat_n(0u8, room)); // zero-length structures: padding
            break;
        }
        let body = (room - 2).min(200);
        out.push(body as u8 + 1);
        out.push(0xFF);
        out.extend((0..body).map(|i| tag.wrapping_mul(31).wrapping_add(i as u8)));
    }
    out
}

const PARAMS: AdvParams = AdvParams {
    adv_type: AdvType::NonConn,
    interval: Duration::from_millis(20),
};

fn controller(port: u16) -> ota_hci::Controller {
    let spec: TransportSpec = format!("tcp:127.0.0.1:{port}").parse().unwrap();
    ota_hci::connect(&spec).expect("Bumble's controller starts")
}

#[test]
fn extended_advdata_in_fragments_reaches_a_bumble_scanner_intact() {
    let b = bumble();
    let ports = b.ports;
    let (_scanner, rx) = scanner(ports[1], None);
    let mut hci = controller(ports[0]);
    let caps = hci.capabilities();
    assert!(caps.extended_advertising && caps.le_2m_phy, "{caps:?}");
    assert_eq!(
        caps.max_adv_data_len, 1650,
        "Bumble's LE Read Maximum Advertising Data Length"
    );
    let bearer = ota_hci::bearer::choose_for(&hci, BearerChoice::Extended, None).unwrap();
    assert_eq!(bearer, Bearer::Extended(Phy::Le2M));
    // 100-byte fragments, so every payload over 100 bytes goes as first/intermediate/last.
    let mut params = BearerParams::new(bearer);
    params.fragment = 100;
    let mut adv = Advertiser::for_bearer(&mut hci, PARAMS, true, ADDR, params).unwrap();
    // Up to 229 bytes: the most Bumble's controller can put in one report event.
    let payloads: Vec<Vec<u8>> = [229usize, 150, 31, 201, 229, 120]
        .iter()
        .enumerate()
        .map(|(i, n)| adv_data(*n, i as u8 + 1))
        .collect();
    for p in &payloads {
        adv.transmit(&mut hci, p, 3, &mut |_| {}).unwrap();
    }
    hci.pump(Instant::now() + adv.interval() * 3, &mut |_| {})
        .unwrap();
    adv.stop(&mut hci).unwrap();

    let heard: Vec<Vec<String>> = lines(&rx, Duration::from_millis(500))
        .into_iter()
        .filter(|l| l[0] == "adv" && l[1] == ADDR_TEXT && l[3] == "adv")
        .collect();
    // (Bumble reports every PDU as extended, so the report cannot tell legacy PDUs from
    // extended ones; the fake controller's test checks the set's properties.)
    // Every report is one of the payloads, whole; every payload was heard.
    let sent: Vec<String> = payloads.iter().map(|p| hex(p)).collect();
    for l in &heard {
        let data = l.get(4).cloned().unwrap_or_default();
        assert!(sent.contains(&data), "a report that is no payload: {data}");
    }
    for (i, s) in sent.iter().enumerate() {
        assert!(
            heard.iter().any(|l| l.get(4) == Some(s)),
            "payload {i} ({} bytes) never heard; heard {} reports",
            s.len() / 2,
            heard.len()
        );
    }
}

#[test]
fn a_bumble_scanner_syncs_to_the_periodic_train_and_gets_its_advdata() {
    let b = bumble();
    let ports = b.ports;
    let (_scanner, rx) = scanner(ports[1], Some((ADDR_TEXT, ADV_SID)));
    let mut hci = controller(ports[0]);
    assert!(hci.capabilities().periodic_advertising);
    let bearer = ota_hci::bearer::choose_for(&hci, BearerChoice::Auto, None).unwrap();
    assert_eq!(bearer, Bearer::Periodic(Phy::Le2M));
    let mut params = BearerParams::new(bearer);
    params.periodic_interval = Duration::from_millis(20);
    let mut adv = Advertiser::for_bearer(&mut hci, PARAMS, true, ADDR, params).unwrap();
    assert_eq!(adv.max_adv_data(), 252);
    // Up to 247 bytes: the most Bumble's controller can put in one periodic report event.
    let payloads: Vec<Vec<u8>> = [247usize, 100, 200, 31, 247, 180]
        .iter()
        .enumerate()
        .map(|(i, n)| adv_data(*n, i as u8 + 40))
        .collect();
    // Each held for five of Bumble's 20 ms events (the last one too, before the stop), so a
    // late Python timer on a loaded machine still leaves it some.
    for p in &payloads {
        adv.transmit(&mut hci, p, 5, &mut |_| {}).unwrap();
    }
    hci.pump(Instant::now() + adv.interval() * 5, &mut |_| {})
        .unwrap();
    adv.stop(&mut hci).unwrap();

    let all = lines(&rx, Duration::from_millis(500));
    let sync = all.iter().position(|l| l[0] == "sync");
    let sync = sync.unwrap_or_else(|| panic!("no sync established: {all:?}"));
    assert_eq!(all[sync][1..], [ADDR_TEXT.to_string(), ADV_SID.to_string()]);
    let periodic: Vec<String> = all
        .iter()
        .filter(|l| l[0] == "periodic")
        .map(|l| l.get(1).cloned().unwrap_or_default())
        .collect();
    let sent: Vec<String> = payloads.iter().map(|p| hex(p)).collect();
    for d in &periodic {
        assert!(
            sent.contains(d),
            "a periodic report that is no payload: {d}"
        );
    }
    // The sync is made on the train's first event, so the first payload may be missed; every
    // later one was heard.
    for (i, s) in sent.iter().enumerate().skip(1) {
        assert!(
            periodic.contains(s),
            "payload {i} ({} bytes) never heard; {} periodic reports",
            s.len() / 2,
            periodic.len()
        );
    }
    // The extended set under the train carries no AdvData of its own.
    assert!(all
        .iter()
        .filter(|l| l[0] == "adv" && l[1] == ADDR_TEXT)
        .all(|l| l.get(4).is_none_or(|d| d.is_empty())));
}
