//! The nRF52840 RADIO in BLE 1 Mbit and 2 Mbit modes, register level, with the air around it:
//! nRF52840 Product Specification v1.7, section 6.20 (RADIO), and the Bluetooth Core
//! Specification v5.x, Vol 6 Part B 2.1 (packet format) for the on-air timing.
//!
//! - States: DISABLED → TXEN/RXEN → ramp-up (140 µs, or 40 µs with MODECNF0.RU = Fast: PS
//!   6.20.15 tTXEN/tRXEN and their FAST variants) → READY event → TXIDLE/RXIDLE → START → TX/RX → END event → TXIDLE/RXIDLE; DISABLE from any
//!   state gives DISABLED at once (the model takes tDISABLE as 0). SHORTS READY_START and
//!   END_DISABLE act as the PS describes. A task in a state where the PS gives it no meaning is
//!   an error, not ignored.
//! - Event n sits at 0x100 + 4n (READY 0, ADDRESS 1, PAYLOAD 2, END 3, DISABLED 4) with INTEN
//!   bit n; the interrupt line is high while an enabled event is set.
//! - Receive: listening on 2400 + FREQUENCY MHz, the RADIO takes the first packet put on air
//!   ([`Radio::air`]) on that frequency and at its PHY that starts after it began listening;
//!   ADDRESS comes when the access address has been received (`ble_ext::address_air_us`:
//!   preamble and access address, 40 µs at 1M, 24 µs at 2M, Core Vol 6 Part B 2.1: one preamble
//!   octet at 1M, two at 2M, 8 µs an octet at 1M, 4 µs at 2M; the receiver's chain delay is
//!   not modelled), END when its last CRC bit has arrived (`Phy::air_us`). EasyDMA writes S0, LENGTH and min(LENGTH, MAXLEN) payload bytes to
//!   PACKETPTR (data RAM only, PS 6.20.5): a packet longer than PCNF1.MAXLEN is cut there and its
//!   CRC reported as failed, so the RADIO never writes more than S0LEN + 1 + MAXLEN bytes.
//! - Transmit: START reads S0, LENGTH and the payload from PACKETPTR; END comes after the whole
//!   packet's air time; the packet goes to [`Radio::transmitted`]. With SHORTS.READY_START the
//!   model takes the buffer when TXEN is triggered (the START comes from inside the model, which
//!   has no memory access); a driver that changed the buffer during the 140 µs ramp-up would be
//!   seen sending the old bytes.
//! - Only the configuration BLE advertising uses is accepted: MODE Ble_1Mbit with an 8-bit
//!   preamble or Ble_2Mbit with a 16-bit one (PCNF0.PLEN), FREQUENCY one of the 40 BLE channels
//!   (2402–2480 MHz in 2 MHz steps, MAP Default), S0 1 byte, LENGTH 8 bits, no S1, a 3-byte
//!   base + prefix access address on logical address 0 (any address: advertising's or a
//!   periodic train's; a packet is heard only by a RADIO set for its own), 3-byte CRC (CRCINIT
//!   is not checked), PCNF1.MAXLEN up to 255. Anything else is refused by
//!   [`RadioError::Unsupported`] at START.
//! - A packet that starts while the RADIO is not receiving goes by: it is dropped from the air
//!   ([`Radio::passed`]); [`Radio::listening`] says whether packets on air matter now.
//! - Every event's occurrence is logged with its time ([`Radio::take_fired`]) for PPI
//!   ([`crate::radio_bus`]).

/// The world around the RADIO: whoever puts packets on air and listens to the RADIO's own.
pub trait Air {
    /// Puts on air ([`Radio::air`]) every packet due by `now_us` (and may queue later ones),
    /// and hears what the RADIO has sent ([`Radio::transmitted`]).
    fn pump(&mut self, now_us: u64, radio: &mut Radio);
    /// When the next packet goes on air, if one is planned.
    fn next_at(&self) -> Option<u64>;
}

