//! The extended and periodic advertising capsule (`ext_scan`) with the real kernel crate: its
//! syscall driver over real grants and process doubles, the real `aux_radio` driver on the
//! RADIO/TIMER0/PPI register model (`support/aux_hw.rs`), and scripted air: extended events and
//! periodic trains built with `ble_ext::pdu::Builder`, each packet put on the air at a true
//! time on a channel, PHY and access address. A packet is heard when the driver's registers say
//! it listens there then: its start no earlier than the RADIO is receiving, its ADDRESS event
//! before the timeout's compare.

#[path = "support/aux_hw.rs"]
#[allow(dead_code)]
mod aux_hw;
#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;
#[path = "support/radio_hw.rs"]
#[allow(dead_code)]
mod radio_hw;

use std::cell::{Cell, RefCell};
use std::num::NonZeroU32;

use adv_transfer::bearer::{Phy, T_MAFS_US};
use aux_hw::AuxHw;
use ble_ext::pdu::Builder;
use ble_ext::{csa2, Adi, AuxPhy, AuxPtr, SyncInfo, ADV_ACCESS_ADDRESS};
use kernel::process::ShortId;
use kernel::syscall::SyscallDriver;
use kernel::ErrorCode;
use process::{FakeProcess, Harness};
use tock_ota_capsules::aux_radio::{
    address_air_us, rx_chain_delay_us, AuxClient, AuxRadio, Listen, ListenError, Missed,
    AUX_RX_BUF_LEN, RX_GUARD_US,
};
use tock_ota_capsules::bulk_scan::ReportRing;
use tock_ota_capsules::ext_scan::{
    command, rw_allow, upcall, ExtFollow, ExtReport, ExtScan, TimedReceiver, DRIVER_NUM, MAX_STEPS,
    REPORT_HEADER, SCAN_WINDOW_US,
};

const DFU_ID: NonZeroU32 = NonZeroU32::new(0x0D0F_0001).unwrap();
const ADV_A: [u8; 6] = [0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xC6];
const SID: u8 = 3;
const TRAIN_AA: u32 = 0x5A3C_9617;
const TRAIN_CRC_INIT: u32 = 0x12_3456;
/// The CPU's time from a packet's end to the completion's interrupt, µs.
const IRQ_LATENCY_US: u32 = 12;

/// A packet on the air (times on the receiver's timer, µs).
#[derive(Clone, Debug)]
struct Pkt {
    start: u32,
    channel: u8,
    phy: Phy,
    aa: u32,
    bytes: Vec<u8>,
    /// Lost on the air: the receiver hears nothing of it.
    lost: bool,
}

impl Pkt {
    fn end(&self) -> u32 {
        self.start
            .wrapping_add(self.phy.air_us(usize::from(self.bytes[1])))
    }
}

#[derive(Default)]
struct Air {
    pkts: Vec<Pkt>,
}

/// Whether wrapping time `a` is at or after `b`.
fn at_or_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

impl Air {
    fn put(&mut self, start: u32, channel: u8, phy: Phy, aa: u32, b: Builder<'_>) -> usize {
        let mut buf = [0u8; AUX_RX_BUF_LEN];
        let n = b.write(&mut buf).expect("a PDU the builder can write");
        self.pkts.push(Pkt {
            start,
            channel,
            phy,
            aa,
            bytes: buf[..n].to_vec(),
            lost: false,
        });
        self.pkts.len() - 1
    }

    /// Play the hardware until a listen opens at or after `until`: what the driver listens for
    /// is heard or times out. Returns the listens seen (channel, PHY, access address). Bounded.
    fn run(&self, hw: &AuxHw, until: u32) -> Vec<(u8, Phy, u32)> {
        let mut listens = Vec::new();
        for step in 0.. {
            assert!(
                step < 100_000,
                "the air did not reach {until} in 100,000 listens"
            );
            let Some(a) = hw.armed() else { break };
            if at_or_after(a.start_us, until) {
                break;
            }
            listens.push((a.channel, a.phy, a.access_address));
            let receiving_from = a.start_us.wrapping_sub(RX_GUARD_US);
            let heard = self.pkts.iter().find(|p| {
                let address = p
                    .start
                    .wrapping_add(address_air_us(p.phy) + rx_chain_delay_us(p.phy));
                !p.lost
                    && p.channel == a.channel
                    && p.phy == a.phy
                    && p.aa == a.access_address
                    && at_or_after(p.start, receiving_from)
                    && at_or_after(p.start, hw.now())
                    && !at_or_after(address, a.timeout_us)
            });
            match heard {
                Some(p) => hw.packet(p.start, &p.bytes, true, p.end() + IRQ_LATENCY_US),
                None => hw.timeout(),
            }
        }
        listens
    }
}

