//! `tock-ota demo --app APP.tab`: a userspace app updated end to end on the simulated DK.
//!
//! The TAB's position-independent `cortex-m4` TBF goes over the simulated advertising link
//! ([`crate::radio`]) as an app session (`adv_transfer` capability `APP`, the target PDU naming
//! the app) to the DFU app (`dfu-app`, the code the Tock app runs) on the simulated kernel
//! ([`crate::kernel::SimKernel`]), which stages it in the QSPI staging slot through the
//! update-region policy. The simulated kernel has the app-update driver
//! ([`SimKernel::with_app`]): when every block is staged and checked the DFU app asks for
//! `INSTALL` instead of the kernel finalize, and `app-sim`'s device runs the installer
//! (`app_install`: TBF checks, credential against the board's app keys, anti-rollback, the
//! journaled copy into the app region, the trial record) on the flash models. The new version
//! then confirms itself and the board reboots once more. The board trusts the development app
//! key (`apps/dfu/dev-keys/`), and the version it runs before the update is signed with it too.
//!
//! A power cut (`--cut transfer|install|confirm:N[:torn]`) reboots the board: the journal is
//! replayed and the trial decided at boot, the DFU app resumes the staged session from what
//! the update-region kept, and an install that did not commit is asked for again once the
//! staged TBF is checked again.
use adv_transfer::{RxState, Sender, DEFAULT_COMPANY_ID};
use anyhow::{anyhow, bail, Context};
use app_sim::tab::{app_from_tab, TabApp, CORTEX_M4};
use app_sim::tbf::{dev_app_key, public, tbf};
use app_sim::{Checker, Device, Setup, STAGING};
use dfu_app::OpError;
use hw_models::SimBoard;
use serde::Serialize;
use update_region::blocking::{BlockingDriver, BlockingError};
use update_region::{Config, UpdateRegion};

use crate::kernel::SimKernel;
use crate::radio::Radio;
use crate::system::{Cut, Phase};
use crate::transfer::{CutPlan, LinkParams, TransferCut};

/// The DFU app's caller id for the update-region policy.
const OWNER: u32 = crate::system::DFU_APP_ID;
/// Boots the demo allows (power cuts included) before it gives up.
const MAX_BOOTS: u32 = 64;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct AppDemoParams {
    pub link: LinkParams,
    /// The TAB's bytes.
    pub tab: Vec<u8>,
    /// The version of the app the board runs before the update.
    pub installed_version: u32,
    pub seed: u64,
    pub cuts: Vec<Cut>,
    /// The kernel answers `INSTALL` with `BUSY` for this long (simulated seconds) after the
    /// first one, as while its app-update core is still starting: the DFU app must try again,
    /// and not with every batch.
    pub install_busy_s: f64,
}

/// What happened (`--json`).
#[derive(Clone, Debug, Serialize)]
pub struct AppDemoReport {
    /// Always `"app"`.
    pub kind: &'static str,
    /// The TBF's package name.
    pub app: String,
    /// The TBF taken from the TAB.
    pub tbf_file: String,
    pub tbf_bytes: usize,
    /// Whether the TBF carries an ECDSA P-256 credential.
    pub signed: bool,
    /// The version the board ran before, the TAB's, and the one it runs at the end.
    pub installed_version: u32,
    pub offered_version: u32,
    pub final_version: u32,
    /// The TAB's version runs and confirmed itself (no trial left).
    pub confirmed: bool,
    /// Why the board refused the app (`None`: installed).
    pub refused: Option<String>,
    pub transfer_simulated_s: f64,
    pub advertising_events: u64,
    pub adv_data_bytes_on_air: u64,
    pub retransmissions: u64,
    pub goodput_bytes_per_s: f64,
    pub bearer_limit_bytes_per_s: f64,
    /// The install (checks, credential, journaled copy into the app region), simulated.
    pub install_simulated_s: f64,
    pub install_flash_ops: u64,
    /// `INSTALL`s the kernel answered `BUSY` (`AppDemoParams::install_busy_s`).
    pub install_busy_answers: u32,
    pub receiver_reboots: u32,
    pub power_cuts: u32,
    pub loss: f64,
    pub seed: u64,
    /// The DFU app's console, all boots.
    #[serde(skip)]
    pub dfu_log: Vec<String>,
}