/// One packet on air, as the RADIO's receiver sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AirPacket {
    /// Start of the preamble, µs on the simulated clock.
    pub at_us: u64,
    /// Channel centre frequency, MHz (2402 for BLE channel 37, 2426 for 38, 2480 for 39).
    pub mhz: u32,
    /// The PDU header's first byte.
    pub s0: u8,
    /// The LENGTH byte as sent (it need not match the payload).
    pub length: u8,
    /// The payload bytes on air.
    pub payload: Vec<u8>,
    /// Whether the CRC arrives intact.
    pub crc_ok: bool,
    /// Its PHY (a receiver at another PHY does not hear it).
    pub phy: Phy,
    /// Its access address (a receiver set for another does not hear it): advertising's
    /// 0x8E89BED6 ([`ADV_ACCESS_ADDRESS`]) or a periodic train's own.
    pub aa: u32,
}

/// The advertising channels' access address (Core Vol 6 Part B §2.1.2).
pub const ADV_ACCESS_ADDRESS: u32 = ble_ext::ADV_ACCESS_ADDRESS;

impl AirPacket {
    /// Air time: preamble (1 octet at 1M, 2 at 2M), access address 4, header 2, payload, CRC
    /// 3 octets, at 8 µs (1M) or 4 µs (2M) an octet.
    pub fn air_time_us(&self) -> u64 {
        u64::from(self.phy.air_us(self.payload.len()))
    }

    /// From its start to the RADIO's ADDRESS event.
    pub fn address_us(&self) -> u64 {
        u64::from(ble_ext::address_air_us(self.phy))
    }
}

pub use adv_transfer::bearer::Phy;

/// A packet the RADIO sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentPacket {
    pub at_us: u64,
    pub mhz: u32,
    pub s0: u8,
    pub length: u8,
    pub payload: Vec<u8>,
}

/// Why a RADIO access is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RadioError {
    /// A register the model does not know.
    Unknown,
    /// A task or configuration the model does not support, or the hardware would misbehave on.
    Unsupported(&'static str, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Disabled,
    RampUp {
        rx: bool,
        ready_at: u64,
    },
    Idle {
        rx: bool,
    },
    /// Receiving since `since`.
    Rx {
        since: u64,
    },
    /// Transmitting until `end_at`.
    Tx {
        end_at: u64,
    },
}

const RAMP_UP_US: u64 = 140;
const RAMP_UP_FAST_US: u64 = 40;
/// MODE values (PS 6.20.14.46).
const MODE_BLE_1MBIT: u32 = 3;
const MODE_BLE_2MBIT: u32 = 4;
/// MODECNF0 reset value: RU Default, DTX Center.
const MODECNF0_RESET: u32 = 0x200;
const EV_READY: u32 = 0;
const EV_ADDRESS: u32 = 1;
const EV_PAYLOAD: u32 = 2;
const EV_END: u32 = 3;
const EV_DISABLED: u32 = 4;
#[cfg(test)]
const ADV_BASE: u32 = 0x89BE_D600;
#[cfg(test)]
const ADV_PREFIX: u32 = 0x8E;

/// The RADIO.
#[derive(Clone, Debug)]
pub struct Radio {
    state: State,
    events: u32,
    inten: u32,
    shorts: u32,
    crcstatus: u32,
    packetptr: u32,
    frequency: u32,
    txpower: u32,
    mode: u32,
    pcnf0: u32,
    pcnf1: u32,
    base0: u32,
    base1: u32,
    prefix0: u32,
    prefix1: u32,
    txaddress: u32,
    rxaddresses: u32,
    crccnf: u32,
    crcpoly: u32,
    crcinit: u32,
    datawhiteiv: u32,
    modecnf0: u32,
    /// Packets scheduled on air, in time order, not yet past.
    air: std::collections::VecDeque<AirPacket>,
    /// The packet being received, the time its END comes and whether its ADDRESS came.
    receiving: Option<(AirPacket, u64, bool)>,
    /// Event occurrences (event number, µs) not yet taken.
    fired: Vec<(u32, u64)>,
    /// The transmit buffer taken at TXEN for a START by READY_START.
    pending_tx: Option<Vec<u8>>,
    /// A failure inside the model's own time steps (a START by READY_START the configuration
    /// refuses), reported by the next register access.
    fault: Option<RadioError>,
    /// Packets the RADIO sent.
    pub transmitted: Vec<SentPacket>,
    /// EasyDMA writes into RAM the caller applies: (address, bytes).
    pub dma_writes: Vec<(u32, Vec<u8>)>,
    /// Packets received whole (CRC good), cut at MAXLEN, or missed (the RADIO was not listening
    /// on that frequency at their start).
    pub received: u64,
    pub cut: u64,
    pub missed: u64,
    /// Packets that went by while the RADIO was not receiving (dropped from the air, so a long
    /// time disabled keeps no backlog).
    pub passed: u64,
    /// Packets received whole with a good CRC on a secondary advertising channel (not 2402,
    /// 2426 or 2480 MHz): the AUX_ADV_IND and AUX_CHAIN_IND of extended advertising.
    pub received_secondary: u64,
    ram: std::ops::Range<u32>,
}

