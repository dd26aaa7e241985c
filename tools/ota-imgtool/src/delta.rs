//! `tock-ota delta`: a patch that rebuilds a new signed image on a device from the kernel it
//! runs (format and the device's reconstruction step: `libraries/ota-reconstruct`).
use std::path::PathBuf;

use anyhow::Context;
use ota_reconstruct::diff::{make_image_patch, SignedImage};

#[derive(clap::Args, Debug)]
pub struct DeltaArgs {
    /// The signed image the device runs: the patch's base is its payload, as installed in the
    /// kernel slot.
    #[arg(long)]
    pub base: PathBuf,
    /// The new signed image (header and TLVs travel in the patch).
    pub new: PathBuf,
    /// Where to write the patch.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DeltaArgs) -> anyhow::Result<()> {
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let (old, new) = (read(&args.base)?, read(&args.new)?);
    let patch = make_image_patch(&old, &new)?;
    std::fs::write(&args.output, &patch)
        .with_context(|| format!("writing {}", args.output.display()))?;
    let base = SignedImage::parse(&old, "base")?;
    let id: String = base.id().iter().map(|b| format!("{b:02x}")).collect();
    if args.json {
        let summary = serde_json::json!({
            "patch_bytes": patch.len(),
            "new_image_bytes": new.len(),
            "base_payload_bytes": base.payload.len(),
            "base_id": id,
        });
        cli_output::outln!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    cli_output::outln!(
        "patch: {} ({} bytes, {:.1} % of the {}-byte new image)",
        args.output.display(),
        patch.len(),
        patch.len() as f64 * 100.0 / new.len() as f64,
        new.len()
    );
    cli_output::outln!(
        "base:  the {}-byte payload of image {id} (send it with `tock-ota send --base {}`)",
        base.payload.len(),
        args.base.display()
    );
    Ok(())
}
