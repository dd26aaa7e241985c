//! The hardware around an `aux_radio::AuxRadio`: RAM copies of the RADIO, TIMER0 and PPI
//! register blocks, and a harness that plays them, for tests of what drives the driver.
//!
//! It plays the hardware the way `tests/aux_radio_on_model.rs` does (that file checks the
//! driver's registers one by one): the timer's "now" is what the test puts in `CC[3]`; the PPI
//! channels written to CHENSET/CHENCLR are applied after each step; a packet is written to the
//! driver's buffer the way EasyDMA writes it (S0, LENGTH, min(LENGTH, MAXLEN) payload bytes, never
//! past the buffer); ADDRESS captures the timer into `CC[1]` only while PPI channel 26 is on, the
//! timeout needs channel 22; END→DISABLE raises DISABLED and the interrupt runs when enabled.
//! On top, [`AuxHw::armed`] reads back from the registers what the driver is listening for,
//! and [`AuxHw::attach`] puts the client behind a shim that applies the PPI writes of the
//! driver's interrupt handler before the client runs: a client that listens again from its
//! completion writes CHENSET after the handler's CHENCLR, an order RAM words cannot keep.

use std::cell::Cell;

use adv_transfer::bearer::Phy;
use kernel::utilities::StaticRef;
use tock_ota_capsules::adv_radio::RadioRegisters;
use tock_ota_capsules::aux_radio::{
    address_air_us, rx_chain_delay_us, AuxClient, AuxRadio, Listen, Missed, PpiRegisters,
    TimerRegisters, AUX_RX_BUF_LEN, PPI_ADDRESS, PPI_RXEN, PPI_TIMEOUT, RAMP_UP_US, RX_GUARD_US,
};

const fn at(offset: usize) -> usize {
    offset / 4
}

const EVENTS_READY: usize = at(0x100);
const EVENTS_ADDRESS: usize = at(0x104);
const EVENTS_END: usize = at(0x10C);
const EVENTS_DISABLED: usize = at(0x110);
const SHORTS: usize = at(0x200);
const INTENSET: usize = at(0x304);
const CRCSTATUS: usize = at(0x400);
const PACKETPTR: usize = at(0x504);
const MODE: usize = at(0x510);
const PCNF0: usize = at(0x514);
const PCNF1: usize = at(0x518);
const BASE0: usize = at(0x51C);
const PREFIX0: usize = at(0x524);
const CRCINIT: usize = at(0x53C);
const STATE: usize = at(0x550);
const DATAWHITEIV: usize = at(0x554);
const RADIO_WORDS: usize = at(0x654);

const CC0: usize = at(0x540);
const CC1: usize = at(0x544);
const CC3: usize = at(0x54C);
const TIMER_WORDS: usize = at(0x550);

const CHENSET: usize = at(0x504);
const CHENCLR: usize = at(0x508);
const PPI_WORDS: usize = at(0x50C);

const SHORTS_END_DISABLE: u32 = 1 << 1;
const INTEN_DISABLED: u32 = 1 << 4;
/// RADIO STATE Rx: what the RADIO is in after RXEN, until DISABLED.
const STATE_RX: u32 = 3;

/// What the driver is listening for, read back from the registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Armed {
    /// The window's opening: RXEN's compare plus the ramp-up and guard.
    pub start_us: u32,
    /// The timeout's compare (the latest ADDRESS event).
    pub timeout_us: u32,
    pub channel: u8,
    pub phy: Phy,
    pub access_address: u32,
    pub crc_init: u32,
}

fn leak_block(words: usize) -> *mut u32 {
    Box::leak(vec![0u32; words].into_boxed_slice()).as_mut_ptr()
}

pub struct AuxHw {
    radio_regs: *mut u32,
    timer_regs: *mut u32,
    ppi_regs: *mut u32,
    pub driver: &'static AuxRadio<'static>,
    buffer: (usize, usize),
    enabled: Cell<u32>,
    /// EasyDMA writes that would have gone past the buffer.
    pub overruns: Cell<usize>,
    /// Another driver takes the RADIO whenever it is disabled.
    taken: Cell<bool>,
}

