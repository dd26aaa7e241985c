//! Atomic internal-flash page writes for the app region: a `hil::flash::Flash` between
//! upstream's `NonvolatileToPages` (which `SequentialDynamicBinaryStorage` writes through) and
//! the NVMC, running `app_install::journal` over a QSPI flash user.
//!
//! Upstream's page write erases a 4 KiB page and programs it; a power cut between the two
//! loses the page (a TBF header there ends the app list). Here each `write_page` first puts the
//! page content and a record into the journal's QSPI sectors, then writes the page, then marks
//! the record done. At start-up ([`JournaledFlash::init`]) the journal is read; a write a cut
//! interrupted is finished from the QSPI copy and the board resets, so processes load from a
//! whole app region (they were loaded once, before the replay, from the torn one).
//!
//! Until `init` has read the journal, and after a failed operation (until the next boot's
//! replay), `write_page` answers `BUSY`. `read_page` and `erase_page` pass through. Start-up
//! never ends silently: it resets the board after a replay or reports the region to the
//! [`RegionPatchClient`], ready or failed (a journal that cannot be read, a replay that fails).
//!
//! Beside upstream's storage, the app-update core writes a few bytes at an address of its own
//! (a padding header over a binary a confirm or revert retires) through [`RegionPatch`]: the
//! page's content is taken from the memory-mapped app region ([`JournaledFlash::set_region`]),
//! patched, and written by the same journaled page write.

use core::cell::Cell;

use app_install::journal::{Data, FlashOp, Journal, JournalLayout, PageWrite, PAGE};
use kernel::hil::flash::{self, Flash, HasClient};
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::ErrorCode;

use crate::nor::{AsyncNor, AsyncNorClient};
use crate::staged_update::SystemReset;

/// Bytes of the buffer for records and done words.
pub const SMALL_LEN: usize = 32;

/// A few bytes written into the app region at an address of the caller's, by a journaled page
/// write (read-modify-write of the one page they fall in).
pub trait RegionPatch<'a> {
    /// Call `f` with the app region's bytes (memory-mapped flash) and the address of the first.
    fn with_region(&self, f: &mut dyn FnMut(&[u8], u32));
    /// Write `bytes` at `address`; they must lie within one page of the app region (`INVAL`
    /// otherwise). `Ok`: exactly one `patched` follows (possibly before this returns).
    fn patch(&self, address: u32, bytes: &[u8]) -> Result<(), ErrorCode>;
    fn set_patch_client(&self, client: &'a dyn RegionPatchClient);
}

pub trait RegionPatchClient {
    fn patched(&self, result: Result<(), ErrorCode>);
    /// Start-up ended, once per boot. `Ok`: the journal was read and nothing was pending, the
    /// app region is whole (after a replay the board resets instead). `Err`: the journal could
    /// not be read or its replay failed; no journaled write runs this boot (`write_page` and
    /// `patch` answer `BUSY`), the next boot reads the journal again.
    fn region_ready(&self, result: Result<(), ErrorCode>);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// `init` not called yet.
    Off,
    ReadRecords,
    ReadData,
    Ready,
    /// A journaled write for the client runs.
    Writing,
    /// The boot's replay runs; the board resets at its end.
    Replaying,
    /// An operation failed: no writes until the next boot.
    Failed,
}

