//! Image verification and inspection.
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use ota_image::{
    parse_image, tlv, verify_image, ImageInfo, RustCryptoVerifier, SliceSource, TlvArea,
    VerifiedImage, VerifyPolicy,
};
use serde_json::json;

use crate::sign::parse_u32;

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Public key (SPKI PEM) or private key (SEC1 / PKCS#8 PEM).
    #[arg(short, long)]
    pub key: PathBuf,
    /// Reject a security counter below this.
    #[arg(long, value_parser = parse_u32)]
    pub min_security_counter: Option<u32>,
    /// Reject a payload longer than this.
    #[arg(long, value_parser = parse_u32)]
    pub max_payload_len: Option<u32>,
    /// Accept a load address of 0 or this.
    #[arg(long, value_parser = parse_u32)]
    pub load_addr: Option<u32>,
    /// The signed image.
    pub image: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The signed image.
    pub image: PathBuf,
}

/// Verifies `image` bytes against `key` (host convenience over [`ota_image::verify_image`]).
pub fn verify_bytes(
    image: &[u8],
    key: &p256::ecdsa::VerifyingKey,
    policy: &VerifyPolicy,
) -> anyhow::Result<VerifiedImage> {
    let key = crate::keys::image_public_key(key);
    verify_image(&mut SliceSource(image), &key, &RustCryptoVerifier, policy)
        .map_err(|e| anyhow!("{e}"))
}

