//! The timed secondary-channel receiver (`aux_radio`) at register level.
//!
//! The driver writes RAM-backed copies of the RADIO, TIMER0 and PPI register blocks; this
//! harness plays the hardware. The timer's "now" is what the test puts in `CC[3]` (the driver
//! reads it after triggering CAPTURE\[3\]). PPI: the channels the driver writes to CHENSET and
//! CHENCLR are applied after each call, set before clear (the order in which the driver writes
//! them within one call). A packet from the air is written to RAM the way the RADIO's EasyDMA
//! writes it, as the driver programmed it: S0 (PCNF0.S0LEN bytes), the LENGTH field
//! (PCNF0.LFLEN bits, whole bytes), then min(LENGTH, PCNF1.MAXLEN) payload bytes at PACKETPTR.
//! Every write must land inside the buffer the driver owns; the model never writes past it and
//! records the attempt instead. ADDRESS captures the timer into `CC[1]` only while PPI channel 26
//! is on; the timeout (DISABLE) happens only while channel 22 is on. END→DISABLE (SHORTS) raises
//! DISABLED, and the interrupt handler runs when INTENSET has it.

#[path = "support/aux_hw.rs"]
#[allow(dead_code)]
mod aux_hw;
#[path = "support/radio_hw.rs"]
#[allow(dead_code)]
mod radio_hw;

use std::cell::{Cell, RefCell};
use std::mem::offset_of;
use std::ops::Deref;

use adv_transfer::bearer::Phy;
use kernel::hil::ble_advertising::RadioChannel;
use tock_ota_capsules::adv_radio::{RadioRegisters, RADIO_BASE};
use tock_ota_capsules::aux_radio::{
    frequency_offset, AuxClient, AuxRadio, Listen, ListenError, Missed, PpiRegisters,
    TimerRegisters, AUX_RX_BUF_LEN, MAX_WINDOW_US, PPI_ADDRESS, PPI_BASE, PPI_CHANNELS, PPI_RXEN,
    PPI_TIMEOUT, TIMER0_BASE,
};

use aux_hw::AuxBlocks;
use radio_hw::{ppi, radio, timer, INTEN_DISABLED, SHORTS_END_DISABLE, STATE_RX};

/// The BLE advertising access address and CRC preset, and a periodic train's.
const ADV_AA: u32 = 0x8E89_BED6;
const ADV_CRC_INIT: u32 = 0x55_5555;
const TRAIN_AA: u32 = 0x5A3C_9617;
const TRAIN_CRC_INIT: u32 = 0x12_3456;

/// What a client saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Received {
        listen: Listen,
        address_us: u32,
        pdu: Vec<u8>,
        buffer_len: usize,
    },
    Missed(Listen, Missed),
}

/// A client that records its completions, gives the buffer back and, if told, listens again
/// from inside the callback.
struct Recorder {
    radio: Cell<Option<&'static AuxRadio<'static>>>,
    seen: RefCell<Vec<Seen>>,
    next: Cell<Option<Listen>>,
    next_result: Cell<Option<Result<(), ListenError>>>,
    keep_buffer: Cell<bool>,
    kept: Cell<Option<&'static mut [u8; AUX_RX_BUF_LEN]>>,
}

impl Recorder {
    fn listen_next(&self) {
        if let Some(next) = self.next.take() {
            let radio = self.radio.get().expect("radio set");
            self.next_result.set(Some(radio.listen(next)));
        }
    }
}

impl AuxClient for Recorder {
    fn received(
        &self,
        listen: &Listen,
        address_us: u32,
        buf: &'static mut [u8; AUX_RX_BUF_LEN],
        len: usize,
    ) {
        assert!(len <= buf.len(), "length {len} beyond the buffer");
        self.seen.borrow_mut().push(Seen::Received {
            listen: *listen,
            address_us,
            pdu: buf[..len].to_vec(),
            buffer_len: buf.len(),
        });
        if self.keep_buffer.get() {
            self.kept.set(Some(buf));
        } else {
            self.radio.get().expect("radio set").buffer_back(buf);
        }
        self.listen_next();
    }

