//! Image signing: a raw binary into an MCUboot/imgtool-format image (ECDSA P-256, SHA-256).
//!
//! The output matches `imgtool sign --key <p256> ...` byte for byte up to the signature (whose
//! nonce differs): same header, same header padding, same protected TLV (SEC_CNT), same TLV
//! order (SHA256, KEYHASH, ECDSASIG). See `docs/image-format.md`.
use std::path::PathBuf;

use anyhow::{bail, Context};
use ota_image::build::{BuildError, ImageBuilder};
use ota_image::{ImageVersion, IMAGE_HEADER_SIZE};
use p256::ecdsa::SigningKey;

/// imgtool's defaults for the trailer it reserves at the end of a slot.
const MAX_SECTORS: u32 = 128;
const DEFAULT_MAX_ALIGN: u32 = 8;

/// How to build an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    pub version: ImageVersion,
    /// The protected SEC_CNT TLV; `None` leaves it out.
    pub security_counter: Option<u32>,
    /// Header size (>= 32); the payload starts here.
    pub header_size: u16,
    /// `true`: put `header_size` bytes (0xff) in front of the input. `false`: the input already
    /// starts with `header_size` zero bytes, which the header overwrites (imgtool's rule).
    pub pad_header: bool,
    /// Flash write alignment (1, 2, 4, 8, 16 or 32); sizes the slot trailer imgtool reserves.
    pub align: u32,
    /// If set, the image plus imgtool's trailer must fit in this many bytes.
    pub slot_size: Option<u32>,
    /// Header load address; non-zero sets the RAM_LOAD flag, as imgtool does.
    pub load_addr: u32,
}

impl Default for SignOptions {
    fn default() -> Self {
        SignOptions {
            version: ImageVersion::default(),
            security_counter: None,
            header_size: 0x200,
            pad_header: true,
            align: 4,
            slot_size: None,
            load_addr: 0,
        }
    }
}

/// imgtool's trailer size for a swap-capable slot (`Image._trailer_size`, no encryption).
pub fn trailer_size(align: u32) -> u32 {
    let max_align = DEFAULT_MAX_ALIGN.max(align);
    let magic_align_size = 16u32.div_ceil(max_align) * max_align;
    MAX_SECTORS * 3 * align + max_align * 4 + magic_align_size
}

/// Builds and signs an image from a raw `payload`.
pub fn sign_image(payload: &[u8], opts: &SignOptions, key: &SigningKey) -> anyhow::Result<Vec<u8>> {
    sign_image_with(payload, opts, key, 0, &[])
}

/// [`sign_image`] with extra header flags and extra protected TLVs after SEC_CNT, in the order
/// given (imgtool's order for the compression TLVs; see `compress.rs`). The image itself is
/// ota-image's builder's; this adds imgtool's input rules and slot checks.
pub fn sign_image_with(
    payload: &[u8],
    opts: &SignOptions,
    key: &SigningKey,
    extra_flags: u32,
    extra_protected: &[(u16, &[u8])],
) -> anyhow::Result<Vec<u8>> {
    if u32::from(opts.header_size) < IMAGE_HEADER_SIZE {
        return Err(BuildError::HeaderSizeTooSmall(opts.header_size).into());
    }
    if !matches!(opts.align, 1 | 2 | 4 | 8 | 16 | 32) {
        bail!("alignment {} is not one of 1, 2, 4, 8, 16, 32", opts.align);
    }
    let hs = usize::from(opts.header_size);
    let (payload, header_fill) = if opts.pad_header {
        (payload, 0xff)
    } else if payload.len() < hs || payload[..hs].iter().any(|&b| b != 0) {
        bail!("input does not start with {hs:#x} zero bytes for the header (use --pad-header)");
    } else {
        (payload.get(hs..).unwrap_or_default(), 0x00)
    };
    let builder = ImageBuilder {
        version: opts.version,
        header_size: opts.header_size,
        header_fill,
        load_addr: opts.load_addr,
        flags: extra_flags,
        security_counter: opts.security_counter,
        protected: extra_protected
            .iter()
            .map(|(kind, value)| (*kind, value.to_vec()))
            .collect(),
        unprotected: Vec::new(),
    };
    let image = builder.sign(payload, key)?;

    if let Some(slot) = opts.slot_size {
        let need = image.len() as u64 + u64::from(trailer_size(opts.align));
        if need > u64::from(slot) {
            bail!(
                "image size ({:#x}) + trailer ({:#x}) exceeds slot size {slot:#x}",
                image.len(),
                trailer_size(opts.align)
            );
        }
    }
    Ok(image)
}

