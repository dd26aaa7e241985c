//! Malformed and hostile images: each defect is its own typed error, and random mutations
//! never panic and are never accepted.
use ota_image::build::{self, WordFlash, WordFlashError};
use ota_image::{
    parse_image, tlv, verify_image, ImageError, PublicKey, RustCryptoVerifier, Sha256, SliceSource,
    SlotReadError, VerifyPolicy, TLV_INFO_MAGIC,
};
use ota_imgtool::keys::image_public_key;
use ota_imgtool::sign::{sign_image, SignOptions};
use p256::ecdsa::SigningKey;
use proptest::prelude::*;

type Result<T> = core::result::Result<T, ImageError<SlotReadError<()>>>;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

fn opts(counter: Option<u32>) -> SignOptions {
    SignOptions {
        header_size: 0x20,
        security_counter: counter,
        ..SignOptions::default()
    }
}

fn image(len: usize, counter: Option<u32>) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
    sign_image(&payload, &opts(counter), &key(1)).unwrap()
}

fn verify_with(
    img: &[u8],
    pk: &PublicKey,
    policy: &VerifyPolicy,
) -> Result<ota_image::VerifiedImage> {
    verify_image(&mut SliceSource(img), pk, &RustCryptoVerifier, policy)
}

fn verify(img: &[u8]) -> Result<ota_image::VerifiedImage> {
    verify_with(
        img,
        &image_public_key(key(1).verifying_key()),
        &VerifyPolicy::default(),
    )
}

/// The hashed region of `img` followed by an unprotected TLV area holding `tlvs`.
fn with_tlvs(img: &[u8], tlvs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let t = parse_image(&mut SliceSource(img)).unwrap().tlv_offset as usize;
    let mut out = img[..t].to_vec();
    let refs: Vec<(u16, &[u8])> = tlvs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    out.extend_from_slice(&build::tlv_area(TLV_INFO_MAGIC, &refs).unwrap());
    out
}

/// SHA256, KEYHASH and a signature over `signed_digest` by `signer`.
fn tlvs_for(img: &[u8], signer: &SigningKey, signed_digest: [u8; 32]) -> Vec<(u16, Vec<u8>)> {
    let trusted = image_public_key(key(1).verifying_key());
    vec![
        (tlv::SHA256, hashed_digest(img).to_vec()),
        (tlv::KEYHASH, trusted.key_hash().to_vec()),
        (
            tlv::ECDSA_SIG,
            build::sign_digest(&signed_digest, signer).unwrap(),
        ),
    ]
}

fn hashed_digest(img: &[u8]) -> [u8; 32] {
    let t = parse_image(&mut SliceSource(img)).unwrap().tlv_offset as usize;
    Sha256::digest(&img[..t])
}

#[test]
fn a_good_image_verifies_and_reports_its_fields() {
    let img = image(1000, Some(7));
    let v = verify(&img).unwrap();
    assert_eq!(
        (v.payload_offset, v.payload_len, v.security_counter),
        (0x20, 1000, Some(7))
    );
    assert_eq!(v.total_len as usize, img.len());
    // Rebuilding the TLVs with the helpers gives a good image too (the helpers are sound).
    let rebuilt = with_tlvs(&img, &tlvs_for(&img, &key(1), hashed_digest(&img)));
    assert!(verify(&rebuilt).is_ok());
    // Trailing bytes in the slot after the image are not part of it.
    let mut slot = img.clone();
    slot.extend_from_slice(&[0xff; 300]);
    assert_eq!(verify(&slot).unwrap().total_len as usize, img.len());
}

#[test]
fn truncated_header() {
    let img = image(100, None);
    assert_eq!(verify(&img[..31]).unwrap_err(), ImageError::TruncatedHeader);
    assert_eq!(verify(&[]).unwrap_err(), ImageError::TruncatedHeader);
}

#[test]
fn wrong_magic() {
    let mut img = image(100, None);
    img[0] ^= 0x01;
    assert!(matches!(
        verify(&img),
        Err(ImageError::BadMagic(0x96f3_b83c))
    ));
}

#[test]
fn header_size_too_small_or_beyond_the_file() {
    let mut img = image(100, None);
    img[8..10].copy_from_slice(&0x1fu16.to_le_bytes());
    assert_eq!(
        verify(&img).unwrap_err(),
        ImageError::HeaderSizeTooSmall(0x1f)
    );
    let mut img = image(100, None);
    img[8..10].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert!(matches!(
        verify(&img),
        Err(ImageError::HeaderBeyondSlot {
            header_size: 0xfff0,
            ..
        })
    ));
}

