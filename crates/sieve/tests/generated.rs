//! Differential test on generated scripts: a fixed-seed generator combines tests,
//! match types, comparators, address parts and keys at random, and Pigeonhole's
//! `sieve-test` and ours must file every message the same way (tests/common).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::fs;

use common::{DEFAULT_SENDER, Pigeonhole, compare, data};

/// How many scripts one run compares (each on every message), and the seed; the
/// environment's SIEVE_GEN_SCRIPTS and SIEVE_GEN_SEED change them to explore further.
const SCRIPTS: usize = 60;
const SEED: u64 = 0x05EE_D0F5_1E7E;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: a few lines, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn keys(&mut self, pool: &[&str]) -> String {
        let count = 1 + self.below(2);
        let keys: Vec<String> = (0..count)
            .map(|_| format!("\"{}\"", self.pick(pool)))
            .collect();
        if count == 1 && self.below(2) == 0 {
            keys[0].clone()
        } else {
            format!("[{}]", keys.join(", "))
        }
    }
}

const KEYS: &[&str] = &[
    "",
    "*",
    "?",
    "a",
    "e",
    "A*",
    "*a*",
    "*@*",
    "*.*",
    "?*?",
    "*o*o*",
    "meeting",
    "Meeting tomorrow",
    "bob",
    "bob+work",
    "work",
    "example.com",
    "example.org",
    "EXAMPLE.NET",
    "alice@example.org",
    "1",
    "2",
    "0042",
    "42",
    "7.5",
    "\\\\*",
    "*\\\\?",
    "Ü*",
    "*ö*",
    "invoice",
    "text",
    "*[*]*",
    "1 (Highest)",
    "10",
];
const HEADERS: &[&str] = &[
    "subject",
    "from",
    "to",
    "cc",
    "x-priority",
    "x-number",
    "x-empty",
    "date",
    "list-id",
    "x-spam-score",
    "content-type",
];
const ADDRESS_HEADERS: &[&str] = &["from", "to", "cc", "sender", "reply-to"];

fn match_type(rng: &mut Rng, substring_ok: bool) -> String {
    let relation = ["gt", "ge", "lt", "le", "eq", "ne"][rng.below(6)];
    let kinds: &[&str] = if substring_ok {
        &[":is", ":contains", ":matches", ":value", ":count", ""]
    } else {
        &[":is", ":value", ":count", ""]
    };
    match rng.pick(kinds) {
        ":value" | ":count" => format!("{} \"{relation}\"", rng.pick(&[":value", ":count"])),
        other => other.to_owned(),
    }
}

/// Comparator and match type, never a substring match with i;ascii-numeric.
fn matching(rng: &mut Rng) -> String {
    let comparator = rng.pick(&["", "i;octet", "i;ascii-casemap", "i;ascii-numeric"]);
    let kind = match_type(rng, comparator != "i;ascii-numeric");
    if comparator.is_empty() {
        kind
    } else {
        format!("{kind} :comparator \"{comparator}\"")
    }
}

const DATE_PARTS: &[&str] = &[
    "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
    "std11", "zone", "weekday",
];
const DATE_KEYS: &[&str] = &[
    "*",
    "2010",
    "03",
    "13",
    "1?",
    "*-*-*",
    "*:*",
    "+0100",
    "-0500",
    "+0000",
    "6",
    "0",
    "5*",
    "2010-03-13",
    "*Z",
    "Sat*",
];
const FLAGS: &[&str] = &[
    "\\\\Seen",
    "\\\\Flagged",
    "$Label1",
    "custom",
    "\\\\seen CUSTOM",
];

