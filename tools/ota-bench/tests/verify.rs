//! `bench verify`'s measurement: its figures are consistent with each other.

#[test]
fn bench_verify_reports_consistent_figures() {
    let r = ota_bench::verify::measure(64 * 1024, 2).unwrap();
    assert_eq!(r.payload_bytes, 64 * 1024);
    assert!(r.image_bytes > r.payload_bytes + 0x200);
    assert!(r.verify_ms > 0.0 && r.hash_ms > 0.0 && r.ecdsa_ms > 0.0);
    assert!(r.verify_mb_per_s.is_finite() && r.hash_mb_per_s.is_finite());
}