fn aux_ptr(channel: u8, phy: Phy, from: u32, to: u32) -> AuxPtr {
    AuxPtr {
        channel,
        ca_50ppm: true,
        units_300us: false,
        offset: (to.wrapping_sub(from) / 30) as u16,
        phy: AuxPhy::from(phy),
    }
}

/// The next chain PDU's start after a PDU at `start` of `len` payload octets: T_MAFS after
/// its end at the earliest, on the 30 µs grid from its start, 7 µs into the unit.
fn next_start(start: u32, phy: Phy, payload: usize) -> u32 {
    start.wrapping_add((phy.air_us(payload) + T_MAFS_US).div_ceil(30) * 30 + 7)
}

/// An extended event from `t0`: ADV_EXT_IND on 37, 38 and 39 (1M), the AUX_ADV_IND carrying
/// `parts[0]` on `channels[0]`, an AUX_CHAIN_IND for each further part, at `phy`. The
/// AUX_ADV_IND carries `sync_info` if given. Returns the indices of the AUX PDUs in `air`.
#[allow(clippy::too_many_arguments)]
fn ext_event(
    air: &mut Air,
    t0: u32,
    adv_a: [u8; 6],
    adi: Adi,
    phy: Phy,
    channels: &[u8],
    parts: &[&[u8]],
    sync_info: Option<SyncInfo>,
) -> Vec<usize> {
    let aux_start = t0.wrapping_add(3 * 400 + 500);
    for (i, ch) in [37u8, 38, 39].into_iter().enumerate() {
        let start = t0.wrapping_add(i as u32 * 400);
        air.put(
            start,
            ch,
            Phy::Le1M,
            ADV_ACCESS_ADDRESS,
            Builder {
                adi: Some(adi),
                aux_ptr: Some(aux_ptr(channels[0], phy, start, aux_start)),
                ..Builder::default()
            },
        );
    }
    let mut aux = Vec::new();
    let mut start = aux_start;
    for (i, part) in parts.iter().enumerate() {
        let first = i == 0;
        // The payload without the AuxPtr; with it, 3 more octets.
        let probe = Builder {
            adv_a: first.then_some(adv_a),
            adi: Some(adi),
            aux_ptr: (i + 1 < parts.len()).then_some(aux_ptr(0, phy, 0, 30)),
            sync_info: if first { sync_info } else { None },
            adv_data: part,
            ..Builder::default()
        };
        let payload = 1 + probe.ext_header_len() + part.len();
        let next = next_start(start, phy, payload);
        let b = Builder {
            aux_ptr: (i + 1 < parts.len()).then(|| aux_ptr(channels[i + 1], phy, start, next)),
            ..probe
        };
        aux.push(air.put(start, channels[i], phy, ADV_ACCESS_ADDRESS, b));
        start = next;
    }
    aux
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

/// One report as the process reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rep {
    cut: u8,
    adv_a: Option<[u8; 6]>,
    adi: Option<[u8; 2]>,
    counter: Option<u16>,
    data: Vec<u8>,
}

fn parse_batch(bytes: &[u8], reports: usize) -> Vec<Rep> {
    let mut out = Vec::new();
    let mut at = 0;
    for _ in 0..reports {
        let h = &bytes[at..at + REPORT_HEADER];
        let len = usize::from(u16::from_le_bytes([h[0], h[1]]));
        let has = h[3];
        let field = [h[10], h[11]];
        out.push(Rep {
            cut: h[2],
            adv_a: (has & 1 != 0).then(|| h[4..10].try_into().unwrap()),
            adi: (has & 2 != 0).then_some(field),
            counter: (has & 4 != 0).then(|| u16::from_le_bytes(field)),
            data: bytes[at + REPORT_HEADER..at + REPORT_HEADER + len].to_vec(),
        });
        at += REPORT_HEADER + len;
    }
    assert_eq!(at, bytes.len(), "the batch's bytes are its reports");
    out
}

type Follow = ExtFollow<'static, AuxRadio<'static>>;
type Driver = ExtScan<'static, AuxRadio<'static>>;

struct Rig {
    harness: Harness,
    hw: &'static AuxHw,
    follow: &'static Follow,
    driver: &'static Driver,
}

struct App {
    process: &'static FakeProcess,
    buffer: &'static [Cell<u8>],
}

