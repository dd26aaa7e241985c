//! The simulated transfer: a sender on the host, the DFU app (`dfu-app`, the same code the Tock
//! app runs) on the board, over the simulated advertising link ([`crate::radio`]) and the
//! simulated kernel ([`crate::kernel`]: the update-region policy over the board's QSPI
//! flash).
//!
//! Time is simulated: staging operations take the QSPI model's time, waits move the clock to the
//! next advertising event. A power cut during the transfer reboots the board: the app starts
//! again and resumes from what the update-region kept.
use adv_transfer::bearer::{Bearer, BearerSet, Budget};
use adv_transfer::wire::{ADV_DATA_MAX, BASE_ID_LEN, MAX_IMAGE_LEN};
use adv_transfer::{RxCounters, RxProgress, RxState, Sender, TxCounters};
use anyhow::{bail, Context};
use dfu_app::Exit;
use hw_models::SimBoard;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use update_region::blocking::BlockingDriver;
use update_region::{CallerId, Completion, Config, UpdateRegion};

use crate::ext_kernel::{AppTrace, ExtKernel};
use crate::kernel::{Record, SimKernel};
use crate::radio::{BearerLink, ChainRadio, ChainStats, Radio};

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
    /// Scan time lost per status advertisement (stop scan, advertise on 3 channels, rescan), ms.
    pub status_gap_ms: f64,
    /// Time from a power cut until the board runs the app again, in ms.
    pub reboot_ms: f64,
    /// Probability per event that the receiver also hears a hostile or malformed advertisement:
    /// another transfer's data, announce or manifest PDUs from that sender's own address, an
    /// out-of-range chunk, truncated or oversized AdvData, or a corrupted copy of the genuine PDU
    /// that reaches the host (see [`hostile_adv`]).
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
    /// From the board's first scan until the boot request was written (or, if that happened
    /// before a power cut, until the sender heard the image complete).
    pub sim_time_s: f64,
    /// Of `sim_time_s`, the kernel's rebuild of a delta patch into the staging slot (0 for a
    /// full image); the rest is receiving.
    pub rebuild_s: f64,
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
    /// The DFU app's console, all boots.
    pub app_log: Vec<String>,
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
    /// The update-signing key the DFU app checks a compressed image's signature against
    /// before decoding it (`dfu_app::Kernel::update_key`); `None`: no check there.
    pub update_key: Option<[u8; 64]>,
}

/// One boot of the DFU app on `board`: the kernel's start-up scan of the update region, then
/// `dfu_app::run` until it exits or the simulated kernel halts it. Without a radio the app is
/// halted once it listens (after its confirm and resume).
pub fn boot_app(
    board: &mut SimBoard,
    config: Config,
    owner: CallerId,
    radio: Option<&mut Radio<'_>>,
    update_key: Option<[u8; 64]>,
    on_progress: &mut dyn FnMut(&SimBoard, RxProgress),
) -> anyhow::Result<(Exit, Record)> {
    let mut policy = UpdateRegion::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    BlockingDriver::new(&mut policy, &mut board.qspi)
        .start()
        .map_err(|e| anyhow::anyhow!("update-region start: {e}"))?;
    let mut bitmap = vec![0u8; dfu_app::BITMAP_LEN];
    let mut batch = vec![0u8; dfu_app::BATCH_LEN];
    let mut stream = stream_area_policy(board, config)?;
    let mut kernel = SimKernel::new(board, &mut policy, owner, radio, on_progress)
        .with_stream(&mut stream, config)
        .with_update_key(update_key);
    let exit = dfu_app::run(&mut kernel, &mut bitmap, &mut batch);
    let record = std::mem::take(&mut kernel.record);
    Ok((exit, record))
}

