//! `tock-ota bench transfer --kernel OLD.bin [--kernel-changed NEW.bin]`: what one update of a
//! real kernel costs on air, sent three ways (issue #14's targets: a full update of the DK
//! kernel in at most 55 s, a small change in at most 8 s):
//!
//! - raw: the signed image, the whole update on the simulated board (`tock-ota demo`);
//! - compressed: the same image signed with `--compression lzma2armthumb` (imgtool's format),
//!   the whole update with the kernel decoding it into the staging slot (`tock-ota demo
//!   --compression`);
//! - delta: a patch from OLD to NEW (`tock-ota delta`), the whole update with the board running
//!   OLD and the kernel rebuilding NEW from the patch (`tock-ota demo --base`);
//! - compressed over each chained bearer at 2M PHY (issue #19's target: the DK kernel,
//!   compressed, in at most 4 s over the fastest bearer): the compressed image offered on that
//!   bearer alone, picked by the DFU app's loop, staged in the received-stream area and decoded
//!   into the staging slot at finalize (`ota_sim::transfer::run_bearer_transfer`). These runs end
//!   at the boot request: the install and the trial boot are the legacy rows' own.
use ota_image::compressed::Compression;
use ota_sim::system::{run_demo, DemoParams, DemoReport};
use serde::Serialize;

/// Issue #14's targets for receiving the update, in seconds at 0 % loss: a full update of the
/// DK kernel (sent compressed) and a small change (sent as a patch).
pub const TARGET_FULL_S: f64 = 55.0;
pub const TARGET_SMALL_CHANGE_S: f64 = 8.0;
/// Issue #19's target: the DK kernel, compressed, over the fastest bearer, in seconds.
pub const TARGET_FASTEST_BEARER_S: f64 = 4.0;

#[derive(Serialize, Debug, Clone)]
pub struct KernelRow {
    /// raw, compressed or delta.
    pub sent: String,
    /// The signed (plain) image of the new kernel.
    pub image_bytes: usize,
    /// What went over the air: the image, the compressed image or the patch.
    pub bytes_on_air_image: usize,
    /// From the first advertisement until the boot request was written.
    pub transfer_simulated_s: f64,
    /// Of that, the kernel's decoding or rebuild of the image from what was sent.
    pub rebuild_simulated_s: f64,
    /// The rest: receiving.
    pub receiving_s: f64,
    /// The whole update ended with the new kernel confirmed; `None` for the chained-bearer rows,
    /// which end at the boot request.
    pub confirmed: Option<bool>,
    /// The target for `receiving_s`, if this row has one.
    pub target_s: Option<f64>,
}

fn row(sent: &str, r: &DemoReport, target_s: Option<f64>) -> KernelRow {
    KernelRow {
        sent: sent.into(),
        image_bytes: r.image_bytes,
        bytes_on_air_image: r.bytes_on_air_image,
        transfer_simulated_s: r.transfer_simulated_s,
        rebuild_simulated_s: r.rebuild_simulated_s,
        receiving_s: r.transfer_simulated_s - r.rebuild_simulated_s,
        confirmed: Some(r.confirmed),
        target_s,
    }
}

/// The rows for `new` (a raw kernel binary), and the delta row when `old` is given.
pub fn measure(new: &[u8], old: Option<&[u8]>, seed: u64) -> anyhow::Result<Vec<KernelRow>> {
    let params = DemoParams {
        payload: Some(new.to_vec()),
        seed,
        ..DemoParams::default()
    };
    let mut rows = Vec::new();
    let raw = run_demo(&params, &mut |_| {})?;
    rows.push(row("raw", &raw, None));

    let compressed = run_demo(
        &DemoParams {
            compression: Some(Compression::Lzma2ArmThumb),
            ..params.clone()
        },
        &mut |_| {},
    )?;
    rows.push(row(
        "compressed (lzma2armthumb)",
        &compressed,
        Some(TARGET_FULL_S),
    ));

    if let Some(old) = old {
        let delta = run_demo(
            &DemoParams {
                base: Some(old.to_vec()),
                ..params
            },
            &mut |_| {},
        )?;
        if delta.sent != "delta" {
            anyhow::bail!(
                "the board refused the patch: {}",
                delta.delta_refused.unwrap_or_default()
            );
        }
        rows.push(row("delta", &delta, Some(TARGET_SMALL_CHANGE_S)));
    }
    rows.extend(bearer_rows(new, seed)?);
    Ok(rows)
}

/// The compressed image of `new` over extended and periodic advertising at 2M PHY.
fn bearer_rows(new: &[u8], seed: u64) -> anyhow::Result<Vec<KernelRow>> {
    use adv_transfer::bearer::{Bearer, Phy};
    let signer = ota_sim::signing::Signer::new(seed)?;
    let image = signer.sign_compressed(new, (2, 0, 0, 0), 2, Compression::Lzma2ArmThumb)?;
    let plain_len = signer.sign(new, (2, 0, 0, 0), 2)?.len();
    let mut rows = Vec::new();
    for bearer in [Bearer::Extended(Phy::Le2M), Bearer::Periodic(Phy::Le2M)] {
        let r = crate::transfer::on_bearer(
            &image,
            bearer,
            0.0,
            Default::default(),
            None,
            0x4B45_0000 | seed as u32,
            seed,
        )?;
        rows.push(KernelRow {
            sent: format!("compressed, {}", bearer.name()),
            image_bytes: plain_len,
            bytes_on_air_image: image.len(),
            transfer_simulated_s: r.sim_time_s,
            rebuild_simulated_s: r.rebuild_s,
            receiving_s: r.sim_time_s - r.rebuild_s,
            confirmed: None,
            target_s: Some(TARGET_FASTEST_BEARER_S),
        });
    }
    Ok(rows)
}

pub fn print(rows: &[KernelRow]) {
    cli_output::outln!(
        "{:<28} {:>9} {:>9} {:>11} {:>10} {:>9} {:>10}  {}",
        "kernel update sent as",
        "image B",
        "on air B",
        "transfer s",
        "rebuild s",
        "receive s",
        "confirmed",
        "target (receiving)"
    );
    for r in rows {
        let target = match r.target_s {
            Some(t) if r.receiving_s <= t => format!("<= {t:.0} s: met"),
            Some(t) => format!("<= {t:.0} s: MISSED by {:.1} s", r.receiving_s - t),
            None => String::new(),
        };
        cli_output::outln!(
            "{:<28} {:>9} {:>9} {:>11.1} {:>10.1} {:>9.1} {:>10}  {}",
            r.sent,
            r.image_bytes,
            r.bytes_on_air_image,
            r.transfer_simulated_s,
            r.rebuild_simulated_s,
            r.receiving_s,
            match r.confirmed {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "(request)",
            },
            target
        );
    }
}
