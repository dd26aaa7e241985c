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
use dfu_abi::scan;
use dfu_app::Batch;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::transfer::{hostile_adv, LinkParams};

/// The board's report ring (`SCAN_RING_LEN` in `boards/nrf52840dk-ota`).
pub const RING_BYTES: usize = 4096;

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
        let (mut at, mut reports) = (0usize, 0u32);
        while let Some((address, adv)) = self.ring.front() {
            let pdu_len = PDU_HEAD + adv.len();
            let size = scan::REPORT_HEADER + pdu_len;
            if at + size > buffer.len() {
                break;
            }
            buffer[at] = pdu_len as u8;
            buffer[at + 1] = 37;
            buffer[at + 2] = ADV_NONCONN_IND;
            buffer[at + 3] = (6 + adv.len()) as u8;
            buffer[at + 4..at + 10].copy_from_slice(address);
            buffer[at + 10..at + size].copy_from_slice(adv);
            at += size;
            reports += 1;
            self.ring_bytes -= size;
            self.ring.pop_front();
        }
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
    /// Largest receive window widening used, µs, and the largest anchor error met, µs.
    pub max_widening_us: f64,
    pub max_anchor_error_us: f64,
    /// Sum of the air time of the sender's events, µs.
    pub air_us: f64,
    pub status_pdus: u64,
}

/// One report the board's ring holds: a legacy advertisement's AdvData, or an extended or
/// periodic event's AdvData as far as the chain was received.
pub enum ChainReport {
    Legacy(Vec<u8>),
    Chain(Vec<u8>),
}

/// The sender on the host and the board's receiver over legacy advertising (until the
/// receiver's pick) and then the picked bearer: extended events (three ADV_EXT_IND on the
/// primary channels, the AuxPtr offset to the AUX_ADV_IND on a secondary channel, AUX_CHAIN_IND
/// T_MAFS apart) or a periodic train (synchronised through the extended set's SyncInfo, anchors
/// at the interval by the sender's clock, the receiver's window widened by both clocks'
/// accuracy since the last anchor heard). Each PDU is lost with `loss`; a lost PDU loses the
/// rest of its chain (the AuxPtr to the next was in it).
pub struct ChainRadio<'a> {
    params: &'a LinkParams,
    link: BearerLink,
    rng: ChaCha8Rng,
    back_rng: ChaCha8Rng,
    pub sender: Sender<'a>,
    next_event_us: Option<f64>,
    pub started_us: Option<u64>,
    ring: VecDeque<ChainReport>,
    ring_used: usize,
    gap: (f64, f64),
    /// Periodic: the sender's first anchor and anchor count; the receiver's last anchor heard
    /// (true time) and the anchors since; whether it is synchronised, and when it may be.
    train: Option<(f64, u64)>,
    rx_anchor: Option<(f64, u64)>,
    sync_at: Option<f64>,
    /// The board's status waiting for its advDelay: when it goes out, and its AdvData.
    status: Option<(f64, Vec<u8>)>,
    pub stats: ChainStats,
}

/// Bytes of a report besides its AdvData in the ring (length, channel, PDU type, AdvA).
const CHAIN_REPORT_HEAD: usize = 8;
/// The ring the model gives the kernel receiver of chained events (not built yet): about ten
/// full events, 0.25 s at the shortest extended interval, so a 41 ms sector erase and the
/// block check after it pass without a drop.
pub const CHAIN_RING_BYTES: usize = 16 * 1024;

