use crate::build::WordFlash;
use crate::*;

#[test]
fn der_round_trip_keeps_high_bits_and_leading_zeros() {
    for (r0, s0) in [(0x00u8, 0x80u8), (0x80, 0x00), (0x7f, 0x01), (0x00, 0x00)] {
        let mut raw = [0x5au8; 64];
        raw[0] = r0;
        raw[1] = 0;
        raw[32] = s0;
        let mut der = [0u8; MAX_DER_SIGNATURE_LEN];
        let n = raw_to_der_signature(&raw, &mut der);
        assert_eq!(der_to_raw_signature(&der[..n]), Some(raw));
        // imgtool --pad-sig: trailing zeros up to 72 bytes.
        assert_eq!(der_to_raw_signature(&der), Some(raw));
    }
}

#[test]
fn der_rejects_malformed() {
    let mut raw = [0x11u8; 64];
    raw[0] = 0x90;
    let mut der = [0u8; MAX_DER_SIGNATURE_LEN];
    let n = raw_to_der_signature(&raw, &mut der);
    let good = &der[..n];
    assert!(der_to_raw_signature(&good[..n - 1]).is_none());
    let mut bad = good.to_vec();
    bad[0] = 0x31;
    assert!(der_to_raw_signature(&bad).is_none());
    let mut bad = good.to_vec();
    bad.push(1); // non-zero trailing byte
    assert!(der_to_raw_signature(&bad).is_none());
    let mut bad = good.to_vec();
    bad[4] = 0; // r with its pad byte dropped would be negative: corrupt the zero pad instead
    bad[3] = 0x80;
    assert!(der_to_raw_signature(&bad).is_none());
    assert!(der_to_raw_signature(&[]).is_none());
}

extern crate std;
use std::vec::Vec;

#[test]
fn flash_slot_reads_any_offset_with_word_aligned_flash() {
    let data: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut flash = WordFlash::new(data.clone());
    let mut slot = FlashSlot::new(&mut flash, 256, 512);
    assert_eq!(slot.capacity(), 512);
    for off in [0u32, 1, 2, 3, 5, 63, 64, 65, 200, 509] {
        for len in [0usize, 1, 2, 3, 4, 5, 63, 64, 65, 130] {
            if off as usize + len > 512 {
                continue;
            }
            let mut buf = std::vec![0u8; len];
            slot.read_at(off, &mut buf).unwrap();
            let s = 256 + off as usize;
            assert_eq!(buf, data[s..s + len], "off {off} len {len}");
        }
    }
    let mut buf = [0u8; 4];
    assert!(matches!(
        slot.read_at(510, &mut buf),
        Err(SlotReadError::OutOfBounds { .. })
    ));
}

#[test]
fn parse_rejects_short_and_garbage_slots() {
    let mut s: &[u8] = &[0u8; 16];
    assert_eq!(parse_image(&mut s), Err(ImageError::TruncatedHeader));
    let mut s: &[u8] = &[0u8; 64];
    assert_eq!(parse_image(&mut s), Err(ImageError::BadMagic(0)));
}

#[test]
fn public_key_rejects_points_off_the_curve() {
    assert_eq!(PublicKey::from_raw(&[0u8; 64]), Err(KeyError::NotOnCurve));
    assert_eq!(PublicKey::from_raw(&[1u8; 64]), Err(KeyError::NotOnCurve));
}

#[test]
fn version_displays_like_imgtool() {
    let v = ImageVersion {
        major: 1,
        minor: 2,
        revision: 3,
        build: 4,
    };
    assert_eq!(std::format!("{v}"), "1.2.3+4");
}
