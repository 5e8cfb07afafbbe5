//! The server session, reply by reply, with no socket: a scripted driver feeds bytes and
//! plays a fixed policy (recipients starting with "unknown" do not exist, "full" is over
//! quota, everything else is accepted; the spool answers "queued as TEST").

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use posthorn_proto::data::{BareNewline, ContentLimits};
use posthorn_proto::reply::{Reply, table};
use posthorn_proto::{Action, AuthPolicy, ForwardPath, RcptTo, Session, SessionConfig};

struct Driver {
    session: Session<String>,
    /// Messages the "spool" received.
    messages: Vec<Vec<u8>>,
    /// Content of the message being received.
    content: Vec<u8>,
    /// Every action seen, for tests that check what the driver was told.
    actions: Vec<Action>,
    closed: bool,
    tls_requested: bool,
}

impl Driver {
    fn new() -> Self {
        Self::with(config())
    }

    fn with(config: SessionConfig) -> Self {
        let mut session = Session::new(config);
        session.greet();
        Driver {
            session,
            messages: Vec::new(),
            content: Vec::new(),
            actions: Vec::new(),
            closed: false,
            tls_requested: false,
        }
    }

    /// Feeds `input`, runs the session until it wants more input, returns the replies.
    fn send(&mut self, input: &str) -> String {
        self.send_bytes(input.as_bytes())
    }

    fn send_bytes(&mut self, input: &[u8]) -> String {
        self.session.feed(input);
        self.run()
    }

    fn run(&mut self) -> String {
        loop {
            let action = self.session.next_action();
            self.actions.push(action.clone());
            match action {
                Action::NeedInput => break,
                Action::Close => {
                    self.closed = true;
                    break;
                }
                Action::StartTls => {
                    self.tls_requested = true;
                    break;
                }
                Action::Hello(_) | Action::Mail(_) | Action::DataStart => self.session.accept(),
                Action::Rcpt(rcpt) => self.rcpt(rcpt),
                Action::Data => self.session.take_content(&mut self.content),
                Action::DataEnd => {
                    self.messages.push(std::mem::take(&mut self.content));
                    self.session.finish(table::queued("TEST"));
                }
                Action::DataAbort => self.content.clear(),
                // The one account: alice, password "secret".
                Action::Auth(credentials) => {
                    if credentials.username == "alice" && credentials.password == "secret" {
                        self.session.authenticated_as("alice".into());
                    } else {
                        self.session.reject(table::auth_failed());
                    }
                }
            }
        }
        let out = String::from_utf8_lossy(self.session.output()).into_owned();
        self.session.clear_output();
        out
    }

    fn rcpt(&mut self, rcpt: RcptTo) {
        let name = match &rcpt.to {
            ForwardPath::Postmaster => "postmaster".to_string(),
            ForwardPath::Mailbox(m) => m.to_string(),
        };
        if name.starts_with("unknown") {
            self.session.reject(table::unknown_user());
        } else if name.starts_with("full") {
            self.session.reject(table::mailbox_full());
        } else {
            self.session.accept_rcpt(name);
        }
    }

    fn ready(&mut self) {
        self.run();
        assert!(
            self.send("EHLO client.example\r\n")
                .starts_with("250-mx.test")
        );
    }
}

fn config() -> SessionConfig {
    let mut config = SessionConfig::new("mx.test");
    config.max_errors = 5;
    config.max_recipients = 3;
    config.content = ContentLimits {
        max_line: 1000,
        max_size: 100,
        bare_newline: BareNewline::Reject,
    };
    config
}

fn codes(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..l.len().min(9)])
        .collect()
}

#[test]
fn greeting_is_220_with_hostname() {
    let mut d = Driver::new();
    assert_eq!(d.run(), "220 mx.test ESMTP Posthorn\r\n");
}

#[test]
fn ehlo_advertises_extensions() {
    let mut d = Driver::new();
    d.run();
    let reply = d.send("EHLO client.example\r\n");
    assert_eq!(
        reply,
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
         250-CHUNKING\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n"
    );
    assert!(d.actions.contains(&Action::Hello("client.example".into())));
}

