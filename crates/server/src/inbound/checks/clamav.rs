//! A client of ClamAV's scanning daemon, clamd: it streams a message to clamd's `INSTREAM`
//! command and says whether clamd found a signature in it. The inbound checks call it before
//! the spool commit, so a virus is refused as a reply to DATA.
//!
//! The protocol is clamd(8)'s "COMMANDS": a command prefixed with `z` and ended by a NUL is
//! answered by one NUL-terminated reply. `INSTREAM` is followed by chunks, each a 4-byte
//! big-endian length and that many octets, ended by a chunk of length zero; clamd replies
//! `stream: OK`, `stream: <signature> FOUND` or `... ERROR`, and when the stream passes its
//! `StreamMaxLength` it replies `INSTREAM size limit exceeded. ERROR` and closes the
//! connection. Every call opens its own connection, so one slow scan holds up no other.

use std::fmt;
use std::io;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

/// The most data sent in one `INSTREAM` chunk: large enough that the 4-byte headers cost
/// nothing, small enough that a scan holds little memory however large the message.
const CHUNK: usize = 64 * 1024;

/// The longest reply read from clamd. Real replies are a signature name and a few words;
/// anything longer is not clamd, and reading on would let the peer choose our memory.
const MAX_REPLY: usize = 4096;

/// The reply clamd gives when a stream passes its `StreamMaxLength` (clamd(8), INSTREAM).
const SIZE_LIMIT_REPLY: &str = "INSTREAM size limit exceeded. ERROR";

/// Where clamd listens, as written in the configuration: `unix:/run/clamav/clamd.ctl` or
/// `/run/clamav/clamd.ctl` for its `LocalSocket`; `127.0.0.1:3310`, `[::1]:3310` or
/// `clamav.internal:3310` for its `TCPSocket`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClamdAddress {
    /// A Unix socket (clamd's `LocalSocket`), always an absolute path.
    Unix(PathBuf),
    /// A TCP address (clamd's `TCPSocket` and `TCPAddr`): a host name or an IP address (an
    /// IPv6 address without its brackets), resolved at every connection, and a port.
    Tcp { host: String, port: u16 },
}

/// Why a configured clamd address was refused; each names the value as written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("clamd address {0:?}: a Unix socket path must be absolute")]
    RelativePath(String),
    #[error(
        "clamd address {0:?}: expected unix:/path, /path, host:port or [IPv6]:port (no port found)"
    )]
    MissingPort(String),
    #[error("clamd address {0:?}: the port must be a number from 1 to 65535")]
    BadPort(String),
    #[error("clamd address {0:?}: an IPv6 address needs brackets, as in [::1]:3310")]
    UnbracketedIpv6(String),
    #[error("clamd address {address:?}: {host:?} is not a host name or an IP address")]
    BadHost { address: String, host: String },
}

impl FromStr for ClamdAddress {
    type Err = AddressError;

