//! Where the log's lines go: gathered in memory and written to stderr by a thread of
//! their own, one write(2) for everything that came within a few milliseconds.
//!
//! A busy server's sessions must never wait on a write(2) per line (a disk or a pipe that
//! stalls would stall them all), so a thread writes. `tracing-appender`'s non-blocking
//! writer did that with a wake-up of its thread, and its spinning receive, for nearly
//! every line: at 2000 messages/s (three lines each) that thread took 6% of the server's
//! CPU, and the wake-ups more; logging was 15% of the CPU per message. Here a line wakes
//! the thread only when it finds nothing waiting, and the thread then waits [`GATHER`]
//! for the rest of the burst. No line is dropped: past [`HOLD_AT_MOST`] octets waiting,
//! loggers wait for the write. What waits when the process is killed is lost, as it was.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the thread waits after a first line for others to write with it.
const GATHER: Duration = Duration::from_millis(5);
/// Octets waiting beyond which a logger waits for the write.
const HOLD_AT_MOST: usize = 1 << 20;

/// The writer the log's formatter writes each line to (see `tracing_subscriber`'s
/// `MakeWriter`).
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Stops the thread when dropped, once it has written what is left.
pub struct FlushAtExit {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    waiting: Mutex<Waiting>,
    /// Signalled when the first line comes to an empty buffer, and at the stop.
    lines: Condvar,
    /// Signalled when the thread has taken the lines waiting.
    room: Condvar,
}

#[derive(Default)]
struct Waiting {
    octets: Vec<u8>,
    stopped: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the thread that writes to `out`.
pub fn start(out: impl Write + Send + 'static) -> io::Result<(LogWriter, FlushAtExit)> {
    let shared = Arc::new(Shared {
        waiting: Mutex::new(Waiting::default()),
        lines: Condvar::new(),
        room: Condvar::new(),
    });
    let writer = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_loop(&writer, out))?;
    Ok((
        LogWriter {
            shared: Arc::clone(&shared),
        },
        FlushAtExit {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_loop(shared: &Shared, mut out: impl Write) {
    let mut taken = Vec::new();
    loop {
        let mut waiting = shared.lock();
        while waiting.octets.is_empty() && !waiting.stopped {
            waiting = shared
                .lines
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !waiting.stopped {
            drop(waiting);
            std::thread::sleep(GATHER);
            waiting = shared.lock();
        }
        std::mem::swap(&mut taken, &mut waiting.octets);
        let stopped = waiting.stopped;
        drop(waiting);
        shared.room.notify_all();
        // Nowhere to report a failed write of the log: the lines are lost.
        let _ = out.write_all(&taken).and_then(|()| out.flush());
        taken.clear();
        if stopped {
            return;
        }
    }
}

impl Write for &LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &self.shared;
        let mut waiting = shared.lock();
        while waiting.octets.len() >= HOLD_AT_MOST && !waiting.stopped {
            waiting = shared
                .room
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let first = waiting.octets.is_empty();
        waiting.octets.extend_from_slice(line);
        drop(waiting);
        if first {
            shared.lines.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for FlushAtExit {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.lines.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `out` whose octets the test can read.
    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl Write for Out {
        fn write(&mut self, octets: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(octets);
            Ok(octets.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_by_the_exit() {
        let out = Out::default();
        let (writer, flush) = start(out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for n in 0..20_000 {
                        (&writer)
                            .write_all(format!("{t} {n}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(flush);
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        for t in 0..4 {
            let mine: Vec<usize> = written
                .lines()
                .filter_map(|line| line.strip_prefix(&format!("{t} ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..20_000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_line_is_written_without_waiting_for_more() {
        let out = Out::default();
        let (writer, _flush) = start(out.clone()).unwrap();
        (&writer).write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.0.lock().unwrap().as_slice() != b"alone\n" {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
