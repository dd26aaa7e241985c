//! The advertising bearers a transfer can use and their on-air facts, defined once: what each
//! PDU carries, how long it is on air at each PHY, how a chained event is timed, and from those
//! each bearer's limit in bytes per second (`Budget`, printable with its arithmetic).
//!
//! Sources (Bluetooth Core Specification 5.x): Vol 6 Part B §2.1 (packet: preamble 1 octet at
//! LE 1M and 2 octets at LE 2M, 4-octet access address, 3-octet CRC; 1 µs per bit at 1M, 0.5 µs
//! at 2M), §2.3 (advertising PDU header, 2 octets; legacy AdvData ≤ 31 octets), §2.3.4 (the
//! Common Extended Advertising Payload Format: a 1-octet extended header length and AdvMode, an
//! extended header of a flags octet and its fields — AdvA 6, ADI 2, AuxPtr 3, SyncInfo 18 —,
//! then AdvData; the payload is at most 255 octets), §4.4.2 (advInterval ≥ 20 ms for
//! non-connectable advertising, advDelay 0–10 ms; periodic events without advDelay), the
//! Minimum AUX Frame Space T_MAFS = 300 µs between chained AUX PDUs, and window widening
//! ((both sleep clock accuracies) × time since the last anchor + 32 µs); Vol 4 Part E §7.8.57 (at most 1,650 octets of
//! advertising data per set, the chain limit) and §7.8.61 (periodic advertising interval
//! ≥ 7.5 ms, in units of 1.25 ms).
use crate::wire::{AD_OVERHEAD, BLOCK_LEN, CHUNK_LEN, PDU_MAX};

/// Minimum advInterval for non-connectable advertising (since Bluetooth 5.0), in µs; also the
/// minimum primary advertising interval of an extended advertising set.
pub const ADV_INTERVAL_MIN_US: u64 = 20_000;
/// advDelay is drawn uniformly from 0–10 ms per event; its mean, in µs.
pub const ADV_DELAY_MEAN_US: u64 = 5_000;
/// Advertising events per second for one legacy advertising set at the minimum interval.
pub const EVENTS_PER_S: f64 = 1e6 / (ADV_INTERVAL_MIN_US + ADV_DELAY_MEAN_US) as f64;
/// Bytes per legacy event any protocol can use: the AdvData less one AD structure's framing.
pub const PAYLOAD_PER_EVENT: usize = PDU_MAX;
/// The legacy bearer limit in bytes/s: payload bytes per event × events per second.
pub const LIMIT_BYTES_PER_S: f64 = PAYLOAD_PER_EVENT as f64 * EVENTS_PER_S;

/// Legacy AdvData per PDU.
pub const LEGACY_ADV_DATA: usize = 31;
/// Most payload octets of one extended-format PDU (AUX_ADV_IND, AUX_CHAIN_IND, AUX_SYNC_IND).
pub const AUX_PAYLOAD_MAX: usize = 255;
/// Most AdvData of one advertising event of an extended or periodic set (the chain limit).
pub const CHAIN_ADV_DATA_MAX: usize = 1650;
/// Minimum AUX frame space: from the end of one chained PDU to the start of the next, µs.
pub const T_MAFS_US: u32 = 300;
/// The AuxPtr offset counts in units of 30 µs (offsets under 245,700 µs).
pub const AUX_OFFSET_UNIT_US: u32 = 30;
/// Shortest periodic advertising interval, µs, and the unit it is set in.
pub const PERIODIC_INTERVAL_MIN_US: u32 = 7_500;
pub const PERIODIC_INTERVAL_UNIT_US: u32 = 1_250;
/// Longest AD structure: the length octet counts at most 255 octets after it.
pub const AD_STRUCTURE_MAX: usize = 256;
/// Octets of an advertising channel PDU besides its payload: access address 4, header 2, CRC 3
/// (the preamble depends on the PHY, [`Phy::preamble`]).
pub const PDU_FIXED: usize = 4 + 2 + 3;
/// Extended header sizes (the flags octet and the fields present, not the length octet).
pub const EXT_HEADER_ADV_EXT_IND: usize = 1 + 2 + 3; // flags, ADI, AuxPtr
pub const EXT_HEADER_AUX_ADV_IND: usize = 1 + 6 + 2 + 3; // flags, AdvA, ADI, AuxPtr
pub const EXT_HEADER_AUX_CHAIN_IND: usize = 1 + 2 + 3; // flags, ADI, AuxPtr
/// A periodic train's PDUs (AUX_SYNC_IND and its AUX_CHAIN_INDs) carry no AdvA and no ADI:
/// flags and AuxPtr while more follows.
pub const EXT_HEADER_SYNC_CHAINED: usize = 1 + 3;
/// The receiver's sleep clock accuracy and the sender's, in ppm, as the models assume them
/// (the nRF52840 DK's 32.768 kHz crystal is specified at ±20 ppm; the SCA field allows 500).
pub const SCA_PPM_DEFAULT: u32 = 50;

