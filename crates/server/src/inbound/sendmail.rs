//! `posthorn sendmail`: the command-line interface every Unix program expects for sending
//! mail (PHP's mail(), cron, web applications). It reads a message on standard input and
//! hands it to the running server over a local socket, in SMTP; the server knows the
//! calling user from the socket, so no password is needed. Exit codes follow sysexits.h.

use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use posthorn_proto::Reply;

use posthorn_proto::client::{Client, DotStuffer, Event, Outgoing, TransactionEnd};
use posthorn_proto::headers::{has_field, is_field, section_end};

/// The socket in the data folder.
pub const SOCKET: &str = "sendmail.sock";

/// sysexits.h codes.
pub mod exit {
    /// Wrong arguments.
    pub const USAGE: u8 = 64;
    /// The message was refused.
    pub const DATAERR: u8 = 65;
    /// A recipient was refused.
    pub const NOUSER: u8 = 67;
    /// No server to talk to.
    pub const UNAVAILABLE: u8 = 69;
    /// Something failed here.
    pub const SOFTWARE: u8 = 70;
    /// Try again later.
    pub const TEMPFAIL: u8 = 75;
    /// Refused by policy.
    pub const NOPERM: u8 = 77;
}

/// Longest wait for the server.
const TIMEOUT: Duration = Duration::from_secs(300);

/// What `--help` prints.
const USAGE: &str = "\
usage: posthorn sendmail [-t] [-i] [-f sender] [-F name] [-C config] [recipient ...]

Reads a message on standard input and hands it to the running Posthorn server.
  -t            take the recipients from To, Cc and Bcc (and remove Bcc)
  -i, -oi       a line holding a single dot does not end the message
  -f, -r ADDR   the envelope sender (default: USER@hostname)
  -F NAME       the full name in the From header added when the message has none
  -C FILE       the server's configuration (default: $POSTHORN_CONFIG, then
                /etc/posthorn/posthorn.toml, then the built-in defaults)
Other sendmail options (-oem, -odi, -v, -B, -N...) are accepted and ignored.
Exit codes (sysexits.h): 0 sent, 64 bad usage, 65 message refused, 67 unknown
recipient, 69/75 server unavailable or try later, 77 refused by policy.
";

/// What the command line asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `-t`: take recipients from To, Cc and Bcc.
    pub extract: bool,
    /// `-i` / `-oi`: a line with a single dot does not end the message.
    pub ignore_dots: bool,
    /// `-f` / `-r`: the envelope sender.
    pub sender: Option<String>,
    /// `-F`: the full name for a From header we add.
    pub full_name: Option<String>,
    /// `-C`: the server's configuration file.
    pub config: Option<PathBuf>,
    /// Recipients on the command line.
    pub recipients: Vec<String>,
    /// `--help`: print the usage, send nothing.
    pub help: bool,
}

/// Parses sendmail's options: flags may carry their value attached (`-fuser`) or as the
/// next argument (`-f user`); options sendmail has but that mean nothing here (`-oem`,
/// `-odi`, `-B`, `-N`, `-v`...) are accepted and ignored, as Postfix does.
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            options.recipients.extend(args.by_ref().cloned());
            break;
        }
        if arg == "--help" {
            options.help = true;
            continue;
        }
        let Some(flag) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            options.recipients.push(arg.clone());
            continue;
        };
        let (letter, attached) = flag.split_at(1);
        let mut value = || -> Result<String, String> {
            if attached.is_empty() {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("option -{letter} needs a value"))
            } else {
                Ok(attached.to_string())
            }
        };
        match letter {
            "t" if attached.is_empty() => options.extract = true,
            "i" if attached.is_empty() => options.ignore_dots = true,
            "f" | "r" => options.sender = Some(value()?),
            "F" => options.full_name = Some(value()?),
            "C" => options.config = Some(PathBuf::from(value()?)),
            "o" => {
                if value()? == "i" {
                    options.ignore_dots = true;
                }
            }
            "b" => match value()?.as_str() {
                "m" => {}
                other => return Err(format!("mode -b{other} is not supported")),
            },
            "B" | "N" | "R" | "V" | "O" | "X" | "L" | "h" => {
                value()?;
            }
            "v" | "n" | "U" | "m" | "e" => {}
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(options)
}