fn test(rng: &mut Rng, depth: usize) -> String {
    let choice = if depth > 2 {
        rng.below(6)
    } else {
        rng.below(12)
    };
    match choice {
        0 | 1 => format!(
            "header {} {} {}",
            matching(rng),
            rng.keys(HEADERS),
            rng.keys(KEYS)
        ),
        2 | 3 => {
            let part = rng.pick(&["", ":all", ":localpart", ":domain", ":user", ":detail"]);
            format!(
                "address {part} {} {} {}",
                matching(rng),
                rng.keys(ADDRESS_HEADERS),
                rng.keys(KEYS)
            )
        }
        4 => format!(
            "envelope {} {} {} {}",
            rng.pick(&["", ":localpart", ":domain", ":user", ":detail"]),
            matching(rng),
            rng.pick(&["\"from\"", "\"to\"", "[\"from\", \"to\"]"]),
            rng.keys(KEYS)
        ),
        5 => match rng.below(3) {
            0 => format!("exists {}", rng.keys(HEADERS)),
            1 => format!(
                "size {} {}",
                rng.pick(&[":over", ":under"]),
                rng.below(1500)
            ),
            _ => format!(
                "body {} {} {}",
                rng.pick(&[
                    "",
                    ":raw",
                    ":text",
                    ":content \"text\"",
                    ":content \"text/html\""
                ]),
                matching(rng),
                rng.keys(KEYS)
            ),
        },
        6 => format!("not {}", test(rng, depth + 1)),
        7 | 8 => {
            let count = 1 + rng.below(3);
            let tests: Vec<String> = (0..count).map(|_| test(rng, depth + 1)).collect();
            format!("{} ({})", rng.pick(&["allof", "anyof"]), tests.join(", "))
        }
        9 => {
            let zone = rng.pick(&["", ":originalzone", ":zone \"+0900\"", ":zone \"-0330\""]);
            let field = rng.pick(&["date", "x-priority"]);
            format!(
                "date {zone} {} \"{field}\" \"{}\" {}",
                matching(rng),
                rng.pick(DATE_PARTS),
                rng.keys(DATE_KEYS)
            )
        }
        10 => match rng.below(3) {
            0 => format!(
                "spamtest {} {} {}",
                rng.pick(&["", ":percent"]),
                matching(rng),
                rng.keys(&["0", "1", "3", "7", "10", "4", "75", "*"])
            ),
            1 => format!(
                "virustest {} {}",
                matching(rng),
                rng.keys(&["0", "1", "3", "5", "*"])
            ),
            _ => format!(
                "string {} \"${{{}}}\" {}",
                matching(rng),
                rng.pick(&["1", "2", "0", "v", "flags"]),
                rng.keys(KEYS)
            ),
        },
        11 => format!("hasflag {} {}", matching(rng), rng.keys(FLAGS)),
        _ => unreachable!(),
    }
}

/// One command, mostly filing; the rest exercise the action rules.
fn action(rng: &mut Rng, branch: usize) -> String {
    match rng.below(12) {
        0 => format!("addflag {};", rng.keys(FLAGS)),
        1 => format!("removeflag {};", rng.keys(FLAGS)),
        2 => format!("setflag {};", rng.keys(FLAGS)),
        3 => format!("keep :flags {};", rng.keys(FLAGS)),
        4 => "keep;".to_owned(),
        5 => "discard;".to_owned(),
        6 => format!(
            "redirect {}\"{}@example.net\";",
            rng.pick(&["", ":copy "]),
            rng.pick(&["a", "b", "c"])
        ),
        7 => "stop;".to_owned(),
        8 => format!("set \"v\" \"${{1}}{}\";", rng.pick(&["", "x", "${v}"])),
        9 => format!("fileinto :copy \"C{branch}\";"),
        _ => format!("fileinto \"B{branch}-${{1}}-${{2}}\";"),
    }
}

fn script(rng: &mut Rng) -> String {
    let mut text = String::from(
        "require [\"fileinto\", \"envelope\", \"subaddress\", \"relational\", \"comparator-i;ascii-numeric\", \"variables\", \"body\", \"date\", \"spamtestplus\", \"virustest\", \"imap4flags\", \"copy\"];\n",
    );
    for branch in 0..1 + rng.below(4) {
        let actions: Vec<String> = (0..1 + rng.below(2)).map(|_| action(rng, branch)).collect();
        text.push_str(&format!(
            "if {} {{ {} }}\n",
            test(rng, 0),
            actions.join(" ")
        ));
    }
    text
}

#[test]
fn pigeonhole_agrees_on_generated_scripts() {
    let pigeonhole = Pigeonhole::new();
    let mut messages: Vec<_> = fs::read_dir(data().join("messages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    messages.sort();
    let messages: Vec<Vec<u8>> = messages.iter().map(|p| fs::read(p).unwrap()).collect();
    let mut rng = Rng(setting("SIEVE_GEN_SEED", SEED).max(1));
    let (mut runs, mut disagreements) = (0, Vec::new());
    for n in 0..setting("SIEVE_GEN_SCRIPTS", SCRIPTS as u64) {
        let script = script(&mut rng);
        for (m, message) in messages.iter().enumerate() {
            let (agree, theirs, mine) = compare(
                &pigeonhole,
                &format!("gen{n}-{m}"),
                &script,
                message,
                DEFAULT_SENDER,
            );
            runs += 1;
            if !agree {
                println!(
                    "DIFFER script {n} on message {m}:\n{script}  pigeonhole: {theirs:?}\n  posthorn:   {mine:?}"
                );
                disagreements.push((n, m));
            }
        }
    }
    println!(
        "{} of {runs} generated runs agree",
        runs - disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "disagreements (script, message): {disagreements:?}"
    );
}
