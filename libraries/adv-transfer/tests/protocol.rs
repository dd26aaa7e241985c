//! Sender and receiver over a lossy, duplicating, reordering in-memory link and a strict
//! in-memory staging store (erase before write, writes only into erased bytes).
use adv_transfer::wire::*;
use adv_transfer::*;

const CO: u16 = DEFAULT_COMPANY_ID;

/// A staging store with the update-region's rules.
struct Store {
    bytes: Vec<u8>,
    erased: Vec<bool>,
    began: Option<([u8; 16], u32)>,
    finalized: bool,
}

impl Store {
    fn new() -> Self {
        Store {
            bytes: vec![0x5A; MAX_IMAGE_LEN as usize],
            erased: vec![false; 256],
            began: None,
            finalized: false,
        }
    }
    fn apply(&mut self, op: StageOp<'_>, image_len: u32) -> Result<Vec<u8>, StageError> {
        match op {
            StageOp::Begin { tag, image_len } => {
                self.began = Some((tag, image_len));
                self.erased.iter_mut().for_each(|e| *e = false);
                Ok(vec![])
            }
            StageOp::Erase { offset } => {
                assert_eq!(offset % 4096, 0);
                assert!(offset < image_len);
                self.bytes[offset as usize..offset as usize + 4096].fill(0xFF);
                self.erased[(offset / 4096) as usize] = true;
                Ok(vec![])
            }
            StageOp::Write { offset, data } => {
                let (a, b) = (offset as usize, offset as usize + data.len());
                assert!(b as u32 <= image_len, "write beyond the image");
                if !self.erased[a / 4096] || !self.erased[(b - 1) / 4096] {
                    return Err(StageError::NotErased);
                }
                if self.bytes[a..b].iter().any(|&x| x != 0xFF) {
                    return Err(StageError::NotBlank);
                }
                self.bytes[a..b].copy_from_slice(data);
                Ok(vec![])
            }
            StageOp::Read { offset, len } => {
                Ok(self.bytes[offset as usize..(offset + len) as usize].to_vec())
            }
            StageOp::Finalize => {
                self.finalized = true;
                Ok(vec![])
            }
        }
    }
}

fn drive(rx: &mut Receiver<'_>, store: &mut Store) {
    let image_len = rx.session().map(|s| s.image_len).unwrap_or(0);
    while let Some(op) = rx.poll_op() {
        let r = store.apply(op, image_len);
        match r {
            Ok(v) => rx.op_done(Ok(&v)),
            Err(e) => rx.op_done(Err(e)),
        }
    }
}

/// xorshift: deterministic without dependencies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1e6 < p
    }
}

fn image(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + i / 251) as u8) ^ seed).collect()
}

struct Run {
    pdus: u64,
    store: Store,
    counters: RxCounters,
}

/// Run a transfer; the receiver reports status every `status_every` sender events.
fn transfer(img: &[u8], loss: f64, dup: f64, reorder: f64, seed: u64, status_every: u64) -> Run {
    let mut store = Store::new();
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, None, false);
    let mut tx = Sender::new(CO, img, 0xC0FFEE, 0).unwrap();
    let mut rng = Rng(seed | 1);
    let mut held: Option<Vec<u8>> = None;
    let mut events = 0u64;
    while !tx.is_complete() {
        events += 1;
        assert!(events < 200_000, "transfer did not converge");
        let mut out = [0u8; 31];
        let n = tx.next_adv(&mut out);
        let pdu = out[..n].to_vec();
        if !rng.chance(loss) {
            if rng.chance(reorder) && held.is_none() {
                held = Some(pdu);
            } else {
                rx.on_adv(tx.address(), &pdu);
                if rng.chance(dup) {
                    rx.on_adv(tx.address(), &pdu);
                }
                if let Some(h) = held.take() {
                    rx.on_adv(tx.address(), &h);
                }
            }
        }
        drive(&mut rx, &mut store);
        if events.is_multiple_of(status_every) {
            let mut s = [0u8; 31];
            let n = rx.status_adv(&mut s);
            if n > 0 && !rng.chance(loss) {
                tx.on_adv(&s[..n]);
            }
        }
    }
    assert!(rx.is_complete() && store.finalized);
    Run {
        pdus: events,
        counters: rx.counters(),
        store,
    }
}

