//! The app region as the kernel walks it at boot: one TBF after another, each by its total
//! length; a padding TBF is a gap; a header that does not parse is skipped by its length; a
//! version that is not 2 (erased flash reads `0xFFFF`) ends the list.

use crate::tbf::{self, StagedApp};

/// One entry of the app region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A padding TBF of `len` bytes at `addr`.
    Padding { addr: u32, len: u32 },
    /// An app at `addr` (its header parsed; the credential is the kernel's to check).
    App { addr: u32, app: StagedApp },
    /// A TBF whose header does not parse, skipped.
    Invalid { addr: u32, len: u32 },
}

/// Walk `region` (the app region's bytes, starting at address `base`).
pub fn walk(region: &[u8], base: u32) -> Walk<'_> {
    Walk {
        region,
        base,
        offset: 0,
    }
}

/// The iterator [`walk`] returns.
pub struct Walk<'a> {
    region: &'a [u8],
    base: u32,
    offset: usize,
}

impl Iterator for Walk<'_> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        let rest = self.region.get(self.offset..)?;
        let base: &[u8; 8] = rest.get(..8)?.try_into().ok()?;
        let version = u16::from_le_bytes([base[0], base[1]]);
        let header_len = usize::from(u16::from_le_bytes([base[2], base[3]]));
        let total_len = u32::from_le_bytes([base[4], base[5], base[6], base[7]]);
        if version != 2 || total_len == 0 || total_len as usize > rest.len() {
            return None;
        }
        let addr = self.base + self.offset as u32;
        self.offset += total_len as usize;
        let entry = if header_len == tbf::BASE_LEN {
            Entry::Padding {
                addr,
                len: total_len,
            }
        } else {
            match rest
                .get(..header_len)
                .filter(|_| header_len >= tbf::BASE_LEN && header_len as u32 <= total_len)
                .map(|header| tbf::check_header(header, total_len))
            {
                Some(Ok(app)) => Entry::App { addr, app },
                _ => Entry::Invalid {
                    addr,
                    len: total_len,
                },
            }
        };
        Some(entry)
    }
}