/// The board's answer to `INSTALL`.
enum Installed {
    Yes,
    Refused(String),
}

/// Run the demo. A TAB the demo cannot take is an error; a TBF the board refuses is a report
/// with `refused` set (the old version still runs: checked).
pub fn run_app_demo(p: &AppDemoParams) -> anyhow::Result<AppDemoReport> {
    let app = app_from_tab(&p.tab, CORTEX_M4).map_err(|e| anyhow!("{e}"))?;
    let installed = tbf(
        &app.name,
        p.installed_version,
        Some(&dev_app_key()),
        app.tbf.len().max(1024) as u32,
    );
    let setup = Setup {
        installed,
        staged: app.tbf.clone(),
        app_keys: vec![public(&dev_app_key())],
    };
    let mut device =
        Device::with_setup(Checker::with_app_keys(setup.app_keys.clone()), true, setup);
    // The staging slot holds nothing of the new app until the transfer writes it.
    device
        .board
        .chip()
        .load(STAGING, &vec![0xFF; app.tbf.len().next_multiple_of(4096)]);
    device.boot().map_err(|e| anyhow!("first boot: {e:?}"))?;
    if device.running(&app.name) != Some(p.installed_version) {
        bail!(
            "the simulated board does not run {} v{}",
            app.name,
            p.installed_version
        );
    }
    let cuts = |phase| -> Vec<TransferCut> {
        p.cuts
            .iter()
            .filter(|c| c.phase == phase)
            .map(|c| TransferCut {
                after_ops: c.after_ops,
                torn: c.torn,
            })
            .collect()
    };

    // Transfer and install.
    let sender = Sender::new_app(
        DEFAULT_COMPANY_ID,
        &app.tbf,
        session_id(p.seed),
        app.name.as_bytes(),
    )
    .map_err(|e| anyhow!("{e}"))?;
    let mut radio = Radio::new(&p.link, sender, p.seed);
    let mut run = Run {
        transfer_plan: CutPlan::new(&device.board, cuts(Phase::Transfer)),
        install_cuts: {
            let mut c = cuts(Phase::Install);
            c.sort_by_key(|c| c.after_ops);
            c
        },
        install_cut: false,
        install_us: 0,
        install_ops: 0,
        reboots: 0,
        power_cuts: 0,
        installed: None,
        log: Vec::new(),
        end_us: None,
        install_busy_s: p.install_busy_s,
        first_install_us: None,
        install_busy_answers: 0,
    };
    receive(&mut device, &app, &mut radio, &p.link, &mut run)?;
    device.board.power.restore();
    let t0 = radio.started_us.unwrap_or(0);
    let transfer_s = run.end_us.unwrap_or(0).saturating_sub(t0) as f64 / 1e6;

    let refused = match run.installed {
        Some(Installed::Refused(why)) => Some(why),
        Some(Installed::Yes) => None,
        None => bail!("the transfer ended without an install"),
    };
    let mut power_cuts = run.power_cuts;
    if refused.is_none() {
        // The new version runs in trial; it passes its start-up checks and confirms, then the
        // board reboots once more.
        // A cut reboots the board (journal replay, trial decision) and the app, still in
        // trial, confirms again.
        let mut plan = CutPlan::new(&device.board, cuts(Phase::Confirm));
        let mut need_boot = false;
        let mut done = false;
        for _ in 0..MAX_BOOTS {
            let step = (|| {
                if need_boot {
                    device.boot()?;
                }
                if device.trial()?.is_some() {
                    device.confirm()?;
                }
                device.board.power_cycle()?;
                plan.arm(&device.board);
                device.boot()
            })();
            if step.is_ok() {
                done = true;
                break;
            }
            power_cuts += 1;
            device.board.power_cycle().context("power cycle")?;
            plan.fired();
            plan.arm(&device.board);
            need_boot = true;
        }
        if !done {
            bail!("the confirm did not finish in {MAX_BOOTS} boots");
        }
        device.board.power.restore();
    }
    let final_version = device
        .running(&app.name)
        .ok_or_else(|| anyhow!("{} does not run at the end", app.name))?;
    device.check_boot().map_err(|e| anyhow!("{e}"))?;
    let trial = device.trial().map_err(|e| anyhow!("{e:?}"))?;
    let confirmed = refused.is_none() && final_version == app.version && trial.is_none();
    if confirmed {
        device.check_end(app.version).map_err(|e| anyhow!("{e}"))?;
    } else if refused.is_some() && final_version != p.installed_version {
        bail!("refused, yet {} runs v{final_version}", app.name);
    }
    Ok(AppDemoReport {
        kind: "app",
        app: app.name.clone(),
        tbf_file: app.file.clone(),
        tbf_bytes: app.tbf.len(),
        signed: app.signed,
        installed_version: p.installed_version,
        offered_version: app.version,
        final_version,
        confirmed,
        refused,
        transfer_simulated_s: transfer_s,
        advertising_events: radio.events,
        adv_data_bytes_on_air: radio.adv_data_bytes,
        retransmissions: radio.sender.counters().retransmissions,
        goodput_bytes_per_s: app.tbf.len() as f64 / transfer_s.max(1e-9),
        bearer_limit_bytes_per_s: p.link.bearer_limit_bytes_per_s(),
        install_simulated_s: run.install_us as f64 / 1e6,
        install_flash_ops: run.install_ops,
        install_busy_answers: run.install_busy_answers,
        receiver_reboots: run.reboots,
        power_cuts,
        loss: p.link.loss,
        seed: p.seed,
        dfu_log: run.log,
    })
}