#[test]
fn lossless_transfer_is_within_two_percent_of_one_pdu_per_chunk() {
    let img = image(176 * 1024, 1);
    let run = transfer(&img, 0.0, 0.0, 0.0, 1, 20);
    assert_eq!(&run.store.bytes[..img.len()], &img[..]);
    let chunks = total_chunks(img.len() as u32) as u64;
    assert!(
        run.pdus >= chunks && run.pdus <= chunks * 102 / 100,
        "{} PDUs for {chunks} chunks",
        run.pdus
    );
    let per_pdu = img.len() as f64 / run.pdus as f64;
    assert!(
        per_pdu >= 0.9 * PDU_MAX as f64,
        "{per_pdu} image bytes per PDU"
    );
    assert_eq!(run.counters.crc_failures, 0);
}

#[test]
fn loss_duplication_and_reordering_still_stage_the_exact_image() {
    for (loss, seed) in [(0.1, 2), (0.3, 3), (0.5, 4)] {
        let img = image(40_000 + seed as usize * 333, seed as u8);
        let run = transfer(&img, loss, 0.2, 0.2, seed, 20);
        assert_eq!(&run.store.bytes[..img.len()], &img[..], "loss {loss}");
        assert!(run.counters.duplicates > 0);
        assert_eq!(run.counters.crc_failures, 0);
    }
}

#[test]
fn a_receiver_rebooted_mid_transfer_resumes_without_starting_over() {
    let img = image(60_000, 9);
    let mut store = Store::new();
    let mut tx = Sender::new(CO, &img, 77, 0).unwrap();
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let received_before;
    {
        let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, None, false);
        for _ in 0..1500 {
            let mut out = [0u8; 31];
            let n = tx.next_adv(&mut out);
            rx.on_adv(tx.address(), &out[..n]);
            drive(&mut rx, &mut store);
        }
        received_before = rx.progress().received_chunks;
        assert!(received_before > 1000);
    }
    // Reboot: RAM lost; the store still has the session tag.
    let (tag, _) = store.began.unwrap();
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, Some(tag), false);
    let begins_before = store.began;
    let mut events = 0u32;
    while !tx.is_complete() {
        events += 1;
        let mut out = [0u8; 31];
        let n = tx.next_adv(&mut out);
        rx.on_adv(tx.address(), &out[..n]);
        drive(&mut rx, &mut store);
        if events == 200 {
            // The announce came by: the receiver read back what it had.
            assert!(rx.progress().received_chunks >= received_before - 1);
        }
        if events.is_multiple_of(20) {
            let mut s = [0u8; 31];
            let n = rx.status_adv(&mut s);
            tx.on_adv(&s[..n]);
        }
        assert!(events < 10_000);
    }
    assert_eq!(store.began, begins_before, "the session was begun again");
    assert_eq!(&store.bytes[..img.len()], &img[..]);
    // Far fewer than a whole second pass was needed.
    let total = total_chunks(img.len() as u32) as u64;
    assert!(
        tx.counters().data_pdus < total + 200,
        "{} data PDUs",
        tx.counters().data_pdus
    );
}