impl Rig {
    fn new(ring_len: usize) -> Rig {
        let harness = Harness::new();
        let hw = AuxHw::new();
        hw.set_now(1_000);
        let adv_data = Box::leak(vec![0u8; 1650].into_boxed_slice());
        let ring: &'static mut ReportRing<ExtReport> = Box::leak(Box::new(ReportRing::new(
            Box::leak(vec![0u8; ring_len].into_boxed_slice()),
        )));
        let follow: &'static Follow =
            Box::leak(Box::new(ExtFollow::new(hw.driver, adv_data, ring)));
        hw.attach(follow);
        let driver: &'static Driver = Box::leak(Box::new(ExtScan::new(
            follow,
            harness.grant(DRIVER_NUM),
            DFU_ID,
        )));
        follow.set_sink(driver);
        Rig {
            harness,
            hw,
            follow,
            driver,
        }
    }

    fn app(&self, index: usize, short_id: ShortId) -> App {
        let process = self.harness.add_process(index, index + 1, short_id);
        self.driver.allocate_grant(process.id()).unwrap();
        let buffer: &'static [Cell<u8>] =
            Box::leak((0..8192).map(|_| Cell::new(0)).collect::<Box<[_]>>());
        process.allow_rw(DRIVER_NUM, rw_allow::BATCH, buffer);
        App { process, buffer }
    }

    fn dfu(&self) -> App {
        self.app(0, ShortId::Fixed(DFU_ID))
    }

    fn command(&self, app: &App, cmd: usize, a1: usize, a2: usize) -> Result<(), ErrorCode> {
        let ret = self.driver.command(cmd, a1, a2, app.process.id());
        match ret.get_failure() {
            Some(e) => Err(e),
            None => {
                assert!(ret.is_success());
                Ok(())
            }
        }
    }

    fn follow(&self, app: &App, adv_a: Option<[u8; 6]>, sid: Option<u8>) -> Result<(), ErrorCode> {
        let (a1, a2) = dfu_abi::ext_scan::filter_args(adv_a, sid);
        self.command(app, command::FOLLOW, a1 as usize, a2 as usize)
    }
}

impl App {
    /// Every upcall since the last call: `(subscribe number, args)`.
    fn upcalls(&self) -> Vec<(usize, (usize, usize, usize))> {
        self.process
            .take_upcalls()
            .into_iter()
            .map(|q| {
                assert_eq!(q.driver_num, DRIVER_NUM);
                (q.subscribe_num, q.args)
            })
            .collect()
    }

    /// The batches since the last call, parsed; `dropped` of each alongside.
    fn batches(&self) -> Vec<(Vec<Rep>, usize)> {
        self.upcalls()
            .into_iter()
            .map(|(n, (reports, bytes, dropped))| {
                assert_eq!(n, upcall::BATCH, "a batch upcall");
                let b: Vec<u8> = self.buffer[..bytes].iter().map(Cell::get).collect();
                (parse_batch(&b, reports), dropped)
            })
            .collect()
    }
}

fn adi() -> Adi {
    Adi {
        did: 0x123,
        sid: SID,
    }
}

fn adi_bytes() -> [u8; 2] {
    adi().to_bytes()
}

/// AdvData of an event of four PDUs: 200, 240, 240 and 100 octets.
fn four_parts(seed: u8) -> Vec<Vec<u8>> {
    [200, 240, 240, 100]
        .iter()
        .enumerate()
        .map(|(i, &n)| data(n, seed.wrapping_add(i as u8 * 31)))
        .collect()
}

fn refs(parts: &[Vec<u8>]) -> Vec<&[u8]> {
    parts.iter().map(Vec::as_slice).collect()
}

#[test]
fn an_extended_event_with_three_chain_pdus_is_one_report_with_its_adv_data() {
    for phy in [Phy::Le1M, Phy::Le2M] {
        let rig = Rig::new(8192);
        let app = rig.dfu();
        assert_eq!(rig.follow(&app, Some(ADV_A), None), Ok(()));
        let parts = four_parts(1);
        let mut air = Air::default();
        ext_event(
            &mut air,
            5_000,
            ADV_A,
            adi(),
            phy,
            &[4, 17, 30, 9],
            &refs(&parts),
            None,
        );
        let listens = air.run(rig.hw, 60_000);
        // The scan on 37 at 1M with the advertising address, then the four AUX PDUs where
        // their AuxPtrs said.
        assert_eq!(listens[0], (37, Phy::Le1M, ADV_ACCESS_ADDRESS));
        for ch in [4, 17, 30, 9] {
            assert!(
                listens.contains(&(ch, phy, ADV_ACCESS_ADDRESS)),
                "listened on {ch} at {phy:?}: {listens:?}"
            );
        }
        let batches = app.batches();
        assert_eq!(batches.len(), 1, "one batch: {batches:?}");
        let (reports, dropped) = &batches[0];
        assert_eq!(*dropped, 0);
        assert_eq!(
            reports,
            &vec![Rep {
                cut: dfu_abi::ext_scan::cut::WHOLE,
                adv_a: Some(ADV_A),
                adi: Some(adi_bytes()),
                counter: None,
                data: parts.concat(),
            }]
        );
        assert_eq!(rig.follow.counters().refused, 0);
        assert_eq!(rig.hw.overruns.get(), 0);
    }
}

