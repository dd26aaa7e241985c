//! Boot-flow tests on `hw_models::SimBoard` with the stand-in image format.

use boot_core::journal::{Reason, State};
use boot_sim::*;

fn small(old_len: usize, new_len: usize) -> Scenario {
    Scenario::new(SMALL, old_len, new_len)
}

#[test]
fn nothing_pending_boots_the_kernel_without_writing() {
    let sc = small(9000, 10000);
    let mut b = Board::new(SMALL, 1);
    b.provision(&sc.old);
    let ops = b.sim.power.ops();
    let d = b.boot(false).unwrap();
    assert!(!d.trial);
    assert_eq!(d.kernel_addr, SMALL.kernel_slot.start);
    assert_eq!(
        b.sim.power.ops(),
        ops,
        "no program/erase when nothing is pending"
    );
    assert!(b.kernel_is(&sc.old));
}

#[test]
fn install_trial_confirm_raises_floor_and_status_says_so() {
    for (old, new) in [(9000, 13000), (16384, 5000), (100, 16384)] {
        let sc = small(old, new);
        let mut b = sc.start(2);
        let d = b.boot(false).unwrap();
        assert!(d.trial);
        assert!(b.kernel_is(&sc.new));
        assert_eq!(b.status().unwrap().state, State::Trial);
        b.request(confirm(2, image_hash(&sc.image)));
        let d = b.boot(false).unwrap();
        assert!(!d.trial);
        let st = b.status().unwrap();
        assert_eq!(st.state, State::Confirmed);
        assert_eq!(b.floor(), 5);
        assert!(b.kernel_is(&sc.new));
        // A later boot changes nothing.
        let ops = b.sim.power.ops();
        b.boot(false).unwrap();
        assert_eq!(b.sim.power.ops(), ops);
    }
}

#[test]
fn unconfirmed_trial_reverts_after_max_boots_and_watchdog_reverts_at_once() {
    let sc = small(12000, 7000);
    let mut b = sc.start(3);
    for _ in 0..SMALL.max_trial_boots {
        assert!(b.boot(false).unwrap().trial);
        assert!(b.kernel_is(&sc.new));
    }
    let d = b.boot(false).unwrap();
    assert!(!d.trial);
    let st = b.status().unwrap();
    assert_eq!(
        (st.state, st.reason),
        (State::Reverted, Reason::NotConfirmed)
    );
    assert!(b.kernel_is(&sc.old));

    let mut b = sc.start(4);
    assert!(b.boot(false).unwrap().trial);
    assert!(!b.boot(true).unwrap().trial);
    let st = b.status().unwrap();
    assert_eq!(
        (st.state, st.reason),
        (State::Reverted, Reason::WatchdogReset)
    );
    assert!(b.kernel_is(&sc.old));
}

#[test]
fn a_confirm_for_another_image_or_an_old_confirm_does_not_count() {
    let sc = small(9000, 9000);
    let mut b = sc.start(5);
    b.request(confirm(0, image_hash(&sc.image))); // older than the request: ignored
    assert!(b.boot(false).unwrap().trial);
    b.request(confirm(3, [7; 32]));
    assert!(b.boot(false).unwrap().trial);
    assert_eq!(b.status().unwrap().state, State::Trial);
}

fn rejected(sc: &Scenario, b: &mut Board) -> Reason {
    let ops_kernel = b.kernel_is(&sc.old);
    let d = b.boot(false).unwrap();
    assert!(!d.trial);
    assert!(ops_kernel && b.kernel_is(&sc.old), "old kernel untouched");
    let st = b.status().unwrap();
    assert_eq!(st.state, State::Rejected);
    // Handled: the next boot does not try again.
    let ops = b.sim.power.ops();
    b.boot(false).unwrap();
    assert_eq!(b.sim.power.ops(), ops);
    st.reason
}

