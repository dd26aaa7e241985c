//! The every-operation power-cut campaign over an app update (see the crate docs): an update
//! that confirms and one that reverts recover from every cut; without the page journal some
//! cuts lose an app (the campaign can fail).

use app_sim::{campaign, cuts, Checker, Device, Report, Scenario, MAX_BOOTS};

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

#[test]
fn a_second_cut_during_the_recovery_boot_recovers_too() {
    // First cut at every 41st operation of the update, second at every 23rd operation of the
    // boot after it (the journal's replay, the trial decision, a revert), both kinds.
    let mut device = Device::new(Checker::new(), true);
    let (mut runs, mut failures) = (0, Vec::new());
    for n in (0..3200).step_by(41) {
        for m in (0..1200).step_by(23) {
            for (torn, torn2) in [(false, true), (true, false)] {
                if let Some(result) =
                    cuts(&mut device, Scenario::Confirm, n, torn, Some((m, torn2)))
                {
                    runs += 1;
                    if let Err(why) = result {
                        failures.push(format!("cut {n} ({torn}) then {m} ({torn2}): {why}"));
                    }
                }
            }
        }
    }
    eprintln!("double cuts: {runs} runs, {} failed", failures.len());
    assert!(runs > 100, "{runs} runs");
    assert!(
        failures.is_empty(),
        "{:#?}",
        &failures[..failures.len().min(5)]
    );
}
