//! `emulate system`: the whole device under emulation (docs/emulation.md, "The whole device").
//! The real bootloader ELF, the real kernel (v1) and the real DFU app TBF from `.ci/build-device`
//! run from reset under `boot-emu`; the host-side adv-transfer sender puts its advertisements on
//! air around the modelled RADIO (three channels per advertising event, every 20 ms plus BLE's
//! 0–10 ms advDelay) and hears the app's status advertisements. Power-ons follow each other
//! (UICR, RESETREAS and flash carried over) until the device stops resetting, a power-on spends
//! its instruction budget, or the scenario is done: the trial kernel's app has confirmed and
//! listens, a further reset keeps the kernel, and the app listens again.
//!
//! `--cut PHASE:N[:torn]` cuts the power as the N-th program/erase operation (of any flash) of a
//! phase is about to start, or tears it inside with `:torn`, and powers the board up again
//! (flash contents kept, RESETREAS 0): `transfer` counts from the start of the first power-on
//! with the UICR programmed (the app receives and stages the image, then finalizes: the boot
//! request is the phase's last writes), `finalize` from the DFU app's first FINALIZE or
//! OUTPUT_BEGIN command to the staged-update driver (its SVC, seen through `BootConfig::at_svc`:
//! the app's rebuild of a compressed image or patch into the staging slot, the kernel's verify
//! and the boot request), `install` from the start of the power-on after the finalize (the
//! bootloader's install), `confirm` from that power-on's kernel jump (the trial kernel's app
//! writes its confirm).
//!
//! `--bearer extended-1m|extended-2m` has the sender offer that bearer and, once the DFU app
//! picks it, put extended events on air (`ext_air::extended_event`, the simulator's code): the
//! kernel built with its `ble5` feature follows them with TIMER0, PPI and the RADIO.
//!
//! `--foreign-sender RATE` adds a second sender on air (`Foreign`), `--app` chooses the apps
//! in the app region, and `--boot-only` boots them with nothing on air (a refused credential,
//! a process the MPU stops).
//!
//! `--compression` sends v2 as a compressed image and `--base` as a delta patch against v1,
//! chosen and sent by the simulator's code (`ota_sim::system::smaller_form`,
//! `ota_sim::transfer::sender_for`); the kernel rebuilds v2 into the staging slot at finalize.
//! For `--base` the device first comes to run v1 as an earlier update leaves it (staged whole
//! once the UICR is programmed, installed by the bootloader as a trial, confirmed by the DFU
//! app, nothing on air until then), so that the kernel can name the image it runs. A receiver
//! that refuses the form is not answered with the full image: the run reports the refusal as
//! its error.

use std::path::PathBuf;

use anyhow::Context;

use adv_transfer::bearer::{Bearer, BearerSet};
use adv_transfer::wire::{ADV_DATA_MAX, EXT_ADV_DATA_MAX};
use adv_transfer::{Sender, DEFAULT_COMPANY_ID};
use std::sync::atomic::Ordering::Relaxed;

