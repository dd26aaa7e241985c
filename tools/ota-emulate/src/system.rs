//! `emulate system`: the whole device under emulation (docs/emulation.md, "The whole device").
//! The real bootloader ELF, the real kernel (v1) and the real DFU app TBF from `.ci/build-device`
//! run from reset under `boot-emu`; the host-side adv-transfer sender puts its advertisements on
//! air around the modelled RADIO (three channels per advertising event, every 20 ms plus BLE's
//! 0–10 ms advDelay) and hears the app's status advertisements. Power-ons follow each other
//! (UICR, RESETREAS and flash carried over) until the device stops resetting, a power-on spends
//! its instruction budget, or the scenario is done: the trial kernel's app has confirmed and
//! listens, a further reset keeps the kernel, and the app listens again.

use std::path::PathBuf;

use adv_transfer::wire::ADV_DATA_MAX;
use adv_transfer::{Sender, DEFAULT_COMPANY_ID};
use boot_emu::{run_with_air, BootConfig, Exit, Firmware};
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
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
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

#[derive(Debug, Serialize)]
pub struct PowerOn {
    pub exit: String,
    pub radio_received: u64,
    pub radio_cut: u64,
    pub radio_missed: u64,
    pub radio_sent: u64,
    pub instructions: u64,
    pub emulated_seconds: f64,
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
    for _ in 0..args.max_boots {
        let clock = board.clock.clone();
        // A new RADIO each power-on: the link's view of what it heard restarts.
        link.heard = 0;
        let result = run_with_air(
            &bootloader,
            board.qspi.port(),
            board.internal.port(),
            &clock,
            &cfg,
            Some(&mut link),
        );
        let report = match result {
            Ok(r) => r,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        instructions += report.instructions;
        let text = String::from_utf8_lossy(&report.console).into_owned();
        console.push_str(&text);
        if !console.is_empty() && !console.ends_with('\n') {
            console.push('\n');
        }
        power_ons.push(PowerOn {
            exit: format!("{:?}", report.exit),
            radio_received: report.radio_received,
            radio_cut: report.radio_cut,
            radio_missed: report.radio_missed,
            radio_sent: report.radio_sent,
            instructions: report.instructions,
            emulated_seconds: report.simulated_us as f64 / 1e6,
        });
        cfg.uicr = report.uicr.clone();
        match report.exit {
            Exit::SystemReset => cfg.resetreas = boot_emu::rig::RESETREAS_SREQ,
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
        console: console.lines().map(str::to_owned).collect(),
        error,
    };
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (i, p) in report.power_ons.iter().enumerate() {
            cli_output::outln!(
                "power-on {}: {} after {} instructions, {:.3} s emulated; RADIO received {}, cut {}, missed {}, sent {}",
                i + 1,
                p.exit,
                p.instructions,
                p.emulated_seconds,
                p.radio_received,
                p.radio_cut,
                p.radio_missed,
                p.radio_sent
            );
        }
        for line in &report.console {
            cli_output::outln!("console: {line}");
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
