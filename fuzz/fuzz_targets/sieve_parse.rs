//! Any script text: compiling returns a script or a positioned error, never panics,
//! and a script that compiles runs within its limits on the message after the first
//! NUL byte of the input (a small fixed one when there is none).
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_sieve::{Context, Envelope, Extensions, Limits, Now, compile, run};

const MESSAGE: &[u8] = b"From: A <a+x@example.org>\r\nTo: b@example.com\r\nSubject: =?UTF-8?Q?hi?=\r\nDate: Sat, 13 Mar 2010 16:59:07 +0100\r\n\r\nbody\r\n";

fuzz_target!(|data: &[u8]| {
    let (script, message) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], &data[nul + 1..]),
        None => (data, MESSAGE),
    };
    let Ok(text) = std::str::from_utf8(script) else {
        return;
    };
    let limits = Limits {
        max_steps: 10_000,
        ..Limits::default()
    };
    match compile(text, &Extensions::all(), &limits) {
        Err(error) => assert!(error.line >= 1 && error.column >= 1),
        Ok(script) => {
            let envelope = Envelope {
                from: "a@example.org".into(),
                to: "b@example.com".into(),
                auth: None,
            };
            let include = |name: &str, _| (name == "self").then(|| text.to_owned());
            let ctx = Context {
                message,
                envelope: &envelope,
                spam_score: Some(5.0),
                virus: None,
                now: Now {
                    unix: 1_700_000_000,
                    offset_minutes: 60,
                },
                include: &include,
            };
            if let Ok(actions) = run(&script, &ctx, &limits) {
                assert!(actions.len() <= limits.max_actions);
            }
        }
    }
});
