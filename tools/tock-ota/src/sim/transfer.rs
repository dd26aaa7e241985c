//! The simulated advertising link: a sender on the host, the DFU app's receiver on the board,
//! the update-region policy between the receiver and the board's QSPI flash.
//!
//! Time is simulated. The sender's advertising events come every advInterval + advDelay
//! (uniform 0–10 ms). Each event's PDU reaches the receiver unless it is lost (`loss`), falls in
//! a scan gap (the receiver stops scanning while it sends its own status, and `scan_duty` of the
//! rest), and may arrive twice (`dup`, the receiver catching it on two channels) or late
//! (`reorder`, held back by 1–3 events in the scan capsule's batch). Staging operations run on the
//! board's QSPI model and take its simulated time; PDUs that arrive meanwhile wait in the
//! receiver's queue. A power cut during the transfer reboots the receiver, which resumes from
//! what the update-region kept.
use adv_transfer::wire::{ADV_DATA_MAX, MAX_IMAGE_LEN};
use adv_transfer::{Receiver, RxCounters, RxState, Sender, StageError, StageOp, TxCounters};
use anyhow::{bail, Context};
use embedded_storage::nor_flash::NorFlash;
use hw_models::SimBoard;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use update_region::blocking::{BlockingDriver, BlockingError};
use update_region::{
    CallerId, Completion, Config, Error as PolicyError, Request, SessionState, UpdateRegion,
};

/// Link and scheduling parameters.
#[derive(Clone, Debug)]
pub struct LinkParams {
    /// Probability a PDU (either direction) is lost.
    pub loss: f64,
    /// Probability a received PDU is received twice.
    pub dup: f64,
    /// Probability a received PDU is delivered 1–3 events late.
    pub reorder: f64,
    /// The sender's advInterval in ms (≥ 20 for non-connectable advertising).
    pub adv_interval_ms: f64,
    /// Upper bound of the random advDelay in ms (Bluetooth: 10).
    pub adv_delay_max_ms: f64,
    /// Fraction of the time the receiver scans outside its own status advertising.
    pub scan_duty: f64,
    /// Receiver status period while it knows of missing chunks, in ms.
    pub status_fast_ms: f64,
    /// Receiver status period otherwise, in ms.
    pub status_slow_ms: f64,
    /// Scan time lost per status advertisement (stop scan, advertise on 3 channels, rescan), ms.
    pub status_gap_ms: f64,
    /// Time from a power cut until the receiver scans again, in ms.
    pub reboot_ms: f64,
    /// Probability per event that the receiver also hears a hostile or malformed advertisement
    /// (another session's PDUs, a corrupted copy of the genuine PDU, out-of-range, truncated or
    /// oversized AdvData).
    pub hostile: f64,
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams {
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            adv_interval_ms: 20.0,
            adv_delay_max_ms: 10.0,
            scan_duty: 1.0,
            status_fast_ms: 250.0,
            status_slow_ms: 1000.0,
            status_gap_ms: 3.0,
            reboot_ms: 300.0,
            hostile: 0.0,
        }
    }
}

impl LinkParams {
    /// The bearer limit for these parameters: 27 payload bytes per event × events per second.
    pub fn bearer_limit_bytes_per_s(&self) -> f64 {
        adv_transfer::wire::PDU_MAX as f64 * self.events_per_s()
    }

    pub fn events_per_s(&self) -> f64 {
        1000.0 / (self.adv_interval_ms + self.adv_delay_max_ms / 2.0)
    }
}

/// A progress snapshot for a display.
#[derive(Clone, Copy, Debug)]
pub struct TransferProgress {
    pub sim_time_s: f64,
    pub received_chunks: u32,
    pub total_chunks: u32,
    pub verified_blocks: u32,
    pub total_blocks: u32,
}

