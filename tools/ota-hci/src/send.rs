//! The sending loop: the adv-transfer sender's advertisements out, one per advertising event,
//! the receiver's status advertisements in, until the receiver reports the image complete.
use std::time::{Duration, Instant};

use adv_transfer::bearer::Bearer;
use adv_transfer::wire::{Crc32, ADV_DATA_MAX, EXT_ADV_DATA_MAX};
use adv_transfer::{RxState, Sender, TxEvent};

use crate::bearer::{ad_groups, choose_for, offers, BearerChoice};
use crate::hci::{Controller, Heard};
use crate::radio::{start_scan, stop_scan, AdvParams, Advertiser, BearerParams};
use crate::Error;

/// Options of one send.
#[derive(Clone, Debug)]
pub struct SendOptions {
    pub adv: AdvParams,
    /// Give up when no status advertisement was heard for this long.
    pub status_timeout: Duration,
    /// The company identifier in the AD structures.
    pub company_id: u16,
    /// The bearers to offer the receiver for the data ([`crate::bearer::choose`] checks the
    /// controller has it; legacy needs nothing).
    pub bearer: BearerChoice,
    /// The periodic advertising interval on the periodic bearer.
    pub periodic_interval: Duration,
    /// Put at most this much AdvData in one event, if less than the controller takes (tests:
    /// Bumble's controller cannot report more than 229 bytes of an extended event, 247 of a
    /// periodic one).
    pub max_event_data: Option<usize>,
}

/// Where a send is, for a display.
#[derive(Clone, Copy, Debug)]
pub struct SendProgress {
    pub image_bytes: u64,
    /// Image bytes sent at least once.
    pub sent_bytes: u64,
    pub elapsed: Duration,
    pub advertisements: u64,
    pub resent_chunks: u64,
    pub receiver_state: Option<RxState>,
}

/// What a send did.
#[derive(Clone, Debug)]
pub struct SendReport {
    pub image_bytes: u64,
    pub seconds: f64,
    pub goodput_bytes_per_s: f64,
    pub advertisements: u64,
    pub resent_chunks: u64,
    pub statuses_heard: u64,
    pub receiver_complete: bool,
    pub session: u32,
    /// True when an extended advertising set carried the PDUs.
    pub extended_advertising: bool,
    /// The advertising interval the controller was given.
    pub interval_ms: f64,
    /// The bearer the data went on (the receiver's pick among those offered).
    pub bearer: Bearer,
}

/// The session id of `image`: the same image gets the same id, so running `send` again after
/// an interruption lets the receiver resume where it stopped.
pub fn session_for(image: &[u8]) -> u32 {
    let id = Crc32::of(image) ^ (image.len() as u32).rotate_left(16) ^ 0x5EED_0001;
    if id == 0 {
        1
    } else {
        id
    }
}

/// A status heard again within this time is the same advertisement reported twice (a controller
/// that reports each PDU per channel or as a scan response too), not a new report.
const SAME_STATUS_WINDOW: Duration = Duration::from_millis(150);

/// Send `image` until the receiver reports it complete (or refuses it).
pub fn send(
    hci: &mut Controller,
    image: &[u8],
    opts: &SendOptions,
    on_progress: &mut dyn FnMut(&SendProgress),
) -> Result<SendReport, Error> {
    send_announced(hci, image, 0, opts, on_progress)
}

/// [`send`] with the announce's `capabilities` (`adv_transfer::wire::capability`): COMPRESSED
/// for a compressed image (MCUboot's compressed flags), which the receiver stages for its kernel
/// to decode; a receiver without the capability refuses ([`Error::ReceiverRefused`] with
/// [`RxState::Unsupported`]).
pub fn send_announced(
    hci: &mut Controller,
    image: &[u8],
    capabilities: u8,
    opts: &SendOptions,
    on_progress: &mut dyn FnMut(&SendProgress),
) -> Result<SendReport, Error> {
    let session = session_for(image);
    let sender = Sender::new(opts.company_id, image, session, capabilities)
        .map_err(|e| Error::Image(e.to_string()))?;
    send_with(hci, sender, image.len(), opts, on_progress)
}

