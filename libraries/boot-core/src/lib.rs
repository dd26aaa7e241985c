//! The tock-ota bootloader's logic, independent of the chip (the nRF52840 adapter and the DK's
//! layout are `boot-nrf`; the host harness on hardware models is `tools/boot-sim`): layout, journal, image validation,
//! back up, install, trial boot, confirm and revert. `no_std`, no alloc, blocking, generic over
//! `embedded-storage` flashes so the same code runs in the firmware and on host models.
//!
//! Entry point: [`boot`]. It reads the journal (QSPI), the kernel's request sector, and decides:
//! boot the kernel as it is, install a staged image and boot it as a trial, confirm a trial, or
//! revert. Every step is journaled before the flash it depends on is changed, so a power cut at
//! any point (or inside any flash operation) resumes on the next boot and ends in a whole kernel,
//! old or new. See `docs/bootloader.md`.
#![no_std]
#![forbid(unsafe_code)]

pub mod image;
pub mod journal;
pub mod layout;
pub mod ota;
pub mod state;
#[cfg(test)]
mod tests;

#[cfg(test)]
extern crate std;

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};
use ota_image::{Sha256, WordAligned};

pub use image::{CheckPolicy, CheckedImage, ImageChecker};
pub use journal::{read_status, Journal, JournalRecord, Reason, State};
pub use layout::{Layout, LayoutError, Region, PAGE};
pub use ota::OtaChecker;
pub use state::{Slot, SlotState};

/// QSPI NOR operations that run in the chip's background while the CPU does other work (the
/// nRF52840 NVMC stalls the CPU; the MX25R6435F erases and programs on its own).
pub trait BackgroundNor: NorFlash {
    /// Starts erasing the 4 KiB sector at `addr`.
    fn start_erase_sector(&mut self, addr: u32) -> Result<(), Self::Error>;
    /// Starts programming `data` (≤ 256 bytes, inside one 256-byte program page) at `addr`.
    fn start_program_page(&mut self, addr: u32, data: &[u8]) -> Result<(), Self::Error>;
    /// Whether the last started operation is still running.
    fn is_busy(&mut self) -> Result<bool, Self::Error>;
    /// Polls until idle.
    fn wait_idle(&mut self) -> Result<(), Self::Error> {
        while self.is_busy()? {}
        Ok(())
    }
}

/// Why the chip last reset, as far as the boot flow cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResetReason {
    /// The watchdog fired (on the nRF52840: RESETREAS.DOG, decoded by `boot-nrf`).
    pub watchdog: bool,
}

/// Everything [`boot`] needs.
pub struct BootEnv<'a, I, Q, C> {
    pub layout: &'a Layout,
    /// Internal flash (NVMC), absolute addresses.
    pub internal: &'a mut I,
    /// External QSPI NOR, chip offsets.
    pub qspi: &'a mut Q,
    /// Validates the staged image (key and signature verifier inside).
    pub checker: &'a C,
    pub reset_reason: ResetReason,
}

/// What the firmware does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootDecision {
    /// Address of the kernel's vector table (the kernel slot start).
    pub kernel_addr: u32,
    /// The kernel is an unconfirmed trial image.
    pub trial: bool,
    /// The status record the kernel will read (newest journal record).
    pub status: Option<JournalRecord>,
    /// The internal region to lock (ACL: no write, no erase) before jumping.
    pub lock: Region,
}

/// A failure the boot flow could not step around; the firmware resets and the journal resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The layout breaks an invariant.
    Layout(LayoutError),
    /// An internal-flash operation failed (power loss in simulation, or hardware fault).
    Internal(NorFlashErrorKind),
    /// A QSPI operation failed.
    Qspi(NorFlashErrorKind),
    /// A write outside the region a capability allows was attempted (a bug, refused).
    Denied,
    /// The journal could not be written (four slots failed to read back).
    JournalStuck,
    /// Copying kept failing verification; the kernel slot may hold a mix, retry next boot.
    CopyFailed,
    /// A state-page record did not read back (the next try writes the next slot).
    StateStuck,
    /// The kernel slot is half written and neither an authentic backup nor a valid staged image
    /// can make it whole: the firmware must not jump; it waits (and retries later).
    Unbootable,
}