/// The received-stream area's policy on `board` (the staging slot's `config` moved to the
/// area), after its start-up scan: delta patches and compressed images are staged there.
fn stream_area_policy(board: &mut SimBoard, config: Config) -> anyhow::Result<UpdateRegion> {
    let stream_area = boot_nrf::NRF52840_DK_STREAM;
    let stream_config = Config {
        staging_base: stream_area.start,
        staging_len: stream_area.len,
        ..config
    };
    let mut stream = UpdateRegion::new(stream_config).map_err(|e| anyhow::anyhow!("{e}"))?;
    BlockingDriver::new(&mut stream, &mut board.qspi)
        .start()
        .map_err(|e| anyhow::anyhow!("update-region start (stream area): {e}"))?;
    Ok(stream)
}

/// The receiver refused the transfer in its status (an error [`run_transfer`] returns, so a
/// caller can tell a refusal from a failure with `anyhow::Error::downcast_ref`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub state: RxState,
    /// With [`RxState::WrongBase`]: the id of the image the receiver runs (`None`: unknown).
    pub running: Option<[u8; BASE_ID_LEN]>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.state, self.running) {
            (RxState::WrongBase, Some(id)) => write!(
                f,
                "receiver refused the patch: it runs the image {}…, not the patch's base",
                hex(&id[..8])
            ),
            (RxState::WrongBase, None) => write!(
                f,
                "receiver refused the patch: it cannot tell which image it runs"
            ),
            (state, _) => write!(f, "receiver refused the image: {state:?}"),
        }
    }
}

impl std::error::Error for Refused {}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Run one transfer of `job.image` to the board's staging slot; `on_progress` is called now and
/// then.
pub fn run_transfer(
    board: &mut SimBoard,
    job: &TransferJob<'_>,
    on_progress: &mut dyn FnMut(TransferProgress),
) -> anyhow::Result<TransferReport> {
    run_delta_transfer(board, job, None, on_progress)
}

/// [`run_transfer`], or with `base` (the id of the signed image `job.image`, a delta patch, was
/// made against) a delta session: the kernel stages it in the received-stream area and rebuilds
/// the image at finalize. A receiver running another image refuses it ([`Refused`]).
pub fn run_delta_transfer(
    board: &mut SimBoard,
    job: &TransferJob<'_>,
    base: Option<[u8; BASE_ID_LEN]>,
    on_progress: &mut dyn FnMut(TransferProgress),
) -> anyhow::Result<TransferReport> {
    let sender = new_sender(job, base)?;
    let mut radio = Radio::new(job.params, sender, job.seed);
    let ops_at_start = board.power.ops();
    let t_begin = board.clock.now_us();
    let mut show = throttled(on_progress, t_begin);
    let boots = receive(board, job, &mut radio, &mut show)?;
    let Some((finalized, end_us)) = boots.finalized else {
        bail!(
            "the transfer ended without a boot request: {}",
            boots.app_log.join("; ")
        );
    };
    let t0 = radio.started_us.unwrap_or(t_begin);
    let sim_time_s = end_us.saturating_sub(t0) as f64 / 1e6;
    Ok(TransferReport {
        image_bytes: job.image.len(),
        events: radio.events,
        adv_data_bytes: radio.adv_data_bytes,
        air_bytes: radio.air_bytes,
        status_pdus: radio.status_pdus,
        sim_time_s,
        rebuild_s: boots.rebuild_us as f64 / 1e6,
        goodput_bytes_per_s: job.image.len() as f64 / sim_time_s,
        bearer_limit_bytes_per_s: job.params.bearer_limit_bytes_per_s(),
        receiver_reboots: boots.reboots,
        tx: radio.sender.counters(),
        rx: boots.rx,
        finalized: Some(finalized),
        hostile_pdus: radio.hostile_pdus,
        flash_ops: board.power.ops() - ops_at_start,
        app_log: boots.app_log,
    })
}

/// The sender for `job.image` (a delta session against `base` if given), once the image is known
/// to fit the staging slot and the app's limit.
fn new_sender<'a>(
    job: &TransferJob<'a>,
    base: Option<[u8; BASE_ID_LEN]>,
) -> anyhow::Result<Sender<'a>> {
    let max_len = job
        .config
        .max_image_len()
        .min(MAX_IMAGE_LEN)
        .min(dfu_app::MAX_IMAGE_LEN);
    if job.image.len() as u64 > max_len as u64 {
        bail!(
            "image of {} bytes does not fit the staging slot",
            job.image.len()
        );
    }
    sender_for(job.image, job.session, base)
}

