//! One IMAP connection: reads commands through the bounded parser, runs them in the
//! state they are allowed in (not authenticated, authenticated, selected), and writes the
//! responses. Folder work is in `folders`, message work in `selected`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use posthorn_maildir::store::Mailbox;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{info, warn};

use super::command::{Command, FetchAttribute, FetchModifiers, Request, SelectParams, SequenceSet};
use super::condstore;
use super::enabled::Enabled;
use super::parser::{CommandReader, Input, Limits};
use super::response::Done;
use super::training::Lessons;
use super::view::View;
use super::{
    binary, fetch, folders, names, quota, search, searchres, selected, sort, thread, utf8,
};
use crate::access::{Accounts, Connection, Credentials, Login, Settings, User};
use crate::budget::Held;

/// Longest command line, literals apart.
const MAX_LINE: usize = 64 * 1024;
/// Largest literal outside APPEND (passwords, search strings).
const MAX_LITERAL: usize = 64 * 1024;
/// Before login, the largest literal of any command (APPEND's included) and the most
/// LOGIN's and AUTHENTICATE's credentials may take: they need a few hundred octets, and
/// anyone can connect, so an unauthenticated client gets no more (as Dovecot's login
/// process does).
const PRE_AUTH_MAX: usize = 8 * 1024;
/// Before login, the longest command line: the largest ID a client may send (RFC 2971
/// §3.3: 30 fields of 30 octets with values of 1024) fits, and still little is held per
/// connection.
const PRE_AUTH_LINE: usize = 40 * 1024;
/// The reader's limits before login.
const PRE_AUTH_LIMITS: Limits = Limits {
    max_line: PRE_AUTH_LINE,
    max_literal: PRE_AUTH_MAX,
    max_append: PRE_AUTH_MAX,
};
/// How often an idling session looks at its folder for changes made by other programs
/// (our own deliveries and sessions wake it at once: `watch`).
const OUTSIDE_CHANGES: Duration = Duration::from_secs(5);

/// Octets read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;
/// FETCH output is written once this much has piled up: with a chunk of file octets
/// on top, the most a session fetching holds.
const FLUSH_AT: usize = 256 * 1024;

/// Extensions announced in every state. IMAP4rev2 beside IMAP4rev1: a client that wants
/// it says ENABLE IMAP4rev2 (RFC 9051 §6.3.1), and every other client keeps IMAP4rev1.
const BASE_CAPABILITIES: &str = "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ BINARY UTF8=ACCEPT ID \
     ENABLE IDLE NAMESPACE UNSELECT MOVE UIDPLUS SPECIAL-USE LIST-EXTENDED LIST-STATUS \
     CHILDREN STATUS=SIZE ESEARCH SEARCHRES SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT \
     THREAD=REFERENCES MULTIAPPEND QUOTA QUOTA=RES-STORAGE CONDSTORE QRESYNC";

/// Serves one IMAP client until it logs out, disconnects or stays silent too long.
pub async fn serve<C: Connection>(
    conn: C,
    client: IpAddr,
    settings: Arc<Settings>,
    accounts: Arc<dyn Accounts>,
) {
    let mut session = Session {
        conn,
        client,
        settings,
        accounts,
        reader: CommandReader::new(PRE_AUTH_LIMITS),
        read_buffer: vec![0; READ_BUFFER].into_boxed_slice(),
        out: Vec::new(),
        state: State::NotAuthenticated,
        literal_budget: (Vec::new(), 0),
        enabled: Enabled::default(),
    };
    if let Err(e) = session.run().await {
        info!(%client, error = %e, "IMAP session ended");
    }
    let _ = session.conn.shutdown().await;
}

/// Where a session is.
pub(super) enum State {
    NotAuthenticated,
    Authenticated(User),
    Selected(User, Box<View>),
    Logout,
}

