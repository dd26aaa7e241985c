//! The simulator's reconstruction step on a compressed image staged in the received-stream
//! area: `rebuild_and_finalize` recognises it by the MCUboot magic, ota-lzma decodes it into the
//! staging slot as the plain image `sign_image` writes for the same payload (byte for byte: our
//! signatures are deterministic), and the staging slot's finalize accepts it; a corrupt one is
//! refused with a reason and never finalized.
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use hw_models::SimBoard;
use ota_image::compressed::Compression;
use ota_imgtool::compress::sign_compressed;
use ota_imgtool::sign::{sign_image, SignOptions};
use ota_sim::rebuild::{rebuild_and_finalize, RebuildError};
use p256::ecdsa::SigningKey;
use update_region::blocking::BlockingDriver;
use update_region::{Config, UpdateRegion};

const OWNER: u32 = 7;

/// Thumb-like code (BL pairs, literal pools) with a zero-filled tail, as a kernel has.
fn payload() -> Vec<u8> {
    let mut v = Vec::new();
    let mut x: u32 = 0x2545_f491;
    while v.len() < 60_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let rel = (x % 0x4000) & !1;
        v.extend_from_slice(&[
            (rel >> 11) as u8,
            0xF0,
            rel as u8,
            0xF8 | ((rel >> 8) & 7) as u8,
        ]);
        v.extend_from_slice(&[0x10, 0xb5, 0x04, 0x46, 0x00, 0x28, 0x01, 0xd0]);
    }
    v.resize(100_000, 0);
    v
}

fn rebuild(image: &[u8]) -> (SimBoard, Result<(), RebuildError>) {
    let mut board = SimBoard::new(5);
    let stream = Config::nrf52840dk_stream(OWNER);
    let staging_config = Config::nrf52840dk(OWNER);
    let len = (image.len() as u32).div_ceil(4096) * 4096;
    board
        .qspi
        .erase(stream.staging_base, stream.staging_base + len)
        .unwrap();
    board.qspi.write(stream.staging_base, image).unwrap();
    let mut staging = UpdateRegion::new(staging_config).unwrap();
    // The start-up scan a kernel runs once per boot.
    BlockingDriver::new(&mut staging, &mut board.qspi)
        .start()
        .unwrap();
    let r = rebuild_and_finalize(
        &mut board,
        &mut staging,
        staging_config,
        OWNER,
        stream,
        image.len() as u32,
        [3; 16],
    );
    (board, r.map(|_| ()))
}

#[test]
fn a_compressed_image_in_the_stream_area_rebuilds_into_the_plain_image_and_finalizes() {
    let key = SigningKey::from_slice(&[9; 32]).unwrap();
    let opts = SignOptions {
        security_counter: Some(2),
        ..SignOptions::default()
    };
    let payload = payload();
    let plain = sign_image(&payload, &opts, &key).unwrap();
    for c in [Compression::Lzma2ArmThumb, Compression::Lzma2] {
        let out = sign_compressed(&payload, &opts, &key, c).unwrap();
        assert!(
            out.compressed_len.is_some(),
            "{c:?}: the test image must compress"
        );
        let (mut board, r) = rebuild(&out.image);
        r.unwrap_or_else(|e| panic!("{c:?}: {e:?}"));
        let mut staged = vec![0u8; plain.len()];
        let base = Config::nrf52840dk(OWNER).staging_base;
        board.qspi.read(base, &mut staged).unwrap();
        assert!(
            staged == plain,
            "{c:?}: staged image differs from the plain signed image"
        );
    }
}

#[test]
fn a_corrupt_compressed_image_is_refused_and_not_finalized() {
    let key = SigningKey::from_slice(&[9; 32]).unwrap();
    let out = sign_compressed(
        &payload(),
        &SignOptions::default(),
        &key,
        Compression::Lzma2ArmThumb,
    )
    .unwrap();
    let mut bad = out.image.clone();
    bad[0x200 + 1000] ^= 0x08;
    let (_, r) = rebuild(&bad);
    assert!(
        matches!(
            r,
            Err(RebuildError::Refused(
                ota_reconstruct::Error::Corrupt(_) | ota_reconstruct::Error::OutputHash
            ))
        ),
        "{r:?}"
    );
}
