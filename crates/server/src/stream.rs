//! An inbound connection as the session driver sees it: plain TCP that may become TLS
//! after STARTTLS, TLS from the first byte, or the local socket of `posthorn sendmail`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// One client connection.
#[derive(Debug)]
pub enum Connection {
    /// TCP without encryption (yet).
    Plain(TcpStream),
    /// TCP inside TLS.
    Tls(Box<TlsStream<TcpStream>>),
    /// The local submission socket.
    Local(UnixStream),
    /// Only while a handshake holds the stream, or after it failed.
    Gone,
}

impl Connection {
    /// Does the server side of a TLS handshake on a plain connection. Nothing the client
    /// sent before is kept: the session has already dropped it (RFC 3207 §6).
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        let Connection::Plain(tcp) = std::mem::replace(self, Connection::Gone) else {
            return Err(io::Error::other(
                "TLS is only started on a plain TCP connection",
            ));
        };
        let tls = acceptor.accept(tcp).await?;
        *self = Connection::Tls(Box::new(tls));
        Ok(())
    }

    /// `TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384`, for the Received header and logs.
    pub fn tls_description(&self) -> Option<String> {
        let Connection::Tls(tls) = self else {
            return None;
        };
        let (_, session) = tls.get_ref();
        let version = match session.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        };
        let cipher = session.negotiated_cipher_suite()?.suite();
        Some(format!("{version} with cipher {cipher:?}"))
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection closed")
}

impl AsyncRead for Connection {
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

impl AsyncWrite for Connection {
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