/// Send a delta `patch` made against the image whose id (first 16 bytes of its hash TLV) is
/// `base`; a receiver running another image refuses it before staging anything
/// ([`Error::WrongBase`]).
pub fn send_delta(
    hci: &mut Controller,
    patch: &[u8],
    base: [u8; 16],
    opts: &SendOptions,
    on_progress: &mut dyn FnMut(&SendProgress),
) -> Result<SendReport, Error> {
    let session = session_for(patch);
    let sender = Sender::new_delta(opts.company_id, patch, session, base)
        .map_err(|e| Error::Image(e.to_string()))?;
    send_with(hci, sender, patch.len(), opts, on_progress)
}

/// The sender of an app update: `tbf` (one TBF with its credential footer, as elf2tab made it)
/// announced as an app session whose target PDU names the app `name` (its TBF package name). A
/// name that does not fit a target PDU is refused here, before anything is sent.
pub fn app_sender<'a>(tbf: &'a [u8], name: &str, company_id: u16) -> Result<Sender<'a>, Error> {
    Sender::new_app(company_id, tbf, session_for(tbf), name.as_bytes())
        .map_err(|e| Error::Image(e.to_string()))
}

/// Send an app update ([`app_sender`]); a receiver whose device does not install apps refuses
/// it ([`Error::ReceiverRefused`] with [`RxState::Unsupported`]).
pub fn send_app(
    hci: &mut Controller,
    tbf: &[u8],
    name: &str,
    opts: &SendOptions,
    on_progress: &mut dyn FnMut(&SendProgress),
) -> Result<SendReport, Error> {
    let sender = app_sender(tbf, name, opts.company_id)?;
    send_with(hci, sender, tbf.len(), opts, on_progress)
}

