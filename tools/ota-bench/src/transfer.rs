//! Transfer goodput report: a kernel-sized image over the simulated advertising link at several
//! loss rates, then on a loss-free link with hostile traffic around it (other transfers' PDUs
//! and malformed advertisements, `LinkParams::hostile`), beside the bearer limit (27 payload
//! bytes per event × events per second).
use hw_models::SimBoard;
use ota_sim::image::{kernel_payload, unsigned_image};
use ota_sim::transfer::{run_transfer, LinkParams, TransferJob, TransferReport};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Payload bytes of the image (default: the stock nRF52840-DK kernel, 176 KiB).
    #[arg(long, default_value_t = 176 * 1024)]
    pub payload: usize,
    /// Loss rates to run, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.0, 0.1, 0.3])]
    pub loss: Vec<f64>,
    /// Hostile rates to run on a loss-free link, comma separated (probability per event that
    /// the receiver also hears a hostile or malformed advertisement).
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.05, 0.3])]
    pub hostile: Vec<f64>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A real kernel (raw binary, e.g. the DK kernel `.ci/bench-delta` builds): also report one
    /// update of it sent raw, compressed and, with `--kernel-changed`, as a delta.
    #[arg(long)]
    pub kernel: Option<std::path::PathBuf>,
    /// A second build of `--kernel` with a small change: the delta row updates `--kernel` to it.
    #[arg(long, requires = "kernel")]
    pub kernel_changed: Option<std::path::PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Loss rates (per PDU; a lost PDU loses the rest of its chain) for the extended and
    /// periodic bearer rows, comma separated; empty: no bearer rows.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.0, 0.1])]
    pub bearer_loss: Vec<f64>,
    /// The extended advInterval or periodic interval of the bearer rows, ms (0: the shortest
    /// legal one).
    #[arg(long, default_value_t = 0.0)]
    pub interval_ms: f64,
    /// The bearer rows' kernel gives the DFU app the board's flash timing: it pre-erases only
    /// the head start its bearer needs and erases the rest while the data flows (default: the
    /// whole image before the pick).
    #[arg(long)]
    pub head_start: bool,
    /// The bearer rows' board listens this long before the sender starts, s: the DFU app erases
    /// its staging slot ahead meanwhile, as it does whenever it is idle after its start-up
    /// confirm (0: the sender starts with the board's first scan, before the app could).
    #[arg(long, default_value_t = 10.0)]
    pub idle_s: f64,
}

/// One transfer over an extended or periodic bearer.
#[derive(Serialize, Debug, Clone)]
pub struct BearerRow {
    pub bearer: String,
    pub loss: f64,
    pub image_bytes: usize,
    pub simulated_s: f64,
    pub goodput_bytes_per_s: f64,
    pub bearer_limit_bytes_per_s: f64,
    pub fraction_of_limit: f64,
    /// From the sender's start until the sender had the receiver's pick (the receiver's
    /// pre-erase on a chained bearer, of what is not erased ahead), s.
    pub pick_s: f64,
    /// The image over the time after the pick, while the data flows.
    pub data_goodput_bytes_per_s: f64,
    pub data_fraction_of_limit: f64,
    /// The limit's arithmetic (`adv_transfer::bearer::Budget`).
    pub limit_arithmetic: String,
    pub chained_events: u64,
    pub legacy_events: u64,
    pub chains_cut: u64,
    pub retransmissions: u64,
    pub ring_drops: u64,
    pub block_crc_failures: u32,
    pub sync_losses: u64,
    pub max_widening_us: f64,
    pub flash_ops: u64,
}

/// One transfer of `image` offered on `bearer` alone at `loss`, the board's kernel with the
/// ext_scan driver (so the DFU app offers every bearer it follows and picks the one offered);
/// an error if another bearer was picked.
pub fn on_bearer(
    image: &[u8],
    bearer: adv_transfer::bearer::Bearer,
    loss: f64,
    link: ota_sim::radio::BearerLink,
    flash: Option<adv_transfer::FlashTiming>,
    session: u32,
    seed: u64,
) -> anyhow::Result<ota_sim::transfer::BearerReport> {
    use ota_sim::transfer::{run_bearer_transfer, BearerJob};
    let mut board = SimBoard::new(seed);
    let params = LinkParams {
        loss,
        ..LinkParams::default()
    };
    let job = TransferJob {
        config: update_region::Config::nrf52840dk(1),
        owner: 1,
        image,
        session,
        params: &params,
        seed,
        cuts: &[],
        update_key: None,
    };
    let bearers = BearerJob {
        offer: adv_transfer::bearer::BearerSet::of(&[bearer]),
        ext_scan: true,
        link,
        flash,
    };
    let r = run_bearer_transfer(&mut board, &job, &bearers)?;
    if r.bearer != bearer {
        anyhow::bail!(
            "{} offered and followed, {} picked",
            bearer.name(),
            r.bearer.name()
        );
    }
    Ok(r)
}

