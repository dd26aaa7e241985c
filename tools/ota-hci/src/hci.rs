//! One controller behind a [`Link`]: commands out and their completions back (with a timeout
//! each), everything else the controller says queued and handed out by [`Controller::pump`].
//! Packets are framed and parsed by `bt-hci`.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bt_hci::cmd::controller_baseband::{Reset, SetEventMask};
use bt_hci::cmd::info::{ReadLocalSupportedCmds, ReadLocalSupportedFeatures};
use bt_hci::cmd::le::{
    LePeriodicAdvCreateSync, LeReadLocalSupportedFeatures, LeReadMaxAdvDataLength, LeSetEventMask,
};
use bt_hci::cmd::{Cmd, SyncCmd};
use bt_hci::event::le::LeEvent;
use bt_hci::event::{CommandCompleteWithStatus, Event, EventPacket};
use bt_hci::param::{
    AddrKind, BdAddr, CteMask, DataStatus, Duration as HciDuration, EventMask, LeEventMask,
    LeExtAdvDataStatus, LePeriodicAdvCreateSyncOptions,
};
use bt_hci::transport::WithIndicator;
use bt_hci::{ControllerToHostPacket, FromHciBytes, ReadHci};

use crate::transport::{Link, TransportSpec};
use crate::Error;

/// How long a controller may take to complete a command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the rest of a packet may take once its first byte arrived.
const PACKET_TIMEOUT: Duration = Duration::from_secs(1);

/// What the controller supports, read at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// LE Extended Advertising (feature bit and the set commands).
    pub extended_advertising: bool,
    /// LE Set Extended Scan Parameters / Enable.
    pub extended_scanning: bool,
    /// The supported-commands mask lists the extended advertising and scanning commands.
    pub extended_commands_listed: bool,
    /// LE Periodic Advertising (LE feature bit 13).
    pub periodic_advertising: bool,
    /// The supported-commands mask lists LE Set Periodic Advertising Parameters, Data and
    /// Enable.
    pub periodic_commands_listed: bool,
    /// LE 2M PHY (LE feature bit 8).
    pub le_2m_phy: bool,
    /// LE Read Maximum Advertising Data Length: the most AdvData one extended advertising set
    /// (or periodic train) takes; 31 without extended advertising.
    pub max_adv_data_len: u16,
}

/// The legacy AdvData limit, and what a controller without LE Read Maximum Advertising Data
/// Length is assumed to take.
pub const LEGACY_ADV_DATA_MAX: u16 = 31;

impl Capabilities {
    /// What a controller offers from its LE features (`LeFeatureMask`), its supported-commands
    /// mask and its maximum advertising data length (`None`: not read).
    pub fn from_masks(
        le: &bt_hci::param::LeFeatureMask,
        cmds: &bt_hci::param::CmdMask,
        max_adv_data_len: Option<u16>,
    ) -> Self {
        // The LE feature bits decide; some controllers (Bumble's) implement the extended and
        // periodic commands without listing them in the supported-commands mask, and a
        // controller that refuses them as unknown falls back to the legacy ones (`radio`).
        let listed_adv = cmds.le_set_ext_adv_parameters_v1()
            && cmds.le_set_ext_adv_data()
            && cmds.le_set_ext_adv_enable();
        let listed_scan = cmds.le_set_ext_scan_parameters() && cmds.le_set_ext_scan_enable();
        let extended = le.supports_le_ext_adv();
        Capabilities {
            extended_advertising: extended,
            extended_scanning: extended,
            extended_commands_listed: listed_adv && listed_scan,
            periodic_advertising: extended && le.supports_le_periodic_adv(),
            periodic_commands_listed: cmds.le_set_periodic_adv_parameters_v1()
                && cmds.le_set_periodic_adv_data()
                && cmds.le_set_periodic_adv_enable(),
            le_2m_phy: le.supports_le_2m_phy(),
            max_adv_data_len: match (extended, max_adv_data_len) {
                (true, Some(n)) => n.max(LEGACY_ADV_DATA_MAX),
                _ => LEGACY_ADV_DATA_MAX,
            },
        }
    }
}