use boot_emu::{run_with_air, BootConfig, Exit, Firmware, JumpHook, SvcHook};
use hw_models::radio::{AirPacket, Phy, Radio, ADV_ACCESS_ADDRESS};
use hw_models::SimBoard;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of `.ci/build-device`'s artifacts.
    #[arg(long, default_value = "target/device")]
    pub device_dir: PathBuf,
    /// Share of the sender's packets lost on air (CRC failures at the device).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Share of received packets replaced by junk: over-length (LENGTH 38–255) or malformed.
    #[arg(long, default_value_t = 0.0)]
    pub junk_radio: f64,
    /// A second sender on air from the moment the device has joined the update's session to the
    /// end of the run: RATE advertising events per second (each on the three channels), half of
    /// them another session's transfer of a different image from another address, half
    /// malformed PDUs (bad AD framing, wrong lengths, control PDUs with garbage).
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub foreign_sender: f64,
    /// Instructions per power-on before the run gives up.
    #[arg(long, default_value_t = 3_000_000_000)]
    pub budget: u64,
    /// Power-ons at most.
    #[arg(long, default_value_t = 8)]
    pub max_boots: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Power cut: `transfer:N`, `finalize:N`, `install:N` or `confirm:N`, `:torn` to tear the
    /// operation (repeatable; transfer and finalize share a power-on, as do install and
    /// confirm, so only one of each pair).
    #[arg(long = "cut", value_parser = parse_cut)]
    pub cuts: Vec<Cut>,
    /// The apps in the app region, TBF files of the device directory placed one after the
    /// other from its start, as tockloader places them (repeatable; default: the DFU app,
    /// `tock-ota-dfu.tbf`).
    #[arg(long = "app", value_name = "TBF")]
    pub apps: Vec<String>,
    /// Boot only: power-ons from reset with nothing on air until one ends other than in a
    /// system reset (the budget spent, or the kernel asleep for good); the report says which
    /// apps started (their first instruction ran), what the console printed and the faults.
    /// Takes `--budget` per power-on; the update's options do not apply.
    #[arg(long)]
    pub boot_only: bool,
    /// Send v2 compressed (imgtool's format; signed with the device directory's update key as
    /// `.ci/build-device` signed `kernel-v2.signed.bin`, whose bytes its plain image must be):
    /// the kernel decodes it into the staging slot at finalize.
    #[arg(long, value_enum, conflicts_with = "base")]
    pub compression: Option<ota_imgtool::compress::CompressionArg>,
    /// Send v2 as a delta patch against v1 (`kernel-v1.signed.bin`), which the device first
    /// comes to run through an earlier update (an extra install and confirm before anything
    /// goes on air): the kernel rebuilds v2 from the kernel slot and the patch at finalize.
    #[arg(long)]
    pub base: bool,
    /// Send this signed image for v2 as it is, compressed or not (for example one `imgtool sign
    /// --compression` made of `kernel-v1.bin` with the update key): its image, decompressed if
    /// compressed, must hash as `kernel-v2.signed.bin` does.
    #[arg(long, value_name = "SIGNED", conflicts_with_all = ["base", "compression"])]
    pub image: Option<PathBuf>,
    /// Update an app instead of the kernel: this TAB's `cortex-m4` TBF goes on air as an app
    /// session to a device that runs `--app-installed` beside the DFU app (a path, or a name
    /// in the device directory, e.g. `hello-app-v2.tab`).
    #[arg(long, value_name = "TAB", requires = "app_installed")]
    pub app_update: Option<PathBuf>,
    /// The version of the app the device runs before `--app-update` (a TAB).
    #[arg(long, value_name = "TAB", requires = "app_update")]
    pub app_installed: Option<PathBuf>,
    /// The bearer the sender offers besides legacy advertising, on which it puts the data once
    /// the DFU app picks it: `extended-1m` or `extended-2m` (ADV_EXT_IND on 37, 38, 39 pointing
    /// to AUX_ADV_IND and AUX_CHAIN_IND on the secondary channels at that PHY), `periodic-1m` or
    /// `periodic-2m` (a periodic train of AUX_SYNC_IND and AUX_CHAIN_IND at the bearer's
    /// shortest interval, its extended set's SyncInfo pointing to it), or `legacy` only. The DK
    /// kernel must be built with its `ble5` feature to follow them.
    #[arg(long, value_enum, default_value_t = BearerArg::Legacy)]
    pub bearer: BearerArg,
    /// How fast the sender's clock runs against the device's, ppm, for a periodic train's
    /// anchors and its SyncInfo offsets (the simulator's default link: the sender +20, the
    /// board −20). At most the declared sleep clock accuracy of either side (50 ppm each).
    #[arg(long, default_value_t = 40.0, allow_negative_numbers = true)]
    pub drift_ppm: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--bearer`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BearerArg {
    #[default]
    Legacy,
    #[value(name = "extended-1m")]
    Extended1m,
    #[value(name = "extended-2m")]
    Extended2m,
    #[value(name = "periodic-1m")]
    Periodic1m,
    #[value(name = "periodic-2m")]
    Periodic2m,
}

impl BearerArg {
    /// The chained bearer offered besides legacy, if any.
    pub fn chained(self) -> Option<Bearer> {
        match self {
            BearerArg::Legacy => None,
            BearerArg::Extended1m => Some(Bearer::Extended(Phy::Le1M)),
            BearerArg::Extended2m => Some(Bearer::Extended(Phy::Le2M)),
            BearerArg::Periodic1m => Some(Bearer::Periodic(Phy::Le1M)),
            BearerArg::Periodic2m => Some(Bearer::Periodic(Phy::Le2M)),
        }
    }
}

mod app_update;

/// Start of the DK kernel's app region (`boards/nrf52840dk-ota/layout.ld`, `_sapps`).
const APP_REGION: u32 = 0x4_0000;
/// End of the nRF52840's 1 MiB internal flash.
const INTERNAL_FLASH_END: u64 = 0x10_0000;

/// An app placed in the app region.
#[derive(Debug, Serialize)]
pub struct AppReport {
    pub file: String,
    /// Where its TBF starts, and its first instruction.
    pub address: u32,
    pub entry: u32,
    /// Whether its first instruction ran: the kernel loaded and started it (a process whose
    /// credential the kernel refuses never runs).
    pub started: bool,
}

/// The first instruction of the TBF `tbf` placed at `address`: the header size plus the
/// `init_fn_offset` of its Program TLV (type 9), else of its Main TLV (type 1), as Tock's
/// `TbfHeader::get_init_function_offset` computes it (TBF v2 only), without the Thumb bit.
pub fn tbf_entry(tbf: &[u8], address: u32) -> Result<u32, String> {
    let u16_at = |at: usize| {
        tbf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        tbf.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if u16_at(0) != Some(2) {
        return Err(format!(
            "not a TBF version 2 header (version {:?})",
            u16_at(0)
        ));
    }
    let header_size = u16_at(2).ok_or("truncated header")? as usize;
    if header_size < 16 || header_size > tbf.len() {
        return Err(format!(
            "header size {header_size} outside 16..={}",
            tbf.len()
        ));
    }
    let (mut at, mut main, mut program) = (16, None, None);
    while at + 4 <= header_size {
        let (kind, len) = (
            u16_at(at).unwrap_or(0),
            u16_at(at + 2).unwrap_or(0) as usize,
        );
        let value = at + 4;
        if value + len > header_size {
            return Err(format!("TLV {kind} at {at} runs past the header"));
        }
        match kind {
            1 if len >= 4 => main = u32_at(value),
            9 if len >= 4 => program = u32_at(value),
            _ => {}
        }
        at = value + len.div_ceil(4) * 4;
    }
    let offset = program
        .or(main)
        .ok_or("no Program or Main TLV (no entry point)")?;
    // The offset carries the Thumb bit (as the process's first PC does).
    Ok((address + header_size as u32 + offset) & !1)
}

/// Where a power cut is counted from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Transfer,
    Finalize,
    Install,
    Confirm,
}

/// A power cut of `--cut`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Cut {
    pub phase: Phase,
    /// The operation of the phase (1-based) the cut hits.
    pub op: u64,
    /// Torn inside that operation (otherwise power fails before it starts).
    pub torn: bool,
}

impl Cut {
    /// Arms the cut on `power`, counted from now.
    fn arm(&self, power: &hw_models::power::Power) {
        if self.torn {
            power.cut_inside(self.op);
        } else {
            power.cut_after(self.op - 1);
        }
    }
}

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match self.phase {
            Phase::Transfer => "transfer",
            Phase::Finalize => "finalize",
            Phase::Install => "install",
            Phase::Confirm => "confirm",
        };
        write!(
            f,
            "{phase}:{}{}",
            self.op,
            if self.torn { ":torn" } else { "" }
        )
    }
}

/// Parses `PHASE:N[:torn]`.
pub fn parse_cut(s: &str) -> Result<Cut, String> {
    let mut parts = s.split(':');
    let phase = match parts.next() {
        Some("transfer") => Phase::Transfer,
        Some("finalize") => Phase::Finalize,
        Some("install") => Phase::Install,
        Some("confirm") => Phase::Confirm,
        _ => {
            return Err(format!(
                "{s:?}: the phase is transfer, finalize, install or confirm"
            ))
        }
    };
    let op = parts
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|&n| n >= 1)
        .ok_or_else(|| format!("{s:?}: N is an operation number from 1"))?;
    let torn = match parts.next() {
        None => false,
        Some("torn") => true,
        Some(other) => return Err(format!("{s:?}: {other:?} is not `torn`")),
    };
    if parts.next().is_some() {
        return Err(format!("{s:?}: PHASE:N[:torn]"));
    }
    Ok(Cut { phase, op, torn })
}

/// What became of a cut.
#[derive(Debug, Serialize)]
pub struct CutReport {
    pub cut: String,
    /// The power-on (1-based) it ended, if it was reached.
    pub power_on: Option<usize>,
}

/// The SVC immediate of a Tock command syscall (TRD104, "Command": R0 the driver number, R1 the
/// command number).
const TOCK_COMMAND_SVC: u8 = 2;

/// BLE advertising channels 37, 38, 39.
const CHANNELS_MHZ: [u32; 3] = [2402, 2426, 2480];
/// ADV_NONCONN_IND with a random (TxAdd) advertiser address.
const ADV_NONCONN_IND_RANDOM: u8 = 0x42;

/// The copies of one advertising event's PDU on the three primary channels come within this
/// of the first (the DK kernel sends them back to back; an advertising event lasts at most
/// 10 ms, Core Vol 6 Part B §4.4.2.2.1).
const STATUS_COPIES_WITHIN_US: u64 = 10_000;

/// The sender on air.
struct SenderLink<'a> {
    sender: Sender<'a>,
    next_event_us: u64,
    rng: ChaCha8Rng,
    loss: f64,
    junk: f64,
    heard: usize,
    /// The last PDU the device sent that the sender heard, and when.
    last_heard: Option<(u64, Vec<u8>)>,
    events: u64,
    junk_sent: u64,
    /// `--foreign-sender`'s second sender, if any.
    foreign: Option<Foreign<'a>>,
    /// Chained events put on air (after the pick of a chained bearer), their chain PDUs
    /// (AUX_ADV_IND, AUX_CHAIN_IND), and the chain PDUs the device's RADIO received whole
    /// (before this power-on, and the RADIO's count in it).
    chained_events: u64,
    chain_pdus: u64,
    chain_received_before: u64,
    chain_received_now: u64,
    /// Periodic: the train's first anchor and the next event's counter, and the extended set's
    /// next event (its SyncInfo points to the train).
    train: Option<(u64, u64)>,
    sync_set_us: Option<u64>,
    /// `--drift-ppm`.
    drift_ppm: f64,
}

/// The chained link's figures in the report.
#[derive(Debug, Serialize)]
pub struct ChainedReport {
    /// The bearer the sender was on when the run ended (`None`: legacy, no pick).
    pub bearer: Option<String>,
    /// Extended events on air after the pick.
    pub events: u64,
    /// Their AUX_ADV_IND and AUX_CHAIN_IND PDUs on air.
    pub chain_pdus: u64,
    /// Those the device's RADIO received whole with a good CRC (on a secondary channel).
    pub chain_pdus_received: u64,
}

/// A second sender on air (`--foreign-sender`): another session's transfer of a different
/// image from that session's address, and malformed PDUs from that address or random ones. It
/// starts once the device has joined the update's session (the update's sender has heard a
/// status naming it: before that, whichever announce the receiver hears first is the session
/// it joins) and goes on to the end of the run, every power-on.
struct Foreign<'a> {
    sender: Sender<'a>,
    /// Mean time between its advertising events.
    interval_us: u64,
    /// Its next advertising event, once started.
    next_event_us: Option<u64>,
    rng: ChaCha8Rng,
    /// When it started.
    started_us: Option<u64>,
    events: u64,
    /// Its packets put on air (three per event), and those of them malformed.
    packets: u64,
    malformed: u64,
    /// Its packets the RADIO received (whole, or cut at MAXLEN) into the device's RAM.
    received: u64,
    /// The random addresses its malformed PDUs came from (to tell its packets apart).
    random_addresses: std::collections::HashSet<[u8; 6]>,
}

/// Most foreign advertising events per second: an event's three packets take 1.2 ms.
const FOREIGN_RATE_MAX: f64 = 500.0;

impl Foreign<'_> {
    /// Queues its events up to `until_us`.
    fn queue(&mut self, until_us: u64, radio: &mut Radio) {
        while let Some(at) = self.next_event_us.filter(|&t| t <= until_us) {
            let (adv_a, adv) = if self.rng.gen::<bool>() {
                self.malformed += 3;
                self.malformed_adv()
            } else {
                let mut adv = [0u8; ADV_DATA_MAX];
                let n = self.sender.next_adv(&mut adv);
                (self.sender.address(), adv[..n].to_vec())
            };
            let mut payload = adv_a.to_vec();
            payload.extend_from_slice(&adv);
            for (i, &mhz) in CHANNELS_MHZ.iter().enumerate() {
                radio.air(AirPacket {
                    at_us: at + 400 * i as u64,
                    mhz,
                    s0: ADV_NONCONN_IND_RANDOM,
                    length: payload.len() as u8,
                    payload: payload.clone(),
                    crc_ok: true,
                    phy: Phy::Le1M,
                    aa: ADV_ACCESS_ADDRESS,
                });
            }
            self.packets += 3;
            self.events += 1;
            let half = self.interval_us / 2;
            self.next_event_us = Some(at + half + self.rng.gen_range(0..=2 * half));
        }
    }

    /// A malformed advertisement (AdvA, AdvData of at most 31 bytes) from this sender's address
    /// or a random one: every way `adv_transfer::wire::unframe` and the receiver's PDU parsers
    /// refuse, and control PDUs of every kind filled with garbage.
    fn malformed_adv(&mut self) -> ([u8; 6], Vec<u8>) {
        let rng = &mut self.rng;
        let adv_a = if rng.gen::<bool>() {
            self.sender.address()
        } else {
            let mut a: [u8; 6] = rng.gen();
            a[5] |= 0xC0; // a random static address
            self.random_addresses.insert(a);
            a
        };
        let garbage =
            |rng: &mut ChaCha8Rng, n: usize| (0..n).map(|_| rng.gen()).collect::<Vec<u8>>();
        // Our company's manufacturer-specific AD structure around `pdu` (at most 27 bytes).
        let ours = |pdu: &[u8]| {
            let mut adv = vec![pdu.len() as u8 + 3, 0xFF];
            adv.extend_from_slice(&DEFAULT_COMPANY_ID.to_le_bytes());
            adv.extend_from_slice(pdu);
            adv
        };
        let adv = match rng.gen_range(0..8) {
            // An AD structure whose length runs past the end.
            0 => {
                let n = rng.gen_range(1..ADV_DATA_MAX);
                let mut adv = garbage(rng, n);
                adv[0] = rng.gen_range(n as u8..=255);
                adv
            }
            // Another company's manufacturer data.
            1 => {
                let mut adv = ours(&garbage(rng, 20));
                adv[2] ^= 0x5A;
                adv
            }
            // Our company with a PDU too short for a head (0 or 1 byte).
            2 => {
                let n = rng.gen_range(0..2);
                ours(&garbage(rng, n))
            }
            // An announce of the wrong length, or of the right length with garbage fields.
            3 => {
                let len = rng.gen_range(2..=27);
                let mut pdu = garbage(rng, len);
                pdu[0] = adv_transfer::wire::KIND_ANNOUNCE;
                ours(&pdu)
            }
            // A manifest of garbage (length not head + 4n, or garbage CRCs for a random
            // session).
            4 => {
                let len = rng.gen_range(1..=27);
                let mut pdu = garbage(rng, len);
                pdu[0] = adv_transfer::wire::KIND_MANIFEST;
                ours(&pdu)
            }
            // A status, a base or a target of garbage.
            5 => {
                let len = rng.gen_range(1..=27);
                let mut pdu = garbage(rng, len);
                pdu[0] = [
                    adv_transfer::wire::KIND_STATUS,
                    adv_transfer::wire::KIND_BASE,
                    adv_transfer::wire::KIND_TARGET,
                ][rng.gen_range(0..3)];
                ours(&pdu)
            }
            // An undefined control kind.
            6 => {
                let len = rng.gen_range(1..=27);
                let mut pdu = garbage(rng, len);
                pdu[0] = rng.gen_range(0xF9..=0xFF);
                ours(&pdu)
            }
            // A chunk head alone, or a chunk beyond any image.
            _ => {
                let len = if rng.gen::<bool>() { 2 } else { 27 };
                let mut pdu = garbage(rng, len);
                pdu[..2].copy_from_slice(&rng.gen_range(0xE000u16..0xF000).to_be_bytes());
                ours(&pdu)
            }
        };
        (adv_a, adv)
    }
}

impl hw_models::radio::Air for SenderLink<'_> {
    fn pump(&mut self, now_us: u64, radio: &mut Radio) {
        for sent in &radio.transmitted[self.heard..] {
            // AdvA (6 bytes), then the AdvData.
            // One advertising event sends the same PDU on 37, 38 and 39: the sender hears it
            // once, as a host scanner filtering duplicates reports it and as the simulator's
            // link delivers a status (a sender counts statuses, e.g. those naming no pick).
            let copy = self.last_heard.as_ref().is_some_and(|(at, p)| {
                sent.at_us.saturating_sub(*at) < STATUS_COPIES_WITHIN_US && *p == sent.payload
            });
            self.last_heard = Some((sent.at_us, sent.payload.clone()));
            if copy {
                continue;
            }
            if sent.payload.len() > 6 {
                self.sender.on_adv(&sent.payload[6..]);
                if let Some(f) = &mut self.foreign {
                    f.sender.on_adv(&sent.payload[6..]);
                }
            }
        }
        self.heard = radio.transmitted.len();
        self.chain_received_now = radio.received_secondary;
        if let Some(b @ Bearer::Periodic(_)) = self.sender.bearer() {
            self.periodic_until(b, now_us + 1_000, radio);
        }
        // Queue a little ahead, so an event is on air before the RADIO could miss its start.
        while self.next_event_us <= now_us + 1_000 && self.train.is_none() {
            if let Some(b) = self.sender.bearer().filter(|b| b.chained()) {
                self.chained_event(b, radio);
                continue;
            }
            let mut adv = [0u8; ADV_DATA_MAX];
            let n = self.sender.next_adv(&mut adv);
            let mut payload = self.sender.address().to_vec();
            payload.extend_from_slice(&adv[..n]);
            for (i, &mhz) in CHANNELS_MHZ.iter().enumerate() {
                let at_us = self.next_event_us + 400 * i as u64;
                let packet = if self.rng.gen::<f64>() < self.junk {
                    self.junk_sent += 1;
                    self.junk_packet(at_us, mhz)
                } else {
                    AirPacket {
                        at_us,
                        mhz,
                        s0: ADV_NONCONN_IND_RANDOM,
                        length: payload.len() as u8,
                        payload: payload.clone(),
                        crc_ok: self.rng.gen::<f64>() >= self.loss,
                        phy: Phy::Le1M,
                        aa: ADV_ACCESS_ADDRESS,
                    }
                };
                radio.air(packet);
            }
            self.events += 1;
            self.next_event_us += 20_000 + self.rng.gen_range(0..=10_000);
        }
        if let Some(f) = &mut self.foreign {
            if f.next_event_us.is_none() && self.sender.receiver_state().is_some() {
                f.next_event_us = Some(now_us);
                f.started_us = Some(now_us);
            }
            f.queue(now_us + 1_000, radio);
            // Which packets the RADIO takes by now: the peripheral model advances it to the
            // same time right after this call, so advancing here changes nothing; its EasyDMA
            // writes (S0, LENGTH, AdvA, ...) are drained only after that.
            let before = radio.dma_writes.len();
            radio.advance(now_us);
            let theirs = f.sender.address();
            f.received += radio.dma_writes[before..]
                .iter()
                .filter_map(|(_, bytes)| <[u8; 6]>::try_from(bytes.get(2..8)?).ok())
                .filter(|a| *a == theirs || f.random_addresses.contains(a))
                .count() as u64;
        }
    }

    fn next_at(&self) -> Option<u64> {
        let foreign = self.foreign.as_ref().and_then(|f| f.next_event_us);
        Some(foreign.map_or(self.next_event_us, |f| f.min(self.next_event_us)))
    }
}

impl<'a> SenderLink<'a> {
    /// The link before its first event (at 0 µs): nothing heard, nothing sent.
    fn new(
        sender: Sender<'a>,
        rng: ChaCha8Rng,
        loss: f64,
        junk: f64,
        foreign: Option<Foreign<'a>>,
        drift_ppm: f64,
    ) -> Self {
        SenderLink {
            sender,
            next_event_us: 0,
            rng,
            loss,
            junk,
            heard: 0,
            last_heard: None,
            events: 0,
            junk_sent: 0,
            foreign,
            chained_events: 0,
            chain_pdus: 0,
            chain_received_before: 0,
            chain_received_now: 0,
            train: None,
            sync_set_us: None,
            drift_ppm,
        }
    }
}

impl SenderLink<'_> {
    /// The periodic train of bearer `b` and its extended set up to `until_us`
    /// (`ext_air::periodic_event`, `ext_air::sync_set_event`, as the simulator's link airs
    /// them; the sender's clock runs `drift_ppm` fast against the device's): the train from the first
    /// `next_event_us` after the pick, anchors at the bearer's shortest interval, the set every
    /// 20 ms plus the 0–10 ms advDelay from 1 ms after the train's start. `next_event_us`
    /// follows the earlier of the two.
    fn periodic_until(&mut self, b: Bearer, until_us: u64, radio: &mut Radio) {
        let interval = f64::from(b.budget_with_interval(0).interval_us);
        // The sender's clock runs drift_ppm fast: its interval in the device's time.
        let true_interval = interval / (1.0 + self.drift_ppm * 1e-6);
        let train = ext_air::MODEL_TRAIN;
        loop {
            let (first, k) = *self.train.get_or_insert((self.next_event_us, 0));
            let anchor = first as f64 + k as f64 * true_interval;
            let sync = *self.sync_set_us.get_or_insert(first + 1_000);
            self.next_event_us = (anchor.ceil() as u64).min(sync);
            if self.next_event_us > until_us {
                return;
            }
            let pdus = if (sync as f64) < anchor {
                self.sync_set_us = Some(sync + 20_000 + self.rng.gen_range(0..=10_000));
                ext_air::sync_set_event(
                    sync as f64,
                    self.chained_events,
                    b.phy(),
                    self.sender.address(),
                    &train,
                    (first as f64, true_interval, interval),
                    self.drift_ppm,
                    f64::from(adv_transfer::bearer::SCA_PPM_DEFAULT),
                )
            } else {
                self.train = Some((first, k + 1));
                self.chained_events += 1;
                self.events += 1;
                let mut adv = [0u8; EXT_ADV_DATA_MAX];
                let len = self.sender.next_event(&mut adv);
                let e = self.chained_events;
                ext_air::periodic_event(anchor, k, e, b, &adv[..len], &train, true)
            };
            self.air_pdus(pdus, radio);
        }
    }

    /// PDUs on the air of the RADIO model (each lost at `loss`).
    fn air_pdus(&mut self, pdus: Vec<ext_air::AirPdu>, radio: &mut Radio) {
        for p in pdus {
            self.chain_pdus += u64::from(p.chain);
            radio.air(AirPacket {
                at_us: p.start.round() as u64,
                mhz: ext_air::channel_mhz(p.channel).expect("a BLE channel"),
                s0: p.bytes[0],
                length: p.bytes[1],
                payload: p.bytes[2..].to_vec(),
                crc_ok: self.rng.gen::<f64>() >= self.loss,
                phy: p.phy,
                aa: p.aa,
            });
        }
    }

    /// One extended event of bearer `b` at `next_event_us` (`ext_air::extended_event`, as the
    /// simulator's link puts them on air), and the next event after the bearer's shortest
    /// interval (or the event's end) and the advDelay.
    fn chained_event(&mut self, b: Bearer, radio: &mut Radio) {
        let t = self.next_event_us;
        let mut adv = [0u8; EXT_ADV_DATA_MAX];
        let len = self.sender.next_event(&mut adv);
        let (pdus, end) = ext_air::extended_event(
            t as f64,
            self.chained_events,
            b,
            self.sender.address(),
            &adv[..len],
            true,
        );
        self.air_pdus(pdus, radio);
        self.chained_events += 1;
        self.events += 1;
        let interval = u64::from(b.budget_with_interval(0).interval_us);
        let end = end.ceil() as u64;
        self.next_event_us = t + interval.max(end - t) + self.rng.gen_range(0..=10_000);
    }

    /// Over-length (LENGTH 38–255, as many bytes on air) or malformed (random header and
    /// bytes within the legacy length).
    fn junk_packet(&mut self, at_us: u64, mhz: u32) -> AirPacket {
        let over = self.rng.gen::<bool>();
        let length: u8 = if over {
            self.rng.gen_range(38..=255)
        } else {
            self.rng.gen_range(0..=37)
        };
        let payload = (0..length).map(|_| self.rng.gen()).collect();
        AirPacket {
            at_us,
            mhz,
            s0: if over {
                ADV_NONCONN_IND_RANDOM
            } else {
                self.rng.gen()
            },
            length,
            payload,
            crc_ok: true,
            phy: Phy::Le1M,
            aa: ADV_ACCESS_ADDRESS,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct PowerOn {
    pub exit: String,
    pub radio_received: u64,
    pub radio_cut: u64,
    pub radio_missed: u64,
    pub radio_sent: u64,
    pub instructions: u64,
    pub emulated_seconds: f64,
    /// Program/erase operations started (on any flash).
    pub flash_ops: u64,
    /// Faults the MPU raised (a process touching memory outside its regions).
    pub faults: Vec<String>,
    /// Emulated seconds from the DFU app's first FINALIZE command in this power-on to its end:
    /// the kernel's rebuild of a compressed image or a patch and its verify of the staged image,
    /// the boot request, and the app's `REBOOT_DELAY_MS` (0.1 s) before its reboot.
    pub finalize_to_end_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ForeignReport {
    pub session: u32,
    pub image_len: usize,
    /// When it started (emulated seconds since the first power-on), if it did.
    pub started_at_seconds: Option<f64>,
    pub events: u64,
    pub packets: u64,
    pub malformed_packets: u64,
    pub packets_received: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// What went on air for v2: `"full"` (its signed image), `"compressed"` or `"delta"`.
    pub sent: &'static str,
    /// The bytes of what went on air for v2 (the image, the compressed image or the patch).
    pub bytes_on_air_image: usize,
    pub kernel_before: String,
    pub kernel_after: String,
    pub confirmed: bool,
    pub app_listening_after_update: bool,
    /// The last power-on's console has the DFU app's "dfu: listening".
    pub listening: bool,
    pub apps: Vec<AppReport>,
    pub emulated_seconds: f64,
    pub instructions: u64,
    pub wall_seconds: f64,
    pub emulated_seconds_per_wall_second: f64,
    pub advertising_events: u64,
    pub junk_packets: u64,
    /// `--foreign-sender`: its advertising events and packets on air, those of them malformed,
    /// and those the device's RADIO received (whole or cut at MAXLEN).
    pub foreign: Option<ForeignReport>,
    /// `--bearer` other than legacy: what went over the chained bearer.
    pub chained: Option<ChainedReport>,
    pub sender_complete: bool,
    pub receiver_state: Option<String>,
    pub power_ons: Vec<PowerOn>,
    pub cuts: Vec<CutReport>,
    pub console: Vec<String>,
    pub error: Option<String>,
}

/// The compressed image of `v2` (`kernel-v2.signed.bin`), signed as `.ci/build-device` signed
/// it (`key`, `--pad-header`, v2's header size, version, load address and security counter):
/// refused unless its plain image is `v2` byte for byte, so the update ends with v2 either way.
fn compressed_v2(
    key: &p256::ecdsa::SigningKey,
    v2: &[u8],
    compression: ota_image::compressed::Compression,
) -> anyhow::Result<Vec<u8>> {
    use ota_imgtool::sign::{sign_image, SignOptions};
    let info = ota_image::parse_image(&mut &v2[..])
        .map_err(|e| anyhow::anyhow!("kernel-v2.signed.bin: {e:?}"))?;
    let opts = SignOptions {
        version: info.header.version,
        security_counter: info.security_counter,
        header_size: info.header.header_size,
        pad_header: true,
        load_addr: info.header.load_addr,
        ..SignOptions::default()
    };
    let start = info.payload_offset as usize;
    let payload = &v2[start..start + info.payload_len as usize];
    if sign_image(payload, &opts, key)? != v2 {
        anyhow::bail!(
            "kernel-v2.signed.bin is not its payload signed with update-key.pem as .ci/build-device signs it: rebuild the artifacts"
        );
    }
    Ok(ota_imgtool::compress::sign_compressed(payload, &opts, key, compression)?.image)
}

/// Whether the signed `image` is `"compressed"` or `"full"`, and the SHA-256 of the image it
/// installs (its DECOMP_SHA if compressed, else its own).
fn image_hash(image: &[u8]) -> anyhow::Result<(&'static str, [u8; 32])> {
    let info = ota_image::parse_image(&mut &image[..]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let compressed = ota_image::compressed::Compression::from_flags(info.header.flags)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?
        .is_some();
    let hash = if compressed {
        let tlv = info
            .tlvs()
            .find(|t| t.kind == ota_image::tlv::DECOMP_SHA && t.len == 32)
            .ok_or_else(|| anyhow::anyhow!("a compressed image without a DECOMP_SHA TLV"))?;
        image[tlv.value_offset as usize..][..32].try_into()?
    } else {
        info.hash.ok_or_else(|| anyhow::anyhow!("no SHA-256 TLV"))?
    };
    Ok((if compressed { "compressed" } else { "full" }, hash))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How the device of `--base` comes to run v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Preinstall {
    /// v1 is staged once the UICR is programmed (the first power-on ends in that reset).
    Stage,
    /// Staged: the bootloader installs it as a trial, the DFU app confirms it.
    Trial,
    /// Done (or not asked for): the update goes on air.
    Done,
}

fn read(dir: &std::path::Path, name: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(dir.join(name)).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (build the artifacts with `bash .ci/build-device`)",
            dir.join(name).display()
        )
    })
}

/// Which kernel the bootloader's status names.
fn kernel_named(board: &mut SimBoard, v2_hash: &[u8; 32]) -> (String, bool) {
    let layout = boot_nrf::NRF52840_DK;
    match boot_core::read_status(&mut board.qspi, layout.journal) {
        Ok(Some(r)) if r.image_hash == *v2_hash => {
            ("v2".into(), r.state == boot_core::State::Confirmed)
        }
        Ok(Some(r)) => (format!("v1 (status {:?})", r.state), false),
        _ => ("v1".into(), false),
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.bearer != BearerArg::Legacy
        && (args.boot_only || args.app_update.is_some() || args.app_installed.is_some())
    {
        anyhow::bail!(
            "--bearer {:?}: a kernel update only (not --boot-only, not --app-update)",
            args.bearer
        );
    }
    if args.app_update.is_some() || args.app_installed.is_some() {
        return app_update::run(&args);
    }
    if !(0.0..=1.0).contains(&args.loss) || !(0.0..=1.0).contains(&args.junk_radio) {
        anyhow::bail!("--loss and --junk-radio are shares between 0 and 1");
    }
    if args.boot_only
        && (!args.cuts.is_empty()
            || args.loss > 0.0
            || args.junk_radio > 0.0
            || args.foreign_sender > 0.0
            || args.compression.is_some()
            || args.base
            || args.image.is_some())
    {
        anyhow::bail!(
            "--boot-only puts nothing on air: --cut, --loss, --junk-radio, --foreign-sender, --compression, --base and --image do not apply"
        );
    }
    let sca = 2.0 * f64::from(adv_transfer::bearer::SCA_PPM_DEFAULT);
    if !(-sca..=sca).contains(&args.drift_ppm) {
        anyhow::bail!(
            "--drift-ppm {}: at most the two sides' declared sleep clock accuracies, ±{sca} ppm",
            args.drift_ppm
        );
    }
    if args.bearer != BearerArg::Legacy && (args.foreign_sender > 0.0 || args.junk_radio > 0.0) {
        anyhow::bail!(
            "--bearer {:?}: --foreign-sender and --junk-radio are modelled on legacy advertising only",
            args.bearer
        );
    }
    if !(0.0..=FOREIGN_RATE_MAX).contains(&args.foreign_sender) {
        anyhow::bail!(
            "--foreign-sender {}: advertising events per second, 0 (none) to {FOREIGN_RATE_MAX}",
            args.foreign_sender
        );
    }
    let cut_in = |phase| args.cuts.iter().filter(|c| c.phase == phase).count();
    if cut_in(Phase::Transfer) + cut_in(Phase::Finalize) > 1
        || cut_in(Phase::Install) + cut_in(Phase::Confirm) > 1
    {
        anyhow::bail!(
            "--cut: one transfer or finalize cut, and one install or confirm cut (each pair shares a power-on)"
        );
    }
    let mut cuts: Vec<CutReport> = args
        .cuts
        .iter()
        .map(|c| CutReport {
            cut: c.to_string(),
            power_on: None,
        })
        .collect();
    let cut_of = |phase| args.cuts.iter().position(|c| c.phase == phase);
    let dir = &args.device_dir;
    let bootloader = Firmware::from_elf(&read(dir, "bootloader.elf")?)
        .map_err(|e| anyhow::anyhow!("bootloader.elf: {e}"))?;
    let kernel = read(dir, "kernel-v1.bin")?;
    let v2 = read(dir, "kernel-v2.signed.bin")?;
    let v2_hash = ota_image::parse_image(&mut &v2[..])
        .map_err(|e| anyhow::anyhow!("kernel-v2.signed.bin: {e:?}"))?
        .hash
        .ok_or_else(|| anyhow::anyhow!("kernel-v2.signed.bin has no SHA-256 TLV"))?;

    let mut board = SimBoard::new(args.seed);
    for (addr, bytes) in &bootloader.flash_segments {
        board.nvmc().load(*addr, bytes);
    }
    let layout = boot_nrf::NRF52840_DK;
    board.nvmc().load(layout.kernel_slot.start, &kernel);
    let app_files = if args.apps.is_empty() {
        vec!["tock-ota-dfu.tbf".to_string()]
    } else {
        args.apps.clone()
    };
    let mut apps = Vec::new();
    let mut at = APP_REGION;
    for file in app_files {
        let tbf = read(dir, &file)?;
        let entry = tbf_entry(&tbf, at).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        if u64::from(at) + tbf.len() as u64 > INTERNAL_FLASH_END {
            anyhow::bail!("{file} at {at:#x} does not fit in the internal flash");
        }
        board.nvmc().load(at, &tbf);
        apps.push(AppReport {
            file,
            address: at,
            entry,
            started: false,
        });
        at += tbf.len() as u32;
    }
    // What goes on air for v2, and with --base the image v1 the device first comes to run.
    let v1_signed = if args.base {
        let v1 = read(dir, "kernel-v1.signed.bin")?;
        let info = ota_image::parse_image(&mut &v1[..])
            .map_err(|e| anyhow::anyhow!("kernel-v1.signed.bin: {e:?}"))?;
        let start = info.payload_offset as usize;
        if v1.get(start..start + info.payload_len as usize) != Some(&kernel[..]) {
            anyhow::bail!(
                "kernel-v1.signed.bin is not kernel-v1.bin signed: rebuild the artifacts"
            );
        }
        Some(v1)
    } else {
        None
    };
    let v1_hash = match &v1_signed {
        Some(v1) => {
            ota_image::parse_image(&mut &v1[..])
                .map_err(|e| anyhow::anyhow!("kernel-v1.signed.bin: {e:?}"))?
                .hash
        }
        None => None,
    };
    let smaller = ota_sim::system::smaller_form(
        &v2,
        v1_signed.as_deref(),
        args.compression.map(Into::into),
        |c| {
            let key = ota_imgtool::keys::load_signing_key(&dir.join("update-key.pem"))?;
            compressed_v2(&key, &v2, c)
        },
    )?;
    let (sent, sent_bytes, base) = match (smaller, &args.image) {
        (_, Some(path)) => {
            let image = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
            let (kind, hash) = image_hash(&image).with_context(|| format!("{}", path.display()))?;
            if hash != v2_hash {
                anyhow::bail!(
                    "{}: its {kind} image is not kernel-v2.signed.bin's (SHA-256 {} against {})",
                    path.display(),
                    hex(&hash),
                    hex(&v2_hash)
                );
            }
            (kind, image, None)
        }
        (Some(s), None) => (s.kind, s.bytes, s.base),
        (None, None) if args.compression.is_some() => {
            anyhow::bail!("--compression: compressing v2 would not make it smaller; nothing to send compressed")
        }
        (None, None) => ("full", v2.clone(), None),
    };
    let mut preinstall = if args.base {
        Preinstall::Stage
    } else {
        Preinstall::Done
    };
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let session = rng.gen_range(1..u32::MAX);
    let mut sender = ota_sim::transfer::sender_for(&sent_bytes, session, base)
        .map_err(|e| anyhow::anyhow!("sender: {e}"))?;
    if let Some(b) = args.bearer.chained() {
        sender.offer_bearers(BearerSet::of(&[b]));
    }
    // The foreign sender's image: as long as v2, other bytes (its own generator, so the
    // update's link draws the same numbers with or without it).
    let mut foreign_rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0xF0_5E1D);
    let foreign_image: Vec<u8> = (0..v2.len()).map(|_| foreign_rng.gen()).collect();
    let foreign_session = loop {
        let s = foreign_rng.gen_range(1..u32::MAX);
        if s != session {
            break s;
        }
    };
    let foreign = (args.foreign_sender > 0.0)
        .then(|| -> anyhow::Result<Foreign> {
            Ok(Foreign {
                sender: Sender::new(DEFAULT_COMPANY_ID, &foreign_image, foreign_session, 0)
                    .map_err(|e| anyhow::anyhow!("foreign sender: {e}"))?,
                interval_us: (1e6 / args.foreign_sender) as u64,
                next_event_us: None,
                rng: foreign_rng,
                started_us: None,
                events: 0,
                packets: 0,
                malformed: 0,
                received: 0,
                random_addresses: Default::default(),
            })
        })
        .transpose()?;
    let mut link = SenderLink::new(
        sender,
        rng,
        args.loss,
        args.junk_radio,
        foreign,
        args.drift_ppm,
    );

    let wall = std::time::Instant::now();
    let start_us = board.clock.now_us();
    let kernel_before = kernel_named(&mut board, &v2_hash).0;
    let mut cfg = BootConfig {
        kernel_slot: layout.kernel_slot.start..layout.kernel_slot.end(),
        stop_at_kernel: false,
        max_instructions: args.budget,
        budget_ends_run: true,
        // The trial kernel's app confirms and listens: then a further reboot follows.
        stop_on_console: if args.boot_only {
            Vec::new()
        } else {
            vec!["confirmed this kernel".into(), "listening".into()]
        },
        watch: apps.iter().map(|a| a.entry).collect(),
        ..BootConfig::default()
    };
    let mut confirm_seen = false;
    let (mut power_ons, mut console, mut instructions, mut error) =
        (Vec::new(), String::new(), 0u64, None);
    let mut listening_after_update = false;
    // The console of the latest power-on that ran.
    let mut last_console = String::new();
    // The cuts armed for the power-on about to run, and whether the update was finalized.
    let (mut transfer_armed, mut install_armed, mut finalized) = (false, false, false);
    let finalize_armed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let finalize_at = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    for _ in 0..args.max_boots {
        if preinstall == Preinstall::Stage && cfg.uicr != boot_emu::ficr::Uicr::erased() {
            if let Some(v1) = &v1_signed {
                ota_sim::system::stage_whole(&mut board, v1).context("--base: staging v1")?;
            }
            preinstall = Preinstall::Trial;
        }
        let on_air = !args.boot_only && preinstall == Preinstall::Done;
        let clock = board.clock.clone();
        // A new RADIO each power-on: the link's view of what it heard restarts.
        link.heard = 0;
        link.chain_received_before += std::mem::take(&mut link.chain_received_now);
        let mut armed = None;
        let mut finalize_watch = None;
        cfg.at_kernel_jump = None;
        // The DFU app's first FINALIZE command to the staged-update driver in this power-on:
        // when it came, and a finalize cut counted from it, in whichever power-on it comes
        // (the first).
        finalize_at.store(u64::MAX, Relaxed);
        let mut finalize_cut = None;
        if let (Some(i), false) = (cut_of(Phase::Finalize), finalize_armed.load(Relaxed)) {
            finalize_cut = Some((args.cuts[i], board.power.clone(), finalize_armed.clone()));
            finalize_watch = Some(i);
        }
        let (at, svc_clock) = (finalize_at.clone(), board.clock.clone());
        cfg.at_svc = Some(SvcHook(std::sync::Arc::new(move |imm, r| {
            if imm == TOCK_COMMAND_SVC
                && r[0] == dfu_abi::update::DRIVER_NUM
                && (r[1] == dfu_abi::update::command::FINALIZE
                    || r[1] == dfu_abi::update::command::OUTPUT_BEGIN)
            {
                let _ = at.compare_exchange(u64::MAX, svc_clock.now_us(), Relaxed, Relaxed);
                if let Some((cut, power, flag)) = &finalize_cut {
                    if !flag.swap(true, Relaxed) {
                        cut.arm(power);
                    }
                }
            }
        })));
        if !transfer_armed && on_air && cfg.uicr != boot_emu::ficr::Uicr::erased() {
            transfer_armed = true;
            armed = cut_of(Phase::Transfer);
        } else if !install_armed && finalized {
            install_armed = true;
            armed = cut_of(Phase::Install).or(cut_of(Phase::Confirm));
        }
        if let Some(i) = armed {
            let cut = args.cuts[i];
            if cut.phase == Phase::Confirm {
                let power = board.power.clone();
                cfg.at_kernel_jump = Some(JumpHook(std::sync::Arc::new(move || cut.arm(&power))));
            } else {
                cut.arm(&board.power);
            }
        }
        let ops_before = board.power.ops();
        let result = run_with_air(
            &bootloader,
            board.qspi.port(),
            board.internal.port(),
            &clock,
            &cfg,
            if on_air { Some(&mut link) } else { None },
        );
        let report = match result {
            Ok(r) => Some(r),
            // After a cut the CPU would have stopped: what the emulation did later (an error
            // on a flash that no longer answers) is not the device's.
            Err(_) if !board.power.is_on() => None,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        // Likewise when the run ended otherwise (a kernel waiting for a flash event that the
        // cut took away sleeps until the run ends): the power failed at the cut.
        let exit = match &report {
            Some(r) if board.power.is_on() => r.exit,
            _ => Exit::PowerLost,
        };
        let mut on = PowerOn {
            exit: format!("{exit:?}"),
            flash_ops: board.power.ops() - ops_before,
            finalize_to_end_seconds: match finalize_at.load(Relaxed) {
                u64::MAX => None,
                t => Some(board.clock.now_us().saturating_sub(t) as f64 / 1e6),
            },
            ..PowerOn::default()
        };
        if let Some(report) = &report {
            instructions += report.instructions;
            let text = String::from_utf8_lossy(&report.console).into_owned();
            finalized |= text.contains("boot request") && text.contains("rebooting");
            // With --base the app confirms v1 again at every boot: only once v2 is requested
            // does a confirm end a power-on (the trial's; the report then says which kernel).
            if finalized && cfg.stop_on_console.is_empty() && !args.boot_only {
                cfg.stop_on_console = vec!["confirmed this kernel".into(), "listening".into()];
            }
            console.push_str(&text);
            if !console.is_empty() && !console.ends_with('\n') {
                console.push('\n');
            }
            on.radio_received = report.radio_received;
            on.radio_cut = report.radio_cut;
            on.radio_missed = report.radio_missed;
            on.radio_sent = report.radio_sent;
            on.instructions = report.instructions;
            on.emulated_seconds = report.simulated_us as f64 / 1e6;
            on.faults = report
                .faults
                .iter()
                .map(|f| {
                    format!(
                        "exception {} at pc {:#x}: {:?} of {:#x} (CFSR {:#x})",
                        f.exception, f.pc, f.access, f.addr, f.cfsr
                    )
                })
                .collect();
            cfg.uicr = report.uicr.clone();
            for app in &mut apps {
                app.started |= report
                    .watch_hits
                    .get(&app.entry)
                    .is_some_and(|hits| !hits.is_empty());
            }
            last_console = text;
        }
        power_ons.push(on);
        if let Some(i) = armed.or(finalize_watch.filter(|_| finalize_armed.load(Relaxed))) {
            if exit == Exit::PowerLost && cuts[i].power_on.is_none() {
                cuts[i].power_on = Some(power_ons.len());
            }
        }
        // A cut not reached in its power-on is disarmed (no-op if power is on and none armed).
        board.power.restore();
        match exit {
            Exit::SystemReset => cfg.resetreas = boot_emu::rig::RESETREAS_SREQ,
            Exit::PowerLost => {
                // Power comes back: flash kept, volatile state gone, a power-on reset.
                board
                    .power_cycle()
                    .map_err(|e| anyhow::anyhow!("power-up: {e:?}"))?;
                cfg.resetreas = 0;
            }
            Exit::Console if preinstall == Preinstall::Trial => {
                // The DFU app confirmed v1's trial and listens: a reset (as after any update's
                // confirm), then the update goes on air.
                let layout = boot_nrf::NRF52840_DK;
                let status = boot_core::read_status(&mut board.qspi, layout.journal)
                    .map_err(|e| anyhow::anyhow!("--base: the bootloader's status: {e:?}"))?;
                if status.map(|r| r.image_hash) != v1_hash {
                    error = Some(format!(
                        "--base: the app confirmed a kernel, but the bootloader's status does not name v1 ({status:?})"
                    ));
                    break;
                }
                preinstall = Preinstall::Done;
                cfg.resetreas = boot_emu::rig::RESETREAS_RESETPIN;
                // Until a finalize names v2's boot request, no console line ends a power-on.
                cfg.stop_on_console = Vec::new();
                link.next_event_us = board.clock.now_us();
            }
            Exit::Console if !confirm_seen => {
                // A further reboot (reset pin): the bootloader sees the confirm, the kernel
                // must stay, and the app must listen again.
                confirm_seen = true;
                cfg.resetreas = boot_emu::rig::RESETREAS_RESETPIN;
                cfg.stop_on_console = vec!["listening".into()];
            }
            Exit::Console => {
                listening_after_update = kernel_named(&mut board, &v2_hash).0 == "v2";
                break;
            }
            _ => break,
        }
    }
    // A receiver that refused the form sent (it does not take compressed images, or cannot
    // name the patch's base) is the run's error: nothing falls back to the full image here.
    if error.is_none() {
        if let Some(refused) = ota_sim::transfer::refusal_of(&link.sender) {
            error = Some(format!("{sent}: {refused}"));
        }
    }
    let (kernel_after, confirmed) = kernel_named(&mut board, &v2_hash);
    let emulated = (board.clock.now_us() - start_us) as f64 / 1e6;
    let wall_s = wall.elapsed().as_secs_f64();
    let report = Report {
        sent,
        bytes_on_air_image: sent_bytes.len(),
        kernel_before,
        kernel_after,
        confirmed,
        app_listening_after_update: listening_after_update,
        listening: last_console.contains("dfu: listening"),
        apps,
        emulated_seconds: emulated,
        instructions,
        wall_seconds: wall_s,
        emulated_seconds_per_wall_second: emulated / wall_s.max(1e-9),
        advertising_events: link.events,
        junk_packets: link.junk_sent,
        foreign: link.foreign.as_ref().map(|f| ForeignReport {
            session: foreign_session,
            image_len: foreign_image.len(),
            started_at_seconds: f.started_us.map(|t| (t - start_us) as f64 / 1e6),
            events: f.events,
            packets: f.packets,
            malformed_packets: f.malformed,
            packets_received: f.received,
        }),
        chained: args.bearer.chained().map(|_| ChainedReport {
            bearer: link
                .sender
                .bearer()
                .filter(|b| b.chained())
                .map(|b| format!("{b:?}")),
            events: link.chained_events,
            chain_pdus: link.chain_pdus,
            chain_pdus_received: link.chain_received_before + link.chain_received_now,
        }),
        sender_complete: link.sender.is_complete(),
        receiver_state: link.sender.receiver_state().map(|s| format!("{s:?}")),
        power_ons,
        cuts,
        console: console.lines().map(str::to_owned).collect(),
        error,
    };
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        cli_output::outln!(
            "v2 sent as {}: {} bytes on air",
            report.sent,
            report.bytes_on_air_image
        );
        for (i, p) in report.power_ons.iter().enumerate() {
            cli_output::outln!(
                "power-on {}: {} after {} instructions, {:.3} s emulated, {} flash operations; RADIO received {}, cut {}, missed {}, sent {}",
                i + 1,
                p.exit,
                p.instructions,
                p.emulated_seconds,
                p.flash_ops,
                p.radio_received,
                p.radio_cut,
                p.radio_missed,
                p.radio_sent
            );
            if let Some(f) = p.finalize_to_end_seconds {
                cli_output::outln!(
                    "power-on {}: {f:.3} s emulated from the app's FINALIZE to the end",
                    i + 1
                );
            }
        }
        for line in &report.console {
            cli_output::outln!("console: {line}");
        }
        for (i, p) in report.power_ons.iter().enumerate() {
            for f in &p.faults {
                cli_output::outln!("power-on {}: fault: {f}", i + 1);
            }
        }
        for a in &report.apps {
            cli_output::outln!(
                "app {} at {:#x}, entry {:#x}: {}",
                a.file,
                a.address,
                a.entry,
                if a.started { "started" } else { "never ran" }
            );
        }
        for c in &report.cuts {
            match c.power_on {
                Some(n) => cli_output::outln!("cut {}: power lost in power-on {n}", c.cut),
                None => cli_output::outln!("cut {}: not reached", c.cut),
            }
        }
        cli_output::outln!(
            "kernel before {}, after {}, confirmed {}, app listening after the update {}",
            report.kernel_before,
            report.kernel_after,
            report.confirmed,
            report.app_listening_after_update
        );
        cli_output::outln!(
            "{:.1} s emulated in {:.1} s ({:.1} emulated s per wall s), {} instructions, {} advertising events, sender complete {}",
            report.emulated_seconds,
            report.wall_seconds,
            report.emulated_seconds_per_wall_second,
            report.instructions,
            report.advertising_events,
            report.sender_complete
        );
        cli_output::outln!(
            "receiver state as the sender last heard it: {:?}",
            report.receiver_state
        );
        if let Some(f) = &report.foreign {
            cli_output::outln!(
                "foreign sender (session {:#010x}, {} B image): from {:?} s, {} events, {} packets on air ({} malformed), {} received by the RADIO",
                f.session,
                f.image_len,
                f.started_at_seconds,
                f.events,
                f.packets,
                f.malformed_packets,
                f.packets_received
            );
        }
        if let Some(c) = &report.chained {
            cli_output::outln!(
                "chained bearer {:?}: {} extended events, {} chain PDUs on air, {} received whole by the RADIO",
                c.bearer,
                c.events,
                c.chain_pdus,
                c.chain_pdus_received
            );
        }
        if let Some(e) = &report.error {
            cli_output::outln!("stopped: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clean link for `sender` whose next event is at `next_event_us`.
    fn test_link(sender: Sender<'_>, next_event_us: u64) -> SenderLink<'_> {
        let rng = ChaCha8Rng::seed_from_u64(1);
        let mut link = SenderLink::new(sender, rng, 0.0, 0.0, None, 0.0);
        link.next_event_us = next_event_us;
        link
    }

    /// The RADIO payload (AdvA, then AdvData) of a receiver's status for `session` with state
    /// byte `state`.
    fn status_payload(session: u32, state: u8) -> Vec<u8> {
        let mut pdu = vec![adv_transfer::wire::KIND_STATUS];
        pdu.extend_from_slice(&session.to_le_bytes());
        pdu.push(state);
        pdu.resize(adv_transfer::wire::STATUS_HEAD, 0);
        let mut adv = [0u8; ADV_DATA_MAX];
        let n = adv_transfer::wire::frame(DEFAULT_COMPANY_ID, &pdu, &mut adv);
        let mut payload = vec![0xC0; 6];
        payload.extend_from_slice(&adv[..n]);
        payload
    }

    /// A foreign sender for the tests, started.
    fn foreign(image: &[u8], session: u32) -> Foreign<'_> {
        Foreign {
            sender: Sender::new(DEFAULT_COMPANY_ID, image, session, 0).unwrap(),
            interval_us: 10_000,
            next_event_us: Some(0),
            rng: ChaCha8Rng::seed_from_u64(7),
            started_us: Some(0),
            events: 0,
            packets: 0,
            malformed: 0,
            received: 0,
            random_addresses: Default::default(),
        }
    }

    #[test]
    fn the_foreign_sender_never_reaches_a_joined_session() {
        use adv_transfer::{Receiver, RxOutcome};
        let image = vec![0x5A; 3 * adv_transfer::wire::BLOCK_LEN];
        let mut sender = Sender::new(DEFAULT_COMPANY_ID, &image, 0x1234_5678, 0).unwrap();
        let mut bitmap = [0u8; 64];
        let mut rx = Receiver::new(DEFAULT_COMPANY_ID, 16 * 4096, &mut bitmap, None, false);
        let mut adv = [0u8; ADV_DATA_MAX];
        let n = sender.next_adv(&mut adv);
        assert_eq!(rx.on_adv(sender.address(), &adv[..n]), RxOutcome::Announce);
        // The staging session begins (the store answers at once).
        let begun = (0..4).take_while(|_| rx.poll_op().is_some()).count();
        assert_eq!(begun, 1);
        rx.op_done(Ok(&[]));
        assert!(rx.poll_op().is_none());
        let (session, progress, state) = (rx.session(), rx.progress(), rx.state());

        let other = vec![0xA5; 2 * adv_transfer::wire::BLOCK_LEN];
        let mut f = foreign(&other, 0x0BAD_CAFE);
        let mut outcomes = std::collections::BTreeMap::new();
        for i in 0..4_000 {
            let (adv_a, adv) = if i % 2 == 0 {
                f.malformed_adv()
            } else {
                let mut adv = [0u8; ADV_DATA_MAX];
                let n = f.sender.next_adv(&mut adv);
                (f.sender.address(), adv[..n].to_vec())
            };
            assert!(adv.len() <= ADV_DATA_MAX, "{adv:02x?}");
            assert_ne!(adv_a, sender.address());
            let out = rx.on_adv(adv_a, &adv);
            assert!(
                !matches!(
                    out,
                    RxOutcome::Chunk
                        | RxOutcome::Duplicate
                        | RxOutcome::Manifest
                        | RxOutcome::Mismatch
                ),
                "{out:?} for {adv_a:02x?} {adv:02x?}"
            );
            *outcomes.entry(format!("{out:?}")).or_insert(0) += 1;
        }
        // Nothing of the joined session moved.
        assert_eq!(
            (rx.session(), rx.progress(), rx.state()),
            (session, progress, state)
        );
        // Every way of being turned away occurred.
        for want in ["Malformed", "NotOurs", "OtherSession", "Foreign"] {
            assert!(
                outcomes.get(want).is_some_and(|&n| n > 20),
                "{want}: {outcomes:?}"
            );
        }
        // And the update's own session goes on (its manifest, then chunks).
        let outs: Vec<_> = (0..4)
            .map(|_| {
                let n = sender.next_adv(&mut adv);
                rx.on_adv(sender.address(), &adv[..n])
            })
            .collect();
        assert!(
            outs.contains(&RxOutcome::Chunk)
                && outs
                    .iter()
                    .all(|o| matches!(o, RxOutcome::Chunk | RxOutcome::Manifest)),
            "{outs:?}"
        );
    }

    /// A TBF v2 header: the base header, then (type, value words) TLVs.
    fn tbf_header(tlvs: &[(u16, &[u32])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, words) in tlvs {
            body.extend_from_slice(&kind.to_le_bytes());
            body.extend_from_slice(&(4 * words.len() as u16).to_le_bytes());
            for w in *words {
                body.extend_from_slice(&w.to_le_bytes());
            }
        }
        let header_size = 16 + body.len() as u16;
        let mut tbf = 2u16.to_le_bytes().to_vec();
        tbf.extend_from_slice(&header_size.to_le_bytes());
        tbf.extend_from_slice(&[0; 12]); // total size, flags, checksum: not read
        tbf.extend_from_slice(&body);
        tbf
    }

    #[test]
    fn the_compressed_v2_holds_v2_itself_and_another_signing_is_refused() {
        use ota_image::compressed::Compression;
        use ota_imgtool::sign::{sign_image, SignOptions};
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        // Code-like bytes (they compress), signed as .ci/build-device signs v2.
        let payload: Vec<u8> = (0..24_000u32)
            .map(|i| (i % 251 * (i / 97 % 5)) as u8)
            .collect();
        let opts = SignOptions {
            version: ota_imgtool::sign::parse_version("2.0.0").unwrap(),
            security_counter: Some(2 << 24),
            ..SignOptions::default()
        };
        let v2 = sign_image(&payload, &opts, &key).unwrap();
        let v2_hash = ota_image::parse_image(&mut &v2[..]).unwrap().hash.unwrap();
        for c in [Compression::Lzma2ArmThumb, Compression::Lzma2] {
            let image = compressed_v2(&key, &v2, c).unwrap();
            let info = ota_image::parse_image(&mut &image[..]).unwrap();
            assert_eq!(Compression::from_flags(info.header.flags).unwrap(), Some(c));
            assert!(
                image.len() < v2.len() / 2,
                "{} of {}",
                image.len(),
                v2.len()
            );
            // Its plain image is v2: the decompressed hash is v2's, and so is the signature.
            let value = |kind| {
                let t = info.tlvs().find(|t| t.kind == kind).unwrap();
                image[t.value_offset as usize..][..usize::from(t.len)].to_vec()
            };
            assert_eq!(value(ota_image::tlv::DECOMP_SHA), v2_hash);
            // `--image` takes it as v2 (and v2 itself as the full image).
            assert_eq!(image_hash(&image).unwrap(), ("compressed", v2_hash));
            assert_eq!(image_hash(&v2).unwrap(), ("full", v2_hash));
            let v2_info = ota_image::parse_image(&mut &v2[..]).unwrap();
            let sig = v2_info.signature.unwrap();
            assert_eq!(
                value(ota_image::tlv::DECOMP_SIGNATURE),
                v2[sig.value_offset as usize..][..usize::from(sig.len)]
            );
        }
        // v2 signed otherwise (another key, or without --pad-header) is refused, naming why.
        let other = p256::ecdsa::SigningKey::from_slice(&[8; 32]).unwrap();
        let mut unpadded = vec![0; usize::from(opts.header_size)];
        unpadded.extend_from_slice(&payload);
        let unpadded_opts = SignOptions {
            pad_header: false,
            ..opts.clone()
        };
        for signed_otherwise in [
            sign_image(&payload, &opts, &other).unwrap(),
            sign_image(&unpadded, &unpadded_opts, &key).unwrap(),
        ] {
            let e = compressed_v2(&key, &signed_otherwise, Compression::Lzma2ArmThumb).unwrap_err();
            assert!(e.to_string().contains("rebuild the artifacts"), "{e}");
        }
    }

    #[test]
    fn tbf_entry_is_the_header_size_plus_the_init_offset() {
        // Main TLV (type 1): init_fn_offset 0x41 (Thumb), protected size, minimum RAM.
        let main = tbf_header(&[(1, &[0x41, 0, 4096])]);
        assert_eq!(tbf_entry(&main, 0x4_0000), Ok(0x4_0000 + 16 + 16 + 0x40));
        // A Program TLV (type 9) wins over Main; other TLVs are skipped.
        let program = tbf_header(&[(3, &[7, 7]), (1, &[0x41, 0, 0]), (9, &[0x81, 0, 0, 0, 0])]);
        assert_eq!(
            tbf_entry(&program, 0x4_8000),
            Ok(0x4_8000 + program.len() as u32 + 0x80)
        );
        // Refused, saying why.
        let mut v1 = main.clone();
        v1[0] = 1;
        assert!(tbf_entry(&v1, 0).unwrap_err().contains("version"));
        assert!(tbf_entry(&tbf_header(&[(3, &[1])]), 0)
            .unwrap_err()
            .contains("no Program or Main"));
        let mut long = main.clone();
        long[18..20].copy_from_slice(&200u16.to_le_bytes());
        assert!(tbf_entry(&long, 0).unwrap_err().contains("runs past"));
        assert!(tbf_entry(&main[..20], 0)
            .unwrap_err()
            .contains("header size"));
    }

    #[test]
    fn the_foreign_sender_puts_three_packets_per_event_on_air_at_its_rate() {
        let other = vec![0xA5; 4096];
        let mut f = foreign(&other, 0x0BAD_CAFE);
        let mut radio = Radio::new(0x2000_0000..0x2004_0000);
        f.queue(1_000_000, &mut radio);
        // Mean 10 ms between events, each within 5–15 ms of the last.
        assert!((67..=200).contains(&f.events), "{} events in 1 s", f.events);
        assert_eq!(f.packets, 3 * f.events);
        assert!(f.malformed > 0 && f.malformed < f.packets);
        assert!(f.next_event_us.unwrap() > 1_000_000);
    }

    /// A RADIO listening from 0 at `phy` on `mhz` (MAXLEN 255, READY_START, END_DISABLE).
    fn listening(mhz: u32, phy: Phy) -> Radio {
        let mut r = Radio::new(0x2000_0000..0x2004_0000);
        let (mode, plen) = match phy {
            Phy::Le1M => (3, 0),
            Phy::Le2M => (4, 1 << 24),
        };
        for (o, v) in [
            (0x510, mode),
            (0x514, 0x108 | plen),
            (0x518, 0x0203_00FF),
            (0x51C, 0x89BE_D600),
            (0x524, 0x8E),
            (0x534, 0x103),
            (0x504, 0x2000_1000),
            (0x508, mhz - 2400),
            (0x200, 0b11),
            (0x004, 1),
        ] {
            r.write(o, v, 0, None).unwrap();
        }
        r
    }

    #[test]
    fn an_extended_event_goes_on_air_as_the_simulator_builds_it() {
        let image = vec![0x5A; 4096];
        let b = Bearer::Extended(Phy::Le2M);
        let link = || {
            let mut sender = Sender::new(DEFAULT_COMPANY_ID, &image, 0x1234_5678, 0).unwrap();
            sender.offer_bearers(BearerSet::of(&[b]));
            test_link(sender, 1_000)
        };
        // The same event as ext_air builds it, to know where its PDUs are.
        let mut adv = [0u8; EXT_ADV_DATA_MAX];
        let mut copy = link();
        let address = copy.sender.address();
        let len = copy.sender.next_event(&mut adv);
        let (pdus, end) = ext_air::extended_event(1_000.0, 0, b, address, &adv[..len], true);

        // The ADV_EXT_IND on 38 at 1M, the AUX_ADV_IND on its secondary channel at 2M.
        let mut primary = listening(2426, Phy::Le1M);
        let aux = &pdus[3];
        let mut secondary = listening(ext_air::channel_mhz(aux.channel).unwrap(), Phy::Le2M);
        let (mut one, mut two) = (link(), link());
        one.chained_event(b, &mut primary);
        two.chained_event(b, &mut secondary);
        primary.advance(end as u64 + 1);
        secondary.advance(end as u64 + 1);
        assert_eq!(primary.dma_writes.len(), 1);
        assert_eq!(primary.dma_writes[0].1, pdus[1].bytes, "ADV_EXT_IND on 38");
        assert_eq!(secondary.dma_writes.len(), 1);
        assert_eq!(secondary.dma_writes[0].1, aux.bytes, "AUX_ADV_IND");
        assert_eq!(
            &aux.bytes[4..10],
            &address,
            "AdvA after the extended header's flags"
        );
        assert_eq!(
            (primary.received_secondary, secondary.received_secondary),
            (0, 1)
        );
        assert_eq!(one.chain_pdus, b.pdus_for(len) as u64);
        assert_eq!(one.chained_events, 1);
        // The next event after the bearer's interval (or the event's end) and the advDelay.
        let interval = u64::from(b.budget_with_interval(0).interval_us);
        let earliest = 1_000 + interval.max(end.ceil() as u64 - 1_000);
        assert!((earliest..=earliest + 10_000).contains(&one.next_event_us));
    }

    #[test]
    fn the_sender_hears_one_status_per_advertising_event() {
        let image = vec![0x5A; 4096];
        let sender = Sender::new(DEFAULT_COMPANY_ID, &image, 0x0102_0304, 0).unwrap();
        let session = sender.info().session;
        let mut link = test_link(sender, u64::MAX / 2);
        // A status (Receiving, no pick) the device sends on 37, 38 and 39, twice.
        let payload = status_payload(session, adv_transfer::RxState::Receiving as u8);
        let mut radio = Radio::new(0x2000_0000..0x2004_0000);
        for event in [0u64, 40_000] {
            for (i, mhz) in CHANNELS_MHZ.into_iter().enumerate() {
                radio.transmitted.push(hw_models::radio::SentPacket {
                    at_us: event + 400 * i as u64,
                    mhz,
                    s0: ADV_NONCONN_IND_RANDOM,
                    length: payload.len() as u8,
                    payload: payload.clone(),
                });
            }
        }
        hw_models::radio::Air::pump(&mut link, 50_000, &mut radio);
        assert_eq!(link.sender.counters().statuses_heard, 2, "once per event");
    }

    #[test]
    fn a_periodic_pick_puts_the_train_on_air_at_its_interval() {
        let image = vec![0x5A; 8192];
        let b = Bearer::Periodic(Phy::Le2M);
        let mut sender = Sender::new(DEFAULT_COMPANY_ID, &image, 0x0102_0304, 0).unwrap();
        sender.offer_bearers(BearerSet::of(&[b]));
        let session = sender.info().session;
        let mut link = test_link(sender, 10_000);
        // The receiver's status names its pick (the bearer's code in the state byte's top).
        let payload = status_payload(
            session,
            adv_transfer::RxState::Receiving as u8 | (b.code() << 4),
        );
        // A RADIO listening on the first anchor's channel with the train's access address.
        let train = ext_air::MODEL_TRAIN;
        let mhz = ext_air::channel_mhz(train.channel(0)).unwrap();
        let mut radio = listening(mhz, Phy::Le2M);
        radio.write(0x51C, train.aa << 8, 0, None).unwrap();
        radio.write(0x524, train.aa >> 24, 0, None).unwrap();
        radio.transmitted.push(hw_models::radio::SentPacket {
            at_us: 0,
            mhz: 2402,
            s0: ADV_NONCONN_IND_RANDOM,
            length: payload.len() as u8,
            payload,
        });
        hw_models::radio::Air::pump(&mut link, 1_000, &mut radio);
        assert_eq!(link.sender.bearer(), Some(b));
        let interval = u64::from(b.budget_with_interval(0).interval_us);
        hw_models::radio::Air::pump(&mut link, 10_000 + 3 * interval, &mut radio);
        // Anchors 10 ms + k × interval up to 1 ms ahead: k = 0..=3.
        assert_eq!(link.train, Some((10_000, 4)));
        assert_eq!(link.chained_events, 4);
        assert!(link
            .sync_set_us
            .is_some_and(|t| t > 10_000 + 3 * interval - 1_000));
        radio.advance(10_000 + 3 * interval);
        // The RADIO heard the first AUX_SYNC_IND: no AdvA, the extended header's AuxPtr on.
        let first = &radio.dma_writes[0].1;
        assert_eq!(
            first[0] & 0x0F,
            0x07,
            "AUX_SYNC_IND is an ADV_EXT_IND-type PDU"
        );
        assert!(radio.received_secondary >= 1);
        assert_eq!(
            link.next_event_us,
            (10_000 + 4 * interval).min(link.sync_set_us.unwrap())
        );
    }

    #[test]
    fn cuts_parse_and_print_back_and_bad_ones_say_why() {
        for s in [
            "transfer:40",
            "finalize:2:torn",
            "install:1000:torn",
            "confirm:1:torn",
        ] {
            assert_eq!(parse_cut(s).unwrap().to_string(), s);
        }
        assert_eq!(
            parse_cut("install:3:torn").unwrap(),
            Cut {
                phase: Phase::Install,
                op: 3,
                torn: true
            }
        );
        for (bad, why) in [
            ("finalise:3", "phase"),
            ("install:0", "from 1"),
            ("install", "from 1"),
            ("install:x", "from 1"),
            ("install:3:half", "not `torn`"),
            ("install:3:torn:1", "PHASE:N"),
        ] {
            let e = parse_cut(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_cut_arms_the_power_model_on_its_operation() {
        let board = SimBoard::new(1);
        let before = |op| Cut {
            phase: Phase::Install,
            op,
            torn: false,
        };
        before(3).arm(&board.power);
        for _ in 0..2 {
            board.power.begin_op(hw_models::OpKind::NvmcWrite).unwrap();
        }
        assert!(board.power.begin_op(hw_models::OpKind::NvmcWrite).is_err());
        board.power.restore();
        Cut {
            torn: true,
            ..before(2)
        }
        .arm(&board.power);
        assert_eq!(
            board.power.begin_op(hw_models::OpKind::NvmcWrite),
            Ok(hw_models::OpFate::Complete)
        );
        assert_eq!(
            board.power.begin_op(hw_models::OpKind::NvmcWrite),
            Ok(hw_models::OpFate::Torn)
        );
        assert!(!board.power.is_on());
    }
}