/// What a transfer did.
#[derive(Clone, Debug)]
pub struct TransferReport {
    pub image_bytes: usize,
    pub events: u64,
    /// AdvData bytes the sender put on air (one copy per event).
    pub adv_data_bytes: u64,
    /// Whole PDUs on air: preamble, access address, header, AdvA, AdvData, CRC, × 3 channels.
    pub air_bytes: u64,
    pub status_pdus: u64,
    pub sim_time_s: f64,
    pub goodput_bytes_per_s: f64,
    pub bearer_limit_bytes_per_s: f64,
    pub receiver_reboots: u32,
    pub tx: TxCounters,
    pub rx: RxCounters,
    pub finalized: Option<Completion>,
    /// Hostile or malformed advertisements the receiver heard.
    pub hostile_pdus: u64,
    /// Program and erase operations on the receiving board's flash during the transfer.
    pub flash_ops: u64,
}

/// Where to cut power in a phase: after this many program/erase operations of the phase (the
/// next one fails before it starts), or inside the next one when `torn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferCut {
    pub after_ops: u64,
    pub torn: bool,
}

/// Power cuts planned for one phase, counted in program/erase operations from the phase start.
/// Planned reboots (`SimBoard::power_cycle`) disarm the power controller, so the plan re-arms
/// the next cut after each boot.
pub struct CutPlan {
    points: Vec<TransferCut>,
    next: usize,
    base: u64,
}

impl CutPlan {
    pub fn new(board: &SimBoard, mut points: Vec<TransferCut>) -> Self {
        points.sort_by_key(|c| c.after_ops);
        let plan = CutPlan {
            points,
            next: 0,
            base: board.power.ops(),
        };
        plan.arm(board);
        plan
    }

    /// Arm the next cut on the board's power controller (if any is still ahead).
    pub fn arm(&self, board: &SimBoard) {
        let done = board.power.ops() - self.base;
        if let Some(c) = self.points.get(self.next) {
            let remaining = c.after_ops.saturating_sub(done);
            if c.torn {
                board.power.cut_inside(remaining + 1);
            } else {
                board.power.cut_after(remaining);
            }
        }
    }

    /// A cut happened: move on to the next one (call `arm` after the reboot).
    pub fn fired(&mut self) {
        self.next += 1;
    }
}

struct Delivery {
    at_event: u64,
    pdu: Vec<u8>,
}

/// One transfer to simulate.
pub struct TransferJob<'a> {
    /// The update-region's configuration on the receiving board.
    pub config: Config,
    /// The DFU app's caller id.
    pub owner: CallerId,
    pub image: &'a [u8],
    /// The sender's session id.
    pub session: u32,
    pub params: &'a LinkParams,
    pub seed: u64,
    /// Power cuts on the receiving board, by program/erase operation count.
    pub cuts: &'a [TransferCut],
}

