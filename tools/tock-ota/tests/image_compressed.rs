//! Compressed images (MCUboot's format, imgtool `--compression`): imgtool's verify with tock-ota,
//! ours pass `imgtool verify` with imgtool's layout, and every inner inconsistency is refused with
//! a reason.
use std::path::{Path, PathBuf};
use std::process::Command;

use ota_image::compressed::{verify_image_bytes, CheckedImage, CompressedError, Compression};
use ota_image::{
    flags, parse_image, tlv, verify_image, ImageError, ImageInfo, RustCryptoVerifier, TlvArea,
    VerifyPolicy,
};
use ota_imgtool::compress::{compress_payload, sign_compressed};
use ota_imgtool::keys;
use ota_imgtool::sign::{sign_image, sign_image_with, SignOptions};
use p256::ecdsa::SigningKey;

/// `<repo>/.venv/bin/<name>`, else `<name>` on PATH (as in image_interop.rs).
fn tool(name: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.venv/bin")
        .join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// 48 KiB that compress like code: Thumb-2 BL-style words with repeating literal pools and
/// some noise, so both LZMA2 and the ARM-Thumb filter have something to do.
fn code_like() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    let mut v = Vec::new();
    while v.len() < 48 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let target = (x % 4096) & !1;
        let bl = 0xf000_f800u32 | ((target >> 12) & 0x7ff) << 16 | ((target >> 1) & 0x7ff);
        v.extend_from_slice(&bl.to_le_bytes());
        v.extend_from_slice(&[0x10, 0xb5, 0x04, 0x46, 0x00, 0x28, 0x01, 0xd0]);
        if x.is_multiple_of(7) {
            v.extend_from_slice(b"panic: index out of bounds\0\0");
        }
    }
    v.truncate(48 * 1024);
    v
}

fn imgtool_key(dir: &Path) -> (PathBuf, SigningKey) {
    let path = dir.join("key.pem");
    run(Command::new(tool("imgtool"))
        .args(["keygen", "-t", "ecdsa-p256", "-k"])
        .arg(&path));
    let key = keys::load_signing_key(&path).unwrap();
    (path, key)
}

fn opts(pad_header: bool) -> SignOptions {
    SignOptions {
        version: ota_imgtool::sign::parse_version("1.2.3+4").unwrap(),
        security_counter: Some(7),
        header_size: 0x200,
        pad_header,
        align: 4,
        slot_size: Some(0x40000),
        load_addr: 0,
    }
}

/// imgtool's input file: the payload, behind header-size zeros without --pad-header.
fn input_file(dir: &Path, payload: &[u8], pad_header: bool) -> PathBuf {
    let path = dir.join(format!("in-{pad_header}.bin"));
    let mut data = if pad_header { vec![] } else { vec![0u8; 0x200] };
    data.extend_from_slice(payload);
    std::fs::write(&path, data).unwrap();
    path
}

fn imgtool_sign(key: &Path, input: &Path, out: &Path, pad_header: bool, compression: &str) {
    let mut cmd = Command::new(tool("imgtool"));
    cmd.args(["sign", "-H", "0x200", "-S", "0x40000", "--align", "4"])
        .args([
            "-v",
            "1.2.3+4",
            "-s",
            "7",
            "--compression",
            compression,
            "-k",
        ])
        .arg(key);
    if pad_header {
        cmd.arg("--pad-header");
    }
    run(cmd.arg(input).arg(out));
}

fn check(
    image: &[u8],
    key: &SigningKey,
    policy: &VerifyPolicy,
) -> Result<CheckedImage, CompressedError> {
    let pk = keys::image_public_key(key.verifying_key());
    verify_image_bytes(image, &pk, &RustCryptoVerifier, policy)
}

fn info(image: &[u8]) -> ImageInfo {
    parse_image(&mut &image[..]).unwrap()
}

