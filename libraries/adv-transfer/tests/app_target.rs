//! App sessions: the `APP` capability and the target PDU (0xF4) that names the app.
use adv_transfer::wire::*;
use adv_transfer::*;

const CO: u16 = DEFAULT_COMPANY_ID;

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 13 + i / 241) as u8) ^ seed)
        .collect()
}

/// A staging store: erase before write, writes only into erased bytes.
struct Store {
    bytes: Vec<u8>,
    began: bool,
    finalized: bool,
}

impl Store {
    fn new() -> Self {
        Store {
            bytes: vec![0x5A; 64 * 1024],
            began: false,
            finalized: false,
        }
    }

    fn drive(&mut self, rx: &mut Receiver<'_>) {
        for _ in 0..10_000 {
            let Some(op) = rx.poll_op() else { return };
            let read = match op {
                StageOp::Begin { .. } => {
                    self.began = true;
                    vec![]
                }
                StageOp::Erase { offset } => {
                    self.bytes[offset as usize..offset as usize + BLOCK_LEN].fill(0xFF);
                    vec![]
                }
                StageOp::Write { offset, data } => {
                    let at = offset as usize;
                    assert!(self.bytes[at..at + data.len()].iter().all(|b| *b == 0xFF));
                    self.bytes[at..at + data.len()].copy_from_slice(data);
                    vec![]
                }
                StageOp::Read { offset, len } => {
                    self.bytes[offset as usize..(offset + len) as usize].to_vec()
                }
                StageOp::Finalize => {
                    self.finalized = true;
                    vec![]
                }
            };
            rx.op_done(Ok(&read));
        }
        panic!("the receiver asked for more than 10,000 operations in a row");
    }
}

/// Lossless events, a status every fourth; stops when the sender hears the transfer end.
fn exchange(tx: &mut Sender<'_>, rx: &mut Receiver<'_>, store: &mut Store, events: u32) {
    for e in 1..=events {
        let mut out = [0u8; ADV_DATA_MAX];
        let n = tx.next_adv(&mut out);
        rx.on_adv(tx.address(), &out[..n]);
        store.drive(rx);
        if e % 4 == 0 {
            let mut s = [0u8; ADV_DATA_MAX];
            let n = rx.status_adv(&mut s);
            if n > 0 {
                tx.on_adv(&s[..n]);
            }
        }
        if tx.is_complete() || tx.receiver_state().is_some_and(|s| s != RxState::Receiving) {
            return;
        }
    }
}

fn adv(pdu: &[u8]) -> Vec<u8> {
    let mut out = [0u8; ADV_DATA_MAX];
    let n = frame(CO, pdu, &mut out);
    out[..n].to_vec()
}

#[test]
fn the_target_pdu_round_trips_every_name_length() {
    for len in 1..=TARGET_NAME_MAX {
        let name: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        let mut pdu = [0u8; PDU_MAX];
        let n = target(0xA1B2_C3D4, &name, &mut pdu);
        assert_eq!(n, TARGET_HEAD + len);
        assert_eq!(pdu[0], KIND_TARGET);
        assert_eq!(parse_target(&pdu[..n]), Some((0xA1B2_C3D4, &name[..])));
        // One byte short or long of what the length byte says: not a target.
        assert_eq!(parse_target(&pdu[..n - 1]), None);
        if n < PDU_MAX {
            assert_eq!(parse_target(&pdu[..n + 1]), None);
        }
    }
    // A zero length, or one past the PDU's room, is refused even when the bytes are there.
    assert_eq!(parse_target(&[KIND_TARGET, 1, 0, 0, 0, 0]), None);
    let mut long = vec![KIND_TARGET, 1, 0, 0, 0, TARGET_NAME_MAX as u8 + 1];
    long.resize(TARGET_HEAD + TARGET_NAME_MAX + 1, b'x');
    assert_eq!(parse_target(&long), None);
    assert_eq!(capability::APP, 1 << 2);
    assert_eq!(
        capability::APP & (capability::COMPRESSED | capability::DELTA),
        0
    );
}

#[test]
fn an_app_session_is_staged_and_the_receiver_names_its_target() {
    let tbf = image(9_000, 7);
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    rx.accept_apps(true);
    let mut store = Store::new();
    let mut tx = Sender::new_app(CO, &tbf, 21, b"blink").unwrap();
    assert_eq!(tx.info().capabilities, capability::APP);

    // The announce, then the target: joined only once the target is heard.
    let mut out = [0u8; ADV_DATA_MAX];
    let n = tx.next_adv(&mut out);
    assert_eq!(unframe(CO, &out[..n]).unwrap()[0], KIND_ANNOUNCE);
    assert_eq!(rx.on_adv(tx.address(), &out[..n]), RxOutcome::Announce);
    assert_eq!(rx.session(), None, "not joined before the target");
    assert_eq!(rx.poll_op(), None);
    let n = tx.next_adv(&mut out);
    assert_eq!(
        parse_target(unframe(CO, &out[..n]).unwrap()),
        Some((21, &b"blink"[..]))
    );
    assert_eq!(rx.on_adv(tx.address(), &out[..n]), RxOutcome::Announce);
    assert_eq!(rx.target(), Some(&b"blink"[..]));
    assert_eq!(rx.session().unwrap().tag()[12], capability::APP);

    exchange(&mut tx, &mut rx, &mut store, 5_000);
    assert!(tx.is_complete(), "state {:?}", tx.receiver_state());
    assert!(store.finalized);
    assert_eq!(&store.bytes[..tbf.len()], &tbf[..]);
    assert_eq!(rx.target(), Some(&b"blink"[..]));
    // Two announces (and two targets) at least: the first and the one every 128 PDUs.
    assert!(tx.counters().announces >= 2);

    // A kernel image in a later session: no target.
    let kernel = image(5_000, 1);
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    rx.accept_apps(true);
    let mut store = Store::new();
    let mut tx = Sender::new(CO, &kernel, 22, 0).unwrap();
    exchange(&mut tx, &mut rx, &mut store, 5_000);
    assert!(tx.is_complete());
    assert_eq!(rx.target(), None);
}

