//! The bulk scanner's report ring.

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use crate::bulk_scan::{ReportRing, MAX_PDU, REPORT_HEADER};

fn ring(len: usize) -> ReportRing {
    ReportRing::new(Box::leak(vec![0u8; len].into_boxed_slice()))
}

fn drain(ring: &mut ReportRing, limit: usize) -> (usize, Vec<u8>) {
    let mut out = vec![0u8; limit.min(4096)];
    let (reports, bytes) = ring.drain_up_to(limit, &mut |i, b| out[i] = b);
    out.truncate(bytes);
    (reports, out)
}

#[test]
fn reports_come_out_whole_and_in_order() {
    let mut r = ring(128);
    assert!(r.push(37, &[1, 2, 3]));
    assert!(r.push(38, &[4; 10]));
    let (n, bytes) = drain(&mut r, 1000);
    assert_eq!(n, 2);
    let mut expected = vec![3, 37, 1, 2, 3, 10, 38];
    expected.extend([4; 10]);
    assert_eq!(bytes, expected);
    assert!(r.is_empty());
}

#[test]
fn a_full_ring_refuses_new_reports_and_keeps_queued_ones() {
    let mut r = ring(2 * (REPORT_HEADER + MAX_PDU));
    assert!(r.push(37, &[0xAA; MAX_PDU]));
    assert!(r.push(38, &[0xBB; MAX_PDU]));
    assert!(!r.push(39, &[0xCC; 1]));
    let (n, bytes) = drain(&mut r, 1000);
    assert_eq!(n, 2);
    assert_eq!(bytes[2], 0xAA);
    assert_eq!(bytes[REPORT_HEADER + MAX_PDU + 2], 0xBB);
}

#[test]
fn a_drain_limit_never_splits_a_report_and_the_rest_stays_queued() {
    let mut r = ring(256);
    for i in 0..5u8 {
        assert!(r.push(37, &[i; 20]));
    }
    // 2 reports of 22 bytes fit in 50.
    let (n, bytes) = drain(&mut r, 50);
    assert_eq!((n, bytes.len()), (2, 44));
    let (n, bytes) = drain(&mut r, 1000);
    assert_eq!(n, 3);
    assert_eq!(bytes[2], 2);
}

#[test]
fn wrapping_around_the_end_of_storage_keeps_bytes_intact() {
    let mut r = ring(50);
    for round in 0..20u8 {
        assert!(r.push(37, &[round; 15]));
        assert!(r.push(38, &[round.wrapping_add(100); 15]));
        let (n, bytes) = drain(&mut r, 1000);
        assert_eq!(n, 2);
        assert_eq!(&bytes[2..17], &[round; 15]);
        assert_eq!(&bytes[19..34], &[round.wrapping_add(100); 15]);
    }
}

#[test]
fn empty_and_oversized_pdus_are_refused() {
    let mut r = ring(256);
    assert!(!r.push(37, &[]));
    assert!(!r.push(37, &[0; MAX_PDU + 1]));
    assert!(r.is_empty());
}

mod radio {
    use std::boxed::Box;
    use std::cell::{Cell, RefCell};
    use std::vec;
    use std::vec::Vec;

    use kernel::hil::ble_advertising::{BleAdvertisementDriver, RadioChannel, RxClient, TxClient};
    use kernel::utilities::cells::OptionalCell;
    use kernel::ErrorCode;

    use crate::bulk_scan::{BatchSink, ReportRing, ScanRadio, TX_BUF_LEN};

    #[derive(Debug, PartialEq, Eq)]
    enum Call {
        Receive(u8),
        Transmit(u8, Vec<u8>),
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
    struct FakeRadio {
        calls: RefCell<Vec<Call>>,
        tx: RefCell<Option<&'static mut [u8]>>,
        rx_client: OptionalCell<&'static dyn RxClient>,
        tx_client: OptionalCell<&'static dyn TxClient>,
    }

    impl FakeRadio {
        fn take_calls(&self) -> Vec<Call> {
            core::mem::take(&mut *self.calls.borrow_mut())
        }
        /// A packet arrives on the channel being listened on.
        fn packet(&self, pdu: &[u8], ok: bool) {
            let buf: &'static mut [u8] = Box::leak(vec![0u8; 255].into_boxed_slice());
            buf[..pdu.len()].copy_from_slice(pdu);
            let result = if ok { Ok(()) } else { Err(ErrorCode::FAIL) };
            self.rx_client
                .map(|c| c.receive_event(buf, pdu.len() as u8, result));
        }
        fn transmitted(&self) {
            let buf = self.tx.borrow_mut().take().expect("a transmit in flight");
            self.tx_client.map(|c| c.transmit_event(buf, Ok(())));
        }
    }

