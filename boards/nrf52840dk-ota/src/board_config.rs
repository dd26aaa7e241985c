//! Everything a custom board changes, in one place.
//!
//! - External flash: QSPI pins, clock divider and capacity ([`QSPI`]).
//! - Where updates are staged and where boot requests go ([`UPDATE_REGION`], which must match the
//!   bootloader's layout, `docs/layout.md`).
//! - Internal flash and RAM: `layout.ld` next to this crate's `Cargo.toml` (kernel slot origin and
//!   length, apps, RAM). The kernel slot must match the bootloader's.
//! - Trust: the public keys the process loader accepts ([`VERIFYING_KEYS`]) and the `ShortId`
//!   given to the DFU app ([`DFU_SHORT_ID`]).
//! - The BLE device address of the DFU app's status advertisements ([`ADV_ADDRESS`]).
//! - Pins for the console and LEDs ([`UART_TXD`] and neighbours, [`LED_PINS`]).

use core::num::NonZeroU32;

use nrf52840::gpio::Pin;
use tock_ota_capsules::qspi_flash::QspiConfig;

/// The DK's MX25R6435F: 8 MiB on P0.19 (SCK), P0.17 (CSN), P0.20–P0.23 (IO0–IO3), quad I/O,
/// high-performance mode (32 MHz SCK).
pub const QSPI: QspiConfig = QspiConfig::nrf52840dk();

/// [`QSPI`]'s pins as GPIO pins, SCK, CSN, IO0–IO3 (the kernel sets them to high drive);
/// checked against [`QSPI`] when the kernel is built.
pub const QSPI_PINS: [Pin; 6] = [
    Pin::P0_19,
    Pin::P0_17,
    Pin::P0_20,
    Pin::P0_21,
    Pin::P0_22,
    Pin::P0_23,
];
const _: () = {
    let numbers = [
        QSPI.sck, QSPI.csn, QSPI.io[0], QSPI.io[1], QSPI.io[2], QSPI.io[3],
    ];
    let mut i = 0;
    while i < QSPI_PINS.len() {
        assert!(
            QSPI_PINS[i] as u32 == numbers[i] as u32,
            "QSPI_PINS must name QSPI's pins"
        );
        i += 1;
    }
};

/// The staged-update owner id (the DFU app's `ShortId`; bit 31 must be clear).
pub const DFU_SHORT_ID: NonZeroU32 = match NonZeroU32::new(0x0D0F_0001) {
    Some(id) => id,
    None => panic!("DFU_SHORT_ID must not be zero"),
};

/// Request sector at QSPI 0, staging slot 1 MiB at QSPI 1 MiB (`docs/layout.md`).
pub const UPDATE_REGION: update_region::Config =
    update_region::Config::nrf52840dk(DFU_SHORT_ID.get());

/// The received-stream area (QSPI 3 MiB, 256 KiB, `docs/layout.md`): compressed images and
/// delta patches are staged here; the DFU app rebuilds them into the staging slot through the
/// kernel's output commands, and the kernel links no decoder.
pub const STREAM_AREA: update_region::Config =
    update_region::Config::nrf52840dk_stream(DFU_SHORT_ID.get());

/// Number of accepted signing keys.
pub const NUM_KEYS: usize = 2;

