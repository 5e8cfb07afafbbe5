//! POP3 (RFC 1939) with CAPA and response codes (RFC 2449), STLS (RFC 2595) and AUTH PLAIN
//! (RFC 5034). A session works on a snapshot of INBOX taken at login; DELE only marks, and
//! the marked messages are removed at QUIT (the UPDATE state), never on a dropped
//! connection. One POP3 session per mailbox at a time: a second one is refused with
//! `[IN-USE]` (RFC 2449), as the protocol's message numbers assume nobody else deletes.

mod commands;
mod stuffing;

use std::fs::File;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use posthorn_maildir::store::{Folder, Message};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::{info, warn};

use crate::access::{Accounts, Connection, Credentials, Login, Settings, User};
use crate::lines::{Line, LineReader};
use commands::Command;
use stuffing::Stuffer;

/// Longest command line we take (RFC 2449 allows 255 octets; SASL responses are longer).
const MAX_LINE: usize = 8192;
/// The lock file that keeps a second POP3 session out.
const LOCK: &str = "posthorn-pop3.lock";

/// Serves one POP3 client until it quits or goes silent too long.
pub async fn serve<C: Connection>(
    mut conn: C,
    client: IpAddr,
    settings: Arc<Settings>,
    accounts: Arc<dyn Accounts>,
) {
    let mut session = Session {
        client,
        settings,
        accounts,
        lines: LineReader::default(),
        state: State::Authorization { user: None },
    };
    let greeting = format!("+OK {} POP3 ready\r\n", session.settings.hostname);
    if conn.write_all(greeting.as_bytes()).await.is_err() {
        return;
    }
    if let Err(e) = session.run(&mut conn).await {
        info!(%client, error = %e, "POP3 session ended");
    }
    let _ = conn.shutdown().await;
}

struct Session {
    client: IpAddr,
    settings: Arc<Settings>,
    accounts: Arc<dyn Accounts>,
    lines: LineReader,
    state: State,
}

enum State {
    /// Before login; USER given.
    Authorization { user: Option<String> },
    /// Logged in, with the maildrop.
    Transaction(Box<Maildrop>),
}

/// The messages of a session and which are marked deleted.
struct Maildrop {
    user: User,
    inbox: Folder,
    uid_validity: u32,
    messages: Arc<Vec<Message>>,
    deleted: Vec<bool>,
    /// Held until the session ends: the mailbox's POP3 lock.
    _lock: File,
}

/// What to do after a command.
enum Next {
    Continue,
    Quit,
}

impl Session {
    async fn run<C: Connection>(&mut self, conn: &mut C) -> std::io::Result<()> {
        loop {
            let line = match tokio::time::timeout(
                self.settings.idle_timeout,
                self.lines.read(conn, MAX_LINE),
            )
            .await
            {
                Err(_) => {
                    conn.write_all(b"-ERR autologout: idle too long\r\n")
                        .await?;
                    return Ok(());
                }
                Ok(line) => line?,
            };
            let line = match line {
                Line::Closed => return Ok(()),
                Line::TooLong => {
                    conn.write_all(b"-ERR line too long\r\n").await?;
                    continue;
                }
                Line::Text(line) => line,
            };
            let command = match Command::parse(&line) {
                Ok(command) => command,
                Err(why) => {
                    conn.write_all(format!("-ERR {why}\r\n").as_bytes()).await?;
                    continue;
                }
            };
            if let Next::Quit = self.execute(command, conn).await? {
                return Ok(());
            }
        }
    }

