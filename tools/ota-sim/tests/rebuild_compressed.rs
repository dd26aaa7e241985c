//! A compressed image received into the stream area and rebuilt by the DFU app
//! (`dfu_app::rebuild::finalize_stream`) on the simulated kernel's commands: recognised by the
//! MCUboot magic, ota-lzma decodes it into the staging slot as the plain image `sign_image`
//! writes for the same payload (byte for byte: our signatures are deterministic), and the
//! staging slot's finalize accepts it; a corrupt one is refused with a reason and never
//! finalized.
use adv_transfer::StageError;
use dfu_abi::update::command;
use dfu_app::Kernel;
use embedded_storage::nor_flash::ReadNorFlash;
use hw_models::SimBoard;
use ota_image::compressed::Compression;
use ota_imgtool::compress::sign_compressed;
use ota_imgtool::sign::{sign_image, SignOptions};
use ota_sim::kernel::SimKernel;
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

/// Stages `image` as a compressed session in the stream area through the driver's commands,
/// then the app's finalize of it, the app built with `update_key`. Returns the board, the
/// result and the app's console.
fn rebuild(
    image: &[u8],
    update_key: Option<[u8; 64]>,
) -> (SimBoard, Result<u32, StageError>, Vec<String>) {
    rebuild_on(image, update_key, false)
}

/// [`rebuild`], on a kernel without the output commands when `old_kernel`.
fn rebuild_on(
    image: &[u8],
    update_key: Option<[u8; 64]>,
    old_kernel: bool,
) -> (SimBoard, Result<u32, StageError>, Vec<String>) {
    let mut board = SimBoard::new(5);
    let staging_config = Config::nrf52840dk(OWNER);
    let mut staging = UpdateRegion::new(staging_config).unwrap();
    let mut stream = UpdateRegion::new(Config::nrf52840dk_stream(OWNER)).unwrap();
    // The start-up scans a kernel runs once per boot.
    BlockingDriver::new(&mut staging, &mut board.qspi)
        .start()
        .unwrap();
    BlockingDriver::new(&mut stream, &mut board.qspi)
        .start()
        .unwrap();
    let mut no_progress = |_: &SimBoard, _| {};
    let mut k = SimKernel::new(&mut board, &mut staging, OWNER, None, &mut no_progress)
        .with_stream(&mut stream, staging_config)
        .with_update_key(update_key);
    let mut tag = [3u8; 16];
    tag[adv_transfer::wire::TAG_CAPABILITIES] = adv_transfer::wire::capability::COMPRESSED;
    let len = image.len() as u32;
    let op = |k: &mut SimKernel, c, a1, a2, data: &[u8]| {
        k.update_op(c, a1, a2, data, &mut [], 1_000).unwrap();
    };
    op(&mut k, command::BEGIN, len, 0, &tag);
    for sector in (0..len).step_by(4096) {
        op(&mut k, command::ERASE, sector, 0, &[]);
    }
    for (i, part) in image.chunks(1024).enumerate() {
        op(
            &mut k,
            command::WRITE,
            i as u32 * 1024,
            part.len() as u32,
            part,
        );
    }
    let r = if old_kernel {
        dfu_app::rebuild::finalize_stream(&mut KernelWithoutOutput(&mut k))
    } else {
        dfu_app::rebuild::finalize_stream(&mut k)
    };
    let log = std::mem::take(&mut k.record.log);
    drop(k);
    (board, r, log)
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
    // The app checks each compressed image's signature against the key before decoding.
    for c in [Compression::Lzma2ArmThumb, Compression::Lzma2] {
        let out = sign_compressed(&payload, &opts, &key, c).unwrap();
        assert!(
            out.compressed_len.is_some(),
            "{c:?}: the test image must compress"
        );
        let (mut board, r, log) = rebuild(&out.image, Some(raw_key(&key)));
        r.unwrap_or_else(|e| panic!("{c:?}: {e:?} {log:?}"));
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
    let image = lzma2armthumb(&key);
    let mut bad = image.clone();
    bad[0x200 + 1000] ^= 0x08;
    let (board, r, log) = rebuild(&bad, None);
    assert_eq!(r, Err(StageError::Rejected), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("dfu: received stream refused: ")),
        "{log:?}"
    );
    // No boot request: the staging slot's session was never finalized.
    let mut staging = UpdateRegion::new(Config::nrf52840dk(OWNER)).unwrap();
    let mut board = board;
    BlockingDriver::new(&mut staging, &mut board.qspi)
        .start()
        .unwrap();
    assert_ne!(
        staging.status().state,
        update_region::SessionState::Finalized
    );
}

