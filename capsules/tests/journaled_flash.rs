//! The app region's journaled page writes over a NOR fake and an NVMC fake: a write goes to
//! the journal first (data, record), then the page, then the done word; a write cut after the
//! record is finished at the next start-up from the QSPI copy and the board resets; writes
//! wait for the journal to be read.

#[path = "support/fake_nor.rs"]
#[allow(dead_code)]
mod fake_nor;

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::vec::Vec;

use app_install::journal::{Journal, JournalLayout, PAGE};
use fake_nor::FakeNor;
use kernel::hil::flash::{self, Flash, HasClient};
use kernel::utilities::cells::{OptionalCell, TakeCell};
use kernel::ErrorCode;
use tock_ota_capsules::journaled_flash::{
    JournaledFlash, RegionPatch, RegionPatchClient, SMALL_LEN,
};
use tock_ota_capsules::nor::AsyncNor;
use tock_ota_capsules::staged_update::SystemReset;

const LAYOUT: JournalLayout = JournalLayout {
    data: 0x1000,
    records: 0x2000,
    trial: 0x3000,
};

pub struct TestPage([u8; PAGE]);

impl Default for TestPage {
    fn default() -> Self {
        TestPage([0xFF; PAGE])
    }
}

impl AsMut<[u8]> for TestPage {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// The NVMC: 16 pages; `write_page` completes when the test calls `complete` (or at once).
struct FakeFlash {
    memory: RefCell<Vec<u8>>,
    pending: TakeCell<'static, TestPage>,
    number: Cell<usize>,
    writes: Cell<usize>,
    immediate: Cell<bool>,
    client: OptionalCell<&'static dyn flash::Client<FakeFlash>>,
}

impl FakeFlash {
    fn new() -> &'static FakeFlash {
        Box::leak(Box::new(FakeFlash {
            memory: RefCell::new(vec![0xFF; 16 * PAGE]),
            pending: TakeCell::empty(),
            number: Cell::new(0),
            writes: Cell::new(0),
            immediate: Cell::new(true),
            client: OptionalCell::empty(),
        }))
    }

    fn complete(&self) -> bool {
        let Some(page) = self.pending.take() else {
            return false;
        };
        let n = self.number.get();
        self.memory.borrow_mut()[n * PAGE..][..PAGE].copy_from_slice(&page.0);
        self.writes.set(self.writes.get() + 1);
        self.client.map(|c| c.write_complete(page, Ok(())));
        true
    }
}

impl Flash for FakeFlash {
    type Page = TestPage;

    fn read_page(
        &self,
        _page_number: usize,
        buf: &'static mut TestPage,
    ) -> Result<(), (ErrorCode, &'static mut TestPage)> {
        Err((ErrorCode::NOSUPPORT, buf))
    }

    fn write_page(
        &self,
        page_number: usize,
        buf: &'static mut TestPage,
    ) -> Result<(), (ErrorCode, &'static mut TestPage)> {
        self.number.set(page_number);
        self.pending.replace(buf);
        if self.immediate.get() {
            self.complete();
        }
        Ok(())
    }

    fn erase_page(&self, _page_number: usize) -> Result<(), ErrorCode> {
        Err(ErrorCode::NOSUPPORT)
    }
}

impl<C: flash::Client<FakeFlash>> HasClient<'static, C> for FakeFlash {
    fn set_client(&'static self, client: &'static C) {
        self.client.set(client);
    }
}

#[derive(Default)]
struct Reset(Cell<usize>);

impl SystemReset for Reset {
    fn reset(&self) {
        self.0.set(self.0.get() + 1);
    }
}

/// The client (upstream's `NonvolatileToPages` in a board).
#[derive(Default)]
struct Client {
    written: RefCell<Vec<Result<(), flash::Error>>>,
    pages: RefCell<Vec<&'static mut TestPage>>,
}

type Journaled = JournaledFlash<'static, FakeFlash>;

impl flash::Client<Journaled> for Client {
    fn read_complete(&self, _b: &'static mut TestPage, _r: Result<(), flash::Error>) {}
    fn write_complete(&self, buffer: &'static mut TestPage, result: Result<(), flash::Error>) {
        self.written.borrow_mut().push(result);
        self.pages.borrow_mut().push(buffer);
    }
    fn erase_complete(&self, _r: Result<(), flash::Error>) {}
}

struct Rig {
    flash: &'static FakeFlash,
    journaled: &'static Journaled,
    reset: &'static Reset,
    client: &'static Client,
}

/// A board start-up over `nor` (kept across "reboots") and a fresh NVMC fake sharing
/// `memory`.
fn boot(nor: &'static FakeNor, memory: Option<Vec<u8>>) -> Rig {
    let flash = FakeFlash::new();
    if let Some(memory) = memory {
        *flash.memory.borrow_mut() = memory;
    }
    let reset: &'static Reset = Box::leak(Box::default());
    let journaled: &'static Journaled = Box::leak(Box::new(JournaledFlash::new(
        flash,
        nor,
        LAYOUT,
        reset,
        Box::leak(Box::new([0; PAGE])),
        Box::leak(Box::new([0; SMALL_LEN])),
        Box::leak(Box::default()),
    )));
    flash.set_client(journaled);
    nor.set_nor_client(journaled);
    let client: &'static Client = Box::leak(Box::default());
    journaled.set_client(client);
    Rig {
        flash,
        journaled,
        reset,
        client,
    }
}

