//! The whole update on one simulated board: v1 installed, v2 signed, sent over the advertising
//! link into the staging slot through the update-region policy, installed by the bootloader
//! core as a trial, confirmed by the DFU app, and confirmed by the bootloader on the next boot.
use crate::image::kernel_payload;
use crate::transfer::{
    boot_app, run_delta_transfer, CutPlan, LinkParams, Refused, TransferCut, TransferJob,
    TransferProgress, TransferReport,
};
use anyhow::{bail, Context};
use boot_core::{boot, provision, read_status, BootDecision, BootEnv, ResetReason, State};
use boot_nrf::{BackgroundQspi, NRF52840_DK};
use embedded_storage::nor_flash::ReadNorFlash;
use hw_models::SimBoard;
use ota_reconstruct::diff::{make_image_patch, SignedImage};
use serde::Serialize;
use update_region::blocking::BlockingDriver;
use update_region::{Completion, Config, Request, UpdateRegion};

/// The DFU app's identity as the kernel assigns it (its ShortId).
pub const DFU_APP_ID: u32 = 0x0DF0_0001;

/// A phase a power cut can be aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Receiving and staging (the cut reboots the receiver's board).
    Transfer,
    /// The bootloader's install of the staged image.
    Install,
    /// The trial boot: the DFU app's confirm and the bootloader's confirming boot.
    Confirm,
}

/// Cut power after `after_ops` program/erase operations of `phase` (the next one fails before it
/// starts), or inside that operation when `torn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    pub phase: Phase,
    pub after_ops: u64,
    pub torn: bool,
}

impl std::str::FromStr for Cut {
    type Err = anyhow::Error;
    /// `PHASE:N` or `PHASE:N:torn`, PHASE one of transfer, install, confirm.
    fn from_str(s: &str) -> anyhow::Result<Cut> {
        let mut parts = s.split(':');
        let phase = match parts.next().unwrap_or("") {
            "transfer" => Phase::Transfer,
            "install" => Phase::Install,
            "confirm" => Phase::Confirm,
            other => bail!("unknown phase `{other}` in cut `{s}` (transfer, install, confirm)"),
        };
        let after_ops = parts
            .next()
            .context("a cut needs an operation count: PHASE:N")?
            .parse::<u64>()
            .with_context(|| format!("operation count in cut `{s}`"))?;
        let torn = match parts.next() {
            None => false,
            Some("torn") => true,
            Some(x) => bail!("unknown cut modifier `{x}` (only `torn`)"),
        };
        Ok(Cut {
            phase,
            after_ops,
            torn,
        })
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct DemoParams {
    pub link: LinkParams,
    /// The new kernel's raw binary; `None`: a generated kernel-sized one.
    pub payload: Option<Vec<u8>>,
    /// Size of the generated payload.
    pub payload_len: usize,
    pub seed: u64,
    pub cuts: Vec<Cut>,
    /// Sign v2 with a key the bootloader does not trust (it must refuse the image).
    pub untrusted_key: bool,
    /// The running kernel's raw binary (v1): the board runs it, installed by an earlier update
    /// so the bootloader's journal names it, and v2 travels as a delta patch against it (or, if
    /// the board refuses the patch, as the full image).
    pub base: Option<Vec<u8>>,
    /// Send v2 compressed (imgtool's format); the kernel decodes it into the staging slot.
    pub compression: Option<ota_image::compressed::Compression>,
}

/// How the board came to run [`DemoParams::base`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BaseOrigin {
    /// Installed by an earlier update: the bootloader's journal names it, the receiver says it
    /// runs it and takes a patch against it.
    #[default]
    Updated,
    /// Flashed (by a debugger, or a kernel that cannot read the journal): the receiver cannot
    /// tell what it runs and refuses a patch (`RxState::WrongBase`); the full image follows.
    Flashed,
}

impl Default for DemoParams {
    fn default() -> Self {
        DemoParams {
            link: LinkParams::default(),
            payload: None,
            payload_len: 176 * 1024,
            seed: 1,
            cuts: Vec::new(),
            untrusted_key: false,
            base: None,
            compression: None,
        }
    }
}

/// Where the demo is, for a display.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    Phase(&'a str),
    Transfer(TransferProgress),
}

