//! Payloads imgtool compressed (`sign --compression lzma2|lzma2armthumb`, liblzma underneath)
//! decode to the input imgtool signed; the real DK kernel too (`--ignored`, needs its binary).
mod common;

use common::*;

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ota-lzma-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn decode_image(img: &[u8]) -> (Vec<u8>, ota_lzma::Stats) {
    let im = parse(img);
    let n = im.decomp_size();
    let r = run::<4096, 2048>(im.payload, im.filter(), n, 229_376, STRAIGHT)
        .unwrap_or_else(|e| panic!("{e}"));
    (r.flash[..n as usize].to_vec(), r.stats)
}

#[test]
fn imgtool_compressed_payloads_decode_to_the_signed_input() {
    let dir = tmpdir("imgtool");
    // Code-like data of the kernel's order of size, with a zero-filled tail as the kernel has.
    let mut plain = code_like(90_000, 9);
    plain.resize(200_000, 0);
    plain.extend_from_slice(&code_like(4096, 10));
    for c in ["lzma2", "lzma2armthumb"] {
        let img = imgtool_sign(&plain, c, &dir);
        let im = parse(&img);
        assert_eq!(im.decomp_size() as usize, plain.len());
        assert_eq!(im.payload[..2], [10, 102], "imgtool's header changed");
        let (out, stats) = decode_image(&img);
        assert!(out == plain, "{c}: output differs from imgtool's input");
        assert!(stats.reads > 0, "{c}: far matches must have been read back");
    }
    std::fs::remove_dir_all(dir).ok();
}

/// The DK kernel (`bash .ci/build-device` writes `target/device/kernel-v1.bin`, or
/// `TOCK_OTA_KERNEL=path`), compressed by imgtool both ways, decodes back to itself.
#[test]
#[ignore = "needs the DK kernel binary: bash .ci/build-device, or TOCK_OTA_KERNEL=kernel.bin"]
fn the_dk_kernel_compressed_by_imgtool_decodes() {
    let path = std::env::var_os("TOCK_OTA_KERNEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/device/kernel-v1.bin")
        });
    let plain = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = tmpdir("kernel");
    for c in ["lzma2", "lzma2armthumb"] {
        let img = imgtool_sign(&plain, c, &dir);
        let (out, stats) = decode_image(&img);
        assert!(out == plain, "{c}: kernel differs");
        println!(
            "{c}: payload {} B -> {} B, {stats:?}",
            parse(&img).payload.len(),
            plain.len()
        );
    }
    std::fs::remove_dir_all(dir).ok();
}
