//! The BLE advertising radio driver at register level against a model of the nRF52840 RADIO.
//!
//! The driver writes a RAM-backed copy of the RADIO register block; this harness plays the
//! peripheral. On TASKS_RXEN it listens; a packet from the air is written to RAM the way the
//! RADIO's EasyDMA writes it, as the driver programmed it: S0 (PCNF0.S0LEN bytes), the LENGTH
//! field (PCNF0.LFLEN bits, whole bytes), then `min(LENGTH, PCNF1.MAXLEN)` payload bytes at
//! PACKETPTR, CRCSTATUS failing for a packet cut by MAXLEN. Every write must land inside a
//! buffer the driver owns; the model never writes past it and records the attempt instead.
//! TASKS_TXEN sends what PACKETPTR points at (S0, LENGTH, LENGTH bytes); TASKS_DISABLE stops.
//! END→DISABLE (SHORTS) raises DISABLED, and the interrupt handler runs when INTENSET has it.

#[path = "support/fake_alarm.rs"]
#[allow(dead_code)]
mod fake_alarm;
#[path = "support/fake_radio.rs"]
#[allow(dead_code)]
mod fake_radio;
#[path = "support/radio_hw.rs"]
#[allow(dead_code)]
mod radio_hw;

use std::cell::{Cell, RefCell};

use fake_alarm::FakeAlarm;
use fake_radio::adv_pdu;
use kernel::hil::ble_advertising::{BleAdvertisementDriver, RadioChannel, RxClient, TxClient};
use kernel::ErrorCode;
use tock_ota_capsules::adv_radio::{AdvRadio, RadioRegisters, RX_BUF_LEN};
use tock_ota_capsules::bulk_scan::{
    BatchSink, Delivery, ReportRing, RxControl, ScanRadio, TryTransmit, MAX_PDU, TX_BUF_LEN,
};

use radio_hw::radio as reg;
use radio_hw::{dma_receive, header_len, Block, INTEN_DISABLED, SHORTS_END_DISABLE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Disabled,
    /// Listening on 2400 MHz + this.
    Rx(u32),
}

/// The RADIO model around one driver.
struct Model {
    regs: Block,
    radio: &'static AdvRadio<'static>,
    state: Cell<State>,
    /// RAM the driver may hand to EasyDMA: (address, length).
    buffers: RefCell<Vec<(usize, usize)>>,
    /// EasyDMA writes that would have gone past the buffer: (bytes it would write, buffer length).
    overruns: RefCell<Vec<(usize, usize)>>,
    /// PDUs sent: (MHz above 2400, S0 + LENGTH + payload).
    sent: RefCell<Vec<(u32, Vec<u8>)>>,
}

