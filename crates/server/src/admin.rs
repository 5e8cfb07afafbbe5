//! `posthorn queue ...`: the operator's view of and hand on the queue, through a Unix
//! socket in the data folder that only the server's owner may open. Listing reads the spool
//! directly (files there are only ever replaced whole); every change goes through the queue
//! manager, the one writer of queue state.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use posthorn_spool::{DeliveryState, Envelope, QueueId, QueueStore, RecipientStatus};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::queue::{AdminCommand, DEFERRED, QUEUED, QueueHandle};
use crate::received::rfc5322_date;

/// The socket's name in the data folder.
pub const SOCKET: &str = "admin.sock";
/// Longest request line.
const MAX_REQUEST: u64 = 8 * 1024;

/// A request on the admin socket (one JSON line); also the `posthorn queue` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// Every queued message with its recipients' states (like mailq).
    List,
    /// One message in detail, with its headers.
    Show {
        /// Queue id.
        id: String,
    },
    /// Attempt delivery now: one message, or everything waiting.
    Flush {
        /// Queue id; all messages when absent.
        id: Option<String>,
    },
    /// Keep a message out of delivery until released.
    Hold {
        /// Queue id.
        id: String,
    },
    /// Put a held message back into delivery.
    Release {
        /// Queue id.
        id: String,
    },
    /// Remove a message; its sender gets a bounce unless --silent.
    Delete {
        /// Queue id.
        id: String,
        /// Do not tell the sender.
        #[arg(long)]
        silent: bool,
    },
    /// Return a message to its sender now.
    Bounce {
        /// Queue id.
        id: String,
    },
}

/// The answer (one JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// False when the request failed; `text` says why.
    pub ok: bool,
    /// What was done, or the error.
    pub text: String,
    /// For `list` and `show`.
    #[serde(default)]
    pub messages: Vec<Listing>,
}

/// One queued message as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Queue id.
    pub id: String,
    /// Content size in octets.
    pub size: u64,
    /// Arrival, seconds since the epoch.
    pub arrival: u64,
    /// The envelope sender; empty for `<>`.
    pub sender: String,
    /// Held by the operator.
    pub hold: bool,
    /// Every recipient.
    pub recipients: Vec<ListedRecipient>,
    /// The header section (for `show`).
    pub headers: Option<String>,
}

/// One recipient as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedRecipient {
    /// The address.
    pub address: String,
    /// `queued`, `deferred`, `delivered`, `failed` or `expired` (see [`status_word`]).
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Next attempt, seconds since the epoch (queued and deferred recipients).
    pub next_attempt: Option<u64>,
    /// The last error or result.
    pub diagnostic: Option<String>,
}

/// Serves the admin socket bound at `path` until shutdown.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    store: Arc<dyn QueueStore>,
    queue: QueueHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let store = Arc::clone(&store);
                let queue = queue.clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, store, queue).await {
                        warn!(error = %e, "admin request failed");
                    }
                });
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    let _ = std::fs::remove_file(&path);
}

