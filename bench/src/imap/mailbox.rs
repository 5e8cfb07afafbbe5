//! The benchmark's mail: a Maildir of realistic messages (varied senders, subjects,
//! threads, lists, MIME shapes, about 4 KiB each), generated once from a fixed seed, and
//! copies of it for each server and user made with hard links (Maildir files never change
//! in place, flags are renames: a link is as good as a copy, and both servers read the
//! same blocks).

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::Context;

/// A word found in the subject of about one message in a hundred: the SUBJECT searches.
pub const RARE_SUBJECT_WORD: &str = "quarterly";
/// A sender of about one message in two hundred: the FROM searches.
pub const RARE_SENDER: &str = "zelda.quist";

const FIRST_NAMES: [&str; 20] = [
    "anna", "bruno", "chloe", "dmitri", "elena", "farid", "grace", "hiro", "ines", "jonas",
    "kavya", "liam", "maya", "nils", "olga", "pedro", "quinn", "rosa", "sven", "tariq",
];
const LAST_NAMES: [&str; 10] = [
    "meyer", "okafor", "silva", "tanaka", "novak", "haddad", "larsen", "rossi", "kim", "dubois",
];
const DOMAINS: [&str; 8] = [
    "example.com",
    "example.org",
    "example.net",
    "mail.example.de",
    "lists.example.org",
    "corp.example",
    "uni.example.edu",
    "shop.example",
];
const WORDS: [&str; 48] = [
    "meeting",
    "report",
    "invoice",
    "draft",
    "review",
    "budget",
    "release",
    "schedule",
    "notes",
    "agenda",
    "question",
    "update",
    "proposal",
    "contract",
    "travel",
    "lunch",
    "patch",
    "server",
    "outage",
    "plan",
    "summary",
    "feedback",
    "slides",
    "deadline",
    "order",
    "shipping",
    "account",
    "password",
    "welcome",
    "newsletter",
    "weekly",
    "team",
    "project",
    "design",
    "results",
    "survey",
    "ticket",
    "support",
    "holiday",
    "office",
    "migration",
    "backup",
    "security",
    "training",
    "offsite",
    "photos",
    "minutes",
    "launch",
];
const LISTS: [&str; 3] = [
    "dev.lists.example.org",
    "announce.lists.example.org",
    "users.lists.example.org",
];
const MAILERS: [&str; 4] = [
    "Thunderbird 115.6",
    "Apple Mail (2.3774)",
    "Microsoft Outlook 16.0",
    "Roundcube Webmail/1.6",
];