#[test]
fn payload_beyond_the_slot_without_overflow() {
    let mut img = image(100, None);
    img[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        verify(&img),
        Err(ImageError::PayloadBeyondSlot { .. })
    ));
    let img = image(100, None);
    assert!(matches!(
        verify(&img[..0x20 + 50]),
        Err(ImageError::PayloadBeyondSlot { .. })
    ));
}

#[test]
fn tlv_lengths_past_the_end() {
    let img = image(100, None);
    let info = parse_image(&mut SliceSource(&img)).unwrap();
    // SHA256 entry length enlarged past its area.
    let mut bad = img.clone();
    let sha_len_at = info.tlv_offset as usize + 4 + 2;
    bad[sha_len_at..sha_len_at + 2].copy_from_slice(&0xffffu16.to_le_bytes());
    assert!(matches!(
        verify(&bad),
        Err(ImageError::TlvPastAreaEnd {
            kind: tlv::SHA256,
            ..
        })
    ));
    // The area's own length past the end of the slot.
    let mut bad = img.clone();
    let at = info.tlv_offset as usize + 2;
    bad[at..at + 2].copy_from_slice(&0xfff0u16.to_le_bytes());
    assert!(matches!(
        verify(&bad),
        Err(ImageError::TlvAreaBeyondSlot { .. })
    ));
    // The file cut inside the TLV area.
    assert!(matches!(
        verify(&img[..img.len() - 1]),
        Err(ImageError::TlvAreaBeyondSlot { .. })
    ));
    // No TLV area at all.
    let t = info.tlv_offset as usize;
    assert!(matches!(
        verify(&img[..t]),
        Err(ImageError::TlvAreaBeyondSlot { .. })
    ));
    // An area shorter than its own header.
    let mut bad = img.clone();
    bad[t + 2..t + 4].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(verify(&bad).unwrap_err(), ImageError::BadTlvAreaLength(2));
    // Bad TLV info magic.
    let mut bad = img.clone();
    bad[t] = 0x00;
    assert!(matches!(verify(&bad), Err(ImageError::BadTlvInfoMagic(_))));
}

#[test]
fn missing_hash_signature_or_key_id() {
    let img = image(100, None);
    let good = tlvs_for(&img, &key(1), hashed_digest(&img));
    let without = |kind: u16| -> Vec<(u16, Vec<u8>)> {
        good.iter().filter(|(k, _)| *k != kind).cloned().collect()
    };
    assert_eq!(
        verify(&with_tlvs(&img, &without(tlv::SHA256))).unwrap_err(),
        ImageError::MissingHash
    );
    assert_eq!(
        verify(&with_tlvs(&img, &without(tlv::ECDSA_SIG))).unwrap_err(),
        ImageError::MissingSignature
    );
    assert_eq!(
        verify(&with_tlvs(&img, &without(tlv::KEYHASH))).unwrap_err(),
        ImageError::MissingKeyId
    );
}

#[test]
fn hash_mismatch() {
    let mut img = image(100, Some(1));
    img[0x20 + 10] ^= 0x80; // payload byte
    assert_eq!(verify(&img).unwrap_err(), ImageError::HashMismatch);
    let mut img = image(100, Some(1));
    let t = parse_image(&mut SliceSource(&img)).unwrap().tlv_offset as usize;
    img[t - 1] ^= 0x01; // the security counter's value: protected, so hashed
    assert_eq!(verify(&img).unwrap_err(), ImageError::HashMismatch);
}

#[test]
fn wrong_key() {
    let img = image(100, None);
    let other = image_public_key(key(2).verifying_key());
    assert_eq!(
        verify_with(&img, &other, &VerifyPolicy::default()).unwrap_err(),
        ImageError::KeyMismatch
    );
    // KEYHASH naming our key but the signature made by another key.
    let forged = with_tlvs(&img, &tlvs_for(&img, &key(2), hashed_digest(&img)));
    assert_eq!(verify(&forged).unwrap_err(), ImageError::BadSignature);
}

