//! The configuration file: TOML, every key optional with its default here (and documented
//! in `config/posthorn.example.toml`). Loading reports the first problem with the key's
//! dotted name and its line, and nothing starts with a config that has one.

mod mail_auth;
mod text;
mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use posthorn_proto::data::{BareNewline, ContentLimits};
use posthorn_proto::{SessionConfig, address};
use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use mail_auth::{Action, Dkim, DkimKeyConfig, DnsErrors, Verify};
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
    /// Who may do what.
    #[serde(default)]
    pub policy: Policy,
    /// Our certificate for STARTTLS and implicit TLS.
    #[serde(default)]
    pub tls: Tls,
    /// SMTP AUTH: the users file and brute-force protection.
    #[serde(default)]
    pub auth: Auth,
    /// What an authenticated user may send per hour and per day.
    #[serde(default)]
    pub sending: SendingLimits,
    /// SPF, DKIM, DMARC and ARC checks of mail from other servers.
    #[serde(default)]
    pub verify: Verify,
    /// DKIM signing of our users' mail, and ARC sealing of forwarded mail.
    #[serde(default)]
    pub dkim: Dkim,
    /// Delivery scheduling.
    #[serde(default)]
    pub queue: Queue,
    /// Outbound SMTP: how we reach other servers.
    #[serde(default)]
    pub delivery: Delivery,
    /// A smarthost that takes every message for other domains.
    pub relay: Option<NextHop>,
    /// Per-domain next hops, overriding MX lookup and the relay.
    #[serde(default, rename = "route")]
    pub routes: Vec<NextHop>,
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
    #[serde(deserialize_with = "text::spanned")]
    pub address: Spanned<SocketAddr>,
    /// Offer AUTH; by default on submission listeners only.
    pub auth: Option<bool>,
    /// Offer AUTH before TLS too (passwords in the clear): only for a listener that
    /// nothing but trusted local programs can reach.
    #[serde(default)]
    pub allow_plaintext_auth: bool,
}

impl Listener {
    /// Whether AUTH is offered here.
    pub fn offers_auth(&self) -> bool {
        self.auth.unwrap_or(self.role != Role::Mx)
    }
}

/// The job of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Mail from other servers (port 25): STARTTLS offered, AUTH off by default.
    Mx,
    /// Mail from our own users (port 587, RFC 6409): STARTTLS, then AUTH required.
    Submission,
    /// Submission with TLS from the first byte (port 465, RFC 8314).
    Submissions,
    /// POP3 (port 110, RFC 1939), with STLS.
    Pop3,
    /// POP3 with TLS from the first byte (port 995, RFC 8314).
    Pop3s,
    /// IMAP (port 143, RFC 9051), with STARTTLS.
    Imap,
    /// IMAP with TLS from the first byte (port 993, RFC 8314).
    Imaps,
}

impl Role {
    /// True for the roles that speak SMTP (the others serve mailboxes).
    pub fn is_smtp(self) -> bool {
        matches!(self, Role::Mx | Role::Submission | Role::Submissions)
    }

    /// True for the roles whose connections are TLS from the first byte.
    pub fn implicit_tls(self) -> bool {
        matches!(self, Role::Submissions | Role::Pop3s | Role::Imaps)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Mx => "mx",
            Role::Submission => "submission",
            Role::Submissions => "submissions",
            Role::Pop3 => "pop3",
            Role::Pop3s => "pop3s",
            Role::Imap => "imap",
            Role::Imaps => "imaps",
        })
    }
}