/// Two extended events of `ADV_A`'s set on air, LE 2M, four parts each: `four_parts(1)` at
/// 5 ms and `four_parts(2)` at 35 ms. The air, the first event's AUX_ADV_IND and
/// AUX_CHAIN_INDs (indices into the air's packets) and the two events' parts.
fn two_events() -> TwoEvents {
    let first = four_parts(1);
    let second = four_parts(2);
    let mut air = Air::default();
    let aux = ext_event(
        &mut air,
        5_000,
        ADV_A,
        adi(),
        Phy::Le2M,
        &[4, 17, 30, 9],
        &refs(&first),
        None,
    );
    ext_event(
        &mut air,
        35_000,
        ADV_A,
        adi(),
        Phy::Le2M,
        &[5, 18, 31, 10],
        &refs(&second),
        None,
    );
    TwoEvents {
        air,
        aux,
        first,
        second,
    }
}

struct TwoEvents {
    air: Air,
    aux: Vec<usize>,
    first: Vec<Vec<u8>>,
    second: Vec<Vec<u8>>,
}

#[test]
fn a_lost_chain_pdu_cuts_the_report_and_the_next_event_is_whole() {
    let rig = Rig::new(8192);
    let app = rig.dfu();
    assert_eq!(rig.follow(&app, Some(ADV_A), Some(SID)), Ok(()));
    let TwoEvents {
        mut air,
        aux,
        first,
        second,
    } = two_events();
    // The second AUX_CHAIN_IND is lost.
    air.pkts[aux[2]].lost = true;
    air.run(rig.hw, 90_000);
    let mut reports = Vec::new();
    for (r, dropped) in app.batches() {
        assert_eq!(dropped, 0);
        reports.extend(r);
        assert_eq!(rig.command(&app, command::RELEASE, 0, 0), Ok(()));
    }
    reports.extend(app.batches().into_iter().flat_map(|(r, _)| r));
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(reports[0].cut, dfu_abi::ext_scan::cut::LOST);
    assert_eq!(
        reports[0].data,
        [first[0].clone(), first[1].clone()].concat()
    );
    assert_eq!(reports[1].cut, dfu_abi::ext_scan::cut::WHOLE);
    assert_eq!(reports[1].data, second.concat());
}

#[test]
fn a_report_that_does_not_fit_the_ring_is_dropped_and_counted() {
    // Room for one report of 780 octets of AdvData, not two.
    let rig = Rig::new(REPORT_HEADER + 780 + 500);
    let app = rig.dfu();
    assert_eq!(rig.follow(&app, Some(ADV_A), None), Ok(()));
    let mut air = Air::default();
    let events: Vec<Vec<Vec<u8>>> = (1..=3).map(four_parts).collect();
    for (i, parts) in events.iter().enumerate() {
        ext_event(
            &mut air,
            5_000 + 30_000 * i as u32,
            ADV_A,
            adi(),
            Phy::Le2M,
            &[4, 17, 30, 9],
            &refs(parts),
            None,
        );
    }
    air.run(rig.hw, 100_000);
    // The first went out at once; the app holds it. The second waits in the ring, the third
    // found no room.
    let batches = app.batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].0[0].data, events[0].concat());
    assert_eq!(rig.follow.counters().dropped, 1);
    assert_eq!(rig.command(&app, command::RELEASE, 0, 0), Ok(()));
    let batches = app.batches();
    assert_eq!(batches.len(), 1);
    let (reports, dropped) = &batches[0];
    assert_eq!(*dropped, 1, "the batch says one report was dropped");
    assert_eq!(reports.len(), 1);
    assert_eq!(
        reports[0].data,
        events[1].concat(),
        "the queued report is not overwritten"
    );
}

