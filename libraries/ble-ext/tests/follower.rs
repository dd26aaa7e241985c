//! The follower against scripted air: an advertiser model puts extended events (ADV_EXT_IND on
//! the primary channels, AUX_ADV_IND, AUX_CHAIN_IND) and periodic trains (AUX_SYNC_IND and its
//! chain, on the CSA#2 channel of each event) on the air by its own clock, built with the
//! crate's PDU builder; a radio model answers the follower's operations from it: a packet is
//! heard when its channel, PHY and access address match and its start lies in the window.
use adv_transfer::bearer::{Phy, CHAIN_ADV_DATA_MAX, T_MAFS_US};
use ble_ext::pdu::Builder;
use ble_ext::{
    address_air_us, csa2, Adi, AuxPhy, AuxPtr, Config, Cut, Filter, Follower, Listen, Op, SyncInfo,
    ADV_ACCESS_ADDRESS,
};

/// A packet on the air, true time in µs.
#[derive(Clone, Debug)]
struct Pkt {
    start: u64,
    channel: u8,
    phy: Phy,
    aa: u32,
    bytes: Vec<u8>,
}

impl Pkt {
    fn end(&self) -> u64 {
        self.start + u64::from(self.phy.air_us(usize::from(self.bytes[1])))
    }
}

#[derive(Default)]
struct Air {
    pkts: Vec<Pkt>,
}

/// What the follower reported (owned).
#[derive(Clone, Debug, PartialEq)]
struct Got {
    adv_a: Option<[u8; 6]>,
    counter: Option<u16>,
    data: Vec<u8>,
    cut: Option<Cut>,
}

/// The receiver's timer: true time plus `base`, wrapping at 32 bits.
fn rx32(t: u64, base: u64) -> u32 {
    (t + base) as u32
}

const SCAN_WINDOW_US: u64 = 100_000;

/// Run the follower over the air until `until` (true µs). Every loop is bounded.
fn run(f: &mut Follower<&mut [u8]>, air: &mut Air, base: u64, until: u64) -> Vec<Got> {
    air.pkts.sort_by_key(|p| p.start);
    let mut got = Vec::new();
    let mut now: u64 = 0;
    let max_steps = 1_000_000;
    for step in 0.. {
        assert!(step < max_steps, "the run did not end in {max_steps} steps");
        if now >= until {
            break;
        }
        let heard = match f.op() {
            Op::Idle => break,
            Op::ScanPrimary { channel } => {
                let from = air.pkts.partition_point(|p| p.start < now);
                air.pkts[from..]
                    .iter()
                    .take_while(|p| p.start < now + SCAN_WINDOW_US)
                    .find(|p| p.channel == channel && p.aa == ADV_ACCESS_ADDRESS)
                    .cloned()
                    .ok_or(now + SCAN_WINDOW_US)
            }
            Op::Listen(Listen {
                start_us,
                window_us,
                channel,
                phy,
                access_address,
                ..
            }) => {
                // The window in true time (it may lie before `now`: then only its rest counts).
                let rel = i64::from(start_us.wrapping_sub(rx32(now, base)) as i32);
                let t0 = (now as i64 + rel).max(0) as u64;
                let t1 = t0 + u64::from(window_us);
                let from = air.pkts.partition_point(|p| p.start < t0.max(now));
                air.pkts[from..]
                    .iter()
                    .take_while(|p| p.start <= t1)
                    .find(|p| p.channel == channel && p.phy == phy && p.aa == access_address)
                    .cloned()
                    .ok_or(t1.max(now + 1))
            }
        };
        let report = match heard {
            Ok(p) => {
                now = p.end();
                let address = rx32(p.start + u64::from(address_air_us(p.phy)), base);
                f.received(address, p.channel, p.phy, &p.bytes)
                    .map(|r| (r.adv_a, r.periodic_counter, r.adv_data.to_vec(), r.cut))
            }
            Err(next) => {
                now = next;
                f.missed()
                    .map(|r| (r.adv_a, r.periodic_counter, r.adv_data.to_vec(), r.cut))
            }
        };
        if let Some((adv_a, counter, data, cut)) = report {
            got.push(Got {
                adv_a,
                counter,
                data,
                cut,
            });
        }
    }
    got
}

/// The advertiser: its address and set, its clock (drift in ppm against true time, and a
/// step added after `step_at`), the secondary PHY.
#[derive(Clone)]
struct Advertiser {
    adv_a: [u8; 6],
    sid: u8,
    phy: Phy,
    drift_ppm: f64,
    step_at: u64,
    step_us: u64,
    /// Microseconds after the earliest start each AUX packet really starts (< 30).
    aux_jitter: u64,
}

