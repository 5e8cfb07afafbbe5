//! Queue files in format version 1, as written by the release of 2026-12 (before the
//! format was versioned), kept in `tests/data/v1/` (its README says how they were made):
//! every release must load them, to exactly the envelopes below.
//!
//! Each case is a message as the server commits it (recipients pending) and, for some,
//! the state its recipients reached later, which lives in `<id>.state`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use posthorn_proto::{BodyType, Mailbox, Notify, Orcpt, Ret, ReversePath, Status};
use posthorn_spool::{
    ClientInfo, DeliveryState, Diagnostic, DsnAction, Envelope, FsQueueStore, QueueId, QueueStore,
    Recipient, RecipientStatus, Route,
};

/// One golden message.
struct Case {
    /// The envelope as committed.
    committed: Envelope,
    /// The content as received.
    content: &'static [u8],
    /// The envelope once its state changed, stored in `<id>.state`.
    later: Option<Envelope>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1")
}

fn id(text: &str) -> QueueId {
    QueueId::try_from(text.to_string()).unwrap()
}

fn mailbox(local: &str, domain: &str) -> Mailbox {
    Mailbox {
        local: local.into(),
        domain: domain.into(),
    }
}

fn recipient(address: Mailbox, route: Route, rcpt: &str) -> Recipient {
    Recipient {
        address,
        route,
        rcpt: rcpt.into(),
        notify: None,
        orcpt: None,
        state: DeliveryState::default(),
    }
}

fn local(account: &str) -> Route {
    Route::Local {
        account: account.into(),
    }
}

fn notify(success: bool, failure: bool, delay: bool) -> Option<Notify> {
    Some(Notify {
        success,
        failure,
        delay,
    })
}

fn orcpt(addr_type: &str, address: &str) -> Option<Orcpt> {
    Some(Orcpt {
        addr_type: addr_type.into(),
        address: address.into(),
    })
}

fn diagnostic(status: (u8, u16, u16), text: &str) -> Option<Diagnostic> {
    Some(Diagnostic {
        status: Status::new(status.0, status.1, status.2),
        text: text.into(),
        remote_mta: None,
        smtp_reply: None,
    })
}

fn reply(status: (u8, u16, u16), text: &str, mta: &str, reply: &str) -> Option<Diagnostic> {
    Some(Diagnostic {
        status: Status::new(status.0, status.1, status.2),
        text: text.into(),
        remote_mta: Some(mta.into()),
        smtp_reply: Some(reply.into()),
    })
}