/// The sender of `image` in `session`: a delta session if `base` (the id of the signed image
/// the patch `image` was made against) is given, else announced as compressed when its header
/// has MCUboot's compressed flag, so the kernel stages it in the received-stream area and
/// decodes it at finalize. The simulator's and the whole-device emulation's sender
/// (`tock-ota emulate system`).
pub fn sender_for(
    image: &[u8],
    session: u32,
    base: Option<[u8; BASE_ID_LEN]>,
) -> anyhow::Result<Sender<'_>> {
    let company = adv_transfer::DEFAULT_COMPANY_ID;
    let compressed = ota_image::ImageHeader::decode(
        image
            .get(..32)
            .and_then(|h| h.try_into().ok())
            .unwrap_or(&[0; 32]),
    )
    .flags
        & ota_image::flags::COMPRESSED_LZMA2
        != 0;
    let capabilities = if compressed {
        adv_transfer::wire::capability::COMPRESSED
    } else {
        0
    };
    match base {
        Some(base) => Sender::new_delta(company, image, session, base),
        None => Sender::new(company, image, session, capabilities),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// `on_progress` for the app's reception, at most once per half second of simulated time.
fn throttled<'f>(
    on_progress: &'f mut dyn FnMut(TransferProgress),
    t_begin: u64,
) -> impl FnMut(&SimBoard, RxProgress) + 'f {
    let mut last_shown = 0u64;
    move |b: &SimBoard, p: RxProgress| {
        let now = b.clock.now_us();
        if now.saturating_sub(last_shown) > 500_000 {
            last_shown = now;
            on_progress(TransferProgress {
                sim_time_s: (now - t_begin) as f64 / 1e6,
                received_chunks: p.received_chunks,
                total_chunks: p.total_chunks,
                verified_blocks: p.verified_blocks,
                total_blocks: p.total_blocks,
            });
        }
    }
}

/// What the DFU app's boots of one transfer add up to.
#[derive(Default)]
struct Boots {
    rx: RxCounters,
    /// Reboots after power cuts.
    reboots: u32,
    /// The boot request and the simulated time (µs) it was written at.
    finalized: Option<(Completion, u64)>,
    app_log: Vec<String>,
    rebuild_us: u64,
}

/// Boots the DFU app until the image is staged and requested: one boot per iteration, each
/// ended by the app (reboot into the bootloader, or halted once the sender is done) or by one of
/// `job.cuts`, after which the board reboots and the app resumes.
fn receive(
    board: &mut SimBoard,
    job: &TransferJob<'_>,
    radio: &mut Radio<'_>,
    show: &mut dyn FnMut(&SimBoard, RxProgress),
) -> anyhow::Result<Boots> {
    let mut plan = CutPlan::new(board, job.cuts.to_vec());
    let mut boots = Boots::default();
    loop {
        let (exit, record) = boot_app(
            board,
            job.config,
            job.owner,
            Some(&mut *radio),
            job.update_key,
            show,
        )?;
        add_counters(&mut boots.rx, record.rx);
        boots.app_log.extend(record.log);
        boots.rebuild_us += record.rebuild_us;
        if record.finalized.is_some() {
            boots.finalized = record.finalized;
        }
        if record.gave_up {
            bail!("transfer did not converge");
        }
        if let Some(refused) = refusal(radio) {
            return Err(refused.into());
        }
        match exit {
            Exit::Rebooting => break,
            Exit::Halted if !board.power.is_on() => {
                boots.reboots += 1;
                if let Some(request) = reboot_after_cut(board, radio, &mut plan, job)? {
                    boots.finalized = Some(request);
                    break;
                }
            }
            Exit::Halted if radio.sender.is_complete() => break,
            exit => bail!(
                "the DFU app stopped ({exit:?}): {}",
                boots.app_log.join("; ")
            ),
        }
    }
    board.power.restore();
    Ok(boots)
}

