//! The bootloader's journal in QSPI: append-only, sequence-numbered, CRC'd 64-byte records in a
//! ring of 4 KiB sectors. Every record is a full snapshot of the bootloader's state, so the newest
//! valid record alone says what to do next; it is also the status record the kernel reads.
//!
//! Why it survives power cuts: a record is written into a slot that reads all 0xFF, and only a
//! complete program passes its CRC; a torn record is skipped and the next record goes to the next
//! erased slot. The ring moves to the next sector only when the current one is full, so the
//! sector being erased never holds the newest record; a torn erase leaves the newest record
//! untouched and the erase is simply redone.

use crate::layout::{Region, PAGE};
use control_area::{crc32, is_erased};
use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use ota_image::WordAligned;

/// Bytes per journal record.
pub const RECORD_LEN: usize = 64;
/// Format byte at offset 7: identifies version 1 of the journal record.
pub const RECORD_FORMAT: u8 = 0xB1;
/// Written in `security_counter` when the image has none.
pub const NO_COUNTER: u32 = u32::MAX;

/// What the bootloader is doing or last did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Copying the staged payload into the kernel slot (progress in `installed`/`backed_up`).
    Installing,
    /// The new kernel is installed and booting unconfirmed; `attempts` boots so far.
    Trial,
    /// The trial kernel confirmed itself; the security-counter floor is raised.
    Confirmed,
    /// Copying the previous kernel back from the revert slot.
    Reverting,
    /// The previous kernel is back; `reason` says why.
    Reverted,
    /// The staged image was refused and nothing was installed; `reason` says why.
    Rejected,
    /// A revert was due but the revert slot failed its check against the hash the bootloader
    /// recorded in internal flash (`reason` BackupInvalid): the verified new kernel stays.
    Kept,
}

impl State {
    /// Every state, in the order of their codes (1 up): for tests and fuzzing that pick one.
    pub const ALL: [State; 7] = [
        State::Installing,
        State::Trial,
        State::Confirmed,
        State::Reverting,
        State::Reverted,
        State::Rejected,
        State::Kept,
    ];

    fn code(self) -> u8 {
        match self {
            State::Installing => 1,
            State::Trial => 2,
            State::Confirmed => 3,
            State::Reverting => 4,
            State::Reverted => 5,
            State::Rejected => 6,
            State::Kept => 7,
        }
    }
    fn from_code(c: u8) -> Option<State> {
        Some(match c {
            1 => State::Installing,
            2 => State::Trial,
            3 => State::Confirmed,
            4 => State::Reverting,
            5 => State::Reverted,
            6 => State::Rejected,
            7 => State::Kept,
            _ => return None,
        })
    }
}