/// `[tls]`: our certificate. Without one, a self-signed certificate for the host name is
/// made on first start (in the data folder) so that STARTTLS works out of the box.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// The certificate chain (PEM), leaf first.
    pub certificate: Option<Spanned<PathBuf>>,
    /// Its private key (PEM).
    pub key: Option<Spanned<PathBuf>>,
}

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// The users file that `posthorn user` edits; `users.toml` in the data folder by
    /// default. A running server picks up changes by itself.
    pub users_file: Option<PathBuf>,
    /// Wait before answering a failed AUTH: slows down password guessing.
    pub failure_delay: Span,
    /// Failed AUTHs from one address within `failure_window` before it is blocked.
    pub max_failures: u32,
    /// The window in which failures are counted.
    pub failure_window: Span,
    /// How long a blocked address gets `421 4.7.0`.
    pub block_time: Span,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            users_file: None,
            failure_delay: Span(Duration::from_secs(2)),
            max_failures: 5,
            failure_window: Span(Duration::from_secs(600)),
            block_time: Span(Duration::from_secs(900)),
        }
    }
}

/// `[sending]` and an account's `sending`: the most an authenticated user may send, as
/// mail providers limit bulk sending. 0 means no limit. Over a limit, MAIL gets
/// `451 4.7.1` and RCPT `452 4.7.1`; the counters survive a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendingLimits {
    /// Messages per clock hour.
    pub messages_per_hour: u64,
    /// Messages per day (UTC).
    pub messages_per_day: u64,
    /// Recipients per clock hour, over all messages.
    pub recipients_per_hour: u64,
    /// Recipients per day (UTC).
    pub recipients_per_day: u64,
}

impl Default for SendingLimits {
    fn default() -> Self {
        SendingLimits {
            messages_per_hour: 1_000,
            messages_per_day: 10_000,
            recipients_per_hour: 5_000,
            recipients_per_day: 50_000,
        }
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
    /// Most new connections per minute from one client address (0: no limit). Trusted
    /// networks are exempt.
    pub max_connection_rate_per_ip: u32,
    /// Errors after which every reply to the client is delayed, longer with each error
    /// (tarpitting); `max_errors` disconnects.
    pub tarpit_after: u32,
    /// The delay added per error beyond `tarpit_after`.
    pub tarpit_delay: Span,
    /// Memory all sessions together may use to hold messages whole: SMTP checks (DKIM,
    /// ARC, DMARC) and signing, IMAP parses, text searches and large APPENDs; the others wait their turn.
    pub check_memory: Size,
    /// IPv6 clients in one network of this prefix length count as one client for the
    /// per-address limits (connections, connection rate, failed logins).
    pub ipv6_prefix_length: u8,
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
            max_connection_rate_per_ip: 0,
            tarpit_after: 5,
            tarpit_delay: Span(Duration::from_secs(1)),
            check_memory: Size(64 * 1024 * 1024),
            ipv6_prefix_length: crate::client_key::DEFAULT_IPV6_PREFIX,
        }
    }
}

/// `[policy]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Client networks that may relay: send mail to any domain, like Postfix's
    /// `mynetworks`. Empty by default, so the server is never an open relay.
    #[serde(deserialize_with = "text::list")]
    pub trusted_networks: Vec<ipnet::IpNet>,
    /// Local programs (`posthorn sendmail`) run by members of this Unix group, or by
    /// root, may use any sender; everyone else only `user@hostname` and `local_send_as`.
    pub local_any_sender_group: String,
    /// More sender addresses per local Unix user: addresses, `@domain` or `*`, like an
    /// account's `send_as` (Postfix's `local_login_sender_maps`).
    pub local_send_as: std::collections::BTreeMap<String, Vec<Spanned<String>>>,
}

/// `[queue]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// Waits between delivery attempts; the last one repeats.
    pub retry_schedule: Vec<Span>,
    /// How long a message may wait before it is returned to its sender.
    pub max_lifetime: Span,
    /// When the sender is told, once, that delivery is delayed; 0 never.
    pub delay_warning: Span,
    /// Most Received headers a message may carry before it is taken for a loop.
    pub max_hops: usize,
    /// Messages delivered locally at the same time.
    pub local_concurrency: usize,
    /// Messages held in memory for delivery at once; the rest wait on disk.
    pub active_limit: usize,
    /// Tell the postmaster when a notification itself cannot be delivered.
    pub notify_postmaster: bool,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            retry_schedule: [60, 300, 900, 1800, 3600, 7200]
                .map(|s| Span(Duration::from_secs(s)))
                .to_vec(),
            max_lifetime: Span(Duration::from_secs(5 * 86_400)),
            delay_warning: Span(Duration::from_secs(4 * 3_600)),
            max_hops: 50,
            local_concurrency: 16,
            active_limit: 10_000,
            notify_postmaster: true,
        }
    }
}

