//! Advertising one AdvData for a number of events, and scanning, with whichever command set the
//! controller has: an extended advertising set sending legacy PDUs (Max_Extended_Advertising_
//! Events, then LE Advertising Set Terminated says they went out) or the legacy commands; or,
//! on the extended and periodic bearers ([`crate::bearer`]), an extended set sending extended
//! PDUs (AdvData written in fragments) and a periodic train on top of one.
use std::time::{Duration, Instant};

use bt_hci::cmd::le::{
    LeRemoveAdvSet, LeSetAdvData, LeSetAdvEnable, LeSetAdvParams, LeSetAdvSetRandomAddr,
    LeSetExtAdvData, LeSetExtAdvEnable, LeSetExtAdvParams, LeSetExtScanEnable, LeSetExtScanParams,
    LeSetPeriodicAdvData, LeSetPeriodicAdvEnable, LeSetPeriodicAdvParams, LeSetRandomAddr,
    LeSetScanEnable, LeSetScanParams,
};
use bt_hci::param::{
    AddrKind, AdvChannelMap, AdvEventProps, AdvFilterPolicy, AdvHandle, AdvKind, AdvSet, BdAddr,
    Duration as HciDuration, ExtDuration, FilterDuplicates, LeScanKind, Operation,
    PeriodicAdvProps, PhyKind, PhyParams, ScanningFilterPolicy, ScanningPhy,
};

use crate::bearer::{fragments, Bearer, Phy, EXT_FRAGMENT_MAX};
use crate::hci::{Controller, Heard};
use crate::Error;

/// The legacy PDU type the advertisements go out as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AdvType {
    /// ADV_NONCONN_IND: what the protocol is designed for (20 ms minimum interval).
    #[default]
    NonConn,
    /// ADV_SCAN_IND.
    Scan,
    /// ADV_IND (connectable; a peer could connect, which the tool never accepts).
    Ind,
}

impl std::str::FromStr for AdvType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nonconn" => Ok(AdvType::NonConn),
            "scan" => Ok(AdvType::Scan),
            "ind" => Ok(AdvType::Ind),
            _ => Err(format!(
                "unknown advertising type `{s}` (nonconn, scan, ind)"
            )),
        }
    }
}

/// How to advertise.
#[derive(Clone, Copy, Debug)]
pub struct AdvParams {
    pub adv_type: AdvType,
    /// Advertising interval; 20 ms is the minimum for non-connectable and scannable PDUs.
    pub interval: Duration,
}

/// The advertising handle the tool uses.
const HANDLE: u8 = 0;
/// The Advertising SID of the tool's extended set (a scanner synchronising to the periodic
/// train names it with the advertiser's address).
pub const ADV_SID: u8 = 0;
/// Slack on top of one periodic interval before the train's AdvData is replaced again: the
/// controller's events are exactly periodic, so holding each AdvData one interval plus this
/// puts it in at least one event even when the host's commands take varying times.
const PERIODIC_SLACK: Duration = Duration::from_millis(2);

/// How the advertiser carries AdvData beyond [`AdvParams`].
#[derive(Clone, Copy, Debug)]
pub struct BearerParams {
    pub bearer: Bearer,
    /// The periodic advertising interval (periodic bearer; 7.5 ms at the least).
    pub periodic_interval: Duration,
    /// The most AdvData per LE Set Extended Advertising Data command (251 by the spec; smaller
    /// only to exercise fragmentation in tests).
    pub fragment: usize,
}

impl BearerParams {
    /// The legacy bearer (what `send` and `receive` used before the bearers).
    pub const LEGACY: BearerParams = BearerParams {
        bearer: Bearer::Legacy,
        periodic_interval: Duration::from_micros(7_500),
        fragment: EXT_FRAGMENT_MAX,
    };

    pub fn new(bearer: Bearer) -> Self {
        BearerParams {
            bearer,
            ..Self::LEGACY
        }
    }
}
/// advDelay adds up to 10 ms to every advertising event.
const ADV_DELAY_MAX: Duration = Duration::from_millis(10);
/// Slack on top of the longest time the set may take before it reports termination.
const TERMINATE_SLACK: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// An extended set; `reports_end` once the controller is seen to report Advertising Set
    /// Terminated (`None` before the first try, `Some(false)` if it did not: then events are
    /// counted by time, as with legacy commands).
    Extended {
        reports_end: Option<bool>,
    },
    Legacy,
    /// A periodic train on an extended set; `started` once both are enabled.
    Periodic {
        started: bool,
    },
}

