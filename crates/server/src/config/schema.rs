//! What the configuration holds: every section and key, with its default (documented in
//! `config/posthorn.example.toml`), and what the rest of the server asks of it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use posthorn_proto::data::{BareNewline, ContentLimits};
use posthorn_proto::{SessionConfig, address};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::host::HostSpec;
use super::{Checks, Dkim, Milter, Size, Span, Verify, text};

/// The prefix length IPv6 clients are grouped by for the per-client limits unless
/// `limits.ipv6_prefix_length` says otherwise (RFC 6177 recommends /56 or /48 for sites,
/// RFC 4291 fixes /64 for one link).
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

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
    /// The checking stage: format, threats, lists, reputation, greylisting, ClamAV.
    #[serde(default)]
    pub checks: Checks,
    /// External filters (milters).
    #[serde(default, rename = "milter")]
    pub milters: Vec<Milter>,
    /// DKIM signing of our users' mail, and ARC sealing of forwarded mail.
    #[serde(default)]
    pub dkim: Dkim,
    /// Sieve filters at local delivery, and ManageSieve.
    #[serde(default)]
    pub sieve: Sieve,
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
    /// Run `[checks]` on mail arriving here; by default on mx listeners only.
    pub checks: Option<bool>,
    /// The `[[milter]]`s, by name, that see mail arriving here, in this order.
    #[serde(default)]
    pub milters: Vec<Spanned<String>>,
}

impl Listener {
    /// Whether AUTH is offered here.
    pub fn offers_auth(&self) -> bool {
        self.auth.unwrap_or(self.role != Role::Mx)
    }

    /// Whether `[checks]` applies to mail arriving here.
    pub fn runs_checks(&self) -> bool {
        self.checks.unwrap_or(self.role == Role::Mx)
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
    /// ManageSieve (port 4190, RFC 5804), with STARTTLS: clients edit their Sieve
    /// scripts.
    Sieve,
}

impl Role {
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
            Role::Sieve => "sieve",
        })
    }
}

/// `[sieve]`: the filters each account writes (RFC 5228), run at local delivery.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sieve {
    /// Run each account's active script when mail is delivered to it.
    pub enabled: bool,
    /// A script run before each account's own, e.g. to file junk into Junk; when it
    /// decides where the message goes (anything but keep), the account's script does not
    /// run.
    pub before: Option<Spanned<PathBuf>>,
    /// The folder of global scripts, `NAME.sieve`, that scripts `include :global`
    /// (RFC 6609 §3.2; Pigeonhole's `sieve_global`).
    pub global_dir: Option<Spanned<PathBuf>>,
    /// Addresses one run may redirect to (RFC 5228 §4.2: a bound against loops).
    pub max_redirects: usize,
    /// How much of a message, from its start, the scripts of a delivery see (`body`,
    /// RFC 5173): read into memory for each local delivery that runs a script, so a bound
    /// on the memory of the deliveries running at once.
    pub max_body_size: Size,
}

impl Default for Sieve {
    fn default() -> Self {
        Sieve {
            enabled: true,
            before: None,
            global_dir: None,
            max_redirects: 4,
            max_body_size: Size(1024 * 1024),
        }
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
    /// How long a right password is remembered (as a keyed digest, in memory only), so
    /// a client that logs in again and again (IMAP clients open several connections)
    /// skips the deliberately slow hash check, as Dovecot's auth cache does; `0s` turns
    /// it off. A changed password ends it at once.
    pub cache_ttl: Span,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            users_file: None,
            failure_delay: Span(Duration::from_secs(2)),
            max_failures: 5,
            failure_window: Span(Duration::from_secs(600)),
            block_time: Span(Duration::from_secs(900)),
            cache_ttl: Span(Duration::from_secs(600)),
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
            ipv6_prefix_length: DEFAULT_IPV6_PREFIX,
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
    /// New messages that may wait for their first delivery attempt before sessions are
    /// slowed (Postfix's `in_flow_delay`): when delivery falls behind, each new message
    /// waits up to `inflow_delay` for one ahead of it to be attempted.
    pub inflow_window: usize,
    /// The longest a session is slowed per message; 0 turns inflow control off.
    pub inflow_delay: Span,
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
            inflow_window: 100,
            inflow_delay: Span(Duration::from_secs(1)),
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
    /// How long a connection whose deliveries all succeeded stays open for the next
    /// message to its destination (Postfix's `smtp_connection_cache_time_limit`); zero
    /// closes each at once.
    pub connection_cache_time: Span,
    /// A DNS server to ask instead of the system's (address and port).
    #[serde(deserialize_with = "text::optional")]
    pub nameserver: Option<SocketAddr>,
    /// Extra trust anchors (PEM) for `tls = "verify"`, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Rewrite the sender of mail an alias or a Sieve `redirect` forwards to another
    /// server (SRS), so the next hop's SPF check passes; bounces to the rewritten
    /// address are sent on to the original sender.
    pub srs: bool,
    /// How long a rewritten sender takes bounces (whole days; at most 1023).
    pub srs_max_age: Span,
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
            connection_cache_time: Span(Duration::from_secs(2)),
            nameserver: None,
            ca_file: None,
            srs: true,
            srs_max_age: Span(Duration::from_secs(21 * 86_400)),
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
    /// Senders (`user@example.org`, `@example.org`) whose mail to it skips scoring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_senders: Vec<Spanned<String>>,
    /// Senders whose mail to it is refused at RCPT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub block_senders: Vec<Spanned<String>>,
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
        (Role::Sieve, 41900),
    ]
    .into_iter()
    .map(|(role, port)| Listener {
        role,
        address: Spanned::new(0..0, SocketAddr::from(([127, 0, 0, 1], port))),
        auth: None,
        allow_plaintext_auth: false,
        checks: None,
        milters: Vec::new(),
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
        allow_senders: Vec::new(),
        block_senders: Vec::new(),
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

impl Config {
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
}

impl NextHop {
    /// The parsed `host` value.
    pub fn target(&self) -> Result<HostSpec, String> {
        HostSpec::parse(self.host.get_ref())
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
