//! Arbitrary bytes as control records (the kernel's boot requests and confirms) and as a request
//! sector. Decoding must never panic, a decoded record must encode back to a record that decodes
//! the same, the word-wise erased check must agree with a byte-wise one at every length, and the
//! sector scan must agree with a plain reference scan.
#![no_main]
use control_area::{is_erased, scan, DecodeError, Record, RECORD_LEN};
use libfuzzer_sys::fuzz_target;

/// The scan's rules spelled out plainly: slots in order, stop at the first erased one, the
/// highest sequence among the valid ones before it wins (the first of equals).
fn reference_scan(sector: &[u8]) -> (Option<Record>, Option<usize>) {
    let mut newest: Option<Record> = None;
    for (i, chunk) in sector.chunks_exact(RECORD_LEN).enumerate() {
        if chunk.iter().all(|&b| b == 0xFF) {
            return (newest, Some(i * RECORD_LEN));
        }
        if let Ok(r) = Record::decode(chunk.try_into().unwrap()) {
            if newest.is_none_or(|n| r.sequence > n.sequence) {
                newest = Some(r);
            }
        }
    }
    (newest, None)
}

fuzz_target!(|data: &[u8]| {
    for n in 0..data.len().min(80) {
        assert_eq!(
            is_erased(&data[..n]),
            data[..n].iter().all(|&b| b == 0xFF),
            "length {n}"
        );
    }
    for chunk in data.chunks_exact(RECORD_LEN) {
        let slot: &[u8; RECORD_LEN] = chunk.try_into().unwrap();
        match Record::decode(slot) {
            Ok(r) => assert_eq!(Record::decode(&r.encode()), Ok(r)),
            Err(DecodeError::Erased) => assert!(slot.iter().all(|&b| b == 0xFF)),
            Err(DecodeError::Corrupt) => {}
        }
    }
    // Arbitrary bytes rarely carry a valid CRC: also scan a sector made of re-encoded records
    // (taken from the input's fields) with the input's bytes between them.
    let mut sector = Vec::new();
    for chunk in data.chunks(RECORD_LEN + 1) {
        match chunk.first() {
            Some(&b) if b & 3 == 0 && chunk.len() > 8 => {
                let w = |a: usize| {
                    u32::from_le_bytes([chunk[a], chunk[a + 1], chunk[a + 2], chunk[a + 3]])
                };
                let rec = Record {
                    kind: if b & 4 == 0 {
                        control_area::RecordKind::BootRequest
                    } else {
                        control_area::RecordKind::Confirm
                    },
                    sequence: w(1),
                    image_len: w(5) & 0xFFFF,
                    image_hash: [b; 32],
                };
                sector.extend_from_slice(&rec.encode());
            }
            Some(&b) if b & 3 == 1 => sector.extend_from_slice(&[0xFF; RECORD_LEN]),
            _ => sector.extend_from_slice(&chunk[1.min(chunk.len())..]),
        }
    }
    assert_eq!(scan(&sector), reference_scan(&sector));
    assert_eq!(scan(data), reference_scan(data));
});