/// A random static device address (the two top bits set), so controllers without a public
/// address (Zephyr on an nRF52840 dongle) advertise too.
fn static_address() -> [u8; 6] {
    let mut a: [u8; 6] = rand::random();
    a[5] |= 0xC0;
    a
}

/// The 0.625 ms unit count for `d`, kept within the HCI range 0x20..=0x4000 (20 ms to 10.24 s,
/// legacy advertising). Clamped while still `u128`, so an absurd interval gives the longest one
/// instead of wrapping to a short one.
fn units_625(d: Duration) -> u32 {
    (d.as_micros() / 625).clamp(0x20, 0x4000) as u32
}

/// The 1.25 ms unit count for a periodic interval `d`, within the HCI range 0x0006..=0xFFFF
/// (7.5 ms to 81.9 s).
fn units_1250(d: Duration) -> u16 {
    (d.as_micros() / 1250).clamp(0x0006, 0xFFFF) as u16
}

fn secondary_phy(phy: Phy) -> PhyKind {
    match phy {
        Phy::Le1M => PhyKind::Le1M,
        Phy::Le2M => PhyKind::Le2M,
    }
}

/// HCI status 0x01, Unknown HCI Command.
fn is_unknown_command(e: &Error) -> bool {
    matches!(e, Error::Refused { status: 0x01, .. })
}

/// An extended set sending legacy PDUs of `adv_type`.
fn setup_extended(
    hci: &mut Controller,
    adv_type: AdvType,
    units: u32,
    addr: BdAddr,
) -> Result<(), Error> {
    let props = AdvEventProps::new().set_legacy_adv(true);
    let props = match adv_type {
        AdvType::NonConn => props,
        AdvType::Scan => props.set_scannable_adv(true),
        AdvType::Ind => props.set_connectable_adv(true).set_scannable_adv(true),
    };
    setup_set(hci, props, PhyKind::Le1M, units, addr)
}

/// An extended set sending extended PDUs (non-connectable, non-scannable: the only kind whose
/// AUX_ADV_IND carries AdvData of any length) with its AUX PDUs on `phy`. The set is removed
/// first (it may have sent legacy PDUs for the sender's announces, and a controller need not
/// let a set change between legacy and extended PDUs; some have a single set).
fn setup_extended_pdus(
    hci: &mut Controller,
    phy: Phy,
    units: u32,
    addr: BdAddr,
) -> Result<(), Error> {
    hci.command(&LeSetExtAdvEnable::new(false, &[]))?;
    // Refused when there is no such set yet.
    match hci.command(&LeRemoveAdvSet::new(AdvHandle::new(HANDLE))) {
        Ok(()) | Err(Error::Refused { .. }) => {}
        Err(e) => return Err(e),
    }
    setup_set(hci, AdvEventProps::new(), secondary_phy(phy), units, addr)
}

fn setup_set(
    hci: &mut Controller,
    props: AdvEventProps,
    secondary: PhyKind,
    units: u32,
    addr: BdAddr,
) -> Result<(), Error> {
    // A set left enabled by an earlier run (a controller reset may not clear it).
    hci.command(&LeSetExtAdvEnable::new(false, &[]))?;
    hci.command(&LeSetExtAdvParams::new(
        AdvHandle::new(HANDLE),
        props,
        ExtDuration::from_u32(units),
        ExtDuration::from_u32(units),
        AdvChannelMap::ALL,
        AddrKind::RANDOM,
        AddrKind::PUBLIC,
        BdAddr::default(),
        AdvFilterPolicy::Unfiltered,
        0x7F, // no transmit-power preference
        PhyKind::Le1M,
        0,
        secondary,
        ADV_SID,
        false,
    ))?;
    hci.command(&LeSetAdvSetRandomAddr::new(AdvHandle::new(HANDLE), addr))?;
    Ok(())
}

fn setup_legacy(
    hci: &mut Controller,
    adv_type: AdvType,
    units: u32,
    addr: BdAddr,
) -> Result<(), Error> {
    hci.command(&LeSetAdvEnable::new(false))?;
    let kind = match adv_type {
        AdvType::NonConn => AdvKind::AdvNonconnInd,
        AdvType::Scan => AdvKind::AdvScanInd,
        AdvType::Ind => AdvKind::AdvInd,
    };
    hci.command(&LeSetRandomAddr::new(addr))?;
    hci.command(&LeSetAdvParams::new(
        HciDuration::from_u16(units as u16),
        HciDuration::from_u16(units as u16),
        kind,
        AddrKind::RANDOM,
        AddrKind::PUBLIC,
        BdAddr::default(),
        AdvChannelMap::ALL,
        AdvFilterPolicy::Unfiltered,
    ))?;
    Ok(())
}

