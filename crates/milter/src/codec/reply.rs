//! What the filter answers (SMFIR_*). Decoding checks what the MTA will pass on: header
//! names are RFC 5322 field names, addresses and texts are UTF-8, an SMTP reply is
//! well-formed. Header values stay in wire form (see `headers::wire`).

use super::fields::Fields;
use super::flags::Negotiation;
use super::{DecodeError, Packet, PacketWriter};

/// A complete SMTP reply chosen by the filter (SMFIR_REPLYCODE), possibly multi-line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpReply {
    /// The reply code, 4xx or 5xx.
    pub code: u16,
    /// The text of each line after the code and separator (an enhanced status code, if
    /// any, is its start).
    pub lines: Vec<String>,
}

impl SmtpReply {
    /// The reply as it is sent to an SMTP client, each line ending in CRLF.
    pub fn to_smtp(&self) -> String {
        let last = self.lines.len().saturating_sub(1);
        self.lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                let separator = if i == last { ' ' } else { '-' };
                format!("{}{separator}{line}\r\n", self.code)
            })
            .collect()
    }

    /// RFC 5321 §4.2: `ddd-text` lines, then one `ddd text` line, all with the same code;
    /// a filter may only refuse (4xx, 5xx). Sendmail passes the text through a format
    /// function, so filters double `%`; it is undoubled here.
    fn parse(text: &[u8], fields: &Fields<'_>) -> Result<SmtpReply, DecodeError> {
        let text = std::str::from_utf8(text).map_err(|_| fields.bad("reply is not UTF-8"))?;
        let text = text.replace("%%", "%");
        let raw_lines: Vec<&str> = text
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .collect();
        let mut code = None;
        let mut lines = Vec::with_capacity(raw_lines.len());
        let last = raw_lines.len() - 1;
        for (i, line) in raw_lines.iter().enumerate() {
            let bad = || fields.bad("malformed SMTP reply");
            let digits = line.get(..3).ok_or_else(bad)?;
            let this_code: u16 = digits
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| digits.parse().ok())
                .flatten()
                .ok_or_else(bad)?;
            if !(400..600).contains(&this_code) || *code.get_or_insert(this_code) != this_code {
                return Err(bad());
            }
            let rest = &line[3..];
            let (separator, line_text) = match rest.chars().next() {
                None => (' ', ""),
                Some(c) => (c, &rest[1..]),
            };
            let expected = if i == last { ' ' } else { '-' };
            if separator != expected || line_text.chars().any(|c| c.is_control() && c != '\t') {
                return Err(bad());
            }
            lines.push(line_text.to_string());
        }
        Ok(SmtpReply {
            code: code.unwrap_or_default(),
            lines,
        })
    }

    fn wire_text(&self) -> String {
        let text = self.to_smtp();
        text.strip_suffix("\r\n")
            .unwrap_or(&text)
            .replace('%', "%%")
    }
}

