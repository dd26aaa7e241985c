//! `tock-ota demo --app`: a TAB made by elf2tab (CI installs it, `.ci/setup`) from a small
//! ARM ELF, signed with the development app key the DK trusts, is sent as an app session,
//! installed and confirmed on the simulated DK; an unsigned TAB and a lower version are refused
//! with a reason while the old version keeps running; power cuts in each app phase recover.
use std::path::{Path, PathBuf};
use std::process::Command;

use app_sim::tab::arm_elf;
use ota_sim::demo_app::{run_app_demo, AppDemoParams};
use ota_sim::system::{Cut, Phase};
use ota_sim::transfer::LinkParams;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ota-sim-demo-app-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A TAB of "blink" at `version` for cortex-m4, signed with the development app key unless
/// `signed` is false.
fn tab(name: &str, version: u32, signed: bool) -> Vec<u8> {
    let dir = scratch(&format!("{name}-{version}-{signed}"));
    let elf = dir.join("blink.elf");
    let code: Vec<u8> = (0..1500u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&elf, arm_elf(&code)).unwrap();
    let out = dir.join("blink.tab");
    let key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../apps/dfu/dev-keys/app-dev-key.pk8");
    let mut cmd = Command::new("elf2tab");
    cmd.args(["--kernel-major", "2", "--kernel-minor", "0", "-n", "blink"])
        .args(["--app-version", &version.to_string()])
        .args(["--minimum-footer-size", "256", "-o"])
        .arg(&out);
    if signed {
        cmd.arg("--ecdsa-nist-p256-private").arg(&key);
    }
    cmd.arg(format!("{},cortex-m4", elf.display()));
    let status = cmd.output().expect("elf2tab runs (.ci/setup installs it)");
    assert!(
        status.status.success(),
        "elf2tab: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    bytes
}

fn params(tab: Vec<u8>, installed_version: u32, cuts: Vec<Cut>) -> AppDemoParams {
    AppDemoParams {
        link: LinkParams {
            loss: 0.1,
            dup: 0.02,
            reorder: 0.02,
            ..LinkParams::default()
        },
        tab,
        installed_version,
        seed: 3,
        cuts,
        install_busy_s: 0.0,
    }
}

#[test]
fn a_signed_tab_is_sent_installed_and_confirmed() {
    let r = run_app_demo(&params(tab("blink", 2, true), 1, vec![])).unwrap();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["kind"], "app");
    assert_eq!(json["app"], "blink");
    assert_eq!(json["tbf_file"], "cortex-m4.tbf");
    assert_eq!(json["installed_version"], 1);
    assert_eq!(json["final_version"], 2);
    assert_eq!(json["confirmed"], true);
    assert_eq!(json["refused"], serde_json::Value::Null);
    assert!(r.signed);
    // elf2tab pads the TBF to a power of two: 2 KiB here, about 2 s on air at 10 % loss.
    assert_eq!(r.tbf_bytes, 2048);
    assert!(
        r.transfer_simulated_s > 1.0 && r.transfer_simulated_s < 20.0,
        "{}",
        r.transfer_simulated_s
    );
    assert!(r.install_flash_ops > 0);
    // The DFU app's own code received it and asked the app-update driver to install it.
    let log = r.dfu_log.join("\n");
    assert!(log.contains("dfu: app installed"), "{log}");
    assert!(!log.contains("rebooting"), "{log}");
}

#[test]
fn an_unsigned_tab_and_a_lower_version_are_refused_and_the_old_app_keeps_running() {
    let r = run_app_demo(&params(tab("blink", 2, false), 1, vec![])).unwrap();
    let why = r.refused.clone().expect("refused");
    assert!(why.contains("unsigned"), "{why}");
    assert!(r.dfu_log.iter().any(|l| l.contains("app install failed")));
    assert!(!r.signed);
    assert_eq!((r.final_version, r.confirmed), (1, false));

    let signed = tab("blink", 2, true);
    for installed in [2, 3] {
        let r = run_app_demo(&params(signed.clone(), installed, vec![])).unwrap();
        let why = r.refused.clone().expect("refused");
        assert!(why.contains("not newer"), "{why}");
        assert_eq!((r.final_version, r.confirmed), (installed, false));
    }
}

#[test]
fn power_cuts_in_each_app_phase_end_with_the_new_version_confirmed() {
    let tab = tab("blink", 5, true);
    let cut = |phase, after_ops, torn| Cut {
        phase,
        after_ops,
        torn,
    };
    for cuts in [
        vec![cut(Phase::Transfer, 3, false)],
        vec![cut(Phase::Install, 10, true)],
        vec![cut(Phase::Install, 40, false)],
        vec![cut(Phase::Confirm, 1, true)],
        vec![cut(Phase::Transfer, 1, true), cut(Phase::Install, 25, true)],
    ] {
        let r = run_app_demo(&params(tab.clone(), 4, cuts.clone())).unwrap();
        assert_eq!((r.final_version, r.confirmed), (5, true), "{cuts:?}");
        assert!(r.power_cuts >= 1, "the cut {cuts:?} never fired");
    }
    // Every 193rd operation of the install and every 3rd of the first 30 of the confirm,
    // before and torn (the every-operation campaign over an app update is app-sim's
    // `power_cuts` test; this one checks the demo's recovery paths).
    let clean = run_app_demo(&params(tab.clone(), 4, vec![])).unwrap();
    assert!(
        clean.install_flash_ops > 1000,
        "{}",
        clean.install_flash_ops
    );
    let mut runs = 0;
    for (phase, ops, step) in [
        (Phase::Install, clean.install_flash_ops, 193),
        (Phase::Confirm, 30, 3),
    ] {
        for after_ops in (0..ops).step_by(step) {
            for torn in [false, true] {
                let cuts = vec![cut(phase, after_ops, torn)];
                let r = run_app_demo(&params(tab.clone(), 4, cuts.clone())).unwrap();
                assert_eq!((r.final_version, r.confirmed), (5, true), "{cuts:?}");
                runs += usize::from(r.power_cuts > 0);
            }
        }
    }
    assert!(runs > 40, "only {runs} runs were cut");
}

/// The kernel answers `INSTALL` with `BUSY` for its first 3 s: the DFU app tries again after
/// 0.5, 1 and 2 s (doubling delays), not with every batch (about 30 a second), and the update
/// ends installed and confirmed.
#[test]
fn a_busy_install_is_tried_again_with_growing_delays() {
    let mut p = params(tab("busy", 2, true), 1, Vec::new());
    p.link = LinkParams::default();
    p.install_busy_s = 3.0;
    let r = run_app_demo(&p).expect("app demo");
    assert!(r.confirmed, "{:?}", r.refused);
    assert_eq!(r.final_version, 2);
    // Tries at 0, 0.5, 1.5 and 3.5 s: three BUSY answers, then the install.
    assert_eq!(r.install_busy_answers, 3, "{:#?}", r.dfu_log);
    let retries: Vec<&String> = r
        .dfu_log
        .iter()
        .filter(|l| l.contains("trying again in"))
        .collect();
    assert_eq!(retries.len(), 3, "{retries:#?}");
    for (line, ms) in retries.iter().zip(["500 ms", "1000 ms", "2000 ms"]) {
        assert!(line.ends_with(ms), "{line}");
    }
}
