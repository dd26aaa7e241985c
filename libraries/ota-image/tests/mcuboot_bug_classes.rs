//! MCUboot's known bug classes as regression tests for the parser and verifier. Each test names
//! the class it covers, as MCUboot's advisories and issues describe it.
use ota_image::build::{self, ImageBuilder};
use ota_image::{
    parse_image, tlv, verify_image, verify_in_place, ImageError, ImageSource, ImageVersion,
    PublicKey, RustCryptoVerifier, SliceSource, SlotReadError, StreamChecker, VerifyPolicy,
    TLV_INFO_MAGIC,
};
use p256::ecdsa::SigningKey;

const SECRET: [u8; 32] = [0x42; 32];

fn signing_key() -> SigningKey {
    SigningKey::from_slice(&SECRET).unwrap()
}

fn public_key() -> PublicKey {
    build::public_key(&signing_key())
}

fn area(magic: u16, tlvs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let refs: Vec<(u16, &[u8])> = tlvs.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    build::tlv_area(magic, &refs).unwrap()
}

/// The SHA256, KEYHASH and ECDSA_SIG TLVs for a hashed region, then `extra`.
fn signature_tlvs(hashed: &[u8], extra: &[(u16, Vec<u8>)]) -> Vec<(u16, Vec<u8>)> {
    let mut t = build::signature_tlvs(hashed, &signing_key()).unwrap();
    t.extend_from_slice(extra);
    t
}

/// Version 1.0.0, payload right after the header.
fn builder(hdr_size: u16) -> ImageBuilder {
    ImageBuilder {
        version: ImageVersion {
            major: 1,
            ..ImageVersion::default()
        },
        header_size: hdr_size,
        header_fill: 0,
        ..ImageBuilder::default()
    }
}

fn header(hdr_size: u16, prot_size: u16, image_size: u32) -> Vec<u8> {
    let mut h = builder(hdr_size)
        .header(image_size, prot_size)
        .encode()
        .to_vec();
    h.resize(usize::from(hdr_size), 0);
    h
}

/// A signed image with the given protected TLVs and extra unprotected TLVs.
fn image(
    payload_len: usize,
    protected: &[(u16, Vec<u8>)],
    unprotected: &[(u16, Vec<u8>)],
) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 31 + 7) as u8).collect();
    ImageBuilder {
        protected: protected.to_vec(),
        unprotected: unprotected.to_vec(),
        ..builder(0x20)
    }
    .sign(&payload, &signing_key())
    .unwrap()
}

type Res = Result<ota_image::VerifiedImage, ImageError<SlotReadError<()>>>;

/// The verdict of `verify_image`, after checking that the bootloader's `verify_in_place` and the
/// streamed checker fed a byte at a time give the same one.
fn verify(img: &[u8]) -> Res {
    let (key, policy) = (public_key(), VerifyPolicy::default());
    let r = verify_image(&mut SliceSource(img), &key, &RustCryptoVerifier, &policy);
    let in_place = verify_in_place(&mut SliceSource(img), &key, &RustCryptoVerifier, &policy);
    assert_eq!(in_place, r, "verify_in_place");
    let mut c = StreamChecker::new(img.len() as u32);
    let fed = img.chunks(1).try_for_each(|b| c.feed(b));
    let streamed = fed
        .and_then(|()| c.finish())
        .and_then(|c| c.verify(&key, &RustCryptoVerifier, &policy))
        .map_err(ImageError::widen);
    assert_eq!(streamed, r, "streamed a byte at a time");
    r
}

/// A slot of `cap` bytes that holds `bytes` at its start and erased flash after them, so a
/// header can claim sizes near `u32::MAX` that are still "inside the slot" for a naive check.
struct Sparse {
    bytes: Vec<u8>,
    cap: u32,
}

impl ImageSource for Sparse {
    type Error = ();
    fn capacity(&self) -> u32 {
        self.cap
    }
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), ()> {
        let end = u64::from(offset) + buf.len() as u64;
        assert!(
            end <= u64::from(self.cap),
            "read past the slot: {offset:#x}+{}",
            buf.len()
        );
        for (i, b) in buf.iter_mut().enumerate() {
            *b = *self.bytes.get(offset as usize + i).unwrap_or(&0xFF);
        }
        Ok(())
    }
}

#[test]
fn a_good_image_verifies() {
    let img = image(1000, &[(tlv::SEC_CNT, 3u32.to_le_bytes().to_vec())], &[]);
    let v = verify(&img).unwrap();
    assert_eq!((v.payload_len, v.security_counter), (1000, Some(3)));
    assert_eq!(v.total_len as usize, img.len());
}