/// The receiver's refusal, if its last status refused the session.
fn refusal(radio: &Radio<'_>) -> Option<Refused> {
    refusal_of(&radio.sender)
}

/// After a power cut: the board reboots (the next cut armed) and comes up `reboot_ms` later.
/// Returns the boot request and the time of the cut if one was written before it (finalize was
/// cut after it): the reset then goes into the bootloader, which installs it, and the transfer
/// is over. Otherwise (`None`) the app starts again and resumes.
fn reboot_after_cut(
    board: &mut SimBoard,
    radio: &mut Radio<'_>,
    plan: &mut CutPlan,
    job: &TransferJob<'_>,
) -> anyhow::Result<Option<(Completion, u64)>> {
    let cut_us = board.clock.now_us();
    radio.stop_scan(cut_us);
    board.power_cycle().context("power cycle")?;
    plan.fired();
    plan.arm(board);
    let up = board.clock.now_us() + (job.params.reboot_ms * 1000.0) as u64;
    board.clock.advance_to(up);
    Ok(pending_request(board, job.config)?.map(|c| (c, cut_us)))
}

/// The boot request the board's control area holds, if it is the newest record (not yet
/// confirmed): what the bootloader acts on at the next reset.
fn pending_request(board: &mut SimBoard, config: Config) -> anyhow::Result<Option<Completion>> {
    let mut policy = UpdateRegion::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let status = BlockingDriver::new(&mut policy, &mut board.qspi)
        .start()
        .map_err(|e| anyhow::anyhow!("update-region start: {e}"))?;
    Ok(status
        .newest_record
        .filter(|r| r.kind == control_area::RecordKind::BootRequest)
        .map(|r| Completion::Finalized {
            sequence: r.sequence,
            image_len: r.image_len,
            image_hash: r.image_hash,
        }))
}

fn add_counters(total: &mut RxCounters, c: RxCounters) {
    total.chunks += c.chunks;
    total.duplicates += c.duplicates;
    total.ignored += c.ignored;
    total.dropped += c.dropped;
    total.foreign += c.foreign;
    total.crc_failures += c.crc_failures;
    total.conflicts += c.conflicts;
    total.mismatches += c.mismatches;
}

/// One hostile or malformed advertisement, modelled on `genuine` (the sender's current one,
/// sent from `address`), as the board's scanner reports it.
///
/// The model: other transfers near by advertise from their own session's address (a sender of
/// this protocol always does, [`adv_transfer::session_address`]); a buggy advertiser sends
/// out-of-range, truncated or oversized AdvData; and a corrupted copy of the genuine PDU, from
/// our sender's address, heard just before the genuine one. On a real link the CRC-24 drops all
/// but 2^-24 of corrupted PDUs; the model delivers every one of them, so it is pessimistic and
/// also stands for a forger that sends our own session's chunks (or manifests) with wrong bytes
/// just ahead of the sender.
pub(crate) fn hostile_adv(
    rng: &mut ChaCha8Rng,
    address: [u8; 6],
    genuine: &[u8],
    total_chunks: u32,
) -> ([u8; 6], Vec<u8>) {
    use adv_transfer::wire::{announce, frame, SessionInfo, KIND_MANIFEST, PDU_MAX};
    let company = adv_transfer::DEFAULT_COMPANY_ID;
    let mut out = [0u8; ADV_DATA_MAX];
    let mut pdu = [0u8; PDU_MAX];
    let foreign_session = rng.gen::<u32>() | 1;
    let foreign = adv_transfer::session_address(foreign_session);
    match rng.gen_range(0..7) {
        // Another transfer's data chunk, with the right length for its index.
        0 => {
            let index = rng.gen_range(0..total_chunks);
            pdu[0..2].copy_from_slice(&(index as u16).to_be_bytes());
            rng.fill(&mut pdu[2..]);
            let len = 2 + adv_transfer::wire::chunk_range(index, u32::MAX).1;
            let n = frame(company, &pdu[..len], &mut out);
            (foreign, out[..n].to_vec())
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
            (foreign, out[..n].to_vec())
        }
        // Another transfer's manifest.
        2 => {
            pdu[0] = KIND_MANIFEST;
            pdu[1..5].copy_from_slice(&foreign_session.to_le_bytes());
            rng.fill(&mut pdu[5..]);
            pdu[5..7].copy_from_slice(&0u16.to_le_bytes());
            let n = frame(company, &pdu, &mut out);
            (foreign, out[..n].to_vec())
        }
        // A chunk index beyond the image.
        3 => {
            let index = rng.gen_range(total_chunks..0xF000);
            pdu[0..2].copy_from_slice(&(index as u16).to_be_bytes());
            let n = frame(company, &pdu[..27], &mut out);
            (foreign, out[..n].to_vec())
        }
        // The genuine PDU with a payload bit flipped, heard just before the genuine one and
        // passed to the host as if the CRC-24 had not caught it (see above).
        4 => {
            let mut v = genuine.to_vec();
            let at = 6 + rng.gen_range(0..v.len().saturating_sub(6).max(1));
            if at < v.len() {
                v[at] ^= 1 << rng.gen_range(0..8);
            }
            (address, v)
        }
        // Truncated: the AD length runs past the AdvData.
        5 => {
            let mut v = genuine.to_vec();
            v.truncate(v.len().saturating_sub(rng.gen_range(1..4)).max(1));
            (address, v)
        }
        // Oversized: more than 31 bytes.
        _ => {
            let mut v = genuine.to_vec();
            v.resize(ADV_DATA_MAX + rng.gen_range(1..8), 0xAA);
            (address, v)
        }
    }
}