#[test]
fn helo_gets_plain_250_and_no_extensions() {
    let mut d = Driver::new();
    d.run();
    assert_eq!(d.send("HELO client.example\r\n"), "250 mx.test\r\n");
    assert_eq!(
        codes(&d.send("MAIL FROM:<a@b.example> SIZE=10\r\n")),
        ["555 5.5.4"]
    );
    assert_eq!(codes(&d.send("MAIL FROM:<a@b.example>\r\n")), ["250 2.1.0"]);
    assert_eq!(codes(&d.send("BDAT 3 LAST\r\nabc")), ["503 5.5.1"]);
}

#[test]
fn happy_path_with_data() {
    let mut d = Driver::new();
    d.ready();
    assert_eq!(codes(&d.send("MAIL FROM:<a@b.example>\r\n")), ["250 2.1.0"]);
    assert_eq!(codes(&d.send("RCPT TO:<c@d.example>\r\n")), ["250 2.1.5"]);
    assert_eq!(
        d.send("DATA\r\n"),
        "354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    assert_eq!(d.send("Subject: hi\r\n\r\n..dot\r\n"), "");
    assert_eq!(d.send(".\r\n"), "250 2.0.0 OK queued as TEST\r\n");
    assert_eq!(d.messages, [b"Subject: hi\r\n\r\n.dot\r\n".to_vec()]);
    assert!(!d.session.said_quit());
    assert_eq!(d.send("QUIT\r\n"), "221 2.0.0 Bye\r\n");
    assert!(d.closed && d.session.said_quit());
}

#[test]
fn pipelined_transaction_answers_in_order() {
    let mut d = Driver::new();
    d.ready();
    let out = d.send(
        "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<unknown@d.example>\r\n\
         RCPT TO:<e@d.example>\r\nDATA\r\n",
    );
    assert_eq!(
        codes(&out),
        [
            "250 2.1.0",
            "250 2.1.5",
            "550 5.1.1",
            "250 2.1.5",
            "354 End d"
        ]
    );
    assert!(out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"));
    assert_eq!(
        codes(&d.send("x\r\n.\r\nQUIT\r\n")),
        ["250 2.0.0", "221 2.0.0"]
    );
}

#[test]
fn sequence_errors_are_503() {
    let mut cfg = config();
    cfg.max_errors = 20;
    let mut d = Driver::with(cfg);
    d.run();
    assert_eq!(codes(&d.send("MAIL FROM:<a@b.example>\r\n")), ["503 5.5.1"]);
    d.send("EHLO x\r\n");
    assert_eq!(codes(&d.send("RCPT TO:<a@b.example>\r\n")), ["503 5.5.1"]);
    assert_eq!(codes(&d.send("DATA\r\n")), ["503 5.5.1"]);
    d.send("MAIL FROM:<a@b.example>\r\n");
    assert_eq!(codes(&d.send("MAIL FROM:<a@b.example>\r\n")), ["503 5.5.1"]);
    assert_eq!(codes(&d.send("DATA\r\n")), ["554 5.5.1"]);
}

#[test]
fn rset_clears_the_transaction() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
    assert_eq!(codes(&d.send("RSET\r\n")), ["250 2.0.0"]);
    assert_eq!(codes(&d.send("DATA\r\n")), ["503 5.5.1"]);
    assert_eq!(codes(&d.send("RSET x\r\n")), ["501 5.5.4"]);
}

#[test]
fn small_commands() {
    let mut d = Driver::new();
    d.ready();
    assert_eq!(codes(&d.send("NOOP\r\n")), ["250 2.0.0"]);
    assert_eq!(codes(&d.send("VRFY postmaster\r\n")), ["252 2.0.0"]);
    assert_eq!(codes(&d.send("EXPN staff\r\n")), ["502 5.5.1"]);
    assert!(d.send("HELP\r\n").starts_with("214-2.0.0"));
    assert_eq!(codes(&d.send("TURN\r\n")), ["502 5.5.1"]);
    assert_eq!(codes(&d.send("XYZZY\r\n")), ["500 5.5.2"]);
}

#[test]
fn too_many_errors_closes_with_421() {
    let mut d = Driver::new();
    d.ready();
    let out = d.send("A\r\nB\r\nC\r\nD\r\nE\r\nF\r\n");
    assert_eq!(
        codes(&out),
        [
            "500 5.5.2",
            "500 5.5.2",
            "500 5.5.2",
            "500 5.5.2",
            "500 5.5.2",
            "421 4.7.0"
        ]
    );
    assert!(d.closed);
}

#[test]
fn recipient_limit_is_452_and_not_an_error() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\n");
    for i in 0..3 {
        assert_eq!(
            codes(&d.send(&format!("RCPT TO:<r{i}@d.example>\r\n"))),
            ["250 2.1.5"]
        );
    }
    for _ in 0..6 {
        assert_eq!(codes(&d.send("RCPT TO:<r@d.example>\r\n")), ["452 4.5.3"]);
    }
    assert!(!d.closed);
}

