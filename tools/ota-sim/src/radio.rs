//! The simulated advertising link and the board's scanner: a sender on the host advertising on
//! its own timeline, and the bulk-scan capsule's report ring on the board.
//!
//! The sender's advertising events come every advInterval + advDelay (uniform 0–10 ms). Each
//! event's PDU reaches the board's ring unless it is lost (`loss`), falls in a scan gap (the
//! board stops listening while it sends a status, and `scan_duty` of the rest) or the ring is
//! full; it may arrive twice (`dup`, heard on two channels) or late (`reorder`, 1–3 events).
//! Events are generated lazily up to the board's clock whenever the kernel model touches the
//! radio, so time the app spends staging is time the sender keeps advertising.
use std::collections::VecDeque;

use adv_transfer::bearer::{self, Bearer, Phy};
use adv_transfer::wire::{ADV_DATA_MAX, EXT_ADV_DATA_MAX};
use adv_transfer::Sender;
use ble_ext::{Config, Filter, Follower, Op};
use dfu_abi::scan;
// The sender's PDUs on air, with the whole-device emulation's sender: `ext_air` (its address is
// the session's, as on legacy).
use dfu_app::Batch;
use ext_air::AirPdu;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::transfer::{hostile_adv, LinkParams};

/// The board's report ring for legacy advertising.
pub const RING_BYTES: usize = boot_nrf::NRF52840_DK_SCAN_RING_BYTES;

/// PDU header and AdvA before the AdvData; ADV_NONCONN_IND.
const PDU_HEAD: usize = 8;
const ADV_NONCONN_IND: u8 = 0x02;

/// One advertisement as the scanner reports it: the advertiser address (AdvA) and the AdvData.
type Report = ([u8; 6], Vec<u8>);

struct Delivery {
    at_event: u64,
    report: Report,
}

/// The link, the sender and the board's scanner.
pub struct Radio<'a> {
    params: &'a LinkParams,
    /// The sender's timeline and the board's receptions.
    rng: ChaCha8Rng,
    /// The statuses' way back to the sender (apart, so the app's status pacing does not shift
    /// the sender's timeline).
    back_rng: ChaCha8Rng,
    pub sender: Sender<'a>,
    /// Time of the next advertising event, µs; `None` until the board first scans.
    next_event_us: Option<f64>,
    /// When the board first started scanning (the transfer's start), µs.
    pub started_us: Option<u64>,
    pending: Vec<Delivery>,
    ring: VecDeque<Report>,
    ring_bytes: usize,
    dropped: u32,
    scanning: bool,
    gap_until_us: f64,
    pub events: u64,
    /// AdvData bytes the sender put on air (one copy per event).
    pub adv_data_bytes: u64,
    /// Whole PDUs on air: preamble, access address, header, AdvA, AdvData, CRC, × 3 channels.
    pub air_bytes: u64,
    pub status_pdus: u64,
    pub hostile_pdus: u64,
}

