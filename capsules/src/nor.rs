//! A split-phase, byte-addressed NOR flash interface.
//!
//! `kernel::hil::flash` moves whole pages and its `write_page` means "erase, then program the
//! page". Staging an image needs less and more than that: programming any byte range of an
//! already erased sector (so out-of-order, partial writes never erase what is already staged)
//! and reading short ranges. The QSPI driver implements both this trait and
//! `kernel::hil::flash::Flash`; the staged-update driver uses this one.
//!
//! Semantics follow NOR flash: `erase_sector` sets a 4 KiB sector to 0xFF, `program` only clears
//! bits. Buffers are returned in the completion callback, or with the error when the operation
//! could not start.

use kernel::ErrorCode;

/// Erase unit in bytes.
pub const SECTOR_SIZE: u32 = 4096;

/// A byte-addressed, split-phase NOR flash.
pub trait AsyncNor<'a> {
    /// Set the client that receives completions.
    fn set_nor_client(&self, client: &'a dyn AsyncNorClient);

    /// Size of the device in bytes.
    fn capacity(&self) -> u32;

    /// Read `len` bytes at `address` into `buffer[..len]`.
    fn read(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])>;

    /// Program `buffer[..len]` at `address` (bits only go from 1 to 0).
    fn program(
        &self,
        address: u32,
        buffer: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])>;

    /// Erase the sector at `address` (must be sector aligned).
    fn erase_sector(&self, address: u32) -> Result<(), ErrorCode>;
}

/// Completions of [`AsyncNor`] operations.
pub trait AsyncNorClient {
    fn read_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>);
    fn program_done(&self, buffer: &'static mut [u8], result: Result<(), ErrorCode>);
    fn erase_done(&self, result: Result<(), ErrorCode>);
    /// The device finished its power-up configuration and accepts operations.
    fn ready(&self) {}
}

/// Checks a range against a device of `capacity` bytes without overflowing.
pub fn range_ok(address: u32, len: usize, capacity: u32) -> bool {
    u32::try_from(len)
        .ok()
        .and_then(|len| address.checked_add(len))
        .is_some_and(|end| end <= capacity)
}