#[test]
fn declared_size_over_limit_is_552() {
    let mut d = Driver::new();
    d.ready();
    assert_eq!(
        codes(&d.send("MAIL FROM:<a@b.example> SIZE=101\r\n")),
        ["552 5.3.4"]
    );
    assert_eq!(
        codes(&d.send("MAIL FROM:<a@b.example> SIZE=100\r\n")),
        ["250 2.1.0"]
    );
}

#[test]
fn content_over_limit_is_552_after_the_end() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
    let body = "x".repeat(60) + "\r\n" + &"y".repeat(60) + "\r\n.\r\n";
    assert_eq!(codes(&d.send(&body)), ["552 5.3.4"]);
    assert!(d.messages.is_empty());
    assert!(d.actions.contains(&Action::DataAbort));
    assert_eq!(codes(&d.send("RCPT TO:<c@d.example>\r\n")), ["503 5.5.1"]);
}

#[test]
fn smuggling_bare_lf_is_rejected_and_never_executed() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
    let out = d.send("x\n.\nMAIL FROM:<evil@x.example>\nRCPT TO:<victim@y.example>\n");
    assert_eq!(out, "");
    let out = d.send("y\r\n.\r\n");
    assert_eq!(codes(&out), ["550 5.6.0"]);
    assert!(d.messages.is_empty());
    assert!(
        !d.actions
            .iter()
            .any(|a| matches!(a, Action::Mail(m) if m.from.to_string().starts_with("evil")))
    );
}

#[test]
fn normalize_mode_accepts_bare_lf_and_stores_crlf() {
    let mut cfg = config();
    cfg.content.bare_newline = BareNewline::Normalize;
    let mut d = Driver::with(cfg);
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
    assert_eq!(codes(&d.send("a\nb\r\n.\r\n")), ["250 2.0.0"]);
    assert_eq!(d.messages, [b"a\r\nb\r\n".to_vec()]);
}

#[test]
fn bare_lf_command_is_refused() {
    let mut d = Driver::new();
    d.run();
    assert_eq!(codes(&d.send("EHLO x\n")), ["500 5.5.2"]);
}

#[test]
fn overlong_command_line_is_500_and_session_goes_on() {
    let mut d = Driver::new();
    d.ready();
    let long = format!("NOOP {}", "a".repeat(5000));
    assert_eq!(d.send(&long[..3000]), "");
    assert_eq!(
        codes(&d.send(&format!("{}\r\nNOOP\r\n", &long[3000..]))),
        ["500 5.5.2", "250 2.0.0"]
    );
}

#[test]
fn bdat_single_and_multiple_chunks() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
    assert_eq!(codes(&d.send("BDAT 5\r\nab\r\nc")), ["250 2.0.0"]);
    assert_eq!(codes(&d.send("BDAT 3 LAST\r\nd\r\n")), ["250 2.0.0"]);
    assert_eq!(d.messages, [b"ab\r\ncd\r\n".to_vec()]);
}