#[test]
fn hostile_and_malformed_advertisements_are_ignored_and_never_corrupt_staging() {
    let img = image(30_000, 5);
    let mut store = Store::new();
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, None, false);
    let mut tx = Sender::new(CO, &img, 1234, 0).unwrap();
    let other_img = image(30_000, 6);
    let mut other = Sender::new(CO, &other_img, 999, 0).unwrap();
    let mut rng = Rng(42);
    let mut seen = std::collections::HashSet::new();
    let mut events = 0u32;
    while !tx.is_complete() {
        events += 1;
        assert!(events < 50_000);
        let mut out = [0u8; 31];
        let n = tx.next_adv(&mut out);
        let good = out[..n].to_vec();
        // A data PDU with flipped payload bits just before the genuine one (in the same batch):
        // the two copies disagree, neither is staged, the chunk is sent again.
        let mut bad = good.clone();
        if good[4] < 0xF0 && rng.chance(0.01) {
            let index = u16::from_be_bytes([good[4], good[5]]) as u32;
            if seen.insert(index) {
                bad[6] ^= 0x40;
                rx.on_adv(tx.address(), &bad);
            }
        }
        rx.on_adv(tx.address(), &good);
        drive(&mut rx, &mut store);
        // Hostile traffic around every genuine PDU.
        let mut o = [0u8; 31];
        let m = other.next_adv(&mut o);
        let foreign = &o[..m];
        if foreign[4] >= 0xF0 {
            // Another session's control PDUs are recognised and ignored.
            let outcome = rx.on_adv(other.address(), foreign);
            if foreign[4] == KIND_MANIFEST {
                assert_eq!(outcome, RxOutcome::OtherSession);
            }
        }
        let variants: Vec<(Vec<u8>, RxOutcome)> = vec![
            (
                {
                    let mut v = good.clone();
                    v.truncate(n - 1);
                    v[0] -= 1;
                    v
                },
                RxOutcome::Malformed,
            ),
            (
                {
                    let mut v = good.clone();
                    v[0] += 1;
                    v
                },
                RxOutcome::Malformed,
            ),
            (
                {
                    let mut v = good.clone();
                    v.resize(32, 0);
                    v
                },
                RxOutcome::Oversized,
            ),
            (
                {
                    let mut v = good.clone();
                    v[2] ^= 1;
                    v
                },
                RxOutcome::NotOurs,
            ),
            (vec![0x02, 0x01, 0x06], RxOutcome::NotOurs),
            (
                vec![0x05, 0xFF, 0xFF, 0xFF, 0xEF, 0xFF],
                RxOutcome::OutOfRange,
            ),
            (vec![0x04, 0xFF, 0xFF, 0xFF, 0xF7], RxOutcome::Malformed),
        ];
        for (v, expected) in variants {
            let got = rx.on_adv(tx.address(), &v);
            if good[4] < 0xF0 {
                assert_eq!(got, expected, "{v:02x?}");
            }
        }
        drive(&mut rx, &mut store);
        if events.is_multiple_of(20) {
            let mut s = [0u8; 31];
            let n = rx.status_adv(&mut s);
            tx.on_adv(&s[..n]);
        }
    }
    assert!(!seen.is_empty());
    let c = rx.counters();
    assert_eq!(c.crc_failures, 0, "a corrupted copy was staged: {c:?}");
    assert_eq!(c.mismatches as usize, seen.len(), "{c:?}");
    assert_eq!(&store.bytes[..img.len()], &img[..]);
}

#[test]
fn a_corrupted_chunk_fails_its_block_crc_and_the_block_is_received_again() {
    let img = image(10_000, 3);
    let mut store = Store::new();
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, None, false);
    let mut tx = Sender::new(CO, &img, 5, 0).unwrap();
    let mut corrupted = false;
    let mut events = 0u32;
    while !tx.is_complete() {
        events += 1;
        assert!(events < 5000);
        let mut out = [0u8; 31];
        let n = tx.next_adv(&mut out);
        if !corrupted && out[4] == 0 && out[5] == 10 {
            out[9] ^= 0xFF;
            corrupted = true;
        }
        rx.on_adv(tx.address(), &out[..n]);
        drive(&mut rx, &mut store);
        if events.is_multiple_of(20) {
            let mut s = [0u8; 31];
            let n = rx.status_adv(&mut s);
            tx.on_adv(&s[..n]);
        }
    }
    assert!(corrupted);
    assert_eq!(rx.counters().crc_failures, 1);
    assert_eq!(&store.bytes[..img.len()], &img[..]);
}

#[test]
fn unsupported_capabilities_and_oversized_images_are_refused_in_the_status() {
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    let info = SessionInfo {
        session: 1,
        image_len: 1000,
        image_crc: 0,
        capabilities: 1 << 7,
    };
    let mut pdu = [0u8; PDU_MAX];
    let n = announce(&info, &mut pdu);
    let mut adv = [0u8; 31];
    let m = frame(CO, &pdu[..n], &mut adv);
    rx.on_adv(session_address(info.session), &adv[..m]);
    assert_eq!(rx.state(), RxState::Unsupported);
    assert!(rx.poll_op().is_none());
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    let big = image(100_000, 1);
    let mut tx = Sender::new(CO, &big, 2, 0).unwrap();
    let n = tx.next_adv(&mut adv);
    rx.on_adv(tx.address(), &adv[..n]);
    assert_eq!(rx.state(), RxState::TooLarge);
    let n = rx.status_adv(&mut adv);
    assert_eq!(
        tx.on_adv(&adv[..n]),
        TxEvent::Status {
            state: RxState::TooLarge,
            missing: 0
        }
    );
    assert!(matches!(
        Sender::new(CO, &[], 1, 0),
        Err(SenderError::BadImageLength(0))
    ));
    assert!(matches!(
        Sender::new(CO, &big, 1, 1 << 7),
        Err(SenderError::UnsupportedCapabilities(0x80))
    ));
}

