//! The Common Extended Advertising Payload Format (Bluetooth Core Specification 5.x, Vol 6
//! Part B §2.3.4) as the RADIO delivers a PDU: a 2-octet header (PDU type in bits 0–3, ChSel
//! bit 5, TxAdd bit 6, RxAdd bit 7; the payload length in the second octet), then the payload:
//!
//! | octets | field |
//! |---|---|
//! | 1 | extended header length (bits 0–5), AdvMode (bits 6–7) |
//! | extended header length | flags octet (if the length is not 0), then the fields the flags name, in this order: AdvA 6, TargetA 6, CTEInfo 1, ADI 2, AuxPtr 3, SyncInfo 18, TxPower 1; what is left of the extended header is ACAD |
//! | the rest | AdvData |
//!
//! ADV_EXT_IND, AUX_ADV_IND, AUX_CHAIN_IND and AUX_SYNC_IND share PDU type 0b0111 (§2.3): which
//! one a PDU is follows from where it was received, which the [`Follower`](crate::Follower)
//! knows. [`ExtPdu::parse`] checks every length and reserved value it depends on and names what
//! is wrong; [`Builder`] writes a PDU (tests, fuzzing, models).
use adv_transfer::bearer::{Phy, AUX_OFFSET_UNIT_US, PERIODIC_INTERVAL_UNIT_US};

/// PDU type of every extended advertising PDU on the advertising channels.
pub const PDU_TYPE_EXT: u8 = 0b0111;
/// Octets of the PDU header.
pub const HEADER_LEN: usize = 2;
/// The long AuxPtr / SyncInfo offset unit, µs.
pub const OFFSET_UNIT_LONG_US: u32 = 300;
/// What SyncInfo's Offset Adjust adds to the sync packet offset, µs (2.4576 s).
pub const SYNC_OFFSET_ADJUST_US: u32 = 2_457_600;
/// Highest secondary (general purpose) channel index an AuxPtr may name.
pub const MAX_DATA_CHANNEL: u8 = 36;
/// Shortest periodic advertising interval in its 1.25 ms units (7.5 ms).
pub const SYNC_INTERVAL_MIN_UNITS: u16 = 6;

const FLAG_ADV_A: u8 = 1 << 0;
const FLAG_TARGET_A: u8 = 1 << 1;
const FLAG_CTE_INFO: u8 = 1 << 2;
const FLAG_ADI: u8 = 1 << 3;
const FLAG_AUX_PTR: u8 = 1 << 4;
const FLAG_SYNC_INFO: u8 = 1 << 5;
const FLAG_TX_POWER: u8 = 1 << 6;
/// Field sizes in flag-bit order (AdvA … TxPower).
const FIELD_LEN: [usize; 7] = [6, 6, 1, 2, 3, 18, 1];
/// Longest extended header (6 bits) and the SyncInfo field.
pub const EXT_HEADER_MAX: usize = 63;
pub const SYNC_INFO_LEN: usize = 18;

/// What is wrong with a PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PduError {
    /// Fewer than the 2 header octets.
    NoHeader { len: usize },
    /// Not PDU type 0b0111 (a legacy PDU, or AUX_CONNECT_RSP).
    NotExtended { pdu_type: u8 },
    /// The header's length octet names more payload than was received.
    Truncated { length: u8, received: usize },
    /// A payload of 0 octets: no extended header length octet.
    EmptyPayload,
    /// The extended header length runs past the payload.
    ExtHeaderPastPayload { ext_header: u8, payload: u8 },
    /// The fields the flags announce need more octets than the extended header has.
    FieldsPastExtHeader {
        flags: u8,
        needed: usize,
        ext_header: u8,
    },
    /// AdvMode 0b11 is reserved.
    ReservedAdvMode,
    /// An AuxPtr names a channel index above 36 (not a secondary channel).
    AuxChannel { channel: u8 },
    /// An AuxPtr names a reserved PHY (3–7).
    AuxPhy { code: u8 },
    /// A SyncInfo interval under 7.5 ms (6 units of 1.25 ms).
    SyncInterval { units: u16 },
    /// A SyncInfo channel map with fewer than 2 used channels (bits 0–36).
    SyncChannelMap { used: u8 },
}