/// The summary (`--json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    pub installed_version: String,
    pub final_version: String,
    pub confirmed: bool,
    /// The bootloader's status record at the end (state and reason).
    pub bootloader_outcome: String,
    pub staged_image_verified: bool,
    pub signature_algorithm: String,
    pub image_bytes: usize,
    pub payload_bytes: usize,
    /// What went over the air: "full" (the signed image), "compressed" (the compressed image
    /// the kernel decoded) or "delta" (a patch the kernel rebuilt the image from).
    pub sent: String,
    /// Bytes of what went over the air (the image, or the patch).
    pub bytes_on_air_image: usize,
    /// Why a delta patch (or a compressed image) was asked for but the full image sent: the
    /// receiver's refusal.
    pub delta_refused: Option<String>,
    pub loss: f64,
    pub seed: u64,
    pub advertising_events: u64,
    pub adv_data_bytes_on_air: u64,
    pub pdu_bytes_on_air_all_channels: u64,
    pub retransmissions: u64,
    pub duplicates_ignored: u32,
    pub receiver_reboots: u32,
    /// Program/erase operations during the transfer (the range `--cut transfer:N` addresses).
    pub transfer_flash_ops: u64,
    pub hostile_advertisements: u64,
    pub ignored_advertisements: u32,
    pub block_crc_failures: u32,
    /// From the first advertisement until the boot request was written.
    pub transfer_simulated_s: f64,
    /// Of `transfer_simulated_s`, the kernel's rebuild of the image from a delta patch or a
    /// compressed image (0 when the full image was sent); the rest is receiving.
    pub rebuild_simulated_s: f64,
    pub goodput_bytes_per_s: f64,
    pub bearer_limit_bytes_per_s: f64,
    pub bearer_limit_arithmetic: String,
    pub install_simulated_s: f64,
    pub nvmc_limit_s: f64,
    pub nvmc_limit_arithmetic: String,
    pub boots: u32,
    pub power_cuts: u32,
    pub boot_request_sequence: u32,
}

/// How the demo signs and checks images; see [`crate::signing`].
pub use crate::signing::Signer;

/// NVMC physical limit for installing `payload` bytes: page erases plus word writes
/// (nRF52840 PS maxima, `hw_models::nvmc::{T_ERASEPAGE_US, T_WRITE_US}`).
pub fn nvmc_limit_s(payload: usize) -> (f64, String) {
    use hw_models::nvmc::{erase_and_write_s, T_ERASEPAGE_US, T_WRITE_US};
    let pages = payload.div_ceil(4096);
    let words = payload.div_ceil(4);
    let s = erase_and_write_s(pages as u64, words as u64);
    let erase_ms = T_ERASEPAGE_US / 1000;
    (
        s,
        format!("{pages} pages × {erase_ms} ms + {words} words × {T_WRITE_US} µs = {s:.2} s"),
    )
}

fn version_string(image: &[u8]) -> String {
    if image.len() < 28 {
        return "unknown".into();
    }
    format!(
        "{}.{}.{}+{}",
        image[20],
        image[21],
        u16::from_le_bytes([image[22], image[23]]),
        u32::from_le_bytes([image[24], image[25], image[26], image[27]])
    )
}

