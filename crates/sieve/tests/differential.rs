//! Differential test against Pigeonhole, the reference Sieve implementation: Debian's
//! `sieve-test` runs each script of tests/data/scripts on its message, and its printed
//! actions must equal ours once both are written the same way (tests/common).
//!
//! A script's first comment lines choose its message (`# message: plain.eml`) and the
//! envelope sender (`# from: ...`); the recipient is always bob@example.com.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::fs;
use std::path::PathBuf;

use common::{DEFAULT_SENDER, Pigeonhole, compare, data};

fn directive<'a>(script: &'a str, key: &str) -> Option<&'a str> {
    script
        .lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| {
            l.strip_prefix('#')?
                .trim()
                .strip_prefix(key)?
                .strip_prefix(':')
                .map(str::trim)
        })
}

#[test]
fn pigeonhole_agrees_on_every_pair() {
    let pigeonhole = Pigeonhole::new();
    let mut scripts: Vec<PathBuf> = fs::read_dir(data().join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 30, "too few script/message pairs");
    let mut disagreements = Vec::new();
    for path in &scripts {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let script = fs::read_to_string(path).unwrap();
        let message = fs::read(
            data()
                .join("messages")
                .join(directive(&script, "message").unwrap_or("plain.eml")),
        )
        .unwrap();
        let sender = directive(&script, "from").unwrap_or(DEFAULT_SENDER);
        let (agree, theirs, mine) = compare(&pigeonhole, &name, &script, &message, sender);
        println!(
            "{} {name}\n  pigeonhole: {theirs:?}\n  posthorn:   {mine:?}",
            if agree { "AGREE" } else { "DIFFER" }
        );
        if !agree {
            disagreements.push(name);
        }
    }
    println!(
        "{} of {} pairs agree",
        scripts.len() - disagreements.len(),
        scripts.len()
    );
    assert!(disagreements.is_empty(), "disagreements: {disagreements:?}");
}