#[test]
fn a_chain_pdu_whose_start_has_passed_is_a_miss_and_following_goes_on() {
    let rig = Rig::new(8192);
    let app = rig.dfu();
    assert_eq!(rig.follow(&app, Some(ADV_A), None), Ok(()));
    let TwoEvents {
        air,
        aux,
        first,
        second,
    } = two_events();
    // Play until the AUX_ADV_IND is armed, then deliver it with the CPU so late that the
    // first AUX_CHAIN_IND's RXEN has passed when the completion runs.
    let aux_adv = air.pkts[aux[0]].clone();
    for step in 0.. {
        assert!(step < 100, "the AUX_ADV_IND was never listened for");
        let a = rig.hw.armed().expect("armed");
        if a.channel == aux_adv.channel && a.phy == Phy::Le2M {
            break;
        }
        let p = air
            .pkts
            .iter()
            .find(|p| p.channel == a.channel && p.start >= rig.hw.now());
        match p {
            Some(p) if a.channel >= 37 => rig.hw.packet(p.start, &p.bytes, true, p.end() + 5),
            _ => rig.hw.timeout(),
        }
    }
    let late = air.pkts[aux[1]].start;
    rig.hw.packet(aux_adv.start, &aux_adv.bytes, true, late);
    assert_eq!(
        rig.follow.counters().refused,
        1,
        "the chain PDU's listen was refused"
    );
    // The follower took it as a miss: the event is cut, and it scans again.
    let a = rig.hw.armed().expect("following goes on");
    assert_eq!((a.channel, a.access_address), (37, ADV_ACCESS_ADDRESS));
    air.run(rig.hw, 90_000);
    let mut reports: Vec<Rep> = Vec::new();
    for _ in 0..4 {
        reports.extend(app.batches().into_iter().flat_map(|(r, _)| r));
        let _ = rig.command(&app, command::RELEASE, 0, 0);
    }
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(
        (reports[0].cut, &reports[0].data),
        (dfu_abi::ext_scan::cut::LOST, &first[0])
    );
    assert_eq!(
        (reports[1].cut, &reports[1].data),
        (dfu_abi::ext_scan::cut::WHOLE, &second.concat())
    );
}

#[test]
fn another_advertisers_chain_is_ignored() {
    let rig = Rig::new(8192);
    let app = rig.dfu();
    assert_eq!(rig.follow(&app, Some(ADV_A), None), Ok(()));
    let foreign = four_parts(9);
    let ours = four_parts(1);
    let mut air = Air::default();
    let other = [0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xF0];
    ext_event(
        &mut air,
        5_000,
        other,
        Adi { did: 7, sid: 1 },
        Phy::Le2M,
        &[4, 17, 30, 9],
        &refs(&foreign),
        None,
    );
    ext_event(
        &mut air,
        35_000,
        ADV_A,
        adi(),
        Phy::Le2M,
        &[5, 18, 31, 10],
        &refs(&ours),
        None,
    );
    air.run(rig.hw, 90_000);
    let reports: Vec<Rep> = app.batches().into_iter().flat_map(|(r, _)| r).collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].adv_a, Some(ADV_A));
    assert_eq!(reports[0].data, ours.concat());
    assert!(rig.follow.follower_counters().foreign >= 1);
}

#[test]
fn a_periodic_train_is_followed_on_its_csa2_channels() {
    let rig = Rig::new(16384);
    let app = rig.dfu();
    assert_eq!(rig.follow(&app, Some(ADV_A), None), Ok(()));
    let interval_units = 8u16; // 10 ms
    let interval = u32::from(interval_units) * 1_250;
    let map: u64 = 0x1F_F0F0_F0F3;
    let first_counter = 100u16;
    let aux_start = 5_000 + 3 * 400 + 500;
    let first_anchor = aux_start + 6_000 + 11;
    let sync = SyncInfo {
        offset: ((first_anchor - aux_start) / 30) as u16,
        units_300us: false,
        offset_adjust: false,
        interval: interval_units,
        channel_map: map,
        sca: 5, // 50 ppm
        access_address: TRAIN_AA,
        crc_init: TRAIN_CRC_INIT,
        event_counter: first_counter,
    };
    let mut air = Air::default();
    let ext_parts = [data(40, 5)];
    ext_event(
        &mut air,
        5_000,
        ADV_A,
        adi(),
        Phy::Le2M,
        &[4],
        &refs(&ext_parts),
        Some(sync),
    );
    // Eight trains: AUX_SYNC_IND and one AUX_CHAIN_IND each, the sender's clock 20 ppm fast.
    let id = csa2::channel_identifier(TRAIN_AA);
    let mut expected = Vec::new();
    let mut channels = Vec::new();
    for k in 0..8u32 {
        let counter = first_counter + k as u16;
        let anchor =
            first_anchor + k * interval - (u64::from(k * interval) * 20 / 1_000_000) as u32;
        let ch = csa2::channel(counter, id, map).expect("a used channel");
        channels.push(ch);
        let head = data(230, k as u8);
        let tail = data(120, 0x80 | k as u8);
        let payload = 1 + 1 + 3 + head.len();
        let next = next_start(anchor, Phy::Le2M, payload);
        let chain_ch = (ch + 5) % 37;
        air.put(
            anchor,
            ch,
            Phy::Le2M,
            TRAIN_AA,
            Builder {
                aux_ptr: Some(aux_ptr(chain_ch, Phy::Le2M, anchor, next)),
                adv_data: &head,
                ..Builder::default()
            },
        );
        air.put(
            next,
            chain_ch,
            Phy::Le2M,
            TRAIN_AA,
            Builder {
                adv_data: &tail,
                ..Builder::default()
            },
        );
        expected.push((counter, [head, tail].concat()));
    }
    let listens = air.run(rig.hw, first_anchor + 7 * interval + 5_000);
    for ch in &channels {
        assert!(
            listens.contains(&(*ch, Phy::Le2M, TRAIN_AA)),
            "anchor channel {ch}: {listens:?}"
        );
    }
    let mut reports: Vec<Rep> = Vec::new();
    for _ in 0..20 {
        reports.extend(app.batches().into_iter().flat_map(|(r, _)| r));
        let _ = rig.command(&app, command::RELEASE, 0, 0);
    }
    // The extended event that carried the SyncInfo, then every train.
    assert_eq!(reports[0].data, ext_parts[0]);
    let periodic: Vec<(u16, Vec<u8>)> = reports[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.cut, dfu_abi::ext_scan::cut::WHOLE);
            assert_eq!(r.adv_a, Some(ADV_A), "the set synced through");
            (r.counter.expect("a periodic event counter"), r.data.clone())
        })
        .collect();
    assert_eq!(periodic, expected);
    let c = rig.follow.follower_counters();
    assert_eq!((c.syncs, c.anchors_heard, c.anchors_missed), (1, 8, 0));
}