/// How hard to insist on TLS when talking to another server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Never start TLS.
    None,
    /// STARTTLS when offered; any certificate is accepted (RFC 7435) and the result is
    /// logged.
    #[default]
    Opportunistic,
    /// TLS or nothing; any certificate is accepted.
    Required,
    /// TLS with a certificate valid for the host name, or nothing.
    Verify,
}

/// `[delivery]`: outbound SMTP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// The name we give in EHLO; the server host name by default.
    pub helo_name: Option<Spanned<String>>,
    /// The port of the hosts found by MX lookup.
    pub port: u16,
    /// TLS for MX deliveries.
    pub tls: TlsPolicy,
    /// Wait for a TCP connection.
    pub connect_timeout: Span,
    /// Wait for the greeting and for each command's reply (RFC 5321 §4.5.3.2: 5 minutes).
    pub command_timeout: Span,
    /// Wait for the reply after the content (RFC 5321 §4.5.3.2.6: 10 minutes).
    pub final_timeout: Span,
    /// Outbound connections in all.
    pub max_connections: usize,
    /// Outbound connections to one destination.
    pub max_connections_per_destination: usize,
    /// Recipients sent in one transaction.
    pub max_recipients_per_transaction: usize,
    /// A DNS server to ask instead of the system's (address and port).
    #[serde(deserialize_with = "text::optional")]
    pub nameserver: Option<SocketAddr>,
    /// Extra trust anchors (PEM) for `tls = "verify"`, besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            helo_name: None,
            port: 25,
            tls: TlsPolicy::Opportunistic,
            connect_timeout: Span(Duration::from_secs(30)),
            command_timeout: Span(Duration::from_secs(300)),
            final_timeout: Span(Duration::from_secs(600)),
            max_connections: 100,
            max_connections_per_destination: 20,
            max_recipients_per_transaction: 50,
            nameserver: None,
            ca_file: None,
        }
    }
}

/// `[relay]` (a smarthost for all other domains) or a `[[route]]` (the next hop of one
/// domain).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextHop {
    /// The recipient domain of a `[[route]]`; absent for `[relay]`.
    pub domain: Option<Spanned<String>>,
    /// `[host]:port` (no MX lookup, like Postfix) or `host[:port]` (MX lookup of host).
    pub host: Spanned<String>,
    /// TLS for this hop.
    #[serde(default)]
    pub tls: TlsPolicy,
    /// TLS from the first byte (port 465, RFC 8314) instead of STARTTLS.
    #[serde(default)]
    pub implicit_tls: bool,
    /// AUTH user name; sent only over TLS.
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<Spanned<String>>,
    /// A file holding the AUTH password (first line), instead of `password`.
    pub password_file: Option<Spanned<PathBuf>>,
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

/// `[[account]]`, and a `[[user]]` of the users file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The account name; also its mailbox folder name.
    pub name: Spanned<String>,
    /// Its addresses; by default `name@` every local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<Vec<Spanned<String>>>,
    /// Mailbox size limit; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Size>,
    /// The password as an argon2id hash (`posthorn user passwd` writes one); without it
    /// the account cannot log in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Spanned<String>>,
    /// The sender addresses it may use: addresses, `@domain` for a whole domain, or `*`;
    /// by default its own addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_as: Option<Vec<Spanned<String>>>,
    /// Its own sending limits instead of `[sending]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending: Option<SendingLimits>,
}