impl Advertiser {
    fn new(adv_a: [u8; 6], sid: u8, phy: Phy) -> Self {
        Advertiser {
            adv_a,
            sid,
            phy,
            drift_ppm: 0.0,
            step_at: u64::MAX,
            step_us: 0,
            aux_jitter: 7,
        }
    }
    /// Its clock's time `t` in true time.
    fn true_time(&self, t: u64) -> u64 {
        let mut u = (t as f64 * (1.0 + self.drift_ppm * 1e-6)).round() as u64;
        if t >= self.step_at {
            u += self.step_us;
        }
        u
    }
}

fn build(b: Builder<'_>) -> Vec<u8> {
    let mut buf = [0u8; 2 + 255];
    let n = b.write(&mut buf).expect("a PDU the builder can write");
    buf[..n].to_vec()
}

fn aux_ptr(channel: u8, phy: Phy, offset_us: u64) -> AuxPtr {
    let (units_300us, unit) = if offset_us >= 245_700 {
        (true, 300)
    } else {
        (false, 30)
    };
    AuxPtr {
        channel,
        ca_50ppm: true,
        units_300us,
        offset: (offset_us / unit) as u16,
        phy: AuxPhy::from(phy),
    }
}

/// A secondary channel for chain PDU `i` of event `e`.
fn aux_channel(e: u64, i: usize) -> u8 {
    ((e * 11 + i as u64 * 7 + 3) % 37) as u8
}

/// One chain of PDUs from `first_start` (advertiser time): `first` makes the first PDU's
/// header fields given its AuxPtr, later PDUs carry `adi` and AuxPtr. Each PDU is filled before
/// the next; the next starts T_MAFS after it at the earliest, rounded up to the 30 µs offset
/// unit, `aux_jitter` into that unit. Returns the chain's packets (advertiser time) and its end.
fn chain(
    adv: &Advertiser,
    e: u64,
    first_start: u64,
    data: &[u8],
    aa: u32,
    first: &dyn Fn(Option<AuxPtr>) -> Builder<'static>,
    adi: Option<Adi>,
) -> (Vec<Pkt>, u64) {
    let mut out = Vec::new();
    let mut at = 0;
    let mut start = first_start;
    for i in 0..16 {
        let rest = &data[at..];
        let header = |p: Option<AuxPtr>| -> Builder<'static> {
            if i == 0 {
                first(p)
            } else {
                Builder {
                    adi,
                    aux_ptr: p,
                    ..Builder::default()
                }
            }
        };
        let room_last = 254 - header(None).ext_header_len();
        let last = rest.len() <= room_last;
        let take = if last {
            rest.len()
        } else {
            254 - header(Some(aux_ptr(0, adv.phy, 300))).ext_header_len()
        };
        let payload = 1 + header(None).ext_header_len() + take + if last { 0 } else { 3 };
        let air = u64::from(adv.phy.air_us(payload.min(255)));
        let units = (air + u64::from(T_MAFS_US)).div_ceil(30);
        let ptr = (!last).then(|| aux_ptr(aux_channel(e, i + 1), adv.phy, units * 30));
        let b: Builder<'_> = header(ptr);
        let bytes = build(Builder {
            adv_data: &rest[..take],
            ..b
        });
        let p = Pkt {
            start,
            channel: aux_channel(e, i),
            phy: adv.phy,
            aa,
            bytes,
        };
        let end = p.end();
        out.push(p);
        if last {
            return (out, end);
        }
        at += take;
        start += units * 30 + adv.aux_jitter;
    }
    panic!("a chain of more than 16 PDUs");
}

/// Put one extended event of `adv` at advertiser time `t` on the air: three ADV_EXT_INDs, the
/// AUX_ADV_IND (with `sync` if given) and its chain. Returns the chain's packets' true times.
fn extended_event(
    air: &mut Air,
    adv: &Advertiser,
    e: u64,
    t: u64,
    did: u16,
    data: &[u8],
    sync: Option<&dyn Fn(u64) -> SyncInfo>,
) -> Vec<Pkt> {
    let adi = Adi { did, sid: adv.sid };
    let ind = Builder {
        adi: Some(adi),
        aux_ptr: Some(aux_ptr(0, adv.phy, 300)),
        ..Builder::default()
    };
    // The three ADV_EXT_INDs and the AUX_ADV_IND all on the 30 µs grid from `t`, so each
    // ADV_EXT_IND's offset is exact and the AUX_ADV_IND starts `aux_jitter` into its unit.
    let ind_air = u64::from(Phy::Le1M.air_us(ind.ext_header_len() + 1));
    let spacing = (ind_air + 150).div_ceil(30) * 30;
    let aux_at = t + (2 * spacing + ind_air + u64::from(T_MAFS_US)).div_ceil(30) * 30;
    let adv_a = adv.adv_a;
    let sync_info = sync.map(|s| s(aux_at + adv.aux_jitter));
    let first = move |p: Option<AuxPtr>| Builder {
        adv_a: Some(adv_a),
        adi: Some(adi),
        aux_ptr: p,
        sync_info,
        ..Builder::default()
    };
    let (pkts, _) = chain(
        adv,
        e,
        aux_at + adv.aux_jitter,
        data,
        ADV_ACCESS_ADDRESS,
        &first,
        Some(adi),
    );
    for (k, ch) in [37u8, 38, 39].into_iter().enumerate() {
        let start = t + k as u64 * spacing;
        let offset = aux_at - start;
        let bytes = build(Builder {
            aux_ptr: Some(aux_ptr(aux_channel(e, 0), adv.phy, offset)),
            ..ind
        });
        air.pkts.push(Pkt {
            start: adv.true_time(start),
            channel: ch,
            phy: Phy::Le1M,
            aa: ADV_ACCESS_ADDRESS,
            bytes,
        });
    }
    let mut out = Vec::new();
    for mut p in pkts {
        p.start = adv.true_time(p.start);
        out.push(p.clone());
        air.pkts.push(p);
    }
    out
}