/// A transfer over a bearer beyond legacy advertising: what the sender offers, whether the
/// board's kernel has the ext_scan driver (then the DFU app offers `dfu_app::EXT_BEARERS`,
/// else legacy only), and the chained link's timing.
#[derive(Clone, Debug)]
pub struct BearerJob {
    pub offer: BearerSet,
    pub ext_scan: bool,
    pub link: BearerLink,
    /// The staging flash's timing the kernel gives the app ([`board_flash_timing`],
    /// `dfu_app::Kernel::flash_timing`): it then pre-erases only the head start its bearer
    /// needs. `None`: the whole image is erased before the pick.
    pub flash: Option<adv_transfer::FlashTiming>,
}

/// The board's QSPI flash (MX25R6435F, high-performance mode, typical datasheet figures) as
/// the receiver's [`adv_transfer::FlashTiming`].
pub fn board_flash_timing() -> adv_transfer::FlashTiming {
    use nrf52840_flash::mx25r::{typical_us, Operation, PowerMode, PAGE_SIZE};
    adv_transfer::FlashTiming {
        erase_sector_us: typical_us(Operation::EraseSector, PowerMode::HighPerformance) as u32,
        program_page_us: typical_us(Operation::PageProgram, PowerMode::HighPerformance) as u32,
        page_len: PAGE_SIZE,
    }
}

/// What a transfer over a picked bearer did.
#[derive(Clone, Debug)]
pub struct BearerReport {
    /// The bearer the two sides agreed on.
    pub bearer: Bearer,
    /// Its figures and limit at the link's interval ([`Bearer::budget_with_interval`]).
    pub budget: Budget,
    pub image_bytes: usize,
    /// From the sender's start (the board's first scan, or `BearerLink::sender_delay_us`
    /// after it) until the boot request was written.
    pub sim_time_s: f64,
    pub goodput_bytes_per_s: f64,
    /// From the sender's start until the sender took the receiver's pick: the negotiation
    /// and, on a chained bearer, the receiver's pre-erase ([`adv_transfer::Receiver::preparing`])
    /// of what the DFU app did not erase ahead.
    pub pick_s: f64,
    /// The image over the time after the pick, while the data flows.
    pub data_goodput_bytes_per_s: f64,
    /// Of `sim_time_s`, the kernel's decoding of a compressed image into the staging slot at
    /// finalize (0 for a plain image).
    pub rebuild_s: f64,
    pub link: ChainStats,
    pub tx: TxCounters,
    pub rx: RxCounters,
    /// Program and erase operations on the receiving board's flash.
    pub flash_ops: u64,
    /// The DFU app's driver calls ([`AppTrace`]) and console.
    pub app: AppTrace,
    pub app_log: Vec<String>,
}