fn ie<E: NorFlashError>(e: E) -> BootError {
    BootError::Internal(e.kind())
}
fn qe<E: NorFlashError>(e: E) -> BootError {
    BootError::Qspi(e.kind())
}

/// Permission to erase and program the kernel slot. Created only inside [`boot`] (private
/// field), so no other code path can write internal flash through [`SlotWriter`].
pub struct KernelWrite {
    slot: Region,
}

/// Permission to write the state page ([`state`]: floor, slot state, backup hash). Created only
/// inside [`boot`].
pub struct StateWrite {
    page: Region,
}

/// Internal flash as seen by the install and revert routines: only the capability's region.
struct SlotWriter<'a, F> {
    flash: &'a mut F,
    slot: Region,
}

impl<'a, F: NorFlash> SlotWriter<'a, F> {
    fn new(flash: &'a mut F, cap: &KernelWrite) -> Self {
        SlotWriter {
            flash,
            slot: cap.slot,
        }
    }
    fn erase_page(&mut self, addr: u32) -> Result<(), BootError> {
        if !self.slot.contains_abs(addr, PAGE) {
            return Err(BootError::Denied);
        }
        self.flash.erase(addr, addr + PAGE).map_err(ie)
    }
    fn write(&mut self, addr: u32, data: &[u8]) -> Result<(), BootError> {
        if !self.slot.contains_abs(addr, data.len() as u32) {
            return Err(BootError::Denied);
        }
        self.flash.write(addr, data).map_err(ie)
    }
}

/// Bytes the NVMC programs between two polls of the background QSPI operation (32 words,
/// 1.3 ms at 41 µs per word: shorter than a QSPI page program in high-performance mode).
const PROGRAM_CHUNK: usize = 128;
/// QSPI page-program size.
const QSPI_PAGE: usize = 256;
/// Attempts at copying one page before giving up this boot.
const COPY_TRIES: u32 = 3;

/// Reads `buf.len()` bytes of QSPI at `addr` after waiting for the chip.
fn qread<Q: BackgroundNor>(q: &mut Q, addr: u32, buf: &mut [u8]) -> Result<(), BootError> {
    q.wait_idle().map_err(qe)?;
    q.read(addr, buf).map_err(qe)
}

/// Whether QSPI `[qaddr, +PAGE)` equals internal `[iaddr, +PAGE)`.
fn same_page<I: ReadNorFlash, Q: BackgroundNor>(
    internal: &mut I,
    iaddr: u32,
    q: &mut Q,
    qaddr: u32,
) -> Result<bool, BootError> {
    let mut a = [0u8; QSPI_PAGE];
    let mut b = [0u8; QSPI_PAGE];
    let mut off = 0;
    while off < PAGE {
        qread(q, qaddr + off, &mut a)?;
        internal.read(iaddr + off, &mut b).map_err(ie)?;
        if a != b {
            return Ok(false);
        }
        off += QSPI_PAGE as u32;
    }
    Ok(true)
}

