//! Tock kernel for the nRF52840-DK with staged, signed kernel updates.
//!
//! Differences from a stock DK kernel, and why:
//! - Linked at 0x8000, the bootloader's kernel slot (`layout.ld`); the chip points VTOR at this
//!   kernel's vector table at start-up.
//! - The MX25R6435F is driven by the QSPI peripheral (`tock_ota_capsules::qspi_flash`), not by
//!   SPIM0; nothing else uses its pins.
//! - The BLE radio belongs to the bulk scanner and is driven by `tock_ota_capsules::adv_radio`
//!   (its receive bounded at 37 payload bytes), not by upstream's `ble_radio`, whose 255-byte
//!   receive a nearby transmitter can overrun (docs/tock-integration.md); 802.15.4 is not
//!   instantiated (it shares RADIO).
//! - Processes are loaded only with a verified ECDSA P-256 credential; the key that verified it
//!   decides the `ShortId`, and the staged-update driver trusts only the DFU app's id.
//! - Userspace apps are updated through upstream's dynamic binary storage
//!   (`SequentialDynamicBinaryStorage` over the NVMC) by the app-update driver
//!   (`tock_ota_capsules::app_update`, docs/app-updates.md); it and the staged-update driver
//!   share the QSPI flash (`tock_ota_capsules::nor_share`).
//! - With the cargo feature `ble5` (off by default), the BLE 5 receiver: the RADIO shared by
//!   `adv_radio` and `tock_ota_capsules::aux_radio` (TIMER0 and PPI switch it on at exact
//!   times), and the extended/periodic advertising follower `tock_ota_capsules::ext_scan` as
//!   driver `0xA0003` (docs/ble5.md, "On the DK board").
//!
//! Board-specific settings live in [`board_config`].

#![no_std]
#![no_main]

mod board_config;

use core::ptr::{addr_of, addr_of_mut};

use capsules_core::virtualizers::virtual_alarm::{MuxAlarm, VirtualMuxAlarm};
use kernel::capabilities;
use kernel::component::Component;
use kernel::deferred_call::DeferredCallClient;
use kernel::hil::ble_advertising::BleAdvertisementDriver;
use kernel::hil::led::LedLow;
use kernel::hil::time::{Alarm, Counter};
use kernel::platform::chip::{Chip, InterruptService};
use kernel::platform::{KernelResources, SyscallDriverLookup};
use kernel::utilities::StaticRef;
use kernel::{create_capability, static_init};
use nrf52840::gpio::{nrf52840_gpio_create_pin, GPIOPin};
use nrf52_components::{UartChannel, UartPins};
use tock_ota_capsules::adv_radio::{self, AdvRadio, RadioRegisters, RADIO_BASE};
use tock_ota_capsules::app_update::{
    self, AppKeys, AppUpdate, AppUpdateDriver, ProcessTable, TrialFaultPolicy,
};
#[cfg(feature = "ble5")]
use tock_ota_capsules::aux_radio::{self, AuxRadio, PpiRegisters, TimerRegisters};
use tock_ota_capsules::bulk_scan::{self, BulkScan, ReportRing, ScanRadio};
#[cfg(feature = "ble5")]
use tock_ota_capsules::ext_scan::{self, ExtFollow, ExtReport, ExtScan};
use tock_ota_capsules::identity::{KeyIndexAssigner, UpdateSyscallFilter};
use tock_ota_capsules::journaled_flash::{self, JournaledFlash, RegionPatch};
use tock_ota_capsules::nor::AsyncNor;
use tock_ota_capsules::nor_share::{NorShare, NorUser};
use tock_ota_capsules::p256_verifier::P256Verifier;
use tock_ota_capsules::qspi_flash::{Bounce, QspiFlash, Registers, QSPI_BASE};
use tock_ota_capsules::sha256_digest::Sha256Digest;
use tock_ota_capsules::staged_update::{
    self, StagedUpdate, StagedUpdateDriver, SystemReset, BUF_LEN,
};
use tock_ota_capsules::stream_rebuild::StreamArea;

use board_config::NUM_PROCS;

/// nRF52840 interrupt number of the QSPI peripheral (Product Specification, instantiation table).
const QSPI_IRQ: u32 = 41;