impl core::fmt::Display for PduError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            PduError::NoHeader { len } => write!(f, "{len} octets: no 2-octet PDU header"),
            PduError::NotExtended { pdu_type } => {
                write!(
                    f,
                    "PDU type {pdu_type:#06b} is not an extended advertising PDU"
                )
            }
            PduError::Truncated { length, received } => write!(
                f,
                "header says {length} payload octets, {received} received"
            ),
            PduError::EmptyPayload => write!(f, "empty payload: no extended header length"),
            PduError::ExtHeaderPastPayload {
                ext_header,
                payload,
            } => write!(
                f,
                "extended header of {ext_header} octets in a payload of {payload}"
            ),
            PduError::FieldsPastExtHeader {
                flags,
                needed,
                ext_header,
            } => write!(
                f,
                "flags {flags:#04x} need {needed} octets, the extended header has {ext_header}"
            ),
            PduError::ReservedAdvMode => write!(f, "AdvMode 0b11 is reserved"),
            PduError::AuxChannel { channel } => {
                write!(
                    f,
                    "AuxPtr channel index {channel} is not a secondary channel"
                )
            }
            PduError::AuxPhy { code } => write!(f, "AuxPtr PHY {code} is reserved"),
            PduError::SyncInterval { units } => {
                write!(f, "SyncInfo interval {units} × 1.25 ms is under 7.5 ms")
            }
            PduError::SyncChannelMap { used } => {
                write!(
                    f,
                    "SyncInfo channel map uses {used} channels, at least 2 needed"
                )
            }
        }
    }
}

/// AdvMode (§2.3.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdvMode {
    NonConnectableNonScannable = 0,
    Connectable = 1,
    Scannable = 2,
}

/// Advertising Data Info (§2.3.4.4): the set's data identifier (12 bits) and set id (4 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Adi {
    pub did: u16,
    pub sid: u8,
}

impl Adi {
    pub fn from_bytes(b: [u8; 2]) -> Adi {
        let v = u16::from_le_bytes(b);
        Adi {
            did: v & 0x0FFF,
            sid: (v >> 12) as u8,
        }
    }
    pub fn to_bytes(self) -> [u8; 2] {
        ((self.did & 0x0FFF) | (u16::from(self.sid & 0x0F) << 12)).to_le_bytes()
    }
}

/// The PHY an AuxPtr names (§2.3.4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuxPhy {
    Le1M,
    Le2M,
    /// LE Coded: valid, but not followed here (the DK's bearers are 1M and 2M).
    Coded,
}

impl AuxPhy {
    pub fn phy(self) -> Option<Phy> {
        match self {
            AuxPhy::Le1M => Some(Phy::Le1M),
            AuxPhy::Le2M => Some(Phy::Le2M),
            AuxPhy::Coded => None,
        }
    }
    fn code(self) -> u8 {
        match self {
            AuxPhy::Le1M => 0,
            AuxPhy::Le2M => 1,
            AuxPhy::Coded => 2,
        }
    }
}

impl From<Phy> for AuxPhy {
    fn from(p: Phy) -> AuxPhy {
        match p {
            Phy::Le1M => AuxPhy::Le1M,
            Phy::Le2M => AuxPhy::Le2M,
        }
    }
}

/// Where the next PDU of the chain is (§2.3.4.5): 3 octets, channel index bits 0–5, clock
/// accuracy bit 6, offset units bit 7, offset bits 8–20, PHY bits 21–23.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuxPtr {
    pub channel: u8,
    /// CA: the sender's clock is within 50 ppm (else within 500 ppm).
    pub ca_50ppm: bool,
    /// Offset units of 300 µs (else 30 µs).
    pub units_300us: bool,
    /// AUX Offset, 13 bits. 0: the sender will not send the packet.
    pub offset: u16,
    pub phy: AuxPhy,
}

