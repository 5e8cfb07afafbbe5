//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463, RFC 2034).
//!
//! Every reply the server can send is built here, so codes and status codes have one
//! source of truth; callers pick a constructor instead of writing numbers.

use std::borrow::Cow;
use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject: 0 other, 1 addressing, 2 mailbox, 3 mail system, 4 network/routing,
    /// 5 protocol, 6 content, 7 security.
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl Status {
    /// Builds a status code; used by the reply table below and by parsers of remote replies.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Status {
            class,
            subject,
            detail,
        }
    }

    /// Parses `X.Y.Z` as it appears at the start of a reply text (RFC 3463 §2).
    pub fn parse(text: &str) -> Option<Status> {
        let mut parts = text.splitn(3, '.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.parse().ok()?;
        if !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        Some(Status::new(class, subject, detail))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply: a three-digit code, an optional enhanced status code, and text that may
/// span several lines (separated by `\n`, each written as its own reply line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code; absent on the greeting and HELO/EHLO replies (RFC 2034 §3).
    pub status: Option<Status>,
    /// The human-readable text; `\n` separates lines of a multi-line reply.
    pub text: Cow<'static, str>,
}

impl Reply {
    /// A reply with an enhanced status code whose class follows the reply code.
    pub fn new(code: u16, subject: u16, detail: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Reply {
            code,
            status: Some(Status::new((code / 100) as u8, subject, detail)),
            text: text.into(),
        }
    }

    /// A reply that carries no enhanced status code (greeting, HELO, EHLO).
    pub fn plain(code: u16, text: impl Into<Cow<'static, str>>) -> Self {
        Reply {
            code,
            status: None,
            text: text.into(),
        }
    }

    /// True for 2xx and 3xx replies.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// True for 4xx replies: the client may try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// True for 421, which closes the connection (RFC 5321 §3.8).
    pub fn closes_connection(&self) -> bool {
        self.code == 421 || self.code == 221
    }

    /// Appends the reply in wire format, one `code[-| ]status text\r\n` line per text line.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            let line = line.trim_end_matches('\r');
            out.extend_from_slice(format!("{}{}", self.code, sep).as_bytes());
            if let Some(status) = self.status {
                out.extend_from_slice(status.to_string().as_bytes());
                if !line.is_empty() {
                    out.push(b' ');
                }
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The reply in wire format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

impl fmt::Display for Reply {
    /// One line, as logs and DSN diagnostic codes want it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(status) = self.status {
            write!(f, " {status}")?;
        }
        write!(f, " {}", self.text.replace('\n', " "))
    }
}

/// The reply table: every reply the server session sends, named by its meaning.
pub mod table {
    use super::Reply;

    /// 220 greeting (RFC 5321 §4.2).
    pub fn greeting(hostname: &str) -> Reply {
        Reply::plain(220, format!("{hostname} ESMTP Posthorn"))
    }
    /// 221 after QUIT.
    pub fn bye() -> Reply {
        Reply::new(221, 0, 0, "Bye")
    }
    /// 250 to a command that needs no other answer.
    pub fn ok() -> Reply {
        Reply::new(250, 0, 0, "OK")
    }
    /// 250 to MAIL (RFC 3463: X.1.0 other address status).
    pub fn sender_ok() -> Reply {
        Reply::new(250, 1, 0, "Sender OK")
    }
    /// 250 to RCPT (X.1.5 destination address valid).
    pub fn recipient_ok() -> Reply {
        Reply::new(250, 1, 5, "Recipient OK")
    }
    /// 250 after a message is safely on disk.
    pub fn queued(queue_id: &str) -> Reply {
        Reply::new(250, 0, 0, format!("OK queued as {queue_id}"))
    }
    /// 250 to a BDAT chunk that is not the last (RFC 3030 §2).
    pub fn chunk_ok(octets: u64) -> Reply {
        Reply::new(250, 0, 0, format!("{octets} octets received"))
    }
    /// 252 to VRFY: we never reveal whether a user exists.
    pub fn cannot_vrfy() -> Reply {
        Reply::new(
            252,
            0,
            0,
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
    /// 214 to HELP.
    pub fn help() -> Reply {
        Reply::new(
            214,
            0,
            0,
            "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\nSee RFC 5321",
        )
    }
    /// 220 before the TLS handshake (RFC 3207 §4).
    pub fn ready_for_tls() -> Reply {
        Reply::new(220, 0, 0, "Ready to start TLS")
    }
    /// 354 after DATA.
    pub fn start_data() -> Reply {
        Reply::plain(354, "End data with <CR><LF>.<CR><LF>")
    }
    /// 421 when the client has made too many errors.
    pub fn too_many_errors() -> Reply {
        Reply::new(421, 7, 0, "Too many errors, closing connection")
    }
    /// 421 when a command or data timeout fires (RFC 5321 §4.5.3.2).
    pub fn timeout() -> Reply {
        Reply::new(421, 4, 2, "Timeout, closing connection")
    }
    /// 421 when the server is shutting down.
    pub fn shutting_down() -> Reply {
        Reply::new(421, 3, 2, "Service shutting down, try again later")
    }
    /// 421 when the global or per-client connection limit is reached.
    pub fn too_many_connections() -> Reply {
        Reply::new(421, 7, 0, "Too many connections, try again later")
    }
    /// 451 when the spool cannot store the message.
    pub fn local_error() -> Reply {
        Reply::new(451, 3, 0, "Local error in processing, try again later")
    }
    /// 452 when the recipient limit of a transaction is reached (RFC 5321 §4.5.3.1.10).
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, 5, 3, "Too many recipients")
    }
    /// 500 for a command line longer than the limit (RFC 5321 §4.5.3.1.4).
    pub fn line_too_long() -> Reply {
        Reply::new(500, 5, 2, "Line too long")
    }
    /// 500 for a verb we do not know.
    pub fn unrecognized() -> Reply {
        Reply::new(500, 5, 2, "Command unrecognized")
    }
    /// 500 for a command line that ends in a bare LF while those are refused.
    pub fn bare_lf_command() -> Reply {
        Reply::new(500, 5, 2, "Bare <LF> in command, use <CR><LF>")
    }
    /// 500 for a command line with bytes that are not text.
    pub fn invalid_characters() -> Reply {
        Reply::new(500, 5, 2, "Invalid characters in command")
    }
    /// 501 for a command whose arguments do not parse.
    pub fn syntax(text: &'static str) -> Reply {
        Reply::new(501, 5, 4, text)
    }
    /// 501 for an EHLO/HELO name that is neither a domain nor an address literal.
    pub fn bad_hello_name() -> Reply {
        Reply::new(
            501,
            5,
            2,
            "EHLO/HELO needs your domain name or an address literal such as [192.0.2.1]",
        )
    }
    /// 501 for a sender address that does not parse (X.1.7).
    pub fn bad_sender_syntax(text: &'static str) -> Reply {
        Reply::new(501, 1, 7, text)
    }
    /// 501 for a recipient address that does not parse (X.1.3).
    pub fn bad_recipient_syntax(text: &'static str) -> Reply {
        Reply::new(501, 1, 3, text)
    }
    /// 502 for a command we know but do not implement.
    pub fn not_implemented() -> Reply {
        Reply::new(502, 5, 1, "Command not implemented")
    }
    /// 503 for a command out of sequence.
    pub fn bad_sequence(text: &'static str) -> Reply {
        Reply::new(503, 5, 1, text)
    }
    /// 550 for message content with a bare CR or LF (SMTP smuggling defence).
    pub fn bare_newline_in_data() -> Reply {
        Reply::new(
            550,
            6,
            0,
            "Message contains bare <CR> or <LF>, lines must end with <CR><LF>",
        )
    }
    /// 550 for message content with a text line over the limit.
    pub fn data_line_too_long() -> Reply {
        Reply::new(550, 6, 0, "Message contains a line that is too long")
    }
    /// 550 for an unknown local user (X.1.1 bad destination mailbox).
    pub fn unknown_user() -> Reply {
        Reply::new(550, 1, 1, "No such user here")
    }
    /// 552 when the declared or actual message size is over the limit (RFC 1870).
    pub fn message_too_big() -> Reply {
        Reply::new(552, 3, 4, "Message size exceeds fixed maximum message size")
    }
    /// 552 when the recipient's mailbox is full (X.2.2).
    pub fn mailbox_full() -> Reply {
        Reply::new(552, 2, 2, "Mailbox full")
    }
    /// 553 for a non-ASCII address without SMTPUTF8 (RFC 6531 §3.6).
    pub fn utf8_address_without_smtputf8() -> Reply {
        Reply::new(
            553,
            6,
            7,
            "Non-ASCII address requires the SMTPUTF8 parameter",
        )
    }
    /// 554 for DATA when no recipient was accepted (RFC 5321 §3.3).
    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, 5, 1, "No valid recipients")
    }
    /// 554 for a recipient we will not relay to.
    pub fn relay_denied() -> Reply {
        Reply::new(554, 7, 1, "Relay access denied")
    }
    /// 554 and close for a peer that speaks HTTP or another protocol at us.
    pub fn not_smtp() -> Reply {
        Reply::new(554, 7, 0, "This is an SMTP server, closing connection")
    }
    /// 501 when the client cancels AUTH with `*` (RFC 4954 §4).
    pub fn auth_cancelled() -> Reply {
        Reply::new(501, 7, 0, "Authentication cancelled")
    }
    /// 501 for a SASL response that is not base64 or not what the mechanism expects.
    pub fn auth_malformed() -> Reply {
        Reply::new(501, 5, 2, "Cannot decode response")
    }
    /// 504 for a SASL mechanism we do not offer (RFC 4954 §6).
    pub fn unknown_mechanism() -> Reply {
        Reply::new(504, 5, 4, "Unrecognized authentication type")
    }
    /// 530 for MAIL before AUTH where AUTH is required (RFC 4954 §6).
    pub fn auth_required() -> Reply {
        Reply::new(530, 7, 0, "Authentication required")
    }
    /// 535 for wrong credentials (RFC 4954 §6); the same text whatever was wrong, so it
    /// tells an attacker nothing about which user names exist.
    pub fn auth_failed() -> Reply {
        Reply::new(535, 7, 8, "Authentication credentials invalid")
    }
    /// 538 for AUTH before TLS where passwords must not travel in the clear (RFC 4954 §6).
    pub fn encryption_required() -> Reply {
        Reply::new(
            538,
            7,
            11,
            "Encryption required for requested authentication mechanism",
        )
    }
    /// 421 for a client blocked after too many failed logins.
    pub fn blocked_for_auth_failures() -> Reply {
        Reply::new(421, 7, 0, "Too many failed login attempts, try again later")
    }
    /// 553 for a MAIL FROM the authenticated user may not use (RFC 6409 §6.1).
    pub fn sender_not_owned() -> Reply {
        Reply::new(
            553,
            7,
            1,
            "Sender address not owned by the authenticated user",
        )
    }
    /// 550 for a message whose From or Sender the user may not use (RFC 6409 §8.1 lets
    /// a submission server refuse it; we would otherwise sign someone else's mail).
    pub fn author_not_owned() -> Reply {
        Reply::new(
            550,
            7,
            1,
            "From or Sender header address not owned by the sender",
        )
    }
    /// 552 for a header section longer than we hold to read it (X.3.4: too big for us).
    pub fn header_section_too_long() -> Reply {
        Reply::new(552, 3, 4, "Message header section too long")
    }
    /// 451 when an authenticated user has sent its quota of messages for now.
    pub fn message_quota_exceeded() -> Reply {
        Reply::new(451, 7, 1, "Sending quota exceeded, try again later")
    }
    /// 452 when an authenticated user has sent to its quota of recipients for now.
    pub fn recipient_quota_exceeded() -> Reply {
        Reply::new(452, 7, 1, "Recipient quota exceeded, try again later")
    }
    /// 421 when a client connects too often.
    pub fn connection_rate_exceeded() -> Reply {
        Reply::new(
            421,
            7,
            0,
            "Too many connections from your address, try again later",
        )
    }
    /// 550 for a message whose From domain publishes DMARC `p=reject` and that failed it
    /// (RFC 7489 §6.6.4).
    pub fn dmarc_rejected(domain: &str) -> Reply {
        Reply::new(
            550,
            7,
            1,
            format!("Message rejected per the DMARC policy of {domain}"),
        )
    }
    /// 550 for a sender whose domain's SPF record does not allow the client (RFC 7372
    /// X.7.23).
    pub fn spf_failed(domain: &str) -> Reply {
        Reply::new(
            550,
            7,
            23,
            format!("SPF of {domain} does not allow your address to send its mail"),
        )
    }
    /// 451 when a DNS failure leaves SPF undecided and the admin asked for strictness
    /// (RFC 7372 X.7.24).
    pub fn spf_temporary_error() -> Reply {
        Reply::new(
            451,
            7,
            24,
            "Temporary DNS error checking SPF, try again later",
        )
    }
    /// 451 when a DNS failure leaves DMARC undecided and the admin asked for strictness.
    pub fn dmarc_temporary_error() -> Reply {
        Reply::new(
            451,
            7,
            1,
            "Temporary DNS error checking DMARC, try again later",
        )
    }
    /// 550 for a sender or client on a block list (RFC 3463 X.7.1: delivery not
    /// authorized).
    pub fn sender_blocked() -> Reply {
        Reply::new(550, 7, 1, "Sender blocked by local policy")
    }
    /// 550 for a message the checks judged spam or dangerous, with the main reason.
    pub fn content_refused(reason: &str) -> Reply {
        Reply::new(550, 7, 1, format!("Message refused: {reason}"))
    }
    /// 550 for a message every recipient's Sieve script rejected (RFC 5429 §2.1.1), with
    /// the script's reason, already made one printable line (X.7.1).
    pub fn sieve_rejected(reason: &str) -> Reply {
        Reply::new(550, 7, 1, reason.to_string())
    }
    /// 550 for a message broken beyond what we accept (RFC 3463 X.6.0: other or
    /// undefined media error).
    pub fn malformed_message(reason: &str) -> Reply {
        Reply::new(550, 6, 0, format!("Malformed message: {reason}"))
    }
    /// 554 for a message carrying a virus, naming it (X.7.1).
    pub fn virus_found(signature: &str) -> Reply {
        Reply::new(554, 7, 1, format!("Virus found: {signature}"))
    }
    /// 451 for the first attempt of a greylisted sender (X.7.1; the sender retries).
    pub fn greylisted(delay_seconds: u64) -> Reply {
        Reply::new(
            451,
            7,
            1,
            format!("Greylisted, please try again in {delay_seconds} seconds"),
        )
    }
    /// 451 when a check could not run and the admin wants such mail deferred.
    pub fn check_failed(check: &str) -> Reply {
        Reply::new(
            451,
            7,
            1,
            format!("Temporary failure of the {check} check, try again later"),
        )
    }
    /// 555 for a MAIL or RCPT parameter we do not know (RFC 5321 §4.1.1.11).
    pub fn unknown_parameter() -> Reply {
        Reply::new(555, 5, 4, "Unsupported MAIL/RCPT parameter")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply_has_status_and_crlf() {
        assert_eq!(table::ok().to_bytes(), b"250 2.0.0 OK\r\n");
    }

    #[test]
    fn multi_line_reply_uses_dash_on_all_but_last() {
        let reply = Reply::plain(250, "mx.example\nPIPELINING\nSIZE 100");
        assert_eq!(
            reply.to_bytes(),
            b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n"
        );
    }

    #[test]
    fn enhanced_status_repeats_on_each_line() {
        assert_eq!(
            table::help().to_bytes(),
            b"214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n214 2.0.0 See RFC 5321\r\n"
        );
    }

    #[test]
    fn status_parses_and_rejects() {
        assert_eq!(Status::parse("5.1.1"), Some(Status::new(5, 1, 1)));
        assert_eq!(Status::parse("4.7.0 "), None);
        assert_eq!(Status::parse("3.1.1"), None);
        assert_eq!(Status::parse("5.1"), None);
    }

    #[test]
    fn display_is_one_line() {
        assert_eq!(
            table::help().to_string(),
            "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP See RFC 5321"
        );
    }
}