#[test]
fn bdat_pipelined_in_one_write_with_split_chunk() {
    let mut d = Driver::new();
    d.ready();
    let out = d.send(
        "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 4\r\n.\r\n.BDAT 0 LAST\r\n",
    );
    assert_eq!(
        codes(&out),
        ["250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0"]
    );
    assert!(out.contains("4 octets received"));
    assert_eq!(d.messages, [b".\r\n.".to_vec()]);
    let out = d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 10 LAST\r\n01234");
    assert_eq!(codes(&out), ["250 2.1.0", "250 2.1.5"]);
    assert_eq!(codes(&d.send("56789")), ["250 2.0.0"]);
    assert_eq!(d.messages[1], b"0123456789");
}

#[test]
fn bdat_without_transaction_skips_the_chunk_then_503() {
    let mut d = Driver::new();
    d.ready();
    assert_eq!(codes(&d.send("BDAT 6\r\nNOOP\r\n")), ["503 5.5.1"]);
    assert_eq!(codes(&d.send("NOOP\r\n")), ["250 2.0.0"]);
}

#[test]
fn bdat_too_big_is_refused_before_reading() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
    let chunk = "z".repeat(101);
    assert_eq!(
        codes(&d.send(&format!("BDAT 101 LAST\r\n{chunk}"))),
        ["552 5.3.4"]
    );
    assert!(d.messages.is_empty());
}

#[test]
fn data_after_bdat_is_503_and_rset_aborts_content() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 2\r\nab");
    assert_eq!(codes(&d.send("DATA\r\n")), ["503 5.5.1"]);
    let before = d
        .actions
        .iter()
        .filter(|a| **a == Action::DataAbort)
        .count();
    assert_eq!(codes(&d.send("RSET\r\n")), ["250 2.0.0"]);
    let after = d
        .actions
        .iter()
        .filter(|a| **a == Action::DataAbort)
        .count();
    assert_eq!(after, before + 1);
}

#[test]
fn bdat_with_bare_lf_is_refused() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
    assert_eq!(codes(&d.send("BDAT 4 LAST\r\na\nb\r")), ["550 5.6.0"]);
    assert!(d.messages.is_empty());
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut d = Driver::new();
    d.ready();
    assert_eq!(
        codes(&d.send("MAIL FROM:<jöran@b.example>\r\n")),
        ["553 5.6.7"]
    );
    assert_eq!(codes(&d.send("MAIL FROM:<a@b.example>\r\n")), ["250 2.1.0"]);
    assert_eq!(
        codes(&d.send("RCPT TO:<用户@例子.广告>\r\n")),
        ["553 5.6.7"]
    );
    d.send("RSET\r\n");
    assert_eq!(
        codes(&d.send("MAIL FROM:<jöran@b.example> SMTPUTF8\r\n")),
        ["250 2.1.0"]
    );
    assert_eq!(
        codes(&d.send("RCPT TO:<用户@例子.广告>\r\n")),
        ["250 2.1.5"]
    );
}

#[test]
fn dsn_parameters_reach_the_driver() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example> RET=FULL ENVID=abc\r\n");
    d.send("RCPT TO:<c@d.example> NOTIFY=FAILURE ORCPT=rfc822;c+40d.example\r\n");
    let rcpt = d
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Rcpt(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    assert!(rcpt.notify.unwrap().failure);
    assert_eq!(rcpt.orcpt.unwrap().address, "c@d.example");
    let transaction = d.session.transaction().unwrap();
    assert_eq!(transaction.mail.envid.as_deref(), Some("abc"));
    assert_eq!(transaction.recipients[0].resolved, "c@d.example");
}

#[test]
fn bare_postmaster_is_a_recipient() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<>\r\n");
    assert_eq!(codes(&d.send("RCPT TO:<Postmaster>\r\n")), ["250 2.1.5"]);
}

#[test]
fn starttls_not_offered_is_502() {
    let mut d = Driver::new();
    d.ready();
    assert_eq!(codes(&d.send("STARTTLS\r\n")), ["502 5.5.1"]);
}

