//! The bootloader's journal on a strict RAM NOR (word reads, program only 1 -> 0, 4 KiB erases)
//! under arbitrary sequences of appends, power cuts inside a program or an erase (a torn write
//! or erase, then a reboot) and forged records. Decoding and scanning must never panic. Without
//! forged records the scan after a reboot finds exactly the newest record whose append
//! completed (the torn one only if its program happened to finish); with them, whatever it
//! finds is a record that is really in the journal.
#![no_main]
use boot_core::journal::{Journal, JournalRecord, Reason, State, RECORD_LEN};
use boot_core::{read_status, Region};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use libfuzzer_sys::fuzz_target;

const SECTOR: usize = 4096;

#[derive(Debug)]
struct Cut;
impl NorFlashError for Cut {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

struct Ram {
    bytes: Vec<u8>,
    /// Operations until the power is cut inside one (`None`: no cut planned).
    cut_in: Option<u32>,
    /// How much of the cut operation happens, in 1/256ths.
    cut_part: u8,
}
impl Ram {
    fn cut_now(&mut self) -> bool {
        match self.cut_in {
            Some(0) => {
                self.cut_in = None;
                true
            }
            Some(n) => {
                self.cut_in = Some(n - 1);
                false
            }
            None => false,
        }
    }
}
impl ErrorType for Ram {
    type Error = Cut;
}
impl ReadNorFlash for Ram {
    const READ_SIZE: usize = 4;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Cut> {
        let o = offset as usize;
        assert!(
            o.is_multiple_of(4) && bytes.len().is_multiple_of(4),
            "unaligned read {o:#x}+{}",
            bytes.len()
        );
        bytes.copy_from_slice(&self.bytes[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}
impl NorFlash for Ram {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Cut> {
        let (a, b) = (from as usize, to as usize);
        assert!(
            a.is_multiple_of(SECTOR) && b.is_multiple_of(SECTOR) && a < b && b <= self.bytes.len()
        );
        if self.cut_now() {
            let n = (b - a) * usize::from(self.cut_part) / 256;
            self.bytes[a..a + n].fill(0xFF);
            return Err(Cut);
        }
        self.bytes[a..b].fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Cut> {
        let o = offset as usize;
        assert!(
            o.is_multiple_of(4)
                && data.len().is_multiple_of(4)
                && o + data.len() <= self.bytes.len()
        );
        let n = if self.cut_now() {
            data.len() * usize::from(self.cut_part) / 256
        } else {
            data.len()
        };
        for (i, &b) in data[..n].iter().enumerate() {
            self.bytes[o + i] &= b;
        }
        if n < data.len() {
            return Err(Cut);
        }
        Ok(())
    }
}

fn record(op: &[u8]) -> JournalRecord {
    let states = State::ALL;
    JournalRecord {
        sequence: 0,
        state: states[usize::from(op[1]) % states.len()],
        reason: Reason::None,
        attempts: op[2],
        request_sequence: u32::from(op[3]),
        image_hash: [op[4]; 32],
        payload_len: u32::from_le_bytes([op[1], op[2], op[3], 0]),
        payload_offset: 0x20,
        installed: u16::from(op[4]),
        backed_up: u16::from(op[3]),
        security_counter: u32::from(op[2]),
    }
}

/// Whether `r` is the decoding of some slot of the region.
fn in_journal(bytes: &[u8], r: &JournalRecord) -> bool {
    bytes
        .chunks_exact(RECORD_LEN)
        .any(|c| JournalRecord::decode(c.try_into().unwrap()).as_ref() == Some(r))
}

fuzz_target!(|data: &[u8]| {
    // Raw slots through the decoder: a decoded record encodes to one that decodes the same.
    for c in data.chunks_exact(RECORD_LEN) {
        if let Some(r) = JournalRecord::decode(c.try_into().unwrap()) {
            assert_eq!(JournalRecord::decode(&r.encode()), Some(r));
        }
    }
    let Some((&first, ops)) = data.split_first() else {
        return;
    };
    let sectors = 2 + u32::from(first % 3);
    let region = Region::new(SECTOR as u32, sectors * SECTOR as u32);
    let mut flash = Ram {
        bytes: vec![0xFF; SECTOR * (sectors as usize + 2)],
        cut_in: None,
        cut_part: 0,
    };
    let mut journal = Journal::scan(&mut flash, region).unwrap();
    // The newest record whose append completed, and a torn one that may have completed.
    let mut newest: Option<JournalRecord> = None;
    let mut torn: Option<JournalRecord> = None;
    let mut forged = false;
    for op in ops.chunks_exact(5).take(200) {
        match op[0] % 8 {
            0..=4 => {
                let cut = op[0] % 8 == 4;
                if cut {
                    flash.cut_in = Some(u32::from(op[1] % 3));
                    flash.cut_part = op[2];
                }
                let rec = record(op);
                let mut expected = rec;
                expected.sequence = journal.newest().map_or(1, |n| n.sequence.wrapping_add(1));
                match journal.append(&mut flash, rec) {
                    Ok(Some(r)) => {
                        assert_eq!(r, expected);
                        newest = Some(r);
                        torn = None;
                    }
                    Ok(None) => {}
                    Err(Cut) => torn = Some(expected),
                }
                flash.cut_in = None;
                if cut || op[3] & 1 == 0 {
                    // Reboot.
                    journal = Journal::scan(&mut flash, region).unwrap();
                }
            }
            5 => {
                // A forged record (an attacker who can write the QSPI) at any slot.
                let slot = (usize::from(u16::from_le_bytes([op[1], op[2]])) * RECORD_LEN)
                    % region.len as usize;
                let mut r = record(op);
                r.sequence = u32::from_le_bytes([op[3], op[4], op[1], op[2]]);
                let at = region.start as usize + slot;
                flash.bytes[at..at + RECORD_LEN].copy_from_slice(&r.encode());
                forged = true;
                journal = Journal::scan(&mut flash, region).unwrap();
            }
            6 => {
                // Bits cleared anywhere in the region (an attacker, or a stray program).
                let at = region.start as usize
                    + usize::from(u16::from_le_bytes([op[1], op[2]])) % region.len as usize;
                flash.bytes[at] &= op[3];
                forged = true;
                journal = Journal::scan(&mut flash, region).unwrap();
            }
            _ => journal = Journal::scan(&mut flash, region).unwrap(),
        }
        let found = journal.newest().copied();
        let rescanned = read_status(&mut flash, region).unwrap();
        if !forged {
            assert_eq!(
                rescanned, found,
                "a rescan disagrees with the journal in RAM"
            );
        }
        let region_bytes =
            &flash.bytes[region.start as usize..(region.start + region.len) as usize];
        // (Without forged records the check below is stronger.)
        if forged {
            for r in [found, rescanned].iter().flatten() {
                assert!(
                    in_journal(region_bytes, r),
                    "the scan made up a record: {r:?}"
                );
            }
        }
        if !forged {
            if torn.is_some() && found == torn {
                // The cut came after the last byte that differed from erased flash: the record
                // is whole, and from now on it is the newest.
                newest = found;
                torn = None;
            }
            assert_eq!(
                found, newest,
                "after a reboot the journal disagrees with the newest completed append"
            );
        }
    }
});
