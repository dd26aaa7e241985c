//! A BLE advertising radio double: records receive and transmit requests, delivers packets and
//! transmit completions when the test says so.
//!
//! Shared by the crate's unit tests (included by path) and the integration tests.

use std::boxed::Box;
use std::cell::RefCell;
use std::vec;
use std::vec::Vec;

use kernel::hil::ble_advertising::{BleAdvertisementDriver, RadioChannel, RxClient, TxClient};
use kernel::hil::time::Alarm;
use kernel::utilities::cells::OptionalCell;
use kernel::ErrorCode;
use tock_ota_capsules::adv_radio::RX_BUF_LEN;
use tock_ota_capsules::bulk_scan::{ReportRing, RxControl, ScanRadio, TryTransmit, TX_BUF_LEN};

use super::fake_alarm::FakeAlarm;

#[derive(Debug, PartialEq, Eq)]
pub enum Call {
    Receive(u8),
    Transmit(u8, Vec<u8>),
    StopReceive,
}

fn number(channel: RadioChannel) -> u8 {
    match channel {
        RadioChannel::AdvertisingChannel37 => 37,
        RadioChannel::AdvertisingChannel38 => 38,
        RadioChannel::AdvertisingChannel39 => 39,
        _ => 0,
    }
}

#[derive(Default)]
pub struct FakeRadio {
    calls: RefCell<Vec<Call>>,
    tx: RefCell<Option<&'static mut [u8]>>,
    rx_client: OptionalCell<&'static dyn RxClient>,
    tx_client: OptionalCell<&'static dyn TxClient>,
    /// Receive buffers the client handed back.
    pub returned: core::cell::Cell<usize>,
    /// Refuse the next transmit with this error.
    pub refuse: core::cell::Cell<Option<ErrorCode>>,
}

impl FakeRadio {
    pub fn take_calls(&self) -> Vec<Call> {
        core::mem::take(&mut *self.calls.borrow_mut())
    }
    /// A packet arrives on the channel being listened on.
    pub fn packet(&self, pdu: &[u8], ok: bool) {
        self.packet_in(255, pdu, ok);
    }
    /// A packet arrives in a receive buffer of `buf_len` bytes (a radio's is [`RX_BUF_LEN`]).
    pub fn packet_in(&self, buf_len: usize, pdu: &[u8], ok: bool) {
        let buf: &'static mut [u8] = Box::leak(vec![0u8; buf_len].into_boxed_slice());
        buf[..pdu.len()].copy_from_slice(pdu);
        let result = if ok { Ok(()) } else { Err(ErrorCode::FAIL) };
        self.rx_client
            .map(|c| c.receive_event(buf, pdu.len() as u8, result));
    }
    pub fn transmitted(&self) {
        let buf = self.tx.borrow_mut().take().expect("a transmit in flight");
        self.tx_client.map(|c| c.transmit_event(buf, Ok(())));
    }
}

impl TryTransmit for FakeRadio {
    fn try_transmit(
        &self,
        buf: &'static mut [u8],
        len: usize,
        channel: RadioChannel,
    ) -> Result<(), (ErrorCode, &'static mut [u8])> {
        if let Some(e) = self.refuse.take() {
            return Err((e, buf));
        }
        self.calls
            .borrow_mut()
            .push(Call::Transmit(number(channel), buf[..len].to_vec()));
        *self.tx.borrow_mut() = Some(buf);
        Ok(())
    }
}

impl BleAdvertisementDriver<'static> for FakeRadio {
    fn transmit_advertisement(&self, buf: &'static mut [u8], len: usize, channel: RadioChannel) {
        if let Err((e, buf)) = self.try_transmit(buf, len, channel) {
            self.tx_client.map(|c| c.transmit_event(buf, Err(e)));
        }
    }
    fn receive_advertisement(&self, channel: RadioChannel) {
        self.calls.borrow_mut().push(Call::Receive(number(channel)));
    }
    fn set_receive_client(&self, client: &'static dyn RxClient) {
        self.rx_client.set(client);
    }
    fn set_transmit_client(&self, client: &'static dyn TxClient) {
        self.tx_client.set(client);
    }
}

impl RxControl for FakeRadio {
    fn rx_buffer_back(&self, _buf: &'static mut [u8; RX_BUF_LEN]) {
        self.returned.set(self.returned.get() + 1);
    }
    fn stop_receive(&self) {
        self.calls.borrow_mut().push(Call::StopReceive);
    }
}

/// The scanner the tests drive.
pub type Scan = ScanRadio<'static, FakeRadio, FakeAlarm>;

/// A scanner over a [`FakeRadio`] and a [`FakeAlarm`], with a ring of `ring_len` bytes, wired as
/// a board wires it (radio and alarm clients set); the caller sets the batch sink.
pub fn scan_rig(ring_len: usize) -> (&'static FakeRadio, &'static Scan, &'static FakeAlarm) {
    let radio: &'static FakeRadio = Box::leak(Box::default());
    let ring = Box::leak(Box::new(ReportRing::new(Box::leak(
        vec![0u8; ring_len].into_boxed_slice(),
    ))));
    let tx = Box::leak(Box::new([0u8; TX_BUF_LEN]));
    let alarm: &'static FakeAlarm = Box::leak(Box::default());
    let scan: &'static Scan = Box::leak(Box::new(ScanRadio::new(
        radio,
        alarm,
        ring,
        tx,
        [1, 2, 3, 4, 5, 0xC6],
    )));
    radio.set_receive_client(scan);
    radio.set_transmit_client(scan);
    alarm.set_alarm_client(scan);
    (radio, scan, alarm)
}

/// An ADV_NONCONN_IND PDU (11 bytes) whose AdvData ends in three `tag` bytes.
pub fn adv_pdu(tag: u8) -> Vec<u8> {
    let mut p = vec![0x02, 9, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6];
    p.extend([tag; 3]);
    p
}
