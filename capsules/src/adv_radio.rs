//! nRF52840 RADIO for BLE legacy advertising: receive and transmit one PDU at a time, with the
//! receive bounded by the hardware.
//!
//! Why not upstream's `nrf52::ble_radio`: it programs `PCNF1.MAXLEN = 255` with a 1-byte S0 and
//! an 8-bit LENGTH field into a 255-byte buffer, so a packet whose LENGTH byte is 254 or 255 —
//! any nearby transmitter can send one — makes the RADIO's EasyDMA write up to two bytes past
//! the buffer (docs/tock-integration.md has the lines). Here the RAM layout is the same (S0,
//! LENGTH, payload) but `MAXLEN` is [`MAX_PAYLOAD`] (37, the longest legacy advertising
//! payload) and the receive buffer is `2 + MAXLEN` bytes, the most the RADIO writes for any
//! LENGTH: a longer packet is cut at `MAXLEN` by the hardware and reported as a failed receive.
//! The length handed to the client is computed in `usize` and capped at the buffer, never from
//! the LENGTH byte alone.
//!
//! It implements [`BleAdvertisementDriver`] and the scanner's [`RxControl`]: the HIL hands
//! the receive buffer to the client as `&'static mut` and has no way back, and this driver
//! receives into one buffer it owns, so the client gives it back ([`RxControl`]). The
//! buffer's type carries its length (`[u8; RX_BUF_LEN]`), so a buffer too short to be armed
//! cannot be given back. A receive asked for while the buffer is out starts when it comes back.
//!
//! Transmit refusals (`SIZE`: the PDU does not fit the buffer or `MAXLEN`; `BUSY`: a transmit is
//! in flight): [`TryTransmit::try_transmit`] returns them with the buffer and never calls the
//! transmit client; the scanner uses it. The HIL's `transmit_advertisement` has no return value,
//! so through it a refused buffer comes back by `transmit_event(buf, Err(..))` before the call
//! returns (the client is re-entered): clients that must not be use `try_transmit`.
//!
//! One operation at a time, driven by the shortcuts READY→START and END→DISABLE and the DISABLED
//! interrupt ([`AdvRadio::handle_interrupt`]). A receive asked for while one is outstanding
//! replaces it (the RADIO is disabled, then re-armed on the new channel): this is how a scanner
//! hops channel when nothing arrives. A transmit while receiving abandons the receive. A
//! transmit while another is in flight is refused (`BUSY`, see above).
//!
//! The register block is a `StaticRef` the board creates (the one `unsafe` step, in the board,
//! as for the QSPI block); everything here goes through `tock-registers`.
//!
//! Register offsets and fields: nRF52840 Product Specification v1.x, RADIO chapter.

use core::cell::Cell;

use adv_transfer::bearer::Phy;
use kernel::hil::ble_advertising::{BleAdvertisementDriver, RadioChannel, RxClient, TxClient};
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::utilities::registers::interfaces::{Readable, Writeable};
use kernel::utilities::registers::{register_bitfields, register_structs, ReadOnly, ReadWrite};
use kernel::utilities::StaticRef;
use kernel::ErrorCode;

use crate::bulk_scan::{RxControl, TryTransmit};

/// RADIO base address.
pub const RADIO_BASE: usize = 0x4000_1000;

/// Longest legacy advertising PDU payload (AdvA + AdvData), the `MAXLEN` programmed.
pub const MAX_PAYLOAD: usize = 37;
/// Bytes in RAM before the payload: S0 (the PDU header's first byte) and the LENGTH byte.
pub const HEADER_LEN: usize = 2;
/// The receive buffer: the most the RADIO writes with `MAXLEN` = [`MAX_PAYLOAD`].
pub const RX_BUF_LEN: usize = HEADER_LEN + MAX_PAYLOAD;

/// BLE CRC: 24 bits, polynomial x^24 + x^10 + x^9 + x^6 + x^4 + x^3 + x + 1, preset 0x555555.
pub(crate) const CRC_POLY: u32 = 0x0000_065B;
const CRC_INIT: u32 = ble_ext::ADV_CRC_INIT;

