//! Keys and signatures for the simulator: a P-256 key made from the seed, images signed by
//! [`ota_imgtool::sign::sign_image`] (MCUboot/imgtool format) and checked by `ota-image`.
use anyhow::bail;
use ota_image::{ImageVersion, PublicKey};
use ota_imgtool::sign::{sign_image, SignOptions};
use p256::ecdsa::SigningKey;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The demo's update-signing key (made fresh from the seed each run).
pub struct Signer {
    key: SigningKey,
    public: PublicKey,
}

impl Signer {
    pub fn new(seed: u64) -> anyhow::Result<Signer> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6B65_795F_7365_6564);
        for _ in 0..16 {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            if let Ok(key) = SigningKey::from_slice(&secret) {
                let public = ota_imgtool::keys::image_public_key(key.verifying_key());
                return Ok(Signer { key, public });
            }
        }
        bail!("no valid P-256 scalar from the seed")
    }

    pub fn algorithm(&self) -> &'static str {
        "ECDSA P-256 / SHA-256"
    }

    /// The public key the simulated bootloader embeds.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// `tock-ota sign --compression` with the defaults of [`Signer::sign`]: the compressed
    /// image (or the plain one when compression would not pay, as imgtool does); its plain image
    /// is byte for byte [`Signer::sign`]'s (deterministic ECDSA).
    pub fn sign_compressed(
        &self,
        payload: &[u8],
        version: (u8, u8, u16, u32),
        security_counter: u32,
        compression: ota_image::compressed::Compression,
    ) -> anyhow::Result<Vec<u8>> {
        let opts = Self::options(version, security_counter);
        Ok(ota_imgtool::compress::sign_compressed(payload, &opts, &self.key, compression)?.image)
    }

    fn options(version: (u8, u8, u16, u32), security_counter: u32) -> SignOptions {
        SignOptions {
            version: ImageVersion {
                major: version.0,
                minor: version.1,
                revision: version.2,
                build: version.3,
            },
            security_counter: Some(security_counter),
            ..SignOptions::default()
        }
    }

    /// `tock-ota sign` with its defaults (0x200-byte header, load address 0) and this version
    /// and security counter.
    pub fn sign(
        &self,
        payload: &[u8],
        version: (u8, u8, u16, u32),
        security_counter: u32,
    ) -> anyhow::Result<Vec<u8>> {
        sign_image(
            payload,
            &Self::options(version, security_counter),
            &self.key,
        )
    }
}
