//! Outbound delivery against scripted sinks, with MX routing through a real DNS server on
//! loopback. Remote recipients are reached through aliases (relaying for clients arrives
//! with authentication).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use common::dns::TestDns;
use common::sink::{Sink, SinkTls};
use common::{Options, TestServer};

/// A server whose `fwd@localhost` forwards to `targets`, resolving through `dns`, and whose
/// MX port is the sink's.
fn server(dns: &TestDns, port: u16, targets: &[&str], extra: &str) -> TestServer {
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    Options::default()
        .config(&format!(
            "[delivery]\nnameserver = \"{}\"\nport = {port}\nconnect_timeout = \"2s\"\n\
             command_timeout = \"3s\"\nfinal_timeout = \"3s\"\n\n[queue]\nretry_schedule = [\"1s\"]\n\n\
             [aliases]\n\"fwd@localhost\" = [{}]\n\n{extra}",
            dns.addr,
            targets.join(", ")
        ))
        .start()
}

fn zone_to(ip: &str) -> TestDns {
    TestDns::builder()
        .mx("remote.test", 10, "mx.remote.test")
        .a("mx.remote.test", ip)
        .start()
}

#[test]
fn mx_delivery_with_starttls() {
    let sink = Sink::builder()
        .hostname("mx.remote.test")
        .tls(SinkTls::Offer)
        .start();
    let dns = zone_to("127.0.0.1");
    let server = server(&dns, sink.addr.port(), &["user@remote.test"], "");
    let mut client = server.client();
    let reply = client.send_message(
        "alice@example.com",
        &["fwd@localhost"],
        "Subject: out\r\n\r\n.leading dot\r\nbody\r\n",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let messages = sink.wait_for_messages(1);
    let message = &messages[0];
    // Forwarded by an alias, from the original sender rewritten for our domain (SRS).
    common::assert_rewritten(&message.sender(), "alice@example.com", "localhost");
    assert_eq!(message.recipients(), ["user@remote.test"]);
    assert!(message.tls, "{}", sink.transcript());
    let text = message.text();
    assert!(text.starts_with("Received: from client.test"), "{text}");
    assert!(
        text.ends_with("Subject: out\r\n\r\n.leading dot\r\nbody\r\n"),
        "{text}"
    );
    server.wait_for_empty_queue();
}

#[test]
fn a_forwarded_recipient_leaves_in_its_own_transaction_with_the_rewritten_sender() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let dns = zone_to("127.0.0.1");
    let server = server(
        &dns,
        sink.addr.port(),
        &["forwarded@remote.test"],
        "[policy]\ntrusted_networks = [\"127.0.0.0/8\"]\n",
    );
    let reply = server.client().send_message(
        "alice@example.com",
        &["fwd@localhost", "direct@remote.test"],
        "Subject: both\r\n\r\nbody\r\n",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let messages = sink.wait_for_messages(2);
    let to = |address: &str| {
        messages
            .iter()
            .find(|m| m.recipients() == [address])
            .unwrap_or_else(|| panic!("no transaction for {address}: {}", sink.transcript()))
    };
    assert_eq!(to("direct@remote.test").sender(), "alice@example.com");
    common::assert_rewritten(
        &to("forwarded@remote.test").sender(),
        "alice@example.com",
        "localhost",
    );
    server.wait_for_empty_queue();
}

#[test]
fn trusted_networks_may_relay_and_others_may_not() {
    let sink = Sink::builder().hostname("mx.remote.test").start();
    let dns = zone_to("127.0.0.1");
    let trusted = server(
        &dns,
        sink.addr.port(),
        &["x@remote.test"],
        "[policy]\ntrusted_networks = [\"127.0.0.0/8\"]\n",
    );
    let mut client = trusted.client();
    let reply = client.send_message(
        "a@example.com",
        &["user@remote.test"],
        "Subject: relayed\r\n\r\nhi\r\n",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].recipients(), ["user@remote.test"]);

    let untrusted = server(
        &dns,
        sink.addr.port(),
        &["x@remote.test"],
        "[policy]\ntrusted_networks = [\"10.0.0.0/8\", \"::1/128\"]\n",
    );
    let mut client = untrusted.client();
    client.expect("EHLO client.test", "250");
    client.expect("MAIL FROM:<a@example.com>", "250");
    client.expect("RCPT TO:<user@remote.test>", "554 5.7.1");
}