register_bitfields![u32,
    /// A task register: write 1 to trigger.
    pub Task [
        TRIGGER OFFSET(0) NUMBITS(1) []
    ],
    /// An event register: 1 when generated; write 0 to clear.
    pub Event [
        GENERATED OFFSET(0) NUMBITS(1) []
    ],
    /// SHORTS.
    pub Shorts [
        READY_START OFFSET(0) NUMBITS(1) [],
        END_DISABLE OFFSET(1) NUMBITS(1) []
    ],
    /// INTENSET / INTENCLR.
    pub Inten [
        READY OFFSET(0) NUMBITS(1) [],
        ADDRESS OFFSET(1) NUMBITS(1) [],
        PAYLOAD OFFSET(2) NUMBITS(1) [],
        END OFFSET(3) NUMBITS(1) [],
        DISABLED OFFSET(4) NUMBITS(1) []
    ],
    /// CRCSTATUS.
    pub CrcStatus [
        CRCSTATUS OFFSET(0) NUMBITS(1) [Error = 0, Ok = 1]
    ],
    /// FREQUENCY: 2400 MHz + FREQUENCY.
    pub Frequency [
        FREQUENCY OFFSET(0) NUMBITS(7) [],
        MAP OFFSET(8) NUMBITS(1) [Default = 0, Low = 1]
    ],
    /// MODE.
    pub Mode [
        MODE OFFSET(0) NUMBITS(4) [Ble1Mbit = 3, Ble2Mbit = 4]
    ],
    /// MODECNF0: ramp-up time (RU: tRXEN 140 µs by default, tRXEN,FAST 40 µs fast) and what
    /// is sent while not started (DTX). Reset value: RU Default, DTX Center.
    pub ModeCnf0 [
        RU OFFSET(0) NUMBITS(1) [Default = 0, Fast = 1],
        DTX OFFSET(8) NUMBITS(2) [B1 = 0, B0 = 1, Center = 2]
    ],
    /// STATE: what the RADIO is doing.
    pub State [
        STATE OFFSET(0) NUMBITS(4) [
            Disabled = 0,
            RxRu = 1,
            RxIdle = 2,
            Rx = 3,
            RxDisable = 4,
            TxRu = 9,
            TxIdle = 10,
            Tx = 11,
            TxDisable = 12
        ]
    ],
    /// PCNF0: sizes of the fields in RAM before the payload.
    pub Pcnf0 [
        /// LENGTH field, in bits.
        LFLEN OFFSET(0) NUMBITS(4) [],
        /// S0 field, in bytes.
        S0LEN OFFSET(8) NUMBITS(1) [],
        /// S1 field, in bits.
        S1LEN OFFSET(16) NUMBITS(4) [],
        S1INCL OFFSET(20) NUMBITS(1) [Automatic = 0, Include = 1],
        PLEN OFFSET(24) NUMBITS(2) [Bit8 = 0, Bit16 = 1]
    ],
    /// PCNF1.
    pub Pcnf1 [
        /// Longest payload the RADIO receives (and writes to RAM); longer packets are cut.
        MAXLEN OFFSET(0) NUMBITS(8) [],
        STATLEN OFFSET(8) NUMBITS(8) [],
        BALEN OFFSET(16) NUMBITS(3) [],
        ENDIAN OFFSET(24) NUMBITS(1) [Little = 0, Big = 1],
        WHITEEN OFFSET(25) NUMBITS(1) [Disabled = 0, Enabled = 1]
    ],
    /// PREFIX0.
    pub Prefix0 [
        AP0 OFFSET(0) NUMBITS(8) []
    ],
    /// TXADDRESS.
    pub TxAddress [
        TXADDRESS OFFSET(0) NUMBITS(3) []
    ],
    /// RXADDRESSES.
    pub RxAddresses [
        ADDR0 OFFSET(0) NUMBITS(1) []
    ],
    /// CRCCNF.
    pub CrcCnf [
        LEN OFFSET(0) NUMBITS(2) [Three = 3],
        SKIPADDR OFFSET(8) NUMBITS(2) [Include = 0, Skip = 1]
    ],
    /// DATAWHITEIV: the BLE channel index seeds the whitening LFSR.
    pub DataWhiteIv [
        IV OFFSET(0) NUMBITS(7) []
    ]
];

