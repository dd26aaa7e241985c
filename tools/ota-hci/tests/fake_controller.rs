//! The extended-advertising path against a fake controller that behaves as the Core spec says
//! (Bumble does not): it ends each set after Max_Extended_Advertising_Events and reports LE
//! Advertising Set Terminated; the report filter (scan responses are not advertisements) and
//! the reassembly of reports that come in pieces; the bearers' capabilities and the commands
//! the extended and periodic bearers send.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ota_hci::hci::Heard;
use ota_hci::radio::{AdvParams, AdvType, Advertiser, BearerParams};
use ota_hci::TransportSpec;
use ota_hci::{Bearer, BearerChoice, Phy};

/// Commands the fake saw: opcode and parameters.
type Seen = Arc<Mutex<Vec<(u16, Vec<u8>)>>>;

/// Serve one connection as an LE controller with extended advertising: every command completes
/// with success; `reports` follow the scan enable; with `terminate`, each set enable is followed
/// by LE Advertising Set Terminated.
fn fake(terminate: bool, reports: Vec<Vec<u8>>) -> (u16, Seen) {
    // LE Extended Advertising (bit 12) only.
    fake_with([0, 1 << 4, 0, 0, 0, 0, 0, 0], terminate, reports)
}

/// As [`fake`], with the LE features answered to LE Read Local Supported Features.
fn fake_with(le_features: [u8; 8], terminate: bool, reports: Vec<Vec<u8>>) -> (u16, Seen) {
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
                    let mut r = vec![0u8];
                    r.extend(le_features);
                    r
                }
                0x2036 => vec![0, 0],          // selected TX power
                0x203A => vec![0, 0x72, 0x06], // LE Read Maximum Advertising Data Length: 1650
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

/// LE Extended Advertising (12), LE Periodic Advertising (13), LE 2M PHY (8).
const EVERYTHING: [u8; 8] = [0, 0b0011_0001, 0, 0, 0, 0, 0, 0];

/// The parameters of every command with `opcode`, in order.
fn commands(seen: &Seen, opcode: u16) -> Vec<Vec<u8>> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(op, _)| *op == opcode)
        .map(|(_, p)| p.clone())
        .collect()
}

#[test]
fn capabilities_come_from_the_le_feature_bits_and_the_maximum_data_length() {
    let (port, _) = fake_with(EVERYTHING, true, vec![]);
    let hci = connect(port);
    let caps = hci.capabilities();
    assert!(caps.extended_advertising && caps.periodic_advertising && caps.le_2m_phy);
    assert_eq!(caps.max_adv_data_len, 1650);
    assert_eq!(
        ota_hci::bearer::choose_for(&hci, BearerChoice::Auto, None).unwrap(),
        Bearer::Periodic(Phy::Le2M)
    );

    // Extended advertising without periodic or 2M: auto is extended on 1M, periodic refused
    // naming the feature.
    let (port, _) = fake_with([0, 1 << 4, 0, 0, 0, 0, 0, 0], true, vec![]);
    let hci = connect(port);
    assert!(!hci.capabilities().periodic_advertising);
    assert!(!hci.capabilities().le_2m_phy);
    assert_eq!(
        ota_hci::bearer::choose_for(&hci, BearerChoice::Auto, None).unwrap(),
        Bearer::Extended(Phy::Le1M)
    );
    let e = ota_hci::bearer::choose_for(&hci, BearerChoice::Periodic, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("periodic bearer") && e.contains("LE Periodic Advertising (LE feature bit 13)"),
        "{e}"
    );
    assert!(e.contains(&format!("tcp:127.0.0.1:{port}")), "{e}");

    // Neither: legacy only, 31 bytes.
    let (port, _) = fake_with([0; 8], true, vec![]);
    let hci = connect(port);
    assert_eq!(hci.capabilities().max_adv_data_len, 31);
    let e = ota_hci::bearer::choose_for(&hci, BearerChoice::Extended, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("LE Extended Advertising (LE feature bit 12)"),
        "{e}"
    );
}

