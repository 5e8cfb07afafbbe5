//! The server side of an SMTP session as a sans-IO state machine.
//!
//! The driver feeds the bytes it reads (`feed`) and calls `next_action` until it returns
//! [`Action::NeedInput`], writing `output()` before it blocks on the socket: that is all
//! RFC 2920 pipelining asks of a server. Decisions that need the outside world (who may
//! send, which recipients exist, whether the spool took the message) come out as actions;
//! the driver answers each with `accept`, `accept_rcpt`, `reject` or `finish`.
//!
//! Each command goes through a check step here (sequence, syntax, limits) before it
//! reaches the driver; policy runs between the check and the reply.

use crate::command::{Command, MailFrom, RcptTo, parse_command};
use crate::data::{BareNewline, ContentDecoder, ContentError, ContentLimits};
use crate::reply::{Reply, table};
use crate::sasl::{self, Credentials, Mechanism, ResponseError};

/// The limits and options of one session. Defaults are the product's defaults.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our name in the greeting, EHLO reply and Received header.
    pub hostname: String,
    /// Longest command line in octets, without CRLF (RFC 5321 §4.5.3.1.4 asks at least 512).
    pub max_command_line: usize,
    /// Most recipients in one transaction (RFC 5321 §4.5.3.1.8 asks at least 100).
    pub max_recipients: usize,
    /// 5xx replies a client may earn before we close the connection.
    pub max_errors: u32,
    /// Line, size and bare-newline rules for message content.
    pub content: ContentLimits,
    /// Offer STARTTLS (a certificate is available and the session is not yet encrypted).
    pub starttls: bool,
    /// Whether and when SMTP AUTH is offered, and whether it is required.
    pub auth: AuthPolicy,
}

/// SMTP AUTH on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthPolicy {
    /// AUTH is available at all (off on the mx listener by default).
    pub enabled: bool,
    /// AUTH is offered before TLS too; otherwise a password never crosses the network in
    /// the clear (RFC 4954 §4, RFC 8314).
    pub without_tls: bool,
    /// MAIL needs a successful AUTH first (submission, RFC 6409 §4.3).
    pub required: bool,
}

impl SessionConfig {
    /// The defaults for a server called `hostname`.
    pub fn new(hostname: impl Into<String>) -> Self {
        SessionConfig {
            hostname: hostname.into(),
            max_command_line: 2048,
            max_recipients: 1000,
            max_errors: 20,
            content: ContentLimits {
                max_line: 8000,
                max_size: 50 * 1024 * 1024,
                bare_newline: BareNewline::Reject,
            },
            starttls: false,
            auth: AuthPolicy::default(),
        }
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `output()`, then read and `feed` more input.
    NeedInput,
    /// EHLO or HELO with this name: `accept` or `reject`.
    Hello(String),
    /// MAIL FROM, already checked for sequence and syntax: `accept` or `reject`.
    Mail(MailFrom),
    /// RCPT TO, already checked: `accept_rcpt` with the resolved destination, or `reject`.
    Rcpt(RcptTo),
    /// Message content is about to start: open storage, then `accept` (or `reject`).
    DataStart,
    /// Decoded content is waiting: move it out with `take_content`.
    Data,
    /// The content is complete and valid: make it durable, then `finish` with the reply.
    DataEnd,
    /// The content was refused or the transaction dropped: discard stored content. The
    /// reply is already in the output.
    DataAbort,
    /// Write `output()`, do the TLS handshake, then call `tls_established`.
    StartTls,
    /// The client gave credentials: check them, then `authenticated` or `reject`.
    Auth(Credentials),
    /// Write `output()` and close the connection.
    Close,
}

/// The client's EHLO/HELO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The name the client gave.
    pub name: String,
    /// True after EHLO (extensions allowed), false after HELO.
    pub esmtp: bool,
}

/// One accepted recipient with what the driver resolved it to.
#[derive(Debug, Clone)]
pub struct Recipient<R> {
    /// The RCPT command as given.
    pub rcpt: RcptTo,
    /// The driver's resolution (local mailbox, remote route, alias expansion...).
    pub resolved: R,
}

/// The mail transaction in progress: MAIL, the accepted RCPTs, and the content decoder.
#[derive(Debug)]
pub struct Transaction<R> {
    /// The accepted MAIL command.
    pub mail: MailFrom,
    /// The accepted recipients, in order.
    pub recipients: Vec<Recipient<R>>,
    /// Set once content has started; BDAT keeps it across chunks.
    decoder: Option<ContentDecoder>,
}

