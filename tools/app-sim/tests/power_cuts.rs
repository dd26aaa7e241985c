//! The every-operation power-cut campaign over an app update (see the crate docs): an update
//! that confirms and one that reverts recover from every cut; without the page journal some
//! cuts lose an app (the campaign can fail).

use app_sim::{campaign, Checker, Device, Report, Scenario, MAX_BOOTS};

#[test]
fn a_clean_update_confirms_and_frees_the_old_binary() {
    let mut device = Device::new(Checker::new(), true);
    Scenario::Confirm.run(&mut device).unwrap();
    device.boot().unwrap();
    device.check_end(4).unwrap();
}

#[test]
fn an_unconfirmed_update_reverts_after_the_trial_boots() {
    let mut device = Device::new(Checker::new(), true);
    assert_eq!(device.install().unwrap(), Ok(4));
    for boot in 0..MAX_BOOTS {
        device.boot().unwrap();
        assert_eq!(device.running("blink"), Some(4), "boot {boot}: in trial");
        assert!(device.trial().unwrap().is_some());
    }
    device.boot().unwrap();
    device.check_end(3).unwrap();
}

fn first_failures(report: &Report) -> &[String] {
    &report.failures[..report.failures.len().min(5)]
}

#[test]
fn every_cut_of_an_update_that_confirms_recovers() {
    let report = campaign(Scenario::Confirm, true, 1);
    eprintln!(
        "confirm: {} operations, {} cuts",
        report.operations, report.cuts
    );
    assert!(report.cuts > 1000, "{report:?}");
    assert!(report.failures.is_empty(), "{:#?}", first_failures(&report));
}

#[test]
fn every_cut_of_an_update_that_reverts_recovers() {
    let report = campaign(Scenario::Revert, true, 1);
    eprintln!(
        "revert: {} operations, {} cuts",
        report.operations, report.cuts
    );
    assert!(report.cuts > 1000, "{report:?}");
    assert!(report.failures.is_empty(), "{:#?}", first_failures(&report));
}

#[test]
fn without_the_journal_some_cuts_lose_an_app() {
    let report = campaign(Scenario::Confirm, false, 7);
    eprintln!(
        "no journal: {} of {} cuts fail",
        report.failures.len(),
        report.cuts
    );
    assert!(report.cuts > 100, "{report:?}");
    assert!(
        !report.failures.is_empty(),
        "nothing found without the journal: {report:?}"
    );
}
