//! `bench transfer --kernel --kernel-changed`: the three ways of sending one kernel update, on a
//! small generated kernel (the real DK kernel is `.ci/bench-delta`'s).
use ota_bench::kernel_update::measure;
use ota_sim::image::kernel_payload;

#[test]
fn raw_compressed_and_delta_rows_each_send_less_than_the_one_before() {
    let old = kernel_payload(32 * 1024, 11);
    let mut new = old.clone();
    new[500] ^= 1;
    new.splice(9_000..9_000, [0x3Cu8; 12]);
    let rows = measure(&new, Some(&old), 11).unwrap();
    let sent: Vec<&str> = rows.iter().map(|r| r.sent.as_str()).collect();
    assert_eq!(
        sent,
        [
            "raw",
            "compressed (lzma2armthumb)",
            "delta",
            "compressed, extended 2M",
            "compressed, periodic 2M"
        ]
    );
    let (raw, compressed, delta) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(raw.bytes_on_air_image, raw.image_bytes);
    for r in [raw, compressed, delta] {
        assert_eq!(r.confirmed, Some(true), "{}", r.sent);
    }
    // The generated kernel is random bytes with a zero tail: compression gains the tail only.
    assert!(compressed.bytes_on_air_image < raw.bytes_on_air_image);
    assert!(delta.bytes_on_air_image * 20 < compressed.bytes_on_air_image);
    assert!(delta.receiving_s * 5.0 < raw.receiving_s);
    assert!(delta.rebuild_simulated_s > 0.0 && compressed.rebuild_simulated_s > 0.0);
    assert!(
        (delta.receiving_s + delta.rebuild_simulated_s - delta.transfer_simulated_s).abs() < 1e-9
    );
    // Each row is held to the target for its kind (none for the raw image).
    let targets: Vec<Option<f64>> = rows.iter().map(|r| r.target_s).collect();
    assert_eq!(targets, [None, Some(55.0), Some(8.0), Some(4.0), Some(4.0)]);
    // Over the chained bearers the same compressed image goes out, decoded at finalize, and
    // the runs end at the boot request.
    for r in &rows[3..] {
        assert_eq!(
            r.bytes_on_air_image, compressed.bytes_on_air_image,
            "{}",
            r.sent
        );
        assert_eq!(r.image_bytes, compressed.image_bytes, "{}", r.sent);
        assert_eq!(r.confirmed, None);
        assert!(r.rebuild_simulated_s > 0.0, "{}", r.sent);
        assert!(r.receiving_s * 10.0 < compressed.receiving_s, "{}", r.sent);
    }
}