impl<'a> Radio<'a> {
    pub fn new(params: &'a LinkParams, sender: Sender<'a>, seed: u64) -> Self {
        Radio {
            params,
            rng: ChaCha8Rng::seed_from_u64(seed),
            back_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5A7A_7005),
            sender,
            next_event_us: None,
            started_us: None,
            pending: Vec::new(),
            ring: VecDeque::new(),
            ring_bytes: 0,
            dropped: 0,
            scanning: false,
            gap_until_us: 0.0,
            events: 0,
            adv_data_bytes: 0,
            air_bytes: 0,
            status_pdus: 0,
            hostile_pdus: 0,
        }
    }

    fn schedule_next(&mut self, after_us: f64) {
        let delay = self.rng.gen::<f64>() * self.params.adv_delay_max_ms;
        self.next_event_us = Some(after_us + (self.params.adv_interval_ms + delay) * 1000.0);
    }

    /// The scanner starts (the sender starts advertising with the first scan of the run).
    pub fn start_scan(&mut self, now_us: u64) {
        self.catch_up(now_us);
        self.scanning = true;
        if self.next_event_us.is_none() {
            self.started_us = Some(now_us);
            self.schedule_next(now_us as f64);
        }
    }

    /// The scanner stops (stop command or reboot): queued reports are discarded.
    pub fn stop_scan(&mut self, now_us: u64) {
        self.catch_up(now_us);
        self.scanning = false;
        self.ring.clear();
        self.ring_bytes = 0;
        self.pending.clear();
    }

    pub fn is_scanning(&self) -> bool {
        self.scanning
    }

    /// When the next advertising event happens, µs.
    pub fn next_event_at(&self) -> Option<u64> {
        self.next_event_us.map(|t| t.ceil() as u64)
    }

    /// Run the sender's events up to `now_us`.
    pub fn catch_up(&mut self, now_us: u64) {
        while let Some(t) = self.next_event_us {
            if t > now_us as f64 {
                break;
            }
            self.event(t);
            self.schedule_next(t);
        }
    }

    fn event(&mut self, t_us: f64) {
        let p = self.params;
        self.events += 1;
        let mut adv = [0u8; ADV_DATA_MAX];
        let n = self.sender.next_adv(&mut adv);
        self.adv_data_bytes += n as u64;
        self.air_bytes += 3 * (1 + 4 + 2 + 6 + n as u64 + 3);
        let event = self.events;
        let listening = self.scanning && t_us >= self.gap_until_us;
        let heard = listening && self.rng.gen::<f64>() < p.scan_duty;
        let address = self.sender.address();
        if heard && self.rng.gen::<f64>() < p.hostile {
            let total = self.sender.total_chunks();
            let report = hostile_adv(&mut self.rng, address, &adv[..n], total);
            self.hostile_pdus += 1;
            self.pending.push(Delivery {
                at_event: event,
                report,
            });
        }
        if heard && self.rng.gen::<f64>() >= p.loss {
            let copies = if self.rng.gen::<f64>() < p.dup { 2 } else { 1 };
            for _ in 0..copies {
                let late = if self.rng.gen::<f64>() < p.reorder {
                    self.rng.gen_range(1..=3)
                } else {
                    0
                };
                self.pending.push(Delivery {
                    at_event: event + late,
                    report: (address, adv[..n].to_vec()),
                });
            }
        }
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].at_event <= event {
                let d = self.pending.remove(i);
                self.enqueue(d.report);
            } else {
                i += 1;
            }
        }
    }

    fn enqueue(&mut self, report: Report) {
        let size = scan::REPORT_HEADER + PDU_HEAD + report.1.len();
        if !self.scanning || self.ring_bytes + size > RING_BYTES {
            self.dropped += 1;
            return;
        }
        self.ring_bytes += size;
        self.ring.push_back(report);
    }

    /// The capsule's delivery: whole reports, oldest first, as many as fit in `buffer`.
    pub fn take_batch(&mut self, buffer: &mut [u8]) -> Option<Batch> {
        let (at, reports) = write_batch(&mut self.ring, buffer, legacy_report);
        self.ring_bytes -= at;
        if reports == 0 {
            return None;
        }
        let dropped = std::mem::take(&mut self.dropped);
        Some(Batch {
            reports,
            bytes: at as u32,
            dropped,
        })
    }

    /// The board advertises `adv_data` once (its status): the scanner is deaf meanwhile, and the
    /// sender hears it unless it is lost.
    pub fn advertise(&mut self, now_us: u64, adv_data: &[u8]) {
        self.catch_up(now_us);
        self.status_pdus += 1;
        self.gap_until_us = now_us as f64 + self.params.status_gap_ms * 1000.0;
        if self.back_rng.gen::<f64>() >= self.params.loss {
            self.sender.on_adv(adv_data);
        }
    }
}

/// A legacy report as bulk-scan writes it (`dfu_abi::scan::REPORT_HEADER`: length, channel,
/// then the ADV_NONCONN_IND PDU: header, AdvA, AdvData) into `out`, if it fits; its size.
fn legacy_report((address, adv): &Report, out: &mut [u8]) -> Option<usize> {
    let pdu_len = PDU_HEAD + adv.len();
    let size = scan::REPORT_HEADER + pdu_len;
    let out = out.get_mut(..size)?;
    out[0] = pdu_len as u8;
    out[1] = 37;
    out[2] = ADV_NONCONN_IND;
    out[3] = (6 + adv.len()) as u8;
    out[4..10].copy_from_slice(address);
    out[10..].copy_from_slice(adv);
    Some(size)
}