impl AuxPtr {
    pub fn unit_us(&self) -> u32 {
        if self.units_300us {
            OFFSET_UNIT_LONG_US
        } else {
            AUX_OFFSET_UNIT_US
        }
    }
    /// From the start of the packet holding the AuxPtr to the earliest start of the packet it
    /// points to, µs; the packet starts less than one unit later.
    pub fn offset_us(&self) -> u32 {
        u32::from(self.offset) * self.unit_us()
    }
    /// The sender's clock accuracy the CA bit declares, ppm.
    pub fn sca_ppm(&self) -> u32 {
        if self.ca_50ppm {
            50
        } else {
            500
        }
    }
    fn parse(b: &[u8]) -> Result<AuxPtr, PduError> {
        let channel = b[0] & 0x3F;
        if channel > MAX_DATA_CHANNEL {
            return Err(PduError::AuxChannel { channel });
        }
        let phy = match b[2] >> 5 {
            0 => AuxPhy::Le1M,
            1 => AuxPhy::Le2M,
            2 => AuxPhy::Coded,
            code => return Err(PduError::AuxPhy { code }),
        };
        Ok(AuxPtr {
            channel,
            ca_50ppm: b[0] & 0x40 != 0,
            units_300us: b[0] & 0x80 != 0,
            offset: u16::from(b[1]) | (u16::from(b[2] & 0x1F) << 8),
            phy,
        })
    }
    pub fn to_bytes(&self) -> [u8; 3] {
        [
            (self.channel & 0x3F)
                | if self.ca_50ppm { 0x40 } else { 0 }
                | if self.units_300us { 0x80 } else { 0 },
            self.offset as u8,
            ((self.offset >> 8) as u8 & 0x1F) | (self.phy.code() << 5),
        ]
    }
}

/// How to find a periodic advertising train (§2.3.4.6), 18 octets: offset (13 bits), offset
/// units, offset adjust; interval; channel map (37 bits) and SCA (3 bits); access address;
/// CRCInit; the event counter of the AUX_SYNC_IND at the offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncInfo {
    /// Sync Packet Offset, 13 bits. 0: too far to say; look again later.
    pub offset: u16,
    pub units_300us: bool,
    /// Offset Adjust: add 2.4576 s.
    pub offset_adjust: bool,
    /// Interval in units of 1.25 ms.
    pub interval: u16,
    /// Channel map, bit i = data channel i (37 bits).
    pub channel_map: u64,
    /// SCA code 0–7 (§2.3.4.6 table): 0 is 251–500 ppm … 7 is 0–20 ppm.
    pub sca: u8,
    pub access_address: u32,
    /// 24 bits.
    pub crc_init: u32,
    pub event_counter: u16,
}

/// Sleep clock accuracy codes (SCA of SyncInfo, §2.3.4.6): the upper bound of each range, ppm.
pub const SCA_PPM: [u32; 8] = [500, 250, 150, 100, 75, 50, 30, 20];

impl SyncInfo {
    /// From the start of the AUX_ADV_IND to the earliest start of the AUX_SYNC_IND, µs.
    pub fn offset_us(&self) -> u32 {
        let unit = if self.units_300us {
            OFFSET_UNIT_LONG_US
        } else {
            AUX_OFFSET_UNIT_US
        };
        u32::from(self.offset) * unit
            + if self.offset_adjust {
                SYNC_OFFSET_ADJUST_US
            } else {
                0
            }
    }
    pub fn unit_us(&self) -> u32 {
        if self.units_300us {
            OFFSET_UNIT_LONG_US
        } else {
            AUX_OFFSET_UNIT_US
        }
    }
    pub fn interval_us(&self) -> u32 {
        u32::from(self.interval) * PERIODIC_INTERVAL_UNIT_US
    }
    /// The advertiser's sleep clock accuracy, ppm (the upper bound its code names).
    pub fn sca_ppm(&self) -> u32 {
        SCA_PPM[usize::from(self.sca & 7)]
    }
    fn parse(b: &[u8]) -> Result<SyncInfo, PduError> {
        let w0 = u16::from_le_bytes([b[0], b[1]]);
        let interval = u16::from_le_bytes([b[2], b[3]]);
        if interval < SYNC_INTERVAL_MIN_UNITS {
            return Err(PduError::SyncInterval { units: interval });
        }
        let mut map5 = [0u8; 8];
        map5[..5].copy_from_slice(&b[4..9]);
        let raw = u64::from_le_bytes(map5);
        let channel_map = raw & ((1 << 37) - 1);
        let used = channel_map.count_ones() as u8;
        if used < 2 {
            return Err(PduError::SyncChannelMap { used });
        }
        Ok(SyncInfo {
            offset: w0 & 0x1FFF,
            units_300us: w0 & (1 << 13) != 0,
            offset_adjust: w0 & (1 << 14) != 0,
            interval,
            channel_map,
            sca: b[8] >> 5,
            access_address: u32::from_le_bytes([b[9], b[10], b[11], b[12]]),
            crc_init: u32::from_le_bytes([b[13], b[14], b[15], 0]),
            event_counter: u16::from_le_bytes([b[16], b[17]]),
        })
    }
    pub fn to_bytes(&self) -> [u8; SYNC_INFO_LEN] {
        let mut b = [0u8; SYNC_INFO_LEN];
        let w0 = (self.offset & 0x1FFF)
            | if self.units_300us { 1 << 13 } else { 0 }
            | if self.offset_adjust { 1 << 14 } else { 0 };
        b[0..2].copy_from_slice(&w0.to_le_bytes());
        b[2..4].copy_from_slice(&self.interval.to_le_bytes());
        let map = (self.channel_map & ((1 << 37) - 1)) | (u64::from(self.sca & 7) << 37);
        b[4..9].copy_from_slice(&map.to_le_bytes()[..5]);
        b[9..13].copy_from_slice(&self.access_address.to_le_bytes());
        b[13..16].copy_from_slice(&self.crc_init.to_le_bytes()[..3]);
        b[16..18].copy_from_slice(&self.event_counter.to_le_bytes());
        b
    }
}

