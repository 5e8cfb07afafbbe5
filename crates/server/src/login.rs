//! Password checks for every protocol that logs users in (SMTP AUTH, POP3, IMAP): the
//! argon2 hash compared on a blocking thread, failures answered late and counted per
//! client address, and addresses with too many failures blocked for a while.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use posthorn_mailbox::access::{Accounts, BoxFuture, Login, User};
use posthorn_mailbox::store::Mailbox;
use posthorn_proto::Credentials;
use tracing::warn;

use crate::directory::Account;
use crate::passwords;
use crate::throttle::AuthThrottle;
use crate::users::LiveDirectory;

/// The login checker shared by all listeners.
pub struct Logins {
    directory: Arc<LiveDirectory>,
    throttle: AuthThrottle,
    failure_delay: Duration,
    hostname: String,
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
    /// The address was already blocked: the password was not even looked at.
    Blocked,
}

impl Logins {
    /// A checker over `directory`; failures wait `failure_delay` before the answer.
    pub fn new(
        directory: Arc<LiveDirectory>,
        throttle: AuthThrottle,
        failure_delay: Duration,
        hostname: String,
    ) -> Logins {
        Logins {
            directory,
            throttle,
            failure_delay,
            hostname,
        }
    }

    /// True while `ip` is blocked for failed logins.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.throttle.is_blocked(ip)
    }

    /// Checks `credentials` from `ip` (`None` for local programs, never throttled). A
    /// PLAIN authorization identity must name the same account: nobody acts for others.
    pub async fn check(&self, ip: Option<IpAddr>, credentials: &Credentials) -> Checked {
        if ip.is_some_and(|ip| self.throttle.is_blocked(ip)) {
            return Checked::Blocked;
        }
        let directory = self.directory.current();
        let account = directory.login(&credentials.username).cloned();
        let hash = account.as_ref().and_then(|a| a.password.clone());
        let password = credentials.password.clone();
        let verified =
            tokio::task::spawn_blocking(move || passwords::verify(&password, hash.as_deref()))
                .await
                .unwrap_or(false);
        let acts_as_self = credentials.authzid.as_deref().is_none_or(|wanted| {
            let wanted = directory.login(wanted).map(|a| a.name.as_str());
            wanted.is_some() && wanted == account.as_ref().map(|a| a.name.as_str())
        });
        match account {
            Some(account) if verified && acts_as_self => Checked::Accepted(account),
            _ => {
                let blocked = ip.is_some_and(|ip| self.throttle.failed(ip));
                warn!(client = ?ip, login = %credentials.username, blocked, "authentication failed");
                tokio::time::sleep(self.failure_delay).await;
                Checked::Rejected { blocked }
            }
        }
    }
}

impl Accounts for Logins {
    fn login(&self, client: IpAddr, credentials: Credentials) -> BoxFuture<'_, Login> {
        Box::pin(async move {
            match self.check(Some(client), &credentials).await {
                Checked::Accepted(account) => Login::Accepted(User {
                    mailbox: Mailbox::new(
                        self.directory.current().maildir(&account.name),
                        &self.hostname,
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
