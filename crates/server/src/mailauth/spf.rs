//! SPF (RFC 7208), evaluated at MAIL time for the HELO and the MAIL FROM identities.

use std::net::IpAddr;

use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, SpfOutput, SpfResult};

/// Both SPF results of a transaction.
#[derive(Debug, Clone)]
pub struct SpfChecks {
    /// The HELO identity (RFC 7208 §2.3).
    pub helo: SpfOutput,
    /// The MAIL FROM identity; for the null sender, `postmaster@` the HELO name (§2.4).
    pub mail_from: SpfOutput,
    /// MAIL FROM as checked, empty for the null sender.
    pub sender: String,
}

impl SpfChecks {
    /// True when the MAIL FROM check could not finish for a DNS failure.
    pub fn temporary_error(&self) -> bool {
        self.mail_from.result() == SpfResult::TempError
    }
}

/// Checks the HELO identity of a client at `ip`; `hostname` is ours (the `%{r}` macro).
pub async fn check_helo(
    auth: &MessageAuthenticator,
    ip: IpAddr,
    helo: &str,
    hostname: &str,
) -> SpfOutput {
    // An IPv4 client on a dual-stack socket is IPv4 to SPF (RFC 7208 §5).
    auth.verify_spf(SpfParameters::verify_ehlo(
        ip.to_canonical(),
        helo,
        hostname,
    ))
    .await
}

/// Checks the MAIL FROM identity `sender` (empty for the null sender) of a client at `ip`
/// that said HELO `helo`.
pub async fn check_mail_from(
    auth: &MessageAuthenticator,
    ip: IpAddr,
    helo: &str,
    hostname: &str,
    sender: &str,
) -> SpfOutput {
    let postmaster;
    let sender = if sender.is_empty() {
        postmaster = format!("postmaster@{helo}");
        postmaster.as_str()
    } else {
        sender
    };
    auth.verify_spf(SpfParameters::verify_mail_from(
        ip.to_canonical(),
        helo,
        hostname,
        sender,
    ))
    .await
}

/// Both checks of a transaction.
pub async fn check(
    auth: &MessageAuthenticator,
    ip: IpAddr,
    helo: &str,
    hostname: &str,
    sender: &str,
) -> SpfChecks {
    let (helo_output, mail_from) = tokio::join!(
        check_helo(auth, ip, helo, hostname),
        check_mail_from(auth, ip, helo, hostname, sender)
    );
    SpfChecks {
        helo: helo_output,
        mail_from,
        sender: sender.to_string(),
    }
}
