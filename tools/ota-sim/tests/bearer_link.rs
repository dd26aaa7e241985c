//! The chained-bearer link model end to end: the sender and the DFU app's own loop
//! (`dfu_app::run_with_bearers`) agree on a bearer over legacy advertising, then the image
//! crosses extended or periodic events, through the simulated ext_scan driver, into the
//! update-region on the flash model.
use adv_transfer::bearer::{Bearer, BearerSet, Phy};
use hw_models::SimBoard;
use ota_sim::image::{kernel_payload, unsigned_image};
use ota_sim::radio::BearerLink;
use ota_sim::transfer::{run_bearer_transfer, BearerJob, BearerReport, LinkParams, TransferJob};

fn transfer(payload: usize, loss: f64, job: BearerJob) -> BearerReport {
    let seed = 3;
    let image = unsigned_image(&kernel_payload(payload, seed), (2, 0, 0, 0));
    let mut board = SimBoard::new(seed);
    let params = LinkParams {
        loss,
        ..LinkParams::default()
    };
    let config = update_region::Config::nrf52840dk(1);
    let tj = TransferJob {
        config,
        owner: 1,
        image: &image,
        session: 0xB0A7_0003,
        params: &params,
        seed,
        cuts: &[],
        update_key: None,
    };
    let r = run_bearer_transfer(&mut board, &tj, &job).expect("transfer");
    // What was staged is the image (the update-region's finalize checked its hash too).
    let base = config.staging_base as usize;
    assert!(board.chip().raw()[base..base + image.len()] == image[..]);
    r
}

/// The sender offers `offer`; the board's kernel has the ext_scan driver when `ext_scan`.
fn job(offer: &[Bearer], ext_scan: bool) -> BearerJob {
    BearerJob {
        offer: BearerSet::of(offer),
        ext_scan,
        link: BearerLink::default(),
        flash: None,
    }
}

const E2: Bearer = Bearer::Extended(Phy::Le2M);
const P2: Bearer = Bearer::Periodic(Phy::Le2M);

#[test]
fn extended_2m_clean_link() {
    let r = transfer(48 * 1024, 0.0, job(&[E2], true));
    assert_eq!(r.bearer, E2);
    assert_eq!(r.link.chains_cut, 0);
    assert!(r.link.chained_events > 0 && r.link.legacy_events > 0);
    // Far above legacy's 1,080 B/s limit, and never above the bearer's own.
    assert!(
        r.goodput_bytes_per_s > 20_000.0,
        "{}",
        r.goodput_bytes_per_s
    );
    assert!(r.goodput_bytes_per_s < r.budget.limit_bytes_per_s);
    assert_eq!(r.budget, E2.budget());
}

#[test]
fn the_flash_is_erased_before_the_data_flows_and_the_ring_never_overflows() {
    // The receiver names its pick only once the image's sectors are erased, so while chunks
    // arrive the staging flash only programs: on a clean link no report is dropped from the
    // ring and no chunk is dropped from the queue, at either bearer's shortest interval.
    for b in [E2, P2] {
        let r = transfer(64 * 1024, 0.0, job(&[b], true));
        assert_eq!(r.bearer, b);
        assert_eq!(r.link.ring_drops, 0, "{}: {:?}", b.name(), r.link);
        assert_eq!(r.rx.dropped, 0, "{}: {:?}", b.name(), r.rx);
    }
}

#[test]
fn lost_pdus_cut_chains_and_the_transfer_completes() {
    let r = transfer(32 * 1024, 0.1, job(&[P2], true));
    assert_eq!(r.bearer, P2);
    assert!(r.link.chains_cut > 0 && r.link.chain_pdus_lost > 0);
    assert!(r.tx.retransmissions > 0);
}

