//! The receiving loop: what the scanner hears goes to the adv-transfer receiver, its staging
//! operations to a [`Staging`] store (an app session's end to its install), and every status
//! interval its status goes out as one advertising event, as the DFU app does.
use std::time::{Duration, Instant};

use adv_transfer::bearer::{Bearer, BearerSet, Phy, DATA_HEAD, DATA_PDU_MAX};
use adv_transfer::wire::ADV_DATA_MAX;
use adv_transfer::{
    session_address, Receiver, RxCounters, RxState, SessionInfo, StageError, StageOp,
};
use rand::{Rng, SeedableRng};

use crate::bearer::{BearerChoice, PDU_ROOM};
use crate::hci::{Capabilities, Controller, Heard};
use crate::radio::{start_scan, stop_scan, AdvParams, Advertiser, ADV_SID};
use crate::Error;

/// The largest chunk of any bearer: the receiver's queue holds chunks this long.
const CHUNK_MAX: usize = DATA_PDU_MAX - DATA_HEAD;
/// How long a periodic sync may go without an event before the controller drops it.
const SYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for a requested sync before asking again.
const SYNC_RETRY: Duration = Duration::from_secs(3);

/// The bearers a receiver follows for `choice` with a controller that has `caps`: legacy
/// always; extended when it scans extended advertising, periodic when it can also synchronise
/// to a train (`auto`: all of those; a named bearer: that one, if the controller has it).
pub fn followed(caps: &Capabilities, choice: BearerChoice) -> BearerSet {
    let room = caps.max_adv_data_len as usize >= PDU_ROOM || caps.extended_scanning;
    let mut set = BearerSet::LEGACY;
    for b in Bearer::ALL {
        let phy_ok = b.phy() == Phy::Le1M || caps.le_2m_phy;
        let ok = match (b, choice) {
            (Bearer::Legacy, _) | (_, BearerChoice::Legacy) => false,
            (Bearer::Extended(_), BearerChoice::Extended | BearerChoice::Auto) => {
                caps.extended_scanning
            }
            (Bearer::Periodic(_), BearerChoice::Periodic | BearerChoice::Auto) => {
                caps.extended_scanning && caps.periodic_advertising
            }
            _ => false,
        };
        if ok && phy_ok && room {
            set = set.with(b);
        }
    }
    set
}

/// Where the scanner is with a periodic train.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    None,
    Requested(Instant),
    Synced(u16),
}

