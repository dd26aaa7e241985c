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
//! request is the phase's last writes), `install` from the start of the power-on after the
//! finalize (the bootloader's install), `confirm` from that power-on's kernel jump (the trial
//! kernel's app writes its confirm).

use std::path::PathBuf;

use adv_transfer::wire::ADV_DATA_MAX;
use adv_transfer::{Sender, DEFAULT_COMPANY_ID};
use boot_emu::{run_with_air, BootConfig, Exit, Firmware, JumpHook};
use hw_models::radio::{AirPacket, Radio};
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
    /// Instructions per power-on before the run gives up.
    #[arg(long, default_value_t = 3_000_000_000)]
    pub budget: u64,
    /// Power-ons at most.
    #[arg(long, default_value_t = 8)]
    pub max_boots: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Power cut: `transfer:N`, `install:N` or `confirm:N`, `:torn` to tear the operation
    /// (repeatable; install and confirm share a power-on, so only one of them).
    #[arg(long = "cut", value_parser = parse_cut)]
    pub cuts: Vec<Cut>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where a power cut is counted from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Transfer,
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
        Some("install") => Phase::Install,
        Some("confirm") => Phase::Confirm,
        _ => return Err(format!("{s:?}: the phase is transfer, install or confirm")),
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

/// BLE advertising channels 37, 38, 39.
const CHANNELS_MHZ: [u32; 3] = [2402, 2426, 2480];
/// ADV_NONCONN_IND with a random (TxAdd) advertiser address.
const ADV_NONCONN_IND_RANDOM: u8 = 0x42;

/// The sender on air.
struct SenderLink<'a> {
    sender: Sender<'a>,
    next_event_us: u64,
    rng: ChaCha8Rng,
    loss: f64,
    junk: f64,
    heard: usize,
    events: u64,
    junk_sent: u64,
}

impl hw_models::radio::Air for SenderLink<'_> {
    fn pump(&mut self, now_us: u64, radio: &mut Radio) {
        for sent in &radio.transmitted[self.heard..] {
            // AdvA (6 bytes), then the AdvData.
            if sent.payload.len() > 6 {
                self.sender.on_adv(&sent.payload[6..]);
            }
        }
        self.heard = radio.transmitted.len();
        // Queue a little ahead, so an event is on air before the RADIO could miss its start.
        while self.next_event_us <= now_us + 1_000 {
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
                    }
                };
                radio.air(packet);
            }
            self.events += 1;
            self.next_event_us += 20_000 + self.rng.gen_range(0..=10_000);
        }
    }

    fn next_at(&self) -> Option<u64> {
        Some(self.next_event_us)
    }
}

impl SenderLink<'_> {
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
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub kernel_before: String,
    pub kernel_after: String,
    pub confirmed: bool,
    pub app_listening_after_update: bool,
    pub emulated_seconds: f64,
    pub instructions: u64,
    pub wall_seconds: f64,
    pub emulated_seconds_per_wall_second: f64,
    pub advertising_events: u64,
    pub junk_packets: u64,
    pub sender_complete: bool,
    pub receiver_state: Option<String>,
    pub power_ons: Vec<PowerOn>,
    pub cuts: Vec<CutReport>,
    pub console: Vec<String>,
    pub error: Option<String>,
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
    if !(0.0..=1.0).contains(&args.loss) || !(0.0..=1.0).contains(&args.junk_radio) {
        anyhow::bail!("--loss and --junk-radio are shares between 0 and 1");
    }
    let cut_in = |phase| args.cuts.iter().filter(|c| c.phase == phase).count();
    if cut_in(Phase::Transfer) > 1 || cut_in(Phase::Install) + cut_in(Phase::Confirm) > 1 {
        anyhow::bail!(
            "--cut: one transfer cut, and one install or confirm cut (they share a power-on)"
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
    let app = read(dir, "tock-ota-dfu.tbf")?;
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
    board.nvmc().load(0x4_0000, &app);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let session = rng.gen_range(1..u32::MAX);
    let sender = Sender::new(DEFAULT_COMPANY_ID, &v2, session, 0)
        .map_err(|e| anyhow::anyhow!("sender: {e}"))?;
    let mut link = SenderLink {
        sender,
        next_event_us: 0,
        rng,
        loss: args.loss,
        junk: args.junk_radio,
        heard: 0,
        events: 0,
        junk_sent: 0,
    };

    let wall = std::time::Instant::now();
    let start_us = board.clock.now_us();
    let kernel_before = kernel_named(&mut board, &v2_hash).0;
    let mut cfg = BootConfig {
        kernel_slot: layout.kernel_slot.start..layout.kernel_slot.end(),
        stop_at_kernel: false,
        max_instructions: args.budget,
        budget_ends_run: true,
        // The trial kernel's app confirms and listens: then a further reboot follows.
        stop_on_console: vec!["confirmed this kernel".into(), "listening".into()],
        ..BootConfig::default()
    };
    let mut confirm_seen = false;
    let (mut power_ons, mut console, mut instructions, mut error) =
        (Vec::new(), String::new(), 0u64, None);
    let mut listening_after_update = false;
    // The cuts armed for the power-on about to run, and whether the update was finalized.
    let (mut transfer_armed, mut install_armed, mut finalized) = (false, false, false);
    for _ in 0..args.max_boots {
        let clock = board.clock.clone();
        // A new RADIO each power-on: the link's view of what it heard restarts.
        link.heard = 0;
        let mut armed = None;
        cfg.at_kernel_jump = None;
        if !transfer_armed && cfg.uicr != boot_emu::ficr::Uicr::erased() {
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
            Some(&mut link),
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
            ..PowerOn::default()
        };
        if let Some(report) = &report {
            instructions += report.instructions;
            let text = String::from_utf8_lossy(&report.console).into_owned();
            finalized |= text.contains("boot request") && text.contains("rebooting");
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
        }
        power_ons.push(on);
        if let Some(i) = armed {
            if exit == Exit::PowerLost {
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
    let (kernel_after, confirmed) = kernel_named(&mut board, &v2_hash);
    let emulated = (board.clock.now_us() - start_us) as f64 / 1e6;
    let wall_s = wall.elapsed().as_secs_f64();
    let report = Report {
        kernel_before,
        kernel_after,
        confirmed,
        app_listening_after_update: listening_after_update,
        emulated_seconds: emulated,
        instructions,
        wall_seconds: wall_s,
        emulated_seconds_per_wall_second: emulated / wall_s.max(1e-9),
        advertising_events: link.events,
        junk_packets: link.junk_sent,
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
        }
        for line in &report.console {
            cli_output::outln!("console: {line}");
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
        if let Some(e) = &report.error {
            cli_output::outln!("stopped: {e}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_parse_and_print_back_and_bad_ones_say_why() {
        for s in ["transfer:40", "install:1000:torn", "confirm:1:torn"] {
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