    fn from_str(value: &str) -> Result<Self, AddressError> {
        if let Some(path) = value.strip_prefix("unix:") {
            return if path.starts_with('/') {
                Ok(ClamdAddress::Unix(PathBuf::from(path)))
            } else {
                Err(AddressError::RelativePath(value.to_string()))
            };
        }
        if value.starts_with('/') {
            return Ok(ClamdAddress::Unix(PathBuf::from(value)));
        }
        let (host, port) = split_host_port(value)?;
        let port = match port.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(AddressError::BadPort(value.to_string())),
        };
        Ok(ClamdAddress::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

/// Splits `host:port` or `[IPv6]:port`, checking the host but not yet the port.
fn split_host_port(value: &str) -> Result<(&str, &str), AddressError> {
    let bad_host = |host: &str| AddressError::BadHost {
        address: value.to_string(),
        host: host.to_string(),
    };
    if let Some(bracketed) = value.strip_prefix('[') {
        let Some((host, port)) = bracketed.split_once("]:") else {
            return Err(AddressError::MissingPort(value.to_string()));
        };
        return match host.parse::<Ipv6Addr>() {
            Ok(_) => Ok((host, port)),
            Err(_) => Err(bad_host(host)),
        };
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(AddressError::MissingPort(value.to_string()));
    };
    if host.contains(':') {
        return Err(AddressError::UnbracketedIpv6(value.to_string()));
    }
    // Host names (RFC 1123 section 2.1) and IPv4 addresses use only these characters.
    let is_name = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if is_name {
        Ok((host, port))
    } else {
        Err(bad_host(host))
    }
}

impl fmt::Display for ClamdAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            ClamdAddress::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            ClamdAddress::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// clamd's verdict on a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scan {
    /// `stream: OK`: no signature matched.
    Clean,
    /// `stream: <signature> FOUND`: the name of the signature that matched, as clamd gave it
    /// (signatures from unofficial databases end in `.UNOFFICIAL`).
    Virus(String),
}

/// Why a scan or ping gave no verdict. The caller decides what that means for the message
/// (typically a temporary refusal, so the client tries again later).
#[derive(Debug, thiserror::Error)]
pub enum ClamdError {
    #[error("cannot connect to clamd: {0}")]
    Connect(io::Error),
    #[error("clamd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the message is larger than clamd accepts (its StreamMaxLength)")]
    SizeLimit,
    /// clamd understood the request but could not scan (`... ERROR`), for example when it
    /// could not write its temporary file.
    #[error("clamd could not scan: {reply:?}")]
    Failed { reply: String },
    /// A reply that is not one clamd gives, or longer than [`MAX_REPLY`] (then cut there).
    #[error("clamd's reply is not understood: {reply:?}")]
    Protocol { reply: String },
    /// The connection broke after it was made.
    #[error("the connection to clamd failed: {0}")]
    Io(io::Error),
    /// Reading the message to scan failed (our side, not clamd's).
    #[error("cannot read the message to scan: {0}")]
    Content(io::Error),
}

/// A clamd to ask, with the time each request may take in all: connecting, sending the
/// message and waiting for the verdict.
#[derive(Clone, Debug)]
pub struct Clamd {
    address: ClamdAddress,
    timeout: Duration,
}

impl Clamd {
    pub fn new(address: ClamdAddress, timeout: Duration) -> Clamd {
        Clamd { address, timeout }
    }

    pub fn address(&self) -> &ClamdAddress {
        &self.address
    }

    /// Streams `content` to clamd (`zINSTREAM`) in chunks of at most 64 KiB and returns its
    /// verdict. Never holds more than one chunk of the content in memory.
    pub async fn scan(&self, content: impl AsyncRead) -> Result<Scan, ClamdError> {
        self.bounded(async {
            let mut connection = connect(&self.address).await?;
            instream(&mut connection, content).await
        })
        .await
    }

    /// Asks clamd whether it is there (`zPING`, answered `PONG`): a start-up check that the
    /// configured address is right and clamd has loaded its signatures.
    pub async fn ping(&self) -> Result<(), ClamdError> {
        self.bounded(async {
            let mut connection = connect(&self.address).await?;
            connection
                .write_all(b"zPING\0")
                .await
                .map_err(ClamdError::Io)?;
            match read_reply(&mut connection).await?.as_str() {
                "PONG" => Ok(()),
                other => Err(ClamdError::Protocol {
                    reply: other.to_string(),
                }),
            }
        })
        .await
    }