/// Why an image was rejected or reverted (byte 5 of the record; 0 = none). Codes 1–25 name
/// each `ota_image::ImageError` kind; 32 and up are the boot flow's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    None = 0,
    /// Reading the staging slot failed.
    ReadFailed = 1,
    /// The staging slot is shorter than an image header.
    TruncatedHeader = 2,
    /// Header magic is not MCUboot's (`ota_image::IMAGE_MAGIC`).
    BadMagic = 3,
    /// `hdr_size` smaller than the header.
    HeaderSizeTooSmall = 4,
    /// `hdr_size` past the slot.
    HeaderBeyondSlot = 5,
    /// Header plus payload past the slot.
    PayloadBeyondSlot = 6,
    /// Protected TLV area size differs from the header's.
    ProtectedTlvSizeMismatch = 7,
    /// No TLV info magic after the payload.
    BadTlvInfoMagic = 8,
    /// A TLV area shorter than its own header.
    BadTlvAreaLength = 9,
    /// A TLV area past the slot.
    TlvAreaBeyondSlot = 10,
    /// A TLV entry past its area.
    TlvPastAreaEnd = 11,
    /// A known TLV with the wrong length.
    BadTlvLength = 12,
    /// A known TLV twice.
    DuplicateTlv = 13,
    /// The security counter outside the protected area.
    TlvNotProtected = 14,
    /// No SHA-256 TLV.
    MissingHash = 15,
    /// No signature TLV.
    MissingSignature = 16,
    /// No KEYHASH/PUBKEY TLV.
    MissingKeyId = 17,
    /// Signed with another key.
    KeyMismatch = 18,
    /// The SHA-256 over header, payload and protected TLVs does not match.
    HashMismatch = 19,
    /// The signature is not valid DER.
    BadSignatureEncoding = 20,
    /// The signature does not verify with the embedded key.
    BadSignature = 21,
    /// Security counter below the stored floor.
    Downgrade = 22,
    /// The payload does not fit the kernel slot.
    TooLarge = 23,
    /// The header's load address is neither 0 nor the kernel slot address.
    WrongLoadAddress = 24,
    /// Encrypted, compressed or non-bootable image.
    UnsupportedFlags = 25,
    /// The staged image's hash or length differs from the boot request's.
    RequestMismatch = 32,
    /// The installed bytes did not read back as the verified image.
    InstallVerifyFailed = 33,
    /// The trial kernel did not confirm within the allowed boots.
    NotConfirmed = 34,
    /// The trial kernel was reset by the watchdog.
    WatchdogReset = 35,
    /// The staged image changed or failed verification while an install was being resumed.
    StagingChanged = 36,
    /// Inconsistent image structure not covered above.
    Malformed = 37,
    /// The revert slot did not match the hash recorded in internal flash when it was made.
    BackupInvalid = 38,
    /// The journal disagreed with the bootloader's internal state (lost, or forged).
    JournalMismatch = 39,
    /// Anything else.
    Other = 255,
}

impl Reason {
    const ALL: [Reason; 35] = {
        use Reason::*;
        [
            None,
            ReadFailed,
            TruncatedHeader,
            BadMagic,
            HeaderSizeTooSmall,
            HeaderBeyondSlot,
            PayloadBeyondSlot,
            ProtectedTlvSizeMismatch,
            BadTlvInfoMagic,
            BadTlvAreaLength,
            TlvAreaBeyondSlot,
            TlvPastAreaEnd,
            BadTlvLength,
            DuplicateTlv,
            TlvNotProtected,
            MissingHash,
            MissingSignature,
            MissingKeyId,
            KeyMismatch,
            HashMismatch,
            BadSignatureEncoding,
            BadSignature,
            Downgrade,
            TooLarge,
            WrongLoadAddress,
            UnsupportedFlags,
            RequestMismatch,
            InstallVerifyFailed,
            NotConfirmed,
            WatchdogReset,
            StagingChanged,
            Malformed,
            BackupInvalid,
            JournalMismatch,
            Other,
        ]
    };

    /// The reason with code `c`; unknown codes read as `Other`.
    pub fn from_code(c: u8) -> Reason {
        Self::ALL
            .iter()
            .copied()
            .find(|r| *r as u8 == c)
            .unwrap_or(Reason::Other)
    }
}

/// One journal record: the bootloader's full state after a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalRecord {
    /// Journal sequence: strictly increasing; the highest valid one is current.
    pub sequence: u32,
    pub state: State,
    pub reason: Reason,
    /// Trial boots started (Trial), otherwise 0.
    pub attempts: u8,
    /// Sequence of the newest boot request handled (control-area record sequence).
    pub request_sequence: u32,
    /// SHA-256 TLV value of the image being installed / in trial / confirmed / rejected.
    pub image_hash: [u8; 32],
    /// Payload bytes of that image.
    pub payload_len: u32,
    /// Offset of the payload in the staging slot (the header size).
    pub payload_offset: u16,
    /// Kernel-slot pages that hold the new payload (Installing) — all pages below it are done.
    pub installed: u16,
    /// Kernel-slot pages whose previous contents are safely in the revert slot.
    pub backed_up: u16,
    /// The image's security counter, or `NO_COUNTER`.
    pub security_counter: u32,
}