fn run(nor: &FakeNor) {
    while nor.complete() {}
}

fn page_of(byte: u8) -> &'static mut TestPage {
    Box::leak(Box::new(TestPage([byte; PAGE])))
}

#[test]
fn a_page_write_goes_through_the_journal_and_completes() {
    for immediate in [false, true] {
        let nor = FakeNor::new(0x4000);
        nor.immediate.set(immediate);
        let rig = boot(nor, None);
        // Before the journal is read, writes wait.
        assert!(matches!(
            rig.journaled.write_page(3, page_of(0x5A)),
            Err((ErrorCode::BUSY, _))
        ));
        rig.journaled.init().unwrap();
        run(nor);
        assert!(rig.journaled.is_ready());
        assert!(rig.journaled.write_page(3, page_of(0x5A)).is_ok());
        run(nor);
        assert_eq!(
            *rig.client.written.borrow(),
            [Ok(())],
            "immediate={immediate}"
        );
        assert!(rig.flash.memory.borrow()[3 * PAGE..4 * PAGE]
            .iter()
            .all(|&b| b == 0x5A));
        // The journal holds the content and a done record.
        let memory = nor.memory.borrow();
        assert!(memory[0x1000..0x2000].iter().all(|&b| b == 0x5A));
        let journal = Journal::scan(LAYOUT, &memory[0x2000..0x3000]);
        assert_eq!(journal.pending(), None);
        assert_eq!(journal, {
            let mut fresh = Journal::scan(LAYOUT, &[0xFF; PAGE]);
            fresh.write(3 * PAGE as u32, &[0x5A; PAGE]);
            fresh
        });
        assert_eq!(rig.reset.0.get(), 0);
    }
}

#[test]
fn a_write_cut_after_its_record_is_finished_at_the_next_start_and_the_board_resets() {
    let nor = FakeNor::new(0x4000);
    let rig = boot(nor, None);
    rig.journaled.init().unwrap();
    run(nor);
    rig.flash.immediate.set(false);
    assert!(rig.journaled.write_page(5, page_of(0xC3)).is_ok());
    run(nor); // data and record are in QSPI; the NVMC write never completes: power is cut.
    assert_eq!(rig.flash.writes.get(), 0);
    assert!(rig.client.written.borrow().is_empty());
    // The page was erased when the cut came.
    let mut memory = rig.flash.memory.borrow().clone();
    memory[5 * PAGE..6 * PAGE].fill(0xFF);

    let after = boot(nor, Some(memory));
    after.journaled.init().unwrap();
    run(nor);
    assert!(after.flash.memory.borrow()[5 * PAGE..6 * PAGE]
        .iter()
        .all(|&b| b == 0xC3));
    assert_eq!(after.reset.0.get(), 1, "the board resets after the replay");
    let memory = after.flash.memory.borrow().clone();

    // The next start finds nothing pending and does not reset.
    let again = boot(nor, Some(memory));
    again.journaled.init().unwrap();
    run(nor);
    assert!(again.journaled.is_ready());
    assert_eq!(again.reset.0.get(), 0);
    assert_eq!(again.flash.writes.get(), 0);
}

#[test]
fn a_qspi_failure_fails_the_write_and_stops_further_writes() {
    let nor = FakeNor::new(0x4000);
    let rig = boot(nor, None);
    rig.journaled.init().unwrap();
    run(nor);
    nor.fail_next.set(true);
    assert!(rig.journaled.write_page(2, page_of(1)).is_ok());
    run(nor);
    assert_eq!(
        *rig.client.written.borrow(),
        [Err(flash::Error::FlashError)]
    );
    assert_eq!(rig.flash.writes.get(), 0, "the page was not touched");
    assert!(matches!(
        rig.journaled.write_page(2, page_of(1)),
        Err((ErrorCode::BUSY, _))
    ));
}

#[derive(Default)]
struct Patched(
    RefCell<Vec<Result<(), ErrorCode>>>,
    Cell<usize>,
    RefCell<Vec<Result<(), ErrorCode>>>,
);

impl RegionPatchClient for Patched {
    fn patched(&self, result: Result<(), ErrorCode>) {
        self.0.borrow_mut().push(result);
    }

    fn region_ready(&self, result: Result<(), ErrorCode>) {
        self.1.set(self.1.get() + 1);
        self.2.borrow_mut().push(result);
    }
}

