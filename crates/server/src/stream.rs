//! A connection as the SMTP drivers see it: plain TCP that may move into TLS (STARTTLS, or
//! implicit TLS before the first byte), or the local socket of `posthorn sendmail`. One
//! type serves both directions: `T` is tokio-rustls's server or client TLS stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::CommonState;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;

/// One connection.
#[derive(Debug)]
pub enum Connection<T> {
    /// TCP without encryption (yet).
    Plain(TcpStream),
    /// TCP inside TLS.
    Tls(Box<T>),
    /// The local submission socket.
    Local(UnixStream),
    /// Only while a handshake holds the stream, or after it failed.
    Gone,
}

/// An inbound connection.
pub type ServerConnection = Connection<tokio_rustls::server::TlsStream<TcpStream>>;
/// An outbound connection.
pub type ClientConnection = Connection<tokio_rustls::client::TlsStream<TcpStream>>;

impl<T> Connection<T> {
    /// Takes the TCP stream out for a TLS handshake, leaving `Gone` until the handshake
    /// puts the TLS stream back; `None` if the connection is not plain TCP.
    pub fn take_plain(&mut self) -> Option<TcpStream> {
        match std::mem::replace(self, Connection::Gone) {
            Connection::Plain(tcp) => Some(tcp),
            other => {
                *self = other;
                None
            }
        }
    }
}

impl ServerConnection {
    /// Does the server side of a TLS handshake on a plain connection. Nothing the client
    /// sent before is kept: the session has already dropped it (RFC 3207 §6).
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let tcp = self
            .take_plain()
            .ok_or_else(|| io::Error::other("TLS is only started on a plain TCP connection"))?;
        let tls = acceptor.accept(tcp).await?;
        *self = Connection::Tls(Box::new(tls));
        Ok(())
    }

    /// `TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384`, for the Received header and logs.
    pub fn tls_description(&self) -> Option<String> {
        let Connection::Tls(tls) = self else {
            return None;
        };
        let (version, cipher) = negotiated(tls.get_ref().1);
        Some(format!("{version} with cipher {cipher}"))
    }
}

/// The TLS version (`TLSv1.3`) and cipher suite of an established session.
pub fn negotiated(session: &CommonState) -> (String, String) {
    let version = session
        .protocol_version()
        .map_or_else(|| "TLS".to_string(), |v| format!("{v:?}").replace('_', "."));
    let cipher = session
        .negotiated_cipher_suite()
        .map_or_else(String::new, |c| format!("{:?}", c.suite()));
    (version, cipher)
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "connection lost in TLS handshake",
    )
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Connection<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Connection::Local(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Connection<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Connection::Local(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Connection::Local(s) => Pin::new(s).poll_flush(cx),
            Connection::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Connection::Local(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// An inbound connection together with the TLS acceptor that can upgrade it, as the POP3
/// and IMAP sessions of `posthorn-mailbox` take it.
pub struct Upgradable {
    connection: ServerConnection,
    tls: TlsAcceptor,
}

impl Upgradable {
    /// `connection`, which STLS/STARTTLS upgrades with `tls`.
    pub fn new(connection: ServerConnection, tls: TlsAcceptor) -> Upgradable {
        Upgradable { connection, tls }
    }
}

impl posthorn_mailbox::access::Connection for Upgradable {
    fn start_tls(&mut self) -> posthorn_mailbox::access::BoxFuture<'_, io::Result<()>> {
        Box::pin(self.connection.start_tls(&self.tls))
    }

    fn is_tls(&self) -> bool {
        matches!(self.connection, Connection::Tls(_))
    }
}

impl AsyncRead for Upgradable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().connection).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgradable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().connection).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().connection).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().connection).poll_shutdown(cx)
    }
}
