//! The MTA's side of one connection to a filter, fed one SMTP session: connect, HELO,
//! then per message MAIL, RCPT, DATA, the header fields, the body and its end. Each call
//! sends the stage's macros and command unless the filter asked to skip the stage, waits
//! for the answer unless it asked for none, and keeps what the answer settles:
//!
//! - a connection-level answer other than continue (to CONNECT or HELO) holds for every
//!   later call of the connection, and the filter is not asked again;
//! - a message-level answer other than continue (to MAIL, DATA, a header, the end of the
//!   headers, a body chunk; to RCPT only accept and discard) holds for the rest of the
//!   message: later calls return it, and [`MilterClient::end_of_message`] returns it as
//!   the outcome without asking;
//! - a refusal of RCPT refuses that recipient only.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::changes::Changes;
use crate::channel::Channel;
use crate::codec::{Command, ConnectAddress, MAX_BODY_CHUNK, Negotiation, Protocol, Reply};
use crate::error::MilterError;
use crate::headers::wire::to_wire;
use crate::macros::Macros;
use crate::negotiate::Negotiated;
use crate::options::Options;
use crate::outcome::{Decision, Outcome};
use crate::stage::{
    BODY, CONNECT, DATA, END_OF_HEADERS, END_OF_MESSAGE, HEADER, HELO, MAIL, RCPT, Stage, UNKNOWN,
};

const NEGOTIATE: &str = "OPTNEG";
const ABORT: &str = "ABORT";
const QUIT: &str = "QUIT";

/// Where the current message stands with the filter.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Message {
    /// No message begun.
    Idle,
    /// The filter has seen part of a message.
    Open,
    /// The filter answered SKIP to a body chunk: no more chunks for this message.
    SkippingBody,
    /// The filter decided the message before its end.
    Settled(Decision),
}