#[test]
fn starttls_discards_pipelined_input_and_resets() {
    let mut cfg = config();
    cfg.starttls = true;
    let mut d = Driver::with(cfg);
    d.run();
    assert!(d.send("EHLO x\r\n").contains("250-STARTTLS\r\n"));
    let out = d.send("STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n");
    assert_eq!(out, "220 2.0.0 Ready to start TLS\r\n");
    assert!(d.tls_requested);
    d.session.tls_established();
    assert_eq!(d.run(), "");
    assert_eq!(codes(&d.send("MAIL FROM:<a@b.example>\r\n")), ["503 5.5.1"]);
    assert!(!d.send("EHLO x\r\n").contains("STARTTLS"));
    assert!(!d.actions.iter().any(|a| matches!(a, Action::Mail(_))));
    assert_eq!(codes(&d.send("STARTTLS\r\n")), ["502 5.5.1"]);
}

#[test]
fn http_request_is_dropped() {
    let mut d = Driver::new();
    d.run();
    assert_eq!(
        codes(&d.send("GET / HTTP/1.1\r\nHost: x\r\n")),
        ["554 5.7.0"]
    );
    assert!(d.closed);
}

#[test]
fn shutdown_when_idle_closes_at_once() {
    let mut d = Driver::new();
    d.ready();
    d.session.shutdown();
    assert_eq!(codes(&d.run()), ["421 4.3.2"]);
    assert!(d.closed);
}

#[test]
fn shutdown_mid_transaction_lets_it_finish() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n");
    d.session.shutdown();
    assert_eq!(codes(&d.send("x\r\n.\r\n")), ["250 2.0.0", "421 4.3.2"]);
    assert_eq!(d.messages.len(), 1);
    assert!(d.closed);
}

#[test]
fn timeout_is_421() {
    let mut d = Driver::new();
    d.ready();
    d.session.timeout();
    assert_eq!(codes(&d.run()), ["421 4.4.2"]);
    assert!(d.closed);
}

#[test]
fn rejected_recipients_count_as_errors() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\n");
    let out = d.send(&"RCPT TO:<unknown@d.example>\r\n".repeat(5));
    assert_eq!(codes(&out).last(), Some(&"421 4.7.0"));
}

#[test]
fn driver_rejection_with_421_closes() {
    let mut d = Driver::new();
    d.run();
    d.session.feed(b"EHLO x\r\n");
    assert_eq!(d.session.next_action(), Action::Hello("x".into()));
    d.session.reject(Reply::new(421, 7, 0, "Go away"));
    assert_eq!(d.session.next_action(), Action::Close);
}

#[test]
fn quota_rejection_is_passed_through() {
    let mut d = Driver::new();
    d.ready();
    d.send("MAIL FROM:<a@b.example>\r\n");
    assert_eq!(
        codes(&d.send("RCPT TO:<full@d.example>\r\n")),
        ["552 5.2.2"]
    );
}

#[test]
fn line_at_the_limit_split_before_its_lf_is_accepted() {
    let mut cfg = config();
    cfg.max_command_line = 512;
    let mut d = Driver::with(cfg);
    d.ready();
    let line = format!("NOOP {}", "x".repeat(507));
    assert_eq!(d.send(&format!("{line}\r")), "");
    assert_eq!(codes(&d.send("\n")), ["250 2.0.0"]);
    let too_long = format!("NOOP {}", "x".repeat(508));
    assert_eq!(d.send(&format!("{too_long}\r")), "");
    assert_eq!(codes(&d.send("\n")), ["500 5.5.2"]);
}

/// A submission session: AUTH offered under TLS and required for MAIL.
fn submission(without_tls: bool) -> Driver {
    let mut cfg = config();
    cfg.max_errors = 20;
    cfg.starttls = true;
    cfg.auth = AuthPolicy {
        enabled: true,
        without_tls,
        required: true,
    };
    let mut d = Driver::with(cfg);
    d.run();
    d
}

/// `\0alice\0secret` and friends in base64.
const ALICE_PLAIN: &str = "AGFsaWNlAHNlY3JldA==";
const ALICE_WRONG: &str = "AGFsaWNlAHdyb25n";

