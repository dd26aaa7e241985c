//! Bearer negotiation and transfers over chained (extended or periodic) events: both sides
//! pick the fastest common bearer, either side alone falls back to legacy, a lost PDU of a
//! chain loses the rest of its event, a rebooted receiver resumes on its session's bearer.
use adv_transfer::bearer::{Bearer, BearerSet, Geometry, Phy};
use adv_transfer::wire::*;
use adv_transfer::*;

const CO: u16 = DEFAULT_COMPANY_ID;
/// Queue capacity for chained bearers' chunks.
const BIG: usize = 228;

/// A staging store with the update-region's rules (erase before write, only erased bytes).
struct Store {
    bytes: Vec<u8>,
    erased: Vec<bool>,
    began: Option<[u8; 16]>,
    finalized: bool,
    /// Cut the power during the erase after this many more erases.
    cut_after_erases: Option<u32>,
    /// The power was cut: every operation fails until the receiver reboots.
    cut: bool,
    /// Each operation in order: (kind, offset).
    log: Vec<(char, u32)>,
    /// The length of each write.
    write_lens: Vec<usize>,
}

impl Store {
    fn new() -> Self {
        Store {
            bytes: vec![0x5A; MAX_IMAGE_LEN as usize],
            erased: vec![false; 256],
            began: None,
            finalized: false,
            cut_after_erases: None,
            cut: false,
            log: Vec::new(),
            write_lens: Vec::new(),
        }
    }
    fn apply(&mut self, op: StageOp<'_>) -> Result<Vec<u8>, StageError> {
        if self.cut {
            return Err(StageError::Failed);
        }
        match op {
            StageOp::Begin { tag, .. } => {
                self.began = Some(tag);
                self.erased.iter_mut().for_each(|e| *e = false);
                Ok(vec![])
            }
            StageOp::Erase { offset } => {
                self.log.push(('e', offset));
                if let Some(n) = self.cut_after_erases.as_mut() {
                    if *n == 0 {
                        // Cut mid-erase: half the sector erased, not recorded as erased.
                        self.bytes[offset as usize..offset as usize + 2048].fill(0xFF);
                        self.cut_after_erases = None;
                        self.cut = true;
                        return Err(StageError::Failed);
                    }
                    *n -= 1;
                }
                self.bytes[offset as usize..offset as usize + 4096].fill(0xFF);
                self.erased[(offset / 4096) as usize] = true;
                Ok(vec![])
            }
            StageOp::Write { offset, data } => {
                self.log.push(('w', offset));
                self.write_lens.push(data.len());
                let (a, b) = (offset as usize, offset as usize + data.len());
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

fn drive<const N: usize>(rx: &mut Receiver<'_, N>, store: &mut Store) {
    while !store.cut {
        let Some(op) = rx.poll_op() else {
            break;
        };
        match store.apply(op) {
            Ok(v) => rx.op_done(Ok(&v)),
            Err(e) => rx.op_done(Err(e)),
        }
    }
}

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

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 257) as u8).collect()
}

#[derive(Clone, Copy, Default)]
struct Link {
    /// Loss per PDU (legacy PDU, or each PDU of a chain: the rest of the chain goes with it).
    loss: f64,
    /// Bearer offers never reach the receiver.
    drop_offers: bool,
    /// Reboot the receiver (resuming from the store) after this many sender events.
    reboot_at: Option<u64>,
    /// Cut the receiver's power during its pre-erase, after this many erases (it reboots and
    /// resumes from the store).
    cut_pre_erase_after: Option<u32>,
    /// The receiver hears nothing for this many sender events after each status it sends (as
    /// the DFU app, which stops following to advertise it and syncs again).
    deaf_after_status: u64,
}

struct Outcome {
    tx_bearer: Option<Bearer>,
    rx_bearer: Option<Bearer>,
    events: u64,
    chained_events: u64,
    truncated: u64,
    counters: RxCounters,
    tx: TxCounters,
    status_bytes: Vec<u8>,
    reboots: u32,
    store_log: Vec<(char, u32)>,
    write_lens: Vec<usize>,
}

/// One transfer: the sender offers `offer`, the receiver follows `follow` with a queue of
/// `N`-byte chunks; the receiver reports every 10 sender events.
fn run<const N: usize>(img: &[u8], offer: BearerSet, follow: BearerSet, link: Link) -> Outcome {
    let mut store = Store::new();
    store.cut_after_erases = link.cut_pre_erase_after;
    let mut reboots = 0;
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    // Chained sessions join consecutive chunks into one write.
    let mut write_buf = vec![0u8; 8 * N];
    let mut tx = Sender::new(CO, img, 0xB0A7_0001, 0).unwrap();
    tx.offer_bearers(offer);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut events, mut chained, mut truncated) = (0u64, 0u64, 0u64);
    let mut status_bytes = Vec::new();
    let mut resume = None;
    let mut counters = RxCounters::default();
    let mut rx_bearer;
    let mut deaf_until = 0u64;
    'boots: loop {
        bitmap.fill(0);
        let mut rx =
            Receiver::<'_, N>::with_bearers(CO, MAX_IMAGE_LEN, &mut bitmap, resume, false, follow);
        rx.set_write_buffer(&mut write_buf);
        loop {
            events += 1;
            assert!(events < 100_000, "transfer did not converge");
            match tx.bearer() {
                Some(b) if b.chained() => {
                    chained += 1;
                    let mut ev = [0u8; EXT_ADV_DATA_MAX];
                    let len = tx.next_event(&mut ev);
                    // The chain up to the first lost PDU.
                    let mut cut = len;
                    for i in 0..b.pdus_for(len) {
                        if rng.chance(link.loss) {
                            cut = b.fragment(len, i).unwrap().start;
                            break;
                        }
                    }
                    if cut > 0 && events > deaf_until {
                        drive(&mut rx, &mut store);
                        assert!(rx.queue_free() >= 7, "an event's chunks fit the queue");
                        let got = rx.on_ext_adv(tx.address(), &ev[..cut]);
                        truncated += got.truncated as u64;
                    }
                }
                _ => {
                    let mut out = [0u8; ADV_DATA_MAX];
                    let n = tx.next_adv(&mut out);
                    let offer_pdu = unframe(CO, &out[..n]).is_ok_and(|p| p[0] == KIND_BEARERS);
                    let lost = rng.chance(link.loss) || (link.drop_offers && offer_pdu);
                    if !lost && events > deaf_until {
                        rx.on_adv(tx.address(), &out[..n]);
                    }
                }
            }
            drive(&mut rx, &mut store);
            if events % 10 == 0 {
                let mut s = [0u8; ADV_DATA_MAX];
                let n = rx.status_adv(&mut s);
                if n > 0 {
                    deaf_until = events + link.deaf_after_status;
                    status_bytes.push(s[4 + 5]);
                    if !rng.chance(link.loss) {
                        tx.on_adv(&s[..n]);
                    }
                }
            }
            rx_bearer = rx.bearer();
            if tx.is_complete() {
                let c = rx.counters();
                counters.chunks += c.chunks;
                counters.dropped += c.dropped;
                break 'boots;
            }
            if store.cut {
                store.cut = false;
                reboots += 1;
                counters.chunks += rx.counters().chunks;
                resume = store.began;
                continue 'boots;
            }
            if link.reboot_at == Some(events) {
                counters.chunks += rx.counters().chunks;
                resume = store.began;
                continue 'boots;
            }
        }
    }
    assert!(store.finalized);
    assert_eq!(
        &store.bytes[..img.len()],
        img,
        "the staged image is the sent one"
    );
    Outcome {
        tx_bearer: tx.bearer(),
        rx_bearer,
        events,
        chained_events: chained,
        truncated,
        counters,
        tx: tx.counters(),
        status_bytes,
        reboots,
        store_log: store.log,
        write_lens: store.write_lens,
    }
}