#[test]
fn commands_past_exists_are_for_the_dfu_app_only() {
    let rig = Rig::new(4096);
    let other_key = rig.app(1, ShortId::Fixed(NonZeroU32::new(0x8000_1234).unwrap()));
    let unsigned = rig.app(2, ShortId::LocallyUnique);
    for app in [&other_key, &unsigned] {
        assert_eq!(rig.command(app, command::EXISTS, 0, 0), Ok(()));
        for cmd in [command::FOLLOW, command::STOP, command::RELEASE] {
            assert_eq!(
                rig.command(app, cmd, 0, 0),
                Err(ErrorCode::NODEVICE),
                "command {cmd}"
            );
        }
    }
    assert!(!rig.follow.is_following());
    assert!(rig.hw.armed().is_none(), "nothing listens");
    let dfu = rig.dfu();
    assert_eq!(
        rig.command(&dfu, command::STOP, 0, 0),
        Err(ErrorCode::RESERVE)
    );
    assert_eq!(
        rig.command(&dfu, command::FOLLOW, 1, 0),
        Err(ErrorCode::INVAL),
        "AdvA octets without the flag"
    );
    assert_eq!(rig.follow(&dfu, None, None), Ok(()));
    assert!(rig.hw.armed().is_some());
    assert_eq!(rig.command(&dfu, command::STOP, 0, 0), Ok(()));
    assert!(rig.hw.armed().is_none(), "stop cancels the listen");
}

#[test]
fn a_radio_held_by_the_legacy_driver_refuses_follow_and_a_later_take_stops_following() {
    let rig = Rig::new(4096);
    let app = rig.dfu();
    rig.hw.set_radio_taken(true);
    assert_eq!(rig.follow(&app, Some(ADV_A), None), Err(ErrorCode::BUSY));
    assert!(app.upcalls().is_empty(), "the command answered; no upcall");
    rig.hw.set_radio_taken(false);
    assert_eq!(rig.follow(&app, Some(ADV_A), None), Ok(()));
    // The scan window ends and another driver takes the RADIO at once: the next listen is
    // refused and following stops with BUSY.
    rig.hw.set_radio_taken(true);
    rig.hw.timeout();
    assert!(!rig.follow.is_following());
    assert_eq!(
        app.upcalls(),
        vec![(upcall::STOPPED, (usize::from(ErrorCode::BUSY), 0, 0))]
    );
}

/// A receiver the hardware cannot be: it completes a listen inside `listen` while told to,
/// and records every listen.
struct Instant {
    follow: Cell<Option<&'static ExtFollow<'static, Instant>>>,
    buf: RefCell<Option<&'static mut [u8; AUX_RX_BUF_LEN]>>,
    listens: RefCell<Vec<Listen>>,
    /// A PDU to receive inside the next `listen`s (one each), then nothing.
    inside: RefCell<Vec<Vec<u8>>>,
    /// Miss every listen inside `listen`, for ever.
    miss_all: Cell<bool>,
    now: Cell<u32>,
}

