//! The install machine driven by a host loop over a staged byte vector: the order of
//! operations, every refusal before the app region changes (signed with a key the board does
//! not accept, unsigned, not newer, self-update, bad header or length), and the credential
//! check over the integrity region as elf2tab signs it.

use app_install::{
    chunk_offset, Action, Context, Event, Failed, Installed, InstalledApps, Installer, Refusal,
    CHUNK,
};
use app_sim::tbf::{key, public, tbf, Keys};

const DFU: u32 = 0x1D4;
const BLINK: u32 = 0x8000_0042;

/// "dfu" v1 and "blink" v3 are installed.
struct Apps;

impl InstalledApps<u32> for Apps {
    fn installed(&self, name: &str, staged: u32) -> Option<Installed<u32>> {
        let (id, version) = match name {
            "dfu" => (DFU, 1),
            "blink" => (BLINK, 3),
            _ => return None,
        };
        Some(Installed {
            id,
            staged_is_newer: staged > version,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Op {
    Unload(u32),
    Trial(String, u32, bool),
    Setup(usize),
    Write(u32, usize),
    Finalize,
    Abort,
    Load,
}

/// Run an install of `staged` to its end; the operations that change the app region or the
/// processes, the result, and the bytes read from staging.
fn run(staged: &[u8], len: usize) -> (Vec<Op>, Result<u32, Refusal>, usize, Vec<u8>) {
    let keys = Keys(vec![public(&key(7)), public(&key(8))]);
    let cx = Context {
        apps: &Apps,
        credentials: &keys,
        dfu: DFU,
    };
    let mut installer = Installer::new();
    let mut ops = Vec::new();
    let mut slot = Vec::new();
    let mut read = 0;
    let mut last: &[u8] = &[];
    let mut action = installer.on(Event::Install { len }, &cx);
    for _ in 0..10_000 {
        action = match action {
            Action::Read { offset, len } => {
                read += len;
                last = &staged[offset as usize..][..len];
                installer.on(Event::ReadDone(Ok(last)), &cx)
            }
            Action::Unload(id) => {
                assert!(!installer.is_idle() && installer.changing());
                ops.push(Op::Unload(id));
                installer.on(Event::UnloadDone(Ok(())), &cx)
            }
            Action::RecordTrial(record) => {
                ops.push(Op::Trial(
                    record.name().to_string(),
                    record.new_version,
                    record.had_old,
                ));
                installer.on(Event::TrialRecorded(Ok(())), &cx)
            }
            Action::Setup { len } => {
                ops.push(Op::Setup(len));
                slot = vec![0xFF; len];
                installer.on(Event::SetupDone(Ok(())), &cx)
            }
            Action::Write { offset, len } => {
                ops.push(Op::Write(offset, len));
                slot[offset as usize..][..len].copy_from_slice(&last[..len]);
                installer.on(Event::WriteDone(Ok(())), &cx)
            }
            Action::Finalize => {
                ops.push(Op::Finalize);
                installer.on(Event::FinalizeDone(Ok(())), &cx)
            }
            Action::Abort => {
                ops.push(Op::Abort);
                installer.on(Event::AbortDone, &cx)
            }
            Action::Load => {
                ops.push(Op::Load);
                installer.on(Event::LoadDone(Ok(())), &cx)
            }
            Action::Done(result) => {
                if result.is_err() {
                    assert!(installer.is_idle());
                }
                return (ops, result, read, slot);
            }
            Action::None => panic!("the install stalled"),
        };
    }
    panic!("the install did not end");
}

const TOTAL: u32 = 1300;

#[test]
fn a_newer_app_signed_with_an_app_key_is_checked_unloaded_copied_header_last_and_loaded() {
    let staged = tbf("blink", 4, Some(&key(8)), TOTAL);
    let (ops, result, read, slot) = run(&staged, staged.len());
    assert_eq!(result, Ok(4));
    assert_eq!(
        ops,
        [
            Op::Unload(BLINK),
            Op::Trial("blink".into(), 4, true),
            Op::Setup(1300),
            Op::Write(512, 512),
            Op::Write(1024, 276),
            Op::Write(0, 512),
            Op::Finalize,
            Op::Load
        ]
    );
    assert_eq!(slot, staged);
    // base + header + footers + the hashed integrity region + the copy.
    let header = usize::from(u16::from_le_bytes([staged[2], staged[3]]));
    assert_eq!(header, 16 + 24 + 4 + 8);
    assert_eq!(
        read,
        8 + header + 72 + (TOTAL as usize - 72) + TOTAL as usize
    );
}

#[test]
fn a_tbf_signed_with_a_key_the_board_does_not_accept_is_refused_before_the_old_app_stops() {
    let staged = tbf("blink", 4, Some(&key(9)), TOTAL);
    let (ops, result, read, _) = run(&staged, staged.len());
    assert_eq!(result, Err(Refusal::KeyRejected));
    assert!(ops.is_empty(), "nothing unloaded or written: {ops:?}");
    assert!(
        read > TOTAL as usize - 72,
        "the whole integrity region was hashed"
    );
}

#[test]
fn a_signature_over_other_bytes_is_refused() {
    // Signed with an accepted key, then one byte of the binary changed.
    let mut staged = tbf("blink", 4, Some(&key(7)), TOTAL);
    staged[700] ^= 0x40;
    let (ops, result, _, _) = run(&staged, staged.len());
    assert_eq!(result, Err(Refusal::KeyRejected));
    assert!(ops.is_empty());
    // The last byte of the integrity region is covered too.
    let mut staged = tbf("blink", 4, Some(&key(7)), TOTAL);
    staged[TOTAL as usize - 73] ^= 1;
    assert_eq!(run(&staged, staged.len()).1, Err(Refusal::KeyRejected));
}

#[test]
fn refusals_before_anything_changes() {
    let signed = |name, version| tbf(name, version, Some(&key(7)), TOTAL);
    let cases: Vec<(Vec<u8>, usize, Refusal)> = vec![
        (tbf("blink", 4, None, TOTAL), 1300, Refusal::Unsigned),
        (signed("blink", 3), 1300, Refusal::NotNewer { staged: 3 }),
        (signed("blink", 2), 1300, Refusal::NotNewer { staged: 2 }),
        (signed("dfu", 9), 1300, Refusal::SelfUpdate),
        (signed("blink", 4), 1296, Refusal::NotTbf),
        (signed("blink", 4), 4, Refusal::NotTbf),
        (
            {
                let mut t = signed("blink", 4);
                t[20] ^= 1;
                t
            },
            1300,
            Refusal::BadHeader,
        ),
    ];
    for (staged, len, refusal) in cases {
        let (ops, result, _, _) = run(&staged, len);
        assert_eq!(result, Err(refusal));
        assert!(ops.is_empty(), "{refusal:?}: {ops:?}");
    }
}

#[test]
fn a_new_app_is_stored_and_loaded_without_unload() {
    let staged = tbf("sensor", 1, Some(&key(7)), 512);
    let (ops, result, _, slot) = run(&staged, staged.len());
    assert_eq!(result, Ok(1));
    assert_eq!(
        ops,
        [
            Op::Trial("sensor".into(), 1, false),
            Op::Setup(512),
            Op::Write(0, 512),
            Op::Finalize,
            Op::Load
        ]
    );
    assert_eq!(slot, staged);
}

#[test]
fn a_failed_operation_ends_the_install_with_its_reason() {
    let keys = Keys(vec![public(&key(7))]);
    let cx = Context {
        apps: &Apps,
        credentials: &keys,
        dfu: DFU,
    };
    // A staging read failure during the hash: refused, idle, nothing changed.
    let mut installer = Installer::new();
    installer.on(Event::Install { len: 1300 }, &cx);
    let staged = tbf("blink", 4, Some(&key(7)), TOTAL);
    let mut action = Action::Read { offset: 0, len: 8 };
    for _ in 0..3 {
        let Action::Read { offset, len } = action else {
            panic!("{action:?}")
        };
        action = installer.on(Event::ReadDone(Ok(&staged[offset as usize..][..len])), &cx);
    }
    assert!(matches!(
        action,
        Action::Read {
            offset: 0,
            len: CHUNK
        }
    ));
    assert_eq!(
        installer.on(Event::ReadDone(Err(Failed)), &cx),
        Action::Done(Err(Refusal::StagingFlash))
    );
    assert!(installer.is_idle());
    // A second install while one runs is busy and does not disturb it.
    installer.on(Event::Install { len: 1300 }, &cx);
    assert_eq!(
        installer.on(Event::Install { len: 1300 }, &cx),
        Action::Done(Err(Refusal::Busy))
    );
    assert!(!installer.is_idle());
}

#[test]
fn copy_order_is_every_chunk_then_the_header_chunk() {
    let order: Vec<u32> = (0..).map_while(|i| chunk_offset(i, TOTAL)).collect();
    assert_eq!(order, [512, 1024, 0]);
    assert_eq!(chunk_offset(0, 512), Some(0));
    assert_eq!(chunk_offset(1, 512), None);
}

#[test]
fn every_refusal_has_its_own_abi_detail() {
    let all = [
        Refusal::NotDfu,
        Refusal::Busy,
        Refusal::NotTbf,
        Refusal::BadHeader,
        Refusal::NotApp,
        Refusal::Unsigned,
        Refusal::KeyRejected,
        Refusal::NotNewer { staged: 1 },
        Refusal::SelfUpdate,
        Refusal::StagingFlash,
        Refusal::Store,
        Refusal::Unload,
        Refusal::Load,
    ];
    let mut details: Vec<u32> = all.iter().map(|r| r.detail()).collect();
    assert!(!details.contains(&dfu_abi::app::detail::NONE));
    details.sort_unstable();
    details.dedup();
    assert_eq!(details.len(), all.len());
}

#[test]
fn header_and_footer_parsing_never_panic_on_truncation() {
    let staged = tbf("blink", 4, Some(&key(7)), TOTAL);
    let footers = &staged[TOTAL as usize - 72..];
    assert!(app_install::tbf::ecdsa_p256_credential(footers).is_some());
    for len in 0..footers.len() {
        assert_eq!(
            app_install::tbf::ecdsa_p256_credential(&footers[..len]),
            None,
            "{len}"
        );
    }
    let header = usize::from(u16::from_le_bytes([staged[2], staged[3]]));
    for len in 0..header {
        assert!(
            app_install::tbf::check_header(&staged[..len], TOTAL).is_err(),
            "{len}"
        );
    }
    assert_eq!(
        app_install::tbf::check_header(&staged[..header], TOTAL)
            .map(|app| (app.version, app.binary_end)),
        Ok((4, TOTAL - 72))
    );
}

/// Answer an install's staging reads from `staged` until it asks for anything else.
fn first_change(installer: &mut Installer<u32>, staged: &[u8]) -> Action<u32> {
    let keys = Keys(vec![public(&key(7))]);
    let cx = Context {
        apps: &Apps,
        credentials: &keys,
        dfu: DFU,
    };
    let mut action = installer.on(Event::Install { len: staged.len() }, &cx);
    for _ in 0..100 {
        match action {
            Action::Read { offset, len } => {
                action = installer.on(Event::ReadDone(Ok(&staged[offset as usize..][..len])), &cx)
            }
            other => return other,
        }
    }
    panic!("the install only reads");
}

#[test]
fn the_version_in_trial_is_answered_as_installed_and_blocks_any_other_install() {
    use app_install::trial::TrialRecord;
    // A boot found the record of blink v3's trial, and v3 runs.
    let mut installer = Installer::new();
    installer.resume(TrialRecord::new("blink", 3, true).unwrap());
    assert_eq!(
        installer.running_trial(&Apps).map(|r| r.new_version),
        Some(3)
    );
    let again = tbf("blink", 3, Some(&key(7)), TOTAL);
    assert_eq!(first_change(&mut installer, &again), Action::Done(Ok(3)));
    assert!(installer.is_idle());
    assert_eq!(installer.trial_version(), Some(3));
    // Another version (or app) while the trial runs: busy, nothing changes.
    let newer = tbf("blink", 4, Some(&key(7)), TOTAL);
    assert_eq!(
        first_change(&mut installer, &newer),
        Action::Done(Err(Refusal::Busy))
    );
    let other = tbf("other", 1, Some(&key(7)), TOTAL);
    assert_eq!(
        first_change(&mut installer, &other),
        Action::Done(Err(Refusal::Busy))
    );
    // A record of a version that does not run exactly (v2 or v4 while v3 runs) is no trial:
    // the install goes on to unload the old version.
    for stale in [2, 4] {
        let mut installer = Installer::new();
        installer.resume(TrialRecord::new("blink", stale, true).unwrap());
        assert_eq!(installer.running_trial(&Apps), None);
        assert_eq!(first_change(&mut installer, &newer), Action::Unload(BLINK));
    }
}
