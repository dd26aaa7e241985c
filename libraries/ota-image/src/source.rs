//! Where image bytes come from: a slice on the host, a flash slot on the device.
use embedded_storage::nor_flash::ReadNorFlash;

/// A bounded, randomly readable byte store holding one image slot.
pub trait ImageSource {
    /// The read error.
    type Error: core::fmt::Debug;
    /// Bytes readable (the slot size); the parser never reads past it.
    fn capacity(&self) -> u32;
    /// Fills `buf` from `offset`. Callers keep `offset + buf.len() <= capacity()`.
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// A read that the source refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotReadError<E> {
    /// The flash driver failed.
    Flash(E),
    /// The read reaches past the slot.
    OutOfBounds { offset: u32, len: usize },
    /// The flash's read granularity is larger than this adapter supports.
    UnsupportedReadSize(usize),
}

/// An in-memory image (host tools, tests).
#[derive(Debug, Clone, Copy)]
pub struct SliceSource<'a>(pub &'a [u8]);

fn slice_read(data: &[u8], offset: u32, buf: &mut [u8]) -> Result<(), SlotReadError<()>> {
    let start = offset as usize;
    let src = start
        .checked_add(buf.len())
        .and_then(|end| data.get(start..end))
        .ok_or(SlotReadError::OutOfBounds {
            offset,
            len: buf.len(),
        })?;
    buf.copy_from_slice(src);
    Ok(())
}

fn slice_capacity(data: &[u8]) -> u32 {
    u32::try_from(data.len()).unwrap_or(u32::MAX)
}

impl ImageSource for SliceSource<'_> {
    type Error = SlotReadError<()>;
    fn capacity(&self) -> u32 {
        slice_capacity(self.0)
    }
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
        slice_read(self.0, offset, buf)
    }
}

impl ImageSource for &[u8] {
    type Error = SlotReadError<()>;
    fn capacity(&self) -> u32 {
        slice_capacity(self)
    }
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
        slice_read(self, offset, buf)
    }
}

/// A window `[base, base + len)` of a NOR flash, read through `embedded-storage`.
///
/// Reads at any offset and length are turned into reads aligned to the flash's `READ_SIZE`
/// (the nRF52840 QSPI needs word-aligned addresses and lengths), through a small bounce buffer.
pub struct FlashSlot<'a, F> {
    flash: &'a mut F,
    base: u32,
    len: u32,
}

/// Bounce buffer for unaligned reads; also the largest supported `READ_SIZE`.
const BOUNCE: usize = 64;

impl<'a, F> FlashSlot<'a, F> {
    /// A slot of `len` bytes starting at flash address `base`.
    pub fn new(flash: &'a mut F, base: u32, len: u32) -> Self {
        FlashSlot { flash, base, len }
    }

    /// The slot's start address in the flash.
    pub fn base(&self) -> u32 {
        self.base
    }
}

impl<F: ReadNorFlash> ImageSource for FlashSlot<'_, F> {
    type Error = SlotReadError<F::Error>;

    fn capacity(&self) -> u32 {
        self.len
    }

    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), Self::Error> {
        let oob = || SlotReadError::OutOfBounds {
            offset,
            len: buf.len(),
        };
        let len = u32::try_from(buf.len()).map_err(|_| oob())?;
        let end = offset.checked_add(len).ok_or_else(oob)?;
        if end > self.len {
            return Err(oob());
        }
        let abs = self.base.checked_add(offset).ok_or_else(oob)?;
        let rs = F::READ_SIZE.max(1);
        if rs > BOUNCE || !BOUNCE.is_multiple_of(rs) {
            return Err(SlotReadError::UnsupportedReadSize(rs));
        }
        if rs == 1 {
            return self.flash.read(abs, buf).map_err(SlotReadError::Flash);
        }
        // Aligned reads straight into `buf` where possible, bounce buffer for the edges.
        let mut done = 0usize;
        let mut bounce = [0u8; BOUNCE];
        while done < buf.len() {
            let addr = abs + done as u32;
            let skew = addr as usize % rs;
            let remaining = buf.len() - done;
            if skew == 0 && remaining >= rs {
                let n = remaining - remaining % rs;
                self.flash
                    .read(addr, &mut buf[done..done + n])
                    .map_err(SlotReadError::Flash)?;
                done += n;
            } else {
                let aligned = addr - skew as u32;
                let n = (skew + remaining).min(BOUNCE);
                let n_aligned = n.div_ceil(rs) * rs;
                self.flash
                    .read(aligned, &mut bounce[..n_aligned])
                    .map_err(SlotReadError::Flash)?;
                let take = n - skew;
                buf[done..done + take].copy_from_slice(&bounce[skew..skew + take]);
                done += take;
            }
        }
        Ok(())
    }
}
