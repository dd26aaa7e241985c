//! `tock-ota delta` on the command line: keygen, sign twice, make a patch; a base that is not a
//! signed image is refused with a reason. (The patch format's own tests are in ota-reconstruct
//! and ota-imgtool; this one checks the subcommand reaches them.)

use std::path::Path;
use std::process::{Command, Output};

fn tock_ota(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run tock-ota")
}

fn ok(out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}

#[test]
fn delta_makes_a_small_patch_between_two_signed_images_and_refuses_an_unsigned_base() {
    let dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..40_000u32).map(|i| (i * 37 % 253) as u8).collect();
    let mut changed = payload.clone();
    changed[12_345] ^= 0x5A;
    std::fs::write(dir.path().join("a.bin"), &payload).unwrap();
    std::fs::write(dir.path().join("b.bin"), &changed).unwrap();

    ok(&tock_ota(dir.path(), &["keygen", "-o", "k"]));
    for (input, version, output) in [("a.bin", "1.0.0", "a.img"), ("b.bin", "2.0.0", "b.img")] {
        ok(&tock_ota(
            dir.path(),
            &[
                "sign",
                "--pad-header",
                "-k",
                "k",
                "-v",
                version,
                input,
                output,
            ],
        ));
    }
    ok(&tock_ota(
        dir.path(),
        &["delta", "--base", "a.img", "b.img", "-o", "p.patch"],
    ));
    let patch = std::fs::metadata(dir.path().join("p.patch")).unwrap().len();
    let image = std::fs::metadata(dir.path().join("b.img")).unwrap().len();
    assert!(
        patch > 0 && patch < image / 10,
        "patch {patch} B for a {image} B image"
    );

    let refused = tock_ota(
        dir.path(),
        &["delta", "--base", "a.bin", "b.img", "-o", "q.patch"],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not a signed image"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