register_structs! {
    /// The RADIO registers this driver and [`crate::aux_radio`] use; the gaps are reserved or
    /// unused.
    pub RadioRegisters {
        (0x000 => pub tasks_txen: ReadWrite<u32, Task::Register>),
        (0x004 => pub tasks_rxen: ReadWrite<u32, Task::Register>),
        (0x008 => _reserved0),
        (0x010 => pub tasks_disable: ReadWrite<u32, Task::Register>),
        (0x014 => _reserved1),
        (0x100 => pub events_ready: ReadWrite<u32, Event::Register>),
        (0x104 => pub events_address: ReadWrite<u32, Event::Register>),
        (0x108 => pub events_payload: ReadWrite<u32, Event::Register>),
        (0x10C => pub events_end: ReadWrite<u32, Event::Register>),
        (0x110 => pub events_disabled: ReadWrite<u32, Event::Register>),
        (0x114 => _reserved2),
        (0x200 => pub shorts: ReadWrite<u32, Shorts::Register>),
        (0x204 => _reserved3),
        (0x304 => pub intenset: ReadWrite<u32, Inten::Register>),
        (0x308 => pub intenclr: ReadWrite<u32, Inten::Register>),
        (0x30C => _reserved4),
        (0x400 => pub crcstatus: ReadOnly<u32, CrcStatus::Register>),
        (0x404 => _reserved5),
        (0x504 => pub packetptr: ReadWrite<u32>),
        (0x508 => pub frequency: ReadWrite<u32, Frequency::Register>),
        (0x50C => pub txpower: ReadWrite<u32>),
        (0x510 => pub mode: ReadWrite<u32, Mode::Register>),
        (0x514 => pub pcnf0: ReadWrite<u32, Pcnf0::Register>),
        (0x518 => pub pcnf1: ReadWrite<u32, Pcnf1::Register>),
        (0x51C => pub base0: ReadWrite<u32>),
        (0x520 => pub base1: ReadWrite<u32>),
        (0x524 => pub prefix0: ReadWrite<u32, Prefix0::Register>),
        (0x528 => pub prefix1: ReadWrite<u32>),
        (0x52C => pub txaddress: ReadWrite<u32, TxAddress::Register>),
        (0x530 => pub rxaddresses: ReadWrite<u32, RxAddresses::Register>),
        (0x534 => pub crccnf: ReadWrite<u32, CrcCnf::Register>),
        (0x538 => pub crcpoly: ReadWrite<u32>),
        (0x53C => pub crcinit: ReadWrite<u32>),
        (0x540 => _reserved6),
        (0x550 => pub state: ReadOnly<u32, State::Register>),
        (0x554 => pub datawhiteiv: ReadWrite<u32, DataWhiteIv::Register>),
        (0x558 => _reserved7),
        (0x650 => pub modecnf0: ReadWrite<u32, ModeCnf0::Register>),
        (0x654 => @END),
    }
}

/// One BLE packet's RADIO set-up, as [`AdvRadio`] and [`crate::aux_radio`] each program it
/// before enabling RX or TX: S0, an 8-bit LENGTH, the access address, the 24-bit BLE CRC,
/// whitening, READY→START and END→DISABLE, and the DISABLED interrupt alone.
pub(crate) struct BlePacket {
    /// FREQUENCY: MHz above 2400.
    pub frequency: u32,
    /// The BLE channel index, which seeds the whitening.
    pub channel_index: u32,
    /// MODE and the preamble's length.
    pub phy: Phy,
    /// `PCNF1.MAXLEN`.
    pub max_payload: u32,
    pub access_address: u32,
    /// 24 bits.
    pub crc_init: u32,
    /// EasyDMA address of the packet in RAM.
    pub pointer: usize,
}

impl RadioRegisters {
    /// Program `packet` (the RADIO is disabled) and clear READY, END and DISABLED.
    pub(crate) fn configure_ble(&self, packet: &BlePacket) {
        self.intenclr.set(u32::MAX);
        let (mode, preamble) = match packet.phy {
            Phy::Le1M => (Mode::MODE::Ble1Mbit, Pcnf0::PLEN::Bit8),
            Phy::Le2M => (Mode::MODE::Ble2Mbit, Pcnf0::PLEN::Bit16),
        };
        self.mode.write(mode);
        self.frequency
            .write(Frequency::FREQUENCY.val(packet.frequency) + Frequency::MAP::Default);
        self.datawhiteiv
            .write(DataWhiteIv::IV.val(packet.channel_index));
        self.pcnf0.write(
            Pcnf0::LFLEN.val(8)
                + Pcnf0::S0LEN.val(1)
                + Pcnf0::S1LEN.val(0)
                + Pcnf0::S1INCL::Automatic
                + preamble,
        );
        self.pcnf1.write(
            Pcnf1::MAXLEN.val(packet.max_payload)
                + Pcnf1::STATLEN.val(0)
                + Pcnf1::BALEN.val(3)
                + Pcnf1::ENDIAN::Little
                + Pcnf1::WHITEEN::Enabled,
        );
        // BALEN 3: the address's low three octets are BASE0's high three, its high octet is
        // the prefix.
        self.base0.set(packet.access_address << 8);
        self.prefix0
            .write(Prefix0::AP0.val(packet.access_address >> 24));
        self.txaddress.write(TxAddress::TXADDRESS.val(0));
        self.rxaddresses.write(RxAddresses::ADDR0::SET);
        self.crccnf
            .write(CrcCnf::LEN::Three + CrcCnf::SKIPADDR::Skip);
        self.crcpoly.set(CRC_POLY);
        self.crcinit.set(packet.crc_init);
        // EasyDMA address: RAM is below 4 GiB on the nRF52840 (a 32-bit part).
        self.packetptr.set(packet.pointer as u32);
        self.shorts
            .write(Shorts::READY_START::SET + Shorts::END_DISABLE::SET);
        self.events_ready.set(0);
        self.events_end.set(0);
        self.events_disabled.set(0);
        self.intenset.write(Inten::DISABLED::SET);
    }
}

