//! `tock-ota send --app APP.tab`: an app update over HCI. The TAB's position-independent
//! `cortex-m4` TBF (`app_sim::tab`, the installer's own header check for its name and version)
//! goes out as an app session whose target PDU names the app (`ota_hci::send_app`); the DFU app
//! stages it and asks the kernel's app-update driver to install it (`docs/app-updates.md`).
use std::io::IsTerminal;
use std::path::Path;

use anyhow::anyhow;
use app_sim::tab::{app_from_tab, TabApp, CORTEX_M4};
use indicatif::{ProgressBar, ProgressStyle};
use ota_hci::RxState;
use serde::Serialize;

use crate::over_hci::SendArgs;

/// The app in the TAB `bytes` (read from `path`), or why it cannot be sent. An unsigned TBF
/// is refused here: the board would refuse it after the whole transfer.
pub fn tab_app(bytes: &[u8], path: &Path) -> anyhow::Result<TabApp> {
    let app = app_from_tab(bytes, CORTEX_M4).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    if !app.signed {
        return Err(anyhow!(
            "{}: {} v{} is unsigned (no ECDSA P-256 credential): the board refuses it; sign it \
             with elf2tab --ecdsa-nist-p256-private",
            path.display(),
            app.name,
            app.version
        ));
    }
    Ok(app)
}

#[derive(Serialize)]
struct AppSendSummary {
    /// Always "app".
    kind: &'static str,
    app: String,
    version: u32,
    tbf_file: String,
    transport: String,
    image_bytes: u64,
    seconds: f64,
    goodput_bytes_per_s: f64,
    advertisements: u64,
    resent_chunks: u64,
    statuses_heard: u64,
    receiver_complete: bool,
    session: String,
    extended_advertising: bool,
    interval_ms: f64,
}

/// Send `app` until the receiver reports it installed (or refuses it).
pub fn run(
    args: &SendArgs,
    app: &TabApp,
    hci: &mut ota_hci::Controller,
    opts: &ota_hci::SendOptions,
) -> anyhow::Result<()> {
    let pb = std::io::stderr().is_terminal().then(|| {
        let pb = ProgressBar::new(app.tbf.len() as u64);
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg}") {
            pb.set_style(style);
        }
        pb
    });
    let mut on_progress = |p: &ota_hci::SendProgress| {
        if let Some(pb) = &pb {
            pb.set_position(p.sent_bytes);
        }
    };
    let report = ota_hci::send_app(hci, &app.tbf, &app.name, opts, &mut on_progress);
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    let report = report.map_err(|e| match e {
        ota_hci::Error::ReceiverRefused {
            state: RxState::Unsupported,
        } => anyhow!("{e}: its device does not install apps over the air"),
        ota_hci::Error::ReceiverRefused {
            state: RxState::Rejected,
        } => anyhow!(
            "{e}: the board refused {} v{} (its credential, or not newer than the version it runs)",
            app.name,
            app.version
        ),
        e => e.into(),
    })?;
    let summary = AppSendSummary {
        kind: "app",
        app: app.name.clone(),
        version: app.version,
        tbf_file: app.file.clone(),
        transport: args.hci.to_string(),
        image_bytes: report.image_bytes,
        seconds: report.seconds,
        goodput_bytes_per_s: report.goodput_bytes_per_s,
        advertisements: report.advertisements,
        resent_chunks: report.resent_chunks,
        statuses_heard: report.statuses_heard,
        receiver_complete: report.receiver_complete,
        session: format!("{:#010x}", report.session),
        extended_advertising: report.extended_advertising,
        interval_ms: report.interval_ms,
    };
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        cli_output::outln!(
            "sent {} v{} ({}, {} bytes) in {:.1} s through {}: {} advertisements, {} chunks resent; the receiver reports it installed",
            summary.app,
            summary.version,
            summary.tbf_file,
            summary.image_bytes,
            summary.seconds,
            summary.transport,
            summary.advertisements,
            summary.resent_chunks
        );
    }
    Ok(())
}