#[test]
fn chunk_geometry_tiles_every_block_exactly() {
    for len in [1u32, 25, 4095, 4096, 4097, 176 * 1024 + 13, MAX_IMAGE_LEN] {
        let mut next = 0;
        for c in 0..total_chunks(len) {
            let (off, n) = chunk_range(c, len);
            assert_eq!(off, next);
            assert!((1..=CHUNK_LEN).contains(&n));
            assert_eq!(
                off / 4096,
                (off + n as u32 - 1) / 4096,
                "chunk crosses a block"
            );
            assert_eq!(chunk_of(off), c);
            next = off + n as u32;
        }
        assert_eq!(next, len);
    }
    assert!(total_chunks(MAX_IMAGE_LEN) <= CONTROL_FLOOR as u32);
}

#[test]
fn a_refused_transfer_never_reaches_the_receivers_tables() {
    // Found by fuzzing: an announce beyond the receiver's tables, then its manifests and chunks.
    let mut bitmap = vec![0u8; Receiver::bitmap_len(8 * 1024)];
    let mut rx = Receiver::new(CO, 8 * 1024, &mut bitmap, None, false);
    let huge = image(MAX_IMAGE_LEN as usize, 2);
    let mut tx = Sender::new(CO, &huge, 3, 0).unwrap();
    let mut adv = [0u8; 31];
    for _ in 0..2000 {
        let n = tx.next_adv(&mut adv);
        rx.on_adv(tx.address(), &adv[..n]);
        assert!(rx.poll_op().is_none());
        let _ = rx.progress();
        let m = rx.status_adv(&mut adv);
        assert_eq!(
            tx.on_adv(&adv[..m]),
            TxEvent::Status {
                state: RxState::TooLarge,
                missing: 0
            }
        );
    }
    assert_eq!(rx.state(), RxState::TooLarge);
    assert_eq!(rx.session().map(|s| s.session), Some(3));
    // A transfer that fits is still joined afterwards.
    let small = image(3000, 4);
    let mut tx = Sender::new(CO, &small, 4, 0).unwrap();
    let n = tx.next_adv(&mut adv);
    assert_eq!(rx.on_adv(tx.address(), &adv[..n]), RxOutcome::Announce);
    assert_eq!(rx.state(), RxState::Receiving);
}

#[test]
fn foreign_session_chunks_never_reach_the_staging_ops() {
    // Another transfer of the same length nearby: its chunks have valid indices and lengths, and
    // each one is heard just before our own chunk of the same index.
    let img = image(20_000, 7);
    let other_img = image(20_000, 8);
    let mut store = Store::new();
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, None, false);
    let mut tx = Sender::new(CO, &img, 0xA11CE, 0).unwrap();
    let mut other = Sender::new(CO, &other_img, 0xB0B, 0).unwrap();
    assert_ne!(tx.address(), other.address());
    // Our announce is heard first, so our session is the one joined.
    let mut first = [0u8; 31];
    let n = tx.next_adv(&mut first);
    assert_eq!(rx.on_adv(tx.address(), &first[..n]), RxOutcome::Announce);
    let mut events = 0u32;
    while !tx.is_complete() {
        events += 1;
        assert!(events < 20_000, "transfer did not converge");
        let (mut mine, mut theirs) = ([0u8; 31], [0u8; 31]);
        let n = tx.next_adv(&mut mine);
        let m = other.next_adv(&mut theirs);
        let outcome = rx.on_adv(other.address(), &theirs[..m]);
        if theirs[4] < 0xF0 {
            assert_eq!(outcome, RxOutcome::Foreign);
        }
        rx.on_adv(tx.address(), &mine[..n]);
        // Every write holds the genuine image's bytes at that offset.
        let image_len = img.len() as u32;
        while let Some(op) = rx.poll_op() {
            if let StageOp::Write { offset, data } = op {
                let at = offset as usize;
                assert_eq!(data, &img[at..at + data.len()], "foreign bytes at {offset}");
            }
            match store.apply(op, image_len) {
                Ok(v) => rx.op_done(Ok(&v)),
                Err(e) => rx.op_done(Err(e)),
            }
        }
        if events.is_multiple_of(20) {
            let mut s = [0u8; 31];
            let n = rx.status_adv(&mut s);
            tx.on_adv(&s[..n]);
        }
    }
    let c = rx.counters();
    assert!(c.foreign > 500, "{c:?}");
    assert_eq!(c.crc_failures, 0, "a foreign chunk was staged: {c:?}");
    assert_eq!(&store.bytes[..img.len()], &img[..]);
    // A forged announce whose address does not match its session id is not joined either.
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, None, false);
    let mut tx = Sender::new(CO, &img, 0xA11CE, 0).unwrap();
    let mut adv = [0u8; 31];
    let n = tx.next_adv(&mut adv);
    assert_eq!(rx.on_adv(other.address(), &adv[..n]), RxOutcome::Foreign);
    assert_eq!(rx.state(), RxState::Listening);
    assert_eq!(rx.on_adv(tx.address(), &adv[..n]), RxOutcome::Announce);
}