const EXT: [Bearer; 2] = [Bearer::Extended(Phy::Le1M), Bearer::Extended(Phy::Le2M)];

#[test]
fn both_sides_pick_the_fastest_common_bearer() {
    let img = image(100_000);
    let o = run::<BIG>(&img, BearerSet::ALL, BearerSet::of(&EXT), Link::default());
    assert_eq!(o.tx_bearer, Some(Bearer::Extended(Phy::Le2M)));
    assert_eq!(o.rx_bearer, Some(Bearer::Extended(Phy::Le2M)));
    // 25 blocks of 18 chunks; an event carries 7 chunks (6 with a control PDU beside them).
    let g = Geometry::for_bearer(Bearer::Extended(Phy::Le2M));
    let chunks = g.total_chunks(img.len() as u32) as u64;
    assert_eq!(
        o.tx.data_pdus, chunks,
        "no chunk sent twice on a clean link: {:?}",
        o.counters
    );
    assert!(
        o.chained_events <= chunks / 6 + 8,
        "{} events",
        o.chained_events
    );
    assert!(o.chained_events >= chunks / 7);
    // The status names the pick (code 3) once the offer was heard.
    assert!(o.status_bytes.iter().any(|b| b >> 4 == 3));
}

#[test]
fn periodic_is_preferred_when_both_have_it() {
    let img = image(20_000);
    let follow = BearerSet::ALL;
    let offer = BearerSet::of(&[Bearer::Periodic(Phy::Le1M), Bearer::Extended(Phy::Le2M)]);
    let o = run::<BIG>(&img, offer, follow, Link::default());
    assert_eq!(o.tx_bearer, Some(Bearer::Periodic(Phy::Le1M)));
    assert_eq!(o.rx_bearer, o.tx_bearer);
}

