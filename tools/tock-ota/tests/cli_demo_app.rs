//! App updates on the command line. `tock-ota demo --app`: a TAB elf2tab signed with the
//! development app key ends with `kind: "app"`, the TAB's version and `confirmed`; an unsigned
//! one fails with the reason and says the old version keeps running (the app path's own tests
//! are ota-sim's `demo_app`; this one checks the flag reaches it). `tock-ota send --app`: the
//! announce and target bytes its sender puts on air, and an unsigned TAB refused before any
//! controller is touched.

use std::path::Path;
use std::process::{Command, Output};

mod support;
use support::app_tab;

fn demo(tab: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .args(["demo", "--json", "--app"])
        .arg(tab)
        .args(extra)
        .output()
        .expect("run tock-ota")
}

#[test]
fn demo_app_reports_the_installed_app_and_refuses_an_unsigned_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(&app_tab(dir.path(), 7, true), &["--installed-version", "6"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kind"], "app");
    assert_eq!(json["app"], "sensor");
    assert_eq!(json["installed_version"], 6);
    assert_eq!(json["final_version"], 7);
    assert_eq!(json["confirmed"], true);
    assert!(json["transfer_simulated_s"].as_f64().unwrap() > 0.0);

    let out = demo(&app_tab(dir.path(), 7, false), &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unsigned") && stderr.contains("sensor v1 keeps running"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["final_version"].as_u64(), json["confirmed"].as_bool()),
        (Some(1), Some(false))
    );

    // A kernel-only flag with --app is refused by the command line.
    let out = demo(&app_tab(dir.path(), 7, true), &["--base", "x.bin"]);
    assert!(!out.status.success());
}

#[test]
fn send_app_announces_an_app_session_named_after_the_tbf() {
    use adv_transfer::wire::{capability, parse_announce, parse_target, unframe, Crc32};
    use adv_transfer::DEFAULT_COMPANY_ID;

    let dir = tempfile::tempdir().unwrap();
    let path = app_tab(dir.path(), 3, true);
    let app = tock_ota::send_app::tab_app(&std::fs::read(&path).unwrap(), &path).unwrap();
    assert_eq!(
        (app.name.as_str(), app.version, app.file.as_str()),
        ("sensor", 3, "cortex-m4.tbf")
    );
    let mut tx = ota_hci::app_sender(&app.tbf, &app.name, DEFAULT_COMPANY_ID).unwrap();
    let session = ota_hci::send::session_for(&app.tbf);
    let mut adv = [0u8; 31];
    let n = tx.next_adv(&mut adv);
    let info = parse_announce(unframe(DEFAULT_COMPANY_ID, &adv[..n]).unwrap()).unwrap();
    assert_eq!(info.capabilities, capability::APP);
    assert_eq!(info.session, session);
    assert_eq!(info.image_len as usize, app.tbf.len());
    assert_eq!(info.image_crc, Crc32::of(&app.tbf));
    let n = tx.next_adv(&mut adv);
    let pdu = unframe(DEFAULT_COMPANY_ID, &adv[..n]).unwrap();
    let mut expected = vec![0xF4];
    expected.extend(session.to_le_bytes());
    expected.push(6);
    expected.extend(b"sensor");
    assert_eq!(pdu, &expected[..]);
    assert_eq!(parse_target(pdu), Some((session, &b"sensor"[..])));

    // An unsigned TAB is refused with the reason, before the controller is opened (nothing
    // listens on the port).
    let unsigned = app_tab(dir.path(), 3, false);
    let out = Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .args(["send", "--hci", "tcp:127.0.0.1:1", "--app"])
        .arg(&unsigned)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sensor v3 is unsigned"), "{stderr}");
    // Not a TAB at all: named.
    std::fs::write(dir.path().join("x.tab"), b"not a tar").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tock-ota"))
        .args(["send", "--hci", "tcp:127.0.0.1:1", "--app"])
        .arg(dir.path().join("x.tab"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a TAB"), "{stderr}");
}