/// A physical layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phy {
    Le1M,
    Le2M,
}

impl Phy {
    /// Preamble octets.
    pub const fn preamble(self) -> usize {
        match self {
            Phy::Le1M => 1,
            Phy::Le2M => 2,
        }
    }
    /// Nanoseconds per octet on air (8 bits at 1 µs or 0.5 µs a bit).
    pub const fn ns_per_octet(self) -> u32 {
        match self {
            Phy::Le1M => 8_000,
            Phy::Le2M => 4_000,
        }
    }
    /// Air time of a PDU whose payload is `payload` octets, µs (rounded up).
    pub const fn air_us(self, payload: usize) -> u32 {
        let octets = (self.preamble() + PDU_FIXED + payload) as u32;
        (octets * self.ns_per_octet()).div_ceil(1000)
    }
    pub const fn name(self) -> &'static str {
        match self {
            Phy::Le1M => "1M",
            Phy::Le2M => "2M",
        }
    }
}

/// How the data of a transfer travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bearer {
    /// ADV_NONCONN_IND on the three primary channels, 1M PHY: 31 octets of AdvData.
    Legacy,
    /// Extended advertising: ADV_EXT_IND on the primary channels (1M) points with its AuxPtr to
    /// an AUX_ADV_IND on a secondary channel at this PHY, chained by AUX_CHAIN_IND.
    Extended(Phy),
    /// Periodic advertising: AUX_SYNC_IND (chained by AUX_CHAIN_IND) at a fixed interval the
    /// receiver synchronises to (the extended set's SyncInfo tells it where), no advDelay.
    Periodic(Phy),
}

impl Bearer {
    /// Every bearer, fastest first (the order a receiver prefers them in).
    pub const ALL: [Bearer; 5] = [
        Bearer::Periodic(Phy::Le2M),
        Bearer::Periodic(Phy::Le1M),
        Bearer::Extended(Phy::Le2M),
        Bearer::Extended(Phy::Le1M),
        Bearer::Legacy,
    ];

    /// The bearer's number on the air (offer bits, status, staging tag): 1–5.
    pub const fn code(self) -> u8 {
        match self {
            Bearer::Legacy => 1,
            Bearer::Extended(Phy::Le1M) => 2,
            Bearer::Extended(Phy::Le2M) => 3,
            Bearer::Periodic(Phy::Le1M) => 4,
            Bearer::Periodic(Phy::Le2M) => 5,
        }
    }

    pub const fn from_code(code: u8) -> Option<Bearer> {
        Some(match code {
            1 => Bearer::Legacy,
            2 => Bearer::Extended(Phy::Le1M),
            3 => Bearer::Extended(Phy::Le2M),
            4 => Bearer::Periodic(Phy::Le1M),
            5 => Bearer::Periodic(Phy::Le2M),
            _ => return None,
        })
    }