impl<R> Transaction<R> {
    /// Octets of decoded content so far.
    pub fn content_size(&self) -> u64 {
        self.decoder.as_ref().map_or(0, ContentDecoder::size)
    }
}

#[derive(Debug, Clone)]
enum Pending {
    Hello(Hello),
    Mail(MailFrom),
    Rcpt(RcptTo),
    /// `chunk` is the BDAT size and LAST flag; `None` for DATA.
    DataStart {
        chunk: Option<(u64, bool)>,
    },
    DataEnd,
    StartTls,
    Auth(Credentials),
}

/// Where a SASL exchange stands: which response comes next.
#[derive(Debug, Clone)]
enum SaslStep {
    /// The PLAIN message.
    Plain,
    /// LOGIN's user name.
    LoginUsername,
    /// LOGIN's password, for this user.
    LoginPassword(String),
}

#[derive(Debug)]
enum Phase {
    /// Reading command lines.
    Command,
    /// Discarding the rest of an overlong command line.
    SkipLine,
    /// Waiting for the driver's verdict.
    Await(Pending),
    /// Reading a SASL response line.
    Sasl(SaslStep),
    /// Inside DATA.
    Data,
    /// Inside a BDAT chunk.
    Chunk {
        remaining: u64,
        size: u64,
        last: bool,
    },
    /// Discarding a BDAT chunk we refuse, then answering `reply`.
    SkipChunk { remaining: u64, reply: Reply },
    /// The connection is over.
    Closed,
}

/// One SMTP server session. `R` is what the driver attaches to each accepted recipient.
#[derive(Debug)]
pub struct Session<R> {
    config: SessionConfig,
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
    content: Vec<u8>,
    phase: Phase,
    hello: Option<Hello>,
    transaction: Option<Transaction<R>>,
    errors: u32,
    tls: bool,
    authenticated: Option<String>,
    shutting_down: bool,
    quit: bool,
}

impl<R> Session<R> {
    /// A new session; call `greet` or write a refusal before anything else.
    pub fn new(config: SessionConfig) -> Self {
        Session {
            config,
            input: Vec::new(),
            pos: 0,
            output: Vec::new(),
            content: Vec::new(),
            phase: Phase::Command,
            hello: None,
            transaction: None,
            errors: 0,
            tls: false,
            authenticated: None,
            shutting_down: false,
            quit: false,
        }
    }

    /// A session that starts inside TLS (implicit TLS, RFC 8314).
    pub fn new_tls(config: SessionConfig) -> Self {
        let mut session = Self::new(config);
        session.tls = true;
        session
    }

    /// Queues the 220 greeting.
    pub fn greet(&mut self) {
        let reply = table::greeting(&self.config.hostname);
        reply.write_to(&mut self.output);
    }

    /// Replies waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Marks the output as written.
    pub fn clear_output(&mut self) {
        self.output.clear();
    }

    /// Appends bytes read from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        } else if self.pos > 64 * 1024 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// Gives back large buffers while the connection waits for the client; an idle session
    /// then holds almost nothing. The driver calls it before blocking on a read.
    pub fn release_idle_buffers(&mut self) {
        const KEEP: usize = 4096;
        if self.pos == self.input.len() && self.input.capacity() > KEEP {
            self.input = Vec::new();
            self.pos = 0;
        }
        if self.output.is_empty() && self.output.capacity() > KEEP {
            self.output = Vec::new();
        }
        if self.content.is_empty() && self.content.capacity() > KEEP {
            self.content = Vec::new();
        }
    }

    /// Moves decoded message content into `into`.
    pub fn take_content(&mut self, into: &mut Vec<u8>) {
        into.append(&mut self.content);
    }

    /// The client's EHLO/HELO, once accepted.
    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    /// The transaction in progress.
    pub fn transaction(&self) -> Option<&Transaction<R>> {
        self.transaction.as_ref()
    }

    /// True once TLS is active.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The user who authenticated in this session.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Error replies so far: the driver slows down clients that make many (tarpitting).
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// True while message content is being received (the data timeout applies).
    pub fn in_content(&self) -> bool {
        matches!(
            self.phase,
            Phase::Data | Phase::Chunk { .. } | Phase::SkipChunk { .. }
        )
    }