impl Model {
    fn new() -> &'static Model {
        let regs = Block::new(reg::WORDS);
        let static_ref = regs.registers::<RadioRegisters>();
        let rx: &'static mut [u8; RX_BUF_LEN] = Box::leak(Box::new([0u8; RX_BUF_LEN]));
        let rx_at = (rx.as_ptr() as usize, rx.len());
        let radio: &'static AdvRadio = Box::leak(Box::new(AdvRadio::new(static_ref, rx)));
        Box::leak(Box::new(Model {
            regs,
            radio,
            state: Cell::new(State::Disabled),
            buffers: RefCell::new(vec![rx_at]),
            overruns: RefCell::new(Vec::new()),
            sent: RefCell::new(Vec::new()),
        }))
    }

    fn read(&self, word: usize) -> u32 {
        self.regs.get(word)
    }

    fn write(&self, word: usize, value: u32) {
        self.regs.set(word, value)
    }

    /// The buffer PACKETPTR points into (a 32-bit EasyDMA address: compared on the low bits).
    fn target(&self) -> (usize, usize) {
        let pointer = self.read(reg::PACKETPTR);
        *self
            .buffers
            .borrow()
            .iter()
            .find(|(at, _)| *at as u32 == pointer)
            .expect("PACKETPTR points at no buffer the driver owns")
    }

    fn maxlen(&self) -> usize {
        (self.read(reg::PCNF1) & 0xFF) as usize
    }

    fn interrupt(&self) {
        if self.read(reg::INTENSET) & INTEN_DISABLED != 0 {
            self.radio.handle_interrupt();
        }
    }

    /// Packet over: END, then DISABLED if the shortcut is set.
    fn end(&self) {
        self.write(reg::EVENTS_END, 1);
        if self.read(reg::SHORTS) & SHORTS_END_DISABLE != 0 {
            self.state.set(State::Disabled);
            self.write(reg::EVENTS_DISABLED, 1);
            self.interrupt();
        }
    }

    /// Run the tasks the driver triggered, until it triggers none.
    fn settle(&self) {
        for _ in 0..64 {
            if self.read(reg::TASKS_DISABLE) == 1 {
                self.write(reg::TASKS_DISABLE, 0);
                self.state.set(State::Disabled);
                self.write(reg::EVENTS_DISABLED, 1);
                self.interrupt();
            } else if self.read(reg::TASKS_RXEN) == 1 {
                self.write(reg::TASKS_RXEN, 0);
                self.state.set(State::Rx(self.read(reg::FREQUENCY) & 0x7F));
            } else if self.read(reg::TASKS_TXEN) == 1 {
                self.write(reg::TASKS_TXEN, 0);
                let (at, len) = self.target();
                let header = header_len(self.read(reg::PCNF0));
                // SAFETY: `at..at + len` is a buffer the driver owns and is not using while
                // the RADIO reads it; the reads stay inside it (checked below).
                let ram = unsafe { std::slice::from_raw_parts(at as *const u8, len) };
                let length = ram[header - 1] as usize;
                let extent = header + length.min(self.maxlen());
                assert!(extent <= len, "EasyDMA would read past the transmit buffer");
                self.sent
                    .borrow_mut()
                    .push((self.read(reg::FREQUENCY) & 0x7F, ram[..extent].to_vec()));
                self.end();
            } else {
                return;
            }
        }
        panic!("the driver keeps triggering tasks");
    }

    /// A packet from the air: `s0`, the LENGTH byte `length`, then `payload` (as many bytes as
    /// the sender put on air; LENGTH need not match). Returns whether the RADIO was listening.
    fn air(&self, mhz: u32, s0: u8, length: u8, payload: &[u8]) -> bool {
        if self.state.get() != State::Rx(mhz) {
            return false;
        }
        let (at, len) = self.target();
        let extent = dma_receive(&self.regs, (at, len), s0, length, payload);
        if extent > len {
            self.overruns.borrow_mut().push((extent, len));
        }
        let maxlen = self.maxlen();
        let crc_ok = (length as usize) <= maxlen && payload.len() == length as usize;
        self.write(reg::CRCSTATUS, u32::from(crc_ok));
        self.end();
        self.settle();
        true
    }
}

/// A receive as the client saw it: the bytes, the buffer's length, the result.
type Received = (Vec<u8>, usize, Result<(), ErrorCode>);

/// A receive client that keeps what it gets, hands the buffer back and listens on.
struct Listener {
    radio: &'static AdvRadio<'static>,
    got: RefCell<Vec<Received>>,
    channel: Cell<RadioChannel>,
}

impl RxClient for Listener {
    fn receive_event(&self, buf: &'static mut [u8], len: u8, result: Result<(), ErrorCode>) {
        let len = len as usize;
        assert!(
            len <= buf.len(),
            "length {len} beyond a {}-byte buffer",
            buf.len()
        );
        self.got
            .borrow_mut()
            .push((buf[..len].to_vec(), buf.len(), result));
        self.radio
            .rx_buffer_back(buf.try_into().expect("the radio's own buffer"));
        self.radio.receive_advertisement(self.channel.get());
    }
}

