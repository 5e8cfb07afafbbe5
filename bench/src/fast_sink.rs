//! The benchmark's SMTP sink: accepts everything, keeps nothing, counts messages. Postfix's
//! `smtp-sink` reads in 4 KiB pieces and takes at most ~240 MiB/s on the benchmark machine,
//! less than the servers accept, so with 1 MiB messages it measured itself; this one reads
//! 64 KiB at a time and finds the end of DATA with memchr's `memmem`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Octets read at a time.
const READ_SIZE: usize = 64 * 1024;

/// Longest command line kept while waiting for its end; a longer one closes the connection.
const MAX_LINE: usize = 4096;

/// A running sink; it stops with the process (benchmark runs are short).
pub struct FastSink {
    /// Where it listens.
    pub addr: SocketAddr,
    count: Arc<AtomicUsize>,
}

impl FastSink {
    /// Starts on 127.0.0.1 with an ephemeral port, on a thread of its own.
    pub fn start() -> std::io::Result<FastSink> {
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = runtime.block_on(listen())?;
        let addr = listener.local_addr()?;
        std::thread::Builder::new()
            .name("fast-sink".into())
            .spawn(move || {
                runtime.block_on(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(serve(stream, Arc::clone(&counter)));
                    }
                });
            })?;
        Ok(FastSink { addr, count })
    }

    /// Messages received so far.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// A listener on an ephemeral loopback port with the servers' listen queue (4096): std's
/// 128 drops SYNs when 500 clients connect at once, and each dropped SYN costs a client a
/// second, which made the ceiling at 500 clients lower than the servers' figures.
async fn listen() -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(4096)
}

/// One connection: commands answered line by line (pipelining allowed), content skipped
/// up to `CRLF.CRLF`.
async fn serve(mut stream: TcpStream, count: Arc<AtomicUsize>) {
    let _ = stream.set_nodelay(true);
    if stream.write_all(b"220 sink ESMTP\r\n").await.is_err() {
        return;
    }
    let end_of_data = memmem::Finder::new(b"\r\n.\r\n");
    let mut buffer = vec![0u8; READ_SIZE];
    // Octets kept from the previous read: a partial command line, or the last four octets
    // of content (the end marker may straddle two reads).
    let mut kept = Vec::new();
    let mut in_data = false;
    loop {
        let Ok(read) = stream.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        kept.extend_from_slice(&buffer[..read]);
        let mut replies = Vec::new();
        let mut at = 0;
        loop {
            if in_data {
                // `kept` starts with the CRLF that ended the DATA command's line, so an
                // empty message still ends in CRLF.CRLF.
                match end_of_data.find(&kept[at..]) {
                    Some(end) => {
                        at += end + 5;
                        in_data = false;
                        count.fetch_add(1, Ordering::Relaxed);
                        replies.extend_from_slice(b"250 2.0.0 Ok\r\n");
                    }
                    None => {
                        at = kept.len().saturating_sub(4).max(at);
                        break;
                    }
                }
            } else {
                let Some(line_end) = memchr::memchr(b'\n', &kept[at..]) else {
                    break;
                };
                let line = &kept[at..at + line_end + 1];
                let verb = line
                    .get(..4)
                    .map(|v| v.to_ascii_uppercase())
                    .unwrap_or_default();
                match verb.as_slice() {
                    b"EHLO" => {
                        replies.extend_from_slice(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                    }
                    b"DATA" => {
                        replies.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
                        in_data = true;
                        // Keep the CRLF of this line as the start of the end marker.
                        at += line_end - 1;
                        continue;
                    }
                    b"QUIT" => {
                        replies.extend_from_slice(b"221 2.0.0 Bye\r\n");
                        let _ = stream.write_all(&replies).await;
                        return;
                    }
                    _ => replies.extend_from_slice(b"250 2.0.0 Ok\r\n"),
                }
                at += line_end + 1;
            }
        }
        kept.drain(..at);
        if !in_data && kept.len() > MAX_LINE {
            return;
        }
        if !replies.is_empty() && stream.write_all(&replies).await.is_err() {
            return;
        }
    }
}
