//! A sender's BLE 5 extended advertising events as PDUs on air, with their times: one
//! definition for whoever models the air (the simulator's `ota_sim::radio::ChainRadio` and the
//! whole-device emulation's sender around the RADIO model, `ota-emulate`).
//!
//! An extended event at `t` (µs, the sender's true time) is
//! - three ADV_EXT_IND on the primary channels 37, 38, 39 at LE 1M, 150 µs apart (from the end
//!   of one to the start of the next), each with ADI and an AuxPtr to the AUX_ADV_IND
//!   ([`adv_ext_inds`]);
//! - the AUX_ADV_IND (AdvA, ADI) on a secondary channel at the bearer's PHY, at least T_MAFS
//!   after the last ADV_EXT_IND ended, on a whole AuxPtr offset unit (30 µs) after `t`, and its
//!   AUX_CHAIN_INDs (ADI), each T_MAFS after the previous one ended, each with the AuxPtr to the
//!   next; the event's AdvData cut as `adv_transfer::bearer` cuts it ([`chain_pdus`]).
//!
//! A periodic train ([`periodic_event`]) has its event `k`'s AUX_SYNC_IND at the anchor, on the
//! CSA#2 channel of `k` over the train's channel map with the train's access address, chained
//! by AUX_CHAIN_IND as above; the extended set beside it ([`sync_set_event`]) is three
//! ADV_EXT_IND and an AUX_ADV_IND whose SyncInfo points to the first anchor after it.
//!
//! AuxPtr offsets are rounded down to their unit: the packet starts within the unit after the
//! offset, as Core Vol 6 Part B §2.3.4.5 has the receiver expect. Every PDU is written by
//! `ble_ext::pdu::Builder`, so the bytes on air are the ones `ble_ext::Follower` parses.
#![forbid(unsafe_code)]

use adv_transfer::bearer::{self, Bearer, Phy};
use ble_ext::csa2;
use ble_ext::pdu::{self, Adi, AuxPtr, SyncInfo};

/// The model sender's advertising set id.
pub const MODEL_SID: u8 = 1;

/// A periodic train's access address, CRC init and channel map (the follower takes them from
/// the SyncInfo).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Train {
    pub aa: u32,
    pub crc_init: u32,
    pub channel_map: u64,
}

impl Train {
    /// The channel of the train's event `k`: Channel Selection Algorithm #2 over its map (Core
    /// Vol 6 Part B §4.5.8.3), `ble_ext::csa2`.
    pub fn channel(&self, k: u64) -> u8 {
        let id = csa2::channel_identifier(self.aa);
        csa2::channel(k as u16, id, self.channel_map).expect("a map with a used channel")
    }
}

/// The model sender's train: any valid access address and CRC init, every data channel (the
/// models have no per-channel interference).
pub const MODEL_TRAIN: Train = Train {
    aa: 0x5A3C_96E1,
    crc_init: 0x12_3456,
    channel_map: (1 << 37) - 1,
};

/// One PDU on the air: its start (true time, µs, the first bit of its preamble), BLE channel
/// index, PHY, access address and bytes (header and payload); `chain`: a PDU of an event's
/// chain (not an ADV_EXT_IND, not a periodic set's AUX_ADV_IND); `anchor`: a periodic event's
/// AUX_SYNC_IND.
#[derive(Clone, Debug, PartialEq)]
pub struct AirPdu {
    pub start: f64,
    pub channel: u8,
    pub phy: Phy,
    pub aa: u32,
    pub bytes: Vec<u8>,
    pub chain: bool,
    pub anchor: bool,
}

impl AirPdu {
    /// Its air time, µs.
    pub fn air_us(&self) -> f64 {
        self.phy.air_us(usize::from(self.bytes[1])) as f64
    }
}

/// The centre frequency of BLE channel index `channel`, MHz: 2402 MHz + 2 MHz steps over the
/// 40 channels, the advertising channels 37, 38 and 39 at 2402, 2426 and 2480 (Core
/// Specification Vol 6 Part B §1.4.1).
pub const fn channel_mhz(channel: u8) -> Option<u32> {
    match channel {
        0..=10 => Some(2404 + 2 * channel as u32),
        11..=36 => Some(2406 + 2 * channel as u32),
        37 => Some(2402),
        38 => Some(2426),
        39 => Some(2480),
        _ => None,
    }
}

/// A PDU's bytes (header and payload).
pub fn write_pdu(b: pdu::Builder<'_>) -> Vec<u8> {
    let mut buf = [0u8; 2 + bearer::AUX_PAYLOAD_MAX];
    let n = b.write(&mut buf).expect("the model's PDUs fit 255 octets");
    buf[..n].to_vec()
}

