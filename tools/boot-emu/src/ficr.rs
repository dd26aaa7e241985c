//! FICR (factory information, read-only) and the undocumented registers of Nordic's errata
//! workarounds that Tock's nRF52 start-up (`chips/nrf52/src/crt1.rs`, `fix_errata`) touches.
//!
//! FICR words differ per chip (trim and calibration values); the model answers the words the
//! firmware reads with fixed values and fails the run on any other FICR word. The errata
//! registers have no documented behaviour: the model keeps what is written, only at the
//! addresses the workarounds name, so a stray access still fails loudly.

/// FICR base.
pub const FICR_BASE: u32 = 0x1000_0000;

/// FICR words the firmware reads, with the values this model's chip carries.
/// Offsets from the nRF52840 Product Specification v1.7, section 4.4.1 (FICR registers) and
/// the errata sheet's workarounds.
pub const FICR_WORDS: &[(u32, u32, &str)] = &[
    (0x0A0, 0xFFFF_FFFF, "DEVICEADDRTYPE: random"),
    (0x0A4, 0x1234_5678, "DEVICEADDR[0]"),
    (0x0A8, 0xFFFF_C0DE, "DEVICEADDR[1] (bits 15:0)"),
    (0x100, 0x0005_2840, "INFO.PART: nRF52840"),
    (
        0x104,
        0x4141_4630,
        "INFO.VARIANT: AAF0 (the revision on current DKs)",
    ),
    (0x108, 0x0000_2004, "INFO.PACKAGE: QI (aQFN73)"),
    (0x10C, 0x0000_0100, "INFO.RAM: 256 KiB"),
    (0x110, 0x0000_0400, "INFO.FLASH: 1024 KiB"),
    // Errata 12 (COMP reference ladder): bits 12:8 hold the trim copied to 0x4001_3540.
    (
        0x244,
        0x0000_6000,
        "calibration word for errata 31 (bits 15:13)",
    ),
    (0x258, 0x0000_004F, "RAM trim for errata 108 (bits 6:0)"),
    (0x324, 0x0000_1000, "COMP trim for errata 12 (bits 12:8)"),
];

/// Addresses written by Nordic's errata workarounds (nRF52832 errata v1.2 numbers, which Tock
/// applies on every nRF52): 12 (0x4001_3540), 16 (0x4007_C074), 31 (0x4000_053C), 37
/// (0x4000_05A0), 57 (0x4000_5610/5614/5618/5688), 108 (0x4000_0EE4).
pub const ERRATA_REGISTERS: &[u32] = &[
    0x4001_3540,
    0x4007_C074,
    0x4000_053C,
    0x4000_05A0,
    0x4000_5610,
    0x4000_5614,
    0x4000_5618,
    0x4000_5688,
    0x4000_0EE4,
];

/// The 4 KiB pages holding errata registers that no modelled peripheral maps.
pub const ERRATA_PAGES: &[u32] = &[0x4000_5000, 0x4001_3000, 0x4007_C000];

/// The FICR word at `offset`, if the model knows it.
pub fn ficr_word(offset: u32) -> Option<u32> {
    FICR_WORDS
        .iter()
        .find(|(o, _, _)| *o == offset)
        .map(|(_, v, _)| *v)
}

/// UICR base (user information configuration: one 4 KiB page of NVM, programmed through the
/// NVMC like flash).
pub const UICR_BASE: u32 = 0x1000_1000;

/// UICR contents (PS v1.7 section 4.5): NOR semantics as the main flash (a write needs
/// NVMC.CONFIG = WEN and only clears bits; NVMC.ERASEUICR with CONFIG = EEN sets every word to
/// 0xFFFF_FFFF). They survive resets: the caller carries them from one power-on to the next.
/// Registers Tock reads: PSELRESET[0..1] (0x200, 0x204), APPROTECT (0x208), NFCPINS (0x20C),
/// REGOUT0 (0x304).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uicr {
    words: Vec<u32>,
}

impl Default for Uicr {
    fn default() -> Self {
        Self::erased()
    }
}

impl Uicr {
    /// A fresh chip: every word erased.
    pub fn erased() -> Self {
        Uicr {
            words: vec![0xFFFF_FFFF; 1024],
        }
    }

    /// The word at `offset` (word aligned, below 4 KiB).
    pub fn word(&self, offset: u32) -> Option<u32> {
        self.words.get((offset / 4) as usize).copied()
    }

    /// Programs the word at `offset`: bits only go from 1 to 0.
    pub fn program(&mut self, offset: u32, value: u32) -> Option<()> {
        let w = self.words.get_mut((offset / 4) as usize)?;
        *w &= value;
        Some(())
    }

    /// ERASEUICR.
    pub fn erase(&mut self) {
        self.words.fill(0xFFFF_FFFF);
    }
}