/// The test payload as an `lzma2armthumb` compressed image signed with `key`.
fn lzma2armthumb(key: &SigningKey) -> Vec<u8> {
    sign_compressed(
        &payload(),
        &SignOptions::default(),
        key,
        Compression::Lzma2ArmThumb,
    )
    .unwrap()
    .image
}

/// `key`'s public half as the bootloader and the DFU app embed it (`x ‖ y`).
fn raw_key(key: &SigningKey) -> [u8; 64] {
    ota_imgtool::keys::raw_public_key(key.verifying_key())
}

/// The staging slot's policy as a fresh boot scans it.
fn staging_state(board: &mut SimBoard) -> update_region::SessionState {
    let mut staging = UpdateRegion::new(Config::nrf52840dk(OWNER)).unwrap();
    BlockingDriver::new(&mut staging, &mut board.qspi)
        .start()
        .unwrap();
    staging.status().state
}

#[test]
fn a_compressed_image_signed_with_another_key_is_refused_before_the_staging_slot_is_touched() {
    let key = SigningKey::from_slice(&[9; 32]).unwrap();
    let other = SigningKey::from_slice(&[10; 32]).unwrap();
    let image = lzma2armthumb(&other);
    let (mut board, r, log) = rebuild(&image, Some(raw_key(&key)));
    assert_eq!(r, Err(StageError::Rejected), "{log:?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("dfu: received image refused: ")),
        "{log:?}"
    );
    // Checked as received: no session was begun in the staging slot, nothing erased there.
    assert_eq!(staging_state(&mut board), update_region::SessionState::Idle);
    // The same image with its own key is accepted.
    let (_, r, log) = rebuild(&image, Some(raw_key(&other)));
    assert!(r.is_ok(), "{log:?}");
}

/// A kernel from before the DFU app decoded: it knows no output command (`NOSUPPORT`, as a
/// Tock driver answers an unknown command); everything else is `inner`'s.
struct KernelWithoutOutput<'a, 'k, 'r>(&'a mut SimKernel<'k, 'r>);

impl Kernel for KernelWithoutOutput<'_, '_, '_> {
    fn exists(&mut self, driver: u32) -> bool {
        self.0.exists(driver)
    }
    fn update_status(&mut self) -> Result<(u32, u32, u32), u32> {
        self.0.update_status()
    }
    fn update_tag(&mut self, tag: &mut [u8; 16]) -> Result<(), u32> {
        self.0.update_tag(tag)
    }
    fn update_op(
        &mut self,
        command: u32,
        arg1: u32,
        arg2: u32,
        data: &[u8],
        out: &mut [u8],
        timeout_ms: u32,
    ) -> Result<u32, dfu_app::OpError> {
        if (command::OUTPUT_BEGIN..=command::BASE_READ).contains(&command) {
            return Err(dfu_app::OpError::Refused(dfu_abi::error::NOSUPPORT));
        }
        self.0.update_op(command, arg1, arg2, data, out, timeout_ms)
    }
    fn reboot(&mut self) -> Result<(), u32> {
        self.0.reboot()
    }
    fn scan_wait(
        &mut self,
        command: u32,
        buffer: &mut [u8],
        timeout_ms: u32,
    ) -> Result<Option<dfu_app::Batch>, u32> {
        self.0.scan_wait(command, buffer, timeout_ms)
    }
    fn scan_stop(&mut self) -> Result<(), u32> {
        self.0.scan_stop()
    }
    fn advertise(&mut self, adv_data: &[u8]) -> Result<(), u32> {
        self.0.advertise(adv_data)
    }
    fn ticks(&mut self) -> u32 {
        self.0.ticks()
    }
    fn ticks_per_second(&mut self) -> u32 {
        self.0.ticks_per_second()
    }
    fn sleep(&mut self, ms: u32) {
        self.0.sleep(ms)
    }
    fn log(&mut self, line: std::fmt::Arguments<'_>) {
        self.0.log(line)
    }
}

#[test]
fn a_kernel_without_the_output_commands_rejects_the_stream_instead_of_retrying_forever() {
    // Across the change that moved decoding into the app, a new app may run on an old kernel.
    let key = SigningKey::from_slice(&[9; 32]).unwrap();
    let image = lzma2armthumb(&key);
    let (board, r, log) = rebuild_on(&image, None, true);
    assert_eq!(r, Err(StageError::Rejected), "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("send the full image")),
        "{log:?}"
    );
    let mut board = board;
    assert_eq!(staging_state(&mut board), update_region::SessionState::Idle);
}