fn tlv_value(image: &[u8], kind: u16) -> &[u8] {
    let e = info(image)
        .tlvs()
        .find(|e| e.kind == kind)
        .copied()
        .unwrap();
    &image[e.value_offset as usize..][..usize::from(e.len)]
}

fn plain_payload(checked: &CheckedImage) -> &[u8] {
    let d = checked.decompressed.as_ref().expect("compressed");
    &d.image[0x200..0x200 + d.payload_len as usize]
}

const BOTH: [(&str, Compression); 2] = [
    ("lzma2", Compression::Lzma2),
    ("lzma2armthumb", Compression::Lzma2ArmThumb),
];

#[test]
fn imgtool_compressed_images_verify_with_tock_ota() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, key) = imgtool_key(dir.path());
    let payload = code_like();
    for pad_header in [true, false] {
        let input = input_file(dir.path(), &payload, pad_header);
        for (name, compression) in BOTH {
            let out = dir.path().join(format!("{name}-{pad_header}.bin"));
            imgtool_sign(&key_path, &input, &out, pad_header, name);
            let image = std::fs::read(&out).unwrap();
            assert_eq!(
                Compression::from_flags(info(&image).header.flags),
                Ok(Some(compression))
            );
            let checked = check(&image, &key, &VerifyPolicy::default())
                .unwrap_or_else(|e| panic!("{name} pad_header={pad_header}: {e}"));
            assert_eq!(plain_payload(&checked), &payload[..], "{name}");
            assert!(checked.outer.payload_len < payload.len() as u32 / 2);
            // The bootloader's verifier refuses it: it cannot run a compressed payload.
            let pk = keys::image_public_key(key.verifying_key());
            assert_eq!(
                verify_image(
                    &mut &image[..],
                    &pk,
                    &RustCryptoVerifier,
                    &VerifyPolicy::default()
                ),
                Err(ImageError::UnsupportedFlags(compression.flags()))
            );
        }
    }
    // The CLI says it checked both images.
    let out = dir.path().join("lzma2armthumb-true.bin");
    let text = run(Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .args(["verify", "-k"])
        .arg(&key_path)
        .arg(&out));
    assert!(
        text.contains("OK: compressed image (lzma2armthumb"),
        "{text}"
    );
    assert!(
        text.contains("OK: decompressed image: 49152 bytes"),
        "{text}"
    );
    let text = run(Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .arg("inspect")
        .arg(&out));
    for want in [
        "COMPRESSED_LZMA2|COMPRESSED_ARM_THUMB",
        "DECOMP_SIZE",
        "DECOMP_SHA",
        "DECOMP_SIGNATURE",
    ] {
        assert!(text.contains(want), "inspect lacks {want}:\n{text}");
    }
}