/// The kernel slot (internal flash) the bootloader installs into: a delta patch's base.
const KERNEL_SLOT_START: u32 = boot_nrf::NRF52840_DK.kernel_slot.start;
const KERNEL_SLOT_LEN: u32 = boot_nrf::NRF52840_DK.kernel_slot.len;

/// Report ring for the bulk scanner: room for about 100 full-size advertisements.
const SCAN_RING_LEN: usize = boot_nrf::NRF52840_DK_SCAN_RING_BYTES;

/// Report ring for the BLE 5 follower: whole chained events (`ext_scan::MAX_REPORT`, 1,662 B
/// each; five, 8,310 B, as many as the simulator's kernel model gives the DFU app). A batch the DFU app holds while the next events arrive is one
/// report; the rest wait here, and an event that finds no room is dropped and counted.
#[cfg(feature = "ble5")]
const EXT_RING_LEN: usize = boot_nrf::NRF52840_DK_EXT_RING_REPORTS * ext_scan::MAX_REPORT;
/// Where the follower gathers an event's AdvData: the longest a report carries (1,650 B).
#[cfg(feature = "ble5")]
const EXT_ADV_DATA_LEN: usize = ext_scan::MAX_REPORT - ext_scan::REPORT_HEADER;

kernel::stack_size! {0x2000}

type ChipHw = nrf52840::chip::NRF52<'static, OtaInterrupts>;
type QspiAlarm = VirtualMuxAlarm<'static, nrf52840::rtc::Rtc<'static>>;
type Qspi = QspiFlash<'static, QspiAlarm>;
/// A user of the shared QSPI flash.
type SharedNor = NorUser<'static>;
type Nvmc = nrf52840::nvmc::Nvmc;
type ProcessDebug = ();
/// App-region pages are written through the app-update page journal.
type AppFlash = JournaledFlash<'static, Nvmc>;
type AppStorage = kernel::dynamic_binary_storage::SequentialDynamicBinaryStorage<
    'static,
    'static,
    ChipHw,
    ProcessDebug,
    components::dynamic_binary_storage::NVPages<AppFlash>,
>;
type ScanAlarm = VirtualMuxAlarm<'static, nrf52840::rtc::Rtc<'static>>;
type Scan = BulkScan<'static, AdvRadio<'static>, ScanAlarm>;
#[cfg(feature = "ble5")]
type Aux = AuxRadio<'static>;
#[cfg(feature = "ble5")]
type ExtDriver = ExtScan<'static, Aux>;
type ConsoleDriver = components::console::ConsoleComponentType;
type AlarmDriver = components::alarm::AlarmDriverComponentType<nrf52840::rtc::Rtc<'static>>;
type Led = LedLow<'static, nrf52840::gpio::GPIOPin<'static>>;
type LedDriver = components::led::LedsComponentType<Led, 4>;
type Scheduler = components::sched::round_robin::RoundRobinComponentType;
type Verifier = P256Verifier<'static>;
type Keys = components::signature_verify_in_memory_keys::SignatureVerifyInMemoryKeysComponentType<
    Verifier,
    { board_config::NUM_KEYS },
    64,
    32,
    64,
>;