/// Whole reports from the front of `ring` into `buffer` while they fit, as the capsules'
/// batch hand-off does: the bytes written and the reports taken.
fn write_batch<R>(
    ring: &mut VecDeque<R>,
    buffer: &mut [u8],
    write: impl Fn(&R, &mut [u8]) -> Option<usize>,
) -> (usize, u32) {
    let (mut at, mut reports) = (0usize, 0u32);
    while let Some(r) = ring.front() {
        let Some(n) = write(r, &mut buffer[at..]) else {
            break;
        };
        at += n;
        reports += 1;
        ring.pop_front();
    }
    (at, reports)
}

/// An ext_scan report as the capsule stores it: the `dfu_abi::ext_scan::REPORT_HEADER` table
/// (AdvData length, how the chain ended, which fields hold values, AdvA, ADI or periodic event
/// counter) and the AdvData.
fn ext_report(r: &ble_ext::Report<'_>) -> Vec<u8> {
    use dfu_abi::ext_scan::{cut, has, MAX_ADV_DATA, REPORT_HEADER};
    let adv_data = &r.adv_data[..r.adv_data.len().min(MAX_ADV_DATA)];
    let mut v = vec![0u8; REPORT_HEADER];
    v[0..2].copy_from_slice(&(adv_data.len() as u16).to_le_bytes());
    v[2] = match r.cut {
        None => cut::WHOLE,
        Some(ble_ext::Cut::Lost) => cut::LOST,
        Some(ble_ext::Cut::NotFollowed) => cut::NOT_FOLLOWED,
        Some(ble_ext::Cut::Overflow) => cut::OVERFLOW,
    };
    if let Some(a) = r.adv_a {
        v[3] |= has::ADV_A;
        v[4..10].copy_from_slice(&a);
    }
    if let Some(adi) = r.adi {
        v[3] |= has::ADI;
        v[10..12].copy_from_slice(&adi.to_bytes());
    } else if let Some(counter) = r.periodic_counter {
        v[3] |= has::PERIODIC_COUNTER;
        v[10..12].copy_from_slice(&counter.to_le_bytes());
    }
    v.extend_from_slice(adv_data);
    v
}

fn copy_ext_report(r: &[u8], out: &mut [u8]) -> Option<usize> {
    out.get_mut(..r.len())?.copy_from_slice(r);
    Some(r.len())
}

/// The extended and periodic advertising link ([`ChainRadio`]): timing and drift parameters
/// beside [`LinkParams`] (whose `loss` is then per PDU, `adv_delay_max_ms` the advDelay of
/// extended events and `status_gap_ms` the board's deaf time per status).
#[derive(Clone, Debug)]
pub struct BearerLink {
    /// The sender's interval, µs: an extended set's advInterval or the periodic interval
    /// (0: the shortest legal one for a full chain, [`Bearer::budget`]).
    pub interval_us: u32,
    /// Sleep clock accuracy each side declares, ppm (the receiver widens its window by both).
    pub sca_tx_ppm: f64,
    pub sca_rx_ppm: f64,
    /// Actual clock error of each side, ppm (inside the declared accuracy on a good board).
    pub drift_tx_ppm: f64,
    pub drift_rx_ppm: f64,
    /// A periodic train not heard for this long is lost; the receiver syncs again, µs.
    pub sync_timeout_us: f64,
    /// The board's report ring for extended reports, bytes.
    pub ring_bytes: usize,
    /// The sender starts this long after the board's first scan, µs: the board has listened
    /// (and erased its staging slot ahead, as the DFU app does when idle) before the update.
    pub sender_delay_us: u64,
}