    pub const fn phy(self) -> Phy {
        match self {
            Bearer::Legacy => Phy::Le1M,
            Bearer::Extended(p) | Bearer::Periodic(p) => p,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Bearer::Legacy => "legacy",
            Bearer::Extended(Phy::Le1M) => "extended 1M",
            Bearer::Extended(Phy::Le2M) => "extended 2M",
            Bearer::Periodic(Phy::Le1M) => "periodic 1M",
            Bearer::Periodic(Phy::Le2M) => "periodic 2M",
        }
    }

    /// Whether data travels in chained extended-format events (≤ 1,650 octets of AdvData).
    pub const fn chained(self) -> bool {
        !matches!(self, Bearer::Legacy)
    }

    /// Most AdvData of one event.
    pub const fn adv_data_per_event(self) -> usize {
        if self.chained() {
            CHAIN_ADV_DATA_MAX
        } else {
            LEGACY_ADV_DATA
        }
    }

    /// Extended header of the `i`-th PDU of an event's chain, `last` when no PDU follows.
    pub const fn ext_header(self, i: usize, last: bool) -> usize {
        let aux_ptr = if last { 3 } else { 0 };
        match self {
            Bearer::Legacy => 0,
            Bearer::Extended(_) if i == 0 => EXT_HEADER_AUX_ADV_IND - aux_ptr,
            Bearer::Extended(_) => EXT_HEADER_AUX_CHAIN_IND - aux_ptr,
            // Without AuxPtr the periodic PDU's extended header is empty: no flags octet.
            Bearer::Periodic(_) if last => 0,
            Bearer::Periodic(_) => EXT_HEADER_SYNC_CHAINED,
        }
    }

    /// AdvData the `i`-th PDU of a chain carries at most (`last`: no AuxPtr).
    pub const fn adv_data_per_pdu(self, i: usize, last: bool) -> usize {
        match self {
            Bearer::Legacy => LEGACY_ADV_DATA,
            // The payload: the extended header length octet, the header, the AdvData.
            _ => AUX_PAYLOAD_MAX - 1 - self.ext_header(i, last),
        }
    }

    /// How an event's AdvData of `len` octets is cut into the chain's PDUs: the AdvData of
    /// PDU `i` (`None` past the last). The controller fills each PDU before the next.
    pub fn fragment(self, len: usize, i: usize) -> Option<core::ops::Range<usize>> {
        let mut at = 0;
        let mut k = 0;
        loop {
            let rest = len - at;
            // The last PDU has no AuxPtr and so room for 3 more octets.
            let last_fits = rest <= self.adv_data_per_pdu(k, true);
            let take = if last_fits {
                rest
            } else {
                self.adv_data_per_pdu(k, false)
            };
            if k == i {
                return Some(at..at + take);
            }
            if last_fits {
                return None;
            }
            at += take;
            k += 1;
        }
    }

    /// PDUs of the chain that carries `len` octets of AdvData (1 for legacy).
    pub fn pdus_for(self, len: usize) -> usize {
        if !self.chained() {
            return 1;
        }
        let mut n = 1;
        while self.fragment(len, n).is_some() {
            n += 1;
        }
        n
    }

    /// Payload octets of chain PDU `i` carrying `adv_data` octets of AdvData.
    pub const fn payload_of(self, i: usize, last: bool, adv_data: usize) -> usize {
        match self {
            Bearer::Legacy => 6 + adv_data,
            Bearer::Periodic(_) if last => 1 + adv_data,
            _ => 1 + self.ext_header(i, last) + adv_data,
        }
    }

    /// From the start of the event's first PDU on the data channel to the end of its last,
    /// carrying `len` octets of AdvData: the chain's air time and T_MAFS between its PDUs.
    pub fn chain_us(self, len: usize) -> u32 {
        let n = self.pdus_for(len);
        let mut us = 0;
        for i in 0..n {
            let r = self.fragment(len, i).unwrap_or(0..0);
            us += self.phy().air_us(self.payload_of(i, i + 1 == n, r.len()));
        }
        us + (n as u32 - 1) * T_MAFS_US
    }