/// The name of the user with `uid`, from the password database.
#[allow(
    unsafe_code,
    reason = "the password database is read through NSS, which only libc reaches (not rustix)"
)]
pub fn user_name(uid: u32) -> Option<String> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and the buffer length is its real size.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points at a NUL-terminated string in buffer.
    let name = unsafe { CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

/// The id and member names of the Unix group `name`, from the group database.
#[allow(
    unsafe_code,
    reason = "the group database is read through NSS, which only libc reaches (not rustix)"
)]
pub fn group_members(name: &str) -> Option<(u32, Vec<String>)> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut buffer = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: an all-zero group is a valid value for getgrnam_r to fill in.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and the buffer length is its real size.
    let status = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if status != 0 || found.is_null() {
        return None;
    }
    let mut members = Vec::new();
    let mut member = entry.gr_mem;
    // SAFETY: gr_mem is a NULL-terminated array of NUL-terminated strings in buffer.
    unsafe {
        while !member.is_null() && !(*member).is_null() {
            members.push(CStr::from_ptr(*member).to_string_lossy().into_owned());
            member = member.add(1);
        }
    }
    Some((entry.gr_gid, members))
}

/// The message as read from standard input, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The content, headers adjusted.
    pub content: Vec<u8>,
    /// Every recipient.
    pub recipients: Vec<String>,
}

/// Applies the options to the message read: the lone-dot end (without `-i`), recipients
/// from the headers (`-t`, and then Bcc is removed), and a From header when there is none.
pub fn prepare(input: &[u8], options: &Options, sender: &str) -> Prepared {
    let mut input = input;
    if !options.ignore_dots
        && let Some(end) = lone_dot(input)
    {
        input = &input[..end];
    }
    let (head, body) = split_header(input);
    let mut recipients = options.recipients.clone();
    if options.extract {
        recipients.extend(header_recipients(head));
    }
    let mut content = Vec::with_capacity(input.len() + 100);
    if !has_field(head, b"from") {
        let from = match &options.full_name {
            Some(name) => format!("From: \"{}\" <{sender}>\n", name.replace(['"', '\\'], "")),
            None => format!("From: {sender}\n"),
        };
        content.extend_from_slice(from.as_bytes());
    }
    if options.extract {
        content.extend_from_slice(&without_header(head, b"bcc"));
    } else {
        content.extend_from_slice(head);
    }
    content.extend_from_slice(body);
    recipients.dedup();
    Prepared {
        content,
        recipients,
    }
}

/// Where a line holding only `.` starts.
fn lone_dot(input: &[u8]) -> Option<usize> {
    let mut start = 0;
    for line in input.split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text == b"." {
            return Some(start);
        }
        start += line.len();
    }
    None
}

/// The header section (with its blank line) and the body.
fn split_header(input: &[u8]) -> (&[u8], &[u8]) {
    input.split_at(section_end(input).unwrap_or(input.len()))
}

/// The header lines, each with its folded continuation lines.
fn header_fields(head: &[u8]) -> Vec<&[u8]> {
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut at = 0;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation && at > start {
            fields.push(&head[start..at]);
            start = at;
        }
        at += line.len();
    }
    if at > start {
        fields.push(&head[start..at]);
    }
    fields
}

fn without_header(head: &[u8], name: &[u8]) -> Vec<u8> {
    header_fields(head)
        .into_iter()
        .filter(|f| !is_field(f, name))
        .flatten()
        .copied()
        .collect()
}

/// The addresses in To, Cc and Bcc.
fn header_recipients(head: &[u8]) -> Vec<String> {
    let mut message = head.to_vec();
    message.extend_from_slice(b"\n");
    let Some(parsed) = mail_parser::MessageParser::default().parse(&message) else {
        return Vec::new();
    };
    [parsed.to(), parsed.cc(), parsed.bcc()]
        .into_iter()
        .flatten()
        .flat_map(|list| list.iter())
        .filter_map(|address| address.address())
        .map(str::to_string)
        .collect()
}

