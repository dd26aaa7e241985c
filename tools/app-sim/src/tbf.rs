//! TBFs as elf2tab lays them out, signed with P-256 keys, and the board's key check (the
//! kernel's `AppKeys` does the same with upstream's `p256` version).

use app_install::Credentials;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_slice(&[seed; 32]).unwrap()
}

/// The development app key the DK board trusts (`apps/dfu/dev-keys/app-dev-key.pk8`, not
/// secret): the simulated DK trusts it too, so a TAB elf2tab signed with it installs there.
pub fn dev_app_key() -> SigningKey {
    dev_key(include_bytes!("../../../apps/dfu/dev-keys/app-dev-key.pk8"))
}

/// The P-256 private key of a PKCS#8 file as openssl writes one (the SEC1 `ECPrivateKey` inside
/// holds the 32-byte scalar after `02 01 01 04 20`); checked against the public key the file
/// carries (after `03 42 00 04`).
fn dev_key(pk8: &[u8]) -> SigningKey {
    let find = |pattern: &[u8]| {
        pk8.windows(pattern.len())
            .position(|w| w == pattern)
            .map(|at| at + pattern.len())
            .expect("a P-256 PKCS#8 key as openssl writes it")
    };
    let scalar = find(&[0x02, 0x01, 0x01, 0x04, 0x20]);
    let key = SigningKey::from_slice(&pk8[scalar..scalar + 32]).expect("a P-256 scalar");
    let point = find(&[0x03, 0x42, 0x00, 0x04]);
    let public = key.verifying_key().to_sec1_point(false);
    assert_eq!(&public.as_bytes()[1..], &pk8[point..point + 64]);
    key
}

pub fn public(key: &SigningKey) -> VerifyingKey {
    *key.verifying_key()
}

/// A TBF v2 as elf2tab lays it out (base header, program header, package name, binary, an
/// ECDSA P-256 credential footer over `0..binary_end`), signed with `signer` or, without one,
/// with a reserved footer of the same size.
pub fn tbf(name: &str, version: u32, signer: Option<&SigningKey>, total: u32) -> Vec<u8> {
    let padded_name = name.len().div_ceil(4) * 4;
    let header_len = 16 + 4 + 20 + 4 + padded_name;
    let binary_end = total - 72;
    let mut out = Vec::new();
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&9u16.to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes());
    for word in [header_len as u32, 0, 4096, binary_end, version] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&3u16.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.resize(header_len, 0);
    let checksum = out
        .chunks(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .fold(0, |a, w| a ^ w);
    out[12..16].copy_from_slice(&checksum.to_le_bytes());
    while out.len() < binary_end as usize {
        out.push((out.len() % 251) as u8);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&128u16.to_le_bytes());
    out.extend_from_slice(&68u16.to_le_bytes());
    match signer {
        Some(signer) => {
            let signature: Signature = signer.sign_prehash(&digest).unwrap();
            out.extend_from_slice(&6u32.to_le_bytes());
            out.extend_from_slice(&signature.to_bytes());
        }
        None => {
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&[0; 64]);
        }
    }
    assert_eq!(out.len(), total as usize);
    out
}

/// The board's app keys, checked with RustCrypto's `p256` (the capsule does the same with the
/// `p256` version upstream's verifier uses).
pub struct Keys(pub Vec<VerifyingKey>);

impl Credentials for Keys {
    fn accepts(&self, digest: &[u8; 32], signature: &[u8; 64]) -> bool {
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        self.0
            .iter()
            .any(|key| key.verify_prehash(digest, &signature).is_ok())
    }
}