    /// The ADV_EXT_IND on the primary channels (1M) of an extended event: its air time.
    pub const fn adv_ext_ind_us() -> u32 {
        Phy::Le1M.air_us(1 + EXT_HEADER_ADV_EXT_IND)
    }

    /// The fewest AD structures that hold an event's AdvData, and so the protocol payload of an
    /// event: AdvData less the AD framing of each structure.
    pub const fn structures_per_event(self) -> usize {
        self.adv_data_per_event().div_ceil(AD_STRUCTURE_MAX)
    }

    /// The bearer's limit: its figures with the shortest legal schedule.
    pub fn budget(self) -> Budget {
        self.budget_with_interval(0)
    }

    /// The limit with the sender's interval at least `interval_us` (advInterval of an
    /// extended set, or the periodic interval; 0: the shortest legal one).
    pub fn budget_with_interval(self, interval_us: u32) -> Budget {
        let adv_data = self.adv_data_per_event();
        let structures = self.structures_per_event();
        let payload = adv_data - structures * AD_OVERHEAD;
        let pdus = self.pdus_for(adv_data);
        let (event_us, min_interval_us, delay_us) = match self {
            Bearer::Legacy => (
                // The same PDU on three channels.
                3 * self.phy().air_us(self.payload_of(0, true, adv_data)),
                ADV_INTERVAL_MIN_US as u32,
                ADV_DELAY_MEAN_US as u32,
            ),
            // Three ADV_EXT_INDs, then (T_MAFS after the last at the earliest) the chain.
            Bearer::Extended(_) => (
                3 * Self::adv_ext_ind_us() + T_MAFS_US + self.chain_us(adv_data),
                ADV_INTERVAL_MIN_US as u32,
                ADV_DELAY_MEAN_US as u32,
            ),
            Bearer::Periodic(_) => {
                let chain = self.chain_us(adv_data);
                let fit = chain
                    .max(PERIODIC_INTERVAL_MIN_US)
                    .div_ceil(PERIODIC_INTERVAL_UNIT_US)
                    * PERIODIC_INTERVAL_UNIT_US;
                (chain, fit, 0)
            }
        };
        let mut interval = interval_us.max(min_interval_us).max(event_us);
        if let Bearer::Periodic(_) = self {
            interval = interval.div_ceil(PERIODIC_INTERVAL_UNIT_US) * PERIODIC_INTERVAL_UNIT_US;
        }
        let period_us = interval + delay_us;
        Budget {
            bearer: self,
            adv_data_per_event: adv_data,
            structures,
            payload_per_event: payload,
            pdus_per_event: pdus,
            event_air_us: event_us,
            interval_us: interval,
            mean_delay_us: delay_us,
            period_us,
            limit_bytes_per_s: payload as f64 * 1e6 / period_us as f64,
        }
    }
}

/// One bearer's figures and its limit, from the facts above.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    pub bearer: Bearer,
    pub adv_data_per_event: usize,
    /// AD structures (4 octets of framing each) the AdvData needs at least.
    pub structures: usize,
    /// AdvData less the AD framing: what any protocol can use per event.
    pub payload_per_event: usize,
    /// PDUs of the event on the data channel (the chain), 1 for legacy.
    pub pdus_per_event: usize,
    /// Air time of one event (legacy: three copies; extended: the ADV_EXT_INDs, the offset
    /// and the chain; periodic: the chain).
    pub event_air_us: u32,
    pub interval_us: u32,
    pub mean_delay_us: u32,
    /// Interval plus mean advDelay: one event per period on average.
    pub period_us: u32,
    /// `payload_per_event` per `period_us`.
    pub limit_bytes_per_s: f64,
}