fn default_listeners() -> Vec<Listener> {
    [
        (Role::Mx, 2525),
        (Role::Submission, 5870),
        (Role::Submissions, 4650),
        (Role::Pop3, 1100),
        (Role::Pop3s, 9950),
        (Role::Imap, 1430),
        (Role::Imaps, 9930),
    ]
    .into_iter()
    .map(|(role, port)| Listener {
        role,
        address: Spanned::new(0..0, SocketAddr::from(([127, 0, 0, 1], port))),
        auth: None,
        allow_plaintext_auth: false,
    })
    .collect()
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
        password: None,
        send_as: None,
        sending: None,
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
    /// The offending value as written (strings quoted), when the message does not quote
    /// it already (parse errors do).
    pub value: Option<String>,
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
        write_problem(f, &self.key, self.value.as_deref(), &self.message)
    }
}

/// `key `listener[1].address` = "127.0.0.1:25": message`: the key and value as the file
/// has them, so the line is easy to find and the mistake easy to see.
fn write_problem(
    f: &mut fmt::Formatter<'_>,
    key: &str,
    value: Option<&str>,
    message: &str,
) -> fmt::Result {
    if !key.is_empty() {
        write!(f, "key `{key}`")?;
        if let Some(value) = value {
            write!(f, " = {value}")?;
        }
        f.write_str(": ")?;
    }
    f.write_str(message)
}

impl std::error::Error for ConfigError {}

/// A problem found after parsing, with the span of the offending value.
#[derive(Debug)]
pub struct Invalid {
    /// The dotted key.
    pub key: String,
    /// Where the value is in the file; empty for defaults.
    pub span: Range<usize>,
    /// The value as written, strings quoted.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// A problem with the value of `key` held in `value`.
    pub fn at<T: fmt::Debug>(
        key: impl Into<String>,
        value: &Spanned<T>,
        message: impl Into<String>,
    ) -> Self {
        Invalid {
            key: key.into(),
            span: value.span(),
            value: format!("{:?}", value.get_ref()),
            message: message.into(),
        }
    }