/// Something the controller reported, as the loops need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard<'a> {
    /// An undirected advertisement (any legacy or extended PDU type but scan responses),
    /// complete: its advertiser address (AdvA, as sent: least significant byte first) and its
    /// AdvData.
    Adv { addr: [u8; 6], data: &'a [u8] },
    /// LE Advertising Set Terminated.
    SetTerminated { handle: u8, status: u8 },
    /// A periodic advertising train was synchronised to (`status` 0) or could not be.
    SyncEstablished {
        status: u8,
        sync_handle: u16,
        addr: [u8; 6],
        sid: u8,
    },
    /// One periodic advertising event's AdvData on a synchronised train, complete.
    Periodic { sync_handle: u16, data: &'a [u8] },
    /// The sync to a train was lost.
    SyncLost { sync_handle: u16 },
}

/// The largest AdvData a reassembled report may grow to (the Core spec's 1,650-byte maximum
/// of one extended advertising event, with room to spare); anything longer is dropped.
const REASSEMBLY_MAX: usize = 2048;

/// A report's advertiser address as a plain array.
fn address(a: &bt_hci::param::BdAddr) -> [u8; 6] {
    let mut out = [0u8; 6];
    out.copy_from_slice(&a.raw()[..6]);
    out
}

/// An owned event packet: code, parameter length, parameters.
struct RawEvent(Vec<u8>);

impl RawEvent {
    fn parse(&self) -> Result<Event<'_>, bt_hci::FromHciBytesError> {
        Event::from_hci_bytes(&self.0).map(|(e, _)| e)
    }
}

/// A controller on an open link.
pub struct Controller {
    link: Box<dyn Link>,
    transport: String,
    /// Bytes read from the link and not yet parsed.
    rx: VecDeque<u8>,
    /// Events that arrived while waiting for a command's completion.
    queued: VecDeque<RawEvent>,
    caps: Capabilities,
    /// Extended advertising reports arriving in pieces (data status "incomplete, more data to
    /// come"), by advertiser address and SID.
    partial_ext: Vec<([u8; 6], u8, Vec<u8>)>,
    /// Periodic advertising reports arriving in pieces, by sync handle.
    partial_periodic: Vec<(u16, Vec<u8>)>,
}

/// The short name of a bt-hci command type, for messages (`LeSetExtAdvEnable`).
pub fn command_name<C>() -> &'static str {
    let full = std::any::type_name::<C>();
    full.rsplit("::").next().unwrap_or(full)
}

/// An `embedded_io` reader over the link that gives up at a deadline.
struct LinkReader<'a> {
    c: &'a mut Controller,
    deadline: Instant,
}

#[derive(Debug)]
enum ReadFail {
    Timeout,
    Io(std::io::Error),
}

impl core::fmt::Display for ReadFail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadFail::Timeout => write!(f, "timed out"),
            ReadFail::Io(e) => write!(f, "{e}"),
        }
    }
}
impl core::error::Error for ReadFail {}
impl embedded_io::Error for ReadFail {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            ReadFail::Timeout => embedded_io::ErrorKind::TimedOut,
            ReadFail::Io(_) => embedded_io::ErrorKind::Other,
        }
    }
}

impl embedded_io::ErrorType for LinkReader<'_> {
    type Error = ReadFail;
}

impl embedded_io::Read for LinkReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadFail> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.c.rx.is_empty() {
            let now = Instant::now();
            if now >= self.deadline {
                return Err(ReadFail::Timeout);
            }
            self.c.fill(self.deadline - now).map_err(ReadFail::Io)?;
        }
        let n = buf.len().min(self.c.rx.len());
        for (d, s) in buf.iter_mut().zip(self.c.rx.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }
}