impl core::fmt::Display for Budget {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let b = self.bearer;
        write!(
            f,
            "{}: {} B/event ({} B AdvData − {} AD structures × {} B framing",
            b.name(),
            self.payload_per_event,
            self.adv_data_per_event,
            self.structures,
            AD_OVERHEAD
        )?;
        if b.chained() {
            write!(
                f,
                "; {} PDUs ≤ {} B payload at {}, {} µs on air with T_MAFS {} µs",
                self.pdus_per_event,
                AUX_PAYLOAD_MAX,
                b.phy().name(),
                self.event_air_us,
                T_MAFS_US
            )?;
        }
        let per_s = 1e6 / self.period_us as f64;
        write!(
            f,
            ") × {:.1} events/s (interval {:.2} ms",
            per_s,
            self.interval_us as f64 / 1000.0
        )?;
        if self.mean_delay_us > 0 {
            write!(f, " + mean advDelay {} ms", self.mean_delay_us / 1000)?;
        }
        write!(f, ") = {:.0} B/s", self.limit_bytes_per_s)
    }
}

/// A set of bearers (bit `code − 1` per bearer), as offered by a sender or followed by a
/// receiver. Legacy is in every set: it is how a session is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BearerSet(u8);

impl BearerSet {
    pub const LEGACY: BearerSet = BearerSet(1);
    pub const ALL: BearerSet = BearerSet(0x1F);

    pub const fn bits(self) -> u8 {
        self.0
    }
    /// From offer bits; unknown bits are dropped and legacy is always in.
    pub const fn from_bits(bits: u8) -> BearerSet {
        BearerSet((bits & Self::ALL.0) | 1)
    }
    pub const fn with(self, b: Bearer) -> BearerSet {
        BearerSet(self.0 | 1 << (b.code() - 1))
    }
    pub const fn contains(self, b: Bearer) -> bool {
        self.0 & 1 << (b.code() - 1) != 0
    }
    pub const fn of(bearers: &[Bearer]) -> BearerSet {
        let mut s = Self::LEGACY;
        let mut i = 0;
        while i < bearers.len() {
            s = s.with(bearers[i]);
            i += 1;
        }
        s
    }
    /// Whether anything beside legacy is in the set.
    pub const fn beyond_legacy(self) -> bool {
        self.0 & !1 != 0
    }
    /// The fastest bearer in both sets (legacy at worst).
    pub fn best_common(self, other: BearerSet) -> Bearer {
        Bearer::ALL
            .into_iter()
            .find(|&b| self.contains(b) && other.contains(b))
            .unwrap_or(Bearer::Legacy)
    }
}

/// A session's chunk geometry, derived from its bearer in this one place: blocks stay 4 KiB
/// (one flash sector, one CRC); a chunk never crosses a block; chained bearers cut a block into
/// as few chunks as an event's AD structures can each hold whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Image bytes in a full chunk.
    pub chunk_len: u32,
    /// Chunks per 4 KiB block (the last one of a block may be shorter).
    pub chunks_per_block: u32,
}

/// Protocol bytes of a data PDU besides its chunk: the 2-byte chunk index.
pub const DATA_HEAD: usize = 2;

impl Geometry {
    /// 25-byte chunks, 164 per block: a data PDU fills the legacy 27-byte payload.
    pub const LEGACY: Geometry = Geometry::with_chunk_max(CHUNK_LEN as u32);

    /// Blocks cut into chunks of at most `max` bytes, all of one length but the last.
    pub const fn with_chunk_max(max: u32) -> Geometry {
        let n = (BLOCK_LEN as u32).div_ceil(max);
        Geometry {
            chunk_len: (BLOCK_LEN as u32).div_ceil(n),
            chunks_per_block: n,
        }
    }

