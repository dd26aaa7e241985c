//! The streamed checker gives one verdict whatever the chunking, and the same as every other way
//! of verifying an image: `verify_image` (the checker fed from an `ImageSource`), the bootloader's
//! `verify_in_place`, and `parse_image` for the layout.
use ota_image::build::{self, ImageBuilder};
use ota_image::{
    parse_image, tlv, verify_image, verify_in_place, CheckError, ImageError, ImageVersion,
    RustCryptoVerifier, SliceSource, StreamChecker, VerifiedImage, VerifyPolicy,
};
use p256::ecdsa::SigningKey;
use proptest::prelude::*;

fn key() -> SigningKey {
    SigningKey::from_slice(&[0x17; 32]).unwrap()
}

fn policy() -> VerifyPolicy {
    VerifyPolicy {
        min_security_counter: Some(2),
        max_payload_len: Some(3000),
        expected_load_addr: Some(0x8000),
    }
}

/// The verdict of the checker fed `image` in pieces whose lengths cycle through `chunks`
/// (a piece of 0 bytes is fed as such). `chunks` must hold a length above zero, or the feed
/// would never end.
fn streamed(image: &[u8], chunks: &[usize]) -> Result<VerifiedImage, CheckError> {
    assert!(
        chunks.iter().any(|&n| n > 0),
        "chunk lengths {chunks:?} never advance"
    );
    let mut c = StreamChecker::new(image.len() as u32);
    let mut rest = image;
    for &n in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        c.feed(piece)?;
        rest = tail;
    }
    c.finish()?
        .verify(&build::public_key(&key()), &RustCryptoVerifier, &policy())
}

/// A signed image: a payload, header size, security counter and further TLVs from the strategy.
fn image_strategy() -> impl Strategy<Value = Vec<u8>> {
    (
        0usize..2000,
        prop_oneof![Just(0x20u16), Just(0x40), Just(0x200)],
        proptest::option::of(0u32..5),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(len, header_size, counter, pubkey, extra, seed)| {
            let payload: Vec<u8> = (0..len)
                .map(|i| (i as u64).wrapping_mul(seed | 1).to_le_bytes()[3])
                .collect();
            let mut b = ImageBuilder {
                version: ImageVersion {
                    major: 1,
                    ..ImageVersion::default()
                },
                header_size,
                security_counter: counter,
                load_addr: if seed % 3 == 0 { 0x8000 } else { 0 },
                ..ImageBuilder::default()
            };
            if pubkey {
                let spki = build::public_key(&key()).spki_der().to_vec();
                b.unprotected.push((tlv::PUBKEY, spki));
            }
            if extra {
                b.protected.push((0x7f01, vec![0xa5; (seed % 9) as usize]));
                b.unprotected
                    .push((0x7f02, vec![0x5a; (seed % 5) as usize]));
            }
            b.sign(&payload, &key()).unwrap()
        })
}

/// Up to four changes to an image: a byte set to a value, or the image cut short.
#[derive(Debug, Clone)]
enum Change {
    Set(prop::sample::Index, u8),
    Cut(prop::sample::Index),
}

fn change_strategy() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, v)| Change::Set(i, v)),
        1 => any::<prop::sample::Index>().prop_map(Change::Cut),
    ]
}

fn apply(image: &mut Vec<u8>, changes: &[Change]) {
    for c in changes {
        if image.is_empty() {
            return;
        }
        match c {
            Change::Set(i, v) => {
                let at = i.index(image.len());
                image[at] = *v;
            }
            Change::Cut(i) => image.truncate(i.index(image.len())),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any image, whole or damaged, fed in any chunking, gets the same verdict as fed whole, as
    /// `verify_image` and as the bootloader's `verify_in_place`; `parse_image` finds the same
    /// layout.
    #[test]
    fn chunking_does_not_change_the_verdict(
        mut image in image_strategy(),
        changes in proptest::collection::vec(change_strategy(), 0..4),
        // Empty pieces are fed among the others; one piece of at least a byte keeps the feed
        // moving: an all-empty chunking never ends, and at 300 cases about one run in eight drew one.
        (first, chunks) in (1usize..300, proptest::collection::vec(0usize..300, 0..7)),
        trailing in 0usize..100,
    ) {
        apply(&mut image, &changes);
        // Bytes after the image in its slot are not part of it.
        image.extend(std::iter::repeat_n(0xff, trailing));
        let key = build::public_key(&key());
        let whole = streamed(&image, &[image.len().max(1)]);
        let chunks: Vec<usize> = chunks.into_iter().chain([first]).collect();
        prop_assert_eq!(&streamed(&image, &chunks), &whole);
        let from_source = verify_image(&mut SliceSource(&image), &key, &RustCryptoVerifier, &policy());
        prop_assert_eq!(&from_source, &whole.map_err(ImageError::widen));
        let in_place = verify_in_place(&mut SliceSource(&image), &key, &RustCryptoVerifier, &policy());
        prop_assert_eq!(&in_place, &from_source);
        let layout = parse_image(&mut SliceSource(&image));
        let mut c = StreamChecker::new(image.len() as u32);
        let fed = c.feed(&image);
        let streamed_layout = fed.and_then(|()| c.finish()).map(|c| c.into_info());
        prop_assert_eq!(layout, streamed_layout.map_err(ImageError::widen));
    }
}

/// The checker's own answers: where it wants bytes, when it is done, what it says when fed too
/// little, and that a refusal sticks.
#[test]
fn the_checker_says_what_it_wants_and_refuses_a_short_feed() {
    let image = ImageBuilder::default().sign(&[7u8; 100], &key()).unwrap();
    let mut c = StreamChecker::new(image.len() as u32 + 50);
    assert_eq!((c.position(), c.wanted()), (0, 32));
    c.feed(&image[..32]).unwrap();
    // Header padding and payload, up to the first TLV info header.
    assert_eq!((c.position(), c.wanted()), (32, 0x200 - 32 + 100));
    assert!(!c.is_done());
    let short = c.clone().finish().unwrap_err();
    assert_eq!(
        short,
        ImageError::TlvAreaBeyondSlot {
            end: 0x200 + 100,
            capacity: 32
        }
    );
    c.feed(&image[32..]).unwrap();
    assert!(c.is_done());
    assert_eq!(c.wanted(), 0);
    c.feed(&[0xff; 50]).unwrap();
    let checked = c.finish().unwrap();
    assert_eq!(checked.info().total_len as usize, image.len());
    assert_eq!(checked.check_hash(), Ok(checked.digest()));

    let mut bad = image.clone();
    bad[0] ^= 1;
    let mut c = StreamChecker::new(bad.len() as u32);
    let e = c.feed(&bad[..40]).unwrap_err();
    assert_eq!(e, ImageError::BadMagic(ota_image::IMAGE_MAGIC ^ 1));
    assert!(c.is_done());
    assert_eq!(c.feed(&bad[40..]), Err(e));
    assert_eq!(c.finish().unwrap_err(), e);

    let c = StreamChecker::new(31);
    assert!(c.is_done());
    assert_eq!(c.finish().unwrap_err(), ImageError::TruncatedHeader);
}
