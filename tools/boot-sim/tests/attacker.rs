//! What an attacker who controls the external flash (a compromised kernel, or a clip on the
//! chip) can make the bootloader do: each test is one claim of `docs/bootloader.md`'s threat
//! model. The attacker writes the request sector, the journal, the staging slot and the revert
//! slot at will between boots; internal flash (kernel slot, state page) is out of reach.

use boot_core::journal::{JournalRecord, Reason, State, NO_COUNTER};
use boot_core::PAGE;
use boot_sim::*;

/// Appends a forged journal record with the next sequence.
fn forge(b: &mut Board, rec: JournalRecord) {
    let q = &mut b.sim.qspi;
    q.wait().unwrap();
    let mut j = boot_core::Journal::scan(q, b.layout.journal).unwrap();
    j.append(q, rec).unwrap().unwrap();
}

/// Fills the revert slot with the attacker's code.
fn evil_revert_slot(b: &mut Board) -> Vec<u8> {
    let evil = kernel_bytes(b.layout.revert.len as usize, 66);
    b.sim.chip().load(b.layout.revert.start, &evil);
    evil[..b.layout.kernel_slot.len as usize].to_vec()
}

fn record(state: State, hash: [u8; 32], pages: u16) -> JournalRecord {
    JournalRecord {
        sequence: 0,
        state,
        reason: Reason::None,
        attempts: 1,
        request_sequence: 1,
        image_hash: hash,
        payload_len: pages as u32 * PAGE,
        payload_offset: HDR as u16,
        installed: pages / 2,
        backed_up: pages,
        security_counter: NO_COUNTER,
    }
}

/// Boots until a boot succeeds; the kernel slot must then hold `kernel` exactly.
fn boots_into(b: &mut Board, kernel: &[u8]) -> boot_core::BootDecision {
    let d = b.boot_until_ok(3).expect("a boot succeeds");
    assert!(b.kernel_is(kernel), "the kernel slot changed");
    d
}

#[test]
fn a_forged_installing_record_with_a_broken_staged_image_restores_nothing() {
    let sc = Scenario::new(SMALL, 16384, 9000);
    // A device that never updated.
    let mut b = Board::new(SMALL, 1);
    b.provision(&sc.old);
    let evil = evil_revert_slot(&mut b);
    b.stage(b"not an image");
    forge(&mut b, record(State::Installing, [9; 32], 4));
    boots_into(&mut b, &sc.old);
    assert!(!b.kernel_is(&evil[..PAGE as usize]));

    // During a trial: the verified new kernel stays, and the status says why.
    let mut b = sc.start(2);
    assert!(b.boot(false).unwrap().trial);
    evil_revert_slot(&mut b);
    b.stage(b"not an image");
    forge(&mut b, record(State::Installing, image_hash(&sc.image), 3));
    let d = boots_into(&mut b, &sc.new);
    assert!(!d.trial);
    let st = b.status().unwrap();
    assert_eq!((st.state, st.reason), (State::Kept, Reason::BackupInvalid));
}

#[test]
fn a_rewritten_revert_slot_is_not_restored_and_the_verified_trial_kernel_stays() {
    let sc = Scenario::new(SMALL, 12000, 9000);
    for tamper_page in [0u32, 2] {
        let mut b = sc.start(3);
        assert!(b.boot(false).unwrap().trial);
        // One byte of the backup changed.
        let at = b.layout.revert.start + tamper_page * PAGE + 100;
        let byte = b.sim.chip().raw()[at as usize];
        b.sim.chip().load(at, &[byte ^ 0x5A]);
        // The trial kernel is reset by the watchdog: a revert is due.
        let d = b.boot(true).unwrap();
        assert!(!d.trial);
        assert!(b.kernel_is(&sc.new), "page {tamper_page}");
        let st = b.status().unwrap();
        assert_eq!((st.state, st.reason), (State::Kept, Reason::BackupInvalid));
        // And it stays so.
        let ops = b.sim.power.ops();
        assert!(!b.boot(false).unwrap().trial);
        assert_eq!(b.sim.power.ops(), ops);
        assert!(b.kernel_is(&sc.new));
    }
    // The untouched backup is restored (as ever).
    let mut b = sc.start(4);
    b.boot(false).unwrap();
    b.boot(true).unwrap();
    assert!(b.kernel_is(&sc.old));
    assert_eq!(b.status().unwrap().state, State::Reverted);
}