    /// The geometry of a session over `bearer`. Chained: the event's AdvData is cut into the
    /// fewest AD structures ([`Bearer::structures_per_event`]); each holds one data PDU at most
    /// that long (1,650 / 7 = 235 octets less 4 of framing and 2 of index: 229), and the block is
    /// then cut evenly (18 chunks of 228, the last of 220).
    pub const fn for_bearer(bearer: Bearer) -> Geometry {
        if !bearer.chained() {
            return Geometry::LEGACY;
        }
        let per_structure = bearer.adv_data_per_event() / bearer.structures_per_event();
        Geometry::with_chunk_max((per_structure - AD_OVERHEAD - DATA_HEAD) as u32)
    }

    /// Chunks needed for an image of `image_len` bytes.
    pub const fn total_chunks(self, image_len: u32) -> u32 {
        let full = image_len / BLOCK_LEN as u32;
        let rest = image_len % BLOCK_LEN as u32;
        full * self.chunks_per_block + rest.div_ceil(self.chunk_len)
    }

    /// Image offset and length of chunk `index` (caller checks `index < total_chunks`).
    pub fn chunk_range(self, index: u32, image_len: u32) -> (u32, usize) {
        let block = index / self.chunks_per_block;
        let within = (index % self.chunks_per_block) * self.chunk_len;
        let offset = block * BLOCK_LEN as u32 + within;
        let len = self
            .chunk_len
            .min(BLOCK_LEN as u32 - within)
            .min(image_len.saturating_sub(offset));
        (offset, len as usize)
    }

    /// The chunk holding image offset `offset`.
    pub const fn chunk_of(self, offset: u32) -> u32 {
        let block = offset / BLOCK_LEN as u32;
        block * self.chunks_per_block + (offset % BLOCK_LEN as u32) / self.chunk_len
    }

    /// The block chunk `index` belongs to.
    pub const fn block_of(self, index: u32) -> u32 {
        index / self.chunks_per_block
    }
}

/// The largest data PDU any bearer carries (index and chunk).
pub const DATA_PDU_MAX: usize = DATA_HEAD + max_chunk_len();

