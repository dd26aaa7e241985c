//! The simulated board runs the DFU app's own code (`dfu-app`): its console shows the app's
//! life, from listening to the reboot request, and its resume after a power cut.
use hw_models::SimBoard;
use ota_sim::image::{kernel_payload, unsigned_image};
use ota_sim::transfer::{run_transfer, LinkParams, TransferCut, TransferJob};

fn transfer(cuts: &[TransferCut]) -> ota_sim::transfer::TransferReport {
    let image = unsigned_image(&kernel_payload(24 * 1024, 3), (2, 0, 0, 0));
    let mut board = SimBoard::new(3);
    let params = LinkParams {
        loss: 0.1,
        ..LinkParams::default()
    };
    let job = TransferJob {
        config: update_region::Config::nrf52840dk(1),
        owner: 1,
        image: &image,
        session: 0x5EED_0003,
        params: &params,
        seed: 3,
        cuts,
        update_key: None,
    };
    run_transfer(&mut board, &job, &mut |_| {}).unwrap()
}

#[test]
fn the_board_runs_the_dfu_app_from_listening_to_the_reboot_request() {
    let r = transfer(&[]);
    let log = r.app_log.join("\n");
    assert!(log.starts_with("dfu: listening"), "{log}");
    assert!(log.contains("dfu: 100% ("), "{log}");
    assert!(log.ends_with("boot request 1 written; rebooting"), "{log}");
    assert!(r.status_pdus > 0 && r.tx.retransmissions > 0);
    assert_eq!(r.receiver_reboots, 0);
}

#[test]
fn after_a_power_cut_the_app_starts_again_and_resumes_its_session() {
    // Past the app's erasing ahead (at most 2 + 2 × 58 operations) and inside the staging.
    let r = transfer(&[TransferCut {
        after_ops: 300,
        torn: false,
    }]);
    let log = r.app_log.join("\n");
    assert_eq!(r.receiver_reboots, 1);
    assert_eq!(log.matches("dfu: listening").count(), 2, "{log}");
    assert!(
        log.contains("dfu: resuming staged session (finalized: false)"),
        "{log}"
    );
    assert!(log.ends_with("rebooting"), "{log}");
}
