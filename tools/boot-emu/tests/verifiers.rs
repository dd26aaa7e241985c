//! The firmware's P-256 verifier (by default `p256-cm4`, Cortex-M4 assembly that cannot run on
//! the host) must give RustCrypto's verdict on every signature: valid, malleated, out of range,
//! zero, and transplanted from another digest. Each signature is put into a staged image and the
//! real bootloader decides under emulation; RustCrypto decides on the host.

use boot_core::{Reason, State};
use boot_emu::bench::ImageMaker;
use boot_emu::images::{firmware_public_key, McuBoot};
use boot_emu::rig::{kernel_image, Rig, NEW_KERNEL_SP};
use boot_emu::{build, Exit, Firmware};
use boot_sim::SimSign;
use ota_image::build::tlv_area;
use ota_image::{
    der_to_raw_signature, parse_image, raw_to_der_signature, tlv, PublicKey, RustCryptoVerifier,
    SignatureVerifier, TlvArea, MAX_DER_SIGNATURE_LEN, TLV_INFO_MAGIC,
};

/// The P-256 group order n, big-endian.
const N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

fn add_one(x: &[u8]) -> [u8; 32] {
    let mut out: [u8; 32] = x.try_into().unwrap();
    for b in out.iter_mut().rev() {
        let (v, carry) = b.overflowing_add(1);
        *b = v;
        if !carry {
            break;
        }
    }
    out
}

/// n - x (x < n).
fn n_minus(x: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(x[i]) - borrow;
        out[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    out
}

fn raw(r: &[u8], s: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[..32].copy_from_slice(r);
    out[32..].copy_from_slice(s);
    out
}

/// The image's unprotected TLV area: (offset of the area, entries as (kind, value)).
fn tlvs(image: &[u8]) -> (usize, Vec<(u16, Vec<u8>)>) {
    let info = parse_image(&mut &image[..]).unwrap();
    let entries = info
        .tlvs()
        .filter(|e| e.area == TlvArea::Unprotected)
        .map(|e| {
            let at = e.value_offset as usize;
            (e.kind, image[at..at + usize::from(e.len)].to_vec())
        })
        .collect();
    (info.tlv_offset as usize, entries)
}

fn signature_of(image: &[u8]) -> [u8; 64] {
    let (_, entries) = tlvs(image);
    let der = &entries
        .iter()
        .find(|(k, _)| *k == tlv::ECDSA_SIG)
        .unwrap()
        .1;
    der_to_raw_signature(der).unwrap()
}

/// `image` with its signature TLV replaced by the DER encoding of `sig`.
fn with_signature(image: &[u8], sig: &[u8; 64]) -> Vec<u8> {
    let (start, entries) = tlvs(image);
    let mut der = [0u8; MAX_DER_SIGNATURE_LEN];
    let n = raw_to_der_signature(sig, &mut der);
    let entries: Vec<(u16, &[u8])> = entries
        .iter()
        .map(|(kind, value)| {
            if *kind == tlv::ECDSA_SIG {
                (*kind, &der[..n])
            } else {
                (*kind, value.as_slice())
            }
        })
        .collect();
    let mut out = image[..start].to_vec();
    out.extend_from_slice(&tlv_area(TLV_INFO_MAGIC, &entries).unwrap());
    out
}

#[test]
fn firmware_verifier_agrees_with_rustcrypto() {
    let fw =
        Firmware::from_path(&build::bootloader_elf().unwrap_or_else(|e| panic!("{e}"))).unwrap();
    let key = PublicKey::from_raw(&firmware_public_key()).unwrap();
    let maker = McuBoot {
        opts: SimSign::default(),
    };
    let payload = kernel_image(0x8000, NEW_KERNEL_SP, 2048, 5);
    let (image, hash) = maker.signed(&payload);
    let good = signature_of(&image);
    let (r, s) = (&good[..32], &good[32..]);
    let other = signature_of(
        &maker
            .signed(&kernel_image(0x8000, NEW_KERNEL_SP, 2048, 6))
            .0,
    );
    let zero = [0u8; 32];
    let vectors: Vec<(&str, [u8; 64])> = vec![
        ("valid", good),
        ("high s (n - s)", raw(r, &n_minus(s))),
        ("s + 1", raw(r, &add_one(s))),
        ("r + 1", raw(&add_one(r), s)),
        ("r and s swapped", raw(s, r)),
        ("s = 0", raw(r, &zero)),
        ("r = 0", raw(&zero, s)),
        ("r = n", raw(&N, s)),
        ("s = n", raw(r, &N)),
        ("s = n + 1", raw(r, &add_one(&N))),
        ("all ones", [0xFF; 64]),
        ("another digest's signature", other),
    ];
    let mut accepted = 0;
    for (i, (what, sig)) in vectors.iter().enumerate() {
        let host = RustCryptoVerifier.verify_prehash(&key, &hash, sig);
        let staged = with_signature(&image, sig);
        let mut rig = Rig::new(fw.clone(), 40 + i as u64, 8192);
        rig.stage(&staged);
        rig.request_boot(hash, staged.len() as u32);
        let report = rig.boot(true).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            matches!(report.exit, Exit::KernelJump { .. }),
            "{what}: {report:?}"
        );
        let status = rig.status().expect("a status record");
        let firmware = match (status.state, status.reason) {
            (State::Trial, _) => true,
            (State::Rejected, Reason::BadSignature | Reason::BadSignatureEncoding) => false,
            other => panic!("{what}: unexpected outcome {other:?}"),
        };
        assert_eq!(
            firmware, host,
            "{what}: firmware says {firmware}, RustCrypto says {host}"
        );
        eprintln!("{what}: {}", if host { "accepted" } else { "refused" });
        accepted += usize::from(host);
    }
    // The set exercises both verdicts.
    assert!(accepted >= 1 && accepted < vectors.len());
}
