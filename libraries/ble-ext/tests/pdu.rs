//! Extended advertising PDUs: vectors built by hand from the field layouts of the Bluetooth Core
//! Specification 5.x, Vol 6 Part B §2.3.4; every malformed shape named; parse ∘ build round
//! trips over arbitrary PDUs.
use ble_ext::pdu::{Builder, PduError, PDU_TYPE_EXT, SCA_PPM};
use ble_ext::{Adi, AdvMode, AuxPhy, AuxPtr, ExtPdu, Phy, SyncInfo};
use proptest::prelude::*;

#[test]
fn an_adv_ext_ind_with_adi_and_aux_ptr() {
    // Header: type 0b0111, TxAdd 0; 7 payload octets. Extended header length 6, AdvMode 0;
    // flags ADI (bit 3) | AuxPtr (bit 4); ADI DID 0x123 SID 5 → 0x5123 little-endian;
    // AuxPtr channel 12, CA 1 (≤ 50 ppm), 30 µs units, offset 100, PHY 2M (1 in bits 21–23).
    let pdu = [0x07, 0x07, 0x06, 0x18, 0x23, 0x51, 0x4C, 0x64, 0x20];
    let p = ExtPdu::parse(&pdu).unwrap();
    assert_eq!(p.adv_mode, AdvMode::NonConnectableNonScannable);
    assert_eq!(p.adv_a, None);
    assert_eq!(p.adi, Some(Adi { did: 0x123, sid: 5 }));
    let aux = p.aux_ptr.unwrap();
    assert_eq!(
        aux,
        AuxPtr {
            channel: 12,
            ca_50ppm: true,
            units_300us: false,
            offset: 100,
            phy: AuxPhy::Le2M
        }
    );
    assert_eq!(aux.offset_us(), 3_000);
    assert_eq!(aux.sca_ppm(), 50);
    assert_eq!(aux.phy.phy(), Some(Phy::Le2M));
    assert!(p.adv_data.is_empty() && p.acad.is_empty());
}

#[test]
fn an_aux_adv_ind_with_adv_a_sync_info_tx_power_acad_and_adv_data() {
    let mut pdu = vec![0x47, 0]; // TxAdd (random AdvA)
                                 // flags: AdvA | ADI | SyncInfo | TxPower = 0x01 | 0x08 | 0x20 | 0x40
    let ext: Vec<u8> = [
        &[0x69][..],
        &[1, 2, 3, 4, 5, 0xC6],                     // AdvA
        &[0x01, 0x20],                              // ADI: DID 1, SID 2
        &[0x23, 0x21],                              // SyncInfo offset 0x123, units 300 µs (bit 13)
        &[0x08, 0x00],                              // interval 8 × 1.25 ms
        &[0xFF, 0xFF, 0xFF, 0xFF, 0x1F | (5 << 5)], // all 37 channels, SCA 5 (≤ 50 ppm)
        &[0x78, 0x56, 0x34, 0x12],                  // AA
        &[0xEF, 0xCD, 0xAB],                        // CRCInit
        &[0x02, 0x01],                              // event counter 0x0102
        &[0xF6],                                    // TxPower −10 dBm
        &[0xAA, 0xBB],                              // ACAD
    ]
    .concat();
    pdu.push(ext.len() as u8);
    pdu.extend_from_slice(&ext);
    pdu.extend_from_slice(b"hello");
    pdu[1] = (pdu.len() - 2) as u8;
    let p = ExtPdu::parse(&pdu).unwrap();
    assert!(p.tx_add);
    assert_eq!(p.adv_a, Some([1, 2, 3, 4, 5, 0xC6]));
    assert_eq!(p.adi, Some(Adi { did: 1, sid: 2 }));
    let s = p.sync_info.unwrap();
    assert_eq!(
        s,
        SyncInfo {
            offset: 0x123,
            units_300us: true,
            offset_adjust: false,
            interval: 8,
            channel_map: (1 << 37) - 1,
            sca: 5,
            access_address: 0x1234_5678,
            crc_init: 0xAB_CDEF,
            event_counter: 0x0102,
        }
    );
    assert_eq!(s.offset_us(), 0x123 * 300);
    assert_eq!(s.interval_us(), 10_000);
    assert_eq!(s.sca_ppm(), 50);
    assert_eq!(p.tx_power, Some(-10));
    assert_eq!(p.acad, &[0xAA, 0xBB]);
    assert_eq!(p.adv_data, b"hello");
    assert_eq!(p.aux_ptr, None);
}

