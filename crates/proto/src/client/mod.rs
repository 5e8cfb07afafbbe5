//! The client side of SMTP as a sans-IO state machine, for outbound delivery.
//!
//! The driver connects, feeds the server's bytes in (`feed`), writes `output()` out, and
//! reacts to events: [`Event::Ready`] (greeted, EHLO done: start TLS, authenticate or send),
//! [`Event::StartTls`] (do the handshake), [`Event::SendContent`] (stream the message),
//! [`Event::Recipient`] and [`Event::Done`] (the outcome of a transaction). One connection
//! carries as many transactions as the driver likes, with RSET between them. With
//! PIPELINING, RSET, MAIL, every RCPT and DATA go out in one write (RFC 2920); with
//! CHUNKING, content goes in one `BDAT n LAST`.

mod capabilities;
mod replies;
mod stuffing;

use std::collections::VecDeque;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::reply::Reply;
pub use capabilities::Capabilities;
pub use replies::{MalformedReply, ReplyParser};
pub use stuffing::DotStuffer;

/// Which step of setting up the connection a refusal came at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The 220 greeting.
    Greeting,
    /// EHLO, and HELO after it.
    Hello,
    /// STARTTLS.
    StartTls,
    /// AUTH.
    Auth,
    /// RSET between transactions.
    Reset,
}

/// One message to send: the envelope as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The reverse path without brackets; empty for `<>`.
    pub from: String,
    /// MAIL parameters (`SIZE=n`, `BODY=8BITMIME`, `RET=HDRS`...).
    pub mail_params: Vec<String>,
    /// Each recipient without brackets, with its RCPT parameters.
    pub recipients: Vec<(String, Vec<String>)>,
    /// `Some(len)`: send the content with `BDAT len LAST` (the server offers CHUNKING).
    pub chunk_len: Option<u64>,
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionEnd {
    /// MAIL was refused; no recipient was tried.
    MailRefused(Reply),
    /// Every RCPT was refused; no content was sent.
    NoRecipients,
    /// The DATA command itself was refused.
    DataRefused(Reply),
    /// The content was sent; this is the server's verdict on it for every accepted
    /// recipient.
    Content(Reply),
}

/// What the driver must react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The connection is greeted and introduced (or re-introduced after TLS), or a RSET
    /// or AUTH finished: the driver may start TLS, authenticate, send or quit.
    Ready,
    /// The server said 220 to STARTTLS: do the handshake, then call `tls_established`.
    StartTls,
    /// A set-up step was refused; the connection is of no further use.
    Refused(Stage, Reply),
    /// The reply to the RCPT of recipient `index` of the current transaction.
    Recipient(usize, Reply),
    /// Write `output()`, then the content (dot-stuffed with [`DotStuffer`] for DATA, raw
    /// for BDAT), then call `content_sent`.
    SendContent,
    /// The current transaction is over.
    Done(TransactionEnd),
    /// The server answered QUIT.
    Closed,
}

/// What a sent command waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthPlain,
    AuthLogin,
    AuthLoginUser,
    AuthLoginPassword,
    Rset,
    Mail,
    Rcpt(usize),
    Data,
    Content,
    Quit,
}

/// Which timeout of RFC 5321 §4.5.3.2 applies to the reply being waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The 220 greeting: 5 minutes.
    Greeting,
    /// A command's reply (EHLO, MAIL, RCPT, ...): 5 minutes.
    Command,
    /// The 354 after DATA: 2 minutes.
    DataStart,
    /// The verdict after the content: 10 minutes.
    ContentEnd,
}

/// The transaction in progress.
#[derive(Debug)]
struct InFlight {
    message: Outgoing,
    /// Commands of this transaction not yet written (without PIPELINING).
    unsent: VecDeque<(String, Sent)>,
    mail_refused: Option<Reply>,
    accepted: usize,
    answered: usize,
}

/// A client connection's protocol state.
#[derive(Debug)]
pub struct Client {
    helo_name: String,
    parser: ReplyParser,
    output: Vec<u8>,
    inflight: VecDeque<Sent>,
    events: VecDeque<Event>,
    caps: Capabilities,
    transaction: Option<InFlight>,
    /// A transaction has been on this connection: RSET before the next MAIL, so whatever
    /// state the server kept is gone (pipelined, this costs no round trip).
    needs_reset: bool,
    login: Option<(String, String)>,
}

impl Client {
    /// A client that will introduce itself as `helo_name`; it first waits for the greeting.
    pub fn new(helo_name: impl Into<String>) -> Self {
        Client {
            helo_name: helo_name.into(),
            parser: ReplyParser::default(),
            output: Vec::new(),
            inflight: VecDeque::from([Sent::Greeting]),
            events: VecDeque::new(),
            caps: Capabilities::default(),
            transaction: None,
            needs_reset: false,
            login: None,
        }
    }

    /// What the server offered in its last EHLO/HELO reply.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// Bytes to write to the server.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Marks the output as written.
    pub fn clear_output(&mut self) {
        self.output.clear();
    }

