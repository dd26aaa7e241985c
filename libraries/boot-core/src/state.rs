//! The bootloader's own state in the internal state page (bootloader-only; ACL-locked before the
//! kernel runs): the security-counter floor, whether the kernel slot is whole, and the hash of
//! the backup an update made. It is what the bootloader knows without the external flash, and
//! what it trusts when the external flash (journal, revert slot) says otherwise.
//!
//! Format: 48-byte records appended from the page start, each a full snapshot; the newest is
//! the last one that passes its CRC (torn and foreign records are ignored). NVMC rules: words
//! only, bits only cleared, 4 KiB page erase. A record goes into an erased slot after the last
//! written one; when the page is full it is erased and the new record written first.
//!
//! | bytes | field |
//! |---|---|
//! | 0 | slot: 1 whole, 2 being written (install or revert in progress), 3 whole trial image |
//! | 1 | format byte 0xB5 |
//! | 2..4 | pages: kernel-slot pages the backup covers, u16 LE |
//! | 4..8 | security-counter floor, u32 LE |
//! | 8..12 | the trial image's security counter (raised into the floor on confirm), u32 LE |
//! | 12..44 | SHA-256 of the kernel slot's first `pages` pages before the update |
//! | 44..48 | CRC-32 over bytes 0..44 |

use crate::journal::NO_COUNTER;
use crate::layout::Region;
use control_area::{crc32, is_erased};
use embedded_storage::nor_flash::NorFlash;

/// Bytes per state record.
pub const RECORD_LEN: usize = 48;
/// Format byte at offset 1.
pub const RECORD_FORMAT: u8 = 0xB5;

/// What the kernel slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// A whole kernel, nothing in progress.
    Whole = 1,
    /// Being written (install or revert): it may hold parts of two kernels.
    Dirty = 2,
    /// A whole, verified trial image; the backup of the previous kernel is still wanted.
    Trial = 3,
}

/// One state record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotState {
    pub slot: Slot,
    /// Kernel-slot pages the update overwrites and the revert slot backs up.
    pub pages: u16,
    /// The security-counter floor: staged images below it are refused.
    pub floor: u32,
    /// The trial image's security counter (`NO_COUNTER` if none).
    pub counter: u32,
    /// SHA-256 of kernel-slot pages `[0, pages)` as they were before the update.
    pub backup_hash: [u8; 32],
}

impl SlotState {
    /// A device that never updated: a whole kernel, floor 0.
    pub const NEW: SlotState = SlotState {
        slot: Slot::Whole,
        pages: 0,
        floor: 0,
        counter: NO_COUNTER,
        backup_hash: [0; 32],
    };

    /// Whether the kernel slot may be executed.
    pub fn is_whole(&self) -> bool {
        self.slot != Slot::Dirty
    }

    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut o = [0u8; RECORD_LEN];
        o[0] = self.slot as u8;
        o[1] = RECORD_FORMAT;
        o[2..4].copy_from_slice(&self.pages.to_le_bytes());
        o[4..8].copy_from_slice(&self.floor.to_le_bytes());
        o[8..12].copy_from_slice(&self.counter.to_le_bytes());
        o[12..44].copy_from_slice(&self.backup_hash);
        let crc = crc32(&o[..44]);
        o[44..48].copy_from_slice(&crc.to_le_bytes());
        o
    }

    /// `None` for an erased, torn or foreign record.
    pub fn decode(b: &[u8; RECORD_LEN]) -> Option<SlotState> {
        let w = |a: usize| u32::from_le_bytes([b[a], b[a + 1], b[a + 2], b[a + 3]]);
        if b[1] != RECORD_FORMAT || w(44) != crc32(&b[..44]) {
            return None;
        }
        let slot = match b[0] {
            1 => Slot::Whole,
            2 => Slot::Dirty,
            3 => Slot::Trial,
            _ => return None,
        };
        let mut backup_hash = [0; 32];
        backup_hash.copy_from_slice(&b[12..44]);
        Some(SlotState {
            slot,
            pages: u16::from_le_bytes([b[2], b[3]]),
            floor: w(4),
            counter: w(8),
            backup_hash,
        })
    }
}

fn slot_at<F: NorFlash>(f: &mut F, page: Region, i: u32) -> Result<[u8; RECORD_LEN], F::Error> {
    let mut b = [0u8; RECORD_LEN];
    f.read(page.start + i * RECORD_LEN as u32, &mut b)?;
    Ok(b)
}

/// Whether slot `i`'s first word is erased. A record's first word never is (format byte), and
/// a record is programmed word by word from the first.
fn starts_erased<F: NorFlash>(f: &mut F, page: Region, i: u32) -> Result<bool, F::Error> {
    let mut w = [0u8; 4];
    f.read(page.start + i * RECORD_LEN as u32, &mut w)?;
    Ok(w == [0xFF; 4])
}

/// The newest state ([`SlotState::NEW`] when none) and the index of the slot the next record
/// goes into (`None`: the page is full).
///
/// Records are appended in order, so slots `[0, used)` are written and the rest erased: their
/// first words find `used` (4-byte reads: internal flash is read byte by byte, and the whole
/// page would cost about 0.3 ms of every boot), and the newest record is the slot before. When that slot is not a whole record (a cut inside its write, or a torn page
/// erase left garbage), every slot is read: the newest is the last whole record before the last
/// written slot.
pub fn read<F: NorFlash>(f: &mut F, page: Region) -> Result<(SlotState, Option<u32>), F::Error> {
    let slots = page.len / RECORD_LEN as u32;
    let mut used = 0;
    while used < slots && !starts_erased(f, page, used)? {
        used += 1;
    }
    if used > 0 {
        if let Some(s) = SlotState::decode(&slot_at(f, page, used - 1)?) {
            return Ok((s, (used < slots).then_some(used)));
        }
        used = 0;
        for i in 0..slots {
            if !is_erased(&slot_at(f, page, i)?) {
                used = i + 1;
            }
        }
    }
    let free = (used < slots).then_some(used);
    let mut i = used;
    while i > 0 {
        i -= 1;
        if let Some(s) = SlotState::decode(&slot_at(f, page, i)?) {
            return Ok((s, free));
        }
    }
    Ok((SlotState::NEW, free))
}

/// Records kept free when the kernel slot starts being written: the records written while it
/// is half written (a finish with the staged image changes `pages`) go there, so the page is
/// never erased then (a cut inside that erase would forget that the slot is half written).
pub const RESERVE: u32 = 4;

/// Appends `st` (erasing the page first when it is full, or when `st` starts a write of the
/// kernel slot and fewer than [`RESERVE`] slots are free) and reads it back: `Ok(false)` when it
/// did not read back (the state did not advance; the next write takes the next slot).
pub fn write<F: NorFlash>(f: &mut F, page: Region, st: &SlotState) -> Result<bool, F::Error> {
    let (cur, free) = read(f, page)?;
    if cur == *st {
        return Ok(true);
    }
    let room = if st.slot == Slot::Dirty && cur.slot != Slot::Dirty {
        RESERVE
    } else {
        1
    };
    let at = match free {
        Some(i) if i + room <= page.len / RECORD_LEN as u32 && is_erased(&slot_at(f, page, i)?) => {
            i
        }
        _ => {
            f.erase(page.start, page.end())?;
            0
        }
    };
    f.write(page.start + at * RECORD_LEN as u32, &st.encode())?;
    Ok(read(f, page)?.0 == *st)
}
