//! The checking stage end to end: the real server, asked by loopback clients that it takes
//! for other mail servers, looks them up in DNS lists served by a real DNS server on
//! loopback, greylists them, has a private clamd scan their mail, and answers with one
//! verdict: the SMTP reply (code and enhanced status), the log line and what lands in which
//! Maildir folder with which headers are observed from outside. `posthorn check` and
//! `posthorn check-config` are run as an admin would run them.
//!
//! Content symbols (format, MIME, attachments) are not covered here: that inspection is
//! not part of the stage yet.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::dns::{TestDns, TestDnsBuilder};
use common::{Client, Options, TestServer, split_message, wait_until};
use hickory_proto::rr::RecordType;
use posthorn_testkit::clamd::{EICAR_SIGNATURE, PrivateClamd, eicar};

/// The loopback Internet of these tests: senders' domains and DNS lists. 127.0.0.1, the
/// address every test client comes from, is `1.0.0.127` to an IP list (RFC 5782 §2.1).
fn world() -> TestDnsBuilder {
    TestDns::builder()
        // A sending domain whose SPF allows loopback; no DMARC.
        .txt("far.test", "v=spf1 ip4:127.0.0.1 -all")
        // A sending domain that passes DMARC through aligned SPF.
        .txt("aligned.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.aligned.test", "v=DMARC1; p=none")
        // IP lists that list loopback.
        .a("1.0.0.127.bl.test", "127.0.0.2")
        .a("1.0.0.127.junk-bl.test", "127.0.0.2")
        .a("1.0.0.127.hard-bl.test", "127.0.0.2")
        // An IP list with return codes, one answer it names and one it does not.
        .a("1.0.0.127.codes.test", "127.0.0.4")
        .a("1.0.0.127.codes.test", "127.0.0.3")
        // An IP list whose only answer is a code its `returns` does not name.
        .a("1.0.0.127.other-codes.test", "127.0.0.2")
        // A list refusing to answer us, as Spamhaus does open resolvers.
        .a("1.0.0.127.refusing.test", "127.255.255.254")
        // A list whose DNS fails.
        .servfail("1.0.0.127.broken-bl.test")
        // Domain lists (RHSBL): a MAIL FROM domain and a HELO name.
        .a("spammer.test.rhs.test", "127.0.0.2")
        .a("bad-helo.test.helo-bl.test", "127.0.0.2")
        // A name in the zone of the list that misses, so the zone exists.
        .a("clean.test", "127.0.0.1")
}

/// A DNS list of IP addresses as `[[checks.dnsbl]]`.
fn ip_list(zone: &str, symbol: &str, score: f64) -> String {
    format!("[[checks.dnsbl]]\nzone = \"{zone}\"\nsymbol = \"{symbol}\"\nscore = {score:.1}\n\n")
}

/// A server receiving for `alice`, `bob` and `carol` at `rcpt.test`, asking `dns`, that
/// checks SPF, DKIM and DMARC of mail from loopback too (so a test client counts as another
/// server), with `extra` configuration (`[checks]` tables, accounts' keys after `carol`).
fn server(dns: &TestDns, extra: &str) -> TestServer {
    Options::default()
        .config(&format!(
            "[delivery]\nnameserver = \"{}\"\ncommand_timeout = \"3s\"\n\n\
             [verify]\nskip_networks = []\n\n\
             [[domain]]\nname = \"rcpt.test\"\n\n\
             [[account]]\nname = \"postmaster\"\n\n\
             [[account]]\nname = \"alice\"\n\n\
             [[account]]\nname = \"bob\"\n\n\
             [[account]]\nname = \"carol\"\n{extra}",
            dns.addr
        ))
        .start()
}

/// A message from `from` as a mail client writes it, with `extra` header fields after
/// `From`.
fn message(from: &str, subject: &str, extra: &str) -> String {
    format!(
        "From: {from}\r\n{extra}To: alice@rcpt.test\r\nSubject: {subject}\r\n\
         Date: {}\r\nMessage-ID: <{subject}@far.test>\r\n\
         \r\nHello Alice.\r\n",
        common::date_now()
    )
}

/// One transaction on a new connection after EHLO `helo`; the reply that ended it: MAIL's
/// or a RCPT's when refused, else the reply to the end of DATA.
fn send(server: &TestServer, helo: &str, from: &str, to: &[&str], content: &str) -> String {
    let mut client = server.client();
    client.expect(&format!("EHLO {helo}"), "250");
    transaction(&mut client, from, to, content)
}

