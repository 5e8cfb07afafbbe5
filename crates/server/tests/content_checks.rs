//! The content checks of the checking stage against the running server: what a message
//! carries (attachments, links, its formatting) decides accept, Junk or refusal at the
//! end of DATA; hostile content gets a verdict within its budget; a From in our own
//! domain needs our signature.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::time::{Duration, Instant};

use common::dns::TestDns;
use common::{Options, TestServer, split_message};

/// A server receiving for `alice@rcpt.test` on its mx listener, with `extra` config.
fn server(extra: &str) -> TestServer {
    Options::default()
        .config(&format!(
            "[[domain]]\nname = \"rcpt.test\"\n\n[[account]]\nname = \"alice\"\n\n{extra}"
        ))
        .start()
}

/// Sends `content` to Alice from `sender`; the reply to the end of DATA.
fn send(server: &TestServer, sender: &str, content: &str) -> String {
    let mut client = server.client();
    client.patience(Duration::from_secs(60));
    client.expect("EHLO out.sender.test", "250");
    client.expect(&format!("MAIL FROM:<{sender}>"), "250");
    client.expect("RCPT TO:<alice@rcpt.test>", "250 2.1.5");
    client.expect("DATA", "354");
    client.send(content);
    client.command(".")
}

/// A well-formed message with `parts` (each a complete MIME part, headers and body).
fn multipart(from: &str, parts: &[String]) -> String {
    let mut message = format!(
        "From: {from}\r\nTo: alice@rcpt.test\r\nSubject: Your invoice\r\n\
         Date: {}\r\nMessage-ID: <inv-1@sender.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n",
        common::date_now()
    );
    for part in parts {
        message.push_str("--b1\r\n");
        message.push_str(part);
        message.push_str("\r\n");
    }
    message.push_str("--b1--\r\n");
    message
}

fn text_part(text: &str) -> String {
    format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n")
}

fn attachment(name: &str, base64: &str) -> String {
    format!(
        "Content-Type: application/octet-stream; name=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{base64}\r\n"
    )
}