fn session_id(seed: u64) -> u32 {
    (seed as u32 ^ 0x0A99_0000) | 1
}

/// The transfer's and install's bookkeeping.
struct Run {
    transfer_plan: CutPlan,
    install_cuts: Vec<TransferCut>,
    /// The last power cut was an install's (not the transfer plan's).
    install_cut: bool,
    install_us: u64,
    install_ops: u64,
    reboots: u32,
    power_cuts: u32,
    installed: Option<Installed>,
    /// The DFU app's console.
    log: Vec<String>,
    /// When the sender heard the end (install done or refused).
    end_us: Option<u64>,
    /// `AppDemoParams::install_busy_s`, the first `INSTALL`'s time, and the `BUSY` answers.
    install_busy_s: f64,
    first_install_us: Option<u64>,
    install_busy_answers: u32,
}

/// Boots of the receiving board until the sender hears the app installed or refused: each
/// boot runs the DFU app (`dfu-app`, the code the Tock app runs) on the simulated kernel, whose
/// app-update driver's `INSTALL` is the installer on `device`. The kernel borrows the board;
/// the installer's device gets it back for `INSTALL` and for boots.
fn receive(
    device: &mut Device,
    app: &TabApp,
    radio: &mut Radio<'_>,
    link: &LinkParams,
    run: &mut Run,
) -> anyhow::Result<()> {
    let mut board = std::mem::replace(&mut device.board, SimBoard::new(0));
    let result = receive_on(&mut board, device, app, radio, link, run);
    std::mem::swap(&mut board, &mut device.board);
    result
}

