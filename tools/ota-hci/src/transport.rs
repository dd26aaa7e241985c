//! The byte links to a controller: H:4 over TCP, H:4 over a UART with RTS/CTS, and on Linux the
//! kernel's HCI user channel (one H:4-framed packet per read and write).
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Error;

/// How long opening a TCP connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// UART speed when `serial:DEVICE` names none (Zephyr's `hci_uart` default).
pub const DEFAULT_BAUD: u32 = 1_000_000;

/// Where the controller is, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportSpec {
    /// `tcp:HOST:PORT`: H:4 over TCP (Bumble's `tcp-server`, an HCI bridge).
    Tcp { host: String, port: u16 },
    /// `serial:DEVICE[:BAUD]`: H:4 over a UART with hardware flow control.
    Serial { device: String, baud: u32 },
    /// `hciN` or `hci:N`: a Linux adapter through the HCI user channel.
    UserChannel { index: u16 },
}

impl std::str::FromStr for TransportSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::BadTransport {
            spec: s.to_string(),
            why: why.to_string(),
        };
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("expected tcp:HOST:PORT"))?;
            let port = port
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number 0-65535"))?;
            if host.is_empty() {
                return Err(bad("expected tcp:HOST:PORT"));
            }
            return Ok(TransportSpec::Tcp {
                host: host.trim_start_matches('[').trim_end_matches(']').into(),
                port,
            });
        }
        if let Some(rest) = s.strip_prefix("serial:") {
            // A device path has no colon on Unix; on Windows `COM3` has none either.
            let (device, baud) = match rest.rsplit_once(':') {
                Some((d, b)) if b.chars().all(|c| c.is_ascii_digit()) && !b.is_empty() => (
                    d,
                    b.parse::<u32>()
                        .map_err(|_| bad("the baud rate is not a number"))?,
                ),
                _ => (rest, DEFAULT_BAUD),
            };
            if device.is_empty() {
                return Err(bad("expected serial:DEVICE[:BAUD]"));
            }
            return Ok(TransportSpec::Serial {
                device: device.into(),
                baud,
            });
        }
        let index = s
            .strip_prefix("hci:")
            .or_else(|| s.strip_prefix("hci"))
            .ok_or_else(|| bad("expected tcp:HOST:PORT, serial:DEVICE[:BAUD], hciN or hci:N"))?;
        let index = index
            .parse::<u16>()
            .map_err(|_| bad("expected an adapter number, as in hci0 or hci:0"))?;
        Ok(TransportSpec::UserChannel { index })
    }
}

impl std::fmt::Display for TransportSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportSpec::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            TransportSpec::Serial { device, baud } => write!(f, "serial:{device}:{baud}"),
            TransportSpec::UserChannel { index } => write!(f, "hci{index}"),
        }
    }
}

/// An open byte link to a controller.
pub trait Link: Send {
    /// Read what is available, waiting at most `timeout`; `Ok(0)` when nothing came. A closed
    /// link is an error of kind `UnexpectedEof`.
    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// Write one whole H:4 packet.
    fn write_packet(&mut self, packet: &[u8]) -> io::Result<()>;
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the link closed")
}

/// Open the link `spec` names.
pub fn open(spec: &TransportSpec) -> Result<Box<dyn Link>, Error> {
    let fail = |source: io::Error| Error::Open {
        transport: spec.to_string(),
        source,
    };
    match spec {
        TransportSpec::Tcp { host, port } => {
            let addrs: Vec<_> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(fail)?
                .collect();
            let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
            for addr in addrs {
                match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                    Ok(s) => {
                        s.set_nodelay(true).map_err(fail)?;
                        return Ok(Box::new(TcpLink(s)));
                    }
                    Err(e) => last = e,
                }
            }
            Err(fail(last))
        }
        TransportSpec::Serial { device, baud } => {
            let port = serialport::new(device, *baud)
                .flow_control(serialport::FlowControl::Hardware)
                .timeout(Duration::from_millis(10))
                .open()
                .map_err(|e| fail(io::Error::other(e.to_string())))?;
            Ok(Box::new(SerialLink(port)))
        }
        TransportSpec::UserChannel { index } => user_channel::open(*index).map_err(fail),
    }
}

/// A read that ran out of time or was interrupted read nothing yet: `Ok(0)`, not an error.
fn nothing_yet(read: io::Result<usize>) -> io::Result<usize> {
    match read {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(0)
        }
        other => other,
    }
}

struct TcpLink(TcpStream);

impl Link for TcpLink {
    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.0
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.0.read(buf) {
            // A TCP read of 0 bytes is the peer closing the connection.
            Ok(0) => Err(closed()),
            read => nothing_yet(read),
        }
    }
    fn write_packet(&mut self, packet: &[u8]) -> io::Result<()> {
        self.0.write_all(packet)
    }
}

struct SerialLink(Box<dyn serialport::SerialPort>);