    /// A problem with a value that carries no span (a number, a list); its line is found
    /// by its key.
    pub fn of(
        key: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        Invalid {
            key: key.into(),
            span: 0..0,
            value: value.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problem(f, &self.key, Some(&self.value), &self.message)
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

    /// Reads and validates a config file, with the accounts of the users file it names:
    /// an alias may lead to an account made by `posthorn user add`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            key: String::new(),
            value: None,
            message: format!("cannot read: {e}"),
        })?;
        let config = deserialize(&text, Some(path))?;
        let users = crate::users::UsersFile::load(&config.users_file())?;
        config.check(&text, Some(path), &users.users)?;
        Ok(config)
    }

    /// Validates the values and the directory they make with `users` (entries of the users
    /// file); a problem is reported at its line in `text` (from `file`), or in the users
    /// file for one of its entries.
    fn check(&self, text: &str, file: Option<&Path>, users: &[Account]) -> Result<(), ConfigError> {
        self.validate()
            .and_then(|()| crate::directory::Directory::build_with_users(self, users).map(drop))
            .map_err(|invalid| {
                if crate::users::is_about_a_user(&invalid) {
                    return crate::users::locate(&self.users_file(), invalid);
                }
                let line = if invalid.span.is_empty() {
                    key_line(text, &invalid.key)
                } else {
                    Some(line_of(text, invalid.span.start))
                };
                ConfigError {
                    file: file.map(Path::to_path_buf),
                    line,
                    key: invalid.key,
                    value: Some(invalid.value),
                    message: invalid.message,
                }
            })
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
            auth: posthorn_proto::AuthPolicy::default(),
        }
    }

    /// The users file: configured, or `users.toml` in the data folder.
    pub fn users_file(&self) -> PathBuf {
        self.auth
            .users_file
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("users.toml"))
    }

    /// True when `domain` is one of our `[[domain]]`s.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains
            .iter()
            .any(|d| d.name.get_ref().eq_ignore_ascii_case(domain))
    }

    /// The recipient delimiter as a character.
    pub fn recipient_delimiter(&self) -> Option<char> {
        self.server
            .recipient_delimiter
            .as_ref()
            .and_then(|d| d.get_ref().chars().next())
    }

    /// Refuses two listeners that would bind the same socket: `serve` would otherwise fail
    /// at start with "address in use" while `check-config` said OK.
    fn check_listener_addresses(&self) -> Result<(), Invalid> {
        for (i, listener) in self.listeners.iter().enumerate() {
            let address = *listener.address.get_ref();
            let earlier = self.listeners[..i]
                .iter()
                .position(|other| binds_overlap(*other.address.get_ref(), address));
            if let Some(j) = earlier {
                return Err(Invalid::at(
                    format!("listener[{i}].address"),
                    &Spanned::new(listener.address.span(), address.to_string()),
                    format!(
                        "listener[{j}] ({}) listens there already",
                        self.listeners[j].address.get_ref()
                    ),
                ));
            }
        }
        Ok(())
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
            return Err(Invalid::of(
                "listener",
                "[]",
                "at least one listener is needed",
            ));
        }
        self.check_listener_addresses()?;
        let limits = &self.limits;
        let minimums: [(&str, u64, u64); 7] = [
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
            // Shorter prefixes would put whole providers behind one key.
            (
                "limits.ipv6_prefix_length",
                u64::from(limits.ipv6_prefix_length),
                16,
            ),
        ];
        for (key, value, minimum) in minimums {
            if value < minimum {
                return Err(Invalid::of(
                    key,
                    value,
                    format!("below the minimum of {minimum}"),
                ));
            }
        }
        if limits.ipv6_prefix_length > 128 {
            return Err(Invalid::of(
                "limits.ipv6_prefix_length",
                limits.ipv6_prefix_length,
                "above the maximum of 128",
            ));
        }
        if self.tls.certificate.is_some() != self.tls.key.is_some() {
            let (key, value) = match (&self.tls.certificate, &self.tls.key) {
                (Some(c), None) => ("tls.certificate", c),
                (None, Some(k)) => ("tls.key", k),
                _ => unreachable!("exactly one is set"),
            };
            return Err(Invalid::at(
                key,
                value,
                "give both tls.certificate and tls.key",
            ));
        }
        if let (Some(certificate), Some(key)) = (&self.tls.certificate, &self.tls.key) {
            crate::certs::load_pem(certificate.get_ref(), key.get_ref()).map_err(|e| {
                let (name, value) = if e.in_key {
                    ("tls.key", key)
                } else {
                    ("tls.certificate", certificate)
                };
                Invalid::at(name, value, e.message)
            })?;
        }
        for (i, key) in self.dkim.keys.iter().enumerate() {
            let name = format!("dkim.key[{i}]");
            if !address::is_valid_domain(key.domain.get_ref()) {
                return Err(Invalid::at(
                    format!("{name}.domain"),
                    &key.domain,
                    "not a valid domain name",
                ));
            }
            if !address::is_valid_domain(key.selector.get_ref()) {
                return Err(Invalid::at(
                    format!("{name}.selector"),
                    &key.selector,
                    "not a valid selector (DNS labels)",
                ));
            }
            crate::mailauth::keys::load(key.file.get_ref())
                .map_err(|e| Invalid::at(format!("{name}.file"), &key.file, e))?;
        }
        let queue = &self.queue;
        let counts = [
            ("queue.local_concurrency", queue.local_concurrency),
            ("queue.active_limit", queue.active_limit),
            ("delivery.max_connections", self.delivery.max_connections),
            (
                "delivery.max_connections_per_destination",
                self.delivery.max_connections_per_destination,
            ),
            (
                "delivery.max_recipients_per_transaction",
                self.delivery.max_recipients_per_transaction,
            ),
        ];
        for (key, value) in counts {
            if value == 0 {
                return Err(Invalid::of(key, value, "must be at least 1"));
            }
        }
        if queue.retry_schedule.is_empty() {
            return Err(Invalid::of(
                "queue.retry_schedule",
                "[]",
                "list at least one wait",
            ));
        }
        if let Some(name) = &self.delivery.helo_name
            && !address::is_valid_domain(name.get_ref())
        {
            return Err(Invalid::at(
                "delivery.helo_name",
                name,
                "not a valid host name",
            ));
        }
        if let Some(relay) = &self.relay {
            if let Some(domain) = &relay.domain {
                return Err(Invalid::at(
                    "relay.domain",
                    domain,
                    "the relay takes every domain; use [[route]] for one",
                ));
            }
            relay.validate("relay")?;
        }
        for (i, route) in self.routes.iter().enumerate() {
            let key = format!("route[{i}]");
            let Some(domain) = &route.domain else {
                return Err(Invalid::at(
                    format!("{key}.host"),
                    &route.host,
                    "a route needs a domain",
                ));
            };
            if !address::is_valid_domain(domain.get_ref()) {
                return Err(Invalid::at(
                    format!("{key}.domain"),
                    domain,
                    "not a valid domain name",
                ));
            }
            route.validate(&key)?;
        }
        Ok(())
    }
}

