//! nRF52840 RADIO receiving one BLE PDU of up to 255 payload bytes on any BLE channel (the
//! secondary advertising channels 0–36 and the primary 37–39) at LE 1M or LE 2M, switched on at
//! an exact time by TIMER0 and PPI, with the receive bounded by the hardware.
//!
//! This is the radio half of following extended and periodic advertising (AUX_ADV_IND,
//! AUX_CHAIN_IND, AUX_SYNC_IND): the follower says when and where a packet starts, this driver
//! listens exactly then. A module of its own rather than more of [`crate::adv_radio`]: the
//! legacy path stays exactly as it was, and a kernel that does not use this links none of it.
//! Its contract:
//!
//! **Time.** TIMER0 runs free at 1 MHz (PRESCALER 4 on the 16 MHz clock) over 32 bits and
//! wraps; [`AuxRadio::now_us`] reads it. Every time here is on that timer and compared with
//! wrapping arithmetic. The driver starts the timer on first use and never stops or clears it.
//!
//! **Listen.** [`AuxRadio::listen`] takes a [`Listen`]: a packet whose start (the first bit of
//! its preamble) lies in `[start_us, start_us + window_us]`, on BLE channel `channel`, at `phy`,
//! with `access_address` and `crc_init`. It programs the RADIO (frequency and whitening IV from
//! the channel index, `MODE` and preamble length from the PHY, fast ramp-up, the access address,
//! the 24-bit BLE CRC with `crc_init`, `PCNF1.MAXLEN` = [`MAX_PAYLOAD`]) and three of the
//! nRF52840's pre-programmed PPI channels ([`PPI_RXEN`], [`PPI_TIMEOUT`], [`PPI_ADDRESS`]):
//!
//! - TIMER0 `CC[0]` = [`rxen_at`]: `start_us` − [`RAMP_UP_US`] − [`RX_GUARD_US`]. Its COMPARE
//!   event triggers RADIO `RXEN` by PPI, so the RADIO is receiving [`RX_GUARD_US`] before the
//!   window opens, whatever the CPU is doing.
//! - TIMER0 `CC[1]` = [`timeout_at`]: the latest time the RADIO's ADDRESS event can come for a
//!   packet that starts at the end of the window (preamble and access address on air, the
//!   receiver's chain delay, a guard). Its COMPARE event triggers RADIO `DISABLE` by PPI.
//! - RADIO `ADDRESS` triggers TIMER0 `CAPTURE[1]` by PPI: the timer's value at the ADDRESS event
//!   overwrites `CC[1]`. That records when the packet came **and** cancels the timeout in the
//!   same hardware step: `CC[1]` now holds a time already past, which the counter reaches again
//!   only after a full wrap (2³² µs, 71 minutes); the driver clears the channels at the end of
//!   every listen, long before. No software runs between the ADDRESS event and the cancel, so
//!   there is no race; if ADDRESS and the timeout come in the same microsecond, the DISABLE
//!   wins, the packet has no END and is reported missed.
//!
//! Shortcuts READY→START and END→DISABLE run the packet; the DISABLED interrupt
//! ([`AuxRadio::handle_interrupt`]) ends the listen: the PPI channels are cleared, then the
//! client gets exactly one completion, [`AuxClient::received`] or [`AuxClient::missed`].
//!
//! **Refusals** ([`ListenError`], nothing armed, no completion): a channel index above 39, a
//! `crc_init` wider than 24 bits, a window longer than [`MAX_WINDOW_US`], a listen while one is
//! outstanding or while the receive buffer is with the client, a RADIO not disabled (the legacy
//! driver still holds it), and a start too late for the RADIO to be switched on in time. The
//! last is decided by the hardware, not by an estimate of software latency: the channels are
//! enabled first, then the timer is read; if `CC[0]` is still ahead, its COMPARE will fire
//! through PPI; if it has passed, the RADIO either was switched on by it (its STATE is no
//! longer DISABLED, or its READY event came) or the compare went by before the channel was
//! enabled, and then the channels are cleared and the listen refused
//! ([`ListenError::StartPassed`]) — never a silent late start. A start more than half the
//! timer's range (2³¹ µs) ahead counts as passed.
//!
//! **Received.** [`AuxClient::received`] gets the [`Listen`], `address_us` and the receive
//! buffer with the PDU's length. `address_us` is the timer captured at ADDRESS less the
//! receiver's chain delay ([`rx_chain_delay_us`]): the time the access address's last bit was on
//! air, so the packet started [`address_air_us`] before it. The PDU is `buf[..len]`: the header
//! (S0, then the LENGTH byte) and LENGTH payload bytes. A packet whose CRC fails is
//! [`Missed::CrcError`]; no END before the timeout is [`Missed::NothingInWindow`].
//!
//! **The bound.** The RADIO's EasyDMA writes S0, LENGTH and min(LENGTH, MAXLEN) payload bytes
//! at PACKETPTR. With an 8-bit LENGTH and `MAXLEN` 255 that is at most 2 + 255 bytes, which is
//! the receive buffer's type, `[u8; AUX_RX_BUF_LEN]`: no LENGTH byte any transmitter sends can
//! make it write past the buffer, and the length handed on is computed in `usize`.
//!
//! **The buffer** is the driver's ([`AuxRadio::new`]); it is lent to the client with each
//! received PDU and comes back by [`AuxRadio::buffer_back`] (a listen without it is refused).
//! A client may give the buffer back and listen again from inside its callback: the driver is
//! idle by then.
//!
//! **Sharing the RADIO.** The RADIO has one front end: the legacy driver
//! ([`crate::adv_radio`]) and this one take turns, and whoever joins them (a later capsule)
//! makes sure a listen starts only when the legacy receive has ended, and calls
//! [`AuxRadio::cancel`] before handing the RADIO back. Every RADIO register a listen uses is
//! written by each listen, and the legacy driver writes all of its own at each start (the one
//! it does not write, MODECNF0, goes back to its reset value when a listen ends), so neither
//! inherits the other's set-up; [`AuxRadio::handle_interrupt`] touches nothing when no
//! listen of its own is outstanding, so the RADIO interrupt can go to both drivers, this one
//! first (the legacy driver clears a DISABLED event even when idle). TIMER0 and PPI channels 21, 22 and 26 are this driver's:
//! a board that wires it gives them to nothing else (docs/tock-integration.md; the DK board
//! with its `ble5` feature, docs/ble5.md).
//!
//! Register offsets, fields and the pre-programmed PPI channels: nRF52840 Product
//! Specification v1.x, chapters RADIO, TIMER and PPI. Receiver timings: see
//! docs/tock-integration.md.

