//! Key generation.

#[derive(clap::Args, Debug)]
pub struct KeygenArgs {}

pub fn run(_args: KeygenArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