    async fn execute<C: Connection>(
        &mut self,
        command: Command,
        conn: &mut C,
    ) -> std::io::Result<Next> {
        if let State::Transaction(drop) = &mut self.state {
            match command {
                Command::Capa => {
                    let text = self.capabilities(conn.is_tls());
                    conn.write_all(text.as_bytes()).await?;
                }
                Command::Quit => {
                    let reply = self.update();
                    conn.write_all(reply.as_bytes()).await?;
                    return Ok(Next::Quit);
                }
                command => {
                    let reply = drop.transaction(command);
                    write_multiline(conn, reply, self.settings.idle_timeout).await?;
                }
            }
            conn.flush().await?;
            return Ok(Next::Continue);
        }
        match command {
            Command::Capa => {
                let text = self.capabilities(conn.is_tls());
                conn.write_all(text.as_bytes()).await?;
            }
            Command::Quit => {
                conn.write_all(b"+OK bye\r\n").await?;
                return Ok(Next::Quit);
            }
            Command::Stls => {
                if !self.settings.starttls || conn.is_tls() {
                    conn.write_all(b"-ERR STLS not available\r\n").await?;
                } else {
                    conn.write_all(b"+OK begin TLS\r\n").await?;
                    conn.flush().await?;
                    self.lines.clear();
                    conn.start_tls().await?;
                }
            }
            Command::User(name) => {
                if let Some(refusal) = self.refuse_plaintext(conn.is_tls()) {
                    conn.write_all(refusal.as_bytes()).await?;
                } else {
                    self.state = State::Authorization { user: Some(name) };
                    conn.write_all(b"+OK\r\n").await?;
                }
            }
            Command::Pass(password) => {
                let user = match &mut self.state {
                    State::Authorization { user } => user.take(),
                    State::Transaction(_) => None,
                };
                let reply = match user {
                    None => "-ERR USER first\r\n".to_string(),
                    Some(username) => {
                        self.login(Credentials {
                            authzid: None,
                            username,
                            password,
                        })
                        .await
                    }
                };
                conn.write_all(reply.as_bytes()).await?;
            }
            Command::Auth { mechanism, initial } => {
                let reply = self.auth(conn, mechanism, initial).await?;
                conn.write_all(reply.as_bytes()).await?;
            }
            _ => conn.write_all(b"-ERR not in this state\r\n").await?,
        }
        conn.flush().await?;
        Ok(Next::Continue)
    }

    /// The CAPA list (RFC 2449): the login methods only where they may be used.
    fn capabilities(&self, tls: bool) -> String {
        let mut text = String::from("+OK capability list follows\r\n");
        let authorization = matches!(self.state, State::Authorization { .. });
        if !authorization || tls || self.settings.plaintext_auth {
            text.push_str("USER\r\nSASL PLAIN\r\n");
        }
        if authorization && self.settings.starttls && !tls {
            text.push_str("STLS\r\n");
        }
        text.push_str(
            "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\n\
             IMPLEMENTATION Posthorn\r\n.\r\n",
        );
        text
    }

    /// The refusal of a login in the clear, unless allowed.
    fn refuse_plaintext(&self, tls: bool) -> Option<&'static str> {
        (!tls && !self.settings.plaintext_auth)
            .then_some("-ERR [AUTH] plaintext authentication not allowed; use STLS first\r\n")
    }

    /// AUTH PLAIN, with the response on the line or after a `+ ` continuation.
    async fn auth<C: Connection>(
        &mut self,
        conn: &mut C,
        mechanism: String,
        initial: Option<String>,
    ) -> std::io::Result<String> {
        if let Some(refusal) = self.refuse_plaintext(conn.is_tls()) {
            return Ok(refusal.into());
        }
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            return Ok("-ERR unsupported mechanism\r\n".into());
        }
        let response = match initial {
            Some(response) => response,
            None => {
                conn.write_all(b"+ \r\n").await?;
                conn.flush().await?;
                match self.lines.read(conn, MAX_LINE).await? {
                    Line::Text(text) => text,
                    Line::TooLong | Line::Closed => return Ok("-ERR bad response\r\n".into()),
                }
            }
        };
        if response == "*" {
            return Ok("-ERR authentication cancelled\r\n".into());
        }
        let credentials = posthorn_proto::sasl::decode_response(&response)
            .ok()
            .and_then(|bytes| posthorn_proto::sasl::parse_plain(&bytes).ok());
        match credentials {
            Some(credentials) => Ok(self.login(credentials).await),
            None => Ok("-ERR malformed PLAIN response\r\n".into()),
        }
    }

    /// Checks the password, then locks and opens the maildrop.
    async fn login(&mut self, credentials: Credentials) -> String {
        let login = credentials.username.clone();
        let user = match self.accounts.login(self.client, credentials).await {
            Login::Accepted(user) => user,
            Login::Rejected => {
                self.state = State::Authorization { user: None };
                return "-ERR [AUTH] authentication failed\r\n".into();
            }
            Login::Blocked => {
                return "-ERR [SYS/TEMP] too many failed logins; try again later\r\n".into();
            }
        };
        let name = user.name.clone();
        let opened = tokio::task::spawn_blocking(move || Maildrop::open(user)).await;
        match opened {
            Ok(Ok(Some(drop))) => {
                info!(client = %self.client, user = %name, login, messages = drop.messages.len(), "POP3 login");
                let reply = format!("+OK {} messages\r\n", drop.messages.len());
                self.state = State::Transaction(Box::new(drop));
                reply
            }
            Ok(Ok(None)) => "-ERR [IN-USE] mailbox in use by another POP3 session\r\n".into(),
            Ok(Err(e)) => {
                warn!(user = %name, error = %e, "cannot open the maildrop");
                "-ERR [SYS/TEMP] cannot open the mailbox\r\n".into()
            }
            Err(_) => "-ERR [SYS/TEMP] cannot open the mailbox\r\n".into(),
        }
    }

    /// QUIT in the transaction state: removes the messages marked deleted.
    fn update(&mut self) -> String {
        let State::Transaction(drop) = &self.state else {
            return "+OK bye\r\n".into();
        };
        let doomed: Vec<(u32, String)> = drop
            .messages
            .iter()
            .zip(&drop.deleted)
            .filter(|(_, deleted)| **deleted)
            .map(|(m, _)| (m.uid, m.file.to_string()))
            .collect();
        match drop.inbox.expunge(&doomed) {
            Ok(gone) => {
                info!(user = %drop.user.name, deleted = gone.len(), "POP3 update");
                "+OK bye\r\n".into()
            }
            Err(e) => {
                warn!(user = %drop.user.name, error = %e, "POP3 update failed");
                "-ERR [SYS/TEMP] some deleted messages not removed\r\n".into()
            }
        }
    }
}

