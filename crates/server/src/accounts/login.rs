//! Password checks for every protocol that logs users in (SMTP AUTH, POP3, IMAP): the
//! argon2 hash compared on a blocking thread, a bounded number at a time, failures
//! answered late and counted per client address (checks in flight included), and
//! addresses with too many failures blocked for a while.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use posthorn_mailbox::access::{Accounts, BoxFuture, Login, User};
use posthorn_maildir::store::Mailbox;
use posthorn_proto::Credentials;
use tracing::warn;

use crate::accounts::check_cache::CheckCache;
use crate::accounts::check_gate::CheckGate;
use crate::accounts::directory::Account;
use crate::accounts::passwords;
use crate::accounts::users::LiveDirectory;
use crate::inbound::limits::client_key::ClientKey;
use crate::inbound::limits::throttle::{Attempt, AuthThrottle};

/// Password checks one client address may run at once; its further checks queue.
const CHECKS_PER_CLIENT: usize = 2;

/// The login checker shared by all listeners.
pub struct Logins {
    directory: Arc<LiveDirectory>,
    throttle: AuthThrottle,
    gate: CheckGate,
    cache: CheckCache,
    failure_delay: Duration,
    hostname: String,
    ipv6_prefix: u8,
}

/// The protocol a login came in by: named in the log, so fail2ban can tell its jails
/// apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SMTP AUTH.
    Smtp,
    /// POP3 USER/PASS or AUTH.
    Pop3,
    /// IMAP LOGIN or AUTHENTICATE.
    Imap,
    /// ManageSieve AUTHENTICATE.
    Sieve,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Smtp => "smtp",
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
            Protocol::Sieve => "sieve",
        })
    }
}

/// A client as the log names it: its bare address, or `local` for a program on this
/// machine.
struct ClientName(Option<IpAddr>);

impl fmt::Display for ClientName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("local"),
        }
    }
}

/// The outcome of one check.
pub enum Checked {
    /// The password is right; the account it opens.
    Accepted(Account),
    /// Wrong; `blocked` when this failure blocked the address.
    Rejected {
        /// This failure was one too many.
        blocked: bool,
    },
    /// The address is blocked, or would be were its checks in flight all to fail: the
    /// password was not even looked at.
    Blocked,
}

impl Logins {
    /// A checker over `directory`; failures wait `failure_delay` before the answer, and
    /// clients are counted by [`ClientKey`] with `ipv6_prefix`. About one check per core
    /// runs at a time; a right password is remembered for `cache_ttl`.
    pub fn new(
        directory: Arc<LiveDirectory>,
        throttle: AuthThrottle,
        failure_delay: Duration,
        cache_ttl: Duration,
        hostname: String,
        ipv6_prefix: u8,
    ) -> Logins {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Logins {
            directory,
            throttle,
            gate: CheckGate::new(cores, CHECKS_PER_CLIENT),
            cache: CheckCache::new(cache_ttl),
            failure_delay,
            hostname,
            ipv6_prefix,
        }
    }

    /// True while `ip` is blocked for failed logins.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.throttle.is_blocked(self.key(ip))
    }

    fn key(&self, ip: IpAddr) -> ClientKey {
        ClientKey::of(ip, self.ipv6_prefix)
    }

    /// Checks `credentials` given over `protocol` from `ip` (`None` for local programs,
    /// never throttled). A PLAIN authorization identity must name the same account:
    /// nobody acts for others. The attempt counts against the address from before it
    /// queues until its failure is counted, so parallel guesses cannot outrun the block;
    /// attempts beyond the room the limit leaves wait for those in flight.
    pub async fn check(
        &self,
        protocol: Protocol,
        ip: Option<IpAddr>,
        credentials: &Credentials,
    ) -> Checked {
        let key = ip.map(|ip| self.key(ip));
        let attempt = match key {
            Some(key) => match self.throttle.attempt(key).await {
                Some(attempt) => Some(attempt),
                None => return Checked::Blocked,
            },
            None => None,
        };
        let directory = self.directory.current();
        let account = directory.login(&credentials.username).cloned();
        let hash = account.as_ref().and_then(|a| a.password.clone());
        let known = account
            .as_ref()
            .zip(hash.as_deref())
            .is_some_and(|(account, hash)| {
                self.cache.knows(&account.name, hash, &credentials.password)
            });
        let verified = known
            || self
                .verify(key, hash.as_deref(), &credentials.password)
                .await;
        if verified
            && !known
            && let Some((account, hash)) = account.as_ref().zip(hash.as_deref())
        {
            self.cache
                .remember(&account.name, hash, &credentials.password);
        }
        let acts_as_self = credentials.authzid.as_deref().is_none_or(|wanted| {
            let wanted = directory.login(wanted).map(|a| a.name.as_str());
            wanted.is_some() && wanted == account.as_ref().map(|a| a.name.as_str())
        });
        match account {
            Some(account) if verified && acts_as_self => Checked::Accepted(account),
            _ => {
                let blocked = attempt.is_some_and(Attempt::failed);
                // The login is the client's text: quoted, so it cannot forge fields.
                warn!(
                    %protocol,
                    client = %ClientName(ip),
                    login = credentials.username.as_str(),
                    blocked,
                    "authentication failed"
                );
                tokio::time::sleep(self.failure_delay).await;
                Checked::Rejected { blocked }
            }
        }
    }
}

impl Logins {
    /// Checks `password` against `hash` on a blocking thread, within the gate's bound.
    async fn verify(&self, key: Option<ClientKey>, hash: Option<&str>, password: &str) -> bool {
        let pass = self.gate.enter(key).await;
        let (hash, password) = (hash.map(str::to_string), password.to_string());
        // The pass goes with the check: should this session be dropped meanwhile, the
        // hash still running keeps its place until it ends.
        tokio::task::spawn_blocking(move || {
            let verified = passwords::verify(&password, hash.as_deref());
            drop(pass);
            verified
        })
        .await
        .unwrap_or(false)
    }
}

/// The logins of a POP3 or IMAP listener: the shared checks, under the protocol's name.
pub struct MailboxLogins {
    /// The checker.
    pub logins: Arc<Logins>,
    /// POP3 or IMAP.
    pub protocol: Protocol,
}

impl Accounts for MailboxLogins {
    fn login(&self, client: IpAddr, credentials: Credentials) -> BoxFuture<'_, Login> {
        Box::pin(async move {
            let logins = &self.logins;
            match logins
                .check(self.protocol, Some(client), &credentials)
                .await
            {
                Checked::Accepted(account) => Login::Accepted(User {
                    mailbox: Mailbox::new(
                        logins.directory.current().maildir(&account.name),
                        &logins.hostname,
                    ),
                    quota: account.quota,
                    name: account.name,
                }),
                Checked::Rejected { blocked: false } => Login::Rejected,
                Checked::Rejected { blocked: true } | Checked::Blocked => Login::Blocked,
            }
        })
    }
}
