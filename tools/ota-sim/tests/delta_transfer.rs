//! Delta updates on the simulated board: the DFU app receives a patch into the received-stream
//! area and the kernel rebuilds the new image into the staging slot at finalize. A patch for
//! another kernel is refused before anything is staged; a corrupt or truncated one is refused
//! at finalize without a boot request; a power cut during the rebuild costs a retry.
use boot_core::{provision, Journal, JournalRecord, State};
use boot_nrf::NRF52840_DK;
use embedded_storage::nor_flash::ReadNorFlash;
use hw_models::SimBoard;
use ota_reconstruct::diff::{make_image_patch, SignedImage};
use ota_sim::image::{kernel_payload, unsigned_image};
use ota_sim::transfer::{
    run_delta_transfer, LinkParams, Refused, TransferCut, TransferJob, TransferReport,
};
use update_region::blocking::BlockingDriver;
use update_region::{Completion, Config, UpdateRegion};

const OWNER: u32 = 1;

/// v1 (installed and confirmed) and v2: v1's payload with a few bytes changed and some inserted.
fn images(seed: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let v1_payload = kernel_payload(96 * 1024, seed);
    let mut v2_payload = v1_payload.clone();
    for at in [100, 5_000, 40_000, 70_000] {
        v2_payload[at] ^= 0x5A;
    }
    v2_payload.splice(20_000..20_000, [0xA5u8; 40]);
    let v1 = unsigned_image(&v1_payload, (1, 0, 0, 0));
    let v2 = unsigned_image(&v2_payload, (2, 0, 0, 0));
    (v1_payload, v1, v2)
}

/// A board running `image` (payload `payload` in the kernel slot), which the bootloader's journal
/// names as confirmed, as after an earlier update.
fn device_running(payload: &[u8], image: &[u8]) -> SimBoard {
    let mut board = SimBoard::new(5);
    provision(&NRF52840_DK, &mut board.internal, payload).unwrap();
    let mut journal = Journal::scan(&mut board.qspi, NRF52840_DK.journal).unwrap();
    let record = JournalRecord {
        state: State::Confirmed,
        image_hash: SignedImage::parse(image, "v1").unwrap().hash,
        payload_len: payload.len() as u32,
        ..JournalRecord::EMPTY
    };
    journal.append(&mut board.qspi, record).unwrap().unwrap();
    board
}

fn send(
    board: &mut SimBoard,
    patch: &[u8],
    base: [u8; 16],
    cuts: &[TransferCut],
) -> anyhow::Result<TransferReport> {
    let params = LinkParams::default();
    let job = TransferJob {
        config: Config::nrf52840dk(OWNER),
        owner: OWNER,
        image: patch,
        session: 0x0DE1_7A00,
        params: &params,
        seed: 5,
        cuts,
        update_key: None,
    };
    run_delta_transfer(board, &job, Some(base), &mut |_| {})
}

fn staged(board: &mut SimBoard, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    board
        .qspi
        .read(NRF52840_DK.staging.start, &mut bytes)
        .unwrap();
    bytes
}

/// The newest control record, if any (a boot request the bootloader would act on).
fn newest_record(board: &mut SimBoard) -> Option<control_area::Record> {
    let mut policy = UpdateRegion::new(Config::nrf52840dk(OWNER)).unwrap();
    let status = BlockingDriver::new(&mut policy, &mut board.qspi)
        .start()
        .unwrap();
    status.newest_record
}

fn refusal(result: anyhow::Result<TransferReport>) -> Refused {
    let e = result.expect_err("the transfer must be refused");
    *e.downcast_ref::<Refused>()
        .unwrap_or_else(|| panic!("not a refusal: {e:#}"))
}

