//! Email authentication end to end: a loopback "sender" whose zone (served by a real DNS
//! server on loopback) publishes SPF, DKIM and DMARC sends to the mx listener; the checks,
//! the Authentication-Results header, the policy per result (reject, Junk, mark, defer),
//! ARC sealing of forwarded mail and DKIM signing of our own mail are observed from outside.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::net::IpAddr;
use std::path::Path;

use common::dns::{TestDns, TestDnsBuilder};
use common::sink::Sink;
use common::{Client, Options, TestServer, split_message};
use posthorn::dns::Dns;
use posthorn::mailauth::keys::{self, Algorithm};
use posthorn::mailauth::sign::{Keyring, Signer};
use posthorn::mailauth::verify::{self, Verifier};
use posthorn_mailbox::managesieve::scripts::Scripts;

/// The sending domain's signer (its own keys, made for the test) and the zone publishing
/// them with SPF and DMARC.
struct Sender {
    signer: Signer,
    _keys: tempfile::TempDir,
}

impl Sender {
    /// Keys for `sender.test`, published in `zone`, which also says that 127.0.0.1 sends its
    /// mail (SPF) and that failures are to be rejected (DMARC p=reject).
    fn new(zone: TestDnsBuilder) -> (Sender, TestDnsBuilder) {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = posthorn::config::parse(
            &format!(
                "[server]\nhostname = \"out.sender.test\"\ndata_dir = \"{}\"\n\
                 [[domain]]\nname = \"sender.test\"\n",
                dir.path().display()
            ),
            None,
        )
        .expect("sender config");
        let keyring = Keyring::load(&config, &["sender.test".to_string()]).expect("sender keys");
        let mut zone = zone
            .txt("sender.test", "v=spf1 ip4:127.0.0.1 -all")
            .txt("_dmarc.sender.test", "v=DMARC1; p=reject");
        let (_, domain_keys) = keyring.for_domain("sender.test").expect("keys");
        for key in domain_keys {
            zone = zone.txt(
                &format!("{}._domainkey.sender.test", key.selector),
                &key.key.txt_record(),
            );
        }
        let sender = Sender {
            signer: Signer::new(keyring),
            _keys: dir,
        };
        (sender, zone)
    }

    /// `content` with the sender's DKIM signatures on top.
    fn sign(&self, content: &str) -> String {
        let mut content = content.as_bytes().to_vec();
        let signatures = self.signer.sign(b"", &mut content);
        assert!(!signatures.is_empty(), "the sender signs its mail");
        signatures + std::str::from_utf8(&content).expect("UTF-8")
    }
}

/// The rest of the loopback Internet: a domain publishing p=quarantine, one without DMARC
/// whose SPF allows nobody, one whose DNS fails, and one whose SPF allows loopback.
fn world() -> TestDnsBuilder {
    TestDns::builder()
        .txt("quarantine.test", "v=spf1 -all")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        .txt("strict.test", "v=spf1 -all")
        .servfail("broken.test")
        .servfail("_dmarc.broken.test")
        .txt("other.test", "v=spf1 ip4:127.0.0.1 -all")
}

/// A server receiving for `alice@rcpt.test`, checking mail from loopback clients too, with
/// `extra` configuration.
fn server(dns: &TestDns, extra: &str) -> TestServer {
    Options::default()
        .config(&format!(
            "[delivery]\nnameserver = \"{}\"\ncommand_timeout = \"3s\"\n\n\
             [[domain]]\nname = \"rcpt.test\"\n\n[[account]]\nname = \"alice\"\n\n{extra}",
            dns.addr
        ))
        .config(if extra.contains("[verify]") {
            ""
        } else {
            "[verify]\nskip_networks = []\n"
        })
        .start()
}

/// A message as a mail client would write it.
fn message(from: &str, subject: &str) -> String {
    format!(
        "From: {from}\r\nTo: alice@rcpt.test\r\nSubject: {subject}\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@sender.test>\r\n\
         \r\nHello Alice.\r\n"
    )
}