pub fn run_verify(args: VerifyArgs) -> anyhow::Result<()> {
    let key = crate::keys::load_verifying_key(&args.key)?;
    let image = std::fs::read(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    let policy = VerifyPolicy {
        min_security_counter: args.min_security_counter,
        max_payload_len: args.max_payload_len,
        expected_load_addr: args.load_addr,
    };
    let checked = ota_image::compressed::verify_image_bytes(
        &image,
        &crate::keys::image_public_key(&key),
        &RustCryptoVerifier,
        &policy,
    )
    .map_err(|e| anyhow!("{e}"))
    .with_context(|| format!("{} does not verify", args.image.display()))?;
    let v = checked.outer;
    if let Some(d) = &checked.decompressed {
        cli_output::outln!(
            "OK: compressed image ({}, {} bytes): hash and signature over the compressed payload",
            d.compression.name(),
            v.payload_len
        );
        cli_output::outln!(
            "OK: decompressed image: {} bytes (DECOMP_SIZE), DECOMP_SHA {}, DECOMP_SIGNATURE good",
            d.payload_len,
            hex(&d.hash)
        );
    }
    cli_output::outln!(
        "OK: {} version {} payload {} bytes security counter {} hash {}",
        args.image.display(),
        v.header.version,
        v.payload_len,
        v.security_counter
            .map_or("none".to_string(), |c| c.to_string()),
        hex(&v.hash)
    );
    Ok(())
}

pub fn run_inspect(args: InspectArgs) -> anyhow::Result<()> {
    let image = std::fs::read(&args.image)
        .with_context(|| format!("cannot read {}", args.image.display()))?;
    let info = parse_image(&mut SliceSource(&image))
        .map_err(|e| anyhow!("{}: {e}", args.image.display()))?;
    if args.json {
        cli_output::outln!(
            "{}",
            serde_json::to_string_pretty(&inspect_json(&info, &image))?
        );
    } else {
        cli_output::out!("{}", inspect_table(&info, &image));
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn flag_names(flags: u32) -> String {
    let mut set: Vec<String> = ota_image::flags::NAMES
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known = ota_image::flags::NAMES.iter().fold(0, |a, (b, _)| a | b);
    if flags & !known != 0 {
        set.push(format!("UNKNOWN({:#x})", flags & !known));
    }
    set.join("|")
}

fn tlv_value<'a>(image: &'a [u8], e: &ota_image::TlvEntry) -> &'a [u8] {
    let start = e.value_offset as usize;
    &image[start..start + usize::from(e.len)] // bounds checked by parse_image
}

/// The JSON form of `tock-ota inspect --json`.
pub fn inspect_json(info: &ImageInfo, image: &[u8]) -> serde_json::Value {
    let h = &info.header;
    let tlvs: Vec<_> = info
        .tlvs()
        .map(|e| {
            json!({
                "area": if e.area == TlvArea::Protected { "protected" } else { "unprotected" },
                "type": e.kind,
                "name": tlv::name(e.kind),
                "offset": e.value_offset,
                "len": e.len,
                "value": hex(tlv_value(image, e)),
            })
        })
        .collect();
    json!({
        "magic": format!("{:#010x}", h.magic),
        "load_addr": h.load_addr,
        "header_size": h.header_size,
        "protected_tlv_size": h.protected_tlv_size,
        "image_size": h.image_size,
        "flags": h.flags,
        "flag_names": flag_names(h.flags),
        "version": h.version.to_string(),
        "security_counter": info.security_counter,
        "payload_offset": info.payload_offset,
        "tlv_offset": info.tlv_offset,
        "total_len": info.total_len,
        "trailing_bytes": image.len() as u64 - u64::from(info.total_len),
        "hash": info.hash.map(|h| hex(&h)),
        "key_hash": info.key_hash.map(|h| hex(&h)),
        "tlvs": tlvs,
    })
}

/// The table form of `tock-ota inspect`, after `imgtool dumpinfo`.
pub fn inspect_table(info: &ImageInfo, image: &[u8]) -> String {
    let h = &info.header;
    let mut s = String::new();
    s += "header (offset 0x0):\n";
    s += &format!("  magic              {:#010x}\n", h.magic);
    s += &format!("  load_addr          {:#x}\n", h.load_addr);
    s += &format!("  hdr_size           {:#x}\n", h.header_size);
    s += &format!("  protected_tlv_size {:#x}\n", h.protected_tlv_size);
    s += &format!(
        "  img_size           {:#x} ({})\n",
        h.image_size, h.image_size
    );
    s += &format!(
        "  flags              {:#x} {}\n",
        h.flags,
        flag_names(h.flags)
    );
    s += &format!("  version            {}\n", h.version);
    s += &format!(
        "payload (offset {:#x}, {} bytes)\n",
        info.payload_offset, info.payload_len
    );
    let mut area = None;
    for e in info.tlvs() {
        if area != Some(e.area) {
            area = Some(e.area);
            match e.area {
                TlvArea::Protected => {
                    s += &format!(
                        "protected TLV area (offset {:#x}, magic {:#06x}, {} bytes)\n",
                        info.payload_offset + info.payload_len,
                        ota_image::TLV_PROT_INFO_MAGIC,
                        info.protected_tlv_len
                    )
                }
                TlvArea::Unprotected => {
                    s += &format!(
                        "TLV area (offset {:#x}, magic {:#06x}, {} bytes)\n",
                        info.tlv_offset,
                        ota_image::TLV_INFO_MAGIC,
                        info.tlv_len
                    )
                }
            }
        }
        let value = tlv_value(image, e);
        let shown = if matches!(e.kind, tlv::SEC_CNT | tlv::DECOMP_SIZE) && value.len() == 4 {
            u32::from_le_bytes([value[0], value[1], value[2], value[3]]).to_string()
        } else {
            hex(value)
        };
        s += &format!(
            "  {:<10} type {:#04x} len {:<3} {}\n",
            tlv::name(e.kind),
            e.kind,
            e.len,
            shown
        );
    }
    if info.tlv_count() > info.tlvs().count() {
        s += &format!(
            "  ... {} more TLVs\n",
            info.tlv_count() - info.tlvs().count()
        );
    }
    s += &format!(
        "security counter: {}\n",
        info.security_counter
            .map_or("none".to_string(), |c| c.to_string())
    );
    s += &format!(
        "image end {:#x}; {} bytes after it in the file\n",
        info.total_len,
        image.len() as u64 - u64::from(info.total_len)
    );
    s
}