#[test]
fn tock_ota_compressed_images_pass_imgtool_verify_with_imgtool_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (key_path, key) = imgtool_key(dir.path());
    let payload = code_like();
    for pad_header in [true, false] {
        let input = input_file(dir.path(), &payload, pad_header);
        let ours_input = if pad_header {
            payload.clone()
        } else {
            std::fs::read(&input).unwrap()
        };
        for (name, compression) in BOTH {
            let out = sign_compressed(&ours_input, &opts(pad_header), &key, compression).unwrap();
            assert!(out.compressed_len.is_some(), "{name}: compressed");
            let ours = out.image;
            let ours_path = dir.path().join(format!("ours-{name}-{pad_header}.bin"));
            std::fs::write(&ours_path, &ours).unwrap();
            let text = run(Command::new(tool("imgtool"))
                .args(["verify", "-k"])
                .arg(&key_path)
                .arg(&ours_path));
            assert!(text.contains("correctly validated"), "{name}: {text}");

            let theirs_path = dir.path().join(format!("theirs-{name}-{pad_header}.bin"));
            imgtool_sign(&key_path, &input, &theirs_path, pad_header, name);
            let theirs = std::fs::read(&theirs_path).unwrap();
            let (a, b) = (info(&ours), info(&theirs));
            let (ha, hb) = (a.header, b.header);
            assert_eq!(
                (ha.magic, ha.load_addr, ha.header_size, ha.flags, ha.version),
                (hb.magic, hb.load_addr, hb.header_size, hb.flags, hb.version),
                "{name}: header"
            );
            assert_eq!(ours[32..0x200], theirs[32..0x200], "{name}: header padding");
            let kinds = |i: &ImageInfo| {
                i.tlvs()
                    .map(|e| (e.area, e.kind))
                    .collect::<Vec<(TlvArea, u16)>>()
            };
            assert_eq!(kinds(&a), kinds(&b), "{name}: TLVs and their order");
            assert_eq!(
                kinds(&a)[..4],
                [
                    (TlvArea::Protected, tlv::SEC_CNT),
                    (TlvArea::Protected, tlv::DECOMP_SIZE),
                    (TlvArea::Protected, tlv::DECOMP_SHA),
                    (TlvArea::Protected, tlv::DECOMP_SIGNATURE),
                ]
            );
            // Same plain image, so the same size and hash (the signatures' nonces differ).
            for kind in [tlv::SEC_CNT, tlv::DECOMP_SIZE, tlv::DECOMP_SHA] {
                assert_eq!(
                    tlv_value(&ours, kind),
                    tlv_value(&theirs, kind),
                    "{name}: {kind:#x}"
                );
            }
            // The 2-byte LZMA2 header (dictionary 128 KiB, lc=3 lp=1 pb=2) is imgtool's.
            assert_eq!(
                ours[0x200..0x202],
                theirs[0x200..0x202],
                "{name}: LZMA2 header"
            );
            assert_eq!(ours[0x200..0x202], [10, 102]);
            // Sizes: our LZMA2 encoder is another one, within a few percent of xz's.
            let (sa, sb) = (ha.image_size as f64, hb.image_size as f64);
            assert!((sa - sb).abs() / sb < 0.1, "{name}: {sa} vs {sb} bytes");
            let checked = check(&ours, &key, &VerifyPolicy::default()).unwrap();
            assert_eq!(plain_payload(&checked), &payload[..]);
        }
    }
    // The CLI writes the same kind of image, and imgtool accepts it.
    let input = input_file(dir.path(), &payload, true);
    let cli_out = dir.path().join("cli.bin");
    let text = run(Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .args(["sign", "--pad-header", "-v", "1.2.3+4", "-s", "7"])
        .args(["--compression", "lzma2armthumb", "-k"])
        .arg(&key_path)
        .arg(&input)
        .arg(&cli_out));
    assert!(text.contains("compressed payload:"), "{text}");
    let cli_image = std::fs::read(&cli_out).unwrap();
    assert_eq!(
        Compression::from_flags(info(&cli_image).header.flags),
        Ok(Some(Compression::Lzma2ArmThumb))
    );
    let text = run(Command::new(tool("imgtool"))
        .args(["verify", "-k"])
        .arg(&key_path)
        .arg(&cli_out));
    assert!(text.contains("correctly validated"), "{text}");
    // DECOMP_SHA is the SHA256 TLV of the image imgtool signs without compression.
    let input = input_file(dir.path(), &payload, true);
    let plain_path = dir.path().join("plain.bin");
    imgtool_sign(&key_path, &input, &plain_path, true, "disabled");
    let plain = std::fs::read(&plain_path).unwrap();
    let ours = sign_compressed(&payload, &opts(true), &key, Compression::Lzma2)
        .unwrap()
        .image;
    assert_eq!(
        tlv_value(&ours, tlv::DECOMP_SHA),
        &info(&plain).hash.unwrap()[..]
    );
}