/// Parses `major[.minor[.revision[+build]]]`, as imgtool's `--version` does.
pub fn parse_version(s: &str) -> anyhow::Result<ImageVersion> {
    let bad = || anyhow::anyhow!("bad version {s:?}: expected major.minor.revision+build");
    let (main, build) = match s.split_once('+') {
        Some((m, b)) => (m, Some(b)),
        None => (s, None),
    };
    let mut parts = main.split('.');
    let major = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let minor = parts
        .next()
        .map(str::parse)
        .transpose()
        .map_err(|_| bad())?
        .unwrap_or(0);
    let revision = parts
        .next()
        .map(str::parse)
        .transpose()
        .map_err(|_| bad())?
        .unwrap_or(0);
    if parts.next().is_some() {
        return Err(bad());
    }
    let build = build
        .map(str::parse)
        .transpose()
        .map_err(|_| bad())?
        .unwrap_or(0);
    Ok(ImageVersion {
        major,
        minor,
        revision,
        build,
    })
}

/// Parses a decimal or `0x` hexadecimal number.
pub fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a number"))
}

fn parse_u16(s: &str) -> Result<u16, String> {
    let v = parse_u32(s)?;
    u16::try_from(v).map_err(|_| format!("{s} does not fit in 16 bits"))
}

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// Private key (SEC1 or PKCS#8 PEM).
    #[arg(short, long)]
    pub key: PathBuf,
    /// Image version, major.minor.revision+build.
    #[arg(short, long, default_value = "0.0.0+0")]
    pub version: String,
    /// Security counter (protected SEC_CNT TLV); `auto` derives it from the version as imgtool does.
    #[arg(short = 's', long)]
    pub security_counter: Option<String>,
    /// Header size in bytes (>= 0x20).
    #[arg(short = 'H', long, value_parser = parse_u16, default_value = "0x200")]
    pub header_size: u16,
    /// Prepend the header space to the input (otherwise the input must start with that many zeros).
    #[arg(long)]
    pub pad_header: bool,
    /// Flash write alignment (1, 2, 4, 8, 16, 32).
    #[arg(long, default_value_t = 4)]
    pub align: u32,
    /// Slot size: the image plus imgtool's trailer must fit.
    #[arg(short = 'S', long, value_parser = parse_u32)]
    pub slot_size: Option<u32>,
    /// Load address written to the header (non-zero sets RAM_LOAD).
    #[arg(long, value_parser = parse_u32, default_value = "0")]
    pub load_addr: u32,
    /// Compress the payload as imgtool does (MCUboot's compressed-image format).
    #[arg(long, value_enum)]
    pub compression: Option<crate::compress::CompressionArg>,
    /// Raw binary input.
    pub input: PathBuf,
    /// Signed image output.
    pub output: PathBuf,
}

pub fn run(args: SignArgs) -> anyhow::Result<()> {
    let key = crate::keys::load_signing_key(&args.key)?;
    let version = parse_version(&args.version)?;
    let security_counter = match args.security_counter.as_deref() {
        None => None,
        // imgtool: (major << 24) + (minor << 16) + revision
        Some("auto") => Some(
            (u32::from(version.major) << 24)
                | (u32::from(version.minor) << 16)
                | u32::from(version.revision),
        ),
        Some(s) => Some(parse_u32(s).map_err(|e| anyhow::anyhow!("security counter: {e}"))?),
    };
    let opts = SignOptions {
        version,
        security_counter,
        header_size: args.header_size,
        pad_header: args.pad_header,
        align: args.align,
        slot_size: args.slot_size,
        load_addr: args.load_addr,
    };
    let payload = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let image = match args.compression {
        None => sign_image(&payload, &opts, &key)?,
        Some(c) => {
            let out = crate::compress::sign_compressed(&payload, &opts, &key, c.into())?;
            match out.compressed_len {
                Some(n) => {
                    cli_output::outln!("compressed payload: {n} bytes ({} plain)", out.plain_len)
                }
                None => cli_output::outln!(
                    "compression would not make the payload smaller: written uncompressed"
                ),
            }
            out.image
        }
    };
    std::fs::write(&args.output, &image)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    cli_output::outln!(
        "signed {} ({} bytes payload) -> {} ({} bytes), version {}",
        args.input.display(),
        payload.len(),
        args.output.display(),
        image.len(),
        version
    );
    Ok(())
}