use core::cell::Cell;

use adv_transfer::bearer::Phy;
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::utilities::registers::interfaces::{Readable, Writeable};
use kernel::utilities::registers::{register_bitfields, register_structs, ReadWrite};
use kernel::utilities::StaticRef;

use crate::adv_radio::{
    BlePacket, CrcStatus, Event, ModeCnf0, RadioRegisters, State, Task, HEADER_LEN,
};

/// TIMER0 base address.
pub const TIMER0_BASE: usize = 0x4000_8000;
/// PPI base address.
pub const PPI_BASE: usize = 0x4001_F000;

/// Longest payload the RADIO receives: `PCNF1.MAXLEN`, the most an 8-bit LENGTH can say.
pub const MAX_PAYLOAD: usize = 255;
/// The receive buffer: S0, LENGTH and [`MAX_PAYLOAD`] bytes, the most the RADIO writes.
pub const AUX_RX_BUF_LEN: usize = HEADER_LEN + MAX_PAYLOAD;

/// RXEN to receiving with fast ramp-up (`MODECNF0.RU` = Fast): tRXEN,FAST, 40 µs (Product
/// Specification, RADIO timing; 140 µs without fast ramp-up).
pub const RAMP_UP_US: u32 = 40;
/// How long before the window opens the RADIO is receiving: the timer's 1 µs resolution at each
/// end, the ramp-up's spread above its nominal 40 µs (about 0.3 µs measured), the PPI's
/// synchronisation to the 16 MHz clock, and room to spare.
pub const RX_GUARD_US: u32 = 8;
/// Added to the timeout after the latest ADDRESS event: the timer's resolution at each end.
pub const TIMEOUT_GUARD_US: u32 = 2;
/// The longest window a listen takes: `CC[1]` stays less than half the timer's range after
/// `CC[0]`, so the timeout never wraps past the start.
pub const MAX_WINDOW_US: u32 =
    (i32::MAX as u32) - RAMP_UP_US - RX_GUARD_US - address_late_us(Phy::Le1M);