impl Radio {
    /// Reset state; EasyDMA may reach `ram` (data RAM).
    pub fn new(ram: std::ops::Range<u32>) -> Self {
        Radio {
            state: State::Disabled,
            events: 0,
            inten: 0,
            shorts: 0,
            crcstatus: 0,
            packetptr: 0,
            frequency: 2,
            txpower: 0,
            mode: 0,
            pcnf0: 0,
            pcnf1: 0,
            base0: 0,
            base1: 0,
            prefix0: 0,
            prefix1: 0,
            txaddress: 0,
            rxaddresses: 0,
            crccnf: 0,
            crcpoly: 0,
            crcinit: 0,
            datawhiteiv: 0x40,
            modecnf0: MODECNF0_RESET,
            air: Default::default(),
            receiving: None,
            fired: Vec::new(),
            pending_tx: None,
            fault: None,
            transmitted: Vec::new(),
            dma_writes: Vec::new(),
            received: 0,
            cut: 0,
            missed: 0,
            received_secondary: 0,
            passed: 0,
            ram,
        }
    }

    /// Puts a packet on air (in time order of `at_us`).
    pub fn air(&mut self, packet: AirPacket) {
        let at = self.air.partition_point(|p| p.at_us <= packet.at_us);
        self.air.insert(at, packet);
    }

    fn mhz(&self) -> u32 {
        2400 + (self.frequency & 0x7F)
    }

    /// The PHY MODE selects (1M for anything but Ble_2Mbit; START refuses other modes).
    fn phy(&self) -> Phy {
        if self.mode & 0xF == MODE_BLE_2MBIT {
            Phy::Le2M
        } else {
            Phy::Le1M
        }
    }

    fn ramp_up_us(&self) -> u64 {
        if self.modecnf0 & 1 != 0 {
            RAMP_UP_FAST_US
        } else {
            RAMP_UP_US
        }
    }

    /// The access address the RADIO sends and listens for: BALEN 3, so BASE0's high three
    /// octets and PREFIX0.AP0 (PS 6.20.2, "Address configuration").
    pub fn access_address(&self) -> u32 {
        (self.base0 >> 8) | ((self.prefix0 & 0xFF) << 24)
    }

    /// Whether the RADIO receiving now hears `p`.
    fn hears(&self, p: &AirPacket, since: u64) -> bool {
        p.at_us >= since
            && p.mhz == self.mhz()
            && p.phy == self.phy()
            && p.aa == self.access_address()
    }

    /// The event occurrences since the last call: (event number, µs), in time order per event.
    pub fn take_fired(&mut self) -> Vec<(u32, u64)> {
        std::mem::take(&mut self.fired)
    }

    fn maxlen(&self) -> usize {
        (self.pcnf1 & 0xFF) as usize
    }

    fn set(&mut self, event: u32, at_us: u64) {
        self.events |= 1 << event;
        self.fired.push((event, at_us));
    }