    fn missed(&self, listen: &Listen, why: Missed) {
        self.seen.borrow_mut().push(Seen::Missed(*listen, why));
        self.listen_next();
    }
}

/// The hardware around one driver.
struct Model {
    blocks: AuxBlocks,
    client: &'static Recorder,
    /// PPI channels on.
    enabled: Cell<u32>,
    /// EasyDMA writes that would have gone past the buffer: (bytes it would write, buffer).
    overruns: RefCell<Vec<(usize, usize)>>,
}

impl Deref for Model {
    type Target = AuxBlocks;

    fn deref(&self) -> &AuxBlocks {
        &self.blocks
    }
}

impl Model {
    fn new() -> &'static Model {
        let blocks = AuxBlocks::new();
        let client: &'static Recorder = Box::leak(Box::new(Recorder {
            radio: Cell::new(Some(blocks.driver)),
            seen: RefCell::new(Vec::new()),
            next: Cell::new(None),
            next_result: Cell::new(None),
            keep_buffer: Cell::new(false),
            kept: Cell::new(None),
        }));
        blocks.driver.set_client(client);
        Box::leak(Box::new(Model {
            blocks,
            client,
            enabled: Cell::new(0),
            overruns: RefCell::new(Vec::new()),
        }))
    }

    /// Apply what the driver wrote to CHENSET and CHENCLR.
    fn settle_ppi(&self) {
        let set = self.ppi_word(ppi::CHENSET);
        let clr = self.ppi_word(ppi::CHENCLR);
        self.enabled.set((self.enabled.get() | set) & !clr);
        self.set_ppi_word(ppi::CHENSET, 0);
        self.set_ppi_word(ppi::CHENCLR, 0);
    }

    fn listen(&self, listen: Listen) -> Result<(), ListenError> {
        let result = self.driver.listen(listen);
        self.settle_ppi();
        result
    }

    fn on(&self, channel: u8) -> bool {
        self.enabled.get() & (1 << channel) != 0
    }

    /// The RADIO interrupt, if enabled.
    fn interrupt(&self) {
        if self.radio(radio::INTENSET) & INTEN_DISABLED != 0 {
            self.driver.handle_interrupt();
        }
        self.settle_ppi();
    }

    /// RXEN came through PPI channel 21 at CC\[0\]: the RADIO ramps up and is READY.
    fn switch_on(&self) {
        assert!(self.on(PPI_RXEN.channel), "RXEN's channel is off");
        self.set_radio(radio::EVENTS_READY, 1);
    }

    /// A packet from the air whose ADDRESS event comes at timer value `capture`: S0 `s0`, the
    /// LENGTH byte `length`, then `payload` (the CRC passing if `crc_ok`).
    fn packet(&self, capture: u32, s0: u8, length: u8, payload: &[u8], crc_ok: bool) {
        self.switch_on();
        self.set_radio(radio::EVENTS_ADDRESS, 1);
        if self.on(PPI_ADDRESS.channel) {
            self.set_timer(timer::CC1, capture);
        }
        let extent = self.dma(s0, length, payload);
        if extent > self.buffer.1 {
            self.overruns.borrow_mut().push((extent, self.buffer.1));
        }
        self.set_radio(radio::CRCSTATUS, u32::from(crc_ok));
        self.set_radio(radio::EVENTS_END, 1);
        if self.radio(radio::SHORTS) & SHORTS_END_DISABLE != 0 {
            self.set_radio(radio::EVENTS_DISABLED, 1);
            self.interrupt();
        }
    }

    /// The timer reached CC\[1\] with no ADDRESS: DISABLE through PPI channel 22.
    fn timeout(&self) {
        self.switch_on();
        assert!(self.on(PPI_TIMEOUT.channel), "the timeout's channel is off");
        self.set_radio(radio::EVENTS_DISABLED, 1);
        self.interrupt();
    }

    fn seen(&self) -> Vec<Seen> {
        self.client.seen.take()
    }
}

fn listen(start_us: u32, window_us: u32, channel: u8, phy: Phy) -> Listen {
    Listen {
        start_us,
        window_us,
        channel,
        phy,
        access_address: TRAIN_AA,
        crc_init: TRAIN_CRC_INIT,
    }
}