#[test]
fn the_extended_bearer_writes_long_advdata_in_fragments_to_a_set_of_extended_pdus() {
    let (port, seen) = fake_with(EVERYTHING, true, vec![]);
    let mut hci = connect(port);
    let bearer = BearerParams::new(Bearer::Extended(Phy::Le2M));
    let mut adv =
        Advertiser::for_bearer(&mut hci, PARAMS, true, [1, 2, 3, 4, 5, 0xC6], bearer).unwrap();
    assert_eq!(adv.max_adv_data(), 1650);
    let long: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
    adv.transmit(&mut hci, &long, 1, &mut |_| {}).unwrap();
    adv.transmit(&mut hci, &long[..100], 1, &mut |_| {})
        .unwrap();
    // 1651 bytes do not fit one event: refused by name, nothing sent.
    let e = adv
        .transmit(&mut hci, &[0u8; 1651], 1, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1651") && e.contains("extended bearer") && e.contains("1650"),
        "{e}"
    );

    // Parameters: extended PDUs (no legacy bit), non-connectable, non-scannable; primary PHY
    // 1M, secondary 2M, SID 0.
    let params = &commands(&seen, 0x2036)[0];
    assert_eq!(u16::from_le_bytes([params[1], params[2]]), 0, "{params:?}");
    assert_eq!(params[20], 1, "primary PHY 1M");
    assert_eq!(params[22], 2, "secondary PHY 2M");
    assert_eq!(params[23], 0, "SID");
    // The random address is the one given.
    assert_eq!(&commands(&seen, 0x2035)[0][1..], [1, 2, 3, 4, 5, 0xC6]);
    // Data: 251 + 251 + 98 as first, intermediate, last; then 100 as one complete.
    let data = commands(&seen, 0x2037);
    let ops: Vec<(u8, usize)> = data.iter().map(|p| (p[1], p[3] as usize)).collect();
    assert_eq!(ops, [(1, 251), (0, 251), (2, 98), (3, 100)]);
    let joined: Vec<u8> = data[..3].iter().flat_map(|p| p[4..].to_vec()).collect();
    assert_eq!(joined, long);
    // Each chunk is one enable of one event, and the set ended by itself (no disable after
    // the setup's two: before removing the set and before configuring it).
    let enables = commands(&seen, 0x2039);
    assert_eq!(enables.len(), 4, "{enables:?}");
    assert_eq!(enables[2..], [[1, 1, 0, 0, 0, 1], [1, 1, 0, 0, 0, 1]]);
    // The set was removed (it may have sent legacy PDUs) before its new parameters.
    let log = seen.lock().unwrap();
    let remove = log.iter().position(|(op, _)| *op == 0x203C);
    let params = log.iter().position(|(op, _)| *op == 0x2036);
    assert!(remove.is_some() && remove < params, "{remove:?} {params:?}");
}

