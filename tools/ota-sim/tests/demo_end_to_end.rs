//! The whole update on the simulated board, end to end, at 0 %, 10 % and 30 % loss.
use ota_sim::system::{run_demo, DemoParams};
use ota_sim::transfer::LinkParams;

fn params(loss: f64, seed: u64) -> DemoParams {
    DemoParams {
        link: LinkParams {
            loss,
            dup: 0.02,
            reorder: 0.02,
            ..LinkParams::default()
        },
        seed,
        ..DemoParams::default()
    }
}

#[test]
fn lossless_update_confirms_v2_within_ninety_percent_of_the_bearer_limit() {
    let mut p = params(0.0, 1);
    p.link.dup = 0.0;
    p.link.reorder = 0.0;
    let r = run_demo(&p, &mut |_| {}).unwrap();
    assert_eq!(r.installed_version, "1.0.0+0");
    assert_eq!(r.final_version, "2.0.0+0");
    assert!(r.confirmed && r.staged_image_verified);
    assert_eq!(r.power_cuts, 0);
    assert_eq!(r.retransmissions, 0);
    assert_eq!(r.bearer_limit_bytes_per_s, 1080.0);
    let fraction = r.goodput_bytes_per_s / r.bearer_limit_bytes_per_s;
    assert!(
        fraction >= 0.90,
        "goodput {:.1} B/s is {:.1} % of the limit",
        r.goodput_bytes_per_s,
        fraction * 100.0
    );
    // The install includes the revert copy and stays near the NVMC limit.
    assert!(
        r.install_simulated_s > 0.5 * r.nvmc_limit_s
            && r.install_simulated_s < 1.2 * r.nvmc_limit_s
    );
}

#[test]
fn ten_and_thirty_percent_loss_still_stage_verify_and_confirm_v2() {
    let mut previous_goodput = f64::MAX;
    for (loss, seed) in [(0.1, 2), (0.3, 3)] {
        let r = run_demo(&params(loss, seed), &mut |_| {}).unwrap();
        assert_eq!(r.final_version, "2.0.0+0", "loss {loss}");
        assert!(r.confirmed && r.staged_image_verified, "loss {loss}");
        assert!(r.retransmissions > 0);
        assert!(r.goodput_bytes_per_s < previous_goodput);
        // Loss costs retransmissions, not a collapse: above 80 % of the loss-free share.
        let ideal = (1.0 - loss) * r.bearer_limit_bytes_per_s;
        assert!(
            r.goodput_bytes_per_s > 0.8 * ideal,
            "loss {loss}: {:.1} B/s",
            r.goodput_bytes_per_s
        );
        previous_goodput = r.goodput_bytes_per_s;
    }
}