pub(super) struct Session<C> {
    conn: C,
    client: IpAddr,
    settings: Arc<Settings>,
    accounts: Arc<dyn Accounts>,
    reader: CommandReader,
    /// Where socket reads land before the parser takes them.
    read_buffer: Box<[u8]>,
    /// Responses not yet written.
    pub(super) out: Vec<u8>,
    pub(super) state: State,
    /// The share of the memory budget held for the large literals (APPEND's message) of
    /// the command being read, and how many octets it covers.
    literal_budget: (Vec<Held>, usize),
    /// CONDSTORE and QRESYNC, once the client has turned them on.
    enabled: Enabled,
}

impl<C: Connection> Session<C> {
    async fn run(&mut self) -> std::io::Result<()> {
        let greeting = format!(
            "* OK [CAPABILITY {}] {} IMAP ready\r\n",
            self.capabilities(),
            self.settings.hostname
        );
        self.conn.write_all(greeting.as_bytes()).await?;
        self.conn.flush().await?;
        loop {
            match self.reader.next() {
                Input::Incomplete => {
                    self.hold_for_literals().await;
                    if !self.read_more().await? {
                        return Ok(());
                    }
                }
                Input::Continue => {
                    self.hold_for_literals().await;
                    self.send(b"+ Ready for literal data\r\n").await?;
                }
                Input::Request(request) => {
                    // Held until the command is done: an APPEND's message stays in memory
                    // until it is written, so releasing the budget before would let every
                    // session's message be in memory at once.
                    let held = std::mem::take(&mut self.literal_budget);
                    self.execute(request).await?;
                    drop(held);
                    if matches!(self.state, State::Logout) {
                        return Ok(());
                    }
                }
                Input::Bad { tag, message } => {
                    self.literal_budget = (Vec::new(), 0);
                    let line = format!("{} BAD {message}\r\n", tag.as_deref().unwrap_or("*"));
                    self.send(line.as_bytes()).await?;
                }
                Input::TooBig { tag, message } => {
                    self.literal_budget = (Vec::new(), 0);
                    let line = match tag {
                        Some(tag) => format!("{tag} NO [TOOBIG] {message}\r\n"),
                        None => format!("* BAD {message}\r\n"),
                    };
                    self.send(line.as_bytes()).await?;
                }
                Input::Fatal { message } => {
                    self.send(format!("* BYE [TOOBIG] {message}\r\n").as_bytes())
                        .await?;
                    return Ok(());
                }
            }
        }
    }

    /// Before reading the octets of a large literal (an APPENDed message of up to the
    /// message size limit), waits until the memory budget shared by all sessions can hold
    /// it: until then the client's octets stay in the socket, so N clients appending large
    /// messages at once take turns instead of costing N messages.
    async fn hold_for_literals(&mut self) {
        let announced = self.reader.literals_announced();
        let (held, covered) = &mut self.literal_budget;
        if announced > *covered + fetch::CHUNK {
            held.push(
                self.settings
                    .whole_messages
                    .hold((announced - *covered) as u64)
                    .await,
            );
            *covered = announced;
        }
    }

    /// Reads from the client into the parser; false when the client is gone or silent for
    /// longer than the autologout timer.
    async fn read_more(&mut self) -> std::io::Result<bool> {
        let read = self.conn.read(&mut self.read_buffer);
        match tokio::time::timeout(self.settings.idle_timeout, read).await {
            Err(_) => {
                self.send(b"* BYE autologout; idle for too long\r\n")
                    .await?;
                Ok(false)
            }
            Ok(Ok(0)) => Ok(false),
            Ok(Ok(n)) => {
                self.reader.feed(&self.read_buffer[..n]);
                Ok(true)
            }
            Ok(Err(e)) => Err(e),
        }
    }

    /// Writes `bytes` after any pending untagged responses, and flushes. A client that
    /// stops reading is dropped after the idle timeout, like one that stops writing:
    /// otherwise it would hold its session, and what the session holds, forever.
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.extend_from_slice(bytes);
        let out = std::mem::take(&mut self.out);
        let patience = self.settings.idle_timeout;
        let write = async {
            self.conn.write_all(&out).await?;
            self.conn.flush().await
        };
        tokio::time::timeout(patience, write)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    /// The CAPABILITY list for the current state.
    fn capabilities(&self) -> String {
        let mut caps = String::from(BASE_CAPABILITIES);
        if matches!(self.state, State::NotAuthenticated) {
            if self.settings.starttls && !self.conn.is_tls() {
                caps.push_str(" STARTTLS");
            }
            if self.conn.is_tls() || self.settings.plaintext_auth {
                caps.push_str(" AUTH=PLAIN");
            } else {
                caps.push_str(" LOGINDISABLED");
            }
        }
        caps
    }