    /// Runs the state machine up to `now_us`.
    pub fn advance(&mut self, now_us: u64) {
        loop {
            match self.state {
                State::RampUp { rx, ready_at } if ready_at <= now_us => {
                    self.set(EV_READY, ready_at);
                    self.state = State::Idle { rx };
                    if self.shorts & 1 != 0 {
                        // READY_START at the ramp-up's end.
                        if let Err(e) = self.start(ready_at, None) {
                            self.fault.get_or_insert(e);
                        }
                    }
                }
                State::Tx { end_at } if end_at <= now_us => {
                    self.set(EV_END, end_at);
                    self.state = State::Idle { rx: false };
                    if self.shorts & 2 != 0 {
                        self.disable(end_at);
                    }
                }
                State::Rx { since } => {
                    if self.receiving.is_none() {
                        // Packets that started before listening began, or on another
                        // frequency or PHY, pass by.
                        while self.air.front().is_some_and(|p| p.at_us <= now_us) {
                            let Some(p) = self.air.pop_front() else { break };
                            if self.hears(&p, since) {
                                let end = p.at_us + p.air_time_us();
                                self.receiving = Some((p, end, false));
                                break;
                            }
                            self.missed += 1;
                        }
                    }
                    match self.receiving.take() {
                        Some((p, end, address)) if end <= now_us => {
                            self.finish_rx(&p, end, address);
                            self.state = State::Idle { rx: true };
                            if self.shorts & 2 != 0 {
                                self.disable(end);
                            }
                        }
                        Some((p, end, mut address)) => {
                            let at = p.at_us + p.address_us();
                            if !address && at <= now_us {
                                self.set(EV_ADDRESS, at);
                                address = true;
                            }
                            self.receiving = Some((p, end, address));
                            return;
                        }
                        None => return,
                    }
                }
                _ => {
                    // Not receiving: what has started by now can never be received.
                    while self.air.front().is_some_and(|p| p.at_us < now_us) {
                        self.air.pop_front();
                        self.passed += 1;
                    }
                    return;
                }
            }
        }
    }

    /// Whether the RADIO is receiving or on its way to (RXEN given): then packets on air
    /// matter to it at their time.
    pub fn listening(&self) -> bool {
        matches!(
            self.state,
            State::RampUp { rx: true, .. } | State::Idle { rx: true } | State::Rx { .. }
        )
    }

    fn finish_rx(&mut self, p: &AirPacket, end: u64, address_came: bool) {
        if !address_came {
            self.set(EV_ADDRESS, p.at_us + p.address_us());
        }
        self.set(EV_PAYLOAD, end);
        self.set(EV_END, end);
        let maxlen = self.maxlen();
        let n = usize::from(p.length).min(maxlen).min(p.payload.len());
        let mut bytes = vec![p.s0, p.length];
        bytes.extend_from_slice(&p.payload[..n]);
        let too_long = usize::from(p.length) > maxlen;
        self.crcstatus = u32::from(p.crc_ok && !too_long && n == usize::from(p.length));
        if too_long {
            self.cut += 1;
        } else {
            self.received += 1;
            if self.crcstatus == 1 && ![2402, 2426, 2480].contains(&p.mhz) {
                self.received_secondary += 1;
            }
        }
        self.dma_writes.push((self.packetptr, bytes));
    }

    fn disable(&mut self, at_us: u64) {
        self.receiving = None;
        self.state = State::Disabled;
        self.set(EV_DISABLED, at_us);
    }

    fn check_config(&self) -> Result<(), RadioError> {
        let bad = |what, v| Err(RadioError::Unsupported(what, v));
        // PCNF0.PLEN: 0 8-bit, 1 16-bit preamble.
        let plen = (self.pcnf0 >> 24) & 3;
        match (self.mode & 0xF, plen) {
            (MODE_BLE_1MBIT, 0) | (MODE_BLE_2MBIT, 1) => {}
            (MODE_BLE_1MBIT | MODE_BLE_2MBIT, _) => {
                return bad(
                    "PCNF0.PLEN other than 8 bits at Ble_1Mbit or 16 bits at Ble_2Mbit",
                    self.pcnf0,
                )
            }
            _ => return bad("MODE other than Ble_1Mbit or Ble_2Mbit", self.mode),
        }
        let offset = self.frequency & 0x7F;
        if self.frequency & 0x100 != 0 || !(2..=80).contains(&offset) || !offset.is_multiple_of(2) {
            return bad(
                "FREQUENCY other than a BLE channel (2402-2480 MHz, MAP Default)",
                self.frequency,
            );
        }
        // LFLEN 8, S0LEN 1, S1LEN 0.
        if self.pcnf0 & 0xF != 8 || (self.pcnf0 >> 8) & 1 != 1 || (self.pcnf0 >> 16) & 0xF != 0 {
            return bad(
                "PCNF0 other than S0 1 byte, LENGTH 8 bits, no S1",
                self.pcnf0,
            );
        }
        if (self.pcnf1 >> 16) & 7 != 3 {
            return bad("PCNF1.BALEN other than 3", self.pcnf1);
        }
        if self.base0 & 0xFF != 0 {
            return bad("BASE0 low octet set with BALEN 3 (not sent)", self.base0);
        }
        if self.rxaddresses & !1 != 0 || self.txaddress != 0 {
            return bad(
                "logical address other than 0 (BASE0, PREFIX0.AP0)",
                self.rxaddresses,
            );
        }
        if self.crccnf & 3 != 3 {
            return bad("CRC length other than 3", self.crccnf);
        }
        let ptr = self.packetptr;
        if !self.ram.contains(&ptr) || !self.ram.contains(&(ptr + 2 + self.maxlen() as u32 - 1)) {
            return bad("PACKETPTR buffer outside data RAM (EasyDMA)", ptr);
        }
        Ok(())
    }