/// Runs `sendmail` with its arguments (without the program name); returns the exit code.
/// The configuration is the one `-C` names, else `config` (`posthorn --config F sendmail`),
/// else `$POSTHORN_CONFIG`, else the system one if it exists.
pub fn main(config: Option<PathBuf>, args: &[String]) -> u8 {
    let options = match parse_args(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("sendmail: {e} (sendmail --help lists the options)");
            return exit::USAGE;
        }
    };
    if options.help {
        print!("{USAGE}");
        return 0;
    }
    let config_path = options.config.clone().or(config).or_else(|| {
        std::env::var_os("POSTHORN_CONFIG")
            .map(PathBuf::from)
            .or_else(|| {
                let system = PathBuf::from("/etc/posthorn/posthorn.toml");
                system.exists().then_some(system)
            })
    });
    let config = match config_path {
        Some(path) => match crate::settings::load(&path) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("sendmail: {e}");
                return exit::SOFTWARE;
            }
        },
        None => crate::config::Config::embedded(),
    };
    // SAFETY: getuid cannot fail.
    let user = user_name(rustix::process::getuid().as_raw()).unwrap_or_else(|| "nobody".into());
    let sender = options
        .sender
        .clone()
        .unwrap_or_else(|| format!("{user}@{}", config.server.hostname.get_ref()));
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("sendmail: cannot read the message: {e}");
        return exit::SOFTWARE;
    }
    let prepared = prepare(&input, &options, &sender);
    if prepared.recipients.is_empty() {
        eprintln!("sendmail: no recipients");
        return exit::USAGE;
    }
    let socket = config.server.data_dir.join(SOCKET);
    match submit(&socket, &sender, &prepared) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "sendmail: cannot reach the server at {}: {e}",
                socket.display()
            );
            exit::TEMPFAIL
        }
    }
}

/// The exit code for a refusal.
fn refused(what: &str, reply: &Reply) -> u8 {
    eprintln!("sendmail: {what} refused: {reply}");
    if reply.is_transient() {
        exit::TEMPFAIL
    } else if reply.status.is_some_and(|s| s.subject == 7) {
        exit::NOPERM
    } else {
        exit::DATAERR
    }
}