impl TimedReceiver for Instant {
    fn now_us(&self) -> u32 {
        self.now.get()
    }
    fn is_idle(&self) -> bool {
        true
    }
    fn listen(&self, listen: Listen) -> Result<(), ListenError> {
        self.listens.borrow_mut().push(listen);
        let follow = self.follow.get().expect("client set");
        if self.miss_all.get() {
            follow.missed(&listen, Missed::NothingInWindow);
        } else if !self.inside.borrow().is_empty() {
            let pdu = self.inside.borrow_mut().remove(0);
            let buf = self.buf.borrow_mut().take().expect("the buffer is back");
            buf[..pdu.len()].copy_from_slice(&pdu);
            let address = listen.start_us + 100 + address_air_us(listen.phy);
            follow.received(&listen, address, buf, pdu.len());
        }
        Ok(())
    }
    fn cancel(&self) {}
    fn buffer_back(&self, buf: &'static mut [u8; AUX_RX_BUF_LEN]) {
        *self.buf.borrow_mut() = Some(buf);
    }
}

fn instant_rig() -> (
    &'static Instant,
    &'static ExtFollow<'static, Instant>,
    App,
    &'static ExtScan<'static, Instant>,
    Harness,
) {
    let harness = Harness::new();
    let radio: &'static Instant = Box::leak(Box::new(Instant {
        follow: Cell::new(None),
        buf: RefCell::new(Some(Box::leak(Box::new([0u8; AUX_RX_BUF_LEN])))),
        listens: RefCell::new(Vec::new()),
        inside: RefCell::new(Vec::new()),
        miss_all: Cell::new(false),
        now: Cell::new(1_000),
    }));
    let ring = Box::leak(Box::new(ReportRing::new(Box::leak(
        vec![0u8; 4096].into_boxed_slice(),
    ))));
    let follow: &'static ExtFollow<'static, Instant> = Box::leak(Box::new(ExtFollow::new(
        radio,
        Box::leak(vec![0u8; 1650].into_boxed_slice()),
        ring,
    )));
    radio.follow.set(Some(follow));
    let driver: &'static ExtScan<'static, Instant> = Box::leak(Box::new(ExtScan::new(
        follow,
        harness.grant(DRIVER_NUM),
        DFU_ID,
    )));
    follow.set_sink(driver);
    let process = harness.add_process(0, 1, ShortId::Fixed(DFU_ID));
    driver.allocate_grant(process.id()).unwrap();
    let buffer: &'static [Cell<u8>] =
        Box::leak((0..4096).map(|_| Cell::new(0)).collect::<Box<[_]>>());
    process.allow_rw(DRIVER_NUM, rw_allow::BATCH, buffer);
    (radio, follow, App { process, buffer }, driver, harness)
}

#[test]
fn a_completion_before_listen_returns_is_followed_by_the_next_listen() {
    let (radio, follow, app, driver, _harness) = instant_rig();
    // The scan's listen hears our ADV_EXT_IND before `listen` returns.
    let mut pdu = [0u8; AUX_RX_BUF_LEN];
    let n = Builder {
        adi: Some(adi()),
        aux_ptr: Some(AuxPtr {
            channel: 21,
            ca_50ppm: true,
            units_300us: false,
            offset: 40,
            phy: AuxPhy::Le2M,
        }),
        ..Builder::default()
    }
    .write(&mut pdu)
    .unwrap();
    radio.inside.borrow_mut().push(pdu[..n].to_vec());
    let (a1, a2) = dfu_abi::ext_scan::filter_args(Some(ADV_A), None);
    assert!(driver
        .command(command::FOLLOW, a1 as usize, a2 as usize, app.process.id())
        .is_success());
    let listens = radio.listens.take();
    assert_eq!(listens.len(), 2, "{listens:?}");
    assert_eq!((listens[0].channel, listens[0].phy), (37, Phy::Le1M));
    // Then the AUX_ADV_IND where the AuxPtr said, armed once, outstanding.
    assert_eq!((listens[1].channel, listens[1].phy), (21, Phy::Le2M));
    assert_eq!(follow.counters().early_completions, 1);
    assert!(follow.is_following());
    // Its completion, when it comes, is taken: the window closed, so the follower scans again.
    follow.missed(&listens[1], Missed::NothingInWindow);
    let listens = radio.listens.take();
    assert_eq!(listens.len(), 1);
    assert_eq!(listens[0].channel, 37);
    assert!(app.upcalls().is_empty());
}

#[test]
fn a_receiver_that_completes_every_listen_at_once_cannot_keep_the_kernel_busy() {
    let (radio, follow, app, driver, _harness) = instant_rig();
    radio.miss_all.set(true);
    let (a1, a2) = dfu_abi::ext_scan::filter_args(Some(ADV_A), None);
    let ret = driver.command(command::FOLLOW, a1 as usize, a2 as usize, app.process.id());
    assert_eq!(ret.get_failure(), Some(ErrorCode::FAIL));
    assert_eq!(radio.listens.take().len(), MAX_STEPS);
    assert!(!follow.is_following());
}