impl Default for BearerLink {
    fn default() -> Self {
        BearerLink {
            interval_us: 0,
            sca_tx_ppm: bearer::SCA_PPM_DEFAULT as f64,
            sca_rx_ppm: bearer::SCA_PPM_DEFAULT as f64,
            drift_tx_ppm: 20.0,
            drift_rx_ppm: -20.0,
            sync_timeout_us: 100_000.0,
            ring_bytes: CHAIN_RING_BYTES,
            sender_delay_us: 0,
        }
    }
}

/// What the chained link did.
#[derive(Clone, Debug, Default)]
pub struct ChainStats {
    /// Advertising events of the sender: legacy (before the pick, or a legacy session) and
    /// chained (extended or periodic events that carried data).
    pub legacy_events: u64,
    pub chained_events: u64,
    /// Chain PDUs put on air, lost (`loss`, a status gap, or outside the receive window), and
    /// chains cut short by a loss (the rest of the chain lost with it).
    pub chain_pdus: u64,
    pub chain_pdus_lost: u64,
    pub chains_cut: u64,
    /// Periodic trains synchronised to, and syncs lost (nothing heard for the sync timeout).
    pub syncs: u64,
    pub sync_losses: u64,
    /// Reports the ring had no room for.
    pub ring_drops: u64,
    /// Half the widest anchor window the follower opened (its widening, and half the SyncInfo
    /// offset unit on the first anchor), µs, and the largest distance of an anchor from its
    /// window's middle, µs.
    pub max_widening_us: f64,
    pub max_anchor_error_us: f64,
    /// Sum of the air time of the sender's events, µs.
    pub air_us: f64,
    pub status_pdus: u64,
}

/// The sender on the host and the board's receiver over legacy advertising (until the
/// receiver's pick) and then the picked bearer. The sender's chained events are real PDUs
/// (written by `ble_ext::pdu::Builder`): extended events (three ADV_EXT_IND on the primary
/// channels, their AuxPtrs to the AUX_ADV_IND on a secondary channel, AUX_CHAIN_IND T_MAFS
/// apart) or a periodic train (AUX_SYNC_IND on the CSA#2 channel of its event counter and its
/// chain, anchors at the interval by the sender's clock) with its extended set (SyncInfo) every
/// advInterval + advDelay. What the board hears is decided by the follower the kernel will run
/// (`ble_ext::Follower`), on the board's clock: a PDU is heard when the follower listens on its
/// channel, PHY and access address with its start inside the window, and it is not lost
/// (`loss`, or the board's status gap). A lost PDU loses the rest of its chain (the AuxPtr to
/// the next was in it).
///
/// The board hears through the two drivers the DFU app uses ([`crate::ext_kernel`]):
/// bulk-scan (legacy advertising, into a [`RING_BYTES`] ring while it scans) and ext_scan (the
/// follower, into a `link.ring_bytes` ring while it follows), each handing out batches in
/// `dfu_abi`'s report format.
pub struct ChainRadio<'a> {
    params: &'a LinkParams,
    link: BearerLink,
    rng: ChaCha8Rng,
    back_rng: ChaCha8Rng,
    pub sender: Sender<'a>,
    next_event_us: Option<f64>,
    pub started_us: Option<u64>,
    /// Bulk-scan's ring (legacy reports, while the board scans) and ext_scan's (encoded
    /// reports, while it follows), with the bytes each holds and the drops not yet reported in
    /// a batch.
    scanning: bool,
    ring: VecDeque<Report>,
    ring_used: usize,
    dropped: u32,
    ext_ring: VecDeque<Vec<u8>>,
    ext_used: usize,
    ext_dropped: u32,
    gap: (f64, f64),
    /// Periodic: the sender's first anchor and the next event's count.
    train: Option<(f64, u64)>,
    /// Periodic: the extended set's next event (its SyncInfo points to the train).
    sync_set_us: Option<f64>,
    /// The board's receiver of chained events (what ext_scan drives: following when the app
    /// asked it to), and the chained bearer the sender is on.
    follower: Follower<Box<[u8]>>,
    following: Option<Bearer>,
    /// PDUs on the air the board has not met yet, in time order.
    pending: VecDeque<AirPdu>,
    /// The board's status waiting for its advDelay: when it goes out, and its AdvData.
    status: Option<(f64, Vec<u8>)>,
    pub stats: ChainStats,
}