#[test]
fn a_last_periodic_pdu_has_no_extended_header() {
    // AUX_SYNC_IND / AUX_CHAIN_IND of a train, no AuxPtr: ext header length 0, then AdvData.
    let pdu = [PDU_TYPE_EXT, 4, 0x00, 9, 8, 7, 0xFF, 0xFF];
    let p = ExtPdu::parse(&pdu).unwrap();
    assert_eq!(p.adv_data, &[9, 8, 7]);
    assert_eq!(p.adi, None);
    assert!(p.acad.is_empty());
}

#[test]
fn sync_info_offset_adjust_and_sca_codes() {
    let s = SyncInfo {
        offset: 10,
        units_300us: false,
        offset_adjust: true,
        interval: 6,
        channel_map: 0b11,
        sca: 0,
        access_address: 1,
        crc_init: 2,
        event_counter: 3,
    };
    assert_eq!(s.offset_us(), 300 + 2_457_600);
    assert_eq!(s.sca_ppm(), 500);
    assert_eq!(SCA_PPM, [500, 250, 150, 100, 75, 50, 30, 20]);
}

#[test]
fn every_malformed_shape_is_named() {
    use PduError::*;
    let cases: &[(&[u8], PduError)] = &[
        (&[], NoHeader { len: 0 }),
        (&[0x07], NoHeader { len: 1 }),
        (&[0x02, 0x06, 1, 2, 3, 4, 5, 6], NotExtended { pdu_type: 2 }),
        (
            &[0x07, 5, 0, 1],
            Truncated {
                length: 5,
                received: 2,
            },
        ),
        (&[0x07, 0], EmptyPayload),
        (
            &[0x07, 2, 0x05, 0x00],
            ExtHeaderPastPayload {
                ext_header: 5,
                payload: 2,
            },
        ),
        (&[0x07, 1, 0xC0], ReservedAdvMode),
        // Flags AdvA in a 3-octet extended header: 7 octets needed.
        (
            &[0x07, 4, 0x03, 0x01, 0, 0],
            FieldsPastExtHeader {
                flags: 0x01,
                needed: 7,
                ext_header: 3,
            },
        ),
        // AuxPtr channel 37 (a primary channel).
        (&[0x07, 5, 0x04, 0x10, 37, 1, 0], AuxChannel { channel: 37 }),
        // AuxPtr PHY 3 (reserved).
        (&[0x07, 5, 0x04, 0x10, 1, 1, 3 << 5], AuxPhy { code: 3 }),
    ];
    for (pdu, want) in cases {
        assert_eq!(ExtPdu::parse(pdu), Err(*want), "{pdu:02x?}");
        // The message names the problem.
        assert!(!want.to_string().is_empty());
    }
    let mut sync = SyncInfo {
        offset: 1,
        units_300us: false,
        offset_adjust: false,
        interval: 5,
        channel_map: 0b11,
        sca: 0,
        access_address: 1,
        crc_init: 2,
        event_counter: 3,
    };
    let mut buf = [0u8; 64];
    let write = |s: SyncInfo, buf: &mut [u8]| {
        Builder {
            sync_info: Some(s),
            ..Builder::default()
        }
        .write(buf)
        .unwrap()
    };
    let n = write(sync, &mut buf);
    assert_eq!(ExtPdu::parse(&buf[..n]), Err(SyncInterval { units: 5 }));
    sync.interval = 6;
    sync.channel_map = 1 << 36;
    let n = write(sync, &mut buf);
    assert_eq!(ExtPdu::parse(&buf[..n]), Err(SyncChannelMap { used: 1 }));
}

#[test]
fn octets_past_the_length_are_not_part_of_the_pdu() {
    let pdu = [0x07, 2, 0x00, 0x42, 0x99, 0x99];
    assert_eq!(ExtPdu::parse(&pdu).unwrap().adv_data, &[0x42]);
}

fn arb_aux() -> impl Strategy<Value = AuxPtr> {
    (0u8..=36, any::<bool>(), any::<bool>(), 0u16..0x2000, 0u8..3).prop_map(
        |(channel, ca_50ppm, units_300us, offset, phy)| AuxPtr {
            channel,
            ca_50ppm,
            units_300us,
            offset,
            phy: [AuxPhy::Le1M, AuxPhy::Le2M, AuxPhy::Coded][usize::from(phy)],
        },
    )
}

