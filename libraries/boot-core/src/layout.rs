//! Flash layout: where the bootloader, its state page, the kernel slot and the QSPI areas live.
//!
//! One `Layout` per board; the DK's is `boot_nrf::NRF52840_DK` (`libraries/boot-nrf`), mirrored by
//! `docs/layout.md` and tested against the bootloader's and the Tock board's linker scripts.

/// A byte range `[start, start + len)` in one flash device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u32,
    pub len: u32,
}

impl Region {
    pub const fn new(start: u32, len: u32) -> Self {
        Region { start, len }
    }

    /// One past the last byte (saturating, so a malformed region never overflows).
    pub const fn end(&self) -> u32 {
        self.start.saturating_add(self.len)
    }

    /// Whether `[offset, offset + len)` relative to the region start lies inside it.
    pub fn contains_range(&self, offset: u32, len: u32) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }

    /// Whether absolute `[addr, addr + len)` lies inside the region.
    pub fn contains_abs(&self, addr: u32, len: u32) -> bool {
        addr >= self.start && addr.checked_add(len).is_some_and(|end| end <= self.end())
    }
}

/// Erase unit of both devices (nRF52840 page, MX25R6435F sector).
pub const PAGE: u32 = 4096;

/// Where everything lives. Internal-flash regions are absolute addresses; QSPI regions are
/// offsets in the external chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Internal: the bootloader's own code (write- and erase-protected by ACL before the jump).
    pub bootloader: Region,
    /// Internal: the security-counter floor, bootloader-only (inside the same ACL region).
    pub state_page: Region,
    /// Internal: the kernel slot; the Tock kernel is linked at its start.
    pub kernel_slot: Region,
    /// Internal: Tock apps (never touched by the bootloader).
    pub apps: Region,
    /// QSPI: the kernel's request sector (`control-area` records). Read only here.
    pub request_sector: Region,
    /// QSPI: the bootloader's journal; its newest record is also the status the kernel reads.
    pub journal: Region,
    /// QSPI: the signed image as received.
    pub staging: Region,
    /// QSPI: the previous kernel's pages, copied before they are overwritten.
    pub revert: Region,
    /// Boots of an unconfirmed trial image before it is reverted.
    pub max_trial_boots: u8,
}

impl Layout {
    /// A small valid layout for tests and exhaustive power-cut runs (boot-core's unit tests,
    /// boot-sim, the fuzz targets): a 4-page kernel slot, a 2-sector journal.
    pub const SMALL: Layout = Layout {
        bootloader: Region::new(0x0, 0x2000),
        state_page: Region::new(0x2000, 0x1000),
        kernel_slot: Region::new(0x3000, 0x4000),
        apps: Region::new(0x7000, 0x1000),
        request_sector: Region::new(0x0, 0x1000),
        journal: Region::new(0x1000, 0x2000),
        staging: Region::new(0x3000, 0x5000),
        revert: Region::new(0x8000, 0x4000),
        max_trial_boots: 3,
    };
}

/// Why a layout cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// A region does not start and end on a 4 KiB boundary.
    Unaligned,
    /// The journal needs at least two sectors so erasing one never loses the newest record.
    JournalTooSmall,
    /// The revert slot cannot hold every page of the kernel slot.
    RevertTooSmall,
    /// Internal regions overlap.
    Overlap,
}

impl Layout {
    /// Checks the invariants the boot flow relies on.
    pub fn validate(&self) -> Result<(), LayoutError> {
        let all = [
            self.bootloader,
            self.state_page,
            self.kernel_slot,
            self.request_sector,
            self.journal,
            self.staging,
            self.revert,
        ];
        if all
            .iter()
            .any(|r| r.start % PAGE != 0 || r.len % PAGE != 0 || r.len == 0)
        {
            return Err(LayoutError::Unaligned);
        }
        if self.journal.len < 2 * PAGE {
            return Err(LayoutError::JournalTooSmall);
        }
        if self.revert.len < self.kernel_slot.len {
            return Err(LayoutError::RevertTooSmall);
        }
        let internal = [self.bootloader, self.state_page, self.kernel_slot];
        for (i, a) in internal.iter().enumerate() {
            for b in internal.iter().skip(i + 1) {
                if a.start < b.end() && b.start < a.end() {
                    return Err(LayoutError::Overlap);
                }
            }
        }
        Ok(())
    }

    /// The internal region the ACL locks before the jump: bootloader code and state page.
    pub fn locked_region(&self) -> Region {
        let start = self.bootloader.start.min(self.state_page.start);
        let end = self.bootloader.end().max(self.state_page.end());
        Region::new(start, end - start)
    }
}