    /// True when the session has ended.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// True once the client has said QUIT: the session ended as it should.
    pub fn said_quit(&self) -> bool {
        self.quit
    }

    /// The client was silent too long (RFC 5321 §4.5.3.2): say so and close.
    pub fn timeout(&mut self) {
        self.respond(table::timeout());
    }

    /// The server is stopping: close now if no transaction is in progress, otherwise as
    /// soon as the current one ends.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        if self.transaction.is_none() && matches!(self.phase, Phase::Command | Phase::SkipLine) {
            self.respond(table::shutting_down());
        }
    }

    /// The TLS handshake after STARTTLS succeeded: everything learned before is forgotten
    /// and the client must EHLO again (RFC 3207 §4.2).
    pub fn tls_established(&mut self) {
        if matches!(self.phase, Phase::Await(Pending::StartTls)) {
            self.tls = true;
            self.authenticated = None;
            self.hello = None;
            self.transaction = None;
            self.phase = Phase::Command;
        }
    }

    /// Accepts the pending EHLO/HELO, MAIL or content start.
    pub fn accept(&mut self) {
        let Phase::Await(pending) = &self.phase else {
            debug_assert!(false, "accept without a pending decision");
            return;
        };
        match pending.clone() {
            Pending::Hello(hello) => {
                let reply = if hello.esmtp {
                    self.ehlo_reply()
                } else {
                    Reply::plain(250, self.config.hostname.clone())
                };
                self.hello = Some(hello);
                self.phase = Phase::Command;
                self.respond(reply);
            }
            Pending::Mail(mail) => {
                self.transaction = Some(Transaction {
                    mail,
                    recipients: Vec::new(),
                    decoder: None,
                });
                self.phase = Phase::Command;
                self.respond(table::sender_ok());
            }
            Pending::DataStart { chunk } => {
                let limits = self.config.content;
                let Some(transaction) = self.transaction.as_mut() else {
                    self.phase = Phase::Command;
                    return;
                };
                match chunk {
                    None => {
                        transaction.decoder = Some(ContentDecoder::for_data(limits));
                        self.phase = Phase::Data;
                        self.respond(table::start_data());
                    }
                    Some((size, last)) => {
                        transaction.decoder = Some(ContentDecoder::for_chunks(limits));
                        self.phase = Phase::Chunk {
                            remaining: size,
                            size,
                            last,
                        };
                    }
                }
            }
            Pending::Rcpt(_) | Pending::DataEnd | Pending::StartTls | Pending::Auth(_) => {
                debug_assert!(false, "accept does not answer {pending:?}");
            }
        }
    }

    /// Accepts the pending RCPT, attaching the driver's resolution of it.
    pub fn accept_rcpt(&mut self, resolved: R) {
        let Phase::Await(Pending::Rcpt(rcpt)) = &self.phase else {
            debug_assert!(false, "accept_rcpt without a pending RCPT");
            return;
        };
        let rcpt = rcpt.clone();
        if let Some(transaction) = self.transaction.as_mut() {
            transaction.recipients.push(Recipient { rcpt, resolved });
        }
        self.phase = Phase::Command;
        self.respond(table::recipient_ok());
    }

    /// Accepts the pending AUTH: the session now acts for `user` (235, RFC 4954 §6).
    pub fn authenticated_as(&mut self, user: String) {
        if !matches!(self.phase, Phase::Await(Pending::Auth(_))) {
            debug_assert!(false, "authenticated_as without a pending AUTH");
            return;
        }
        self.authenticated = Some(user);
        self.phase = Phase::Command;
        self.respond(Reply::new(235, 7, 0, "Authentication successful"));
    }

    /// Refuses the pending decision with `reply`.
    pub fn reject(&mut self, reply: Reply) {
        let Phase::Await(pending) = &self.phase else {
            debug_assert!(false, "reject without a pending decision");
            return;
        };
        match *pending {
            Pending::DataStart {
                chunk: Some((size, _)),
            } => {
                // The chunk's octets are on their way; read and drop them, then answer.
                self.transaction = None;
                self.phase = Phase::SkipChunk {
                    remaining: size,
                    reply,
                };
                return;
            }
            Pending::DataEnd | Pending::DataStart { chunk: None } => self.transaction = None,
            _ => {}
        }
        self.phase = Phase::Command;
        self.respond(reply);
        self.close_if_shutting_down();
    }

    /// Answers the end of content: 250 once the message is durable, or the error.
    pub fn finish(&mut self, reply: Reply) {
        if !matches!(self.phase, Phase::Await(Pending::DataEnd)) {
            debug_assert!(false, "finish without pending content end");
            return;
        }
        self.transaction = None;
        self.phase = Phase::Command;
        self.respond(reply);
        self.close_if_shutting_down();
    }

    /// Runs the session until it needs input or a decision.
    pub fn next_action(&mut self) -> Action {
        loop {
            match &mut self.phase {
                Phase::Closed => return Action::Close,
                Phase::Await(pending) => {
                    if !self.content.is_empty() {
                        return Action::Data;
                    }
                    return match pending {
                        Pending::Hello(hello) => Action::Hello(hello.name.clone()),
                        Pending::Mail(mail) => Action::Mail(mail.clone()),
                        Pending::Rcpt(rcpt) => Action::Rcpt(rcpt.clone()),
                        Pending::DataStart { .. } => Action::DataStart,
                        Pending::DataEnd => Action::DataEnd,
                        Pending::StartTls => Action::StartTls,
                        Pending::Auth(credentials) => Action::Auth(credentials.clone()),
                    };
                }
                Phase::Command => {
                    let Some((start, end)) = self.next_line() else {
                        return Action::NeedInput;
                    };
                    if let Some(action) = self.line(start, end) {
                        return action;
                    }
                }
                Phase::Sasl(step) => {
                    let step = step.clone();
                    let Some((start, end)) = self.next_line() else {
                        return Action::NeedInput;
                    };
                    let end = if end > start && self.input[end - 1] == b'\r' {
                        end - 1
                    } else {
                        end
                    };
                    let response = String::from_utf8_lossy(&self.input[start..end]).into_owned();
                    if let Some(action) = self.sasl_response(step, &response) {
                        return action;
                    }
                }
                Phase::SkipLine => match memchr::memchr(b'\n', &self.input[self.pos..]) {
                    Some(i) => {
                        self.pos += i + 1;
                        self.phase = Phase::Command;
                        self.respond(table::line_too_long());
                    }
                    None => {
                        self.pos = self.input.len();
                        return Action::NeedInput;
                    }
                },
                Phase::Data => {
                    let Some(decoder) = self.transaction.as_mut().and_then(|t| t.decoder.as_mut())
                    else {
                        self.phase = Phase::Command;
                        continue;
                    };
                    let (used, done) = decoder.decode(&self.input[self.pos..], &mut self.content);
                    self.pos += used;
                    if done {
                        if let Some(action) = self.content_complete() {
                            return action;
                        }
                    } else if !self.content.is_empty() {
                        return Action::Data;
                    } else {
                        return Action::NeedInput;
                    }
                }
                Phase::Chunk {
                    remaining,
                    size,
                    last,
                } => {
                    let (size, last) = (*size, *last);
                    let available = (self.input.len() - self.pos) as u64;
                    let take = (*remaining).min(available) as usize;
                    *remaining -= take as u64;
                    let chunk_done = *remaining == 0;
                    let Some(decoder) = self.transaction.as_mut().and_then(|t| t.decoder.as_mut())
                    else {
                        self.phase = Phase::Command;
                        continue;
                    };
                    decoder.decode(&self.input[self.pos..self.pos + take], &mut self.content);
                    self.pos += take;
                    if !chunk_done {
                        if !self.content.is_empty() {
                            return Action::Data;
                        }
                        return Action::NeedInput;
                    }
                    if last {
                        decoder.finish(&mut self.content);
                        if let Some(action) = self.content_complete() {
                            return action;
                        }
                    } else if let Some(error) = decoder.error() {
                        self.content.clear();
                        self.transaction = None;
                        self.phase = Phase::Command;
                        self.respond(content_error_reply(error));
                        return Action::DataAbort;
                    } else {
                        self.phase = Phase::Command;
                        self.respond(table::chunk_ok(size));
                    }
                }
                Phase::SkipChunk { remaining, .. } => {
                    let available = (self.input.len() - self.pos) as u64;
                    let take = (*remaining).min(available);
                    *remaining -= take;
                    self.pos += take as usize;
                    if *remaining > 0 {
                        return Action::NeedInput;
                    }
                    let Phase::SkipChunk { reply, .. } =
                        std::mem::replace(&mut self.phase, Phase::Command)
                    else {
                        unreachable!("phase checked above")
                    };
                    self.respond(reply);
                    self.close_if_shutting_down();
                }
            }
        }
    }

    /// The next complete line as `input[start..end]` (`end` is the LF), or `None` when more
    /// input is needed. A line over the limit switches to skipping it.
    fn next_line(&mut self) -> Option<(usize, usize)> {
        let Some(line_end) = memchr::memchr(b'\n', &self.input[self.pos..]) else {
            // A line at the limit may be waiting for the LF after its CR.
            if self.input.len() - self.pos > self.config.max_command_line + 1 {
                self.pos = self.input.len();
                self.phase = Phase::SkipLine;
            }
            return None;
        };
        let start = self.pos;
        self.pos += line_end + 1;
        Some((start, start + line_end))
    }

    /// The content decoder reached the end of the message.
    fn content_complete(&mut self) -> Option<Action> {
        let error = self
            .transaction
            .as_ref()
            .and_then(|t| t.decoder.as_ref())
            .and_then(ContentDecoder::error);
        match error {
            Some(error) => {
                self.content.clear();
                self.transaction = None;
                self.phase = Phase::Command;
                self.respond(content_error_reply(error));
                self.close_if_shutting_down();
                Some(Action::DataAbort)
            }
            None => {
                self.phase = Phase::Await(Pending::DataEnd);
                None
            }
        }
    }

    /// Handles one command line `input[start..end]` (`end` is the LF).
    fn line(&mut self, start: usize, end: usize) -> Option<Action> {
        let has_cr = end > start && self.input[end - 1] == b'\r';
        let text_end = if has_cr { end - 1 } else { end };
        if text_end - start > self.config.max_command_line {
            self.respond(table::line_too_long());
            return None;
        }
        if !has_cr && self.config.content.bare_newline == BareNewline::Reject {
            self.respond(table::bare_lf_command());
            return None;
        }
        match parse_command(&self.input[start..text_end]) {
            Ok(command) => self.command(command),
            Err(reply) => {
                self.respond(reply);
                None
            }
        }
    }

    /// The check step of each command; commands that need a verdict park in `Await`.
    fn command(&mut self, command: Command) -> Option<Action> {
        if self.shutting_down && matches!(command, Command::Mail(_)) {
            self.respond(table::shutting_down());
            return None;
        }
        let esmtp = self.hello.as_ref().is_some_and(|h| h.esmtp);
        match command {
            Command::Ehlo(name) => {
                return self.reset_then_await(Pending::Hello(Hello { name, esmtp: true }));
            }
            Command::Helo(name) => {
                return self.reset_then_await(Pending::Hello(Hello { name, esmtp: false }));
            }
            Command::Mail(mail) => {
                if let Some(reply) = self.check_mail(&mail, esmtp) {
                    self.respond(reply);
                } else {
                    self.phase = Phase::Await(Pending::Mail(mail));
                }
            }
            Command::Rcpt(rcpt) => {
                if let Some(reply) = self.check_rcpt(&rcpt, esmtp) {
                    self.respond(reply);
                } else {
                    self.phase = Phase::Await(Pending::Rcpt(rcpt));
                }
            }
            Command::Data => match &self.transaction {
                None => self.respond(table::bad_sequence("Need MAIL command")),
                Some(t) if t.decoder.is_some() => {
                    self.respond(table::bad_sequence("DATA not allowed during BDAT"))
                }
                Some(t) if t.recipients.is_empty() => self.respond(table::no_valid_recipients()),
                Some(_) => self.phase = Phase::Await(Pending::DataStart { chunk: None }),
            },
            Command::Bdat { size, last } => return self.bdat(size, last, esmtp),
            Command::Rset => {
                let abandoned = self.reset_transaction();
                self.respond(table::ok());
                if abandoned {
                    return Some(Action::DataAbort);
                }
            }
            Command::Noop => self.respond(table::ok()),
            Command::Quit => {
                self.quit = true;
                self.respond(table::bye());
            }
            Command::Vrfy => self.respond(table::cannot_vrfy()),
            Command::Help => self.respond(table::help()),
            Command::Expn | Command::NotImplemented => self.respond(table::not_implemented()),
            Command::StartTls => {
                if self.tls || !self.config.starttls {
                    self.respond(table::not_implemented());
                } else if self.transaction.is_some() {
                    self.respond(table::bad_sequence("Mail transaction in progress"));
                } else {
                    // RFC 3207 §6 / CVE-2011-0411: nothing sent before the handshake may
                    // be taken as a command after it.
                    self.input.truncate(self.pos);
                    self.respond(table::ready_for_tls());
                    self.phase = Phase::Await(Pending::StartTls);
                }
            }
            Command::Auth { mechanism, initial } => return self.auth(&mechanism, initial, esmtp),
            Command::NotSmtp => {
                self.respond(table::not_smtp());
                self.phase = Phase::Closed;
            }
        }
        None
    }

    /// AUTH: checks, then the first challenge or, with an initial response, the verdict.
    fn auth(&mut self, mechanism: &str, initial: Option<String>, esmtp: bool) -> Option<Action> {
        let refusal = if !self.config.auth.enabled {
            Some(table::not_implemented())
        } else if !esmtp {
            Some(table::bad_sequence("Send EHLO first"))
        } else if !self.tls && !self.config.auth.without_tls {
            Some(table::encryption_required())
        } else if self.authenticated.is_some() {
            Some(table::bad_sequence("Already authenticated"))
        } else if self.transaction.is_some() {
            Some(table::bad_sequence(
                "AUTH not permitted during a mail transaction",
            ))
        } else {
            None
        };
        if let Some(reply) = refusal {
            self.respond(reply);
            return None;
        }
        let step = match Mechanism::parse(mechanism) {
            Some(Mechanism::Plain) => SaslStep::Plain,
            Some(Mechanism::Login) => SaslStep::LoginUsername,
            None => {
                self.respond(table::unknown_mechanism());
                return None;
            }
        };
        match initial {
            Some(response) => self.sasl_response(step, &response),
            None => {
                let challenge = match step {
                    SaslStep::LoginUsername => sasl::LOGIN_USERNAME_CHALLENGE,
                    _ => "",
                };
                self.phase = Phase::Sasl(step);
                self.respond(Reply::plain(334, challenge));
                None
            }
        }
    }

    /// One client response in a SASL exchange.
    fn sasl_response(&mut self, step: SaslStep, response: &str) -> Option<Action> {
        self.phase = Phase::Command;
        let decoded = sasl::decode_response(response).and_then(|message| match step {
            SaslStep::Plain => sasl::parse_plain(&message).map(Some),
            SaslStep::LoginUsername => {
                let username = sasl::parse_login_field(&message)?;
                self.phase = Phase::Sasl(SaslStep::LoginPassword(username));
                Ok(None)
            }
            SaslStep::LoginPassword(username) => Ok(Some(Credentials {
                authzid: None,
                username,
                password: sasl::parse_login_field(&message)?,
            })),
        });
        match decoded {
            Ok(Some(credentials)) => {
                self.phase = Phase::Await(Pending::Auth(credentials.clone()));
                Some(Action::Auth(credentials))
            }
            Ok(None) => {
                self.respond(Reply::plain(334, sasl::LOGIN_PASSWORD_CHALLENGE));
                None
            }
            Err(error) => {
                self.respond(match error {
                    ResponseError::Cancelled => table::auth_cancelled(),
                    ResponseError::Malformed => table::auth_malformed(),
                });
                None
            }
        }
    }

    fn check_mail(&self, mail: &MailFrom, esmtp: bool) -> Option<Reply> {
        if self.hello.is_none() {
            return Some(table::bad_sequence("Send EHLO/HELO first"));
        }
        if self.config.auth.required && self.authenticated.is_none() {
            return Some(table::auth_required());
        }
        if self.transaction.is_some() {
            return Some(table::bad_sequence("Nested MAIL command"));
        }
        if !esmtp && mail.has_parameters() {
            return Some(table::unknown_parameter());
        }
        if mail
            .size
            .is_some_and(|size| size > self.config.content.max_size)
        {
            return Some(table::message_too_big());
        }
        let ascii = mail.from.mailbox().is_none_or(|m| m.is_ascii());
        if !ascii && !mail.smtputf8 {
            return Some(table::utf8_address_without_smtputf8());
        }
        None
    }

    fn check_rcpt(&self, rcpt: &RcptTo, esmtp: bool) -> Option<Reply> {
        let Some(transaction) = &self.transaction else {
            return Some(table::bad_sequence("Need MAIL before RCPT"));
        };
        if transaction.decoder.is_some() {
            return Some(table::bad_sequence("RCPT not allowed during BDAT"));
        }
        if transaction.recipients.len() >= self.config.max_recipients {
            return Some(table::too_many_recipients());
        }
        if !esmtp && rcpt.has_parameters() {
            return Some(table::unknown_parameter());
        }
        let ascii = match &rcpt.to {
            crate::address::ForwardPath::Postmaster => true,
            crate::address::ForwardPath::Mailbox(m) => m.is_ascii(),
        };
        if !ascii && !transaction.mail.smtputf8 {
            return Some(table::utf8_address_without_smtputf8());
        }
        None
    }

    /// BDAT: checks, then either parks for DataStart, continues the message, or skips the
    /// chunk's octets and answers with the error (RFC 3030 §4: the octets always follow).
    fn bdat(&mut self, size: u64, last: bool, esmtp: bool) -> Option<Action> {
        let refusal = match &self.transaction {
            _ if !esmtp => Some(table::bad_sequence("BDAT needs EHLO")),
            None => Some(table::bad_sequence("Need MAIL command")),
            Some(t) if t.recipients.is_empty() => Some(table::no_valid_recipients()),
            Some(t) if t.content_size().saturating_add(size) > self.config.content.max_size => {
                Some(table::message_too_big())
            }
            _ => None,
        };
        if let Some(reply) = refusal {
            let abandoned = self.reset_transaction();
            self.phase = Phase::SkipChunk {
                remaining: size,
                reply,
            };
            return abandoned.then_some(Action::DataAbort);
        }
        let started = self
            .transaction
            .as_ref()
            .is_some_and(|t| t.decoder.is_some());
        self.phase = if started {
            Phase::Chunk {
                remaining: size,
                size,
                last,
            }
        } else {
            Phase::Await(Pending::DataStart {
                chunk: Some((size, last)),
            })
        };
        None
    }

    /// EHLO/HELO reset the transaction (RFC 5321 §4.1.4) and then wait for policy.
    fn reset_then_await(&mut self, pending: Pending) -> Option<Action> {
        let abandoned = self.reset_transaction();
        self.phase = Phase::Await(pending);
        abandoned.then_some(Action::DataAbort)
    }

    /// Drops the transaction; true when stored content must be discarded by the driver.
    fn reset_transaction(&mut self) -> bool {
        self.transaction.take().is_some_and(|t| t.decoder.is_some())
    }

    fn ehlo_reply(&self) -> Reply {
        let mut lines = vec![
            self.config.hostname.clone(),
            "PIPELINING".to_string(),
            format!("SIZE {}", self.config.content.max_size),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "CHUNKING".to_string(),
            "DSN".to_string(),
        ];
        if self.config.starttls && !self.tls {
            lines.push("STARTTLS".to_string());
        }
        let auth = self.config.auth;
        if auth.enabled && (self.tls || auth.without_tls) {
            lines.push(format!("AUTH {}", Mechanism::ADVERTISED));
        }
        lines.push("ENHANCEDSTATUSCODES".to_string());
        Reply::plain(250, lines.join("\n"))
    }

    /// Queues a reply; counts errors and closes after too many or after 221/421.
    fn respond(&mut self, reply: Reply) {
        reply.write_to(&mut self.output);
        if reply.closes_connection() {
            self.phase = Phase::Closed;
            return;
        }
        if reply.code >= 500 {
            self.errors += 1;
            if self.errors >= self.config.max_errors {
                table::too_many_errors().write_to(&mut self.output);
                self.phase = Phase::Closed;
            }
        }
    }

    fn close_if_shutting_down(&mut self) {
        if self.shutting_down && !self.is_closed() && self.transaction.is_none() {
            self.respond(table::shutting_down());
        }
    }
}

/// The reply for refused content.
fn content_error_reply(error: ContentError) -> Reply {
    match error {
        ContentError::BareNewline => table::bare_newline_in_data(),
        ContentError::LineTooLong => table::data_line_too_long(),
        ContentError::TooBig => table::message_too_big(),
    }
}