#[test]
fn a_version_mismatch_is_refused_in_the_status_and_the_sender_reports_it() {
    let img = image(5_000, 1);
    let tx_info = Sender::new(CO, &img, 0x0701, 0).unwrap().info();
    for version in [1u8, VERSION + 1] {
        let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
        let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, None, false);
        // A version-1 sender advertised from any address; its announce had the same first bytes.
        let mut pdu = [0u8; PDU_MAX];
        let n = announce(&tx_info, &mut pdu);
        pdu[1] = version;
        let mut adv = [0u8; 31];
        let m = frame(CO, &pdu[..n], &mut adv);
        assert_eq!(
            parse_announce(&pdu[..n]),
            Err(AnnounceError::Version {
                version,
                session: Some(0x0701)
            })
        );
        assert_eq!(rx.on_adv([0xC3; 6], &adv[..m]), RxOutcome::Announce);
        assert_eq!(rx.state(), RxState::VersionMismatch);
        assert!(rx.poll_op().is_none(), "nothing is staged");
        // Its chunks are dropped (no session joined).
        let chunk = [0x05, 0xFF, 0xFF, 0xFF, 0x00, 0x00];
        assert_eq!(rx.on_adv([0xC3; 6], &chunk), RxOutcome::Dropped);
        // The status names the session and the reason; a sender of that session reports it.
        let mut s = [0u8; 31];
        let k = rx.status_adv(&mut s);
        let mut tx = Sender::new(CO, &img, 0x0701, 0).unwrap();
        assert_eq!(
            tx.on_adv(&s[..k]),
            TxEvent::Status {
                state: RxState::VersionMismatch,
                missing: 0
            }
        );
        assert_eq!(tx.receiver_state(), Some(RxState::VersionMismatch));
        // A sender of this version is still joined afterwards.
        let n = tx.next_adv(&mut adv);
        assert_eq!(rx.on_adv(tx.address(), &adv[..n]), RxOutcome::Announce);
        assert_eq!(rx.state(), RxState::Receiving);
    }
}

#[test]
fn a_corrupted_copy_before_the_genuine_chunk_costs_one_chunk_not_a_block() {
    let img = image(10_000, 3);
    let mut store = Store::new();
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = Receiver::new(CO, MAX_IMAGE_LEN, &mut bitmap, None, false);
    let mut tx = Sender::new(CO, &img, 5, 0).unwrap();
    let mut corrupted = 0;
    let mut events = 0u32;
    while !tx.is_complete() {
        events += 1;
        assert!(events < 5000);
        let mut out = [0u8; 31];
        let n = tx.next_adv(&mut out);
        // Chunk 10's first copy arrives with a flipped byte, the genuine right behind it (both
        // wait in the same scan batch, before the app stages either).
        if corrupted == 0 && out[4] == 0 && out[5] == 10 {
            let mut bad = out;
            bad[9] ^= 0xFF;
            assert_eq!(rx.on_adv(tx.address(), &bad[..n]), RxOutcome::Chunk);
            assert_eq!(rx.on_adv(tx.address(), &out[..n]), RxOutcome::Mismatch);
            corrupted += 1;
        } else {
            rx.on_adv(tx.address(), &out[..n]);
        }
        while let Some(op) = rx.poll_op() {
            if let StageOp::Write { offset, data } = op {
                let at = offset as usize;
                assert_eq!(
                    data,
                    &img[at..at + data.len()],
                    "bad bytes staged at {offset}"
                );
            }
            match store.apply(op, img.len() as u32) {
                Ok(v) => rx.op_done(Ok(&v)),
                Err(e) => rx.op_done(Err(e)),
            }
        }
        if events.is_multiple_of(20) {
            let mut s = [0u8; 31];
            let n = rx.status_adv(&mut s);
            tx.on_adv(&s[..n]);
        }
    }
    assert_eq!(corrupted, 1);
    let c = rx.counters();
    assert_eq!((c.crc_failures, c.mismatches), (0, 1), "{c:?}");
    // Only the disputed chunk (and nothing of its block) was sent again.
    assert_eq!(tx.counters().retransmissions, 1);
    assert_eq!(&store.bytes[..img.len()], &img[..]);
}

