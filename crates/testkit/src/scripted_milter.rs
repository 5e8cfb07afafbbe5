//! A scripted milter: the filter's side of the protocol on `127.0.0.1:PORT`, played by a
//! test. It answers negotiation with the test's choice, logs every command it receives,
//! and answers each command as the test's responder says, so a test can make it take
//! every action, or misbehave. It runs on plain threads, so sync and async tests alike
//! can use it.
//!
//! ```ignore
//! let milter = ScriptedMilter::start(MilterScript::new(choice).respond(|command| match command {
//!     Command::EndOfBody => Answer::Replies(vec![Reply::AddHeader { .. }, Reply::Accept]),
//!     _ => Answer::Default,
//! }));
//! // ... point the client at milter.addr() ...
//! milter.wait_for_command(b'Q');
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use posthorn_milter::codec::{
    Command, LENGTH_PREFIX, Negotiation, Packet, Protocol, Reply, packet_len,
};

use crate::wait_until;

/// What the milter does about one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// SMFIR_CONTINUE if the command is answered (per the negotiated no-reply flags),
    /// else nothing.
    Default,
    /// These replies, whether the command is answered or not.
    Replies(Vec<Reply>),
    /// These octets, as they are.
    Raw(Vec<u8>),
    /// Close the connection.
    Close,
    /// Answer nothing from now on, but keep reading until the client closes.
    Stall,
}

type Responder = dyn FnMut(&Command<'_>) -> Answer + Send;

/// How the milter behaves: its negotiation answer and its responder.
pub struct MilterScript {
    choice: Negotiation,
    responder: Box<Responder>,
}

impl MilterScript {
    /// Answers negotiation with `choice` and every command with [`Answer::Default`].
    pub fn new(choice: Negotiation) -> MilterScript {
        MilterScript {
            choice,
            responder: Box::new(|_| Answer::Default),
        }
    }

    /// Answers each command (negotiation aside) as `responder` says.
    pub fn respond(
        mut self,
        responder: impl FnMut(&Command<'_>) -> Answer + Send + 'static,
    ) -> Self {
        self.responder = Box::new(responder);
        self
    }
}

/// A command as received: its code and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The command code.
    pub code: u8,
    /// The data after it.
    pub data: Vec<u8>,
}

impl Received {
    /// The command, decoded.
    pub fn command(&self) -> Command<'_> {
        Command::decode(Packet {
            code: self.code,
            data: &self.data,
        })
        .expect("the client sent a malformed command")
    }
}

/// A running scripted milter; it serves every connection until the test ends.
pub struct ScriptedMilter {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
}

struct Shared {
    choice: Negotiation,
    responder: Mutex<Box<Responder>>,
    log: Arc<Mutex<Vec<Received>>>,
}

impl ScriptedMilter {
    /// Listens on an ephemeral loopback port and serves each connection on a thread.
    pub fn start(script: MilterScript) -> ScriptedMilter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the scripted milter");
        let addr = listener.local_addr().expect("scripted milter address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            choice: script.choice,
            responder: Mutex::new(script.responder),
            log: Arc::clone(&log),
        });
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                thread::spawn(move || serve(stream, &shared));
            }
        });
        ScriptedMilter { addr, log }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every command received so far, on all connections, in order.
    pub fn received(&self) -> Vec<Received> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The codes of the commands received so far, as characters (`"OCHMRTLNBE"`).
    pub fn codes(&self) -> String {
        self.received().iter().map(|r| char::from(r.code)).collect()
    }

    /// Waits (bounded) until a command with `code` has been received; every command the
    /// client sent before it has been logged by then.
    pub fn wait_for_command(&self, code: u8) {
        wait_until(
            &format!("command {:?} at the scripted milter", char::from(code)),
            || self.received().iter().any(|r| r.code == code).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}; received {:?}", self.codes()));
    }
}

/// Plays the filter on one connection until the client quits or closes.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let mut stalled = false;
    while let Some(received) = read_command(&mut stream) {
        shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(received.clone());
        if stalled {
            continue;
        }
        let command = received.command();
        let answer = match command {
            Command::Negotiate(_) => Answer::Replies(vec![Reply::Negotiate(shared.choice.clone())]),
            Command::Quit => return,
            _ => (shared
                .responder
                .lock()
                .unwrap_or_else(PoisonError::into_inner))(&command),
        };
        let out = match answer {
            Answer::Default if is_answered(&command, shared.choice.protocol) => {
                encode(&[Reply::Continue])
            }
            Answer::Default => Vec::new(),
            Answer::Replies(replies) => encode(&replies),
            Answer::Raw(octets) => octets,
            Answer::Close => return,
            Answer::Stall => {
                stalled = true;
                Vec::new()
            }
        };
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn read_command(stream: &mut TcpStream) -> Option<Received> {
    let mut prefix = [0; LENGTH_PREFIX];
    stream.read_exact(&mut prefix).ok()?;
    let mut packet = vec![0; packet_len(prefix).ok()?];
    stream.read_exact(&mut packet).ok()?;
    let (&code, data) = packet.split_first()?;
    Some(Received {
        code,
        data: data.to_vec(),
    })
}

fn encode(replies: &[Reply]) -> Vec<u8> {
    let mut out = Vec::new();
    for reply in replies {
        reply.encode(&mut out);
    }
    out
}

/// Whether the MTA waits for an answer to `command` under the negotiated `protocol`.
fn is_answered(command: &Command<'_>, protocol: Protocol) -> bool {
    let no_reply = match command {
        Command::Macros { .. } | Command::Abort | Command::Quit | Command::Negotiate(_) => {
            return false;
        }
        Command::Connect { .. } => Protocol::NO_REPLY_CONNECT,
        Command::Helo(_) => Protocol::NO_REPLY_HELO,
        Command::Mail(_) => Protocol::NO_REPLY_MAIL,
        Command::Rcpt(_) => Protocol::NO_REPLY_RCPT,
        Command::Data => Protocol::NO_REPLY_DATA,
        Command::Header { .. } => Protocol::NO_REPLY_HEADER,
        Command::EndOfHeaders => Protocol::NO_REPLY_END_OF_HEADERS,
        Command::Body(_) => Protocol::NO_REPLY_BODY,
        Command::Unknown(_) => Protocol::NO_REPLY_UNKNOWN,
        Command::EndOfBody => return true,
    };
    !protocol.contains(no_reply)
}
