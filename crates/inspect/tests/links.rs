//! Spoofing and phishing symbols, and the link domains collected for RHSBL lookups.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use posthorn_inspect::Limits;

fn html(body: &str) -> Vec<u8> {
    message(
        "",
        &format!("Content-Type: text/html; charset=utf-8\r\n\r\n{body}\r\n"),
    )
}

fn text(body: &str) -> Vec<u8> {
    message(
        "",
        &format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"),
    )
}

fn from(value: &str) -> Vec<u8> {
    let m = String::from_utf8(message("", "Content-Type: text/plain\r\n\r\nhi\r\n")).unwrap();
    m.replace(
        "From: Alice Sender <alice@sender.example.net>",
        &format!("From: {value}"),
    )
    .into_bytes()
}

#[test]
fn from_local_domain() {
    let report = run(&from("Boss <boss@Example.org>"));
    assert_eq!(symbols(&report), ["FROM_LOCAL_DOMAIN"]);
    assert_eq!(report.findings[0].detail, "example.org");
    assert_eq!(report.from_domain.as_deref(), Some("example.org"));
    assert!(run(&from("x@sub.example.org")).findings.is_empty());
}

#[test]
fn from_lookalike_domain() {
    assert_eq!(
        symbols(&run(&from("x@xn--exmple-4nf.org"))),
        ["FROM_LOOKALIKE_LOCAL"]
    );
    assert_eq!(
        symbols(&run(&from("x@examp1e.org"))),
        ["FROM_LOOKALIKE_LOCAL"]
    );
}

#[test]
fn display_name_with_another_address() {
    let report = run(&from(
        "\"CEO <ceo@example.org>\" <attacker@elsewhere.example.net>",
    ));
    assert_eq!(
        symbols(&report),
        ["FROM_NAME_HAS_ADDRESS", "FROM_NAME_LOCAL_ADDRESS"]
    );
    assert_eq!(report.findings[1].detail, "ceo@example.org");
    let report = run(&from(
        "\"billing@shop.example.com\" <attacker@elsewhere.example.net>",
    ));
    assert_eq!(symbols(&report), ["FROM_NAME_HAS_ADDRESS"]);
    // Showing one's own address is common and fine.
    assert!(
        run(&from(
            "\"alice@sender.example.net\" <Alice@sender.example.net>"
        ))
        .findings
        .is_empty()
    );
}

#[test]
fn link_text_shows_another_domain() {
    let report = run(&html(
        "<a href=\"https://login.evil.example.com/x\">https://www.mybank.co.uk/login</a>",
    ));
    assert_eq!(symbols(&report), ["PHISH_LINK_MISMATCH"]);
    assert_eq!(
        report.findings[0].detail,
        "shows mybank.co.uk, goes to example.com"
    );
    assert_eq!(
        symbols(&run(&html(
            "<a href='http://x.example.net'>www.mybank.co&#46;uk</a>"
        ))),
        ["PHISH_LINK_MISMATCH"]
    );
    // Same registrable domain, or plain words: fine.
    assert!(
        run(&html(
            "<a href=\"https://links.mybank.co.uk/t/1\">www.mybank.co.uk</a>"
        ))
        .findings
        .is_empty()
    );
    assert!(
        run(&html(
            "<a href=\"https://track.example.net/1\">Click here</a>"
        ))
        .findings
        .is_empty()
    );
}

#[test]
fn ip_links() {
    assert_eq!(
        symbols(&run(&html("<a href=\"http://192.0.2.7/login\">Log in</a>"))),
        ["URL_BARE_IP"]
    );
    assert_eq!(
        symbols(&run(&text("Go to http://3232235777/pay now"))),
        ["URL_BARE_IP"]
    );
    let report = run(&html(
        "<a href=\"http://192.0.2.7/\">https://mybank.co.uk</a>",
    ));
    assert_eq!(symbols(&report), ["URL_BARE_IP", "PHISH_LINK_MISMATCH"]);
}

#[test]
fn lookalike_and_mixed_script_hosts() {
    let report = run(&html("<a href=\"https://xn--exmple-4nf.org/\">Sign in</a>"));
    assert_eq!(
        symbols(&report),
        ["URL_LOOKALIKE_LOCAL", "URL_MIXED_SCRIPT"]
    );
    assert_eq!(
        symbols(&run(&text("https://www.examp1e.org/reset"))),
        ["URL_LOOKALIKE_LOCAL"]
    );
    assert_eq!(
        symbols(&run(&text("https://pаypal.com/"))),
        ["URL_MIXED_SCRIPT"]
    );
    // A wholly Cyrillic name is no mixture.
    assert!(run(&text("https://пример.рф/")).findings.is_empty());
}

#[test]
fn url_domains_are_distinct_registrable_and_bounded() {
    let report = run(&html(
        "<p>Visit https://a.shop.example.com/x or www.news.example.co.uk.</p>\
         <a href=\"https://b.shop.example.com/y\">shop</a><a href=\"mailto:x@y.example\">mail</a>\
         <a href=\"https://192.0.2.1/\">ip</a>",
    ));
    assert_eq!(report.url_domains, ["example.com", "example.co.uk"]);
    let many: String = (0..10)
        .map(|i| format!("https://host{i}.example.com.au/ https://site{i}.example/ "))
        .collect();
    let limits = Limits {
        max_urls: 4,
        ..Limits::default()
    };
    let report = run_with(
        &text(&format!(
            "{many} https://d{0}.com https://e.com https://f.com https://g.com https://h.com",
            1
        )),
        limits,
    );
    assert_eq!(report.url_domains.len(), 4);
    assert_eq!(symbols(&report), ["URL_TOO_MANY"]);
}

#[test]
fn text_in_other_charsets_is_decoded() {
    let latin1 = message(
        "",
        "Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         <p>Gr=FC=DFe</p><a href=3D\"https://evil.example.net/\">https://mybank.co.uk</a>\r\n",
    );
    assert_eq!(symbols(&run(&latin1)), ["PHISH_LINK_MISMATCH"]);
}