/// A compressed image from parts, the outer image signed properly, so that only the inner
/// check can find what `tweak` breaks.
fn build(
    key: &SigningKey,
    compression: Compression,
    tweak: impl FnOnce(&mut Vec<u8>, &mut u32, &mut [u8; 32], &mut Vec<u8>),
) -> Vec<u8> {
    let payload = code_like();
    let plain = sign_image(&payload, &opts(true), key).unwrap();
    let mut stream = compress_payload(&payload, compression).unwrap();
    let mut size = payload.len() as u32;
    let mut sha: [u8; 32] = tlv_value(&plain, tlv::SHA256).try_into().unwrap();
    let mut sig = tlv_value(&plain, tlv::ECDSA_SIG).to_vec();
    tweak(&mut stream, &mut size, &mut sha, &mut sig);
    let size = size.to_le_bytes();
    let extra: [(u16, &[u8]); 3] = [
        (tlv::DECOMP_SIZE, &size),
        (tlv::DECOMP_SHA, &sha),
        (tlv::DECOMP_SIGNATURE, &sig),
    ];
    sign_image_with(&stream, &opts(true), key, compression.flags(), &extra).unwrap()
}

fn refused(image: &[u8], key: &SigningKey, policy: &VerifyPolicy) -> (CompressedError, String) {
    let e = check(image, key, policy).expect_err("must be refused");
    let msg = e.to_string();
    (e, msg)
}

#[test]
fn inner_inconsistencies_are_refused_with_a_reason() {
    let key = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let policy = VerifyPolicy::default();
    for (_, c) in BOTH {
        // Untouched parts verify: the refusals below are the tweak's doing.
        let good = build(&key, c, |_, _, _, _| {});
        assert!(check(&good, &key, &policy).unwrap().decompressed.is_some());

        let image = build(&key, c, |s, _, _, _| s.truncate(s.len() / 2));
        let (e, msg) = refused(&image, &key, &policy);
        assert!(matches!(e, CompressedError::BadStream(_)), "{msg}");
        assert!(msg.contains("corrupt LZMA2 stream"), "{msg}");

        let image = build(&key, c, |_, size, _, _| *size += 1);
        let (e, msg) = refused(&image, &key, &policy);
        assert_eq!(
            e,
            CompressedError::DecompressedSizeMismatch {
                declared: 49153,
                actual: 49152
            }
        );
        assert!(msg.contains("DECOMP_SIZE"), "{msg}");
        let image = build(&key, c, |_, size, _, _| *size -= 1);
        assert!(matches!(
            refused(&image, &key, &policy).0,
            CompressedError::DecompressedSizeMismatch {
                declared: 49151,
                ..
            }
        ));

        let image = build(&key, c, |_, _, sha, _| sha[5] ^= 1);
        let (e, msg) = refused(&image, &key, &policy);
        assert_eq!(e, CompressedError::DecompressedHashMismatch);
        assert!(msg.contains("DECOMP_SHA"), "{msg}");

        let other = SigningKey::from_slice(&[0x43; 32]).unwrap();
        let foreign = sign_image(&code_like(), &opts(true), &other).unwrap();
        let foreign_sig = tlv_value(&foreign, tlv::ECDSA_SIG).to_vec();
        let image = build(&key, c, |_, _, _, sig| *sig = foreign_sig);
        let (e, msg) = refused(&image, &key, &policy);
        assert_eq!(e, CompressedError::BadDecompressedSignature);
        assert!(msg.contains("DECOMP_SIGNATURE"), "{msg}");

        let image = build(&key, c, |s, _, _, _| s[0] = 41);
        assert!(matches!(
            refused(&image, &key, &policy).0,
            CompressedError::BadLzmaHeader(_)
        ));

        // A decompressed size beyond the slot is refused before anything is decompressed.
        let slot = VerifyPolicy {
            max_payload_len: Some(40 * 1024),
            ..VerifyPolicy::default()
        };
        let (e, msg) = refused(&good, &key, &slot);
        assert_eq!(
            e,
            CompressedError::DecompressedTooLarge {
                len: 49152,
                max: 40960
            }
        );
        assert!(msg.contains("DECOMP_SIZE 49152 bytes exceeds"), "{msg}");
        let image = build(&key, c, |_, size, _, _| *size = u32::MAX);
        assert!(matches!(
            refused(&image, &key, &slot).0,
            CompressedError::DecompressedTooLarge { len: u32::MAX, .. }
        ));
    }
}

