//! App sessions over standard HCI, end to end through controllers we did not write:
//! `tock-ota send --app` of a TAB elf2tab made and signed with the development app key, to
//! `tock-ota receive` (the DFU app's receiving side with the app-update driver's checks), over
//! two of Bumble's emulated controllers on one simulated link (H:4 over TCP), as
//! `hci_transfer.rs` runs kernel images. Bumble comes from the project's venv and elf2tab from
//! `.ci/setup`; without them these tests fail and say so. Each transfer is a 2 KiB TBF: a few
//! seconds.
use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use app_sim::tab::tar_files;

mod support;
use support::bumble::{bumble, Bumble};
use support::{app_tab, json, repo, send_to_receive};

/// The TAB's `cortex-m4.tbf`, read from the tar directly (not through the sender's code).
fn cortex_m4_tbf(tab: &Path) -> Vec<u8> {
    let files = tar_files(&std::fs::read(tab).unwrap()).unwrap();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    files
        .iter()
        .find(|(name, _)| name == "cortex-m4.tbf")
        .unwrap_or_else(|| panic!("no cortex-m4.tbf in the TAB: {names:?}"))
        .1
        .clone()
}

/// `receive` (with `receive_args`) in the background, `send --app tab` in the foreground;
/// returns (send, receive).
fn app_transfer(b: &Bumble, tab: &Path, got: &Path, receive_args: &[&str]) -> (Output, Output) {
    send_to_receive(
        b,
        &format!("tcp:127.0.0.1:{}", b.ports[0]),
        &[OsStr::new("--app"), tab.as_os_str()],
        got,
        receive_args,
        Duration::from_secs(60),
    )
}

#[test]
fn a_signed_app_goes_through_bumble_and_passes_the_install_checks() {
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let tab = app_tab(dir.path(), 3, true);
    let got = dir.path().join("got.tbf");
    let key = repo("apps/dfu/dev-keys/app-dev-pub.pem");
    let key = key.to_str().unwrap();
    let (tx, rx) = app_transfer(
        &b,
        &tab,
        &got,
        &["--app-key", key, "--installed-version", "2"],
    );
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(tx.status.success(), "send: {}", stderr(&tx));
    assert!(rx.status.success(), "receive: {}", stderr(&rx));
    let r = json(&rx);
    assert_eq!(
        (&r["kind"], &r["app"], &r["version"], &r["verdict"]),
        (
            &"app".into(),
            &"sensor".into(),
            &3.into(),
            &"installable".into()
        ),
        "{r}"
    );
    assert_eq!(r["credential_checked"], true, "{r}");
    assert_eq!(r["installed_version"], 2, "{r}");
    let s = json(&tx);
    assert_eq!((&s["kind"], &s["app"]), (&"app".into(), &"sensor".into()));
    assert_eq!(s["receiver_complete"], true, "{s}");
    let tbf = cortex_m4_tbf(&tab);
    assert_eq!(r["image_bytes"], tbf.len() as u64);
    let received = std::fs::read(&got).expect("the received TBF");
    assert!(
        received == tbf,
        "the received TBF differs from the TAB's cortex-m4.tbf"
    );
}

#[test]
fn a_lower_version_is_refused_with_its_reason_and_the_sender_is_told() {
    let b = bumble();
    let dir = tempfile::tempdir().unwrap();
    let tab = app_tab(dir.path(), 3, true);
    let got = dir.path().join("got.tbf");
    let (tx, rx) = app_transfer(&b, &tab, &got, &["--installed-version", "9"]);
    assert!(!rx.status.success(), "receive took a lower version");
    let rx_err = String::from_utf8_lossy(&rx.stderr);
    assert!(
        rx_err.contains("refused app sensor v3")
            && rx_err.contains("not newer than the installed v9"),
        "{rx_err}"
    );
    let r = json(&rx);
    assert_eq!(
        (&r["kind"], &r["verdict"]),
        (&"app".into(), &"refused".into())
    );
    assert!(
        r["reason"].as_str().unwrap().contains("anti-rollback"),
        "{r}"
    );
    assert!(r["out"].is_null() && !got.exists(), "nothing is written");
    // The sender heard the receiver's Rejected status.
    assert!(
        !tx.status.success(),
        "send says a refused app was installed"
    );
    let tx_err = String::from_utf8_lossy(&tx.stderr);
    assert!(
        tx_err.contains("the receiver refused the image") && tx_err.contains("sensor v3"),
        "{tx_err}"
    );
}