/// See the module docs.
pub struct JournaledFlash<'a, F: Flash + 'static> {
    flash: &'a F,
    nor: &'a dyn AsyncNor<'a>,
    layout: JournalLayout,
    reset: &'a dyn SystemReset,
    state: Cell<State>,
    journal: OptionalCell<Journal>,
    write: OptionalCell<PageWrite>,
    page_number: Cell<usize>,
    /// The page being written: the client's, or (replay) `spare`.
    page: TakeCell<'static, F::Page>,
    spare: TakeCell<'static, F::Page>,
    /// The page content for QSPI (a copy of `page`), and journal sector reads.
    copy: TakeCell<'static, [u8]>,
    small: TakeCell<'static, [u8]>,
    client: OptionalCell<&'a dyn flash::Client<Self>>,
    /// The app region (memory-mapped) and its address, for [`RegionPatch`].
    region: Cell<(&'a [u8], u32)>,
    /// The running write is a [`RegionPatch::patch`] (its page buffer is `spare`).
    patching: Cell<bool>,
    patch_client: OptionalCell<&'a dyn RegionPatchClient>,
}

impl<'a, F: Flash + 'static> JournaledFlash<'a, F> {
    /// `copy`: [`PAGE`] bytes; `small`: [`SMALL_LEN`] bytes; `spare`: a page buffer for the
    /// replay.
    pub fn new(
        flash: &'a F,
        nor: &'a dyn AsyncNor<'a>,
        layout: JournalLayout,
        reset: &'a dyn SystemReset,
        copy: &'static mut [u8; PAGE],
        small: &'static mut [u8; SMALL_LEN],
        spare: &'static mut F::Page,
    ) -> JournaledFlash<'a, F> {
        JournaledFlash {
            flash,
            nor,
            layout,
            reset,
            state: Cell::new(State::Off),
            journal: OptionalCell::empty(),
            write: OptionalCell::empty(),
            page_number: Cell::new(0),
            page: TakeCell::empty(),
            spare: TakeCell::new(spare),
            copy: TakeCell::new(copy),
            small: TakeCell::new(small),
            client: OptionalCell::empty(),
            region: Cell::new((&[], 0)),
            patching: Cell::new(false),
            patch_client: OptionalCell::empty(),
        }
    }

    /// The app region as the CPU reads it (`region` starts at address `base`), for
    /// [`RegionPatch`].
    pub fn set_region(&self, region: &'a [u8], base: u32) {
        self.region.set((region, base));
    }

    /// Read the journal (and finish an interrupted write, then reset). Runs by itself when the
    /// QSPI flash reports `ready`.
    pub fn init(&self) -> Result<(), ErrorCode> {
        if self.state.get() != State::Off {
            return Err(ErrorCode::ALREADY);
        }
        self.state.set(State::ReadRecords);
        self.read_sector(self.layout.records)
            .inspect_err(|&error| self.start_failed(error))
    }

    /// Start-up cannot go on: no journaled writes this boot, and the client is told.
    fn start_failed(&self, error: ErrorCode) {
        self.state.set(State::Failed);
        self.patch_client.map(|c| c.region_ready(Err(error)));
    }

    /// Whether `write_page` is accepted (the journal was read, nothing failed).
    pub fn is_ready(&self) -> bool {
        self.state.get() == State::Ready
    }

    fn read_sector(&self, address: u32) -> Result<(), ErrorCode> {
        let buffer = self.copy.take().ok_or(ErrorCode::BUSY)?;
        self.nor
            .read(address, buffer, PAGE)
            .map_err(|(error, buffer)| {
                self.copy.replace(buffer);
                self.state.set(State::Failed);
                error
            })
    }

    /// Run the page write's next operation, or end it.
    fn step(&self) {
        let Some(mut write) = self.write.take() else {
            return;
        };
        let op = write.next_op();
        // Copy what the operation needs out of `write` before storing it back.
        let started =
            match op {
                None => return self.finish(Ok(())),
                Some(FlashOp::InternalErase { .. }) => {
                    // The NVMC's page write erases first.
                    self.write.set(write);
                    return self.step();
                }
                Some(FlashOp::QspiErase { addr }) => {
                    self.write.set(write);
                    self.nor.erase_sector(addr)
                }
                Some(FlashOp::QspiProgram {
                    addr,
                    data: Data::Page,
                }) => {
                    self.write.set(write);
                    match self.copy.take() {
                        Some(copy) => self.nor.program(addr, copy, PAGE).map_err(|(e, copy)| {
                            self.copy.replace(copy);
                            e
                        }),
                        None => Err(ErrorCode::BUSY),
                    }
                }
                Some(FlashOp::QspiProgram {
                    addr,
                    data: Data::Bytes(bytes),
                }) => {
                    let len = bytes.len().min(SMALL_LEN);
                    let started = match self.small.take() {
                        Some(small) => {
                            small[..len].copy_from_slice(&bytes[..len]);
                            Ok((small, len))
                        }
                        None => Err(ErrorCode::BUSY),
                    };
                    self.write.set(write);
                    started.and_then(|(small, len)| {
                        self.nor.program(addr, small, len).map_err(|(e, small)| {
                            self.small.replace(small);
                            e
                        })
                    })
                }
                Some(FlashOp::InternalProgram { .. }) => {
                    self.write.set(write);
                    match self.page.take() {
                        Some(page) => self.flash.write_page(self.page_number.get(), page).map_err(
                            |(e, page)| {
                                self.page.replace(page);
                                e
                            },
                        ),
                        None => Err(ErrorCode::BUSY),
                    }
                }
            };
        if started.is_err() {
            self.finish(Err(()));
        }
    }

    fn finish(&self, result: Result<(), ()>) {
        self.write.clear();
        let replaying = self.state.get() == State::Replaying;
        self.state.set(if result.is_ok() {
            State::Ready
        } else {
            State::Failed
        });
        if replaying {
            if let Some(page) = self.page.take() {
                self.spare.replace(page);
            }
            if result.is_ok() {
                // Processes were loaded from the torn region: load them again.
                self.reset.reset();
            } else {
                self.start_failed(ErrorCode::FAIL);
            }
            return;
        }
        if self.patching.take() {
            if let Some(page) = self.page.take() {
                self.spare.replace(page);
            }
            let result = result.map_err(|()| ErrorCode::FAIL);
            self.patch_client.map(|c| c.patched(result));
            return;
        }
        if let Some(page) = self.page.take() {
            let result = result.map_err(|()| flash::Error::FlashError);
            self.client.map(|c| c.write_complete(page, result));
        }
    }

    /// A QSPI completion.
    fn nor_done(&self, result: Result<(), ErrorCode>) {
        match self.state.get() {
            State::Writing | State::Replaying if result.is_ok() => self.step(),
            State::Writing | State::Replaying => self.finish(Err(())),
            _ => {}
        }
    }
}