/// Each extended and periodic bearer at each loss rate: the sender offers it, the receiver
/// follows it, they agree on it over legacy advertising and the image crosses it.
pub fn measure_bearers(
    payload: usize,
    losses: &[f64],
    interval_ms: f64,
    seed: u64,
    head_start: bool,
    idle_s: f64,
) -> anyhow::Result<Vec<BearerRow>> {
    use adv_transfer::bearer::Bearer;
    use ota_sim::radio::BearerLink;
    let image = unsigned_image(&kernel_payload(payload, seed), (2, 0, 0, 0));
    let mut rows = Vec::new();
    for bearer in Bearer::ALL.into_iter().rev().filter(|b| b.chained()) {
        for &loss in losses {
            let link = BearerLink {
                interval_us: (interval_ms * 1000.0) as u32,
                sender_delay_us: (idle_s * 1e6) as u64,
                ..BearerLink::default()
            };
            let flash = head_start.then(ota_sim::transfer::board_flash_timing);
            let r = on_bearer(
                &image,
                bearer,
                loss,
                link,
                flash,
                0x5EED_0000 | seed as u32,
                seed,
            )?;
            rows.push(BearerRow {
                bearer: bearer.name().into(),
                loss,
                image_bytes: r.image_bytes,
                simulated_s: r.sim_time_s,
                goodput_bytes_per_s: r.goodput_bytes_per_s,
                bearer_limit_bytes_per_s: r.budget.limit_bytes_per_s,
                fraction_of_limit: r.goodput_bytes_per_s / r.budget.limit_bytes_per_s,
                pick_s: r.pick_s,
                data_goodput_bytes_per_s: r.data_goodput_bytes_per_s,
                data_fraction_of_limit: r.data_goodput_bytes_per_s / r.budget.limit_bytes_per_s,
                limit_arithmetic: r.budget.to_string(),
                chained_events: r.link.chained_events,
                legacy_events: r.link.legacy_events,
                chains_cut: r.link.chains_cut,
                retransmissions: r.tx.retransmissions,
                ring_drops: r.link.ring_drops,
                block_crc_failures: r.rx.crc_failures,
                sync_losses: r.link.sync_losses,
                max_widening_us: r.link.max_widening_us,
                flash_ops: r.flash_ops,
            });
        }
    }
    Ok(rows)
}