/// What the RADIO is doing.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Active {
    Idle,
    Receiving(RadioChannel),
    Transmitting,
    /// TASKS_DISABLE is out to end a receive; DISABLED starts what is pending.
    Disabling,
}

/// The driver. See the module docs.
pub struct AdvRadio<'a> {
    regs: StaticRef<RadioRegisters>,
    active: Cell<Active>,
    /// A receive waiting for the RADIO (being disabled) or for the buffer (with the client).
    pending_rx: Cell<Option<RadioChannel>>,
    /// A transmit waiting for the RADIO to be disabled; its PDU is in `tx_buffer`.
    pending_tx: Cell<Option<RadioChannel>>,
    rx_buffer: TakeCell<'static, [u8; RX_BUF_LEN]>,
    tx_buffer: TakeCell<'static, [u8]>,
    rx_client: OptionalCell<&'a dyn RxClient>,
    tx_client: OptionalCell<&'a dyn TxClient>,
}

impl<'a> AdvRadio<'a> {
    pub fn new(
        regs: StaticRef<RadioRegisters>,
        rx_buffer: &'static mut [u8; RX_BUF_LEN],
    ) -> AdvRadio<'a> {
        AdvRadio {
            regs,
            active: Cell::new(Active::Idle),
            pending_rx: Cell::new(None),
            pending_tx: Cell::new(None),
            rx_buffer: TakeCell::new(rx_buffer),
            tx_buffer: TakeCell::empty(),
            rx_client: OptionalCell::empty(),
            tx_client: OptionalCell::empty(),
        }
    }

    /// The RADIO interrupt.
    pub fn handle_interrupt(&self) {
        if !self.regs.events_disabled.is_set(Event::GENERATED) {
            return;
        }
        self.regs.events_disabled.set(0);
        let ended = self.regs.events_end.is_set(Event::GENERATED);
        self.regs.events_end.set(0);
        match self.active.replace(Active::Idle) {
            Active::Receiving(_) if ended => self.receive_done(),
            // Disabled without a packet (not by this driver): listen again.
            Active::Receiving(channel) => {
                if self.pending_rx.get().is_none() {
                    self.pending_rx.set(Some(channel));
                }
            }
            Active::Transmitting => {
                if let Some(buf) = self.tx_buffer.take() {
                    self.tx_client.map(|c| c.transmit_event(buf, Ok(())));
                }
            }
            Active::Disabling | Active::Idle => {}
        }
        self.start_pending();
    }

    fn receive_done(&self) {
        let Some(buf) = self.rx_buffer.take() else {
            return;
        };
        let result = if buf[1] as usize > MAX_PAYLOAD {
            // Cut at MAXLEN (its CRC fails too).
            Err(ErrorCode::SIZE)
        } else if !self.regs.crcstatus.matches_all(CrcStatus::CRCSTATUS::Ok) {
            Err(ErrorCode::FAIL)
        } else {
            Ok(())
        };
        // What the RADIO wrote, never more than the buffer: computed in usize, not from the
        // LENGTH byte plus 2 in a u8.
        let len = (HEADER_LEN + (buf[1] as usize).min(MAX_PAYLOAD)).min(RX_BUF_LEN);
        match self.rx_client.get() {
            Some(client) => client.receive_event(buf, len as u8, result),
            None => {
                self.rx_buffer.replace(buf);
            }
        }
    }

    /// Start what waits, if the RADIO is idle: a transmit first, then a receive.
    fn start_pending(&self) {
        if self.active.get() != Active::Idle {
            return;
        }
        if let Some(channel) = self.pending_tx.take() {
            self.start(channel, false);
        } else if let Some(channel) = self.pending_rx.get() {
            if self.rx_buffer.is_some() {
                self.pending_rx.set(None);
                self.start(channel, true);
            }
        }
    }

    /// Configure for BLE advertising on `channel` and enable RX or TX; READY→START and
    /// END→DISABLE run the packet, DISABLED interrupts.
    fn start(&self, channel: RadioChannel, receive: bool) {
        let regs = &self.regs;
        let pointer = if receive {
            self.rx_buffer.map(|b| b.as_ptr() as usize)
        } else {
            self.tx_buffer.map(|b| b.as_ptr() as usize)
        };
        let Some(pointer) = pointer else {
            return;
        };
        regs.txpower.set(0); // 0 dBm
        regs.configure_ble(&BlePacket {
            frequency: channel as u32,
            channel_index: channel.get_channel_index(),
            phy: Phy::Le1M,
            max_payload: MAX_PAYLOAD as u32,
            access_address: ble_ext::ADV_ACCESS_ADDRESS,
            crc_init: CRC_INIT,
            pointer,
        });
        if receive {
            self.active.set(Active::Receiving(channel));
            regs.tasks_rxen.write(Task::TRIGGER::SET);
        } else {
            self.active.set(Active::Transmitting);
            regs.tasks_txen.write(Task::TRIGGER::SET);
        }
    }

    /// End a receive in progress; DISABLED then starts what is pending.
    fn disable(&self) {
        self.active.set(Active::Disabling);
        self.regs.tasks_disable.write(Task::TRIGGER::SET);
    }
}