impl<F: Flash + 'static> Flash for JournaledFlash<'_, F> {
    type Page = F::Page;

    fn read_page(
        &self,
        page_number: usize,
        buf: &'static mut Self::Page,
    ) -> Result<(), (ErrorCode, &'static mut Self::Page)> {
        self.flash.read_page(page_number, buf)
    }

    fn write_page(
        &self,
        page_number: usize,
        buf: &'static mut Self::Page,
    ) -> Result<(), (ErrorCode, &'static mut Self::Page)> {
        if self.state.get() != State::Ready {
            return Err((ErrorCode::BUSY, buf));
        }
        let (Some(mut journal), Some(copy)) = (self.journal.take(), self.copy.take()) else {
            return Err((ErrorCode::BUSY, buf));
        };
        let content = buf.as_mut();
        if content.len() != PAGE {
            self.journal.set(journal);
            self.copy.replace(copy);
            return Err((ErrorCode::SIZE, buf));
        }
        copy.copy_from_slice(content);
        let address = (page_number * PAGE) as u32;
        let write = journal.write(address, copy);
        self.journal.set(journal);
        self.copy.replace(copy);
        self.page.replace(buf);
        self.page_number.set(page_number);
        self.write.set(write);
        self.state.set(State::Writing);
        self.step();
        Ok(())
    }

    fn erase_page(&self, page_number: usize) -> Result<(), ErrorCode> {
        self.flash.erase_page(page_number)
    }
}

impl<'a, F: Flash + 'static> RegionPatch<'a> for JournaledFlash<'a, F> {
    fn with_region(&self, f: &mut dyn FnMut(&[u8], u32)) {
        let (region, base) = self.region.get();
        f(region, base);
    }

