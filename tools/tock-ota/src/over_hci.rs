//! `tock-ota send` and `tock-ota receive`: the transfer over a real (or emulated) Bluetooth
//! controller through standard HCI (`tools/ota-hci`, `docs/hci.md`).
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use adv_transfer::receiver::READ_LEN;
use adv_transfer::{RxState, StageError, StageOp};
use anyhow::{bail, Context};
use boot_nrf::NRF52840_DK;
use dfu_app::{OpError, Performed};
use embedded_storage::nor_flash::ReadNorFlash;
use hw_models::SimBoard;
use indicatif::{ProgressBar, ProgressStyle};
use ota_hci::{AdvParams, AdvType, BearerChoice, Staging, TransportSpec};
use ota_reconstruct::diff::{make_image_patch, SignedImage};
use serde::Serialize;
use update_region::blocking::BlockingDriver;
use update_region::{Config, UpdateRegion};

use adv_transfer::wire::capability::COMPRESSED;
use ota_image::compressed::Compression;
use ota_sim::kernel::SimKernel;
use ota_sim::system::{falls_back_to_full_image, DFU_APP_ID};

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// The controller: tcp:HOST:PORT (H:4 over TCP), serial:DEVICE[:BAUD] (H:4 over a UART
    /// with RTS/CTS, 1000000 baud by default) or, on Linux, hciN / hci:N (HCI user channel).
    #[arg(long)]
    pub hci: TransportSpec,
    /// Advertising interval in ms (20 is the minimum for non-connectable advertising).
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u32,
    /// Legacy PDU type: nonconn (ADV_NONCONN_IND), scan (ADV_SCAN_IND) or ind (ADV_IND).
    #[arg(long, default_value = "nonconn")]
    pub adv_type: AdvType,
    /// Give up after this many seconds without a status from the receiver.
    #[arg(long, default_value_t = 60)]
    pub status_timeout_s: u64,
    /// The bearers to offer for the data: legacy, extended, periodic, or auto (every one the
    /// controller has; the receiver picks the fastest it follows). Announces and the offer go
    /// as legacy advertisements; a named bearer the controller lacks is refused.
    #[arg(long, default_value = "legacy")]
    pub bearer: BearerChoice,
    /// Periodic advertising interval in ms on the periodic bearer (7.5 at the least).
    #[arg(long, default_value_t = 7.5)]
    pub periodic_interval_ms: f64,
    /// Test option: at most this many bytes of AdvData per advertising event.
    #[arg(long, hide = true)]
    pub max_event_data: Option<usize>,
    /// Use the legacy advertising and scanning commands even if the controller has extended ones.
    #[arg(long, hide = true)]
    pub force_legacy: bool,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
    /// The signed image the receiver runs: send a delta patch from it to IMAGE (`tock-ota
    /// delta`); if the receiver runs another image, say so and send IMAGE whole.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// With `--base`: stop with an error instead of sending the full image.
    #[arg(long, requires = "base")]
    pub no_fallback: bool,
    /// IMAGE is a TAB (elf2tab's): send its cortex-m4 TBF as an app update, announced with the
    /// app's package name (`docs/app-updates.md`).
    #[arg(long, conflicts_with = "base")]
    pub app: bool,
    /// The signed image.
    pub image: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ReceiveArgs {
    /// The controller (as for `send`).
    #[arg(long)]
    pub hci: TransportSpec,
    /// Where to write the image once it is staged and verified.
    #[arg(long)]
    pub out: PathBuf,
    /// Check the image's signature with this key (public or private PEM) before writing it.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// An app session: check the TBF's ECDSA P-256 credential against this app key (public
    /// or private PEM; may be given more than once, as a board has several app keys). Without
    /// it the credential must be there but is not checked.
    #[arg(long, value_name = "PUB.pem")]
    pub app_key: Vec<PathBuf>,
    /// An app session: the version of the app the device runs; only a higher one is taken
    /// (anti-rollback). Without it no version of the app is installed.
    #[arg(long, value_name = "N")]
    pub installed_version: Option<u32>,
    /// Advertising interval for the status advertisements, ms.
    #[arg(long, default_value_t = 20)]
    pub interval_ms: u32,
    /// Legacy PDU type of the status advertisements.
    #[arg(long, default_value = "nonconn")]
    pub adv_type: AdvType,
    /// Give up after this many seconds without hearing a transfer.
    #[arg(long, default_value_t = 300)]
    pub idle_timeout_s: u64,
    /// The bearers to follow besides legacy: auto (every one the controller can scan or
    /// synchronise to), extended, periodic, or legacy only.
    #[arg(long, default_value = "auto")]
    pub bearer: BearerChoice,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
    /// Use the legacy advertising and scanning commands even if the controller has extended ones.
    #[arg(long, hide = true)]
    pub force_legacy: bool,
    /// Test option: drop this share (0..1) of the advertisements heard.
    #[arg(long, hide = true, default_value_t = 0.0)]
    pub drop: f64,
    /// Seed for `--drop`.
    #[arg(long, hide = true, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Serialize)]
struct SendSummary {
    transport: String,
    image_bytes: u64,
    seconds: f64,
    goodput_bytes_per_s: f64,
    advertisements: u64,
    resent_chunks: u64,
    statuses_heard: u64,
    receiver_complete: bool,
    /// "full", "compressed" or "delta".
    sent: &'static str,
    session: String,
    extended_advertising: bool,
    interval_ms: f64,
    /// The bearer the data went on: "legacy", "extended 2M", "periodic 1M", ...
    bearer: &'static str,
}

fn connect(spec: &TransportSpec, force_legacy: bool) -> anyhow::Result<ota_hci::Controller> {
    let mut hci = ota_hci::connect(spec)?;
    if force_legacy {
        hci.force_legacy();
    }
    Ok(hci)
}

fn bar(len: u64, template: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    Some(pb)
}

pub fn run_send(args: SendArgs) -> anyhow::Result<()> {
    let image = std::fs::read(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    if args.interval_ms < 20 {
        bail!("--interval-ms must be at least 20 (the advertising minimum)");
    }
    if !(7.5..=81_918.75).contains(&args.periodic_interval_ms) {
        bail!("--periodic-interval-ms must be 7.5 to 81918.75 (the periodic advertising range)");
    }
    // An app's TAB is checked before the controller is touched.
    let app = args
        .app
        .then(|| crate::send_app::tab_app(&image, &args.image))
        .transpose()?;
    let mut hci = connect(&args.hci, args.force_legacy)?;
    let opts = ota_hci::SendOptions {
        adv: AdvParams {
            adv_type: args.adv_type,
            interval: Duration::from_millis(args.interval_ms as u64),
        },
        status_timeout: Duration::from_secs(args.status_timeout_s),
        company_id: adv_transfer::DEFAULT_COMPANY_ID,
        bearer: args.bearer,
        periodic_interval: Duration::from_secs_f64(args.periodic_interval_ms / 1e3),
        max_event_data: args.max_event_data,
    };
    if let Some(app) = &app {
        return crate::send_app::run(&args, app, &mut hci, &opts);
    }
    let patch = match &args.base {
        Some(base) => {
            let old =
                std::fs::read(base).with_context(|| format!("cannot read {}", base.display()))?;
            let patch = make_image_patch(&old, &image)?;
            let id = SignedImage::parse(&old, "base")?.id();
            Some((patch, id))
        }
        None => None,
    };
    let capabilities = capabilities_of(&image);
    let mut sent = if capabilities & COMPRESSED != 0 {
        "compressed"
    } else {
        "full"
    };
    let report = match &patch {
        Some((patch, id)) => match send_progress(&mut hci, patch, Some(*id), 0, &opts) {
            Err(why) if !args.no_fallback && full_image_follows(&why) => {
                eprintln!("{why}: sending the full image");
                send_progress(&mut hci, &image, None, capabilities, &opts)
            }
            r => {
                sent = "delta";
                r
            }
        },
        None => send_progress(&mut hci, &image, None, capabilities, &opts),
    };
    let report = report.map_err(|e| match e {
        ota_hci::Error::ReceiverRefused {
            state: RxState::Unsupported,
        } if capabilities & COMPRESSED != 0 => anyhow::anyhow!(
            "{e}: it does not take compressed images; send the image signed without --compression"
        ),
        e => e.into(),
    })?;
    let summary = SendSummary {
        transport: args.hci.to_string(),
        image_bytes: report.image_bytes,
        seconds: report.seconds,
        goodput_bytes_per_s: report.goodput_bytes_per_s,
        advertisements: report.advertisements,
        resent_chunks: report.resent_chunks,
        statuses_heard: report.statuses_heard,
        receiver_complete: report.receiver_complete,
        sent,
        session: format!("{:#010x}", report.session),
        extended_advertising: report.extended_advertising,
        interval_ms: report.interval_ms,
        bearer: report.bearer.name(),
    };
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        cli_output::outln!(
            "sent {} bytes{} in {:.1} s ({:.0} B/s) through {} on the {} bearer: {} advertisements, {} chunks resent; the receiver reports the image complete",
            summary.image_bytes,
            match sent {
                "delta" => " (a delta patch)",
                "compressed" => " (a compressed image)",
                _ => "",
            },
            summary.seconds,
            summary.goodput_bytes_per_s,
            summary.transport,
            summary.bearer,
            summary.advertisements,
            summary.resent_chunks
        );
    }
    Ok(())
}

/// The announce's capabilities for the signed `image`: COMPRESSED when its header's flags say
/// it is compressed (MCUboot's `COMPRESSED_LZMA2`), so that the receiver stages it for its kernel
/// to decode; nothing for a plain image (or bytes that are no image: the send refuses those).
fn capabilities_of(image: &[u8]) -> u8 {
    match ota_image::parse_image(&mut &image[..]) {
        Ok(info) if matches!(Compression::from_flags(info.header.flags), Ok(Some(_))) => COMPRESSED,
        _ => 0,
    }
}

/// Whether the full image follows a refused patch, as in `tock-ota demo`
/// (`ota_sim::system::falls_back_to_full_image`): the receiver runs another image or cannot tell,
/// or it does not take patches.
fn full_image_follows(e: &ota_hci::Error) -> bool {
    match e {
        ota_hci::Error::WrongBase { .. } => true,
        ota_hci::Error::ReceiverRefused { state } => falls_back_to_full_image(*state),
        _ => false,
    }
}

/// One send of `bytes` (a delta patch against `base`, if given; else announced with
/// `capabilities`) with a progress bar.
fn send_progress(
    hci: &mut ota_hci::Controller,
    bytes: &[u8],
    base: Option<[u8; 16]>,
    capabilities: u8,
    opts: &ota_hci::SendOptions,
) -> Result<ota_hci::SendReport, ota_hci::Error> {
    let pb = bar(
        bytes.len() as u64,
        "{bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    );
    let mut on_progress = |p: &ota_hci::SendProgress| {
        if let Some(pb) = &pb {
            pb.set_position(p.sent_bytes);
            pb.set_message(format!(
                "resent {} receiver {}",
                p.resent_chunks,
                p.receiver_state
                    .map_or("not heard yet".to_string(), |s| format!("{s:?}")
                        .to_lowercase())
            ));
        }
    };
    let report = match base {
        Some(base) => ota_hci::send_delta(hci, bytes, base, opts, &mut on_progress),
        None => ota_hci::send::send_announced(hci, bytes, capabilities, opts, &mut on_progress),
    };
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    report
}

/// The DFU app's staging path on a simulated DK: each operation goes through the app's own step
/// (`dfu_app::perform`) to the simulator's kernel (`sim::kernel::SimKernel`: the staged-update
/// driver over the update-region policy and the MX25R6435F model).
struct SimStaging {
    board: SimBoard,
    policy: UpdateRegion,
    /// The app-update driver's checks (`INSTALL`) and where its staged TBF is.
    app: crate::receive_app::AppCheck,
    staging_base: u32,
}

impl Staging for SimStaging {
    fn stage(&mut self, op: StageOp<'_>, read_back: &mut Vec<u8>) -> Result<(), StageError> {
        let mut no_display = |_: &SimBoard, _| {};
        let mut kernel = SimKernel::new(
            &mut self.board,
            &mut self.policy,
            DFU_APP_ID,
            None,
            &mut no_display,
        );
        let mut buf = [0u8; READ_LEN];
        if let Performed::Done { read } = dfu_app::perform(&mut kernel, op, &mut buf)? {
            read_back.extend_from_slice(&buf[..read]);
        }
        Ok(())
    }

    /// The DFU app's end of an app session (`INSTALL` through `dfu_app::Kernel::app_install`,
    /// its failure mapped by `dfu_app::install_error`) on the simulated kernel, whose
    /// app-update driver runs the install machine's checks ([`crate::receive_app`]).
    fn install(&mut self, len: u32) -> Result<(), StageError> {
        let (check, base) = (&mut self.app, self.staging_base);
        let mut driver = |board: &mut SimBoard, len: u32| {
            check
                .check(&mut board.qspi, base, len)
                .map(|()| 0)
                .map_err(|refusal| OpError::Failed {
                    code: dfu_abi::error::FAIL,
                    detail: refusal.detail(),
                })
        };
        let mut no_display = |_: &SimBoard, _| {};
        let mut kernel = SimKernel::new(
            &mut self.board,
            &mut self.policy,
            DFU_APP_ID,
            None,
            &mut no_display,
        )
        .with_app(&mut driver);
        dfu_app::Kernel::app_install(&mut kernel, len, dfu_app::INSTALL_TIMEOUT_MS)
            .map(|_| ())
            .map_err(dfu_app::install_error)
    }
}

#[derive(Serialize)]
struct ReceiveSummary {
    /// Always "kernel" (an app session's summary is `receive_app`'s).
    kind: &'static str,
    transport: String,
    out: String,
    state: String,
    signature_verified: bool,
    #[serde(flatten)]
    link: LinkFigures,
}

/// What a receive session's link did: the figures a kernel's and an app's summary both report.
#[derive(Serialize)]
struct LinkFigures {
    image_bytes: u32,
    seconds: f64,
    session: String,
    chunks: u32,
    duplicates: u32,
    crc_failures: u32,
    advertisements_heard: u64,
    dropped_on_purpose: u64,
    statuses_sent: u64,
}

impl LinkFigures {
    fn new(report: &ota_hci::ReceiveReport, info: &adv_transfer::SessionInfo) -> LinkFigures {
        LinkFigures {
            image_bytes: info.image_len,
            seconds: report.seconds,
            session: format!("{:#010x}", info.session),
            chunks: report.counters.chunks,
            duplicates: report.counters.duplicates,
            crc_failures: report.counters.crc_failures,
            advertisements_heard: report.heard,
            dropped_on_purpose: report.dropped_on_purpose,
            statuses_sent: report.statuses_sent,
        }
    }
}

pub fn run_receive(args: ReceiveArgs) -> anyhow::Result<()> {
    if !(0.0..1.0).contains(&args.drop) {
        bail!("--drop must be in 0..1");
    }
    let key = match &args.key {
        Some(k) => Some(ota_imgtool::keys::load_verifying_key(k)?),
        None => None,
    };
    let app_keys = args
        .app_key
        .iter()
        .map(|k| ota_imgtool::keys::load_verifying_key(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let app = crate::receive_app::AppCheck::new(
        (!app_keys.is_empty()).then_some(app_sim::tbf::Keys(app_keys)),
        args.installed_version,
    );
    let layout = NRF52840_DK;
    let config = Config {
        owner: DFU_APP_ID,
        staging_base: layout.staging.start,
        staging_len: layout.staging.len,
        request_base: layout.request_sector.start,
    };
    let mut board = SimBoard::new(args.seed);
    let mut policy = UpdateRegion::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    BlockingDriver::new(&mut policy, &mut board.qspi)
        .start()
        .map_err(|e| anyhow::anyhow!("update-region start: {e}"))?;
    let mut staging = SimStaging {
        board,
        policy,
        app,
        staging_base: layout.staging.start,
    };
    let mut hci = connect(&args.hci, args.force_legacy)?;
    let opts = ota_hci::ReceiveOptions {
        adv: AdvParams {
            adv_type: args.adv_type,
            interval: Duration::from_millis(args.interval_ms.max(20) as u64),
        },
        company_id: adv_transfer::DEFAULT_COMPANY_ID,
        max_image_len: config.max_image_len().min(dfu_app::MAX_IMAGE_LEN),
        status_interval: Duration::from_millis(dfu_app::STATUS_INTERVAL_MS),
        idle_timeout: Duration::from_secs(args.idle_timeout_s),
        linger: Duration::from_secs(2),
        drop: args.drop,
        seed: args.seed,
        bearer: args.bearer,
        // The DK's kernel has the app-update driver, so its DFU app takes app sessions.
        accept_apps: true,
    };
    let pb = bar(0, "{bar:30} {pos}/{len} chunks {msg}");
    let report = ota_hci::receive(&mut hci, &mut staging, &opts, &mut |p| {
        if let Some(pb) = &pb {
            pb.set_length(p.total_chunks as u64);
            pb.set_position(p.received_chunks as u64);
        }
    });
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    let report = report?;
    let Some(info) = report.session else {
        bail!("no transfer was received");
    };
    if let Some(name) = &report.target {
        let mut tbf = vec![0u8; info.image_len as usize];
        staging
            .board
            .qspi
            .read(layout.staging.start, &mut tbf)
            .context("reading the staged TBF back")?;
        return finish_app(&args, &report, info, name, &tbf, &staging.app);
    }
    if report.state != RxState::Complete {
        bail!(
            "the staged image was refused by the update-region's final check ({:?}); nothing written",
            report.state
        );
    }
    let mut image = vec![0u8; info.image_len as usize];
    staging
        .board
        .qspi
        .read(layout.staging.start, &mut image)
        .context("reading the staged image back")?;
    let verified = match &key {
        Some(k) => {
            ota_imgtool::inspect::verify_bytes(&image, k, &ota_image::VerifyPolicy::default())
                .context("the staged image does not verify; nothing written")?;
            true
        }
        None => false,
    };
    std::fs::write(&args.out, &image)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let summary = ReceiveSummary {
        kind: "kernel",
        transport: args.hci.to_string(),
        out: args.out.display().to_string(),
        state: format!("{:?}", report.state).to_lowercase(),
        signature_verified: verified,
        link: LinkFigures::new(&report, &info),
    };
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        cli_output::outln!(
            "received {} bytes in {:.1} s through {}; staged, checked{}; written to {}",
            summary.link.image_bytes,
            summary.link.seconds,
            summary.transport,
            if verified {
                ", signature verified"
            } else {
                " (no --key: signature not checked)"
            },
            summary.out
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct AppReceiveSummary {
    /// Always "app".
    kind: &'static str,
    /// The package name in the staged TBF's header (the target PDU's if the header does not
    /// parse).
    app: String,
    /// The staged TBF's `binary_version`, if its header parses.
    version: Option<u32>,
    /// "installable" (the checks before the kernel's INSTALL passed) or "refused".
    verdict: &'static str,
    reason: Option<String>,
    /// The credential was checked against `--app-key` (else only its presence).
    credential_checked: bool,
    installed_version: Option<u32>,
    transport: String,
    /// Where the TBF was written (only when it passed).
    out: Option<String>,
    #[serde(flatten)]
    link: LinkFigures,
}

/// An app session's end: the checks' verdict reported, the TBF written to `--out` if it passed,
/// an error naming the reason if not (the sender has heard `Rejected`).
fn finish_app(
    args: &ReceiveArgs,
    report: &ota_hci::ReceiveReport,
    info: adv_transfer::SessionInfo,
    target: &str,
    tbf: &[u8],
    check: &crate::receive_app::AppCheck,
) -> anyhow::Result<()> {
    let staged = crate::receive_app::staged_app(tbf);
    let name = staged.as_ref().map_or(target, |a| a.name()).to_string();
    let version = staged.as_ref().map(|a| a.version);
    let refusal = match (report.state, check.verdict) {
        (RxState::Complete, Some(Ok(()))) => None,
        (_, Some(Err(refusal))) => Some(crate::receive_app::refusal_reason(
            refusal,
            args.installed_version,
        )),
        (state, _) => Some(format!("the session ended {state:?}")),
    };
    if refusal.is_none() {
        std::fs::write(&args.out, tbf)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
    }
    let summary = AppReceiveSummary {
        kind: "app",
        app: name.clone(),
        version,
        verdict: if refusal.is_none() {
            "installable"
        } else {
            "refused"
        },
        reason: refusal.clone(),
        credential_checked: check.checks_credential(),
        installed_version: args.installed_version,
        transport: args.hci.to_string(),
        out: refusal.is_none().then(|| args.out.display().to_string()),
        link: LinkFigures::new(report, &info),
    };
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&summary)?);
    }
    let shown = version.map_or(String::new(), |v| format!(" v{v}"));
    if let Some(reason) = refusal {
        let told = if report.state == RxState::Rejected {
            "; the sender was told (Rejected)"
        } else {
            ""
        };
        bail!("refused app {name}{shown}: {reason}{told}; nothing written");
    }
    if !args.json {
        cli_output::outln!(
            "received app {name}{shown} ({} bytes) in {:.1} s through {}; staged, checked{}{}; \
             written to {}",
            summary.link.image_bytes,
            summary.link.seconds,
            summary.transport,
            if summary.credential_checked {
                ", credential verified"
            } else {
                " (no --app-key: credential not checked)"
            },
            args.installed_version
                .map_or(String::new(), |v| format!(", newer than v{v}")),
            args.out.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_sim::signing::Signer;

    #[test]
    fn a_compressed_image_is_announced_as_one() {
        let signer = Signer::new(5).unwrap();
        // Code-like bytes, so that compression pays and the image is written compressed.
        let payload: Vec<u8> = (0..8 * 1024u32)
            .map(|i| [0x00, 0xBF, 0x70, 0x47, (i / 64) as u8][(i % 5) as usize])
            .collect();
        let plain = signer.sign(&payload, (2, 0, 0, 0), 2).unwrap();
        let compressed = signer
            .sign_compressed(&payload, (2, 0, 0, 0), 2, Compression::Lzma2ArmThumb)
            .unwrap();
        assert!(compressed.len() * 4 < plain.len());
        assert_eq!(capabilities_of(&compressed), COMPRESSED);
        assert_eq!(capabilities_of(&plain), 0);
        assert_eq!(capabilities_of(b"not an image"), 0);
    }

    #[test]
    fn a_refused_patch_is_followed_by_the_full_image() {
        use ota_hci::Error;
        assert!(full_image_follows(&Error::WrongBase { running: None }));
        assert!(full_image_follows(&Error::WrongBase {
            running: Some([7; 16])
        }));
        assert!(full_image_follows(&Error::ReceiverRefused {
            state: RxState::Unsupported
        }));
        for state in [
            RxState::TooLarge,
            RxState::Rejected,
            RxState::VersionMismatch,
        ] {
            assert!(
                !full_image_follows(&Error::ReceiverRefused { state }),
                "{state:?}"
            );
        }
        assert!(!full_image_follows(&Error::Image("bad".into())));
    }
}
