//! ECDSA P-256 verification over a SHA-256 digest, the one verifier of the bootloader and the
//! kernel.
//!
//! Keys and signatures are the raw big-endian encodings: a public key is `x ‖ y` (64 bytes, the
//! uncompressed point without its 0x04 marker), a signature `r ‖ s` (64 bytes). On ARM the work
//! is done by `p256-cm4` (Cortex-M4 assembly), which computes with little-endian 32-bit words;
//! `words` converts. Everywhere else (host tests, simulators) RustCrypto's `p256` checks the
//! same inputs, so code that calls [`verify_prehash`] is testable on the host; the two agree on
//! what they accept (a key not on the curve, `r` or `s` outside `1..n`: refused by both).
#![no_std]
#![forbid(unsafe_code)]

/// Verifies the ECDSA P-256 `signature` (`r ‖ s`) of `digest` under `key` (`x ‖ y`).
/// A key that is not a point of the curve, or a signature with `r` or `s` out of range, verifies
/// nothing.
#[must_use = "the result says whether the signature is valid"]
pub fn verify_prehash(key: &[u8; 64], digest: &[u8; 32], signature: &[u8; 64]) -> bool {
    imp::verify_prehash(key, digest, signature)
}

/// The big-endian 256-bit number in `be[..32]` as the eight little-endian words `p256-cm4`
/// computes with (`[0]` is the least significant word). Callers pass 32 bytes or more.
#[cfg_attr(not(target_arch = "arm"), allow(dead_code))]
fn words(be: &[u8]) -> [u32; 8] {
    let mut w = [0u32; 8];
    for (i, word) in w.iter_mut().enumerate() {
        let j = 28 - 4 * i;
        *word = u32::from_be_bytes([be[j], be[j + 1], be[j + 2], be[j + 3]]);
    }
    w
}

#[cfg(target_arch = "arm")]
mod imp {
    use super::words;

    pub fn verify_prehash(key: &[u8; 64], digest: &[u8; 32], signature: &[u8; 64]) -> bool {
        p256_cm4::verify(
            &words(&key[..32]),
            &words(&key[32..]),
            digest,
            &words(&signature[..32]),
            &words(&signature[32..]),
        )
    }
}

/// Host builds: RustCrypto's `p256` (p256-cm4 is ARM assembly).
#[cfg(not(target_arch = "arm"))]
mod imp {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::ecdsa::{Signature, VerifyingKey};

    pub fn verify_prehash(key: &[u8; 64], digest: &[u8; 32], signature: &[u8; 64]) -> bool {
        let mut sec1 = [0u8; 65];
        sec1[0] = 0x04;
        sec1[1..].copy_from_slice(key);
        let Ok(key) = VerifyingKey::from_sec1_bytes(&sec1) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(signature) else {
            return false;
        };
        key.verify_prehash(digest, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::{Signature, SigningKey};

    fn signer() -> SigningKey {
        SigningKey::from_slice(&[0x5a; 32]).expect("a valid scalar")
    }

    fn raw_key(key: &SigningKey) -> [u8; 64] {
        let point = key.verifying_key().to_sec1_point(false);
        let mut raw = [0u8; 64];
        raw.copy_from_slice(&point.as_bytes()[1..]);
        raw
    }

    fn sign(key: &SigningKey, digest: &[u8; 32]) -> [u8; 64] {
        let signature: Signature = key.sign_prehash(digest).expect("signs");
        signature.to_bytes().into()
    }

    #[test]
    fn words_are_little_endian_words_of_a_big_endian_number() {
        let mut be = [0u8; 32];
        be[31] = 0x01;
        be[28] = 0x04;
        be[0] = 0x80;
        be[3] = 0x02;
        let w = words(&be);
        assert_eq!(w[0], 0x0400_0001);
        assert_eq!(w[7], 0x8000_0002);
        assert!(w[1..7].iter().all(|&x| x == 0));
    }

    #[test]
    fn accepts_a_good_signature_only() {
        let key = signer();
        let digest = [0x11; 32];
        let signature = sign(&key, &digest);
        assert!(verify_prehash(&raw_key(&key), &digest, &signature));

        let mut other_digest = digest;
        other_digest[0] ^= 1;
        assert!(!verify_prehash(&raw_key(&key), &other_digest, &signature));

        let mut bad = signature;
        bad[40] ^= 0x80;
        assert!(!verify_prehash(&raw_key(&key), &digest, &bad));

        let other = SigningKey::from_slice(&[0x33; 32]).expect("a valid scalar");
        assert!(!verify_prehash(&raw_key(&other), &digest, &signature));
    }

    #[test]
    fn refuses_keys_off_the_curve_and_signatures_out_of_range() {
        let key = signer();
        let digest = [0x22; 32];
        let signature = sign(&key, &digest);
        assert!(!verify_prehash(&[0; 64], &digest, &signature));
        let mut off_curve = raw_key(&key);
        off_curve[63] ^= 1;
        assert!(!verify_prehash(&off_curve, &digest, &signature));
        // r = 0, s = 0; r = s = n - 1 + 1 (all ones is above n).
        assert!(!verify_prehash(&raw_key(&key), &digest, &[0; 64]));
        assert!(!verify_prehash(&raw_key(&key), &digest, &[0xff; 64]));
    }
}