#[test]
fn signature_over_other_bytes() {
    let img = image(100, None);
    let other = image(101, None);
    let tlvs = tlvs_for(&img, &key(1), hashed_digest(&other));
    assert_eq!(
        verify(&with_tlvs(&img, &tlvs)).unwrap_err(),
        ImageError::BadSignature
    );
    // A signature that is not DER.
    let mut tlvs = tlvs_for(&img, &key(1), hashed_digest(&img));
    tlvs[2].1[0] = 0x31;
    assert_eq!(
        verify(&with_tlvs(&img, &tlvs)).unwrap_err(),
        ImageError::BadSignatureEncoding
    );
    // A signature TLV too short or too long to be P-256.
    tlvs[2].1 = vec![0x30; 80];
    assert!(matches!(
        verify(&with_tlvs(&img, &tlvs)),
        Err(ImageError::BadTlvLength {
            kind: tlv::ECDSA_SIG,
            len: 80
        })
    ));
}

#[test]
fn duplicate_tlvs() {
    let img = image(100, None);
    for dup in [tlv::SHA256, tlv::KEYHASH, tlv::ECDSA_SIG] {
        let mut tlvs = tlvs_for(&img, &key(1), hashed_digest(&img));
        let extra = tlvs.iter().find(|(k, _)| *k == dup).unwrap().clone();
        tlvs.push(extra);
        assert_eq!(
            verify(&with_tlvs(&img, &tlvs)).unwrap_err(),
            ImageError::DuplicateTlv(dup)
        );
    }
}

#[test]
fn bad_tlv_lengths_and_unprotected_security_counter() {
    let img = image(100, None);
    let mut tlvs = tlvs_for(&img, &key(1), hashed_digest(&img));
    tlvs[0].1.push(0);
    assert!(matches!(
        verify(&with_tlvs(&img, &tlvs)),
        Err(ImageError::BadTlvLength {
            kind: tlv::SHA256,
            len: 33
        })
    ));
    let mut tlvs = tlvs_for(&img, &key(1), hashed_digest(&img));
    tlvs.push((tlv::SEC_CNT, 99u32.to_le_bytes().to_vec()));
    assert_eq!(
        verify(&with_tlvs(&img, &tlvs)).unwrap_err(),
        ImageError::TlvNotProtected(tlv::SEC_CNT)
    );
}

#[test]
fn protected_tlv_size_mismatch() {
    // Header claims a size the area does not have.
    let mut img = image(100, Some(3));
    img[10..12].copy_from_slice(&16u16.to_le_bytes());
    assert_eq!(
        verify(&img).unwrap_err(),
        ImageError::ProtectedTlvSizeMismatch {
            header: 16,
            area: 12
        }
    );
    // Header claims protected TLVs that are not there.
    let mut img = image(100, None);
    img[10..12].copy_from_slice(&12u16.to_le_bytes());
    assert_eq!(
        verify(&img).unwrap_err(),
        ImageError::ProtectedTlvSizeMismatch {
            header: 12,
            area: 0
        }
    );
    // Protected TLVs the header does not declare.
    let mut img = image(100, Some(3));
    img[10..12].copy_from_slice(&0u16.to_le_bytes());
    assert_eq!(
        verify(&img).unwrap_err(),
        ImageError::ProtectedTlvSizeMismatch {
            header: 0,
            area: 12
        }
    );
}

#[test]
fn security_counter_below_floor() {
    let pk = image_public_key(key(1).verifying_key());
    let floor = |f| VerifyPolicy {
        min_security_counter: Some(f),
        ..VerifyPolicy::default()
    };
    let img = image(100, Some(4));
    assert!(verify_with(&img, &pk, &floor(4)).is_ok());
    assert_eq!(
        verify_with(&img, &pk, &floor(5)).unwrap_err(),
        ImageError::SecurityCounterBelowFloor {
            counter: 4,
            floor: 5
        }
    );
    // No counter counts as 0.
    let img = image(100, None);
    assert!(verify_with(&img, &pk, &floor(0)).is_ok());
    assert_eq!(
        verify_with(&img, &pk, &floor(1)).unwrap_err(),
        ImageError::SecurityCounterBelowFloor {
            counter: 0,
            floor: 1
        }
    );
}

