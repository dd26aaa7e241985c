//! Faults on the simulated board: receiver reboots mid-transfer, power cuts in install and
//! confirm, hostile advertisements, and a caller that is not the DFU app.
use embedded_storage::nor_flash::ReadNorFlash;
use hw_models::SimBoard;
use ota_sim::system::{run_demo, Cut, DemoParams, Phase, DFU_APP_ID};
use ota_sim::transfer::LinkParams;
use update_region::blocking::{BlockingDriver, BlockingError};
use update_region::{Config, Error, Request, SessionState, UpdateRegion};

fn small(seed: u64) -> DemoParams {
    DemoParams {
        payload_len: 40 * 1024,
        seed,
        ..DemoParams::default()
    }
}

#[test]
fn a_receiver_rebooted_mid_transfer_resumes_without_starting_over() {
    let baseline = run_demo(&small(4), &mut |_| {}).unwrap();
    for cuts in [
        vec!["transfer:3"],
        vec!["transfer:40", "transfer:900:torn"],
        vec!["transfer:1200:torn"],
    ] {
        let mut p = small(4);
        p.cuts = cuts.iter().map(|c| c.parse::<Cut>().unwrap()).collect();
        let r = run_demo(&p, &mut |_| {}).unwrap();
        assert_eq!(r.receiver_reboots as usize, cuts.len(), "{cuts:?}");
        assert!(r.confirmed, "{cuts:?}");
        assert_eq!(r.final_version, "2.0.0+0");
        // Resumed, not restarted: far less than a second full pass of the image.
        assert!(
            r.advertising_events < baseline.advertising_events * 13 / 10,
            "{cuts:?}: {} events vs {}",
            r.advertising_events,
            baseline.advertising_events
        );
    }
}

#[test]
fn cuts_around_finalize_never_lose_the_boot_request() {
    let baseline = run_demo(&small(8), &mut |_| {}).unwrap();
    let end = baseline.transfer_flash_ops;
    // The last operations of the transfer: the block checks' neighbours, the boot request
    // record and the finalized mark, cut before and inside each.
    for n in end.saturating_sub(6)..end {
        for torn in [false, true] {
            let mut p = small(8);
            p.cuts = vec![Cut {
                phase: Phase::Transfer,
                after_ops: n,
                torn,
            }];
            let r = run_demo(&p, &mut |_| {}).unwrap();
            assert_eq!(r.receiver_reboots, 1, "cut {n} torn {torn}");
            assert!(r.confirmed, "cut {n} torn {torn}");
            assert_eq!(r.final_version, "2.0.0+0");
        }
    }
}

#[test]
fn power_cuts_in_install_and_confirm_still_end_with_v2_confirmed() {
    for cut in [
        "install:0",
        "install:7",
        "install:25:torn",
        "install:60",
        "confirm:0",
        "confirm:1:torn",
        "confirm:2",
    ] {
        let mut p = small(5);
        p.cuts = vec![cut.parse().unwrap()];
        let r = run_demo(&p, &mut |_| {}).unwrap();
        assert!(r.confirmed, "{cut}");
        assert_eq!(r.final_version, "2.0.0+0", "{cut}");
        assert!(r.power_cuts >= 1, "{cut}: the cut never happened");
    }
}

#[test]
fn hostile_and_malformed_advertisements_never_corrupt_the_staged_image() {
    let mut p = small(6);
    p.link = LinkParams {
        hostile: 0.05,
        loss: 0.05,
        ..LinkParams::default()
    };
    let r = run_demo(&p, &mut |_| {}).unwrap();
    assert!(r.hostile_advertisements > 50);
    assert!(r.ignored_advertisements > 0);
    // The run checks that the staged bytes equal the image sent before it reboots.
    assert!(r.confirmed && r.staged_image_verified);
    assert_eq!(r.final_version, "2.0.0+0");
}

#[test]
fn bad_cut_specifications_are_refused_with_a_reason() {
    assert!("install"
        .parse::<Cut>()
        .unwrap_err()
        .to_string()
        .contains("PHASE:N"));
    assert!("boot:3"
        .parse::<Cut>()
        .unwrap_err()
        .to_string()
        .contains("unknown phase"));
    assert!("transfer:x".parse::<Cut>().is_err());
    assert!("transfer:3:soft".parse::<Cut>().is_err());
}

#[test]
fn a_caller_other_than_the_dfu_app_cannot_touch_the_staging_slot_or_the_request_sector() {
    let mut board = SimBoard::new(9);
    let layout = boot_nrf::NRF52840_DK;
    let config = Config {
        owner: DFU_APP_ID,
        staging_base: layout.staging.start,
        staging_len: layout.staging.len,
        request_base: layout.request_sector.start,
    };
    let mut policy = UpdateRegion::new(config).unwrap();
    let mut d = BlockingDriver::new(&mut policy, &mut board.qspi);
    d.start().unwrap();
    // The DFU app stages something.
    d.run(
        DFU_APP_ID,
        Request::Begin {
            tag: [1; 16],
            image_len: 8192,
        },
        &[],
        &mut [],
    )
    .unwrap();
    d.run(DFU_APP_ID, Request::Erase { offset: 0 }, &[], &mut [])
        .unwrap();
    d.write(DFU_APP_ID, 0, &[0x42; 100]).unwrap();
    let snapshot = |b: &mut SimBoard| {
        let mut v = vec![0u8; 0x20_0000];
        b.qspi.read(0, &mut v).unwrap();
        v
    };
    let before = snapshot(&mut board);
    let mut d = BlockingDriver::new(&mut policy, &mut board.qspi);
    let stranger = DFU_APP_ID + 1;
    let mut buf = [0u8; 16];
    for (req, data) in [
        (
            Request::Begin {
                tag: [2; 16],
                image_len: 100,
            },
            &[][..],
        ),
        (Request::Erase { offset: 0 }, &[]),
        (Request::Erase { offset: 4096 }, &[]),
        (
            Request::Write {
                offset: 200,
                len: 4,
            },
            &[1, 2, 3, 4],
        ),
        (Request::Finalize, &[]),
        (Request::Abort, &[]),
        (Request::Confirm, &[]),
    ] {
        assert_eq!(
            d.run(stranger, req, data, &mut []),
            Err(BlockingError::Policy(Error::NotOwner))
        );
    }
    assert_eq!(
        d.read(stranger, 0, &mut buf),
        Err(BlockingError::Policy(Error::NotOwner))
    );
    assert_eq!(d.policy.status().state, SessionState::Staging);
    assert!(
        snapshot(&mut board) == before,
        "a refused caller changed the QSPI flash"
    );
}

#[test]
fn an_image_signed_with_an_untrusted_key_is_staged_but_never_booted() {
    let mut p = small(7);
    p.untrusted_key = true;
    let r = run_demo(&p, &mut |_| {}).unwrap();
    assert!(!r.confirmed && !r.staged_image_verified);
    assert_eq!(r.final_version, "1.0.0+0");
    assert!(
        r.bootloader_outcome.contains("KeyMismatch"),
        "{}",
        r.bootloader_outcome
    );
}