/// Where the receiver's staging operations go (the update-region policy on a simulated flash in
/// `tock-ota receive`, through the DFU app's own staging step).
pub trait Staging {
    /// Perform `op`; a `Read` fills `read_back` with the bytes read.
    fn stage(&mut self, op: StageOp<'_>, read_back: &mut Vec<u8>) -> Result<(), StageError>;

    /// End a completed app session whose TBF of `len` bytes is staged, as the DFU app does
    /// (`dfu_app`: the app-update driver's `INSTALL` in place of the kernel finalize). A
    /// verdict on the TBF is [`StageError::Rejected`] (the sender hears `Rejected`);
    /// [`StageError::Failed`] is tried again. The default is a store whose device does not
    /// install apps: [`ReceiveOptions::accept_apps`] is then left off.
    fn install(&mut self, _len: u32) -> Result<(), StageError> {
        Err(StageError::Rejected)
    }
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
    /// The bearers to follow besides legacy ([`followed`]).
    pub bearer: BearerChoice,
    /// Join app sessions (capability `APP`) and end them with [`Staging::install`], as the
    /// DFU app does on a kernel with the app-update driver; without it they are refused as
    /// `Unsupported`.
    pub accept_apps: bool,
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
    /// The package name an app session's target PDU named; `None` for a kernel image.
    pub target: Option<String>,
    pub state: RxState,
    pub seconds: f64,
    pub counters: RxCounters,
    pub heard: u64,
    pub dropped_on_purpose: u64,
    pub statuses_sent: u64,
}

/// What the scanner's reports go to.
struct Listening<'r, 'b> {
    rx: &'r mut Receiver<'b, CHUNK_MAX>,
    sync: &'r mut Sync,
    heard: &'r mut u64,
    dropped: &'r mut u64,
    rng: &'r mut rand::rngs::StdRng,
    drop: f64,
    t0: Instant,
}

impl Listening<'_, '_> {
    /// Hand one report to the receiver (less the test's drops); true if it was part of a
    /// transfer.
    fn hear(&mut self, h: Heard<'_>) -> bool {
        let (addr, d, event) = match h {
            Heard::Adv { addr, data } => (addr, data, data.len() > ADV_DATA_MAX),
            // A periodic train's PDUs carry no address: it is the one synchronised to.
            Heard::Periodic { sync_handle, data } if *self.sync == Sync::Synced(sync_handle) => {
                match self.rx.session() {
                    Some(s) => (session_address(s.session), data, true),
                    None => return false,
                }
            }
            Heard::SyncEstablished {
                status,
                sync_handle,
                ..
            } => {
                *self.sync = if status == 0 {
                    Sync::Synced(sync_handle)
                } else {
                    Sync::None
                };
                return false;
            }
            Heard::SyncLost { .. } => {
                *self.sync = Sync::None;
                return false;
            }
            _ => return false,
        };
        *self.heard += 1;
        if self.drop > 0.0 && self.rng.gen::<f64>() < self.drop {
            *self.dropped += 1;
            return false;
        }
        self.rx.tick(self.t0.elapsed().as_millis() as u64);
        use adv_transfer::RxOutcome as O;
        if event {
            // An extended or periodic event: several PDUs, one per AD structure.
            self.rx.on_ext_adv(addr, d).pdus > 0
        } else {
            matches!(
                self.rx.on_adv(addr, d),
                O::Chunk | O::Duplicate | O::Announce | O::Manifest
            )
        }
    }
}

/// Receive one image (or, with [`ReceiveOptions::accept_apps`], one app's TBF) into `staging`;
/// returns when the receiver's state is final (complete, or rejected by finalize or by
/// [`Staging::install`]) and has been reported for `opts.linger`.
pub fn receive(
    hci: &mut Controller,
    staging: &mut dyn Staging,
    opts: &ReceiveOptions,
    on_progress: &mut dyn FnMut(&ReceiveProgress),
) -> Result<ReceiveReport, Error> {
    let mut bitmap = vec![0u8; Receiver::bitmap_len(opts.max_image_len)];
    let bearers = followed(&hci.capabilities(), opts.bearer);
    let mut rx = Receiver::<'_, CHUNK_MAX>::with_bearers(
        opts.company_id,
        opts.max_image_len,
        &mut bitmap,
        None,
        false,
        bearers,
    );
    rx.accept_apps(opts.accept_apps);
    let mut sync = Sync::None;
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
            let mut ctx = Listening {
                rx: &mut rx,
                sync: &mut sync,
                heard: &mut heard,
                dropped: &mut dropped,
                rng: &mut rng,
                drop: opts.drop,
                t0,
            };
            if ctx.hear(h) {
                active = true;
            }
        };
        if let Err(e) = hci.pump(Instant::now() + Duration::from_millis(5), &mut on_heard) {
            break 'run Err(e);
        }
        if active {
            last_activity = Instant::now();
        }
        // A session on the periodic bearer: synchronise to its sender's train.
        if let (Some(Bearer::Periodic(_)), Some(s)) = (rx.bearer(), rx.session()) {
            let due = match sync {
                Sync::None => true,
                Sync::Requested(at) => at.elapsed() > SYNC_RETRY,
                Sync::Synced(_) => false,
            };
            if due {
                if let Sync::Requested(_) = sync {
                    let _ = hci.command(&bt_hci::cmd::le::LePeriodicAdvCreateSyncCancel::new());
                }
                if let Err(e) = hci.create_sync(session_address(s.session), ADV_SID, SYNC_TIMEOUT) {
                    break 'run Err(e);
                }
                sync = Sync::Requested(Instant::now());
            }
        }
        // Stage what the receiver asks for. An app session (the receiver names its target)
        // ends with the install instead of the kernel finalize, as in the DFU app's loop.
        let app_len = rx.target().and(rx.session()).map(|s| s.image_len);
        while let Some(op) = rx.poll_op() {
            read_back.clear();
            let r = match (&op, app_len) {
                (StageOp::Finalize, Some(len)) => staging.install(len),
                _ => staging.stage(op, &mut read_back),
            };
            rx.op_done(match &r {
                Ok(()) => Ok(&read_back),
                Err(e) => Err(*e),
            });
            // A transient failure is tried again on a later pass, not in a tight loop.
            if r == Err(StageError::Failed) {
                break;
            }
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
                    Listening {
                        rx: &mut rx,
                        sync: &mut sync,
                        heard: &mut heard,
                        dropped: &mut dropped,
                        rng: &mut rng,
                        drop: opts.drop,
                        t0,
                    }
                    .hear(h);
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
        target: rx
            .target()
            .map(|name| String::from_utf8_lossy(name).into_owned()),
        state: rx.state(),
        seconds: t0.elapsed().as_secs_f64(),
        counters: rx.counters(),
        heard,
        dropped_on_purpose: dropped,
        statuses_sent: statuses,
    })
}
