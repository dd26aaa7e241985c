//! A redo journal that makes each write of an internal-flash page atomic across power cuts.
//!
//! Upstream writes the app region through `NonvolatileToPages`, which on the nRF52 erases a
//! 4 KiB page and programs it again. A cut between the two leaves the page erased: a TBF header
//! there reads as version `0xFFFF`, the end of the app list, and every app after it disappears;
//! the bytes of a neighbouring binary that shares the page are lost. The journal keeps the new
//! page content in external flash before the page is touched, so a page is always either its
//! old content or its new one after the next boot's [`replay`](Journal::pending).
//!
//! External flash (three 4 KiB sectors, [`JournalLayout`]): `data` holds the page content being
//! written, `records` an append-only log of 32-byte records, one per page write:
//!
//! ```text
//! magic "TOAJ" | seq u32 | page address u32 | crc32(content) u32 | len u32 | 0xFF x4 |
//! crc32(bytes 0..24) u32 | done word (0xFFFF_FFFF while pending, 0 when done)
//! ```
//!
//! One page write ([`PageWrite`]) is: erase `data`, program the content there, program the
//! record (its first 28 bytes), erase the page, program the page, program the done word. A cut
//! before the record is complete leaves the page untouched (a torn record fails its CRC); from
//! the record on, the boot finds it pending and does the last three steps again (idempotent).
//! The record sector is erased when full, only between page writes (no record pending then).

use control_area::crc32;

/// Bytes of one internal-flash page (the nRF52840's NVMC erase unit).
pub const PAGE: usize = 4096;
/// Bytes of one journal record.
pub const RECORD_LEN: usize = 32;
/// Records in the record sector.
pub const SLOTS: u32 = (PAGE / RECORD_LEN) as u32;
const MAGIC: u32 = u32::from_le_bytes(*b"TOAJ");
/// Offset of the done word in a record.
const DONE_AT: u32 = 28;

/// Where the journal lives in external flash: three sector-aligned 4 KiB sectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalLayout {
    /// The page content being written.
    pub data: u32,
    /// The record log.
    pub records: u32,
    /// The app trial record (`crate::trial`).
    pub trial: u32,
}

impl JournalLayout {
    /// The nRF52840-DK (`docs/layout.md`): the three sectors below the staging slot.
    pub const NRF52840DK: JournalLayout = JournalLayout {
        data: 0x0F_D000,
        records: 0x0F_E000,
        trial: 0x0F_F000,
    };
}

/// What a program operation writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Data<'a> {
    /// The page content being written (the executor holds it: the journal does not borrow it,
    /// so a split-phase executor can hand its buffer to a driver).
    Page,
    /// These bytes (a record or its done word).
    Bytes(&'a [u8]),
}

/// One flash operation the journal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashOp<'a> {
    /// Erase the external-flash sector at `addr`.
    QspiErase { addr: u32 },
    /// Program `data` at external-flash `addr` (any length; the executor splits it into the
    /// chip's program pages).
    QspiProgram { addr: u32, data: Data<'a> },
    /// Erase the internal-flash page at `addr`.
    InternalErase { addr: u32 },
    /// Program the page content at internal-flash `addr`.
    InternalProgram { addr: u32 },
}

/// A page write the journal found pending at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub slot: u32,
    pub page: u32,
    pub crc: u32,
}