    /// The timeout class of the reply awaited, if any.
    pub fn waiting(&self) -> Option<Waiting> {
        self.inflight.front().map(|sent| match sent {
            Sent::Greeting => Waiting::Greeting,
            Sent::Data => Waiting::DataStart,
            Sent::Content => Waiting::ContentEnd,
            _ => Waiting::Command,
        })
    }

    /// Appends bytes read from the server.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.parser.feed(bytes);
    }

    /// The next event, once enough replies have arrived.
    pub fn next_event(&mut self) -> Result<Option<Event>, MalformedReply> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            let Some(reply) = self.parser.next_reply()? else {
                return Ok(None);
            };
            let Some(sent) = self.inflight.pop_front() else {
                return Err(MalformedReply(format!("reply without a command: {reply}")));
            };
            self.on_reply(sent, reply);
        }
    }

    /// Asks for TLS (the server offered STARTTLS).
    pub fn start_tls(&mut self) {
        self.command("STARTTLS".into(), Sent::StartTls);
    }

    /// The TLS handshake is done: introduce ourselves again (RFC 3207 §4.2).
    pub fn tls_established(&mut self) {
        self.caps = Capabilities::default();
        self.command(format!("EHLO {}", self.helo_name), Sent::Ehlo);
    }

    /// Authenticates with PLAIN (initial response, RFC 4616) or, when the server offers
    /// only LOGIN, with LOGIN.
    pub fn authenticate(&mut self, user: &str, password: &str) {
        if self.caps.auth.iter().any(|m| m == "PLAIN")
            || !self.caps.auth.iter().any(|m| m == "LOGIN")
        {
            let token = BASE64.encode(format!("\0{user}\0{password}"));
            self.command(format!("AUTH PLAIN {token}"), Sent::AuthPlain);
        } else {
            self.login = Some((user.to_string(), password.to_string()));
            self.command("AUTH LOGIN".into(), Sent::AuthLogin);
        }
    }

    /// Starts a transaction. With PIPELINING everything up to DATA is written at once.
    pub fn send(&mut self, message: Outgoing) {
        let mut commands = VecDeque::new();
        if std::mem::take(&mut self.needs_reset) {
            commands.push_back(("RSET".to_string(), Sent::Rset));
        }
        commands.push_back((
            with_params(
                format!("MAIL FROM:<{}>", message.from),
                &message.mail_params,
            ),
            Sent::Mail,
        ));
        for (i, (address, params)) in message.recipients.iter().enumerate() {
            commands.push_back((
                with_params(format!("RCPT TO:<{address}>"), params),
                Sent::Rcpt(i),
            ));
        }
        if message.chunk_len.is_none() {
            commands.push_back(("DATA".into(), Sent::Data));
        }
        let pipelining = self.caps.pipelining;
        self.transaction = Some(InFlight {
            message,
            unsent: VecDeque::new(),
            mail_refused: None,
            accepted: 0,
            answered: 0,
        });
        if pipelining {
            for (line, sent) in commands {
                self.command(line, sent);
            }
        } else if let Some((line, sent)) = commands.pop_front() {
            self.command(line, sent);
            if let Some(t) = self.transaction.as_mut() {
                t.unsent = commands;
            }
        }
    }

    /// The content has been written (after [`Event::SendContent`]); for DATA it ended with
    /// [`DotStuffer::finish`].
    pub fn content_sent(&mut self) {
        self.inflight.push_back(Sent::Content);
    }

    /// Ends the session politely.
    pub fn quit(&mut self) {
        self.command("QUIT".into(), Sent::Quit);
    }

    fn command(&mut self, line: String, sent: Sent) {
        self.output.extend_from_slice(line.as_bytes());
        self.output.extend_from_slice(b"\r\n");
        self.inflight.push_back(sent);
    }

    fn on_reply(&mut self, sent: Sent, reply: Reply) {
        let positive = reply.code < 400;
        match sent {
            Sent::Greeting if reply.code == 220 => {
                self.command(format!("EHLO {}", self.helo_name), Sent::Ehlo);
            }
            Sent::Greeting => self
                .events
                .push_back(Event::Refused(Stage::Greeting, reply)),
            Sent::Ehlo if reply.code == 250 => {
                self.caps = Capabilities::from_ehlo(&reply);
                self.events.push_back(Event::Ready);
            }
            // RFC 5321 §4.1.4: a server that does not know EHLO gets HELO.
            Sent::Ehlo if reply.code >= 500 => {
                self.command(format!("HELO {}", self.helo_name), Sent::Helo);
            }
            Sent::Helo if reply.code == 250 => {
                self.caps = Capabilities::from_helo(&reply);
                self.events.push_back(Event::Ready);
            }
            Sent::Ehlo | Sent::Helo => self.events.push_back(Event::Refused(Stage::Hello, reply)),
            Sent::StartTls if reply.code == 220 => self.events.push_back(Event::StartTls),
            Sent::StartTls => self
                .events
                .push_back(Event::Refused(Stage::StartTls, reply)),
            Sent::AuthLogin | Sent::AuthLoginUser if reply.code == 334 => {
                let Some((user, password)) = self.login.clone() else {
                    self.events.push_back(Event::Refused(Stage::Auth, reply));
                    return;
                };
                let (value, next) = if sent == Sent::AuthLogin {
                    (user, Sent::AuthLoginUser)
                } else {
                    (password, Sent::AuthLoginPassword)
                };
                self.command(BASE64.encode(value), next);
            }
            Sent::AuthPlain | Sent::AuthLoginPassword if reply.code == 235 => {
                self.login = None;
                self.events.push_back(Event::Ready);
            }
            Sent::AuthPlain | Sent::AuthLogin | Sent::AuthLoginUser | Sent::AuthLoginPassword => {
                self.login = None;
                self.events.push_back(Event::Refused(Stage::Auth, reply));
            }
            Sent::Rset if positive => self.send_next_unsent(),
            Sent::Rset => self.events.push_back(Event::Refused(Stage::Reset, reply)),
            Sent::Mail => self.on_mail(reply),
            Sent::Rcpt(index) => self.on_rcpt(index, reply),
            Sent::Data => self.on_data(reply),
            Sent::Content => {
                let discarded = self.transaction.as_ref().is_some_and(|t| t.accepted == 0);
                self.transaction = None;
                self.events.push_back(Event::Done(if discarded {
                    TransactionEnd::NoRecipients
                } else {
                    TransactionEnd::Content(reply)
                }));
            }
            Sent::Quit => self.events.push_back(Event::Closed),
        }
    }

    fn on_mail(&mut self, reply: Reply) {
        let Some(t) = self.transaction.as_mut() else {
            return;
        };
        if reply.code < 400 {
            self.needs_reset = true;
            self.send_next_unsent();
            return;
        }
        t.unsent.clear();
        t.mail_refused = Some(reply.clone());
        if !self
            .inflight
            .iter()
            .any(|s| matches!(s, Sent::Rcpt(_) | Sent::Data))
        {
            self.finish(TransactionEnd::MailRefused(reply));
        }
    }

    fn on_rcpt(&mut self, index: usize, reply: Reply) {
        let Some(t) = self.transaction.as_mut() else {
            return;
        };
        t.answered += 1;
        let refused_mail = t.mail_refused.clone();
        if refused_mail.is_none() {
            if reply.code < 400 {
                t.accepted += 1;
            }
            self.events.push_back(Event::Recipient(index, reply));
        }
        let all_answered = t.answered == t.message.recipients.len();
        let accepted = t.accepted;
        let chunk_len = t.message.chunk_len;
        if let Some(mail_reply) = refused_mail {
            if all_answered && !self.inflight.contains(&Sent::Data) {
                self.finish(TransactionEnd::MailRefused(mail_reply));
            }
            return;
        }
        if !all_answered {
            self.send_next_unsent();
            return;
        }
        match chunk_len {
            Some(_) if accepted == 0 => self.finish(TransactionEnd::NoRecipients),
            Some(len) => {
                self.output
                    .extend_from_slice(format!("BDAT {len} LAST\r\n").as_bytes());
                self.events.push_back(Event::SendContent);
            }
            None if accepted == 0 && !self.inflight.contains(&Sent::Data) => {
                // DATA not yet written (no PIPELINING): do not send it at all.
                if let Some(t) = self.transaction.as_mut() {
                    t.unsent.clear();
                }
                self.finish(TransactionEnd::NoRecipients);
            }
            None => self.send_next_unsent(),
        }
    }

    fn on_data(&mut self, reply: Reply) {
        let Some(t) = self.transaction.as_mut() else {
            return;
        };
        if let Some(mail_reply) = t.mail_refused.clone() {
            self.finish(TransactionEnd::MailRefused(mail_reply));
        } else if reply.code == 354 && t.accepted == 0 {
            // RFC 2920 §3.1: DATA accepted although no recipient was: send an empty
            // message to get out of the data state; its reply ends the transaction.
            self.output.extend_from_slice(b".\r\n");
            self.inflight.push_back(Sent::Content);
        } else if reply.code == 354 {
            self.events.push_back(Event::SendContent);
        } else if t.accepted == 0 {
            self.finish(TransactionEnd::NoRecipients);
        } else {
            self.finish(TransactionEnd::DataRefused(reply));
        }
    }

    /// Writes the next command of the transaction when not pipelining.
    fn send_next_unsent(&mut self) {
        let next = self.transaction.as_mut().and_then(|t| t.unsent.pop_front());
        if let Some((line, sent)) = next {
            self.command(line, sent);
        }
    }

    fn finish(&mut self, end: TransactionEnd) {
        self.transaction = None;
        self.events.push_back(Event::Done(end));
    }
}

fn with_params(mut line: String, params: &[String]) -> String {
    for param in params {
        line.push(' ');
        line.push_str(param);
    }
    line
}