    impl BleAdvertisementDriver<'static> for FakeRadio {
        fn transmit_advertisement(
            &self,
            buf: &'static mut [u8],
            len: usize,
            channel: RadioChannel,
        ) {
            self.calls
                .borrow_mut()
                .push(Call::Transmit(number(channel), buf[..len].to_vec()));
            *self.tx.borrow_mut() = Some(buf);
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

    /// Accepts a batch of up to `capacity` bytes when `ready`.
    struct FakeSink {
        ready: Cell<bool>,
        capacity: usize,
        batches: RefCell<Vec<(Vec<u8>, usize)>>,
    }

    impl BatchSink for FakeSink {
        fn deliver(&self, ring: &mut ReportRing, dropped: usize) -> bool {
            if !self.ready.get() {
                return false;
            }
            let mut out = vec![0u8; self.capacity];
            let (reports, bytes) = ring.drain_up_to(self.capacity, &mut |i, b| out[i] = b);
            if reports == 0 {
                return false;
            }
            out.truncate(bytes);
            self.batches.borrow_mut().push((out, dropped));
            true
        }
    }

    type Scan = ScanRadio<'static, FakeRadio>;

    fn rig(ring_len: usize) -> (&'static FakeRadio, &'static Scan, &'static FakeSink) {
        let radio: &'static FakeRadio = Box::leak(Box::default());
        let ring = Box::leak(Box::new(ReportRing::new(Box::leak(
            vec![0u8; ring_len].into_boxed_slice(),
        ))));
        let tx = Box::leak(Box::new([0u8; TX_BUF_LEN]));
        let scan: &'static Scan = Box::leak(Box::new(ScanRadio::new(
            radio,
            ring,
            tx,
            [1, 2, 3, 4, 5, 0xC6],
        )));
        let sink: &'static FakeSink = Box::leak(Box::new(FakeSink {
            ready: Cell::new(true),
            capacity: 1024,
            batches: RefCell::new(Vec::new()),
        }));
        radio.set_receive_client(scan);
        radio.set_transmit_client(scan);
        scan.set_sink(sink);
        (radio, scan, sink)
    }

    fn pdu(tag: u8) -> Vec<u8> {
        let mut p = vec![0x02, 9, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6];
        p.extend([tag; 3]);
        p
    }

    #[test]
    fn the_radio_is_rearmed_on_the_next_channel_after_every_packet() {
        let (radio, scan, sink) = rig(512);
        scan.start();
        assert_eq!(radio.take_calls(), vec![Call::Receive(37)]);
        radio.packet(&pdu(1), true);
        radio.packet(&pdu(2), true);
        radio.packet(&pdu(3), true);
        radio.packet(&pdu(4), true);
        assert_eq!(
            radio.take_calls(),
            vec![
                Call::Receive(38),
                Call::Receive(39),
                Call::Receive(37),
                Call::Receive(38)
            ]
        );
        // The first report went out at once; the rest wait for the release.
        let batches = sink.batches.borrow().clone();
        assert_eq!(batches.len(), 1);
        let mut expected = vec![11, 37];
        expected.extend(pdu(1));
        assert_eq!(batches[0], (expected, 0));
        scan.release();
        let batches = sink.batches.borrow().clone();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].0.len(), 3 * 13);
        assert_eq!(&batches[1].0[..2], &[11, 38]);
        assert_eq!(&batches[1].0[26..28], &[11, 37]);
    }

    #[test]
    fn bad_crc_and_oversized_packets_are_not_reported() {
        let (radio, scan, sink) = rig(512);
        scan.start();
        radio.packet(&pdu(1), false);
        radio.packet(&[0u8; 40], true);
        radio.packet(&[0u8; 1], true);
        assert!(sink.batches.borrow().is_empty());
        // Listening continued regardless.
        assert_eq!(radio.take_calls().len(), 4);
    }

    #[test]
    fn a_full_ring_counts_drops_and_reports_them_with_the_next_batch() {
        let (radio, scan, sink) = rig(2 * 13);
        sink.ready.set(false);
        scan.start();
        for tag in 0..5 {
            radio.packet(&pdu(tag), true);
        }
        sink.ready.set(true);
        scan.release();
        let batches = sink.batches.borrow().clone();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].1, 3, "three reports did not fit");
        assert_eq!(batches[0].0[2 + 8], 0, "the oldest reports are kept");
    }

    #[test]
    fn advertising_goes_out_on_three_channels_then_listening_resumes() {
        let (radio, scan, _sink) = rig(512);
        scan.start();
        radio.take_calls();
        scan.advertise(&[0x02, 0x01, 0x06]).unwrap();
        assert_eq!(scan.advertise(&[1]), Err(ErrorCode::BUSY));
        let mut expected = vec![0x42, 9, 1, 2, 3, 4, 5, 0xC6];
        expected.extend([0x02, 0x01, 0x06]);
        assert_eq!(
            radio.take_calls(),
            vec![Call::Transmit(37, expected.clone())]
        );
        radio.transmitted();
        radio.transmitted();
        assert_eq!(
            radio.take_calls(),
            vec![
                Call::Transmit(38, expected.clone()),
                Call::Transmit(39, expected)
            ]
        );
        radio.transmitted();
        // The abandoned receive was on 37: listening resumes there.
        assert_eq!(radio.take_calls(), vec![Call::Receive(37)]);
        assert_eq!(scan.advertise(&[0u8; 32]), Err(ErrorCode::SIZE));
    }

    #[test]
    fn after_stop_an_outstanding_receive_is_ignored_and_not_rearmed() {
        let (radio, scan, sink) = rig(512);
        sink.ready.set(false);
        scan.start();
        radio.packet(&pdu(1), true);
        scan.stop();
        radio.take_calls();
        radio.packet(&pdu(2), true);
        assert!(radio.take_calls().is_empty());
        sink.ready.set(true);
        scan.release();
        assert!(
            sink.batches.borrow().is_empty(),
            "queued reports survived stop"
        );
    }
}
