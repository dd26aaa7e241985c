//! The receiving loop: what the scanner hears goes to the adv-transfer receiver, its staging
//! operations to a [`Staging`] store, and every status interval its status goes out as one
//! advertising event, as the DFU app does.
use std::time::{Duration, Instant};

use adv_transfer::wire::ADV_DATA_MAX;
use adv_transfer::{Receiver, RxCounters, RxState, SessionInfo, StageError, StageOp};
use rand::{Rng, SeedableRng};

use crate::hci::{Controller, Heard};
use crate::radio::{start_scan, stop_scan, AdvParams, Advertiser};
use crate::Error;

/// Where the receiver's staging operations go (the update-region policy on a simulated flash in
/// `tock-ota receive`, through the DFU app's own staging step).
pub trait Staging {
    /// Perform `op`; a `Read` fills `read_back` with the bytes read.
    fn stage(&mut self, op: StageOp<'_>, read_back: &mut Vec<u8>) -> Result<(), StageError>;
}

/// Options of one receive.
#[derive(Clone, Debug)]
pub struct ReceiveOptions {
    pub adv: AdvParams,
    pub company_id: u16,
    /// Largest image the staging store takes.
    pub max_image_len: u32,
    /// How often the receiver's status goes out (the DFU app's period).
    pub status_interval: Duration,
    /// Give up when nothing of a transfer was heard for this long.
    pub idle_timeout: Duration,
    /// Keep reporting the final state this long after the end, so the sender hears it.
    pub linger: Duration,
    /// Test option: drop this share of the advertisements heard, as if lost on air.
    pub drop: f64,
    pub seed: u64,
}

/// Where a receive is, for a display.
#[derive(Clone, Copy, Debug)]
pub struct ReceiveProgress {
    pub received_chunks: u32,
    pub total_chunks: u32,
    pub elapsed: Duration,
}

/// What a receive did.
#[derive(Clone, Debug)]
pub struct ReceiveReport {
    pub session: Option<SessionInfo>,
    pub state: RxState,
    pub seconds: f64,
    pub counters: RxCounters,
    pub heard: u64,
    pub dropped_on_purpose: u64,
    pub statuses_sent: u64,
}

/// Receive one image into `staging`; returns when the receiver's state is final (complete or
/// rejected by finalize) and has been reported for `opts.linger`.
pub fn receive(
    hci: &mut Controller,
    staging: &mut dyn Staging,
    opts: &ReceiveOptions,
    on_progress: &mut dyn FnMut(&ReceiveProgress),
) -> Result<ReceiveReport, Error> {
    let mut bitmap = vec![0u8; Receiver::bitmap_len(opts.max_image_len)];
    let mut rx = Receiver::new(
        opts.company_id,
        opts.max_image_len,
        &mut bitmap,
        None,
        false,
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut adv = Advertiser::new(hci, opts.adv, false)?;
    start_scan(hci)?;
    let t0 = Instant::now();
    let mut last_activity = t0;
    let mut last_status = t0;
    let mut last_progress = t0;
    let mut ended: Option<Instant> = None;
    let mut heard = 0u64;
    let mut dropped = 0u64;
    let mut statuses = 0u64;
    let mut read_back = Vec::new();
    let result: Result<(), Error> = 'run: loop {
        // Listen a little; every advertisement goes to the receiver (less the test's drops).
        let mut active = false;
        let mut on_heard = |h: Heard<'_>| {
            if let Heard::Adv { addr, data: d } = h {
                heard += 1;
                if opts.drop > 0.0 && rng.gen::<f64>() < opts.drop {
                    dropped += 1;
                    return;
                }
                rx.tick(t0.elapsed().as_millis() as u64);
                use adv_transfer::RxOutcome as O;
                if matches!(
                    rx.on_adv(addr, d),
                    O::Chunk | O::Duplicate | O::Announce | O::Manifest
                ) {
                    active = true;
                }
            }
        };
        if let Err(e) = hci.pump(Instant::now() + Duration::from_millis(5), &mut on_heard) {
            break 'run Err(e);
        }
        if active {
            last_activity = Instant::now();
        }
        // Stage what the receiver asks for.
        while let Some(op) = rx.poll_op() {
            read_back.clear();
            let r = staging.stage(op, &mut read_back);
            rx.op_done(match &r {
                Ok(()) => Ok(&read_back),
                Err(e) => Err(*e),
            });
        }
        let state = rx.state();
        let done = matches!(state, RxState::Complete | RxState::Rejected);
        if done && ended.is_none() {
            ended = Some(Instant::now());
            last_status = t0; // report the end at once
        }
        if rx.session().is_some() && last_status.elapsed() >= opts.status_interval {
            last_status = Instant::now();
            let mut s = [0u8; ADV_DATA_MAX];
            let n = rx.status_adv(&mut s);
            if n > 0 {
                statuses += 1;
                let mut more = |h: Heard<'_>| {
                    if let Heard::Adv { addr, data: d } = h {
                        heard += 1;
                        if opts.drop > 0.0 && rng.gen::<f64>() < opts.drop {
                            dropped += 1;
                            return;
                        }
                        rx.on_adv(addr, d);
                    }
                };
                if let Err(e) = adv.transmit(hci, &s[..n], 1, &mut more) {
                    break 'run Err(e);
                }
            }
        }
        if last_progress.elapsed() >= Duration::from_millis(200) {
            last_progress = Instant::now();
            let p = rx.progress();
            on_progress(&ReceiveProgress {
                received_chunks: p.received_chunks,
                total_chunks: p.total_chunks,
                elapsed: t0.elapsed(),
            });
        }
        if let Some(at) = ended {
            if at.elapsed() >= opts.linger {
                break Ok(());
            }
        } else if last_activity.elapsed() > opts.idle_timeout {
            break Err(Error::NoSender {
                transport: hci.transport().to_string(),
                waited: opts.idle_timeout,
            });
        }
    };
    let _ = adv.stop(hci);
    let _ = stop_scan(hci);
    result?;
    Ok(ReceiveReport {
        session: rx.session(),
        state: rx.state(),
        seconds: t0.elapsed().as_secs_f64(),
        counters: rx.counters(),
        heard,
        dropped_on_purpose: dropped,
        statuses_sent: statuses,
    })
}