/// Seven recipients, one for each delivery state and each DSN owed, with NOTIFY and ORCPT,
/// RET=HDRS and ENVID, 8BITMIME, from an IPv4 client; a state file records a delay notice.
fn every_state() -> Case {
    let mut recipients = vec![
        recipient(
            mailbox("bob", "example.org"),
            local("bob"),
            "bob@example.org",
        ),
        recipient(
            mailbox("carol", "example.net"),
            Route::Remote,
            "carol@example.net",
        ),
        recipient(
            mailbox("dave", "example.net"),
            Route::Remote,
            "dave@example.net",
        ),
        recipient(
            mailbox("erin", "example.com"),
            Route::Remote,
            "erin@example.com",
        ),
        recipient(
            mailbox("frank", "example.com"),
            Route::Remote,
            "frank@example.com",
        ),
        recipient(
            mailbox("gina", "example.org"),
            local("gina"),
            "team@example.org",
        ),
        recipient(
            mailbox("hugo", "slow.example"),
            Route::Remote,
            "hugo@slow.example",
        ),
    ];
    recipients[0].notify = notify(true, true, false);
    recipients[1].notify = notify(true, true, true);
    recipients[1].orcpt = orcpt("rfc822", "Carol@Example.NET");
    recipients[2].notify = notify(false, true, true);
    recipients[3].notify = Some(Notify::NEVER);
    recipients[4].orcpt = orcpt("rfc822", "frank+lists@example.com");
    let committed = Envelope {
        id: id("0dz8k2m4q6s8v0x1"),
        sender: ReversePath::Mailbox(mailbox("alice", "example.com")),
        recipients,
        body: BodyType::EightBitMime,
        smtputf8: false,
        ret: Some(Ret::Headers),
        envid: Some("QQ314159+x".into()),
        arrival: 1_767_225_600,
        client: ClientInfo {
            ip: Some("192.0.2.10".parse().unwrap()),
            helo: Some("client.example.com".into()),
        },
        prepend: "Received: from client.example.com ([192.0.2.10])\r\n\tby mx.example.org (Posthorn) with ESMTPS id 0dz8k2m4q6s8v0x1;\r\n\tThu, 1 Jan 2026 00:00:00 +0000\r\nAuthentication-Results: mx.example.org;\r\n\tspf=pass smtp.mailfrom=example.com\r\n".into(),
        hold: false,
        delay_notified: false,
        postmaster_notice: false,
        quarantine: false,
    };
    let mut later = committed.clone();
    let states = [
        DeliveryState {
            status: RecipientStatus::Delivered,
            attempts: 1,
            next_attempt: 0,
            last_attempt: Some(1_767_225_601),
            diagnostic: diagnostic((2, 0, 0), "delivered to maildir"),
            dsn_owed: Some(DsnAction::Delivered),
        },
        DeliveryState {
            status: RecipientStatus::Delivered,
            attempts: 1,
            next_attempt: 0,
            last_attempt: Some(1_767_225_602),
            diagnostic: reply(
                (2, 0, 0),
                "end of data accepted: 250 2.0.0 Ok: queued as 4Q (reply from mx.example.net[198.51.100.25]:25)",
                "mx.example.net",
                "250 2.0.0 Ok: queued as 4Q",
            ),
            dsn_owed: Some(DsnAction::Relayed),
        },
        DeliveryState {
            status: RecipientStatus::Pending,
            attempts: 3,
            next_attempt: 1_767_229_200,
            last_attempt: Some(1_767_227_400),
            diagnostic: diagnostic(
                (4, 4, 1),
                "cannot connect: connection refused (server 198.51.100.26:25)",
            ),
            dsn_owed: Some(DsnAction::Delayed),
        },
        DeliveryState {
            status: RecipientStatus::Failed,
            attempts: 1,
            next_attempt: 0,
            last_attempt: Some(1_767_225_603),
            diagnostic: reply(
                (5, 1, 1),
                "RCPT TO refused: 550 5.1.1 <erin@example.com>: user unknown (reply from mx.example.com[203.0.113.5]:25)",
                "mx.example.com",
                "550 5.1.1 <erin@example.com>: user unknown",
            ),
            dsn_owed: None,
        },
        DeliveryState {
            status: RecipientStatus::Failed,
            attempts: 1,
            next_attempt: 0,
            last_attempt: Some(1_767_225_603),
            diagnostic: reply(
                (5, 2, 2),
                "RCPT TO refused: 552 5.2.2 mailbox full (reply from mx.example.com[203.0.113.5]:25)",
                "mx.example.com",
                "552 5.2.2 mailbox full",
            ),
            dsn_owed: Some(DsnAction::Failed),
        },
        DeliveryState::default(),
        DeliveryState {
            status: RecipientStatus::Expired,
            attempts: 17,
            next_attempt: 0,
            last_attempt: Some(1_767_657_600),
            diagnostic: diagnostic(
                (4, 4, 7),
                "gave up after 5 days: cannot connect: timed out (server 192.0.2.99:25)",
            ),
            dsn_owed: Some(DsnAction::Failed),
        },
    ];
    for (recipient, state) in later.recipients.iter_mut().zip(states) {
        recipient.state = state;
    }
    later.delay_notified = true;
    Case {
        committed,
        content: "From: Alice <alice@example.com>\r\nTo: team@example.org\r\nSubject: Caf\u{e9} menu\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCr\u{e8}me br\u{fb}l\u{e9}e on Friday.\r\n".as_bytes(),
        later: Some(later),
    }
}

/// SMTPUTF8 addresses (and an ORCPT of type utf-8), RET=FULL, a client on IPv6, flagged
/// for quarantine by DMARC; no state file.
fn utf8_quarantined() -> Case {
    let mut to = recipient(
        mailbox("用户", "例子.广告"),
        Route::Remote,
        "用户@例子.广告",
    );
    to.orcpt = orcpt("utf-8", "用户@例子.广告");
    to.notify = notify(false, true, false);
    Case {
        committed: Envelope {
            id: id("0dz8k2m4q6s8v0x2"),
            sender: ReversePath::Mailbox(mailbox("josé", "exämple.com")),
            recipients: vec![
                to,
                recipient(
                    mailbox("zoë", "example.org"),
                    local("zoe"),
                    "zoë@example.org",
                ),
            ],
            body: BodyType::EightBitMime,
            smtputf8: true,
            ret: Some(Ret::Full),
            envid: None,
            arrival: 1_767_312_000,
            client: ClientInfo {
                ip: Some("2001:db8::25".parse().unwrap()),
                helo: Some("mail.exämple.com".into()),
            },
            prepend: "Received: from mail.exämple.com ([2001:db8::25])\r\n\tby mx.example.org (Posthorn) with UTF8SMTPS id 0dz8k2m4q6s8v0x2;\r\n\tFri, 2 Jan 2026 00:00:00 +0000\r\nAuthentication-Results: mx.example.org;\r\n\tdmarc=fail (p=quarantine) header.from=exämple.com\r\n".into(),
            hold: false,
            delay_notified: false,
            postmaster_notice: false,
            quarantine: true,
        },
        content: "From: José <josé@exämple.com>\r\nTo: 用户@例子.广告\r\nSubject: 你好\r\n\r\n¡Hola!\r\n".as_bytes(),
        later: None,
    }
}