#[test]
fn a_listen_programs_the_channel_phy_address_and_crc() {
    // (channel index, MHz): Core Specification Vol 6 Part B §1.4.1.
    let channels = [
        (0, 2404),
        (10, 2424),
        (11, 2428),
        (36, 2478),
        (37, 2402),
        (38, 2426),
        (39, 2480),
    ];
    for (channel, mhz) in channels {
        for phy in [Phy::Le1M, Phy::Le2M] {
            let model = Model::new();
            model.set_now(1_000);
            let op = Listen {
                access_address: ADV_AA,
                crc_init: ADV_CRC_INIT,
                ..listen(5_000, 200, channel, phy)
            };
            assert_eq!(model.listen(op), Ok(()));
            assert_eq!(
                model.radio(radio::FREQUENCY),
                mhz - 2400,
                "channel {channel}"
            );
            assert_eq!(model.radio(radio::DATAWHITEIV), channel as u32);
            let (mode, plen) = match phy {
                Phy::Le1M => (3, 0), // Ble_1Mbit, 8-bit preamble
                Phy::Le2M => (4, 1), // Ble_2Mbit, 16-bit preamble
            };
            assert_eq!(model.radio(radio::MODE), mode);
            let pcnf0 = model.radio(radio::PCNF0);
            assert_eq!((pcnf0 >> 24) & 3, plen, "PCNF0.PLEN");
            assert_eq!(
                pcnf0 & 0x00FF_FFFF,
                8 | (1 << 8),
                "LFLEN 8 bits, S0 1 byte, no S1"
            );
            assert_eq!(
                model.radio(radio::MODECNF0),
                1 | (2 << 8),
                "fast ramp-up, DTX at its reset value"
            );
            let pcnf1 = model.radio(radio::PCNF1);
            assert_eq!(pcnf1 & 0xFF, 255, "MAXLEN");
            assert_eq!((pcnf1 >> 16) & 7, 3, "BALEN");
            assert_eq!((pcnf1 >> 25) & 1, 1, "whitening");
            assert_eq!(model.radio(radio::BASE0), 0x89BE_D600);
            assert_eq!(model.radio(radio::PREFIX0) & 0xFF, 0x8E);
            assert_eq!(model.radio(radio::RXADDRESSES), 1);
            assert_eq!(model.radio(radio::CRCCNF), 3 | (1 << 8));
            assert_eq!(model.radio(radio::CRCPOLY), 0x65B);
            assert_eq!(model.radio(radio::CRCINIT), ADV_CRC_INIT);
            assert_eq!(model.radio(radio::SHORTS), 0b11, "READY→START, END→DISABLE");
            assert_eq!(model.radio(radio::INTENSET), INTEN_DISABLED);
        }
    }
    // Another access address and CRC init.
    let model = Model::new();
    assert_eq!(model.listen(listen(5_000, 200, 3, Phy::Le2M)), Ok(()));
    assert_eq!(model.radio(radio::BASE0), 0x3C96_1700);
    assert_eq!(model.radio(radio::PREFIX0) & 0xFF, 0x5A);
    assert_eq!(model.radio(radio::CRCINIT), TRAIN_CRC_INIT);
}

#[test]
fn the_frequency_of_every_channel_index_is_upstreams() {
    use RadioChannel::*;
    let upstream = [
        DataChannel0,
        DataChannel1,
        DataChannel2,
        DataChannel3,
        DataChannel4,
        DataChannel5,
        DataChannel6,
        DataChannel7,
        DataChannel8,
        DataChannel9,
        DataChannel10,
        DataChannel11,
        DataChannel12,
        DataChannel13,
        DataChannel14,
        DataChannel15,
        DataChannel16,
        DataChannel17,
        DataChannel18,
        DataChannel19,
        DataChannel20,
        DataChannel21,
        DataChannel22,
        DataChannel23,
        DataChannel24,
        DataChannel25,
        DataChannel26,
        DataChannel27,
        DataChannel28,
        DataChannel29,
        DataChannel30,
        DataChannel31,
        DataChannel32,
        DataChannel33,
        DataChannel34,
        DataChannel35,
        DataChannel36,
        AdvertisingChannel37,
        AdvertisingChannel38,
        AdvertisingChannel39,
    ];
    for channel in upstream {
        let index = channel.get_channel_index();
        assert_eq!(
            frequency_offset(index as u8),
            Some(channel as u32),
            "channel {index}"
        );
    }
    assert_eq!(frequency_offset(40), None);
}