impl JournalRecord {
    /// A record with every field zero (state Rejected, no counter), to build others from.
    pub const EMPTY: JournalRecord = JournalRecord {
        sequence: 0,
        state: State::Rejected,
        reason: Reason::None,
        attempts: 0,
        request_sequence: 0,
        image_hash: [0; 32],
        payload_len: 0,
        payload_offset: 0,
        installed: 0,
        backed_up: 0,
        security_counter: NO_COUNTER,
    };

    /// Byte layout (little-endian): sequence u32 | state u8 | reason u8 | attempts u8 |
    /// format 0xB1 | request_sequence u32 | image_hash [32] | payload_len u32 |
    /// payload_offset u16 | installed u16 | backed_up u16 | 0xFFFF | security_counter u32 |
    /// crc32 u32 over bytes 0..60.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut o = [0xFF; RECORD_LEN];
        o[0..4].copy_from_slice(&self.sequence.to_le_bytes());
        o[4] = self.state.code();
        o[5] = self.reason as u8;
        o[6] = self.attempts;
        o[7] = RECORD_FORMAT;
        o[8..12].copy_from_slice(&self.request_sequence.to_le_bytes());
        o[12..44].copy_from_slice(&self.image_hash);
        o[44..48].copy_from_slice(&self.payload_len.to_le_bytes());
        o[48..50].copy_from_slice(&self.payload_offset.to_le_bytes());
        o[50..52].copy_from_slice(&self.installed.to_le_bytes());
        o[52..54].copy_from_slice(&self.backed_up.to_le_bytes());
        o[56..60].copy_from_slice(&self.security_counter.to_le_bytes());
        let crc = crc32(&o[..60]);
        o[60..64].copy_from_slice(&crc.to_le_bytes());
        o
    }

    /// `None` for an erased, torn or foreign slot.
    pub fn decode(b: &[u8; RECORD_LEN]) -> Option<JournalRecord> {
        if !is_record(b) {
            return None;
        }
        Self::parse(b)
    }

    /// The fields of `b`, without the format and CRC checks.
    fn parse(b: &[u8; RECORD_LEN]) -> Option<JournalRecord> {
        let w = |a: usize| u32::from_le_bytes([b[a], b[a + 1], b[a + 2], b[a + 3]]);
        let h = |a: usize| u16::from_le_bytes([b[a], b[a + 1]]);
        let mut image_hash = [0; 32];
        image_hash.copy_from_slice(&b[12..44]);
        Some(JournalRecord {
            sequence: w(0),
            state: State::from_code(b[4])?,
            reason: Reason::from_code(b[5]),
            attempts: b[6],
            request_sequence: w(8),
            image_hash,
            payload_len: w(44),
            payload_offset: h(48),
            installed: h(50),
            backed_up: h(52),
            security_counter: w(56),
        })
    }

    /// The image's security counter, if it has one.
    pub fn counter(&self) -> Option<u32> {
        (self.security_counter != NO_COUNTER).then_some(self.security_counter)
    }
}

/// The journal's in-RAM view: the newest record and where the next one goes.
pub struct Journal {
    region: Region,
    newest: Option<(u32, JournalRecord)>,
    /// Offset (in the region) of the next erased slot in the newest record's sector.
    next_free: Option<u32>,
}

/// Whether `b` holds a whole record: format byte, a known state and the CRC.
fn is_record(b: &[u8; RECORD_LEN]) -> bool {
    let crc = u32::from_le_bytes([b[60], b[61], b[62], b[63]]);
    b[7] == RECORD_FORMAT && State::from_code(b[4]).is_some() && crc == crc32(&b[..60])
}

/// Slots read with one QSPI read: an aligned block of a sector. A read costs a fixed command
/// overhead (a few hundred instructions) and 4 µs of transfer per slot at 32 MHz quad I/O.
const BLOCK_SLOTS: u32 = 4;
/// Bytes of one such block.
pub(crate) const BLOCK: u32 = BLOCK_SLOTS * RECORD_LEN as u32;