fn receive_on(
    board: &mut SimBoard,
    device: &mut Device,
    app: &TabApp,
    radio: &mut Radio<'_>,
    link: &LinkParams,
    run: &mut Run,
) -> anyhow::Result<()> {
    let config = Config::nrf52840dk(OWNER);
    let mut bitmap = vec![0u8; dfu_app::BITMAP_LEN];
    let mut batch = vec![0u8; dfu_app::BATCH_LEN];
    let mut failure: Option<anyhow::Error> = None;
    for _ in 0..MAX_BOOTS {
        let mut policy = UpdateRegion::new(config).map_err(|e| anyhow!("{e}"))?;
        let exit = match BlockingDriver::new(&mut policy, &mut board.qspi).start() {
            Err(BlockingError::Flash(_)) => None,
            Err(e) => bail!("update-region start: {e}"),
            Ok(_) => {
                let mut install = |b: &mut SimBoard, len: u32| -> Result<u32, OpError> {
                    let now = b.clock.now_us();
                    let first = *run.first_install_us.get_or_insert(now);
                    if (now - first) as f64 / 1e6 < run.install_busy_s {
                        run.install_busy_answers += 1;
                        return Err(OpError::Refused(dfu_abi::error::BUSY));
                    }
                    std::mem::swap(b, &mut device.board);
                    let verdict = install(device, app, len, run);
                    std::mem::swap(b, &mut device.board);
                    match verdict {
                        Ok(Some((Installed::Yes, _))) => Ok(app.version),
                        Ok(Some((refused, detail))) => {
                            run.installed = Some(refused);
                            Err(OpError::Failed {
                                code: dfu_abi::error::FAIL,
                                detail,
                            })
                        }
                        // A power cut: the kernel halts the app.
                        Ok(None) => Err(OpError::TimedOut),
                        Err(e) => {
                            failure = Some(e);
                            b.power.cut_now();
                            Err(OpError::TimedOut)
                        }
                    }
                };
                let mut show = |_: &SimBoard, _| {};
                let mut kernel =
                    SimKernel::new(board, &mut policy, OWNER, Some(&mut *radio), &mut show)
                        .with_app(&mut install);
                let exit = dfu_app::run(&mut kernel, &mut bitmap, &mut batch);
                let (mut log, gave_up) = (
                    std::mem::take(&mut kernel.record.log),
                    kernel.record.gave_up,
                );
                run.log.append(&mut log);
                if gave_up {
                    bail!("the transfer did not converge");
                }
                Some(exit)
            }
        };
        if let Some(e) = failure.take() {
            return Err(e);
        }
        if board.power.is_on() {
            let heard = radio.sender.receiver_state();
            if radio.sender.is_complete() || heard == Some(RxState::Rejected) {
                run.end_us.get_or_insert(board.clock.now_us());
                if run.installed.is_none() && radio.sender.is_complete() {
                    run.installed = Some(Installed::Yes);
                }
                return Ok(());
            }
            if let Some(state) =
                heard.filter(|s| !matches!(s, RxState::Receiving | RxState::Listening))
            {
                bail!("the receiver refused the app session: {state:?}");
            }
            bail!("the DFU app stopped: {exit:?}");
        }
        // A power cut: the board reboots (journal replay, trial decision) and the DFU app
        // resumes the staged session.
        run.reboots += 1;
        run.power_cuts += 1;
        radio.stop_scan(board.clock.now_us());
        board.power_cycle().context("power cycle")?;
        if !std::mem::take(&mut run.install_cut) {
            run.transfer_plan.fired();
        }
        run.transfer_plan.arm(board);
        let up = board.clock.now_us() + (link.reboot_ms * 1000.0) as u64;
        board.clock.advance_to(up);
        std::mem::swap(board, &mut device.board);
        let booted = device.boot();
        std::mem::swap(board, &mut device.board);
        if booted.is_err() {
            // Cut again while booting: the next iteration finds the power off.
            board.power_cycle().context("power cycle")?;
            run.power_cuts += 1;
            run.transfer_plan.fired();
            run.transfer_plan.arm(board);
            std::mem::swap(board, &mut device.board);
            device
                .boot()
                .map_err(|e| anyhow!("boot after two cuts: {e:?}"))?;
            std::mem::swap(board, &mut device.board);
        }
    }
    bail!("more than {MAX_BOOTS} boots")
}

