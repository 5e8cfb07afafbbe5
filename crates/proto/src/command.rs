//! SMTP commands and their parser (RFC 5321 §4.1, with the MAIL/RCPT parameters of
//! RFC 1870, 3461, 6152 and 6531).
//!
//! The parser takes one command line without its CRLF and returns either a command or the
//! exact reply its error deserves, so every syntax error maps to one reply in one place.

use crate::address::{
    ForwardPath, ReversePath, is_valid_hello_name, parse_forward_path, parse_reverse_path,
    strip_prefix_ignore_case,
};
use crate::dsn::{Notify, Orcpt, Ret, xtext_decode};
use crate::reply::{Reply, table};

/// Longest ENVID value in octets (RFC 3461 §4.4).
pub const MAX_ENVID: usize = 100;

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO name`: start an ESMTP session.
    Ehlo(String),
    /// `HELO name`: start a plain SMTP session.
    Helo(String),
    /// `MAIL FROM:<path> [params]`.
    Mail(MailFrom),
    /// `RCPT TO:<path> [params]`.
    Rcpt(RcptTo),
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030); `size` octets follow the line.
    Bdat {
        /// Octets in this chunk.
        size: u64,
        /// True on the last chunk of the message.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [text]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy,
    /// `EXPN string`.
    Expn,
    /// `HELP [topic]`.
    Help,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism name, as given.
        mechanism: String,
        /// The base64 initial response, if the client sent one.
        initial: Option<String>,
    },
    /// A verb that SMTP knows but we do not implement (TURN, ETRN, ...).
    NotImplemented,
    /// The peer speaks HTTP or another protocol (GET, POST, CONNECT, ...): drop it at once,
    /// as Postfix does, so browsers and proxies cannot be abused to talk to us.
    NotSmtp,
}

/// The message body type of MAIL's BODY parameter (RFC 6152).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum BodyType {
    /// `BODY=7BIT`, or no BODY parameter.
    #[default]
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
}

/// MAIL FROM with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    /// The reverse path; `<>` for bounces.
    pub from: ReversePath,
    /// SIZE: the client's estimate of the message size (RFC 1870).
    pub size: Option<u64>,
    /// BODY: 7BIT or 8BITMIME (RFC 6152).
    pub body: Option<BodyType>,
    /// SMTPUTF8: the message may carry UTF-8 addresses and headers (RFC 6531).
    pub smtputf8: bool,
    /// RET: what a bounce should return (RFC 3461 §4.3).
    pub ret: Option<Ret>,
    /// ENVID, xtext-decoded (RFC 3461 §4.4).
    pub envid: Option<String>,
}

impl MailFrom {
    /// True when any ESMTP parameter was given; these need EHLO first.
    pub fn has_parameters(&self) -> bool {
        self.size.is_some()
            || self.body.is_some()
            || self.smtputf8
            || self.ret.is_some()
            || self.envid.is_some()
    }
}

/// RCPT TO with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo {
    /// The forward path.
    pub to: ForwardPath,
    /// NOTIFY: which DSNs the sender wants (RFC 3461 §4.1).
    pub notify: Option<Notify>,
    /// ORCPT: the original recipient (RFC 3461 §4.2).
    pub orcpt: Option<Orcpt>,
}

impl RcptTo {
    /// True when any ESMTP parameter was given; these need EHLO first.
    pub fn has_parameters(&self) -> bool {
        self.notify.is_some() || self.orcpt.is_some()
    }
}

/// Parses one command line (without CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(table::invalid_characters());
    };
    if line.chars().any(|c| c.is_control()) {
        return Err(table::invalid_characters());
    }
    let (verb, args) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    match verb.as_str() {
        "EHLO" => parse_hello(args).map(Command::Ehlo),
        "HELO" => parse_hello(args).map(Command::Helo),
        "MAIL" => parse_mail(args).map(Command::Mail),
        "RCPT" => parse_rcpt(args).map(Command::Rcpt),
        "DATA" => no_arguments(args, Command::Data, "Syntax: DATA"),
        "BDAT" => parse_bdat(args),
        "RSET" => no_arguments(args, Command::Rset, "Syntax: RSET"),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_arguments(args, Command::Quit, "Syntax: QUIT"),
        "VRFY" if args.trim().is_empty() => Err(table::syntax("Syntax: VRFY address")),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" if args.trim().is_empty() => Err(table::syntax("Syntax: EXPN list")),
        "EXPN" => Ok(Command::Expn),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_arguments(args, Command::StartTls, "Syntax: STARTTLS"),
        "AUTH" => parse_auth(args),
        "TURN" | "ETRN" | "ATRN" | "SEND" | "SOML" | "SAML" | "VERB" | "BURL" => {
            Ok(Command::NotImplemented)
        }
        "GET" | "POST" | "HEAD" | "PUT" | "CONNECT" | "OPTIONS" | "USER" => Ok(Command::NotSmtp),
        _ => Err(table::unrecognized()),
    }
}

fn no_arguments(args: &str, command: Command, usage: &'static str) -> Result<Command, Reply> {
    if args.trim().is_empty() {
        Ok(command)
    } else {
        Err(table::syntax(usage))
    }
}

/// The EHLO/HELO argument: a domain or address literal. We keep the first word and only
/// insist that there is one; policy may judge it later (RFC 5321 §4.1.4 forbids refusing
/// a message merely because the name does not match the client address).
/// The client's name: the first word (some clients add more), which must be a Domain or
/// an address-literal (RFC 5321 §4.1.1.1).
fn parse_hello(args: &str) -> Result<String, Reply> {
    match args.split(' ').find(|w| !w.is_empty()) {
        Some(name) if is_valid_hello_name(name) => Ok(name.to_string()),
        Some(_) => Err(table::bad_hello_name()),
        None => Err(table::syntax("Syntax: EHLO hostname")),
    }
}

fn parse_auth(args: &str) -> Result<Command, Reply> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    match (words.next(), words.next(), words.next()) {
        (Some(mechanism), initial, None) => Ok(Command::Auth {
            mechanism: mechanism.to_string(),
            initial: initial.map(str::to_string),
        }),
        _ => Err(table::syntax("Syntax: AUTH mechanism [initial-response]")),
    }
}

fn parse_mail(args: &str) -> Result<MailFrom, Reply> {
    let Some(rest) = strip_prefix_ignore_case(args, "FROM:") else {
        return Err(table::syntax("Syntax: MAIL FROM:<address>"));
    };
    let (from, params) = parse_reverse_path(rest).map_err(|e| table::bad_sender_syntax(e.0))?;
    let mut mail = MailFrom {
        from,
        size: None,
        body: None,
        smtputf8: false,
        ret: None,
        envid: None,
    };
    for (keyword, value) in parameters(params)? {
        match keyword.to_ascii_uppercase().as_str() {
            "SIZE" => {
                let size = value
                    .filter(|v| {
                        !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| table::syntax("Bad SIZE parameter"))?;
                set_once(&mut mail.size, size)?;
            }
            "BODY" => {
                let body = match value.map(str::to_ascii_uppercase).as_deref() {
                    Some("7BIT") => BodyType::SevenBit,
                    Some("8BITMIME") => BodyType::EightBitMime,
                    _ => return Err(table::unknown_parameter()),
                };
                set_once(&mut mail.body, body)?;
            }
            "SMTPUTF8" => {
                if value.is_some() || mail.smtputf8 {
                    return Err(table::syntax("Bad SMTPUTF8 parameter"));
                }
                mail.smtputf8 = true;
            }
            "RET" => {
                let ret = match value.map(str::to_ascii_uppercase).as_deref() {
                    Some("FULL") => Ret::Full,
                    Some("HDRS") => Ret::Headers,
                    _ => return Err(table::syntax("Bad RET parameter")),
                };
                set_once(&mut mail.ret, ret)?;
            }
            "ENVID" => {
                let envid = value
                    .filter(|v| v.len() <= MAX_ENVID)
                    .and_then(xtext_decode)
                    .ok_or_else(|| table::syntax("Bad ENVID parameter"))?;
                set_once(&mut mail.envid, envid)?;
            }
            // RFC 4954 §5: the identity a relaying client vouches for. We record who
            // authenticated ourselves, so the value is checked for shape and ignored.
            "AUTH" => {
                value
                    .filter(|v| v.len() <= 500)
                    .and_then(xtext_decode)
                    .ok_or_else(|| table::syntax("Bad AUTH parameter"))?;
            }
            _ => return Err(table::unknown_parameter()),
        }
    }
    Ok(mail)
}

fn parse_rcpt(args: &str) -> Result<RcptTo, Reply> {
    let Some(rest) = strip_prefix_ignore_case(args, "TO:") else {
        return Err(table::syntax("Syntax: RCPT TO:<address>"));
    };
    let (to, params) = parse_forward_path(rest).map_err(|e| table::bad_recipient_syntax(e.0))?;
    let mut rcpt = RcptTo {
        to,
        notify: None,
        orcpt: None,
    };
    for (keyword, value) in parameters(params)? {
        match keyword.to_ascii_uppercase().as_str() {
            "NOTIFY" => {
                let notify = value
                    .and_then(Notify::parse)
                    .ok_or_else(|| table::syntax("Bad NOTIFY parameter"))?;
                set_once(&mut rcpt.notify, notify)?;
            }
            "ORCPT" => {
                let orcpt = value
                    .and_then(Orcpt::parse)
                    .ok_or_else(|| table::syntax("Bad ORCPT parameter"))?;
                set_once(&mut rcpt.orcpt, orcpt)?;
            }
            _ => return Err(table::unknown_parameter()),
        }
    }
    Ok(rcpt)
}

fn parse_bdat(args: &str) -> Result<Command, Reply> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let size = words
        .next()
        .filter(|w| w.len() <= 20 && w.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|w| w.parse::<u64>().ok());
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(table::syntax("Syntax: BDAT size [LAST]")),
    };
    match (size, words.next()) {
        (Some(size), None) => Ok(Command::Bdat { size, last }),
        _ => Err(table::syntax("Syntax: BDAT size [LAST]")),
    }
}

/// Splits `SP keyword[=value] SP keyword[=value] ...` (RFC 5321 §4.1.2 esmtp-param).
fn parameters(text: &str) -> Result<Vec<(&str, Option<&str>)>, Reply> {
    let mut params = Vec::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let (keyword, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let keyword_ok = keyword
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && keyword
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let value_ok = value.is_none_or(|v| !v.is_empty() && !v.contains('='));
        if !keyword_ok || !value_ok {
            return Err(table::syntax("Bad parameter syntax"));
        }
        params.push((keyword, value));
    }
    Ok(params)
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), Reply> {
    if slot.is_some() {
        return Err(table::syntax("Parameter given twice"));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Mailbox;

    fn code(line: &str) -> (u16, String) {
        let reply = parse_command(line.as_bytes()).unwrap_err();
        (reply.code, reply.status.unwrap().to_string())
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(
            parse_command(b"ehlo client.example").unwrap(),
            Command::Ehlo("client.example".into())
        );
        assert_eq!(parse_command(b"QuIt").unwrap(), Command::Quit);
    }

    #[test]
    fn hello_names_must_be_domains_or_literals() {
        assert_eq!(
            parse_command(b"HELO [192.0.2.1] extra").unwrap(),
            Command::Helo("[192.0.2.1]".into())
        );
        assert_eq!(
            code("EHLO fake.example.com([10.0.0.1])by=trusted;"),
            (501, "5.5.2".into())
        );
        assert_eq!(code("HELO bad(name)"), (501, "5.5.2".into()));
        assert_eq!(code("EHLO"), (501, "5.5.4".into()));
    }

    #[test]
    fn dsn_values_with_line_breaks_are_refused() {
        assert_eq!(
            code("MAIL FROM:<a@b> ENVID=a+0D+0Ab"),
            (501, "5.5.4".into())
        );
        assert_eq!(
            code("RCPT TO:<a@b> ORCPT=rfc822;a+0D+0Ab@c"),
            (501, "5.5.4".into())
        );
    }

    #[test]
    fn mail_with_every_parameter() {
        let Command::Mail(mail) = parse_command(
            b"MAIL FROM:<a@example.com> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ+2B1",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            mail.from,
            ReversePath::Mailbox(Mailbox {
                local: "a".into(),
                domain: "example.com".into()
            })
        );
        assert_eq!(mail.size, Some(1000));
        assert_eq!(mail.body, Some(BodyType::EightBitMime));
        assert!(mail.smtputf8);
        assert_eq!(mail.ret, Some(Ret::Headers));
        assert_eq!(mail.envid.as_deref(), Some("QQ+1"));
    }

    #[test]
    fn rcpt_with_dsn_parameters() {
        let Command::Rcpt(rcpt) =
            parse_command(b"RCPT TO:<b@example.com> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40x")
                .unwrap()
        else {
            panic!()
        };
        let notify = rcpt.notify.unwrap();
        assert!(notify.success && notify.delay && !notify.failure);
        let orcpt = rcpt.orcpt.unwrap();
        assert_eq!(orcpt.addr_type, "rfc822");
        assert_eq!(orcpt.address, "b@x");
    }

    #[test]
    fn space_after_colon_is_tolerated() {
        assert!(matches!(
            parse_command(b"MAIL FROM: <a@example.com>").unwrap(),
            Command::Mail(_)
        ));
    }

    #[test]
    fn syntax_errors_get_precise_replies() {
        assert_eq!(code("FOO"), (500, "5.5.2".into()));
        assert_eq!(code("MAIL TO:<a@b>"), (501, "5.5.4".into()));
        assert_eq!(code("MAIL FROM:<a@>"), (501, "5.1.7".into()));
        assert_eq!(code("RCPT TO:<a@>"), (501, "5.1.3".into()));
        assert_eq!(code("MAIL FROM:<a@b> FOO=1"), (555, "5.5.4".into()));
        assert_eq!(
            code("MAIL FROM:<a@b> BODY=BINARYMIME"),
            (555, "5.5.4".into())
        );
        assert_eq!(code("MAIL FROM:<a@b> SIZE=abc"), (501, "5.5.4".into()));
        assert_eq!(code("MAIL FROM:<a@b> SIZE=1 SIZE=2"), (501, "5.5.4".into()));
        assert_eq!(
            code("RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS"),
            (501, "5.5.4".into())
        );
        assert_eq!(code("DATA now"), (501, "5.5.4".into()));
        assert_eq!(code("EHLO"), (501, "5.5.4".into()));
        assert_eq!(code("VRFY"), (501, "5.5.4".into()));
        assert_eq!(code("BDAT"), (501, "5.5.4".into()));
        assert_eq!(code("BDAT 10 NOTLAST"), (501, "5.5.4".into()));
        assert_eq!(code("BDAT 99999999999999999999999"), (501, "5.5.4".into()));
    }

    #[test]
    fn control_and_invalid_bytes_are_refused() {
        assert_eq!(code("NOOP \u{0}"), (500, "5.5.2".into()));
        let reply = parse_command(b"NOOP \xff").unwrap_err();
        assert_eq!(reply.code, 500);
    }

    #[test]
    fn bdat_forms() {
        assert_eq!(
            parse_command(b"BDAT 10").unwrap(),
            Command::Bdat {
                size: 10,
                last: false
            }
        );
        assert_eq!(
            parse_command(b"BDAT 0 last").unwrap(),
            Command::Bdat {
                size: 0,
                last: true
            }
        );
    }

    #[test]
    fn http_is_not_smtp() {
        assert_eq!(parse_command(b"GET / HTTP/1.1").unwrap(), Command::NotSmtp);
        assert_eq!(
            parse_command(b"CONNECT example.com:25 HTTP/1.0").unwrap(),
            Command::NotSmtp
        );
    }

    #[test]
    fn envid_too_long_is_refused() {
        let line = format!("MAIL FROM:<a@b> ENVID={}", "x".repeat(101));
        assert_eq!(code(&line), (501, "5.5.4".into()));
    }
}