/// A transaction on `client`, greeted already; the reply that ended it, as for [`send`].
fn transaction(client: &mut Client, from: &str, to: &[&str], content: &str) -> String {
    let reply = client.command(&format!("MAIL FROM:<{from}>"));
    if !reply.starts_with("250") {
        return reply;
    }
    for rcpt in to {
        let reply = client.command(&format!("RCPT TO:<{rcpt}>"));
        if !reply.starts_with("250") {
            return reply;
        }
    }
    client.expect("DATA", "354");
    client.send(content);
    client.command(".")
}

/// [`send`] from `mail.far.test` to Alice.
fn send_to_alice(server: &TestServer, from: &str, content: &str) -> String {
    send(server, "mail.far.test", from, &["alice@rcpt.test"], content)
}

/// Asserts that `reply` is one line starting with `start` (code and enhanced status, and
/// more) and containing every one of `words`.
fn assert_reply(reply: &str, start: &str, words: &[&str]) {
    assert!(
        reply.starts_with(start) && reply.lines().count() == 1,
        "expected {start:?}, got {reply:?}"
    );
    for word in words {
        assert!(reply.contains(word), "{word:?} not in {reply:?}");
    }
}

/// The first log line holding every one of `needles`, waited for.
fn log_line(server: &TestServer, needles: &[&str]) -> String {
    wait_until(&format!("a log line with {needles:?}"), || {
        server
            .log()
            .lines()
            .find(|line| needles.iter().all(|n| line.contains(n)))
            .map(str::to_string)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()))
}

/// The header fields of a delivered message, unfolded (each fold is one space): name and
/// value, in order.
fn fields(message: &[u8]) -> Vec<(String, String)> {
    let (headers, _) = split_message(message);
    let unfolded = headers.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_string(), value.trim().to_string()))
        .collect()
}

/// The values of field `name` (any case).
fn values(fields: &[(String, String)], name: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

/// The one value of field `name`.
fn value(fields: &[(String, String)], name: &str) -> String {
    let found = values(fields, name);
    assert_eq!(found.len(), 1, "one {name} field in {fields:#?}");
    found[0].clone()
}

/// A symbol in `X-Posthorn-Checks`.
#[derive(Debug)]
struct Symbol {
    name: String,
    score: f64,
    detail: String,
}

/// What `X-Posthorn-Checks` says: the action, the score and every symbol.
#[derive(Debug)]
struct Verdict {
    action: String,
    score: f64,
    symbols: Vec<Symbol>,
}

impl Verdict {
    /// The verdict of a delivered message; asserts its score is the sum of its symbols'.
    fn of(fields: &[(String, String)]) -> Verdict {
        let text = value(fields, "X-Posthorn-Checks");
        let mut parts = text.split(';').map(str::trim);
        let action = parts.next().unwrap().to_string();
        let score: f64 = parts
            .next()
            .and_then(|s| s.strip_prefix("score="))
            .unwrap_or_else(|| panic!("no score in {text:?}"))
            .parse()
            .unwrap();
        let symbols: Vec<Symbol> = parts
            .map(|part| {
                let (name, rest) = part.split_once('=').expect("NAME=SCORE");
                let (score, detail) = match rest.split_once(' ') {
                    Some((score, detail)) => (score, detail.trim_matches(['(', ')'])),
                    None => (rest, ""),
                };
                Symbol {
                    name: name.to_string(),
                    score: score.parse().unwrap(),
                    detail: detail.to_string(),
                }
            })
            .collect();
        let sum: f64 = symbols.iter().map(|s| s.score).sum();
        assert!((sum - score).abs() < 0.01, "score {score} of {symbols:?}");
        Verdict {
            action,
            score,
            symbols,
        }
    }

    /// The symbol `name`; panics when it is missing.
    fn symbol(&self, name: &str) -> &Symbol {
        self.symbols
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} in {self:?}"))
    }

    /// True when the message got symbol `name`.
    fn has(&self, name: &str) -> bool {
        self.symbols.iter().any(|s| s.name == name)
    }
}