/// A connection to one filter. Any error leaves it failed: later calls return
/// [`MilterError::Failed`], and the MTA applies its default action for the filter.
pub struct MilterClient<S> {
    channel: Channel<S>,
    negotiated: Negotiated,
    options: Options,
    /// Body octets not sent yet: chunks go out full, the rest at the end of the message.
    body: Vec<u8>,
    connection: Option<Decision>,
    message: Message,
    failed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> MilterClient<S> {
    /// Negotiates over a connected `stream`: offers version 6, every action and every
    /// protocol step of [`Negotiation::offer`], and checks the filter's choice.
    pub async fn negotiate(stream: S, options: Options) -> Result<MilterClient<S>, MilterError> {
        let mut channel = Channel::new(stream);
        let limit = options.timeouts.command;
        channel.push(&Command::Negotiate(Negotiation::offer()));
        channel.flush(NEGOTIATE, limit).await?;
        let reply = match channel.read(NEGOTIATE, limit).await? {
            Reply::Negotiate(reply) => reply,
            other => {
                return Err(MilterError::Unexpected {
                    stage: NEGOTIATE,
                    reply: other.name(),
                });
            }
        };
        Ok(MilterClient {
            channel,
            negotiated: Negotiated::from_reply(&reply)?,
            options,
            body: Vec::new(),
            connection: None,
            message: Message::Idle,
            failed: false,
        })
    }

    /// What was agreed with the filter.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// SMFIC_CONNECT: the SMTP client's host name (as the MTA names it, e.g. `unknown`
    /// or `[192.0.2.1]` when it has none) and address (`None` when not over IP).
    pub async fn connect(
        &mut self,
        hostname: &str,
        client: Option<SocketAddr>,
        macros: &Macros,
    ) -> Result<Decision, MilterError> {
        let address = client.map_or(ConnectAddress::Unknown, ConnectAddress::Ip);
        let command = Command::Connect {
            hostname: hostname.as_bytes(),
            address,
        };
        let result = self.connection_event(&CONNECT, macros, command).await;
        self.checked(result)
    }

    /// SMFIC_HELO: the HELO or EHLO argument.
    pub async fn helo(&mut self, name: &str, macros: &Macros) -> Result<Decision, MilterError> {
        let result = self
            .connection_event(&HELO, macros, Command::Helo(name.as_bytes()))
            .await;
        self.checked(result)
    }

    /// SMFIC_MAIL: begins a message (forgetting an unfinished one, as after RSET) with
    /// its sender (without angle brackets; empty for the null sender) and ESMTP
    /// parameters.
    pub async fn mail(
        &mut self,
        sender: &str,
        args: &[&str],
        macros: &Macros,
    ) -> Result<Decision, MilterError> {
        let result = async {
            if let Some(decision) = self.settled(false)? {
                return Ok(decision);
            }
            self.forget_message().await?;
            let address = format!("<{sender}>");
            let command = Command::Mail(envelope_args(&address, args));
            self.message_event(&MAIL, macros, command, false).await
        }
        .await;
        self.checked(result)
    }

    /// SMFIC_RCPT: a recipient (without angle brackets) and its ESMTP parameters. A
    /// refusal refuses this recipient only.
    pub async fn rcpt(
        &mut self,
        recipient: &str,
        args: &[&str],
        macros: &Macros,
    ) -> Result<Decision, MilterError> {
        let address = format!("<{recipient}>");
        let command = Command::Rcpt(envelope_args(&address, args));
        let result = self.message_event(&RCPT, macros, command, true).await;
        self.checked(result)
    }

    /// SMFIC_DATA: the DATA command, before the MTA answers 354.
    pub async fn data(&mut self, macros: &Macros) -> Result<Decision, MilterError> {
        let result = self
            .message_event(&DATA, macros, Command::Data, false)
            .await;
        self.checked(result)
    }

    /// SMFIC_HEADER: one header field, `value` as it follows the colon in the message
    /// (see [`HeaderField`]).
    pub async fn header(&mut self, name: &str, value: &[u8]) -> Result<Decision, MilterError> {
        let value = to_wire(value, self.leading_space());
        let command = Command::Header {
            name: name.as_bytes(),
            value: &value,
        };
        let result = self
            .message_event(&HEADER, &Macros::new(), command, false)
            .await;
        self.checked(result)
    }

    /// SMFIC_EOH: the end of the header section.
    pub async fn end_of_headers(&mut self, macros: &Macros) -> Result<Decision, MilterError> {
        let result = self
            .message_event(&END_OF_HEADERS, macros, Command::EndOfHeaders, false)
            .await;
        self.checked(result)
    }

    /// SMFIC_BODY: more of the body (after dot-unstuffing, lines ending in CRLF), in
    /// pieces of any size; it is sent in chunks of at most 65535 octets. Returns
    /// [`Decision::Continue`] until the filter decides otherwise, or when it asked to be
    /// sent no more of the body.
    pub async fn body(&mut self, content: &[u8]) -> Result<Decision, MilterError> {
        let result = self.feed_body(content).await;
        self.checked(result)
    }

    /// SMFIC_BODYEOB: the end of the message. Collects every change the filter asks for
    /// until its final decision.
    pub async fn end_of_message(&mut self, macros: &Macros) -> Result<Outcome, MilterError> {
        let result = self.finish_message(macros).await;
        self.checked(result)
    }

    /// SMFIC_ABORT: forget the current message (RSET, a refused transaction, a lost
    /// client). Does nothing when no message is under way.
    pub async fn abort(&mut self) -> Result<(), MilterError> {
        let result = match self.settled(false) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => self.forget_message().await,
            Err(e) => Err(e),
        };
        self.checked(result)
    }

    /// SMFIC_UNKNOWN: an SMTP command the MTA does not know (the whole line). Only a
    /// refusal matters: the MTA refuses the command anyway.
    pub async fn unknown(&mut self, line: &str) -> Result<Decision, MilterError> {
        let result = async {
            if let Some(decision) = self.settled(false)? {
                return Ok(decision);
            }
            self.event(&UNKNOWN, &Macros::new(), Command::Unknown(line.as_bytes()))
                .await
        }
        .await;
        self.checked(result)
    }

    /// SMFIC_QUIT: ends the connection to the filter.
    pub async fn quit(mut self) -> Result<(), MilterError> {
        if self.failed {
            return Err(MilterError::Failed);
        }
        self.channel.push(&Command::Quit);
        self.channel
            .close(QUIT, self.options.timeouts.command)
            .await
    }