#[test]
fn a_legacy_only_sender_updates_a_ble5_receiver_unchanged() {
    let img = image(30_000);
    let plain = run::<25>(&img, BearerSet::LEGACY, BearerSet::LEGACY, Link::default());
    let ble5 = run::<BIG>(&img, BearerSet::LEGACY, BearerSet::ALL, Link::default());
    assert_eq!(ble5.rx_bearer, Some(Bearer::Legacy));
    assert_eq!(ble5.chained_events, 0);
    // The same PDUs on air, and statuses exactly as a legacy receiver's (no pick nibble).
    assert_eq!(ble5.events, plain.events);
    assert_eq!(ble5.tx, plain.tx);
    assert!(ble5.status_bytes.iter().all(|b| b >> 4 == 0));
    assert_eq!(ble5.status_bytes, plain.status_bytes);
}

#[test]
fn a_ble5_sender_updates_a_legacy_only_receiver() {
    let img = image(30_000);
    let o = run::<25>(&img, BearerSet::ALL, BearerSet::LEGACY, Link::default());
    assert_eq!(o.tx_bearer, Some(Bearer::Legacy));
    assert_eq!(o.rx_bearer, Some(Bearer::Legacy));
    // It answered the offer with legacy (code 1), so the sender did not wait for fallback.
    assert!(o.status_bytes.iter().any(|b| b >> 4 == 1));
    let plain = run::<25>(&img, BearerSet::LEGACY, BearerSet::LEGACY, Link::default());
    assert!(
        o.events <= plain.events + 20,
        "{} vs {}",
        o.events,
        plain.events
    );
}

#[test]
fn without_a_pick_the_sender_falls_back_to_legacy() {
    // The receiver never hears an offer (as a receiver that does not know the PDU): its
    // statuses name no pick, and after three of them the sender sends legacy chunks.
    let img = image(10_000);
    let link = Link {
        drop_offers: true,
        ..Link::default()
    };
    let o = run::<BIG>(&img, BearerSet::ALL, BearerSet::ALL, link);
    assert_eq!(o.tx_bearer, Some(Bearer::Legacy));
    assert_eq!(o.rx_bearer, Some(Bearer::Legacy));
    assert!(o.status_bytes.iter().all(|b| b >> 4 == 0));
    assert_eq!(o.chained_events, 0);
}

