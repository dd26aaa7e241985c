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
