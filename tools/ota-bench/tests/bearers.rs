//! `bench transfer`'s bearer rows: each extended and periodic bearer agreed on and used end to
//! end, its limit the one `adv_transfer::bearer` computes, the goodput under it.
use adv_transfer::bearer::Bearer;
use ota_bench::transfer::measure_bearers;

#[test]
fn bearer_rows_use_bearer_rs_limits() {
    let rows = measure_bearers(40 * 1024, &[0.0], 0.0, 1, false, 3.0).unwrap();
    let chained: Vec<_> = Bearer::ALL.into_iter().filter(|b| b.chained()).collect();
    assert_eq!(rows.len(), chained.len());
    for r in &rows {
        let b = chained.iter().find(|b| b.name() == r.bearer).unwrap();
        let budget = b.budget();
        assert_eq!(r.bearer_limit_bytes_per_s, budget.limit_bytes_per_s);
        assert_eq!(r.limit_arithmetic, budget.to_string());
        assert!(
            r.fraction_of_limit > 0.0 && r.fraction_of_limit < 1.0,
            "{r:?}"
        );
        assert!(r.goodput_bytes_per_s > 20.0 * 1080.0, "{r:?}");
    }
}