    /// Runs `request` within the timeout.
    async fn bounded<T>(
        &self,
        request: impl Future<Output = Result<T, ClamdError>>,
    ) -> Result<T, ClamdError> {
        tokio::time::timeout(self.timeout, request)
            .await
            .unwrap_or(Err(ClamdError::Timeout(self.timeout)))
    }
}

/// A connection to clamd over either kind of socket.
type Connection = Either<UnixStream, TcpStream>;

async fn connect(address: &ClamdAddress) -> Result<Connection, ClamdError> {
    let connection = match address {
        ClamdAddress::Unix(path) => UnixStream::connect(path).await.map(Either::Left),
        ClamdAddress::Tcp { host, port } => {
            TcpStream::connect((host.as_str(), *port))
                .await
                .and_then(|stream| {
                    // The last chunk is 4 octets; Nagle's algorithm would hold it back until
                    // the previous chunk is acknowledged, adding a delayed ACK to every scan.
                    stream.set_nodelay(true)?;
                    Ok(Either::Right(stream))
                })
        }
    };
    connection.map_err(ClamdError::Connect)
}

/// Sends `zINSTREAM` and the content, and reads the verdict.
async fn instream(
    connection: &mut (impl AsyncRead + AsyncWrite + Unpin),
    content: impl AsyncRead,
) -> Result<Scan, ClamdError> {
    connection
        .write_all(b"zINSTREAM\0")
        .await
        .map_err(ClamdError::Io)?;
    if let Err(failure) = send_chunks(connection, content).await {
        let ClamdError::Io(sending) = failure else {
            return Err(failure);
        };
        // clamd closes the connection once the stream passes its StreamMaxLength, so the
        // write fails; its reply, already sent, says why.
        return match read_reply(connection).await {
            Ok(reply) => parse_scan_reply(&reply),
            Err(_) => Err(ClamdError::Io(sending)),
        };
    }
    parse_scan_reply(&read_reply(connection).await?)
}

/// Sends `content` as `INSTREAM` chunks, each `<length as u32, big-endian><data>`, then the
/// zero-length chunk that ends the stream.
async fn send_chunks(
    connection: &mut (impl AsyncWrite + Unpin),
    content: impl AsyncRead,
) -> Result<(), ClamdError> {
    let mut content = std::pin::pin!(content);
    // The length goes in front of the data in the same buffer: one write per chunk.
    let mut buffer = vec![0u8; 4 + CHUNK];
    loop {
        let read = content
            .read(&mut buffer[4..])
            .await
            .map_err(ClamdError::Content)?;
        // `read` is at most CHUNK, far below u32::MAX.
        buffer[..4].copy_from_slice(&(read as u32).to_be_bytes());
        connection
            .write_all(&buffer[..4 + read])
            .await
            .map_err(ClamdError::Io)?;
        if read == 0 {
            return connection.flush().await.map_err(ClamdError::Io);
        }
    }
}

/// Reads one NUL-terminated reply, at most [`MAX_REPLY`] octets, without its NUL.
async fn read_reply(connection: &mut (impl AsyncRead + Unpin)) -> Result<String, ClamdError> {
    let mut reply = Vec::new();
    let limit = (MAX_REPLY + 1) as u64;
    BufReader::new(connection.take(limit))
        .read_until(b'\0', &mut reply)
        .await
        .map_err(ClamdError::Io)?;
    if let Some(text) = reply.strip_suffix(b"\0") {
        return Ok(String::from_utf8_lossy(text).into_owned());
    }
    if reply.is_empty() {
        return Err(ClamdError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "clamd closed the connection without replying",
        )));
    }
    // Too long, or cut short by the end of the connection.
    reply.truncate(MAX_REPLY);
    Err(ClamdError::Protocol {
        reply: String::from_utf8_lossy(&reply).into_owned(),
    })
}