#[test]
fn bad_staged_images_are_rejected_with_a_reason_and_nothing_installed() {
    let sc = small(9000, 8000);
    let payload = kernel_bytes(8000, 9);
    let cases: Vec<(Vec<u8>, Reason)> = {
        let good = make_image(&payload, 0, 5);
        let mut magic = good.clone();
        magic[0] ^= 1;
        let mut hash = good.clone();
        hash[100] ^= 0x10;
        let mut sig = good.clone();
        let n = sig.len();
        sig[n - 1] ^= 1;
        let mut len = good.clone();
        len[12..16].copy_from_slice(&0x00F0_0000u32.to_le_bytes());
        vec![
            (magic, Reason::BadMagic),
            (hash, Reason::HashMismatch),
            (sig, Reason::BadSignature),
            (len, Reason::Malformed),
            (make_image(&kernel_bytes(17000, 3), 0, 5), Reason::TooLarge),
            (
                make_image(&payload, 0x1234_0000, 5),
                Reason::WrongLoadAddress,
            ),
        ]
    };
    for (img, reason) in cases {
        let mut b = Board::new(SMALL, 6);
        b.provision(&sc.old);
        b.stage(&img);
        b.request(boot_request(1, image_hash(&img), img.len() as u32));
        assert_eq!(rejected(&sc, &mut b), reason);
    }
    // A request naming another image than the one staged.
    let mut b = Board::new(SMALL, 7);
    b.provision(&sc.old);
    b.stage(&sc.image);
    b.request(boot_request(1, [1; 32], sc.image.len() as u32));
    assert_eq!(rejected(&sc, &mut b), Reason::RequestMismatch);
}

#[test]
fn downgrade_below_the_floor_is_rejected() {
    let sc = small(9000, 8000);
    let mut b = sc.start(8);
    b.boot(false).unwrap();
    b.request(confirm(2, image_hash(&sc.image)));
    b.boot(false).unwrap();
    assert_eq!(b.floor(), 5);
    let older = make_image(&kernel_bytes(5000, 4), 0, 4);
    b.stage(&older);
    b.request(boot_request(3, image_hash(&older), older.len() as u32));
    let d = b.boot(false).unwrap();
    assert!(!d.trial);
    let st = b.status().unwrap();
    assert_eq!((st.state, st.reason), (State::Rejected, Reason::Downgrade));
    assert!(b.kernel_is(&sc.new));
}

#[test]
fn bit_flips_while_reading_the_staged_image_are_detected() {
    for sc in [small(9000, 14000), Scenario::mcuboot(SMALL, 9000, 14000)] {
        let mut rejected_count = 0;
        for seed in 0..16 {
            let mut b = sc.start(100 + seed);
            b.sim.chip().set_read_flip_probability(0.05);
            if seed % 2 == 1 {
                b.sim.nvmc().set_read_flip_probability(0.02);
            }
            let res = b.boot(false);
            b.sim.chip().set_read_flip_probability(0.0);
            b.sim.nvmc().set_read_flip_probability(0.0);
            let st = b.status().map(|s| s.state);
            match res {
                Ok(d) if d.trial => {
                    assert!(b.kernel_is(&sc.new), "seed {seed}: trial with a bad kernel")
                }
                Ok(d) => {
                    assert!(b.kernel_is(&sc.old), "seed {seed}");
                    // `None`: the request record itself read back corrupt; it is seen next boot.
                    assert!(
                        matches!(st, None | Some(State::Rejected | State::Reverted)),
                        "{st:?}"
                    );
                    sc.consistent(&mut b, &d).unwrap();
                    rejected_count += usize::from(st.is_some());
                }
                Err(_) => {
                    // A copy that kept failing: the next clean boot must finish the job.
                    let d = b.boot(false).unwrap();
                    sc.consistent(&mut b, &d).unwrap();
                }
            }
        }
        assert!(
            rejected_count > 0,
            "flips at 5% per read must hit the hash check sometimes"
        );
    }
}