fn event_data(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize * 31 + i * 7) as u8)
        .collect()
}

const US: [u8; 6] = [0xC0, 1, 2, 3, 4, 5];
const THEM: [u8; 6] = [0xC0, 9, 9, 9, 9, 9];

fn follower(buf: &mut [u8], config: Config, adv_a: [u8; 6]) -> Follower<&mut [u8]> {
    let mut f = Follower::new(config, buf);
    f.follow(Filter {
        adv_a: Some(adv_a),
        sid: None,
    });
    f
}

fn extended_only() -> Config {
    Config {
        periodic: false,
        ..Config::default()
    }
}

#[test]
fn primary_aux_and_a_chain_of_seven_deliver_the_event_intact() {
    for phy in [Phy::Le1M, Phy::Le2M] {
        let mut air = Air::default();
        let adv = Advertiser::new(US, 1, phy);
        let data = event_data(1, CHAIN_ADV_DATA_MAX);
        let pkts = extended_event(&mut air, &adv, 0, 1_000, 7, &data, None);
        assert_eq!(pkts.len(), 7, "1,650 octets take 7 PDUs");
        let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
        let mut f = follower(&mut buf, extended_only(), US);
        let got = run(&mut f, &mut air, 0, 50_000);
        assert_eq!(got.len(), 1, "{phy:?}");
        assert_eq!(got[0].data, data);
        assert_eq!(got[0].cut, None);
        assert_eq!(got[0].adv_a, Some(US));
        let c = f.counters();
        assert_eq!((c.events, c.events_cut, c.aux_missed), (1, 0, 0));
    }
}

#[test]
fn aux_windows_are_the_offset_unit_widened_by_both_clocks() {
    // One ADV_EXT_IND pointing 600 µs ahead, 50 ppm each side: 30 µs + 2 × (⌈0.06⌉ + 32).
    let mut air = Air::default();
    let adv = Advertiser::new(US, 1, Phy::Le2M);
    let pkts = extended_event(&mut air, &adv, 0, 1_000, 7, b"x", None);
    air.pkts.sort_by_key(|p| p.start);
    let ind = air.pkts[0].clone();
    let mut buf = [0u8; 64];
    let mut f = follower(&mut buf, extended_only(), US);
    assert_eq!(f.op(), Op::ScanPrimary { channel: 37 });
    let address = rx32(ind.start + 40, 0);
    assert!(f.received(address, 37, Phy::Le1M, &ind.bytes).is_none());
    let Op::Listen(Listen {
        start_us,
        window_us,
        channel,
        phy,
        ..
    }) = f.op()
    else {
        panic!("no listen after an ADV_EXT_IND: {:?}", f.op());
    };
    let aux = &pkts[0];
    assert_eq!((channel, phy), (aux.channel, Phy::Le2M));
    assert_eq!(window_us, 30 + 2 * 33);
    // The window opens the widening before the AuxPtr's offset from the ADV_EXT_IND's start
    // (its ADDRESS event less 40 µs of preamble and access address at 1M).
    let offset = ble_ext::ExtPdu::parse(&ind.bytes)
        .unwrap()
        .aux_ptr
        .unwrap()
        .offset_us();
    assert_eq!(start_us, rx32(ind.start, 0) + offset - 33);
    let at = rx32(aux.start, 0).wrapping_sub(start_us);
    assert!(
        at <= window_us,
        "AUX start {at} µs into a {window_us} µs window"
    );
}

#[test]
fn a_lost_chain_pdu_cuts_the_event_short_and_the_next_is_whole() {
    let mut air = Air::default();
    let adv = Advertiser::new(US, 1, Phy::Le2M);
    let first = event_data(1, CHAIN_ADV_DATA_MAX);
    let second = event_data(2, CHAIN_ADV_DATA_MAX);
    let pkts = extended_event(&mut air, &adv, 0, 1_000, 7, &first, None);
    extended_event(&mut air, &adv, 1, 30_000, 8, &second, None);
    // The fourth PDU of the first chain is lost.
    let lost = pkts[3].start;
    air.pkts.retain(|p| p.start != lost);
    let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
    let mut f = follower(&mut buf, extended_only(), US);
    let got = run(&mut f, &mut air, 0, 80_000);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].cut, Some(Cut::Lost));
    // AUX_ADV_IND 242 and two AUX_CHAIN_INDs of 248.
    assert_eq!(got[0].data, &first[..242 + 2 * 248]);
    assert_eq!((got[1].cut, &got[1].data), (None, &second));
    assert_eq!(f.counters().aux_missed, 1);
}