#[test]
fn a_forged_reverting_record_copies_nothing() {
    let sc = Scenario::new(SMALL, 16384, 9000);
    let mut b = Board::new(SMALL, 5);
    b.provision(&sc.old);
    evil_revert_slot(&mut b);
    forge(&mut b, record(State::Reverting, [3; 32], 4));
    boots_into(&mut b, &sc.old);
    // After a confirmed update as well.
    let mut b = sc.start(6);
    b.boot(false).unwrap();
    b.request(confirm(2, image_hash(&sc.image)));
    b.boot(false).unwrap();
    evil_revert_slot(&mut b);
    forge(&mut b, record(State::Reverting, image_hash(&sc.image), 4));
    boots_into(&mut b, &sc.new);
}

#[test]
fn a_forged_trial_and_confirm_do_not_raise_the_floor() {
    let sc = Scenario::new(SMALL, 9000, 8000);
    let mut b = Board::new(SMALL, 7);
    b.provision(&sc.old);
    let mut trial = record(State::Trial, [4; 32], 2);
    trial.security_counter = 1000;
    forge(&mut b, trial);
    b.request(confirm(2, [4; 32]));
    boots_into(&mut b, &sc.old);
    assert_eq!(b.floor(), 0);
    // So an update with a counter below the forged one still installs.
    b.stage(&sc.image);
    b.request(boot_request(
        3,
        image_hash(&sc.image),
        sc.image.len() as u32,
    ));
    assert!(b.boot(false).unwrap().trial);
    assert!(b.kernel_is(&sc.new));

    // Nor does a confirm of a real trial whose journal record names a higher counter: the
    // floor rises to the counter of the image the bootloader verified.
    let mut b = sc.start(8);
    assert!(b.boot(false).unwrap().trial);
    let mut st = b.status().unwrap();
    st.security_counter = 1000;
    forge(&mut b, st);
    b.request(confirm(2, image_hash(&sc.image)));
    b.boot(false).unwrap();
    assert_eq!(b.status().unwrap().state, State::Confirmed);
    assert_eq!(b.floor(), sc.counter);
}

#[test]
fn a_journal_rewritten_mid_install_never_starts_a_half_written_kernel() {
    let sc = Scenario::new(SMALL, 16000, 14000);
    let mut clean = sc.start(9);
    let ops0 = clean.sim.power.ops();
    clean.boot(false).unwrap();
    let total = clean.sim.power.ops() - ops0;
    let mut half_written = 0;
    for n in (1..total).step_by(97) {
        for wipe in [false, true] {
            let mut b = sc.start(9);
            b.sim.power.cut_after(n);
            assert!(b.boot(false).is_err());
            let _ = b.sim.power_cycle();
            half_written += u32::from(!b.kernel_is(&sc.old) && !b.kernel_is(&sc.new));
            if wipe {
                // The journal erased: the boot request still pending is handled again.
                let j = b.layout.journal;
                b.sim.chip().load(j.start, &vec![0xFF; j.len as usize]);
            }
            // A record saying the request was handled and all is confirmed.
            forge(&mut b, record(State::Confirmed, image_hash(&sc.image), 0));
            let d = b.boot_until_ok(3).unwrap();
            let new = b.kernel_is(&sc.new);
            assert!(
                new || b.kernel_is(&sc.old),
                "op {n} wipe {wipe}: half-written kernel"
            );
            assert!(!d.trial || new, "op {n}");
        }
    }
    assert!(half_written > 10, "{half_written}");
}

#[test]
fn a_forged_boot_request_installs_only_a_signed_image_at_or_above_the_floor() {
    let sc = Scenario::new(SMALL, 9000, 8000);
    let mut b = sc.start(10);
    b.boot(false).unwrap();
    b.request(confirm(2, image_hash(&sc.image)));
    b.boot(false).unwrap();
    assert_eq!(b.floor(), 5);
    // Replaying the old kernel, validly signed with counter 3: below the floor.
    let old_image = make_image(&sc.old, 0, 3);
    b.stage(&old_image);
    b.request(boot_request(
        3,
        image_hash(&old_image),
        old_image.len() as u32,
    ));
    boots_into(&mut b, &sc.new);
    let st = b.status().unwrap();
    assert_eq!((st.state, st.reason), (State::Rejected, Reason::Downgrade));
    // An image signed with another key.
    let mut forged = make_image(&sc.old, 0, 9);
    let n = forged.len();
    forged[n - 1] ^= 1;
    b.stage(&forged);
    b.request(boot_request(4, image_hash(&forged), forged.len() as u32));
    boots_into(&mut b, &sc.new);
    let st = b.status().unwrap();
    assert_eq!(
        (st.state, st.reason),
        (State::Rejected, Reason::BadSignature)
    );
}