#[test]
fn a_receiver_without_app_support_answers_unsupported_and_stages_nothing() {
    let tbf = image(3_000, 2);
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    let mut store = Store::new();
    let mut tx = Sender::new_app(CO, &tbf, 31, b"blink").unwrap();
    exchange(&mut tx, &mut rx, &mut store, 200);
    assert_eq!(tx.receiver_state(), Some(RxState::Unsupported));
    assert_eq!(rx.state(), RxState::Unsupported);
    assert!(!store.began, "nothing staged");
    assert_eq!(rx.target(), None);

    // An app session that is also compressed or delta is not defined: refused even by a
    // receiver that installs apps.
    for extra in [capability::COMPRESSED, capability::DELTA] {
        let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
        let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
        rx.accept_apps(true);
        rx.set_running_image(Some([0; BASE_ID_LEN]));
        let info = SessionInfo {
            session: 32,
            image_len: 3_000,
            image_crc: 0,
            capabilities: capability::APP | extra,
        };
        let mut pdu = [0u8; PDU_MAX];
        let n = announce(&info, &mut pdu);
        rx.on_adv(session_address(32), &adv(&pdu[..n]));
        assert_eq!(rx.state(), RxState::Unsupported);
        assert!(rx.poll_op().is_none());
    }
}

#[test]
fn the_sender_refuses_a_name_that_does_not_fit_with_a_reason() {
    let tbf = image(1_000, 3);
    let long = [b'n'; TARGET_NAME_MAX + 1];
    let err = Sender::new_app(CO, &tbf, 1, &long).err().unwrap();
    assert_eq!(err, SenderError::BadTargetName(TARGET_NAME_MAX + 1));
    let text = err.to_string();
    assert!(
        text.contains("22 bytes") && text.contains("1..=21"),
        "{text}"
    );
    assert_eq!(
        Sender::new_app(CO, &tbf, 1, b"").err(),
        Some(SenderError::BadTargetName(0))
    );
    // The longest name that fits is taken.
    assert!(Sender::new_app(CO, &tbf, 1, &long[..TARGET_NAME_MAX]).is_ok());
    // The bit alone is not enough: an app session says which app.
    assert_eq!(
        Sender::new(CO, &tbf, 1, capability::APP).err(),
        Some(SenderError::AppWithoutTarget)
    );
    assert_eq!(
        Sender::new(CO, &tbf, 1, capability::APP | capability::DELTA).err(),
        Some(SenderError::UnsupportedCapabilities(
            capability::APP | capability::DELTA
        ))
    );
}

#[test]
fn a_target_from_another_advertiser_or_session_does_not_join() {
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    rx.accept_apps(true);
    let info = SessionInfo {
        session: 41,
        image_len: 2_000,
        image_crc: 0,
        capabilities: capability::APP,
    };
    let mut pdu = [0u8; PDU_MAX];
    let n = announce(&info, &mut pdu);
    assert_eq!(
        rx.on_adv(session_address(41), &adv(&pdu[..n])),
        RxOutcome::Announce
    );
    let n = target(41, b"blink", &mut pdu);
    assert_eq!(
        rx.on_adv(session_address(99), &adv(&pdu[..n])),
        RxOutcome::Foreign
    );
    let m = target(42, b"blink", &mut pdu);
    assert_eq!(
        rx.on_adv(session_address(42), &adv(&pdu[..m])),
        RxOutcome::OtherSession
    );
    // A length byte that disagrees with the PDU: malformed.
    let mut bad = pdu;
    bad[5] = 4;
    assert_eq!(
        rx.on_adv(session_address(41), &adv(&bad[..n])),
        RxOutcome::Malformed
    );
    assert_eq!(rx.session(), None);
    let n = target(41, b"blink", &mut pdu);
    assert_eq!(
        rx.on_adv(session_address(41), &adv(&pdu[..n])),
        RxOutcome::Announce
    );
    assert_eq!(rx.target(), Some(&b"blink"[..]));
    // The joined session's target repeated: fine; another name for it: malformed.
    assert_eq!(
        rx.on_adv(session_address(41), &adv(&pdu[..n])),
        RxOutcome::Announce
    );
    let n = target(41, b"other", &mut pdu);
    assert_eq!(
        rx.on_adv(session_address(41), &adv(&pdu[..n])),
        RxOutcome::Malformed
    );
    assert_eq!(rx.target(), Some(&b"blink"[..]));
}