/// The chip peripherals this kernel drives with upstream's drivers. Upstream's
/// `Nrf52840DefaultPeripherals` holds every peripheral of the chip, and its interrupt dispatch
/// links every driver's handler (802.15.4, USB, SPI, TWI, ADC, AES, ...) into the kernel: code
/// this board never runs, sent with every update (docs/delta-updates.md, "Kernel size").
struct Peripherals {
    /// RTC1: the alarm mux (QSPI pacing, scanner hops, trial window, userspace alarms).
    rtc: nrf52840::rtc::Rtc<'static>,
    uarte0: nrf52840::uart::Uarte<'static>,
    /// Written by the app-update page journal; the start-up component writes UICR through it.
    nvmc: Nvmc,
    clock: nrf52840::clock::Clock,
    /// The LEDs' pins. No GPIO port: the board drives a few pins and takes no pin interrupts,
    /// and a port of all 48 pins is start-up code for pins nothing uses.
    leds: [GPIOPin<'static>; 4],
}

/// The RTC1 register block (upstream's chip keeps its own copy private).
// SAFETY: 0x4001_1000 is the nRF52840's RTC1 register block (Product Specification, memory
// map), valid for the whole program; only the RTC driver created here touches it.
const RTC1_BASE: StaticRef<nrf52840::rtc::RtcRegisters> =
    unsafe { StaticRef::new(0x4001_1000 as *const nrf52840::rtc::RtcRegisters) };

/// The interrupts of the peripherals above that raise any (RTC1, UARTE0), plus the QSPI
/// peripheral, which upstream's nRF52840 chip does not dispatch, and the RADIO, which goes to
/// this board's advertising driver instead of upstream's. No other peripheral is started, so
/// no other interrupt is raised (the chip reports one not handled here as unhandled). With
/// `ble5`, TIMER0 raises none (`aux_radio` keeps its interrupts off and uses it through PPI).
struct OtaInterrupts {
    peripherals: &'static Peripherals,
    qspi: &'static Qspi,
    radio: &'static AdvRadio<'static>,
    #[cfg(feature = "ble5")]
    aux: &'static Aux,
}

impl InterruptService for OtaInterrupts {
    fn service_interrupt(&self, interrupt: u32) -> bool {
        use nrf52840::base_interrupts as irq;
        match interrupt {
            QSPI_IRQ => self.qspi.handle_interrupt(),
            irq::RADIO => {
                // The BLE 5 receiver first: it acts only on a listen of its own that ended (and
                // clears that DISABLED event); the legacy driver clears DISABLED even when idle.
                #[cfg(feature = "ble5")]
                self.aux.handle_interrupt();
                self.radio.handle_interrupt()
            }
            irq::RTC1 => self.peripherals.rtc.handle_interrupt(),
            irq::UART0 => self.peripherals.uarte0.handle_interrupt(),
            _ => return false,
        }
        true
    }
}

/// The capability the app-update core needs to read the process table.
struct ProcessTableCapability;
// SAFETY: the board is the trusted code that grants capabilities; this one only lets the
// app-update core list processes (name, ShortId, version) for its anti-rollback check.
unsafe impl capabilities::ProcessManagementCapability for ProcessTableCapability {}

struct ChipReset;

impl SystemReset for ChipReset {
    fn reset(&self) {
        cortexm4f::support::reset();
    }
}

struct Platform {
    console: &'static ConsoleDriver,
    alarm: &'static AlarmDriver,
    led: &'static LedDriver,
    update: &'static StagedUpdateDriver<'static, SharedNor>,
    app_update: &'static AppUpdateDriver<'static>,
    scan: &'static Scan,
    #[cfg(feature = "ble5")]
    ext_scan: &'static ExtDriver,
    scheduler: &'static Scheduler,
    systick: cortexm4f::systick::SysTick,
    filter: UpdateSyscallFilter,
}

impl SyscallDriverLookup for Platform {
    fn with_driver<F, R>(&self, driver_num: usize, f: F) -> R
    where
        F: FnOnce(Option<&dyn kernel::syscall::SyscallDriver>) -> R,
    {
        match driver_num {
            capsules_core::console::DRIVER_NUM => f(Some(self.console)),
            capsules_core::alarm::DRIVER_NUM => f(Some(self.alarm)),
            capsules_core::led::DRIVER_NUM => f(Some(self.led)),
            staged_update::DRIVER_NUM => f(Some(self.update)),
            app_update::DRIVER_NUM => f(Some(self.app_update)),
            bulk_scan::DRIVER_NUM => f(Some(self.scan)),
            #[cfg(feature = "ble5")]
            ext_scan::DRIVER_NUM => f(Some(self.ext_scan)),
            _ => f(None),
        }
    }
}

impl KernelResources<ChipHw> for Platform {
    type SyscallDriverLookup = Self;
    type SyscallFilter = UpdateSyscallFilter;
    type ProcessFault = ();
    type Scheduler = Scheduler;
    type SchedulerTimer = cortexm4f::systick::SysTick;
    type WatchDog = ();
    type ContextSwitchCallback = ();