    /// Marks the client failed when `result` is an error.
    fn checked<T>(&mut self, result: Result<T, MilterError>) -> Result<T, MilterError> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// What an earlier answer settled for this call, if anything: the connection's
    /// decision, and for message stages the message's.
    fn settled(&self, message_stage: bool) -> Result<Option<Decision>, MilterError> {
        if self.failed {
            return Err(MilterError::Failed);
        }
        if let Some(decision) = &self.connection {
            return Ok(Some(decision.clone()));
        }
        match &self.message {
            Message::Settled(decision) if message_stage => Ok(Some(decision.clone())),
            _ => Ok(None),
        }
    }

    fn leading_space(&self) -> bool {
        self.negotiated.wants(Protocol::HEADER_LEADING_SPACE)
    }

    fn timeout(&self, stage: &Stage) -> Duration {
        if stage.content {
            self.options.timeouts.content
        } else {
            self.options.timeouts.command
        }
    }

    async fn connection_event(
        &mut self,
        stage: &Stage,
        macros: &Macros,
        command: Command<'_>,
    ) -> Result<Decision, MilterError> {
        if let Some(decision) = self.settled(false)? {
            return Ok(decision);
        }
        let decision = self.event(stage, macros, command).await?;
        match decision {
            Decision::Continue => {}
            // A connection cannot be discarded (Postfix treats this as an error too).
            Decision::Discard => {
                return Err(MilterError::Unexpected {
                    stage: stage.name,
                    reply: "SMFIR_DISCARD",
                });
            }
            _ => self.connection = Some(decision.clone()),
        }
        Ok(decision)
    }

    async fn message_event(
        &mut self,
        stage: &Stage,
        macros: &Macros,
        command: Command<'_>,
        recipient: bool,
    ) -> Result<Decision, MilterError> {
        if let Some(decision) = self.settled(true)? {
            return Ok(decision);
        }
        if self.message == Message::Idle {
            self.message = Message::Open;
        }
        let decision = self.event(stage, macros, command).await?;
        self.settle(&decision, recipient);
        Ok(decision)
    }

    /// Records what `decision` settles for the rest of the message (or connection).
    fn settle(&mut self, decision: &Decision, recipient: bool) {
        match decision {
            Decision::Continue => {}
            Decision::Shutdown => self.connection = Some(Decision::Shutdown),
            Decision::Reject | Decision::Tempfail | Decision::Reply(_) if recipient => {}
            _ => self.message = Message::Settled(decision.clone()),
        }
    }

    /// Sends a stage's macros (even when the stage itself is left out, as Postfix does:
    /// a filter may read them later) and its command, and returns the answer.
    async fn event(
        &mut self,
        stage: &Stage,
        macros: &Macros,
        command: Command<'_>,
    ) -> Result<Decision, MilterError> {
        self.push_macros(stage, macros);
        if stage.skip.is_some_and(|flag| self.negotiated.wants(flag)) {
            return Ok(Decision::Continue);
        }
        self.channel.push(&command);
        let limit = self.timeout(stage);
        if stage
            .no_reply
            .is_some_and(|flag| self.negotiated.wants(flag))
        {
            self.channel.flush_if_full(stage.name, limit).await?;
            return Ok(Decision::Continue);
        }
        self.channel.flush(stage.name, limit).await?;
        let reply = self.answer(stage).await?;
        decision_of(stage, reply)
    }

    /// The filter's next reply other than SMFIR_PROGRESS, which only restarts the wait.
    async fn answer(&mut self, stage: &Stage) -> Result<Reply, MilterError> {
        let limit = self.timeout(stage);
        loop {
            match self.channel.read(stage.name, limit).await? {
                Reply::Progress => continue,
                reply => return Ok(reply),
            }
        }
    }

    /// Sends ABORT if the filter has seen part of a message.
    async fn forget_message(&mut self) -> Result<(), MilterError> {
        self.body.clear();
        if self.message == Message::Idle {
            return Ok(());
        }
        self.message = Message::Idle;
        self.channel.push(&Command::Abort);
        self.channel
            .flush(ABORT, self.options.timeouts.command)
            .await
    }

