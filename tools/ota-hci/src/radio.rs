//! Advertising one AdvData for a number of events, and scanning, with whichever command set the
//! controller has: an extended advertising set sending legacy PDUs (Max_Extended_Advertising_
//! Events, then LE Advertising Set Terminated says they went out) or the legacy commands.
use std::time::{Duration, Instant};

use bt_hci::cmd::le::{
    LeSetAdvData, LeSetAdvEnable, LeSetAdvParams, LeSetAdvSetRandomAddr, LeSetExtAdvData,
    LeSetExtAdvEnable, LeSetExtAdvParams, LeSetExtScanEnable, LeSetExtScanParams, LeSetRandomAddr,
    LeSetScanEnable, LeSetScanParams,
};
use bt_hci::param::{
    AddrKind, AdvChannelMap, AdvEventProps, AdvFilterPolicy, AdvHandle, AdvKind, AdvSet, BdAddr,
    Duration as HciDuration, ExtDuration, FilterDuplicates, LeScanKind, Operation, PhyKind,
    PhyParams, ScanningFilterPolicy, ScanningPhy,
};

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

/// HCI status 0x01, Unknown HCI Command.
fn is_unknown_command(e: &Error) -> bool {
    matches!(e, Error::Refused { status: 0x01, .. })
}

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
        PhyKind::Le1M,
        0,
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
        let units = units_625(params.interval);
        let interval = Duration::from_micros(units as u64 * 625);
        let addr = BdAddr::new(addr);
        let mut mode = None;
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
        Ok(Advertiser {
            mode,
            interval,
            enabled: false,
            last_start: None,
            last_span: Duration::ZERO,
            keep_on,
        })
    }

    /// True if the controller reports when an extended set has sent its events.
    pub fn extended(&self) -> bool {
        matches!(self.mode, Mode::Extended { .. })
    }

    /// The advertising interval the controller was given.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Put `data` (≤ 31 bytes) on air for `events` advertising events, handing what the
    /// controller reports meanwhile to `on_heard`.
    ///
    /// Successive transmissions start at least `events` × advInterval plus a random 0–10 ms
    /// (the advDelay a controller adds between events) apart, so the air sees the event rate
    /// the protocol is designed for (`docs/transfer-protocol.md`); with legacy commands the
    /// full 10 ms, so that every chunk meets at least one of the controller's own events.
    pub fn transmit(
        &mut self,
        hci: &mut Controller,
        data: &[u8],
        events: u8,
        on_heard: &mut dyn FnMut(Heard<'_>),
    ) -> Result<(), Error> {
        let events = events.max(1);
        let span = self.interval * events as u32;
        if let Some(last) = self.last_start {
            let delay = match self.mode {
                Mode::Legacy => ADV_DELAY_MAX,
                Mode::Extended { .. } => ADV_DELAY_MAX.mul_f64(rand::random::<f64>()),
            };
            hci.pump(last + self.last_span + delay, on_heard)?;
        }
        self.last_start = Some(Instant::now());
        self.last_span = span;
        match self.mode {
            Mode::Extended { reports_end } => {
                if reports_end == Some(false) && self.enabled {
                    // The previous run is still going (this controller does not end it).
                    hci.command(&LeSetExtAdvEnable::new(false, &[]))?;
                    self.enabled = false;
                }
                hci.command(&LeSetExtAdvData::new(
                    AdvHandle::new(HANDLE),
                    Operation::Complete,
                    true,
                    data,
                ))?;
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
