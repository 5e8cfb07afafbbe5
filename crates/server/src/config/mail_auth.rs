//! `[verify]` and `[dkim]`: checking the mail other servers send us (SPF, DKIM, DMARC, ARC)
//! and signing the mail our users send.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

/// `[verify]`: what happens to mail from other servers, per authentication result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Verify {
    /// Check SPF, DKIM, DMARC and ARC on mx listeners.
    pub enabled: bool,
    /// The name in our `Authentication-Results` headers; `server.hostname` when empty.
    pub authserv_id: String,
    /// Clients not checked, besides authenticated users and `policy.trusted_networks`:
    /// loopback by default, as a local content filter or script is no foreign server.
    #[serde(deserialize_with = "super::text::list")]
    pub skip_networks: Vec<ipnet::IpNet>,
    /// A DMARC failure whose domain asks for `p=reject`.
    pub dmarc_reject: Action,
    /// A DMARC failure whose domain asks for `p=quarantine`.
    pub dmarc_quarantine: Action,
    /// An SPF `fail` when DMARC gives no verdict (the From domain has no DMARC record).
    pub spf_fail: Action,
    /// A DNS failure that leaves SPF or DMARC undecided: `accept` marks it `temperror`,
    /// `defer` answers `451 4.7.x` so the sender retries later.
    pub dns_errors: DnsErrors,
    /// Also add a `Received-SPF` header (RFC 7208 §9.1).
    pub received_spf: bool,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            enabled: true,
            authserv_id: String::new(),
            skip_networks: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            dmarc_reject: Action::Reject,
            dmarc_quarantine: Action::Quarantine,
            spf_fail: Action::Mark,
            dns_errors: DnsErrors::Accept,
            received_spf: false,
        }
    }
}

/// What to do with a message that failed a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Refuse it at the end of DATA with `550 5.7.x`.
    Reject,
    /// Accept it into the recipients' Junk folder.
    Quarantine,
    /// Accept it normally; the result is only recorded in `Authentication-Results`.
    Mark,
}

/// How temporary DNS failures are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsErrors {
    /// Accept, recording `temperror`.
    Accept,
    /// Answer `451 4.7.x`: the sender tries again later.
    Defer,
}

/// `[dkim]`: signing the mail our users and our bounces send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dkim {
    /// Sign mail whose From is in a domain we have keys for.
    pub sign: bool,
    /// Make an Ed25519 and an RSA-2048 key, in `data_dir/dkim/DOMAIN/`, for each local
    /// domain without a configured key.
    pub generate_keys: bool,
    /// Add an ARC set (RFC 8617) to mail from other servers that an alias or a Sieve
    /// `redirect` forwards to remote addresses, so it keeps passing DMARC downstream.
    pub arc_seal: bool,
    /// Keys given explicitly; a domain listed here uses exactly these.
    #[serde(rename = "key")]
    pub keys: Vec<DkimKeyConfig>,
}

impl Default for Dkim {
    fn default() -> Self {
        Dkim {
            sign: true,
            generate_keys: true,
            arc_seal: true,
            keys: Vec::new(),
        }
    }
}

/// `[[dkim.key]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    /// The signing domain (`d=`).
    pub domain: Spanned<String>,
    /// The selector (`s=`): the key's TXT record is at `SELECTOR._domainkey.DOMAIN`.
    pub selector: Spanned<String>,
    /// A PEM file with the private key (PKCS#8, or PKCS#1 for RSA), Ed25519 or RSA.
    pub file: Spanned<PathBuf>,
}
