//! Host verify throughput: `tock-ota bench verify`.
//!
//! Signs a random payload, then times full verification (streamed SHA-256 over 512-byte reads,
//! KEYHASH check, DER parse, ECDSA P-256) and the hash alone, over an in-memory slot.
use std::time::Instant;

use ota_image::{
    hash_region, verify_image, RustCryptoVerifier, SignatureVerifier, SliceSource, VerifyPolicy,
};
use p256::ecdsa::SigningKey;
use rand::{RngCore, SeedableRng};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Payload size in KiB.
    #[arg(long, default_value_t = 1024)]
    pub size_kib: u32,
    /// Verifications to time.
    #[arg(long, default_value_t = 20)]
    pub iterations: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The measured figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub payload_bytes: usize,
    pub image_bytes: usize,
    pub iterations: u32,
    pub verify_ms: f64,
    pub verify_mb_per_s: f64,
    pub hash_ms: f64,
    pub hash_mb_per_s: f64,
    /// One ECDSA P-256 verification over the digest.
    pub ecdsa_ms: f64,
}

pub fn measure(size: usize, iterations: u32) -> anyhow::Result<Report> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut payload = vec![0u8; size];
    rng.fill_bytes(&mut payload);
    let key = SigningKey::from_slice(&[0x42; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let opts = ota_imgtool::sign::SignOptions::default();
    let image = ota_imgtool::sign::sign_image(&payload, &opts, &key)?;
    let pk = ota_imgtool::keys::image_public_key(key.verifying_key());
    let iterations = iterations.max(1);

    // One untimed run warms caches and checks the image.
    let verified = verify_image(
        &mut SliceSource(&image),
        &pk,
        &RustCryptoVerifier,
        &VerifyPolicy::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let t = Instant::now();
    for _ in 0..iterations {
        let mut src = SliceSource(&image);
        verify_image(&mut src, &pk, &RustCryptoVerifier, &VerifyPolicy::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let verify = t.elapsed().as_secs_f64() / f64::from(iterations);

    let hashed = ota_image::parse_image(&mut SliceSource(&image))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .tlv_offset;
    let t = Instant::now();
    for _ in 0..iterations {
        let mut src = SliceSource(&image);
        hash_region(&mut src, hashed).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let hash = t.elapsed().as_secs_f64() / f64::from(iterations);

    let info =
        ota_image::parse_image(&mut SliceSource(&image)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sig = info
        .signature
        .ok_or_else(|| anyhow::anyhow!("no signature"))?;
    let start = sig.value_offset as usize;
    let raw = ota_image::der_to_raw_signature(&image[start..start + usize::from(sig.len)])
        .ok_or_else(|| anyhow::anyhow!("bad signature encoding"))?;
    let t = Instant::now();
    for _ in 0..iterations {
        if !RustCryptoVerifier.verify_prehash(&pk, &verified.hash, &raw) {
            anyhow::bail!("signature does not verify");
        }
    }
    let ecdsa = t.elapsed().as_secs_f64() / f64::from(iterations);

    let mb = image.len() as f64 / 1e6;
    Ok(Report {
        payload_bytes: size,
        image_bytes: image.len(),
        iterations,
        verify_ms: verify * 1e3,
        verify_mb_per_s: mb / verify,
        hash_ms: hash * 1e3,
        hash_mb_per_s: hashed as f64 / 1e6 / hash,
        ecdsa_ms: ecdsa * 1e3,
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let r = measure(args.size_kib as usize * 1024, args.iterations)?;
    if args.json {
        cli_output::outln!("{}", serde_json::to_string_pretty(&json!(r))?);
    } else {
        cli_output::outln!("host image verify ({} iterations each)", r.iterations);
        cli_output::outln!(
            "  image            {} bytes ({} payload)",
            r.image_bytes,
            r.payload_bytes
        );
        cli_output::outln!(
            "  full verify      {:.2} ms  {:.1} MB/s",
            r.verify_ms,
            r.verify_mb_per_s
        );
        cli_output::outln!(
            "  SHA-256 only     {:.2} ms  {:.1} MB/s",
            r.hash_ms,
            r.hash_mb_per_s
        );
        cli_output::outln!("  ECDSA P-256      {:.3} ms per verification", r.ecdsa_ms);
    }
    Ok(())
}
