//! Arbitrary request sequences from the owner and a stranger, with flash failures, into the
//! update-region policy over a strict RAM NOR. The policy must never panic, never touch flash
//! outside the staging slot and the request sector, and never let the stranger change anything.
#![no_main]
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use libfuzzer_sys::fuzz_target;
use update_region::blocking::BlockingDriver;
use update_region::{Config, Request, UpdateRegion};

const OWNER: u32 = 7;
const SIZE: usize = 0x4_0000;

#[derive(Debug)]
struct Failed;
impl NorFlashError for Failed {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

struct Ram {
    bytes: Vec<u8>,
    fail_every: u8,
    ops: u8,
    allowed: Vec<(u32, u32)>,
}
impl Ram {
    fn check(&mut self, at: u32, len: u32) -> Result<(), Failed> {
        assert!(
            self.allowed
                .iter()
                .any(|&(a, n)| at >= a && at + len <= a + n),
            "flash touched outside the policy's regions: {at:#x}+{len:#x}"
        );
        self.ops = self.ops.wrapping_add(1);
        if self.fail_every != 0 && self.ops.is_multiple_of(self.fail_every) {
            return Err(Failed);
        }
        Ok(())
    }
}
impl ErrorType for Ram {
    type Error = Failed;
}
impl ReadNorFlash for Ram {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Failed> {
        let o = offset as usize;
        bytes.copy_from_slice(&self.bytes[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        SIZE
    }
}
impl NorFlash for Ram {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Failed> {
        self.check(from, to - from)?;
        self.bytes[from as usize..to as usize].fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Failed> {
        self.check(offset, data.len() as u32)?;
        for (i, &b) in data.iter().enumerate() {
            let old = self.bytes[offset as usize + i];
            assert!(
                b & !old == 0,
                "program would need 0 -> 1 at {:#x}",
                offset as usize + i
            );
            self.bytes[offset as usize + i] = old & b;
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let config = Config {
        owner: OWNER,
        staging_base: 0x2_0000,
        staging_len: 0x2_0000,
        request_base: 0x1000,
    };
    let mut flash = Ram {
        bytes: vec![0xFF; SIZE],
        fail_every: data[0] % 16,
        ops: 0,
        allowed: vec![(0x2_0000, 0x2_0000), (0x1000, 0x1000)],
    };
    // Some garbage in the request sector and the progress record.
    for (i, &b) in data.iter().take(64).enumerate() {
        flash.bytes[0x1000 + i * 61 % 4096] = b;
        flash.bytes[0x3_F000 + i * 7 % 4096] = b;
    }
    let mut policy = UpdateRegion::new(config).unwrap();
    let _ = BlockingDriver::new(&mut policy, &mut flash).start();
    let payload = [0u8; 300];
    let mut buf = [0u8; 300];
    for op in data[1..].chunks(6) {
        if op.len() < 6 {
            break;
        }
        let caller = if op[0] & 0x80 != 0 { OWNER + 1 } else { OWNER };
        let off = u32::from_le_bytes([op[1], op[2], op[3], 0]) % 0x3_0000;
        let len = (u16::from_le_bytes([op[4], op[5]]) % 300) as u32;
        let req = match op[0] % 9 {
            0 => Request::Begin {
                tag: [op[1]; 16],
                image_len: off,
            },
            1 => Request::Erase {
                offset: off & !0xFFF,
            },
            2 | 3 => Request::Write { offset: off, len },
            4 => Request::Read { offset: off, len },
            5 => Request::Finalize,
            6 => Request::Abort,
            7 => Request::Confirm,
            _ => {
                // A reboot.
                policy = UpdateRegion::new(config).unwrap();
                let _ = BlockingDriver::new(&mut policy, &mut flash).start();
                continue;
            }
        };
        let before = (caller != OWNER).then(|| flash.bytes.clone());
        let mut d = BlockingDriver::new(&mut policy, &mut flash);
        let n = len as usize;
        let _ = d.run(caller, req, &payload[..n], &mut buf[..n]);
        if let Some(before) = before {
            assert!(flash.bytes == before, "a stranger changed flash");
        }
    }
});