#[test]
fn payload_size_load_address_and_flags_policy() {
    let pk = image_public_key(key(1).verifying_key());
    let img = image(100, None);
    let small = VerifyPolicy {
        max_payload_len: Some(99),
        ..VerifyPolicy::default()
    };
    assert_eq!(
        verify_with(&img, &pk, &small).unwrap_err(),
        ImageError::PayloadTooLarge { len: 100, max: 99 }
    );
    let at = |a| VerifyPolicy {
        expected_load_addr: Some(a),
        ..VerifyPolicy::default()
    };
    assert!(
        verify_with(&img, &pk, &at(0x8000)).is_ok(),
        "load address 0 is accepted"
    );
    let payload = vec![1u8; 64];
    let loaded = sign_image(
        &payload,
        &SignOptions {
            load_addr: 0x9000,
            ..opts(None)
        },
        &key(1),
    )
    .unwrap();
    assert!(verify_with(&loaded, &pk, &at(0x9000)).is_ok());
    assert_eq!(
        verify_with(&loaded, &pk, &at(0x8000)).unwrap_err(),
        ImageError::BadLoadAddress {
            found: 0x9000,
            expected: 0x8000
        }
    );
    let mut enc = img.clone();
    enc[16] = 0x04; // ENCRYPTED_AES128
    assert_eq!(
        verify(&enc).unwrap_err(),
        ImageError::UnsupportedFlags(0x04)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any change to any byte of the image is refused (every byte is hashed, or is a TLV
    /// header, the hash, the key hash or the signature); nothing panics.
    #[test]
    fn mutated_images_are_never_accepted(
        len in 0usize..600,
        counter in proptest::option::of(any::<u32>()),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let img = image(len, counter);
        let mut bad = img.clone();
        for (at, xor) in &edits {
            bad[at.index(img.len())] ^= xor;
        }
        let r = verify(&bad);
        if bad != img {
            prop_assert!(r.is_err(), "accepted a changed image: {edits:?}");
        }
        let _ = parse_image(&mut SliceSource(&bad));
    }

    /// Truncation and appended junk: truncated images are refused; junk after the image is
    /// outside it.
    #[test]
    fn truncated_or_extended_slots(len in 0usize..300, cut in 1usize..400, junk in proptest::collection::vec(any::<u8>(), 0..64)) {
        let img = image(len, Some(1));
        let cut = cut.min(img.len());
        prop_assert!(verify(&img[..img.len() - cut]).is_err());
        let mut ext = img.clone();
        ext.extend_from_slice(&junk);
        prop_assert_eq!(verify(&ext).map(|v| v.total_len as usize), Ok(img.len()));
    }

    /// Arbitrary bytes behind a valid magic: parse and verify return, never panic.
    #[test]
    fn random_bytes_with_a_magic_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 32..2048), hs in 32u16..600) {
        bytes[0..4].copy_from_slice(&ota_image::IMAGE_MAGIC.to_le_bytes());
        bytes[8..10].copy_from_slice(&hs.to_le_bytes());
        let _ = parse_image(&mut SliceSource(&bytes));
        prop_assert!(verify(&bytes).is_err());
    }
}

#[test]
fn verifies_from_a_word_aligned_flash_slot_and_reports_read_errors() {
    let img = image(3001, Some(2)); // odd length: TLVs at unaligned offsets
    let base = 0x1000;
    let mut data = vec![0xffu8; 0x4000];
    data[base..base + img.len()].copy_from_slice(&img);
    let mut flash = WordFlash::new(data);
    let pk = image_public_key(key(1).verifying_key());
    let policy = VerifyPolicy::default();
    let mut slot = ota_image::FlashSlot::new(&mut flash, base as u32, 0x2000);
    let v = verify_image(&mut slot, &pk, &RustCryptoVerifier, &policy).unwrap();
    assert_eq!(v.total_len as usize, img.len());

    flash.fail_at = Some(base as u32 + 0x20 + 1000);
    let mut slot = ota_image::FlashSlot::new(&mut flash, base as u32, 0x2000);
    assert_eq!(
        verify_image(&mut slot, &pk, &RustCryptoVerifier, &policy).unwrap_err(),
        ImageError::Read(SlotReadError::Flash(WordFlashError::Injected))
    );
    // A slot too small for the image it holds: bounds come from the slot, not the flash.
    flash.fail_at = None;
    let mut slot = ota_image::FlashSlot::new(&mut flash, base as u32, img.len() as u32 - 1);
    assert!(matches!(
        verify_image(&mut slot, &pk, &RustCryptoVerifier, &policy),
        Err(ImageError::TlvAreaBeyondSlot { .. })
    ));
}