fn arb_sync() -> impl Strategy<Value = SyncInfo> {
    (
        (0u16..0x2000, any::<bool>(), any::<bool>(), 6u16..),
        (
            any::<u64>(),
            0u8..8,
            any::<u32>(),
            0u32..1 << 24,
            any::<u16>(),
        ),
    )
        .prop_filter_map(
            "a map of at least 2 channels",
            |((offset, units_300us, offset_adjust, interval), (map, sca, aa, crc, counter))| {
                let channel_map = map & ((1 << 37) - 1);
                (channel_map.count_ones() >= 2).then_some(SyncInfo {
                    offset,
                    units_300us,
                    offset_adjust,
                    interval,
                    channel_map,
                    sca,
                    access_address: aa,
                    crc_init: crc,
                    event_counter: counter,
                })
            },
        )
}

proptest! {
    #[test]
    fn build_then_parse_gives_the_fields_back(
        tx_add in any::<bool>(),
        adv_mode in 0u8..3,
        adv_a in proptest::option::of(any::<[u8; 6]>()),
        target_a in proptest::option::of(any::<[u8; 6]>()),
        cte_info in proptest::option::of(any::<u8>()),
        adi in proptest::option::of((0u16..0x1000, 0u8..16).prop_map(|(did, sid)| Adi { did, sid })),
        aux_ptr in proptest::option::of(arb_aux()),
        sync_info in proptest::option::of(arb_sync()),
        tx_power in proptest::option::of(any::<i8>()),
        acad in proptest::collection::vec(any::<u8>(), 0..8),
        adv_data in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let b = Builder {
            tx_add, adv_mode, adv_a, target_a, cte_info, adi, aux_ptr, sync_info, tx_power,
            acad: &acad, adv_data: &adv_data,
        };
        let mut buf = [0u8; 2 + 255];
        match b.write(&mut buf) {
            Ok(n) => {
                let p = ExtPdu::parse(&buf[..n]).unwrap();
                prop_assert_eq!(p.tx_add, tx_add);
                prop_assert_eq!(p.adv_mode as u8, adv_mode);
                prop_assert_eq!(p.adv_a, adv_a);
                prop_assert_eq!(p.target_a, target_a);
                prop_assert_eq!(p.cte_info, cte_info);
                prop_assert_eq!(p.adi, adi);
                prop_assert_eq!(p.aux_ptr, aux_ptr);
                prop_assert_eq!(p.sync_info, sync_info);
                prop_assert_eq!(p.tx_power, tx_power);
                // With no field present, a flags octet of 0 stands before the ACAD.
                prop_assert_eq!(p.acad, &acad[..]);
                prop_assert_eq!(p.adv_data, &adv_data[..]);
            }
            Err(_) => prop_assert!(b.ext_header_len() > 63 || 1 + b.ext_header_len() + adv_data.len() > 255),
        }
    }

    #[test]
    fn arbitrary_bytes_parse_or_name_an_error(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..300),
        extended in any::<bool>(),
    ) {
        // Half the inputs are of the extended PDU type, so the payload rules are reached.
        if extended && !bytes.is_empty() {
            bytes[0] = bytes[0] & 0xF0 | PDU_TYPE_EXT;
        }
        if let Ok(p) = ExtPdu::parse(&bytes) {
            // Whatever parses, borrowed from within the PDU's own length.
            let end = 2 + usize::from(bytes[1]);
            prop_assert!(p.adv_data.len() + p.acad.len() < end);
            let b = Builder {
                tx_add: p.tx_add, adv_mode: p.adv_mode as u8, adv_a: p.adv_a,
                target_a: p.target_a, cte_info: p.cte_info, adi: p.adi, aux_ptr: p.aux_ptr,
                sync_info: p.sync_info, tx_power: p.tx_power, acad: p.acad, adv_data: p.adv_data,
            };
            let mut buf = [0u8; 2 + 255];
            let n = b.write(&mut buf).unwrap();
            let q = ExtPdu::parse(&buf[..n]).unwrap();
            prop_assert_eq!((q.adv_a, q.adi, q.aux_ptr, q.sync_info, q.adv_data), (p.adv_a, p.adi, p.aux_ptr, p.sync_info, p.adv_data));
        }
    }
}
