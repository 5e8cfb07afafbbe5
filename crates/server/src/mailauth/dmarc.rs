//! DMARC (RFC 7489): the policy of the From domain, found at `_dmarc.DOMAIN` or at its
//! organisational domain, and whether SPF or DKIM passed for an aligned domain.
//!
//! The organisational domain comes from the Public Suffix List (the `psl` crate, which
//! compiles the list in and is released as the list changes), as RFC 7489 §3.2 says.
//! mail-auth 0.13 implements the later DNS tree walk instead, so this evaluation is ours;
//! mail-auth still fetches and parses the records.

use mail_auth::common::cache::NoCache;
use mail_auth::dmarc::{Alignment, Dmarc, Policy};
use mail_auth::{
    DkimOutput, DkimResult, DnsError, Error, MessageAuthenticator, SpfOutput, SpfResult, Txt,
};
use std::sync::Arc;

/// The outcome of the DMARC check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcStatus {
    /// SPF or DKIM passed for a domain aligned with From.
    Pass,
    /// The domain publishes DMARC and nothing aligned passed.
    Fail,
    /// A DNS failure left the answer open.
    TempError,
    /// No DMARC record, or no single From domain: DMARC does not apply.
    None,
}

impl DmarcStatus {
    /// The result keyword of RFC 7489 §11.2.
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcStatus::Pass => "pass",
            DmarcStatus::Fail => "fail",
            DmarcStatus::TempError => "temperror",
            DmarcStatus::None => "none",
        }
    }
}

/// The DMARC verdict on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcCheck {
    /// Pass, fail...
    pub status: DmarcStatus,
    /// The policy the domain asks for (`p=`, or `sp=` when found at the organisational
    /// domain), after test mode (`t=y`) lowered it by one step.
    pub policy: Policy,
    /// The From domain, lower-case; empty when there was none.
    pub from_domain: String,
}

impl DmarcCheck {
    fn none(from_domain: &str) -> DmarcCheck {
        DmarcCheck {
            status: DmarcStatus::None,
            policy: Policy::None,
            from_domain: from_domain.to_string(),
        }
    }

    /// The `dmarc=` clause of an Authentication-Results header (RFC 7489 §11.2).
    pub fn auth_result(&self) -> String {
        let policy = match self.policy {
            Policy::Reject => "reject",
            Policy::Quarantine => "quarantine",
            Policy::None | Policy::Unspecified => "none",
        };
        let mut clause = format!("dmarc={}", self.status.as_str());
        if !self.from_domain.is_empty() {
            clause.push_str(&format!(
                " header.from={} policy.dmarc={policy}",
                self.from_domain
            ));
        }
        clause
    }
}

/// The organisational domain of `domain`, lower-case: one label below its public suffix, or
/// the domain itself when it is a public suffix, unknown to the list, or not a valid name
/// (an empty label), for which the list gives no registrable domain.
pub fn organizational_domain(domain: &str) -> String {
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    if name.split('.').any(str::is_empty) {
        return name;
    }
    psl::domain_str(&name).map_or_else(|| name.clone(), str::to_string)
}

/// True when `domain` is aligned with `from` under `mode` (RFC 7489 §3.1).
pub fn aligned(domain: &str, from: &str, mode: Alignment) -> bool {
    match mode {
        Alignment::Strict => domain
            .trim_end_matches('.')
            .eq_ignore_ascii_case(from.trim_end_matches('.')),
        Alignment::Relaxed => organizational_domain(domain) == organizational_domain(from),
    }
}