/// An AuxPtr `offset_us` ahead (rounded down to its unit: the packet starts within it).
pub fn aux_ptr(channel: u8, phy: Phy, offset_us: f64, ca_50ppm: bool) -> AuxPtr {
    let units_300us = offset_us >= 245_700.0;
    let unit = if units_300us { 300.0 } else { 30.0 };
    AuxPtr {
        channel,
        ca_50ppm,
        units_300us,
        offset: (offset_us / unit).floor() as u16,
        phy: phy.into(),
    }
}

/// A secondary channel for chain PDU `i` of the sender's `e`-th chained event.
pub fn aux_channel(e: u64, i: usize) -> u8 {
    ((e * 11 + i as u64 * 7 + 3) % 37) as u8
}

/// The chain PDUs of the `e`-th chained event carrying `adv` from true time `start`: the
/// first from `first` (given its AuxPtr), the rest AUX_CHAIN_IND with `adi`, each T_MAFS after
/// the last, cut as `bearer.rs` cuts the AdvData; on the advertising access address, each on
/// the [`aux_channel`] of its index (a periodic train sets the first's itself). `ca_50ppm`:
/// the sender's clock is within 50 ppm.
pub fn chain_pdus(
    b: Bearer,
    adv: &[u8],
    start: f64,
    e: u64,
    ca_50ppm: bool,
    first: &dyn Fn(Option<AuxPtr>) -> pdu::Builder<'static>,
    adi: Option<Adi>,
) -> Vec<AirPdu> {
    let n = b.pdus_for(adv.len());
    let mut at = start;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let r = b.fragment(adv.len(), i).unwrap_or(0..0);
        let last = i + 1 == n;
        let payload = b.payload_of(i, last, r.len());
        let air = b.phy().air_us(payload) as f64;
        let next = at + air + bearer::T_MAFS_US as f64;
        let ptr = (!last).then(|| aux_ptr(aux_channel(e, i + 1), b.phy(), next - at, ca_50ppm));
        let head = if i == 0 {
            first(ptr)
        } else {
            pdu::Builder {
                adi,
                aux_ptr: ptr,
                ..pdu::Builder::default()
            }
        };
        let bytes = write_pdu(pdu::Builder {
            adv_data: &adv[r],
            ..head
        });
        debug_assert_eq!(bytes.len() - 2, payload, "bearer.rs and the PDU agree");
        out.push(AirPdu {
            start: at,
            channel: aux_channel(e, i),
            phy: b.phy(),
            aa: ble_ext::ADV_ACCESS_ADDRESS,
            bytes,
            chain: true,
            anchor: false,
        });
        at = next;
    }
    out
}

/// The three ADV_EXT_INDs at `t` (150 µs apart) pointing to an AUX_ADV_IND on `channel` at
/// `phy`, and the AUX_ADV_IND's start: the ADV_EXT_INDs' AuxPtrs in 30 µs units, at least
/// T_MAFS after the last one.
pub fn adv_ext_inds(t: f64, did: u16, channel: u8, phy: Phy, ca_50ppm: bool) -> (Vec<AirPdu>, f64) {
    let ind = Bearer::adv_ext_ind_us() as f64;
    let last_end = t + 2.0 * (ind + 150.0) + ind;
    let unit = bearer::AUX_OFFSET_UNIT_US as f64;
    let aux_at = t + ((last_end + bearer::T_MAFS_US as f64 - t) / unit).ceil() * unit;
    let pdus = (0..3)
        .map(|k| {
            let start = t + k as f64 * (ind + 150.0);
            AirPdu {
                start,
                channel: 37 + k as u8,
                phy: Phy::Le1M,
                aa: ble_ext::ADV_ACCESS_ADDRESS,
                bytes: write_pdu(pdu::Builder {
                    adi: Some(Adi {
                        did,
                        sid: MODEL_SID,
                    }),
                    aux_ptr: Some(aux_ptr(channel, phy, aux_at - start, ca_50ppm)),
                    ..pdu::Builder::default()
                }),
                chain: false,
                anchor: false,
            }
        })
        .collect();
    (pdus, aux_at)
}

/// The `e`-th chained event of an extended bearer `b` at `t` from `adv_a` carrying `adv`: the
/// ADV_EXT_INDs and the chain (see the crate docs), in time order, and the end of its last
/// PDU.
pub fn extended_event(
    t: f64,
    e: u64,
    b: Bearer,
    adv_a: [u8; 6],
    adv: &[u8],
    ca_50ppm: bool,
) -> (Vec<AirPdu>, f64) {
    let did = e as u16 & 0x0FFF;
    let (mut pdus, aux_at) = adv_ext_inds(t, did, aux_channel(e, 0), b.phy(), ca_50ppm);
    let adi = Some(Adi {
        did,
        sid: MODEL_SID,
    });
    let first = move |p: Option<AuxPtr>| pdu::Builder {
        adv_a: Some(adv_a),
        adi,
        aux_ptr: p,
        ..pdu::Builder::default()
    };
    let chain = chain_pdus(b, adv, aux_at, e, ca_50ppm, &first, adi);
    let end = chain.last().map_or(aux_at, |p| p.start + p.air_us());
    pdus.extend(chain);
    (pdus, end)
}

