//! Incoming authentication: SPF at MAIL time; DKIM, ARC and DMARC at the end of DATA; the
//! `Authentication-Results` header; and what the admin's policy makes of the results.

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::Canonicalization;
use mail_auth::dmarc::Policy;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult,
    MessageAuthenticator, ReceivedSpf, SpfResult,
};
use posthorn_proto::Reply;
use posthorn_proto::reply::table;

use super::blank_tail::without_blank_tail;
use super::dmarc::{self, DmarcCheck, DmarcStatus};
use super::sign::Signer;
use super::spf::{self, SpfChecks};
use crate::config::{Action, Config, DnsErrors, Verify};
use posthorn_proto::headers::remove_fields;

/// What happens to a checked message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Deliver normally.
    Accept,
    /// Deliver into the recipients' Junk folder.
    Quarantine,
    /// Refuse with this reply.
    Refuse(Reply),
}

/// The outcome of checking one message.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Header lines to prepend: an ARC set when sealing, `Authentication-Results`, and
    /// `Received-SPF` when configured.
    pub headers: String,
    /// What the policy decided.
    pub disposition: Disposition,
    /// `spf=... dkim=... dmarc=... arc=...`, for the log.
    pub summary: String,
    /// The results, for the checking stage's symbols.
    pub results: AuthResults,
}

/// What SPF, DKIM, DMARC and ARC said, as result keywords (RFC 8601 §2.7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthResults {
    /// SPF of MAIL FROM.
    pub spf: &'static str,
    /// The best DKIM result (a pass wins).
    pub dkim: &'static str,
    /// The domains (`d=`) of the DKIM signatures that passed, lower-case.
    pub dkim_domains: Vec<String>,
    /// DMARC.
    pub dmarc: &'static str,
    /// ARC.
    pub arc: &'static str,
    /// The From domain, lower-case; empty when there is none.
    pub from_domain: String,
}

/// What the session knows about the client.
pub struct Client<'a> {
    /// Its address.
    pub ip: IpAddr,
    /// Its HELO name.
    pub helo: &'a str,
}

/// Checks mail from other servers.
pub struct Verifier {
    auth: MessageAuthenticator,
    authserv_id: String,
    hostname: String,
    settings: Verify,
}

impl Verifier {
    /// A verifier resolving through `auth`, with the `[verify]` settings of `config`.
    pub fn new(auth: MessageAuthenticator, config: &Config) -> Verifier {
        let hostname = config.server.hostname.get_ref().clone();
        let authserv_id = if config.verify.authserv_id.is_empty() {
            hostname.clone()
        } else {
            config.verify.authserv_id.clone()
        };
        Verifier {
            auth,
            authserv_id,
            hostname,
            settings: config.verify.clone(),
        }
    }

    /// True when mail from `ip` is checked: checks are on and the address is not in
    /// `verify.skip_networks`.
    pub fn applies_to(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.settings.enabled && !self.settings.skip_networks.iter().any(|n| n.contains(&ip))
    }

    /// SPF for a new transaction. `Err` is the reply when a DNS failure left the MAIL FROM
    /// check open and the admin wants such mail deferred.
    pub async fn spf(&self, client: &Client<'_>, sender: &str) -> Result<SpfChecks, Reply> {
        let checks = spf::check(&self.auth, client.ip, client.helo, &self.hostname, sender).await;
        if checks.temporary_error() && self.settings.dns_errors == DnsErrors::Defer {
            return Err(table::spf_temporary_error());
        }
        Ok(checks)
    }