impl AuxHw {
    /// The driver over fresh register blocks; the caller sets its client.
    pub fn new() -> &'static AuxHw {
        let radio_regs = leak_block(RADIO_WORDS);
        let timer_regs = leak_block(TIMER_WORDS);
        let ppi_regs = leak_block(PPI_WORDS);
        // SAFETY: each pointer is a leaked, word-aligned block as large as the register layout
        // it is cast to; only the driver and this single-threaded harness touch them.
        let (r, t, p) = unsafe {
            (
                StaticRef::new(radio_regs as *const RadioRegisters),
                StaticRef::new(timer_regs as *const TimerRegisters),
                StaticRef::new(ppi_regs as *const PpiRegisters),
            )
        };
        let buf: &'static mut [u8; AUX_RX_BUF_LEN] = Box::leak(Box::new([0u8; AUX_RX_BUF_LEN]));
        let buffer = (buf.as_ptr() as usize, buf.len());
        let driver: &'static AuxRadio = Box::leak(Box::new(AuxRadio::new(r, t, p, buf)));
        Box::leak(Box::new(AuxHw {
            radio_regs,
            timer_regs,
            ppi_regs,
            driver,
            buffer,
            enabled: Cell::new(0),
            overruns: Cell::new(0),
            taken: Cell::new(false),
        }))
    }

    /// Make `client` the driver's client, behind the shim (see the module docs).
    pub fn attach(&'static self, client: &'static dyn AuxClient) {
        let shim: &'static Shim = Box::leak(Box::new(Shim { hw: self, client }));
        self.driver.set_client(shim);
    }

    fn radio(&self, word: usize) -> u32 {
        assert!(word < RADIO_WORDS);
        // SAFETY: inside the leaked RADIO block.
        unsafe { self.radio_regs.add(word).read_volatile() }
    }

    fn set_radio(&self, word: usize, value: u32) {
        assert!(word < RADIO_WORDS);
        // SAFETY: as in `radio`.
        unsafe { self.radio_regs.add(word).write_volatile(value) }
    }

    fn timer(&self, word: usize) -> u32 {
        assert!(word < TIMER_WORDS);
        // SAFETY: inside the leaked TIMER block.
        unsafe { self.timer_regs.add(word).read_volatile() }
    }

    fn set_timer(&self, word: usize, value: u32) {
        assert!(word < TIMER_WORDS);
        // SAFETY: as in `timer`.
        unsafe { self.timer_regs.add(word).write_volatile(value) }
    }

    fn ppi_word(&self, word: usize) -> u32 {
        assert!(word < PPI_WORDS);
        // SAFETY: inside the leaked PPI block.
        unsafe { self.ppi_regs.add(word).read_volatile() }
    }

    fn set_ppi_word(&self, word: usize, value: u32) {
        assert!(word < PPI_WORDS);
        // SAFETY: as in `ppi_word`.
        unsafe { self.ppi_regs.add(word).write_volatile(value) }
    }

    /// The timer's value as the driver's next capture reads it.
    pub fn set_now(&self, now: u32) {
        self.set_timer(CC3, now);
    }

    pub fn now(&self) -> u32 {
        self.timer(CC3)
    }

    /// Apply what the driver wrote to CHENSET and CHENCLR (call after each step that may
    /// have run the driver).
    pub fn settle(&self) {
        let set = self.ppi_word(CHENSET);
        let clr = self.ppi_word(CHENCLR);
        let mut enabled = (self.enabled.get() | set) & !clr;
        if set & clr != 0 && !self.driver.is_idle() {
            // Both written since the last step: a listen refused or ended, then another
            // armed (the words cannot say in which order). A listen outstanding has its
            // channels on.
            enabled |= set & clr;
        }
        self.enabled.set(enabled);
        self.set_ppi_word(CHENSET, 0);
        self.set_ppi_word(CHENCLR, 0);
    }

    fn on(&self, channel: u8) -> bool {
        self.enabled.get() & (1 << channel) != 0
    }

    /// What the driver listens for, if a listen is armed (RXEN's PPI channel on).
    pub fn armed(&self) -> Option<Armed> {
        self.settle();
        if !self.on(PPI_RXEN.channel) {
            return None;
        }
        let phy = match self.radio(MODE) {
            3 => Phy::Le1M,
            4 => Phy::Le2M,
            mode => panic!("RADIO MODE {mode} is neither BLE 1M nor 2M"),
        };
        Some(Armed {
            start_us: self.timer(CC0).wrapping_add(RAMP_UP_US + RX_GUARD_US),
            timeout_us: self.timer(CC1),
            channel: self.radio(DATAWHITEIV) as u8,
            phy,
            access_address: (self.radio(BASE0) >> 8) | (self.radio(PREFIX0) << 24),
            crc_init: self.radio(CRCINIT),
        })
    }

    fn interrupt(&self) {
        if self.radio(INTENSET) & INTEN_DISABLED != 0 {
            self.driver.handle_interrupt();
        }
        self.settle();
    }

    fn switch_on(&self) {
        self.settle();
        assert!(self.on(PPI_RXEN.channel), "RXEN's channel is off");
        self.set_radio(EVENTS_READY, 1);
        self.set_radio(STATE, STATE_RX);
    }

    /// A packet `pdu` (header and payload) that started at `start_us`: its ADDRESS event comes
    /// the preamble, access address and receive chain later; the timer reads `now_after`
    /// when the interrupt runs.
    pub fn packet(&self, start_us: u32, pdu: &[u8], crc_ok: bool, now_after: u32) {
        let phy = self.armed().expect("a listen is armed").phy;
        self.switch_on();
        self.set_radio(EVENTS_ADDRESS, 1);
        if self.on(PPI_ADDRESS.channel) {
            let capture = start_us
                .wrapping_add(address_air_us(phy))
                .wrapping_add(rx_chain_delay_us(phy));
            self.set_timer(CC1, capture);
        }
        assert_eq!(
            self.radio(PACKETPTR),
            self.buffer.0 as u32,
            "PACKETPTR is not the driver's buffer"
        );
        let pcnf0 = self.radio(PCNF0);
        let header = ((pcnf0 >> 8) & 1) as usize + ((pcnf0 & 0xF) as usize).div_ceil(8);
        let maxlen = (self.radio(PCNF1) & 0xFF) as usize;
        let body = usize::from(pdu[1]).min(maxlen);
        if header + body > self.buffer.1 {
            self.overruns.set(self.overruns.get() + 1);
        }
        let bytes = pdu
            .iter()
            .copied()
            .chain(std::iter::repeat(0xEE))
            .take((header + body).min(self.buffer.1));
        for (i, b) in bytes.enumerate() {
            // SAFETY: `i` is below the buffer's length: inside the buffer the driver gave
            // EasyDMA, which it does not touch while the RADIO receives.
            unsafe { (self.buffer.0 as *mut u8).add(i).write_volatile(b) };
        }
        self.set_radio(CRCSTATUS, u32::from(crc_ok));
        self.set_radio(EVENTS_END, 1);
        self.set_now(now_after);
        if self.radio(SHORTS) & SHORTS_END_DISABLE != 0 {
            self.set_radio(EVENTS_DISABLED, 1);
            self.released();
            self.interrupt();
        }
    }

    /// The timer reached the timeout's compare with no ADDRESS: DISABLE through PPI.
    pub fn timeout(&self) {
        self.switch_on();
        assert!(self.on(PPI_TIMEOUT.channel), "the timeout's channel is off");
        self.set_now(self.timer(CC1).wrapping_add(1));
        self.set_radio(EVENTS_DISABLED, 1);
        self.released();
        self.interrupt();
    }

    /// A DISABLED interrupt after a cancel that found the RADIO on.
    pub fn disabled(&self) {
        self.set_radio(EVENTS_DISABLED, 1);
        self.released();
        self.interrupt();
    }

    /// Another driver holds the RADIO (its STATE not Disabled) from now on, taking it again
    /// each time a listen ends; or gives it back.
    pub fn set_radio_taken(&self, taken: bool) {
        self.taken.set(taken);
        self.set_radio(STATE, if taken { STATE_RX } else { 0 });
    }

    /// The RADIO is disabled, or at once taken by another driver.
    fn released(&self) {
        self.set_radio(STATE, if self.taken.get() { STATE_RX } else { 0 });
    }
}

/// Applies the handler's PPI writes, then hands the completion on.
struct Shim {
    hw: &'static AuxHw,
    client: &'static dyn AuxClient,
}

impl AuxClient for Shim {
    fn received(
        &self,
        listen: &Listen,
        address_us: u32,
        buf: &'static mut [u8; AUX_RX_BUF_LEN],
        len: usize,
    ) {
        self.hw.settle();
        self.client.received(listen, address_us, buf, len);
    }

    fn missed(&self, listen: &Listen, why: Missed) {
        self.hw.settle();
        self.client.missed(listen, why);
    }
}