/// An extended advertising PDU, borrowing ACAD and AdvData from the received bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtPdu<'a> {
    pub ch_sel: bool,
    pub tx_add: bool,
    pub rx_add: bool,
    pub adv_mode: AdvMode,
    pub adv_a: Option<[u8; 6]>,
    pub target_a: Option<[u8; 6]>,
    pub cte_info: Option<u8>,
    pub adi: Option<Adi>,
    pub aux_ptr: Option<AuxPtr>,
    pub sync_info: Option<SyncInfo>,
    pub tx_power: Option<i8>,
    /// Additional Controller Advertising Data: what the extended header holds past its fields.
    pub acad: &'a [u8],
    pub adv_data: &'a [u8],
}

impl<'a> ExtPdu<'a> {
    /// Parses header and payload. Octets past the header's length (a receive buffer longer
    /// than the packet) are ignored.
    pub fn parse(pdu: &'a [u8]) -> Result<ExtPdu<'a>, PduError> {
        let (h, rest) = match pdu {
            [h0, h1, rest @ ..] => ([*h0, *h1], rest),
            _ => return Err(PduError::NoHeader { len: pdu.len() }),
        };
        let pdu_type = h[0] & 0x0F;
        if pdu_type != PDU_TYPE_EXT {
            return Err(PduError::NotExtended { pdu_type });
        }
        let length = h[1];
        let payload = rest.get(..usize::from(length)).ok_or(PduError::Truncated {
            length,
            received: rest.len(),
        })?;
        let (&first, after) = payload.split_first().ok_or(PduError::EmptyPayload)?;
        let ext_len = first & 0x3F;
        let adv_mode = match first >> 6 {
            0 => AdvMode::NonConnectableNonScannable,
            1 => AdvMode::Connectable,
            2 => AdvMode::Scannable,
            _ => return Err(PduError::ReservedAdvMode),
        };
        let ext = after
            .get(..usize::from(ext_len))
            .ok_or(PduError::ExtHeaderPastPayload {
                ext_header: ext_len,
                payload: length,
            })?;
        let adv_data = &after[usize::from(ext_len)..];
        let mut out = ExtPdu {
            ch_sel: h[0] & 0x20 != 0,
            tx_add: h[0] & 0x40 != 0,
            rx_add: h[0] & 0x80 != 0,
            adv_mode,
            adv_a: None,
            target_a: None,
            cte_info: None,
            adi: None,
            aux_ptr: None,
            sync_info: None,
            tx_power: None,
            acad: &[],
            adv_data,
        };
        let Some((&flags, fields)) = ext.split_first() else {
            return Ok(out);
        };
        let needed: usize = (0..7)
            .filter(|i| flags & (1 << i) != 0)
            .map(|i| FIELD_LEN[i])
            .sum();
        if needed > fields.len() {
            return Err(PduError::FieldsPastExtHeader {
                flags,
                needed: 1 + needed,
                ext_header: ext_len,
            });
        }
        let mut at = 0;
        let mut take = |n: usize| {
            let s = &fields[at..at + n];
            at += n;
            s
        };
        if flags & FLAG_ADV_A != 0 {
            out.adv_a = Some(six(take(6)));
        }
        if flags & FLAG_TARGET_A != 0 {
            out.target_a = Some(six(take(6)));
        }
        if flags & FLAG_CTE_INFO != 0 {
            out.cte_info = Some(take(1)[0]);
        }
        if flags & FLAG_ADI != 0 {
            let b = take(2);
            out.adi = Some(Adi::from_bytes([b[0], b[1]]));
        }
        if flags & FLAG_AUX_PTR != 0 {
            out.aux_ptr = Some(AuxPtr::parse(take(3))?);
        }
        if flags & FLAG_SYNC_INFO != 0 {
            out.sync_info = Some(SyncInfo::parse(take(SYNC_INFO_LEN))?);
        }
        if flags & FLAG_TX_POWER != 0 {
            out.tx_power = Some(take(1)[0] as i8);
        }
        out.acad = &fields[needed..];
        Ok(out)
    }
}

fn six(s: &[u8]) -> [u8; 6] {
    let mut a = [0u8; 6];
    a.copy_from_slice(s);
    a
}

/// Why [`Builder::write`] could not write a PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The extended header would exceed 63 octets.
    ExtHeaderTooLong { len: usize },
    /// The payload would exceed 255 octets.
    PayloadTooLong { len: usize },
    /// The output buffer is shorter than the PDU.
    BufferTooShort { needed: usize },
}

