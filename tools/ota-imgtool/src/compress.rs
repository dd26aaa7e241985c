//! Compressed images as imgtool writes them (`imgtool sign --compression lzma2|lzma2armthumb`):
//! the plain image is signed first; its payload is compressed (ARM-Thumb BCJ filter, then raw
//! LZMA2 with imgtool's settings, behind a 2-byte LZMA2 header); the compressed payload is then
//! signed as an image of its own with the compression flags and the protected TLVs DECOMP_SIZE,
//! DECOMP_SHA and DECOMP_SIGNATURE (the plain image's payload size, hash and signature). As imgtool
//! does, an image that compression would not make smaller is written uncompressed.
use std::io::Write;

use anyhow::Context;
use lzma_rust2::filter::bcj::BcjWriter;
use lzma_rust2::{Lzma2Options, Lzma2Writer};
use ota_image::compressed::{lzma2_header, Compression, DICT_SIZE, LC, LP, PB};
use ota_image::{parse_image, tlv};
use p256::ecdsa::SigningKey;

use crate::sign::{sign_image, sign_image_with, SignOptions};

/// `--compression` values, named as imgtool names them.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionArg {
    /// Raw LZMA2.
    Lzma2,
    /// ARM-Thumb BCJ filter, then LZMA2 (smaller for Cortex-M code).
    #[value(name = "lzma2armthumb")]
    Lzma2ArmThumb,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::Lzma2 => Compression::Lzma2,
            CompressionArg::Lzma2ArmThumb => Compression::Lzma2ArmThumb,
        }
    }
}

/// The compressed payload: imgtool's 2-byte LZMA2 header and the raw stream (end marker included).
pub fn compress_payload(plain: &[u8], compression: Compression) -> anyhow::Result<Vec<u8>> {
    let mut opts = Lzma2Options::with_preset(9);
    opts.lzma_options.dict_size = DICT_SIZE;
    opts.lzma_options.lc = LC;
    opts.lzma_options.lp = LP;
    opts.lzma_options.pb = PB;
    let out = lzma2_header(DICT_SIZE, LC, LP, PB).to_vec();
    let lzma = Lzma2Writer::new(out, opts);
    let out = match compression {
        Compression::Lzma2 => {
            let mut w = lzma;
            w.write_all(plain)?;
            w.finish()?
        }
        Compression::Lzma2ArmThumb => {
            let mut w = BcjWriter::new_arm_thumb(lzma, 0);
            w.write_all(plain)?;
            w.finish()?.finish()?
        }
    };
    Ok(out)
}

/// What [`sign_compressed`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedOutput {
    pub image: Vec<u8>,
    /// Plain payload length (DECOMP_SIZE).
    pub plain_len: usize,
    /// Compressed payload length (LZMA2 header and stream); `None`: written uncompressed.
    pub compressed_len: Option<usize>,
}

/// Signs `payload` into a compressed image (or a plain one when compression does not pay).
pub fn sign_compressed(
    payload: &[u8],
    opts: &SignOptions,
    key: &SigningKey,
    compression: Compression,
) -> anyhow::Result<CompressedOutput> {
    let plain_image = sign_image(payload, opts, key)?;
    let info = parse_image(&mut &plain_image[..])
        .map_err(|e| anyhow::anyhow!("own plain image does not parse: {e}"))?;
    let hash = info.hash.context("plain image without SHA256 TLV")?;
    let sig = info.signature.context("plain image without signature")?;
    let sig = &plain_image[sig.value_offset as usize..][..usize::from(sig.len)];
    let start = info.payload_offset as usize;
    let plain = &plain_image[start..start + info.payload_len as usize];

    let compressed = compress_payload(plain, compression)?;
    // imgtool's rule: the stream (without its 2-byte header) and the three TLV values must be
    // smaller than the plain payload, otherwise the plain image is written.
    let stream_len = compressed.len() - 2;
    if stream_len + 4 + hash.len() + sig.len() >= plain.len() {
        let plain_len = plain.len();
        return Ok(CompressedOutput {
            image: plain_image,
            plain_len,
            compressed_len: None,
        });
    }
    let size = info.payload_len.to_le_bytes();
    let extra: [(u16, &[u8]); 3] = [
        (tlv::DECOMP_SIZE, &size),
        (tlv::DECOMP_SHA, &hash),
        (tlv::DECOMP_SIGNATURE, sig),
    ];
    // Same header padding as the plain image: 0xff with --pad-header, zeros otherwise.
    let image = if opts.pad_header {
        sign_image_with(&compressed, opts, key, compression.flags(), &extra)?
    } else {
        let mut input = vec![0u8; usize::from(opts.header_size)];
        input.extend_from_slice(&compressed);
        sign_image_with(&input, opts, key, compression.flags(), &extra)?
    };
    Ok(CompressedOutput {
        image,
        plain_len: plain.len(),
        compressed_len: Some(compressed.len()),
    })
}