#[test]
fn a_lost_pdu_loses_the_rest_of_its_chain_and_the_transfer_still_completes() {
    let img = image(60_000);
    let link = Link {
        loss: 0.1,
        ..Link::default()
    };
    let o = run::<BIG>(&img, BearerSet::ALL, BearerSet::ALL, link);
    assert_eq!(o.tx_bearer, Some(Bearer::Periodic(Phy::Le2M)));
    assert!(o.truncated > 10, "chains cut: {}", o.truncated);
    assert!(o.tx.retransmissions > 0);
    let clean = run::<BIG>(&img, BearerSet::ALL, BearerSet::ALL, Link::default());
    assert!(o.chained_events > clean.chained_events);
}

#[test]
fn answers_reach_a_receiver_that_is_deaf_after_each_status() {
    // The DFU app drops the sync to advertise each status and syncs again: the sender's answer
    // in the events right after the status falls in that gap. Sent once, it was lost every
    // time and the transfer never ended; repeated until the next status, it gets through.
    let img = image(60_000);
    let link = Link {
        loss: 0.1,
        deaf_after_status: 3,
        ..Link::default()
    };
    let o = run::<BIG>(&img, BearerSet::ALL, BearerSet::ALL, link);
    assert_eq!(o.tx_bearer, Some(Bearer::Periodic(Phy::Le2M)));
    assert!(o.tx.retransmissions > 0);
}

#[test]
fn a_rebooted_receiver_resumes_on_its_sessions_bearer() {
    let img = image(60_000);
    let link = Link {
        reboot_at: Some(120),
        ..Link::default()
    };
    let o = run::<BIG>(&img, BearerSet::ALL, BearerSet::ALL, link);
    assert_eq!(o.rx_bearer, Some(Bearer::Periodic(Phy::Le2M)));
    // What was staged before the reboot is not received again.
    let g = Geometry::for_bearer(Bearer::Periodic(Phy::Le2M));
    assert!(o.counters.chunks < g.total_chunks(img.len() as u32) + 20);
}

#[test]
fn ext_advdata_is_walked_structure_by_structure() {
    let mut ev = [0u8; EXT_ADV_DATA_MAX];
    let a = frame_into(CO, &[0xF5, 1, 2, 3, 4, 1], &mut ev, 0).unwrap();
    let b = frame_into(0x1234, &[9; 10], &mut ev, a).unwrap();
    let c = frame_into(CO, &[7; 200], &mut ev, b).unwrap();
    let all: Vec<_> = ext_pdus(CO, &ev[..c]).collect();
    assert_eq!(all.len(), 2, "the other company's structure is skipped");
    // Cut inside the last structure: the walk ends with Truncated.
    let cut: Vec<_> = ext_pdus(CO, &ev[..c - 1]).collect();
    assert_eq!(cut.last(), Some(&Err(FrameError::Truncated)));
    assert!(frame_into(CO, &[0; EXT_PDU_MAX + 1], &mut ev, 0).is_none());
    let long = vec![0u8; EXT_ADV_DATA_MAX + 1];
    let over: Vec<_> = ext_pdus(CO, &long).collect();
    assert_eq!(over, vec![Err(FrameError::Oversized)]);
}

#[test]
fn foreign_chained_events_never_reach_the_queue() {
    // Join a periodic 2M session, then hear another transfer's event (its own session's
    // address, valid chunk indices and lengths for our geometry): every PDU is refused.
    let img = image(20_000);
    let mut tx = Sender::new(CO, &img, 0x0BAD_F00D, 0).unwrap();
    tx.offer_bearers(BearerSet::ALL);
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = Receiver::<'_, BIG>::with_bearers(
        CO,
        MAX_IMAGE_LEN,
        &mut bitmap,
        None,
        false,
        BearerSet::ALL,
    );
    let mut store = Store::new();
    for _ in 0..4 {
        let mut out = [0u8; ADV_DATA_MAX];
        let n = tx.next_adv(&mut out);
        rx.on_adv(tx.address(), &out[..n]);
    }
    drive(&mut rx, &mut store);
    assert_eq!(rx.bearer(), Some(Bearer::Periodic(Phy::Le2M)));
    let g = Geometry::for_bearer(Bearer::Periodic(Phy::Le2M));
    let mut ev = [0u8; EXT_ADV_DATA_MAX];
    let mut at = 0;
    for index in 0..7u16 {
        let mut pdu = vec![0u8; 2 + g.chunk_len as usize];
        pdu[..2].copy_from_slice(&index.to_be_bytes());
        at = frame_into(CO, &pdu, &mut ev, at).unwrap();
    }
    let got = rx.on_ext_adv(session_address(0x1234_5678), &ev[..at]);
    assert_eq!((got.pdus, got.chunks), (7, 0));
    assert_eq!(rx.counters().foreign, 7);
    assert_eq!(rx.queue_free(), 8);
    // From our sender's address the same event is taken.
    let got = rx.on_ext_adv(tx.address(), &ev[..at]);
    assert_eq!(got.chunks, 7);
}

