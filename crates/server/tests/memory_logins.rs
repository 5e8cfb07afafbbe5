//! Memory under a flood of logins: each argon2 check holds 19 MiB, so the number running
//! at once must be bounded however many clients try at the same moment, and given back
//! once they are done.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::sync::{Arc, Barrier};

use common::Options;
use common::mailbox::{Imap, listeners};

const CLIENTS: usize = 100;

#[test]
fn a_hundred_parallel_wrong_logins_stay_under_200_mb() {
    let hash = posthorn::accounts::passwords::hash("right").unwrap();
    let server = Options::default()
        .config(&format!(
            r#"
[[listener]]
role = "imap"
address = "127.0.0.1:0"
allow_plaintext_auth = true

[limits]
max_connections_per_ip = {CLIENTS}

[auth]
# Every attempt is checked: none is turned away as blocked.
max_failures = 1000
failure_delay = "0s"

[[domain]]
name = "example.com"

[[account]]
name = "alice"
password = "{hash}"
"#
        ))
        .start();
    let addr = listeners(&server, "imap")[0];
    let idle = server.rss_kib();
    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let (mut imap, greeting) = Imap::connect(addr);
                assert!(greeting.starts_with("* OK"), "{greeting}");
                start.wait();
                imap.command(&format!("LOGIN alice wrong{i}"))
            })
        })
        .collect();
    for client in clients {
        let answer = client.join().unwrap();
        assert!(
            answer.starts_with("a1 NO [AUTHENTICATIONFAILED]"),
            "every wrong login is refused: {answer}"
        );
    }
    let peak_mib = server.peak_rss_kib() / 1024;
    assert!(
        peak_mib < 200,
        "peak RSS {peak_mib} MiB for {CLIENTS} logins"
    );
    server.wait_for_memory_back(idle);
}