#[test]
fn every_cut_before_and_inside_every_operation_recovers() {
    let sc = small(14000, 11000);
    let rep = exhaustive(&sc, 1, 11);
    assert!(
        rep.failures.is_empty(),
        "{:#?}",
        &rep.failures[..rep.failures.len().min(10)]
    );
    assert!(rep.cuts > 200, "{} cuts", rep.cuts);
    assert_eq!(rep.cuts, rep.recovered);
}

#[test]
fn signed_images_survive_cuts_sampled_through_every_phase() {
    // Every 7th operation, before and inside, with real P-256 verification on each resume.
    let sc = Scenario::mcuboot(SMALL, 9000, 13000);
    let rep = exhaustive(&sc, 7, 13);
    assert!(
        rep.failures.is_empty(),
        "{:#?}",
        &rep.failures[..rep.failures.len().min(10)]
    );
    assert!(rep.cuts > 100, "{} cuts", rep.cuts);
    let rep = random(&sc, 40, 4, 14);
    assert!(
        rep.failures.is_empty(),
        "{:#?}",
        &rep.failures[..rep.failures.len().min(10)]
    );
}

#[test]
fn random_multi_cut_runs_end_whole_and_right() {
    let sc = small(9000, 15000);
    let rep = random(&sc, 150, 4, 12);
    assert!(
        rep.failures.is_empty(),
        "{:#?}",
        &rep.failures[..rep.failures.len().min(10)]
    );
    assert!(rep.cuts > 150);
}

#[test]
#[ignore = "timing report helper: cargo test -p boot-sim --release -- --ignored --nocapture"]
fn print_install_times() {
    for kib in [176usize, 512] {
        let t = install_time(kib * 1024).unwrap();
        let pages = (kib / 4) as u64;
        let limit = hw_models::nvmc::erase_and_write_s(pages, pages * 1024);
        std::println!(
            "{kib} KiB: {:.3} s, limit {:.3} s, ratio {:.3}, ok {}",
            t.simulated_s,
            limit,
            t.simulated_s / limit,
            t.installed
        );
    }
}

#[test]
#[ignore = "the full campaign is a report: tock-ota bench power-cuts"]
fn full_campaign() {
    for (old, new) in [(14000, 11000), (6000, 16384), (12288, 12288)] {
        let rep = exhaustive(&small(old, new), 1, 3);
        std::println!(
            "exhaustive {old}/{new}: {} cuts {} recovered {:?}",
            rep.cuts,
            rep.recovered,
            rep.by_phase
        );
        assert!(
            rep.failures.is_empty(),
            "{:#?}",
            &rep.failures[..rep.failures.len().min(10)]
        );
    }
    let rep = random(&small(9000, 15000), 10_000, 6, 4);
    std::println!("random: {} cuts {} recovered", rep.cuts, rep.recovered);
    assert!(
        rep.failures.is_empty(),
        "{:#?}",
        &rep.failures[..rep.failures.len().min(10)]
    );
}

#[test]
fn many_updates_wrap_the_journal_ring_and_keep_the_newest_state() {
    // SMALL's journal is two sectors of 64 slots; 30 updates write far more records than that.
    let mut b = Board::new(SMALL, 20);
    let first = kernel_bytes(10000, 0);
    b.provision(&first);
    let mut seq = 1;
    let mut current = first;
    for round in 0..30u32 {
        let next = kernel_bytes(6000 + (round as usize * 331) % 10000, round as u8 + 1);
        let img = make_image(&next, 0, round + 1);
        b.stage(&img);
        if round % 16 == 0 {
            // The kernel erases its request sector when full; model that.
            b.sim.chip().load(SMALL.request_sector.start, &[0xFF; 4096]);
        }
        b.request(boot_request(seq, image_hash(&img), img.len() as u32));
        seq += 1;
        assert!(b.boot(false).unwrap().trial, "round {round}");
        if round % 3 == 2 {
            // Not confirmed: reverted after the allowed trial boots.
            for _ in 1..SMALL.max_trial_boots {
                assert!(b.boot(false).unwrap().trial);
            }
            assert!(!b.boot(false).unwrap().trial);
            assert_eq!(b.status().unwrap().state, State::Reverted, "round {round}");
            assert!(
                b.kernel_is(&current),
                "round {round}: reverted to the previous kernel"
            );
        } else {
            b.request(confirm(seq, image_hash(&img)));
            seq += 1;
            assert!(!b.boot(false).unwrap().trial);
            assert_eq!(b.status().unwrap().state, State::Confirmed, "round {round}");
            assert!(b.kernel_is(&next));
            assert_eq!(b.floor(), round + 1);
            current = next;
        }
    }
    let st = b.status().unwrap();
    assert!(
        st.sequence > 128,
        "the ring wrapped ({} records)",
        st.sequence
    );
}

