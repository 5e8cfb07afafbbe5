//! Our own SMTP load generator: what `smtp-source` cannot tell, the time from the end of a
//! message's DATA to the server's reply (how long the server takes to make it durable), and
//! which messages were acknowledged (for the crash soak). It also holds thousands of idle
//! connections open, to measure what a server spends on them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Mutex;

/// What to send.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The server.
    pub target: SocketAddr,
    /// Messages to get acknowledged in all.
    pub messages: usize,
    /// Connections working at once.
    pub concurrency: usize,
    /// Approximate message size in octets.
    pub size: usize,
    /// Keep connections open between messages (`smtp-source -d`); otherwise one
    /// connection per message, like `smtp-source` by default.
    pub reuse: bool,
    /// Envelope sender.
    pub from: String,
    /// Envelope recipient.
    pub to: String,
    /// Names the run in every message's `X-Bench-Id`.
    pub tag: String,
    /// Keep going through failures until `messages` are acknowledged (the soak kills the
    /// server under us); otherwise every message is tried once and failures are counted.
    pub persist: bool,
    /// Longest wait for a connection or a reply: a server that accepts more connections
    /// than it serves leaves some half-open for ever.
    pub timeout: Duration,
}

/// What happened.
#[derive(Debug, Default)]
pub struct Report {
    /// Messages the server acknowledged with 2xx, by number.
    pub acknowledged: Vec<usize>,
    /// Messages refused or lost with their connection.
    pub failed: usize,
    /// From the first connection to the last reply.
    pub elapsed: Duration,
    /// End of DATA to the reply, per acknowledged message.
    pub latencies: Vec<Duration>,
}

impl Report {
    /// The `q` quantile (0..=1) of the latencies.
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index]
    }
}

/// The message with number `n`: headers naming it, and a body of lines up to `size`.
pub fn message(spec: &Spec, n: usize) -> Vec<u8> {
    let mut text = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: bench {tag} {n}\r\nMessage-ID: <{tag}.{n}@bench.example>\r\nX-Bench-Id: {tag}-{n}\r\n\r\n",
        from = spec.from,
        to = spec.to,
        tag = spec.tag,
    )
    .into_bytes();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n";
    while text.len() < spec.size {
        text.extend_from_slice(line);
    }
    text
}

/// The number in an `X-Bench-Id` header of content (for the soak's accounting).
pub fn bench_id(content: &[u8], tag: &str) -> Option<usize> {
    let needle = format!("X-Bench-Id: {tag}-");
    let text = String::from_utf8_lossy(&content[..content.len().min(4096)]);
    let start = text.find(&needle)? + needle.len();
    text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
}

impl Connection {
    async fn open(target: SocketAddr, timeout: Duration) -> std::io::Result<Connection> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(target))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut connection = Connection {
            reader: BufReader::new(read),
            writer: write,
            timeout,
        };
        connection.expect(220).await?;
        connection.command("EHLO load.bench.example", 250).await?;
        Ok(connection)
    }

    async fn reply(&mut self) -> std::io::Result<u16> {
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(self.timeout, self.reader.read_line(&mut line))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            if read == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed",
                ));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line
                    .get(..3)
                    .and_then(|code| code.parse().ok())
                    .ok_or_else(|| std::io::Error::other(format!("bad reply {line:?}")));
            }
        }
    }

    async fn expect(&mut self, code: u16) -> std::io::Result<()> {
        let got = self.reply().await?;
        if got / 100 == code / 100 {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("expected {code}, got {got}")))
        }
    }

    async fn command(&mut self, line: &str, code: u16) -> std::io::Result<()> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        self.expect(code).await
    }

    /// One transaction; returns the time from the final dot to the reply.
    async fn send(&mut self, spec: &Spec, content: &[u8]) -> std::io::Result<Duration> {
        self.command(&format!("MAIL FROM:<{}>", spec.from), 250)
            .await?;
        self.command(&format!("RCPT TO:<{}>", spec.to), 250).await?;
        self.command("DATA", 354).await?;
        self.writer.write_all(content).await?;
        self.writer.write_all(b".\r\n").await?;
        let sent = Instant::now();
        self.expect(250).await?;
        Ok(sent.elapsed())
    }
}

