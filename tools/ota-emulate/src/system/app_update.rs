//! `emulate system --app-update V2.tab --app-installed V1.tab`: an app update through the whole
//! device (issue #17; docs/emulation.md, "An app update through the whole device"). The real
//! bootloader, DK kernel and DFU app from `.ci/build-device` boot with v1 of the app placed
//! after the DFU app in the app region; the TAB's `cortex-m4` TBF of v2 goes on air as an app
//! session (`Sender::new_app`, the sender `tock-ota demo --app` uses) around the modelled RADIO.
//! The DFU app stages it and asks the kernel's app-update driver to INSTALL it; the kernel
//! unloads v1 and loads v2, which runs in trial and confirms itself (the `hello-app` fixture
//! prints `hello-app: confirmed` once the kernel's upcall says so). A further reboot (reset pin)
//! must then run v2 with no trial left (its CONFIRM refused at once: `hello-app: no trial to
//! confirm`) and the DFU app listening; the app region must hold one binary of the app, v2, and
//! padding where v1 was.
//!
//! A TAB whose version is not higher than the installed one (v1 sent to a device that runs v2)
//! must be refused (anti-rollback): the run then ends at the DFU app's `dfu: app install
//! failed: ...` and `dfu: the kernel refused the staged image` lines, reports the first as
//! `refused`, and the old version keeps running and alone in the app region.
//!
//! `--cut install:N[:torn]` cuts the power at the N-th flash operation counted from the DFU
//! app's first `INSTALL` command (its SVC), and powers the board up again; the run then goes on
//! as before (the DFU app resumes the staged session and installs again, or the trial the
//! install left runs), to the same end.

use adv_transfer::{Sender, DEFAULT_COMPANY_ID};
use anyhow::anyhow;
use app_install::region::{walk, Entry};
use app_sim::tab::{app_from_tab, TabApp, CORTEX_M4};
use boot_emu::{run_with_air, BootConfig, Exit, Firmware};
use hw_models::SimBoard;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{
    read, tbf_entry, AppReport, Args, PowerOn, SenderLink, APP_REGION, INTERNAL_FLASH_END,
};

/// The fixture's console lines (`tools/boot-emu/fixtures/hello-app/hello_app.S`).
fn version_line(version: u32) -> String {
    format!("hello-app: version {version}")
}
const CONFIRMED: &str = "hello-app: confirmed";
const NO_TRIAL: &str = "hello-app: no trial to confirm";
/// The DFU app's lines (`dfu-app`).
const INSTALLED: &str = "dfu: app installed; it runs in trial";
const INSTALL_FAILED: &str = "dfu: app install failed";
/// The DFU app's line after a refused install's (its receiver's `Rejected`).
const REJECTED: &str = "dfu: the kernel refused the staged image";
const LISTENING: &str = "dfu: listening";

/// An entry of the app region after the run.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RegionEntry {
    pub address: u32,
    pub len: u32,
    /// `"app"`, `"padding"` or `"invalid"`.
    pub kind: &'static str,
    pub name: Option<String>,
    pub version: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct AppUpdateReport {
    /// Always `"app"`.
    pub kind: &'static str,
    /// The TBF's package name.
    pub app: String,
    /// `v<N>` of the version that ran before the update and of the one that runs at the end
    /// (its console line in the last power-on), or `"none"`.
    pub app_before: String,
    pub app_after: String,
    /// The new version confirmed itself (the kernel's upcall said so), and after a reboot it
    /// runs with no trial left (its CONFIRM refused at once).
    pub confirmed: bool,
    /// The DFU app reported the session complete after the install (the sender heard its
    /// status), and listens again after the reboot.
    pub app_listening_after_update: bool,
    /// The DFU app's console said the install succeeded.
    pub installed: bool,
    /// The DFU app's line saying the install failed (the kernel's refusal and its detail,
    /// `dfu_abi::app::detail`), if it did.
    pub refused: Option<String>,
    /// The app region after the run, entry by entry.
    pub app_region: Vec<RegionEntry>,
    /// Binaries of the app in the app region (not padding) after the run.
    pub binaries_of_app: usize,
    pub tbf_bytes: usize,
    pub apps: Vec<AppReport>,
    pub emulated_seconds: f64,
    pub instructions: u64,
    pub wall_seconds: f64,
    pub advertising_events: u64,
    pub power_ons: Vec<PowerOn>,
    /// `--cut`: the power-on (1-based) it ended, if it was reached.
    pub cuts: Vec<super::CutReport>,
    pub console: Vec<String>,
    pub error: Option<String>,
}