#[test]
fn corrupt_streams_are_refused_never_a_panic() {
    let key = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let policy = VerifyPolicy::default();
    for (_, c) in BOTH {
        let n = compress_payload(&code_like(), c).unwrap().len();
        for i in (2..n).step_by(n / 40) {
            let image = build(&key, c, |s, _, _, _| s[i] ^= 0x5a);
            let e = check(&image, &key, &policy).expect_err("a changed stream is refused");
            assert!(
                matches!(
                    e,
                    CompressedError::BadStream(_)
                        | CompressedError::DecompressedSizeMismatch { .. }
                        | CompressedError::DecompressedHashMismatch
                ),
                "byte {i}: {e}"
            );
        }
    }
}

#[test]
fn unprotected_or_missing_decomp_tlvs_are_refused() {
    let key = SigningKey::from_slice(&[0x42; 32]).unwrap();
    let good = build(&key, Compression::Lzma2ArmThumb, |_, _, _, _| {});
    // Append a DECOMP_* TLV to the unprotected area (not hashed, so the outer signature holds).
    for kind in [tlv::DECOMP_SIZE, tlv::DECOMP_SHA, tlv::DECOMP_SIGNATURE] {
        let value = tlv_value(&good, kind).to_vec();
        let mut image = good.clone();
        let t = info(&good).tlv_offset as usize;
        let area = u16::from_le_bytes([image[t + 2], image[t + 3]]) + 4 + value.len() as u16;
        image[t + 2..t + 4].copy_from_slice(&area.to_le_bytes());
        image.extend_from_slice(&kind.to_le_bytes());
        image.extend_from_slice(&(value.len() as u16).to_le_bytes());
        image.extend_from_slice(&value);
        let (e, msg) = refused(&image, &key, &VerifyPolicy::default());
        assert_eq!(e, CompressedError::Outer(ImageError::TlvNotProtected(kind)));
        assert!(
            msg.contains(tlv::name(kind)) && msg.contains("protected area"),
            "{msg}"
        );
    }
    // Compression flags without the TLVs.
    let payload = compress_payload(&code_like(), Compression::Lzma2).unwrap();
    let image = sign_image_with(&payload, &opts(true), &key, flags::COMPRESSED_LZMA2, &[]).unwrap();
    let (e, msg) = refused(&image, &key, &VerifyPolicy::default());
    assert_eq!(e, CompressedError::MissingTlv(tlv::DECOMP_SIZE));
    assert!(msg.contains("DECOMP_SIZE"), "{msg}");
    // LZMA1 and ARM-Thumb alone are not MCUboot formats.
    for f in [flags::COMPRESSED_LZMA1, flags::COMPRESSED_ARM_THUMB] {
        let image = sign_image_with(&payload, &opts(true), &key, f, &[]).unwrap();
        assert_eq!(
            refused(&image, &key, &VerifyPolicy::default()).0,
            CompressedError::BadCompressionFlags(f)
        );
    }
}

proptest::proptest! {
    /// Any payload bytes, any limit: an error or at most limit + 1 bytes, never a panic or a hang.
    #[test]
    fn decompress_takes_any_bytes(
        bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        thumb: bool,
        limit in 0u32..5000,
    ) {
        let c = if thumb { Compression::Lzma2ArmThumb } else { Compression::Lzma2 };
        if let Ok(out) = ota_image::compressed::decompress(&bytes, c, limit) {
            proptest::prop_assert!(out.len() as u64 <= u64::from(limit) + 1);
        }
    }
}
