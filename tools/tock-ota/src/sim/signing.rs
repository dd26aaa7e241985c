//! Keys and signatures for the simulator: a P-256 key made from the seed, MCUboot-format images
//! (protected SEC_CNT TLV, SHA-256 TLV, ECDSA P-256 signature TLV in DER) and their check.
use anyhow::{bail, Context};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

const TLV_SHA256: u16 = 0x10;
const TLV_ECDSA_SIG: u16 = 0x22;
const TLV_SEC_CNT: u16 = 0x50;

/// The demo's signing key (made fresh from the seed each run).
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    pub fn new(seed: u64) -> anyhow::Result<Signer> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6B65_795F_7365_6564);
        for _ in 0..16 {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            if let Ok(key) = SigningKey::from_slice(&secret) {
                return Ok(Signer { key });
            }
        }
        bail!("no valid P-256 scalar from the seed")
    }

    pub fn algorithm(&self) -> &'static str {
        "ECDSA P-256 / SHA-256"
    }

    /// An MCUboot-format image of `payload`: 32-byte header (load address 0), payload,
    /// protected TLVs (SEC_CNT), unprotected TLVs (SHA-256, ECDSA signature).
    pub fn sign(
        &self,
        payload: &[u8],
        version: (u8, u8, u16, u32),
        security_counter: u32,
    ) -> anyhow::Result<Vec<u8>> {
        let protected_len: u16 = 4 + 4 + 4;
        let mut img = vec![0u8; 32];
        img[0..4].copy_from_slice(&0x96f3_b83du32.to_le_bytes());
        img[8..10].copy_from_slice(&32u16.to_le_bytes());
        img[10..12].copy_from_slice(&protected_len.to_le_bytes());
        img[12..16].copy_from_slice(
            &u32::try_from(payload.len())
                .context("payload size")?
                .to_le_bytes(),
        );
        img[20] = version.0;
        img[21] = version.1;
        img[22..24].copy_from_slice(&version.2.to_le_bytes());
        img[24..28].copy_from_slice(&version.3.to_le_bytes());
        img.extend_from_slice(payload);
        img.extend(0x6908u16.to_le_bytes());
        img.extend(protected_len.to_le_bytes());
        img.extend(TLV_SEC_CNT.to_le_bytes());
        img.extend(4u16.to_le_bytes());
        img.extend(security_counter.to_le_bytes());
        let hash: [u8; 32] = Sha256::digest(&img).into();
        let sig: Signature = self
            .key
            .sign_prehash(&hash)
            .map_err(|e| anyhow::anyhow!("sign: {e}"))?;
        let der = der_signature(&sig.to_bytes());
        let tlv_total = 4 + (4 + 32) + (4 + der.len());
        img.extend(0x6907u16.to_le_bytes());
        img.extend((tlv_total as u16).to_le_bytes());
        img.extend(TLV_SHA256.to_le_bytes());
        img.extend(32u16.to_le_bytes());
        img.extend(hash);
        img.extend(TLV_ECDSA_SIG.to_le_bytes());
        img.extend((der.len() as u16).to_le_bytes());
        img.extend(der);
        Ok(img)
    }

    /// Whether the unprotected TLVs carry a valid signature by this key over `hash`.
    pub fn verify(&self, hash: &[u8; 32], tlvs: &[(u16, Vec<u8>)]) -> bool {
        let Some((_, der)) = tlvs.iter().find(|(k, _)| *k == TLV_ECDSA_SIG) else {
            return false;
        };
        let Some(raw) = parse_der_signature(der) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&raw) else {
            return false;
        };
        self.key.verifying_key().verify_prehash(hash, &sig).is_ok()
    }
}

fn der_integer(v: &[u8]) -> Vec<u8> {
    let mut i = 0;
    while i < v.len() - 1 && v[i] == 0 {
        i += 1;
    }
    let mut body = v[i..].to_vec();
    if body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    let mut out = vec![0x02, body.len() as u8];
    out.extend(body);
    out
}

/// r‖s (64 bytes) as a DER SEQUENCE of two INTEGERs, as imgtool writes it.
fn der_signature(rs: &[u8]) -> Vec<u8> {
    let mut body = der_integer(&rs[..32]);
    body.extend(der_integer(&rs[32..]));
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    out
}

fn parse_der_signature(der: &[u8]) -> Option<[u8; 64]> {
    if der.len() < 8 || der[0] != 0x30 || der[1] as usize != der.len() - 2 {
        return None;
    }
    let mut out = [0u8; 64];
    let mut at = 2;
    for half in 0..2 {
        if der.get(at) != Some(&0x02) {
            return None;
        }
        let len = *der.get(at + 1)? as usize;
        let v = der.get(at + 2..at + 2 + len)?;
        let v = if v.len() == 33 && v[0] == 0 {
            &v[1..]
        } else {
            v
        };
        if v.len() > 32 {
            return None;
        }
        out[half * 32 + 32 - v.len()..half * 32 + 32].copy_from_slice(v);
        at += 2 + len;
    }
    (at == der.len()).then_some(out)
}