/// A TAB given by path, or by name in the device directory.
fn tab(args: &Args, path: &std::path::Path) -> anyhow::Result<TabApp> {
    let bytes = if path.exists() {
        std::fs::read(path).map_err(|e| anyhow!("{}: {e}", path.display()))?
    } else {
        read(&args.device_dir, &path.to_string_lossy())?
    };
    app_from_tab(&bytes, CORTEX_M4).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// The app region's entries.
fn region(board: &SimBoard) -> anyhow::Result<Vec<RegionEntry>> {
    let mut bytes = vec![0u8; (INTERNAL_FLASH_END - u64::from(APP_REGION)) as usize];
    board
        .nvmc()
        .read(APP_REGION, &mut bytes)
        .map_err(|e| anyhow!("reading the app region: {e:?}"))?;
    Ok(walk(&bytes, APP_REGION)
        .map(|e| match e {
            Entry::App { addr, app } => RegionEntry {
                address: addr,
                len: app.total_len,
                kind: "app",
                name: Some(app.name().to_string()),
                version: Some(app.version),
            },
            Entry::Padding { addr, len } => RegionEntry {
                address: addr,
                len,
                kind: "padding",
                name: None,
                version: None,
            },
            Entry::Invalid { addr, len } => RegionEntry {
                address: addr,
                len,
                kind: "invalid",
                name: None,
                version: None,
            },
        })
        .collect())
}

/// The version whose console line `console` holds last, as `v<N>`.
fn version_named(console: &str, versions: &[u32]) -> String {
    versions
        .iter()
        .filter_map(|&v| console.rfind(&version_line(v)).map(|at| (at, v)))
        .max()
        .map_or("none".into(), |(_, v)| format!("v{v}"))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let (Some(update), Some(installed)) = (&args.app_update, &args.app_installed) else {
        anyhow::bail!("--app-update and --app-installed go together");
    };
    if args.boot_only
        || args.cuts.len() > 1
        || args.cuts.iter().any(|c| c.phase != super::Phase::Install)
        || args.compression.is_some()
        || args.base
        || args.image.is_some()
        || !args.apps.is_empty()
        || args.foreign_sender > 0.0
    {
        anyhow::bail!(
            "--app-update sends an app: one --cut install:N[:torn] (counted from the DFU app's INSTALL), and --boot-only, --compression, --base, --image, --app and --foreign-sender do not apply"
        );
    }
    let new = tab(args, update)?;
    let old = tab(args, installed)?;
    if new.name != old.name {
        anyhow::bail!(
            "--app-update names {:?} but --app-installed {:?}: an update replaces the same app",
            new.name,
            old.name
        );
    }
    let dir = &args.device_dir;
    let bootloader = Firmware::from_elf(&read(dir, "bootloader.elf")?)
        .map_err(|e| anyhow!("bootloader.elf: {e}"))?;
    let kernel = read(dir, "kernel-v1.bin")?;
    let dfu = read(dir, "tock-ota-dfu.tbf")?;

    let mut board = SimBoard::new(args.seed);
    for (addr, bytes) in &bootloader.flash_segments {
        board.nvmc().load(*addr, bytes);
    }
    let layout = boot_nrf::NRF52840_DK;
    board.nvmc().load(layout.kernel_slot.start, &kernel);
    // The DFU app first (the larger, aligned to its size as tockloader places it), then v1.
    let mut apps = Vec::new();
    let mut at = APP_REGION;
    for (file, tbf) in [
        ("tock-ota-dfu.tbf".to_string(), &dfu),
        (installed.display().to_string(), &old.tbf),
    ] {
        let entry = tbf_entry(tbf, at).map_err(|e| anyhow!("{file}: {e}"))?;
        board.nvmc().load(at, tbf);
        apps.push(AppReport {
            file,
            address: at,
            entry,
            started: false,
        });
        at += tbf.len() as u32;
    }
    let app_before = format!("v{}", old.version);
    // Anti-rollback: a version not higher than the installed one must be refused.
    let expect_refusal = new.version <= old.version;

    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let session = rng.gen_range(1..u32::MAX);
    let sender = Sender::new_app(DEFAULT_COMPANY_ID, &new.tbf, session, new.name.as_bytes())
        .map_err(|e| anyhow!("sender: {e}"))?;
    let mut link = SenderLink::new(sender, rng, args.loss, args.junk_radio, None, 0.0);

    let wall = std::time::Instant::now();
    let start_us = board.clock.now_us();
    let updated = version_line(new.version);
    let mut cfg = BootConfig {
        kernel_slot: layout.kernel_slot.start..layout.kernel_slot.end(),
        stop_at_kernel: false,
        max_instructions: args.budget,
        budget_ends_run: true,
        // The new version runs and its confirm succeeded: then a further reboot follows. Or
        // the install is refused, as it must be.
        stop_on_console: if expect_refusal {
            vec![INSTALL_FAILED.into(), REJECTED.into()]
        } else {
            vec![updated.clone(), CONFIRMED.into()]
        },
        watch: apps.iter().map(|a| a.entry).collect(),
        ..BootConfig::default()
    };
    let (mut power_ons, mut console, mut instructions, mut error) =
        (Vec::new(), String::new(), 0u64, None);
    let mut last_console = String::new();
    let (mut confirmed_in_trial, mut rebooted, mut installed_seen) = (false, false, false);
    let mut complete_after_install = false;
    // `--cut install:N[:torn]`: armed at the DFU app's first INSTALL command (its SVC).
    let mut cuts: Vec<super::CutReport> = args
        .cuts
        .iter()
        .map(|c| super::CutReport {
            cut: c.to_string(),
            power_on: None,
        })
        .collect();
    if let Some(&cut) = args.cuts.first() {
        let (power, armed) = (
            board.power.clone(),
            std::sync::atomic::AtomicBool::new(false),
        );
        cfg.at_svc = Some(boot_emu::SvcHook(std::sync::Arc::new(move |imm, r| {
            if imm == super::TOCK_COMMAND_SVC
                && r[0] == dfu_abi::app::DRIVER_NUM
                && r[1] == dfu_abi::app::command::INSTALL
                && !armed.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                cut.arm(&power);
            }
        })));
    }
    for _ in 0..args.max_boots {
        link.heard = 0;
        let clock = board.clock.clone();
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
            Ok(r) if board.power.is_on() => r,
            // The power failed at the cut: what the emulation did after it is not the device's.
            _ if !board.power.is_on() => {
                power_ons.push(PowerOn {
                    exit: format!("{:?}", Exit::PowerLost),
                    flash_ops: board.power.ops() - ops_before,
                    ..PowerOn::default()
                });
                if let Some(c) = cuts.first_mut() {
                    c.power_on.get_or_insert(power_ons.len());
                }
                board.power.restore();
                board
                    .power_cycle()
                    .map_err(|e| anyhow!("power-up: {e:?}"))?;
                cfg.resetreas = 0;
                continue;
            }
            Ok(r) => r,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        instructions += report.instructions;
        let text = String::from_utf8_lossy(&report.console).into_owned();
        installed_seen |= text.contains(INSTALLED);
        console.push_str(&text);
        if !console.is_empty() && !console.ends_with('\n') {
            console.push('\n');
        }
        for app in &mut apps {
            app.started |= report
                .watch_hits
                .get(&app.entry)
                .is_some_and(|hits| !hits.is_empty());
        }
        power_ons.push(PowerOn {
            exit: format!("{:?}", report.exit),
            radio_received: report.radio_received,
            radio_cut: report.radio_cut,
            radio_missed: report.radio_missed,
            radio_sent: report.radio_sent,
            instructions: report.instructions,
            emulated_seconds: report.simulated_us as f64 / 1e6,
            flash_ops: board.power.ops() - ops_before,
            faults: report
                .faults
                .iter()
                .map(|f| {
                    format!(
                        "exception {} at pc {:#x}: {:?} of {:#x} (CFSR {:#x})",
                        f.exception, f.pc, f.access, f.addr, f.cfsr
                    )
                })
                .collect(),
            ..PowerOn::default()
        });
        cfg.uicr = report.uicr.clone();
        last_console = text;
        match report.exit {
            Exit::SystemReset => cfg.resetreas = boot_emu::rig::RESETREAS_SREQ,
            Exit::Console if expect_refusal => break,
            Exit::Console if !rebooted => {
                // v2 confirmed itself; the DFU app must have finished the session.
                confirmed_in_trial = true;
                complete_after_install = link.sender.is_complete();
                rebooted = true;
                cfg.resetreas = boot_emu::rig::RESETREAS_RESETPIN;
                cfg.stop_on_console = vec![updated.clone(), NO_TRIAL.into(), LISTENING.into()];
            }
            Exit::Console => break,
            other => {
                error = Some(format!(
                    "power-on {} ended {other:?} before {}",
                    power_ons.len(),
                    if rebooted {
                        "the updated app ran again with no trial and the DFU app listened"
                    } else {
                        "the updated app ran and confirmed itself"
                    }
                ));
                break;
            }
        }
    }
    let refused = console
        .lines()
        .find(|l| l.contains(INSTALL_FAILED))
        .map(|l| l[l.find(INSTALL_FAILED).unwrap_or(0)..].to_string());
    if error.is_none()
        && !expect_refusal
        && !(confirmed_in_trial && rebooted && last_console.contains(NO_TRIAL))
    {
        error = Some(format!(
            "no further reboot ended within --max-boots {}",
            args.max_boots
        ));
    }
    let app_region = region(&board)?;
    let binaries_of_app = app_region
        .iter()
        .filter(|e| e.kind == "app" && e.name.as_deref() == Some(new.name.as_str()))
        .count();
    let last_ran = version_named(&last_console, &[old.version, new.version]);
    let report = AppUpdateReport {
        kind: "app",
        app: new.name.clone(),
        app_before,
        app_after: last_ran,
        confirmed: confirmed_in_trial && last_console.contains(NO_TRIAL),
        app_listening_after_update: complete_after_install && last_console.contains(LISTENING),
        installed: installed_seen,
        refused,
        app_region,
        binaries_of_app,
        tbf_bytes: new.tbf.len(),
        apps,
        emulated_seconds: (board.clock.now_us() - start_us) as f64 / 1e6,
        instructions,
        wall_seconds: wall.elapsed().as_secs_f64(),
        advertising_events: link.events,
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
                "power-on {}: {} after {} instructions, {:.3} s emulated, {} flash operations; RADIO received {}, sent {}",
                i + 1,
                p.exit,
                p.instructions,
                p.emulated_seconds,
                p.flash_ops,
                p.radio_received,
                p.radio_sent
            );
        }
        for line in &report.console {
            cli_output::outln!("console: {line}");
        }
        for e in &report.app_region {
            cli_output::outln!(
                "app region {:#x}: {} of {} B{}",
                e.address,
                e.kind,
                e.len,
                match (&e.name, e.version) {
                    (Some(n), Some(v)) => format!(" ({n} v{v})"),
                    _ => String::new(),
                }
            );
        }
        cli_output::outln!(
            "{} before {}, after {}, confirmed {}, DFU app listening after the update {}; {} binary(ies) of it in the app region",
            report.app,
            report.app_before,
            report.app_after,
            report.confirmed,
            report.app_listening_after_update,
            report.binaries_of_app
        );
        cli_output::outln!(
            "{:.1} s emulated in {:.1} s, {} instructions, {} advertising events",
            report.emulated_seconds,
            report.wall_seconds,
            report.instructions,
            report.advertising_events
        );
        for c in &report.cuts {
            match c.power_on {
                Some(n) => cli_output::outln!("cut {}: power lost in power-on {n}", c.cut),
                None => cli_output::outln!("cut {}: not reached", c.cut),
            }
        }
        if let Some(r) = &report.refused {
            cli_output::outln!("refused: {r}");
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

    #[test]
    fn the_fixture_uses_dfu_abi_numbers() {
        let source = include_str!("../../../boot-emu/fixtures/hello-app/hello_app.S");
        let equ = |name: &str| -> u32 {
            let line = source
                .lines()
                .find(|l| l.trim_start().starts_with(&format!(".equ    {name},")))
                .unwrap_or_else(|| panic!("no .equ {name} in hello_app.S"));
            let value = line
                .split(',')
                .nth(1)
                .unwrap()
                .split('@')
                .next()
                .unwrap()
                .trim();
            match value.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).unwrap(),
                None => value.parse().unwrap(),
            }
        };
        assert_eq!(equ("APP_DRIVER"), dfu_abi::app::DRIVER_NUM);
        assert_eq!(equ("APP_CONFIRM"), dfu_abi::app::command::CONFIRM);
        assert_eq!(equ("APP_DONE"), dfu_abi::app::upcall::DONE);
        // The lines this run waits for are the fixture's.
        for line in [CONFIRMED, NO_TRIAL, "hello-app: version "] {
            assert!(source.contains(line), "{line}");
        }
    }

    #[test]
    fn the_version_named_is_the_last_line_printed() {
        let console = "hello-app: version 1\ndfu: listening\nhello-app: version 2\n";
        assert_eq!(version_named(console, &[1, 2]), "v2");
        assert_eq!(version_named("hello-app: version 1\n", &[1, 2]), "v1");
        assert_eq!(version_named("dfu: listening\n", &[1, 2]), "none");
    }
}