/// Reads clamd's reply to `INSTREAM` (without its NUL).
fn parse_scan_reply(reply: &str) -> Result<Scan, ClamdError> {
    if reply == SIZE_LIMIT_REPLY {
        return Err(ClamdError::SizeLimit);
    }
    let verdict = reply.strip_prefix("stream: ");
    if verdict == Some("OK") {
        return Ok(Scan::Clean);
    }
    if let Some(signature) = verdict.and_then(|v| v.strip_suffix(" FOUND"))
        && !signature.trim().is_empty()
    {
        return Ok(Scan::Virus(signature.to_string()));
    }
    if reply.ends_with(" ERROR") {
        return Err(ClamdError::Failed {
            reply: reply.to_string(),
        });
    }
    Err(ClamdError::Protocol {
        reply: reply.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(value: &str) -> Result<ClamdAddress, AddressError> {
        value.parse()
    }

    #[test]
    fn unix_addresses() {
        let expected = ClamdAddress::Unix(PathBuf::from("/run/clamav/clamd.ctl"));
        assert_eq!(address("unix:/run/clamav/clamd.ctl"), Ok(expected.clone()));
        assert_eq!(address("/run/clamav/clamd.ctl"), Ok(expected.clone()));
        assert_eq!(expected.to_string(), "unix:/run/clamav/clamd.ctl");
        assert_eq!(
            address("unix:clamd.ctl"),
            Err(AddressError::RelativePath("unix:clamd.ctl".into()))
        );
        assert_eq!(
            address("unix:"),
            Err(AddressError::RelativePath("unix:".into()))
        );
    }

    #[test]
    fn tcp_addresses() {
        let tcp = |host: &str, port| ClamdAddress::Tcp {
            host: host.into(),
            port,
        };
        for (value, expected) in [
            ("127.0.0.1:3310", tcp("127.0.0.1", 3310)),
            ("[::1]:3310", tcp("::1", 3310)),
            ("clamav.internal:1", tcp("clamav.internal", 1)),
            ("localhost:65535", tcp("localhost", 65535)),
        ] {
            assert_eq!(address(value), Ok(expected.clone()), "{value}");
            assert_eq!(expected.to_string(), value, "{value} written back");
        }
    }

    #[test]
    fn bad_addresses_name_the_value() {
        let cases = [
            ("clamd", AddressError::MissingPort("clamd".into())),
            ("[::1]", AddressError::MissingPort("[::1]".into())),
            ("host:", AddressError::BadPort("host:".into())),
            ("host:0", AddressError::BadPort("host:0".into())),
            ("host:65536", AddressError::BadPort("host:65536".into())),
            ("host:33 10", AddressError::BadPort("host:33 10".into())),
            ("::1:3310", AddressError::UnbracketedIpv6("::1:3310".into())),
            (
                ":3310",
                AddressError::BadHost {
                    address: ":3310".into(),
                    host: "".into(),
                },
            ),
            (
                "[clamav]:3310",
                AddressError::BadHost {
                    address: "[clamav]:3310".into(),
                    host: "clamav".into(),
                },
            ),
            (
                "clam av:3310",
                AddressError::BadHost {
                    address: "clam av:3310".into(),
                    host: "clam av".into(),
                },
            ),
        ];
        for (value, expected) in cases {
            let error = address(value).expect_err(value);
            assert!(error.to_string().contains(&format!("{value:?}")), "{error}");
            assert_eq!(error, expected, "{value}");
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(parse_scan_reply("stream: OK").unwrap(), Scan::Clean);
        assert_eq!(
            parse_scan_reply("stream: Eicar-Test-Signature FOUND").unwrap(),
            Scan::Virus("Eicar-Test-Signature".into())
        );
        // Names are the database's to choose; only the last word is the verdict.
        assert_eq!(
            parse_scan_reply("stream: Our Own Test Signature FOUND").unwrap(),
            Scan::Virus("Our Own Test Signature".into())
        );
        assert_eq!(
            parse_scan_reply("stream: Trojan.FOUND FOUND").unwrap(),
            Scan::Virus("Trojan.FOUND".into())
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            parse_scan_reply("INSTREAM size limit exceeded. ERROR"),
            Err(ClamdError::SizeLimit)
        ));
        assert!(matches!(
            parse_scan_reply("stream: Can't create temporary file ERROR"),
            Err(ClamdError::Failed { reply }) if reply == "stream: Can't create temporary file ERROR"
        ));
        for garbage in [
            "",
            "PONG",
            "stream: ",
            "stream: FOUND",
            "stream:  FOUND",
            "stream: ok",
            "hello",
        ] {
            assert!(
                matches!(parse_scan_reply(garbage), Err(ClamdError::Protocol { reply }) if reply == garbage),
                "{garbage:?}"
            );
        }
    }

    #[tokio::test]
    async fn replies_are_read_up_to_their_nul() {
        let mut peer: &[u8] = b"stream: OK\0more";
        assert_eq!(read_reply(&mut peer).await.unwrap(), "stream: OK");
    }

    #[tokio::test]
    async fn a_reply_without_end_is_cut_at_the_limit() {
        let endless = vec![b'x'; 1 << 20];
        let mut peer = endless.as_slice();
        let Err(ClamdError::Protocol { reply }) = read_reply(&mut peer).await else {
            panic!("a 1 MiB reply was accepted");
        };
        assert_eq!(reply.len(), MAX_REPLY);
        assert!(peer.len() >= endless.len() - 2 * MAX_REPLY, "read too far");
    }

    #[tokio::test]
    async fn a_closed_connection_is_not_a_reply() {
        let mut peer: &[u8] = b"";
        assert!(matches!(
            read_reply(&mut peer).await,
            Err(ClamdError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof
        ));
        let mut cut: &[u8] = b"stream: O";
        assert!(matches!(
            read_reply(&mut cut).await,
            Err(ClamdError::Protocol { reply }) if reply == "stream: O"
        ));
    }

    #[tokio::test]
    async fn content_is_sent_in_chunks_with_an_end() {
        let content = vec![7u8; CHUNK + 10];
        let mut sent = Vec::new();
        send_chunks(&mut sent, content.as_slice()).await.unwrap();
        let mut expected = Vec::new();
        for part in [&content[..CHUNK], &content[CHUNK..], &[]] {
            expected.extend_from_slice(&(part.len() as u32).to_be_bytes());
            expected.extend_from_slice(part);
        }
        assert_eq!(sent, expected);
    }
}