/// Whether internal `[addr, +PAGE)` equals `data`.
fn internal_equals<I: ReadNorFlash>(
    internal: &mut I,
    addr: u32,
    data: &[u8; PAGE as usize],
) -> Result<bool, BootError> {
    let mut b = [0u8; QSPI_PAGE];
    for (i, chunk) in data.chunks_exact(QSPI_PAGE).enumerate() {
        internal
            .read(addr + (i * QSPI_PAGE) as u32, &mut b)
            .map_err(ie)?;
        if b != chunk {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether internal `[addr, +PAGE)` is erased (all 0xFF).
fn internal_blank<I: ReadNorFlash>(internal: &mut I, addr: u32) -> Result<bool, BootError> {
    let mut b = [0u8; QSPI_PAGE];
    let mut off = 0;
    while off < PAGE {
        internal.read(addr + off, &mut b).map_err(ie)?;
        if b.iter().any(|&x| x != 0xFF) {
            return Ok(false);
        }
        off += QSPI_PAGE as u32;
    }
    Ok(true)
}

/// A background backup of one kernel-slot page into the revert slot.
struct Backup {
    src: u32,
    dst: u32,
    /// Next 256-byte chunk to program; 16 = all started.
    chunk: u32,
    active: bool,
}

impl Backup {
    const IDLE: Backup = Backup {
        src: 0,
        dst: 0,
        chunk: 0,
        active: false,
    };

    /// Starts backing up internal `src` to QSPI `dst`; nothing to do if they already match.
    fn start<I: ReadNorFlash, Q: BackgroundNor>(
        internal: &mut I,
        q: &mut Q,
        src: u32,
        dst: u32,
    ) -> Result<Backup, BootError> {
        if same_page(internal, src, q, dst)? {
            return Ok(Backup::IDLE);
        }
        q.start_erase_sector(dst).map_err(qe)?;
        Ok(Backup {
            src,
            dst,
            chunk: 0,
            active: true,
        })
    }

    /// Issues the next program if the chip is free. The data is copied from internal flash into
    /// RAM first: EasyDMA cannot read flash.
    fn pump<I: ReadNorFlash, Q: BackgroundNor>(
        &mut self,
        internal: &mut I,
        q: &mut Q,
    ) -> Result<(), BootError> {
        if !self.active || q.is_busy().map_err(qe)? {
            return Ok(());
        }
        if self.chunk as usize == PAGE as usize / QSPI_PAGE {
            self.active = false;
            return Ok(());
        }
        let mut buf = [0u8; QSPI_PAGE];
        let off = self.chunk * QSPI_PAGE as u32;
        internal.read(self.src + off, &mut buf).map_err(ie)?;
        q.start_program_page(self.dst + off, &buf).map_err(qe)?;
        self.chunk += 1;
        Ok(())
    }

    fn finish<I: ReadNorFlash, Q: BackgroundNor>(
        &mut self,
        internal: &mut I,
        q: &mut Q,
    ) -> Result<(), BootError> {
        while self.active {
            q.wait_idle().map_err(qe)?;
            self.pump(internal, q)?;
        }
        q.wait_idle().map_err(qe)
    }
}

/// Backs up one page and verifies it, blocking.
fn backup_page<I: ReadNorFlash, Q: BackgroundNor>(
    internal: &mut I,
    q: &mut Q,
    src: u32,
    dst: u32,
) -> Result<(), BootError> {
    for _ in 0..COPY_TRIES {
        Backup::start(internal, q, src, dst)?.finish(internal, q)?;
        if same_page(internal, src, q, dst)? {
            return Ok(());
        }
    }
    Err(BootError::CopyFailed)
}

fn pages(len: u32) -> u32 {
    len.div_ceil(PAGE)
}

/// Writes one kernel-slot page with `data` unless it already holds it, pumping `backup`
/// between program chunks so the QSPI works while the NVMC does; verifies the result.
fn write_page<I: NorFlash, Q: BackgroundNor>(
    w: &mut SlotWriter<'_, I>,
    q: &mut Q,
    backup: &mut Backup,
    addr: u32,
    data: &[u8; PAGE as usize],
) -> Result<bool, BootError> {
    if internal_equals(w.flash, addr, data)? {
        return Ok(true);
    }
    if !internal_blank(w.flash, addr)? {
        backup.pump(w.flash, q)?;
        w.erase_page(addr)?;
    }
    for (i, chunk) in data.chunks_exact(PROGRAM_CHUNK).enumerate() {
        backup.pump(w.flash, q)?;
        if chunk.iter().any(|&b| b != 0xFF) {
            w.write(addr + (i * PROGRAM_CHUNK) as u32, chunk)?;
        }
    }
    backup.pump(w.flash, q)?;
    internal_equals(w.flash, addr, data)
}

/// Reads page `k` of the payload from the staging slot (0xFF past its end).
fn read_staged_page<Q: BackgroundNor>(
    q: &mut Q,
    layout: &Layout,
    payload_offset: u32,
    payload_len: u32,
    k: u32,
    buf: &mut [u8; PAGE as usize],
) -> Result<(), BootError> {
    buf.fill(0xFF);
    let start = k * PAGE;
    let n = (payload_len - start).min(PAGE) as usize;
    qread(
        q,
        layout.staging.start + payload_offset + start,
        &mut buf[..n],
    )
}

/// Installs the payload page by page from `rec.installed`, keeping `backed_up > installed`
/// before any kernel page is erased. Journals one record per page.
fn install<I: NorFlash, Q: BackgroundNor>(
    cap: &KernelWrite,
    layout: &Layout,
    internal: &mut I,
    q: &mut Q,
    journal: &mut Journal,
    mut rec: JournalRecord,
) -> Result<JournalRecord, BootError> {
    let n = pages(rec.payload_len);
    let slot = layout.kernel_slot.start;
    let revert = layout.revert.start;
    let off = rec.payload_offset as u32;
    let mut w = SlotWriter::new(internal, cap);
    let mut staged = [0u8; PAGE as usize];
    let mut k = rec.installed as u32;
    let mut backed = rec.backed_up as u32;
    while k < n {
        if backed <= k {
            backup_page(w.flash, q, slot + k * PAGE, revert + k * PAGE)?;
            backed = k + 1;
        }
        if rec.installed as u32 != k || rec.backed_up as u32 != backed {
            rec.installed = k as u16;
            rec.backed_up = backed as u16;
            rec = append(journal, q, rec)?;
        }
        read_staged_page(q, layout, off, rec.payload_len, k, &mut staged)?;
        let mut backup = if backed == k + 1 && k + 1 < n {
            Backup::start(w.flash, q, slot + (k + 1) * PAGE, revert + (k + 1) * PAGE)?
        } else {
            Backup::IDLE
        };
        let mut done = false;
        for _ in 0..COPY_TRIES {
            if write_page(&mut w, q, &mut backup, slot + k * PAGE, &staged)? {
                done = true;
                break;
            }
            // Re-read the source in case the read was the faulty part.
            read_staged_page(q, layout, off, rec.payload_len, k, &mut staged)?;
        }
        if !done {
            return Err(BootError::CopyFailed);
        }
        if backup.active || backed == k + 1 && k + 1 < n {
            backup.finish(w.flash, q)?;
            if same_page(w.flash, slot + (k + 1) * PAGE, q, revert + (k + 1) * PAGE)? {
                backed = k + 2;
            }
        }
        k += 1;
    }
    rec.installed = n as u16;
    rec.backed_up = backed.max(n) as u16;
    Ok(rec)
}

/// Copies pages `[0, count)` back from the revert slot, skipping pages already identical.
/// Idempotent: the revert slot is never written here, so a resumed revert just runs again.
fn revert<I: NorFlash, Q: BackgroundNor>(
    cap: &KernelWrite,
    layout: &Layout,
    internal: &mut I,
    q: &mut Q,
    count: u32,
) -> Result<(), BootError> {
    let mut w = SlotWriter::new(internal, cap);
    let mut buf = [0u8; PAGE as usize];
    let mut idle = Backup::IDLE;
    let count = count.min(layout.kernel_slot.len / PAGE);
    for k in 0..count {
        let src = layout.revert.start + k * PAGE;
        let dst = layout.kernel_slot.start + k * PAGE;
        let mut ok = false;
        for _ in 0..COPY_TRIES {
            if same_page(w.flash, dst, q, src)? {
                ok = true;
                break;
            }
            qread(q, src, &mut buf)?;
            write_page(&mut w, q, &mut idle, dst, &buf)?;
        }
        if !ok {
            return Err(BootError::CopyFailed);
        }
    }
    Ok(())
}

/// SHA-256 over staged header, the INSTALLED payload and the staged protected TLVs: equal to the
/// image hash only if the kernel slot holds exactly the verified payload.
fn installed_hash<I: ReadNorFlash, Q: BackgroundNor>(
    layout: &Layout,
    internal: &mut I,
    q: &mut Q,
    img: &CheckedImage,
) -> Result<[u8; 32], BootError> {
    let mut h = Sha256::new();
    let mut buf = WordAligned([0u8; QSPI_PAGE]);
    let buf = &mut buf.0;
    let mut feed_q = |h: &mut Sha256, q: &mut Q, from: u32, len: u32| -> Result<(), BootError> {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(QSPI_PAGE as u32) as usize;
            qread(q, layout.staging.start + from + done, &mut buf[..n])?;
            h.update(&buf[..n]);
            done += n as u32;
        }
        Ok(())
    };
    feed_q(&mut h, q, 0, img.payload_offset)?;
    let mut ibuf = WordAligned([0u8; QSPI_PAGE]);
    let ibuf = &mut ibuf.0;
    let mut done = 0;
    while done < img.payload_len {
        let n = (img.payload_len - done).min(QSPI_PAGE as u32) as usize;
        internal
            .read(layout.kernel_slot.start + done, &mut ibuf[..n])
            .map_err(ie)?;
        h.update(&ibuf[..n]);
        done += n as u32;
    }
    feed_q(
        &mut h,
        q,
        img.payload_offset + img.payload_len,
        img.hashed_after_payload,
    )?;
    Ok(h.finalize())
}

/// SHA-256 over revert-slot pages `[0, from_revert)` then kernel-slot pages `[from_revert,
/// pages)`. With `from_revert` 0 it is the kernel slot as it is (the hash recorded before an
/// update erases anything, and the check after a revert); on a revert it is what the slot will
/// hold: the pages the update overwrote as the backup holds them, the others never touched.
#[inline(never)]
fn backup_hash<I: ReadNorFlash, Q: BackgroundNor>(
    layout: &Layout,
    internal: &mut I,
    q: &mut Q,
    from_revert: u32,
    pages: u32,
) -> Result<[u8; 32], BootError> {
    let mut h = Sha256::new();
    let mut buf = WordAligned([0u8; QSPI_PAGE]);
    let buf = &mut buf.0;
    let mut off = 0;
    while off < pages * PAGE {
        if off < from_revert * PAGE {
            qread(q, layout.revert.start + off, buf)?;
        } else {
            internal
                .read(layout.kernel_slot.start + off, buf)
                .map_err(ie)?;
        }
        h.update(buf);
        off += QSPI_PAGE as u32;
    }
    Ok(h.finalize())
}

fn put_state<I: NorFlash>(
    internal: &mut I,
    cap: &StateWrite,
    st: &SlotState,
) -> Result<(), BootError> {
    match state::write(internal, cap.page, st) {
        Ok(true) => Ok(()),
        Ok(false) => Err(BootError::StateStuck),
        Err(e) => Err(ie(e)),
    }
}

fn append<Q: BackgroundNor>(
    journal: &mut Journal,
    q: &mut Q,
    rec: JournalRecord,
) -> Result<JournalRecord, BootError> {
    q.wait_idle().map_err(qe)?;
    journal
        .append(q, rec)
        .map_err(qe)?
        .ok_or(BootError::JournalStuck)
}

/// The newest record of kind `want` in the kernel's request sector, and whether the sector still
/// holds the boot request the journal last handled (`handled`: its sequence and hash). When it
/// does not, the kernel has erased the sector since and restarted its sequence, so every record
/// in it is newer than the handled one whatever its sequence.
///
/// The kernel fills the sector's slots in order with rising sequences, and the first erased slot
/// ends its log (`control_area::scan`). So the scan finds that end (a search over four-slot
/// blocks: a few reads, not sixteen, for a full sector), then decodes records from the
/// last one back and stops as soon as the answer is settled: the newest `want` record is the
/// first valid one met, and once a record at or below the handled sequence has been passed, the
/// handled request cannot come earlier. Usually that is one or two CRC checks, whatever the
/// number of records.
#[inline(never)]
fn scan_requests<Q: BackgroundNor>(
    q: &mut Q,
    sector: Region,
    want: control_area::RecordKind,
    handled: Option<(u32, [u8; 32])>,
) -> Result<RequestScan, BootError> {
    use control_area::{is_erased, DecodeError, Record, RecordKind, RECORD_LEN};
    const SLOT: u32 = RECORD_LEN as u32;
    // Reads go through `ReadNorFlash::read`, which in the QSPI driver waits for the chip to be
    // idle first (as for the journal scan).
    let mut w = journal::SlotWindow::new();
    // The first block whose first slot is erased lies past the end; the end is in the block
    // before it.
    let block = journal::BLOCK;
    let past = journal::first_where(0, sector.len / block, |b| {
        Ok::<_, Q::Error>(is_erased(w.slot(q, sector, b * block)?))
    })
    .map_err(qe)?
        * block;
    let mut end = past.saturating_sub(block);
    while end < past && !is_erased(w.slot(q, sector, end).map_err(qe)?) {
        end += SLOT;
    }
    let mut newest: Option<Record> = None;
    // `Some(true)` once the handled request is seen, `Some(false)` once it cannot be.
    let mut holds_handled = if handled.is_some() { None } else { Some(false) };
    while end > 0 && (newest.is_none() || holds_handled.is_none()) {
        end -= SLOT;
        let mut rec = Record::decode(w.slot(q, sector, end).map_err(qe)?);
        for _ in 0..2 {
            if rec != Err(DecodeError::Corrupt) {
                break;
            }
            // Read again: a transient read error must not hide a record.
            rec = Record::decode(w.reread(q, sector, end).map_err(qe)?);
        }
        let Ok(r) = rec else { continue };
        if r.kind == want && newest.is_none() {
            newest = Some(r);
        }
        if let (Some((seq, hash)), None) = (handled, holds_handled) {
            if r.kind == RecordKind::BootRequest && (r.sequence, r.image_hash) == (seq, hash) {
                holds_handled = Some(true);
            } else if r.sequence <= seq {
                holds_handled = Some(false);
            }
        }
    }
    Ok(RequestScan {
        newest,
        erased_since: handled.is_some() && holds_handled != Some(true),
    })
}

/// What [`scan_requests`] found.
struct RequestScan {
    /// The newest record of the kind asked for.
    newest: Option<control_area::Record>,
    /// The sector no longer holds the handled request: everything in it is newer.
    erased_since: bool,
}

fn policy(layout: &Layout, st: &SlotState) -> CheckPolicy {
    CheckPolicy {
        min_security_counter: st.floor,
        max_payload_len: layout.kernel_slot.len,
        kernel_addr: layout.kernel_slot.start,
    }
}

/// Where to go when the external flash does not answer: the kernel slot when the state page
/// says it is whole (`trial` when it holds an unconfirmed trial image), `None` when it is being
/// written. Then the firmware must not jump; it retries the flash and waits.
pub fn boot_without_qspi<I: NorFlash>(
    layout: &Layout,
    internal: &mut I,
) -> Result<Option<BootDecision>, BootError> {
    let (st, _) = state::read(internal, layout.state_page).map_err(ie)?;
    Ok(st.is_whole().then(|| BootDecision {
        kernel_addr: layout.kernel_slot.start,
        trial: st.slot == Slot::Trial,
        status: None,
        lock: layout.locked_region(),
    }))
}

/// Decides and performs this boot's work; see the crate docs and `docs/bootloader.md`.
///
/// The state page (internal flash, [`state`]) outranks the journal (external flash, which a
/// compromised kernel or a clip on the chip can rewrite): a kernel slot it marks as being
/// written is finished or restored whatever the journal says, a revert copies back only a
/// backup that matches the hash it recorded, and the floor rises only to the counter of an
/// image this bootloader verified and installed.
pub fn boot<I: NorFlash, Q: BackgroundNor, C: ImageChecker>(
    env: &mut BootEnv<'_, I, Q, C>,
) -> Result<BootDecision, BootError> {
    let layout = *env.layout;
    layout.validate().map_err(BootError::Layout)?;
    // The only place the write capabilities exist.
    let kernel_cap = KernelWrite {
        slot: layout.kernel_slot,
    };
    let state_cap = StateWrite {
        page: layout.state_page,
    };
    let internal = &mut *env.internal;
    let q = &mut *env.qspi;
    let (mut st, _) = state::read(internal, state_cap.page).map_err(ie)?;
    q.wait_idle().map_err(qe)?;
    let mut journal = Journal::scan(q, layout.journal).map_err(qe)?;
    let mut checked: Option<CheckedImage> = None;
    let mut watchdog = env.reset_reason.watchdog;
    let decision = |journal: &Journal, trial| BootDecision {
        kernel_addr: layout.kernel_slot.start,
        trial,
        status: journal.newest().copied(),
        lock: layout.locked_region(),
    };
    // Each pass moves the state forward; a handful suffice (request → install → trial).
    for _ in 0..8 {
        let cur = journal.newest().copied();
        let mut r = cur.unwrap_or(JournalRecord::EMPTY);
        // A slot being written with a journal that is not installing or reverting: the journal
        // was lost or forged. Restore the backup (or finish the staged image) below.
        if st.slot == Slot::Dirty && !matches!(r.state, State::Installing | State::Reverting) {
            r.state = State::Reverting;
            r.reason = Reason::JournalMismatch;
            r.backed_up = st.pages;
            append(&mut journal, q, r)?;
            continue;
        }
        match cur {
            Some(
                rec @ JournalRecord {
                    state: State::Installing,
                    ..
                },
            ) => {
                let img = match checked.take() {
                    Some(img) if img.hash == rec.image_hash => Ok(img),
                    _ => env.checker.check(q, layout.staging, &policy(&layout, &st)),
                };
                r.state = State::Reverting;
                let img = match img {
                    Ok(img)
                        if img.hash == rec.image_hash
                            && img.payload_len == rec.payload_len
                            && img.payload_offset == rec.payload_offset as u32 =>
                    {
                        img
                    }
                    _ => {
                        r.reason = Reason::StagingChanged;
                        append(&mut journal, q, r)?;
                        continue;
                    }
                };
                let n = pages(img.payload_len) as u16;
                if st.slot != Slot::Whole && st.pages != n {
                    // Not the update the state page describes.
                    r.reason = Reason::JournalMismatch;
                    append(&mut journal, q, r)?;
                    continue;
                }
                if st.slot == Slot::Whole {
                    // Before the first erase: what a revert must bring back, from internal flash.
                    st.backup_hash = backup_hash(&layout, internal, q, 0, n as u32)?;
                    st.pages = n;
                }
                st.slot = Slot::Dirty;
                put_state(internal, &state_cap, &st)?;
                let mut rec = install(&kernel_cap, &layout, internal, q, &mut journal, rec)?;
                let mut good = installed_hash(&layout, internal, q, &img)? == img.hash;
                if !good {
                    // One full pass again: pages that read back wrong are rewritten.
                    let mut again = rec;
                    again.installed = 0;
                    rec = install(&kernel_cap, &layout, internal, q, &mut journal, again)?;
                    good = installed_hash(&layout, internal, q, &img)? == img.hash;
                }
                let mut r = rec;
                if good {
                    st.slot = Slot::Trial;
                    st.counter = img.security_counter.unwrap_or(journal::NO_COUNTER);
                    put_state(internal, &state_cap, &st)?;
                    r.state = State::Trial;
                    r.attempts = 1;
                    append(&mut journal, q, r)?;
                    return Ok(decision(&journal, true));
                }
                r.state = State::Reverting;
                r.reason = Reason::InstallVerifyFailed;
                append(&mut journal, q, r)?;
            }
            Some(
                rec @ JournalRecord {
                    state: State::Trial,
                    ..
                },
            ) => {
                let scan = scan_requests(
                    q,
                    layout.request_sector,
                    control_area::RecordKind::Confirm,
                    Some((rec.request_sequence, rec.image_hash)),
                )?;
                let confirmed = scan.newest.is_some_and(|c| {
                    (scan.erased_since || c.sequence > rec.request_sequence)
                        && c.image_hash == rec.image_hash
                });
                if confirmed {
                    // The floor rises to the counter of the image this bootloader installed,
                    // never to one the journal names.
                    if st.slot == Slot::Trial && st.counter != journal::NO_COUNTER {
                        st.floor = st.floor.max(st.counter);
                    }
                    st.slot = Slot::Whole;
                    put_state(internal, &state_cap, &st)?;
                    r.state = State::Confirmed;
                    r.attempts = 0;
                } else if watchdog || rec.attempts >= layout.max_trial_boots {
                    r.state = State::Reverting;
                    r.reason = if watchdog {
                        Reason::WatchdogReset
                    } else {
                        Reason::NotConfirmed
                    };
                    watchdog = false;
                } else {
                    r.attempts = rec.attempts.saturating_add(1);
                    append(&mut journal, q, r)?;
                    return Ok(decision(&journal, true));
                }
                append(&mut journal, q, r)?;
            }
            Some(
                rec @ JournalRecord {
                    state: State::Reverting,
                    ..
                },
            ) => {
                // With the state page saying the slot is whole there is nothing to restore:
                // the revert finished before this record, or the record is forged.
                if st.slot != Slot::Whole {
                    let n = st.pages as u32;
                    let from = (rec.backed_up as u32).min(n);
                    if backup_hash(&layout, internal, q, from, n)? == st.backup_hash {
                        st.slot = Slot::Dirty;
                        put_state(internal, &state_cap, &st)?;
                        revert(&kernel_cap, &layout, internal, q, from)?;
                        // The backup could have changed since it was checked.
                        if backup_hash(&layout, internal, q, 0, n)? != st.backup_hash {
                            return Err(BootError::CopyFailed);
                        }
                    } else if st.slot == Slot::Trial {
                        // The verified trial image stays.
                        st.slot = Slot::Whole;
                        put_state(internal, &state_cap, &st)?;
                        r.state = State::Kept;
                        r.reason = Reason::BackupInvalid;
                        append(&mut journal, q, r)?;
                        continue;
                    } else {
                        // Half written, no authentic backup: finish the staged image if it
                        // verifies (without backing anything up), else nothing can boot.
                        let img = env
                            .checker
                            .check(q, layout.staging, &policy(&layout, &st))
                            .map_err(|_| BootError::Unbootable)?;
                        if img.payload_offset > u16::MAX as u32 {
                            return Err(BootError::Unbootable);
                        }
                        st.pages = pages(img.payload_len) as u16;
                        st.backup_hash = [0; 32];
                        put_state(internal, &state_cap, &st)?;
                        r.state = State::Installing;
                        r.reason = Reason::BackupInvalid;
                        r.image_hash = img.hash;
                        r.payload_len = img.payload_len;
                        r.payload_offset = img.payload_offset as u16;
                        r.installed = 0;
                        r.backed_up = st.pages;
                        r.security_counter = img.security_counter.unwrap_or(journal::NO_COUNTER);
                        checked = Some(img);
                        append(&mut journal, q, r)?;
                        continue;
                    }
                }
                st.slot = Slot::Whole;
                put_state(internal, &state_cap, &st)?;
                r.state = State::Reverted;
                r.installed = 0;
                append(&mut journal, q, r)?;
            }
            _ => {
                let handled = cur.map(|r| (r.request_sequence, r.image_hash));
                let scan = scan_requests(
                    q,
                    layout.request_sector,
                    control_area::RecordKind::BootRequest,
                    handled,
                )?;
                let req = match scan.newest {
                    Some(r) if scan.erased_since || handled.is_none_or(|h| r.sequence > h.0) => r,
                    _ => return Ok(decision(&journal, false)),
                };
                let mut r = JournalRecord {
                    request_sequence: req.sequence,
                    image_hash: req.image_hash,
                    ..JournalRecord::EMPTY
                };
                match env.checker.check(q, layout.staging, &policy(&layout, &st)) {
                    Err(reason) => r.reason = reason,
                    Ok(img) if img.hash != req.image_hash || img.total_len != req.image_len => {
                        r.reason = Reason::RequestMismatch
                    }
                    Ok(img) if img.payload_offset > u16::MAX as u32 => r.reason = Reason::Malformed,
                    Ok(img) => {
                        r.state = State::Installing;
                        r.payload_len = img.payload_len;
                        r.payload_offset = img.payload_offset as u16;
                        r.security_counter = img.security_counter.unwrap_or(journal::NO_COUNTER);
                        checked = Some(img);
                    }
                }
                append(&mut journal, q, r)?;
            }
        }
    }
    if !st.is_whole() {
        return Err(BootError::Unbootable);
    }
    Ok(decision(&journal, false))
}

/// Writes `kernel` at the start of the kernel slot (erasing the pages it needs): the initial
/// kernel for tests and the simulator.
pub fn provision<I: NorFlash>(
    layout: &Layout,
    internal: &mut I,
    kernel: &[u8],
) -> Result<(), BootError> {
    if kernel.len() as u64 > layout.kernel_slot.len as u64 {
        return Err(BootError::Denied);
    }
    let cap = KernelWrite {
        slot: layout.kernel_slot,
    };
    let mut w = SlotWriter::new(internal, &cap);
    let mut page = [0xFFu8; PAGE as usize];
    for (k, chunk) in kernel.chunks(PAGE as usize).enumerate() {
        page.fill(0xFF);
        page[..chunk.len()].copy_from_slice(chunk);
        let addr = layout.kernel_slot.start + k as u32 * PAGE;
        w.erase_page(addr)?;
        w.write(addr, &page)?;
    }
    Ok(())
}
