//! `bench boot` in a build without the `emulator` feature. The report runs the bootloader binary
//! under the Unicorn CPU emulator (`tools/boot-emu`), whose C sources need cmake and libclang to
//! build; the default build leaves it out so the rest of the tool needs nothing but cargo. The
//! command stays, takes any arguments and fails saying how to build it in.

/// How to get the emulated report.
pub const NOT_BUILT: &str = "`bench boot` runs the bootloader binary under the Unicorn emulator, \
which this build of tock-ota leaves out. Build it in with the `emulator` feature (Unicorn needs \
cmake, ninja and libclang; .ci/setup installs them): \
cargo run --release -p tock-ota --features emulator -- bench boot";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The emulated report's options (`--json`, `--profile`, `--power-cuts`, `--cut-stride N`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub options: Vec<String>,
}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("{NOT_BUILT}")
}