#[test]
fn the_fixed_ppi_channels_are_the_specs_endpoints_of_these_register_layouts() {
    // The Product Specification's table of pre-programmed channels, as absolute addresses.
    assert_eq!(
        (PPI_RXEN.channel, PPI_RXEN.event, PPI_RXEN.task),
        (21, 0x4000_8140, 0x4000_1004)
    );
    assert_eq!(
        (PPI_TIMEOUT.channel, PPI_TIMEOUT.event, PPI_TIMEOUT.task),
        (22, 0x4000_8144, 0x4000_1010)
    );
    assert_eq!(
        (PPI_ADDRESS.channel, PPI_ADDRESS.event, PPI_ADDRESS.task),
        (26, 0x4000_1104, 0x4000_8044)
    );
    // ... and the registers the driver programs and reads are those.
    let compare = TIMER0_BASE + offset_of!(TimerRegisters, events_compare);
    let capture = TIMER0_BASE + offset_of!(TimerRegisters, tasks_capture);
    assert_eq!(PPI_RXEN.event, compare);
    assert_eq!(PPI_TIMEOUT.event, compare + 4);
    assert_eq!(PPI_ADDRESS.task, capture + 4);
    assert_eq!(
        PPI_RXEN.task,
        RADIO_BASE + offset_of!(RadioRegisters, tasks_rxen)
    );
    assert_eq!(
        PPI_TIMEOUT.task,
        RADIO_BASE + offset_of!(RadioRegisters, tasks_disable)
    );
    assert_eq!(
        PPI_ADDRESS.event,
        RADIO_BASE + offset_of!(RadioRegisters, events_address)
    );
    // CC[0] and CC[1] are what those compare and capture.
    assert_eq!(offset_of!(TimerRegisters, cc), 0x540);
    assert_eq!(offset_of!(PpiRegisters, chenset), 0x504);
    assert_eq!(PPI_BASE + offset_of!(PpiRegisters, chenclr), 0x4001_F508);
    assert_eq!(PPI_CHANNELS, (1 << 21) | (1 << 22) | (1 << 26));
}

#[test]
fn rxen_fires_before_the_window_and_the_timeout_after_its_latest_address() {
    for (phy, late) in [(Phy::Le1M, 40 + 10 + 2), (Phy::Le2M, 24 + 5 + 2)] {
        let model = Model::new();
        model.set_now(1_000);
        assert_eq!(model.listen(listen(10_000, 500, 5, phy)), Ok(()));
        // The timer: 1 MHz (16 MHz / 2^4), 32 bits, started.
        assert_eq!(model.timer(timer::MODE), 0);
        assert_eq!(model.timer(timer::BITMODE), 3);
        assert_eq!(model.timer(timer::PRESCALER), 4);
        assert_eq!(model.timer(timer::TASKS_START), 1);
        // RXEN 40 µs ramp-up + 8 µs guard before the window.
        assert_eq!(model.timer(timer::CC0), 10_000 - 48);
        // DISABLE after a packet starting at the window's end has had its ADDRESS event:
        // preamble + access address, the chain delay rounded up, 2 µs.
        assert_eq!(model.timer(timer::CC1), 10_000 + 500 + late);
        assert_eq!(model.enabled.get(), PPI_CHANNELS);
    }
}