#[test]
fn decision_locks_the_bootloader_and_state_page() {
    let mut b = Board::new(boot_nrf::NRF52840_DK, 21);
    b.provision(&kernel_bytes(5000, 1));
    let d = b.boot(false).unwrap();
    assert_eq!(d.lock, boot_core::Region::new(0, 0x8000));
    assert_eq!(d.kernel_addr, 0x8000);
    assert_eq!(d.status, None);
}

#[test]
fn provision_refuses_a_kernel_larger_than_the_slot() {
    let mut b = Board::new(SMALL, 23);
    let big = kernel_bytes(SMALL.kernel_slot.len as usize + 1, 1);
    assert_eq!(
        boot_core::provision(&SMALL, &mut b.sim.internal, &big),
        Err(boot_core::BootError::Denied)
    );
}

mod mcuboot {
    use super::*;
    use boot_core::OtaChecker;
    use ota_image::{PublicKey, RustCryptoVerifier};

    fn checker_key() -> PublicKey {
        PublicKey::from_raw(&sim_public_key(&SIM_SIGNING_KEY)).unwrap()
    }

    fn board_with(img: &[u8], old: &[u8], seed: u64) -> Board {
        let mut b = Board::new(SMALL, seed);
        b.provision(old);
        b.stage(img);
        b.request(boot_request(1, mcuboot_hash(img), img.len() as u32));
        b
    }

    #[test]
    fn a_signed_image_installs_and_confirms() {
        let key = checker_key();
        let c = OtaChecker {
            key: &key,
            verifier: RustCryptoVerifier,
        };
        let old = kernel_bytes(9000, 1);
        let new = kernel_bytes(12000, 2);
        let img = sign_mcuboot(&new, &SIM_SIGNING_KEY, &SimSign::default());
        let mut b = board_with(&img, &old, 30);
        assert!(b.boot_with(&c, false).unwrap().trial);
        assert!(b.kernel_is(&new));
        b.request(confirm(2, mcuboot_hash(&img)));
        assert!(!b.boot_with(&c, false).unwrap().trial);
        assert_eq!(b.status().unwrap().state, State::Confirmed);
        assert_eq!(b.floor(), 1);
    }