    /// The bytes a START write would read for a transmission: (address, length). The caller
    /// reads them from RAM and passes them to [`Radio::write`].
    pub fn dma_source(&self, offset: u32, value: u32) -> Option<(u32, u32)> {
        let trigger = value & 1 != 0;
        let start_in_txidle = offset == 0x008 && matches!(self.state, State::Idle { rx: false });
        let txen_to_start =
            offset == 0x000 && self.shorts & 1 != 0 && matches!(self.state, State::Disabled);
        (trigger && (start_in_txidle || txen_to_start))
            .then_some((self.packetptr, 2 + self.maxlen() as u32))
    }

    fn start(&mut self, now_us: u64, tx_bytes: Option<&[u8]>) -> Result<(), RadioError> {
        self.check_config()?;
        match self.state {
            State::Idle { rx: true } => {
                self.state = State::Rx { since: now_us };
            }
            State::Idle { rx: false } => {
                let taken = self.pending_tx.take();
                let bytes = tx_bytes
                    .or(taken.as_deref())
                    .filter(|b| b.len() >= 2)
                    .ok_or(RadioError::Unsupported(
                        "TX buffer unreadable",
                        self.packetptr,
                    ))?;
                let (s0, length) = (bytes[0], bytes[1]);
                let n = usize::from(length).min(self.maxlen()).min(bytes.len() - 2);
                let packet = SentPacket {
                    at_us: now_us,
                    mhz: self.mhz(),
                    s0,
                    length,
                    payload: bytes[2..2 + n].to_vec(),
                };
                let end = now_us + u64::from(self.phy().air_us(n));
                self.transmitted.push(packet);
                self.state = State::Tx { end_at: end };
            }
            other => {
                return Err(RadioError::Unsupported(
                    "START outside TXIDLE/RXIDLE",
                    match other {
                        State::Disabled => 0,
                        State::RampUp { .. } => 1,
                        _ => 2,
                    },
                ))
            }
        }
        Ok(())
    }

    /// Reads the register at `offset`.
    pub fn read(&mut self, offset: u32, now_us: u64) -> Result<u32, RadioError> {
        self.advance(now_us);
        if let Some(e) = self.fault.take() {
            return Err(e);
        }
        Ok(match offset {
            0x100..=0x110 => (self.events >> ((offset - 0x100) / 4)) & 1,
            0x200 => self.shorts,
            0x304 | 0x308 => self.inten,
            0x400 => self.crcstatus,
            0x504 => self.packetptr,
            0x508 => self.frequency,
            0x50C => self.txpower,
            0x510 => self.mode,
            0x514 => self.pcnf0,
            0x518 => self.pcnf1,
            0x51C => self.base0,
            0x520 => self.base1,
            0x524 => self.prefix0,
            0x528 => self.prefix1,
            0x52C => self.txaddress,
            0x530 => self.rxaddresses,
            0x534 => self.crccnf,
            0x538 => self.crcpoly,
            0x53C => self.crcinit,
            0x550 => match self.state {
                State::Disabled => 0,
                State::RampUp { rx: true, .. } => 1,
                State::Idle { rx: true } => 2,
                State::Rx { .. } => 3,
                State::RampUp { rx: false, .. } => 9,
                State::Idle { rx: false } => 10,
                State::Tx { .. } => 11,
            },
            0x554 => self.datawhiteiv,
            0x650 => self.modecnf0,
            _ => return Err(RadioError::Unknown),
        })
    }

