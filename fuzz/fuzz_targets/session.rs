//! Any byte stream through the whole server session, with every decision accepted: no
//! panic, no hang, replies always well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_proto::reply::table;
use posthorn_proto::{Action, AuthPolicy, Session, SessionConfig};

fuzz_target!(|input: &[u8]| {
    let mut config = SessionConfig::new("fuzz.test");
    config.starttls = true;
    config.auth = AuthPolicy {
        enabled: true,
        without_tls: true,
        required: false,
    };
    let mut session: Session<()> = Session::new(config);
    session.greet();
    let mut sink = Vec::new();
    for chunk in input.chunks(97) {
        session.feed(chunk);
        loop {
            match session.next_action() {
                Action::NeedInput | Action::Close => break,
                Action::StartTls => session.tls_established(),
                Action::Auth(credentials) => {
                    if credentials.password == "secret" {
                        session.authenticated_as(credentials.username);
                    } else {
                        session.reject(table::auth_failed());
                    }
                }
                Action::Hello(_) | Action::Mail(_) | Action::DataStart => session.accept(),
                Action::Rcpt(_) => session.accept_rcpt(()),
                Action::Data => session.take_content(&mut sink),
                Action::DataEnd => session.finish(table::queued("FUZZ")),
                Action::DataAbort => sink.clear(),
            }
        }
        for line in session
            .output()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
        {
            assert!(line.len() >= 5 && line.ends_with(b"\r"));
        }
        session.clear_output();
        if session.is_closed() {
            break;
        }
    }
});
