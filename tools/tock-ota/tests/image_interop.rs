//! Interoperability with imgtool and OpenSSL: imgtool's images verify with `ota-image`, our
//! images pass `imgtool verify`, and OpenSSL keys (SEC1 and PKCS#8) sign.
use std::path::{Path, PathBuf};
use std::process::Command;

use ota_image::{
    parse_image, verify_image, ImageError, RustCryptoVerifier, SliceSource, VerifyPolicy,
};
use ota_imgtool::keys;
use ota_imgtool::sign::{parse_version, sign_image, SignOptions};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<repo>/.venv/bin/<name>`, else `<name>` on PATH.
fn tool(name: &str) -> PathBuf {
    let venv = repo_root().join(".venv/bin").join(name);
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.exists())
        })
        .unwrap_or(None);
    on_path.unwrap_or_else(|| panic!("{name} not found in .venv/bin or PATH: run .ci/setup"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn openssl_key(dir: &Path) -> (PathBuf, PathBuf) {
    let sec1 = dir.join("sec1.pem");
    let pkcs8 = dir.join("pkcs8.pem");
    run(Command::new("openssl")
        .args(["ecparam", "-name", "prime256v1", "-genkey", "-out"])
        .arg(&sec1));
    run(Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
        .arg(&sec1)
        .arg("-out")
        .arg(&pkcs8));
    (sec1, pkcs8)
}

struct Case {
    header_size: u16,
    align: u32,
    pad_header: bool,
    security_counter: Option<u32>,
}

const CASES: &[Case] = &[
    Case {
        header_size: 0x20,
        align: 4,
        pad_header: true,
        security_counter: None,
    },
    Case {
        header_size: 0x20,
        align: 8,
        pad_header: false,
        security_counter: Some(3),
    },
    Case {
        header_size: 0x200,
        align: 4,
        pad_header: false,
        security_counter: None,
    },
    Case {
        header_size: 0x200,
        align: 8,
        pad_header: true,
        security_counter: Some(0x0102_0003),
    },
    Case {
        header_size: 0x400,
        align: 4,
        pad_header: true,
        security_counter: Some(0),
    },
    Case {
        header_size: 0x400,
        align: 8,
        pad_header: false,
        security_counter: None,
    },
];

/// The input imgtool and `sign_image` read: without `--pad-header` it must start with zeros.
fn input_for(case: &Case, body: &[u8]) -> Vec<u8> {
    if case.pad_header {
        body.to_vec()
    } else {
        let mut v = vec![0u8; usize::from(case.header_size)];
        v.extend_from_slice(body);
        v
    }
}

fn imgtool_sign(
    key: &Path,
    case: &Case,
    version: &str,
    input: &Path,
    output: &Path,
    full_key: bool,
) {
    let mut cmd = Command::new(tool("imgtool"));
    cmd.arg("sign").arg("-k").arg(key);
    cmd.args(["--version", version]);
    cmd.args(["--header-size", &format!("{:#x}", case.header_size)]);
    cmd.args(["--align", &case.align.to_string()]);
    cmd.args(["--slot-size", "0x100000"]);
    if case.pad_header {
        cmd.arg("--pad-header");
    }
    if let Some(c) = case.security_counter {
        cmd.args(["--security-counter", &c.to_string()]);
    }
    if full_key {
        cmd.args(["--public-key-format", "full"]);
    }
    cmd.arg(input).arg(output);
    run(&mut cmd);
}

#[test]
fn imgtool_images_verify_and_ours_match_them_up_to_the_signature() {
    let dir = tempfile::tempdir().unwrap();
    let (sec1, _) = openssl_key(dir.path());
    let signing = keys::load_signing_key(&sec1).unwrap();
    let pk = keys::image_public_key(signing.verifying_key());
    let version = "1.2.3+4";

    for (i, case) in CASES.iter().enumerate() {
        let body = payload(3000 + i * 17, i as u8);
        let input = dir.path().join(format!("in{i}.bin"));
        let theirs_path = dir.path().join(format!("imgtool{i}.bin"));
        std::fs::write(&input, input_for(case, &body)).unwrap();
        imgtool_sign(&sec1, case, version, &input, &theirs_path, false);
        let theirs = std::fs::read(&theirs_path).unwrap();

        let policy = VerifyPolicy {
            min_security_counter: case.security_counter,
            max_payload_len: Some(0x10_0000),
            expected_load_addr: Some(0x8000),
        };
        let v = verify_image(&mut SliceSource(&theirs), &pk, &RustCryptoVerifier, &policy)
            .unwrap_or_else(|e| panic!("case {i}: imgtool image rejected: {e}"));
        assert_eq!(v.header.version.to_string(), version);
        assert_eq!(v.security_counter, case.security_counter, "case {i}");
        assert_eq!(v.total_len as usize, theirs.len());
        let p = v.payload_offset as usize;
        assert_eq!(
            &theirs[p..p + v.payload_len as usize],
            &body[..],
            "case {i}"
        );

        // Our image of the same input: identical except the signature's nonce.
        let opts = SignOptions {
            version: parse_version(version).unwrap(),
            security_counter: case.security_counter,
            header_size: case.header_size,
            pad_header: case.pad_header,
            align: case.align,
            slot_size: Some(0x10_0000),
            load_addr: 0,
        };
        let ours = sign_image(&input_for(case, &body), &opts, &signing).unwrap();
        let info = parse_image(&mut SliceSource(&ours)).unwrap();
        let info_theirs = parse_image(&mut SliceSource(&theirs)).unwrap();
        // Header, payload, protected TLVs, SHA256 and KEYHASH TLVs are byte-identical.
        let sig_at = info.signature.unwrap().value_offset as usize - 4;
        assert_eq!(
            info_theirs.signature.unwrap().value_offset as usize - 4,
            sig_at
        );
        let t = info.tlv_offset as usize;
        assert_eq!(info_theirs.tlv_offset as usize, t);
        assert_eq!(ours[..t], theirs[..t], "case {i}: hashed region differs");
        assert_eq!(
            ours[t + 4..sig_at],
            theirs[t + 4..sig_at],
            "case {i}: TLVs differ"
        );
        assert_eq!(info.hash, info_theirs.hash);

        let ours_path = dir.path().join(format!("ours{i}.bin"));
        std::fs::write(&ours_path, &ours).unwrap();
        let out = run(Command::new(tool("imgtool"))
            .arg("verify")
            .arg("-k")
            .arg(&sec1)
            .arg(&ours_path));
        assert!(out.contains("correctly validated"), "case {i}: {out}");
    }
}

#[test]
fn imgtool_full_public_key_and_padded_signature_verify() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("imgtool-key.pem");
    run(Command::new(tool("imgtool"))
        .args(["keygen", "-t", "ecdsa-p256", "-k"])
        .arg(&key));
    let vk = keys::load_verifying_key(&key).unwrap();
    let pk = keys::image_public_key(&vk);
    let case = Case {
        header_size: 0x200,
        align: 4,
        pad_header: true,
        security_counter: Some(9),
    };
    let input = dir.path().join("in.bin");
    std::fs::write(&input, payload(5000, 7)).unwrap();

    let full = dir.path().join("full.bin");
    imgtool_sign(&key, &case, "2.0.0", &input, &full, true);
    let image = std::fs::read(&full).unwrap();
    let info = parse_image(&mut SliceSource(&image)).unwrap();
    assert!(info.pubkey.is_some() && info.key_hash.is_none());
    verify_image(
        &mut SliceSource(&image),
        &pk,
        &RustCryptoVerifier,
        &VerifyPolicy::default(),
    )
    .expect("PUBKEY image verifies");

    let padded = dir.path().join("padded.bin");
    run(Command::new(tool("imgtool"))
        .args([
            "sign",
            "--pad-sig",
            "--header-size",
            "0x200",
            "--pad-header",
            "--slot-size",
            "0x100000",
        ])
        .args(["--version", "1.0.0", "-k"])
        .arg(&key)
        .arg(&input)
        .arg(&padded));
    let image = std::fs::read(&padded).unwrap();
    assert_eq!(
        parse_image(&mut SliceSource(&image))
            .unwrap()
            .signature
            .unwrap()
            .len,
        72
    );
    verify_image(
        &mut SliceSource(&image),
        &pk,
        &RustCryptoVerifier,
        &VerifyPolicy::default(),
    )
    .expect("padded-signature image verifies");

    // A different key is refused by key identity before any hashing.
    let other = keys::image_public_key(
        keys::parse_signing_key(&std::fs::read_to_string(openssl_key(dir.path()).0).unwrap())
            .unwrap()
            .verifying_key(),
    );
    assert_eq!(
        verify_image(
            &mut SliceSource(&image),
            &other,
            &RustCryptoVerifier,
            &VerifyPolicy::default()
        ),
        Err(ImageError::KeyMismatch)
    );
}

#[test]
fn openssl_sec1_and_pkcs8_keys_sign_with_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (sec1, pkcs8) = openssl_key(dir.path());
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .contains("EC PARAMETERS"));
    let a = keys::load_signing_key(&sec1).unwrap();
    let b = keys::load_signing_key(&pkcs8).unwrap();
    assert_eq!(
        a.verifying_key(),
        b.verifying_key(),
        "SEC1 and PKCS#8 forms are one key"
    );

    let exe = env!("CARGO_BIN_EXE_tock-ota");
    let input = dir.path().join("kernel.bin");
    std::fs::write(&input, payload(4096, 1)).unwrap();
    for (name, key) in [("sec1", &sec1), ("pkcs8", &pkcs8)] {
        let out = dir.path().join(format!("{name}.img"));
        run(Command::new(exe)
            .args([
                "sign",
                "--pad-header",
                "--version",
                "3.1.4+15",
                "--security-counter",
                "5",
                "-k",
            ])
            .arg(key)
            .arg(&input)
            .arg(&out));
        // Verify with the private key, with the public key openssl derives, and with imgtool.
        run(Command::new(exe).arg("verify").arg("-k").arg(key).arg(&out));
        let pubpem = dir.path().join(format!("{name}.pub.pem"));
        run(Command::new("openssl")
            .args(["ec", "-pubout", "-in"])
            .arg(key)
            .arg("-out")
            .arg(&pubpem));
        run(Command::new(exe)
            .arg("verify")
            .arg("-k")
            .arg(&pubpem)
            .arg(&out));
        let ok = run(Command::new(tool("imgtool"))
            .arg("verify")
            .arg("-k")
            .arg(key)
            .arg(&out));
        assert!(ok.contains("correctly validated"), "{ok}");
    }
}

#[test]
fn cli_keygen_sign_inspect_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let exe = env!("CARGO_BIN_EXE_tock-ota");
    let key = dir.path().join("dev.pem");
    run(Command::new(exe).arg("keygen").arg("-o").arg(&key));
    let raw = std::fs::read(dir.path().join("dev.pub.bin")).unwrap();
    assert_eq!(raw.len(), 64);
    let vk = keys::load_verifying_key(&dir.path().join("dev.pub.pem")).unwrap();
    assert_eq!(keys::raw_public_key(&vk).to_vec(), raw);
    let snippet = std::fs::read_to_string(dir.path().join("dev.pub.rs")).unwrap();
    assert!(snippet.contains("pub const BOOT_PUBLIC_KEY: [u8; 64]"));
    assert!(snippet.contains(&format!("0x{:02x}, 0x{:02x}", raw[0], raw[1])));
    // keygen refuses to overwrite.
    let again = Command::new(exe)
        .arg("keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!again.status.success());

    let input = dir.path().join("app.bin");
    std::fs::write(&input, payload(777, 9)).unwrap();
    let img = dir.path().join("app.img");
    run(Command::new(exe)
        .args([
            "sign",
            "--pad-header",
            "-H",
            "0x20",
            "--version",
            "1.2.3+4",
            "-k",
        ])
        .arg(&key)
        .arg(&input)
        .arg(&img));
    let json = run(Command::new(exe).args(["inspect", "--json"]).arg(&img));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], "1.2.3+4");
    assert!(v["security_counter"].is_null());
    assert_eq!(v["image_size"], 777);
    let table = run(Command::new(exe).arg("inspect").arg(&img));
    assert!(table.contains("version            1.2.3+4") && table.contains("KEYHASH"));

    // Failures: one line naming the problem, non-zero exit.
    let mut bytes = std::fs::read(&img).unwrap();
    bytes[0x30] ^= 1;
    let bad = dir.path().join("bad.img");
    std::fs::write(&bad, &bytes).unwrap();
    let out = Command::new(exe)
        .arg("verify")
        .arg("-k")
        .arg(&key)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("hash mismatch") && err.trim().lines().count() == 1,
        "{err}"
    );
    let out = Command::new(exe)
        .args(["verify", "--min-security-counter", "1", "-k"])
        .arg(&key)
        .arg(&img)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("below the floor"));
    let out = Command::new(exe)
        .args(["inspect"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad image magic"));
    // Without --pad-header the input must start with header-size zeros, as with imgtool.
    let out = Command::new(exe)
        .args(["sign", "-k"])
        .arg(&key)
        .arg(&input)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pad-header"));
    // --slot-size counts imgtool's trailer.
    let out = Command::new(exe)
        .args(["sign", "--pad-header", "--slot-size", "0x400", "-k"])
        .arg(&key)
        .arg(&input)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeds slot size"));
}