/// MCUboot class: the hash length summed from header, image and protected-TLV sizes without
/// overflow checks or a bound to the slot (wave-2 research E: "hash length computed ... without
/// overflow checks or a bound to the slot"; #2025, a corrupt image size that made hashing take
/// hours). Here `hdr_size + img_size` is 2^32 + 0x100: in 32-bit arithmetic it wraps to 0x100,
/// where the header's padding holds a TLV area correctly signed over `[0, 0x100)`. A verifier
/// that wrapped would accept an image whose payload is nearly 4 GiB long.
#[test]
fn header_plus_image_size_near_u32_max_does_not_wrap_into_a_small_image() {
    let hdr: u16 = 0x200;
    let image_size = (1u64 << 32) - u64::from(hdr) + 0x100;
    let mut img = header(hdr, 0, image_size as u32);
    let tlvs = area(TLV_INFO_MAGIC, &signature_tlvs(&img[..0x100], &[]));
    img[0x100..0x100 + tlvs.len()].copy_from_slice(&tlvs);
    let mut slot = Sparse {
        bytes: img,
        cap: u32::MAX,
    };
    let r = verify_image(
        &mut slot,
        &public_key(),
        &RustCryptoVerifier,
        &VerifyPolicy::default(),
    );
    assert_eq!(
        r,
        Err(ImageError::PayloadBeyondSlot {
            end: u64::from(hdr) + image_size,
            capacity: u32::MAX
        })
    );
}

/// Same class: each size field at its largest, alone and together, is refused with a typed
/// error (never a panic, a wrapped offset or a read outside the slot), both in a small slot and
/// in one of `u32::MAX` bytes.
#[test]
fn every_size_field_at_its_limit_is_refused_inside_the_slot() {
    let good = image(300, &[(tlv::SEC_CNT, 1u32.to_le_bytes().to_vec())], &[]);
    let cases: &[(u16, u16, u32)] = &[
        (0xFFFF, 12, 300),
        (0x20, 0xFFFF, 300),
        (0x20, 12, u32::MAX),
        (0x20, 12, u32::MAX - 0x20),
        (0x20, 12, u32::MAX - 0x20 - 12),
        (0xFFFF, 0xFFFF, u32::MAX),
    ];
    for &(h, p, n) in cases {
        let mut img = good.clone();
        img[8..10].copy_from_slice(&h.to_le_bytes());
        img[10..12].copy_from_slice(&p.to_le_bytes());
        img[12..16].copy_from_slice(&n.to_le_bytes());
        assert!(
            verify(&img).is_err(),
            "{h:#x} {p:#x} {n:#x} in the image's own slot"
        );
        let mut big = Sparse {
            bytes: img,
            cap: u32::MAX,
        };
        let r = parse_image(&mut big);
        assert!(r.is_err(), "{h:#x} {p:#x} {n:#x} in a 4 GiB slot: {r:?}");
    }
    // The payload ends 2 bytes before the end of a 4 GiB slot: no room for the TLV info header.
    let mut img = image(300, &[], &[]);
    img[12..16].copy_from_slice(&(u32::MAX - 0x20 - 2).to_le_bytes());
    let r = parse_image(&mut Sparse {
        bytes: img,
        cap: u32::MAX,
    });
    assert_eq!(
        r.map(|i| i.payload_len),
        Err(ImageError::TlvAreaBeyondSlot {
            end: u64::from(u32::MAX) + 2,
            capacity: u32::MAX
        })
    );
    // An unprotected area declaring 0xFFFF bytes at the end of the slot.
    let mut img = good.clone();
    let info = parse_image(&mut SliceSource(&img)).unwrap();
    let t = info.tlv_offset as usize;
    img[t + 2..t + 4].copy_from_slice(&0xFFFFu16.to_le_bytes());
    assert!(matches!(
        verify(&img),
        Err(ImageError::TlvAreaBeyondSlot { .. })
    ));
}

/// The payload is bounded by the destination (the kernel slot) as well as by the staging slot.
#[test]
fn the_payload_is_bounded_by_the_destination_slot() {
    let img = image(4097, &[], &[]);
    let policy = VerifyPolicy {
        max_payload_len: Some(4096),
        ..VerifyPolicy::default()
    };
    let r = verify_image(
        &mut SliceSource(&img),
        &public_key(),
        &RustCryptoVerifier,
        &policy,
    );
    assert_eq!(
        r,
        Err(ImageError::PayloadTooLarge {
            len: 4097,
            max: 4096
        })
    );
}