/// One advertiser.
pub struct Advertiser {
    mode: Mode,
    interval: Duration,
    /// Advertising is enabled (a legacy advertiser, or a set left running).
    enabled: bool,
    /// When the last transmission started, and its events × interval.
    last_start: Option<Instant>,
    last_span: Duration,
    /// After each transmission: stay on (the sender's back-to-back chunks) or stop (the
    /// receiver's one-off status).
    keep_on: bool,
    bearer: BearerParams,
    /// The most AdvData one transmission takes.
    max_data: usize,
}

impl Advertiser {
    /// Configure the controller's advertiser for `params`, from a fresh random static address.
    pub fn new(hci: &mut Controller, params: AdvParams, keep_on: bool) -> Result<Self, Error> {
        Self::with_address(hci, params, keep_on, static_address())
    }

    /// Configure the controller's advertiser for `params`, advertising from the random static
    /// address `addr` (as sent: least significant byte first; a sender uses its session's).
    pub fn with_address(
        hci: &mut Controller,
        params: AdvParams,
        keep_on: bool,
        addr: [u8; 6],
    ) -> Result<Self, Error> {
        Self::for_bearer(hci, params, keep_on, addr, BearerParams::LEGACY)
    }

    /// Configure the controller's advertiser for `params` on `bearer` (from
    /// [`crate::bearer::choose`], so the controller has it), advertising from `addr`. On the
    /// extended and periodic bearers `params.adv_type` does not apply: the set is
    /// non-connectable and non-scannable.
    pub fn for_bearer(
        hci: &mut Controller,
        params: AdvParams,
        keep_on: bool,
        addr: [u8; 6],
        bearer: BearerParams,
    ) -> Result<Self, Error> {
        let units = units_625(params.interval);
        let interval = Duration::from_micros(units as u64 * 625);
        let addr = BdAddr::new(addr);
        let max_data = crate::bearer::max_adv_data(bearer.bearer, &hci.capabilities());
        let mut mode = None;
        let new = |mode, interval| Advertiser {
            mode,
            interval,
            enabled: false,
            last_start: None,
            last_span: Duration::ZERO,
            keep_on,
            bearer,
            max_data,
        };
        match bearer.bearer {
            Bearer::Legacy => {}
            Bearer::Extended(phy) => {
                setup_extended_pdus(hci, phy, units, addr)?;
                return Ok(new(Mode::Extended { reports_end: None }, interval));
            }
            Bearer::Periodic(phy) => {
                // A train left running by an earlier run; refused when there is none.
                match hci.command(&LeSetPeriodicAdvEnable::new(false, AdvHandle::new(HANDLE))) {
                    Ok(()) | Err(Error::Refused { .. }) => {}
                    Err(e) => return Err(e),
                }
                setup_extended_pdus(hci, phy, units, addr)?;
                hci.command(&LeSetExtAdvData::new(
                    AdvHandle::new(HANDLE),
                    Operation::Complete,
                    true,
                    &[],
                ))?;
                let p = units_1250(bearer.periodic_interval);
                hci.command(&LeSetPeriodicAdvParams::new(
                    AdvHandle::new(HANDLE),
                    HciDuration::from_u16(p),
                    HciDuration::from_u16(p),
                    PeriodicAdvProps::new(),
                ))?;
                let periodic = Duration::from_micros(p as u64 * 1250);
                return Ok(new(Mode::Periodic { started: false }, periodic));
            }
        }
        if hci.capabilities().extended_advertising {
            match setup_extended(hci, params.adv_type, units, addr) {
                Ok(()) => mode = Some(Mode::Extended { reports_end: None }),
                Err(e) if is_unknown_command(&e) => hci.no_extended_advertising(),
                Err(e) => return Err(e),
            }
        }
        let mode = match mode {
            Some(m) => m,
            None => {
                setup_legacy(hci, params.adv_type, units, addr)?;
                Mode::Legacy
            }
        };
        Ok(new(mode, interval))
    }

    /// True if an extended advertising set carries the advertisements (with legacy or
    /// extended PDUs, or under a periodic train).
    pub fn extended(&self) -> bool {
        matches!(self.mode, Mode::Extended { .. } | Mode::Periodic { .. })
    }

    /// The bearer the advertisements go on.
    pub fn bearer(&self) -> Bearer {
        self.bearer.bearer
    }

    /// The most AdvData one transmission takes on this bearer and controller.
    pub fn max_adv_data(&self) -> usize {
        self.max_data
    }