impl NextHop {
    /// The parsed `host` value.
    pub fn target(&self) -> Result<HostSpec, String> {
        HostSpec::parse(self.host.get_ref())
    }

    fn validate(&self, key: &str) -> Result<(), Invalid> {
        self.target()
            .map_err(|e| Invalid::at(format!("{key}.host"), &self.host, e))?;
        if let (Some(password), Some(_)) = (&self.password, &self.password_file) {
            return Err(Invalid::at(
                format!("{key}.password"),
                password,
                "give password or password_file, not both",
            ));
        }
        let has_password = self.password.is_some() || self.password_file.is_some();
        if self.username.is_some() != has_password {
            return Err(Invalid::at(
                format!("{key}.host"),
                &self.host,
                "AUTH needs both username and password (or password_file)",
            ));
        }
        if let Some(file) = &self.password_file
            && let Err(e) = std::fs::read_to_string(file.get_ref())
        {
            return Err(Invalid::at(
                format!("{key}.password_file"),
                file,
                format!("cannot read: {e}"),
            ));
        }
        Ok(())
    }

    /// The AUTH credentials, reading `password_file` if that is where the password is.
    pub fn credentials(&self) -> Option<(String, String)> {
        let user = self.username.clone()?;
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => p.get_ref().clone(),
            (None, Some(file)) => std::fs::read_to_string(file.get_ref())
                .ok()?
                .lines()
                .next()?
                .to_string(),
            (None, None) => return None,
        };
        Some((user, password))
    }
}

/// A next hop as written in `host`: `[name]:port` is used as is, `name[:port]` is looked
/// up as a domain's MX first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Host name or IP address.
    pub host: String,
    /// The port; 25 unless given.
    pub port: u16,
    /// Look up MX records of `host` first.
    pub mx_lookup: bool,
}

impl HostSpec {
    /// Parses `[host]:port`, `[host]`, `host:port` or `host`.
    pub fn parse(text: &str) -> Result<HostSpec, String> {
        let bad = || {
            format!(
                "{text:?} is not a host: use [host]:port, [192.0.2.1]:587, [2001:db8::1]:25 or host"
            )
        };
        let (host, rest, mx_lookup) = match text.strip_prefix('[') {
            Some(inner) => {
                let (host, rest) = inner.split_once(']').ok_or_else(bad)?;
                (host, rest, false)
            }
            None => match text.split_once(':') {
                Some((host, _)) => (host, &text[host.len()..], true),
                None => (text, "", true),
            },
        };
        let port = match rest.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| bad())?,
            None if rest.is_empty() => 25,
            None => return Err(bad()),
        };
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        if !(is_ip || address::is_valid_domain(host)) || (is_ip && mx_lookup) {
            return Err(bad());
        }
        Ok(HostSpec {
            host: host.to_string(),
            port,
            mx_lookup,
        })
    }
}