/// The messages in an account's folder (`""` for INBOX, `".Junk"`), sorted by file name.
fn folder(server: &TestServer, account: &str, name: &str) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        let dir = server.maildir(account).join(name).join(sub);
        if let Ok(entries) = std::fs::read_dir(dir) {
            files.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Asserts nothing was queued or delivered: a refused message never reaches the spool.
fn assert_nothing_delivered(server: &TestServer) {
    assert_eq!(server.queue_files(), Vec::<String>::new());
    for account in ["alice", "bob", "carol"] {
        assert!(server.messages(account).is_empty(), "mail for {account}");
    }
}

#[test]
fn a_dnsbl_listing_the_client_refuses_with_its_symbol() {
    let dns = world().start();
    let server = server(&dns, &ip_list("bl.test", "BL_TEST", 20.0));
    let reply = send_to_alice(&server, "a@far.test", &message("a@far.test", "listed", ""));
    assert_reply(
        &reply,
        "550 5.7.1 Message refused: spam score ",
        &["BL_TEST (127.0.0.1 127.0.0.2)"],
    );
    let line = log_line(&server, &["refused by checks", "from=a@far.test"]);
    assert!(line.contains("checks=reject score="), "{line}");
    assert!(line.contains("BL_TEST"), "{line}");
    assert!(line.contains("reply=550 5.7.1"), "{line}");
    assert!(dns.count("1.0.0.127.bl.test", RecordType::A) >= 1);
    assert_nothing_delivered(&server);
}

#[test]
fn a_dnsbl_without_the_client_accepts_and_marks_the_message() {
    let dns = world().start();
    let server = server(&dns, &ip_list("clean.test", "CLEAN_TEST", 20.0));
    let reply = send_to_alice(&server, "a@far.test", &message("a@far.test", "clean", ""));
    assert_reply(&reply, "250 2.0.0", &[]);
    // The list was asked, and had no record.
    assert!(dns.count("1.0.0.127.clean.test", RecordType::A) >= 1);
    let delivered = server.wait_for_messages("alice", 1);
    let fields = fields(&delivered[0]);
    assert_eq!(value(&fields, "X-Spam-Flag"), "NO");
    let status = value(&fields, "X-Spam-Status");
    assert!(status.starts_with("No, score="), "{status}");
    assert!(status.contains(" required=6.0 tests="), "{status}");
    let verdict = Verdict::of(&fields);
    assert_eq!(verdict.action, "accept");
    assert!(!verdict.has("CLEAN_TEST"), "{verdict:?}");
    assert!(!verdict.has("DNSBL_ERROR"), "{verdict:?}");
    // SPF, DKIM and DMARC were checked and became symbols.
    assert!(
        verdict.has("SPF_PASS") && verdict.has("DKIM_NONE"),
        "{verdict:?}"
    );
    assert!(
        status.contains(&format!("score={:.1}", verdict.score)),
        "{status}"
    );
    assert!(folder(&server, "alice", ".Junk").is_empty());
    let line = log_line(&server, &["accepted", "from=a@far.test"]);
    assert!(line.contains("checks=accept score="), "{line}");
    assert!(line.contains("quarantine=false"), "{line}");
}

#[test]
fn dnsbl_return_codes_score_and_a_list_that_cannot_answer_is_an_error() {
    let dns = world().start();
    let lists = format!(
        "[[checks.dnsbl]]\nzone = \"codes.test\"\nsymbol = \"CODES_BL\"\nscore = 50.0\n\
         returns = {{ \"127.0.0.4\" = 3.0, \"127.0.0.9\" = 9.0 }}\n\n\
         [[checks.dnsbl]]\nzone = \"other-codes.test\"\nsymbol = \"OTHER_CODES_BL\"\n\
         score = 50.0\nreturns = {{ \"127.0.0.9\" = 9.0 }}\n\n{}{}",
        ip_list("refusing.test", "REFUSING_BL", 50.0),
        ip_list("broken-bl.test", "BROKEN_BL", 50.0),
    );
    let server = server(&dns, &lists);
    let reply = send_to_alice(&server, "a@far.test", &message("a@far.test", "codes", ""));
    // A list's own score (50) would refuse: the answers' scores apply instead.
    assert_reply(&reply, "250 2.0.0", &[]);
    let delivered = server.wait_for_messages("alice", 1);
    let verdict = Verdict::of(&fields(&delivered[0]));
    // 127.0.0.4 is named (3.0); 127.0.0.3 is not, and is no listing.
    let codes = verdict.symbol("CODES_BL");
    assert_eq!(
        (codes.score, codes.detail.as_str()),
        (3.0, "127.0.0.1 127.0.0.4")
    );
    assert!(!verdict.has("OTHER_CODES_BL"), "{verdict:?}");
    // 127.255.255.254 is a refusal to answer, and SERVFAIL a failure: neither lists.
    assert!(
        !verdict.has("REFUSING_BL") && !verdict.has("BROKEN_BL"),
        "{verdict:?}"
    );
    let error = verdict.symbol("DNSBL_ERROR");
    assert_eq!(
        (error.score, error.detail.as_str()),
        (0.0, "broken-bl.test refusing.test")
    );
    assert_eq!(verdict.action, "accept");
    let line = log_line(&server, &["accepted", "from=a@far.test"]);
    assert!(line.contains("checks=accept score="), "{line}");
    assert!(line.contains("CODES_BL"), "{line}");
}

#[test]
fn domain_lists_look_up_the_sender_and_the_helo_name() {
    let dns = world().start();
    let lists = "[[checks.dnsbl]]\nzone = \"rhs.test\"\nlookups = [\"sender\"]\n\
                 symbol = \"RHS_SENDER\"\nscore = 20.0\n\n\
                 [[checks.dnsbl]]\nzone = \"helo-bl.test\"\nlookups = [\"helo\"]\n\
                 symbol = \"RHS_HELO\"\nscore = 20.0\n";
    let server = server(&dns, lists);
    let from_spammer = message("x@spammer.test", "sender", "");
    let reply = send_to_alice(&server, "x@spammer.test", &from_spammer);
    assert_reply(
        &reply,
        "550 5.7.1 Message refused: spam score ",
        &["RHS_SENDER (spammer.test 127.0.0.2)"],
    );
    let line = log_line(&server, &["refused by checks", "from=x@spammer.test"]);
    assert!(
        line.contains("RHS_SENDER") && line.contains("reply=550 5.7.1"),
        "{line}"
    );

    let content = message("a@far.test", "helo", "");
    let reply = send(
        &server,
        "bad-helo.test",
        "a@far.test",
        &["alice@rcpt.test"],
        &content,
    );
    assert_reply(
        &reply,
        "550 5.7.1 Message refused: spam score ",
        &["RHS_HELO (bad-helo.test 127.0.0.2)"],
    );
    let line = log_line(&server, &["refused by checks", "from=a@far.test"]);
    assert!(
        line.contains("RHS_HELO") && !line.contains("RHS_SENDER"),
        "{line}"
    );

    // Neither lists a good sender from a good HELO name.
    let reply = send_to_alice(&server, "a@far.test", &message("a@far.test", "good", ""));
    assert_reply(&reply, "250 2.0.0", &[]);
    let delivered = server.wait_for_messages("alice", 1);
    let verdict = Verdict::of(&fields(&delivered[0]));
    assert!(
        !verdict.has("RHS_SENDER") && !verdict.has("RHS_HELO"),
        "{verdict:?}"
    );
    // Each list was asked only about what it looks up.
    assert!(dns.count("far.test.rhs.test", RecordType::A) >= 1);
    assert!(dns.count("mail.far.test.helo-bl.test", RecordType::A) >= 1);
    for never in [
        "1.0.0.127.rhs.test",
        "1.0.0.127.helo-bl.test",
        "spammer.test.helo-bl.test",
        "mail.far.test.rhs.test",
    ] {
        assert_eq!(dns.count(never, RecordType::A), 0, "{never} asked");
    }
}

#[test]
fn a_score_between_junk_and_reject_goes_to_the_junk_folder() {
    let dns = world().start();
    let server = server(&dns, &ip_list("junk-bl.test", "JUNK_BL", 8.0));
    let reply = send_to_alice(&server, "a@far.test", &message("a@far.test", "junk", ""));
    assert_reply(&reply, "250 2.0.0", &[]);
    let junk = wait_until("a message in Alice's Junk folder", || {
        Some(folder(&server, "alice", ".Junk")).filter(|m| !m.is_empty())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(junk.len(), 1);
    let fields = fields(&junk[0]);
    assert_eq!(value(&fields, "X-Spam-Flag"), "YES");
    let verdict = Verdict::of(&fields);
    assert_eq!(verdict.action, "junk");
    assert!((6.0..15.0).contains(&verdict.score), "{verdict:?}");
    assert_eq!(verdict.symbol("JUNK_BL").score, 8.0);
    let status = value(&fields, "X-Spam-Status");
    assert!(
        status.starts_with(&format!(
            "Yes, score={:.1} required=6.0 tests=",
            verdict.score
        )),
        "{status}"
    );
    assert!(status.contains("JUNK_BL"), "{status}");
    let line = log_line(&server, &["accepted", "from=a@far.test"]);
    assert!(line.contains("checks=junk score="), "{line}");
    assert!(line.contains("quarantine=true"), "{line}");
    assert!(
        folder(&server, "alice", "").is_empty(),
        "nothing in the INBOX"
    );
}

#[test]
fn verdict_headers_from_outside_are_replaced_by_ours() {
    let dns = world().start();
    let server = server(&dns, "");
    // Fields claiming a verdict, among others and last in the section, one folded.
    let forged = "X-Spam-Flag: NO\r\n\
                  X-Spam-Status: No, score=-50.0 required=6.0\r\n\
                  \ttests=FORGED_BY_SENDER\r\n\
                  Reply-To: a@far.test\r\n\
                  X-Posthorn-Checks: accept; score=-100.00;\r\n\
                  \tSENDER_ALLOWED=-100.00\r\n";
    let content = message("a@far.test", "forged", forged)
        .replace("\r\n\r\n", "\r\nx-spam-level: **********\r\n\r\n");
    let reply = send_to_alice(&server, "a@far.test", &content);
    assert_reply(&reply, "250 2.0.0", &[]);
    let delivered = server.wait_for_messages("alice", 1);
    let fields = fields(&delivered[0]);
    assert_eq!(values(&fields, "X-Spam-Flag"), ["NO"]);
    assert_eq!(values(&fields, "X-Spam-Status").len(), 1);
    assert_eq!(values(&fields, "X-Posthorn-Checks").len(), 1);
    let verdicts = fields
        .iter()
        .filter(|(name, _)| {
            name.to_ascii_lowercase().starts_with("x-spam-") || name == "X-Posthorn-Checks"
        })
        .count();
    // Flag, status, virus (content inspected: virustest 1) and our symbols.
    assert_eq!(values(&fields, "X-Spam-Virus"), ["No, virustest=1"]);
    assert_eq!(verdicts, 4, "only ours: {fields:#?}");
    let text = String::from_utf8_lossy(&delivered[0]);
    for gone in [
        "FORGED_BY_SENDER",
        "SENDER_ALLOWED",
        "**********",
        "-100.00",
    ] {
        assert!(!text.contains(gone), "{gone:?} kept:\n{text}");
    }
    // The fields around them and the body are untouched.
    assert_eq!(values(&fields, "Reply-To"), ["a@far.test"]);
    assert!(text.ends_with("\r\n\r\nHello Alice.\r\n"), "{text}");
    assert!(!Verdict::of(&fields).has("SENDER_ALLOWED"));
    let line = log_line(&server, &["verdict headers from outside removed"]);
    assert!(line.contains("removed=4"), "{line}");
}

#[test]
fn mail_from_our_users_is_not_checked() {
    const PASSWORD: &str = "carol-password";
    let hash = posthorn::accounts::passwords::hash(PASSWORD).unwrap();
    let dns = world().start();
    let extra = format!(
        "password = \"{hash}\"\n\n\
         [[listener]]\nrole = \"submission\"\naddress = \"127.0.0.1:0\"\n\
         allow_plaintext_auth = true\n\n{}",
        ip_list("bl.test", "BL_TEST", 20.0)
    );
    let server = server(&dns, &extra);
    let headers = "X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=99.0 required=5.0\r\n\
                   \ttests=USER_SET\r\n";
    let content = message("carol@rcpt.test", "from-carol", headers);
    // From outside, the DNS list refuses this client.
    let reply = send_to_alice(&server, "carol@rcpt.test", &content);
    assert_reply(&reply, "550 5.7.1", &["BL_TEST"]);
    // Carol, logged in on the submission listener, is not checked.
    let mut client = Client::greeted(server.listener("submission"));
    client.expect("EHLO laptop.rcpt.test", "250");
    let login = base64::engine::general_purpose::STANDARD.encode(format!("\0carol\0{PASSWORD}"));
    client.expect(&format!("AUTH PLAIN {login}"), "235");
    let reply = transaction(
        &mut client,
        "carol@rcpt.test",
        &["alice@rcpt.test"],
        &content,
    );
    assert_reply(&reply, "250 2.0.0", &[]);
    let delivered = server.wait_for_messages("alice", 1);
    let fields = fields(&delivered[0]);
    assert_eq!(values(&fields, "X-Spam-Flag"), ["YES"]);
    assert_eq!(
        values(&fields, "X-Spam-Status"),
        ["Yes, score=99.0 required=5.0 tests=USER_SET"]
    );
    assert!(
        values(&fields, "X-Posthorn-Checks").is_empty(),
        "{fields:#?}"
    );
    let line = log_line(&server, &["accepted", "user=\"carol\""]);
    assert!(line.contains("checks=-"), "{line}");
    // Only the mail from outside had its verdict fields removed.
    let removals = server
        .settled_log()
        .matches("verdict headers from outside removed")
        .count();
    assert_eq!(removals, 1);
}

/// MAIL FROM `from` on `client`: its reply.
fn mail(client: &mut Client, from: &str) -> String {
    client.command(&format!("MAIL FROM:<{from}>"))
}

#[test]
fn blocked_senders_and_networks_are_refused_at_mail() {
    let dns = world().start();
    let block = "[checks.block]\nsenders = [\"spam@bad.test\", \"@worse.test\"]\n";
    let by_sender = server(&dns, block);
    let mut client = by_sender.client();
    client.expect("EHLO mail.far.test", "250");
    for blocked in [
        "spam@bad.test",
        "SPAM@Bad.Test",
        "x@worse.test",
        "x@mail.worse.test",
    ] {
        assert_reply(
            &mail(&mut client, blocked),
            "550 5.7.1 Sender blocked by local policy",
            &[],
        );
        log_line(&by_sender, &["sender blocked", &format!("from={blocked}")]);
    }
    // Only that address of bad.test, and not a domain that merely ends alike.
    for open in ["other@bad.test", "x@notworse.test"] {
        assert_reply(&mail(&mut client, open), "250 2.1.0", &[]);
        client.expect("RSET", "250");
    }
    assert_nothing_delivered(&by_sender);

    let by_network = server(&dns, "[checks.block]\nnetworks = [\"127.0.0.0/8\"]\n");
    let mut client = by_network.client();
    client.expect("EHLO mail.far.test", "250");
    for from in ["a@far.test", ""] {
        assert_reply(&mail(&mut client, from), "550 5.7.1", &["blocked"]);
    }
    log_line(&by_network, &["sender blocked", "from=a@far.test"]);
    assert_nothing_delivered(&by_network);
}

#[test]
fn an_account_blocks_a_sender_for_itself_only() {
    let dns = world().start();
    let server = server(&dns, "block_senders = [\"@pest.test\"]\n");
    let mut client = server.client();
    client.expect("EHLO mail.far.test", "250");
    client.expect("MAIL FROM:<x@pest.test>", "250 2.1.0");
    client.expect("RCPT TO:<alice@rcpt.test>", "250 2.1.5");
    let reply = client.command("RCPT TO:<carol@rcpt.test>");
    assert_reply(&reply, "550 5.7.1 Sender blocked by local policy", &[]);
    client.expect("RCPT TO:<bob@rcpt.test>", "250 2.1.5");
    client.expect("DATA", "354");
    client.send(message("x@pest.test", "pest", ""));
    assert_reply(&client.command("."), "250 2.0.0", &[]);
    let line = log_line(&server, &["sender blocked by recipient"]);
    assert!(line.contains("to=carol@rcpt.test"), "{line}");
    server.wait_for_messages("alice", 1);
    server.wait_for_messages("bob", 1);
    server.wait_for_empty_queue();
    assert!(server.messages("carol").is_empty());
    // Carol's mail from others still arrives.
    let reply = send(
        &server,
        "mail.far.test",
        "a@far.test",
        &["carol@rcpt.test"],
        &message("a@far.test", "friend", ""),
    );
    assert_reply(&reply, "250 2.0.0", &[]);
    server.wait_for_messages("carol", 1);
}

#[test]
fn allowed_senders_skip_scoring() {
    let dns = world().start();
    // The list refuses everyone from 127.0.0.1 but the allowed; Carol allows pal.test.
    let extra = format!(
        "allow_senders = [\"@pal.test\"]\n\n\
         [checks.allow]\nsenders = [\"friend@far.test\"]\n\n{}",
        ip_list("bl.test", "BL_TEST", 20.0)
    );
    let server = server(&dns, &extra);
    let stranger = send_to_alice(
        &server,
        "x@far.test",
        &message("x@far.test", "stranger", ""),
    );
    assert_reply(&stranger, "550 5.7.1", &["BL_TEST"]);
    let friend = message("friend@far.test", "friend", "");
    assert_reply(
        &send_to_alice(&server, "friend@far.test", &friend),
        "250 2.0.0",
        &[],
    );
    let delivered = server.wait_for_messages("alice", 1);
    let friend_fields = fields(&delivered[0]);
    assert_eq!(value(&friend_fields, "X-Spam-Flag"), "NO");
    let verdict = Verdict::of(&friend_fields);
    assert_eq!(verdict.action, "accept");
    // Scoring is skipped whole: the allowance is the only symbol.
    assert_eq!(verdict.symbols.len(), 1, "{verdict:?}");
    assert_eq!(verdict.symbol("SENDER_ALLOWED").score, -100.0);
    let line = log_line(&server, &["accepted", "from=friend@far.test"]);
    assert!(line.contains("checks=accept score=-100.0"), "{line}");

    // An account's allowance counts when every recipient allows the sender.
    let pal = message("x@pal.test", "pal", "");
    let to_carol = send(
        &server,
        "mail.far.test",
        "x@pal.test",
        &["carol@rcpt.test"],
        &pal,
    );
    assert_reply(&to_carol, "250 2.0.0", &[]);
    let delivered = server.wait_for_messages("carol", 1);
    assert!(Verdict::of(&fields(&delivered[0])).has("SENDER_ALLOWED"));
    let to_both = send(
        &server,
        "mail.far.test",
        "x@pal.test",
        &["carol@rcpt.test", "alice@rcpt.test"],
        &pal,
    );
    assert_reply(&to_both, "550 5.7.1", &["BL_TEST"]);
    log_line(&server, &["refused by checks", "from=x@pal.test"]);
}

#[test]
fn a_hard_error_refuses_whatever_its_score() {
    let dns = world().start();
    let extra = format!(
        "[checks]\nhard_errors = [\"HARD_BL\"]\n\n{}",
        ip_list("hard-bl.test", "HARD_BL", 0.1)
    );
    let server = server(&dns, &extra);
    let reply = send_to_alice(&server, "a@far.test", &message("a@far.test", "hard", ""));
    // Not "spam score": the symbol itself is the reason.
    assert_reply(
        &reply,
        "550 5.7.1 Message refused: HARD_BL (127.0.0.1 127.0.0.2)",
        &[],
    );
    let line = log_line(&server, &["refused by checks", "from=a@far.test"]);
    assert!(
        line.contains("checks=reject score=") && line.contains("HARD_BL"),
        "{line}"
    );
    assert_nothing_delivered(&server);
}

/// Sends from `from` to `to` until the reply is no longer a deferral, a new transaction
/// every 200 ms, for at most `limit`; the last reply.
fn retry_until_accepted(server: &TestServer, from: &str, to: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let content = message(from, "retry", "");
        let reply = send(server, "mail.far.test", from, &[to], &content);
        if !reply.starts_with("451") || Instant::now() > deadline {
            return reply;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn greylisting_defers_new_senders_until_they_retry_and_survives_a_restart() {
    let dns = world().start();
    // Greylisting counts whole seconds, so a delay of 1 s could let a retry 10 ms later
    // through when a second begins between the two. With 3 s, an immediate retry (a
    // transaction of some 50 ms) is always deferred: it would have to come 2 s later.
    let mut server = server(&dns, "[checks.greylist]\nenabled = true\ndelay = \"3s\"\n");
    let content = message("a@far.test", "grey", "");
    for attempt in ["first attempt", "immediate retry"] {
        let reply = send_to_alice(&server, "a@far.test", &content);
        assert!(
            reply.starts_with("451 4.7.1 Greylisted, please try again in "),
            "{attempt}: {reply}"
        );
    }
    let line = log_line(&server, &["refused by checks", "from=a@far.test"]);
    assert!(line.contains("checks=defer score="), "{line}");
    assert!(line.contains("reply=451 4.7.1 Greylisted"), "{line}");
    assert!(server.messages("alice").is_empty());

    let reply = retry_until_accepted(
        &server,
        "a@far.test",
        "alice@rcpt.test",
        Duration::from_secs(10),
    );
    assert_reply(&reply, "250 2.0.0", &[]);
    let delivered = server.wait_for_messages("alice", 1);
    assert_eq!(Verdict::of(&fields(&delivered[0])).action, "accept");

    // The client's network retried correctly: another sender passes at once.
    let other = message("b@far.test", "other", "");
    let reply = send(
        &server,
        "mail.far.test",
        "b@far.test",
        &["bob@rcpt.test"],
        &other,
    );
    assert_reply(&reply, "250 2.0.0", &[]);

    // The state is saved (every few seconds when it changed), and read after a restart:
    // a new sender and recipient from that network still pass at once.
    let saved = server.data().join("greylist.json");
    wait_until("the allowed network in greylist.json", || {
        let text = std::fs::read(&saved).ok()?;
        let state: serde_json::Value = serde_json::from_slice(&text).ok()?;
        state["networks"].get("127.0.0.0/24").map(|_| ())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert!(server.stop().success());
    server.restart();
    let third = message("c@far.test", "after-restart", "");
    let reply = send(
        &server,
        "mail.far.test",
        "c@far.test",
        &["carol@rcpt.test"],
        &third,
    );
    assert_reply(&reply, "250 2.0.0", &[]);
    server.wait_for_messages("carol", 1);
    assert!(!server.log().contains("greylist state unreadable"));
}

#[test]
fn a_sender_passing_dmarc_is_not_greylisted() {
    let dns = world().start();
    let server = server(&dns, "[checks.greylist]\nenabled = true\ndelay = \"1h\"\n");
    // SPF passes for far.test, but it publishes no DMARC: greylisted.
    let reply = send_to_alice(&server, "a@far.test", &message("a@far.test", "grey", ""));
    assert_reply(&reply, "451 4.7.1 Greylisted", &[]);
    // aligned.test passes DMARC through SPF aligned with its From.
    let aligned = message("news@aligned.test", "aligned", "");
    let reply = send_to_alice(&server, "news@aligned.test", &aligned);
    assert_reply(&reply, "250 2.0.0", &[]);
    let delivered = server.wait_for_messages("alice", 1);
    let verdict = Verdict::of(&fields(&delivered[0]));
    assert!(
        verdict.has("DMARC_PASS") && verdict.has("SPF_PASS"),
        "{verdict:?}"
    );
    let line = log_line(&server, &["accepted", "from=news@aligned.test"]);
    assert!(
        line.contains("dmarc=pass") && line.contains("checks=accept "),
        "{line}"
    );
}

/// A message with `attachment` as a base64 MIME part.
fn with_attachment(subject: &str, attachment: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(attachment);
    format!(
        "From: a@far.test\r\nTo: alice@rcpt.test\r\nSubject: {subject}\r\n\
         Date: {}\r\nMessage-ID: <{subject}@far.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nThe file.\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"notes.txt\"\r\n\
         Content-Disposition: attachment; filename=\"notes.txt\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b1--\r\n",
        common::date_now()
    )
}

#[test]
fn clamav_refuses_viruses_and_its_failure_defers_or_accepts() {
    let clamd = PrivateClamd::start();
    let dns = world().start();
    let clamav = |on_failure: &str| {
        format!(
            "[checks.clamav]\naddress = \"unix:{}\"\non_failure = \"{on_failure}\"\n",
            clamd.socket().display()
        )
    };
    let deferring = server(&dns, &clamav("defer"));
    let accepting = server(&dns, &clamav("accept"));

    let virus = with_attachment("virus", &eicar());
    let reply = send_to_alice(&deferring, "a@far.test", &virus);
    assert_reply(&reply, "554 5.7.1 Virus found: ", &[EICAR_SIGNATURE]);
    let line = log_line(&deferring, &["refused by checks", "from=a@far.test"]);
    assert!(
        line.contains("checks=reject") && line.contains("CLAMAV_VIRUS"),
        "{line}"
    );
    assert!(line.contains("reply=554 5.7.1"), "{line}");
    assert_nothing_delivered(&deferring);

    let clean = with_attachment("clean", b"just a harmless file\n");
    assert_reply(
        &send_to_alice(&deferring, "a@far.test", &clean),
        "250 2.0.0",
        &[],
    );
    let delivered = deferring.wait_for_messages("alice", 1);
    let verdict = Verdict::of(&fields(&delivered[0]));
    assert_eq!(verdict.action, "accept");
    assert!(
        !verdict.has("CLAMAV_VIRUS") && !verdict.has("CLAMAV_FAIL"),
        "{verdict:?}"
    );

    drop(clamd);
    let reply = send_to_alice(&deferring, "a@far.test", &clean);
    assert_reply(
        &reply,
        "451 4.7.1 Temporary failure of the virus check",
        &[],
    );
    let line = log_line(&deferring, &["refused by checks", "reply=451 4.7.1"]);
    assert!(line.contains("checks=defer"), "{line}");
    log_line(&deferring, &["virus scan failed"]);

    let reply = send_to_alice(&accepting, "a@far.test", &clean);
    assert_reply(&reply, "250 2.0.0", &[]);
    let delivered = accepting.wait_for_messages("alice", 1);
    let verdict = Verdict::of(&fields(&delivered[0]));
    assert_eq!(verdict.action, "accept");
    assert!(
        !verdict.symbol("CLAMAV_FAIL").detail.is_empty(),
        "{verdict:?}"
    );
    let line = log_line(&accepting, &["accepted", "from=a@far.test"]);
    assert!(line.contains("checks=accept "), "{line}");
}

/// `posthorn ARGS` with `config`; its output once it has exited.
fn posthorn(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("posthorn runs")
}

#[test]
fn posthorn_check_explains_the_verdict() {
    let dns = world().start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("posthorn.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.test\"\ndata_dir = \"{}\"\n\n\
             [delivery]\nnameserver = \"{}\"\n\n[[domain]]\nname = \"rcpt.test\"\n\n{}",
            dir.path().join("data").display(),
            dns.addr,
            ip_list("bl.test", "BL_TEST", 20.0)
        ),
    )
    .unwrap();
    let file = dir.path().join("message.eml");
    std::fs::write(&file, message("a@far.test", "explained", "")).unwrap();
    let output = posthorn(
        &config,
        &[
            "check",
            file.to_str().unwrap(),
            "--from",
            "a@far.test",
            "--ip",
            "127.0.0.1",
            "--helo",
            "mail.far.test",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("verdict: reject (550 5.7.1 Message refused: spam score "),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n   20.00  BL_TEST: a DNS list answered [127.0.0.1 127.0.0.2]\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "   -0.50  SPF_PASS: SPF allows the client to send for the MAIL FROM domain\n"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("not checked"), "{stdout}");

    let output = posthorn(&config, &["check", "--symbols"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("SPF_PASS: SPF allows the client"),
        "{stdout}"
    );
    assert!(
        stdout.contains("   20.00  BL_TEST: listed in bl.test\n"),
        "{stdout}"
    );
}

#[test]
fn a_hard_error_naming_no_symbol_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("posthorn.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhostname = \"mx.test\"\ndata_dir = \"{}\"\n\n\
             [checks]\njunk_score = 5.0\nhard_errors = [\"NO_SUCH_SYMBOL\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_posthorn"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        "line 7",
        "checks.hard_errors[0]",
        "\"NO_SUCH_SYMBOL\"",
        "no check gives this symbol",
    ] {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}
