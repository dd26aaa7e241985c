//! Errors shared by the drivers, the ports and the host models.

use core::fmt;

/// Which alignment rule an access broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misalignment {
    /// EasyDMA RAM buffer pointer is not 32-bit aligned.
    DmaBuffer,
    /// EasyDMA transfer length is not a multiple of 4.
    DmaLength,
    /// QSPI READ.SRC / WRITE.DST flash address is not 32-bit aligned.
    QspiFlashAddress,
    /// NVMC write address is not 32-bit aligned.
    NvmcWord,
    /// Erase address is not at the start of an erase unit.
    EraseUnit,
    /// Offset or length is not a multiple of the driver's `WRITE_SIZE`/`ERASE_SIZE`.
    Granularity,
}

/// Everything that can go wrong in a flash access.
///
/// `PowerLost` is the only error a correct caller sees on real hardware besides `Timeout` and
/// `WrongJedecId`; every other variant names a misuse that the hardware would silently turn into
/// corrupted data (and that the host models report instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlashError {
    /// Power failed before or during the operation; the device state is unknown.
    PowerLost,
    /// Access outside the device.
    OutOfBounds { addr: u32, len: u32, capacity: u32 },
    /// An alignment rule was broken; `value` is the offending address or length.
    Misaligned { what: Misalignment, value: u32 },
    /// Programming would need a 0→1 bit transition (the location is not erased).
    NotErased { addr: u32 },
    /// A third write to an NVMC word without an erase in between (nWRITE = 2).
    WriteLimitExceeded { addr: u32 },
    /// The address lies in a region the ACL protects against write/erase.
    AclProtected { addr: u32 },
    /// The external flash answered with an unexpected JEDEC ID.
    WrongJedecId { found: [u8; 3] },
    /// The device stayed busy longer than its datasheet maximum.
    Timeout,
    /// A new operation was started while the external flash is still busy (WIP set).
    Busy,
    /// A program/erase command was sent without a preceding write-enable (WEL clear).
    WriteNotEnabled,
    /// A quad-line command was used while the flash's QE bit is clear.
    QuadNotEnabled,
    /// The SCK frequency exceeds what the flash's current power mode allows.
    ClockTooFast { sck_hz: u32, max_hz: u32 },
    /// The external flash is in deep power-down and ignores the command.
    DeepPowerDown,
    /// A transfer is longer than the hardware allows (`max`) or empty.
    BadLength { len: u32, max: u32 },
    /// A page program would cross a 256-byte page boundary.
    CrossesPage { addr: u32, len: u32 },
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FlashError::PowerLost => write!(f, "power lost"),
            FlashError::OutOfBounds {
                addr,
                len,
                capacity,
            } => write!(
                f,
                "access of {len} bytes at {addr:#x} is outside the {capacity:#x}-byte device"
            ),
            FlashError::Misaligned { what, value } => {
                let rule = match what {
                    Misalignment::DmaBuffer => "EasyDMA RAM buffer must be word aligned",
                    Misalignment::DmaLength => "EasyDMA length must be a multiple of 4",
                    Misalignment::QspiFlashAddress => "QSPI flash address must be word aligned",
                    Misalignment::NvmcWord => "NVMC writes must be word aligned",
                    Misalignment::EraseUnit => "erase address must start an erase unit",
                    Misalignment::Granularity => {
                        "offset/length not a multiple of the write/erase size"
                    }
                };
                write!(f, "{rule} (got {value:#x})")
            }
            FlashError::NotErased { addr } => {
                write!(
                    f,
                    "programming at {addr:#x} needs a 0->1 transition (not erased)"
                )
            }
            FlashError::WriteLimitExceeded { addr } => {
                write!(
                    f,
                    "third write to NVMC word {addr:#x} without erase (nWRITE = 2)"
                )
            }
            FlashError::AclProtected { addr } => write!(f, "{addr:#x} is ACL write-protected"),
            FlashError::WrongJedecId { found } => write!(
                f,
                "JEDEC ID {:02x} {:02x} {:02x}, expected c2 28 17 (MX25R6435F)",
                found[0], found[1], found[2]
            ),
            FlashError::Timeout => write!(f, "flash stayed busy past its datasheet maximum"),
            FlashError::Busy => write!(f, "external flash busy (WIP set)"),
            FlashError::WriteNotEnabled => write!(f, "program/erase without write enable"),
            FlashError::QuadNotEnabled => write!(f, "quad command with QE bit clear"),
            FlashError::ClockTooFast { sck_hz, max_hz } => {
                write!(
                    f,
                    "SCK {sck_hz} Hz above the {max_hz} Hz allowed in this power mode"
                )
            }
            FlashError::DeepPowerDown => write!(f, "external flash is in deep power-down"),
            FlashError::BadLength { len, max } => {
                write!(f, "transfer length {len} not in 1..={max}")
            }
            FlashError::CrossesPage { addr, len } => {
                write!(
                    f,
                    "page program of {len} bytes at {addr:#x} crosses a 256-byte page"
                )
            }
        }
    }
}

impl embedded_storage::nor_flash::NorFlashError for FlashError {
    fn kind(&self) -> embedded_storage::nor_flash::NorFlashErrorKind {
        use embedded_storage::nor_flash::NorFlashErrorKind;
        match self {
            FlashError::OutOfBounds { .. } => NorFlashErrorKind::OutOfBounds,
            FlashError::Misaligned { .. } => NorFlashErrorKind::NotAligned,
            _ => NorFlashErrorKind::Other,
        }
    }
}

impl core::error::Error for FlashError {}