    /// Writes the register at `offset`; `tx_bytes` are what [`Radio::dma_source`] named.
    pub fn write(
        &mut self,
        offset: u32,
        value: u32,
        now_us: u64,
        tx_bytes: Option<&[u8]>,
    ) -> Result<(), RadioError> {
        self.advance(now_us);
        if let Some(e) = self.fault.take() {
            return Err(e);
        }
        let busy = |s: State| !matches!(s, State::Disabled);
        match offset {
            0x000 | 0x004 if value & 1 != 0 => {
                if busy(self.state) {
                    return Err(RadioError::Unsupported(
                        "TXEN/RXEN while not DISABLED",
                        offset,
                    ));
                }
                self.state = State::RampUp {
                    rx: offset == 0x004,
                    ready_at: now_us + self.ramp_up_us(),
                };
                self.pending_tx = tx_bytes.map(<[u8]>::to_vec);
            }
            0x008 if value & 1 != 0 => self.start(now_us, tx_bytes)?,
            0x010 if value & 1 != 0 => self.disable(now_us),
            0x000..=0x010 => {}
            0x100..=0x110 => {
                let n = (offset - 0x100) / 4;
                if value & 1 == 0 {
                    self.events &= !(1 << n);
                } else {
                    self.events |= 1 << n;
                }
            }
            0x200 => self.shorts = value & 0b11,
            0x304 => self.inten |= value & 0x1F,
            0x308 => self.inten &= !(value & 0x1F),
            0x504 => self.packetptr = value,
            0x508 => self.frequency = value & 0x17F,
            0x50C => self.txpower = value & 0xFF,
            0x510 => self.mode = value & 0xF,
            0x514 => self.pcnf0 = value,
            0x518 => self.pcnf1 = value,
            0x51C => self.base0 = value,
            0x520 => self.base1 = value,
            0x524 => self.prefix0 = value,
            0x528 => self.prefix1 = value,
            0x52C => self.txaddress = value & 7,
            0x530 => self.rxaddresses = value & 0xFF,
            0x534 => self.crccnf = value,
            0x538 => self.crcpoly = value & 0xFF_FFFF,
            0x53C => self.crcinit = value & 0xFF_FFFF,
            0x554 => self.datawhiteiv = value & 0x7F,
            0x650 => self.modecnf0 = value & 0x301,
            _ => return Err(RadioError::Unknown),
        }
        Ok(())
    }

    /// Whether the interrupt line is high at `now_us`.
    pub fn irq(&mut self, now_us: u64) -> bool {
        self.advance(now_us);
        self.events & self.inten != 0
    }

