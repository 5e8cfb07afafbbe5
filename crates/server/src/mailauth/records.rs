//! `posthorn dns-records DOMAIN`: every record the admin publishes for a domain, as zone
//! file lines ready to paste.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::sign::DomainKey;
use crate::config::Config;

/// Longest character-string in a TXT record (RFC 1035 §3.3).
const TXT_CHUNK: usize = 255;

/// The zone file lines for `domain`, served by this configuration's host, signed with
/// `keys` (every selector the DNS should publish); `policy_id` names the MTA-STS policy.
pub fn zone_lines(config: &Config, domain: &str, keys: &[DomainKey], policy_id: u64) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let host = config.server.hostname.get_ref().trim_end_matches('.');
    let postmaster = format!("postmaster@{domain}");
    let mut out = String::new();
    let mut line = |name: &str, kind: &str, value: &str, comment: &str| {
        let _ = write!(out, "{:<40} 3600 IN {kind:<5} {value}", format!("{name}."));
        if !comment.is_empty() {
            let _ = write!(out, " ; {comment}");
        }
        out.push('\n');
    };
    let mut text = format!("; DNS records for {domain}, mail served by {host}\n");
    if !config.is_local_domain(&domain) {
        text.push_str(&format!(
            "; NB: {domain} is not a [[domain]] of this server's configuration\n"
        ));
    }
    line(
        &domain,
        "MX",
        &format!("10 {host}."),
        "mail for the domain goes to this server",
    );
    let addresses: Vec<IpAddr> = config
        .listeners
        .iter()
        .map(|l| l.address.get_ref().ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect();
    if addresses.is_empty() {
        line(
            host,
            "A",
            "192.0.2.1",
            "hint: this server's public IPv4 address",
        );
        line(
            host,
            "AAAA",
            "2001:db8::1",
            "hint: its public IPv6 address, if any",
        );
    } else {
        for ip in addresses {
            let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
            line(host, kind, &ip.to_string(), "from the listener addresses");
        }
    }
    line(
        &domain,
        "TXT",
        "\"v=spf1 mx -all\"",
        "SPF: only the domain's MX hosts send its mail",
    );
    for key in keys {
        let name = format!("{}._domainkey.{domain}", key.selector);
        line(
            &name,
            "TXT",
            &txt_value(&key.key.txt_record()),
            &format!("DKIM {}", key.key.algorithm.key_type()),
        );
    }
    line(
        &format!("_dmarc.{domain}"),
        "TXT",
        &format!("\"v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:{postmaster}\""),
        "DMARC: start with quarantine, move to p=reject once reports look clean",
    );
    line(
        &format!("_mta-sts.{domain}"),
        "TXT",
        &format!("\"v=STSv1; id={policy_id}\""),
        "MTA-STS (RFC 8461): change id whenever the policy changes",
    );
    line(
        &format!("mta-sts.{domain}"),
        "CNAME",
        &format!("{host}."),
        "a web server here serves the policy below over HTTPS",
    );
    line(
        &format!("_smtp._tls.{domain}"),
        "TXT",
        &format!("\"v=TLSRPTv1; rua=mailto:{postmaster}\""),
        "TLS reporting (RFC 8460)",
    );
    text.push_str(&out);
    if keys.is_empty() {
        text.push_str(&format!(
            "; no DKIM key for {domain}: run `posthorn dkim generate {domain}`\n"
        ));
    }
    text.push_str(&format!(
        "; https://mta-sts.{domain}/.well-known/mta-sts.txt should contain:\n\
         ;   version: STSv1\n;   mode: testing\n;   mx: {host}\n;   max_age: 86400\n\
         ; (mode: enforce once TLS reports show every sender reaching you with TLS)\n"
    ));
    text
}

/// A TXT value as quoted character-strings of at most 255 octets, in parentheses when
/// there are several (zone file syntax, RFC 1035 §5.1).
pub fn txt_value(text: &str) -> String {
    let chunks: Vec<String> = text
        .as_bytes()
        .chunks(TXT_CHUNK)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    if chunks.len() == 1 {
        chunks.concat()
    } else {
        format!("( {} )", chunks.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_txt_values_are_split_into_character_strings() {
        let long = "p=".to_string() + &"A".repeat(400);
        let value = txt_value(&long);
        assert!(value.starts_with("( \""));
        let strings: Vec<&str> = value
            .trim_matches(|c| c == '(' || c == ')' || c == ' ')
            .split("\" \"")
            .collect();
        assert_eq!(strings.len(), 2);
        assert_eq!(txt_value("v=spf1 -all"), "\"v=spf1 -all\"");
    }

    #[test]
    fn every_record_kind_is_printed() {
        let config = crate::config::parse(
            "[server]\nhostname = \"mail.example.org\"\n[[domain]]\nname = \"example.org\"\n",
            None,
        )
        .unwrap();
        let text = zone_lines(&config, "example.org", &[], 20261123);
        for needle in [
            "example.org.",
            "IN MX    10 mail.example.org.",
            "mail.example.org.",
            "IN A ",
            "v=spf1 mx -all",
            "_dmarc.example.org.",
            "v=DMARC1; p=quarantine",
            "_mta-sts.example.org.",
            "v=STSv1; id=20261123",
            "_smtp._tls.example.org.",
            "v=TLSRPTv1",
            "posthorn dkim generate example.org",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in\n{text}");
        }
        assert!(!text.contains("not a [[domain]]"));
    }
}
