//! The extended-advertising path against a fake controller that behaves as the Core spec says
//! (Bumble does not): it ends each set after Max_Extended_Advertising_Events and reports LE
//! Advertising Set Terminated; and the report filter (scan responses are not advertisements).
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ota_hci::hci::Heard;
use ota_hci::radio::{AdvParams, AdvType, Advertiser};
use ota_hci::TransportSpec;

/// Commands the fake saw: opcode and parameters.
type Seen = Arc<Mutex<Vec<(u16, Vec<u8>)>>>;

/// Serve one connection as an LE controller with extended advertising: every command completes
/// with success; `reports` follow the scan enable; with `terminate`, each set enable is followed
/// by LE Advertising Set Terminated.
fn fake(terminate: bool, reports: Vec<Vec<u8>>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut reports = Some(reports);
        loop {
            let mut head = [0u8; 4];
            if s.read_exact(&mut head).is_err() {
                return;
            }
            let opcode = u16::from_le_bytes([head[1], head[2]]);
            let mut params = vec![0u8; head[3] as usize];
            if s.read_exact(&mut params).is_err() {
                return;
            }
            log.lock().unwrap().push((opcode, params.clone()));
            let ret = match opcode {
                0x1003 => {
                    let mut r = vec![0u8; 9];
                    r[5] = 1 << 6; // LE Supported (Controller)
                    r
                }
                0x1002 => vec![0u8; 65],
                0x2003 => {
                    let mut r = vec![0u8; 9];
                    r[2] = 1 << 4; // LE Extended Advertising
                    r
                }
                0x2036 => vec![0, 0], // selected TX power
                _ => vec![0],
            };
            let mut out = vec![0x04, 0x0E, (3 + ret.len()) as u8, 1];
            out.extend(opcode.to_le_bytes());
            out.extend(ret);
            // Enabling scanning: the reports follow.
            if opcode == 0x2042 && params[0] == 1 {
                for r in reports.take().unwrap_or_default() {
                    out.extend([0x04, 0x3E, r.len() as u8]);
                    out.extend(r);
                }
            }
            // Enabling the set with a maximum event count: it ends and says so.
            if terminate && opcode == 0x2039 && params[0] == 1 {
                out.extend([0x04, 0x3E, 6, 0x12, 0x00, params[2], 0x00, 0x00, params[5]]);
            }
            if s.write_all(&out).is_err() {
                return;
            }
        }
    });
    (port, seen)
}

fn ext_report(event_type: u16, data: &[u8]) -> Vec<u8> {
    let mut r = vec![0x0D, 1];
    r.extend(event_type.to_le_bytes());
    r.extend([
        1, 1, 2, 3, 4, 5, 6, 1, 0, 0xFF, 0x7F, 0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    r.push(data.len() as u8);
    r.extend(data);
    r
}

fn connect(port: u16) -> ota_hci::Controller {
    let spec: TransportSpec = format!("tcp:127.0.0.1:{port}").parse().unwrap();
    ota_hci::connect(&spec).expect("the fake controller starts")
}

const PARAMS: AdvParams = AdvParams {
    adv_type: AdvType::NonConn,
    interval: Duration::from_millis(20),
};

#[test]
fn a_set_that_reports_its_end_is_not_stopped_by_hand() {
    let (port, seen) = fake(true, vec![]);
    let mut hci = connect(port);
    assert!(hci.capabilities().extended_advertising);
    let mut adv = Advertiser::new(&mut hci, PARAMS, true).unwrap();
    assert!(adv.extended());
    let t0 = Instant::now();
    for i in 0..10u8 {
        adv.transmit(&mut hci, &[2, 0xFF, i], 1, &mut |_| {})
            .unwrap();
    }
    // Ten chunks spaced 20–30 ms, none waiting out the 80 ms report limit (a loose bound: the
    // command log below is the exact check).
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(1), "{took:?}");
    let seen = seen.lock().unwrap();
    let enables: Vec<&Vec<u8>> = seen
        .iter()
        .filter(|(op, _)| *op == 0x2039)
        .map(|(_, p)| p)
        .collect();
    // One disable while setting up, then ten enables of one event each and no disable.
    assert_eq!(enables[0][0], 0, "{enables:?}");
    assert_eq!(enables.len(), 11, "{enables:?}");
    for p in &enables[1..] {
        assert_eq!(
            p.as_slice(),
            [1, 1, 0, 0, 0, 1],
            "enable set 0 for one event"
        );
    }
    // The data went out as legacy PDUs (properties bit 4) with each chunk's bytes.
    let params = seen.iter().find(|(op, _)| *op == 0x2036).unwrap();
    assert_eq!(params.1[1] & 0x10, 0x10);
    let data: Vec<&Vec<u8>> = seen
        .iter()
        .filter(|(op, _)| *op == 0x2037)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(data.len(), 10);
    assert_eq!(data[3].as_slice(), [0, 3, 1, 3, 2, 0xFF, 3]);
}

#[test]
fn a_set_that_never_reports_its_end_is_paced_by_time() {
    let (port, seen) = fake(false, vec![]);
    let mut hci = connect(port);
    let mut adv = Advertiser::new(&mut hci, PARAMS, true).unwrap();
    for i in 0..5u8 {
        adv.transmit(&mut hci, &[2, 0xFF, i], 1, &mut |_| {})
            .unwrap();
    }
    let seen = seen.lock().unwrap();
    let disables = seen
        .iter()
        .filter(|(op, p)| *op == 0x2039 && p[0] == 0)
        .count();
    // Setup, the first chunk's missing report, then before each later chunk.
    assert_eq!(disables, 1 + 1 + 3, "{seen:?}");
}

#[test]
fn scan_responses_and_directed_reports_are_not_advertisements() {
    let reports = vec![
        ext_report(0x0010, b"\x03\xFF\xFF\xFFA"), // legacy ADV_NONCONN_IND
        ext_report(0x0018, b"\x03\xFF\xFF\xFFB"), // scan response
        ext_report(0x0014, b"\x03\xFF\xFF\xFFC"), // directed
        ext_report(0x0000, b"\x03\xFF\xFF\xFFD"), // extended, non-connectable
    ];
    let (port, _) = fake(true, reports);
    let mut hci = connect(port);
    ota_hci::radio::start_scan(&mut hci).unwrap();
    let mut heard = Vec::new();
    hci.pump(Instant::now() + Duration::from_millis(200), &mut |h| {
        if let Heard::Adv { data: d, .. } = h {
            heard.push(d[4]);
        }
    })
    .unwrap();
    assert_eq!(heard, b"AD");
}