    /// The advertising interval the controller was given (the periodic interval on the
    /// periodic bearer).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Put `data` (at most [`Advertiser::max_adv_data`] bytes: 31 on the legacy bearer) on air
    /// for `events` advertising events, handing what the controller reports meanwhile to
    /// `on_heard`.
    ///
    /// Successive transmissions start at least `events` × advInterval plus a random 0–10 ms
    /// (the advDelay a controller adds between events) apart, so the air sees the event rate
    /// the protocol is designed for (`docs/transfer-protocol.md`); with legacy commands the
    /// full 10 ms, so that every chunk meets at least one of the controller's own events. A
    /// periodic train has no advDelay: its AdvData is replaced every `events` periodic
    /// intervals plus 2 ms.
    pub fn transmit(
        &mut self,
        hci: &mut Controller,
        data: &[u8],
        events: u8,
        on_heard: &mut dyn FnMut(Heard<'_>),
    ) -> Result<(), Error> {
        if data.len() > self.max_data {
            return Err(Error::AdvDataTooLong {
                bearer: crate::bearer::kind(self.bearer.bearer),
                len: data.len(),
                max: self.max_data,
            });
        }
        let events = events.max(1);
        let span = self.interval * events as u32;
        if let Some(last) = self.last_start {
            let delay = match self.mode {
                Mode::Legacy => ADV_DELAY_MAX,
                Mode::Extended { .. } => ADV_DELAY_MAX.mul_f64(rand::random::<f64>()),
                Mode::Periodic { .. } => PERIODIC_SLACK,
            };
            hci.pump(last + self.last_span + delay, on_heard)?;
        }
        self.last_start = Some(Instant::now());
        self.last_span = span;
        match self.mode {
            Mode::Periodic { started } => {
                // While the train runs its AdvData can only be replaced whole (one command).
                hci.command(&LeSetPeriodicAdvData::new(
                    AdvHandle::new(HANDLE),
                    Operation::Complete,
                    data,
                ))?;
                if !started {
                    hci.command(&LeSetPeriodicAdvEnable::new(true, AdvHandle::new(HANDLE)))?;
                    let set = [AdvSet {
                        adv_handle: AdvHandle::new(HANDLE),
                        duration: HciDuration::from_u16(0),
                        max_ext_adv_events: 0,
                    }];
                    hci.command(&LeSetExtAdvEnable::new(true, &set))?;
                    self.enabled = true;
                    self.mode = Mode::Periodic { started: true };
                }
                if !self.keep_on {
                    hci.pump(Instant::now() + span + PERIODIC_SLACK, on_heard)?;
                    self.stop(hci)?;
                }
                Ok(())
            }
            Mode::Extended { reports_end } => {
                if reports_end == Some(false) && self.enabled {
                    // The previous run is still going (this controller does not end it).
                    hci.command(&LeSetExtAdvEnable::new(false, &[]))?;
                    self.enabled = false;
                }
                // The set is not enabled here (it ended, or was stopped above), so the data
                // may go in fragments.
                for (op, piece) in fragments(data, self.bearer.fragment.min(EXT_FRAGMENT_MAX)) {
                    hci.command(&LeSetExtAdvData::new(
                        AdvHandle::new(HANDLE),
                        op,
                        true,
                        piece,
                    ))?;
                }
                let set = [AdvSet {
                    adv_handle: AdvHandle::new(HANDLE),
                    duration: HciDuration::from_u16(0),
                    max_ext_adv_events: events,
                }];
                hci.command(&LeSetExtAdvEnable::new(true, &set))?;
                self.enabled = true;
                if reports_end == Some(false) {
                    if !self.keep_on {
                        hci.pump(Instant::now() + span, on_heard)?;
                        hci.command(&LeSetExtAdvEnable::new(false, &[]))?;
                        self.enabled = false;
                    }
                    return Ok(());
                }
                // Wait for the set to end: at most `events` × (interval + advDelay).
                let limit = (self.interval + ADV_DELAY_MAX) * events as u32 + TERMINATE_SLACK;
                let deadline = Instant::now() + limit;
                let mut ended = false;
                while !ended && Instant::now() < deadline {
                    let step = (Instant::now() + Duration::from_millis(5)).min(deadline);
                    hci.pump(step, &mut |h| match h {
                        Heard::SetTerminated { handle, .. } if handle == HANDLE => ended = true,
                        other => on_heard(other),
                    })?;
                }
                if ended {
                    self.enabled = false;
                    if reports_end.is_none() {
                        self.mode = Mode::Extended {
                            reports_end: Some(true),
                        };
                    }
                } else {
                    // No report: this controller keeps the set running (or does not tell).
                    // Count events by time from now on.
                    hci.command(&LeSetExtAdvEnable::new(false, &[]))?;
                    self.enabled = false;
                    if reports_end.is_none() {
                        self.mode = Mode::Extended {
                            reports_end: Some(false),
                        };
                    }
                }
                Ok(())
            }
            Mode::Legacy => {
                let mut buf = [0u8; 31];
                let n = data.len().min(31);
                buf[..n].copy_from_slice(&data[..n]);
                hci.command(&LeSetAdvData::new(n as u8, buf))?;
                if !self.enabled {
                    hci.command(&LeSetAdvEnable::new(true))?;
                    self.enabled = true;
                }
                if !self.keep_on {
                    hci.pump(Instant::now() + span + ADV_DELAY_MAX, on_heard)?;
                    hci.command(&LeSetAdvEnable::new(false))?;
                    self.enabled = false;
                }
                Ok(())
            }
        }
    }

    /// Stop advertising.
    pub fn stop(&mut self, hci: &mut Controller) -> Result<(), Error> {
        match self.mode {
            Mode::Extended { .. } => hci.command(&LeSetExtAdvEnable::new(false, &[]))?,
            Mode::Legacy => hci.command(&LeSetAdvEnable::new(false))?,
            Mode::Periodic { started } => {
                if started {
                    hci.command(&LeSetPeriodicAdvEnable::new(false, AdvHandle::new(HANDLE)))?;
                }
                hci.command(&LeSetExtAdvEnable::new(false, &[]))?;
                self.mode = Mode::Periodic { started: false };
            }
        }
        self.enabled = false;
        Ok(())
    }
}

/// Scan interval and window: scanning all the time.
const SCAN_UNITS: u16 = 0x30; // 30 ms

/// Start passive scanning with duplicate filtering off (every advertisement is reported).
pub fn start_scan(hci: &mut Controller) -> Result<(), Error> {
    if hci.capabilities().extended_scanning {
        match start_extended_scan(hci) {
            Ok(()) => return Ok(()),
            Err(e) if is_unknown_command(&e) => hci.no_extended_scanning(),
            Err(e) => return Err(e),
        }
    }
    hci.command(&LeSetScanEnable::new(false, false))?;
    hci.command(&LeSetScanParams::new(
        LeScanKind::Passive,
        HciDuration::from_u16(SCAN_UNITS),
        HciDuration::from_u16(SCAN_UNITS),
        AddrKind::RANDOM,
        ScanningFilterPolicy::BasicUnfiltered,
    ))?;
    hci.command(&LeSetScanEnable::new(true, false))?;
    Ok(())
}

/// Extended scanning on or off: no duplicate filtering, no duration, no period.
fn ext_scan_enable(hci: &mut Controller, enable: bool) -> Result<(), Error> {
    hci.command(&LeSetExtScanEnable::new(
        enable,
        FilterDuplicates::Disabled,
        HciDuration::from_u16(0),
        HciDuration::from_u16(0),
    ))?;
    Ok(())
}

fn start_extended_scan(hci: &mut Controller) -> Result<(), Error> {
    ext_scan_enable(hci, false)?;
    hci.command(&LeSetExtScanParams::new(
        AddrKind::RANDOM,
        ScanningFilterPolicy::BasicUnfiltered,
        PhyParams {
            le_1m_phy: Some(ScanningPhy {
                active_scan: false,
                scan_interval: HciDuration::from_u16(SCAN_UNITS),
                scan_window: HciDuration::from_u16(SCAN_UNITS),
            }),
            le_2m_phy: None,
            le_coded_phy: None,
        },
    ))?;
    ext_scan_enable(hci, true)?;
    Ok(())
}

/// Stop scanning.
pub fn stop_scan(hci: &mut Controller) -> Result<(), Error> {
    if hci.capabilities().extended_scanning {
        ext_scan_enable(hci, false)?;
    } else {
        hci.command(&LeSetScanEnable::new(false, false))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_out_of_range_is_clamped_to_the_legacy_range_never_wrapped() {
        assert_eq!(units_625(Duration::from_millis(100)), 160);
        assert_eq!(units_625(Duration::from_millis(1)), 0x20);
        assert_eq!(units_625(Duration::from_secs(60)), 0x4000);
        // 2^32 units and 100 more: cast to u32 before clamping, this was 100 units (62.5 ms).
        let wraps = Duration::from_micros(((1u64 << 32) + 100) * 625);
        assert_eq!(units_625(wraps), 0x4000);
        assert_eq!(units_625(Duration::MAX), 0x4000);
    }
}
