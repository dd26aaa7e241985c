//! `tock-ota`: the host side of tock-ota — keys, signing, inspection, benchmarks and the simulator.
//! A thin CLI: each subcommand's `Args` and `run` come from its product crate.
#![forbid(unsafe_code)]
use clap::{Parser, Subcommand};
use ota_bench::{
    flash as bench_flash, install as bench_install, power_cuts as bench_power_cuts,
    transfer as bench_transfer, verify as bench_verify,
};
use ota_imgtool::{delta, inspect, keys, sign};
use ota_sim::demo;
use tock_ota::{bench_boot, emulate_system, over_hci, power_cuts_emulated};

#[derive(Parser)]
#[command(
    name = "tock-ota",
    version,
    about = "Staged, signed firmware updates for Tock OS on the nRF52840"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a P-256 signing key (private PEM, public PEM and the bootloader's embedded form).
    Keygen(keys::KeygenArgs),
    /// Sign a raw binary into an MCUboot/imgtool-format image.
    Sign(sign::SignArgs),
    /// Verify a signed image against a public or private key.
    Verify(inspect::VerifyArgs),
    /// Print an image's header and TLVs.
    Inspect(inspect::InspectArgs),
    /// Make a delta patch from the signed image a device runs to a new one.
    Delta(delta::DeltaArgs),
    /// Reports: simulated and measured performance figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The full-system simulator: an update end to end on simulated hardware.
    Demo(demo::DemoArgs),
    /// Broadcast a signed image to the DFU app through a Bluetooth controller over HCI.
    Send(over_hci::SendArgs),
    /// Receive an image through a Bluetooth controller over HCI, as the DFU app does.
    Receive(over_hci::ReceiveArgs),
    /// The real device binaries under emulation.
    #[command(subcommand)]
    Emulate(EmulateCommand),
}

#[derive(Subcommand)]
enum EmulateCommand {
    /// Bootloader, kernel and DFU app from reset, an update over the modelled RADIO.
    System(emulate_system::Args),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Host image-verify throughput.
    Verify(bench_verify::Args),
    /// Simulated flash device times beside datasheet arithmetic.
    Flash(bench_flash::Args),
    /// Simulated install time beside the NVMC limit.
    Install(bench_install::Args),
    /// Power-cut campaign over install, confirm and revert.
    PowerCuts(bench_power_cuts::Args),
    /// Transfer goodput over simulated BLE advertising.
    Transfer(bench_transfer::Args),
    /// The real bootloader binary under emulation.
    Boot(bench_boot::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(a) => keys::run(a),
        Command::Sign(a) => sign::run(a),
        Command::Verify(a) => inspect::run_verify(a),
        Command::Inspect(a) => inspect::run_inspect(a),
        Command::Delta(a) => delta::run(a),
        Command::Bench(b) => match b {
            BenchCommand::Verify(a) => bench_verify::run(a),
            BenchCommand::Flash(a) => bench_flash::run(a),
            BenchCommand::Install(a) => bench_install::run(a),
            BenchCommand::PowerCuts(a) if a.emulated => power_cuts_emulated::run(a),
            BenchCommand::PowerCuts(a) => bench_power_cuts::run(a),
            BenchCommand::Transfer(a) => bench_transfer::run(a),
            BenchCommand::Boot(a) => bench_boot::run(a),
        },
        Command::Demo(a) => demo::run(a),
        Command::Send(a) => over_hci::run_send(a),
        Command::Receive(a) => over_hci::run_receive(a),
        Command::Emulate(EmulateCommand::System(a)) => emulate_system::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
