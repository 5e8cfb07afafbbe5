//! The configuration file: TOML, every key optional with its default here (and documented
//! in `config/posthorn.example.toml`). Loading reports the first problem with the key's
//! dotted name and its line, and nothing starts with a config that has one.

mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use posthorn_proto::data::{BareNewline, ContentLimits};
use posthorn_proto::{SessionConfig, address};
use serde::Deserialize;
use toml::Spanned;

pub use units::{Size, Span};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity and storage of this server.
    #[serde(default)]
    pub server: Server,
    /// The sockets we listen on.
    #[serde(default = "default_listeners", rename = "listener")]
    pub listeners: Vec<Listener>,
    /// Protocol limits against mistakes and abuse.
    #[serde(default)]
    pub limits: Limits,
    /// Delivery scheduling.
    #[serde(default)]
    pub queue: Queue,
    /// The domains we receive mail for.
    #[serde(default = "default_domains", rename = "domain")]
    pub domains: Vec<Domain>,
    /// Local mailboxes.
    #[serde(default = "default_accounts", rename = "account")]
    pub accounts: Vec<Account>,
    /// Addresses that forward to one or more other addresses, local or remote.
    #[serde(default)]
    pub aliases: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Our name in greetings and Received headers; the system host name by default.
    pub hostname: Spanned<String>,
    /// Where the queue and the mailboxes live.
    pub data_dir: PathBuf,
    /// How long running sessions may take to finish after SIGTERM.
    pub shutdown_grace: Span,
    /// Separates a local part from its extension: `user+tag` delivers to `user`.
    pub recipient_delimiter: Option<Spanned<String>>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            hostname: Spanned::new(0..0, system_hostname()),
            data_dir: PathBuf::from("posthorn-data"),
            shutdown_grace: Span(Duration::from_secs(30)),
            recipient_delimiter: Some(Spanned::new(0..0, "+".to_string())),
        }
    }
}

/// `[[listener]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// What the listener is for.
    pub role: Role,
    /// Address and port.
    pub address: SocketAddr,
}

/// The job of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Mail from other servers (port 25).
    Mx,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Mx => "mx",
        })
    }
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted (advertised as SIZE).
    pub max_message_size: Size,
    /// Most recipients per message; more get 452 4.5.3.
    pub max_recipients: usize,
    /// Longest command line, without CRLF.
    pub max_command_line: usize,
    /// Longest line of message text, without CRLF.
    pub max_text_line: usize,
    /// 5xx replies a client may earn before it is disconnected.
    pub max_errors: u32,
    /// Longest wait for a command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    pub command_timeout: Span,
    /// Longest wait for the next block of message content (§4.5.3.2.5-6).
    pub data_timeout: Span,
    /// Most concurrent connections in all.
    pub max_connections: usize,
    /// Most concurrent connections from one client address.
    pub max_connections_per_ip: usize,
    /// What to do with a bare CR or LF: "reject" (550 5.6.0) or "normalize".
    pub bare_newline: BareNewline,
}

impl Default for Limits {
    fn default() -> Self {
        let protocol = SessionConfig::new("");
        Limits {
            max_message_size: Size(protocol.content.max_size),
            max_recipients: protocol.max_recipients,
            max_command_line: protocol.max_command_line,
            max_text_line: protocol.content.max_line,
            max_errors: protocol.max_errors,
            command_timeout: Span(Duration::from_secs(300)),
            data_timeout: Span(Duration::from_secs(600)),
            max_connections: 1000,
            max_connections_per_ip: 20,
            bare_newline: protocol.content.bare_newline,
        }
    }
}

/// `[queue]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// Waits between delivery attempts; the last one repeats.
    pub retry_schedule: Vec<Span>,
    /// Messages delivered at the same time.
    pub delivery_concurrency: usize,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            retry_schedule: [60, 300, 900, 1800, 3600, 7200]
                .map(|s| Span(Duration::from_secs(s)))
                .to_vec(),
            delivery_concurrency: 16,
        }
    }
}

/// `[[domain]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The domain name.
    pub name: Spanned<String>,
    /// An account that receives mail for unknown local parts of this domain.
    pub catch_all: Option<Spanned<String>>,
}