// The bound above takes the PHY whose timeout comes latest.
const _: () = assert!(address_late_us(Phy::Le1M) >= address_late_us(Phy::Le2M));

/// The pre-programmed PPI channel TIMER0 COMPARE\[0\] → RADIO RXEN.
pub const PPI_RXEN: FixedPpi = FixedPpi {
    channel: 21,
    event: TIMER0_BASE + 0x140,
    task: crate::adv_radio::RADIO_BASE + 0x004,
};
/// The pre-programmed PPI channel TIMER0 COMPARE\[1\] → RADIO DISABLE.
pub const PPI_TIMEOUT: FixedPpi = FixedPpi {
    channel: 22,
    event: TIMER0_BASE + 0x144,
    task: crate::adv_radio::RADIO_BASE + 0x010,
};
/// The pre-programmed PPI channel RADIO ADDRESS → TIMER0 CAPTURE\[1\].
pub const PPI_ADDRESS: FixedPpi = FixedPpi {
    channel: 26,
    event: crate::adv_radio::RADIO_BASE + 0x104,
    task: TIMER0_BASE + 0x044,
};
/// The three channels, as CHENSET/CHENCLR bits.
pub const PPI_CHANNELS: u32 =
    (1 << PPI_RXEN.channel) | (1 << PPI_TIMEOUT.channel) | (1 << PPI_ADDRESS.channel);

/// The timer's compare/capture registers, each for one purpose.
const CC_RXEN: usize = 0;
const CC_TIMEOUT_AND_ADDRESS: usize = 1;
const CC_NOW: usize = 3;

/// A PPI channel whose event and task endpoints the nRF52840 fixes in hardware (channels 20–31):
/// nothing is written to its EEP/TEP, it is only enabled and disabled. The addresses are the
/// Product Specification's; tests check them against the register layouts here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedPpi {
    pub channel: u8,
    /// The event register's address (EEP).
    pub event: usize,
    /// The task register's address (TEP).
    pub task: usize,
}

register_bitfields![u32,
    /// TIMER MODE.
    pub TimerMode [
        MODE OFFSET(0) NUMBITS(2) [Timer = 0, Counter = 1, LowPowerCounter = 2]
    ],
    /// TIMER BITMODE.
    pub Bitmode [
        BITMODE OFFSET(0) NUMBITS(2) [Bit16 = 0, Bit08 = 1, Bit24 = 2, Bit32 = 3]
    ],
    /// TIMER PRESCALER: f = 16 MHz / 2^PRESCALER.
    pub Prescaler [
        PRESCALER OFFSET(0) NUMBITS(4) []
    ]
];

register_structs! {
    /// The TIMER0 registers this driver uses (TIMER0 has four CC registers).
    pub TimerRegisters {
        (0x000 => pub tasks_start: ReadWrite<u32, Task::Register>),
        (0x004 => pub tasks_stop: ReadWrite<u32, Task::Register>),
        (0x008 => _reserved0),
        (0x040 => pub tasks_capture: [ReadWrite<u32, Task::Register>; 4]),
        (0x050 => _reserved1),
        (0x140 => pub events_compare: [ReadWrite<u32, Event::Register>; 4]),
        (0x150 => _reserved2),
        (0x304 => pub intenset: ReadWrite<u32>),
        (0x308 => pub intenclr: ReadWrite<u32>),
        (0x30C => _reserved3),
        (0x504 => pub mode: ReadWrite<u32, TimerMode::Register>),
        (0x508 => pub bitmode: ReadWrite<u32, Bitmode::Register>),
        (0x50C => _reserved4),
        (0x510 => pub prescaler: ReadWrite<u32, Prescaler::Register>),
        (0x514 => _reserved5),
        (0x540 => pub cc: [ReadWrite<u32>; 4]),
        (0x550 => @END),
    }
}

register_structs! {
    /// The PPI registers this driver uses: enabling and disabling channels.
    pub PpiRegisters {
        (0x000 => _reserved0),
        (0x500 => pub chen: ReadWrite<u32>),
        (0x504 => pub chenset: ReadWrite<u32>),
        (0x508 => pub chenclr: ReadWrite<u32>),
        (0x50C => @END),
    }
}

