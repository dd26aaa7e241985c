//! The trial of a new app version: the record that says one is running, and what a boot does
//! about it.
//!
//! The record lives alone in the journal's `trial` sector (external flash): written once, after
//! the old version was unloaded and before the new binary's header makes it loadable; one boot
//! mark (a word programmed to 0) per boot during the trial; erased when the trial ends. A torn
//! record fails its CRC and counts as none: it is only written before the app region changes.
//!
//! ```text
//! magic "TOAT" | new version u32 | had old u32 | name len u32 | name [32] | 0xFF x16 | crc32 (0..60) u32
//! boot marks: u32 words from offset 64
//! ```
//!
//! At boot ([`decide`]), from the record and the binaries the app region holds:
//!
//! | new version loadable | an older one loadable | boots so far | decision |
//! |---|---|---|---|
//! | no | any | any | end the trial (the copy never committed, or a revert finished) |
//! | yes | no, but the record says there was one | any | end the trial (a confirm finished) |
//! | yes | yes, or there was none | `>= max_boots` | revert: pad the new binary, end the trial |
//! | yes | yes, or there was none | fewer | mark this boot, the trial goes on |
//!
//! "Loadable" is what the kernel loads at boot: a parsed app header and an accepted credential;
//! of two loadable versions of one app the kernel runs only the higher, so the new one runs
//! during the trial and the old one is kept, never both.

use control_area::crc32;

use crate::region::Entry;
use crate::tbf::MAX_NAME;

/// Boots a trial may take before a boot reverts it (the DK's, and the models').
pub const BOOTS: u32 = 3;

/// Seconds the app in trial has, from each boot's decision (and from an install's load), to
/// confirm itself before the kernel reverts it (the DK's). A start-up that passes its own
/// checks takes milliseconds to a few seconds (a first sensor reading, a first connection);
/// a minute leaves room for that and bounds how long an unconfirmed version runs. The window
/// restarts at each boot; [`BOOTS`] bounds the boots.
pub const WINDOW_S: u32 = 60;

/// Faults of the app in trial, in one boot, at which the kernel stops it and reverts (the
/// DK's): the faults before are restarted ([`restart_after_fault`]).
pub const FAULTS: u32 = 3;

/// Whether a fault of the app in trial restarts it (else it is stopped and the trial
/// reverted): `restarts` is how often the kernel restarted the process this boot, so this is
/// fault number `restarts + 1`; faults below `max_faults` restart.
pub fn restart_after_fault(restarts: usize, max_faults: u32) -> bool {
    restarts.saturating_add(1) < max_faults as usize
}

/// Bytes of the trial record.
pub const RECORD_LEN: usize = 64;
/// Offset of the first boot mark.
pub const MARKS_AT: u32 = RECORD_LEN as u32;
/// Most boot marks counted (the sector holds more; a board's limit is far below).
pub const MAX_MARKS: u32 = 64;
const MAGIC: u32 = u32::from_le_bytes(*b"TOAT");

/// A running trial: the app, its new version, whether an older version was installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrialRecord {
    pub new_version: u32,
    pub had_old: bool,
    name: [u8; MAX_NAME],
    name_len: u8,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl TrialRecord {
    /// `None` if `name` is empty or longer than [`MAX_NAME`].
    pub fn new(name: &str, new_version: u32, had_old: bool) -> Option<TrialRecord> {
        if name.is_empty() || name.len() > MAX_NAME {
            return None;
        }
        let mut kept = [0; MAX_NAME];
        kept[..name.len()].copy_from_slice(name.as_bytes());
        Some(TrialRecord {
            new_version,
            had_old,
            name: kept,
            name_len: name.len() as u8,
        })
    }

    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..usize::from(self.name_len)]).unwrap_or("")
    }

    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut out = [0xFF; RECORD_LEN];
        out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        out[4..8].copy_from_slice(&self.new_version.to_le_bytes());
        out[8..12].copy_from_slice(&u32::from(self.had_old).to_le_bytes());
        out[12..16].copy_from_slice(&u32::from(self.name_len).to_le_bytes());
        out[16..48].copy_from_slice(&self.name);
        let crc = crc32(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// The record and its boot count from the start of the trial sector (at least
    /// `MARKS_AT + 4 * MAX_MARKS` bytes); `None` when there is no valid record.
    pub fn decode(sector: &[u8]) -> Option<(TrialRecord, u32)> {
        let record = sector.get(..RECORD_LEN)?;
        if le32(record, 0) != MAGIC || le32(record, 60) != crc32(&record[..60]) {
            return None;
        }
        let name_len = le32(record, 12);
        if name_len == 0 || name_len as usize > MAX_NAME {
            return None;
        }
        let mut name = [0; MAX_NAME];
        name.copy_from_slice(&record[16..48]);
        core::str::from_utf8(&name[..name_len as usize]).ok()?;
        let marks = sector.get(MARKS_AT as usize..(MARKS_AT + 4 * MAX_MARKS) as usize)?;
        // A torn mark counts: a boot happened.
        let boots = marks
            .chunks_exact(4)
            .take_while(|w| w.iter().any(|&b| b != 0xFF))
            .count() as u32;
        Some((
            TrialRecord {
                new_version: le32(record, 4),
                had_old: le32(record, 8) != 0,
                name,
                name_len: name_len as u8,
            },
            boots,
        ))
    }
}

