//! `tock-ota bench transfer --kernel OLD.bin [--kernel-changed NEW.bin]`: what one update of a
//! real kernel costs on air, sent three ways (issue #14's targets: a full update of the DK
//! kernel in at most 55 s, a small change in at most 8 s):
//!
//! - raw: the signed image, the whole update on the simulated board (`tock-ota demo`);
//! - compressed: the same image signed with `--compression lzma2armthumb` (imgtool's format),
//!   transferred and staged (the simulated kernel does not run the device's decoder yet, so
//!   this row stops at the staged image);
//! - delta: a patch from OLD to NEW (`tock-ota delta`), the whole update with the board running
//!   OLD and the kernel rebuilding NEW from the patch (`tock-ota demo --base`).
use ota_image::compressed::Compression;
use ota_image::ImageVersion;
use ota_imgtool::compress::sign_compressed;
use ota_imgtool::sign::SignOptions;
use ota_sim::system::{run_demo, DemoParams};
use ota_sim::transfer::{run_transfer, LinkParams, TransferJob};
use p256::ecdsa::SigningKey;
use serde::Serialize;

#[derive(Serialize, Debug, Clone)]
pub struct KernelRow {
    /// raw, compressed or delta.
    pub sent: String,
    /// The signed (plain) image of the new kernel.
    pub image_bytes: usize,
    /// What went over the air: the image, the compressed image or the patch.
    pub bytes_on_air_image: usize,
    /// From the first advertisement until the boot request (or, compressed, the staged image's
    /// check) was written.
    pub transfer_simulated_s: f64,
    /// Of that, the kernel's rebuild of the image from a patch.
    pub rebuild_simulated_s: f64,
    /// The rest: receiving.
    pub receiving_s: f64,
    /// The whole update ended with the new kernel confirmed (`None`: not run that far).
    pub confirmed: Option<bool>,
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
    rows.push(KernelRow {
        sent: "raw".into(),
        image_bytes: raw.image_bytes,
        bytes_on_air_image: raw.bytes_on_air_image,
        transfer_simulated_s: raw.transfer_simulated_s,
        rebuild_simulated_s: 0.0,
        receiving_s: raw.transfer_simulated_s,
        confirmed: Some(raw.confirmed),
    });

    let key = SigningKey::from_slice(&[0x42; 32])?;
    let opts = SignOptions {
        version: ImageVersion {
            major: 2,
            ..ImageVersion::default()
        },
        security_counter: Some(2),
        ..SignOptions::default()
    };
    let compressed = sign_compressed(new, &opts, &key, Compression::Lzma2ArmThumb)?;
    let link = LinkParams::default();
    let job = TransferJob {
        config: update_region::Config::nrf52840dk(1),
        owner: 1,
        image: &compressed.image,
        session: 0x5EED_C000 | seed as u32,
        params: &link,
        seed,
        cuts: &[],
    };
    let t = run_transfer(&mut hw_models::SimBoard::new(seed), &job, &mut |_| {})?;
    rows.push(KernelRow {
        sent: "compressed (lzma2armthumb)".into(),
        image_bytes: raw.image_bytes,
        bytes_on_air_image: compressed.image.len(),
        transfer_simulated_s: t.sim_time_s,
        rebuild_simulated_s: 0.0,
        receiving_s: t.sim_time_s,
        confirmed: None,
    });

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
        rows.push(KernelRow {
            sent: "delta".into(),
            image_bytes: delta.image_bytes,
            bytes_on_air_image: delta.bytes_on_air_image,
            transfer_simulated_s: delta.transfer_simulated_s,
            rebuild_simulated_s: delta.rebuild_simulated_s,
            receiving_s: delta.transfer_simulated_s - delta.rebuild_simulated_s,
            confirmed: Some(delta.confirmed),
        });
    }
    Ok(rows)
}

pub fn print(rows: &[KernelRow]) {
    cli_output::outln!(
        "{:<28} {:>9} {:>9} {:>11} {:>10} {:>9} {:>10}",
        "kernel update sent as",
        "image B",
        "on air B",
        "transfer s",
        "rebuild s",
        "receive s",
        "confirmed"
    );
    for r in rows {
        cli_output::outln!(
            "{:<28} {:>9} {:>9} {:>11.1} {:>10.1} {:>9.1} {:>10}",
            r.sent,
            r.image_bytes,
            r.bytes_on_air_image,
            r.transfer_simulated_s,
            r.rebuild_simulated_s,
            r.receiving_s,
            match r.confirmed {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "(staged)",
            }
        );
    }
}
