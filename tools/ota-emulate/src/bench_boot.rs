//! Emulated bootloader report: the real bootloader ELF (built for `thumbv7em-none-eabihf`) runs
//! from its reset vector under the Unicorn CPU emulator against register-level nRF52840
//! peripheral models backed by the `hw-models` flash models (`tools/boot-emu`).
//!
//! Instruction counts are exact for the emulated code; time is instructions × CPI / 64 MHz
//! (CPI stated in the report) plus the flash time the models put on the simulated clock.

use boot_emu::bench::{boot_figures, BootFigures, Phase};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also print where the instructions of a boot with nothing pending go (per function).
    #[arg(long)]
    pub profile: bool,
    /// Also cut the power before and inside program/erase operations of a 12 KiB install by
    /// the emulated firmware: every `--cut-stride`-th operation (0: about 100 spread evenly;
    /// 1: every one of the ~3,300, which takes a while).
    #[arg(long)]
    pub power_cuts: bool,
    #[arg(long, default_value_t = 0)]
    pub cut_stride: u64,
}

/// Goals the report checks.
const BOOT_OVERHEAD_GOAL_S: f64 = 0.001;
const VERIFY_512K_GOAL_S: f64 = 0.5;

#[derive(Debug, Serialize)]
pub struct PhaseRow {
    pub what: String,
    pub image_bytes: Option<usize>,
    pub instructions: u64,
    pub cpu_s: f64,
    pub cpu_s_at_cpi_1_0: f64,
    pub cpu_s_at_cpi_1_5: f64,
    pub simulated_s: f64,
    pub extrapolated: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub cpi_assumed: f64,
    pub cpu_hz: f64,
    pub firmware_flash_bytes: usize,
    /// The worst of the nothing-pending boots below (what the goal is checked on).
    pub boot_overhead_s: f64,
    pub boot_overhead_instructions: u64,
    /// Nothing pending on a fresh device: empty journal and request sector.
    pub boot_overhead_fresh_s: f64,
    pub boot_overhead_fresh_instructions: u64,
    /// Nothing pending after a confirmed update: the journal holds the install's records, the
    /// request sector a boot request and a confirm.
    pub boot_overhead_after_update_s: Option<f64>,
    pub boot_overhead_after_update_instructions: Option<u64>,
    /// Nothing pending on a long-lived device: journal ring wrapped with its newest sector full,
    /// 62 records in the request sector.
    pub boot_overhead_long_lived_s: Option<f64>,
    pub boot_overhead_long_lived_instructions: Option<u64>,
    pub verify_176k_s: Option<f64>,
    pub verify_512k_s: Option<f64>,
    pub verify_512k_extrapolated: bool,
    /// Linear fit of the measured verify rows: instructions per image byte (hashing and
    /// reading) and the fixed part (signature check, request and status handling).
    pub verify_instructions_per_byte: Option<f64>,
    pub verify_fixed_instructions: Option<f64>,
    pub install_176k_s: Option<f64>,
    /// The NVMC physical limit for the same payload (every page erased, every word written).
    pub install_176k_nvmc_limit_s: f64,
    pub peak_stack_bytes: u32,
    pub boot_overhead_goal_met: bool,
    pub verify_512k_goal_met: bool,
    pub phases: Vec<PhaseRow>,
    /// Phases that could not be measured, and why.
    pub missing: Vec<String>,
    /// With `--power-cuts`.
    pub power_cuts: Option<CutRow>,
}

#[derive(Debug, Serialize)]
pub struct CutRow {
    pub image_bytes: usize,
    pub operations: u64,
    pub cuts: u64,
    pub recovered: u64,
    pub failures: Vec<String>,
}

fn row(what: &str, image_bytes: Option<usize>, p: &Phase, cpi: f64) -> PhaseRow {
    let at = |c: f64| p.cpu_s / cpi * c;
    PhaseRow {
        what: what.into(),
        image_bytes,
        instructions: p.instructions,
        cpu_s: p.cpu_s,
        cpu_s_at_cpi_1_0: at(1.0),
        cpu_s_at_cpi_1_5: at(1.5),
        simulated_s: p.simulated_s,
        extrapolated: p.extrapolated,
    }
}