const fn max_chunk_len() -> usize {
    let mut m = 0;
    let mut i = 0;
    while i < Bearer::ALL.len() {
        let l = Geometry::for_bearer(Bearer::ALL[i]).chunk_len as usize;
        if l > m {
            m = l;
        }
        i += 1;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_figures_are_the_documented_ones() {
        let b = Bearer::Legacy.budget();
        assert_eq!(b.payload_per_event, 27);
        assert_eq!(b.period_us, 25_000);
        assert!((b.limit_bytes_per_s - 1080.0).abs() < 1e-9);
        assert!((b.limit_bytes_per_s - LIMIT_BYTES_PER_S).abs() < 1e-9);
        // 47 octets on air at 1 µs a bit.
        assert_eq!(Phy::Le1M.air_us(6 + 31), 376);
        assert_eq!(Geometry::LEGACY.chunk_len, 25);
        assert_eq!(Geometry::LEGACY.chunks_per_block, 164);
    }

    #[test]
    fn aux_pdus_and_chains() {
        // A full 255-octet payload: 2,120 µs at 1M, 1,064 µs at 2M.
        assert_eq!(Phy::Le1M.air_us(255), 2_120);
        assert_eq!(Phy::Le2M.air_us(255), 1_064);
        let ext = Bearer::Extended(Phy::Le2M);
        assert_eq!(ext.adv_data_per_pdu(0, false), 242);
        assert_eq!(ext.adv_data_per_pdu(1, false), 248);
        assert_eq!(ext.adv_data_per_pdu(1, true), 251);
        let per = Bearer::Periodic(Phy::Le1M);
        assert_eq!(per.adv_data_per_pdu(0, false), 250);
        assert_eq!(per.adv_data_per_pdu(3, true), 254);
        for b in Bearer::ALL.into_iter().filter(|b| b.chained()) {
            for len in [1, 200, 242, 243, 1000, 1650] {
                let n = b.pdus_for(len);
                let mut covered = 0;
                for i in 0..n {
                    let r = b.fragment(len, i).unwrap();
                    assert_eq!(r.start, covered, "{b:?} {len} {i}");
                    assert!(r.len() <= b.adv_data_per_pdu(i, i + 1 == n));
                    assert!(b.payload_of(i, i + 1 == n, r.len()) <= AUX_PAYLOAD_MAX);
                    covered = r.end;
                }
                assert_eq!(covered, len);
                assert!(b.fragment(len, n).is_none());
            }
            assert_eq!(b.pdus_for(CHAIN_ADV_DATA_MAX), 7, "{b:?}");
        }
    }

    #[test]
    fn limits_follow_from_the_facts() {
        for b in Bearer::ALL {
            let g = b.budget();
            assert!(
                g.event_air_us <= g.interval_us,
                "{b:?}: the event fits its interval"
            );
            let again = g.payload_per_event as f64 * 1e6 / g.period_us as f64;
            assert_eq!(g.limit_bytes_per_s, again);
        }
        // Extended events fit the 20 ms minimum interval at either PHY: the limit is the same.
        let e1 = Bearer::Extended(Phy::Le1M).budget();
        let e2 = Bearer::Extended(Phy::Le2M).budget();
        assert_eq!(e1.payload_per_event, 1622);
        assert_eq!(e1.limit_bytes_per_s, e2.limit_bytes_per_s);
        assert!(e2.event_air_us < e1.event_air_us);
        // Periodic: the interval is the chain rounded up to 1.25 ms (16.25 ms at 1M, 10 at 2M).
        assert_eq!(Bearer::Periodic(Phy::Le1M).budget().interval_us, 16_250);
        assert_eq!(Bearer::Periodic(Phy::Le2M).budget().interval_us, 10_000);
        // The preference order is fastest first.
        for w in Bearer::ALL.windows(2) {
            let (a, b) = (w[0].budget(), w[1].budget());
            assert!(a.limit_bytes_per_s > b.limit_bytes_per_s || a.event_air_us < b.event_air_us);
        }
    }

    #[test]
    fn geometry_per_bearer() {
        let g = Geometry::for_bearer(Bearer::Periodic(Phy::Le2M));
        assert_eq!((g.chunk_len, g.chunks_per_block), (228, 18));
        for b in Bearer::ALL {
            let g = Geometry::for_bearer(b);
            // A data PDU fits one AD structure, and an event's worth fits the AdvData.
            let structure = AD_OVERHEAD + DATA_HEAD + g.chunk_len as usize;
            assert!(structure <= b.adv_data_per_event() && structure <= AD_STRUCTURE_MAX);
            assert!(b.structures_per_event() * structure <= b.adv_data_per_event());
            assert!(DATA_HEAD + g.chunk_len as usize <= DATA_PDU_MAX);
            // Chunks tile each block without crossing it.
            let mut end = 0;
            for c in 0..g.chunks_per_block {
                let (off, len) = g.chunk_range(c, u32::MAX);
                assert_eq!(off, end);
                assert_eq!(g.chunk_of(off), c);
                end += len as u32;
            }
            assert_eq!(end, BLOCK_LEN as u32);
        }
    }

    #[test]
    fn sets_and_preference() {
        let rx = BearerSet::of(&[Bearer::Extended(Phy::Le1M), Bearer::Extended(Phy::Le2M)]);
        assert_eq!(rx.best_common(BearerSet::ALL), Bearer::Extended(Phy::Le2M));
        assert_eq!(rx.best_common(BearerSet::LEGACY), Bearer::Legacy);
        assert_eq!(
            BearerSet::LEGACY.best_common(BearerSet::ALL),
            Bearer::Legacy
        );
        assert_eq!(BearerSet::from_bits(0xE0), BearerSet::LEGACY);
        for b in Bearer::ALL {
            assert_eq!(Bearer::from_code(b.code()), Some(b));
        }
        assert_eq!(Bearer::from_code(0), None);
    }
}