/// An extended advertising PDU to write: the fields [`ExtPdu`] parses, owned (ACAD and AdvData
/// borrowed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Builder<'a> {
    pub tx_add: bool,
    pub adv_mode: u8,
    pub adv_a: Option<[u8; 6]>,
    pub target_a: Option<[u8; 6]>,
    pub cte_info: Option<u8>,
    pub adi: Option<Adi>,
    pub aux_ptr: Option<AuxPtr>,
    pub sync_info: Option<SyncInfo>,
    pub tx_power: Option<i8>,
    pub acad: &'a [u8],
    pub adv_data: &'a [u8],
}

impl Builder<'_> {
    /// The extended header's length: the flags octet and the fields, or 0 when there is none
    /// of them (no flags octet then).
    pub fn ext_header_len(&self) -> usize {
        let fields = [
            self.adv_a.map(|_| 6),
            self.target_a.map(|_| 6),
            self.cte_info.map(|_| 1),
            self.adi.map(|_| 2),
            self.aux_ptr.map(|_| 3),
            self.sync_info.map(|_| SYNC_INFO_LEN),
            self.tx_power.map(|_| 1),
        ];
        let n: usize = fields.iter().flatten().sum::<usize>() + self.acad.len();
        if n == 0 {
            0
        } else {
            1 + n
        }
    }

    /// Writes header and payload into `out`; returns the PDU's length.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, BuildError> {
        let ext = self.ext_header_len();
        if ext > EXT_HEADER_MAX {
            return Err(BuildError::ExtHeaderTooLong { len: ext });
        }
        let payload = 1 + ext + self.adv_data.len();
        if payload > 255 {
            return Err(BuildError::PayloadTooLong { len: payload });
        }
        let needed = HEADER_LEN + payload;
        let out = out
            .get_mut(..needed)
            .ok_or(BuildError::BufferTooShort { needed })?;
        out[0] = PDU_TYPE_EXT | if self.tx_add { 0x40 } else { 0 };
        out[1] = payload as u8;
        out[2] = ext as u8 | (self.adv_mode & 3) << 6;
        let mut at = 3;
        let mut put = |b: &[u8]| {
            out[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        };
        if ext > 0 {
            let flags = [
                self.adv_a.is_some(),
                self.target_a.is_some(),
                self.cte_info.is_some(),
                self.adi.is_some(),
                self.aux_ptr.is_some(),
                self.sync_info.is_some(),
                self.tx_power.is_some(),
            ]
            .iter()
            .enumerate()
            .fold(0u8, |f, (i, &p)| f | (u8::from(p) << i));
            put(&[flags]);
            if let Some(a) = self.adv_a {
                put(&a);
            }
            if let Some(a) = self.target_a {
                put(&a);
            }
            if let Some(c) = self.cte_info {
                put(&[c]);
            }
            if let Some(a) = self.adi {
                put(&a.to_bytes());
            }
            if let Some(p) = self.aux_ptr {
                put(&p.to_bytes());
            }
            if let Some(s) = self.sync_info {
                put(&s.to_bytes());
            }
            if let Some(t) = self.tx_power {
                put(&[t as u8]);
            }
            put(self.acad);
        }
        put(self.adv_data);
        Ok(needed)
    }
}
