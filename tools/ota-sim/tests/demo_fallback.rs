//! `tock-ota demo --base`: a board that refuses the patch gets the full image, with the reason.
//! Here the board was flashed with v1 rather than updated to it, so its receiver cannot tell
//! which image it runs and refuses every patch (as the Tock capsule does today,
//! `docs/delta-updates.md`); the sender then sends the signed image in a new session and the
//! update ends as a full one would.
use adv_transfer::RxState;
use ota_sim::image::kernel_payload;
use ota_sim::system::{falls_back_to_full_image, run_demo_on, BaseOrigin, DemoParams};

fn params() -> DemoParams {
    let v1 = kernel_payload(32 * 1024, 11);
    let mut v2 = v1.clone();
    v2[2000] ^= 0x5A;
    DemoParams {
        payload: Some(v2),
        base: Some(v1),
        seed: 11,
        ..DemoParams::default()
    }
}

#[test]
fn a_refused_patch_is_followed_by_the_full_image() {
    let r = run_demo_on(&params(), BaseOrigin::Flashed, &mut |_| {}).unwrap();
    assert_eq!(r.sent, "full");
    assert_eq!(r.bytes_on_air_image, r.image_bytes);
    let why = r
        .delta_refused
        .expect("the report says why the patch was not sent");
    assert!(why.contains("cannot tell which image it runs"), "{why}");
    assert!(r.confirmed, "{}", r.bootloader_outcome);
    assert_eq!(r.final_version, "2.0.0+0");
    assert_eq!(r.installed_version, "1.0.0+0");

    // The same board updated to v1 takes the patch: the refusal above was the base's origin.
    let updated = run_demo_on(&params(), BaseOrigin::Updated, &mut |_| {}).unwrap();
    assert_eq!(updated.sent, "delta");
    assert_eq!(updated.delta_refused, None);
    assert!(updated.bytes_on_air_image * 10 < updated.image_bytes);
}

#[test]
fn which_refusals_the_full_image_follows() {
    // A receiver that runs another image (or cannot tell), or one older than the capability.
    assert!(falls_back_to_full_image(RxState::WrongBase));
    assert!(falls_back_to_full_image(RxState::Unsupported));
    // Refusals the full image would meet as well.
    for state in [
        RxState::TooLarge,
        RxState::Rejected,
        RxState::VersionMismatch,
    ] {
        assert!(!falls_back_to_full_image(state), "{state:?}");
    }
}
