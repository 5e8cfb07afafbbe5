//! The crash soak at CI size: 5 000 messages from several clients while the server is
//! killed with SIGKILL at random moments and restarted. Every acknowledged message must
//! arrive (at least once), and the spool must end empty with no half-written file.
//! `posthorn-bench soak` runs the same with 100 000 messages (see README).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use std::path::PathBuf;

use posthorn_bench::soak::{self, SoakSpec};

fn spec(local: bool) -> SoakSpec {
    SoakSpec {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_posthorn")),
        messages: 5_000,
        clients: 8,
        local,
        kill_every: (200, 1500),
    }
}

fn check(local: bool) {
    let report = soak::run(&spec(local)).expect("soak ran");
    eprintln!("{report}");
    assert!(report.kills > 0, "the server was never killed: {report}");
    assert!(
        report.acknowledged >= 5_000,
        "too few acknowledged: {report}"
    );
    assert!(report.passed(), "{report}");
}

#[test]
fn relayed_mail_survives_random_kills() {
    check(false);
}

#[test]
fn local_mail_survives_random_kills() {
    check(true);
}
