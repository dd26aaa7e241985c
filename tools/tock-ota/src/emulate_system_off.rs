//! `emulate system` in a build without the `emulator` feature (see `bench_boot_off`): the command
//! stays, takes any arguments and fails saying how to build it in.

/// How to get the emulated device.
pub const NOT_BUILT: &str = "`emulate system` runs the whole device under the Unicorn emulator, \
which this build of tock-ota leaves out. Build it in with the `emulator` feature (Unicorn needs \
cmake, ninja and libclang; .ci/setup installs them): \
cargo run --release -p tock-ota --features emulator -- emulate system --device-dir target/device";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The emulated run's options (`--device-dir`, `--loss`, `--junk-radio`, `--json`, ...).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub options: Vec<String>,
}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("{NOT_BUILT}")
}