    async fn execute(&mut self, request: Request) -> std::io::Result<()> {
        let Request { tag, command } = request;
        if let Some(done) = names::refusal(&command, self.enabled) {
            return self
                .send(format!("{tag} {} {}\r\n", done.status, done.text).as_bytes())
                .await;
        }
        let command = names::to_store(command, self.enabled);
        if condstore::command_enables(&command) && self.user().is_some() {
            self.enable_condstore();
        }
        let done = match command {
            Command::Capability => {
                let line = format!("* CAPABILITY {}\r\n", self.capabilities());
                self.out.extend_from_slice(line.as_bytes());
                Done::ok("CAPABILITY completed")
            }
            Command::Noop | Command::Check => {
                self.refresh(true);
                Done::ok("NOOP completed")
            }
            Command::Logout => {
                self.out.extend_from_slice(b"* BYE logging out\r\n");
                self.state = State::Logout;
                Done::ok("LOGOUT completed")
            }
            Command::Id(fields) => {
                if !fields.is_empty() {
                    // `"name"="Thunderbird" "version"=NIL`: the client's text, quoted.
                    let fields = fields
                        .iter()
                        .map(|(name, value)| match value {
                            Some(value) => format!("{name:?}={value:?}"),
                            None => format!("{name:?}=NIL"),
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    info!(client = %self.client, fields = %fields, "IMAP client ID");
                }
                self.out.extend_from_slice(
                    format!(
                        "* ID (\"name\" \"Posthorn\" \"version\" \"{}\")\r\n",
                        env!("CARGO_PKG_VERSION")
                    )
                    .as_bytes(),
                );
                Done::ok("ID completed")
            }
            Command::StartTls => return self.start_tls(&tag).await,
            // Credentials stay within the small pre-login bound (a line may be longer, for ID).
            Command::Login { user, password } if user.len() + password.len() > PRE_AUTH_MAX => {
                Done::no("[TOOBIG] user name and password too long")
            }
            Command::Login { user, password } => {
                self.login(Credentials {
                    authzid: None,
                    username: user,
                    password,
                })
                .await
            }
            Command::Authenticate { mechanism, initial } => {
                match self.authenticate(&mechanism, initial).await? {
                    Some(done) => done,
                    None => return Ok(()),
                }
            }
            Command::Idle => return self.idle(&tag).await,
            Command::Fetch {
                uid,
                set,
                items,
                modifiers,
            } => self.fetch(uid, &set, &items, &modifiers).await?,
            Command::Search { ref criteria, .. }
            | Command::Sort { ref criteria, .. }
            | Command::Thread { ref criteria, .. }
                if search::needs_content(criteria) =>
            {
                // Each message is read whole to look into it: as many sessions' searches
                // as the shared budget allows run at once.
                let _held = self
                    .settings
                    .whole_messages
                    .hold(self.largest_selected())
                    .await;
                self.authenticated(&tag, command)
            }
            command => self.authenticated(&tag, command),
        };
        let line = format!("{tag} {} {}\r\n", done.status, done.text);
        self.send(line.as_bytes()).await
    }

    /// The commands that need a login; the selected-state ones also a selected mailbox.
    fn authenticated(&mut self, tag: &str, command: Command) -> Done {
        let mailbox = match &self.state {
            State::NotAuthenticated | State::Logout => {
                return Done::bad("log in first");
            }
            State::Authenticated(user) | State::Selected(user, _) => user.mailbox.clone(),
        };
        match command {
            Command::Enable(names) => {
                let enabled = self.enabled.enable(&names);
                if let State::Selected(_, view) = &mut self.state {
                    view.enabled = self.enabled;
                    if self.enabled.imap4rev2 {
                        view.recent.clear();
                    }
                }
                let mut line = String::from("* ENABLED");
                for name in enabled {
                    line.push(' ');
                    line.push_str(name);
                }
                line.push_str("\r\n");
                self.out.extend_from_slice(line.as_bytes());
                Done::ok("ENABLE completed")
            }
            Command::Namespace => {
                self.out
                    .extend_from_slice(b"* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
                Done::ok("NAMESPACE completed")
            }
            Command::Select {
                mailbox: name,
                read_only,
                params,
            } => self.select(&mailbox, &name, read_only, &params),
            Command::Create(name) => folders::create(&mailbox, &name),
            Command::Delete(name) => folders::delete(&mailbox, &name, self.enabled),
            Command::Rename { from, to } => folders::rename(&mailbox, &from, &to),
            Command::Subscribe(name) => folders::subscribe(&mailbox, &name, true),
            Command::Unsubscribe(name) => folders::subscribe(&mailbox, &name, false),
            Command::List(list) => folders::list(&mailbox, &list, self.enabled, &mut self.out),
            Command::Lsub { reference, pattern } => {
                folders::lsub(&mailbox, &reference, &pattern, self.enabled, &mut self.out)
            }
            Command::Status {
                mailbox: name,
                items,
            } => folders::status(&mailbox, &name, &items, self.enabled, &mut self.out),
            Command::Append {
                mailbox: name,
                messages,
            } => {
                if let Some(refused) = utf8::append_refusal(&messages, self.enabled) {
                    return refused;
                }
                let quota = self.user().and_then(|u| u.quota);
                let mut lessons = self.lessons();
                let messages = binary::storable_messages(messages);
                let done = folders::append(&mailbox, quota, &name, &messages, &mut lessons);
                lessons.hand_over();
                self.refresh(true);
                done
            }
            Command::GetQuota(root) => {
                let limit = self.user().and_then(|u| u.quota);
                quota::get_quota(&mailbox, limit, &root, &mut self.out)
            }
            Command::GetQuotaRoot(name) => {
                let limit = self.user().and_then(|u| u.quota);
                quota::get_quota_root(&mailbox, limit, &name, self.enabled, &mut self.out)
            }
            Command::SetQuota(_) => quota::set_quota(),
            command => self.selected(tag, command),
        }
    }

    /// Commands of the selected state.
    fn selected(&mut self, tag: &str, command: Command) -> Done {
        let quota = self.user().and_then(|u| u.quota);
        let mut lessons = self.lessons();
        let State::Selected(user, view) = &mut self.state else {
            return Done::bad("no mailbox selected");
        };
        let mailbox = user.mailbox.clone();
        let out = &mut self.out;
        let (done, expunges) = match command {
            Command::Close | Command::Unselect => {
                if matches!(command, Command::Close) && !view.read_only {
                    selected::expunge(view, None, &mut Vec::new());
                }
                let user = user.clone();
                self.state = State::Authenticated(user);
                return Done::ok("mailbox closed");
            }
            Command::Expunge { uids } => (selected::expunge(view, uids.as_ref(), out), true),
            Command::Search {
                uid,
                charset,
                criteria,
                returning,
            } => (
                selected::search(
                    &mut *view,
                    tag,
                    uid,
                    charset.as_deref(),
                    &criteria,
                    returning,
                    out,
                ),
                uid,
            ),
            Command::Sort {
                uid,
                order,
                charset,
                criteria,
            } => {
                let criteria = searchres::with_saved(view, &criteria);
                (sort::sort(view, uid, &order, &charset, &criteria, out), uid)
            }
            Command::Thread {
                uid,
                algorithm,
                charset,
                criteria,
            } => {
                let criteria = searchres::with_saved(view, &criteria);
                (
                    thread::thread(view, uid, algorithm, &charset, &criteria, out),
                    uid,
                )
            }
            Command::Store {
                uid,
                set,
                operation,
                silent,
                flags,
                unchanged_since,
            } => (
                selected::store(
                    view,
                    uid,
                    &set,
                    operation,
                    silent,
                    &flags,
                    unchanged_since,
                    out,
                    &mut lessons,
                ),
                uid,
            ),
            Command::Copy {
                uid,
                set,
                mailbox: target,
            } => (
                selected::copy(
                    view,
                    &mailbox,
                    quota,
                    uid,
                    &set,
                    &target,
                    false,
                    out,
                    &mut lessons,
                ),
                true,
            ),
            Command::Move {
                uid,
                set,
                mailbox: target,
            } => (
                selected::copy(
                    view,
                    &mailbox,
                    quota,
                    uid,
                    &set,
                    &target,
                    true,
                    out,
                    &mut lessons,
                ),
                true,
            ),
            _ => (Done::bad("command not allowed here"), false),
        };
        lessons.hand_over();
        self.refresh(expunges);
        done
    }

    /// FETCH: each message's response is built and written before the next, its large
    /// octets copied from the message file in chunks, so what a session holds stays
    /// bounded however large the messages and however slowly the client reads.
    async fn fetch(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        items: &[FetchAttribute],
        modifiers: &FetchModifiers,
    ) -> std::io::Result<Done> {
        // RFC 7162 §3.2.6: VANISHED only in UID FETCH, and only once QRESYNC is on.
        if modifiers.vanished && !(uid && self.enabled.qresync) {
            return Ok(Done::bad("VANISHED needs UID FETCH and ENABLE QRESYNC"));
        }
        // §3.1.4.1: CHANGEDSINCE answers with each message's MODSEQ.
        let mut items = items.to_vec();
        if modifiers.changed_since.is_some() && !items.contains(&FetchAttribute::ModSeq) {
            items.push(FetchAttribute::ModSeq);
        }
        let items = items.as_slice();
        let indexes = match &mut self.state {
            State::Selected(_, view) => {
                match selected::fetch_prepare(view, uid, set, items, modifiers.changed_since) {
                    Ok(indexes) => indexes,
                    Err(done) => return Ok(done),
                }
            }
            _ => return Ok(Done::bad("no mailbox selected")),
        };
        if let (State::Selected(_, view), Some(since), true) =
            (&self.state, modifiers.changed_since, modifiers.vanished)
        {
            condstore::write_vanished(view, since, Some(set), true, &mut self.out);
        }
        let mut expunged = false;
        let mut failed = false;
        let mut unknown_cte = false;
        let mut waiting = indexes.as_slice();
        while !waiting.is_empty() {
            let State::Selected(_, view) = &self.state else {
                break;
            };
            let opened = fetch::open_batch(view, waiting, items);
            waiting = waiting.get(opened.len()..).unwrap_or_default();
            for (index, source) in opened {
                let source = match source {
                    Ok(source) => source,
                    Err(error) => {
                        match error {
                            Some(e) => {
                                warn!(error = %e, "cannot read a message");
                                failed = true;
                            }
                            None => expunged = true,
                        }
                        continue;
                    }
                };
                let budget = fetch::budget(&self.settings.whole_messages, source.as_ref()).await;
                let State::Selected(_, view) = &self.state else {
                    break;
                };
                match fetch::reply(view, uid, index, items, source, budget) {
                    Ok(Some(reply)) => self.write_reply(reply).await?,
                    Ok(None) => expunged = true,
                    Err(e) if binary::is_unknown_cte(&e) => unknown_cte = true,
                    Err(e) => {
                        warn!(error = %e, "cannot read a message");
                        failed = true;
                    }
                }
            }
        }
        self.refresh(uid);
        // Messages another session expunged are skipped and the rest answered, as Dovecot
        // does: OK with EXPUNGEISSUED (RFC 9051 §7.1) tells the client why some are missing.
        Ok(if failed {
            Done::no("[SERVERBUG] some messages could not be read")
        } else if unknown_cte {
            Done::no("[UNKNOWN-CTE] cannot decode a part's Content-Transfer-Encoding")
        } else if expunged {
            Done::ok("[EXPUNGEISSUED] some messages were already expunged")
        } else {
            Done::ok("FETCH completed")
        })
    }

    /// Writes one FETCH response: rendered pieces are queued, file ranges copied a chunk
    /// at a time, and the output written whenever `FLUSH_AT` has piled up. A message file
    /// that turns out shorter than announced ends the session, as the literal's length
    /// was already sent.
    async fn write_reply(&mut self, reply: fetch::Reply) -> std::io::Result<()> {
        for piece in reply.pieces {
            match (piece, &reply.file) {
                (fetch::Piece::Bytes(bytes), _) => self.out.extend_from_slice(&bytes),
                (fetch::Piece::File { start, len }, Some(file)) => {
                    let end = start + len;
                    let mut at = start;
                    while at < end {
                        let n = (end - at).min(fetch::CHUNK as u64);
                        let chunk = crate::blocking(|| fetch::read_range(file, at, n))?;
                        self.out.extend_from_slice(&chunk);
                        at += n;
                        self.flush_at_mark().await?;
                    }
                }
                (fetch::Piece::Decoded(mut stream), Some(file)) => {
                    let announced = stream.len();
                    let mut written = 0;
                    while let Some(chunk) = crate::blocking(|| stream.next_chunk(file))? {
                        written += chunk.len() as u64;
                        self.out.extend_from_slice(&chunk);
                        self.flush_at_mark().await?;
                    }
                    if written != announced {
                        return Err(std::io::Error::other("decoded part shorter than announced"));
                    }
                }
                (fetch::Piece::File { .. } | fetch::Piece::Decoded(_), None) => {
                    return Err(std::io::Error::other("FETCH range without a file"));
                }
            }
            self.flush_at_mark().await?;
        }
        Ok(())
    }

    /// Writes the pending output once `FLUSH_AT` has piled up.
    async fn flush_at_mark(&mut self) -> std::io::Result<()> {
        if self.out.len() >= FLUSH_AT {
            self.send(b"").await?;
        }
        Ok(())
    }

    /// The size of the largest message in the selected mailbox (0 when none is selected).
    fn largest_selected(&self) -> u64 {
        match &self.state {
            State::Selected(_, view) => view.messages.iter().map(|m| m.size).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// An empty collection for what the command about to run teaches the spam
    /// classifier about the logged-in user's mail.
    fn lessons(&self) -> Lessons {
        let account = self.user().map_or("", |u| u.name.as_str());
        Lessons::new(self.settings.learner.as_ref(), account)
    }

    /// The logged-in user.
    fn user(&self) -> Option<&User> {
        match &self.state {
            State::Authenticated(user) | State::Selected(user, _) => Some(user),
            _ => None,
        }
    }

    /// Brings the selected view up to date, writing untagged responses.
    fn refresh(&mut self, expunges: bool) {
        if let State::Selected(user, view) = &mut self.state
            && let Err(e) = crate::blocking(|| view.refresh(&mut self.out, expunges))
        {
            warn!(user = %user.name, error = %e, "cannot read the selected mailbox");
        }
    }

    /// Turns CONDSTORE on for the rest of the connection (RFC 7162 §3.1). The first such
    /// command while a mailbox is selected also tells its HIGHESTMODSEQ (§3.1.2.1).
    fn enable_condstore(&mut self) {
        let first = !self.enabled.condstore;
        self.enabled.condstore = true;
        if let State::Selected(_, view) = &mut self.state {
            view.enabled = self.enabled;
            if first {
                let line = format!(
                    "* OK [HIGHESTMODSEQ {}] highest mod-sequence\r\n",
                    view.highest_modseq
                );
                self.out.extend_from_slice(line.as_bytes());
            }
        }
    }

    /// SELECT or EXAMINE, with RFC 7162's CONDSTORE or QRESYNC parameter.
    fn select(
        &mut self,
        mailbox: &Mailbox,
        name: &str,
        read_only: bool,
        params: &SelectParams,
    ) -> Done {
        let Some(user) = self.user().cloned() else {
            return Done::bad("log in first");
        };
        if params.qresync.is_some() && !self.enabled.qresync {
            return Done::bad("QRESYNC is not enabled");
        }
        self.enabled.condstore |= params.condstore;
        // RFC 7162 §3.2.11 and RFC 9051 §6.3.2: a QRESYNC or IMAP4rev2 client learns where
        // the old mailbox's responses end.
        if (self.enabled.qresync || self.enabled.imap4rev2)
            && matches!(self.state, State::Selected(..))
        {
            self.out
                .extend_from_slice(b"* OK [CLOSED] previous mailbox closed\r\n");
        }
        // A failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1).
        self.state = State::Authenticated(user.clone());
        let folder = match mailbox.folder(name) {
            Ok(folder) => folder,
            Err(e) => return folders::refusal(&e),
        };
        let mut view = match crate::blocking(|| View::open(name, folder, read_only)) {
            Ok(view) => view,
            Err(e) => {
                warn!(user = %user.name, error = %e, "cannot open a mailbox");
                return Done::no("[SERVERBUG] cannot open the mailbox");
            }
        };
        view.enabled = self.enabled;
        let mut text = format!(
            "{}* {} EXISTS\r\n",
            view.flags_responses(),
            view.messages.len()
        );
        if self.enabled.imap4rev2 {
            // RFC 9051 §6.3.2: no \Recent and no UNSEEN, but the mailbox's LIST response.
            view.recent.clear();
            text.push_str(&folders::list_one(&user.mailbox, name, self.enabled));
        } else {
            text.push_str(&format!("* {} RECENT\r\n", view.recent_count()));
            let unseen = view
                .messages
                .iter()
                .position(|m| !m.flags.contains(&super::command::Flag::Seen));
            if let Some(index) = unseen {
                text.push_str(&format!("* OK [UNSEEN {}] first unseen\r\n", index + 1));
            }
        }
        text.push_str(&format!(
            "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] predicted next UID\r\n\
             * OK [HIGHESTMODSEQ {}] highest mod-sequence\r\n",
            view.uid_validity, view.uid_next, view.highest_modseq
        ));
        self.out.extend_from_slice(text.as_bytes());
        if let Some(qresync) = &params.qresync {
            condstore::resync(&view, qresync, &mut self.out);
        }
        let access = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        self.state = State::Selected(user, Box::new(view));
        Done::ok(format!(
            "[{access}] {} completed",
            if read_only { "EXAMINE" } else { "SELECT" }
        ))
    }

    /// STARTTLS: only before login and only once.
    async fn start_tls(&mut self, tag: &str) -> std::io::Result<()> {
        if !self.settings.starttls || self.conn.is_tls() {
            return self
                .send(format!("{tag} BAD STARTTLS not available\r\n").as_bytes())
                .await;
        }
        if !matches!(self.state, State::NotAuthenticated) {
            return self
                .send(format!("{tag} BAD already logged in\r\n").as_bytes())
                .await;
        }
        self.send(format!("{tag} OK begin TLS now\r\n").as_bytes())
            .await?;
        self.reader.clear();
        self.conn.start_tls().await
    }

    /// LOGIN, or the credentials of AUTHENTICATE PLAIN.
    async fn login(&mut self, credentials: Credentials) -> Done {
        if !matches!(self.state, State::NotAuthenticated) {
            return Done::bad("already logged in");
        }
        if !self.conn.is_tls() && !self.settings.plaintext_auth {
            return Done::no("[PRIVACYREQUIRED] use STARTTLS before logging in");
        }
        let login = credentials.username.clone();
        let user = match self.accounts.login(self.client, credentials).await {
            Login::Accepted(user) => user,
            Login::Rejected => return Done::no("[AUTHENTICATIONFAILED] invalid credentials"),
            Login::Blocked => {
                return Done::no("[UNAVAILABLE] too many failed logins; try again later");
            }
        };
        if let Err(e) = crate::blocking(|| user.mailbox.prepare()) {
            warn!(user = %user.name, error = %e, "cannot prepare the mailbox");
            return Done::no("[SERVERBUG] cannot open the mailbox");
        }
        info!(client = %self.client, user = %user.name, login, "IMAP login");
        self.reader.set_limits(Limits {
            max_line: MAX_LINE,
            max_literal: MAX_LITERAL,
            max_append: self.settings.max_message_size,
        });
        self.state = State::Authenticated(user);
        Done::ok(format!("[CAPABILITY {}] logged in", self.capabilities()))
    }

    /// AUTHENTICATE PLAIN (with SASL-IR or a continuation). `None` when the exchange
    /// was already answered (cancelled or unreadable).
    async fn authenticate(
        &mut self,
        mechanism: &str,
        initial: Option<String>,
    ) -> std::io::Result<Option<Done>> {
        if mechanism != "PLAIN" {
            return Ok(Some(Done::no("[CANNOT] unsupported mechanism")));
        }
        if !matches!(self.state, State::NotAuthenticated) {
            return Ok(Some(Done::bad("already logged in")));
        }
        // Refused before the client sends its password in the clear.
        if !self.conn.is_tls() && !self.settings.plaintext_auth {
            return Ok(Some(Done::no(
                "[PRIVACYREQUIRED] use STARTTLS before logging in",
            )));
        }
        let response = match initial {
            Some(response) => response,
            None => {
                self.send(b"+ \r\n").await?;
                loop {
                    match self.reader.next_line() {
                        Some(Ok(line)) => break line,
                        Some(Err(())) => return Ok(Some(Done::bad("response too long"))),
                        None => {
                            if !self.read_more().await? {
                                self.state = State::Logout;
                                return Ok(Some(Done::bad("connection closed")));
                            }
                        }
                    }
                }
            }
        };
        if response.len() > PRE_AUTH_MAX {
            return Ok(Some(Done::bad("response too long")));
        }
        if response == "*" {
            return Ok(Some(Done::bad("authentication cancelled")));
        }
        let credentials = posthorn_proto::sasl::decode_response(&response)
            .ok()
            .and_then(|bytes| posthorn_proto::sasl::parse_plain(&bytes).ok());
        Ok(Some(match credentials {
            Some(credentials) => self.login(credentials).await,
            None => Done::bad("malformed PLAIN response"),
        }))
    }

    /// IDLE (RFC 2177): reports changes to the selected mailbox as they happen, until
    /// the client sends DONE.
    async fn idle(&mut self, tag: &str) -> std::io::Result<()> {
        if self.user().is_none() {
            return self
                .send(format!("{tag} BAD log in first\r\n").as_bytes())
                .await;
        }
        self.send(b"+ idling\r\n").await?;
        let deadline = tokio::time::Instant::now() + self.settings.idle_timeout;
        let changes = match &self.state {
            State::Selected(_, view) => Some(super::watch::watch(view.folder.dir())),
            _ => None,
        };
        loop {
            match self.reader.next_line() {
                Some(Ok(line)) if line.eq_ignore_ascii_case("DONE") => {
                    return self
                        .send(format!("{tag} OK IDLE terminated\r\n").as_bytes())
                        .await;
                }
                Some(_) => {
                    return self
                        .send(format!("{tag} BAD expected DONE\r\n").as_bytes())
                        .await;
                }
                None => {}
            }
            let notified = changes.as_ref().map(|changes| changes.notified());
            tokio::pin!(notified);
            if let Some(notified) = notified.as_mut().as_pin_mut() {
                notified.enable();
            }
            // Listening before looking: a change made after the look still wakes us.
            self.refresh(true);
            if !self.out.is_empty() {
                self.send(b"").await?;
            }
            let changed = async {
                match notified.as_mut().as_pin_mut() {
                    Some(notified) => notified.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = self.conn.read(&mut self.read_buffer) => match read? {
                    0 => {
                        self.state = State::Logout;
                        return Ok(());
                    }
                    n => self.reader.feed(&self.read_buffer[..n]),
                },
                () = changed => {}
                _ = tokio::time::sleep(OUTSIDE_CHANGES) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    self.send(b"* BYE autologout; idle for too long\r\n").await?;
                    self.state = State::Logout;
                    return Ok(());
                }
            }
        }
    }
}