/// Event `k` of a periodic train of bearer `b` (the sender's `e`-th chained event) carrying
/// `adv` from its anchor: the AUX_SYNC_IND on the CSA#2 channel of `k`, and its chain, all on
/// the train's access address.
pub fn periodic_event(
    anchor: f64,
    k: u64,
    e: u64,
    b: Bearer,
    adv: &[u8],
    train: &Train,
    ca_50ppm: bool,
) -> Vec<AirPdu> {
    let channel = train.channel(k);
    let first_pdu = |p: Option<AuxPtr>| pdu::Builder {
        aux_ptr: p,
        ..pdu::Builder::default()
    };
    let mut pdus = chain_pdus(b, adv, anchor, e, ca_50ppm, &first_pdu, None);
    for p in &mut pdus {
        p.aa = train.aa;
    }
    if let Some(p) = pdus.first_mut() {
        p.channel = channel;
        p.anchor = true;
    }
    pdus
}

/// Air time of the periodic set's AUX_ADV_IND (extended header flags, AdvA, ADI, SyncInfo).
pub fn sync_aux_air_us(phy: Phy) -> f64 {
    phy.air_us(1 + 1 + 6 + 2 + pdu::SYNC_INFO_LEN) as f64
}

/// The periodic train's extended set at `t` (the sender's `e`-th chained event so far, for its
/// secondary channel): ADV_EXT_INDs and an AUX_ADV_IND from `adv_a` whose SyncInfo points to the
/// first anchor after it. The train's anchors are `first + k × true_interval` in true time; the
/// sender's clock runs `drift_tx_ppm` fast (its offset is in its own µs); `interval_us` is the
/// train's nominal interval, `sca_tx_ppm` the sender's declared accuracy.
#[allow(clippy::too_many_arguments)]
pub fn sync_set_event(
    t: f64,
    e: u64,
    phy: Phy,
    adv_a: [u8; 6],
    train: &Train,
    (first, true_interval, interval_us): (f64, f64, f64),
    drift_tx_ppm: f64,
    sca_tx_ppm: f64,
) -> Vec<AirPdu> {
    let (mut pdus, aux_at) = adv_ext_inds(t, 0, aux_channel(e, 0), phy, sca_tx_ppm <= 50.0);
    // The first anchor after the AUX_ADV_IND has ended.
    let aux_air = sync_aux_air_us(phy);
    let k = ((aux_at + aux_air + bearer::T_MAFS_US as f64 - first) / true_interval)
        .ceil()
        .max(0.0);
    // The offset by the sender's clock, in 30 µs units below 245.7 ms.
    let offset = (first + k * true_interval - aux_at) * (1.0 + drift_tx_ppm * 1e-6);
    let units_300us = offset >= 245_700.0;
    let unit = if units_300us { 300.0 } else { 30.0 };
    let sca = pdu::SCA_PPM
        .iter()
        .rposition(|&ppm| ppm as f64 >= sca_tx_ppm)
        .unwrap_or(0) as u8;
    let sync_info = SyncInfo {
        offset: (offset / unit).floor() as u16,
        units_300us,
        offset_adjust: false,
        interval: (interval_us / bearer::PERIODIC_INTERVAL_UNIT_US as f64).round() as u16,
        channel_map: train.channel_map,
        sca,
        access_address: train.aa,
        crc_init: train.crc_init,
        event_counter: k as u16,
    };
    pdus.push(AirPdu {
        start: aux_at,
        channel: aux_channel(e, 0),
        phy,
        aa: ble_ext::ADV_ACCESS_ADDRESS,
        bytes: write_pdu(pdu::Builder {
            adv_a: Some(adv_a),
            adi: Some(Adi {
                did: 0,
                sid: MODEL_SID,
            }),
            sync_info: Some(sync_info),
            ..pdu::Builder::default()
        }),
        chain: false,
        anchor: false,
    });
    pdus
}

#[cfg(test)]
mod tests {
    use super::*;
    use ble_ext::{Config, Filter, Follower, Op};

    /// The kernel's follower of `adv_a`'s extended events (`periodic`: and its train).
    fn follower(adv_a: [u8; 6], periodic: bool) -> Follower<Box<[u8]>> {
        let config = Config {
            sca_ppm: 50,
            periodic,
            max_missed_anchors: 6,
            sync_timeout_us: 1_000_000,
        };
        let mut f = Follower::new(config, vec![0u8; 1_650].into_boxed_slice());
        f.follow(Filter {
            adv_a: Some(adv_a),
            sid: None,
        });
        f
    }