/// A bounce: null sender, 7BIT, written by the server itself (no client), signed (the
/// signature is its prepend); the operator held it after a failed attempt.
fn bounce_held() -> Case {
    let committed = Envelope {
        id: id("0dz8k2m4q6s8v0x3"),
        sender: ReversePath::Null,
        recipients: vec![recipient(
            mailbox("alice", "example.com"),
            Route::Remote,
            "alice@example.com",
        )],
        body: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: None,
        arrival: 1_767_398_400,
        client: ClientInfo::default(),
        prepend: "DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=mail; c=relaxed/relaxed;\r\n\th=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AbCd\r\n".into(),
        hold: false,
        delay_notified: false,
        postmaster_notice: false,
        quarantine: false,
    };
    let mut later = committed.clone();
    later.recipients[0].state = DeliveryState {
        status: RecipientStatus::Pending,
        attempts: 1,
        next_attempt: 1_767_399_300,
        last_attempt: Some(1_767_398_400),
        diagnostic: reply(
            (4, 2, 1),
            "MAIL FROM refused: 421 4.2.1 try later (reply from mx.example.com[203.0.113.5]:25)",
            "mx.example.com",
            "421 4.2.1 try later",
        ),
        dsn_owed: None,
    };
    later.hold = true;
    Case {
        committed,
        content: b"From: Mail Delivery System <MAILER-DAEMON@example.org>\r\nTo: alice@example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\n\r\nYour message could not be delivered.\r\n--b--\r\n",
        later: Some(later),
    }
}

/// A notice to the postmaster about a bounce that failed: null sender, local recipient,
/// no prepend, empty content; no state file.
fn postmaster_notice() -> Case {
    Case {
        committed: Envelope {
            id: id("0dz8k2m4q6s8v0x4"),
            sender: ReversePath::Null,
            recipients: vec![recipient(
                mailbox("postmaster", "example.org"),
                local("postmaster"),
                "Postmaster",
            )],
            body: BodyType::SevenBit,
            smtputf8: false,
            ret: None,
            envid: None,
            arrival: 1_767_484_800,
            client: ClientInfo::default(),
            prepend: String::new(),
            hold: false,
            delay_notified: false,
            postmaster_notice: true,
            quarantine: false,
        },
        content: b"",
        later: None,
    }
}

/// Submitted by a local user (a client without an address), NOTIFY=NEVER; a state file
/// with one recipient delivered and one pending, never attempted.
fn local_submission() -> Case {
    let mut first = recipient(mailbox("ops", "example.org"), local("ops"), "ops");
    first.notify = Some(Notify::NEVER);
    let second = recipient(
        mailbox("oncall", "pager.example"),
        Route::Remote,
        "oncall@pager.example",
    );
    let committed = Envelope {
        id: id("0dz8k2m4q6s8v0x5"),
        sender: ReversePath::Mailbox(mailbox("cron", "mx.example.org")),
        recipients: vec![first, second],
        body: BodyType::SevenBit,
        smtputf8: false,
        ret: None,
        envid: Some("cron-42".into()),
        arrival: 1_767_571_200,
        client: ClientInfo {
            ip: None,
            helo: Some("localhost".into()),
        },
        prepend: "Received: from localhost (uid 0 root)\r\n\tby mx.example.org (Posthorn) with ESMTP id 0dz8k2m4q6s8v0x5;\r\n\tMon, 5 Jan 2026 00:00:00 +0000\r\n".into(),
        hold: false,
        delay_notified: false,
        postmaster_notice: false,
        quarantine: false,
    };
    let mut later = committed.clone();
    later.recipients[0].state = DeliveryState {
        status: RecipientStatus::Delivered,
        attempts: 1,
        next_attempt: 0,
        last_attempt: Some(1_767_571_200),
        diagnostic: diagnostic((2, 0, 0), "delivered to maildir"),
        dsn_owed: None,
    };
    Case {
        committed,
        content: b"Subject: disk usage\r\n\r\n/var 91%\r\n",
        later: Some(later),
    }
}

fn cases() -> Vec<Case> {
    vec![
        every_state(),
        utf8_quarantined(),
        bounce_held(),
        postmaster_notice(),
        local_submission(),
    ]
}

/// A spool holding copies of the golden files, so that no test can change them; without
/// `states`, the state files are left out and each message loads as it was committed.
fn golden_spool(states: bool) -> (tempfile::TempDir, FsQueueStore) {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(data_dir()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let stem = name.strip_suffix(".state");
        if QueueId::try_from(stem.unwrap_or(&name).to_string()).is_err()
            || (stem.is_some() && !states)
        {
            continue;
        }
        std::fs::copy(entry.path(), dir.path().join(&name)).unwrap();
    }
    let store = FsQueueStore::open_without_fsync(dir.path()).unwrap();
    (dir, store)
}