#[test]
fn the_times_wrap_across_two_to_the_32() {
    let model = Model::new();
    model.set_now(0xFFFF_FF00);
    assert_eq!(model.listen(listen(0x10, 100, 7, Phy::Le1M)), Ok(()));
    assert_eq!(model.timer(timer::CC0), 0xFFFF_FFE0);
    assert_eq!(model.timer(timer::CC1), 0x10 + 100 + 52);
    model.packet(0x3A, 0x07, 0, &[], true);
    // Captured at 0x3A: 9 µs (the chain delay) earlier.
    assert!(matches!(
        model.seen()[..],
        [Seen::Received {
            address_us: 0x31,
            ..
        }]
    ));

    model.set_now(0xFFFF_FE00);
    assert_eq!(model.listen(listen(0xFFFF_FFF0, 100, 7, Phy::Le2M)), Ok(()));
    assert_eq!(model.timer(timer::CC0), 0xFFFF_FFC0);
    assert_eq!(
        model.timer(timer::CC1),
        0xFFFF_FFF0u32.wrapping_add(100 + 31)
    );
    assert_eq!(model.timer(timer::CC1), 0x73);
    model.packet(0x2, 0x07, 0, &[], true);
    // Captured at 2 after the wrap: the time on air, 5 µs earlier, is before it.
    assert!(matches!(
        model.seen()[..],
        [Seen::Received {
            address_us: 0xFFFF_FFFD,
            ..
        }]
    ));
}

#[test]
fn a_packet_is_received_with_the_time_of_its_address() {
    let model = Model::new();
    model.set_now(100);
    let op = listen(20_000, 60, 22, Phy::Le2M);
    assert_eq!(model.listen(op), Ok(()));
    let payload: Vec<u8> = (0..40).collect();
    // ADDRESS captured 24 µs (2M preamble + access address) and 5 µs after a start of 20_030.
    model.packet(20_030 + 24 + 5, 0x07, 40, &payload, true);
    let mut pdu = vec![0x07, 40];
    pdu.extend(&payload);
    assert_eq!(
        model.seen(),
        vec![Seen::Received {
            listen: op,
            address_us: 20_030 + 24,
            pdu,
            buffer_len: AUX_RX_BUF_LEN,
        }]
    );
    // Ended: the channels are off, the driver idle, the buffer back.
    assert_eq!(model.enabled.get(), 0);
    assert!(model.driver.is_idle());
    assert_eq!(model.listen(listen(30_000, 60, 22, Phy::Le2M)), Ok(()));
}

#[test]
fn a_window_without_a_packet_is_missed() {
    let model = Model::new();
    model.set_now(100);
    let op = listen(2_000, 30, 0, Phy::Le1M);
    assert_eq!(model.listen(op), Ok(()));
    model.timeout();
    assert_eq!(
        model.seen(),
        vec![Seen::Missed(op, Missed::NothingInWindow)]
    );
    assert_eq!(model.enabled.get(), 0);
    assert!(model.driver.is_idle());
}

#[test]
fn a_packet_whose_crc_fails_is_missed() {
    let model = Model::new();
    model.set_now(100);
    let op = listen(2_000, 30, 36, Phy::Le1M);
    assert_eq!(model.listen(op), Ok(()));
    model.packet(2_050, 0x07, 10, &[1; 10], false);
    assert_eq!(model.seen(), vec![Seen::Missed(op, Missed::CrcError)]);
    assert_eq!(model.enabled.get(), 0);
    // The buffer stayed with the driver.
    assert_eq!(model.listen(listen(3_000, 30, 36, Phy::Le1M)), Ok(()));
}

#[test]
fn no_length_byte_makes_the_radio_write_past_the_buffer() {
    let model = Model::new();
    let mut now = 0u32;
    for length in 0..=255u8 {
        now += 10_000;
        model.set_now(now);
        assert_eq!(model.listen(listen(now + 1_000, 10, 9, Phy::Le2M)), Ok(()));
        let payload: Vec<u8> = (0..length).map(|i| i ^ 0x5A).collect();
        model.packet(now + 1_030, 0x47, length, &payload, true);
        let seen = model.seen();
        let [Seen::Received {
            pdu, buffer_len, ..
        }] = &seen[..]
        else {
            panic!("LENGTH {length}: {seen:?}");
        };
        // The whole packet, never more than the buffer.
        assert_eq!(pdu.len(), 2 + length as usize, "LENGTH {length}");
        assert_eq!(&pdu[2..], &payload[..]);
        assert_eq!(*buffer_len, 2 + 255);
    }
    assert_eq!(
        *model.overruns.borrow(),
        vec![],
        "EasyDMA wrote past the buffer"
    );
}