/// One reply from the filter to the MTA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// SMFIC_OPTNEG 'O': what the filter picked from the offer.
    Negotiate(Negotiation),
    /// SMFIR_ACCEPT 'a': accept, and stop filtering this message (or connection).
    Accept,
    /// SMFIR_CONTINUE 'c': go on.
    Continue,
    /// SMFIR_DISCARD 'd': accept and throw the message away.
    Discard,
    /// SMFIR_REJECT 'r': refuse (5xx).
    Reject,
    /// SMFIR_TEMPFAIL 't': refuse for now (4xx).
    Tempfail,
    /// SMFIR_SHUTDOWN '4': refuse and close the SMTP connection (421).
    Shutdown,
    /// SMFIR_REPLYCODE 'y': refuse with this SMTP reply.
    ReplyCode(SmtpReply),
    /// SMFIR_PROGRESS 'p': still working; wait longer.
    Progress,
    /// SMFIR_SKIP 's': send no more body chunks.
    Skip,
    /// SMFIR_ADDHEADER 'h': append a header field.
    AddHeader {
        /// The field's name.
        name: String,
        /// The value in wire form.
        value: Vec<u8>,
    },
    /// SMFIR_INSHEADER 'i': insert a header field at a position (0 is the top).
    InsertHeader {
        /// The position.
        index: u32,
        /// The field's name.
        name: String,
        /// The value in wire form.
        value: Vec<u8>,
    },
    /// SMFIR_CHGHEADER 'm': change the `index`th field of that name (from 1); an empty
    /// value deletes it.
    ChangeHeader {
        /// Which occurrence of the name.
        index: u32,
        /// The field's name.
        name: String,
        /// The value in wire form.
        value: Vec<u8>,
    },
    /// SMFIR_ADDRCPT '+': add a recipient.
    AddRecipient(String),
    /// SMFIR_ADDRCPT_PAR '2': add a recipient with ESMTP parameters.
    AddRecipientWithArgs {
        /// The recipient.
        recipient: String,
        /// The parameters, separated by spaces, if sent.
        args: Option<String>,
    },
    /// SMFIR_DELRCPT '-': remove a recipient.
    DeleteRecipient(String),
    /// SMFIR_CHGFROM 'e': change the envelope sender.
    ChangeSender {
        /// The new sender.
        sender: String,
        /// The MAIL parameters, separated by spaces, if sent.
        args: Option<String>,
    },
    /// SMFIR_REPLBODY 'b': a chunk of the replacement body.
    ReplaceBody(Vec<u8>),
    /// SMFIR_QUARANTINE 'q': quarantine the message, for this reason.
    Quarantine(String),
}

impl Reply {
    /// Appends this reply's packet to `out` (the filter's side of the protocol).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let simple = |out: &mut Vec<u8>, code| {
            PacketWriter::new(out, code);
        };
        match self {
            Reply::Negotiate(choice) => choice.encode(out),
            Reply::Accept => simple(out, b'a'),
            Reply::Continue => simple(out, b'c'),
            Reply::Discard => simple(out, b'd'),
            Reply::Reject => simple(out, b'r'),
            Reply::Tempfail => simple(out, b't'),
            Reply::Shutdown => simple(out, b'4'),
            Reply::Progress => simple(out, b'p'),
            Reply::Skip => simple(out, b's'),
            Reply::ReplyCode(reply) => {
                PacketWriter::new(out, b'y').cstr(reply.wire_text().as_bytes());
            }
            Reply::AddHeader { name, value } => {
                PacketWriter::new(out, b'h')
                    .cstr(name.as_bytes())
                    .cstr(value);
            }
            Reply::InsertHeader { index, name, value } => {
                PacketWriter::new(out, b'i')
                    .u32(*index)
                    .cstr(name.as_bytes())
                    .cstr(value);
            }
            Reply::ChangeHeader { index, name, value } => {
                PacketWriter::new(out, b'm')
                    .u32(*index)
                    .cstr(name.as_bytes())
                    .cstr(value);
            }
            Reply::AddRecipient(recipient) => {
                PacketWriter::new(out, b'+').cstr(recipient.as_bytes());
            }
            Reply::AddRecipientWithArgs { recipient, args } => {
                with_optional(PacketWriter::new(out, b'2'), recipient, args.as_deref());
            }
            Reply::DeleteRecipient(recipient) => {
                PacketWriter::new(out, b'-').cstr(recipient.as_bytes());
            }
            Reply::ChangeSender { sender, args } => {
                with_optional(PacketWriter::new(out, b'e'), sender, args.as_deref());
            }
            Reply::ReplaceBody(chunk) => {
                PacketWriter::new(out, b'b').raw(chunk);
            }
            Reply::Quarantine(reason) => {
                PacketWriter::new(out, b'q').cstr(reason.as_bytes());
            }
        }
    }

    /// Reads a reply from its packet.
    pub fn decode(packet: Packet<'_>) -> Result<Reply, DecodeError> {
        let mut fields = Fields::new(packet);
        let reply = match packet.code {
            b'O' => return Negotiation::decode(packet).map(Reply::Negotiate),
            b'a' => Reply::Accept,
            b'c' => Reply::Continue,
            b'd' => Reply::Discard,
            b'r' => Reply::Reject,
            b't' => Reply::Tempfail,
            b'4' => Reply::Shutdown,
            b'p' => Reply::Progress,
            b's' => Reply::Skip,
            b'y' => {
                let text = fields.cstr()?;
                Reply::ReplyCode(SmtpReply::parse(text, &fields)?)
            }
            b'h' => Reply::AddHeader {
                name: header_name(&mut fields)?,
                value: fields.cstr()?.to_vec(),
            },
            b'i' | b'm' => {
                let index = fields.u32()?;
                let name = header_name(&mut fields)?;
                let value = fields.cstr()?.to_vec();
                if packet.code == b'i' {
                    Reply::InsertHeader { index, name, value }
                } else {
                    Reply::ChangeHeader { index, name, value }
                }
            }
            b'+' => Reply::AddRecipient(fields.text()?),
            b'2' => Reply::AddRecipientWithArgs {
                recipient: fields.text()?,
                args: fields.optional_text()?,
            },
            b'-' => Reply::DeleteRecipient(fields.text()?),
            b'e' => Reply::ChangeSender {
                sender: fields.text()?,
                args: fields.optional_text()?,
            },
            b'b' => Reply::ReplaceBody(fields.rest().to_vec()),
            b'q' => Reply::Quarantine(fields.text()?),
            code => return Err(DecodeError::UnknownCode(code)),
        };
        fields.end()?;
        Ok(reply)
    }
}