impl TxClient for Listener {
    fn transmit_event(&self, _buf: &'static mut [u8], _result: Result<(), ErrorCode>) {}
}

const CH37: u32 = 2;
const CH38: u32 = 26;

#[test]
fn a_packet_with_length_255_never_writes_past_the_receive_buffer() {
    let model = Model::new();
    let listener: &'static Listener = Box::leak(Box::new(Listener {
        radio: model.radio,
        got: RefCell::new(Vec::new()),
        channel: Cell::new(RadioChannel::AdvertisingChannel37),
    }));
    model.radio.set_receive_client(listener);
    model
        .radio
        .receive_advertisement(RadioChannel::AdvertisingChannel37);
    model.settle();

    for length in [255u8, 254, 38, 37] {
        let payload = vec![0xAB; length as usize];
        assert!(model.air(CH37, 0x02, length, &payload), "not listening");
    }
    assert_eq!(
        *model.overruns.borrow(),
        vec![],
        "EasyDMA wrote past the buffer"
    );
    let got = listener.got.borrow();
    assert_eq!(got.len(), 4);
    for (bytes, buffer, result) in &got[..3] {
        // Cut at MAXLEN: reported as a failed receive, its length within the buffer.
        assert_eq!(*result, Err(ErrorCode::SIZE));
        assert_eq!(bytes.len(), RX_BUF_LEN);
        assert!(*buffer >= RX_BUF_LEN);
    }
    assert_eq!(got[3].2, Ok(()));
    assert_eq!(got[3].0.len(), 2 + 37);
}

#[test]
fn a_receive_asked_for_while_receiving_moves_the_radio_to_the_new_channel() {
    let model = Model::new();
    let listener: &'static Listener = Box::leak(Box::new(Listener {
        radio: model.radio,
        got: RefCell::new(Vec::new()),
        channel: Cell::new(RadioChannel::AdvertisingChannel38),
    }));
    model.radio.set_receive_client(listener);
    model
        .radio
        .receive_advertisement(RadioChannel::AdvertisingChannel37);
    model.settle();
    assert_eq!(model.state.get(), State::Rx(CH37));
    model
        .radio
        .receive_advertisement(RadioChannel::AdvertisingChannel38);
    model.settle();
    assert_eq!(model.state.get(), State::Rx(CH38));
    assert!(!model.air(CH37, 0x02, 11, &adv_pdu(1)[2..]));
    assert!(model.air(CH38, 0x02, 9, &adv_pdu(1)[2..]));
    assert_eq!(listener.got.borrow()[0].0, adv_pdu(1));
}

#[test]
fn stopping_a_receive_disables_the_radio_and_nothing_is_restarted() {
    let model = Model::new();
    let listener: &'static Listener = Box::leak(Box::new(Listener {
        radio: model.radio,
        got: RefCell::new(Vec::new()),
        channel: Cell::new(RadioChannel::AdvertisingChannel37),
    }));
    model.radio.set_receive_client(listener);
    model
        .radio
        .receive_advertisement(RadioChannel::AdvertisingChannel37);
    model.settle();
    assert_eq!(model.state.get(), State::Rx(CH37));
    model.radio.stop_receive();
    model.settle();
    assert_eq!(model.state.get(), State::Disabled, "still receiving");
    assert!(!model.air(CH37, 0x02, 9, &adv_pdu(1)[2..]));
    assert!(listener.got.borrow().is_empty());
    // Listening again later works.
    model
        .radio
        .receive_advertisement(RadioChannel::AdvertisingChannel38);
    model.settle();
    assert_eq!(model.state.get(), State::Rx(CH38));
}

/// A transmit client that records its events and fails if called from inside `try_transmit`.
#[derive(Default)]
struct Sender {
    inside: Cell<bool>,
    events: RefCell<Vec<Result<(), ErrorCode>>>,
}

impl Sender {
    fn send(
        &self,
        radio: &AdvRadio<'static>,
        buf: &'static mut [u8],
        len: usize,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        self.inside.set(true);
        let result = radio.try_transmit(buf, len, RadioChannel::AdvertisingChannel37);
        self.inside.set(false);
        result
    }
}

impl TxClient for Sender {
    fn transmit_event(&self, _buf: &'static mut [u8], result: Result<(), ErrorCode>) {
        assert!(!self.inside.get(), "transmit_event re-entered the client");
        self.events.borrow_mut().push(result);
    }
}