impl Link for SerialLink {
    fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.0
            .set_timeout(timeout.max(Duration::from_millis(1)))
            .map_err(|e| io::Error::other(e.to_string()))?;
        // A serial read of 0 bytes is only a quiet line.
        nothing_yet(self.0.read(buf))
    }
    fn write_packet(&mut self, packet: &[u8]) -> io::Result<()> {
        self.0.write_all(packet)?;
        self.0.flush()
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod user_channel {
    //! The HCI user channel: a raw Bluetooth socket bound to one adapter with
    //! `HCI_CHANNEL_USER`, which gives this process the adapter exclusively (BlueZ must have it
    //! powered down) and passes H:4 packets unchanged. Needs CAP_NET_ADMIN.
    use super::Link;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::time::Duration;

    const BTPROTO_HCI: libc::c_int = 1;
    const HCI_CHANNEL_USER: u16 = 1;

    /// `struct sockaddr_hci` from BlueZ's `hci.h`.
    #[repr(C)]
    struct SockaddrHci {
        hci_family: libc::sa_family_t,
        hci_dev: u16,
        hci_channel: u16,
    }

    pub struct UserChannel(OwnedFd);

    pub fn open(index: u16) -> io::Result<Box<dyn Link>> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_BLUETOOTH,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                BTPROTO_HCI,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let addr = SockaddrHci {
            hci_family: libc::AF_BLUETOOTH as libc::sa_family_t,
            hci_dev: index,
            hci_channel: HCI_CHANNEL_USER,
        };
        // SAFETY: `addr` is a valid `sockaddr_hci` that outlives the call, and the length
        // passed is its size.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const SockaddrHci as *const libc::sockaddr,
                std::mem::size_of::<SockaddrHci>() as libc::socklen_t,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            let hint = match e.raw_os_error() {
                Some(libc::EBUSY) => " (the adapter is up in BlueZ: `sudo btmgmt --index N power off` or `sudo hciconfig hciN down`)",
                Some(libc::EPERM) | Some(libc::EACCES) => " (needs CAP_NET_ADMIN: run as root or `sudo setcap cap_net_admin+ep` on the binary)",
                Some(libc::ENODEV) => " (no such adapter: see `btmgmt info`)",
                _ => "",
            };
            return Err(io::Error::new(e.kind(), format!("{e}{hint}")));
        }
        Ok(Box::new(UserChannel(fd)))
    }

    impl Link for UserChannel {
        fn read_some(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: one valid pollfd, count 1.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                return if e.kind() == io::ErrorKind::Interrupted {
                    Ok(0)
                } else {
                    Err(e)
                };
            }
            if r == 0 {
                return Ok(0);
            }
            if pfd.revents & (libc::POLLHUP | libc::POLLERR) != 0 && pfd.revents & libc::POLLIN == 0
            {
                return Err(super::closed());
            }
            // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
            let n = unsafe {
                libc::read(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                )
            };
            match n {
                n if n < 0 => Err(io::Error::last_os_error()),
                0 => Err(super::closed()),
                n => Ok(n as usize),
            }
        }

        fn write_packet(&mut self, packet: &[u8]) -> io::Result<()> {
            // SAFETY: `packet` is valid for `packet.len()` bytes of reads.
            let n = unsafe {
                libc::write(
                    self.0.as_raw_fd(),
                    packet.as_ptr() as *const libc::c_void,
                    packet.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n as usize != packet.len() {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "short write to the HCI socket",
                ));
            }
            Ok(())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod user_channel {
    use super::Link;
    use std::io;
    pub fn open(_index: u16) -> io::Result<Box<dyn Link>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the HCI user channel exists on Linux only; use serial: or tcp:",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!(
            "tcp:127.0.0.1:9000".parse::<TransportSpec>().unwrap(),
            TransportSpec::Tcp {
                host: "127.0.0.1".into(),
                port: 9000
            }
        );
        assert_eq!(
            "serial:/dev/ttyACM0".parse::<TransportSpec>().unwrap(),
            TransportSpec::Serial {
                device: "/dev/ttyACM0".into(),
                baud: DEFAULT_BAUD
            }
        );
        assert_eq!(
            "serial:/dev/ttyACM0:115200"
                .parse::<TransportSpec>()
                .unwrap(),
            TransportSpec::Serial {
                device: "/dev/ttyACM0".into(),
                baud: 115_200
            }
        );
        assert_eq!(
            "hci0".parse::<TransportSpec>().unwrap(),
            TransportSpec::UserChannel { index: 0 }
        );
        assert_eq!(
            "hci:2".parse::<TransportSpec>().unwrap(),
            TransportSpec::UserChannel { index: 2 }
        );
        for bad in ["tcp:1234", "tcp::99999", "usb:0", "hcix", "serial:"] {
            let e = bad.parse::<TransportSpec>().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