    fn syscall_driver_lookup(&self) -> &Self::SyscallDriverLookup {
        self
    }
    fn syscall_filter(&self) -> &Self::SyscallFilter {
        &self.filter
    }
    fn process_fault(&self) -> &Self::ProcessFault {
        &()
    }
    fn scheduler(&self) -> &Self::Scheduler {
        self.scheduler
    }
    fn scheduler_timer(&self) -> &Self::SchedulerTimer {
        &self.systick
    }
    fn watchdog(&self) -> &Self::WatchDog {
        &()
    }
    fn context_switch_callback(&self) -> &Self::ContextSwitchCallback {
        &()
    }
}

/// The staged-update core with its received-stream side. Kept out of `main` so the core's
/// temporaries (it holds the rebuild state, about 1 KiB) do not stay on the kernel stack.
#[inline(never)]
unsafe fn create_update_core(
    nor: &'static SharedNor,
    data: &'static mut [u8],
    scratch: &'static mut [u8],
    streams: StreamArea,
) -> &'static StagedUpdate<'static, SharedNor> {
    match StagedUpdate::new(nor, board_config::UPDATE_REGION, data, scratch)
        .and_then(|core| core.with_streams(streams))
    {
        Ok(core) => static_init!(StagedUpdate<'static, SharedNor>, core),
        Err(_) => panic!("board_config::UPDATE_REGION or STREAM_AREA is not a usable region"),
    }
}

/// Kept out of `main` so its large temporaries do not sit on the kernel stack.
#[inline(never)]
unsafe fn create_peripherals() -> &'static Peripherals {
    let peripherals = static_init!(
        Peripherals,
        Peripherals {
            rtc: nrf52840::rtc::Rtc::new(RTC1_BASE),
            uarte0: nrf52840::uart::Uarte::new(nrf52840::uart::UARTE0_BASE),
            nvmc: Nvmc::new(),
            clock: nrf52840::clock::Clock::new(),
            leds: board_config::LED_PINS.map(nrf52840_gpio_create_pin),
        }
    );
    // The NVMC completes its operations from a deferred call.
    peripherals.nvmc.register();
    peripherals
}

/// The BLE 5 receiver's radio half, before the chip (the interrupt service refers to it).
#[cfg(feature = "ble5")]
#[inline(never)]
unsafe fn create_aux_radio(radio_regs: StaticRef<RadioRegisters>) -> &'static Aux {
    // SAFETY: TIMER0_BASE and PPI_BASE are the nRF52840's TIMER0 and PPI register blocks, valid
    // MMIO addresses for the whole program. Nothing else on this board uses TIMER0 (no upstream
    // timer driver is created) or any PPI channel, so the fixed channels aux_radio enables are
    // its own.
    let timer = StaticRef::new(aux_radio::TIMER0_BASE as *const TimerRegisters);
    let ppi = StaticRef::new(aux_radio::PPI_BASE as *const PpiRegisters);
    let rx = static_init!(
        [u8; aux_radio::AUX_RX_BUF_LEN],
        [0; aux_radio::AUX_RX_BUF_LEN]
    );
    static_init!(Aux, AuxRadio::new(radio_regs, timer, ppi, rx))
}