/// One receive: a packet whose first preamble bit lies in `[start_us, start_us + window_us]`
/// (TIMER0, 1 MHz, wrapping) on BLE channel index `channel` at `phy`. The follower's
/// `Op::Listen` carries the same type: it goes to [`AuxRadio::listen`] as it is.
pub use ble_ext::Listen;

/// Why a listen was refused. Nothing was armed; no completion follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenError {
    /// Not a BLE channel index (0–39).
    Channel(u8),
    /// More than 24 bits.
    CrcInit(u32),
    /// Longer than [`MAX_WINDOW_US`].
    WindowTooLong { window_us: u32 },
    /// RXEN had to fire at `rxen_us` for the RADIO to receive from `start_us` on; the timer was
    /// at `now_us`, past it (or `start_us` is more than 2³¹ µs ahead).
    StartPassed {
        start_us: u32,
        rxen_us: u32,
        now_us: u32,
    },
    /// A listen is outstanding (or being cancelled).
    Busy,
    /// The receive buffer is with the client ([`AuxRadio::buffer_back`]).
    BufferOut,
    /// The RADIO is not disabled: another driver is using it.
    RadioInUse,
}

/// Why a listen ended without a PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    /// No packet's access address before the timeout, or a packet cut by it.
    NothingInWindow,
    /// A packet came and its CRC failed.
    CrcError,
}

/// The completion of a listen: exactly one call per listen that was not refused or cancelled.
pub trait AuxClient {
    /// A PDU: `buf[..len]` (S0, LENGTH, payload). Give `buf` back with
    /// [`AuxRadio::buffer_back`].
    fn received(
        &self,
        listen: &Listen,
        address_us: u32,
        buf: &'static mut [u8; AUX_RX_BUF_LEN],
        len: usize,
    );
    fn missed(&self, listen: &Listen, why: Missed);
}

/// The frequency of BLE channel index `channel`, MHz above 2400 (the RADIO's FREQUENCY with
/// MAP = Default): 2402 MHz + 2 MHz steps over the 40 channels, the advertising channels 37,
/// 38 and 39 at 2402, 2426 and 2480 (Core Specification Vol 6 Part B §1.4.1).
pub const fn frequency_offset(channel: u8) -> Option<u32> {
    match channel {
        0..=10 => Some(4 + 2 * channel as u32),
        11..=36 => Some(6 + 2 * channel as u32),
        37 => Some(2),
        38 => Some(26),
        39 => Some(80),
        _ => None,
    }
}

/// Preamble and access address on air: from the packet's start to the end of its access
/// address, µs (40 at 1M, 24 at 2M). The follower subtracts the same figure, so it is ble-ext's.
pub use ble_ext::address_air_us;

/// From the access address's last bit on air to the RADIO's ADDRESS event, ns: 9.4 µs at 1M,
/// 5.0 µs at 2M (Nordic's measured nRF52840 figures, as Zephyr's controller uses them).
pub const fn rx_chain_delay_ns(phy: Phy) -> u32 {
    match phy {
        Phy::Le1M => 9_400,
        Phy::Le2M => 5_000,
    }
}

/// [`rx_chain_delay_ns`] rounded to the timer's µs: what is taken off the captured time.
pub const fn rx_chain_delay_us(phy: Phy) -> u32 {
    (rx_chain_delay_ns(phy) + 500) / 1000
}

/// From the window's end to the timeout: the latest ADDRESS event of a packet that starts at
/// the end of the window (the chain delay rounded up) and [`TIMEOUT_GUARD_US`].
pub const fn address_late_us(phy: Phy) -> u32 {
    address_air_us(phy) + rx_chain_delay_ns(phy).div_ceil(1000) + TIMEOUT_GUARD_US
}

/// TIMER0 `CC[0]`: when RXEN fires for a window opening at `start_us`.
pub const fn rxen_at(start_us: u32) -> u32 {
    start_us.wrapping_sub(RAMP_UP_US + RX_GUARD_US)
}

/// TIMER0 `CC[1]` before any ADDRESS: when DISABLE fires if no packet came.
pub const fn timeout_at(listen: &Listen) -> u32 {
    listen
        .start_us
        .wrapping_add(listen.window_us)
        .wrapping_add(address_late_us(listen.phy))
}

