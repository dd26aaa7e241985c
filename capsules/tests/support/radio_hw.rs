//! The nRF52840 RADIO (and TIMER0, PPI) as the register-level tests play it: RAM copies of the
//! register blocks, the word offsets of the registers the models play or check, and what the
//! RADIO's EasyDMA writes for a received packet. Offsets and fields: nRF52840 Product
//! Specification, chapters RADIO, TIMER and PPI.

use std::mem::size_of;

use kernel::utilities::StaticRef;

/// Word index of the register at byte `offset`.
pub const fn at(offset: usize) -> usize {
    offset / 4
}

/// Word offsets of the RADIO registers.
pub mod radio {
    use super::at;
    pub const TASKS_TXEN: usize = at(0x000);
    pub const TASKS_RXEN: usize = at(0x004);
    pub const TASKS_DISABLE: usize = at(0x010);
    pub const EVENTS_READY: usize = at(0x100);
    pub const EVENTS_ADDRESS: usize = at(0x104);
    pub const EVENTS_END: usize = at(0x10C);
    pub const EVENTS_DISABLED: usize = at(0x110);
    pub const SHORTS: usize = at(0x200);
    pub const INTENSET: usize = at(0x304);
    pub const CRCSTATUS: usize = at(0x400);
    pub const PACKETPTR: usize = at(0x504);
    pub const FREQUENCY: usize = at(0x508);
    pub const MODE: usize = at(0x510);
    pub const PCNF0: usize = at(0x514);
    pub const PCNF1: usize = at(0x518);
    pub const BASE0: usize = at(0x51C);
    pub const PREFIX0: usize = at(0x524);
    pub const RXADDRESSES: usize = at(0x530);
    pub const CRCCNF: usize = at(0x534);
    pub const CRCPOLY: usize = at(0x538);
    pub const CRCINIT: usize = at(0x53C);
    pub const STATE: usize = at(0x550);
    pub const DATAWHITEIV: usize = at(0x554);
    pub const MODECNF0: usize = at(0x650);
    pub const WORDS: usize = at(0x654);
}

/// Word offsets of the TIMER registers.
pub mod timer {
    use super::at;
    pub const TASKS_START: usize = at(0x000);
    pub const MODE: usize = at(0x504);
    pub const BITMODE: usize = at(0x508);
    pub const PRESCALER: usize = at(0x510);
    pub const CC0: usize = at(0x540);
    pub const CC1: usize = at(0x544);
    pub const CC3: usize = at(0x54C);
    pub const WORDS: usize = at(0x550);
}

/// Word offsets of the PPI registers.
pub mod ppi {
    use super::at;
    pub const CHENSET: usize = at(0x504);
    pub const CHENCLR: usize = at(0x508);
    pub const WORDS: usize = at(0x50C);
}

/// RADIO SHORTS END_DISABLE.
pub const SHORTS_END_DISABLE: u32 = 1 << 1;
/// RADIO INTENSET DISABLED.
pub const INTEN_DISABLED: u32 = 1 << 4;
/// RADIO STATE Rx: what the RADIO is in after RXEN, until DISABLED.
pub const STATE_RX: u32 = 3;

/// A leaked, zeroed, word-aligned block of registers.
#[derive(Clone, Copy)]
pub struct Block {
    base: *mut u32,
    words: usize,
}

impl Block {
    pub fn new(words: usize) -> Block {
        let base = Box::leak(vec![0u32; words].into_boxed_slice()).as_mut_ptr();
        Block { base, words }
    }

    pub fn get(&self, word: usize) -> u32 {
        assert!(word < self.words, "register word {word} outside the block");
        // SAFETY: inside the leaked block.
        unsafe { self.base.add(word).read_volatile() }
    }

    pub fn set(&self, word: usize, value: u32) {
        assert!(word < self.words, "register word {word} outside the block");
        // SAFETY: as in `get`.
        unsafe { self.base.add(word).write_volatile(value) }
    }

    /// The block as the register layout `T`, for a driver.
    pub fn registers<T>(&self) -> StaticRef<T> {
        assert!(
            size_of::<T>() <= self.words * 4,
            "the block is smaller than the layout"
        );
        // SAFETY: a leaked, word-aligned block at least as large as `T` (checked above); only
        // the driver and the single-threaded harness touch it.
        unsafe { StaticRef::new(self.base as *const T) }
    }
}

/// Bytes in RAM before the payload, as PCNF0 says: S0 (S0LEN bytes), the LENGTH field
/// (LFLEN bits) and S1 (S1LEN bits), each in whole bytes.
pub fn header_len(pcnf0: u32) -> usize {
    let lflen_bits = (pcnf0 & 0xF) as usize;
    let s0_bytes = ((pcnf0 >> 8) & 1) as usize;
    let s1_bits = ((pcnf0 >> 16) & 0xF) as usize;
    s0_bytes + lflen_bits.div_ceil(8) + s1_bits.div_ceil(8)
}

/// What EasyDMA writes for a packet received with `radio`'s PCNF0 and PCNF1 into `buffer`
/// (address, length): `s0`, the LENGTH byte `length`, then min(LENGTH, MAXLEN) payload bytes
/// (`payload`'s, then 0xEE where the sender put fewer on air), never past the buffer. Returns
/// how many bytes it would write: more than the buffer's length is an overrun for the model to
/// record.
pub fn dma_receive(
    radio: &Block,
    buffer: (usize, usize),
    s0: u8,
    length: u8,
    payload: &[u8],
) -> usize {
    let (at, len) = buffer;
    let header = header_len(radio.get(radio::PCNF0));
    let maxlen = (radio.get(radio::PCNF1) & 0xFF) as usize;
    let body = usize::from(length).min(maxlen);
    let bytes = [s0, length]
        .into_iter()
        .chain((0..body).map(|i| payload.get(i).copied().unwrap_or(0xEE)));
    for (i, b) in bytes.take(len).enumerate() {
        // SAFETY: `i < len`: inside the buffer the driver gave EasyDMA, which it does not touch
        // while the RADIO receives.
        unsafe { (at as *mut u8).add(i).write_volatile(b) };
    }
    header + body
}