    /// The name our `Authentication-Results` headers carry; the same name arriving from
    /// outside is forged and removed from every message (`strip_own_results`).
    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }

    /// Checks DKIM, ARC and DMARC on `content` and applies the policy. With `seal` (a
    /// signer and the domain of the alias that forwards the message), the message also
    /// gets an ARC set.
    pub async fn message(
        &self,
        client: &Client<'_>,
        spf: &SpfChecks,
        content: &[u8],
        seal: Option<(&Signer, &str)>,
    ) -> Verdict {
        let parsed = Parsed::new(content);
        let found = self.signatures(&parsed).await;
        let (dkim, arc) = (&found.dkim, &found.arc);
        let dmarc = dmarc::evaluate(&self.auth, &parsed.whole.from, &spf.mail_from, dkim).await;
        let results = self.results(client, spf, &parsed, &found);
        let mut headers = seal
            .and_then(|(signer, domain)| signer.seal(domain, found.arc_view, &results, arc))
            .unwrap_or_default();
        let dkim_none = if dkim.is_empty() {
            ";\r\n\tdkim=none"
        } else {
            ""
        };
        headers.push_str(&format!(
            "Authentication-Results: {results}{dkim_none};\r\n\t{}\r\n",
            dmarc.auth_result()
        ));
        if self.settings.received_spf {
            let spf_header = ReceivedSpf::new(
                &spf.mail_from,
                client.ip,
                client.helo,
                &spf.sender,
                &self.hostname,
            );
            headers.push_str(&spf_header.to_header());
        }
        let dkim_summary = dkim
            .iter()
            .map(|o| o.result())
            .max_by_key(|r| dkim_rank(r))
            .map_or("none", dkim_keyword);
        let results = AuthResults {
            spf: spf_keyword(spf.mail_from.result()),
            dkim: dkim_summary,
            dkim_domains: dkim
                .iter()
                .filter(|o| *o.result() == DkimResult::Pass)
                .filter_map(|o| o.signature().map(|s| s.d.to_lowercase()))
                .collect(),
            dmarc: dmarc.status.as_str(),
            arc: dkim_keyword(arc.result()),
            from_domain: dmarc.from_domain.clone(),
        };
        let summary = format!(
            "spf={} dkim={} dmarc={} arc={}",
            results.spf, results.dkim, results.dmarc, results.arc
        );
        Verdict {
            headers,
            disposition: self.disposition(spf, &dmarc),
            summary,
            results,
        }
    }

    /// An ARC set for `content`, sealed by `signer` as `domain`, recording what
    /// [`Verifier::message`] finds; `None` when it cannot be sealed (see `Signer::seal`).
    /// For a forward known only after the checks ran: a Sieve `redirect`, decided at the
    /// end of DATA. The checks run again for it (their DNS answers are cached), since what
    /// they found borrows the message, which the checking stage and milters take over.
    pub async fn seal(
        &self,
        client: &Client<'_>,
        spf: &SpfChecks,
        content: &[u8],
        signer: &Signer,
        domain: &str,
    ) -> Option<String> {
        let parsed = Parsed::new(content);
        let found = self.signatures(&parsed).await;
        let results = self.results(client, spf, &parsed, &found);
        signer.seal(domain, found.arc_view, &results, &found.arc)
    }

    /// The DKIM results and the ARC chain's of `parsed`.
    async fn signatures<'m>(&self, parsed: &'m Parsed<'_>) -> Signatures<'m> {
        let message = &parsed.whole;
        let mut dkim = self.auth.verify_dkim(message).await;
        if parsed.trimmed.is_some() {
            let on_trimmed = self.auth.verify_dkim(parsed.relaxed()).await;
            for (result, trimmed) in dkim.iter_mut().zip(on_trimmed) {
                if trimmed
                    .signature()
                    .is_some_and(|s| s.cb == Canonicalization::Relaxed)
                {
                    *result = trimmed;
                }
            }
        }
        // The newest AMS says how its body was canonicalized; simple keeps the lines.
        let arc_on_original = message
            .ams_headers
            .iter()
            .max_by_key(|h| h.header.i)
            .is_some_and(|h| h.header.cb == Canonicalization::Simple);
        let arc_view = if arc_on_original {
            message
        } else {
            parsed.relaxed()
        };
        let arc = arc_method_result(self.auth.verify_arc(arc_view).await);
        Signatures {
            dkim,
            arc,
            arc_view,
        }
    }

    /// What we found, as `Authentication-Results` and an ARC set's
    /// `ARC-Authentication-Results` state it (RFC 8601, RFC 8617 §4.1.1).
    fn results(
        &self,
        client: &Client<'_>,
        spf: &SpfChecks,
        parsed: &Parsed<'_>,
        found: &Signatures<'_>,
    ) -> AuthenticationResults<'_> {
        AuthenticationResults::new(&self.authserv_id)
            .with_dkim_results(&found.dkim, parsed.whole.from())
            .with_spf_ehlo_result(&spf.helo, client.ip, client.helo)
            .with_spf_mailfrom_result(&spf.mail_from, client.ip, &spf.sender, client.helo)
            .with_arc_result(&found.arc, client.ip)
    }

    /// The admin's policy applied to the results.
    fn disposition(&self, spf: &SpfChecks, dmarc: &DmarcCheck) -> Disposition {
        let settings = &self.settings;
        match dmarc.status {
            DmarcStatus::Fail => match dmarc.policy {
                Policy::Reject => act(
                    settings.dmarc_reject,
                    table::dmarc_rejected(&dmarc.from_domain),
                ),
                Policy::Quarantine => act(
                    settings.dmarc_quarantine,
                    table::dmarc_rejected(&dmarc.from_domain),
                ),
                Policy::None | Policy::Unspecified => Disposition::Accept,
            },
            DmarcStatus::TempError if settings.dns_errors == DnsErrors::Defer => {
                Disposition::Refuse(table::dmarc_temporary_error())
            }
            DmarcStatus::None if spf.mail_from.result() == SpfResult::Fail => {
                act(settings.spf_fail, table::spf_failed(spf.mail_from.domain()))
            }
            _ => Disposition::Accept,
        }
    }
}

