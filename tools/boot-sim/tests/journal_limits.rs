//! The journal's sequence numbers at their integer limit, on the simulated QSPI chip. MCUboot's
//! counterpart is #829 (a swap size read as 0xFFFFFFFF from erased trailer bytes, wave-2
//! research E): a field at its all-ones value must not be taken for a normal one.
use boot_core::journal::{Journal, JournalRecord, Reason, State, NO_COUNTER};
use boot_core::read_status;
use boot_sim::{Board, SMALL};

fn record(sequence: u32, state: State) -> JournalRecord {
    JournalRecord {
        sequence,
        state,
        reason: Reason::None,
        attempts: 0,
        request_sequence: 1,
        image_hash: [7; 32],
        payload_len: 5000,
        payload_offset: 0x20,
        installed: 0,
        backed_up: 0,
        security_counter: NO_COUNTER,
    }
}

/// A record whose sequence is `u32::MAX` (never reached by appends; only written by someone
/// else) still lets the journal move on: the next append, whose sequence wraps to 0, is found
/// as the newest after a reboot (the scan goes by position in the ring, not by the largest
/// sequence alone), so the state does not stay frozen at the record before it.
#[test]
fn a_record_at_the_largest_sequence_does_not_freeze_the_journal() {
    let mut b = Board::new(SMALL, 1);
    let j = SMALL.journal;
    b.sim
        .chip()
        .load(j.start, &record(u32::MAX - 1, State::Trial).encode());
    b.sim
        .chip()
        .load(j.start + 64, &record(u32::MAX, State::Trial).encode());
    let mut journal = Journal::scan(&mut b.sim.qspi, j).unwrap();
    assert_eq!(journal.newest().unwrap().sequence, u32::MAX);
    let next = journal
        .append(&mut b.sim.qspi, record(0, State::Confirmed))
        .unwrap()
        .unwrap();
    assert_eq!(next.sequence, 0);
    let status = read_status(&mut b.sim.qspi, j).unwrap().unwrap();
    assert_eq!(
        status, next,
        "after a reboot the journal is back at {status:?}"
    );
    assert_eq!(status.state, State::Confirmed);
}
