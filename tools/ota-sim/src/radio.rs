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

use adv_transfer::wire::ADV_DATA_MAX;
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
