//! The full-system simulator: one command that shows a whole update working on simulated
//! hardware (the core is [`crate::system`], which tests call directly).
use crate::system::{run_demo, Cut, DemoParams, DemoReport, Event};
use crate::transfer::LinkParams;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Probability that an advertisement is lost (each direction).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Probability that a received advertisement is received twice.
    #[arg(long, default_value_t = 0.02)]
    pub dup: f64,
    /// Probability that a received advertisement is delivered 1–3 events late.
    #[arg(long, default_value_t = 0.02)]
    pub reorder: f64,
    /// The sender's advInterval in ms (Bluetooth minimum for non-connectable advertising: 20).
    #[arg(long, default_value_t = 20.0)]
    pub interval_ms: f64,
    /// Probability per event that the receiver also hears a hostile or malformed advertisement.
    #[arg(long, default_value_t = 0.0)]
    pub hostile: f64,
    /// Fraction of the time the receiver scans (besides its own status advertising).
    #[arg(long, default_value_t = 1.0)]
    pub scan_duty: f64,
    /// The new kernel as a raw binary (signed by the demo); default: a generated 176 KiB one.
    #[arg(long)]
    pub image: Option<std::path::PathBuf>,
    /// The kernel the board runs, as a raw binary: installed by an earlier update, and v2 is
    /// sent as a delta patch against it (`tock-ota delta`), rebuilt by the kernel; if the board
    /// refuses the patch, the full image is sent and the summary says why.
    #[arg(long)]
    pub base: Option<std::path::PathBuf>,
    /// Send v2 compressed (imgtool's format, as `tock-ota sign --compression`): the kernel
    /// decodes it into the staging slot.
    #[arg(long, value_enum, conflicts_with = "base")]
    pub compression: Option<ota_imgtool::compress::CompressionArg>,
    /// Size of the generated kernel in bytes.
    #[arg(long, default_value_t = 176 * 1024)]
    pub size: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Cut power in a phase: `transfer:N`, `install:N` or `confirm:N` (after N program/erase
    /// operations of that phase; append `:torn` to tear operation N+1 instead). Repeatable.
    #[arg(long)]
    pub cut: Vec<Cut>,
    /// Sign v2 with a key the bootloader does not trust: the transfer completes, the bootloader
    /// refuses the image and v1 keeps running.
    #[arg(long)]
    pub untrusted_key: bool,
    /// Print the summary as JSON (no progress bars).
    #[arg(long)]
    pub json: bool,
    /// Update a userspace app instead of the kernel: the TAB's cortex-m4 TBF is sent as an app
    /// session and installed by the board's app-update driver (`docs/app-updates.md`).
    #[arg(long, conflicts_with_all = ["image", "base", "compression", "untrusted_key"])]
    pub app: Option<std::path::PathBuf>,
    /// With `--app`: the version of that app the board runs before the update.
    #[arg(long, default_value_t = 1, requires = "app")]
    pub installed_version: u32,
}

impl DemoArgs {
    pub fn params(&self) -> anyhow::Result<DemoParams> {
        if !(0.0..1.0).contains(&self.loss) {
            anyhow::bail!("--loss must be in [0, 1)");
        }
        if [self.dup, self.reorder, self.hostile]
            .iter()
            .any(|p| !(0.0..=1.0).contains(p))
        {
            anyhow::bail!("--dup, --reorder and --hostile must be in [0, 1]");
        }
        if !(0.05..=1.0).contains(&self.scan_duty) {
            anyhow::bail!("--scan-duty must be in [0.05, 1]");
        }
        if self.interval_ms < 20.0 {
            anyhow::bail!("--interval-ms below 20 is not allowed for non-connectable advertising");
        }
        let read = |p: &Option<std::path::PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
            match p {
                Some(p) => Ok(Some(
                    std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
                )),
                None => Ok(None),
            }
        };
        let payload = read(&self.image)?;
        let base = read(&self.base)?;
        Ok(DemoParams {
            link: LinkParams {
                loss: self.loss,
                dup: self.dup,
                reorder: self.reorder,
                adv_interval_ms: self.interval_ms,
                scan_duty: self.scan_duty,
                hostile: self.hostile,
                ..LinkParams::default()
            },
            payload,
            payload_len: self.size,
            seed: self.seed,
            cuts: self.cut.clone(),
            untrusted_key: self.untrusted_key,
            base,
            compression: self.compression.map(Into::into),
        })
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.app.is_some() {
        return crate::demo_app::run(&args);
    }
    let params = args.params()?;
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if args.json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut on_event = |e: Event<'_>| match e {
        Event::Phase(name) => {
            bar.set_prefix(name.to_string());
            bar.set_message("");
            if name != "transfer" {
                bar.set_length(1);
                bar.set_position(0);
            }
        }
        Event::Transfer(p) => {
            bar.set_length(p.total_chunks as u64);
            bar.set_position(p.received_chunks as u64);
            bar.set_message(format!(
                "chunks, {}/{} blocks checked, {:.0} s simulated",
                p.verified_blocks, p.total_blocks, p.sim_time_s
            ));
        }
    };
    let report = run_demo(&params, &mut on_event)?;
    bar.finish_and_clear();
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    if !report.confirmed && !args.untrusted_key {
        anyhow::bail!(
            "the update did not end confirmed: {}",
            report.bootloader_outcome
        );
    }
    Ok(())
}