#[test]
fn a_refused_transmit_comes_back_from_try_transmit_and_the_client_is_not_re_entered() {
    let model = Model::new();
    let sender: &'static Sender = Box::leak(Box::default());
    model.radio.set_transmit_client(sender);
    let tx: &'static mut [u8] = Box::leak(adv_pdu(1).into_boxed_slice());
    model
        .buffers
        .borrow_mut()
        .push((tx.as_ptr() as usize, tx.len()));
    let len = tx.len();

    // SIZE: LENGTH disagrees with len. The buffer comes back here, no event.
    let Err((e, tx)) = sender.send(model.radio, tx, len - 1) else {
        panic!("a PDU whose LENGTH is not len - 2 was accepted");
    };
    assert_eq!(e, ErrorCode::SIZE);
    assert_eq!(*sender.events.borrow(), vec![]);

    // Accepted; a second transmit while it is in flight is BUSY, again without an event.
    assert!(sender.send(model.radio, tx, len).is_ok());
    let other: &'static mut [u8] = Box::leak(adv_pdu(2).into_boxed_slice());
    let Err((e, _)) = sender.send(model.radio, other, len) else {
        panic!("a transmit while one is in flight was accepted");
    };
    assert_eq!(e, ErrorCode::BUSY);
    assert_eq!(*sender.events.borrow(), vec![]);

    // The accepted one goes out and is reported once, from the interrupt.
    model.settle();
    assert_eq!(model.sent.borrow().len(), 1);
    assert_eq!(*sender.events.borrow(), vec![Ok(())]);
}

/// A sink that keeps every batch of the scanner.
#[derive(Default)]
struct Sink {
    reports: RefCell<Vec<(u8, Vec<u8>)>>,
}

impl BatchSink for Sink {
    fn deliver(&self, ring: &mut ReportRing, _dropped: usize) -> Delivery {
        let mut bytes = Vec::new();
        let (reports, _) = ring.drain_into(&mut |i, b| {
            bytes.resize(i + 1, 0);
            bytes[i] = b;
        });
        let mut at = 0;
        for _ in 0..reports {
            let len = bytes[at] as usize;
            self.reports
                .borrow_mut()
                .push((bytes[at + 1], bytes[at + 2..at + 2 + len].to_vec()));
            at += 2 + len;
        }
        if reports == 0 {
            return Delivery::NotNow;
        }
        Delivery::Delivered
    }
    fn present(&self) -> bool {
        true
    }
}

#[test]
fn the_scanner_on_the_register_level_radio_drops_junk_and_keeps_every_good_packet() {
    let model = Model::new();
    let ring = Box::leak(Box::new(ReportRing::new(Box::leak(
        vec![0u8; 4096].into_boxed_slice(),
    ))));
    let tx = Box::leak(Box::new([0u8; TX_BUF_LEN]));
    let alarm: &'static FakeAlarm = Box::leak(Box::default());
    let scan: &'static ScanRadio<'static, AdvRadio<'static>, FakeAlarm> = Box::leak(Box::new(
        ScanRadio::new(model.radio, alarm, ring, tx, [1, 2, 3, 4, 5, 0xC6]),
    ));
    let sink: &'static Sink = Box::leak(Box::default());
    model.radio.set_receive_client(scan);
    model.radio.set_transmit_client(scan);
    scan.set_sink(sink);
    scan.start();
    model.settle();

    let channels = [CH37, 26, 80];
    let mut good = Vec::new();
    for i in 0..60u8 {
        let mhz = match model.state.get() {
            State::Rx(mhz) => mhz,
            State::Disabled => panic!("the scanner stopped listening"),
        };
        assert!(channels.contains(&mhz));
        if i % 3 == 0 {
            // Junk: LENGTH 38..=255 whatever the sender put on air.
            let length = 38 + (i as usize * 37) % 218;
            assert!(model.air(mhz, 0x02, length as u8, &vec![i; length]));
        } else {
            let pdu = adv_pdu(i);
            assert!(model.air(mhz, pdu[0], pdu[1], &pdu[2..]));
            good.push(pdu);
        }
        // The consumer is done with its batch at once.
        scan.release();
    }
    assert_eq!(
        *model.overruns.borrow(),
        vec![],
        "EasyDMA wrote past the buffer"
    );
    let reports = sink.reports.borrow();
    let pdus: Vec<Vec<u8>> = reports.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(pdus, good);
    assert!(reports.iter().all(|(_, p)| p.len() <= MAX_PDU));
}
