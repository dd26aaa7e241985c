//! The trusted public key and the signature-verification back end.

/// Length of a P-256 public key's DER SubjectPublicKeyInfo (uncompressed point).
pub const SPKI_DER_LEN: usize = 91;

/// DER SubjectPublicKeyInfo prefix for an id-ecPublicKey / prime256v1 key, up to and including
/// the uncompressed-point marker 0x04; the 64 bytes `x ‖ y` follow.
const SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];

/// A key that cannot be a P-256 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// The bytes are not a point on P-256.
    NotOnCurve,
}

impl core::fmt::Display for KeyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KeyError::NotOnCurve => write!(f, "not a P-256 public key"),
        }
    }
}

/// A P-256 public key as the bootloader embeds it: 64 bytes, `x ‖ y`, big-endian.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PublicKey {
    raw: [u8; 64],
}

impl PublicKey {
    /// Wraps the 64 raw bytes. With the `rustcrypto` feature the point is checked to be on the
    /// curve; without it the check is left to the verifier.
    pub fn from_raw(raw: &[u8; 64]) -> Result<Self, KeyError> {
        if raw.iter().all(|&b| b == 0) {
            return Err(KeyError::NotOnCurve);
        }
        #[cfg(feature = "rustcrypto")]
        {
            let mut sec1 = [0u8; 65];
            sec1[0] = 0x04;
            sec1[1..].copy_from_slice(raw);
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| KeyError::NotOnCurve)?;
        }
        Ok(PublicKey { raw: *raw })
    }

    /// The 64 bytes `x ‖ y`.
    pub fn raw(&self) -> &[u8; 64] {
        &self.raw
    }

    /// The DER SubjectPublicKeyInfo, as imgtool embeds it in a PUBKEY TLV.
    pub fn spki_der(&self) -> [u8; SPKI_DER_LEN] {
        let mut der = [0u8; SPKI_DER_LEN];
        der[..SPKI_PREFIX.len()].copy_from_slice(&SPKI_PREFIX);
        der[SPKI_PREFIX.len()..].copy_from_slice(&self.raw);
        der
    }

    /// SHA-256 of the DER SubjectPublicKeyInfo: the KEYHASH TLV value.
    pub fn key_hash(&self) -> [u8; 32] {
        crate::Sha256::digest(&self.spki_der())
    }
}

/// An ECDSA P-256 verifier. The bootloader plugs in a small Cortex-M4 implementation; the host
/// uses [`RustCryptoVerifier`].
pub trait SignatureVerifier {
    /// Verifies ECDSA P-256 over a SHA-256 digest; `signature` is `r ‖ s` (64 bytes).
    fn verify_prehash(&self, key: &PublicKey, digest: &[u8; 32], signature: &[u8; 64]) -> bool;
}

/// ECDSA P-256 verification with RustCrypto's `p256`.
#[cfg(feature = "rustcrypto")]
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoVerifier;

#[cfg(feature = "rustcrypto")]
impl SignatureVerifier for RustCryptoVerifier {
    fn verify_prehash(&self, key: &PublicKey, digest: &[u8; 32], signature: &[u8; 64]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let mut sec1 = [0u8; 65];
        sec1[0] = 0x04;
        sec1[1..].copy_from_slice(key.raw());
        let Ok(vk) = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1) else {
            return false;
        };
        let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
            return false;
        };
        vk.verify_prehash(digest, &sig).is_ok()
    }
}