/// ECDSA P-256 public keys (uncompressed x‖y) a process credential is checked against. Index 0
/// is the DFU signing key (`tock_ota_capsules::identity::DFU_KEY_INDEX`): a process it signed
/// gets [`DFU_SHORT_ID`]. Index 1 signs ordinary apps. These are the development keys in
/// `apps/dfu/dev-keys/`; a product replaces both with its own.
pub const VERIFYING_KEYS: [[u8; 64]; NUM_KEYS] = [
    [
        0x7f, 0x02, 0x7a, 0xf5, 0x2e, 0x4c, 0x0f, 0xe6, 0xa7, 0xe1, 0x02, 0x45, 0xa9, 0x5f, 0xdb,
        0xa5, 0xfa, 0x21, 0xa3, 0x32, 0x91, 0x6c, 0x53, 0x63, 0xa9, 0x27, 0xaf, 0xe5, 0xfc, 0x3c,
        0xe3, 0x63, 0xeb, 0x98, 0x77, 0xcb, 0x99, 0xe7, 0xf4, 0xfb, 0x23, 0x57, 0xbb, 0x00, 0xac,
        0xb7, 0xca, 0x69, 0x57, 0xf3, 0x0d, 0xf7, 0x1d, 0x5c, 0xbd, 0x52, 0x37, 0x09, 0x72, 0xbb,
        0x9f, 0x14, 0xeb, 0xf5,
    ],
    [
        0xbf, 0x2a, 0xb0, 0xbb, 0x41, 0x2f, 0x65, 0x07, 0x19, 0x93, 0xe3, 0x06, 0xaa, 0x99, 0xb4,
        0xd3, 0x1a, 0x90, 0x91, 0xeb, 0x23, 0x66, 0x5f, 0x24, 0xc0, 0xb6, 0xb0, 0xe7, 0xea, 0x42,
        0xeb, 0x85, 0x77, 0xb1, 0x30, 0x65, 0x6a, 0x52, 0x33, 0x01, 0xdd, 0x2b, 0x50, 0xc4, 0xb3,
        0x5a, 0xe7, 0x26, 0x34, 0xd0, 0x67, 0xd4, 0x63, 0xb9, 0x02, 0x48, 0xed, 0xc2, 0x18, 0x36,
        0x17, 0x2e, 0x8e, 0xd9,
    ],
];

/// The keys an updated app may be signed with: every verifying key but the DFU key (a binary
/// that key signs gets [`DFU_SHORT_ID`], and the DFU app does not update itself).
pub static APP_KEYS: [[u8; 64]; NUM_KEYS - 1] = [VERIFYING_KEYS[1]];
const _: () = assert!(tock_ota_capsules::identity::DFU_KEY_INDEX == 0);

/// App updates' page journal and trial record in the external flash (`docs/layout.md`).
pub const APP_JOURNAL: tock_ota_capsules::app_update::JournalLayout =
    tock_ota_capsules::app_update::JournalLayout::NRF52840DK;

/// The static random device address the DFU app's status advertisements carry (AdvA, as sent
/// on air: least significant byte first; the top two bits of the last byte set, as a static
/// random address requires). Give each device its own, e.g. from FICR DEVICEADDR.
pub const ADV_ADDRESS: [u8; 6] = [0x01, 0xF0, 0x7A, 0x0C, 0x70, 0xC0];

/// Console UART (the DK's interface MCU's virtual COM port).
pub const UART_RTS: Option<Pin> = Some(Pin::P0_05);
pub const UART_TXD: Pin = Pin::P0_06;
pub const UART_CTS: Option<Pin> = Some(Pin::P0_07);
pub const UART_RXD: Pin = Pin::P0_08;

/// LED 1–4 (active low). LED 1 would blink on a kernel panic, but this board's build traps at
/// once instead (`.cargo/config.toml`, `panic=immediate-abort`).
pub const LED_PINS: [Pin; 4] = [Pin::P0_13, Pin::P0_14, Pin::P0_15, Pin::P0_16];

/// The reset button (pin reset is enabled on it at start-up).
pub const BUTTON_RST_PIN: Pin = Pin::P0_18;

/// Processes the kernel can run. A build with `TOCK_OTA_BENCH_VARIANT` set in its environment
/// (`.ci/bench-delta` only) runs one more: a second kernel that differs from the usual one by
/// this constant alone, the "small change" of the delta-update benchmark.
pub const NUM_PROCS: usize = match option_env!("TOCK_OTA_BENCH_VARIANT") {
    Some(_) => 5,
    None => 4,
};