/// What the driver is doing.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Active {
    Idle,
    Listening(Listen),
    /// Cancelled while the RADIO was on: its DISABLED ends it, silently.
    Cancelling,
}

/// The driver. See the module docs.
pub struct AuxRadio<'a> {
    radio: StaticRef<RadioRegisters>,
    timer: StaticRef<TimerRegisters>,
    ppi: StaticRef<PpiRegisters>,
    active: Cell<Active>,
    timer_running: Cell<bool>,
    buffer: TakeCell<'static, [u8; AUX_RX_BUF_LEN]>,
    client: OptionalCell<&'a dyn AuxClient>,
}

impl<'a> AuxRadio<'a> {
    pub fn new(
        radio: StaticRef<RadioRegisters>,
        timer: StaticRef<TimerRegisters>,
        ppi: StaticRef<PpiRegisters>,
        buffer: &'static mut [u8; AUX_RX_BUF_LEN],
    ) -> AuxRadio<'a> {
        AuxRadio {
            radio,
            timer,
            ppi,
            active: Cell::new(Active::Idle),
            timer_running: Cell::new(false),
            buffer: TakeCell::new(buffer),
            client: OptionalCell::empty(),
        }
    }

    pub fn set_client(&self, client: &'a dyn AuxClient) {
        self.client.set(client);
    }

    /// TIMER0 now, µs (starting the timer on first use).
    pub fn now_us(&self) -> u32 {
        self.start_timer();
        self.timer.tasks_capture[CC_NOW].write(Task::TRIGGER::SET);
        self.timer.cc[CC_NOW].get()
    }

    /// Whether no listen is outstanding or being cancelled.
    pub fn is_idle(&self) -> bool {
        self.active.get() == Active::Idle
    }

    /// The receive buffer, back from the client.
    pub fn buffer_back(&self, buf: &'static mut [u8; AUX_RX_BUF_LEN]) {
        self.buffer.replace(buf);
    }

    /// Arm one receive (see the module docs). `Ok` means exactly one completion follows,
    /// unless [`AuxRadio::cancel`]led.
    pub fn listen(&self, listen: Listen) -> Result<(), ListenError> {
        let Some(frequency) = frequency_offset(listen.channel) else {
            return Err(ListenError::Channel(listen.channel));
        };
        if listen.crc_init > 0x00FF_FFFF {
            return Err(ListenError::CrcInit(listen.crc_init));
        }
        if listen.window_us > MAX_WINDOW_US {
            return Err(ListenError::WindowTooLong {
                window_us: listen.window_us,
            });
        }
        if self.active.get() != Active::Idle {
            return Err(ListenError::Busy);
        }
        let Some(pointer) = self.buffer.map(|b| b.as_ptr() as usize) else {
            return Err(ListenError::BufferOut);
        };
        if !self.radio.state.matches_all(State::STATE::Disabled) {
            return Err(ListenError::RadioInUse);
        }
        self.start_timer();
        self.program_radio(&listen, frequency, pointer);

        let rxen = rxen_at(listen.start_us);
        let timer = &self.timer;
        timer.events_compare[CC_RXEN].set(0);
        timer.events_compare[CC_TIMEOUT_AND_ADDRESS].set(0);
        timer.cc[CC_RXEN].set(rxen);
        timer.cc[CC_TIMEOUT_AND_ADDRESS].set(timeout_at(&listen));
        // The state first: whatever the hardware does from here on finds the listen.
        self.active.set(Active::Listening(listen));
        self.ppi.chenset.set(PPI_CHANNELS);

        // Too late? Asked of the hardware after the channels are on (see the module docs).
        let now = self.now_us();
        let ahead = rxen.wrapping_sub(now) as i32 > 0;
        let switched_on = !self.radio.state.matches_all(State::STATE::Disabled)
            || self.radio.events_ready.is_set(Event::GENERATED);
        if ahead || switched_on {
            return Ok(());
        }
        self.disarm();
        self.active.set(Active::Idle);
        Err(ListenError::StartPassed {
            start_us: listen.start_us,
            rxen_us: rxen,
            now_us: now,
        })
    }

    /// Abandon the outstanding listen: no completion follows. If the RADIO was on, it is
    /// disabled and the driver is idle once its DISABLED interrupt has come
    /// ([`AuxRadio::is_idle`]); otherwise at once.
    pub fn cancel(&self) {
        if let Active::Listening(_) = self.active.get() {
            // No PPI can switch the RADIO on from here.
            self.ppi.chenclr.set(PPI_CHANNELS);
            if self.radio.state.matches_all(State::STATE::Disabled) {
                self.disarm();
                self.active.set(Active::Idle);
            } else {
                self.active.set(Active::Cancelling);
                self.radio.tasks_disable.write(Task::TRIGGER::SET);
            }
        }
    }

    /// The RADIO interrupt. Does nothing unless a listen of this driver has ended.
    pub fn handle_interrupt(&self) {
        let listen = match self.active.get() {
            Active::Idle => return,
            Active::Cancelling | Active::Listening(_)
                if !self.radio.events_disabled.is_set(Event::GENERATED) =>
            {
                return
            }
            Active::Cancelling => {
                self.disarm();
                self.active.set(Active::Idle);
                return;
            }
            Active::Listening(listen) => listen,
        };
        let radio = &self.radio;
        let ended = radio.events_end.is_set(Event::GENERATED);
        let crc_ok = radio.crcstatus.matches_all(CrcStatus::CRCSTATUS::Ok);
        let captured = self.timer.cc[CC_TIMEOUT_AND_ADDRESS].get();
        self.disarm();
        self.active.set(Active::Idle);
        if !ended {
            self.client
                .map(|c| c.missed(&listen, Missed::NothingInWindow));
        } else if !crc_ok {
            self.client.map(|c| c.missed(&listen, Missed::CrcError));
        } else if let Some(buf) = self.buffer.take() {
            // What the RADIO wrote, never more than the buffer: computed in usize.
            let len = (HEADER_LEN + buf[1] as usize).min(AUX_RX_BUF_LEN);
            let address_us = captured.wrapping_sub(rx_chain_delay_us(listen.phy));
            match self.client.get() {
                Some(client) => client.received(&listen, address_us, buf, len),
                None => {
                    self.buffer.replace(buf);
                }
            }
        }
    }

    /// The channels off, the RADIO's interrupt and events cleared: nothing of the listen can
    /// act any more. The ramp-up goes back to its reset value (the RADIO is disabled here), so
    /// the legacy driver, which does not write MODECNF0, finds the RADIO as it always has.
    fn disarm(&self) {
        self.ppi.chenclr.set(PPI_CHANNELS);
        let radio = &self.radio;
        radio.intenclr.set(u32::MAX);
        radio
            .modecnf0
            .write(ModeCnf0::RU::Default + ModeCnf0::DTX::Center);
        radio.shorts.set(0);
        radio.events_disabled.set(0);
        radio.events_end.set(0);
        radio.events_address.set(0);
        radio.events_ready.set(0);
    }

    /// TIMER0 free-running at 1 MHz over 32 bits, once.
    fn start_timer(&self) {
        if self.timer_running.get() {
            return;
        }
        let timer = &self.timer;
        timer.tasks_stop.write(Task::TRIGGER::SET);
        timer.intenclr.set(u32::MAX);
        timer.mode.write(TimerMode::MODE::Timer);
        timer.bitmode.write(Bitmode::BITMODE::Bit32);
        // 16 MHz / 2^4.
        timer.prescaler.write(Prescaler::PRESCALER.val(4));
        timer.tasks_start.write(Task::TRIGGER::SET);
        self.timer_running.set(true);
    }

    fn program_radio(&self, listen: &Listen, frequency: u32, pointer: usize) {
        // Fast ramp-up; DTX at its reset value.
        self.radio
            .modecnf0
            .write(ModeCnf0::RU::Fast + ModeCnf0::DTX::Center);
        // The legacy driver leaves ADDRESS set: a listen starts with none of its events set.
        self.radio.events_address.set(0);
        self.radio.configure_ble(&BlePacket {
            frequency,
            channel_index: u32::from(listen.channel),
            phy: listen.phy,
            max_payload: MAX_PAYLOAD as u32,
            access_address: listen.access_address,
            crc_init: listen.crc_init,
            pointer,
        });
    }
}