#[test]
fn periodic_sync_holds_within_the_clock_accuracy_and_is_lost_beyond_it() {
    let good = transfer(32 * 1024, 0.05, job(&[P2], true));
    // Good clocks never lose the sync; the app drops it itself for each status (ext_scan's
    // STOP, so the bulk scanner can advertise) and syncs again after its FOLLOW.
    assert_eq!(good.link.sync_losses, 0);
    assert!(good.link.syncs >= 1 && good.link.syncs <= good.app.follows);
    assert!(good.link.max_anchor_error_us <= good.link.max_widening_us);
    // Clocks 1,500 ppm off each way, declaring 50: after one missed anchor the train is
    // outside the widened window until the sync times out and the receiver syncs again.
    let mut bad = job(&[P2], true);
    bad.link.drift_tx_ppm = 1500.0;
    bad.link.drift_rx_ppm = -1500.0;
    let bad = transfer(32 * 1024, 0.05, bad);
    assert!(bad.link.sync_losses > 0 && bad.link.syncs > 1);
    assert!(bad.link.max_anchor_error_us > good.link.max_widening_us);
    assert!(bad.sim_time_s > good.sim_time_s);
}

#[test]
fn a_legacy_only_receiver_gets_the_image_over_legacy() {
    let r = transfer(8 * 1024, 0.0, job(&[E2, P2], false));
    assert_eq!(r.bearer, Bearer::Legacy);
    assert_eq!(r.link.chained_events, 0);
    assert!(r.goodput_bytes_per_s < Bearer::Legacy.budget().limit_bytes_per_s);
}

#[test]
fn statuses_do_not_lock_onto_the_periodic_trains_phase() {
    // With statuses sent at once every 250 ms (25 intervals of 10 ms), the board's deaf time
    // fell on the train right after each status, the one carrying the sender's answer: this
    // transfer took 154 s. The status's advDelay spreads it over the train's phase.
    let seed = 4;
    let image = unsigned_image(&kernel_payload(100_000, seed), (2, 0, 0, 0));
    let mut board = SimBoard::new(seed);
    let params = LinkParams {
        loss: 0.1,
        ..LinkParams::default()
    };
    let tj = TransferJob {
        config: update_region::Config::nrf52840dk(1),
        owner: 1,
        image: &image,
        session: 0x5EED_0004,
        params: &params,
        seed,
        cuts: &[],
        update_key: None,
    };
    let r = run_bearer_transfer(&mut board, &tj, &job(&[P2], true)).unwrap();
    assert!(r.sim_time_s < 15.0, "{} s", r.sim_time_s);
}

#[test]
fn the_receiver_is_the_dfu_apps_loop() {
    // Every driver call of the transfer is the DFU app's: it follows through ext_scan, stops
    // following for each status (ADVERTISE is the bulk scanner's), takes ext_scan batches,
    // shows its receiver after each, and logs its console lines.
    let r = transfer(32 * 1024, 0.0, job(&[E2], true));
    assert_eq!(r.bearer, E2);
    assert!(r.app.follows > 0 && r.app.ext_stops > 0, "{:?}", r.app);
    assert!(r.app.statuses >= r.link.status_pdus && r.app.statuses > 0);
    assert!(r.app.ext_batches > 0 && r.app.observed >= r.app.ext_batches);
    assert!(
        r.app_log.iter().any(|l| l == "dfu: listening"),
        "{:?}",
        r.app_log
    );
    assert!(r
        .app_log
        .iter()
        .any(|l| l.starts_with("dfu: image verified")));
}

#[test]
fn with_the_flash_timing_only_the_head_start_is_erased_before_the_pick() {
    // The kernel gives the app the board's flash timing: over extended 2M its receiver
    // pre-erases the few blocks its erases would fall behind by and erases the rest ahead,
    // one per turn, while the data flows. The image still arrives whole (checked in
    // `transfer`), and the sender took the pick sooner.
    let mut j = job(&[E2], true);
    j.flash = Some(ota_sim::transfer::board_flash_timing());
    let head = transfer(64 * 1024, 0.0, j);
    let whole = transfer(64 * 1024, 0.0, job(&[E2], true));
    assert_eq!(head.bearer, E2);
    assert!(
        head.pick_s < whole.pick_s,
        "{} vs {}",
        head.pick_s,
        whole.pick_s
    );
    assert!(head.link.legacy_events < whole.link.legacy_events);
}

