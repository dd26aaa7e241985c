//! Power-cut campaign report: a cut before every program/erase and a torn cut inside every one,
//! in each phase of an update (install, confirm, revert, watchdog revert), then random runs of
//! whole updates with several cuts each. Small MCUboot images (a few pages, ECDSA P-256 signed,
//! verified by `ota-image` at every validation) keep it fast; the flash models are
//! `hw_models::SimBoard`'s. Every recovered run ends with a whole kernel (old or
//! new) that matches the status record, and the outcome its script calls for.

use boot_sim::{exhaustive, random, CampaignReport, Scenario, SMALL};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Random multi-cut update runs.
    #[arg(long, default_value_t = 10_000)]
    pub runs: u64,
    /// Most cuts in one random run.
    #[arg(long, default_value_t = 6)]
    pub max_cuts: u32,
    /// Seed of the fault randomness.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Run the campaign on the bootloader binary under the CPU emulator instead (needs
    /// tock-ota's `emulator` feature): cuts before and inside every flash operation of an
    /// install, a confirm and a revert of a small image (`ota_emulate::power_cuts`).
    #[arg(long)]
    pub emulated: bool,
    /// With `--emulated`: cut at every `--stride`-th operation only (1: every one).
    #[arg(long, default_value_t = 1)]
    pub stride: u64,
    /// With `--emulated`: worker threads (0: one per available core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run the campaign over a userspace app update instead (`app_sim`): cuts before and
    /// inside every flash operation of an install that confirms and one that reverts.
    #[arg(long)]
    pub app: bool,
}

#[derive(Debug, Serialize)]
pub struct PhaseRow {
    pub phase: String,
    pub cuts: u64,
    pub recovered: u64,
    /// Program/erase operations in the phase's uninterrupted boot (0 for random runs).
    pub operations: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub cuts: u64,
    pub recovered: u64,
    pub random_runs: u64,
    pub by_phase: Vec<PhaseRow>,
    pub failures: Vec<String>,
}

/// Runs the campaign over three size pairings (new shorter, longer, equal).
pub fn campaign(runs: u64, max_cuts: u32, seed: u64) -> Report {
    let mut all = CampaignReport::default();
    let scenarios = [(14000, 11000), (6000, 16384), (12288, 12288)];
    for (i, &(old, new)) in scenarios.iter().enumerate() {
        let sc = Scenario::mcuboot(SMALL, old, new);
        let rep = exhaustive(&sc, 1, seed + i as u64);
        merge(&mut all, rep, &format!(" (old {old} B, new {new} B)"));
    }
    let sc = Scenario::mcuboot(SMALL, 9000, 15000);
    merge(&mut all, random(&sc, runs, max_cuts, seed), "");
    Report {
        cuts: all.cuts,
        recovered: all.recovered,
        random_runs: runs,
        by_phase: all
            .by_phase
            .into_iter()
            .map(|(p, cuts, recovered, operations)| PhaseRow {
                phase: p,
                cuts,
                recovered,
                operations,
            })
            .collect(),
        failures: all.failures,
    }
}

fn merge(all: &mut CampaignReport, rep: CampaignReport, suffix: &str) {
    all.cuts += rep.cuts;
    all.recovered += rep.recovered;
    all.failures.extend(rep.failures);
    for (p, c, r, o) in rep.by_phase {
        all.by_phase.push((format!("{p}{suffix}"), c, r, o));
    }
}

/// The app-update campaign (`--app`): every operation of each scenario, cut before and torn.
pub fn app_campaign() -> Report {
    let mut rep = Report {
        cuts: 0,
        recovered: 0,
        random_runs: 0,
        by_phase: Vec::new(),
        failures: Vec::new(),
    };
    for (phase, scenario) in [
        ("app: install + confirm", app_sim::Scenario::Confirm),
        ("app: install + trial revert", app_sim::Scenario::Revert),
    ] {
        let found = app_sim::campaign(scenario, true, 1);
        let recovered = found.cuts - found.failures.len() as u64;
        rep.cuts += found.cuts;
        rep.recovered += recovered;
        rep.by_phase.push(PhaseRow {
            phase: phase.into(),
            cuts: found.cuts,
            recovered,
            operations: found.operations,
        });
        rep.failures.extend(found.failures);
    }
    rep
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rep = if args.app {
        app_campaign()
    } else {
        campaign(args.runs, args.max_cuts, args.seed)
    };
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        if args.app {
            cli_output::outln!("power-cut campaign (SimBoard, app update: blink v3 -> v4)");
        } else {
            cli_output::outln!(
                "power-cut campaign (SimBoard, small images, seed {})",
                args.seed
            );
        }
        cli_output::outln!(
            "{:<34} {:>8} {:>10} {:>11}",
            "phase",
            "cuts",
            "recovered",
            "operations"
        );
        for r in &rep.by_phase {
            cli_output::outln!(
                "{:<34} {:>8} {:>10} {:>11}",
                r.phase,
                r.cuts,
                r.recovered,
                r.operations
            );
        }
        cli_output::outln!(
            "total: {} cuts, {} recovered, {} random runs",
            rep.cuts,
            rep.recovered,
            rep.random_runs
        );
        for f in rep.failures.iter().take(20) {
            cli_output::outln!("FAILED: {f}");
        }
    }
    anyhow::ensure!(
        rep.failures.is_empty(),
        "{} runs did not recover",
        rep.failures.len()
    );
    Ok(())
}
