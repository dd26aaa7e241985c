//! Tests of what only the crate itself can reach (the write capabilities, the request scan), on
//! a NOR flash in RAM. The boot flow's tests run on hardware models in `tools/boot-sim`.

use crate::layout::Layout;
use crate::BackgroundNor;
use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use std::vec;
use std::vec::Vec;

const SMALL: Layout = Layout::SMALL;

/// NOR flash in RAM: erases to 0xFF in 4 KiB sectors, programs clear bits, never busy.
struct Ram(Vec<u8>);

impl Ram {
    fn new(len: usize) -> Self {
        Ram(vec![0xFF; len])
    }
    fn load(&mut self, at: u32, bytes: &[u8]) {
        self.0[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }
    fn range(&self, at: u32, len: usize) -> Result<core::ops::Range<usize>, NorFlashErrorKind> {
        let s = at as usize;
        match s.checked_add(len) {
            Some(e) if e <= self.0.len() => Ok(s..e),
            _ => Err(NorFlashErrorKind::OutOfBounds),
        }
    }
}

impl ErrorType for Ram {
    type Error = NorFlashErrorKind;
}
impl ReadNorFlash for Ram {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let r = self.range(offset, bytes.len())?;
        bytes.copy_from_slice(&self.0[r]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}
impl NorFlash for Ram {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let r = self.range(from, to.saturating_sub(from) as usize)?;
        self.0[r].fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let r = self.range(offset, bytes.len())?;
        for (d, s) in self.0[r].iter_mut().zip(bytes) {
            *d &= s;
        }
        Ok(())
    }
}
impl BackgroundNor for Ram {
    fn start_erase_sector(&mut self, addr: u32) -> Result<(), Self::Error> {
        self.erase(addr, addr + 4096)
    }
    fn start_program_page(&mut self, addr: u32, data: &[u8]) -> Result<(), Self::Error> {
        self.write(addr, data)
    }
    fn is_busy(&mut self) -> Result<bool, Self::Error> {
        Ok(false)
    }
}

#[test]
fn the_slot_writer_refuses_anything_outside_its_capability() {
    let mut internal = Ram::new(0x8000);
    let cap = crate::KernelWrite {
        slot: SMALL.kernel_slot,
    };
    let mut w = crate::SlotWriter::new(&mut internal, &cap);
    let denied = Err(crate::BootError::Denied);
    assert_eq!(w.erase_page(SMALL.state_page.start), denied);
    assert_eq!(w.erase_page(SMALL.kernel_slot.end()), denied);
    assert_eq!(w.write(SMALL.kernel_slot.start - 4, &[0; 8]), denied);
    assert_eq!(w.write(SMALL.kernel_slot.end() - 4, &[0; 8]), denied);
    assert_eq!(w.erase_page(SMALL.kernel_slot.start), Ok(()));
}

/// The request scan decodes from the end of the kernel's log back and stops once its answer is
/// settled. On request sectors the kernel could have written (records in order with rising
/// sequences, torn records left behind, a restarted sequence) it must answer what decoding every
/// record answers, for either kind and any handled request.
#[test]
fn request_scan_agrees_with_decoding_every_record() {
    use control_area::{Record, RecordKind, RECORD_LEN};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut qspi = Ram::new(0x8000);
    let s = SMALL.request_sector;
    let hashes = [[0xA1u8; 32], [0xB2; 32], [0xC3; 32]];
    let mut early_stops = 0;
    for _ in 0..3000 {
        let mut sector = vec![0xFFu8; s.len as usize];
        let mut written: Vec<Record> = Vec::new();
        let records = rng.gen_range(0..=s.len as usize / RECORD_LEN);
        let mut sequence = rng.gen_range(1..40u32);
        for slot in sector.chunks_exact_mut(RECORD_LEN).take(records) {
            let kind = if rng.gen_bool(0.5) {
                RecordKind::BootRequest
            } else {
                RecordKind::Confirm
            };
            let rec = Record {
                kind,
                sequence,
                image_len: 100,
                image_hash: hashes[rng.gen_range(0..hashes.len())],
            };
            slot.copy_from_slice(&rec.encode());
            if rng.gen_bool(0.15) {
                // Torn by a power cut: bits cleared at random (never erased-looking: the magic
                // has cleared bits). The kernel writes its next record in the next slot, with
                // the same sequence.
                for _ in 0..4 {
                    slot[rng.gen_range(0..RECORD_LEN)] &= rng.gen::<u8>();
                }
            }
            if Record::decode(&<[u8; RECORD_LEN]>::try_from(&*slot).unwrap()) == Ok(rec) {
                written.push(rec);
                sequence += 1;
            }
        }
        qspi.load(s.start, &sector);
        let present = written.iter().filter(|r| r.kind == RecordKind::BootRequest);
        let mut handled_cases: Vec<Option<(u32, [u8; 32])>> = vec![
            None,
            Some((rng.gen_range(0..80), hashes[rng.gen_range(0..3)])),
            Some((0, hashes[0])),
            Some((u32::MAX, hashes[1])),
        ];
        handled_cases.extend(present.map(|r| Some((r.sequence, r.image_hash))).take(3));
        for want in [RecordKind::BootRequest, RecordKind::Confirm] {
            let newest = written
                .iter()
                .filter(|r| r.kind == want)
                .max_by_key(|r| r.sequence)
                .copied();
            for &handled in &handled_cases {
                let holds = written.iter().any(|r| {
                    r.kind == RecordKind::BootRequest && Some((r.sequence, r.image_hash)) == handled
                });
                let got = crate::scan_requests(&mut qspi, s, want, handled).unwrap();
                assert_eq!(
                    got.newest, newest,
                    "{want:?} handled {handled:?} in {written:?}"
                );
                assert_eq!(
                    got.erased_since,
                    handled.is_some() && !holds,
                    "{want:?} handled {handled:?} in {written:?}"
                );
                early_stops += usize::from(written.len() > 4);
            }
        }
    }
    assert!(early_stops > 1000, "the cases must include long logs");
}

/// State-page records: a torn record (any prefix of its words written, the next word partly)
/// is ignored and the previous state stands; a whole one is the new state; the page is erased
/// and restarted when full, and a record that starts a write of the kernel slot leaves room
/// for the ones written while it is half written. Every bit flip of a record is rejected.
#[test]
fn the_state_page_keeps_the_last_whole_record_through_torn_writes() {
    use crate::state::{self, Slot, SlotState, RECORD_LEN};
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let page = SMALL.state_page;
    let mut internal = Ram::new(page.end() as usize);
    assert_eq!(state::read(&mut internal, page).unwrap().0, SlotState::NEW);
    let mut want = SlotState::NEW;
    let mut erases = 0;
    for step in 0..1000u32 {
        let next = SlotState {
            slot: [Slot::Whole, Slot::Dirty, Slot::Trial][rng.gen_range(0..3)],
            pages: rng.gen_range(0..5),
            floor: step,
            counter: rng.gen(),
            backup_hash: [rng.gen(); 32],
        };
        let bytes = next.encode();
        if rng.gen_bool(0.3) {
            // A cut: the first `words` words land, the next one partly.
            let (_, free) = state::read(&mut internal, page).unwrap();
            let Some(at) = free else { continue };
            let at = page.start + at * RECORD_LEN as u32;
            let words = rng.gen_range(0..RECORD_LEN / 4);
            internal.write(at, &bytes[..words * 4]).unwrap();
            let mut torn: [u8; 4] = bytes[words * 4..words * 4 + 4].try_into().unwrap();
            for b in &mut torn {
                *b |= rng.gen::<u8>();
            }
            internal.write(at + words as u32 * 4, &torn).unwrap();
        } else {
            let (before, free) = state::read(&mut internal, page).unwrap();
            erases += usize::from(free.is_none());
            assert!(state::write(&mut internal, page, &next).unwrap());
            if next.slot == Slot::Dirty && before.slot != Slot::Dirty {
                // Room is left for the records written while the slot is half written.
                let (_, free) = state::read(&mut internal, page).unwrap();
                let slots = page.len / RECORD_LEN as u32;
                assert!(
                    free.is_some_and(|i| i + state::RESERVE - 1 <= slots),
                    "step {step}"
                );
            }
            want = next;
        }
        assert_eq!(
            state::read(&mut internal, page).unwrap().0,
            want,
            "step {step}"
        );
    }
    assert!(erases >= 5, "the page filled only {erases} times");
    let b = want.encode();
    for bit in 0..RECORD_LEN * 8 {
        let mut t = b;
        t[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(SlotState::decode(&t), None, "bit {bit}");
    }
}