/// Run the whole update; `on_event` sees progress.
pub fn run_demo(
    params: &DemoParams,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<DemoReport> {
    run_demo_on(params, BaseOrigin::Updated, on_event)
}

/// [`run_demo`] on a board that came to run `params.base` as `origin` says.
pub fn run_demo_on(
    params: &DemoParams,
    origin: BaseOrigin,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<DemoReport> {
    let mut board = SimBoard::new(params.seed);
    let signer = Signer::new(params.seed)?;

    on_event(Event::Phase("provision v1"));
    let v1 = provision_v1(&mut board, &signer, params)?;
    if params.base.is_some() && origin == BaseOrigin::Updated {
        on_event(Event::Phase("install v1"));
        preinstall(&mut board, &signer, params, &v1)?;
    }

    on_event(Event::Phase("sign v2"));
    let v2 = sign_v2(&signer, params)?;

    // Transfer: the DFU app receives and stages; finalize writes the boot request.
    on_event(Event::Phase("transfer"));
    let (t, sequence, sent) = send_v2(&mut board, &signer, params, &v1, &v2, on_event)?;
    let mut tally = Tally {
        boots: 1,
        power_cuts: t.receiver_reboots,
    };

    // Reboot into the bootloader: verify, back up, install, trial boot.
    on_event(Event::Phase("install"));
    let (decision, install_s) = install(&mut board, &signer, params, &mut tally)?;
    // The trial kernel runs; the DFU app confirms; the next boot makes it permanent. An image
    // the bootloader refused is not booted: the old kernel runs on and nothing is confirmed.
    let trial = decision.trial;
    if trial {
        on_event(Event::Phase("confirm"));
        confirm(&mut board, &signer, params, &mut tally)?;
    }
    board.power.restore();
    let end = outcome(&mut board, trial, &v1, &v2)?;

    let (nvmc_s, nvmc_text) = nvmc_limit_s(v2.payload.len());
    let p = &params.link;
    Ok(DemoReport {
        installed_version: version_string(&v1.image),
        final_version: end.final_version,
        confirmed: end.confirmed,
        bootloader_outcome: end.bootloader,
        staged_image_verified: trial,
        signature_algorithm: signer.algorithm().into(),
        image_bytes: v2.image.len(),
        payload_bytes: v2.payload.len(),
        sent: sent.kind.into(),
        bytes_on_air_image: sent.bytes,
        delta_refused: sent.delta_refused,
        loss: p.loss,
        seed: params.seed,
        advertising_events: t.events,
        adv_data_bytes_on_air: t.adv_data_bytes,
        pdu_bytes_on_air_all_channels: t.air_bytes,
        retransmissions: t.tx.retransmissions,
        duplicates_ignored: t.rx.duplicates,
        receiver_reboots: t.receiver_reboots,
        transfer_flash_ops: t.flash_ops,
        hostile_advertisements: t.hostile_pdus,
        ignored_advertisements: t.rx.ignored + t.rx.foreign,
        block_crc_failures: t.rx.crc_failures,
        transfer_simulated_s: t.sim_time_s,
        rebuild_simulated_s: t.rebuild_s,
        goodput_bytes_per_s: t.goodput_bytes_per_s,
        bearer_limit_bytes_per_s: t.bearer_limit_bytes_per_s,
        bearer_limit_arithmetic: bearer_limit_arithmetic(p),
        install_simulated_s: install_s,
        nvmc_limit_s: nvmc_s,
        nvmc_limit_arithmetic: nvmc_text,
        boots: tally.boots,
        power_cuts: tally.power_cuts,
        boot_request_sequence: sequence,
    })
}

/// A kernel as raw payload and as the signed image of it.
struct Kernel {
    payload: Vec<u8>,
    image: Vec<u8>,
}

/// What the transfer sent.
struct Sent {
    kind: &'static str,
    bytes: usize,
    delta_refused: Option<String>,
}

/// Boots of the bootloader and power cuts so far (the report's `boots` and `power_cuts`).
struct Tally {
    boots: u32,
    power_cuts: u32,
}

/// What the board holds once the update is over.
struct Outcome {
    /// A trial was booted and the bootloader's record says confirmed.
    confirmed: bool,
    /// The bootloader's status record: state and reason.
    bootloader: String,
    /// The version of the kernel in the kernel slot (v1, v2 or unknown).
    final_version: String,
}

/// The update-region configuration of the DK: the DFU app owns the staging slot.
fn dk_config() -> Config {
    let layout = NRF52840_DK;
    Config {
        owner: DFU_APP_ID,
        staging_base: layout.staging.start,
        staging_len: layout.staging.len,
        request_base: layout.request_sector.start,
    }
}

/// A new board with a signed v1 (nine tenths of the v2 size) in its kernel slot, booted once.
fn provision_v1(
    board: &mut SimBoard,
    signer: &Signer,
    params: &DemoParams,
) -> anyhow::Result<Kernel> {
    let layout = NRF52840_DK;
    let payload = match &params.base {
        Some(base) if base.len() > layout.kernel_slot.len as usize => bail!(
            "base of {} bytes does not fit the {} KiB kernel slot",
            base.len(),
            layout.kernel_slot.len / 1024
        ),
        Some(base) => base.clone(),
        None => kernel_payload(
            params.payload_len.min(layout.kernel_slot.len as usize) * 9 / 10,
            params.seed ^ 0x51,
        ),
    };
    let image = signer.sign(&payload, (1, 0, 0, 0), 1)?;
    provision(&layout, &mut board.internal, &payload)
        .map_err(|e| anyhow::anyhow!("provision v1: {e:?}"))?;
    let first = boot_once(board, signer)?.context("first boot")?;
    if first.trial {
        bail!("a fresh board booted a trial");
    }
    Ok(Kernel { payload, image })
}

/// v2: the given payload or a generated one, signed by the trusted key (or, with
/// `untrusted_key`, by one the bootloader does not know).
fn sign_v2(signer: &Signer, params: &DemoParams) -> anyhow::Result<Kernel> {
    let kernel_slot = NRF52840_DK.kernel_slot;
    let payload = match &params.payload {
        Some(p) => p.clone(),
        None => kernel_payload(params.payload_len, params.seed),
    };
    if payload.len() > kernel_slot.len as usize {
        bail!(
            "payload of {} bytes does not fit the {} KiB kernel slot",
            payload.len(),
            kernel_slot.len / 1024
        );
    }
    let image = if params.untrusted_key {
        Signer::new(params.seed ^ 0xBAD)?.sign(&payload, (2, 0, 0, 0), 2)?
    } else {
        signer.sign(&payload, (2, 0, 0, 0), 2)?
    };
    Ok(Kernel { payload, image })
}

/// The DFU app receives `sent` over the link and stages it (cuts of the transfer phase reboot
/// the board): `image` itself, its compressed image, or (with `base`, the id of the image it
/// applies to) a patch, which the kernel rebuilds `image` from; returns the transfer's report
/// and the boot request's sequence, once the staging slot holds exactly `image`.
fn transfer_v2(
    board: &mut SimBoard,
    signer: &Signer,
    params: &DemoParams,
    image: &[u8],
    sent: &[u8],
    base: Option<[u8; 16]>,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<(TransferReport, u32)> {
    let cuts = phase_cuts(params, Phase::Transfer);
    // A fallback after a refused patch is a new session.
    let session = 0x7000_0000 | ((params.seed as u32 & 0x0FFF_FFFF) ^ u32::from(base.is_some()));
    let job = TransferJob {
        config: dk_config(),
        owner: DFU_APP_ID,
        image: sent,
        session,
        params: &params.link,
        seed: params.seed,
        cuts: &cuts,
        update_key: Some(*signer.public_key().raw()),
    };
    let t = run_delta_transfer(board, &job, base, &mut |p| on_event(Event::Transfer(p)))?;
    let Some(Completion::Finalized { sequence, .. }) = t.finalized else {
        bail!("the transfer ended without a finalized image");
    };
    let mut staged = vec![0u8; image.len()];
    board
        .qspi
        .read(NRF52840_DK.staging.start, &mut staged)
        .context("read staging")?;
    if staged != image {
        bail!("the staged image differs from the one sent");
    }
    Ok((t, sequence))
}

/// v1 as an earlier update left it: staged whole (untimed, no radio), installed as a trial and
/// confirmed, so the bootloader's journal names it and the board can take a patch against it.
fn preinstall(
    board: &mut SimBoard,
    signer: &Signer,
    params: &DemoParams,
    v1: &Kernel,
) -> anyhow::Result<()> {
    stage_whole(board, &v1.image).context("staging v1")?;
    // Installed and confirmed with no power cut: the demo's cuts are for v2.
    let quiet = DemoParams {
        cuts: Vec::new(),
        ..params.clone()
    };
    let mut tally = Tally {
        boots: 0,
        power_cuts: 0,
    };
    board.power_cycle().context("reboot")?;
    let (decision, _) = install(board, signer, &quiet, &mut tally)?;
    if !decision.trial {
        bail!("the bootloader did not install v1");
    }
    confirm(board, signer, &quiet, &mut tally)
}

/// v2 over the air: the full image, with `params.compression` its compressed image, or with
/// `params.base` a delta patch against v1; the kernel decodes or rebuilds the image from
/// either. If the board refuses the patch (it runs another image) the full image follows in a
/// new session. Returns the transfer, the boot request's sequence and what was sent.
fn send_v2(
    board: &mut SimBoard,
    signer: &Signer,
    params: &DemoParams,
    v1: &Kernel,
    v2: &Kernel,
    on_event: &mut dyn FnMut(Event<'_>),
) -> anyhow::Result<(TransferReport, u32, Sent)> {
    let mut sent = Sent {
        kind: "full",
        bytes: v2.image.len(),
        delta_refused: None,
    };
    let base = params.base.as_ref().map(|_| &v1.image[..]);
    let smaller = smaller_form(&v2.image, base, params.compression, |compression| {
        // Signed as sign_v2 signed v2 (its plain image is v2's, byte for byte).
        let untrusted;
        let signer = if params.untrusted_key {
            untrusted = Signer::new(params.seed ^ 0xBAD)?;
            &untrusted
        } else {
            signer
        };
        signer.sign_compressed(&v2.payload, (2, 0, 0, 0), 2, compression)
    })?;
    let (t, sequence) = match smaller {
        None => transfer_v2(board, signer, params, &v2.image, &v2.image, None, on_event)?,
        Some(Smaller { kind, bytes, base }) => {
            match transfer_v2(board, signer, params, &v2.image, &bytes, base, on_event) {
                Ok(done) => {
                    sent.kind = kind;
                    sent.bytes = bytes.len();
                    done
                }
                Err(e) => {
                    let refused = full_image_instead(e)?;
                    sent.delta_refused = Some(refused.to_string());
                    on_event(Event::Phase("full image"));
                    transfer_v2(board, signer, params, &v2.image, &v2.image, None, on_event)?
                }
            }
        }
    };
    Ok((t, sequence, sent))
}

/// What goes on air instead of a full signed image ([`smaller_form`]).
#[derive(Debug)]
pub struct Smaller {
    /// `"compressed"` or `"delta"`.
    pub kind: &'static str,
    /// The compressed image, or the patch.
    pub bytes: Vec<u8>,
    /// A patch's base: the id of the signed image it was made against.
    pub base: Option<[u8; 16]>,
}

/// What goes on air instead of the full signed image `new`, if anything (`None`: the full
/// image): with `base` (the signed image the device runs) a delta patch from it to `new`; with
/// `compression` the compressed image `sign_compressed` signs of `new`'s payload, which must be
/// signed as `new` is (its plain image is then `new`, byte for byte). A compressed image that
/// compression would not make smaller is written plain (imgtool's rule): then `None`. The
/// simulator's choice (`demo --base`, `--compression`) and the whole-device emulation's
/// (`tock-ota emulate system`).
pub fn smaller_form(
    new: &[u8],
    base: Option<&[u8]>,
    compression: Option<ota_image::compressed::Compression>,
    sign_compressed: impl FnOnce(ota_image::compressed::Compression) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Option<Smaller>> {
    match (base, compression) {
        (Some(_), Some(_)) => {
            bail!("--base and --compression are two ways of sending v2: pick one")
        }
        (None, None) => Ok(None),
        (None, Some(compression)) => {
            let bytes = sign_compressed(compression)?;
            let flags = ota_image::parse_image(&mut &bytes[..])
                .map_err(|e| anyhow::anyhow!("the compressed image does not parse: {e:?}"))?
                .header
                .flags;
            Ok(
                (flags & ota_image::flags::COMPRESSED_LZMA2 != 0).then_some(Smaller {
                    kind: "compressed",
                    bytes,
                    base: None,
                }),
            )
        }
        (Some(base), None) => Ok(Some(Smaller {
            kind: "delta",
            bytes: make_image_patch(base, new)?,
            base: Some(SignedImage::parse(base, "the base")?.id()),
        })),
    }
}

/// Whether a receiver's refusal of a patch or a compressed image is answered with the full
/// image (in a new session): it runs another image than the patch's base or cannot tell
/// ([`RxState::WrongBase`]), or it does not take that kind of transfer
/// ([`RxState::Unsupported`], a receiver older than the capability). Other refusals (too
/// large, rejected, version) would refuse the full image as well.
///
/// [`RxState::WrongBase`]: adv_transfer::RxState::WrongBase
/// [`RxState::Unsupported`]: adv_transfer::RxState::Unsupported
pub fn falls_back_to_full_image(state: adv_transfer::RxState) -> bool {
    matches!(
        state,
        adv_transfer::RxState::WrongBase | adv_transfer::RxState::Unsupported
    )
}

/// The refusal in `e` if the full image is to follow it, else `e` itself.
fn full_image_instead(e: anyhow::Error) -> anyhow::Result<Refused> {
    match e.downcast::<Refused>() {
        Ok(refused) if falls_back_to_full_image(refused.state) => Ok(refused),
        Ok(refused) => Err(refused.into()),
        Err(e) => Err(e),
    }
}

/// The signed `image` staged whole in the DK's staging slot through the update-region policy
/// (untimed, no radio) and finalized: the boot request names it, and the next boot installs it
/// as a trial. Also how the whole-device emulation's device comes to run its base
/// (`tock-ota emulate system --base`).
pub fn stage_whole(board: &mut SimBoard, image: &[u8]) -> anyhow::Result<()> {
    let mut policy = UpdateRegion::new(dk_config()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut driver = BlockingDriver::new(&mut policy, &mut board.qspi);
    let fail = |e| anyhow::anyhow!("{e}");
    driver.start().map_err(fail)?;
    let image_len = image.len() as u32;
    let tag = [0xFF; update_region::TAG_LEN];
    driver
        .run(DFU_APP_ID, Request::Begin { tag, image_len }, &[], &mut [])
        .map_err(fail)?;
    for (k, block) in image
        .chunks(update_region::SECTOR_SIZE as usize)
        .enumerate()
    {
        let offset = k as u32 * update_region::SECTOR_SIZE;
        driver
            .run(DFU_APP_ID, Request::Erase { offset }, &[], &mut [])
            .map_err(fail)?;
        driver.write(DFU_APP_ID, offset, block).map_err(fail)?;
    }
    driver
        .run(DFU_APP_ID, Request::Finalize, &[], &mut [])
        .map_err(fail)?;
    Ok(())
}

/// Reset into the bootloader and boot until it decides (power cuts of the install phase
/// interrupt it); returns its decision and the simulated install time in seconds.
fn install(
    board: &mut SimBoard,
    signer: &Signer,
    params: &DemoParams,
    tally: &mut Tally,
) -> anyhow::Result<(BootDecision, f64)> {
    board.power_cycle().context("reboot")?;
    let t_install = board.clock.now_us();
    let mut plan = CutPlan::new(board, phase_cuts(params, Phase::Install));
    let decision = loop {
        tally.boots += 1;
        if tally.boots > 20 {
            bail!("the bootloader did not settle");
        }
        match boot_once(board, signer)? {
            Some(d) => break d,
            None => {
                tally.power_cuts += 1;
                plan.fired();
                plan.arm(board);
            }
        }
    };
    Ok((decision, (board.clock.now_us() - t_install) as f64 / 1e6))
}

/// The trial: the DFU app confirms on the new kernel, then a reset into the bootloader makes it
/// permanent; power cuts of the confirm phase land in either and both are run again.
fn confirm(
    board: &mut SimBoard,
    signer: &Signer,
    params: &DemoParams,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut plan = CutPlan::new(board, phase_cuts(params, Phase::Confirm));
    loop {
        if tally.boots > 40 {
            bail!("the trial was never confirmed");
        }
        let (confirmed_now, app_log) = app_boot(board, dk_config())?;
        if !board.power.is_on() {
            // Cut while the app confirmed: the board resets into the bootloader.
            tally.power_cuts += 1;
            plan.fired();
        } else if confirmed_now.is_none() {
            bail!(
                "the DFU app did not confirm the trial: {}",
                app_log.join("; ")
            );
        }
        // Reboot (planned or after the cut) into the bootloader.
        board.power_cycle()?;
        plan.arm(board);
        tally.boots += 1;
        match boot_once(board, signer)? {
            Some(d) if !d.trial => return Ok(()),
            Some(_) => {}
            None => {
                tally.power_cuts += 1;
                plan.fired();
                plan.arm(board);
            }
        }
    }
}

/// The bootloader's record and the kernel slot's contents at the end; `trial`: the bootloader
/// booted v2 as a trial (else nothing can have been confirmed).
fn outcome(board: &mut SimBoard, trial: bool, v1: &Kernel, v2: &Kernel) -> anyhow::Result<Outcome> {
    let layout = NRF52840_DK;
    let status =
        read_status(&mut board.qspi, layout.journal).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let confirmed = trial && status.is_some_and(|s| s.state == State::Confirmed);
    let bootloader = match status {
        Some(s) if s.reason != boot_core::Reason::None => format!("{:?} ({:?})", s.state, s.reason),
        Some(s) => format!("{:?}", s.state),
        None => "nothing recorded".into(),
    };
    let mut kernel = vec![0u8; v2.payload.len()];
    board
        .internal
        .read(layout.kernel_slot.start, &mut kernel)
        .context("read kernel slot")?;
    let common = v1.payload.len().min(kernel.len());
    let final_version = if kernel == v2.payload {
        version_string(&v2.image)
    } else if kernel[..common] == v1.payload[..common] {
        version_string(&v1.image)
    } else {
        "unknown".into()
    };
    Ok(Outcome {
        confirmed,
        bootloader,
        final_version,
    })
}

/// How the bearer limit is reached, for the report.
fn bearer_limit_arithmetic(p: &LinkParams) -> String {
    format!(
        "{} B/event (31 B AdvData - 4 B AD framing) x {:.1} events/s (advInterval {} ms + mean advDelay {} ms) = {:.0} B/s",
        adv_transfer::wire::PDU_MAX,
        p.events_per_s(),
        p.adv_interval_ms,
        p.adv_delay_max_ms / 2.0,
        p.bearer_limit_bytes_per_s()
    )
}

fn phase_cuts(params: &DemoParams, phase: Phase) -> Vec<TransferCut> {
    params
        .cuts
        .iter()
        .filter(|c| c.phase == phase)
        .map(|c| TransferCut {
            after_ops: c.after_ops,
            torn: c.torn,
        })
        .collect()
}

/// One run of the bootloader core; `None` if the power failed during it (the board is then
/// power-cycled, ready for the next boot).
fn boot_once(board: &mut SimBoard, signer: &Signer) -> anyhow::Result<Option<BootDecision>> {
    // The firmware's checker, with the host's P-256 verifier in place of the Cortex-M4 one.
    let checker = boot_core::OtaChecker {
        key: signer.public_key(),
        verifier: ota_image::RustCryptoVerifier,
    };
    let r = boot(&mut BootEnv {
        layout: &NRF52840_DK,
        internal: &mut board.internal,
        qspi: &mut BackgroundQspi(&mut board.qspi),
        checker: &checker,
        reset_reason: ResetReason::default(),
    });
    if !board.power.is_on() {
        board.power_cycle().context("power cycle")?;
        return Ok(None);
    }
    match r {
        Ok(d) => Ok(Some(d)),
        Err(e) => bail!("bootloader error: {e:?}"),
    }
}

/// The DFU app after a trial boot: the kernel's start-up scan, then the app's start-up (confirm,
/// resume), halted once it listens. Returns the confirmed sequence (`None` if the power failed
/// first) and the app's console.
fn app_boot(board: &mut SimBoard, config: Config) -> anyhow::Result<(Option<u32>, Vec<String>)> {
    let (_, record) = boot_app(board, config, DFU_APP_ID, None, None, &mut |_, _| {})?;
    Ok((record.confirmed, record.log))
}