/// The header section of the one message delivered into Alice's `.Junk` folder.
fn junk_headers(server: &TestServer) -> String {
    let junk = server.maildir("alice").join(".Junk").join("new");
    let names = common::wait_until("a message in .Junk/new", || {
        let names = common::list_files(&junk);
        (!names.is_empty()).then_some(names)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(names.len(), 1);
    split_message(&std::fs::read(junk.join(&names[0])).unwrap()).0
}

#[test]
fn a_clean_message_is_delivered_with_a_no_verdict() {
    let server = server("");
    let content = multipart(
        "Bob <bob@sender.test>",
        &[
            text_part("The minutes are attached."),
            attachment("minutes.pdf", "JVBERi0xLjQK"),
        ],
    );
    let reply = send(&server, "bob@sender.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let delivered = server.wait_for_messages("alice", 1);
    let (headers, _) = split_message(&delivered[0]);
    assert!(headers.contains("X-Spam-Flag: NO\r\n"), "{headers}");
    assert!(headers.contains("X-Spam-Status: No, score="), "{headers}");
    assert!(headers.contains("X-Posthorn-Checks: accept;"), "{headers}");
    assert!(
        server.settled_log().contains("checks=accept"),
        "{}",
        server.log()
    );
}

#[test]
fn an_executable_attachment_goes_to_junk() {
    let server = server("");
    // "MZ" and a few octets: an executable by content as well as by name.
    let content = multipart(
        "Bob <bob@sender.test>",
        &[
            text_part("See attached."),
            attachment("setup.exe", "TVqQAAMAAAAEAAAA//8AALgAAAA="),
        ],
    );
    let reply = send(&server, "bob@sender.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "junk is accepted: {reply}");
    let headers = junk_headers(&server);
    assert!(headers.contains("X-Spam-Flag: YES\r\n"), "{headers}");
    assert!(headers.contains("X-Spam-Status: Yes, score="), "{headers}");
    assert!(
        headers.contains("ATTACH_DANGEROUS_NAME=8.00 (setup.exe)"),
        "{headers}"
    );
    assert!(server.messages("alice").is_empty(), "nothing in the inbox");
    let log = server.settled_log();
    assert!(log.contains("checks=junk score="), "{log}");
}

#[test]
fn enough_threats_together_are_refused_with_the_main_reason() {
    let server = server("");
    let content = multipart(
        "\"ceo@rcpt.test\" <boss@elsewhere.test>",
        &[
            "Content-Type: text/html\r\n\r\n<a href=\"http://192.0.2.7/pay\">https://rcpt.test/pay</a>\r\n"
                .to_string(),
            attachment("invoice.pdf.exe", "TVqQAAMAAAAEAAAA//8AALgAAAA="),
        ],
    );
    let reply = send(&server, "boss@elsewhere.test", &content);
    assert!(
        reply.starts_with("550 5.7.1 Message refused: spam score"),
        "{reply}"
    );
    assert!(reply.contains("invoice.pdf.exe"), "{reply}");
    let log = server.settled_log();
    assert!(log.contains("refused by checks"), "{log}");
    assert!(log.contains("checks=reject score="), "{log}");
    assert!(server.messages("alice").is_empty());
}

#[test]
fn a_hard_format_error_is_refused_as_a_media_error() {
    let server = server("[checks]\nhard_errors = [\"MIME_BOUNDARY_NOT_FOUND\"]\n");
    let content = format!(
        "From: bob@sender.test\r\nTo: alice@rcpt.test\r\nSubject: x\r\nDate: {}\r\n\
         Message-ID: <x@sender.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"never\"\r\n\r\nno parts here\r\n",
        common::date_now()
    );
    let reply = send(&server, "bob@sender.test", &content);
    assert!(
        reply.starts_with("550 5.6.0 Malformed message: MIME_BOUNDARY_NOT_FOUND"),
        "{reply}"
    );
}

#[test]
fn ten_thousand_parts_get_a_verdict_and_the_server_stays_up() {
    let server = server("");
    let parts: Vec<String> = (0..10_000)
        .map(|i| text_part(&format!("part {i}")))
        .collect();
    let content = multipart("bob@sender.test", &parts);
    let started = Instant::now();
    let reply = send(&server, "bob@sender.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    // What lies beyond the part limit is not inspected: Junk.
    let headers = junk_headers(&server);
    assert!(headers.contains("MIME_TOO_MANY_PARTS=7.00"), "{headers}");
    eprintln!("10 000 parts judged in {:?}", started.elapsed());
    // The next client is served as usual.
    let reply = send(
        &server,
        "bob@sender.test",
        &multipart("bob@sender.test", &[text_part("hi")]),
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
}

#[test]
fn a_megabyte_header_line_and_deep_nesting_get_verdicts() {
    let server = server("");
    let long = format!(
        "From: bob@sender.test\r\nTo: alice@rcpt.test\r\nSubject: {}\r\nDate: {}\r\n\
         Message-ID: <l@sender.test>\r\n\r\nbody\r\n",
        "x".repeat(1 << 20),
        common::date_now()
    );
    let reply = send(&server, "bob@sender.test", &long);
    // The session refuses a line that long before any check (limits.max_text_line).
    assert!(reply.starts_with("550 5.6.0"), "{reply}");
    // Longer than RFC 5322 allows (998) but within our line limit: a symbol.
    let over = format!(
        "From: bob@sender.test\r\nTo: alice@rcpt.test\r\nSubject: {}\r\nDate: {}\r\n\
         Message-ID: <o@sender.test>\r\n\r\nbody\r\n",
        "y".repeat(2000),
        common::date_now()
    );
    let reply = send(&server, "bob@sender.test", &over);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let delivered = server.wait_for_messages("alice", 1);
    let (headers, _) = split_message(&delivered[0]);
    assert!(headers.contains("HEADER_LINE_TOO_LONG"), "{headers}");
    let mut nested = format!(
        "From: bob@sender.test\r\nTo: alice@rcpt.test\r\nSubject: deep\r\nDate: {}\r\n\
         Message-ID: <d@sender.test>\r\nMIME-Version: 1.0\r\n",
        common::date_now()
    );
    for depth in 0..500 {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"d{depth}\"\r\n\r\n--d{depth}\r\n"
        ));
    }
    nested.push_str("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    let reply = send(&server, "bob@sender.test", &nested);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let headers = junk_headers(&server);
    assert!(headers.contains("MIME_TOO_DEEP=7.00"), "{headers}");
}

#[test]
fn a_from_in_our_domain_without_our_signature_goes_to_junk() {
    // The sender's SPF passes for loopback: only the missing signature of ours counts.
    let dns = TestDns::builder()
        .txt("sender.test", "v=spf1 ip4:127.0.0.1 -all")
        .start();
    let server = server(&format!(
        "[delivery]\nnameserver = \"{}\"\ncommand_timeout = \"3s\"\n\n\
         [verify]\nskip_networks = []\n",
        dns.addr
    ));
    let content = multipart(
        "Alice <alice@rcpt.test>",
        &[text_part("Transfer the money.")],
    );
    let reply = send(&server, "bounce@sender.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let headers = junk_headers(&server);
    assert!(
        headers.contains("FROM_LOCAL_UNAUTHENTICATED=6.00 (rcpt.test)"),
        "{headers}"
    );
    assert!(headers.contains("SPF_PASS=-0.50"), "{headers}");
}

#[test]
fn a_check_that_outlives_the_budget_gives_its_symbol_not_a_stuck_session() {
    // The DNS list's server never answers; the budget is one second.
    let dns = TestDns::builder().timeout("1.0.0.127.slow.test").start();
    let server = server(&format!(
        "[delivery]\nnameserver = \"{}\"\n\n[checks]\ntime_budget = \"1s\"\n\n\
         [[checks.dnsbl]]\nzone = \"slow.test\"\nsymbol = \"SLOW_LIST\"\nscore = 20.0\n",
        dns.addr
    ));
    let started = Instant::now();
    let reply = send(
        &server,
        "bob@sender.test",
        &multipart("bob@sender.test", &[text_part("hi")]),
    );
    let took = started.elapsed();
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert!(took < Duration::from_secs(20), "answered after {took:?}");
    let delivered = server.wait_for_messages("alice", 1);
    let (headers, _) = split_message(&delivered[0]);
    assert!(headers.contains("CHECKS_TIMEOUT"), "{headers}");
    assert!(!headers.contains("SLOW_LIST"), "{headers}");
}

#[test]
fn a_domain_list_looks_up_the_domains_of_links() {
    // The list names one of the two link domains; the other is asked about and not listed.
    let dns = TestDns::builder()
        .a("phish-bank.com.dbl.test", "127.0.1.2")
        .start();
    let server = server(&format!(
        "[delivery]\nnameserver = \"{}\"\n\n\
         [[checks.dnsbl]]\nzone = \"dbl.test\"\nlookups = [\"url\"]\nsymbol = \"URL_LISTED\"\nscore = 7.0\n",
        dns.addr
    ));
    let html = "Content-Type: text/html\r\n\r\n<p><a href=\"https://www.phish-bank.com/login\">log in</a> \
                or <a href=\"https://docs.example.org/help\">read the help</a></p>\r\n";
    let content = multipart("bob@sender.test", &[html.to_string()]);
    let reply = send(&server, "bob@sender.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let headers = junk_headers(&server);
    assert!(
        headers.contains("URL_LISTED=7.00 (phish-bank.com 127.0.1.2)"),
        "{headers}"
    );
    let asked: Vec<String> = dns.queries().into_iter().map(|(name, _)| name).collect();
    assert!(
        asked.iter().any(|n| n == "example.org.dbl.test"),
        "{asked:?}"
    );
}
