//! Control records at their limits: all-ones and all-zero fields, one flipped byte anywhere, and
//! the word-wise erased check at every length and position. MCUboot's counterpart is #829 (a
//! size read as 0xFFFFFFFF from erased flash, wave-2 research E): erased bytes must read as "no
//! record", never as a record with all-ones fields.
use control_area::{is_erased, scan, DecodeError, Record, RecordKind, RECORD_LEN};

fn record(sequence: u32, image_len: u32) -> Record {
    Record {
        kind: RecordKind::BootRequest,
        sequence,
        image_len,
        image_hash: [0xFF; 32],
    }
}

#[test]
fn all_ones_fields_round_trip_and_erased_slots_are_no_record() {
    for (seq, len) in [(u32::MAX, u32::MAX), (0, 0), (u32::MAX, 0)] {
        let r = record(seq, len);
        assert_eq!(Record::decode(&r.encode()), Ok(r));
    }
    assert_eq!(
        Record::decode(&[0xFF; RECORD_LEN]),
        Err(DecodeError::Erased)
    );
    // Every single-byte change of a valid record is caught (magic, kind, fields or CRC).
    let good = record(u32::MAX, u32::MAX).encode();
    for i in 0..RECORD_LEN {
        let mut bad = good;
        bad[i] ^= 0x01;
        assert_eq!(Record::decode(&bad), Err(DecodeError::Corrupt), "byte {i}");
    }
}

#[test]
fn the_erased_check_agrees_with_a_byte_by_byte_one_at_every_length_and_position() {
    for len in 0..=80 {
        let mut bytes = vec![0xFF; len];
        assert!(is_erased(&bytes), "length {len}");
        for at in 0..len {
            bytes[at] = 0xFE;
            assert!(!is_erased(&bytes), "length {len}, byte {at}");
            bytes[at] = 0xFF;
        }
        // From an unaligned start too.
        let backing = vec![0xFF; len + 3];
        assert!(is_erased(&backing[3..]));
    }
}

#[test]
fn a_sector_whose_length_is_not_whole_slots_is_scanned_without_panic() {
    let mut sector = record(5, 100).encode().to_vec();
    sector.extend_from_slice(&[0xFF; 10]);
    assert_eq!(scan(&sector), (Some(record(5, 100)), None));
    assert_eq!(scan(&sector[..RECORD_LEN - 1]), (None, None));
    assert_eq!(scan(&[]), (None, None));
}