fn with_optional(mut packet: PacketWriter<'_>, first: &str, second: Option<&str>) {
    packet.cstr(first.as_bytes());
    if let Some(second) = second {
        packet.cstr(second.as_bytes());
    }
}

/// A field name as RFC 5322 §3.6.8 allows: printable ASCII but the colon, at least one.
fn header_name(fields: &mut Fields<'_>) -> Result<String, DecodeError> {
    let name = fields.cstr()?;
    let valid = !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':');
    if valid {
        Ok(String::from_utf8_lossy(name).into_owned())
    } else {
        Err(fields.bad("not a header field name"))
    }
}

impl Reply {
    /// The reply's protocol name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Negotiate(_) => "SMFIC_OPTNEG",
            Reply::Accept => "SMFIR_ACCEPT",
            Reply::Continue => "SMFIR_CONTINUE",
            Reply::Discard => "SMFIR_DISCARD",
            Reply::Reject => "SMFIR_REJECT",
            Reply::Tempfail => "SMFIR_TEMPFAIL",
            Reply::Shutdown => "SMFIR_SHUTDOWN",
            Reply::ReplyCode(_) => "SMFIR_REPLYCODE",
            Reply::Progress => "SMFIR_PROGRESS",
            Reply::Skip => "SMFIR_SKIP",
            Reply::AddHeader { .. } => "SMFIR_ADDHEADER",
            Reply::InsertHeader { .. } => "SMFIR_INSHEADER",
            Reply::ChangeHeader { .. } => "SMFIR_CHGHEADER",
            Reply::AddRecipient(_) => "SMFIR_ADDRCPT",
            Reply::AddRecipientWithArgs { .. } => "SMFIR_ADDRCPT_PAR",
            Reply::DeleteRecipient(_) => "SMFIR_DELRCPT",
            Reply::ChangeSender { .. } => "SMFIR_CHGFROM",
            Reply::ReplaceBody(_) => "SMFIR_REPLBODY",
            Reply::Quarantine(_) => "SMFIR_QUARANTINE",
        }
    }
}