/// Run one transfer of `job.image` to the board's staging slot; `on_progress` is called now and
/// then.
pub fn run_transfer(
    board: &mut SimBoard,
    job: &TransferJob<'_>,
    on_progress: &mut dyn FnMut(TransferProgress),
) -> anyhow::Result<TransferReport> {
    let TransferJob {
        config,
        owner,
        image,
        session,
        params,
        seed,
        cuts,
    } = *job;
    if image.len() as u64 > config.max_image_len().min(MAX_IMAGE_LEN) as u64 {
        bail!(
            "image of {} bytes does not fit the staging slot",
            image.len()
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sender = Sender::new(adv_transfer::DEFAULT_COMPANY_ID, image, session, 0)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut bitmap = vec![0u8; Receiver::bitmap_len(config.max_image_len())];
    let mut policy = UpdateRegion::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let start_status = BlockingDriver::new(&mut policy, &mut board.qspi)
        .start()
        .map_err(|e| anyhow::anyhow!("update-region start: {e}"))?;
    let _ = start_status;
    let t0_us = board.clock.now_us();
    let mut t_us = t0_us as f64;
    let mut plan = CutPlan::new(board, cuts.to_vec());
    let mut report = TransferReport {
        image_bytes: image.len(),
        events: 0,
        adv_data_bytes: 0,
        air_bytes: 0,
        status_pdus: 0,
        sim_time_s: 0.0,
        goodput_bytes_per_s: 0.0,
        bearer_limit_bytes_per_s: params.bearer_limit_bytes_per_s(),
        receiver_reboots: 0,
        tx: TxCounters::default(),
        rx: RxCounters::default(),
        finalized: None,
        hostile_pdus: 0,
        flash_ops: 0,
    };
    let ops_at_start = board.power.ops();
    let mut rx_counters_before_reboots = RxCounters::default();
    let mut resume: Option<([u8; 16], bool)> = None;
    // The receiver is rebuilt after each reboot; the loop below runs per boot.
    'boot: loop {
        let mut receiver = Receiver::new(
            adv_transfer::DEFAULT_COMPANY_ID,
            config.max_image_len(),
            &mut bitmap,
            resume.map(|r| r.0),
            resume.is_some_and(|r| r.1),
        );
        let mut pending: Vec<Delivery> = Vec::new();
        let mut next_status_us = t_us + params.status_slow_ms * 1000.0;
        let mut gap_until_us = 0.0f64;
        let mut last_progress_us = 0.0f64;
        let mut told_complete = false;
        loop {
            report.events += 1;
            if report.events > 50_000_000 {
                bail!("transfer did not converge");
            }
            let delay = rng.gen::<f64>() * params.adv_delay_max_ms;
            t_us += (params.adv_interval_ms + delay) * 1000.0;
            let mut adv = [0u8; ADV_DATA_MAX];
            let n = sender.next_adv(&mut adv);
            report.adv_data_bytes += n as u64;
            report.air_bytes += 3 * (1 + 4 + 2 + 6 + n as u64 + 3);
            let event = report.events;
            // Reception of this event's PDU.
            let scanning = t_us >= gap_until_us && rng.gen::<f64>() < params.scan_duty;
            if scanning && rng.gen::<f64>() < params.hostile {
                let pdu = hostile_adv(&mut rng, &adv[..n], sender.total_chunks());
                report.hostile_pdus += 1;
                pending.push(Delivery {
                    at_event: event,
                    pdu,
                });
            }
            if scanning && rng.gen::<f64>() >= params.loss {
                let copies = if rng.gen::<f64>() < params.dup { 2 } else { 1 };
                for _ in 0..copies {
                    let late = if rng.gen::<f64>() < params.reorder {
                        rng.gen_range(1..=3)
                    } else {
                        0
                    };
                    pending.push(Delivery {
                        at_event: event + late,
                        pdu: adv[..n].to_vec(),
                    });
                }
            }
            if board.clock.now_us() < t_us as u64 {
                board.clock.advance_to(t_us as u64);
            }
            receiver.tick(((t_us - t0_us as f64) / 1000.0) as u64);
            let mut i = 0;
            while i < pending.len() {
                if pending[i].at_event <= event {
                    let d = pending.remove(i);
                    receiver.on_adv(&d.pdu);
                } else {
                    i += 1;
                }
            }
            // Staging work until the next event is due (the flash model keeps the time).
            let horizon_us = t_us + params.adv_interval_ms * 1000.0;
            while (board.clock.now_us() as f64) < horizon_us {
                let Some(op) = receiver.poll_op() else { break };
                let mut read_back = Vec::new();
                let result = match op {
                    StageOp::Read { offset, len } => {
                        read_back = vec![0u8; len as usize];
                        BlockingDriver::new(&mut policy, &mut board.qspi)
                            .read(owner, offset, &mut read_back)
                            .map(|_| None)
                            .map_err(|_| StageError::Failed)
                    }
                    op => stage(&mut policy, &mut board.qspi, owner, op),
                };
                if !board.power.is_on() {
                    // Power cut: the board reboots and the receiver resumes.
                    report.receiver_reboots += 1;
                    add_counters(&mut rx_counters_before_reboots, receiver.counters());
                    board.power_cycle().context("power cycle")?;
                    plan.fired();
                    plan.arm(board);
                    t_us = t_us.max(board.clock.now_us() as f64) + params.reboot_ms * 1000.0;
                    board.clock.advance_to(t_us as u64);
                    policy = UpdateRegion::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let status = BlockingDriver::new(&mut policy, &mut board.qspi)
                        .start()
                        .map_err(|e| anyhow::anyhow!("update-region start after reboot: {e}"))?;
                    resume = (status.state != SessionState::Idle)
                        .then_some((status.tag, status.state == SessionState::Finalized));
                    continue 'boot;
                }
                if let Ok(Some(c)) = &result {
                    report.finalized = Some(*c);
                }
                receiver.op_done(match &result {
                    Ok(_) => Ok(&read_back),
                    Err(e) => Err(*e),
                });
            }
            // The receiver's status advertisement; the app sends one as soon as it finalizes.
            if receiver.is_complete() && !told_complete {
                told_complete = true;
                next_status_us = t_us;
            }
            if t_us >= next_status_us {
                let mut s = [0u8; ADV_DATA_MAX];
                let m = receiver.status_adv(&mut s);
                if m > 0 {
                    report.status_pdus += 1;
                    gap_until_us = t_us + params.status_gap_ms * 1000.0;
                    if rng.gen::<f64>() >= params.loss {
                        sender.on_adv(&s[..m]);
                    }
                }
                let p = receiver.progress();
                let gaps = p.state == RxState::Receiving
                    && p.received_chunks + 8 < sender.first_pass_sent();
                let period = if gaps {
                    params.status_fast_ms
                } else {
                    params.status_slow_ms
                };
                // Once complete the receiver keeps telling, quickly, so the sender stops.
                let period = if receiver.is_complete() {
                    params.status_fast_ms
                } else {
                    period
                };
                next_status_us = t_us + period * 1000.0;
            }
            if t_us - last_progress_us > 500_000.0 {
                last_progress_us = t_us;
                let p = receiver.progress();
                on_progress(TransferProgress {
                    sim_time_s: (t_us - t0_us as f64) / 1e6,
                    received_chunks: p.received_chunks,
                    total_chunks: p.total_chunks,
                    verified_blocks: p.verified_blocks,
                    total_blocks: p.total_blocks,
                });
            }
            if sender.is_complete() {
                add_counters(&mut rx_counters_before_reboots, receiver.counters());
                break 'boot;
            }
            if let Some(state @ (RxState::Unsupported | RxState::TooLarge | RxState::Rejected)) =
                sender.receiver_state()
            {
                bail!("receiver refused the image: {state:?}");
            }
        }
    }
    board.power.restore();
    if report.finalized.is_none() {
        // Finalized in an earlier boot (the cut came after the boot request was written): the
        // receiver resumed as complete; the request is in the control area.
        if let Some(r) = policy.status().newest_record {
            if r.kind == control_area::RecordKind::BootRequest {
                report.finalized = Some(Completion::Finalized {
                    sequence: r.sequence,
                    image_len: r.image_len,
                    image_hash: r.image_hash,
                });
            }
        }
    }
    report.flash_ops = board.power.ops() - ops_at_start;
    report.tx = sender.counters();
    report.rx = rx_counters_before_reboots;
    report.sim_time_s = (t_us - t0_us as f64) / 1e6;
    report.goodput_bytes_per_s = image.len() as f64 / report.sim_time_s;
    Ok(report)
}

fn add_counters(total: &mut RxCounters, c: RxCounters) {
    total.chunks += c.chunks;
    total.duplicates += c.duplicates;
    total.ignored += c.ignored;
    total.dropped += c.dropped;
    total.crc_failures += c.crc_failures;
    total.conflicts += c.conflicts;
}

/// Perform one receiver staging operation through the policy.
pub fn stage<F: NorFlash>(
    policy: &mut UpdateRegion,
    flash: &mut F,
    owner: CallerId,
    op: StageOp<'_>,
) -> Result<Option<Completion>, StageError> {
    let mut driver = BlockingDriver::new(policy, flash);
    let r = match op {
        StageOp::Begin { tag, image_len } => {
            driver.run(owner, Request::Begin { tag, image_len }, &[], &mut [])
        }
        StageOp::Erase { offset } => driver.run(owner, Request::Erase { offset }, &[], &mut []),
        StageOp::Write { offset, data } => driver.write(owner, offset, data),
        StageOp::Read { offset, len } => {
            let mut buf = vec![0u8; len as usize];
            driver.read(owner, offset, &mut buf)
        }
        StageOp::Finalize => driver.run(owner, Request::Finalize, &[], &mut []),
    };
    match r {
        Ok(c @ Completion::Finalized { .. }) => Ok(Some(c)),
        Ok(_) => Ok(None),
        Err(BlockingError::Policy(PolicyError::NotErased { .. })) => Err(StageError::NotErased),
        Err(BlockingError::Policy(PolicyError::NotBlank { .. })) => Err(StageError::NotBlank),
        Err(BlockingError::Policy(
            PolicyError::ImageBadMagic
            | PolicyError::ImageBadLayout
            | PolicyError::ImageHashMissing
            | PolicyError::ImageHashMismatch,
        )) => Err(StageError::Rejected),
        Err(_) => Err(StageError::Failed),
    }
}

/// One hostile or malformed advertisement, modelled on `genuine` (the sender's current one).
fn hostile_adv(rng: &mut ChaCha8Rng, genuine: &[u8], total_chunks: u32) -> Vec<u8> {
    use adv_transfer::wire::{announce, frame, SessionInfo, KIND_MANIFEST, PDU_MAX};
    let company = adv_transfer::DEFAULT_COMPANY_ID;
    let mut out = [0u8; ADV_DATA_MAX];
    let mut pdu = [0u8; PDU_MAX];
    let foreign_session = rng.gen::<u32>() | 1;
    match rng.gen_range(0..7) {
        // Another transfer's data chunk, with the right length for its index.
        0 => {
            let index = rng.gen_range(0..total_chunks);
            pdu[0..2].copy_from_slice(&(index as u16).to_be_bytes());
            rng.fill(&mut pdu[2..]);
            let len = 2 + adv_transfer::wire::chunk_range(index, u32::MAX).1;
            let n = frame(company, &pdu[..len], &mut out);
            out[..n].to_vec()
        }
        // Another transfer's announce.
        1 => {
            let info = SessionInfo {
                session: foreign_session,
                image_len: rng.gen_range(1..100_000),
                image_crc: rng.gen(),
                capabilities: 0,
            };
            let len = announce(&info, &mut pdu);
            let n = frame(company, &pdu[..len], &mut out);
            out[..n].to_vec()
        }
        // Another transfer's manifest.
        2 => {
            pdu[0] = KIND_MANIFEST;
            pdu[1..5].copy_from_slice(&foreign_session.to_le_bytes());
            rng.fill(&mut pdu[5..]);
            pdu[5..7].copy_from_slice(&0u16.to_le_bytes());
            let n = frame(company, &pdu, &mut out);
            out[..n].to_vec()
        }
        // A chunk index beyond the image.
        3 => {
            let index = rng.gen_range(total_chunks..0xF000);
            pdu[0..2].copy_from_slice(&(index as u16).to_be_bytes());
            let n = frame(company, &pdu[..27], &mut out);
            out[..n].to_vec()
        }
        // The genuine PDU with a payload bit flipped (fails the block CRC if it gets staged).
        4 => {
            let mut v = genuine.to_vec();
            let at = 6 + rng.gen_range(0..v.len().saturating_sub(6).max(1));
            if at < v.len() {
                v[at] ^= 1 << rng.gen_range(0..8);
            }
            v
        }
        // Truncated: the AD length runs past the AdvData.
        5 => {
            let mut v = genuine.to_vec();
            v.truncate(v.len().saturating_sub(rng.gen_range(1..4)).max(1));
            v
        }
        // Oversized: more than 31 bytes.
        _ => {
            let mut v = genuine.to_vec();
            v.resize(ADV_DATA_MAX + rng.gen_range(1..8), 0xAA);
            v
        }
    }
}