#[test]
fn the_periodic_bearer_starts_a_train_once_and_then_only_replaces_its_data() {
    let (port, seen) = fake_with(EVERYTHING, true, vec![]);
    let mut hci = connect(port);
    let mut bearer = BearerParams::new(Bearer::Periodic(Phy::Le1M));
    bearer.periodic_interval = Duration::from_millis(10);
    let mut adv =
        Advertiser::for_bearer(&mut hci, PARAMS, true, [1, 2, 3, 4, 5, 0xC6], bearer).unwrap();
    assert_eq!(adv.max_adv_data(), 252);
    assert_eq!(adv.interval(), Duration::from_millis(10));
    let t0 = Instant::now();
    for i in 0..4u8 {
        adv.transmit(&mut hci, &[i; 200], 1, &mut |_| {}).unwrap();
    }
    let took = t0.elapsed();
    let e = adv
        .transmit(&mut hci, &[0u8; 253], 1, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("periodic bearer") && e.contains("252"), "{e}");
    adv.stop(&mut hci).unwrap();
    // Three replacements each held one interval plus 2 ms: at least 36 ms.
    assert!(took >= Duration::from_millis(36), "{took:?}");

    // Periodic parameters: 10 ms = 8 units of 1.25 ms, no properties.
    assert_eq!(commands(&seen, 0x203E), [vec![0, 8, 0, 8, 0, 0, 0]]);
    // Four whole (complete) replacements, in order.
    let data = commands(&seen, 0x203F);
    assert_eq!(data.len(), 4);
    for (i, p) in data.iter().enumerate() {
        assert_eq!(&p[..3], [0, 3, 200], "{i}");
        assert!(p[3..].iter().all(|b| *b == i as u8));
    }
    // The train: cleared at setup, enabled once, disabled at stop; the set enabled once with
    // no event limit (it must keep sending the SyncInfo), disabled at setup and stop.
    let periodic_enables: Vec<u8> = commands(&seen, 0x2040).iter().map(|p| p[0]).collect();
    assert_eq!(periodic_enables, [0, 1, 0]);
    let set_enables = commands(&seen, 0x2039);
    let on: Vec<&Vec<u8>> = set_enables.iter().filter(|p| p[0] == 1).collect();
    assert_eq!(on, [&vec![1, 1, 0, 0, 0, 0]]);
    // The order: train data before the train's enable before the set's enable.
    let log = seen.lock().unwrap();
    let at = |op: u16, first: u8| log.iter().position(|(o, p)| *o == op && p[0] == first);
    assert!(at(0x203F, 0) < at(0x2040, 1) && at(0x2040, 1) < at(0x2039, 1));
}

fn piece(event_type: u16, sid: u8, data: &[u8]) -> Vec<u8> {
    let mut r = ext_report(event_type, data);
    r[13] = sid; // after subevent, count, type (2), address type, address (6), PHYs (2)
    r
}

#[test]
fn reports_in_pieces_are_reassembled_and_truncated_ones_dropped() {
    let long: Vec<u8> = (0..400u32).map(|i| i as u8).collect();
    let reports = vec![
        // 400 bytes in two pieces ("incomplete, more to come" = bits 5-6 01), interleaved with
        // another set's whole report.
        piece(0x0020, 1, &long[..200]),
        piece(0x0000, 2, b"\x03\xFF\xFF\xFFW"),
        piece(0x0000, 1, &long[200..]),
        // A chain the controller lost: a piece, then "truncated" (10): nothing delivered.
        piece(0x0020, 3, &long[..100]),
        piece(0x0040, 3, &long[100..120]),
        // Periodic reports on sync 0x0101: two pieces, then a whole one.
        {
            let mut r = vec![0x0F, 0x01, 0x01, 0, 0xC0, 0xFF, 1, 150];
            r.extend(&long[..150]);
            r
        },
        {
            let mut r = vec![0x0F, 0x01, 0x01, 0, 0xC0, 0xFF, 0, 100];
            r.extend(&long[150..250]);
            r
        },
        vec![0x0F, 0x01, 0x01, 0, 0xC0, 0xFF, 0, 2, 0xAB, 0xCD],
    ];
    let (port, _) = fake_with(EVERYTHING, true, reports);
    let mut hci = connect(port);
    ota_hci::radio::start_scan(&mut hci).unwrap();
    let mut heard: Vec<Vec<u8>> = Vec::new();
    let mut periodic: Vec<Vec<u8>> = Vec::new();
    hci.pump(
        Instant::now() + Duration::from_millis(200),
        &mut |h| match h {
            Heard::Adv { data, .. } => heard.push(data.to_vec()),
            Heard::Periodic { sync_handle, data } => {
                assert_eq!(sync_handle, 0x0101);
                periodic.push(data.to_vec())
            }
            _ => {}
        },
    )
    .unwrap();
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert_eq!(heard[0], b"\x03\xFF\xFF\xFFW");
    assert_eq!(heard[1], long);
    assert_eq!(periodic, [long[..250].to_vec(), vec![0xAB, 0xCD]]);
}