/// A valid value for each TLV type that must be protected.
fn must_be_protected() -> Vec<(u16, Vec<u8>)> {
    vec![
        (tlv::SEC_CNT, 9u32.to_le_bytes().to_vec()),
        (tlv::DEPENDENCY, vec![1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
        (tlv::BOOT_RECORD, vec![0xA1, 0x01, 0x02]),
        (tlv::DECOMP_SIZE, 5000u32.to_le_bytes().to_vec()),
        (tlv::DECOMP_SHA, vec![0x33; 32]),
        (
            tlv::DECOMP_SIGNATURE,
            vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        ),
    ]
}

/// MCUboot class: TLVs that must be protected (dependencies, boot record, security counter)
/// accepted from the unprotected area, where anyone can add or change them without breaking
/// the signature (wave-2 research E: "fixed in 1.11"); the decompression TLVs 0x70/0x71/0x72
/// are protected TLVs as well (MCUboot `docs/compression_format.md`, research C). Each one in the
/// unprotected area of an otherwise correctly signed image is refused; the same TLV in the
/// protected area is signed and accepted.
#[test]
fn tlvs_that_must_be_protected_are_refused_in_the_unprotected_area() {
    for (kind, value) in must_be_protected() {
        assert!(tlv::must_be_protected(kind));
        let forged = image(500, &[], &[(kind, value.clone())]);
        assert_eq!(
            verify(&forged).unwrap_err(),
            ImageError::TlvNotProtected(kind),
            "{}",
            tlv::name(kind)
        );
        let signed = image(500, &[(kind, value)], &[]);
        assert!(verify(&signed).is_ok(), "{} protected", tlv::name(kind));
    }
}

/// MCUboot class: a TLV's length not checked against its type (a security counter or digest read
/// with the length the image claims). Every type whose length the format fixes is refused one
/// byte short and one byte long, in the area where it may appear.
#[test]
fn each_known_tlvs_length_is_exact() {
    let kinds = [
        tlv::KEYHASH,
        tlv::SHA256,
        tlv::SHA384,
        tlv::SHA512,
        tlv::DEPENDENCY,
        tlv::SEC_CNT,
        tlv::DECOMP_SIZE,
        tlv::DECOMP_SHA,
    ];
    for kind in kinds {
        let n = usize::from(tlv::fixed_len(kind).unwrap());
        for len in [n - 1, n + 1, 0] {
            let value = vec![0x5A; len];
            let img = if tlv::must_be_protected(kind) {
                image(100, &[(kind, value)], &[])
            } else {
                image(100, &[], &[(kind, value)])
            };
            let r = parse_image(&mut SliceSource(&img));
            assert_eq!(
                r.map(|_| ()),
                Err(ImageError::BadTlvLength {
                    kind,
                    len: len as u16
                }),
                "{} with {len} bytes",
                tlv::name(kind)
            );
        }
    }
    // Variable-length ones have bounds: a signature of 7 or 73 bytes, an empty public key.
    for (kind, len) in [
        (tlv::ECDSA_SIG, 7usize),
        (tlv::ECDSA_SIG, 73),
        (tlv::PUBKEY, 0),
    ] {
        let img = image(100, &[], &[(kind, vec![0x30; len])]);
        let r = parse_image(&mut SliceSource(&img));
        assert!(
            matches!(r, Err(ImageError::BadTlvLength { kind: k, .. }) if k == kind),
            "{} with {len} bytes: {r:?}",
            tlv::name(kind)
        );
    }
}

/// MCUboot class: a hash buffer smaller than the digest of a configured algorithm. The SHA256 TLV
/// is read into a 32-byte buffer, so a longer value (a SHA-384 or SHA-512 digest under the
/// SHA-256 type) must be refused before the read, and a SHA-384 or SHA-512 TLV (which this
/// verifier does not use) never stands in for the SHA-256 one.
#[test]
fn hash_tlvs_are_sized_by_their_algorithm() {
    for len in [48usize, 64, 31] {
        let mut tlvs = signature_tlvs(&image(64, &[], &[])[..0x20 + 64], &[]);
        tlvs[0].1 = vec![0xAB; len];
        let mut img = header(0x20, 0, 64);
        img.extend((0..64).map(|i| (i * 31 + 7) as u8));
        img.extend_from_slice(&area(TLV_INFO_MAGIC, &tlvs));
        assert_eq!(
            verify(&img).unwrap_err(),
            ImageError::BadTlvLength {
                kind: tlv::SHA256,
                len: len as u16
            }
        );
    }
    // A SHA-384 digest beside the SHA-256 one is ignored; instead of it, the hash is missing.
    let extra = image(64, &[], &[(tlv::SHA384, vec![0x11; 48])]);
    assert!(verify(&extra).is_ok());
    let mut tlvs = signature_tlvs(&extra[..0x20 + 64], &[]);
    tlvs[0] = (tlv::SHA384, vec![0x11; 48]);
    let mut img = extra[..0x20 + 64].to_vec();
    img.extend_from_slice(&area(TLV_INFO_MAGIC, &tlvs));
    assert_eq!(verify(&img).unwrap_err(), ImageError::MissingHash);
}

/// MCUboot class: unsigned bytes treated as part of the image. Bytes after the TLV area are not
/// part of the image (`total_len` stops at the TLV area, the hash never covers them) and
/// changing them does not change what verifies; an unknown TLV in the unprotected area is
/// outside the hashed region too. (That the bootloader installs exactly the verified payload
/// is tested in boot-core.)
#[test]
fn bytes_after_the_tlv_area_are_not_part_of_the_image() {
    let img = image(700, &[], &[(0x7F00, vec![0xEE; 40])]);
    let v = verify(&img).unwrap();
    for junk in [0x00u8, 0xFF, 0x96] {
        let mut slot = img.clone();
        slot.extend(std::iter::repeat_n(junk, 5000));
        let w = verify(&slot).unwrap();
        assert_eq!(
            (w.total_len, w.hash, w.payload_len),
            (v.total_len, v.hash, 700)
        );
        assert_eq!(w.total_len as usize, img.len());
    }
    let info = parse_image(&mut SliceSource(&img)).unwrap();
    assert_eq!(
        info.tlv_offset,
        0x20 + 700,
        "the hashed region ends with the payload"
    );
}