    /// Each image error kind the boot flow can meet: nothing installed, reason recorded.
    #[test]
    fn every_image_error_kind_is_rejected_with_its_reason() {
        let key = checker_key();
        let c = OtaChecker {
            key: &key,
            verifier: RustCryptoVerifier,
        };
        let old = kernel_bytes(9000, 1);
        let payload = kernel_bytes(8000, 3);
        let good = sign_mcuboot(&payload, &SIM_SIGNING_KEY, &SimSign::default());
        let n = good.len();
        let tlv_info = 32 + 8000 + 12;
        let mut cases: Vec<(Vec<u8>, Reason)> = Vec::new();
        let mut m = good.clone();
        m[0] ^= 1;
        cases.push((m, Reason::BadMagic));
        let mut m = good.clone();
        m[8..10].copy_from_slice(&8u16.to_le_bytes());
        cases.push((m, Reason::HeaderSizeTooSmall));
        let mut m = good.clone();
        m[8..10].copy_from_slice(&0xF000u16.to_le_bytes());
        cases.push((m, Reason::HeaderBeyondSlot));
        let mut m = good.clone();
        m[12..16].copy_from_slice(&0x0100_0000u32.to_le_bytes());
        cases.push((m, Reason::PayloadBeyondSlot));
        let mut m = good.clone();
        m[tlv_info] ^= 0x10;
        cases.push((m, Reason::BadTlvInfoMagic));
        let mut m = good.clone();
        m[100] ^= 4;
        cases.push((m, Reason::HashMismatch));
        let mut m = good.clone();
        m[n - 3] ^= 1; // inside s of the DER signature
        cases.push((m, Reason::BadSignature));
        let other = [7u8; 32];
        cases.push((
            sign_mcuboot(&payload, &other, &SimSign::default()),
            Reason::KeyMismatch,
        ));
        cases.push((
            sign_mcuboot(
                &kernel_bytes(17000, 4),
                &SIM_SIGNING_KEY,
                &SimSign::default(),
            ),
            Reason::TooLarge,
        ));
        cases.push((
            sign_mcuboot(
                &payload,
                &SIM_SIGNING_KEY,
                &SimSign {
                    load_addr: 0x2000_0000,
                    ..SimSign::default()
                },
            ),
            Reason::WrongLoadAddress,
        ));
        for (i, (img, want)) in cases.into_iter().enumerate() {
            let mut b = board_with(&img, &old, 40 + i as u64);
            let d = b.boot_with(&c, false).unwrap();
            assert!(!d.trial, "case {i}");
            assert!(b.kernel_is(&old), "case {i}: old kernel untouched");
            let st = b.status().unwrap();
            assert_eq!((st.state, st.reason), (State::Rejected, want), "case {i}");
        }
    }

    #[test]
    fn a_downgrade_below_the_floor_is_rejected() {
        let key = checker_key();
        let c = OtaChecker {
            key: &key,
            verifier: RustCryptoVerifier,
        };
        let old = kernel_bytes(9000, 1);
        let v5 = sign_mcuboot(
            &kernel_bytes(7000, 5),
            &SIM_SIGNING_KEY,
            &SimSign {
                security_counter: Some(5),
                ..SimSign::default()
            },
        );
        let mut b = board_with(&v5, &old, 60);
        assert!(b.boot_with(&c, false).unwrap().trial);
        b.request(confirm(2, mcuboot_hash(&v5)));
        b.boot_with(&c, false).unwrap();
        assert_eq!(b.floor(), 5);
        let v4 = sign_mcuboot(
            &kernel_bytes(7000, 4),
            &SIM_SIGNING_KEY,
            &SimSign {
                security_counter: Some(4),
                ..SimSign::default()
            },
        );
        b.stage(&v4);
        b.request(boot_request(3, mcuboot_hash(&v4), v4.len() as u32));
        assert!(!b.boot_with(&c, false).unwrap().trial);
        let st = b.status().unwrap();
        assert_eq!((st.state, st.reason), (State::Rejected, Reason::Downgrade));
        assert!(b.kernel_is(&kernel_bytes(7000, 5)));
    }
}

#[test]
#[ignore = "timing report helper"]
fn print_idle_boot_time() {
    let sc = Scenario::new(boot_nrf::NRF52840_DK, 100_000, 120_000);
    let mut b = sc.start(1);
    b.boot(false).unwrap();
    b.request(confirm(2, image_hash(&sc.image)));
    b.boot(false).unwrap();
    let t0 = b.sim.clock.now_us();
    b.boot(false).unwrap();
    std::println!("idle boot: {} us", b.sim.clock.now_us() - t0);
}

