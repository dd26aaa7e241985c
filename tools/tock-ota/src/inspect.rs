//! Image verification and inspection.

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {}

pub fn run_verify(_args: VerifyArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

pub fn run_inspect(_args: InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