impl Controller {
    /// Take over the controller on `link`: reset it, read its capabilities, enable the events
    /// the loops use. Fails with [`Error::NoAnswer`] if nothing answers the reset and
    /// [`Error::NoLe`] if the controller lacks LE.
    pub fn start(link: Box<dyn Link>, spec: &TransportSpec) -> Result<Self, Error> {
        let mut c = Controller {
            link,
            transport: spec.to_string(),
            rx: VecDeque::new(),
            queued: VecDeque::new(),
            caps: Capabilities {
                extended_advertising: false,
                extended_scanning: false,
                extended_commands_listed: false,
                periodic_advertising: false,
                periodic_commands_listed: false,
                le_2m_phy: false,
                max_adv_data_len: LEGACY_ADV_DATA_MAX,
            },
            partial_ext: Vec::new(),
            partial_periodic: Vec::new(),
        };
        c.command(&Reset::new())?;
        let features = c.command(&ReadLocalSupportedFeatures::new())?;
        if !features.supports_le() {
            return Err(Error::NoLe {
                transport: c.transport.clone(),
            });
        }
        let cmds = c.command(&ReadLocalSupportedCmds::new())?;
        let le = c.command(&LeReadLocalSupportedFeatures::new())?;
        let max_len = if le.supports_le_ext_adv() {
            // A controller that does not know the command keeps the legacy 31 bytes.
            match c.command(&LeReadMaxAdvDataLength::new()) {
                Ok(n) => Some(n),
                Err(Error::Refused { .. }) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        c.caps = Capabilities::from_masks(&le, &cmds, max_len);
        // Default events plus the LE meta event; within it the reports and set termination.
        c.command(&SetEventMask::new(
            EventMask::new()
                .enable_disconnection_complete(true)
                .enable_hardware_error(true)
                .enable_le_meta(true),
        ))?;
        c.command(&LeSetEventMask::new(
            LeEventMask::new()
                .enable_le_adv_report(true)
                .enable_le_ext_adv_report(true)
                .enable_le_adv_set_terminated(true)
                .enable_le_periodic_adv_sync_established_v1(true)
                .enable_le_periodic_adv_report_v1(true)
                .enable_le_periodic_adv_sync_lost(true),
        ))?;
        Ok(c)
    }

    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// The transport's name as given (for messages).
    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// Pretend the controller lacks extended advertising and scanning (tests, old controllers
    /// with broken support).
    pub fn force_legacy(&mut self) {
        self.caps.extended_advertising = false;
        self.caps.extended_scanning = false;
        self.caps.periodic_advertising = false;
        self.caps.max_adv_data_len = LEGACY_ADV_DATA_MAX;
    }

    /// Ask the controller to synchronise to the periodic train of the advertiser `addr`
    /// (random address, as sent) with advertising SID `sid`; [`Heard::SyncEstablished`]
    /// reports the outcome, then [`Heard::Periodic`] the train's AdvData. The sync is dropped
    /// after `timeout` without a received event.
    pub fn create_sync(&mut self, addr: [u8; 6], sid: u8, timeout: Duration) -> Result<(), Error> {
        let units = (timeout.as_millis() / 10).clamp(0x000A, 0x4000) as u16;
        self.command_with_status(&LePeriodicAdvCreateSync::new(
            LePeriodicAdvCreateSyncOptions::new(),
            sid,
            AddrKind::RANDOM,
            BdAddr::new(addr),
            0,
            HciDuration::from_u16(units),
            CteMask::new(),
        ))
    }

    /// The controller refused an extended command as unknown: use the legacy ones.
    pub(crate) fn no_extended_advertising(&mut self) {
        self.caps.extended_advertising = false;
    }

    pub(crate) fn no_extended_scanning(&mut self) {
        self.caps.extended_scanning = false;
    }

    fn io_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Closed {
                transport: self.transport.clone(),
            }
        } else {
            Error::Io {
                transport: self.transport.clone(),
                source: e,
            }
        }
    }

    /// Read whatever the link has, waiting at most `timeout`.
    fn fill(&mut self, timeout: Duration) -> std::io::Result<usize> {
        let mut buf = [0u8; 1024];
        let n = self.link.read_some(&mut buf, timeout)?;
        self.rx.extend(&buf[..n]);
        Ok(n)
    }

    /// The next event from the controller, waiting until `deadline`; other packet kinds (ACL,
    /// ISO) are skipped.
    fn read_event(&mut self, deadline: Instant) -> Result<Option<RawEvent>, Error> {
        loop {
            if self.rx.is_empty() {
                let now = Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                self.fill(deadline - now).map_err(|e| self.io_error(e))?;
                if self.rx.is_empty() {
                    continue;
                }
            }
            let mut buf = [0u8; 1100];
            let transport = self.transport.clone();
            let mut reader = LinkReader {
                c: self,
                deadline: Instant::now() + PACKET_TIMEOUT,
            };
            let packet = ControllerToHostPacket::read_hci(&mut reader, &mut buf);
            match packet {
                Ok(ControllerToHostPacket::Event(EventPacket { kind, data })) => {
                    let mut raw = Vec::with_capacity(2 + data.len());
                    raw.extend([kind.0, data.len() as u8]);
                    raw.extend_from_slice(data);
                    return Ok(Some(RawEvent(raw)));
                }
                Ok(_) => continue,
                Err(bt_hci::ReadHciError::Read(embedded_io::ReadExactError::Other(
                    ReadFail::Io(e),
                ))) => return Err(self.io_error(e)),
                Err(e) => {
                    return Err(Error::Protocol {
                        transport,
                        detail: format!(
                            "unreadable packet from the controller ({e:?}); is this an H:4 link?"
                        ),
                    })
                }
            }
        }
    }

