//! `tock-ota demo --base`: the board runs v1 (installed by an earlier update), v2 travels as a
//! delta patch, the kernel rebuilds it into the staging slot, and the bootloader installs and
//! the app confirms it as for a full image; a power cut during the rebuild costs a retry.
use ota_sim::image::kernel_payload;
use ota_sim::system::{run_demo, Cut, DemoParams, Phase};

fn params() -> DemoParams {
    let v1 = kernel_payload(48 * 1024, 7);
    let mut v2 = v1.clone();
    v2[1000] ^= 0xFF;
    v2.splice(30_000..30_000, *b"a new string in the kernel");
    DemoParams {
        payload: Some(v2),
        base: Some(v1),
        seed: 7,
        ..DemoParams::default()
    }
}

#[test]
fn a_delta_update_is_rebuilt_installed_and_confirmed() {
    let r = run_demo(&params(), &mut |_| {}).unwrap();
    assert_eq!(r.sent, "delta");
    assert_eq!(r.delta_refused, None);
    assert!(r.confirmed, "{}", r.bootloader_outcome);
    assert_eq!(r.final_version, "2.0.0+0");
    assert_eq!(r.installed_version, "1.0.0+0");
    // A patch of a few hundred bytes instead of the 49 KiB image.
    assert!(
        r.bytes_on_air_image * 20 < r.image_bytes,
        "{} B",
        r.bytes_on_air_image
    );
    assert!(r.rebuild_simulated_s > 0.0 && r.rebuild_simulated_s < r.transfer_simulated_s);
}

#[test]
fn a_power_cut_during_the_rebuild_costs_a_retry() {
    let clean = run_demo(&params(), &mut |_| {}).unwrap();
    // The rebuild's page programs are the last operations of the transfer phase.
    for back in [150, 60, 10] {
        let mut p = params();
        p.cuts = vec![Cut {
            phase: Phase::Transfer,
            after_ops: clean.transfer_flash_ops - back,
            torn: back == 60,
        }];
        let r = run_demo(&p, &mut |_| {}).unwrap();
        assert_eq!(
            r.receiver_reboots, 1,
            "cut {back} operations before the end"
        );
        assert!(r.confirmed && r.final_version == "2.0.0+0");
        assert_eq!(r.sent, "delta");
    }
}

#[test]
fn a_compressed_update_is_decoded_installed_and_confirmed() {
    use ota_image::compressed::Compression;
    // Code-like bytes compress; the generated kernel's random bytes would not.
    let payload: Vec<u8> = (0..40 * 1024u32)
        .map(|i| [0x00, 0xBF, 0x70, 0x47, (i / 64) as u8][(i % 5) as usize])
        .collect();
    let p = DemoParams {
        payload: Some(payload),
        compression: Some(Compression::Lzma2ArmThumb),
        seed: 8,
        ..DemoParams::default()
    };
    let r = run_demo(&p, &mut |_| {}).unwrap();
    assert_eq!(r.sent, "compressed");
    assert!(r.confirmed, "{}", r.bootloader_outcome);
    assert_eq!(r.final_version, "2.0.0+0");
    assert!(
        r.bytes_on_air_image * 4 < r.image_bytes,
        "{} B",
        r.bytes_on_air_image
    );
    assert!(r.rebuild_simulated_s > 0.0);
    // Both at once is refused.
    let both = DemoParams {
        base: Some(vec![0; 1024]),
        ..p
    };
    let e = run_demo(&both, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("pick one"), "{e}");
}