/// Sends one message to Alice from a client saying HELO `out.sender.test`; returns the
/// final reply (of MAIL, when MAIL is refused; else of the end of DATA).
fn send(server: &TestServer, mail_from: &str, content: &str) -> String {
    send_to(server, mail_from, "alice@rcpt.test", content)
}

/// [`send`] to `rcpt`.
fn send_to(server: &TestServer, mail_from: &str, rcpt: &str, content: &str) -> String {
    let mut client = server.client();
    client.expect("EHLO out.sender.test", "250");
    let reply = client.command(&format!("MAIL FROM:<{mail_from}>"));
    if !reply.starts_with("250") {
        return reply;
    }
    client.expect(&format!("RCPT TO:<{rcpt}>"), "250 2.1.5");
    client.expect("DATA", "354");
    client.send(content);
    client.command(".")
}

/// The header section of a delivered message.
fn headers(message: &[u8]) -> String {
    split_message(message).0
}

/// Our Authentication-Results fields in `headers`, unfolded.
fn our_results(headers: &str) -> Vec<String> {
    let unfolded = headers.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .lines()
        .filter(|l| l.starts_with("Authentication-Results: mx.test"))
        .map(str::to_string)
        .collect()
}

#[test]
fn authenticated_mail_passes_and_forged_results_are_removed() {
    let (sender, zone) = Sender::new(world());
    let dns = zone.start();
    let server = server(&dns, "");
    let forged = "Authentication-Results: mx.test; dkim=pass header.d=bank.test; dmarc=pass\r\n";
    let content = sender.sign(&(forged.to_string() + &message("news@sender.test", "pass")));
    let reply = send(&server, "bounces@sender.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let delivered = server.wait_for_messages("alice", 1);
    let headers = headers(&delivered[0]);
    let results = our_results(&headers);
    assert_eq!(results.len(), 1, "exactly our own header:\n{headers}");
    let ours = &results[0];
    for needle in [
        "spf=pass",
        "smtp.mailfrom=bounces@sender.test",
        "smtp.helo=out.sender.test",
        "dkim=pass header.d=sender.test",
        "dmarc=pass header.from=sender.test policy.dmarc=reject",
        "arc=none",
    ] {
        assert!(ours.contains(needle), "{needle:?} not in {ours}");
    }
    assert!(!headers.contains("bank.test"), "{headers}");
    // Both of the sender's signatures (Ed25519 and RSA) verified.
    assert_eq!(ours.matches("dkim=pass").count(), 2, "{ours}");
    server.wait_for_log("dmarc=pass");
    let log = server.log();
    let accepted = log
        .lines()
        .find(|l| l.contains("accepted") && l.contains("auth="))
        .expect("accepted line with results");
    assert!(
        accepted.contains("spf=pass dkim=pass dmarc=pass arc=none"),
        "{accepted}"
    );
}

#[test]
fn signatures_over_bodies_ending_in_blank_lines_verify() {
    // Relaxed canonicalization drops white-space-only last lines (RFC 6376 §3.4.4), which
    // mail-auth alone gets wrong; the signature covers the body without them while the
    // message arrives with them, as from any RFC-following signer.
    // A small message is checked as it was held; a large one (past the first write to the
    // spool file) is read back from the spool file for the check.
    let (sender, zone) = Sender::new(world());
    let dns = zone.start();
    let server = server(&dns, "");
    for (n, body_lines) in [0usize, 20_000].into_iter().enumerate() {
        let original = message("news@sender.test", &format!("blank{n}"))
            + &"A line of text that makes the message large.\r\n".repeat(body_lines)
            + "Bye.\r\n  \r\n\t\r\n\r\n";
        let mut copy = original.clone().into_bytes();
        let signatures = sender.signer.sign(b"", &mut copy);
        assert_ne!(copy, original.as_bytes(), "the signer trims its copy");
        let reply = send(&server, "bounces@sender.test", &(signatures + &original));
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
        let delivered = server.wait_for_messages("alice", n + 1);
        let ours = delivered
            .iter()
            .find(|m| headers(m).contains(&format!("Subject: blank{n}")))
            .expect("delivered");
        assert!(
            ours.ends_with(b"Bye.\r\n  \r\n\t\r\n\r\n"),
            "delivered as sent"
        );
        assert!(ours.len() > original.len(), "whole: {}", ours.len());
        let results = our_results(&headers(ours));
        assert_eq!(results[0].matches("dkim=pass").count(), 2, "{results:?}");
    }
}

#[test]
fn spoofed_mail_under_p_reject_is_refused() {
    let (_sender, zone) = Sender::new(world());
    let dns = zone.start();
    let server = server(&dns, "");
    // SPF passes for other.test, but From says sender.test and nothing aligns; a large
    // unsigned message is judged from its header section, read back from the spool file.
    for body_lines in [0, 20_000] {
        let content = message("ceo@sender.test", "spoof")
            + &"A line of text that makes the message large.\r\n".repeat(body_lines);
        let reply = send(&server, "attacker@other.test", &content);
        assert!(reply.starts_with("550 5.7.1"), "{reply}");
        assert!(reply.contains("sender.test"), "{reply}");
    }
    server.wait_for_log("refused by authentication policy");
    assert!(server.messages("alice").is_empty());
    assert!(
        server.queue_files().is_empty(),
        "{:?}",
        server.queue_files()
    );
}

#[test]
fn mark_only_accepts_what_p_reject_would_refuse_and_received_spf_is_added() {
    let (_sender, zone) = Sender::new(world());
    let dns = zone.start();
    let server = server(
        &dns,
        "[verify]\nskip_networks = []\ndmarc_reject = \"mark\"\nreceived_spf = true\n",
    );
    let reply = send(
        &server,
        "attacker@other.test",
        &message("ceo@sender.test", "marked"),
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let delivered = server.wait_for_messages("alice", 1);
    let headers = headers(&delivered[0]);
    let results = our_results(&headers);
    assert!(
        results[0].contains("dmarc=fail header.from=sender.test policy.dmarc=reject"),
        "{results:?}"
    );
    // Asked for, the SPF verdict also comes as RFC 7208 §9.1 writes it.
    let received_spf = headers
        .lines()
        .find(|l| l.starts_with("Received-SPF: "))
        .unwrap_or_else(|| panic!("no Received-SPF in\n{headers}"));
    assert!(
        received_spf.starts_with("Received-SPF: pass"),
        "{received_spf}"
    );
    assert!(
        headers.contains("envelope-from=\"attacker@other.test\""),
        "{headers}"
    );
}

#[test]
fn spoofed_mail_under_p_quarantine_lands_in_junk() {
    let dns = world().start();
    let server = server(&dns, "");
    let reply = send(
        &server,
        "attacker@other.test",
        &message("billing@quarantine.test", "junk"),
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let junk = server.maildir("alice").join(".Junk");
    let found = common::wait_until("a message in .Junk/new", || {
        let names = common::list_files(&junk.join("new"));
        (!names.is_empty()).then_some(names)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(found.len(), 1);
    assert!(
        junk.join("maildirfolder").exists(),
        "Maildir++ folder marker"
    );
    assert!(server.messages("alice").is_empty(), "nothing in the inbox");
    let message = std::fs::read(junk.join("new").join(&found[0])).unwrap();
    let results = our_results(&headers(&message));
    assert!(
        results[0].contains("dmarc=fail header.from=quarantine.test policy.dmarc=quarantine"),
        "{results:?}"
    );
}

#[test]
fn spf_fail_without_dmarc_is_marked_by_default_and_refused_on_request() {
    let dns = world().start();
    let marking = server(&dns, "");
    let content = message("someone@strict.test", "spf");
    let reply = send(&marking, "someone@strict.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let delivered = marking.wait_for_messages("alice", 1);
    let results = our_results(&headers(&delivered[0]));
    assert!(results[0].contains("spf=fail"), "{results:?}");
    assert!(results[0].contains("dmarc=none"), "{results:?}");

    let refusing = server(
        &dns,
        "[verify]\nskip_networks = []\nspf_fail = \"reject\"\n",
    );
    let reply = send(&refusing, "someone@strict.test", &content);
    assert!(reply.starts_with("550 5.7.23"), "{reply}");
}

#[test]
fn dns_failures_are_marked_or_deferred_as_configured() {
    let dns = world().start();
    let content = message("x@broken.test", "temp");
    let lenient = server(&dns, "");
    let reply = send(&lenient, "x@broken.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let delivered = lenient.wait_for_messages("alice", 1);
    let results = our_results(&headers(&delivered[0]));
    assert!(results[0].contains("spf=temperror"), "{results:?}");
    assert!(results[0].contains("dmarc=temperror"), "{results:?}");

    let strict = server(
        &dns,
        "[verify]\nskip_networks = []\ndns_errors = \"defer\"\n",
    );
    let reply = send(&strict, "x@broken.test", &content);
    assert!(reply.starts_with("451 4.7.24"), "{reply}");
}

#[test]
fn mail_forwarded_by_an_alias_is_arc_sealed() {
    let (sender, zone) = Sender::new(world());
    let dns = zone.start();
    let sink = Sink::builder().hostname("mx.far.test").start();
    let server = server(
        &dns,
        &format!(
            "[aliases]\n\"fwd@rcpt.test\" = [\"alice@far.test\"]\n\n\
             [[route]]\ndomain = \"far.test\"\nhost = \"[127.0.0.1]:{}\"\n",
            sink.addr.port()
        ),
    );
    let content = sender.sign(&message("news@sender.test", "forwarded"));
    let reply = send_to(&server, "bounces@sender.test", "fwd@rcpt.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let forwarded = sink.wait_for_messages(1);
    let text = forwarded[0].text();
    let field = |name: &str| unfolded_field(&text, name);
    let seal = field("ARC-Seal:");
    for needle in ["i=1", "cv=none", "d=rcpt.test", "a=rsa-sha256"] {
        assert!(seal.contains(needle), "{needle:?} not in {seal}");
    }
    assert!(field("ARC-Message-Signature:").contains("d=rcpt.test"));
    let aar = field("ARC-Authentication-Results:");
    assert!(aar.contains("i=1; mx.test"), "{aar}");
    assert!(aar.contains("dkim=pass"), "{aar}");
    // The original signatures travel on untouched.
    assert!(text.contains("DKIM-Signature:"), "{text}");
}

#[test]
fn forwarded_mail_leaves_from_our_domain_and_its_bounces_find_the_sender() {
    // rcpt.test's SPF allows us; sender.test's allows only its own server, which is not us.
    let (sender, zone) = Sender::new(world().txt("rcpt.test", "v=spf1 ip4:127.0.0.1 -all"));
    let dns = zone.start();
    let far = Sink::builder().hostname("mx.far.test").start();
    let home = Sink::builder().hostname("mx.sender.test").start();
    let server = server(
        &dns,
        &format!(
            "[aliases]\n\"fwd@rcpt.test\" = [\"alice@far.test\"]\n\n\
             [[route]]\ndomain = \"far.test\"\nhost = \"[127.0.0.1]:{}\"\n\n\
             [[route]]\ndomain = \"sender.test\"\nhost = \"[127.0.0.1]:{}\"\n",
            far.addr.port(),
            home.addr.port()
        ),
    );
    let content = sender.sign(&message("news@sender.test", "forwarded"));
    let reply = send_to(&server, "Bounces@sender.test", "fwd@rcpt.test", &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let forwarded = far.wait_for_messages(1);
    let srs = forwarded[0].sender();
    common::assert_rewritten(&srs, "Bounces@sender.test", "rcpt.test");
    // As far.test sees it: our SPF passes for the rewritten sender.
    let results = verify_elsewhere(&dns, &srs, "mx.rcpt.test", forwarded[0].text().as_bytes());
    let spf = results
        .split("; ")
        .find(|r| r.starts_with("spf=") && r.contains("smtp.mailfrom"))
        .unwrap_or_else(|| panic!("no SPF result for MAIL FROM in {results}"));
    assert!(
        spf.starts_with("spf=pass") && spf.ends_with(&format!("smtp.mailfrom=\"{srs}\"")),
        "{spf}"
    );

    // far.test bounces to the rewritten address: we send it on to the original sender.
    let bounce = format!(
        "From: MAILER-DAEMON@far.test\r\nTo: {srs}\r\nSubject: Undelivered\r\n\r\nno such user\r\n"
    );
    let reply = server.client().send_message("", &[&srs], &bounce);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let returned = home.wait_for_messages(1);
    assert_eq!(returned[0].recipients(), ["Bounces@sender.test"]);
    assert_eq!(returned[0].sender(), "");
    assert!(returned[0].text().contains("no such user"));

    // An address whose hash does not match is nobody's: refused, never relayed.
    let forged = srs.replacen("=Bounces@", "=victim@", 1);
    let mut client = server.client();
    client.expect("EHLO mx.far.test", "250");
    client.expect("MAIL FROM:<>", "250");
    client.expect(&format!("RCPT TO:<{forged}>"), "550 5.1.1");
    server.wait_for_log("SRS address refused");
}

#[test]
fn mail_a_sieve_script_redirects_elsewhere_is_arc_sealed_unless_sealing_is_off() {
    let keydir = tempfile::tempdir().unwrap();
    let (rcpt_keys, zone) = our_keys(keydir.path(), "rcpt.test", world());
    let (sender, zone) = Sender::new(zone);
    let dns = zone.start();
    // Without the checking stage, which reads every message whole.
    let (server, sink) = redirecting(&dns, &format!("[checks]\nenabled = false\n\n{rcpt_keys}"));
    // A signed message, held in memory, and an unsigned one larger than that, whose start
    // is read back from the spool file for the seal.
    let signed = sender.sign(&message("news@sender.test", "signed"));
    let large = message("news@sender.test", "large").replace(
        "Hello Alice.\r\n",
        &format!("{}\r\n", "x".repeat(76)).repeat(4000),
    );
    for content in [&signed, &large] {
        let reply = send(&server, "bounces@sender.test", content);
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }
    for redirected in sink.wait_for_messages(2) {
        let text = redirected.text();
        assert!(text.contains("Posthorn Sieve redirect"), "{text}");
        let seal = unfolded_field(&text, "ARC-Seal:");
        for needle in ["i=1", "cv=none", "d=rcpt.test"] {
            assert!(seal.contains(needle), "{needle:?} not in {seal}");
        }
        assert!(unfolded_field(&text, "ARC-Message-Signature:").contains("d=rcpt.test"));
        let aar = unfolded_field(&text, "ARC-Authentication-Results:");
        let passed = if text.contains("Subject: signed") {
            "dkim=pass"
        } else {
            "spf=pass"
        };
        assert!(
            aar.contains("i=1; mx.test") && aar.contains(passed),
            "{aar}"
        );
        // The next hop finds the chain whole, with our key from DNS.
        let results = verify_elsewhere(&dns, &redirected.sender(), "mx.rcpt.test", text.as_bytes());
        assert!(results.contains("arc=pass"), "{results}");
    }

    let (server, sink) = redirecting(&dns, &format!("[dkim]\narc_seal = false\n\n{rcpt_keys}"));
    let reply = send(&server, "bounces@sender.test", &signed);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let unsealed = sink.wait_for_messages(1).remove(0).text();
    assert!(unsealed.contains("Posthorn Sieve redirect"), "{unsealed}");
    assert!(!unsealed.contains("ARC-"), "{unsealed}");
}

/// A server whose account alice redirects every message to `alice@far.test`, whose server
/// is the sink returned; with `extra` configuration.
fn redirecting(dns: &TestDns, extra: &str) -> (TestServer, Sink) {
    let sink = Sink::builder().hostname("mx.far.test").start();
    let server = server(
        dns,
        &format!(
            "{extra}[[route]]\ndomain = \"far.test\"\nhost = \"[127.0.0.1]:{}\"\n",
            sink.addr.port()
        ),
    );
    // Through the store ManageSieve writes, as an upload leaves it.
    let scripts = Scripts::of(&server.maildir("alice"));
    scripts
        .put("away", "redirect \"alice@far.test\";\n")
        .unwrap();
    scripts.set_active(Some("away")).unwrap();
    (server, sink)
}

/// The field `name` of `text`, unfolded onto one line.
fn unfolded_field(text: &str, name: &str) -> String {
    let unfolded = text.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .to_string()
}

/// Makes an Ed25519 and an RSA key for `domain` in `dir`, returning the `[[dkim.key]]`
/// tables and the zone with their records.
fn our_keys(dir: &Path, domain: &str, mut zone: TestDnsBuilder) -> (String, TestDnsBuilder) {
    let mut config = String::new();
    for (selector, algorithm) in [("ed", Algorithm::Ed25519), ("rsa", Algorithm::Rsa)] {
        let path = keys::create(&dir.join(domain), selector, algorithm).expect("key");
        let key = keys::load(&path).expect("load");
        zone = zone.txt(
            &format!("{selector}._domainkey.{domain}"),
            &key.txt_record(),
        );
        config.push_str(&format!(
            "[[dkim.key]]\ndomain = \"{domain}\"\nselector = \"{selector}\"\nfile = \"{}\"\n\n",
            path.display()
        ));
    }
    (config, zone)
}

/// Verifies `message` as a receiving server would, from 127.0.0.1 saying HELO `helo`;
/// returns its Authentication-Results.
fn verify_elsewhere(dns: &TestDns, mail_from: &str, helo: &str, message: &[u8]) -> String {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config = posthorn::config::parse(
            "[server]\nhostname = \"elsewhere.test\"\n[verify]\nskip_networks = []\n",
            None,
        )
        .expect("config");
        let resolver =
            Dns::new(Some(dns.addr), std::time::Duration::from_secs(3)).expect("resolver");
        let verifier = Verifier::new(resolver.authenticator(), &config);
        let client = verify::Client {
            ip: IpAddr::from([127, 0, 0, 1]),
            helo,
        };
        let spf = verifier.spf(&client, mail_from).await.expect("spf");
        let verdict = verifier.message(&client, &spf, message, None).await;
        verdict.headers.replace("\r\n\t", " ")
    })
}

#[test]
fn our_mail_and_our_bounces_are_dkim_signed_with_both_keys() {
    let keydir = tempfile::tempdir().unwrap();
    let (rcpt_keys, zone) = our_keys(keydir.path(), "rcpt.test", world());
    let (host_keys, zone) = our_keys(keydir.path(), "mx.test", zone);
    let dns = zone.start();
    let sink = Sink::builder()
        .hostname("mx.far.test")
        .rcpt(|address| {
            if address.starts_with("nobody") {
                "550 5.1.1 no such user"
            } else {
                "250 2.1.5 ok"
            }
        })
        .start();
    let server = server(
        &dns,
        &format!(
            "[policy]\ntrusted_networks = [\"127.0.0.0/8\"]\n\n\
             [[route]]\ndomain = \"far.test\"\nhost = \"[127.0.0.1]:{}\"\n\n{rcpt_keys}{host_keys}",
            sink.addr.port()
        ),
    );
    // A trusted client relays mail from our domain: it leaves signed by rcpt.test.
    let mut client = server.client();
    let content =
        message("alice@rcpt.test", "signed").replace("To: alice@rcpt.test", "To: bob@far.test");
    let reply = client.send_message("alice@rcpt.test", &["bob@far.test"], &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let relayed = sink.wait_for_messages(1);
    let text = relayed[0].text();
    let results = verify_elsewhere(&dns, "alice@rcpt.test", "mx.test", text.as_bytes());
    assert_eq!(
        results.matches("dkim=pass header.d=rcpt.test").count(),
        2,
        "{results}"
    );
    assert!(results.contains("header.s=ed"), "{results}");
    assert!(results.contains("header.s=rsa"), "{results}");
    assert!(results.contains("dmarc=none"), "{results}");

    // A large message is signed from its spool file; white-space lines ending its body,
    // longer than what is held in memory, are cut from the file (see `blank_tail`).
    let large = content.replace("Subject: signed", "Subject: large")
        + &"Some text to make it large.\r\n".repeat(20_000)
        + &" \r\n".repeat(200_000);
    let reply = client.send_message("alice@rcpt.test", &["bob@far.test"], &large);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let relayed = sink.wait_for_messages(2);
    let text = relayed[1].text();
    assert!(text.ends_with("Some text to make it large.\r\n"), "trimmed");
    let results = verify_elsewhere(&dns, "alice@rcpt.test", "mx.test", text.as_bytes());
    assert_eq!(
        results.matches("dkim=pass header.d=rcpt.test").count(),
        2,
        "{results}"
    );

    // A message to a refused address comes back as a bounce, signed by the host's domain.
    let mut client = Client::greeted(server.addr);
    let reply = client.send_message("alice@rcpt.test", &["nobody@far.test"], &content);
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let bounce = server.wait_for_messages("alice", 1);
    let (bounce_headers, _) = split_message(&bounce[0]);
    assert!(
        bounce_headers.contains("MAILER-DAEMON@mx.test"),
        "{bounce_headers}"
    );
    let start = bounce[0]
        .windows(15)
        .position(|w| w == b"DKIM-Signature:")
        .expect("a signed bounce");
    let results = verify_elsewhere(&dns, "", "mx.test", &bounce[0][start..]);
    assert_eq!(
        results.matches("dkim=pass header.d=mx.test").count(),
        2,
        "{results}"
    );
}

/// Runs `posthorn ARGS` and returns (success, stdout, stderr).
fn posthorn(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .args(args)
        .output()
        .expect("run posthorn");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn dkim_generate_and_dns_records_print_what_to_publish() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("posthorn.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mail.example.org\"\ndata_dir = \"{}\"\n\
             [[domain]]\nname = \"example.org\"\n",
            data.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let (ok, out, err) = posthorn(&["dkim", "--config", config, "generate", "example.org"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("e._domainkey.example.org. 3600 IN TXT \"v=DKIM1; k=ed25519; p="));
    assert!(lines[1].contains("r._domainkey.example.org. 3600 IN TXT ( \"v=DKIM1; k=rsa; p="));
    let (ok, out, err) = posthorn(&[
        "dkim",
        "--config",
        config,
        "generate",
        "example.org",
        "--algorithm",
        "rsa",
        "--selector",
        "next",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("next._domainkey.example.org."), "{out}");
    let (ok, _, err) = posthorn(&[
        "dkim",
        "--config",
        config,
        "generate",
        "example.org",
        "--algorithm",
        "rsa",
        "--selector",
        "next",
    ]);
    assert!(!ok, "an existing key is never replaced");
    assert!(err.contains("exists already"), "{err}");
    let folder = data.join("dkim").join("example.org");
    let files = common::list_files(&folder);
    assert_eq!(files.len(), 3, "{files:?}");
    for file in &files {
        let mode = std::fs::metadata(folder.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }

    let (ok, out, err) = posthorn(&["dns-records", "--config", config, "example.org"]);
    assert!(ok, "{err}");
    for needle in [
        "example.org.                             3600 IN MX    10 mail.example.org.",
        "IN TXT   \"v=spf1 mx -all\"",
        "next._domainkey.example.org.",
        "_dmarc.example.org.",
        "\"v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@example.org\"",
        "_mta-sts.example.org.",
        "_smtp._tls.example.org.",
        "mode: testing",
    ] {
        assert!(out.contains(needle), "{needle:?} not in\n{out}");
    }
    // Every key file is published, with the public half of that very key.
    for file in &files {
        let selector = file.trim_end_matches(".pem");
        let key = keys::load(&folder.join(file)).unwrap();
        let p = key.txt_record();
        let p = p.rsplit("p=").next().unwrap();
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{selector}._domainkey.example.org.")))
            .unwrap_or_else(|| panic!("{selector} not published:\n{out}"));
        let joined: String = line.split('"').skip(1).step_by(2).collect();
        assert!(joined.ends_with(p), "{line}");
    }
}