#[test]
fn a_start_already_passed_is_refused_and_nothing_is_armed() {
    let model = Model::new();
    model.set_now(10_000);
    let late = listen(10_000, 500, 4, Phy::Le1M);
    assert_eq!(
        model.listen(late),
        Err(ListenError::StartPassed {
            start_us: 10_000,
            rxen_us: 9_952,
            now_us: 10_000
        })
    );
    assert_eq!(model.enabled.get(), 0, "a channel left on");
    assert!(model.driver.is_idle());
    // RXEN exactly now: too late too. One microsecond ahead: armed.
    assert!(matches!(
        model.listen(listen(10_048, 500, 4, Phy::Le1M)),
        Err(ListenError::StartPassed {
            rxen_us: 10_000,
            ..
        })
    ));
    assert_eq!(model.enabled.get(), 0);
    assert_eq!(model.listen(listen(10_049, 500, 4, Phy::Le1M)), Ok(()));
    assert_eq!(model.timer(timer::CC0), 10_001);
    model.timeout();
    assert_eq!(
        model.seen().len(),
        1,
        "one completion, for the armed listen"
    );
    // More than half the timer's range ahead reads as passed.
    assert!(matches!(
        model.listen(listen(10_000 + 0x8000_0030, 10, 4, Phy::Le1M)),
        Err(ListenError::StartPassed { .. })
    ));
    assert_eq!(model.enabled.get(), 0);
    assert!(model.seen().is_empty());
}

#[test]
fn bad_listens_are_refused_with_what_is_wrong() {
    let model = Model::new();
    model.set_now(0);
    assert_eq!(
        model.listen(listen(5_000, 10, 40, Phy::Le1M)),
        Err(ListenError::Channel(40))
    );
    let wide_crc = Listen {
        crc_init: 0x0100_0000,
        ..listen(5_000, 10, 1, Phy::Le1M)
    };
    assert_eq!(
        model.listen(wide_crc),
        Err(ListenError::CrcInit(0x0100_0000))
    );
    assert_eq!(
        model.listen(listen(5_000, MAX_WINDOW_US + 1, 1, Phy::Le1M)),
        Err(ListenError::WindowTooLong {
            window_us: MAX_WINDOW_US + 1
        })
    );
    assert_eq!(model.enabled.get(), 0);
    // The longest window: its timeout stays within half the timer's range of RXEN.
    assert_eq!(
        model.listen(listen(5_000, MAX_WINDOW_US, 1, Phy::Le1M)),
        Ok(())
    );
    let span = model
        .timer(timer::CC1)
        .wrapping_sub(model.timer(timer::CC0));
    assert!(span <= i32::MAX as u32, "span {span:#x}");
    // One at a time.
    assert_eq!(
        model.listen(listen(6_000, 10, 1, Phy::Le1M)),
        Err(ListenError::Busy)
    );
    model.driver.cancel();
    model.settle_ppi();
    assert!(model.driver.is_idle());
    assert_eq!(model.enabled.get(), 0);
    // The RADIO held by someone else.
    model.set_radio(radio::STATE, STATE_RX);
    assert_eq!(
        model.listen(listen(6_000, 10, 1, Phy::Le1M)),
        Err(ListenError::RadioInUse)
    );
    model.set_radio(radio::STATE, 0);
    // The buffer with the client.
    model.client.keep_buffer.set(true);
    assert_eq!(model.listen(listen(7_000, 10, 1, Phy::Le1M)), Ok(()));
    model.packet(7_050, 0x07, 3, &[1, 2, 3], true);
    assert_eq!(model.seen().len(), 1);
    assert_eq!(
        model.listen(listen(8_000, 10, 1, Phy::Le1M)),
        Err(ListenError::BufferOut)
    );
    model
        .driver
        .buffer_back(model.client.kept.take().expect("kept"));
    assert_eq!(model.listen(listen(8_000, 10, 1, Phy::Le1M)), Ok(()));
    assert!(model.seen().is_empty(), "a refusal is never completed");
}

