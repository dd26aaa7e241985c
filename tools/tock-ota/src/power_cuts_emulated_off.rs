//! `bench power-cuts --emulated` in a build without the `emulator` feature: the campaign runs
//! the bootloader binary under the Unicorn CPU emulator, which this build leaves out.

/// How to get the emulated campaign.
pub const NOT_BUILT: &str = "`bench power-cuts --emulated` runs the bootloader binary under the \
Unicorn emulator, which this build of tock-ota leaves out. Build it in with the `emulator` \
feature (Unicorn needs cmake, ninja and libclang; .ci/setup installs them): \
cargo run --release -p tock-ota --features emulator -- bench power-cuts --emulated";

pub fn run(_args: ota_bench::power_cuts::Args) -> anyhow::Result<()> {
    anyhow::bail!("{NOT_BUILT}")
}
