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
fn copied_reports_stay_queued_until_discarded() {
    let mut r = ring(128);
    assert!(r.push(37, &[1; 5]));
    assert!(r.push(38, &[2; 5]));
    let mut out = [0u8; 14];
    assert_eq!(r.copy_up_to(10, &mut |i, b| out[i] = b), (1, 7));
    assert_eq!(r.copy_up_to(100, &mut |i, b| out[i] = b), (2, 14));
    r.discard(1);
    let (n, bytes) = drain(&mut r, 1000);
    assert_eq!(n, 1);
    assert_eq!(bytes, [5, 38, 2, 2, 2, 2, 2]);
    r.discard(3);
    assert!(r.is_empty());
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

    use kernel::ErrorCode;

    use crate::adv_radio::RX_BUF_LEN;
    use crate::bulk_scan::{BatchSink, Delivery, ReportRing};
    use crate::tests::fake_alarm::FakeAlarm;
    use crate::tests::fake_radio::{adv_pdu as pdu, scan_rig, Call, FakeRadio, Scan};

    /// Accepts a batch of up to `capacity` bytes when `ready`.
    struct FakeSink {
        ready: Cell<bool>,
        capacity: usize,
        batches: RefCell<Vec<(Vec<u8>, usize)>>,
    }

    impl BatchSink for FakeSink {
        fn deliver(&self, ring: &mut ReportRing, dropped: usize) -> Delivery {
            if !self.ready.get() {
                return Delivery::NotNow;
            }
            let mut out = vec![0u8; self.capacity];
            let (reports, bytes) = ring.drain_up_to(self.capacity, &mut |i, b| out[i] = b);
            if reports == 0 {
                return Delivery::NotNow;
            }
            out.truncate(bytes);
            self.batches.borrow_mut().push((out, dropped));
            Delivery::Delivered
        }

        fn present(&self) -> bool {
            true
        }
    }

    fn rig(ring_len: usize) -> (&'static FakeRadio, &'static Scan, &'static FakeSink) {
        let (radio, scan, sink, _) = rig_with_alarm(ring_len);
        (radio, scan, sink)
    }

    fn rig_with_alarm(
        ring_len: usize,
    ) -> (
        &'static FakeRadio,
        &'static Scan,
        &'static FakeSink,
        &'static FakeAlarm,
    ) {
        let (radio, scan, alarm) = scan_rig(ring_len);
        let sink: &'static FakeSink = Box::leak(Box::new(FakeSink {
            ready: Cell::new(true),
            capacity: 1024,
            batches: RefCell::new(Vec::new()),
        }));
        scan.set_sink(sink);
        (radio, scan, sink, alarm)
    }

    /// The channel the radio was last asked to receive on.
    fn listening_on(calls: &[Call], was: Option<u8>) -> Option<u8> {
        calls.iter().fold(was, |_, call| match call {
            Call::Receive(channel) => Some(*channel),
            Call::Transmit(..) | Call::StopReceive => None,
        })
    }

    #[test]
    fn in_a_quiet_room_the_radio_hops_on_a_timer_and_hears_a_sender_on_one_channel() {
        let (radio, scan, sink, alarm) = rig_with_alarm(4096);
        scan.start();
        let mut on = listening_on(&radio.take_calls(), None);
        // A sender advertising on channel 37 only, every 25 ms (819 ticks of 32768 Hz), for 2 s;
        // nothing else on air.
        let mut heard = 0;
        for _ in 0..80 {
            alarm.advance(819);
            on = listening_on(&radio.take_calls(), on);
            if on == Some(37) {
                radio.packet(&pdu(heard as u8), true);
                heard += 1;
                on = listening_on(&radio.take_calls(), on);
            }
            scan.release();
        }
        // Each cycle of the three channels (3 × 40 ms; the dwell restarts after a packet) comes
        // back to 37: a quarter of the sender's events are heard (20 of 80). Hopping only on
        // a packet hears the first and then waits on 38 for good.
        assert!(heard >= 15, "heard {heard} of 80 advertisements");
        let reports: usize = sink
            .batches
            .borrow()
            .iter()
            .map(|(b, _)| b.len() / 13)
            .sum();
        assert_eq!(reports, heard);
        // Nothing to hear at all: the radio still cycles through the three channels.
        let (radio, scan, _, alarm) = rig_with_alarm(512);
        scan.start();
        radio.take_calls();
        alarm.advance(3 * 1311);
        assert_eq!(
            radio.take_calls(),
            vec![Call::Receive(38), Call::Receive(39), Call::Receive(37)]
        );
        // Stopped: the receive is ended, and no more hops.
        scan.stop();
        alarm.advance(5 * 1311);
        assert_eq!(radio.take_calls(), vec![Call::StopReceive]);
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

    #[test]
    fn a_refused_advertisement_returns_the_error_and_the_scanner_listens_again() {
        let (radio, scan, _sink) = rig(512);
        scan.start();
        radio.take_calls();
        radio.refuse.set(Some(ErrorCode::BUSY));
        assert_eq!(scan.advertise(&[1, 2, 3]), Err(ErrorCode::BUSY));
        // Nothing went out; the buffer is back and listening resumes on 37.
        assert_eq!(radio.take_calls(), vec![Call::Receive(37)]);
        assert_eq!(scan.advertise(&[1, 2, 3]), Ok(()));
        // A refusal mid-way (channel 38) ends the advertisement without a callback.
        radio.take_calls();
        radio.refuse.set(Some(ErrorCode::SIZE));
        radio.transmitted();
        assert_eq!(radio.take_calls(), vec![Call::Receive(37)]);
        assert_eq!(scan.advertise(&[4]), Ok(()));
    }

    #[test]
    fn a_receive_buffer_too_short_to_be_armed_stops_scanning_instead_of_a_deaf_radio() {
        let (radio, scan, _sink) = rig(512);
        scan.start();
        radio.packet_in(RX_BUF_LEN, &pdu(1), true);
        assert_eq!(radio.returned.get(), 1);
        assert!(scan.is_scanning());
        radio.packet_in(RX_BUF_LEN - 1, &pdu(2), true);
        assert_eq!(
            radio.returned.get(),
            1,
            "a short buffer was given to the radio"
        );
        assert!(
            !scan.is_scanning(),
            "scanning went on with a radio that cannot listen"
        );
    }
}