impl TryTransmit for AdvRadio<'_> {
    fn try_transmit(
        &self,
        buf: &'static mut [u8],
        len: usize,
        channel: RadioChannel,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        // The RADIO sends S0, LENGTH and LENGTH payload bytes from the buffer: all of them must
        // be in it, and LENGTH within MAXLEN, or EasyDMA reads past it.
        let fits = len >= HEADER_LEN
            && len <= buf.len()
            && buf[1] as usize == len - HEADER_LEN
            && len - HEADER_LEN <= MAX_PAYLOAD;
        if !fits {
            return Err((ErrorCode::SIZE, buf));
        }
        if self.tx_buffer.is_some() || matches!(self.active.get(), Active::Transmitting) {
            return Err((ErrorCode::BUSY, buf));
        }
        self.tx_buffer.replace(buf);
        // Transmitting abandons a receive, outstanding or pending.
        self.pending_rx.set(None);
        self.pending_tx.set(Some(channel));
        match self.active.get() {
            Active::Receiving(_) => self.disable(),
            Active::Disabling => {}
            _ => self.start_pending(),
        }
        Ok(())
    }
}

impl<'a> BleAdvertisementDriver<'a> for AdvRadio<'a> {
    /// [`TryTransmit::try_transmit`]; a refusal comes back through `transmit_event` before this
    /// returns, the HIL having no other way (see the module docs).
    fn transmit_advertisement(&self, buf: &'static mut [u8], len: usize, channel: RadioChannel) {
        if let Err((e, buf)) = self.try_transmit(buf, len, channel) {
            self.tx_client.map(|c| c.transmit_event(buf, Err(e)));
        }
    }

    fn receive_advertisement(&self, channel: RadioChannel) {
        self.pending_rx.set(Some(channel));
        match self.active.get() {
            // Re-target: end this receive, DISABLED starts the new one.
            Active::Receiving(_) => self.disable(),
            Active::Idle => self.start_pending(),
            // Starts once the transmit or the disable is done.
            Active::Transmitting | Active::Disabling => {}
        }
    }

    fn set_receive_client(&self, client: &'a dyn RxClient) {
        self.rx_client.set(client);
    }

    fn set_transmit_client(&self, client: &'a dyn TxClient) {
        self.tx_client.set(client);
    }
}

impl RxControl for AdvRadio<'_> {
    fn rx_buffer_back(&self, buf: &'static mut [u8; RX_BUF_LEN]) {
        self.rx_buffer.replace(buf);
        self.start_pending();
    }

    /// Drop a pending receive and disable the RADIO if it is receiving (DISABLED then finds
    /// nothing to start); a transmit in progress goes on.
    fn stop_receive(&self) {
        self.pending_rx.set(None);
        if let Active::Receiving(_) = self.active.get() {
            self.disable();
        }
    }
}