#[test]
fn a_chain_longer_than_the_buffer_is_cut_and_flagged() {
    let mut air = Air::default();
    let adv = Advertiser::new(US, 1, Phy::Le2M);
    let data = event_data(3, 1000);
    extended_event(&mut air, &adv, 0, 1_000, 7, &data, None);
    let mut buf = [0u8; 600];
    let mut f = follower(&mut buf, extended_only(), US);
    let got = run(&mut f, &mut air, 0, 50_000);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].cut, Some(Cut::Overflow));
    assert_eq!(got[0].data, &data[..600]);
}

#[test]
fn a_foreign_advertisers_chain_is_ignored_without_losing_ours() {
    let mut air = Air::default();
    let ours = Advertiser {
        aux_jitter: 25,
        ..Advertiser::new(US, 1, Phy::Le2M)
    };
    // The same SID: the follower must follow its AUX_ADV_IND to see its AdvA.
    let theirs = Advertiser::new(THEM, 1, Phy::Le2M);
    let a = event_data(1, CHAIN_ADV_DATA_MAX);
    let b = event_data(2, CHAIN_ADV_DATA_MAX);
    extended_event(&mut air, &theirs, 10, 0, 3, &event_data(9, 800), None);
    let pkts = extended_event(&mut air, &ours, 0, 5_000, 7, &a, None);
    // Theirs again, later, on a different set: by now the follower knows our SID.
    let other_set = Advertiser::new(THEM, 4, Phy::Le2M);
    extended_event(
        &mut air,
        &other_set,
        11,
        30_000,
        3,
        &event_data(8, 800),
        None,
    );
    extended_event(&mut air, &ours, 1, 35_000, 8, &b, None);
    // A short foreign PDU (no ADI) opens our third chain PDU's window and ends before it.
    let target = &pkts[2];
    let foreign_start = target.start - 25 - 33;
    air.pkts.push(Pkt {
        start: foreign_start,
        channel: target.channel,
        phy: Phy::Le2M,
        aa: ADV_ACCESS_ADDRESS,
        bytes: build(Builder::default()),
    });
    let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
    let mut f = follower(&mut buf, extended_only(), US);
    let got = run(&mut f, &mut air, 0, 100_000);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|g| g.adv_a == Some(US) && g.cut.is_none()));
    assert_eq!((&got[0].data, &got[1].data), (&a, &b));
    let c = f.counters();
    // Their AUX_ADV_IND, their other set's ADV_EXT_IND (on 37, the channel scanned), the
    // short PDU.
    assert_eq!(c.foreign, 3, "{c:?}");
}

/// A periodic train of `adv` from advertiser time `first_anchor`, `events` events, `interval`
/// in 1.25 ms units, each carrying `len` octets; and its extended set every 30 ms with
/// SyncInfo. Returns the train's access address.
fn periodic(
    air: &mut Air,
    adv: &Advertiser,
    first_anchor: u64,
    interval: u16,
    events: u16,
    len: usize,
    ext_until: u64,
) {
    periodic_with(
        air,
        adv,
        (first_anchor, interval, events, len, ext_until),
        None,
    );
}

/// [`periodic`], the train moving to channel map `update.0` at event `update.1` (announced in
/// the ACAD of the ten events before).
fn periodic_with(
    air: &mut Air,
    adv: &Advertiser,
    (first_anchor, interval, events, len, ext_until): (u64, u16, u16, usize, u64),
    update: Option<(u64, u16)>,
) {
    let aa = 0x5A3C_96E1u32;
    let old_map: u64 = (1 << 37) - 1 - (1 << 5) - (1 << 17);
    let map = move |k: u16| match update {
        Some((m, instant)) if k >= instant => m,
        _ => old_map,
    };
    let id = csa2::channel_identifier(aa);
    let interval_us = u64::from(interval) * 1250;
    for k in 0..events {
        let anchor = first_anchor + u64::from(k) * interval_us;
        let data = event_data(u64::from(k), len);
        let acad: &'static [u8] = match update {
            Some((m, instant)) if k < instant && k + 10 >= instant => {
                let mut a = vec![8, 0x28];
                a.extend_from_slice(&m.to_le_bytes()[..5]);
                a.extend_from_slice(&instant.to_le_bytes());
                Box::leak(a.into_boxed_slice())
            }
            _ => &[],
        };
        let first = |p: Option<AuxPtr>| Builder {
            aux_ptr: p,
            acad,
            ..Builder::default()
        };
        let (mut pkts, end) = chain(adv, u64::from(k) + 1000, anchor, &data, aa, &first, None);
        assert!(end < anchor + interval_us, "the chain fits the interval");
        pkts[0].channel = csa2::channel(k, id, map(k)).unwrap();
        for mut p in pkts {
            p.start = adv.true_time(p.start);
            air.pkts.push(p);
        }
    }
    let sync = move |aux_at: u64| {
        // The next anchor at least 1 ms after the AUX_ADV_IND.
        let k = (aux_at + 1_000)
            .saturating_sub(first_anchor)
            .div_ceil(interval_us);
        let offset = first_anchor + k * interval_us - aux_at;
        SyncInfo {
            offset: (offset / 30) as u16,
            units_300us: false,
            offset_adjust: false,
            interval,
            channel_map: map(k as u16),
            sca: 5,
            access_address: aa,
            crc_init: 0x12_3456,
            event_counter: k as u16,
        }
    };
    let mut t = 2_000;
    let mut e = 0;
    while t < ext_until {
        extended_event(air, adv, e, t, e as u16, b"", Some(&sync));
        t += 30_000;
        e += 1;
    }
}