#[test]
fn the_pick_is_named_only_after_the_pre_erase() {
    // A receiver that picks a chained bearer erases every sector of the announced image
    // before its status names the pick; until then its statuses say "preparing", and the
    // sender neither sends data nor counts them towards its legacy fallback.
    let img = image(40_000);
    let blocks = img.len().div_ceil(4096);
    let mut tx = Sender::new(CO, &img, 0x0E2A_5E00, 0).unwrap();
    tx.offer_bearers(BearerSet::ALL);
    let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
    let mut rx = Receiver::<'_, BIG>::with_bearers(
        CO,
        MAX_IMAGE_LEN,
        &mut bitmap,
        None,
        false,
        BearerSet::ALL,
    );
    let mut store = Store::new();
    for _ in 0..4 {
        let mut out = [0u8; ADV_DATA_MAX];
        let n = tx.next_adv(&mut out);
        rx.on_adv(tx.address(), &out[..n]);
    }
    assert_eq!(rx.bearer(), Some(Bearer::Periodic(Phy::Le2M)));
    let mut preparing = 0;
    let mut ops = 0;
    loop {
        // A status after every staging operation.
        let mut s = [0u8; ADV_DATA_MAX];
        let n = rx.status_adv(&mut s);
        let nibble = s[4 + 5] >> STATUS_BEARER_SHIFT;
        let all_erased = store.erased[..blocks].iter().all(|e| *e);
        if nibble == STATUS_BEARER_PREPARING {
            preparing += 1;
            assert!(rx.preparing());
        } else {
            assert!(
                all_erased,
                "the pick named before the erase ({ops} operations)"
            );
            assert_eq!(nibble, Bearer::Periodic(Phy::Le2M).code());
        }
        tx.on_adv(&s[..n]);
        if !all_erased {
            assert_eq!(tx.bearer(), None, "the sender waits for the pick");
        }
        let Some(op) = rx.poll_op() else {
            break;
        };
        ops += 1;
        assert!(ops <= 2 * blocks + 4, "the pre-erase did not end");
        match store.apply(op) {
            Ok(v) => rx.op_done(Ok(&v)),
            Err(e) => rx.op_done(Err(e)),
        }
    }
    // Begin, then one erase per block, each followed by a status the sender heard.
    assert_eq!(ops, 1 + blocks);
    assert!(preparing as u8 > adv_transfer::sender::STATUSES_WITHOUT_PICK);
    assert_eq!(tx.bearer(), Some(Bearer::Periodic(Phy::Le2M)));
    assert!(!rx.preparing());
    let offsets: Vec<u32> = store.log.iter().map(|(_, o)| *o).collect();
    let want: Vec<u32> = (0..blocks as u32).map(|b| b * 4096).collect();
    assert_eq!(offsets, want, "every block erased once, in order");
}

