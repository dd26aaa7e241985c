//! Image signing.

#[derive(clap::Args, Debug)]
pub struct SignArgs {}

pub fn run(_args: SignArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
