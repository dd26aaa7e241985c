//! The image checker the firmware uses: `ota-image` with the embedded key and a P-256 verifier
//! chosen at build time (`verifier-cm4`, the default, or `verifier-rustcrypto`).

#[cfg(feature = "verifier-cm4")]
use ota_image::{PublicKey, SignatureVerifier};

/// ECDSA P-256 verify with the Cortex-M4 assembly of `p256-cm4` (through `p256-verify`, the
/// kernel's verifier too).
#[cfg(feature = "verifier-cm4")]
pub struct Cm4Verifier;

#[cfg(feature = "verifier-cm4")]
impl SignatureVerifier for Cm4Verifier {
    fn verify_prehash(&self, key: &PublicKey, digest: &[u8; 32], signature: &[u8; 64]) -> bool {
        p256_verify::verify_prehash(key.raw(), digest, signature)
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