    /// The next time the state machine changes on its own (for WFI to skip to).
    pub fn next_event_us(&self) -> Option<u64> {
        match self.state {
            State::RampUp { ready_at, .. } => Some(ready_at),
            State::Tx { end_at } => Some(end_at),
            State::Rx { since } => match &self.receiving {
                Some((p, end, address)) => Some(if !address {
                    p.at_us + p.address_us()
                } else {
                    *end
                }),
                None => self
                    .air
                    .iter()
                    .find(|p| self.hears(p, since))
                    .map(|p| p.at_us),
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: std::ops::Range<u32> = 0x2000_0000..0x2004_0000;
    const BUF: u32 = 0x2000_1000;

    fn configured() -> Radio {
        let mut r = Radio::new(RAM);
        for (o, v) in [
            (0x510, 3),
            (0x514, 0x0000_0108),
            (0x518, 0x0203_0025), // MAXLEN 37, BALEN 3, whitening
            (0x51C, ADV_BASE),
            (0x524, ADV_PREFIX),
            (0x534, 0x103),
            (0x504, BUF),
            (0x508, 2),
            (0x200, 0b11),
            (0x304, 1 << EV_DISABLED),
        ] {
            r.write(o, v, 0, None).unwrap();
        }
        r
    }

    fn packet(at: u64, length: u8, n: usize) -> AirPacket {
        AirPacket {
            at_us: at,
            mhz: 2402,
            s0: 0x42,
            length,
            payload: (0..n as u8).collect(),
            crc_ok: true,
            phy: Phy::Le1M,
            aa: ADV_ACCESS_ADDRESS,
        }
    }

    #[test]
    fn receives_a_packet_after_ramp_up_and_disables_on_end() {
        let mut r = configured();
        r.write(0x004, 1, 0, None).unwrap();
        r.air(packet(100, 20, 20)); // before READY at 140: missed
        r.air(packet(500, 20, 20));
        assert_eq!(r.read(0x550, 200), Ok(3), "RX after READY_START");
        assert_eq!(r.next_event_us(), Some(500));
        assert!(!r.irq(499));
        // END at 500 + 8 * 30.
        assert!(!r.irq(739));
        assert!(r.irq(740), "END_DISABLE gives DISABLED");
        assert_eq!(r.read(0x400, 740), Ok(1));
        let mut want = vec![0x42, 20];
        want.extend(0..20u8);
        assert_eq!(r.dma_writes, vec![(BUF, want)]);
        assert_eq!((r.received, r.missed), (1, 1));
    }

    #[test]
    fn a_length_255_packet_is_cut_at_maxlen() {
        let mut r = configured();
        r.write(0x004, 1, 0, None).unwrap();
        r.air(packet(300, 255, 255));
        assert!(r.irq(300 + 8 * 265));
        assert_eq!(r.read(0x400, 3000), Ok(0), "CRC error");
        assert_eq!(
            r.dma_writes[0].1.len(),
            2 + 37,
            "never past S0 + LENGTH + MAXLEN"
        );
        assert_eq!(r.cut, 1);
    }

    #[test]
    fn transmits_what_the_buffer_holds() {
        let mut buf = vec![0x42, 6];
        buf.extend_from_slice(b"status");
        buf.resize(39, 0);
        // READY_START: the buffer is taken at TXEN.
        let mut r = configured();
        r.write(0x000, 1, 0, None).unwrap();
        let mut r2 = configured();
        assert_eq!(r2.dma_source(0x000, 1), Some((BUF, 39)));
        r2.write(0x000, 1, 0, Some(&buf)).unwrap();
        r2.advance(140);
        assert_eq!(r2.transmitted[0].payload, b"status");
        assert!(r2.irq(140 + 8 * 16), "END, then DISABLED");
        // Without the bytes the START at READY fails, and the next access says so.
        r.advance(140);
        assert!(r.transmitted.is_empty());
        assert!(matches!(
            r.read(0x550, 141),
            Err(RadioError::Unsupported(..))
        ));
        // START by hand from TXIDLE.
        let mut r = configured();
        r.write(0x200, 0b10, 0, None).unwrap();
        r.write(0x000, 1, 0, None).unwrap();
        r.advance(140);
        assert_eq!(r.dma_source(0x008, 1), Some((BUF, 39)));
        r.write(0x008, 1, 140, Some(&buf)).unwrap();
        assert_eq!(r.transmitted[0].payload, b"status");
    }

    #[test]
    fn misconfiguration_and_unknown_registers_are_refused() {
        let mut r = configured();
        r.write(0x510, 4, 0, None).unwrap();
        r.write(0x004, 1, 0, None).unwrap();
        r.write(0x200, 0, 0, None).unwrap();
        r.advance(140);
        assert!(matches!(
            r.write(0x008, 1, 140, None),
            Err(RadioError::Unsupported(..))
        ));
        assert_eq!(r.read(0x700, 0), Err(RadioError::Unknown));
    }

    #[test]
    fn ble_2mbit_secondary_channels_and_maxlen_255() {
        let mut r = configured();
        // 2M needs the 16-bit preamble.
        r.write(0x510, MODE_BLE_2MBIT, 0, None).unwrap();
        r.write(0x004, 1, 0, None).unwrap();
        r.advance(140);
        assert!(matches!(
            r.read(0x550, 140),
            Err(RadioError::Unsupported(..))
        ));
        // BLE channel 20 (2446 MHz), 2M, MAXLEN 255, fast ramp-up: a 255-byte PDU whole.
        let mut r = configured();
        for (o, v) in [
            (0x510, MODE_BLE_2MBIT),
            (0x514, 0x0100_0108),
            (0x518, 0x0203_00FF),
        ] {
            r.write(o, v, 0, None).unwrap();
        }
        r.write(0x508, 46, 0, None).unwrap();
        r.write(0x650, 1, 0, None).unwrap();
        r.write(0x004, 1, 0, None).unwrap();
        let mut p = packet(60, 255, 255);
        p.mhz = 2446;
        p.phy = Phy::Le2M;
        r.air(p.clone());
        assert_eq!(r.read(0x550, 40), Ok(3), "RX after 40 us");
        assert_eq!(r.next_event_us(), Some(60));
        let end = 60 + 4 * (2 + 4 + 2 + 255 + 3);
        assert!(!r.irq(end - 1));
        assert!(r.irq(end));
        assert_eq!(r.read(0x400, end), Ok(1));
        assert_eq!(r.dma_writes[0].1.len(), 2 + 255);
        assert_eq!(r.received_secondary, 1);
        // The same packet at 1M is not heard by a 2M receiver.
        let mut r2 = r.clone();
        r2.write(0x004, 1, end, None).unwrap();
        p.at_us = end + 100;
        p.phy = Phy::Le1M;
        r2.air(p);
        r2.advance(end + 5_000);
        assert_eq!((r2.received, r2.missed), (1, 1));
        // A frequency that is no BLE channel is refused at START.
        for bad in [3, 1, 82, 0x100 | 2] {
            let mut r = configured();
            r.write(0x508, bad, 0, None).unwrap();
            r.write(0x004, 1, 0, None).unwrap();
            r.advance(140);
            assert!(
                matches!(r.read(0x550, 140), Err(RadioError::Unsupported(..))),
                "{bad:#x}"
            );
        }
    }

    #[test]
    fn packets_that_go_by_a_radio_not_receiving_leave_no_backlog() {
        let mut r = configured();
        assert!(!r.listening());
        for k in 0..1_000 {
            r.air(packet(100 * k, 20, 20));
        }
        r.advance(50_000);
        assert_eq!(r.passed, 500, "those started before 50 ms are gone");
        assert_eq!(
            r.next_event_us(),
            None,
            "nothing to wake for while disabled"
        );
        // Listening from 60 ms: the first packet it meets is the one at 60.1 ms.
        r.write(0x004, 1, 59_960, None).unwrap();
        assert!(r.listening());
        r.advance(60_100 + 8 * 30);
        assert_eq!(r.received, 1);
        assert_eq!(r.dma_writes.len(), 1);
        // END_DISABLE at 60.34 ms: 600 passed before RX, the one at 60.0 ms missed (before RX
        // began), those at 60.2 and 60.3 ms passed after the DISABLE.
        assert_eq!((r.passed, r.missed), (602, 1));
    }

    #[test]
    fn a_receiver_hears_only_its_access_address() {
        // Set for a periodic train's access address 0x5A3C96E1.
        let mut r = configured();
        r.write(0x51C, 0x3C96_E100, 0, None).unwrap();
        r.write(0x524, 0x5A, 0, None).unwrap();
        assert_eq!(r.access_address(), 0x5A3C_96E1);
        r.write(0x004, 1, 0, None).unwrap();
        r.air(packet(200, 20, 20)); // the advertising access address
        let mut train = packet(400, 20, 20);
        train.aa = 0x5A3C_96E1;
        r.air(train);
        r.advance(400 + 8 * 30);
        assert_eq!((r.received, r.missed), (1, 1));
        // BASE0's low octet is not sent with BALEN 3: refused at START.
        let mut r = configured();
        r.write(0x51C, 0x3C96_E1FF, 0, None).unwrap();
        r.write(0x004, 1, 0, None).unwrap();
        r.advance(140);
        assert!(matches!(
            r.read(0x550, 140),
            Err(RadioError::Unsupported(..))
        ));
    }
}