/// `[[account]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The account name; also its mailbox folder name.
    pub name: Spanned<String>,
    /// Its addresses; by default `name@` every local domain.
    pub addresses: Option<Vec<Spanned<String>>>,
    /// Mailbox size limit; none by default.
    pub quota: Option<Size>,
}

fn default_listeners() -> Vec<Listener> {
    vec![Listener {
        role: Role::Mx,
        address: SocketAddr::from(([127, 0, 0, 1], 2525)),
    }]
}

fn default_domains() -> Vec<Domain> {
    vec![Domain {
        name: Spanned::new(0..0, "localhost".into()),
        catch_all: None,
    }]
}

fn default_accounts() -> Vec<Account> {
    vec![Account {
        name: Spanned::new(0..0, "postmaster".into()),
        addresses: None,
        quota: None,
    }]
}

/// The machine's host name when it is a valid domain, else `localhost`.
fn system_hostname() -> String {
    let name = gethostname::gethostname().to_string_lossy().to_lowercase();
    if address::is_valid_domain(&name) {
        name
    } else {
        "localhost".into()
    }
}

/// A configuration problem: which key, where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file it came from, if any.
    pub file: Option<PathBuf>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The dotted key, e.g. `limits.max_message_size` or `account[1].name`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
        }
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        } else if self.file.is_some() {
            f.write_str(" ")?;
        }
        if !self.key.is_empty() {
            write!(f, "key `{}`: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A problem found after parsing, with the span of the offending value.
#[derive(Debug)]
pub struct Invalid {
    /// The dotted key.
    pub key: String,
    /// Where the value is in the file; empty for defaults.
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// A problem with the value of `key` held in `value`.
    pub fn at<T>(key: impl Into<String>, value: &Spanned<T>, message: impl Into<String>) -> Self {
        Invalid {
            key: key.into(),
            span: value.span(),
            message: message.into(),
        }
    }
}

impl Config {
    /// The embedded defaults: used when `serve` runs without a file.
    pub fn embedded() -> Self {
        match parse("", None) {
            Ok(config) => config,
            Err(e) => unreachable!("the empty config is valid: {e}"),
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        parse(&text, Some(path))
    }

    /// The protocol limits for sessions.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            hostname: self.server.hostname.get_ref().clone(),
            max_command_line: self.limits.max_command_line,
            max_recipients: self.limits.max_recipients,
            max_errors: self.limits.max_errors,
            content: ContentLimits {
                max_line: self.limits.max_text_line,
                max_size: self.limits.max_message_size.0,
                bare_newline: self.limits.bare_newline,
            },
            starttls: false,
        }
    }

    /// The recipient delimiter as a character.
    pub fn recipient_delimiter(&self) -> Option<char> {
        self.server
            .recipient_delimiter
            .as_ref()
            .and_then(|d| d.get_ref().chars().next())
    }

    fn validate(&self) -> Result<(), Invalid> {
        let hostname = &self.server.hostname;
        if !address::is_valid_domain(hostname.get_ref()) {
            return Err(Invalid::at(
                "server.hostname",
                hostname,
                "not a valid host name",
            ));
        }
        if let Some(delimiter) = &self.server.recipient_delimiter
            && delimiter.get_ref().chars().count() != 1
        {
            return Err(Invalid::at(
                "server.recipient_delimiter",
                delimiter,
                "must be exactly one character",
            ));
        }
        if self.listeners.is_empty() {
            return Err(Invalid {
                key: "listener".into(),
                span: 0..0,
                message: "at least one listener is needed".into(),
            });
        }
        let limits = &self.limits;
        let minimums: [(&str, u64, u64); 6] = [
            // RFC 5321 §4.5.3.1: the smallest limits a server may impose.
            (
                "limits.max_command_line",
                limits.max_command_line as u64,
                512,
            ),
            ("limits.max_text_line", limits.max_text_line as u64, 998),
            ("limits.max_recipients", limits.max_recipients as u64, 1),
            ("limits.max_message_size", limits.max_message_size.0, 1024),
            ("limits.max_connections", limits.max_connections as u64, 1),
            (
                "limits.max_connections_per_ip",
                limits.max_connections_per_ip as u64,
                1,
            ),
        ];
        for (key, value, minimum) in minimums {
            if value < minimum {
                return Err(Invalid {
                    key: key.into(),
                    span: 0..0,
                    message: format!("{value} is below the minimum of {minimum}"),
                });
            }
        }
        if self.queue.retry_schedule.is_empty() || self.queue.delivery_concurrency == 0 {
            return Err(Invalid {
                key: "queue".into(),
                span: 0..0,
                message: "retry_schedule must list at least one wait and delivery_concurrency must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Parses and validates `text`; `file` names it in errors.
pub fn parse(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
    let error = |line: Option<usize>, key: String, message: String| ConfigError {
        file: file.map(Path::to_path_buf),
        line,
        key,
        message,
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        error(
            e.span().map(|s| line_of(text, s.start)),
            String::new(),
            e.message().to_string(),
        )
    })?;
    let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        error(
            inner.span().map(|s| line_of(text, s.start)),
            if key == "." { String::new() } else { key },
            inner.message().to_string(),
        )
    })?;
    let check = config
        .validate()
        .and_then(|()| crate::directory::Directory::build(&config).map(drop));
    check.map_err(|invalid| {
        let line = if invalid.span.is_empty() {
            key_line(text, &invalid.key)
        } else {
            Some(line_of(text, invalid.span.start))
        };
        error(line, invalid.key, invalid.message)
    })?;
    Ok(config)
}

/// The line where the last segment of `key` is assigned, for problems found in values
/// that carry no span (plain numbers); `None` when the key is not in the text (a default).
fn key_line(text: &str, key: &str) -> Option<usize> {
    let name = key.rsplit('.').next()?;
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The 1-based line holding byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> ConfigError {
        parse(text, None).expect_err("config should be refused")
    }

    #[test]
    fn empty_config_is_the_embedded_default() {
        let config = Config::embedded();
        assert_eq!(config.listeners.len(), 1);
        assert_eq!(config.listeners[0].address.to_string(), "127.0.0.1:2525");
        assert_eq!(config.domains[0].name.get_ref(), "localhost");
        assert_eq!(config.accounts[0].name.get_ref(), "postmaster");
        assert_eq!(config.server.data_dir, PathBuf::from("posthorn-data"));
    }

    #[test]
    fn example_file_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/posthorn.example.toml");
        let mut example = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let embedded = Config::embedded();
        example.server.hostname = embedded.server.hostname.clone();
        assert_eq!(example, embedded);
    }

    #[test]
    fn units_are_understood() {
        let config = parse(
            "[limits]\nmax_message_size = \"10MiB\"\ncommand_timeout = \"2m\"\ndata_timeout = 30\n",
            None,
        )
        .unwrap();
        assert_eq!(config.limits.max_message_size, Size(10 << 20));
        assert_eq!(
            config.limits.command_timeout,
            Span(Duration::from_secs(120))
        );
        assert_eq!(config.limits.data_timeout, Span(Duration::from_secs(30)));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = error("[limits]\nmax_recipients = 10\nmax_recipient = 5\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `max_recipient`"), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    #[test]
    fn bad_value_is_named_with_key_and_line() {
        let e =
            error("[server]\nhostname = \"mx.example\"\n\n[limits]\nmax_message_size = \"huge\"\n");
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key, "limits.max_message_size");
        assert!(e.message.contains("invalid size"), "{e}");
    }

    #[test]
    fn bad_enum_value_is_named() {
        let e = error("[limits]\nbare_newline = \"maybe\"\n");
        assert_eq!(e.key, "limits.bare_newline");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn bad_listener_address_is_named() {
        let e = error("[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1\"\n");
        assert_eq!(e.key, "listener[0].address");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn toml_syntax_error_has_a_line() {
        let e = error("[limits]\nmax_recipients = = 3\n");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn invalid_hostname_is_refused() {
        let e = error("[server]\nhostname = \"not a host\"\n");
        assert_eq!(e.key, "server.hostname");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn limits_below_rfc_minimums_are_refused() {
        let e = error("[limits]\nmax_errors = 3\nmax_command_line = 100\n");
        assert_eq!(e.key, "limits.max_command_line");
        assert_eq!(e.line, Some(3));
    }
}