fn periodic_reports(got: &[Got]) -> Vec<&Got> {
    got.iter().filter(|g| g.counter.is_some()).collect()
}

#[test]
fn a_periodic_train_is_followed_for_1000_events_with_50_ppm_drift_both_ways() {
    for drift in [50.0, -50.0] {
        let mut air = Air::default();
        let adv = Advertiser {
            drift_ppm: drift,
            ..Advertiser::new(US, 1, Phy::Le2M)
        };
        // 10 ms interval, full chains (7 PDUs, 8.8 ms at 2M).
        periodic(
            &mut air,
            &adv,
            20_000,
            8,
            1_100,
            CHAIN_ADV_DATA_MAX,
            11_020_000,
        );
        let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
        let mut f = follower(&mut buf, Config::default(), US);
        let got = run(&mut f, &mut air, 0, 10_600_000);
        let per = periodic_reports(&got);
        assert!(
            per.len() >= 1_000,
            "{drift} ppm: {} periodic events",
            per.len()
        );
        let first = per[0].counter.unwrap();
        for (i, g) in per.iter().enumerate() {
            let k = first + i as u16;
            assert_eq!(g.counter, Some(k), "{drift} ppm: events in a row");
            assert_eq!(g.cut, None, "{drift} ppm: event {k}");
            assert_eq!(g.data, event_data(u64::from(k), CHAIN_ADV_DATA_MAX));
            assert_eq!(g.adv_a, Some(US));
        }
        let c = f.counters();
        assert_eq!(
            (c.syncs, c.sync_losses, c.anchors_missed),
            (1, 0, 0),
            "{c:?}"
        );
    }
}

#[test]
fn drift_beyond_the_declared_accuracy_loses_the_sync_which_is_found_again() {
    // The advertiser declares ≤ 50 ppm, then its clock steps by 400 µs (far beyond the
    // ~33 µs the windows allow): anchors are missed, the sync is lost after 6, and the
    // follower syncs again through the extended set's SyncInfo.
    let mut air = Air::default();
    let adv = Advertiser {
        step_at: 1_000_000,
        step_us: 400,
        ..Advertiser::new(US, 1, Phy::Le2M)
    };
    periodic(&mut air, &adv, 20_000, 8, 300, 600, 3_000_000);
    let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
    let mut f = follower(&mut buf, Config::default(), US);
    let got = run(&mut f, &mut air, 0, 3_000_000);
    let c = f.counters();
    assert_eq!((c.syncs, c.sync_losses), (2, 1), "{c:?}");
    assert_eq!(c.anchors_missed, 6, "{c:?}");
    let per = periodic_reports(&got);
    assert!(per
        .iter()
        .all(|g| g.cut.is_none() && g.data == event_data(u64::from(g.counter.unwrap()), 600)));
    assert!(
        per.iter().any(|g| g.counter.unwrap() > 150),
        "heard again after the step"
    );

    // A clock that runs 3,000 ppm fast at a 100 ms interval drifts 300 µs per event: the
    // sync is lost again and again, and nothing wrong is ever reported.
    let mut air = Air::default();
    let adv = Advertiser {
        drift_ppm: 3_000.0,
        ..Advertiser::new(US, 1, Phy::Le2M)
    };
    periodic(&mut air, &adv, 20_000, 80, 30, 600, 3_000_000);
    let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
    let mut f = follower(&mut buf, Config::default(), US);
    let got = run(&mut f, &mut air, 0, 3_000_000);
    let c = f.counters();
    assert!(c.sync_losses >= 2, "{c:?}");
    assert!(periodic_reports(&got)
        .iter()
        .all(|g| g.cut.is_none() && g.data == event_data(u64::from(g.counter.unwrap()), 600)));
}