fn print_bearers(rows: &[BearerRow]) {
    let mut shown = std::collections::HashSet::new();
    for r in rows {
        if shown.insert(r.bearer.clone()) {
            cli_output::outln!("bearer limit, {}", r.limit_arithmetic);
        }
    }
    cli_output::outln!(
        "{:>12} {:>6} {:>9} {:>7} {:>7} {:>6} {:>7} {:>6} {:>6} {:>8} {:>12} {:>10} {:>8} {:>7} {:>10} {:>7}",
        "bearer",
        "loss",
        "bytes",
        "events",
        "legacy",
        "cut",
        "retx",
        "drops",
        "crc×",
        "sim s",
        "goodput B/s",
        "limit B/s",
        "% limit",
        "pick s",
        "data B/s",
        "% data"
    );
    for r in rows {
        cli_output::outln!(
            "{:>12} {:>5.0}% {:>9} {:>7} {:>7} {:>6} {:>7} {:>6} {:>6} {:>8.2} {:>12.0} {:>10.0} {:>7.1}% {:>7.2} {:>10.0} {:>6.1}%",
            r.bearer,
            r.loss * 100.0,
            r.image_bytes,
            r.chained_events,
            r.legacy_events,
            r.chains_cut,
            r.retransmissions,
            r.ring_drops,
            r.block_crc_failures,
            r.simulated_s,
            r.goodput_bytes_per_s,
            r.bearer_limit_bytes_per_s,
            r.fraction_of_limit * 100.0,
            r.pick_s,
            r.data_goodput_bytes_per_s,
            r.data_fraction_of_limit * 100.0
        );
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct Row {
    pub loss: f64,
    pub hostile: f64,
    pub image_bytes: usize,
    pub events: u64,
    pub retransmissions: u64,
    /// Hostile or malformed advertisements the receiver heard.
    pub hostile_heard: u64,
    /// PDUs the receiver refused because they came from another sender's address.
    pub foreign_rejected: u32,
    pub block_crc_failures: u32,
    pub simulated_s: f64,
    pub goodput_bytes_per_s: f64,
    pub bearer_limit_bytes_per_s: f64,
    pub fraction_of_limit: f64,
    pub image_bytes_per_event: f64,
}

/// Run the report's transfers (each loss rate on a clean link, then each hostile rate on a
/// loss-free link); each on a fresh board.
pub fn measure(
    payload: usize,
    losses: &[f64],
    hostile: &[f64],
    seed: u64,
) -> anyhow::Result<Vec<Row>> {
    let image = unsigned_image(&kernel_payload(payload, seed), (2, 0, 0, 0));
    let mut rows = Vec::new();
    let links = losses
        .iter()
        .map(|&loss| (loss, 0.0))
        .chain(hostile.iter().map(|&h| (0.0, h)));
    for (loss, hostile) in links {
        let mut board = SimBoard::new(seed);
        let params = LinkParams {
            loss,
            hostile,
            ..LinkParams::default()
        };
        let config = update_region::Config::nrf52840dk(1);
        let job = TransferJob {
            config,
            owner: 1,
            image: &image,
            session: 0x5EED_0000 | seed as u32,
            params: &params,
            seed,
            cuts: &[],
            update_key: None,
        };
        let r: TransferReport = run_transfer(&mut board, &job, &mut |_| {})?;
        rows.push(Row {
            loss,
            hostile,
            image_bytes: r.image_bytes,
            events: r.events,
            retransmissions: r.tx.retransmissions,
            hostile_heard: r.hostile_pdus,
            foreign_rejected: r.rx.foreign,
            block_crc_failures: r.rx.crc_failures,
            simulated_s: r.sim_time_s,
            goodput_bytes_per_s: r.goodput_bytes_per_s,
            bearer_limit_bytes_per_s: r.bearer_limit_bytes_per_s,
            fraction_of_limit: r.goodput_bytes_per_s / r.bearer_limit_bytes_per_s,
            image_bytes_per_event: r.image_bytes as f64 / r.events as f64,
        });
    }
    Ok(rows)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rows = measure(args.payload, &args.loss, &args.hostile, args.seed)?;
    let bearer_rows = measure_bearers(
        args.payload,
        &args.bearer_loss,
        args.interval_ms,
        args.seed,
        args.head_start,
        args.idle_s,
    )?;
    let kernel_rows = match &args.kernel {
        None => Vec::new(),
        Some(path) => {
            let read = |p: &std::path::PathBuf| {
                std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
            };
            // The delta row updates --kernel to --kernel-changed; the raw and compressed rows
            // send the newer build.
            let (new, old) = match &args.kernel_changed {
                Some(changed) => (read(changed)?, Some(read(path)?)),
                None => (read(path)?, None),
            };
            crate::kernel_update::measure(&new, old.as_deref(), args.seed)?
        }
    };
    if args.json {
        if args.kernel.is_some() {
            let both =
                serde_json::json!({ "links": rows, "kernel": kernel_rows, "bearers": bearer_rows });
            cli_output::outln!("{}", serde_json::to_string_pretty(&both)?);
        } else if !bearer_rows.is_empty() {
            let both = serde_json::json!({ "links": rows, "bearers": bearer_rows });
            cli_output::outln!("{}", serde_json::to_string_pretty(&both)?);
        } else {
            cli_output::outln!("{}", serde_json::to_string_pretty(&rows)?);
        }
        return Ok(());
    }
    let p = LinkParams::default();
    cli_output::outln!(
        "bearer limit: {} B/event (31 B AdvData − 4 B AD framing) × {:.1} events/s (advInterval {} ms + mean advDelay {} ms) = {:.0} B/s",
        adv_transfer::wire::PDU_MAX,
        p.events_per_s(),
        p.adv_interval_ms,
        p.adv_delay_max_ms / 2.0,
        p.bearer_limit_bytes_per_s()
    );
    cli_output::outln!(
        "{:>6} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6} {:>10} {:>12} {:>10} {:>8}",
        "loss",
        "hostile",
        "bytes",
        "events",
        "retx",
        "heard",
        "foreign",
        "crc×",
        "sim s",
        "goodput B/s",
        "limit B/s",
        "% limit"
    );
    for r in &rows {
        cli_output::outln!(
            "{:>5.0}% {:>7.0}% {:>9} {:>8} {:>8} {:>8} {:>8} {:>6} {:>10.1} {:>12.1} {:>10.0} {:>7.1}%",
            r.loss * 100.0,
            r.hostile * 100.0,
            r.image_bytes,
            r.events,
            r.retransmissions,
            r.hostile_heard,
            r.foreign_rejected,
            r.block_crc_failures,
            r.simulated_s,
            r.goodput_bytes_per_s,
            r.bearer_limit_bytes_per_s,
            r.fraction_of_limit * 100.0
        );
    }
    if !bearer_rows.is_empty() {
        cli_output::outln!();
        print_bearers(&bearer_rows);
    }
    if !kernel_rows.is_empty() {
        cli_output::outln!();
        crate::kernel_update::print(&kernel_rows);
    }
    Ok(())
}