/// Turns the emulator's figures into the report.
pub fn report(f: &BootFigures) -> Report {
    let verify_at = |n: usize| f.verify.iter().find(|(s, _)| *s == n).map(|(_, p)| *p);
    let v512 = verify_at(512 * 1024);
    let mut phases = vec![row(
        "boot, nothing pending",
        None,
        &f.nothing_pending,
        f.cpi,
    )];
    phases.extend(
        f.after_update
            .iter()
            .map(|p| row("  after a confirmed update", None, p, f.cpi)),
    );
    phases.extend(
        f.long_lived
            .iter()
            .map(|p| row("  long-lived device", None, p, f.cpi)),
    );
    phases.extend(
        f.verify
            .iter()
            .map(|(n, p)| row("verify staged image", Some(*n), p, f.cpi)),
    );
    phases.extend(
        f.install
            .iter()
            .map(|(n, p)| row("install + trial boot, from reset", Some(*n), p, f.cpi)),
    );
    let worst =
        [f.after_update, f.long_lived]
            .into_iter()
            .flatten()
            .fold(f.nothing_pending, |w, p| {
                if p.simulated_s > w.simulated_s {
                    p
                } else {
                    w
                }
            });
    let boot_overhead_s = worst.simulated_s;
    let measured: Vec<_> = f.verify.iter().filter(|(_, p)| !p.extrapolated).collect();
    let fit = match measured.as_slice() {
        [.., (s0, p0), (s1, p1)] => {
            let per_byte =
                (p1.instructions as f64 - p0.instructions as f64) / (*s1 as f64 - *s0 as f64);
            Some((per_byte, p0.instructions as f64 - per_byte * *s0 as f64))
        }
        _ => None,
    };
    Report {
        verify_instructions_per_byte: fit.map(|f| f.0),
        verify_fixed_instructions: fit.map(|f| f.1),
        cpi_assumed: f.cpi,
        cpu_hz: f.cpu_hz,
        firmware_flash_bytes: f.firmware_flash_bytes,
        boot_overhead_s,
        boot_overhead_instructions: worst.instructions,
        boot_overhead_fresh_s: f.nothing_pending.simulated_s,
        boot_overhead_fresh_instructions: f.nothing_pending.instructions,
        boot_overhead_after_update_s: f.after_update.map(|p| p.simulated_s),
        boot_overhead_after_update_instructions: f.after_update.map(|p| p.instructions),
        boot_overhead_long_lived_s: f.long_lived.map(|p| p.simulated_s),
        boot_overhead_long_lived_instructions: f.long_lived.map(|p| p.instructions),
        verify_176k_s: verify_at(176 * 1024).map(|p| p.simulated_s),
        verify_512k_s: v512.map(|p| p.simulated_s),
        verify_512k_extrapolated: v512.is_some_and(|p| p.extrapolated),
        install_176k_s: f
            .install
            .iter()
            .find(|(s, _)| *s == 176 * 1024)
            .map(|(_, p)| p.simulated_s),
        install_176k_nvmc_limit_s: ota_bench::install::nvmc_limit_s(176 * 1024),
        peak_stack_bytes: f.peak_stack_bytes,
        boot_overhead_goal_met: boot_overhead_s <= BOOT_OVERHEAD_GOAL_S,
        verify_512k_goal_met: v512.is_some_and(|p| p.simulated_s <= VERIFY_512K_GOAL_S),
        phases,
        missing: f.missing.clone(),
        power_cuts: None,
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let elf = boot_emu::build::bootloader_elf().map_err(anyhow::Error::msg)?;
    let fw = boot_emu::Firmware::from_path(&elf)?;
    let maker = boot_emu::images::firmware_images();
    let figures = boot_figures(
        &fw,
        maker.as_ref(),
        &[64 * 1024, 176 * 1024, 512 * 1024],
        &[176 * 1024],
    )
    .map_err(anyhow::Error::msg)?;
    let mut r = report(&figures);
    if args.power_cuts {
        let len = 12 * 1024;
        let c = boot_emu::bench::power_cut_campaign(&fw, maker.as_ref(), len, args.cut_stride);
        r.power_cuts = Some(CutRow {
            image_bytes: len,
            operations: c.operations,
            cuts: c.tried,
            recovered: c.recovered,
            failures: c.failures,
        });
    }
    if args.profile && !args.json {
        let mut rig = boot_emu::rig::Rig::new(fw.clone(), 1, 176 * 1024);
        let (top, _) = boot_emu::bench::profile(&mut rig).map_err(anyhow::Error::msg)?;
        cli_output::outln!("boot with nothing pending, instructions per function:");
        for (name, n) in top.iter().take(20) {
            cli_output::outln!("{n:>12}  {name}");
        }
        let mut rig = boot_emu::bench::updated_rig(&fw, maker.as_ref(), 176 * 1024)
            .map_err(anyhow::Error::msg)?;
        let (top, _) = boot_emu::bench::profile(&mut rig).map_err(anyhow::Error::msg)?;
        cli_output::outln!("boot with nothing pending after a confirmed 176 KiB update, instructions per function:");
        for (name, n) in top.iter().take(20) {
            cli_output::outln!("{n:>12}  {name}");
        }
        // The install path reaches the deepest stack.
        let maker = boot_emu::images::firmware_images();
        let payload =
            boot_emu::rig::kernel_image(0x8000, boot_emu::rig::NEW_KERNEL_SP, 16 * 1024, 3);
        let (image, hash) = maker.signed(&payload);
        let mut rig = boot_emu::rig::Rig::new(fw.clone(), 1, 176 * 1024);
        rig.stage(&image);
        rig.request_boot(hash, image.len() as u32);
        let (_, deepest) = boot_emu::bench::profile(&mut rig).map_err(anyhow::Error::msg)?;
        if let Some((name, depth)) = deepest {
            cli_output::outln!("install of 16 KiB: deepest stack {depth} bytes, in {name}");
        }
    }
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    cli_output::outln!(
        "bootloader under emulation ({} bytes of flash); time = instructions x CPI {} / {} MHz + modelled flash time",
        r.firmware_flash_bytes,
        r.cpi_assumed,
        r.cpu_hz / 1e6
    );
    cli_output::outln!(
        "{:<34} {:>10} {:>13} {:>10} {:>16} {:>12}",
        "phase",
        "image",
        "instructions",
        "cpu_ms",
        "cpu_ms@CPI1.0-1.5",
        "simulated_ms"
    );
    for p in &r.phases {
        cli_output::outln!(
            "{:<34} {:>10} {:>13} {:>10.3} {:>7.3}-{:<8.3} {:>12.3}{}",
            p.what,
            p.image_bytes.map(|n| n.to_string()).unwrap_or_default(),
            p.instructions,
            p.cpu_s * 1e3,
            p.cpu_s_at_cpi_1_0 * 1e3,
            p.cpu_s_at_cpi_1_5 * 1e3,
            p.simulated_s * 1e3,
            if p.extrapolated {
                "  (extrapolated)"
            } else {
                ""
            }
        );
    }
    if let Some(t) = r.install_176k_s {
        cli_output::outln!(
            "install 176 KiB: {:.3} s simulated, NVMC limit {:.3} s ({:.2}x; CPU time is included here)",
            t,
            r.install_176k_nvmc_limit_s,
            t / r.install_176k_nvmc_limit_s
        );
    }
    if let (Some(b), Some(a)) = (r.verify_instructions_per_byte, r.verify_fixed_instructions) {
        cli_output::outln!(
            "verify fit: {b:.1} instructions per image byte + {:.2} M fixed",
            a / 1e6
        );
    }
    cli_output::outln!("peak stack: {} bytes", r.peak_stack_bytes);
    if let Some(c) = &r.power_cuts {
        cli_output::outln!(
            "power cuts, {} KiB install ({} program/erase operations): {} tried, {} recovered",
            c.image_bytes / 1024,
            c.operations,
            c.cuts,
            c.recovered
        );
        for f in &c.failures {
            cli_output::outln!("  FAILED {f}");
        }
    }
    for m in &r.missing {
        cli_output::outln!("not measured: {m}");
    }
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    cli_output::outln!(
        "goal boot overhead <= 1 ms (worst of the nothing-pending rows): {:.3} ms, {}",
        r.boot_overhead_s * 1e3,
        verdict(r.boot_overhead_goal_met)
    );
    if let Some(v) = r.verify_512k_s {
        cli_output::outln!(
            "goal verify 512 KiB <= 0.5 s: {:.3} s{}, {}",
            v,
            if r.verify_512k_extrapolated {
                " (extrapolated)"
            } else {
                ""
            },
            verdict(r.verify_512k_goal_met)
        );
    }
    Ok(())
}
