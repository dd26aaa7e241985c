//! Arbitrary bytes as a staged slot into the image parser and verifier. They must never panic,
//! never read outside the slot (a read error from an in-memory slot would mean the parser let an
//! offset past its bound checks), agree with each other (the streamed checker and the bootloader's
//! in-place walk too) and through a word-granular flash slot, and accept only what is signed by
//! the key: whatever verifies hashes to its SHA256 TLV and
//! carries the protected-only TLVs in its protected area. The seeds are real images signed by
//! `tock-ota sign` with the key in `image-key.pub.bin`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ota_image::build::WordFlash;
use ota_image::{
    hash_region, parse_image, tlv, verify_image, verify_in_place, FlashSlot, ImageError, PublicKey,
    RustCryptoVerifier, SliceSource, TlvArea, VerifyPolicy,
};

const KEY: &[u8; 64] = include_bytes!("image-key.pub.bin");

fuzz_target!(|data: &[u8]| {
    let key = PublicKey::from_raw(KEY).expect("the seeds' key");
    let policy = VerifyPolicy {
        min_security_counter: Some(0),
        max_payload_len: Some(0x3_8000),
        expected_load_addr: Some(0x8000),
    };
    let parsed = parse_image(&mut SliceSource(data));
    let verified = verify_image(&mut SliceSource(data), &key, &RustCryptoVerifier, &policy);
    for e in [parsed.as_ref().err(), verified.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert!(
            !matches!(e, ImageError::Read(_)),
            "read outside the slot: {e:?}"
        );
    }

    // The bootloader's in-place walk gives the streamed checker's verdict.
    let in_place = verify_in_place(&mut SliceSource(data), &key, &RustCryptoVerifier, &policy);
    assert_eq!(
        in_place, verified,
        "verify_in_place and verify_image disagree"
    );

    // The same slot 8 bytes into a word-granular flash (which also has bytes after the slot).
    let mut padded = vec![0xA5; 8];
    padded.extend_from_slice(data);
    padded.resize(padded.len().next_multiple_of(4) + 64, 0xA5);
    let mut flash = WordFlash::new(padded);
    let mut slot = FlashSlot::new(&mut flash, 8, data.len() as u32);
    let via_flash = parse_image(&mut slot).map_err(|e| e.map_read(|_| ()));
    assert_eq!(
        via_flash,
        parsed.clone().map_err(|e| e.map_read(|_| ())),
        "the flash slot reads differently"
    );

    match (&parsed, &verified) {
        (Err(p), Err(v)) => assert_eq!(p, v, "parse and verify disagree on the layout"),
        (Err(p), Ok(_)) => panic!("verified an image the parser refuses: {p:?}"),
        (Ok(_), Err(_)) => {}
        (Ok(info), Ok(v)) => {
            assert!(v.total_len as usize <= data.len());
            assert_eq!(v.total_len, info.total_len);
            assert!(v.payload_len <= 0x3_8000);
            assert_eq!(
                u64::from(v.payload_offset)
                    + u64::from(v.payload_len)
                    + u64::from(info.protected_tlv_len),
                u64::from(info.tlv_offset)
            );
            let h = hash_region(&mut SliceSource(data), info.tlv_offset).unwrap();
            assert_eq!(h, v.hash);
            assert_eq!(Some(h), info.hash);
            for t in info.tlvs() {
                assert!(
                    !tlv::must_be_protected(t.kind) || t.area == TlvArea::Protected,
                    "verified with an unprotected {}",
                    tlv::name(t.kind)
                );
                if let Some(n) = tlv::fixed_len(t.kind) {
                    assert_eq!(t.len, n);
                }
            }
        }
    }
});