    fn patch(&self, address: u32, bytes: &[u8]) -> Result<(), ErrorCode> {
        let (region, base) = self.region.get();
        let page_address = address & !(PAGE as u32 - 1);
        let at = (address - page_address) as usize;
        let page = page_address
            .checked_sub(base)
            .and_then(|offset| region.get(offset as usize..)?.get(..PAGE));
        let (Some(page), false) = (page, bytes.is_empty() || at + bytes.len() > PAGE) else {
            return Err(ErrorCode::INVAL);
        };
        if self.state.get() != State::Ready
            || self.journal.is_none()
            || self.copy.is_none()
            || self.spare.is_none()
        {
            return Err(ErrorCode::BUSY);
        }
        let (Some(mut journal), Some(copy), Some(spare)) =
            (self.journal.take(), self.copy.take(), self.spare.take())
        else {
            return Err(ErrorCode::BUSY);
        };
        copy.copy_from_slice(page);
        copy[at..at + bytes.len()].copy_from_slice(bytes);
        spare.as_mut().copy_from_slice(copy);
        let write = journal.write(page_address, copy);
        self.journal.set(journal);
        self.copy.replace(copy);
        self.page.replace(spare);
        self.page_number.set(page_address as usize / PAGE);
        self.write.set(write);
        self.patching.set(true);
        self.state.set(State::Writing);
        self.step();
        Ok(())
    }

    fn set_patch_client(&self, client: &'a dyn RegionPatchClient) {
        self.patch_client.set(client);
    }
}

impl<'a, F: Flash + 'static, C: flash::Client<Self>> HasClient<'a, C> for JournaledFlash<'a, F> {
    fn set_client(&'a self, client: &'a C) {
        self.client.set(client);
    }
}

impl<F: Flash + 'static> flash::Client<F> for JournaledFlash<'_, F> {
    fn read_complete(&self, buffer: &'static mut F::Page, result: Result<(), flash::Error>) {
        self.client.map(|c| c.read_complete(buffer, result));
    }

    fn write_complete(&self, buffer: &'static mut F::Page, result: Result<(), flash::Error>) {
        self.page.replace(buffer);
        match result {
            Ok(()) => self.step(),
            Err(_) => self.finish(Err(())),
        }
    }

    fn erase_complete(&self, result: Result<(), flash::Error>) {
        self.client.map(|c| c.erase_complete(result));
    }
}

impl<F: Flash + 'static> AsyncNorClient for JournaledFlash<'_, F> {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        match (self.state.get(), result) {
            (State::ReadRecords, Ok(())) => {
                let journal = Journal::scan(self.layout, buffer);
                let pending = journal.pending().is_some();
                if !pending {
                    self.journal.set(journal);
                    self.copy.replace(buffer);
                    self.state.set(State::Ready);
                    self.patch_client.map(|c| c.region_ready(Ok(())));
                    return;
                }
                self.journal.set(journal);
                self.copy.replace(buffer);
                self.state.set(State::ReadData);
                if let Err(error) = self.read_sector(self.layout.data) {
                    self.start_failed(error);
                }
            }
            (State::ReadData, Ok(())) => {
                let Some(mut journal) = self.journal.take() else {
                    self.copy.replace(buffer);
                    return self.start_failed(ErrorCode::FAIL);
                };
                let pending = journal.pending();
                let write = journal.replay(buffer);
                self.journal.set(journal);
                match (write, pending, self.spare.take()) {
                    (Some(write), Some(pending), Some(spare)) => {
                        // The page content for the NVMC: the QSPI copy.
                        spare.as_mut().copy_from_slice(&buffer[..PAGE]);
                        self.copy.replace(buffer);
                        self.page.replace(spare);
                        self.page_number.set(pending.page as usize / PAGE);
                        self.write.set(write);
                        self.state.set(State::Replaying);
                        self.step();
                    }
                    (_, _, spare) => {
                        if let Some(spare) = spare {
                            self.spare.replace(spare);
                        }
                        self.copy.replace(buffer);
                        self.start_failed(ErrorCode::FAIL);
                    }
                }
            }
            (State::ReadRecords | State::ReadData, Err(error)) => {
                self.copy.replace(buffer);
                self.start_failed(error);
            }
            _ => {
                self.copy.replace(buffer);
            }
        }
    }

    fn program_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>) {
        if buffer.len() == SMALL_LEN {
            self.small.replace(buffer);
        } else {
            self.copy.replace(buffer);
        }
        self.nor_done(result);
    }

    fn erase_done(&self, result: Result<(), ErrorCode>) {
        self.nor_done(result);
    }

    /// The QSPI flash is up: read the journal.
    fn ready(&self) {
        let _ = self.init();
    }
}
