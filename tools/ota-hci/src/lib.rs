//! Standard HCI for tock-ota's host side: the links to a Bluetooth controller (H:4 over TCP,
//! H:4 over a UART, the Linux HCI user channel), the controller's commands and events (typed and
//! framed by `bt-hci`), and the adv-transfer send and receive loops over them
//! (`docs/hci.md`).
//!
//! Unsafe code is confined to the Linux user-channel socket calls in [`transport`].
#![deny(unsafe_code)]

pub mod bearer;
pub mod hci;
pub mod radio;
pub mod receive;
pub mod send;
pub mod transport;

use std::time::Duration;

pub use adv_transfer::RxState;
pub use bearer::{Bearer, BearerChoice, Phy};
pub use hci::{Capabilities, Controller};
pub use radio::{AdvParams, AdvType, BearerParams};
pub use receive::{receive, ReceiveOptions, ReceiveProgress, ReceiveReport, Staging};
pub use send::{app_sender, send, send_app, send_delta, SendOptions, SendProgress, SendReport};
pub use transport::TransportSpec;

/// Open the transport `spec` names and take over the controller behind it.
pub fn connect(spec: &TransportSpec) -> Result<Controller, Error> {
    let link = transport::open(spec)?;
    Controller::start(link, spec)
}

/// A controller status code's name (Bluetooth Core, Vol 1, Part F), as bt-hci spells it.
pub fn status_name(status: u8) -> String {
    match std::num::NonZeroU8::new(status) {
        None => "Success".into(),
        Some(_) => format!("{:?}", bt_hci::param::Status::new(status)),
    }
}

/// Why a send or receive stopped; every message names what to check.
#[derive(Debug)]
pub enum Error {
    /// The transport string does not parse.
    BadTransport { spec: String, why: String },
    /// The link could not be opened.
    Open {
        transport: String,
        source: std::io::Error,
    },
    /// Nothing answered a command in time.
    NoAnswer {
        transport: String,
        command: &'static str,
        waited: Duration,
    },
    /// The controller answered a command with an error status.
    Refused {
        transport: String,
        command: &'static str,
        status: u8,
    },
    /// The controller does not support Bluetooth LE.
    NoLe { transport: String },
    /// The controller lacks what the requested bearer needs.
    BearerUnsupported {
        transport: String,
        bearer: &'static str,
        missing: &'static str,
    },
    /// AdvData longer than the bearer carries in one event.
    AdvDataTooLong {
        bearer: &'static str,
        len: usize,
        max: usize,
    },
    /// The link closed.
    Closed { transport: String },
    /// The link closed while an image was being sent.
    ClosedMidSend { transport: String },
    /// The link failed.
    Io {
        transport: String,
        source: std::io::Error,
    },
    /// The controller sent something that is not HCI.
    Protocol { transport: String, detail: String },
    /// The image cannot be sent.
    Image(String),
    /// The receiver's status refused the image.
    ReceiverRefused { state: RxState },
    /// The receiver refused a delta patch: it runs another image than the patch's base (its
    /// id, `None` when it cannot tell).
    WrongBase { running: Option<[u8; 16]> },
    /// No status advertisement from a receiver.
    NoReceiver { transport: String, waited: Duration },
    /// No advertisement of a transfer heard.
    NoSender { transport: String, waited: Duration },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::BadTransport { spec, why } => write!(
                f,
                "bad transport `{spec}`: {why} (tcp:HOST:PORT, serial:DEVICE[:BAUD], hciN or hci:N)"
            ),
            Error::Open { transport, source } => {
                write!(f, "cannot open {transport}: {source}")
            }
            Error::NoAnswer {
                transport,
                command,
                waited,
            } => write!(
                f,
                "no controller answering on {transport}: {command} got no reply within {:.1} s \
                 (is it an HCI controller speaking H:4, at the right speed?)",
                waited.as_secs_f64()
            ),
            Error::Refused {
                transport,
                command,
                status,
            } => write!(
                f,
                "the controller on {transport} refused {command}: HCI status {status:#04x} ({})",
                status_name(*status)
            ),
            Error::NoLe { transport } => write!(
                f,
                "the controller on {transport} does not support Bluetooth LE"
            ),
            Error::BearerUnsupported {
                transport,
                bearer,
                missing,
            } => write!(
                f,
                "the controller on {transport} cannot send on the {bearer} bearer: it lacks \
                 {missing} (try --bearer auto, which takes the best it has)"
            ),
            Error::AdvDataTooLong { bearer, len, max } => write!(
                f,
                "{len} bytes of advertising data do not fit the {bearer} bearer ({max} at most \
                 on this controller)"
            ),
            Error::Closed { transport } => {
                write!(f, "the link to the controller on {transport} closed")
            }
            Error::ClosedMidSend { transport } => write!(
                f,
                "the link to the controller on {transport} closed mid-transfer; run the same \
                 `tock-ota send` again to resume (the receiver keeps what it has)"
            ),
            Error::Io { transport, source } => write!(f, "{transport}: {source}"),
            Error::Protocol { transport, detail } => write!(f, "{transport}: {detail}"),
            Error::Image(why) => write!(f, "{why}"),
            Error::ReceiverRefused { state } => write!(
                f,
                "the receiver refused the image: {}",
                match state {
                    RxState::Unsupported => "it lacks a capability the image needs",
                    RxState::TooLarge => "the image does not fit its staging slot",
                    RxState::Rejected =>
                        "the staged image failed its final check (finalize or app install)",
                    RxState::VersionMismatch =>
                        "it speaks another version of the transfer protocol (update one side)",
                    _ => "unknown reason",
                }
            ),
            Error::WrongBase { running: Some(id) } => write!(
                f,
                "the receiver runs image {}…, not the patch's base",
                id[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            ),
            Error::WrongBase { running: None } => write!(
                f,
                "the receiver cannot tell which image it runs, so it takes no patch"
            ),
            Error::NoReceiver { transport, waited } => write!(
                f,
                "no status from a receiver for {:.0} s (sending through {transport}); is the DFU \
                 app running and in range?",
                waited.as_secs_f64()
            ),
            Error::NoSender { transport, waited } => write!(
                f,
                "nothing of a transfer heard for {:.0} s (listening through {transport})",
                waited.as_secs_f64()
            ),
        }
    }
}

/// The messages above already include the underlying I/O error, so no `source` is given (a
/// chain printer would repeat it).
impl std::error::Error for Error {}