impl Maildrop {
    /// Locks the mailbox for POP3 (`None` if another session holds it) and lists INBOX.
    fn open(user: User) -> std::io::Result<Option<Maildrop>> {
        user.mailbox.prepare()?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(user.mailbox.root().join(LOCK))?;
        if lock.try_lock().is_err() {
            return Ok(None);
        }
        let inbox = user
            .mailbox
            .folder("INBOX")
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let snapshot = inbox.sync(false)?;
        Ok(Some(Maildrop {
            deleted: vec![false; snapshot.messages.len()],
            uid_validity: snapshot.uid_validity,
            messages: snapshot.messages,
            inbox,
            user,
            _lock: lock,
        }))
    }

    /// The message numbered `n` (from 1) unless it is marked deleted.
    fn get(&self, n: usize) -> Result<&Message, &'static str> {
        match n
            .checked_sub(1)
            .and_then(|i| self.messages.get(i).zip(self.deleted.get(i)))
        {
            Some((_, true)) => Err("-ERR message is deleted\r\n"),
            Some((message, false)) => Ok(message),
            None => Err("-ERR no such message\r\n"),
        }
    }

    /// A unique id that stays the same across sessions while the folder keeps its UIDs.
    fn unique_id(&self, message: &Message) -> String {
        format!("{:08x}{:08x}", message.uid, self.uid_validity)
    }

    /// Runs a transaction-state command; the reply, with a dot-stuffed body for
    /// multi-line answers.
    fn transaction(&mut self, command: Command) -> Reply {
        match command {
            Command::Stat => {
                let (count, size) = self
                    .live()
                    .fold((0, 0), |(c, s), (_, m)| (c + 1, s + m.size));
                Reply::line(format!("+OK {count} {size}"))
            }
            Command::List(None) => {
                let lines = self
                    .live()
                    .map(|(n, m)| format!("{n} {}", m.size))
                    .collect();
                Reply::listing("+OK scan listing follows", lines)
            }
            Command::List(Some(n)) => match self.get(n) {
                Ok(m) => Reply::line(format!("+OK {n} {}", m.size)),
                Err(e) => Reply::error(e),
            },
            Command::Uidl(None) => {
                let lines = self
                    .live()
                    .map(|(n, m)| format!("{n} {}", self.unique_id(m)))
                    .collect();
                Reply::listing("+OK unique-id listing follows", lines)
            }
            Command::Uidl(Some(n)) => match self.get(n) {
                Ok(m) => Reply::line(format!("+OK {n} {}", self.unique_id(m))),
                Err(e) => Reply::error(e),
            },
            Command::Retr(n) => self.content(n, None),
            Command::Top(n, lines) => self.content(n, Some(lines)),
            Command::Dele(n) => match self.get(n) {
                Ok(_) => {
                    if let Some(flag) = self.deleted.get_mut(n - 1) {
                        *flag = true;
                    }
                    Reply::line(format!("+OK message {n} deleted"))
                }
                Err(e) => Reply::error(e),
            },
            Command::Rset => {
                self.deleted.iter_mut().for_each(|d| *d = false);
                Reply::line(format!("+OK {} messages", self.messages.len()))
            }
            Command::Noop => Reply::line("+OK".into()),
            _ => Reply::error("-ERR not in this state\r\n"),
        }
    }

    /// The messages not marked deleted, numbered from 1.
    fn live(&self) -> impl Iterator<Item = (usize, &Message)> {
        self.messages
            .iter()
            .zip(&self.deleted)
            .enumerate()
            .filter(|(_, (_, deleted))| !**deleted)
            .map(|(i, (m, _))| (i + 1, m))
    }

    /// RETR n, or TOP n lines: the header and the first `lines` lines of the body.
    fn content(&self, n: usize, lines: Option<usize>) -> Reply {
        let message = match self.get(n) {
            Ok(m) => m,
            Err(e) => return Reply::error(e),
        };
        match self.inbox.open(&message.file) {
            Ok(Some(file)) => Reply {
                status: format!("+OK {} octets", message.size),
                body: Some(Body::Message { file, lines }),
            },
            Ok(None) => Reply::error("-ERR message was removed by another session\r\n"),
            Err(e) => {
                warn!(user = %self.user.name, error = %e, "cannot read a message");
                Reply::error("-ERR [SYS/TEMP] cannot read the message\r\n")
            }
        }
    }
}