/// The ext_scan ring the model gives the board: the DK board's (its `ble5` feature), whole
/// reports of `dfu_abi::ext_scan::MAX_REPORT` bytes.
pub const CHAIN_RING_BYTES: usize =
    boot_nrf::NRF52840_DK_EXT_RING_REPORTS * dfu_abi::ext_scan::MAX_REPORT;
/// The model train (`ext_air::MODEL_TRAIN`: any valid access address and CRC init, the
/// follower takes them from the SyncInfo; every data channel).
const TRAIN: ext_air::Train = ext_air::MODEL_TRAIN;
const TRAIN_AA: u32 = TRAIN.aa;

impl<'a> ChainRadio<'a> {
    pub fn new(params: &'a LinkParams, link: BearerLink, sender: Sender<'a>, seed: u64) -> Self {
        let config = Config {
            sca_ppm: link.sca_rx_ppm.round() as u32,
            periodic: true,
            // The model's rule: the sync is lost when nothing was heard for the timeout.
            max_missed_anchors: u16::MAX,
            sync_timeout_us: link.sync_timeout_us as u32,
        };
        ChainRadio {
            params,
            link,
            rng: ChaCha8Rng::seed_from_u64(seed),
            back_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5A7A_7005),
            sender,
            next_event_us: None,
            started_us: None,
            scanning: false,
            ring: VecDeque::new(),
            ring_used: 0,
            dropped: 0,
            ext_ring: VecDeque::new(),
            ext_used: 0,
            ext_dropped: 0,
            gap: (0.0, 0.0),
            train: None,
            sync_set_us: None,
            follower: Follower::new(config, vec![0u8; EXT_ADV_DATA_MAX].into_boxed_slice()),
            following: None,
            pending: VecDeque::new(),
            status: None,
            stats: ChainStats::default(),
        }
    }

    /// The sender starts advertising and the board scanning.
    pub fn start(&mut self, now_us: u64) {
        self.started_us = Some(now_us);
        self.next_event_us = Some(now_us as f64);
    }

    fn next_any(&self) -> Option<f64> {
        match (self.next_event_us, self.sync_set_us) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the board next meets something on air: the sender's next event, or the next PDU
    /// of one already on air.
    pub fn next_event_at(&self) -> Option<u64> {
        let pdu = self.pending.front().map(|p| p.start);
        let t = match (self.next_any(), pdu) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        t.map(|t| t.ceil() as u64)
    }

    /// Bulk-scan `START`: the board hears legacy advertising (the sender starts advertising
    /// with the board's first scan).
    pub fn start_scan(&mut self, now_us: u64) {
        self.catch_up(now_us);
        if self.started_us.is_none() {
            self.start(now_us + self.link.sender_delay_us);
        }
        self.scanning = true;
    }

    /// Bulk-scan `STOP`: queued reports are discarded.
    pub fn stop_scan(&mut self, now_us: u64) {
        self.catch_up(now_us);
        self.scanning = false;
        self.ring.clear();
        self.ring_used = 0;
    }

    pub fn is_scanning(&self) -> bool {
        self.scanning
    }

    /// Ext-scan `FOLLOW` of `adv_a`: the follower starts again from the primary channels, the
    /// queued reports discarded (the capsule's contract).
    pub fn follow(&mut self, now_us: u64, adv_a: [u8; 6]) {
        self.catch_up(now_us);
        self.follower.follow(Filter {
            adv_a: Some(adv_a),
            sid: None,
        });
        self.clear_ext();
    }

    /// Ext-scan `STOP`: the sync and the queued reports are gone.
    pub fn stop_follow(&mut self, now_us: u64) {
        self.catch_up(now_us);
        self.follower.stop();
        self.clear_ext();
    }

    /// Whether the follower runs (`FOLLOW` and no `STOP` since).
    pub fn is_following(&self) -> bool {
        !matches!(self.follower.op(), Op::Idle)
    }

    fn clear_ext(&mut self) {
        self.ext_ring.clear();
        self.ext_used = 0;
    }

    /// Bulk-scan's batch: whole legacy reports, oldest first, as many as fit in `buffer`.
    pub fn take_batch(&mut self, buffer: &mut [u8]) -> Option<Batch> {
        let (at, reports) = write_batch(&mut self.ring, buffer, legacy_report);
        self.ring_used -= at;
        (reports > 0).then(|| Batch {
            reports,
            bytes: at as u32,
            dropped: std::mem::take(&mut self.dropped),
        })
    }

    /// Ext-scan's batch: whole reports (`dfu_abi::ext_scan` format), as many as fit.
    pub fn take_ext_batch(&mut self, buffer: &mut [u8]) -> Option<Batch> {
        let (at, reports) =
            write_batch(&mut self.ext_ring, buffer, |r, out| copy_ext_report(r, out));
        self.ext_used -= at;
        (reports > 0).then(|| Batch {
            reports,
            bytes: at as u32,
            dropped: std::mem::take(&mut self.ext_dropped),
        })
    }

    pub fn catch_up(&mut self, now_us: u64) {
        while let Some(t) = self.next_any() {
            if t > now_us as f64 {
                break;
            }
            self.air_until(t);
            self.status_until(t);
            if self.sync_set_us == Some(t) {
                self.sync_set_event(t);
            } else {
                let next = self.event(t);
                self.next_event_us = Some(next);
            }
        }
        self.air_until(now_us as f64);
        self.status_until(now_us as f64);
    }

    /// The board's status goes out once its advDelay has passed: deaf meanwhile, and the
    /// sender hears it unless it is lost.
    fn status_until(&mut self, t: f64) {
        if let Some((at, status)) = self.status.take_if(|(at, _)| *at <= t) {
            self.gap = (at, at + self.params.status_gap_ms * 1000.0);
            if self.back_rng.gen::<f64>() >= self.params.loss {
                self.sender.on_adv(&status);
            }
        }
    }

    /// A legacy advertisement into bulk-scan's ring (`RING_BYTES`, the board's), if it scans.
    fn enqueue_legacy(&mut self, adv: Vec<u8>) {
        if !self.scanning {
            return;
        }
        let size = scan::REPORT_HEADER + PDU_HEAD + adv.len();
        if self.ring_used + size > RING_BYTES {
            self.dropped += 1;
            self.stats.ring_drops += 1;
            return;
        }
        self.ring_used += size;
        self.ring.push_back((self.sender.address(), adv));
    }

    /// An event's report into ext_scan's ring (`link.ring_bytes`).
    fn enqueue_ext(&mut self, report: Vec<u8>) {
        if self.ext_used + report.len() > self.link.ring_bytes {
            self.ext_dropped += 1;
            self.stats.ring_drops += 1;
            return;
        }
        self.ext_used += report.len();
        self.ext_ring.push_back(report);
    }

    fn deaf(&self, start: f64, end: f64) -> bool {
        start < self.gap.1 && end > self.gap.0
    }

    fn lost(&mut self) -> bool {
        self.rng.gen::<f64>() < self.params.loss
    }

    /// The board advertises its status (legacy, 3 channels) after the advDelay of its
    /// advertising event (0–10 ms, as every advertising event has; it also keeps the status
    /// from falling on the same phase of a periodic train each time, where its deaf time would
    /// hide the train carrying the sender's answer to the previous status); deaf for
    /// `status_gap_ms` from then.
    pub fn advertise(&mut self, now_us: u64, adv_data: &[u8]) {
        self.catch_up(now_us);
        self.stats.status_pdus += 1;
        let delay = self.back_rng.gen::<f64>() * self.params.adv_delay_max_ms * 1000.0;
        self.status = Some((now_us as f64 + delay, adv_data.to_vec()));
    }

    /// One event of the sender at `t` (µs); returns the time of its next event.
    fn event(&mut self, t: f64) -> f64 {
        let bearer = self.sender.bearer().filter(|b| b.chained());
        self.following = bearer;
        match bearer {
            None => {
                self.sync_set_us = None;
                self.legacy_event(t)
            }
            Some(b @ Bearer::Extended(_)) => {
                self.sync_set_us = None;
                self.extended_event(t, b)
            }
            Some(b) => self.periodic_event(t, b),
        }
    }

    fn delay_us(&mut self) -> f64 {
        self.rng.gen::<f64>() * self.params.adv_delay_max_ms * 1000.0
    }

    fn legacy_event(&mut self, t: f64) -> f64 {
        self.stats.legacy_events += 1;
        let mut adv = [0u8; ADV_DATA_MAX];
        let n = self.sender.next_adv(&mut adv);
        let air = Phy::Le1M.air_us(6 + n) as f64;
        self.stats.air_us += 3.0 * air;
        // Heard on the channel the board scans, unless lost or the board is advertising.
        if !self.deaf(t, t + 3.0 * air) && !self.lost() {
            self.enqueue_legacy(adv[..n].to_vec());
        }
        t + self.params.adv_interval_ms * 1000.0 + self.delay_us()
    }

    /// The board's timer (1 MHz, 32 bits, wrapping) at true time `t`, by its own clock.
    fn rx_us(&self, t: f64) -> u32 {
        (t * (1.0 + self.link.drift_rx_ppm * 1e-6)).round() as i64 as u32
    }

    /// The sender's PDUs go on the air: the board meets them in time order, once every PDU
    /// before them has been met ([`Self::air_until`]).
    fn air(&mut self, pdus: Vec<AirPdu>) {
        self.pending.extend(pdus);
        self.pending
            .make_contiguous()
            .sort_by(|a, b| a.start.total_cmp(&b.start));
    }

    /// The board meets the PDUs that start by `t`, in time order. A status takes the board's
    /// ears from the next sender event on (as this model always has): applied PDU by PDU, its
    /// 3 ms also fall inside chains, which costs periodic 2M a fifth of its goodput
    /// (docs/ble5.md, "Receiver: the follower").
    fn air_until(&mut self, t: f64) {
        while self.pending.front().is_some_and(|p| p.start <= t) {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.hear(&p);
        }
    }

    /// The board's follower meets one PDU.
    fn hear(&mut self, p: &AirPdu) {
        let cut_before = self.follower.counters().events_cut;
        self.stats.chain_pdus += u64::from(p.chain);
        let rx = self.rx_us(p.start);
        let end = p.start + p.phy.air_us(usize::from(p.bytes[1])) as f64;
        let lost = self.deaf(p.start, end) || self.lost();
        // A window that closed before this PDU began has missed (at most a few in a row: each
        // miss moves the follower to a later window or to scanning).
        for _ in 0..8 {
            match self.follower.op() {
                Op::Listen(listen) if ble_ext::is_after(rx, listen.end_us()) => {
                    let r = self.follower.missed().map(|r| ext_report(&r));
                    self.report(r);
                }
                _ => break,
            }
        }
        let hit = match self.follower.op() {
            Op::Idle => false,
            Op::ScanPrimary { channel } => p.channel == channel,
            Op::Listen(listen) => {
                if listen.access_address == TRAIN_AA && p.anchor {
                    // An anchor: how far from the window's middle, against its half width
                    // (when the window is for this anchor, not a later one).
                    let half = listen.window_us as f64 / 2.0;
                    let mid = listen.start_us.wrapping_add(listen.window_us / 2);
                    let error = (rx.wrapping_sub(mid) as i32).unsigned_abs() as f64;
                    if error < bearer::PERIODIC_INTERVAL_MIN_US as f64 / 2.0 {
                        self.stats.max_widening_us = self.stats.max_widening_us.max(half);
                        self.stats.max_anchor_error_us = self.stats.max_anchor_error_us.max(error);
                    }
                }
                p.channel == listen.channel
                    && p.phy == listen.phy
                    && p.aa == listen.access_address
                    && listen.contains(rx)
            }
        };
        let heard = hit && !lost;
        if p.chain && !heard {
            self.stats.chain_pdus_lost += 1;
        }
        if hit {
            let r = if lost {
                self.follower.missed().map(|r| ext_report(&r))
            } else {
                let address = rx.wrapping_add(ble_ext::address_air_us(p.phy));
                self.follower
                    .received(address, p.channel, p.phy, &p.bytes)
                    .map(|r| ext_report(&r))
            };
            self.report(r);
        }
        let c = self.follower.counters();
        self.stats.chains_cut += u64::from(c.events_cut - cut_before);
        self.stats.syncs = u64::from(c.syncs);
        self.stats.sync_losses = u64::from(c.sync_losses);
    }

    fn report(&mut self, report: Option<Vec<u8>>) {
        let header = dfu_abi::ext_scan::REPORT_HEADER;
        if let Some(v) = report.filter(|v| v.len() > header) {
            self.enqueue_ext(v);
        }
    }

    fn extended_event(&mut self, t: f64, b: Bearer) -> f64 {
        let mut adv = [0u8; EXT_ADV_DATA_MAX];
        let len = self.sender.next_event(&mut adv);
        let e = self.stats.chained_events;
        let ca_50ppm = self.link.sca_tx_ppm <= 50.0;
        let (pdus, end) =
            ext_air::extended_event(t, e, b, self.sender.address(), &adv[..len], ca_50ppm);
        self.stats.air_us += 3.0 * Bearer::adv_ext_ind_us() as f64;
        self.stats.air_us += pdus[3..].iter().map(AirPdu::air_us).sum::<f64>();
        self.stats.chained_events += 1;
        self.air(pdus);
        let interval = b.budget_with_interval(self.link.interval_us).interval_us as f64;
        t + interval.max(end - t) + self.delay_us()
    }

    fn periodic_event(&mut self, t: f64, b: Bearer) -> f64 {
        let interval = b.budget_with_interval(self.link.interval_us).interval_us as f64;
        // The sender's clock runs drift_tx fast: its interval in true time.
        let true_interval = interval / (1.0 + self.link.drift_tx_ppm * 1e-6);
        let (first, k) = *self.train.get_or_insert((t, 0));
        if self.sync_set_us.is_none() {
            // The extended set advertises beside the train from its start.
            self.sync_set_us = Some(t + 1_000.0);
        }
        let anchor = first + k as f64 * true_interval;
        self.train = Some((first, k + 1));
        self.stats.chained_events += 1;
        let mut adv = [0u8; EXT_ADV_DATA_MAX];
        let len = self.sender.next_event(&mut adv);
        let e = self.stats.chained_events;
        let ca_50ppm = self.link.sca_tx_ppm <= 50.0;
        let pdus = ext_air::periodic_event(anchor, k, e, b, &adv[..len], &TRAIN, ca_50ppm);
        self.stats.air_us += pdus
            .iter()
            .map(|p| p.phy.air_us(usize::from(p.bytes[1])) as f64)
            .sum::<f64>();
        self.air(pdus);
        anchor + true_interval
    }

    /// The periodic train's extended set at `t`: ADV_EXT_INDs and an AUX_ADV_IND whose SyncInfo
    /// points to the next anchor (`ext_air::sync_set_event`).
    fn sync_set_event(&mut self, t: f64) {
        let (Some(Bearer::Periodic(phy)), Some((first, _))) = (self.following, self.train) else {
            self.sync_set_us = None;
            return;
        };
        let next = t + self.params.adv_interval_ms * 1000.0 + self.delay_us();
        self.sync_set_us = Some(next);
        let b = Bearer::Periodic(phy);
        let interval = b.budget_with_interval(self.link.interval_us).interval_us as f64;
        let true_interval = interval / (1.0 + self.link.drift_tx_ppm * 1e-6);
        let e = self.stats.chained_events;
        let pdus = ext_air::sync_set_event(
            t,
            e,
            phy,
            self.sender.address(),
            &TRAIN,
            (first, true_interval, interval),
            self.link.drift_tx_ppm,
            self.link.sca_tx_ppm,
        );
        let aux_air = ext_air::sync_aux_air_us(phy);
        self.stats.air_us += 3.0 * Bearer::adv_ext_ind_us() as f64 + aux_air;
        self.air(pdus);
    }
}