#[test]
fn a_patch_against_the_running_kernel_is_rebuilt_into_the_staging_slot_and_requested() {
    let (v1_payload, v1, v2) = images(1);
    let patch = make_image_patch(&v1, &v2).unwrap();
    let id = SignedImage::parse(&v1, "v1").unwrap().id();
    let mut board = device_running(&v1_payload, &v1);
    let r = send(&mut board, &patch, id, &[]).unwrap();
    assert_eq!(r.image_bytes, patch.len());
    assert!(patch.len() * 50 < v2.len(), "patch {} B", patch.len());
    let v2_hash = SignedImage::parse(&v2, "v2").unwrap().hash;
    match r.finalized {
        Some(Completion::Finalized {
            image_len,
            image_hash,
            ..
        }) => assert_eq!((image_len, image_hash), (v2.len() as u32, v2_hash)),
        other => panic!("no boot request: {other:?}"),
    }
    assert_eq!(staged(&mut board, v2.len()), v2);
    assert_eq!(newest_record(&mut board).unwrap().image_hash, v2_hash);
}

#[test]
fn a_patch_for_another_kernel_is_refused_before_anything_is_staged() {
    let (v1_payload, v1, v2) = images(2);
    let patch = make_image_patch(&v1, &v2).unwrap();
    let id = SignedImage::parse(&v1, "v1").unwrap().id();
    // The device runs another build.
    let (other_payload, other, _) = images(3);
    let mut board = device_running(&other_payload, &other);
    let refused = refusal(send(&mut board, &patch, id, &[]));
    let other_id = SignedImage::parse(&other, "other").unwrap().id();
    assert_eq!(refused.state, adv_transfer::RxState::WrongBase);
    assert_eq!(refused.running, Some(other_id));
    assert_eq!(newest_record(&mut board), None);
    // A device whose journal names nothing (never updated) cannot tell: refused too.
    let mut board = SimBoard::new(5);
    provision(&NRF52840_DK, &mut board.internal, &v1_payload).unwrap();
    let refused = refusal(send(&mut board, &patch, id, &[]));
    assert_eq!(
        (refused.state, refused.running),
        (adv_transfer::RxState::WrongBase, None)
    );
}

#[test]
fn a_corrupt_or_truncated_patch_is_refused_at_finalize_without_a_boot_request() {
    let (v1_payload, v1, v2) = images(4);
    let patch = make_image_patch(&v1, &v2).unwrap();
    let id = SignedImage::parse(&v1, "v1").unwrap().id();
    let mut corrupt = patch.clone();
    let last_insert_byte = corrupt.len() - 2;
    corrupt[last_insert_byte] ^= 0xFF;
    let truncated = &patch[..patch.len() - 1];
    for bad in [&corrupt[..], truncated] {
        let mut board = device_running(&v1_payload, &v1);
        let refused = refusal(send(&mut board, bad, id, &[]));
        assert_eq!(refused.state, adv_transfer::RxState::Rejected);
        assert_eq!(newest_record(&mut board), None, "no boot request");
    }
    // The kernel's base check: the journal names v1 but the kernel slot holds other bytes.
    let mut board = device_running(&kernel_payload(96 * 1024, 9), &v1);
    let refused = refusal(send(&mut board, &patch, id, &[]));
    assert_eq!(refused.state, adv_transfer::RxState::Rejected);
    assert_eq!(newest_record(&mut board), None);
}

#[test]
fn a_power_cut_during_the_rebuild_costs_a_retry() {
    let (v1_payload, v1, v2) = images(6);
    let patch = make_image_patch(&v1, &v2).unwrap();
    let id = SignedImage::parse(&v1, "v1").unwrap().id();
    let clean = send(&mut device_running(&v1_payload, &v1), &patch, id, &[]).unwrap();
    // The rebuild programs the whole image page by page: its operations are the last few
    // hundred of the run (the patch itself needs a few dozen).
    let rebuild_ops = (v2.len() / 256) as u64;
    assert!(clean.flash_ops > rebuild_ops);
    for back in [rebuild_ops - 5, rebuild_ops / 2, 3] {
        for torn in [false, true] {
            let cut = TransferCut {
                after_ops: clean.flash_ops - back,
                torn,
            };
            let mut board = device_running(&v1_payload, &v1);
            let r = send(&mut board, &patch, id, &[cut]).unwrap();
            assert_eq!(r.receiver_reboots, 1, "cut {back} ops before the end");
            assert!(matches!(r.finalized, Some(Completion::Finalized { .. })));
            assert_eq!(
                staged(&mut board, v2.len()),
                v2,
                "cut {back} before the end"
            );
        }
    }
}