#[test]
fn a_region_patch_writes_its_page_through_the_journal_from_the_mapped_content() {
    for immediate in [false, true] {
        let nor = FakeNor::new(0x4000);
        nor.immediate.set(immediate);
        let rig = boot(nor, None);
        // The app region as the CPU reads it: pages 2 and 3, each byte its page's number.
        let mut mapped = vec![2u8; PAGE];
        mapped.extend_from_slice(&[3u8; PAGE]);
        let mapped: &'static [u8] = Box::leak(mapped.into_boxed_slice());
        rig.journaled.set_region(mapped, 2 * PAGE as u32);
        let patched: &'static Patched = Box::leak(Box::default());
        rig.journaled.set_patch_client(patched);
        let mut seen = None;
        rig.journaled
            .with_region(&mut |bytes, base| seen = Some((bytes.len(), base)));
        assert_eq!(seen, Some((2 * PAGE, 2 * PAGE as u32)));
        let at = 3 * PAGE as u32 + 100;
        assert_eq!(rig.journaled.patch(at, &[0xAB; 16]), Err(ErrorCode::BUSY));
        assert_eq!(patched.1.get(), 0);
        rig.journaled.init().unwrap();
        run(nor);
        assert_eq!(patched.1.get(), 1, "the region is reported whole once");
        // Across a page, outside the region, or nothing: refused.
        assert_eq!(
            rig.journaled.patch(3 * PAGE as u32 - 8, &[0; 16]),
            Err(ErrorCode::INVAL)
        );
        assert_eq!(
            rig.journaled.patch(PAGE as u32, &[0; 4]),
            Err(ErrorCode::INVAL)
        );
        assert_eq!(
            rig.journaled.patch(4 * PAGE as u32, &[0; 4]),
            Err(ErrorCode::INVAL)
        );
        assert_eq!(rig.journaled.patch(at, &[]), Err(ErrorCode::INVAL));
        assert_eq!(rig.journaled.patch(at, &[0xAB; 16]), Ok(()));
        run(nor);
        assert_eq!(*patched.0.borrow(), [Ok(())], "immediate={immediate}");
        assert!(
            rig.client.written.borrow().is_empty(),
            "upstream's client hears nothing"
        );
        let mut expected = [3u8; PAGE];
        expected[100..116].fill(0xAB);
        assert_eq!(rig.flash.memory.borrow()[3 * PAGE..4 * PAGE], expected);
        assert_eq!(rig.flash.writes.get(), 1);
        let memory = nor.memory.borrow();
        assert_eq!(memory[0x1000..0x2000], expected, "the journal's copy");
        assert_eq!(
            Journal::scan(LAYOUT, &memory[0x2000..0x3000]).pending(),
            None
        );
        drop(memory);
        // The page buffer came back: upstream's writes go on.
        assert!(rig.journaled.write_page(5, page_of(0x11)).is_ok());
        run(nor);
        assert_eq!(*rig.client.written.borrow(), [Ok(())]);
    }
}

/// Start-up never ends silently: a journal that cannot be read (the record sector, or the data
/// sector of a pending write) is reported to the region's client as failed, once, and writes
/// stay refused; a journal read well is reported ready.
#[test]
fn a_start_up_that_cannot_read_the_journal_reports_the_region_failed() {
    // (fail the records read, fail the data read of a pending write)
    for (pending, case) in [(false, "records"), (true, "data")] {
        let nor = FakeNor::new(0x4000);
        if pending {
            // A write cut after its record: the next start-up reads the data sector.
            let rig = boot(nor, None);
            rig.journaled.init().unwrap();
            run(nor);
            rig.flash.immediate.set(false);
            assert!(rig.journaled.write_page(5, page_of(0xC3)).is_ok());
            run(nor);
        }
        let rig = boot(nor, None);
        let patched: &'static Patched = Box::leak(Box::default());
        rig.journaled.set_patch_client(patched);
        rig.journaled.init().unwrap();
        if pending {
            assert!(nor.complete(), "{case}: the record sector is read");
        }
        nor.fail_next.set(true);
        run(nor);
        assert_eq!(*patched.2.borrow(), [Err(ErrorCode::FAIL)], "{case}");
        assert!(!rig.journaled.is_ready(), "{case}");
        assert_eq!(rig.reset.0.get(), 0, "{case}");
        assert!(matches!(
            rig.journaled.write_page(2, page_of(1)),
            Err((ErrorCode::BUSY, _))
        ));
        assert_eq!(
            rig.journaled.patch(2 * PAGE as u32, &[0; 4]),
            Err(ErrorCode::INVAL),
            "{case}: no region set"
        );

        // The next boot reads the journal again (the pending write is replayed then).
        let again = boot(nor, None);
        let patched: &'static Patched = Box::leak(Box::default());
        again.journaled.set_patch_client(patched);
        again.journaled.init().unwrap();
        run(nor);
        if pending {
            assert_eq!(again.reset.0.get(), 1, "{case}: replayed, then reset");
            assert!(patched.2.borrow().is_empty(), "{case}");
        } else {
            assert_eq!(*patched.2.borrow(), [Ok(())], "{case}");
            assert!(again.journaled.is_ready(), "{case}");
        }
    }
}