#[test]
fn the_client_listens_again_from_inside_its_completion() {
    let model = Model::new();
    model.set_now(1_000);
    let first = listen(5_000, 40, 12, Phy::Le2M);
    // The chain's next PDU, 300 µs after this one ends.
    let second = listen(5_500, 40, 30, Phy::Le2M);
    model.client.next.set(Some(second));
    assert_eq!(model.listen(first), Ok(()));
    model.set_now(5_150);
    model.packet(5_029, 0x07, 5, &[9; 5], true);
    assert_eq!(model.client.next_result.take(), Some(Ok(())));
    // The new listen is armed on its channel and time (the model cannot tell the order of
    // the handler's CHENCLR and the new listen's CHENSET: the words say both were written).
    assert_eq!(model.radio(radio::FREQUENCY), 2466 - 2400);
    assert_eq!(model.timer(timer::CC0), 5_500 - 48);
    assert!(!model.driver.is_idle());
    model.enabled.set(PPI_CHANNELS);
    model.timeout();
    let seen = model.seen();
    assert_eq!(seen.len(), 2);
    assert!(matches!(seen[0], Seen::Received { listen, .. } if listen == first));
    assert_eq!(seen[1], Seen::Missed(second, Missed::NothingInWindow));

    // From inside a miss too, and a refusal there is returned to the client, not completed.
    model.set_now(10_000);
    let third = listen(20_000, 40, 1, Phy::Le1M);
    model
        .client
        .next
        .set(Some(listen(20_010, 40, 1, Phy::Le1M)));
    assert_eq!(model.listen(third), Ok(()));
    model.set_now(20_100);
    model.timeout();
    assert!(matches!(
        model.client.next_result.take(),
        Some(Err(ListenError::StartPassed { .. }))
    ));
    assert_eq!(
        model.seen(),
        vec![Seen::Missed(third, Missed::NothingInWindow)]
    );
    assert!(model.driver.is_idle());
    assert_eq!(model.enabled.get(), 0);
}

#[test]
fn a_cancelled_listen_completes_nothing() {
    let model = Model::new();
    model.set_now(0);
    // Not yet switched on: idle at once.
    assert_eq!(model.listen(listen(5_000, 10, 1, Phy::Le1M)), Ok(()));
    model.driver.cancel();
    model.settle_ppi();
    assert!(model.driver.is_idle());
    assert_eq!(model.enabled.get(), 0);
    // Receiving: DISABLE, then idle at DISABLED, silently.
    assert_eq!(model.listen(listen(6_000, 10, 1, Phy::Le1M)), Ok(()));
    model.set_radio(radio::STATE, STATE_RX);
    model.driver.cancel();
    model.settle_ppi();
    assert!(!model.driver.is_idle());
    assert_eq!(model.enabled.get(), 0);
    model.set_radio(radio::STATE, 0);
    model.set_radio(radio::EVENTS_DISABLED, 1);
    model.interrupt();
    assert!(model.driver.is_idle());
    assert!(model.seen().is_empty());
}

#[test]
fn the_interrupt_of_another_driver_is_left_alone() {
    let model = Model::new();
    // Idle: a DISABLED (the legacy driver's) is not consumed.
    model.set_radio(radio::EVENTS_DISABLED, 1);
    model.driver.handle_interrupt();
    assert_eq!(model.radio(radio::EVENTS_DISABLED), 1);
    assert!(model.seen().is_empty());
    // Listening, but nothing ended yet: no completion.
    model.set_radio(radio::EVENTS_DISABLED, 0);
    model.set_now(0);
    assert_eq!(model.listen(listen(5_000, 10, 1, Phy::Le1M)), Ok(()));
    model.driver.handle_interrupt();
    assert!(model.seen().is_empty());
    assert!(!model.driver.is_idle());
}

/// A legacy receive: the bytes and the result.
type LegacyReceive = (Vec<u8>, Result<(), kernel::ErrorCode>);

/// A legacy receive client: records what it gets and keeps the buffer.
struct LegacyRecorder {
    got: RefCell<Vec<LegacyReceive>>,
}

impl kernel::hil::ble_advertising::RxClient for LegacyRecorder {
    fn receive_event(
        &self,
        buf: &'static mut [u8],
        len: u8,
        result: Result<(), kernel::ErrorCode>,
    ) {
        self.got
            .borrow_mut()
            .push((buf[..len as usize].to_vec(), result));
    }
}