fn print_summary(r: &DemoReport) {
    cli_output::outln!(
        "tock-ota demo: v{} -> v{} on a simulated nRF52840-DK",
        r.installed_version,
        r.final_version
    );
    cli_output::outln!(
        "  image          {} bytes ({} payload), signed {}",
        r.image_bytes,
        r.payload_bytes,
        r.signature_algorithm
    );
    match (r.sent.as_str(), &r.delta_refused) {
        ("delta", _) => cli_output::outln!(
            "  sent           a {}-byte delta patch ({:.1} % of the image); the kernel rebuilt the image from it and the running kernel in {:.1} s (of the transfer's time below)",
            r.bytes_on_air_image,
            100.0 * r.bytes_on_air_image as f64 / r.image_bytes as f64,
            r.rebuild_simulated_s
        ),
        ("compressed", _) => cli_output::outln!(
            "  sent           the {}-byte compressed image ({:.1} % of the image); the kernel decoded it in {:.1} s (of the transfer's time below)",
            r.bytes_on_air_image,
            100.0 * r.bytes_on_air_image as f64 / r.image_bytes as f64,
            r.rebuild_simulated_s
        ),
        (_, Some(why)) => cli_output::outln!("  sent           the full image: {why}"),
        _ => {}
    }
    cli_output::outln!(
        "  transfer       {} advertising events, {} B AdvData on air ({} B as PDUs on 3 channels), {} retransmitted, {} duplicates ignored, {} receiver reboots",
        r.advertising_events, r.adv_data_bytes_on_air, r.pdu_bytes_on_air_all_channels, r.retransmissions, r.duplicates_ignored, r.receiver_reboots
    );
    if r.hostile_advertisements > 0 {
        cli_output::outln!(
            "                 {} hostile/malformed advertisements heard: {} ignored, {} block CRC failures re-received",
            r.hostile_advertisements, r.ignored_advertisements, r.block_crc_failures
        );
    }
    cli_output::outln!(
        "                 {:.1} s simulated at {:.0}% loss; goodput {:.1} B/s = {:.1}% of the bearer limit {:.0} B/s",
        r.transfer_simulated_s,
        r.loss * 100.0,
        r.goodput_bytes_per_s,
        100.0 * r.goodput_bytes_per_s / r.bearer_limit_bytes_per_s,
        r.bearer_limit_bytes_per_s
    );
    cli_output::outln!(
        "                 bearer limit: {}",
        r.bearer_limit_arithmetic
    );
    if r.staged_image_verified {
        cli_output::outln!(
            "  staged         verified by finalize (SHA-256) and the bootloader (signature); boot request #{}",
            r.boot_request_sequence
        );
    } else {
        cli_output::outln!(
            "  staged         finalize accepted it (boot request #{}); the bootloader refused it: {}",
            r.boot_request_sequence, r.bootloader_outcome
        );
    }
    cli_output::outln!(
        "  install        {:.2} s simulated (check, revert copy, install) vs NVMC limit {:.2} s = {:.2}x",
        r.install_simulated_s,
        r.nvmc_limit_s,
        r.install_simulated_s / r.nvmc_limit_s
    );
    cli_output::outln!("                 NVMC limit: {}", r.nvmc_limit_arithmetic);
    cli_output::outln!(
        "  result         v{} {} after {} boots, {} power cuts",
        r.final_version,
        if r.confirmed {
            "booted and confirmed"
        } else {
            "still running: no update confirmed"
        },
        r.boots,
        r.power_cuts
    );
}