#[test]
fn the_sync_timeout_loses_the_sync_before_six_misses() {
    let mut air = Air::default();
    let adv = Advertiser {
        step_at: 500_000,
        step_us: 400,
        ..Advertiser::new(US, 1, Phy::Le2M)
    };
    periodic(&mut air, &adv, 20_000, 8, 100, 300, 1_000_000);
    let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
    let config = Config {
        sync_timeout_us: 25_000,
        ..Config::default()
    };
    let mut f = follower(&mut buf, config, US);
    run(&mut f, &mut air, 0, 1_000_000);
    let c = f.counters();
    assert!(c.sync_losses >= 1, "{c:?}");
    // 10 ms apart: the third anchor after the last heard is past 25 ms.
    assert_eq!(c.anchors_missed, 2, "{c:?}");
}

#[test]
fn the_timer_wraps_across_an_event_and_a_train() {
    // Extended: the timer wraps inside the chain.
    let mut air = Air::default();
    let adv = Advertiser::new(US, 1, Phy::Le1M);
    let data = event_data(5, CHAIN_ADV_DATA_MAX);
    extended_event(&mut air, &adv, 0, 1_000, 7, &data, None);
    let base = (1u64 << 32) - 6_000;
    let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
    let mut f = follower(&mut buf, extended_only(), US);
    let got = run(&mut f, &mut air, base, 50_000);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].cut, &got[0].data), (None, &data));

    // Periodic: the wrap falls between anchors 30 and 31 of a 10 ms train.
    let mut air = Air::default();
    let adv = Advertiser {
        drift_ppm: -50.0,
        ..Advertiser::new(US, 1, Phy::Le2M)
    };
    periodic(&mut air, &adv, 20_000, 8, 200, 600, 2_100_000);
    let base = (1u64 << 32) - 325_000;
    let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
    let mut f = follower(&mut buf, Config::default(), US);
    let got = run(&mut f, &mut air, base, 2_000_000);
    let per = periodic_reports(&got);
    assert!(per.len() >= 190, "{}", per.len());
    let c = f.counters();
    assert_eq!((c.sync_losses, c.anchors_missed), (0, 0), "{c:?}");
}

/// Feed an ADV_EXT_IND heard on 37 at `t` (timer µs) pointing `offset_us` ahead, then the PDU
/// `aux` at the window's earliest start. Returns the follower's op after the ADV_EXT_IND.
fn feed_aux(
    f: &mut Follower<&mut [u8]>,
    t: u32,
    aux_ptr: AuxPtr,
    aux: &Builder<'_>,
) -> (Op, Option<Got>) {
    let ind = build(Builder {
        adi: aux.adi,
        aux_ptr: Some(aux_ptr),
        ..Builder::default()
    });
    assert!(f.received(t + 40, 37, Phy::Le1M, &ind).is_none());
    let op = f.op();
    let Op::Listen(Listen {
        start_us,
        window_us,
        phy,
        channel,
        ..
    }) = op
    else {
        return (op, None);
    };
    let at = start_us + window_us / 2;
    let got = f
        .received(at + address_air_us(phy), channel, phy, &build(*aux))
        .map(|r| Got {
            adv_a: r.adv_a,
            counter: r.periodic_counter,
            data: r.adv_data.to_vec(),
            cut: r.cut,
        });
    (op, got)
}

#[test]
fn an_aux_ptr_the_follower_cannot_follow_ends_the_event_marked() {
    let adi = Some(Adi { did: 1, sid: 1 });
    let to_aux = aux_ptr(5, Phy::Le2M, 600);
    for (next, why) in [
        (
            AuxPtr {
                offset: 0,
                ..aux_ptr(6, Phy::Le2M, 0)
            },
            "offset 0: not sent",
        ),
        (
            AuxPtr {
                phy: AuxPhy::Coded,
                ..aux_ptr(6, Phy::Le2M, 3_000)
            },
            "LE Coded",
        ),
        (
            aux_ptr(6, Phy::Le2M, 30),
            "an offset inside the packet itself",
        ),
    ] {
        let mut buf = [0u8; 300];
        let mut f = follower(&mut buf, extended_only(), US);
        let aux = Builder {
            adv_a: Some(US),
            adi,
            aux_ptr: Some(next),
            adv_data: b"first part",
            ..Builder::default()
        };
        let (_, got) = feed_aux(&mut f, 1_000, to_aux, &aux);
        let got = got.unwrap_or_else(|| panic!("{why}: no report"));
        assert_eq!(got.cut, Some(Cut::NotFollowed), "{why}");
        assert_eq!(got.data, b"first part", "{why}");
        assert!(
            matches!(f.op(), Op::ScanPrimary { .. }),
            "{why}: back to scanning"
        );
    }
    // An ADV_EXT_IND pointing to LE Coded is not followed at all.
    let mut buf = [0u8; 300];
    let mut f = follower(&mut buf, extended_only(), US);
    let coded = AuxPtr {
        phy: AuxPhy::Coded,
        ..to_aux
    };
    let (op, _) = feed_aux(&mut f, 1_000, coded, &Builder::default());
    assert_eq!(op, Op::ScanPrimary { channel: 37 });
}