#[test]
fn the_whole_transfer_writes_only_after_the_pre_erase() {
    let img = image(60_000);
    let blocks = img.len().div_ceil(4096);
    let o = run::<BIG>(&img, BearerSet::ALL, BearerSet::ALL, Link::default());
    assert_eq!(o.tx_bearer, Some(Bearer::Periodic(Phy::Le2M)));
    let first_write = o.store_log.iter().position(|(k, _)| *k == 'w').unwrap();
    assert_eq!(first_write, blocks, "{:?}", &o.store_log[..first_write]);
    assert!(o.store_log[first_write..].iter().all(|(k, _)| *k == 'w'));
    // Consecutive chunks went out as runs: fewer writes than chunks, each one whole chunks.
    let g = Geometry::for_bearer(Bearer::Periodic(Phy::Le2M));
    let chunks = g.total_chunks(img.len() as u32) as usize;
    assert_eq!(o.write_lens.iter().sum::<usize>(), img.len());
    assert!(
        o.write_lens.len() * 3 < chunks,
        "{} writes",
        o.write_lens.len()
    );
    assert!(o.write_lens.iter().any(|&n| n > g.chunk_len as usize));
    // A legacy session is not pre-erased: its first write follows its block's erase.
    let o = run::<BIG>(&img, BearerSet::LEGACY, BearerSet::ALL, Link::default());
    assert_eq!(o.store_log[..2], [('e', 0), ('w', 0)]);
    // And writes chunk by chunk, as always.
    assert!(o.write_lens.iter().all(|&n| n <= CHUNK_LEN));
}

#[test]
fn a_cut_during_the_pre_erase_costs_a_retry() {
    let img = image(60_000);
    let link = Link {
        cut_pre_erase_after: Some(6),
        ..Link::default()
    };
    let o = run::<BIG>(&img, BearerSet::ALL, BearerSet::ALL, link);
    assert_eq!(o.reboots, 1);
    // The sender waited through the cut: no fallback, the picked bearer on both sides.
    assert_eq!(o.tx_bearer, Some(Bearer::Periodic(Phy::Le2M)));
    assert_eq!(o.rx_bearer, o.tx_bearer);
    assert!(o.chained_events > 0);
    // The cut fell on the seventh erase. After the reboot the rebuild takes what the unerased
    // sectors still hold for chunks (the resume rules as ever): their blocks fail their CRC
    // and are erased and received again, the interrupted one included.
    let cut_at = 6 * 4096;
    assert_eq!(o.store_log[6], ('e', cut_at));
    assert!(o.store_log[7..].contains(&('e', cut_at)));
    assert!(o.tx.retransmissions > 0);
}

#[test]
fn the_head_start_follows_from_the_flash_and_the_bearer() {
    // 176 KiB: 44 blocks. Joined over periodic 2M or extended 2M, with three flash timings.
    let img = image(176 * 1024);
    let blocks = img.len().div_ceil(4096) as u32;
    let head = |offer: Bearer, timing: Option<FlashTiming>| {
        let mut tx = Sender::new(CO, &img, 0x0E2A_5E01, 0).unwrap();
        tx.offer_bearers(BearerSet::of(&[offer]));
        let mut bitmap = vec![0u8; Receiver::bitmap_len(MAX_IMAGE_LEN)];
        let mut rx = Receiver::<'_, BIG>::with_bearers(
            CO,
            MAX_IMAGE_LEN,
            &mut bitmap,
            None,
            false,
            BearerSet::ALL,
        );
        rx.set_flash_timing(timing);
        for _ in 0..4 {
            let mut out = [0u8; ADV_DATA_MAX];
            let n = tx.next_adv(&mut out);
            rx.on_adv(tx.address(), &out[..n]);
        }
        assert_eq!(rx.bearer(), Some(offer));
        rx.pre_erase_blocks()
    };
    let mx25r = FlashTiming {
        erase_sector_us: 40_000,
        program_page_us: 850,
        page_len: 256,
    };
    let e2 = Bearer::Extended(Phy::Le2M);
    let p2 = Bearer::Periodic(Phy::Le2M);
    // Without a timing: the whole image.
    assert_eq!(head(e2, None), blocks);
    // Extended: 63.1 ms of air per block against a 40 ms erase and 33 page programs
    // (28.1 ms): 4.9 ms over per block, × 44 blocks / 40 ms = 5.4, so 6 blocks first.
    assert_eq!(head(e2, Some(mx25r)), 6);
    // Periodic 2M: 25.3 ms of air per block, less than the programs alone: all of them.
    assert_eq!(head(p2, Some(mx25r)), blocks);
    // A flash ten times as fast needs no head start.
    let fast = FlashTiming {
        erase_sector_us: 4_000,
        program_page_us: 85,
        page_len: 256,
    };
    assert_eq!(head(e2, Some(fast)), 0);
}