/// A message as the checks read it: whole, and without the whitespace-only lines ending
/// its body, on which relaxed body hashes are computed (see `blank_tail`).
struct Parsed<'c> {
    /// The message; empty when it does not parse.
    whole: AuthenticatedMessage<'c>,
    /// Without its blank tail, when it has one.
    trimmed: Option<AuthenticatedMessage<'c>>,
}

impl<'c> Parsed<'c> {
    fn new(content: &'c [u8]) -> Parsed<'c> {
        Parsed {
            whole: AuthenticatedMessage::parse(content).unwrap_or_default(),
            trimmed: without_blank_tail(content)
                .and_then(|len| AuthenticatedMessage::parse(&content[..len])),
        }
    }

    /// What relaxed body canonicalization is computed on.
    fn relaxed(&self) -> &AuthenticatedMessage<'c> {
        self.trimmed.as_ref().unwrap_or(&self.whole)
    }
}

/// What a message's DKIM signatures and ARC chain said.
struct Signatures<'m> {
    dkim: Vec<DkimOutput<'m>>,
    arc: ArcOutput<'m>,
    /// The view of the message the chain was verified on, and a new set is sealed on.
    arc_view: &'m AuthenticatedMessage<'m>,
}

/// The ARC result as RFC 8617 §4.4 knows it: none, pass or fail. mail-auth also reports
/// neutral, permerror and temperror (a broken set, a missing key...); each is a failed
/// chain (§5.2), which is also what the next sealer must record as cv=fail.
fn arc_method_result(arc: ArcOutput<'_>) -> ArcOutput<'_> {
    match arc.result().clone() {
        DkimResult::Neutral(e) | DkimResult::PermError(e) | DkimResult::TempError(e) => {
            arc.with_result(DkimResult::Fail(e))
        }
        DkimResult::Pass | DkimResult::Fail(_) | DkimResult::None => arc,
    }
}

/// `action` as a disposition, refusing with `reply`.
fn act(action: Action, reply: Reply) -> Disposition {
    match action {
        Action::Reject => Disposition::Refuse(reply),
        Action::Quarantine => Disposition::Quarantine,
        Action::Mark => Disposition::Accept,
    }
}

fn spf_keyword(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_keyword(result: &DkimResult) -> &'static str {
    match result {
        DkimResult::Pass => "pass",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::Fail(_) => "fail",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

/// Which of several DKIM results the log shows: a pass wins.
fn dkim_rank(result: &DkimResult) -> u8 {
    match result {
        DkimResult::Pass => 5,
        DkimResult::TempError(_) => 4,
        DkimResult::Fail(_) => 3,
        DkimResult::PermError(_) => 2,
        DkimResult::Neutral(_) => 1,
        DkimResult::None => 0,
    }
}

/// Removes every `Authentication-Results` field whose authserv-id is `ours` from the header
/// section of `content` (RFC 8601 §5): only we may say what we found. Returns how many.
pub fn strip_own_results(content: &mut Vec<u8>, ours: &str) -> usize {
    remove_fields(content, |field| is_own_result(field, ours))
}

/// True for an `Authentication-Results` field whose authserv-id is `ours`.
fn is_own_result(field: &[u8], ours: &str) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    if !field[..colon]
        .trim_ascii()
        .eq_ignore_ascii_case(b"authentication-results")
    {
        return false;
    }
    let value = String::from_utf8_lossy(&field[colon + 1..]);
    let id = value
        .split(';')
        .next()
        .unwrap_or("")
        .split(|c: char| c.is_whitespace() || c == '(')
        .find(|s| !s.is_empty())
        .unwrap_or("");
    id.eq_ignore_ascii_case(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_results_are_stripped_and_others_kept() {
        let mut content = b"Authentication-Results: mx.test; spf=pass\r\n\
Authentication-Results: other.example; dkim=pass\r\n\
authentication-results:  MX.TEST (forged);\r\n\tdmarc=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.test; in the body\r\n"
            .to_vec();
        assert_eq!(strip_own_results(&mut content, "mx.test"), 2);
        assert_eq!(
            content,
            b"Authentication-Results: other.example; dkim=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.test; in the body\r\n"
        );
    }

    #[test]
    fn nothing_to_strip_leaves_content_alone() {
        let mut content = b"Subject: hi\r\n\r\nbody\r\n".to_vec();
        assert_eq!(strip_own_results(&mut content, "mx.test"), 0);
        assert_eq!(content, b"Subject: hi\r\n\r\nbody\r\n");
    }
}