    fn send<C: Cmd>(&mut self, cmd: &C) -> Result<(), Error> {
        let mut buf = [0u8; 300];
        let packet = WithIndicator::new(cmd);
        let len = bt_hci::transport::PacketToController::size(&packet);
        let mut w: &mut [u8] = &mut buf[..];
        bt_hci::transport::PacketToController::write_hci(&packet, &mut w).map_err(|_| {
            Error::Protocol {
                transport: self.transport.clone(),
                detail: format!("{} does not fit a command packet", command_name::<C>()),
            }
        })?;
        self.link
            .write_packet(&buf[..len])
            .map_err(|e| self.io_error(e))
    }

    /// Run a command that the controller acknowledges with Command Status (its outcome comes
    /// later as an event).
    pub fn command_with_status<C: Cmd>(&mut self, cmd: &C) -> Result<(), Error> {
        self.send(cmd)?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let Some(ev) = self.read_event(deadline)? else {
                return Err(Error::NoAnswer {
                    transport: self.transport.clone(),
                    command: command_name::<C>(),
                    waited: COMMAND_TIMEOUT,
                });
            };
            let status = match ev.parse() {
                Ok(Event::CommandStatus(cs)) if cs.cmd_opcode == C::OPCODE => {
                    cs.status.into_inner()
                }
                // Command Complete for it means an error (a controller answering so).
                Ok(Event::CommandComplete(cc)) if cc.cmd_opcode == C::OPCODE => {
                    CommandCompleteWithStatus::try_from(cc)
                        .map(|w| w.status.into_inner())
                        .unwrap_or(0xFF)
                }
                _ => {
                    self.queued.push_back(ev);
                    continue;
                }
            };
            if status != 0 {
                return Err(Error::Refused {
                    transport: self.transport.clone(),
                    command: command_name::<C>(),
                    status,
                });
            }
            return Ok(());
        }
    }

    /// Run a command that completes with Command Complete; returns its return parameters.
    pub fn command<C: SyncCmd>(&mut self, cmd: &C) -> Result<C::Return, Error> {
        self.send(cmd)?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let Some(ev) = self.read_event(deadline)? else {
                return Err(Error::NoAnswer {
                    transport: self.transport.clone(),
                    command: command_name::<C>(),
                    waited: COMMAND_TIMEOUT,
                });
            };
            match ev.parse() {
                Ok(Event::CommandComplete(cc)) if cc.cmd_opcode == C::OPCODE => {
                    let refused = |status: u8| Error::Refused {
                        transport: self.transport.clone(),
                        command: command_name::<C>(),
                        status,
                    };
                    let with =
                        CommandCompleteWithStatus::try_from(cc).map_err(|_| refused(0xFF))?;
                    if with.status.into_inner() != 0 {
                        return Err(refused(with.status.into_inner()));
                    }
                    return with.return_params::<C>().map_err(|e| Error::Protocol {
                        transport: self.transport.clone(),
                        detail: format!(
                            "malformed return parameters for {}: {e:?}",
                            command_name::<C>()
                        ),
                    });
                }
                Ok(Event::CommandStatus(cs)) if cs.cmd_opcode == C::OPCODE => {
                    return Err(Error::Refused {
                        transport: self.transport.clone(),
                        command: command_name::<C>(),
                        status: cs.status.into_inner(),
                    });
                }
                _ => self.queued.push_back(ev),
            }
        }
    }

    /// Hand everything the controller reports to `on_heard` until `deadline`.
    pub fn pump(
        &mut self,
        deadline: Instant,
        on_heard: &mut dyn FnMut(Heard<'_>),
    ) -> Result<(), Error> {
        loop {
            let ev = match self.queued.pop_front() {
                Some(ev) => ev,
                None => match self.read_event(deadline)? {
                    Some(ev) => ev,
                    None => return Ok(()),
                },
            };
            self.dispatch(&ev, on_heard)?;
        }
    }

    fn dispatch(
        &mut self,
        ev: &RawEvent,
        on_heard: &mut dyn FnMut(Heard<'_>),
    ) -> Result<(), Error> {
        // Events bt-hci cannot parse are none of ours: skip them.
        let Ok(event) = ev.parse() else {
            return Ok(());
        };
        match event {
            Event::Le(LeEvent::LeAdvertisingReport(r)) => {
                for report in r.reports.iter().flatten() {
                    use bt_hci::param::LeAdvEventKind as K;
                    if matches!(
                        report.event_kind,
                        K::AdvInd | K::AdvScanInd | K::AdvNonconnInd
                    ) {
                        on_heard(Heard::Adv {
                            addr: address(&report.addr),
                            data: report.data,
                        });
                    }
                }
            }
            Event::Le(LeEvent::LeExtendedAdvertisingReport(r)) => {
                for report in r.reports.iter().flatten() {
                    let k = report.event_kind;
                    if k.scan_response() || k.directed() {
                        continue;
                    }
                    let addr = address(&report.addr);
                    let key = (addr, report.adv_sid);
                    let at = self
                        .partial_ext
                        .iter()
                        .position(|(a, s, _)| (*a, *s) == key);
                    match k.data_status() {
                        // Whole in one report (the usual case up to 229 bytes).
                        LeExtAdvDataStatus::Complete if at.is_none() => {
                            on_heard(Heard::Adv {
                                addr,
                                data: report.data,
                            });
                        }
                        // The last piece of a report that came in pieces.
                        LeExtAdvDataStatus::Complete => {
                            let (_, _, mut whole) = self.partial_ext.swap_remove(at.unwrap_or(0));
                            whole.extend_from_slice(report.data);
                            if whole.len() <= REASSEMBLY_MAX {
                                on_heard(Heard::Adv { addr, data: &whole });
                            }
                        }
                        LeExtAdvDataStatus::IncompleteMoreExpected => match at {
                            Some(i) => self.partial_ext[i].2.extend_from_slice(report.data),
                            None => self.partial_ext.push((key.0, key.1, report.data.to_vec())),
                        },
                        // Truncated (the controller lost the chain) or reserved: drop it.
                        _ => {
                            if let Some(i) = at {
                                self.partial_ext.swap_remove(i);
                            }
                        }
                    }
                    if let Some(i) = self
                        .partial_ext
                        .iter()
                        .position(|(_, _, d)| d.len() > REASSEMBLY_MAX)
                    {
                        self.partial_ext.swap_remove(i);
                    }
                }
            }
            Event::Le(LeEvent::LePeriodicAdvertisingSyncEstablished(e)) => {
                on_heard(Heard::SyncEstablished {
                    status: e.status.into_inner(),
                    sync_handle: e.sync_handle.into_inner(),
                    addr: address(&e.adv_addr),
                    sid: e.adv_sid,
                });
            }
            Event::Le(LeEvent::LePeriodicAdvertisingReport(r)) => {
                let handle = r.sync_handle.into_inner();
                let at = self.partial_periodic.iter().position(|(h, _)| *h == handle);
                match (r.data_status, at) {
                    (DataStatus::Complete, None) => on_heard(Heard::Periodic {
                        sync_handle: handle,
                        data: r.data,
                    }),
                    (DataStatus::Complete, Some(i)) => {
                        let (_, mut whole) = self.partial_periodic.swap_remove(i);
                        whole.extend_from_slice(r.data);
                        if whole.len() <= REASSEMBLY_MAX {
                            on_heard(Heard::Periodic {
                                sync_handle: handle,
                                data: &whole,
                            });
                        }
                    }
                    (DataStatus::Incomplete, Some(i)) => {
                        self.partial_periodic[i].1.extend_from_slice(r.data);
                        if self.partial_periodic[i].1.len() > REASSEMBLY_MAX {
                            self.partial_periodic.swap_remove(i);
                        }
                    }
                    (DataStatus::Incomplete, None) => {
                        self.partial_periodic.push((handle, r.data.to_vec()))
                    }
                    (_, Some(i)) => {
                        self.partial_periodic.swap_remove(i);
                    }
                    (_, None) => {}
                }
            }
            Event::Le(LeEvent::LePeriodicAdvertisingSyncLost(e)) => {
                let handle = e.sync_handle.into_inner();
                self.partial_periodic.retain(|(h, _)| *h != handle);
                on_heard(Heard::SyncLost {
                    sync_handle: handle,
                });
            }
            Event::Le(LeEvent::LeAdvertisingSetTerminated(t)) => {
                on_heard(Heard::SetTerminated {
                    handle: t.adv_handle.into_inner(),
                    status: t.status.into_inner(),
                });
            }
            Event::HardwareError(e) => {
                return Err(Error::Protocol {
                    transport: self.transport.clone(),
                    detail: format!(
                        "the controller reported hardware error {:#04x}",
                        e.hardware_code
                    ),
                })
            }
            _ => {}
        }
        Ok(())
    }
}