    async fn feed_body(&mut self, mut content: &[u8]) -> Result<Decision, MilterError> {
        if let Some(decision) = self.settled(true)? {
            return Ok(decision);
        }
        if self.message == Message::Idle {
            self.message = Message::Open;
        }
        if self.message == Message::SkippingBody || self.negotiated.wants(Protocol::NO_BODY) {
            return Ok(Decision::Continue);
        }
        while !content.is_empty() {
            let room = MAX_BODY_CHUNK - self.body.len();
            let (now, later) = content.split_at(room.min(content.len()));
            self.body.extend_from_slice(now);
            content = later;
            if self.body.len() == MAX_BODY_CHUNK {
                let decision = self.send_body_chunk().await?;
                if decision != Decision::Continue || self.message == Message::SkippingBody {
                    return Ok(decision);
                }
            }
        }
        Ok(Decision::Continue)
    }

    /// Sends what is buffered of the body as one chunk and returns the answer; a SKIP
    /// stops the body for this message.
    async fn send_body_chunk(&mut self) -> Result<Decision, MilterError> {
        let chunk = std::mem::take(&mut self.body);
        self.channel.push(&Command::Body(&chunk));
        self.body = chunk;
        self.body.clear();
        let limit = self.options.timeouts.content;
        if self.negotiated.wants(Protocol::NO_REPLY_BODY) {
            self.channel.flush_if_full(BODY.name, limit).await?;
            return Ok(Decision::Continue);
        }
        self.channel.flush(BODY.name, limit).await?;
        match self.answer(&BODY).await? {
            Reply::Skip if self.negotiated.wants(Protocol::SKIP) => {
                self.message = Message::SkippingBody;
                Ok(Decision::Continue)
            }
            reply => {
                let decision = decision_of(&BODY, reply)?;
                self.settle(&decision, false);
                Ok(decision)
            }
        }
    }

    async fn finish_message(&mut self, macros: &Macros) -> Result<Outcome, MilterError> {
        if let Some(decision) = self.settled(true)? {
            self.body.clear();
            self.message = Message::Idle;
            return Ok(Outcome::decided(decision));
        }
        let sends_body = self.message != Message::SkippingBody
            && !self.negotiated.wants(Protocol::NO_BODY)
            && !self.body.is_empty();
        if sends_body {
            let decision = self.send_body_chunk().await?;
            if decision != Decision::Continue {
                self.message = Message::Idle;
                return Ok(Outcome::decided(decision));
            }
        }
        self.body.clear();
        self.message = Message::Open;
        self.push_macros(&END_OF_MESSAGE, macros);
        self.channel.push(&Command::EndOfBody);
        let limit = self.timeout(&END_OF_MESSAGE);
        self.channel.flush(END_OF_MESSAGE.name, limit).await?;
        let mut changes = Changes::new(&self.negotiated, self.options.limits);
        let decision = loop {
            let reply = self.answer(&END_OF_MESSAGE).await?;
            if let Some(reply) = changes.take(reply)? {
                break decision_of(&END_OF_MESSAGE, reply)?;
            }
        };
        self.message = Message::Idle;
        Ok(Outcome {
            decision,
            modifications: changes.into_modifications(),
        })
    }

    /// Buffers the stage's macros that the filter wants.
    fn push_macros(&mut self, stage: &Stage, macros: &Macros) {
        let Some(macro_stage) = stage.macros else {
            return;
        };
        let pairs = self.negotiated.macros_for(macro_stage, macros);
        if !pairs.is_empty() {
            self.channel.push(&Command::Macros {
                command: macro_stage.command_code(),
                pairs,
            });
        }
    }
}

/// The decision a reply to `stage` stands for; a change or SKIP has no place here.
fn decision_of(stage: &Stage, reply: Reply) -> Result<Decision, MilterError> {
    Ok(match reply {
        Reply::Continue => Decision::Continue,
        Reply::Accept => Decision::Accept,
        Reply::Discard => Decision::Discard,
        Reply::Reject => Decision::Reject,
        Reply::Tempfail => Decision::Tempfail,
        Reply::Shutdown => Decision::Shutdown,
        Reply::ReplyCode(reply) => Decision::Reply(reply),
        other => {
            return Err(MilterError::Unexpected {
                stage: stage.name,
                reply: other.name(),
            });
        }
    })
}

/// MAIL and RCPT arguments: the address in angle brackets, then the parameters.
fn envelope_args<'a>(address: &'a str, args: &[&'a str]) -> Vec<&'a [u8]> {
    std::iter::once(address.as_bytes())
        .chain(args.iter().map(|arg| arg.as_bytes()))
        .collect()
}