fn read_content(store: &FsQueueStore, id: &QueueId) -> Vec<u8> {
    let mut content = store.content(id).unwrap();
    let mut bytes = Vec::new();
    content.reader.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, content.len);
    bytes
}

#[test]
fn the_golden_files_are_all_there() {
    let mut expected: Vec<String> = cases()
        .iter()
        .flat_map(|case| {
            let id = case.committed.id;
            let state = case.later.as_ref().map(|_| format!("{id}.state"));
            std::iter::once(id.to_string()).chain(state)
        })
        .chain(["README.md".to_string()])
        .collect();
    expected.sort();
    let mut names: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, expected);
}

#[test]
fn golden_files_load_to_the_expected_envelopes() {
    let (_dir, store) = golden_spool(true);
    let cases = cases();
    let mut ids: Vec<QueueId> = cases.iter().map(|case| case.committed.id).collect();
    ids.sort();
    assert_eq!(store.recover().unwrap(), ids);
    for case in &cases {
        let id = case.committed.id;
        let expected = case.later.as_ref().unwrap_or(&case.committed);
        assert_eq!(&store.load(&id).unwrap(), expected, "{id}");
        assert_eq!(read_content(&store, &id), case.content, "{id}");
    }
}

#[test]
fn golden_messages_without_their_state_load_as_committed() {
    let (_dir, store) = golden_spool(false);
    for case in cases() {
        assert_eq!(store.load(&case.committed.id).unwrap(), case.committed);
    }
}

/// Asserts that `dir` holds the golden state file `name`, octet for octet (shown as text
/// when they differ).
fn assert_golden(dir: &Path, name: &str) {
    let golden = std::fs::read(data_dir().join(name)).unwrap();
    let written = std::fs::read(dir.join(name)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&golden),
        "{name}"
    );
    assert!(written == golden, "{name}");
}

/// Asserts that `dir` holds the golden message `name` in format version 2: the golden
/// content and envelope, octet for octet, then version 2's footer (`PHQ2`, the two
/// lengths, the CRC-32 of all before it, `2QHP`) where version 1's was.
fn assert_golden_message(dir: &Path, name: &str) {
    let golden = std::fs::read(data_dir().join(name)).unwrap();
    let written = std::fs::read(dir.join(name)).unwrap();
    let (body, footer) = written.split_at(written.len() - 28);
    let golden_body = &golden[..golden.len() - 24];
    assert_eq!(
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(golden_body),
        "{name}"
    );
    assert!(body == golden_body, "{name}");
    let mut expected = b"PHQ2".to_vec();
    expected.extend_from_slice(&golden[golden.len() - 20..golden.len() - 4]);
    expected.extend_from_slice(&crc32(body).to_le_bytes());
    expected.extend_from_slice(b"2QHP");
    assert_eq!(footer, expected, "{name}");
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it), bit by bit: the test's own
/// reckoning, independent of the crate the spool uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Read, then written again by this release: the same content, envelope and state
/// octets; the message footer is version 2's.
#[test]
fn golden_files_read_and_written_again_are_the_same_octets() {
    let (_committed_dir, committed) = golden_spool(false);
    let (_later_dir, later) = golden_spool(true);
    let out = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open_without_fsync(out.path()).unwrap();
    for case in cases() {
        let id = case.committed.id;
        let mut writer = store.writer(id).unwrap();
        writer.write_all(&read_content(&committed, &id)).unwrap();
        let envelope = committed.load(&id).unwrap();
        writer.commit(Vec::new(), &envelope).wait().unwrap();
        assert_golden_message(out.path(), id.as_str());
        if case.later.is_some() {
            store.save_state(&later.load(&id).unwrap()).unwrap();
            assert_golden(out.path(), &format!("{id}.state"));
        }
    }
}

/// The expected envelopes, written afresh and read back: the same envelopes, and the
/// golden octets but for the footer's version.
#[test]
fn envelopes_written_afresh_read_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open_without_fsync(dir.path()).unwrap();
    for case in cases() {
        let id = case.committed.id;
        let mut writer = store.writer(id).unwrap();
        writer.write_all(case.content).unwrap();
        writer.commit(Vec::new(), &case.committed).wait().unwrap();
        assert_eq!(store.load(&id).unwrap(), case.committed, "{id}");
        assert_golden_message(dir.path(), id.as_str());
        if let Some(later) = &case.later {
            store.save_state(later).unwrap();
            assert_eq!(&store.load(&id).unwrap(), later, "{id}");
            assert_golden(dir.path(), &format!("{id}.state"));
        }
    }
}
