//! A sink that records which benchmark messages reached it (by their `X-Bench-Id`), with
//! duplicates: the soak's proof that every acknowledged message was delivered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::load::bench_id;

/// A running recording sink.
pub struct RecordingSink {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<usize>>>,
    count: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RecordingSink {
    /// Starts on 127.0.0.1 with an ephemeral port; records ids of run `tag`.
    pub fn start(tag: &str) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let received = Arc::clone(&received);
            let count = Arc::clone(&count);
            let tag = tag.to_string();
            std::thread::spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = accept(listener, Record { ids: received, count, tag }) => {}
                        _ = stopped => {}
                    }
                });
            })
        };
        Ok(RecordingSink {
            addr,
            received,
            count,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Every id received, one entry per delivery.
    pub fn ids(&self) -> Vec<usize> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Messages received, with or without an id.
    pub fn delivered(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

impl Drop for RecordingSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where a session records what it received.
#[derive(Clone)]
struct Record {
    ids: Arc<Mutex<Vec<usize>>>,
    count: Arc<AtomicUsize>,
    tag: String,
}

async fn accept(listener: TcpListener, record: Record) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let record = record.clone();
        tokio::spawn(async move {
            let _ = session(stream, &record).await;
        });
    }
}

async fn session(stream: TcpStream, record: &Record) -> std::io::Result<()> {
    // Replies to pipelined commands are small separate writes: without this, Nagle's
    // algorithm and the client's delayed ACKs would hold each for tens of milliseconds.
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 sink.bench.example ESMTP\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = String::from_utf8_lossy(&line[..line.len().min(4)]).to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.bench.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                write.write_all(b"354 go\r\n").await?;
                let mut head = Vec::new();
                loop {
                    line.clear();
                    if reader.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    if head.len() < 4096 {
                        head.extend_from_slice(&line);
                    }
                }
                record.count.fetch_add(1, Ordering::SeqCst);
                if let (Some(id), Ok(mut ids)) = (bench_id(&head, &record.tag), record.ids.lock()) {
                    ids.push(id);
                }
                b"250 2.0.0 stored\r\n"
            }
            _ => b"250 2.0.0 ok\r\n",
        };
        write.write_all(reply).await?;
    }
}