#[test]
fn arbitrary_journal_and_request_contents_never_panic() {
    use boot_core::journal::{JournalRecord, NO_COUNTER};
    use rand::{Rng, SeedableRng};
    let sc = small(9000, 12000);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    for round in 0..300u64 {
        let mut b = sc.start(round);
        // Records with valid CRCs but arbitrary fields, and raw garbage, in both areas.
        for slot in 0..rng.gen_range(0..6u32) {
            let state = State::ALL[rng.gen_range(0..State::ALL.len())];
            let rec = JournalRecord {
                sequence: rng.gen(),
                state,
                reason: Reason::from_code(rng.gen()),
                attempts: rng.gen(),
                request_sequence: rng.gen_range(0..4),
                image_hash: if rng.gen_bool(0.5) {
                    image_hash(&sc.image)
                } else {
                    rng.gen()
                },
                payload_len: if rng.gen_bool(0.5) { 12000 } else { rng.gen() },
                payload_offset: if rng.gen_bool(0.5) { 32 } else { rng.gen() },
                installed: rng.gen_range(0..8),
                backed_up: if rng.gen_bool(0.5) {
                    rng.gen_range(0..8)
                } else {
                    rng.gen()
                },
                security_counter: if rng.gen_bool(0.5) {
                    NO_COUNTER
                } else {
                    rng.gen()
                },
            };
            b.sim
                .chip()
                .load(SMALL.journal.start + slot * 64, &rec.encode());
        }
        if rng.gen_bool(0.3) {
            let junk: std::vec::Vec<u8> = (0..256).map(|_| rng.gen()).collect();
            b.sim.chip().load(SMALL.journal.start + 0x1000, &junk);
        }
        if rng.gen_bool(0.3) {
            let r = control_area::Record {
                kind: control_area::RecordKind::BootRequest,
                sequence: rng.gen(),
                image_len: rng.gen(),
                image_hash: rng.gen(),
            };
            b.request(r);
        }
        // Whatever the contents, boots terminate with a decision or a flash error, never a
        // panic, and a second boot does too.
        for _ in 0..2 {
            if let Ok(d) = b.boot(rng.gen_bool(0.2)) {
                assert_eq!(d.kernel_addr, SMALL.kernel_slot.start);
            }
        }
    }
}

#[test]
fn requests_and_confirms_after_the_kernel_erased_its_request_sector_are_not_ignored() {
    let erase_requests =
        |b: &mut Board| b.sim.chip().load(SMALL.request_sector.start, &[0xFF; 4096]);
    let mut b = Board::new(SMALL, 30);
    let first = kernel_bytes(9000, 0);
    b.provision(&first);
    let second = kernel_bytes(7000, 1);
    let img = make_image(&second, 0, 1);
    b.stage(&img);
    b.request(boot_request(40, image_hash(&img), img.len() as u32));
    assert!(b.boot(false).unwrap().trial);
    // Power cut after the kernel erased the full sector: it restarts at sequence 1.
    erase_requests(&mut b);
    b.request(confirm(1, image_hash(&img)));
    assert!(!b.boot(false).unwrap().trial);
    assert_eq!(b.status().unwrap().state, State::Confirmed);
    assert!(b.kernel_is(&second));

    let third = kernel_bytes(8000, 2);
    let img = make_image(&third, 0, 2);
    b.stage(&img);
    erase_requests(&mut b);
    b.request(boot_request(1, image_hash(&img), img.len() as u32));
    assert!(b.boot(false).unwrap().trial, "request 1 after the erase");
    b.request(confirm(2, image_hash(&img)));
    assert!(!b.boot(false).unwrap().trial);
    assert_eq!(b.status().unwrap().state, State::Confirmed);
    assert!(b.kernel_is(&third));
    // The handled request is still in the sector: nothing is done again.
    let ops = b.sim.power.ops();
    assert!(!b.boot(false).unwrap().trial);
    assert_eq!(b.sim.power.ops(), ops);
}
