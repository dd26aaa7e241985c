//! Bad input never panics: the staged-TBF parsers, the app-region walk, the journal scan and
//! the trial record decode on any bytes, and each answer is consistent with its input.

use app_install::journal::{Journal, JournalLayout, PAGE, RECORD_LEN};
use app_install::region::{self, Entry};
use app_install::tbf;
use app_install::trial::{self, TrialRecord};
use proptest::prelude::*;

const LAYOUT: JournalLayout = JournalLayout::NRF52840DK;

proptest! {
    #[test]
    fn tbf_parsers_answer_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600), staged in 0usize..2000) {
        if let Ok(base) = <&[u8; 8]>::try_from(bytes.get(..8).unwrap_or(&[])) {
            if let Ok((header_len, total_len)) = tbf::check_lengths(base, staged, 512) {
                prop_assert!(header_len as usize >= tbf::BASE_LEN && header_len <= 512);
                prop_assert_eq!(total_len as usize, staged);
            }
        }
        if let Ok(app) = tbf::check_header(&bytes, 4096) {
            prop_assert!(!app.name().is_empty());
            prop_assert!(app.binary_end as usize >= bytes.len() && app.binary_end <= 4096);
        }
        let _ = tbf::ecdsa_p256_credential(&bytes);
    }

    #[test]
    fn the_region_walk_ends_inside_the_region(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let mut end = 0x4_0000u32;
        for entry in region::walk(&bytes, 0x4_0000) {
            let (addr, len) = match entry {
                Entry::Padding { addr, len } | Entry::Invalid { addr, len } => (addr, len),
                Entry::App { addr, app } => (addr, app.total_len),
            };
            prop_assert_eq!(addr, end);
            end = addr + len;
            prop_assert!(end as usize <= 0x4_0000 + bytes.len());
        }
    }

    #[test]
    fn the_journal_scan_and_the_trial_decode_answer_any_sector(
        sector in proptest::collection::vec(any::<u8>(), PAGE..=PAGE),
        data in proptest::collection::vec(any::<u8>(), 0..PAGE + 8),
    ) {
        let mut journal = Journal::scan(LAYOUT, &sector);
        if let Some(pending) = journal.pending() {
            prop_assert!((pending.slot as usize) < PAGE / RECORD_LEN);
            let mut replay = journal.replay(&data).expect("a pending write replays");
            let mut ops = 0;
            while replay.next_op().is_some() {
                ops += 1;
            }
            prop_assert!(ops <= 3);
        }
        if let Some((record, boots)) = TrialRecord::decode(&sector) {
            prop_assert!(!record.name().is_empty());
            prop_assert!(boots <= trial::MAX_MARKS);
        }
    }
}

#[test]
fn a_trial_record_round_trips_and_a_torn_one_is_none() {
    let record = TrialRecord::new("blink", 4, true).unwrap();
    let mut sector = vec![0xFF; PAGE];
    sector[..trial::RECORD_LEN].copy_from_slice(&record.encode());
    assert_eq!(TrialRecord::decode(&sector), Some((record, 0)));
    let mark = trial::mark_offset(0).unwrap() as usize;
    sector[mark..mark + 4].copy_from_slice(&[0x7F, 0xFF, 0xFF, 0xFF]); // a torn mark counts
    assert_eq!(TrialRecord::decode(&sector), Some((record, 1)));
    for at in 0..trial::RECORD_LEN {
        let mut torn = sector.clone();
        torn[at] &= 0xFE;
        if torn[at] != sector[at] {
            assert_eq!(TrialRecord::decode(&torn), None, "byte {at}");
        }
    }
    assert_eq!(TrialRecord::new("", 1, false), None);
    assert_eq!(TrialRecord::new(&"x".repeat(33), 1, false), None);
}
