//! The image checker the firmware uses: `ota-image` with the embedded key and a P-256 verifier
//! chosen at build time (`verifier-cm4`, the default, or `verifier-rustcrypto`).

#[cfg(feature = "verifier-cm4")]
use ota_image::{PublicKey, SignatureVerifier};

/// ECDSA P-256 verify with the Cortex-M4 assembly of `p256-cm4`.
#[cfg(feature = "verifier-cm4")]
pub struct Cm4Verifier;

/// Big-endian 32 bytes → the little-endian words `p256-cm4` computes with.
#[cfg(feature = "verifier-cm4")]
fn words(be: &[u8]) -> [u32; 8] {
    let mut w = [0u32; 8];
    for (i, word) in w.iter_mut().enumerate() {
        let j = 28 - 4 * i;
        *word = u32::from_be_bytes([be[j], be[j + 1], be[j + 2], be[j + 3]]);
    }
    w
}

#[cfg(feature = "verifier-cm4")]
impl SignatureVerifier for Cm4Verifier {
    fn verify_prehash(&self, key: &PublicKey, digest: &[u8; 32], signature: &[u8; 64]) -> bool {
        let k = key.raw();
        p256_cm4::verify(
            &words(&k[..32]),
            &words(&k[32..]),
            digest,
            &words(&signature[..32]),
            &words(&signature[32..]),
        )
    }
}

#[cfg(feature = "verifier-cm4")]
pub type Verifier = Cm4Verifier;
#[cfg(feature = "verifier-cm4")]
pub const VERIFIER: Verifier = Cm4Verifier;

#[cfg(all(feature = "verifier-rustcrypto", not(feature = "verifier-cm4")))]
pub type Verifier = ota_image::RustCryptoVerifier;
#[cfg(all(feature = "verifier-rustcrypto", not(feature = "verifier-cm4")))]
pub const VERIFIER: Verifier = ota_image::RustCryptoVerifier;