/// `INSTALL` of the staged TBF; `None` on a power cut. An install that committed before a cut
/// (the staged version runs, in the trial this install recorded) is not asked for again: the
/// DFU app sees the trial in the driver's status.
fn install(
    device: &mut Device,
    app: &TabApp,
    image_len: u32,
    run: &mut Run,
) -> anyhow::Result<Option<(Installed, u32)>> {
    let trial = device.trial().map_err(|e| anyhow!("{e:?}"))?;
    let in_trial = trial.is_some_and(|(r, _)| r.name() == app.name && r.new_version == app.version);
    if in_trial && device.running(&app.name) == Some(app.version) {
        return Ok(Some((Installed::Yes, 0)));
    }
    // The install's own cuts replace the transfer's while it runs.
    device.board.power.restore();
    let _plan = CutPlan::new(&device.board, run.install_cuts.clone());
    let (t0, ops0) = (device.board.clock.now_us(), device.board.power.ops());
    device.set_staged_len(image_len as usize);
    let result = device.install();
    run.install_us += device.board.clock.now_us() - t0;
    run.install_ops += device.board.power.ops() - ops0;
    match result {
        Err(_) => {
            // That cut fired; an install asked for again meets the next one.
            if !run.install_cuts.is_empty() {
                run.install_cuts.remove(0);
            }
            run.install_cut = true;
            Ok(None)
        }
        Ok(Ok(_)) => {
            device.board.power.restore();
            run.transfer_plan.arm(&device.board);
            Ok(Some((Installed::Yes, 0)))
        }
        Ok(Err(refusal)) => {
            device.board.power.restore();
            run.transfer_plan.arm(&device.board);
            Ok(Some((
                Installed::Refused(refusal_reason(refusal, app)),
                refusal.detail(),
            )))
        }
    }
}

/// A refusal in words.
fn refusal_reason(refusal: app_install::Refusal, app: &TabApp) -> String {
    use app_install::Refusal as R;
    match refusal {
        R::Unsigned => format!(
            "the board refused {} v{}: the TBF is unsigned (no ECDSA P-256 credential)",
            app.name, app.version
        ),
        R::KeyRejected => format!(
            "the board refused {} v{}: its credential does not verify against the board's app keys",
            app.name, app.version
        ),
        R::NotNewer { staged } => format!(
            "the board refused {} v{staged}: not newer than the version it runs (anti-rollback)",
            app.name
        ),
        other => format!("the board refused {} v{}: {other:?}", app.name, app.version),
    }
}

/// `tock-ota demo --app`: run, print (or `--json`), and fail with the reason when the board
/// refused the app or it did not end confirmed.
pub fn run(args: &crate::demo::DemoArgs) -> anyhow::Result<()> {
    let path = args.app.as_ref().context("--app")?;
    let common = args.params()?;
    let params = AppDemoParams {
        link: common.link,
        tab: std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        installed_version: args.installed_version,
        seed: args.seed,
        cuts: common.cuts,
        install_busy_s: 0.0,
    };
    let report =
        run_app_demo(&params).with_context(|| format!("app update from {}", path.display()))?;
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    if let Some(why) = &report.refused {
        bail!(
            "{why}; {} v{} keeps running",
            report.app,
            report.final_version
        );
    }
    if !report.confirmed {
        bail!(
            "the app update did not end confirmed ({} runs v{})",
            report.app,
            report.final_version
        );
    }
    Ok(())
}

fn print_summary(r: &AppDemoReport) {
    cli_output::outln!(
        "tock-ota demo --app: {} v{} -> v{} on a simulated nRF52840-DK",
        r.app,
        r.installed_version,
        r.offered_version
    );
    cli_output::outln!(
        "  app            {} ({} bytes, {})",
        r.tbf_file,
        r.tbf_bytes,
        if r.signed {
            "ECDSA P-256 credential"
        } else {
            "unsigned"
        }
    );
    cli_output::outln!(
        "  transfer       {} advertising events, {} B AdvData on air, {} retransmitted, {} receiver reboots; {:.1} s simulated, goodput {:.1} B/s ({:.0} B/s bearer limit)",
        r.advertising_events,
        r.adv_data_bytes_on_air,
        r.retransmissions,
        r.receiver_reboots,
        r.transfer_simulated_s,
        r.goodput_bytes_per_s,
        r.bearer_limit_bytes_per_s
    );
    match &r.refused {
        Some(why) => cli_output::outln!("  install        refused: {why}"),
        None => cli_output::outln!(
            "  install        {:.2} s simulated, {} flash operations (checks, credential, journaled copy)",
            r.install_simulated_s,
            r.install_flash_ops
        ),
    }
    cli_output::outln!(
        "  result         {} v{} runs{}, {} power cuts",
        r.app,
        r.final_version,
        if r.confirmed { ", confirmed" } else { "" },
        r.power_cuts
    );
}
