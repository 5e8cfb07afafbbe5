//! Links in text and HTML parts: their domains for `Report::url_domains`, and the phishing
//! signs: visible text naming another site than the target, IP hosts, and hosts that only
//! look like ours.

use crate::Scan;
use crate::domain::{lookalike_of, mixed_script, registrable};
use crate::html::{self, Link};
use crate::symbols::*;
use crate::url::{find_in_text, host_of, is_ip};

pub(crate) fn in_text(scan: &mut Scan, text: &str) {
    for url in find_in_text(text) {
        if let Some(host) = host_of(url) {
            check_host(scan, &host);
        }
    }
}

pub(crate) fn in_html(scan: &mut Scan, source: &str) {
    let page = html::scan(source);
    if page.has_form && page.has_password_input {
        scan.add(HTML_PASSWORD_FORM, "form with a password input");
    }
    for link in &page.links {
        if let Some(host) = host_of(&link.href) {
            check_host(scan, &host);
            mismatch(scan, link, &host);
        }
    }
    in_text(scan, &page.text);
}

fn check_host(scan: &mut Scan, host: &str) {
    if is_ip(host) {
        scan.add(URL_BARE_IP, host);
        return;
    }
    if let Some(domain) = registrable(host) {
        let max = scan.limits().max_urls;
        scan.domains.insert(&domain, max);
    }
    if let Some(local) = lookalike_of(host, scan.context.local_domains) {
        scan.add(URL_LOOKALIKE_LOCAL, format!("{host} ~ {local}"));
    }
    if mixed_script(host) {
        scan.add(URL_MIXED_SCRIPT, host);
    }
}

/// The link text shows a URL or a domain whose registrable domain is not the target's.
fn mismatch(scan: &mut Scan, link: &Link, target_host: &str) {
    let Some(shown_host) = shown_host(&link.text) else {
        return;
    };
    let Some(shown) = registrable(&shown_host) else {
        return;
    };
    let target = if is_ip(target_host) {
        Some(target_host.to_owned())
    } else {
        registrable(target_host)
    };
    if target.as_deref() != Some(shown.as_str()) {
        let target = target.unwrap_or_else(|| target_host.to_owned());
        scan.add(
            PHISH_LINK_MISMATCH,
            format!("shows {shown}, goes to {target}"),
        );
    }
}

/// The host a link's visible text presents: from a URL in it, or the text itself when it is
/// a bare domain such as `www.bank.example` or `bank.example/login`.
fn shown_host(text: &str) -> Option<String> {
    if let Some(host) = find_in_text(text).into_iter().find_map(host_of) {
        return Some(host);
    }
    let word = text.trim().split(['/', '?', '#']).next()?;
    let domain_like = word.contains('.')
        && !word.starts_with('.')
        && word
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    domain_like.then(|| word.to_lowercase())
}