/// Talks SMTP to the server on `socket` and sends one message.
fn submit(socket: &Path, sender: &str, prepared: &Prepared) -> std::io::Result<u8> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut client = Client::new("localhost");
    let eight_bit = prepared.content.iter().any(|&b| b >= 0x80);
    let utf8 = !sender.is_ascii() || prepared.recipients.iter().any(|r| !r.is_ascii());
    let mut mail_params = Vec::new();
    if eight_bit {
        mail_params.push("BODY=8BITMIME".to_string());
    }
    if utf8 {
        mail_params.push("SMTPUTF8".to_string());
    }
    let mut outgoing = Some(Outgoing {
        from: sender.to_string(),
        mail_params,
        recipients: prepared
            .recipients
            .iter()
            .map(|r| (r.clone(), Vec::new()))
            .collect(),
        chunk_len: None,
    });
    let mut code = 0;
    let mut buffer = [0u8; 4096];
    loop {
        stream.write_all(client.output())?;
        client.clear_output();
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            return Ok(if code == 0 { exit::TEMPFAIL } else { code });
        }
        client.feed(&buffer[..read]);
        while let Some(event) = client
            .next_event()
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?
        {
            match event {
                Event::Ready => match outgoing.take() {
                    Some(message) => client.send(message),
                    None => client.quit(),
                },
                Event::Recipient(i, reply) if !reply.is_positive() => {
                    let recipient = prepared.recipients.get(i).map_or("?", String::as_str);
                    eprintln!("sendmail: recipient {recipient} refused: {reply}");
                    code = if reply.is_transient() {
                        exit::TEMPFAIL
                    } else {
                        exit::NOUSER
                    };
                }
                Event::Recipient(..) => {}
                Event::SendContent => {
                    stream.write_all(client.output())?;
                    client.clear_output();
                    let mut stuffed = Vec::with_capacity(prepared.content.len() + 64);
                    let mut stuffer = DotStuffer::default();
                    stuffer.stuff(&prepared.content, &mut stuffed);
                    stuffer.finish(&mut stuffed);
                    stream.write_all(&stuffed)?;
                    client.content_sent();
                }
                Event::Done(end) => {
                    code = match end {
                        TransactionEnd::Content(reply) if reply.is_positive() => code,
                        TransactionEnd::Content(reply) | TransactionEnd::DataRefused(reply) => {
                            refused("message", &reply)
                        }
                        TransactionEnd::MailRefused(reply) => refused("sender", &reply),
                        TransactionEnd::NoRecipients => code.max(exit::NOUSER),
                    };
                    client.quit();
                }
                Event::Refused(stage, reply) => return Ok(refused(&format!("{stage:?}"), &reply)),
                Event::StartTls => return Ok(exit::SOFTWARE),
                Event::Closed => return Ok(code),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_as_programs_pass_them() {
        let o = parse_args(&args("-t -i")).unwrap();
        assert!(o.extract && o.ignore_dots && o.recipients.is_empty());
        let o = parse_args(&args("-oi -fapp@example.com -F Web a@x b@y")).unwrap();
        assert!(o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("app@example.com"));
        assert_eq!(o.full_name.as_deref(), Some("Web"));
        assert_eq!(o.recipients, ["a@x", "b@y"]);
        let o = parse_args(&args("-f app@example.com -odi -oem -- -odd@x")).unwrap();
        assert_eq!(o.recipients, ["-odd@x"]);
        assert!(parse_args(&args("-bs")).is_err());
        assert!(parse_args(&args("-f")).is_err());
        assert!(parse_args(&args("-Z")).is_err());
        assert!(parse_args(&args("-t --help")).unwrap().help);
    }

    #[test]
    fn extracts_recipients_and_strips_bcc() {
        let input = b"To: A <a@example.com>, b@example.com\nCc: c@example.com\nBcc: secret@example.com,\n  other@example.com\nSubject: hi\n\nbody\n";
        let options = Options {
            extract: true,
            ..Options::default()
        };
        let p = prepare(input, &options, "me@host");
        assert_eq!(
            p.recipients,
            [
                "a@example.com",
                "b@example.com",
                "c@example.com",
                "secret@example.com",
                "other@example.com"
            ]
        );
        let text = String::from_utf8(p.content).unwrap();
        assert!(
            !text.to_lowercase().contains("bcc") && !text.contains("other@"),
            "{text}"
        );
        assert!(text.starts_with("From: me@host\nTo: A"), "{text}");
        assert!(text.ends_with("Subject: hi\n\nbody\n"), "{text}");
    }

    #[test]
    fn lone_dot_ends_input_unless_ignored() {
        let input = b"Subject: x\n\nline\n.\nafter\n";
        let p = prepare(input, &Options::default(), "me@host");
        assert!(p.content.ends_with(b"line\n"));
        let ignore = Options {
            ignore_dots: true,
            ..Options::default()
        };
        assert!(
            prepare(input, &ignore, "me@host")
                .content
                .ends_with(b".\nafter\n")
        );
    }

    #[test]
    fn existing_from_is_kept_and_full_name_used_otherwise() {
        let p = prepare(b"From: x@y\n\nb\n", &Options::default(), "me@host");
        assert!(p.content.starts_with(b"From: x@y\n\nb"));
        let named = Options {
            full_name: Some("Cron \"Daemon\"".into()),
            ..Options::default()
        };
        let p = prepare(b"Subject: s\n\nb\n", &named, "me@host");
        assert!(
            p.content
                .starts_with(b"From: \"Cron Daemon\" <me@host>\nSubject: s")
        );
    }

    #[test]
    fn current_user_has_a_name() {
        // SAFETY: getuid cannot fail.
        assert!(user_name(rustix::process::getuid().as_raw()).is_some());
    }
}