fn sync_info(offset: u16) -> SyncInfo {
    SyncInfo {
        offset,
        units_300us: false,
        offset_adjust: false,
        interval: 8,
        channel_map: (1 << 37) - 1,
        sca: 5,
        access_address: 0x5A3C_96E1,
        crc_init: 0x12_3456,
        event_counter: 40,
    }
}

#[test]
fn a_sync_info_offset_of_zero_is_not_synced_to() {
    let mut buf = [0u8; 300];
    let mut f = follower(&mut buf, Config::default(), US);
    let aux = Builder {
        adv_a: Some(US),
        adi: Some(Adi { did: 1, sid: 1 }),
        sync_info: Some(sync_info(0)),
        ..Builder::default()
    };
    let (_, got) = feed_aux(&mut f, 1_000, aux_ptr(5, Phy::Le2M, 600), &aux);
    assert_eq!(got.map(|g| g.cut), Some(None), "the extended event itself");
    assert!(matches!(f.op(), Op::ScanPrimary { .. }));
    assert!(!f.synced());
}

#[test]
fn anchor_windows_widen_with_the_time_since_the_train_was_heard() {
    let mut buf = [0u8; 300];
    let mut f = follower(&mut buf, Config::default(), US);
    // SyncInfo: the AUX_SYNC_IND of event 40 lies 100 × 30 µs after the AUX_ADV_IND.
    let aux = Builder {
        adv_a: Some(US),
        adi: Some(Adi { did: 1, sid: 1 }),
        sync_info: Some(sync_info(100)),
        ..Builder::default()
    };
    let (first, _) = feed_aux(&mut f, 1_000, aux_ptr(5, Phy::Le2M, 600), &aux);
    let Op::Listen(Listen {
        start_us: aux_window,
        ..
    }) = first
    else {
        panic!("{first:?}")
    };
    // The AUX_ADV_IND was taken at the middle of its 30 + 2 × 33 µs window.
    let aux_start = aux_window + 48;
    let id = csa2::channel_identifier(0x5A3C_96E1);
    // The first anchor: 3,000 µs on, widened by 50 + 50 ppm over 3 ms (1 µs) + 32, plus the
    // 30 µs offset unit.
    let Op::Listen(Listen {
        start_us,
        window_us,
        channel,
        phy,
        access_address,
        crc_init,
    }) = f.op()
    else {
        panic!("{:?}", f.op())
    };
    assert_eq!((start_us, window_us), (aux_start + 3_000 - 33, 2 * 33 + 30));
    assert_eq!(channel, csa2::channel(40, id, (1 << 37) - 1).unwrap());
    assert_eq!(
        (phy, access_address, crc_init),
        (Phy::Le2M, 0x5A3C_96E1, 0x12_3456)
    );
    // Heard 10 µs into the unit: the anchor of event 40.
    let anchor = aux_start + 3_010;
    let sync_pdu = build(Builder {
        adv_data: b"periodic",
        ..Builder::default()
    });
    let got = f
        .received(anchor + 24, channel, Phy::Le2M, &sync_pdu)
        .map(|r| (r.periodic_counter, r.adv_data.to_vec()));
    assert_eq!(got, Some((Some(40), b"periodic".to_vec())));
    assert!(f.synced());
    // Then each missed anchor widens the next window: k intervals of 10 ms since the last
    // anchor heard, ⌈100 ppm × k × 10 ms⌉ + 32 µs each side, on CSA#2's channel for its counter.
    for k in 1..=5u32 {
        let Op::Listen(Listen {
            start_us,
            window_us,
            channel,
            ..
        }) = f.op()
        else {
            panic!("{:?}", f.op())
        };
        let w = k + 32;
        assert_eq!(start_us, anchor + k * 10_000 - w, "event {}", 40 + k);
        assert_eq!(window_us, 2 * w, "event {}", 40 + k);
        assert_eq!(
            channel,
            csa2::channel(40 + k as u16, id, (1 << 37) - 1).unwrap()
        );
        assert!(f.missed().is_none());
    }
    // The sixth miss loses the sync.
    assert!(f.missed().is_none());
    assert!(!f.synced());
    assert_eq!(f.op(), Op::ScanPrimary { channel: 37 });
    assert_eq!(f.counters().sync_losses, 1);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the AdvData's length, the PHY, where in its offset unit each AUX packet
        /// starts, the sender's drift within its declared 50 ppm, and where the timer wraps,
        /// an extended event and a stretch of its periodic train arrive intact.
        #[test]
        fn events_arrive_intact_within_the_declared_accuracy(
            len in 0usize..=CHAIN_ADV_DATA_MAX,
            two_m in any::<bool>(),
            jitter in 0u64..30,
            drift in -50.0f64..50.0,
            base in any::<u32>(),
            interval in 8u16..40,
        ) {
            let phy = if two_m { Phy::Le2M } else { Phy::Le1M };
            let adv = Advertiser { drift_ppm: drift, aux_jitter: jitter, ..Advertiser::new(US, 1, phy) };
            let data = event_data(7, len);
            let mut air = Air::default();
            extended_event(&mut air, &adv, 0, 1_000, 7, &data, None);
            let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
            let mut f = follower(&mut buf, extended_only(), US);
            let got = run(&mut f, &mut air, u64::from(base), 50_000);
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(got[0].cut, None);
            prop_assert_eq!(&got[0].data, &data);

            // A train whose chains fit the interval: 20 events after the sync, all whole.
            let per_event = 600.min(usize::from(interval) * 1250 / 12);
            let mut air = Air::default();
            periodic(&mut air, &adv, 20_000, interval, 40, per_event, 400_000);
            let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
            let mut f = follower(&mut buf, Config::default(), US);
            let until = 20_000 + 39 * u64::from(interval) * 1250 + u64::from(interval) * 625;
            let got = run(&mut f, &mut air, u64::from(base), until);
            let per = periodic_reports(&got);
            prop_assert!(per.len() >= 20, "{} periodic events", per.len());
            for g in per {
                prop_assert_eq!(g.cut, None);
                prop_assert_eq!(&g.data, &event_data(u64::from(g.counter.unwrap()), per_event));
            }
            // No anchor missed but the one after the train's last event (the run ends in the
            // middle of its interval; the follower may already have listened for it).
            let c = f.counters();
            prop_assert_eq!(c.sync_losses, 0);
            prop_assert!(c.anchors_missed <= 1, "{:?}", c);
        }
    }
}