/// Offset (in the trial sector) of the mark for boot number `boots` (0-based).
pub fn mark_offset(boots: u32) -> Option<u32> {
    (boots < MAX_MARKS).then_some(MARKS_AT + 4 * boots)
}

/// What the app region holds for the app in trial, as the kernel will load it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// Address of the loadable binary of the new version, if any.
    pub new: Option<u32>,
    /// Whether a loadable binary of a lower version exists.
    pub old: bool,
}

/// What a boot does about a trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No trial.
    None,
    /// Erase the trial sector: the trial is over (never committed, confirmed or reverted).
    End,
    /// Program the mark for this boot (the `boots`-th); the new version runs.
    Continue { boots: u32 },
    /// Turn the new binary at `new` into padding, then end the trial.
    Revert { new: u32 },
}

/// See the module docs. `max_boots`: the boots a trial may take (the board's constant).
pub fn decide(record: Option<(TrialRecord, u32)>, found: Found, max_boots: u32) -> Decision {
    let Some((record, boots)) = record else {
        return Decision::None;
    };
    let Some(new) = found.new else {
        return Decision::End;
    };
    if record.had_old && !found.old {
        return Decision::End;
    }
    if boots >= max_boots.min(MAX_MARKS) {
        return Decision::Revert { new };
    }
    Decision::Continue { boots }
}

/// A padding TBF header for a binary of `total_len` bytes: the kernel walks over it and the
/// allocator reuses its space (upstream's own form: version 2, header length 16, no TLVs).
pub fn padding_header(total_len: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0..2].copy_from_slice(&2u16.to_le_bytes());
    out[2..4].copy_from_slice(&16u16.to_le_bytes());
    out[4..8].copy_from_slice(&total_len.to_le_bytes());
    // flags 0; checksum: XOR of the other words.
    let checksum = le32(&out, 0) ^ le32(&out, 4) ^ le32(&out, 8);
    out[12..16].copy_from_slice(&checksum.to_le_bytes());
    out
}

/// The next binary a confirm turns into padding (address, total length): one of the record's
/// app with a lower version than the record's, among the app region's `entries`
/// ([`crate::region::walk`]). A confirm pads until there is none left, then erases the trial
/// sector; walking again after each padding makes a confirm a cut interrupted simply resume.
pub fn older_binary(
    record: &TrialRecord,
    entries: impl IntoIterator<Item = Entry>,
) -> Option<(u32, u32)> {
    entries.into_iter().find_map(|entry| match entry {
        Entry::App { addr, app }
            if app.name() == record.name() && app.version < record.new_version =>
        {
            Some((addr, app.total_len))
        }
        _ => None,
    })
}

/// The new version's binary (address, total length), which a revert turns into padding before
/// it erases the trial sector and resets; `None` once it is padding.
pub fn new_binary(
    record: &TrialRecord,
    entries: impl IntoIterator<Item = Entry>,
) -> Option<(u32, u32)> {
    entries.into_iter().find_map(|entry| match entry {
        Entry::App { addr, app }
            if app.name() == record.name() && app.version == record.new_version =>
        {
            Some((addr, app.total_len))
        }
        _ => None,
    })
}

/// [`Found`] for `record` from the app region's bytes (`region`, starting at address `base`)
/// as the kernel loads them: a parsed header and a credential `credentials` accepts
/// ([`crate::verifies`]).
pub fn found(
    record: &TrialRecord,
    region: &[u8],
    base: u32,
    credentials: &dyn crate::Credentials,
) -> Found {
    let mut found = Found {
        new: None,
        old: false,
    };
    for entry in crate::region::walk(region, base) {
        let Entry::App { addr, app } = entry else {
            continue;
        };
        if app.name() != record.name() || app.version > record.new_version {
            continue;
        }
        let binary = &region[(addr - base) as usize..];
        if !crate::verifies(binary, &app, credentials) {
            continue;
        }
        if app.version == record.new_version {
            found.new = found.new.or(Some(addr));
        } else {
            found.old = true;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_below_the_limit_restart_and_the_limit_reverts() {
        let verdicts: [bool; 4] = core::array::from_fn(|r| restart_after_fault(r, 3));
        assert_eq!(
            verdicts,
            [true, true, false, false],
            "faults 1 and 2 restart, 3 reverts"
        );
        assert!(!restart_after_fault(usize::MAX, FAULTS));
        assert!(
            !restart_after_fault(0, 1),
            "a limit of one reverts at the first fault"
        );
    }
}