impl<'a> ChainRadio<'a> {
    pub fn new(params: &'a LinkParams, link: BearerLink, sender: Sender<'a>, seed: u64) -> Self {
        ChainRadio {
            params,
            link,
            rng: ChaCha8Rng::seed_from_u64(seed),
            back_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5A7A_7005),
            sender,
            next_event_us: None,
            started_us: None,
            ring: VecDeque::new(),
            ring_used: 0,
            gap: (0.0, 0.0),
            train: None,
            rx_anchor: None,
            sync_at: None,
            status: None,
            stats: ChainStats::default(),
        }
    }

    /// The sender starts advertising and the board scanning.
    pub fn start(&mut self, now_us: u64) {
        self.started_us = Some(now_us);
        self.next_event_us = Some(now_us as f64);
    }

    pub fn next_event_at(&self) -> Option<u64> {
        self.next_event_us.map(|t| t.ceil() as u64)
    }

    pub fn catch_up(&mut self, now_us: u64) {
        while let Some(t) = self.next_event_us {
            if t > now_us as f64 {
                break;
            }
            self.status_until(t);
            let next = self.event(t);
            self.next_event_us = Some(next);
        }
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

    pub fn take(&mut self) -> Option<ChainReport> {
        let r = self.ring.pop_front()?;
        self.ring_used -= Self::size(&r);
        Some(r)
    }

    fn size(r: &ChainReport) -> usize {
        CHAIN_REPORT_HEAD
            + match r {
                ChainReport::Legacy(v) | ChainReport::Chain(v) => v.len(),
            }
    }

    fn enqueue(&mut self, r: ChainReport) {
        let size = Self::size(&r);
        if self.ring_used + size > self.link.ring_bytes {
            self.stats.ring_drops += 1;
            return;
        }
        self.ring_used += size;
        self.ring.push_back(r);
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
        match bearer {
            None => self.legacy_event(t),
            Some(b @ Bearer::Extended(_)) => self.extended_event(t, b),
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
            self.enqueue(ChainReport::Legacy(adv[..n].to_vec()));
        }
        t + self.params.adv_interval_ms * 1000.0 + self.delay_us()
    }

    /// The chain of PDUs of one event starting at `start` (µs): which of it the board hears.
    /// Returns the AdvData received and the chain's end.
    fn chain(&mut self, b: Bearer, adv: &[u8], start: f64, heard: bool) -> (usize, f64) {
        let n = b.pdus_for(adv.len());
        let (mut at, mut got) = (start, if heard { adv.len() } else { 0 });
        for i in 0..n {
            let r = b.fragment(adv.len(), i).unwrap_or(0..0);
            let air = b.phy().air_us(b.payload_of(i, i + 1 == n, r.len())) as f64;
            self.stats.chain_pdus += 1;
            self.stats.air_us += air;
            if got == adv.len() && (self.deaf(at, at + air) || self.lost()) {
                got = r.start;
                self.stats.chain_pdus_lost += (n - i) as u64;
                if heard && i > 0 {
                    self.stats.chains_cut += 1;
                }
            }
            at += air + bearer::T_MAFS_US as f64;
        }
        (got, at - bearer::T_MAFS_US as f64)
    }

    fn extended_event(&mut self, t: f64, b: Bearer) -> f64 {
        self.stats.chained_events += 1;
        let mut adv = [0u8; EXT_ADV_DATA_MAX];
        let len = self.sender.next_event(&mut adv);
        // ADV_EXT_IND on 37, 38, 39 (150 µs apart); the board hears the one on its channel.
        let ind = Bearer::adv_ext_ind_us() as f64;
        let ch = self.rng.gen_range(0..3) as f64;
        let heard_at = t + ch * (ind + 150.0);
        let heard = !self.deaf(heard_at, heard_at + ind) && !self.lost();
        self.stats.air_us += 3.0 * ind;
        // The AuxPtr offset, from the start of each ADV_EXT_IND, in 30 µs units: at least
        // T_MAFS after the end of the last one.
        let last_end = t + 2.0 * (ind + 150.0) + ind;
        let unit = bearer::AUX_OFFSET_UNIT_US as f64;
        let aux =
            heard_at + ((last_end + bearer::T_MAFS_US as f64 - heard_at) / unit).ceil() * unit;
        let (got, end) = self.chain(b, &adv[..len], aux, heard);
        if got > 0 {
            self.enqueue(ChainReport::Chain(adv[..got].to_vec()));
        }
        let interval = b.budget_with_interval(self.link.interval_us).interval_us as f64;
        t + interval.max(end - t) + self.delay_us()
    }

    fn periodic_event(&mut self, t: f64, b: Bearer) -> f64 {
        let interval = b.budget_with_interval(self.link.interval_us).interval_us as f64;
        // The sender's clock runs drift_tx fast: its interval in true time.
        let true_interval = interval / (1.0 + self.link.drift_tx_ppm * 1e-6);
        let (first, k) = *self.train.get_or_insert((t, 0));
        let anchor = first + k as f64 * true_interval;
        self.train = Some((first, k + 1));
        self.stats.chained_events += 1;
        let mut adv = [0u8; EXT_ADV_DATA_MAX];
        let len = self.sender.next_event(&mut adv);
        // Sync: the board finds the extended set's SyncInfo (an extended event, every advInterval
        // + advDelay, both its ADV_EXT_IND and AUX_ADV_IND heard) and then the train's anchor.
        if self.rx_anchor.is_none() {
            let sync_at = match self.sync_at {
                Some(s) => s,
                None => {
                    let mut s = anchor;
                    loop {
                        s += self.params.adv_interval_ms * 1000.0 + self.delay_us();
                        if !self.lost() && !self.lost() {
                            break s;
                        }
                    }
                }
            };
            self.sync_at = Some(sync_at);
            if anchor < sync_at {
                self.chain(b, &adv[..len], anchor, false);
                return anchor + true_interval;
            }
            self.sync_at = None;
            self.stats.syncs += 1;
            self.rx_anchor = Some((anchor, k));
        }
        let (last, last_k) = self.rx_anchor.unwrap_or((anchor, k));
        // The receiver expects the anchor by its own clock; it widens its window by both
        // sides' declared accuracy over the time since the last anchor it heard, plus 32 µs:
        // the formula the device's follower uses (`ble_ext::window_widening_us`).
        let since = (k - last_k) as f64 * interval;
        let expected = last + since / (1.0 + self.link.drift_rx_ppm * 1e-6);
        let widening = ble_ext::window_widening_us(
            self.link.sca_tx_ppm.round() as u32,
            self.link.sca_rx_ppm.round() as u32,
            since.min(u32::MAX as f64) as u32,
        ) as f64;
        let error = (anchor - expected).abs();
        self.stats.max_widening_us = self.stats.max_widening_us.max(widening);
        self.stats.max_anchor_error_us = self.stats.max_anchor_error_us.max(error);
        let in_window = error <= widening;
        let (got, _) = self.chain(b, &adv[..len], anchor, in_window);
        if got > 0 {
            self.enqueue(ChainReport::Chain(adv[..got].to_vec()));
        }
        // The first PDU heard re-anchors the receiver.
        let first_heard = got > 0 || (in_window && len == 0);
        if first_heard {
            self.rx_anchor = Some((anchor, k));
        } else if anchor - last > self.link.sync_timeout_us {
            self.stats.sync_losses += 1;
            self.rx_anchor = None;
        }
        anchor + true_interval
    }
}