/// A compressed image (MCUboot's format) over a chained bearer: the DFU app stages it in the
/// received-stream area, the kernel decodes it into the staging slot at finalize, and the
/// staging slot then holds the plain signed image, byte for byte.
#[test]
fn a_compressed_image_crosses_a_chained_bearer_and_is_decoded_at_finalize() {
    use ota_image::compressed::Compression;
    use ota_sim::signing::Signer;
    let seed = 5;
    let signer = Signer::new(seed).unwrap();
    // Code-like bytes that compress, as a kernel does.
    let payload = kernel_payload(40 * 1024, seed);
    let plain = signer.sign(&payload, (2, 0, 0, 0), 2).unwrap();
    let compressed = signer
        .sign_compressed(&payload, (2, 0, 0, 0), 2, Compression::Lzma2ArmThumb)
        .unwrap();
    assert!(
        compressed.len() < plain.len(),
        "the payload did not compress"
    );
    let mut board = SimBoard::new(seed);
    let params = LinkParams::default();
    let config = update_region::Config::nrf52840dk(1);
    let tj = TransferJob {
        config,
        owner: 1,
        image: &compressed,
        session: 0xB0A7_0005,
        params: &params,
        seed,
        cuts: &[],
        update_key: None,
    };
    let r = run_bearer_transfer(&mut board, &tj, &job(&[E2], true)).expect("transfer");
    assert_eq!(r.bearer, E2);
    assert!(r.rebuild_s > 0.0, "nothing was decoded at finalize");
    let base = config.staging_base as usize;
    assert!(
        board.chip().raw()[base..base + plain.len()] == plain[..],
        "the staging slot does not hold the plain signed image"
    );
}

/// A board that listened before the sender started has erased its staging slot ahead (the DFU
/// app does so whenever it is idle after its start-up confirm): the transfer's session records
/// those sectors erased without erasing them again, so the pick comes without the erase wait.
#[test]
fn a_slot_erased_ahead_takes_the_erase_wait_out_of_the_pick() {
    let job = |delay_us: u64| BearerJob {
        link: BearerLink {
            sender_delay_us: delay_us,
            ..BearerLink::default()
        },
        ..self::job(&[E2], true)
    };
    let cold = transfer(48 * 1024, 0.0, job(0));
    let idle = transfer(48 * 1024, 0.0, job(10_000_000));
    assert!(
        idle.app_log
            .iter()
            .any(|l| l == "dfu: staging slot erased ahead"),
        "{:#?}",
        idle.app_log
    );
    // 12 sectors at 40 ms each are no longer erased between the join and the pick.
    assert!(
        idle.pick_s + 0.4 < cold.pick_s,
        "pick after {} s idle, {} s cold",
        idle.pick_s,
        cold.pick_s
    );
    assert!(idle.sim_time_s + 0.4 < cold.sim_time_s);
}

#[test]
fn a_clean_first_pass_is_followed_without_a_status_per_interval() {
    // Each status drops the follow (STOP, the advertisement, a new sync: an event or two of
    // data). The sender sends its first pass whatever it hears, so while that pass keeps coming
    // the app holds a due status until the pass stops or the hold runs out: statuses go out per
    // hold, not per status interval (at 250 ms this transfer sent 11).
    let r = transfer(160 * 1024, 0.0, job(&[E2], true));
    assert_eq!(r.bearer, E2);
    let following_ms = (r.sim_time_s - r.pick_s) * 1000.0;
    let per_hold = (following_ms / dfu_app::CHAINED_STATUS_HOLD_MS as f64).ceil() as u64;
    let per_interval = (following_ms / dfu_app::STATUS_INTERVAL_MS as f64).floor() as u64;
    assert!(per_hold + 3 < per_interval, "{following_ms} ms");
    // The pick, one per hold while the pass comes, the one after the pass, the last.
    assert!(
        r.app.statuses <= per_hold + 3,
        "{} statuses in {following_ms:.0} ms: {:?}",
        r.app.statuses,
        r.app
    );
    assert_eq!(r.link.ring_drops, 0, "{:?}", r.link);
}
