//! The external flash fails to answer at start-up after every program/erase operation of an
//! install and of a revert: the bootloader enters the kernel slot only when its state page
//! says the slot is whole, and the update ends as it should once the chip is back.

use boot_sim::*;

fn check(sc: &Scenario, phase: Phase) -> QspiAbsentReport {
    let rep = qspi_absent(sc, phase, 1, 3);
    assert!(
        rep.failures.is_empty(),
        "{:#?}",
        &rep.failures[..rep.failures.len().min(8)]
    );
    assert_eq!(rep.recovered, rep.points);
    eprintln!(
        "{}: {} start-ups without QSPI, {} into a whole kernel, {} waited, {} with a half-written slot",
        phase.name(),
        rep.points,
        rep.jumped,
        rep.waited,
        rep.half_written
    );
    rep
}

#[test]
fn without_qspi_at_any_point_of_an_install_the_slot_is_entered_only_when_whole() {
    // Old kernel longer than the new one, and shorter.
    for (old, new) in [(16000, 9000), (5000, 14000)] {
        let rep = check(&Scenario::new(SMALL, old, new), Phase::Install);
        // While pages are being rewritten the slot is half written: those start-ups wait
        // (a bootloader that jumps whenever QSPI is absent would run that slot).
        assert!(rep.half_written > rep.points / 2, "{rep:?}");
        assert!(rep.waited >= rep.half_written, "{rep:?}");
        // Before the first erase (validation) and after the verified install it is whole.
        assert!(rep.jumped > 0, "{rep:?}");
    }
}

#[test]
fn without_qspi_at_any_point_of_a_revert_the_slot_is_entered_only_when_whole() {
    for phase in [Phase::Revert, Phase::WatchdogRevert] {
        let rep = check(&Scenario::new(SMALL, 12000, 7000), phase);
        assert!(
            rep.half_written > 0 && rep.waited >= rep.half_written,
            "{rep:?}"
        );
        assert!(rep.jumped > 0, "{rep:?}");
    }
}

#[test]
fn without_qspi_signed_images_sampled() {
    let sc = Scenario::mcuboot(SMALL, 9000, 13000);
    let rep = qspi_absent(&sc, Phase::Install, 37, 5);
    assert!(rep.failures.is_empty(), "{:#?}", rep.failures);
    assert!(rep.waited > 0 && rep.jumped > 0, "{rep:?}");
}