/// Runs the load and reports.
pub async fn run(spec: Spec) -> Report {
    let spec = Arc::new(spec);
    let counters = Arc::new(Counters::default());
    let report = Arc::new(Mutex::new(Report::default()));
    let started = Instant::now();
    let workers: Vec<_> = (0..spec.concurrency)
        .map(|_| {
            let (spec, counters, report) = (
                Arc::clone(&spec),
                Arc::clone(&counters),
                Arc::clone(&report),
            );
            tokio::spawn(async move { worker(spec, counters, report).await })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let mut report = std::mem::take(&mut *report.lock().await);
    report.elapsed = started.elapsed();
    report
}

/// Shared between the workers of a run.
#[derive(Default)]
struct Counters {
    /// The next message number.
    next: AtomicUsize,
    /// Messages acknowledged so far.
    acknowledged: AtomicUsize,
}

impl Counters {
    /// The next message to send, if the run is not over: `messages` numbers in all, or
    /// (persisting) as many as it takes until `messages` are acknowledged.
    fn take(&self, spec: &Spec) -> Option<usize> {
        if self.acknowledged.load(Ordering::SeqCst) >= spec.messages {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        (spec.persist || n < spec.messages).then_some(n)
    }
}

async fn worker(spec: Arc<Spec>, counters: Arc<Counters>, report: Arc<Mutex<Report>>) {
    let mut connection: Option<Connection> = None;
    let mut current = counters.take(&spec);
    while let Some(n) = current {
        if connection.is_none() {
            match Connection::open(spec.target, spec.timeout).await {
                Ok(opened) => connection = Some(opened),
                Err(_) => {
                    report.lock().await.failed += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    current = counters.take(&spec);
                    continue;
                }
            }
        }
        let Some(open) = connection.as_mut() else {
            continue;
        };
        let content = message(&spec, n);
        match open.send(&spec, &content).await {
            Ok(latency) => {
                counters.acknowledged.fetch_add(1, Ordering::SeqCst);
                let mut report = report.lock().await;
                report.acknowledged.push(n);
                report.latencies.push(latency);
                drop(report);
                if !spec.reuse
                    && let Some(mut done) = connection.take()
                {
                    let _ = done.command("QUIT", 221).await;
                }
            }
            Err(_) => {
                report.lock().await.failed += 1;
                connection = None;
            }
        }
        // A message that was not acknowledged is never sent again under its number: a
        // copy the server stored before failing must not be mistaken for a later one.
        current = counters.take(&spec);
    }
    if let Some(mut open) = connection {
        let _ = open.command("QUIT", 221).await;
    }
}

/// Opens `count` connections, greets each with EHLO, and keeps them open until dropped.
pub async fn idle(target: SocketAddr, count: usize) -> Result<Vec<TcpStream>, String> {
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let stream = TcpStream::connect(target)
            .await
            .map_err(|e| format!("connection {i}: {e}"))?;
        streams.push(stream);
    }
    for (i, stream) in streams.iter_mut().enumerate() {
        let mut greeting = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(30), async {
            let n = tokio::io::AsyncReadExt::read(stream, &mut greeting).await?;
            stream.write_all(b"EHLO idle.bench.example\r\n").await?;
            Ok::<usize, std::io::Error>(n)
        })
        .await;
        match read {
            Ok(Ok(n)) if greeting[..n].starts_with(b"220") => {}
            Ok(Ok(n)) => {
                return Err(format!(
                    "connection {i} was answered {:?}",
                    String::from_utf8_lossy(&greeting[..n]).trim_end()
                ));
            }
            other => return Err(format!("connection {i} was not greeted: {other:?}")),
        }
    }
    Ok(streams)
}