/// The record log's state: where the next record goes, its sequence, a pending write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Journal {
    layout: JournalLayout,
    next_slot: u32,
    next_seq: u32,
    pending: Option<Pending>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Journal {
    /// Read the record sector (`records`: its [`PAGE`] bytes) as found at boot.
    pub fn scan(layout: JournalLayout, records: &[u8]) -> Journal {
        let mut journal = Journal {
            layout,
            next_slot: 0,
            next_seq: 1,
            pending: None,
        };
        let mut newest: Option<(u32, Pending, bool)> = None;
        for (slot, record) in records.chunks_exact(RECORD_LEN).enumerate() {
            if record.iter().all(|&b| b == 0xFF) {
                continue;
            }
            // A slot that is not erased is used, valid or torn.
            journal.next_slot = slot as u32 + 1;
            if le32(record, 0) != MAGIC || le32(record, 24) != crc32(&record[..24]) {
                continue;
            }
            let seq = le32(record, 4);
            let done = le32(record, DONE_AT as usize) != u32::MAX;
            let entry = Pending {
                slot: slot as u32,
                page: le32(record, 8),
                crc: le32(record, 12),
            };
            if newest.is_none_or(|(s, _, _)| seq >= s) {
                newest = Some((seq, entry, done));
            }
        }
        if let Some((seq, entry, done)) = newest {
            journal.next_seq = seq.wrapping_add(1);
            if !done {
                journal.pending = Some(entry);
            }
        }
        journal
    }

    /// The page write a cut interrupted, if any: [`Journal::replay`] finishes it.
    pub fn pending(&self) -> Option<Pending> {
        self.pending
    }

    /// Finish the pending write: `data` is the journal's data sector as read (the page
    /// content, which the executor programs for [`Data::Page`]). If it does not match the
    /// record (cannot happen after a completed record, but a flash fault could), only the done
    /// word is written and the page is left as it is.
    pub fn replay(&mut self, data: &[u8]) -> Option<PageWrite> {
        let pending = self.pending.take()?;
        let content_ok = data.len() == PAGE && crc32(data) == pending.crc;
        Some(PageWrite {
            layout: self.layout,
            page: pending.page,
            slot: pending.slot,
            record: [0xFF; RECORD_LEN],
            // The done word even then: the next boot must not find it pending again (the
            // replay's reset would repeat at every boot).
            step: if content_ok {
                Step::ErasePage
            } else {
                Step::MarkDone
            },
        })
    }

    /// Write `content` (one [`PAGE`]) to the internal page at `page` atomically: the executor
    /// programs `content` for [`Data::Page`]. Call only with no write pending (replay first).
    pub fn write(&mut self, page: u32, content: &[u8]) -> PageWrite {
        debug_assert!(self.pending.is_none());
        let erase_records = self.next_slot >= SLOTS;
        if erase_records {
            self.next_slot = 0;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut record = [0xFF; RECORD_LEN];
        record[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        record[4..8].copy_from_slice(&seq.to_le_bytes());
        record[8..12].copy_from_slice(&page.to_le_bytes());
        record[12..16].copy_from_slice(&crc32(content).to_le_bytes());
        record[16..20].copy_from_slice(&(content.len() as u32).to_le_bytes());
        let crc = crc32(&record[..24]);
        record[24..28].copy_from_slice(&crc.to_le_bytes());
        PageWrite {
            layout: self.layout,
            page,
            slot,
            record,
            step: if erase_records {
                Step::EraseRecords
            } else {
                Step::EraseData
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    EraseRecords,
    EraseData,
    ProgramData,
    ProgramRecord,
    ErasePage,
    ProgramPage,
    MarkDone,
    Done,
}

/// The flash operations of one journaled page write (or of its replay), in order: run each
/// [`PageWrite::next_op`] operation to completion before asking for the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageWrite {
    layout: JournalLayout,
    page: u32,
    slot: u32,
    record: [u8; RECORD_LEN],
    step: Step,
}

const DONE_WORD: [u8; 4] = [0; 4];

impl PageWrite {
    /// The next operation, or `None` when the page write is complete.
    pub fn next_op(&mut self) -> Option<FlashOp<'_>> {
        let record_at = self.layout.records + self.slot * RECORD_LEN as u32;
        let (op, next) = match self.step {
            Step::EraseRecords => (
                FlashOp::QspiErase {
                    addr: self.layout.records,
                },
                Step::EraseData,
            ),
            Step::EraseData => (
                FlashOp::QspiErase {
                    addr: self.layout.data,
                },
                Step::ProgramData,
            ),
            Step::ProgramData => (
                FlashOp::QspiProgram {
                    addr: self.layout.data,
                    data: Data::Page,
                },
                Step::ProgramRecord,
            ),
            Step::ProgramRecord => (
                FlashOp::QspiProgram {
                    addr: record_at,
                    data: Data::Bytes(&self.record[..DONE_AT as usize]),
                },
                Step::ErasePage,
            ),
            Step::ErasePage => (
                FlashOp::InternalErase { addr: self.page },
                Step::ProgramPage,
            ),
            Step::ProgramPage => (FlashOp::InternalProgram { addr: self.page }, Step::MarkDone),
            Step::MarkDone => (
                FlashOp::QspiProgram {
                    addr: record_at + DONE_AT,
                    data: Data::Bytes(&DONE_WORD),
                },
                Step::Done,
            ),
            Step::Done => return None,
        };
        self.step = next;
        Some(op)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    const LAYOUT: JournalLayout = JournalLayout {
        data: 0x1000,
        records: 0x2000,
        trial: 0x3000,
    };

    /// Run `write`'s operations on a QSPI image (`qspi`, from address 0), at most `limit` of
    /// them (a power cut after the last); the internal page operations are noted, not
    /// performed. The operations run, and whether the write ended.
    fn run(
        write: &mut PageWrite,
        qspi: &mut [u8],
        content: &[u8],
        limit: usize,
    ) -> (Vec<u8>, bool) {
        let mut kinds = Vec::new();
        for _ in 0..limit {
            let Some(op) = write.next_op() else {
                return (kinds, true);
            };
            match op {
                FlashOp::QspiErase { addr } => {
                    kinds.push(b'e');
                    qspi[addr as usize..][..PAGE].fill(0xFF);
                }
                FlashOp::QspiProgram { addr, data } => {
                    kinds.push(b'p');
                    let bytes = match data {
                        Data::Page => content,
                        Data::Bytes(bytes) => bytes,
                    };
                    for (cell, byte) in qspi[addr as usize..].iter_mut().zip(bytes) {
                        *cell &= byte;
                    }
                }
                FlashOp::InternalErase { .. } => kinds.push(b'E'),
                FlashOp::InternalProgram { .. } => kinds.push(b'P'),
            }
        }
        let ended = write.next_op().is_none();
        (kinds, ended)
    }

    #[test]
    fn a_replay_whose_copy_does_not_match_only_ends_the_record() {
        let mut qspi = vec![0xFF; 0x3000];
        let mut journal = Journal::scan(LAYOUT, &qspi[0x2000..0x3000]);
        let content = [0x5A; PAGE];
        let mut write = journal.write(0x8000, &content);
        // Cut after the record: erase data, program data, program record.
        assert_eq!(
            run(&mut write, &mut qspi, &content, 3),
            (b"epp".to_vec(), false)
        );
        // The data sector goes bad afterwards (a flash fault).
        qspi[0x1000] = 0;

        let mut after = Journal::scan(LAYOUT, &qspi[0x2000..0x3000]);
        assert!(after.pending().is_some());
        let data = qspi[0x1000..0x2000].to_vec();
        let mut replay = after.replay(&data).expect("a pending write replays");
        assert_eq!(
            run(&mut replay, &mut qspi, &data, 8),
            (b"p".to_vec(), true),
            "the done word only"
        );
        let again = Journal::scan(LAYOUT, &qspi[0x2000..0x3000]);
        assert_eq!(again.pending(), None, "the next boot finds nothing pending");
    }

    #[test]
    fn a_replay_whose_copy_matches_writes_the_page_and_ends_the_record() {
        let mut qspi = vec![0xFF; 0x3000];
        let mut journal = Journal::scan(LAYOUT, &qspi[0x2000..0x3000]);
        let content = [0x3C; PAGE];
        let mut write = journal.write(0x8000, &content);
        assert_eq!(
            run(&mut write, &mut qspi, &content, 4),
            (b"eppE".to_vec(), false)
        );
        let mut after = Journal::scan(LAYOUT, &qspi[0x2000..0x3000]);
        let data = qspi[0x1000..0x2000].to_vec();
        let mut replay = after.replay(&data).expect("a pending write replays");
        assert_eq!(
            run(&mut replay, &mut qspi, &data, 8),
            (b"EPp".to_vec(), true)
        );
        assert_eq!(Journal::scan(LAYOUT, &qspi[0x2000..0x3000]).pending(), None);
    }
}
