//! Where a filter listens, in Postfix's `smtpd_milters` notation, and connecting to it.

use std::path::PathBuf;
use std::str::FromStr;

use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

use crate::client::MilterClient;
use crate::error::MilterError;
use crate::options::Options;

/// A connection to a filter over TCP or a Unix socket.
pub type MilterStream = Either<TcpStream, UnixStream>;

/// A filter's address: `unix:/path` (or just `/path`), `inet:host:port` or `host:port`
/// (an IPv6 address in brackets: `inet:[::1]:port`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MilterAddress {
    /// A Unix socket.
    Unix(PathBuf),
    /// A host name or IP address and a port.
    Inet {
        /// The host.
        host: String,
        /// The port.
        port: u16,
    },
}

impl FromStr for MilterAddress {
    type Err = MilterError;

    fn from_str(spec: &str) -> Result<MilterAddress, MilterError> {
        let bad = || MilterError::Address(spec.to_string());
        if let Some(path) = spec
            .strip_prefix("unix:")
            .or_else(|| spec.starts_with('/').then_some(spec))
        {
            return if path.is_empty() {
                Err(bad())
            } else {
                Ok(MilterAddress::Unix(PathBuf::from(path)))
            };
        }
        let endpoint = spec.strip_prefix("inet:").unwrap_or(spec);
        let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(MilterAddress::Inet {
            host: host.to_string(),
            port,
        })
    }
}

impl MilterClient<MilterStream> {
    /// Connects to the filter at `address` (within the connect timeout) and negotiates.
    pub async fn open(address: &MilterAddress, options: Options) -> Result<Self, MilterError> {
        let connect = async {
            Ok::<_, std::io::Error>(match address {
                MilterAddress::Unix(path) => Either::Right(UnixStream::connect(path).await?),
                MilterAddress::Inet { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    Either::Left(stream)
                }
            })
        };
        let stream = tokio::time::timeout(options.timeouts.connect, connect)
            .await
            .map_err(|_| MilterError::Timeout("connect"))??;
        MilterClient::negotiate(stream, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(host: &str, port: u16) -> MilterAddress {
        MilterAddress::Inet {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn postfix_style_addresses_parse() {
        let parse = |s: &str| s.parse::<MilterAddress>().ok();
        assert_eq!(
            parse("unix:/run/f.sock"),
            Some(MilterAddress::Unix("/run/f.sock".into()))
        );
        assert_eq!(
            parse("/run/f.sock"),
            Some(MilterAddress::Unix("/run/f.sock".into()))
        );
        assert_eq!(
            parse("inet:localhost:11332"),
            Some(inet("localhost", 11332))
        );
        assert_eq!(parse("127.0.0.1:8891"), Some(inet("127.0.0.1", 8891)));
        assert_eq!(parse("inet:[::1]:8891"), Some(inet("::1", 8891)));
        for bad in [
            "unix:",
            "inet:host",
            "host:0",
            ":25",
            "inet:host:port",
            "nothing",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