#[test]
fn auth_is_offered_only_under_tls() {
    let mut d = submission(false);
    let ehlo = d.send("EHLO x\r\n");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    let refused = d.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n"));
    assert!(
        refused.starts_with("538 5.7.11 Encryption required"),
        "{refused}"
    );
    assert_eq!(
        codes(&d.send("MAIL FROM:<alice@mx.test>\r\n")),
        ["530 5.7.0"]
    );
    d.send("STARTTLS\r\n");
    d.session.tls_established();
    let ehlo = d.send("EHLO x\r\n");
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN\r\n"), "{ehlo}");
    assert_eq!(
        codes(&d.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n"))),
        ["235 2.7.0"]
    );
    assert_eq!(d.session.authenticated(), Some("alice"));
    assert_eq!(
        codes(&d.send("MAIL FROM:<alice@mx.test> AUTH=<>\r\n")),
        ["250 2.1.0"]
    );
}

#[test]
fn auth_plain_with_a_challenge_and_login() {
    let mut d = submission(true);
    d.send("EHLO x\r\n");
    assert_eq!(d.send("AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(codes(&d.send(&format!("{ALICE_PLAIN}\r\n"))), ["235 2.7.0"]);
    assert_eq!(codes(&d.send("AUTH PLAIN\r\n")), ["503 5.5.1"], "only once");

    let mut d = submission(true);
    d.send("EHLO x\r\n");
    assert_eq!(d.send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(d.send("YWxpY2U=\r\n"), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(codes(&d.send("c2VjcmV0\r\n")), ["235 2.7.0"]);

    let mut d = submission(true);
    d.send("EHLO x\r\n");
    assert_eq!(d.send("AUTH LOGIN YWxpY2U=\r\n"), "334 UGFzc3dvcmQ6\r\n");
    assert_eq!(codes(&d.send("d3Jvbmc=\r\n")), ["535 5.7.8"]);
    assert_eq!(d.session.authenticated(), None);
}

#[test]
fn auth_errors_have_their_codes() {
    let mut d = submission(true);
    assert_eq!(
        codes(&d.send("AUTH PLAIN\r\n")),
        ["503 5.5.1"],
        "before EHLO"
    );
    d.send("EHLO x\r\n");
    assert_eq!(codes(&d.send("AUTH CRAM-MD5\r\n")), ["504 5.5.4"]);
    d.send("AUTH PLAIN\r\n");
    assert_eq!(codes(&d.send("*\r\n")), ["501 5.7.0"]);
    d.send("AUTH PLAIN\r\n");
    assert_eq!(codes(&d.send("not-base64!\r\n")), ["501 5.5.2"]);
    assert_eq!(
        codes(&d.send(&format!("AUTH PLAIN {ALICE_WRONG}\r\n"))),
        ["535 5.7.8"]
    );
    assert_eq!(codes(&d.send("AUTH PLAIN a b c\r\n")), ["501 5.5.4"]);
    assert!(!d.actions.iter().any(|a| matches!(a, Action::Mail(_))));
}

#[test]
fn auth_is_not_implemented_where_disabled() {
    let mut d = Driver::new();
    d.ready();
    assert_eq!(
        codes(&d.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n"))),
        ["502 5.5.1"]
    );
}

#[test]
fn starttls_forgets_an_earlier_authentication() {
    let mut cfg = config();
    cfg.starttls = true;
    cfg.auth = AuthPolicy {
        enabled: true,
        without_tls: true,
        required: true,
    };
    let mut d = Driver::with(cfg);
    d.run();
    d.send("EHLO x\r\n");
    d.send(&format!("AUTH PLAIN {ALICE_PLAIN}\r\n"));
    assert_eq!(d.session.authenticated(), Some("alice"));
    d.send("STARTTLS\r\n");
    d.session.tls_established();
    assert_eq!(d.session.authenticated(), None);
    d.send("EHLO x\r\n");
    assert_eq!(
        codes(&d.send("MAIL FROM:<alice@mx.test>\r\n")),
        ["530 5.7.0"]
    );
}