    #[test]
    fn channels_map_to_their_frequencies() {
        assert_eq!(channel_mhz(0), Some(2404));
        assert_eq!(channel_mhz(10), Some(2424));
        assert_eq!(channel_mhz(11), Some(2428));
        assert_eq!(channel_mhz(36), Some(2478));
        assert_eq!(channel_mhz(38), Some(2426));
        assert_eq!(channel_mhz(40), None);
        let all: std::collections::BTreeSet<u32> = (0..40).filter_map(channel_mhz).collect();
        assert_eq!(all.len(), 40);
        assert!(all.iter().all(|m| (2402..=2480).contains(m) && m % 2 == 0));
    }

    /// The follower the kernel runs takes a whole event off these PDUs, met at their times.
    #[test]
    fn a_follower_reassembles_an_extended_event_at_2m() {
        let b = Bearer::Extended(Phy::Le2M);
        let adv: Vec<u8> = (0..1_000u32).map(|i| (i * 7) as u8).collect();
        let adv_a = [1, 2, 3, 4, 5, 0xC6];
        let (pdus, end) = extended_event(10_000.0, 5, b, adv_a, &adv, true);
        assert_eq!(pdus.len(), 3 + b.pdus_for(adv.len()));
        assert!(pdus.windows(2).all(|w| w[0].start < w[1].start));
        // Chain PDUs T_MAFS apart, on secondary channels at 2M.
        for w in pdus[3..].windows(2) {
            assert_eq!(w[1].start - (w[0].start + w[0].air_us()), 300.0);
            assert!(w[0].channel < 37 && w[0].phy == Phy::Le2M);
        }
        assert_eq!(end, pdus.last().map(|p| p.start + p.air_us()).unwrap());

        let mut f = follower(adv_a, false);
        let mut got = None;
        for p in &pdus {
            let rx = p.start as u32;
            let hit = match f.op() {
                Op::ScanPrimary { channel } => channel == p.channel,
                Op::Listen(l) => l.channel == p.channel && l.phy == p.phy && l.contains(rx),
                Op::Idle => false,
            };
            if hit {
                let address = rx + ble_ext::address_air_us(p.phy);
                if let Some(r) = f.received(address, p.channel, p.phy, &p.bytes) {
                    got = Some(r.adv_data.to_vec());
                }
            }
        }
        assert_eq!(got.as_deref(), Some(&adv[..]));
    }

    /// The follower syncs to the train through the set's SyncInfo and takes an event's data.
    #[test]
    fn a_follower_syncs_to_the_periodic_train_and_reassembles_an_event() {
        let b = Bearer::Periodic(Phy::Le2M);
        let train = MODEL_TRAIN;
        let interval = b.budget_with_interval(0).interval_us as f64;
        let adv_a = [6, 5, 4, 3, 2, 0xC1];
        let first = 50_000.0;
        // The set at 10 ms points to the train's first anchor after it; the events carry data.
        let mut pdus = sync_set_event(
            10_000.0,
            0,
            Phy::Le2M,
            adv_a,
            &train,
            (first, interval, interval),
            0.0,
            50.0,
        );
        let data: Vec<Vec<u8>> = (0..4u8).map(|k| vec![k; 700]).collect();
        for (k, adv) in data.iter().enumerate() {
            let anchor = first + k as f64 * interval;
            pdus.extend(periodic_event(
                anchor,
                k as u64,
                1 + k as u64,
                b,
                adv,
                &train,
                true,
            ));
        }
        pdus.sort_by(|a, b| a.start.total_cmp(&b.start));
        assert!(pdus.iter().filter(|p| p.anchor).all(|p| p.aa == train.aa));

        let mut f = follower(adv_a, true);
        let mut got = Vec::new();
        for p in &pdus {
            let rx = p.start as u32;
            let hit = match f.op() {
                Op::ScanPrimary { channel } => channel == p.channel,
                Op::Listen(l) => {
                    l.channel == p.channel
                        && l.phy == p.phy
                        && l.access_address == p.aa
                        && l.contains(rx)
                }
                Op::Idle => false,
            };
            if hit {
                let address = rx + ble_ext::address_air_us(p.phy);
                if let Some(r) = f.received(address, p.channel, p.phy, &p.bytes) {
                    if r.periodic_counter.is_some() {
                        got.push(r.adv_data.to_vec());
                    }
                }
            }
        }
        assert!(!got.is_empty(), "no periodic event reassembled");
        assert!(got.iter().all(|g| data.contains(g)));
    }
}
