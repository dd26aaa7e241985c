//! The hardware around an `aux_radio::AuxRadio`: RAM copies of the RADIO, TIMER0 and PPI
//! register blocks, and a harness that plays them, for tests of what drives the driver.
//!
//! It plays the hardware the way `tests/aux_radio_on_model.rs` does (that file checks the
//! driver's registers one by one): the timer's "now" is what the test puts in `CC[3]`; the PPI
//! channels written to CHENSET/ppi::CHENCLR are applied after each step; a packet is written to the
//! driver's buffer the way EasyDMA writes it (S0, LENGTH, min(LENGTH, MAXLEN) payload bytes, never
//! past the buffer); ADDRESS captures the timer into `CC[1]` only while PPI channel 26 is on, the
//! timeout needs channel 22; END→DISABLE raises DISABLED and the interrupt runs when enabled.
//! On top, [`AuxHw::armed`] reads back from the registers what the driver is listening for,
//! and [`AuxHw::attach`] puts the client behind a shim that applies the PPI writes of the
//! driver's interrupt handler before the client runs: a client that listens again from its
//! completion writes ppi::CHENSET after the handler's ppi::CHENCLR, an order RAM words cannot keep.

use std::cell::Cell;
use std::ops::Deref;

use adv_transfer::bearer::Phy;
use tock_ota_capsules::aux_radio::{
    address_air_us, rx_chain_delay_us, AuxClient, AuxRadio, Listen, Missed, AUX_RX_BUF_LEN,
    PPI_ADDRESS, PPI_RXEN, PPI_TIMEOUT, RAMP_UP_US, RX_GUARD_US,
};

use crate::radio_hw::{
    dma_receive, ppi, radio, timer, Block, INTEN_DISABLED, SHORTS_END_DISABLE, STATE_RX,
};

/// The driver over RAM copies of its RADIO, TIMER0 and PPI register blocks, and its receive
/// buffer; the caller sets its client. What `tests/aux_radio_on_model.rs`'s model and
/// [`AuxHw`] play.
pub struct AuxBlocks {
    pub radio_regs: Block,
    pub timer_regs: Block,
    pub ppi_regs: Block,
    pub driver: &'static AuxRadio<'static>,
    /// The receive buffer: (address, length).
    pub buffer: (usize, usize),
}

impl AuxBlocks {
    pub fn new() -> AuxBlocks {
        let radio_regs = Block::new(radio::WORDS);
        let timer_regs = Block::new(timer::WORDS);
        let ppi_regs = Block::new(ppi::WORDS);
        let buf: &'static mut [u8; AUX_RX_BUF_LEN] = Box::leak(Box::new([0u8; AUX_RX_BUF_LEN]));
        let buffer = (buf.as_ptr() as usize, buf.len());
        let driver: &'static AuxRadio = Box::leak(Box::new(AuxRadio::new(
            radio_regs.registers(),
            timer_regs.registers(),
            ppi_regs.registers(),
            buf,
        )));
        AuxBlocks {
            radio_regs,
            timer_regs,
            ppi_regs,
            driver,
            buffer,
        }
    }

    pub fn radio(&self, word: usize) -> u32 {
        self.radio_regs.get(word)
    }

    pub fn set_radio(&self, word: usize, value: u32) {
        self.radio_regs.set(word, value)
    }

    pub fn timer(&self, word: usize) -> u32 {
        self.timer_regs.get(word)
    }

    pub fn set_timer(&self, word: usize, value: u32) {
        self.timer_regs.set(word, value)
    }

    pub fn ppi_word(&self, word: usize) -> u32 {
        self.ppi_regs.get(word)
    }

    pub fn set_ppi_word(&self, word: usize, value: u32) {
        self.ppi_regs.set(word, value)
    }

    /// The timer's value as the driver's next capture reads it.
    pub fn set_now(&self, now: u32) {
        self.set_timer(timer::CC3, now);
    }

    pub fn now(&self) -> u32 {
        self.timer(timer::CC3)
    }

    /// A packet written to the driver's buffer as EasyDMA writes it (see
    /// [`dma_receive`]), after checking radio::PACKETPTR is that buffer. The bytes it would write.
    pub fn dma(&self, s0: u8, length: u8, payload: &[u8]) -> usize {
        assert_eq!(
            self.radio(radio::PACKETPTR),
            self.buffer.0 as u32,
            "radio::PACKETPTR is not the driver's buffer"
        );
        dma_receive(&self.radio_regs, self.buffer, s0, length, payload)
    }
}

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

pub struct AuxHw {
    blocks: AuxBlocks,
    enabled: Cell<u32>,
    /// EasyDMA writes that would have gone past the buffer.
    pub overruns: Cell<usize>,
    /// Another driver takes the RADIO whenever it is disabled.
    taken: Cell<bool>,
}