/// Run one transfer of a plain image over the bearer the sender and the board's DFU app agree
/// on (legacy advertising until then): the sender ([`Sender::offer_bearers`]) on
/// [`ChainRadio`], the DFU app's own loop (`dfu_app::run_with_bearers`) on the board, over
/// [`ExtKernel`]: bulk-scan and ext_scan over the radio, staging through the update-region
/// policy on the board's QSPI flash model, whose operations take their simulated time.
pub fn run_bearer_transfer(
    board: &mut SimBoard,
    job: &TransferJob<'_>,
    bearers: &BearerJob,
) -> anyhow::Result<BearerReport> {
    let mut sender = new_sender(job, None)?;
    sender.offer_bearers(bearers.offer);
    let mut radio = ChainRadio::new(job.params, bearers.link.clone(), sender, job.seed);
    let mut policy = UpdateRegion::new(job.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    BlockingDriver::new(&mut policy, &mut board.qspi)
        .start()
        .map_err(|e| anyhow::anyhow!("update-region start: {e}"))?;
    let ops_at_start = board.power.ops();
    let t0 = board.clock.now_us();
    let mut bitmap = vec![0u8; dfu_app::BITMAP_LEN];
    let mut batch = vec![0u8; dfu_app::BATCH_LEN];
    let mut ext_batch = vec![0u8; dfu_app::EXT_BATCH_LEN];
    // The received-stream area, as in `boot_app`: a compressed image is staged there and
    // decoded into the staging slot at finalize.
    let mut stream = stream_area_policy(board, job.config)?;
    let mut no_progress = |_: &SimBoard, _: RxProgress| {};
    let inner = SimKernel::new(board, &mut policy, job.owner, None, &mut no_progress)
        .with_stream(&mut stream, job.config)
        .with_update_key(job.update_key);
    let mut kernel = ExtKernel::new(inner, &mut radio, bearers.ext_scan, bearers.flash);
    let exit = dfu_app::run_with_bearers(&mut kernel, &mut bitmap, &mut batch, &mut ext_batch);
    let (record, app) = kernel.finish();
    if app.gave_up {
        bail!(
            "transfer did not converge: {:?}",
            &record.log[record.log.len().saturating_sub(4)..]
        );
    }
    if let Some(refused) = refusal_of(&radio.sender) {
        return Err(refused.into());
    }
    let Some((_, end_us)) = record.finalized else {
        bail!(
            "the transfer ended without a boot request ({exit:?}): {}",
            record.log.join("; ")
        );
    };
    let Some(bearer) = app.bearer else {
        bail!("finalized without a bearer");
    };
    let t0 = radio.started_us.unwrap_or(t0);
    let sim_time_s = end_us.saturating_sub(t0) as f64 / 1e6;
    let pick_s = app.picked_us.unwrap_or(end_us).saturating_sub(t0) as f64 / 1e6;
    let rebuild_s = record.rebuild_us as f64 / 1e6;
    Ok(BearerReport {
        pick_s,
        rebuild_s,
        data_goodput_bytes_per_s: job.image.len() as f64 / (sim_time_s - pick_s - rebuild_s),
        bearer,
        budget: bearer.budget_with_interval(bearers.link.interval_us),
        image_bytes: job.image.len(),
        sim_time_s,
        goodput_bytes_per_s: job.image.len() as f64 / sim_time_s,
        link: radio.stats.clone(),
        tx: radio.sender.counters(),
        rx: app.rx,
        flash_ops: board.power.ops() - ops_at_start,
        app,
        app_log: record.log,
    })
}

/// The receiver's refusal as `sender` last heard it, if its status refused the session.
pub fn refusal_of(sender: &Sender<'_>) -> Option<Refused> {
    let state = sender.receiver_state().filter(|s| s.is_refusal())?;
    Some(Refused {
        state,
        running: sender.receiver_running().flatten(),
    })
}