#[test]
fn the_legacy_driver_and_this_one_take_turns_on_one_radio() {
    use kernel::hil::ble_advertising::BleAdvertisementDriver;
    use tock_ota_capsules::adv_radio::{AdvRadio, RX_BUF_LEN};

    let model = Model::new();
    // The same RADIO block the model's driver uses.
    let regs = model.radio_regs.registers::<RadioRegisters>();
    let legacy_buf: &'static mut [u8; RX_BUF_LEN] = Box::leak(Box::new([0u8; RX_BUF_LEN]));
    let legacy_at = legacy_buf.as_ptr() as usize;
    let legacy: &'static AdvRadio = Box::leak(Box::new(AdvRadio::new(regs, legacy_buf)));
    let legacy_client: &'static LegacyRecorder = Box::leak(Box::new(LegacyRecorder {
        got: RefCell::new(Vec::new()),
    }));
    legacy.set_receive_client(legacy_client);
    // The board's RADIO interrupt: this driver first, then the legacy one.
    let dispatch = || {
        model.driver.handle_interrupt();
        legacy.handle_interrupt();
        model.settle_ppi();
    };

    // A listen at 2M on a secondary channel, received.
    model.set_now(0);
    assert_eq!(model.listen(listen(1_000, 50, 5, Phy::Le2M)), Ok(()));
    model.switch_on();
    model.set_radio(radio::EVENTS_ADDRESS, 1);
    model.set_timer(timer::CC1, 1_040);
    model.set_radio(radio::CRCSTATUS, 1);
    model.set_radio(radio::EVENTS_END, 1);
    model.set_radio(radio::EVENTS_DISABLED, 1);
    dispatch();
    assert!(matches!(
        model.seen()[..],
        [Seen::Received {
            address_us: 1_035,
            ..
        }]
    ));
    assert!(legacy_client.got.borrow().is_empty());
    assert_eq!(
        model.enabled.get(),
        0,
        "no PPI channel left to fire into the legacy receive"
    );
    assert_eq!(
        model.radio(radio::MODECNF0),
        0x200,
        "MODECNF0 back at its reset value for the legacy driver"
    );

    // The legacy receive on 37 programs everything back for itself.
    legacy.receive_advertisement(RadioChannel::AdvertisingChannel37);
    assert_eq!(model.radio(radio::MODE), 3, "Ble_1Mbit");
    assert_eq!((model.radio(radio::PCNF0) >> 24) & 3, 0, "8-bit preamble");
    assert_eq!(model.radio(radio::PCNF1) & 0xFF, 37, "legacy MAXLEN");
    assert_eq!(model.radio(radio::FREQUENCY), 2);
    assert_eq!(model.radio(radio::DATAWHITEIV), 37);
    assert_eq!(model.radio(radio::BASE0), 0x89BE_D600);
    assert_eq!(model.radio(radio::CRCINIT), ADV_CRC_INIT);
    assert_eq!(model.radio(radio::PACKETPTR), legacy_at as u32);
    // Its packet goes to it; this driver, idle, leaves the DISABLED event alone.
    let pdu = [0x02u8, 6, 1, 2, 3, 4, 5, 6];
    for (i, b) in pdu.iter().enumerate() {
        // SAFETY: inside the legacy driver's 39-byte buffer, which EasyDMA owns now.
        unsafe { (legacy_at as *mut u8).add(i).write_volatile(*b) };
    }
    model.set_radio(radio::CRCSTATUS, 1);
    model.set_radio(radio::EVENTS_END, 1);
    model.set_radio(radio::EVENTS_DISABLED, 1);
    dispatch();
    assert_eq!(*legacy_client.got.borrow(), vec![(pdu.to_vec(), Ok(()))]);
    assert!(model.seen().is_empty());

    // While the legacy driver has the RADIO on, a listen is refused.
    legacy.receive_advertisement(RadioChannel::AdvertisingChannel38);
    model.set_radio(radio::STATE, STATE_RX);
    assert_eq!(
        model.listen(listen(5_000, 50, 5, Phy::Le1M)),
        Err(ListenError::RadioInUse)
    );
}
