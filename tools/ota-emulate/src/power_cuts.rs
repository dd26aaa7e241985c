//! `tock-ota bench power-cuts --emulated`: the exhaustive power-cut campaign on the real
//! bootloader binary under the CPU emulator (`boot_emu::bench::cuts`). An update from a 1 KiB
//! kernel to a 4,160-byte one (ECDSA P-256 signed, MCUboot format; the new kernel spans two
//! flash pages, so the install goes page by page) keeps each boot short; its install, confirm
//! and revert boots take about 1,300 flash operations, each cut before it starts and inside it,
//! each cut followed by boots until a kernel runs.

use std::collections::BTreeMap;
use std::time::Instant;

use boot_emu::bench::cuts::{exhaustive, Campaign};
use hw_models::OpKind;
use ota_bench::power_cuts::Args;
use serde::Serialize;

/// The update the campaign cuts: old and new kernel payload bytes.
pub const OLD_LEN: usize = 1024;
pub const NEW_LEN: usize = 4160;

#[derive(Debug, Serialize)]
pub struct PhaseRow {
    pub phase: &'static str,
    /// Flash operations of the phase's uninterrupted boot.
    pub operations: u64,
    pub cuts: u64,
    pub recovered: u64,
}

#[derive(Debug, Serialize)]
pub struct KindRow {
    /// Operations of this kind over the three uninterrupted boots.
    pub operations: u64,
    /// Cuts before an operation of this kind starts, and inside one (torn).
    pub before: u64,
    pub inside: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub old_kernel_bytes: usize,
    pub new_kernel_bytes: usize,
    pub stride: u64,
    pub threads: usize,
    pub cuts: u64,
    pub recovered: u64,
    pub flash_operations: u64,
    /// Per kind of operation (nvmc-write, nvmc-erase, qspi-program, qspi-erase).
    pub by_kind: BTreeMap<&'static str, KindRow>,
    pub by_phase: Vec<PhaseRow>,
    /// Boots emulated (cut boots and recovery boots).
    pub boots: u64,
    pub wall_s: f64,
    pub failures: Vec<String>,
}

fn report(c: Campaign, stride: u64, threads: usize, wall_s: f64) -> Report {
    Report {
        old_kernel_bytes: c.old_len,
        new_kernel_bytes: c.new_len,
        stride,
        threads,
        cuts: c.cuts,
        recovered: c.recovered,
        flash_operations: c.flash_operations,
        by_kind: c
            .by_kind
            .iter()
            .map(|(k, n)| {
                let row = KindRow {
                    operations: n.operations,
                    before: n.before,
                    inside: n.inside,
                };
                (k.name(), row)
            })
            .collect(),
        by_phase: c
            .by_phase
            .iter()
            .map(|p| PhaseRow {
                phase: p.phase.name(),
                operations: p.operations,
                cuts: p.cuts,
                recovered: p.recovered,
            })
            .collect(),
        boots: c.boots,
        wall_s,
        failures: c.failures,
    }
}

/// What makes the campaign complete: every cut recovered, and every kind of operation that
/// occurs cut at least once before and once inside.
pub fn incomplete(r: &Report) -> Vec<String> {
    let mut out = r.failures.clone();
    if r.cuts != r.recovered {
        out.push(format!("{} of {} cuts recovered", r.recovered, r.cuts));
    }
    for kind in OpKind::ALL {
        if let Some(k) = r.by_kind.get(kind.name()) {
            if k.operations > 0 && (k.before == 0 || k.inside == 0) {
                out.push(format!("{}: no cut before or inside one", kind.name()));
            }
        }
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let elf = boot_emu::build::bootloader_elf().map_err(anyhow::Error::msg)?;
    let fw = boot_emu::Firmware::from_path(&elf)?;
    let maker = boot_emu::images::firmware_images();
    let threads = match args.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let stride = args.stride.max(1);
    let started = Instant::now();
    let c = exhaustive(&fw, maker.as_ref(), OLD_LEN, NEW_LEN, stride, threads);
    let r = report(c, stride, threads, started.elapsed().as_secs_f64());
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        cli_output::outln!(
            "power cuts on the bootloader binary (emulated): {} B kernel -> {} B, every {} operation(s), {} threads",
            r.old_kernel_bytes,
            r.new_kernel_bytes,
            r.stride,
            r.threads
        );
        cli_output::outln!(
            "{:<10} {:>11} {:>8} {:>10}",
            "phase",
            "operations",
            "cuts",
            "recovered"
        );
        for p in &r.by_phase {
            cli_output::outln!(
                "{:<10} {:>11} {:>8} {:>10}",
                p.phase,
                p.operations,
                p.cuts,
                p.recovered
            );
        }
        cli_output::outln!(
            "{:<13} {:>11} {:>8} {:>8}",
            "operation",
            "count",
            "before",
            "inside"
        );
        for (kind, k) in &r.by_kind {
            cli_output::outln!(
                "{:<13} {:>11} {:>8} {:>8}",
                kind,
                k.operations,
                k.before,
                k.inside
            );
        }
        cli_output::outln!(
            "total: {} cuts, {} recovered, {} flash operations, {} boots, {:.0} s",
            r.cuts,
            r.recovered,
            r.flash_operations,
            r.boots,
            r.wall_s
        );
        for f in r.failures.iter().take(20) {
            cli_output::outln!("FAILED: {f}");
        }
    }
    let missing = incomplete(&r);
    anyhow::ensure!(
        missing.is_empty(),
        "the campaign is not complete: {}",
        missing.join("; ")
    );
    Ok(())
}