/// True when listening on `a` and on `b` cannot both succeed: the same port (port 0 picks
/// a free one each time) on the same address, or on a wildcard address covering the other
/// (`[::]` covers IPv4 too, as Linux binds it dual-stack by default).
fn binds_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    let covers = |wide: SocketAddr, other: SocketAddr| {
        wide.ip().is_unspecified() && (wide.is_ipv6() || other.is_ipv4())
    };
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || covers(a, b) || covers(b, a))
}

/// Parses and validates `text` on its own (aliases lead to its accounts only); `file`
/// names it in errors.
pub fn parse(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
    let config = deserialize(text, file)?;
    config.check(text, file, &[])?;
    Ok(config)
}

/// Parses `text` into a configuration, unchecked; `file` names it in errors.
fn deserialize(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
    let error = |line: Option<usize>, key: String, message: String| ConfigError {
        file: file.map(Path::to_path_buf),
        line,
        key,
        value: None,
        message,
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        error(
            e.span().map(|s| line_of(text, s.start)),
            String::new(),
            e.message().to_string(),
        )
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = key_of(e.path());
        let inner = e.into_inner();
        error(
            inner.span().map(|s| line_of(text, s.start)),
            key,
            inner.message().to_string(),
        )
    })
}

/// The dotted key of a parse error (`listener[0].address`), without the field through
/// which toml hands over a `Spanned` value.
pub(crate) fn key_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name }
                if !name.starts_with("$__serde_spanned") =>
            {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Map { .. } | Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    key
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
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
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
        assert_eq!(config.listeners.len(), 7);
        assert_eq!(
            config.listeners[6].address.get_ref().to_string(),
            "127.0.0.1:9930"
        );
        assert_eq!(
            config.listeners[0].address.get_ref().to_string(),
            "127.0.0.1:2525"
        );
        assert_eq!(config.listeners[1].role, Role::Submission);
        assert!(config.listeners[1].offers_auth() && !config.listeners[0].offers_auth());
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
    fn unreadable_dkim_key_is_named_with_its_line() {
        let e = error(
            "[dkim]\nsign = true\n[[dkim.key]]\ndomain = \"example.org\"\nselector = \"s1\"\nfile = \"/nonexistent/key.pem\"\n",
        );
        assert_eq!(e.key, "dkim.key[0].file");
        assert_eq!(e.line, Some(6));
        let e = error("[verify]\ndmarc_reject = \"bounce\"\n");
        assert_eq!(e.key, "verify.dmarc_reject");
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
    fn host_specs() {
        let spec = |t: &str| HostSpec::parse(t);
        assert_eq!(
            spec("[smtp.example.net]:587").unwrap(),
            HostSpec {
                host: "smtp.example.net".into(),
                port: 587,
                mx_lookup: false
            }
        );
        assert_eq!(
            spec("example.net").unwrap(),
            HostSpec {
                host: "example.net".into(),
                port: 25,
                mx_lookup: true
            }
        );
        assert_eq!(spec("example.net:2525").unwrap().port, 2525);
        assert_eq!(spec("[2001:db8::1]:25").unwrap().host, "2001:db8::1");
        assert_eq!(spec("[192.0.2.1]").unwrap().port, 25);
        for bad in [
            "[x",
            "host:port",
            "[a]:99999",
            "bad host",
            "192.0.2.1",
            "[a]x",
        ] {
            assert!(spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relay_and_routes_are_checked() {
        let e = error("[relay]\nhost = \"smtp.example:abc\"\n");
        assert_eq!((e.key.as_str(), e.line), ("relay.host", Some(2)));
        let e = error("[[route]]\nhost = \"[10.0.0.1]:25\"\n");
        assert_eq!(e.key, "route[0].host");
        let e = error("[relay]\nhost = \"[a.example]\"\nusername = \"u\"\n");
        assert!(e.message.contains("AUTH needs both"), "{e}");
        let config = parse("[relay]\nhost = \"[a.example]:587\"\ntls = \"required\"\nusername = \"u\"\npassword = \"p\"\n\n[[route]]\ndomain = \"b.example\"\nhost = \"[127.0.0.1]:2526\"\ntls = \"none\"\n", None).unwrap();
        assert_eq!(
            config.relay.unwrap().credentials(),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(config.routes[0].tls, TlsPolicy::None);
    }

    #[test]
    fn listeners_sharing_an_address_are_refused() {
        let e = error(
            "[[listener]]\nrole = \"mx\"\naddress = \"0.0.0.0:25\"\n\n[[listener]]\nrole = \"submission\"\naddress = \"127.0.0.1:25\"\n",
        );
        assert_eq!((e.key.as_str(), e.line), ("listener[1].address", Some(7)));
        assert!(
            e.to_string()
                .contains("key `listener[1].address` = \"127.0.0.1:25\": listener[0] (0.0.0.0:25)"),
            "{e}"
        );
        let overlap = |a: &str, b: &str| binds_overlap(a.parse().unwrap(), b.parse().unwrap());
        assert!(overlap("127.0.0.1:25", "127.0.0.1:25"));
        assert!(overlap("[::]:25", "192.0.2.1:25"));
        assert!(overlap("[::1]:25", "[::]:25"));
        assert!(!overlap("0.0.0.0:25", "[::1]:25"));
        assert!(!overlap("127.0.0.1:25", "127.0.0.1:587"));
        assert!(!overlap("127.0.0.1:25", "127.0.0.2:25"));
        assert!(
            !overlap("127.0.0.1:0", "127.0.0.1:0"),
            "port 0 picks a free port"
        );
    }

    #[test]
    fn every_error_quotes_the_bad_value() {
        let cases = [
            (
                "[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:99999\"\n",
                "\"127.0.0.1:99999\"",
            ),
            ("[delivery]\nnameserver = \"192.0.2.1\"\n", "\"192.0.2.1\""),
            (
                "[policy]\ntrusted_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
                "\"10.0.0.0/33\"",
            ),
            ("[verify]\nskip_networks = [\"loopback\"]\n", "\"loopback\""),
            (
                "[[account]]\nname = \"alice\"\naddresses = [\"alice@@example.com\"]\n",
                "= \"alice@@example.com\"",
            ),
            (
                "[[account]]\nname = \"alice\"\nsend_as = [\"@bad domain\"]\n",
                "= \"@bad domain\"",
            ),
            ("[[account]]\nname = \"Alice\"\n", "= \"Alice\""),
            ("[[domain]]\nname = \"bad domain\"\n", "= \"bad domain\""),
            ("[server]\nhostname = \"not a host\"\n", "= \"not a host\""),
            ("[server]\nrecipient_delimiter = \"++\"\n", "= \"++\""),
            ("[limits]\nmax_recipients = 0\n", "= 0"),
            ("[limits]\nipv6_prefix_length = 200\n", "= 200"),
            ("[queue]\nlocal_concurrency = 0\n", "= 0"),
            ("[delivery]\nhelo_name = \"a b\"\n", "= \"a b\""),
            ("[delivery]\nport = 99999\n", "99999"),
            ("[limits]\ncommand_timeout = \"forever\"\n", "\"forever\""),
            ("[limits]\nbare_newline = \"maybe\"\n", "maybe"),
            ("[relay]\nhost = \"[a]:99999\"\n", "\"[a]:99999\""),
            (
                "[aliases]\n\"info@localhost\" = [\"nobody@localhost\"]\n",
                "= \"nobody@localhost\"",
            ),
            (
                "[tls]\ncertificate = \"/no/cert.pem\"\n",
                "= \"/no/cert.pem\"",
            ),
        ];
        for (text, value) in cases {
            let e = error(text);
            assert!(e.line.is_some() && !e.key.is_empty(), "{e}");
            assert!(e.to_string().contains(value), "{value} not quoted: {e}");
        }
    }

    #[test]
    fn limits_below_rfc_minimums_are_refused() {
        let e = error("[limits]\nmax_errors = 3\nmax_command_line = 100\n");
        assert_eq!(e.key, "limits.max_command_line");
        assert_eq!(e.line, Some(3));
    }
}