/// Evaluates DMARC for a message whose From addresses are `from_addresses`, given the SPF
/// result of the MAIL FROM identity and the DKIM results.
pub async fn evaluate(
    auth: &MessageAuthenticator,
    from_addresses: &[String],
    spf: &SpfOutput,
    dkim: &[DkimOutput<'_>],
) -> DmarcCheck {
    let mut domains = from_addresses
        .iter()
        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()));
    let Some(from_domain) = domains.next() else {
        return DmarcCheck::none("");
    };
    // Several authors in different domains: DMARC does not apply (RFC 7489 §6.6.1).
    if domains.any(|d| d != from_domain) {
        return DmarcCheck::none("");
    }
    let (record, at_author_domain) = match find_record(auth, &from_domain).await {
        Ok(Some(found)) => found,
        Ok(None) => return DmarcCheck::none(&from_domain),
        Err(()) => {
            return DmarcCheck {
                status: DmarcStatus::TempError,
                policy: Policy::None,
                from_domain,
            };
        }
    };
    let mut policy = if at_author_domain {
        record.p
    } else {
        record.sp
    };
    if record.t {
        policy = match policy {
            Policy::Reject => Policy::Quarantine,
            Policy::Quarantine => Policy::None,
            other => other,
        };
    }
    let spf_aligned = aligned(spf.domain(), &from_domain, record.aspf);
    let dkim_aligned = |o: &&DkimOutput<'_>| {
        o.signature()
            .is_some_and(|s| aligned(&s.d, &from_domain, record.adkim))
    };
    let pass = (spf.result() == SpfResult::Pass && spf_aligned)
        || dkim
            .iter()
            .filter(dkim_aligned)
            .any(|o| *o.result() == DkimResult::Pass);
    let temporary = (spf.result() == SpfResult::TempError && spf_aligned)
        || dkim
            .iter()
            .filter(dkim_aligned)
            .any(|o| matches!(o.result(), DkimResult::TempError(_)));
    let status = if pass {
        DmarcStatus::Pass
    } else if temporary {
        DmarcStatus::TempError
    } else {
        DmarcStatus::Fail
    };
    DmarcCheck {
        status,
        policy,
        from_domain,
    }
}

/// The DMARC record for `domain`: its own, else its organisational domain's (RFC 7489
/// §6.6.3), with whether it was the domain's own. `Err` on a DNS failure.
async fn find_record(
    auth: &MessageAuthenticator,
    domain: &str,
) -> Result<Option<(Arc<Dmarc>, bool)>, ()> {
    if let Some(record) = lookup(auth, domain).await? {
        return Ok(Some((record, true)));
    }
    let organizational = organizational_domain(domain);
    if organizational == domain {
        return Ok(None);
    }
    Ok(lookup(auth, &organizational).await?.map(|r| (r, false)))
}

/// One `_dmarc` TXT lookup; a missing or malformed record is `None`.
async fn lookup(auth: &MessageAuthenticator, domain: &str) -> Result<Option<Arc<Dmarc>>, ()> {
    let name = format!("_dmarc.{domain}.");
    match auth
        .txt_lookup::<Dmarc>(name, None::<&NoCache<Box<str>, Txt>>)
        .await
    {
        Ok(record) => Ok(Some(record)),
        Err(Error::Dns(DnsError::Resolver(_))) => Err(()),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domains_follow_the_public_suffix_list() {
        assert_eq!(organizational_domain("mail.example.com"), "example.com");
        assert_eq!(organizational_domain("Mail.Example.COM."), "example.com");
        assert_eq!(organizational_domain(".example.com"), ".example.com");
        assert_eq!(organizational_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(organizational_domain("example.com"), "example.com");
        assert_eq!(organizational_domain("com"), "com");
        assert_eq!(organizational_domain("sender.test"), "sender.test");
    }

    #[test]
    fn alignment_modes() {
        assert!(aligned(
            "mail.example.com",
            "example.com",
            Alignment::Relaxed
        ));
        assert!(!aligned(
            "mail.example.com",
            "example.com",
            Alignment::Strict
        ));
        assert!(aligned("Example.COM", "example.com", Alignment::Strict));
        assert!(!aligned("example.co.uk", "other.co.uk", Alignment::Relaxed));
        assert!(!aligned(
            "evil-example.com",
            "example.com",
            Alignment::Relaxed
        ));
    }
}
