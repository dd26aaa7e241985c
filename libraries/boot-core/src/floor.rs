//! The security-counter floor in the internal state page (bootloader-only; ACL-locked before the
//! kernel runs, so the kernel can never lower it).
//!
//! Format: 8-byte entries `value u32 | !value u32` appended from the page start; the floor is the
//! highest valid entry (0 when none). A torn entry fails the complement check. When the page is
//! full it is erased and the current floor rewritten as its first entry.

use crate::layout::Region;
use embedded_storage::nor_flash::NorFlash;

const ENTRY: u32 = 8;

/// Reads the floor and the offset of the first erased entry (`None` = page full).
pub fn read<F: NorFlash>(f: &mut F, page: Region) -> Result<(u32, Option<u32>), F::Error> {
    let mut floor = 0;
    let mut free = None;
    let mut off = 0;
    while off + ENTRY <= page.len {
        let mut e = [0u8; 8];
        f.read(page.start + off, &mut e)?;
        let v = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let c = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        if e == [0xFF; 8] {
            free.get_or_insert(off);
        } else {
            // An entry past an erased one cannot exist unless an erase was torn: ignore `free`
            // found so far and keep looking after it.
            free = None;
            if c == !v {
                floor = floor.max(v);
            }
        }
        off += ENTRY;
    }
    Ok((floor, free))
}

/// Raises the floor to `value` (no-op when it is already at least that).
pub fn raise<F: NorFlash>(f: &mut F, page: Region, value: u32) -> Result<(), F::Error> {
    let (floor, free) = read(f, page)?;
    if floor >= value {
        return Ok(());
    }
    let at = match free {
        Some(at) => at,
        None => {
            f.erase(page.start, page.end())?;
            0
        }
    };
    let mut e = [0u8; 8];
    e[0..4].copy_from_slice(&value.to_le_bytes());
    e[4..8].copy_from_slice(&(!value).to_le_bytes());
    f.write(page.start + at, &e)
}
