//! The compressed-image kind of the reconstruction step: an imgtool-compressed image in the
//! stream area rebuilds, through `ota_reconstruct::Rebuild` on NOR-like memory, into the plain
//! image imgtool writes without compression (the same bytes up to its randomised signature),
//! which `imgtool verify` and ota-image's verifier accept; corrupt, oversize and truncated
//! streams are refused with a reason; a power cut costs a retry.
mod common;

use common::*;
use ota_image::{verify_image, PublicKey, RustCryptoVerifier, VerifyPolicy};
use ota_lzma::image::CompressedImage;
use ota_reconstruct::blocking::{run, RunError, Storage};
use ota_reconstruct::{Area, Error, Limits, Rebuild};

/// The kernel slot: the largest payload (DECOMP_SIZE).
const SLOT: u32 = 0x3_8000;
/// The staging slot: the largest rebuilt image.
const STAGING: u32 = 1020 * 1024;
const SECTOR: usize = 4096;

struct Mem {
    stream: Vec<u8>,
    out: Vec<u8>,
    writes: usize,
    cut_at: Option<usize>,
}

#[derive(Debug, PartialEq)]
struct Cut;

impl Storage for Mem {
    type Error = Cut;
    fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), Cut> {
        let src = match area {
            Area::Stream => &self.stream,
            Area::Output => &self.out,
            Area::Base => panic!("a compressed image has no base"),
        };
        buf.copy_from_slice(&src[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Cut> {
        if self.cut_at == Some(self.writes) {
            return Err(Cut);
        }
        let at = offset as usize;
        if at.is_multiple_of(SECTOR) {
            let end = (at + SECTOR).min(self.out.len());
            self.out[at..end].fill(0xFF);
        }
        for (o, d) in self.out[at..at + data.len()].iter_mut().zip(data) {
            assert_eq!(*o, 0xFF, "program over programmed flash at {at}");
            *o = *d;
        }
        self.writes += 1;
        Ok(())
    }
}

fn mem(stream: &[u8]) -> Mem {
    Mem {
        stream: stream.to_vec(),
        out: vec![0x5A; STAGING as usize],
        writes: 0,
        cut_at: None,
    }
}

fn rebuild(m: &mut Mem) -> Result<Vec<u8>, RunError<Cut>> {
    let limits = Limits {
        stream_len: m.stream.len() as u32,
        base_max: 0,
        output_max: STAGING,
    };
    let mut r = Rebuild::new(CompressedImage::new(SLOT), limits);
    let outcome = run(&mut r, m)?;
    Ok(m.out[..outcome.output_len as usize].to_vec())
}

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ota-lzma-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Rebuilds `plain` compressed by imgtool both ways and checks the result against imgtool's
/// uncompressed image of the same input and both verifiers.
fn rebuilds_as_imgtool_would_sign(plain: &[u8], dir: &std::path::Path) {
    let reference = imgtool_sign(plain, "none", dir);
    let key = PublicKey::from_raw(&imgtool_pub(dir)).unwrap();
    let hashed = {
        let p = parse(&reference);
        let prot: usize = p.protected.iter().map(|t| 4 + t.1.len()).sum::<usize>() + 4;
        p.header_size + p.payload.len() + prot
    };
    for c in ["lzma2", "lzma2armthumb"] {
        let img = imgtool_sign(plain, c, dir);
        let out = rebuild(&mut mem(&img)).unwrap_or_else(|e| panic!("{c}: {e:?}"));
        // Header, padding, payload and protected TLVs: imgtool's bytes exactly.
        assert!(
            out[..hashed] == reference[..hashed],
            "{c}: hashed region differs"
        );
        // Then the TLV info (its length counts the signature), SHA256 and KEYHASH (the same),
        // then the signature (its own: imgtool randomises its signatures).
        assert_eq!(out[hashed..hashed + 2], reference[hashed..hashed + 2]);
        assert_eq!(
            out[hashed + 4..hashed + 76],
            reference[hashed + 4..hashed + 76]
        );
        verify_image(
            &mut &out[..],
            &key,
            &RustCryptoVerifier,
            &VerifyPolicy::default(),
        )
        .unwrap_or_else(|e| panic!("{c}: ota-image refuses the rebuilt image: {e:?}"));
        let file = dir.join(format!("rebuilt-{c}.bin"));
        std::fs::write(&file, &out).unwrap();
        let v = std::process::Command::new(imgtool())
            .arg("verify")
            .arg("-k")
            .arg(dir.join("key.pem"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{c}: imgtool verify: {}",
            String::from_utf8_lossy(&v.stdout)
        );
    }
}

#[test]
fn compressed_images_rebuild_into_the_plain_image_both_verifiers_accept() {
    let dir = tmpdir("rebuild");
    let mut plain = code_like(80_000, 12);
    plain.resize(150_000, 0);
    rebuilds_as_imgtool_would_sign(&plain, &dir);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
#[ignore = "needs the DK kernel binary: bash .ci/build-device, or TOCK_OTA_KERNEL=kernel.bin"]
fn the_dk_kernel_rebuilds_into_the_plain_image_both_verifiers_accept() {
    let path = std::env::var_os("TOCK_OTA_KERNEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/device/kernel-v1.bin")
        });
    let plain = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = tmpdir("rebuild-kernel");
    rebuilds_as_imgtool_would_sign(&plain, &dir);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_streams_are_refused_with_a_reason() {
    let dir = tmpdir("rebuild-bad");
    let plain = code_like(60_000, 13);
    let img = imgtool_sign(&plain, "lzma2armthumb", &dir);
    let p = parse(&img);
    let payload_at = p.header_size;
    let tail_at = p.header_size + p.payload.len();

    // A flipped byte inside the stream: the LZMA2 decoder or the DECOMP_SHA check refuses it.
    for at in [payload_at + 2, payload_at + 500, tail_at - 10] {
        let mut bad = img.clone();
        bad[at] ^= 0x10;
        match rebuild(&mut mem(&bad)) {
            Err(RunError::Rebuild(Error::Corrupt(_) | Error::OutputHash)) => {}
            other => panic!("flip at {at}: {other:?}"),
        }
    }
    // DECOMP_SHA changed: the rebuilt image is refused before its unprotected TLVs.
    let sha_at = tail_at + 4 + (4 + 4) + (4 + 4) + 4; // info, SEC_CNT, DECOMP_SIZE, DECOMP_SHA's header
    assert_eq!(&img[sha_at - 4..sha_at - 2], &[0x71, 0x00]);
    let mut bad = img.clone();
    bad[sha_at] ^= 1;
    assert_eq!(
        rebuild(&mut mem(&bad)),
        Err(RunError::Rebuild(Error::OutputHash))
    );

    // DECOMP_SIZE beyond the slot: refused before anything is written.
    let size_at = tail_at + 4 + 8 + 4;
    assert_eq!(&img[size_at - 4..size_at - 2], &[0x70, 0x00]);
    let mut bad = img.clone();
    bad[size_at..size_at + 4].copy_from_slice(&(SLOT + 1).to_le_bytes());
    let mut m = mem(&bad);
    assert_eq!(
        rebuild(&mut m),
        Err(RunError::Rebuild(Error::OutputTooLong {
            len: SLOT + 1,
            max: SLOT
        }))
    );
    assert_eq!(m.writes, 0, "nothing may be written for an oversize image");

    // Truncated anywhere in the payload or the TLVs.
    for cut in [
        payload_at + 1,
        payload_at + 3000,
        tail_at - 1,
        tail_at + 20,
        img.len() - 1,
    ] {
        let r = rebuild(&mut mem(&img[..cut]));
        assert!(
            matches!(
                r,
                Err(RunError::Rebuild(Error::Truncated | Error::Corrupt(_)))
            ),
            "cut at {cut}: {r:?}"
        );
    }
    // Not compressed, or not an image.
    let plain_img = imgtool_sign(&plain, "none", &dir);
    assert_eq!(
        rebuild(&mut mem(&plain_img)),
        Err(RunError::Rebuild(Error::Unsupported))
    );
    assert_eq!(
        rebuild(&mut mem(&[0u8; 600])),
        Err(RunError::Rebuild(Error::BadMagic))
    );
    std::fs::remove_dir_all(dir).ok();
}

/// One decoder in one place, borrowed by each `Rebuild` and restarted (as a device keeps it in
/// a `static`, made as `EMPTY`): not restarted it refuses the payload (its room is 0 bytes); a
/// second image after a first, and after a refused one, rebuild as with a new one.
#[test]
fn a_borrowed_restarted_decoder_rebuilds_like_a_new_one() {
    let dir = tmpdir("rebuild-restart");
    let a = imgtool_sign(&code_like(30_000, 16), "lzma2armthumb", &dir);
    let b = imgtool_sign(&code_like(50_000, 17), "lzma2", &dir);
    let mut corrupt = a.clone();
    corrupt[700] ^= 0x40;
    let want_a = rebuild(&mut mem(&a)).unwrap();
    let want_b = rebuild(&mut mem(&b)).unwrap();
    let mut d = Box::new(CompressedImage::EMPTY);
    let limits = Limits {
        stream_len: a.len() as u32,
        base_max: 0,
        output_max: STAGING,
    };
    let mut m = mem(&a);
    let got = run(&mut Rebuild::new(&mut *d, limits), &mut m);
    assert!(
        matches!(
            got,
            Err(RunError::Rebuild(Error::OutputTooLong { max: 0, .. }))
        ),
        "an EMPTY decoder not restarted: {got:?}"
    );
    assert_eq!(m.writes, 0, "it wrote before refusing");
    for (img, want) in [(&a, Some(&want_a)), (&corrupt, None), (&b, Some(&want_b))] {
        d.restart(SLOT);
        let mut m = mem(img);
        let limits = Limits {
            stream_len: img.len() as u32,
            base_max: 0,
            output_max: STAGING,
        };
        let mut r = Rebuild::new(&mut *d, limits);
        let got = run(&mut r, &mut m).map(|o| m.out[..o.output_len as usize].to_vec());
        match want {
            Some(w) => assert!(got.unwrap() == *w),
            None => assert!(got.is_err()),
        }
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_power_cut_during_the_rebuild_costs_a_retry() {
    let dir = tmpdir("rebuild-cut");
    let plain = code_like(70_000, 14);
    let img = imgtool_sign(&plain, "lzma2armthumb", &dir);
    let good = rebuild(&mut mem(&img)).unwrap();
    for cut in [0, 1, 17, 150, 250] {
        let mut m = mem(&img);
        m.cut_at = Some(cut);
        assert_eq!(rebuild(&mut m), Err(RunError::Storage(Cut)));
        // Power back: the next attempt starts again from the stream's first byte.
        m.cut_at = None;
        m.writes = 0;
        assert!(
            rebuild(&mut m).unwrap() == good,
            "retry after a cut at write {cut}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

/// The rebuild on the flash models (MX25R6435F + nRF52840 QSPI with the real driver): the
/// stream in the received-stream area, the output in the staging slot. Power cuts inside erases
/// and programs (torn operations) at many points: the next attempt, after a power cycle, starts
/// from the stream's first byte and ends with the same image.
#[test]
fn on_the_flash_models_power_cuts_during_the_rebuild_cost_a_retry() {
    use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
    use hw_models::SimBoard;

    const STREAM_AREA: u32 = 0x30_0000;
    const STAGING_BASE: u32 = 0x10_0000;

    struct Board<'a>(&'a mut SimBoard);
    impl Storage for Board<'_> {
        type Error = ();
        fn read(&mut self, area: Area, offset: u32, buf: &mut [u8]) -> Result<(), ()> {
            let base = match area {
                Area::Stream => STREAM_AREA,
                Area::Output => STAGING_BASE,
                Area::Base => return Err(()),
            };
            self.0.qspi.read(base + offset, buf).map_err(|_| ())
        }
        fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), ()> {
            let at = STAGING_BASE + offset;
            if offset.is_multiple_of(4096) {
                self.0.qspi.erase(at, at + 4096).map_err(|_| ())?;
            }
            self.0.qspi.write(at, data).map_err(|_| ())
        }
    }
    fn attempt(board: &mut SimBoard, len: u32) -> Result<Vec<u8>, RunError<()>> {
        let limits = Limits {
            stream_len: len,
            base_max: 0,
            output_max: STAGING,
        };
        let mut r = Rebuild::new(CompressedImage::new(SLOT), limits);
        let out = run(&mut r, &mut Board(board))?;
        let mut image = vec![0; out.output_len as usize];
        board
            .qspi
            .read(STAGING_BASE, &mut image)
            .map_err(|_| RunError::Storage(()))?;
        Ok(image)
    }

    let dir = tmpdir("rebuild-models");
    let mut plain = code_like(40_000, 15);
    plain.resize(60_000, 0xff);
    let img = imgtool_sign(&plain, "lzma2armthumb", &dir);
    let want = rebuild(&mut mem(&img)).unwrap();
    let mut board = SimBoard::new(3);
    board
        .qspi
        .erase(STREAM_AREA, STREAM_AREA + 0x1_0000)
        .unwrap();
    board.qspi.write(STREAM_AREA, &img).unwrap();
    assert!(attempt(&mut board, img.len() as u32).unwrap() == want);
    // 60 KB of output: 15 sector erases and 236 page programs; cut inside several of them.
    for n in [1, 2, 5, 16, 17, 90, 200, 250] {
        board.power.cut_inside(n);
        assert_eq!(
            attempt(&mut board, img.len() as u32),
            Err(RunError::Storage(())),
            "cut {n}"
        );
        board.power_cycle().unwrap();
        let got = attempt(&mut board, img.len() as u32).unwrap();
        assert!(got == want, "after a cut inside operation {n}");
    }
    std::fs::remove_dir_all(dir).ok();
}