/// A POP3 reply: the status line and, for multi-line replies, the body.
struct Reply {
    status: String,
    body: Option<Body>,
}

/// The body of a multi-line reply, without the final `.`.
enum Body {
    /// Lines of ours (listings), each ending in CRLF.
    Lines(Vec<u8>),
    /// A message, dot-stuffed as it is read from its file (RETR, or TOP with `lines`).
    Message { file: File, lines: Option<usize> },
}

impl Reply {
    fn line(status: String) -> Reply {
        Reply { status, body: None }
    }

    fn error(text: &str) -> Reply {
        Reply {
            status: text.trim_end().to_string(),
            body: None,
        }
    }

    fn listing(status: &str, lines: Vec<String>) -> Reply {
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(line.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        Reply {
            status: status.into(),
            body: Some(Body::Lines(body)),
        }
    }
}

/// Octets of a message read (and written) at a time.
const PIECE: usize = 64 * 1024;

/// Writes a reply. A message goes out piece by piece as it is read, so a session holds
/// little of it, whatever its size; a client that reads nothing of it for `patience` is
/// dropped, as one that stops writing is.
async fn write_multiline<W: AsyncWrite + Unpin>(
    conn: &mut W,
    reply: Reply,
    patience: Duration,
) -> std::io::Result<()> {
    let mut out = reply.status.into_bytes();
    out.extend_from_slice(b"\r\n");
    let multiline = reply.body.is_some();
    match reply.body {
        None => {}
        Some(Body::Lines(lines)) => out.extend_from_slice(&lines),
        Some(Body::Message { mut file, lines }) => {
            let mut stuffer = Stuffer::new(lines);
            let mut piece = vec![0; PIECE];
            loop {
                let read = crate::blocking(|| std::io::Read::read(&mut file, &mut piece))?;
                if read == 0 || !stuffer.feed(&piece[..read], &mut out) {
                    break;
                }
                write_within(conn, &out, patience).await?;
                out.clear();
            }
            stuffer.finish(&mut out);
        }
    }
    if multiline {
        out.extend_from_slice(b".\r\n");
    }
    write_within(conn, &out, patience).await
}

/// Writes `bytes`, giving up after `patience`.
async fn write_within<W: AsyncWrite + Unpin>(
    conn: &mut W,
    bytes: &[u8],
    patience: Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(patience, conn.write_all(bytes))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}