#[test]
fn a_delta_session_is_joined_and_its_tag_keeps_the_bit() {
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    let patch = image(3000, 9);
    let mut tx = Sender::new(CO, &patch, 5, capability::DELTA).unwrap();
    let mut adv = [0u8; 31];
    let n = tx.next_adv(&mut adv);
    rx.on_adv(tx.address(), &adv[..n]);
    assert_ne!(rx.state(), RxState::Unsupported);
    let info = rx.session().expect("joined the delta session");
    assert_eq!(info.capabilities, capability::DELTA);
    assert_eq!(info.tag()[12], capability::DELTA);
}

/// Lossless events between one sender and one receiver, a status every fourth; stops early
/// when the sender hears the image complete or refused.
fn exchange(tx: &mut Sender<'_>, rx: &mut Receiver<'_>, store: &mut Store, events: u32) {
    for e in 1..=events {
        let mut out = [0u8; 31];
        let n = tx.next_adv(&mut out);
        rx.on_adv(tx.address(), &out[..n]);
        drive(rx, store);
        if e % 4 == 0 {
            let mut s = [0u8; 31];
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

#[test]
fn a_delta_session_is_joined_only_on_the_running_base() {
    let running = [0x42u8; BASE_ID_LEN];
    let patch = image(9000, 3);

    // The base the receiver runs: joined, staged and finalized like any image.
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    rx.set_running_image(Some(running));
    let mut store = Store::new();
    let mut tx = Sender::new_delta(CO, &patch, 11, running).unwrap();
    exchange(&mut tx, &mut rx, &mut store, 5_000);
    assert!(tx.is_complete(), "state {:?}", tx.receiver_state());
    assert_eq!(&store.bytes[..patch.len()], &patch[..]);
    assert_eq!(rx.session().unwrap().tag()[12], capability::DELTA);
    assert_eq!(tx.receiver_running(), None);

    // Another base: refused before anything is staged; the status says what runs; a full
    // image in a new session is then joined at once (the fallback).
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    rx.set_running_image(Some(running));
    let mut store = Store::new();
    let mut tx = Sender::new_delta(CO, &patch, 12, [0x43; BASE_ID_LEN]).unwrap();
    exchange(&mut tx, &mut rx, &mut store, 200);
    assert_eq!(tx.receiver_state(), Some(RxState::WrongBase));
    assert_eq!(tx.receiver_running(), Some(Some(running)));
    assert_eq!(store.began, None, "nothing staged");
    let full = image(20_000, 4);
    let mut tx = Sender::new(CO, &full, 13, 0).unwrap();
    exchange(&mut tx, &mut rx, &mut store, 10_000);
    assert!(tx.is_complete());
    assert_eq!(&store.bytes[..full.len()], &full[..]);

    // A receiver that does not know what it runs refuses every delta session.
    let mut bitmap = vec![0u8; Receiver::bitmap_len(64 * 1024)];
    let mut rx = Receiver::new(CO, 64 * 1024, &mut bitmap, None, false);
    let mut store = Store::new();
    let mut tx = Sender::new_delta(CO, &patch, 14, running).unwrap();
    exchange(&mut tx, &mut rx, &mut store, 200);
    assert_eq!(tx.receiver_state(), Some(RxState::WrongBase));
    assert_eq!(tx.receiver_running(), Some(None));
}