/// Binds the admin socket at `path` so that no other local user can ever connect to it:
/// it is bound in a new folder beside it that only we may enter (0700), restricted to
/// 0600 there, and only then renamed into place (replacing a socket left by a crash). A
/// umask around the bind would do it too, but the umask is the whole process's, and other
/// threads create files and folders meanwhile.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = folder.join(format!(".{SOCKET}.{}", std::process::id()));
    // Left by a crashed server that had our process id.
    match std::fs::remove_dir_all(&staging) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let inside = staging.join(SOCKET);
    let bound = UnixListener::bind(&inside).and_then(|listener| {
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inside, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_dir_all(&staging);
    bound
}

async fn answer(
    stream: UnixStream,
    store: Arc<dyn QueueStore>,
    queue: QueueHandle,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read)
        .take(MAX_REQUEST)
        .read_line(&mut line)
        .await?;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => handle(request, store, &queue).await,
        Err(e) => failure(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await
}

async fn handle(request: Request, store: Arc<dyn QueueStore>, queue: &QueueHandle) -> Response {
    let command = match request {
        Request::List => return listing(store, None).await,
        Request::Show { id } => return listing(store, Some(id)).await,
        change => match command_of(change) {
            Ok(command) => command,
            Err(refusal) => return refusal,
        },
    };
    info!(%command, "admin command");
    match queue.admin(command).await {
        Ok(text) => Response {
            ok: true,
            text,
            messages: Vec::new(),
        },
        Err(text) => failure(text),
    }
}

/// The queue manager's command for a request that changes the queue.
fn command_of(request: Request) -> Result<AdminCommand, Response> {
    Ok(match request {
        Request::Flush { id } => AdminCommand::Flush(id.map(|id| parse_id(&id)).transpose()?),
        Request::Hold { id } => AdminCommand::Hold(parse_id(&id)?),
        Request::Release { id } => AdminCommand::Release(parse_id(&id)?),
        Request::Bounce { id } => AdminCommand::Bounce(parse_id(&id)?),
        Request::Delete { id, silent } => AdminCommand::Delete {
            id: parse_id(&id)?,
            silent,
        },
        Request::List | Request::Show { .. } => {
            return Err(failure("not a change to the queue".into()));
        }
    })
}

fn parse_id(id: &str) -> Result<QueueId, Response> {
    QueueId::try_from(id.to_string()).map_err(|_| failure(format!("{id:?} is not a queue id")))
}

fn failure(text: String) -> Response {
    Response {
        ok: false,
        text,
        messages: Vec::new(),
    }
}

/// Lists every message, or shows one with its headers. Reads the spool on a blocking thread.
async fn listing(store: Arc<dyn QueueStore>, only: Option<String>) -> Response {
    let only = match only.map(|id| parse_id(&id)) {
        Some(Err(e)) => return e,
        Some(Ok(id)) => Some(id),
        None => None,
    };
    let listed = tokio::task::spawn_blocking(move || -> io::Result<Vec<Listing>> {
        let ids = match &only {
            Some(id) => vec![*id],
            None => store.ids()?,
        };
        let mut listed = Vec::new();
        for id in ids {
            let entry = store
                .load(&id)
                .and_then(|envelope| listing_read(&*store, &envelope, only.is_some()))
                .map_err(|e| match store.load(&id) {
                    // Delivered while we read it: its file may hold the next message.
                    Err(gone) if gone.kind() == io::ErrorKind::NotFound => gone,
                    _ => e,
                });
            match entry {
                Ok(entry) => listed.push(entry),
                // Removed while we listed: it is no longer queued.
                Err(e) if e.kind() == io::ErrorKind::NotFound && only.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(listed)
    })
    .await;
    match listed {
        Ok(Ok(messages)) => Response {
            ok: true,
            text: format!("{} message(s)", messages.len()),
            messages,
        },
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => failure("not in the queue".into()),
        Ok(Err(e)) => failure(format!("cannot read the queue: {e}")),
        Err(e) => failure(format!("listing failed: {e}")),
    }
}

/// The listing of a queued message, with its header section when `with_headers`; fails
/// with `NotFound` if the message is delivered before its headers are read in full, since
/// its file may then hold the next message. (Its size, read from the footer as the file
/// is opened, needs no such check.)
fn listing_read(
    store: &dyn QueueStore,
    envelope: &Envelope,
    with_headers: bool,
) -> io::Result<Listing> {
    let mut content = store.content(&envelope.id)?;
    let headers = if with_headers {
        let mut head = Vec::new();
        io::Read::read_to_end(
            &mut io::Read::take(&mut content.reader, 256 * 1024),
            &mut head,
        )?;
        store.load(&envelope.id)?;
        let section = posthorn_proto::headers::header_section(&head);
        Some(format!(
            "{}{}",
            envelope.prepend,
            String::from_utf8_lossy(section)
        ))
    } else {
        None
    };
    Ok(listing_of(envelope, content.len, headers))
}

fn listing_of(envelope: &Envelope, size: u64, headers: Option<String>) -> Listing {
    Listing {
        id: envelope.id.to_string(),
        size,
        arrival: envelope.arrival,
        sender: envelope.sender.to_string(),
        hold: envelope.hold,
        recipients: envelope
            .recipients
            .iter()
            .map(|r| ListedRecipient {
                address: r.address.to_string(),
                status: status_word(&r.state).into(),
                attempts: r.state.attempts,
                next_attempt: (r.state.status == RecipientStatus::Pending)
                    .then_some(r.state.next_attempt),
                diagnostic: r.state.diagnostic.as_ref().map(|d| d.to_string()),
            })
            .collect(),
        headers,
    }
}

/// A recipient's state in one word, the log's word where it has one: `deferred` (the
/// log's `result="deferred"`) for a recipient whose attempts failed for now and that waits
/// for the next, `queued` for one not attempted yet (new, or held since it came).
pub fn status_word(state: &DeliveryState) -> &'static str {
    match state.status {
        RecipientStatus::Pending if state.attempts == 0 => QUEUED,
        RecipientStatus::Pending => DEFERRED,
        RecipientStatus::Delivered => "delivered",
        RecipientStatus::Failed => "failed",
        RecipientStatus::Expired => "expired",
    }
}

/// Sends one request to the server behind `data_dir` and returns its answer.
pub async fn request(data_dir: &Path, request: &Request) -> Result<Response, String> {
    let path = data_dir.join(SOCKET);
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        format!(
            "posthorn is not running on {} (cannot connect to {}: {e})",
            data_dir.display(),
            path.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(|e| e.to_string())?;
    let mut answer = String::new();
    BufReader::new(read)
        .read_line(&mut answer)
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&answer).map_err(|e| format!("bad answer from the server: {e}"))
}

/// The listing as people read it, like `mailq`.
pub fn format_listing(messages: &[Listing], detailed: bool) -> String {
    let mut out = String::new();
    for message in messages {
        let sender = if message.sender.is_empty() {
            "<>"
        } else {
            &message.sender
        };
        let hold = if message.hold { " (held)" } else { "" };
        out.push_str(&format!(
            "{}  {:>8}  {}  {}{}\n",
            message.id,
            message.size,
            rfc5322_date(message.arrival),
            sender,
            hold
        ));
        for r in &message.recipients {
            let next = r.next_attempt.map_or_else(String::new, |t| {
                format!(", next attempt {}", rfc5322_date(t))
            });
            out.push_str(&format!(
                "    {}  {} (attempts {}{next})\n",
                r.address, r.status, r.attempts
            ));
            if let Some(diagnostic) = &r.diagnostic {
                out.push_str(&format!("        {diagnostic}\n"));
            }
        }
        if detailed && let Some(headers) = &message.headers {
            out.push('\n');
            out.push_str(headers.trim_end());
            out.push('\n');
        }
    }
    let count = |status: &str| -> usize {
        messages
            .iter()
            .map(|m| m.recipients.iter().filter(|r| r.status == status).count())
            .sum()
    };
    out.push_str(&format!(
        "-- {} message(s), {} recipient(s) {QUEUED}, {} {DEFERRED}\n",
        messages.len(),
        count(QUEUED),
        count(DEFERRED)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipient_is_queued_until_attempted_then_deferred() {
        let mut state = DeliveryState::default();
        assert_eq!(status_word(&state), "queued");
        state.attempts = 1;
        assert_eq!(status_word(&state), "deferred");
        state.status = RecipientStatus::Delivered;
        assert_eq!(status_word(&state), "delivered");
    }
}