/// The first index in `lo..hi` where `holds` is true, or `hi`, for a predicate that is false up
/// to some index and true from there on. Probes `lo`, `lo + 1`, `lo + 3`, `lo + 7`, ...
/// and then halves the last gap, so a short log costs one or two probes and a full sector about
/// five, instead of one read per block.
pub(crate) fn first_where<E>(
    mut lo: u32,
    mut hi: u32,
    mut holds: impl FnMut(u32) -> Result<bool, E>,
) -> Result<u32, E> {
    let base = lo;
    let mut reach = 1;
    while lo < hi {
        let probe = (base + reach - 1).min(hi - 1);
        if holds(probe)? {
            hi = probe;
            break;
        }
        lo = probe + 1;
        reach *= 2;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if holds(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// One slot's bytes, word aligned so the QSPI driver moves them by EasyDMA straight into it
/// rather than through its bounce buffer.
pub(crate) type SlotBuf = WordAligned<RECORD_LEN>;

/// Consecutive 64-byte slots of one 4 KiB sector (journal or request sector), read with one
/// QSPI read (word aligned, as [`SlotBuf`]).
#[repr(C, align(4))]
pub(crate) struct SlotWindow {
    slots: [[u8; RECORD_LEN]; BLOCK_SLOTS as usize],
    /// A slot read again on its own.
    spare: SlotBuf,
    /// Region offset of `slots[0]`; `u32::MAX` before the first read.
    start: u32,
}

impl SlotWindow {
    pub(crate) fn new() -> Self {
        SlotWindow {
            slots: [[0; RECORD_LEN]; BLOCK_SLOTS as usize],
            spare: WordAligned([0; RECORD_LEN]),
            start: u32::MAX,
        }
    }

    /// The slot at region offset `off`, reading its block if the window does not hold it.
    pub(crate) fn slot<F: ReadNorFlash>(
        &mut self,
        f: &mut F,
        region: Region,
        off: u32,
    ) -> Result<&[u8; RECORD_LEN], F::Error> {
        let start = off - off % BLOCK;
        if self.start != start {
            self.start = u32::MAX;
            f.read(region.start + start, self.slots.as_flattened_mut())?;
            self.start = start;
        }
        Ok(&self.slots[(off % BLOCK) as usize / RECORD_LEN])
    }

    /// Whether the block of slots starting at `off` (block aligned) reads all erased.
    pub(crate) fn block_erased<F: ReadNorFlash>(
        &mut self,
        f: &mut F,
        region: Region,
        off: u32,
    ) -> Result<bool, F::Error> {
        self.slot(f, region, off)?;
        Ok(is_erased(self.slots.as_flattened()))
    }

    /// Reads the slot at `off` again, on its own.
    pub(crate) fn reread<F: ReadNorFlash>(
        &mut self,
        f: &mut F,
        region: Region,
        off: u32,
    ) -> Result<&[u8; RECORD_LEN], F::Error> {
        f.read(region.start + off, &mut self.spare.0)?;
        Ok(&self.spare.0)
    }

    /// Reads the slot at `off` on its own into `spare`: whether it holds a valid record.
    fn valid_alone<F: ReadNorFlash>(
        &mut self,
        f: &mut F,
        region: Region,
        off: u32,
    ) -> Result<bool, F::Error> {
        f.read(region.start + off, &mut self.spare.0)?;
        Ok(is_record(&self.spare.0))
    }

    /// Judges the slot at `off` (read through [`SlotWindow::slot`]). A slot that is neither
    /// erased nor valid is read again: a transient read error must not hide the newest record
    /// (acting on an older one would redo steps).
    fn judge<F: ReadNorFlash>(
        &mut self,
        f: &mut F,
        region: Region,
        off: u32,
    ) -> Result<Slot<'_>, F::Error> {
        self.slot(f, region, off)?;
        let held = &self.slots[(off - self.start) as usize / RECORD_LEN];
        if is_erased(held) {
            return Ok(Slot::Erased);
        }
        if is_record(held) {
            return Ok(Slot::Valid(held));
        }
        for _ in 0..2 {
            f.read(region.start + off, &mut self.spare.0)?;
            if is_erased(&self.spare.0) {
                return Ok(Slot::Erased);
            }
            if is_record(&self.spare.0) {
                return Ok(Slot::Valid(&self.spare.0));
            }
        }
        Ok(Slot::Other)
    }
}

/// What a slot holds.
enum Slot<'a> {
    Erased,
    /// A whole record; its bytes.
    Valid(&'a [u8; RECORD_LEN]),
    /// Torn or foreign.
    Other,
}

/// Reads the slot at `addr`.
fn read_slot<F: ReadNorFlash>(f: &mut F, addr: u32) -> Result<[u8; RECORD_LEN], F::Error> {
    let mut b = WordAligned([0; RECORD_LEN]);
    f.read(addr, &mut b.0)?;
    Ok(b.0)
}

/// Copies `src` into `dst`; one out-of-line copy instead of one inlined per use.
#[inline(never)]
fn keep(dst: &mut SlotBuf, src: &[u8; RECORD_LEN]) {
    dst.0 = *src;
}

/// The sequence field of a record's bytes.
fn sequence_of(b: &[u8; RECORD_LEN]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl Journal {
    /// Finds the newest record. Records within a sector are appended in sequence order and
    /// sectors are opened in ring order, so the sector whose first valid record is the newest
    /// holds the newest record, and there it is the last valid one. Leftovers of an
    /// interrupted erase are older than every record of the sector before it.
    ///
    /// Reads, four slots per QSPI read: the first slots of each sector in ring order until
    /// the ring's newest sector is passed (see below), then the newest sector from its first
    /// record on until four erased slots in a row (an append tries at most four slots, so no
    /// record follows them), judging only "erased or not"; CRCs are checked from the last
    /// written slot down until one is valid.
    #[inline(never)]
    pub fn scan<F: ReadNorFlash>(f: &mut F, region: Region) -> Result<Journal, F::Error> {
        let mut w = SlotWindow::new();
        // The newest record so far: its offset and bytes.
        let mut newest = WordAligned([0; RECORD_LEN]);
        let mut newest_at = None;
        // Sectors in ring order: first records grow from the oldest sector to the newest; the
        // one after the newest holds none or an older one (it is the oldest, or being erased).
        // So the first sector without a record, or with an older one than the sector before,
        // ends the search. Before the first record, only two empty sectors in a row do: one
        // can be the oldest being erased, two mean the ring has not come round.
        let mut sector = 0;
        let mut empty_before = false;
        while sector + PAGE <= region.len {
            // The first valid record of this sector; four erased slots in a row end the search.
            let mut off = sector;
            let mut erased = 0;
            let mut first = None;
            while off < sector + PAGE && erased < 4 {
                // Most sectors of a used ring start with a valid record: read that slot alone
                // (64 bytes, not the window's four slots) and read the block only if it is not.
                let judged =
                    if off == sector && w.start != sector && w.valid_alone(f, region, off)? {
                        Slot::Valid(&w.spare.0)
                    } else {
                        w.judge(f, region, off)?
                    };
                match judged {
                    Slot::Valid(b) => {
                        first = Some(sequence_of(b));
                        if newest_at.is_none() || sequence_of(b) > sequence_of(&newest.0) {
                            keep(&mut newest, b);
                            newest_at = Some(off);
                        }
                        break;
                    }
                    Slot::Erased => erased += 1,
                    Slot::Other => erased = 0,
                }
                off += RECORD_LEN as u32;
            }
            let older = first.is_some_and(|s| s < sequence_of(&newest.0));
            if older || first.is_none() && (newest_at.is_some() || empty_before) {
                break;
            }
            empty_before = first.is_none();
            sector += PAGE;
        }
        let Some(first) = newest_at else {
            return Ok(Journal {
                region,
                newest: None,
                next_free: None,
            });
        };
        let sector = first - first % PAGE;
        let end = sector + PAGE;
        // The last written slot of the newest sector. An append tries at most four slots, so four
        // erased slots in a row end the log and nothing after them is written: the first fully
        // erased aligned block lies past the end, every block after it is erased too, and the
        // block before it holds the last written slot.
        let blocks_from = (first - sector) / BLOCK + 1;
        let erased_block = first_where(blocks_from, PAGE / BLOCK, |b| {
            w.block_erased(f, region, sector + b * BLOCK)
        })?;
        let mut last = sector + erased_block * BLOCK - RECORD_LEN as u32;
        while last > first && is_erased(w.slot(f, region, last)?) {
            last -= RECORD_LEN as u32;
        }
        // The newest record is the last valid one: judge slots from the last written down.
        while last > first {
            if let Slot::Valid(b) = w.judge(f, region, last)? {
                keep(&mut newest, b);
                break;
            }
            last -= RECORD_LEN as u32;
        }
        // The next record goes into the first erased slot after it: at most one past the last
        // written, if that is still inside the sector.
        let mut free = last + RECORD_LEN as u32;
        while free < end && !is_erased(w.slot(f, region, free)?) {
            free += RECORD_LEN as u32;
        }
        Ok(Journal {
            region,
            newest: JournalRecord::parse(&newest.0).map(|r| (last, r)),
            next_free: (free < end).then_some(free),
        })
    }

    pub fn newest(&self) -> Option<&JournalRecord> {
        self.newest.as_ref().map(|(_, r)| r)
    }

    /// Appends `record` (its sequence is assigned here) and reads it back. A slot that does not
    /// read back correctly is left behind and the next one is tried; `Ok(None)` after four bad
    /// slots in a row (the state did not advance).
    pub fn append<F: NorFlash>(
        &mut self,
        f: &mut F,
        mut record: JournalRecord,
    ) -> Result<Option<JournalRecord>, F::Error> {
        record.sequence = self.newest.map_or(1, |(_, n)| n.sequence.wrapping_add(1));
        let bytes = record.encode();
        for _ in 0..4 {
            let off = match self.next_free {
                Some(off) => off,
                None => self.open_next_sector(f)?,
            };
            f.write(self.region.start + off, &bytes)?;
            let back = read_slot(f, self.region.start + off)?;
            let next = off + RECORD_LEN as u32;
            self.next_free = (!next.is_multiple_of(PAGE)).then_some(next);
            if back == bytes {
                self.newest = Some((off, record));
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// Erases the sector after the newest record's (the oldest in the ring) and returns its
    /// first slot. The newest record is never in it.
    fn open_next_sector<F: NorFlash>(&mut self, f: &mut F) -> Result<u32, F::Error> {
        let sectors = self.region.len / PAGE;
        let sector = match self.newest {
            Some((at, _)) => (at / PAGE + 1) % sectors,
            None => 0,
        };
        let start = sector * PAGE;
        let mut blank = true;
        let mut off = 0;
        while off < PAGE && blank {
            let slot = read_slot(f, self.region.start + start + off)?;
            blank = is_erased(&slot);
            off += RECORD_LEN as u32;
        }
        if !blank {
            f.erase(self.region.start + start, self.region.start + start + PAGE)?;
        }
        Ok(start)
    }
}

/// The status the kernel reads: the newest valid journal record, `None` before the first update.
pub fn read_status<F: ReadNorFlash>(
    f: &mut F,
    journal: Region,
) -> Result<Option<JournalRecord>, F::Error> {
    Ok(Journal::scan(f, journal)?.newest.map(|(_, r)| r))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> JournalRecord {
        JournalRecord {
            sequence: 9,
            state: State::Installing,
            reason: Reason::None,
            attempts: 0,
            request_sequence: 4,
            image_hash: [0xA5; 32],
            payload_len: 12345,
            payload_offset: 0x200,
            installed: 2,
            backed_up: 3,
            security_counter: NO_COUNTER,
        }
    }

    #[test]
    fn all_lists_every_state_a_record_can_hold() {
        for c in 0..=u8::MAX {
            let listed = usize::from(c)
                .checked_sub(1)
                .and_then(|i| State::ALL.get(i).copied());
            assert_eq!(State::from_code(c), listed, "code {c}");
        }
        for s in State::ALL {
            assert_eq!(State::from_code(s.code()), Some(s));
        }
    }

    #[test]
    fn first_where_finds_the_boundary_with_few_probes() {
        for lo in 0..20u32 {
            for hi in lo..40 {
                for boundary in lo..=hi {
                    let mut probes = 0;
                    let got = first_where(lo, hi, |i| {
                        assert!((lo..hi).contains(&i), "probe {i} outside {lo}..{hi}");
                        probes += 1;
                        Ok::<_, ()>(i >= boundary)
                    })
                    .unwrap();
                    assert_eq!(got, boundary, "{lo}..{hi}");
                    let span = hi - lo + 1;
                    assert!(probes <= 2 * (32 - span.leading_zeros()), "{probes} probes");
                }
            }
        }
        // A boundary next to the start costs one or two probes.
        let mut probes = 0;
        first_where(1, 16, |i| {
            probes += 1;
            Ok::<_, ()>(i >= 2)
        })
        .unwrap();
        assert!(probes <= 2);
    }

    #[test]
    fn records_round_trip_and_every_bit_flip_is_rejected() {
        let r = sample();
        let b = r.encode();
        assert_eq!(JournalRecord::decode(&b), Some(r));
        assert_eq!(JournalRecord::decode(&[0xFF; RECORD_LEN]), None);
        for bit in 0..RECORD_LEN * 8 {
            let mut t = b;
            t[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(JournalRecord::decode(&t), None, "bit {bit}");
        }
    }

    /// NOR flash in RAM: erase to 0xFF, programs only clear bits. The next operation can be
    /// made to fail the way a power cut or a bad program does.
    struct Nor {
        bytes: std::vec::Vec<u8>,
        fault: Option<Fault>,
        /// The next erase is torn (power cut half way).
        torn_erase: bool,
        rng: rand_chacha::ChaCha8Rng,
    }

    #[derive(Clone, Copy, Debug)]
    enum Fault {
        /// A random part of the program lands, then the power is cut.
        TornWrite,
        /// The program does nothing but reports success (the read-back catches it).
        LostWrite,
    }

    const CUT: embedded_storage::nor_flash::NorFlashErrorKind =
        embedded_storage::nor_flash::NorFlashErrorKind::Other;

    impl embedded_storage::nor_flash::ErrorType for Nor {
        type Error = embedded_storage::nor_flash::NorFlashErrorKind;
    }
    impl ReadNorFlash for Nor {
        const READ_SIZE: usize = 1;
        fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
            let at = offset as usize;
            bytes.copy_from_slice(&self.bytes[at..at + bytes.len()]);
            Ok(())
        }
        fn capacity(&self) -> usize {
            self.bytes.len()
        }
    }
    impl NorFlash for Nor {
        const WRITE_SIZE: usize = 1;
        const ERASE_SIZE: usize = PAGE as usize;
        fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
            use rand::Rng;
            let torn = core::mem::take(&mut self.torn_erase);
            for b in &mut self.bytes[from as usize..to as usize] {
                if !torn || self.rng.gen_bool(0.5) {
                    *b = 0xFF;
                }
            }
            if torn {
                Err(CUT)
            } else {
                Ok(())
            }
        }
        fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error> {
            use rand::Rng;
            let fault = self.fault.take();
            if matches!(fault, Some(Fault::LostWrite)) {
                return Ok(());
            }
            let torn = matches!(fault, Some(Fault::TornWrite));
            for (b, &d) in self.bytes[offset as usize..].iter_mut().zip(data) {
                *b &= if torn { d | self.rng.gen::<u8>() } else { d };
            }
            if torn {
                Err(CUT)
            } else {
                Ok(())
            }
        }
    }

    /// The scan as it was before it read in blocks and stopped early: the first valid record
    /// of every sector, then every slot of the sector whose first record is newest, then the
    /// first erased slot after the newest record.
    fn full_scan(bytes: &[u8], region: Region) -> (Option<(u32, JournalRecord)>, Option<u32>) {
        let slot = |off: u32| -> &[u8; RECORD_LEN] {
            let at = (region.start + off) as usize;
            bytes[at..at + RECORD_LEN].try_into().unwrap()
        };
        let mut newest: Option<(u32, JournalRecord)> = None;
        let keep = |off, newest: &mut Option<(u32, JournalRecord)>| {
            if let Some(r) = JournalRecord::decode(slot(off)) {
                if newest.is_none_or(|(_, n)| r.sequence > n.sequence) {
                    *newest = Some((off, r));
                }
                return true;
            }
            false
        };
        for sector in (0..region.len).step_by(PAGE as usize) {
            let (mut off, mut erased) = (sector, 0);
            while off < sector + PAGE && erased < 4 {
                if keep(off, &mut newest) {
                    break;
                }
                erased = if is_erased(slot(off)) { erased + 1 } else { 0 };
                off += RECORD_LEN as u32;
            }
        }
        let Some((first, _)) = newest else {
            return (None, None);
        };
        let end = first - first % PAGE + PAGE;
        for off in (first..end).step_by(RECORD_LEN) {
            keep(off, &mut newest);
        }
        let at = newest.unwrap().0;
        let free = (at + RECORD_LEN as u32..end)
            .step_by(RECORD_LEN)
            .find(|&off| is_erased(slot(off)));
        (newest, free)
    }

    /// Appends with torn and lost writes and torn erases, rebooting (scanning again) after
    /// every failure: the scan always finds what the full scan finds, and the newest record
    /// is the last one appended.
    fn appends_survive_faults(region: Region, appends: usize, seed: u64) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut nor = Nor {
            bytes: std::vec![0xFF; (region.start + region.len) as usize],
            fault: None,
            torn_erase: false,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed + 1),
        };
        let mut journal = Journal::scan(&mut nor, region).unwrap();
        let mut last: Option<JournalRecord> = None;
        let mut wrapped = 0;
        let mut sector = None;
        for step in 0..appends {
            nor.fault = match rng.gen_range(0..20) {
                0 => Some(Fault::TornWrite),
                1 => Some(Fault::LostWrite),
                _ => None,
            };
            nor.torn_erase = rng.gen_bool(0.3);
            let mut rec = sample();
            rec.installed = step as u16;
            // A failed append (power cut, or four slots that did not read back) leaves the
            // newest record as it was.
            if let Ok(Some(r)) = journal.append(&mut nor, rec) {
                last = Some(r);
            }
            nor.fault = None;
            nor.torn_erase = false;
            journal = Journal::scan(&mut nor, region).unwrap();
            let (newest, next_free) = full_scan(&nor.bytes, region);
            assert_eq!(
                (journal.newest, journal.next_free),
                (newest, next_free),
                "step {step}"
            );
            assert_eq!(journal.newest().copied(), last, "step {step}");
            let now = journal.newest.map(|(at, _)| at / PAGE);
            if sector.is_some_and(|s| s + 1 == region.len / PAGE) && now == Some(0) {
                wrapped += 1;
            }
            sector = now;
        }
        assert!(wrapped >= 2, "the ring came round only {wrapped} times");
    }

    #[test]
    fn the_scan_finds_the_newest_record_through_faults_on_a_small_and_a_dk_journal() {
        appends_survive_faults(Region::new(0x1000, 2 * PAGE), 500, 1);
        // The DK's journal (`boot_nrf::NRF52840_DK.journal`): 15 sectors after the request sector.
        appends_survive_faults(Region::new(0x1000, 0xF000), 3000, 2);
    }

    #[test]
    fn reason_codes_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r as u8), r);
        }
        assert_eq!(Reason::from_code(200), Reason::Other);
    }
}