#[test]
fn a_primary_channel_is_listened_to_for_its_whole_window_then_the_next() {
    let rig = Rig::new(4096);
    let app = rig.dfu();
    assert_eq!(rig.follow(&app, None, None), Ok(()));
    let first = rig.hw.armed().expect("scanning");
    assert_eq!(
        (
            first.channel,
            first.phy,
            first.access_address,
            first.crc_init
        ),
        (37, Phy::Le1M, ADV_ACCESS_ADDRESS, 0x55_5555)
    );
    // A packet with a bad CRC, then a legacy advertisement: the rest of the same window.
    rig.hw
        .packet(6_000, &[0x02, 6, 1, 2, 3, 4, 5, 6], false, 6_100);
    let a = rig.hw.armed().expect("listening");
    assert_eq!((a.channel, a.timeout_us), (37, first.timeout_us));
    rig.hw
        .packet(7_000, &[0x02, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9], true, 7_200);
    let a = rig.hw.armed().expect("listening");
    assert_eq!((a.channel, a.timeout_us), (37, first.timeout_us));
    // The window's end moves the scan to 38, then 39, then 37, each for a whole window.
    for ch in [38, 39, 37] {
        rig.hw.timeout();
        let a = rig.hw.armed().expect("scanning");
        assert_eq!(a.channel, ch);
        assert_eq!(
            a.timeout_us.wrapping_sub(a.start_us),
            SCAN_WINDOW_US + address_air_us(Phy::Le1M) + 10 + 2,
            "a whole window and the latest ADDRESS after it"
        );
    }
    assert!(app.upcalls().is_empty());
}

#[test]
fn an_event_across_the_timers_wrap_is_followed() {
    let rig = Rig::new(8192);
    rig.hw.set_now(u32::MAX - 9_000);
    let app = rig.dfu();
    assert_eq!(rig.follow(&app, Some(ADV_A), None), Ok(()));
    let parts = four_parts(4);
    let mut air = Air::default();
    // The ADV_EXT_INDs before the wrap, the chain across it.
    let t0 = u32::MAX - 4_000;
    ext_event(
        &mut air,
        t0,
        ADV_A,
        adi(),
        Phy::Le2M,
        &[4, 17, 30, 9],
        &refs(&parts),
        None,
    );
    assert!(
        air.pkts.iter().any(|p| p.start < 10_000),
        "the event crosses the wrap"
    );
    air.run(rig.hw, 40_000);
    let reports: Vec<Rep> = app.batches().into_iter().flat_map(|(r, _)| r).collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].cut, dfu_abi::ext_scan::cut::WHOLE);
    assert_eq!(reports[0].data, parts.concat());
}

#[test]
fn following_stops_when_the_process_is_gone() {
    let rig = Rig::new(4096);
    let app = rig.dfu();
    assert_eq!(rig.follow(&app, Some(ADV_A), None), Ok(()));
    assert!(rig.hw.armed().is_some());
    app.process.kill();
    // The scan window ends: nobody to listen for, so the RADIO is not kept.
    rig.hw.timeout();
    assert!(!rig.follow.is_following());
    assert!(rig.hw.armed().is_none());
}

#[test]
fn a_foreign_packet_in_a_window_makes_the_rest_of_it_a_refused_listen_and_a_miss() {
    let rig = Rig::new(8192);
    let app = rig.dfu();
    assert_eq!(rig.follow(&app, Some(ADV_A), None), Ok(()));
    let TwoEvents {
        mut air,
        aux,
        second,
        ..
    } = two_events();
    // Another set's AUX_ADV_IND on the same channel, in our window before ours and ending
    // before the window closes (the window is 96 µs wide, the packet 84 µs long).
    let ours = air.pkts[aux[0]].start;
    let mut foreign = Air::default();
    foreign.put(
        ours - 60,
        4,
        Phy::Le2M,
        ADV_ACCESS_ADDRESS,
        Builder {
            adv_a: Some([9; 6]),
            adi: Some(Adi { did: 1, sid: 9 }),
            ..Builder::default()
        },
    );
    air.pkts.insert(0, foreign.pkts.remove(0));
    air.run(rig.hw, 90_000);
    assert_eq!(
        rig.follow.counters().refused,
        1,
        "the rest of the window could not be met"
    );
    let reports: Vec<Rep> = app.batches().into_iter().flat_map(|(r, _)| r).collect();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].data, second.concat());
}
