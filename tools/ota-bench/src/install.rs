//! Install timing report: simulated time for the bootloader to validate a staged image, back up
//! the old kernel into the QSPI revert slot, install the new one and verify it, beside the
//! nRF52840 NVMC physical limit for the same bytes (every page erased and every word written).

use boot_sim::install_time;
use hw_models::nvmc::{T_ERASEPAGE_US, T_WRITE_US};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON rows instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub image_bytes: u64,
    pub simulated_s: f64,
    pub nvmc_limit_s: f64,
    pub ratio: f64,
}

/// The NVMC limit for `bytes` of payload: whole pages erased, every word written.
pub fn nvmc_limit_s(bytes: u64) -> f64 {
    let pages = bytes.div_ceil(4096);
    hw_models::nvmc::erase_and_write_s(pages, pages * 1024)
}

/// One row: the simulated install of a `bytes`-long kernel (see `boot_sim::install_time`).
pub fn measure(bytes: usize) -> anyhow::Result<Row> {
    let t = install_time(bytes).map_err(|e| anyhow::anyhow!("install failed: {e:?}"))?;
    anyhow::ensure!(t.installed, "the kernel slot does not hold the new kernel");
    let nvmc = nvmc_limit_s(bytes as u64);
    Ok(Row {
        image_bytes: bytes as u64,
        simulated_s: t.simulated_s,
        nvmc_limit_s: nvmc,
        ratio: t.simulated_s / nvmc,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rows = [176 * 1024, 512 * 1024]
        .into_iter()
        .map(measure)
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    cli_output::outln!("install with revert copy (QSPI high-performance mode, simulated clock)");
    cli_output::outln!(
        "{:>12} {:>12} {:>14} {:>8}",
        "image_bytes",
        "simulated_s",
        "nvmc_limit_s",
        "ratio"
    );
    for r in &rows {
        cli_output::outln!(
            "{:>12} {:>12.3} {:>14.3} {:>8.3}",
            r.image_bytes,
            r.simulated_s,
            r.nvmc_limit_s,
            r.ratio
        );
    }
    cli_output::outln!(
        "nvmc_limit_s = pages x {} ms (tERASEPAGE) + words x {} us (tWRITE)",
        T_ERASEPAGE_US / 1000,
        T_WRITE_US
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn nvmc_limit_matches_the_datasheet_arithmetic() {
        let s = super::nvmc_limit_s(512 * 1024);
        assert!((s - (128.0 * 0.085 + 131072.0 * 41e-6)).abs() < 1e-9);
    }
}