/// A small deterministic generator (xorshift64*): the same mailbox on every run.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True once in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Message `n` of the mailbox, sent at `time` (Unix seconds).
fn message(rng: &mut Rng, n: usize, time: u64) -> Vec<u8> {
    let sender = if rng.one_in(200) {
        format!("{RARE_SENDER}@example.net")
    } else {
        format!(
            "{}.{}@{}",
            rng.pick(&FIRST_NAMES),
            rng.pick(&LAST_NAMES),
            rng.pick(&DOMAINS)
        )
    };
    let mut subject: Vec<&str> = (0..3 + rng.below(6)).map(|_| rng.pick(&WORDS)).collect();
    if rng.one_in(100) {
        subject.insert(rng.below(subject.len()), RARE_SUBJECT_WORD);
    }
    let reply = rng.one_in(3);
    let list = rng.one_in(4).then(|| rng.pick(&LISTS));
    let date = rfc5322_date(time);
    let mut m = String::with_capacity(4096);
    m.push_str(&format!(
        "Return-Path: <{sender}>\r\nDelivered-To: user@bench.example\r\n\
         Received: from mx{}.example.net (mx.example.net [192.0.2.{}])\r\n\tby mail.bench.example with ESMTPS id {n:08x}\r\n\tfor <user@bench.example>; {date}\r\n\
         Received: from [10.0.{}.{}] by mx.example.net with ESMTPSA; {date}\r\n",
        rng.below(9),
        rng.below(250),
        rng.below(250),
        rng.below(250)
    ));
    m.push_str(&format!(
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=s1;\r\n\th=from:to:subject:date:message-id; bh={:016x}{:016x}=;\r\n\tb={:016x}{:016x}{:016x}{:016x}\r\n",
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64()
    ));
    let name = sender
        .split('@')
        .next()
        .unwrap_or_default()
        .replace('.', " ");
    m.push_str(&format!(
        "Date: {date}\r\nFrom: \"{name}\" <{sender}>\r\nTo: user@bench.example\r\n"
    ));
    if rng.one_in(3) {
        m.push_str(&format!(
            "Cc: {}.{}@{}\r\n",
            rng.pick(&FIRST_NAMES),
            rng.pick(&LAST_NAMES),
            rng.pick(&DOMAINS)
        ));
    }
    m.push_str(&format!(
        "Subject: {}{}\r\nMessage-ID: <{n}.{:x}@{}>\r\n",
        if reply { "Re: " } else { "" },
        subject.join(" "),
        rng.next_u64(),
        rng.pick(&DOMAINS)
    ));
    if reply {
        let earlier = rng.below(n.max(1));
        m.push_str(&format!(
            "In-Reply-To: <{earlier}.0@example.com>\r\nReferences: <{earlier}.0@example.com>\r\n"
        ));
    }
    if let Some(list) = list {
        m.push_str(&format!(
            "List-Id: <{list}>\r\nList-Unsubscribe: <mailto:leave@{list}>\r\nPrecedence: list\r\n"
        ));
    }
    m.push_str(&format!(
        "X-Mailer: {}\r\nMIME-Version: 1.0\r\n",
        rng.pick(&MAILERS)
    ));
    let body_lines = 20 + rng.below(44);
    let mut text = String::new();
    for _ in 0..body_lines {
        let words: Vec<&str> = (0..6 + rng.below(8)).map(|_| rng.pick(&WORDS)).collect();
        text.push_str(&words.join(" "));
        text.push_str("\r\n");
    }
    if rng.one_in(3) {
        let boundary = format!("=_b{n:x}");
        m.push_str(&format!(
            "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
             This is a multi-part message in MIME format.\r\n--{boundary}\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\
             --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>{}</p></body></html>\r\n--{boundary}--\r\n",
            text.lines().take(8).collect::<Vec<_>>().join("<br>")
        ));
    } else {
        m.push_str(&format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}"
        ));
    }
    m.into_bytes()
}

/// `time` as an RFC 5322 date in UTC.
fn rfc5322_date(time: u64) -> String {
    mail_parser::DateTime::from_timestamp(time as i64).to_rfc822()
}

/// Writes `count` messages into a new Maildir at `dir`: the older ones in `cur/` with the
/// flags a read mailbox has (most seen, some answered or flagged), the last 1% in `new/`.
pub fn generate(dir: &Path, count: usize) -> anyhow::Result<()> {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let mut rng = Rng::new(19);
    // One message every 10 minutes, ending about now.
    let start = 1_700_000_000u64;
    for n in 0..count {
        let time = start + n as u64 * 600;
        let content = message(&mut rng, n, time);
        let base = format!("{time}.M{n}P19Q{n}.bench.example,S={}", content.len());
        let path = if n >= count - count / 100 {
            dir.join("new").join(base)
        } else {
            let flags = match rng.below(20) {
                0..=2 => "",
                3 => "FS",
                4..=5 => "RS",
                _ => "S",
            };
            dir.join("cur").join(format!("{base}:2,{flags}"))
        };
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(&content)?;
    }
    Ok(())
}

/// A copy of the Maildir `template` at `to`, made of hard links.
pub fn link_copy(template: &Path, to: &Path) -> anyhow::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let status = Command::new("cp")
        .arg("-al")
        .arg(template)
        .arg(to)
        .status()?;
    anyhow::ensure!(
        status.success(),
        "cp -al {} {} failed",
        template.display(),
        to.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
    }

    #[test]
    fn messages_are_about_4_kib_with_the_rare_terms_rare() {
        let mut rng = Rng::new(19);
        let messages: Vec<Vec<u8>> = (0..2000).map(|n| message(&mut rng, n, 0)).collect();
        let mean = messages.iter().map(Vec::len).sum::<usize>() / messages.len();
        assert!((3600..4600).contains(&mean), "{mean}");
        let with = |needle: &str| {
            messages
                .iter()
                .filter(|m| String::from_utf8_lossy(m).contains(needle))
                .count()
        };
        assert!((5..60).contains(&with(RARE_SUBJECT_WORD)));
        assert!((2..30).contains(&with(RARE_SENDER)));
    }
}