/// The BLE 5 follower and its syscall driver: `aux`'s client, with the report ring and the
/// buffer the follower gathers an event's AdvData in. Kept out of `main` (its temporaries).
#[cfg(feature = "ble5")]
#[inline(never)]
unsafe fn create_ext_scan(aux: &'static Aux, grant: ext_scan::ExtGrant) -> &'static ExtDriver {
    let adv_data = static_init!([u8; EXT_ADV_DATA_LEN], [0; EXT_ADV_DATA_LEN]);
    let ring_storage = static_init!([u8; EXT_RING_LEN], [0; EXT_RING_LEN]);
    let ring = static_init!(ReportRing<ExtReport>, ReportRing::new(ring_storage));
    let follow = static_init!(ExtFollow<'static, Aux>, ExtFollow::new(aux, adv_data, ring));
    aux.set_client(follow);
    let driver = static_init!(
        ExtDriver,
        ExtScan::new(follow, grant, board_config::DFU_SHORT_ID)
    );
    follow.set_sink(driver);
    driver
}

/// Entry point after RAM is initialised.
///
/// # Safety
///
/// Called once, by the reset handler, before anything else runs.
#[no_mangle]
pub unsafe fn main() {
    ChipHw::init();
    kernel::deferred_call::initialize_deferred_call_state::<
        <ChipHw as kernel::platform::chip::Chip>::ThreadIdProvider,
    >();

    let peripherals = create_peripherals();
    let base = peripherals;

    // Time first: the QSPI driver paces its status polling with an alarm.
    let rtc = &base.rtc;
    let _ = rtc.start();
    let mux_alarm: &'static MuxAlarm<'static, nrf52840::rtc::Rtc<'static>> =
        components::alarm::AlarmMuxComponent::new(rtc)
            .finalize(components::alarm_mux_component_static!(nrf52840::rtc::Rtc));

    // The QSPI driver is created before the chip (the chip's interrupt service refers to it)
    // and gets its alarm once the RTC mux exists.
    let qspi_alarm = static_init!(QspiAlarm, VirtualMuxAlarm::new(mux_alarm));
    // SAFETY: QSPI_BASE is the nRF52840's QSPI register block, a valid MMIO address for the
    // whole program, and only this driver touches it.
    let qspi_regs = StaticRef::new(QSPI_BASE as *const Registers);
    let bounce = static_init!(Bounce, Bounce::new());
    let qspi = static_init!(
        Qspi,
        QspiFlash::new(qspi_regs, qspi_alarm, board_config::QSPI, bounce)
    );

    qspi_alarm.setup();
    qspi_alarm.set_alarm_client(qspi);

    // The RADIO driver likewise: the interrupt service refers to it.
    // SAFETY: RADIO_BASE is the nRF52840's RADIO register block, a valid MMIO address for the
    // whole program; only this driver touches it (with `ble5`, also `aux_radio`, taking turns
    // with it; upstream's BLE and 802.15.4 radio drivers are never started, and its interrupt
    // comes here).
    let radio_regs = StaticRef::new(RADIO_BASE as *const RadioRegisters);
    let radio_rx = static_init!([u8; adv_radio::RX_BUF_LEN], [0; adv_radio::RX_BUF_LEN]);
    let radio = static_init!(AdvRadio<'static>, AdvRadio::new(radio_regs, radio_rx));
    // With `ble5`, the BLE 5 receiver shares the RADIO: the two take turns (`aux_radio` refuses
    // a listen while the RADIO is not disabled, and the DFU app stops one driver before it
    // starts the other), and each writes every RADIO register it uses at each start.
    #[cfg(feature = "ble5")]
    let aux = create_aux_radio(radio_regs);

    let interrupts = static_init!(
        OtaInterrupts,
        OtaInterrupts {
            peripherals,
            qspi,
            radio,
            #[cfg(feature = "ble5")]
            aux,
        }
    );
    let chip = static_init!(ChipHw, nrf52840::chip::NRF52::new(interrupts));

    let processes = components::process_array::ProcessArrayComponent::new()
        .finalize(components::process_array_component_static!(NUM_PROCS));
    let board_kernel = static_init!(kernel::Kernel, kernel::Kernel::new(processes.as_slice()));

    nrf52_components::startup::NrfStartupComponent::new(
        false,
        board_config::BUTTON_RST_PIN,
        nrf52840::uicr::Regulator0Output::DEFAULT,
        &base.nvmc,
    )
    .finalize(());
    nrf52_components::NrfClockComponent::new(&base.clock).finalize(());

    let memory_allocation = create_capability!(capabilities::MemoryAllocationCapability);

    // Time, console, LEDs.
    let alarm = components::alarm::AlarmDriverComponent::new(
        board_kernel,
        capsules_core::alarm::DRIVER_NUM,
        mux_alarm,
        create_capability!(capabilities::MemoryAllocationCapability),
    )
    .finalize(components::alarm_component_static!(nrf52840::rtc::Rtc));

    let uart_channel = UartChannel::Pins(UartPins::new(
        board_config::UART_RTS,
        board_config::UART_TXD,
        board_config::UART_CTS,
        board_config::UART_RXD,
    ));
    let uart_channel =
        nrf52_components::UartChannelComponent::new(uart_channel, mux_alarm, &base.uarte0)
            .finalize(nrf52_components::uart_channel_component_static!(
                nrf52840::rtc::Rtc
            ));
    let mux_uart = components::console::UartMuxComponent::new(uart_channel, 115200)
        .finalize(components::uart_mux_component_static!());
    let console = components::console::ConsoleComponent::new(
        board_kernel,
        capsules_core::console::DRIVER_NUM,
        mux_uart,
        create_capability!(capabilities::MemoryAllocationCapability),
    )
    .finalize(components::console_component_static!());
    components::debug_writer::DebugWriterComponent::new::<
        <ChipHw as kernel::platform::chip::Chip>::ThreadIdProvider,
    >(
        mux_uart,
        create_capability!(capabilities::SetDebugWriterCapability),
    )
    .finalize(components::debug_writer_component_static!());

    let [led1, led2, led3, led4] = &peripherals.leds;
    let led = components::led::LedsComponent::new().finalize(components::led_component_static!(
        Led,
        LedLow::new(led1),
        LedLow::new(led2),
        LedLow::new(led3),
        LedLow::new(led4),
    ));

    // The QSPI flash is shared by the staged-update and the app-update cores.
    let nor_share = static_init!(NorShare<'static>, NorShare::new(qspi));
    qspi.set_nor_client(nor_share);
    let update_nor = static_init!(SharedNor, NorUser::new(nor_share));
    let app_nor = static_init!(SharedNor, NorUser::new(nor_share));
    let journal_nor = static_init!(SharedNor, NorUser::new(nor_share));
    for user in [&*update_nor, &*app_nor, &*journal_nor] {
        if nor_share.add_user(user).is_err() {
            panic!("more QSPI users than NorShare holds");
        }
    }

    // Staged update over the QSPI flash.
    let update_data = static_init!([u8; BUF_LEN], [0xFF; BUF_LEN]);
    let update_scratch = static_init!(
        [u8; update_region::MAX_POLICY_READ],
        [0xFF; update_region::MAX_POLICY_READ]
    );
    // SAFETY: the kernel slot is internal flash, memory mapped and always readable; only the
    // bootloader writes it, never while this kernel runs, so the bytes do not change under the
    // shared slice.
    let kernel_slot: &'static [u8] = unsafe {
        core::slice::from_raw_parts(KERNEL_SLOT_START as *const u8, KERNEL_SLOT_LEN as usize)
    };
    // Received streams are staged here; the DFU app rebuilds them (stream_rebuild.rs).
    let streams = StreamArea {
        config: board_config::STREAM_AREA,
        kernel_slot,
    };
    let update_core = create_update_core(update_nor, update_data, update_scratch, streams);
    update_nor.set_nor_client(update_core);
    let update = static_init!(
        StagedUpdateDriver<'static, SharedNor>,
        StagedUpdateDriver::new(
            update_core,
            board_kernel.create_grant(staged_update::DRIVER_NUM, &memory_allocation),
            static_init!(ChipReset, ChipReset),
        )
    );
    update_core.set_client(update);
    // QSPI pins at high drive, as the Product Specification asks for QSPI; the bootloader sets
    // the same, but the kernel must not depend on what it left.
    for pin in board_config::QSPI_PINS {
        nrf52840_gpio_create_pin(pin).set_high_drive(true);
    }
    // Activation completes in the QSPI interrupt; the update core then scans the region.
    qspi.initialize();

    // Bulk passive scanning on the BLE radio.
    let ring_storage = static_init!([u8; SCAN_RING_LEN], [0; SCAN_RING_LEN]);
    let ring = static_init!(ReportRing, ReportRing::new(ring_storage));
    let scan_tx = static_init!([u8; bulk_scan::TX_BUF_LEN], [0; bulk_scan::TX_BUF_LEN]);
    // The scanner hops channel on this alarm when nothing arrives.
    let scan_alarm = static_init!(ScanAlarm, VirtualMuxAlarm::new(mux_alarm));
    scan_alarm.setup();
    let scan_radio = static_init!(
        ScanRadio<'static, AdvRadio<'static>, ScanAlarm>,
        ScanRadio::new(radio, scan_alarm, ring, scan_tx, board_config::ADV_ADDRESS)
    );
    scan_alarm.set_alarm_client(scan_radio);
    radio.set_receive_client(scan_radio);
    radio.set_transmit_client(scan_radio);
    let scan = static_init!(
        Scan,
        BulkScan::new(
            scan_radio,
            board_kernel.create_grant(bulk_scan::DRIVER_NUM, &memory_allocation),
        )
    );
    scan_radio.set_sink(scan);

    // BLE 5: extended and periodic advertising followed through the RADIO/TIMER0/PPI receiver.
    #[cfg(feature = "ble5")]
    let ext_scan = create_ext_scan(
        aux,
        board_kernel.create_grant(ext_scan::DRIVER_NUM, &memory_allocation),
    );

    // Credential checking: SHA-256 over the TBF integrity region, ECDSA P-256 against the keys.
    // The hash is the one the update path links (`ota_image`'s, behind `hil::digest`), not a
    // second SHA-256 (upstream's `Sha256Software`).
    let sha = static_init!(Sha256Digest<'static>, Sha256Digest::new());
    sha.register();
    let keys = static_init!(
        [&'static mut [u8; 64]; board_config::NUM_KEYS],
        [
            static_init!([u8; 64], board_config::VERIFYING_KEYS[0]),
            static_init!([u8; 64], board_config::VERIFYING_KEYS[1]),
        ]
    );
    // ECDSA P-256 by the bootloader's verifier (p256-cm4), also the app-update credential
    // check's (`AppKeys`): upstream's `ecdsa_sw` (RustCrypto's p256) is not linked.
    let verifier = static_init!(Verifier, P256Verifier::new());
    verifier.register();
    let verifier_keys =
        components::signature_verify_in_memory_keys::SignatureVerifyInMemoryKeysComponent::new(
            verifier, keys,
        )
        .finalize(
            components::signature_verify_in_memory_keys_component_static!(
                Verifier,
                { board_config::NUM_KEYS },
                64,
                32,
                64,
            ),
        );
    let checking_policy = components::appid::checker_signature::AppCheckerSignatureComponent::new(
        sha,
        verifier_keys,
        tock_tbf::types::TbfFooterV2CredentialsType::EcdsaNistP256,
    )
    .finalize(components::app_checker_signature_component_static!(
        Keys,
        Sha256Digest<'static>,
        32,
        64,
    ));
    let assigner = static_init!(
        KeyIndexAssigner,
        KeyIndexAssigner::new(board_config::DFU_SHORT_ID)
    );
    let checker = components::appid::checker::ProcessCheckerMachineComponent::new(checking_policy)
        .finalize(components::process_checker_machine_component_static!());
    let storage_permissions =
        components::storage_permissions::null::StoragePermissionsNullComponent::new().finalize(
            components::storage_permissions_null_component_static!(ChipHw, ProcessDebug,),
        );

    let scheduler = components::sched::round_robin::RoundRobinComponent::new(processes)
        .finalize(components::round_robin_component_static!(NUM_PROCS));

    // Symbols from Tock's kernel linker script.
    extern "C" {
        static _sapps: u8;
        static _eapps: u8;
        static mut _sappmem: u8;
        static _eappmem: u8;
    }
    let app_flash = core::slice::from_raw_parts(
        addr_of!(_sapps),
        addr_of!(_eapps) as usize - addr_of!(_sapps) as usize,
    );
    // The app region as the CPU reads it: confirm and revert find binaries there.
    let app_region: &'static [u8] = app_flash;
    let app_memory = core::slice::from_raw_parts_mut(
        addr_of_mut!(_sappmem),
        addr_of!(_eappmem) as usize - addr_of!(_sappmem) as usize,
    );
    // Faulting apps are stopped, not restarted (a crashing updater must not loop on the
    // flash), except the app in trial: restarted below `trial::FAULTS`, then reverted.
    let fault_policy = static_init!(TrialFaultPolicy<'static>, TrialFaultPolicy::default());
    let loader = components::loader::sequential::ProcessLoaderSequentialComponent::new(
        checker,
        board_kernel,
        chip,
        fault_policy,
        assigner,
        storage_permissions,
        app_flash,
        app_memory,
        create_capability!(capabilities::ProcessManagementCapability),
    )
    .finalize(components::process_loader_sequential_component_static!(
        ChipHw,
        ProcessDebug,
        NUM_PROCS
    ));

    // App updates: a TBF staged in QSPI is checked (credential against the app keys,
    // anti-rollback), then copied into the app region through upstream's dynamic binary
    // storage and loaded (docs/app-updates.md).
    // Each app-region page write goes through the journal in QSPI; the journal is read (and
    // an interrupted write finished, then the board reset) when the QSPI flash is ready.
    let app_flash = static_init!(
        AppFlash,
        JournaledFlash::new(
            &base.nvmc,
            journal_nor,
            board_config::APP_JOURNAL,
            static_init!(ChipReset, ChipReset),
            static_init!(
                [u8; app_update::JOURNAL_PAGE],
                [0xFF; app_update::JOURNAL_PAGE]
            ),
            static_init!(
                [u8; journaled_flash::SMALL_LEN],
                [0xFF; journaled_flash::SMALL_LEN]
            ),
            static_init!(nrf52840::nvmc::NrfPage, nrf52840::nvmc::NrfPage::default()),
        )
    );
    kernel::hil::flash::HasClient::set_client(&base.nvmc, app_flash);
    journal_nor.set_nor_client(app_flash);
    let app_storage: &'static AppStorage =
        components::dynamic_binary_storage::SequentialBinaryStorageComponent::new(
            board_kernel,
            app_flash,
            loader,
        )
        .finalize(components::sequential_binary_storage_component_static!(
            AppFlash,
            ChipHw,
            ProcessDebug,
        ));
    let process_table = static_init!(
        ProcessTable<ProcessTableCapability>,
        ProcessTable::new(board_kernel, ProcessTableCapability)
    );
    let app_keys = static_init!(AppKeys, AppKeys::new(&board_config::APP_KEYS));
    let app_buffer = static_init!([u8; app_update::CHUNK], [0; app_update::CHUNK]);
    let app_core = static_init!(
        AppUpdate<'static>,
        AppUpdate::new(
            app_nor,
            board_config::UPDATE_REGION.staging_base,
            board_config::UPDATE_REGION.staging_len,
            board_config::APP_JOURNAL.trial,
            app_storage,
            app_storage,
            app_storage,
            process_table,
            app_keys,
            kernel::process::ShortId::Fixed(board_config::DFU_SHORT_ID),
            app_buffer,
        )
    );
    app_nor.set_nor_client(app_core);
    {
        use kernel::dynamic_binary_storage::{
            DynamicBinaryStore, DynamicProcessLoad, DynamicProcessUnload,
        };
        app_storage.set_storage_client(app_core);
        app_storage.set_load_client(app_core);
        app_storage.set_unload_client(app_core);
    }
    let app_update = static_init!(
        AppUpdateDriver<'static>,
        AppUpdateDriver::new(
            app_core,
            board_kernel.create_grant(app_update::DRIVER_NUM, &memory_allocation),
        )
    );
    app_core.set_client(app_update);
    // Confirm and revert pad a binary at an address of their own through the page journal
    // (upstream's storage is idle then), and a revert resets the board. Once the journal is
    // read and the trial record too, the boot decision counts this boot or reverts.
    app_flash.set_region(app_region, app_region.as_ptr() as u32);
    app_flash.set_patch_client(app_core);
    app_core.set_trial_end(
        app_flash,
        static_init!(ChipReset, ChipReset),
        app_update::TRIAL_BOOTS,
    );
    // The trial window: an app in trial that has not confirmed itself this long after the
    // boot (or its install), or faulted `TRIAL_FAULTS` times, is reverted from this alarm.
    // The RTC counts 24 bits at 32,768 Hz: a window must stay below 512 s.
    const _: () = assert!(app_update::TRIAL_WINDOW_S < 512);
    let trial_alarm = static_init!(
        VirtualMuxAlarm<'static, nrf52840::rtc::Rtc<'static>>,
        VirtualMuxAlarm::new(mux_alarm)
    );
    trial_alarm.setup();
    trial_alarm.set_alarm_client(app_core);
    app_core.set_trial_window(
        trial_alarm,
        app_update::TRIAL_WINDOW_S,
        app_update::TRIAL_FAULTS,
    );
    fault_policy.set_update(app_core);

    let platform = static_init!(
        Platform,
        Platform {
            console,
            alarm,
            led,
            update,
            app_update,
            scan,
            #[cfg(feature = "ble5")]
            ext_scan,
            scheduler,
            systick: cortexm4f::systick::SysTick::new_with_calibration(64_000_000),
            filter: UpdateSyscallFilter::new(board_config::DFU_SHORT_ID),
        }
    );

    board_kernel.kernel_loop(
        platform,
        chip,
        None::<&kernel::ipc::IPC<0>>,
        &create_capability!(capabilities::MainLoopCapability),
    );
}

/// Not reached in this board's build: a panic traps at once (`.cargo/config.toml`,
/// `panic=immediate-abort`; docs/delta-updates.md, "Kernel size"). Kept for a build without it.
#[cfg(not(test))]
#[panic_handler]
unsafe fn panic_fmt(_info: &core::panic::PanicInfo) -> ! {
    let pin = &nrf52840_gpio_create_pin(board_config::LED_PINS[0]);
    let led = &mut LedLow::new(pin);
    kernel::debug::panic_blink_forever(&mut [led])
}