impl Deref for AuxHw {
    type Target = AuxBlocks;

    fn deref(&self) -> &AuxBlocks {
        &self.blocks
    }
}

impl AuxHw {
    /// The driver over fresh register blocks; the caller sets its client.
    pub fn new() -> &'static AuxHw {
        Box::leak(Box::new(AuxHw {
            blocks: AuxBlocks::new(),
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

    /// Apply what the driver wrote to ppi::CHENSET and ppi::CHENCLR (call after each step that may
    /// have run the driver).
    pub fn settle(&self) {
        let set = self.ppi_word(ppi::CHENSET);
        let clr = self.ppi_word(ppi::CHENCLR);
        let mut enabled = (self.enabled.get() | set) & !clr;
        if set & clr != 0 && !self.driver.is_idle() {
            // Both written since the last step: a listen refused or ended, then another
            // armed (the words cannot say in which order). A listen outstanding has its
            // channels on.
            enabled |= set & clr;
        }
        self.enabled.set(enabled);
        self.set_ppi_word(ppi::CHENSET, 0);
        self.set_ppi_word(ppi::CHENCLR, 0);
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
        let phy = match self.radio(radio::MODE) {
            3 => Phy::Le1M,
            4 => Phy::Le2M,
            mode => panic!("RADIO radio::MODE {mode} is neither BLE 1M nor 2M"),
        };
        Some(Armed {
            start_us: self
                .timer(timer::CC0)
                .wrapping_add(RAMP_UP_US + RX_GUARD_US),
            timeout_us: self.timer(timer::CC1),
            channel: self.radio(radio::DATAWHITEIV) as u8,
            phy,
            access_address: (self.radio(radio::BASE0) >> 8) | (self.radio(radio::PREFIX0) << 24),
            crc_init: self.radio(radio::CRCINIT),
        })
    }

    fn interrupt(&self) {
        if self.radio(radio::INTENSET) & INTEN_DISABLED != 0 {
            self.driver.handle_interrupt();
        }
        self.settle();
    }

    fn switch_on(&self) {
        self.settle();
        assert!(self.on(PPI_RXEN.channel), "RXEN's channel is off");
        self.set_radio(radio::EVENTS_READY, 1);
        self.set_radio(radio::STATE, STATE_RX);
    }

    /// A packet `pdu` (header and payload) that started at `start_us`: its ADDRESS event comes
    /// the preamble, access address and receive chain later; the timer reads `now_after`
    /// when the interrupt runs.
    pub fn packet(&self, start_us: u32, pdu: &[u8], crc_ok: bool, now_after: u32) {
        let phy = self.armed().expect("a listen is armed").phy;
        self.switch_on();
        self.set_radio(radio::EVENTS_ADDRESS, 1);
        if self.on(PPI_ADDRESS.channel) {
            let capture = start_us
                .wrapping_add(address_air_us(phy))
                .wrapping_add(rx_chain_delay_us(phy));
            self.set_timer(timer::CC1, capture);
        }
        if self.dma(pdu[0], pdu[1], &pdu[2..]) > self.buffer.1 {
            self.overruns.set(self.overruns.get() + 1);
        }
        self.set_radio(radio::CRCSTATUS, u32::from(crc_ok));
        self.set_radio(radio::EVENTS_END, 1);
        self.set_now(now_after);
        if self.radio(radio::SHORTS) & SHORTS_END_DISABLE != 0 {
            self.set_radio(radio::EVENTS_DISABLED, 1);
            self.released();
            self.interrupt();
        }
    }

    /// The timer reached the timeout's compare with no ADDRESS: DISABLE through PPI.
    pub fn timeout(&self) {
        self.switch_on();
        assert!(self.on(PPI_TIMEOUT.channel), "the timeout's channel is off");
        self.set_now(self.timer(timer::CC1).wrapping_add(1));
        self.set_radio(radio::EVENTS_DISABLED, 1);
        self.released();
        self.interrupt();
    }

    /// A DISABLED interrupt after a cancel that found the RADIO on.
    pub fn disabled(&self) {
        self.set_radio(radio::EVENTS_DISABLED, 1);
        self.released();
        self.interrupt();
    }

    /// Another driver holds the RADIO (its radio::STATE not Disabled) from now on, taking it again
    /// each time a listen ends; or gives it back.
    pub fn set_radio_taken(&self, taken: bool) {
        self.taken.set(taken);
        self.set_radio(radio::STATE, if taken { STATE_RX } else { 0 });
    }

    /// The RADIO is disabled, or at once taken by another driver.
    fn released(&self) {
        self.set_radio(radio::STATE, if self.taken.get() { STATE_RX } else { 0 });
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
