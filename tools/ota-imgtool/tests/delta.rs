//! `tock-ota delta`: the patch file it writes rebuilds the new signed image from the payload the
//! base image installs; inputs that are not signed images are refused with a reason.
use std::path::PathBuf;

use ota_image::build::ImageBuilder;
use ota_imgtool::delta::{run, DeltaArgs};
use ota_reconstruct::diff::apply_patch;
use ota_reconstruct::Error;

fn image(payload: &[u8], major: u8) -> Vec<u8> {
    let mut b = ImageBuilder {
        header_size: 0x200,
        ..ImageBuilder::default()
    };
    b.version.major = major;
    b.unsigned(payload).unwrap()
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tock-ota-delta-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn the_patch_file_rebuilds_the_new_image_from_the_installed_payload() {
    let v1_payload: Vec<u8> = (0..50_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut v2_payload = v1_payload.clone();
    v2_payload[1234] ^= 1;
    v2_payload.splice(30_000..30_000, [7u8; 20]);
    let (v1, v2) = (image(&v1_payload, 1), image(&v2_payload, 2));
    let output = temp("patch.bin", &[]);
    run(DeltaArgs {
        base: temp("v1.bin", &v1),
        new: temp("v2.bin", &v2),
        output: output.clone(),
        json: true,
    })
    .unwrap();
    let patch = std::fs::read(&output).unwrap();
    assert!(patch.len() < 500, "patch of {} bytes", patch.len());
    assert_eq!(apply_patch(&patch, &v1_payload).unwrap(), v2);
    // The signed file is not what the device has: its payload is.
    assert_eq!(apply_patch(&patch, &v1), Err(Error::WrongBase));
}

#[test]
fn inputs_that_are_not_signed_images_are_refused_with_a_reason() {
    let v1 = image(&[1u8; 4000], 1);
    let output = temp("never.bin", &[]);
    let e = run(DeltaArgs {
        base: temp("raw.bin", &[1u8; 4000]),
        new: temp("v1b.bin", &v1),
        output: output.clone(),
        json: false,
    })
    .unwrap_err();
    assert!(e.to_string().starts_with("base: not a signed image"), "{e}");
    let e = run(DeltaArgs {
        base: temp("v1c.bin", &v1),
        new: temp("cut.bin", &v1[..100]),
        output,
        json: false,
    })
    .unwrap_err();
    assert!(e.to_string().starts_with("new image: "), "{e}");
}