fn send_with(
    hci: &mut Controller,
    mut sender: Sender<'_>,
    image_len: usize,
    opts: &SendOptions,
    on_progress: &mut dyn FnMut(&SendProgress),
) -> Result<SendReport, Error> {
    let session = sender.info().session;
    let chosen = choose_for(hci, opts.bearer, None)?;
    if chosen != Bearer::Legacy {
        // Announces and the offer go out as legacy advertisements until the receiver picks.
        sender.offer_bearers(offers(&hci.capabilities(), opts.bearer, chosen));
    }
    // Receivers take the session's data PDUs from the session's own address only.
    let mut adv = Advertiser::with_address(hci, opts.adv, true, sender.address())?;
    // The set for the picked chained bearer, once picked.
    let mut chained: Option<Advertiser> = None;
    start_scan(hci)?;
    let t0 = Instant::now();
    let mut last_status = t0;
    let mut last_progress = t0;
    let mut last_seen: Option<(Vec<u8>, Instant)> = None;
    let result = loop {
        if sender.is_complete() {
            break Ok(());
        }
        if let Some(
            state @ (RxState::Unsupported
            | RxState::TooLarge
            | RxState::Rejected
            | RxState::VersionMismatch),
        ) = sender.receiver_state()
        {
            break Err(Error::ReceiverRefused { state });
        }
        if let Some(running) = sender.receiver_running() {
            break Err(Error::WrongBase { running });
        }
        let now = Instant::now();
        if now - last_status > opts.status_timeout {
            break Err(Error::NoReceiver {
                transport: hci.transport().to_string(),
                waited: opts.status_timeout,
            });
        }
        let picked = sender.bearer().filter(|b| b.chained());
        if let Some(b) = picked {
            if chained.as_ref().map(|a| a.bearer()) != Some(b) {
                if let Err(e) = adv.stop(hci) {
                    break Err(e);
                }
                let params = BearerParams {
                    periodic_interval: opts.periodic_interval,
                    ..BearerParams::new(b)
                };
                match Advertiser::for_bearer(hci, opts.adv, true, sender.address(), params) {
                    Ok(a) => chained = Some(a),
                    Err(e) => break Err(e),
                }
            }
        }
        let mut event = [0u8; EXT_ADV_DATA_MAX];
        let (n, on) = match (picked, chained.as_mut()) {
            (Some(_), Some(a)) => (sender.next_event(&mut event), a),
            _ => {
                let mut data = [0u8; ADV_DATA_MAX];
                let n = sender.next_adv(&mut data);
                event[..n].copy_from_slice(&data[..n]);
                (n, &mut adv)
            }
        };
        // An event longer than the controller (or a running periodic train) takes goes out
        // as several, cut between AD structures.
        let max = on
            .max_adv_data()
            .min(opts.max_event_data.unwrap_or(usize::MAX));
        let Some(pieces) = ad_groups(&event[..n], max) else {
            break Err(Error::AdvDataTooLong {
                bearer: crate::bearer::kind(on.bearer()),
                len: n,
                max,
            });
        };
        let mut heard_status = false;
        let mut on_heard = |h: Heard<'_>| {
            if let Heard::Adv { data: d, .. } = h {
                let now = Instant::now();
                if let Some((prev, at)) = &last_seen {
                    if prev.as_slice() == d && now - *at < SAME_STATUS_WINDOW {
                        return;
                    }
                }
                if let TxEvent::Status { .. } = sender.on_adv(d) {
                    heard_status = true;
                    last_seen = Some((d.to_vec(), now));
                }
            }
        };
        let mut r = Ok(());
        for piece in pieces {
            r = on.transmit(hci, piece, 1, &mut on_heard);
            if r.is_err() {
                break;
            }
        }
        if let Err(e) = r {
            break Err(e);
        }
        if heard_status {
            last_status = Instant::now();
        }
        if last_progress.elapsed() >= Duration::from_millis(100) || sender.is_complete() {
            last_progress = Instant::now();
            on_progress(&progress(&sender, image_len, t0));
        }
    };
    // Leave the controller quiet whatever happened (best effort: the link may be gone).
    let _ = adv.stop(hci);
    if let Some(a) = chained.as_mut() {
        let _ = a.stop(hci);
    }
    let _ = stop_scan(hci);
    result.map_err(|e| match e {
        Error::Closed { transport } => Error::ClosedMidSend { transport },
        e => e,
    })?;
    let seconds = t0.elapsed().as_secs_f64();
    let c = sender.counters();
    on_progress(&progress(&sender, image_len, t0));
    Ok(SendReport {
        image_bytes: image_len as u64,
        seconds,
        goodput_bytes_per_s: image_len as f64 / seconds.max(1e-9),
        advertisements: c.pdus,
        resent_chunks: c.retransmissions,
        statuses_heard: c.statuses_heard,
        receiver_complete: sender.is_complete(),
        session,
        extended_advertising: adv.extended() || chained.is_some(),
        interval_ms: chained.as_ref().unwrap_or(&adv).interval().as_secs_f64() * 1e3,
        bearer: sender.bearer().unwrap_or(Bearer::Legacy),
    })
}

fn progress(sender: &Sender<'_>, image_len: usize, t0: Instant) -> SendProgress {
    let sent = sender.first_pass_sent();
    let sent_bytes = if sent >= sender.total_chunks() {
        image_len as u64
    } else {
        sender.geometry().chunk_range(sent, image_len as u32).0 as u64
    };
    let c = sender.counters();
    SendProgress {
        image_bytes: image_len as u64,
        sent_bytes,
        elapsed: t0.elapsed(),
        advertisements: c.pdus,
        resent_chunks: c.retransmissions,
        receiver_state: sender.receiver_state(),
    }
}