#[test]
fn a_train_that_moves_to_a_new_channel_map_is_followed_across_the_instant() {
    // From event 30 the train uses channels 0–8 only; events 20–29 announce it in their ACAD.
    let new_map = 0x1FF;
    let mut air = Air::default();
    let adv = Advertiser::new(US, 1, Phy::Le2M);
    periodic_with(
        &mut air,
        &adv,
        (20_000, 8, 80, 600, 900_000),
        Some((new_map, 30)),
    );
    let mut buf = [0u8; CHAIN_ADV_DATA_MAX];
    let mut f = follower(&mut buf, Config::default(), US);
    let got = run(&mut f, &mut air, 0, 20_000 + 79 * 10_000 + 5_000);
    let per = periodic_reports(&got);
    let first = per[0].counter.unwrap();
    assert!(first < 20, "synced before the announcement: {first}");
    assert_eq!(
        per.len(),
        usize::from(80 - first),
        "every event, before and after the instant"
    );
    assert!(per.iter().all(|g| g.cut.is_none()));
    // (At most the anchor after the train's last event is missed: the run ends after it.)
    let c = f.counters();
    assert_eq!((c.syncs, c.sync_losses), (1, 0), "{c:?}");
    assert!(c.anchors_missed <= 1, "{c:?}");
    // Without the update the follower would look on the old map's channels from event 30 on.
    let id = csa2::channel_identifier(0x5A3C_96E1);
    let old_map: u64 = (1 << 37) - 1 - (1 << 5) - (1 << 17);
    assert!((30..80).any(|k| csa2::channel(k, id, old_map) != csa2::channel(k, id, new_map)));
}

#[test]
fn channel_map_updates_are_read_from_the_acad() {
    use ble_ext::follower::channel_map_update;
    let update = [8, 0x28, 0xFF, 0x01, 0, 0, 0, 30, 0];
    assert_eq!(channel_map_update(&update), Some((0x1FF, 30)));
    // After another AD structure; a map of one channel, a cut structure, other types: none.
    assert_eq!(
        channel_map_update(&[[2, 0x01, 0x06].as_slice(), &update].concat()),
        Some((0x1FF, 30))
    );
    assert_eq!(channel_map_update(&[8, 0x28, 1, 0, 0, 0, 0, 30, 0]), None);
    assert_eq!(channel_map_update(&[8, 0x28, 0xFF, 1]), None);
    assert_eq!(channel_map_update(&[2, 0x01, 0x06]), None);
    assert_eq!(channel_map_update(&[]), None);
}

#[test]
fn a_listen_window_holds_its_ends_and_wraps_with_the_timer() {
    let listen = Listen {
        start_us: u32::MAX - 10,
        window_us: 30,
        channel: 5,
        phy: Phy::Le2M,
        access_address: ADV_ACCESS_ADDRESS,
        crc_init: 0x55_5555,
    };
    assert_eq!(listen.end_us(), 19);
    assert!(listen.contains(u32::MAX - 10));
    assert!(listen.contains(0));
    assert!(listen.contains(19));
    assert!(!listen.contains(20));
    assert!(!listen.contains(u32::MAX - 11));
}
