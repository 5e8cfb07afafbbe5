//! Any message text: ENVELOPE, BODYSTRUCTURE and every section FETCH can ask for are
//! computed without panicking, and the structures have balanced parentheses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_mailbox::imap::command::{Section, SectionText};
use posthorn_mailbox::imap::message::{body_structure, envelope, section};

fuzz_target!(|raw: &[u8]| {
    let _ = envelope(raw);
    let _ = body_structure(raw, true);
    for part in [vec![], vec![1], vec![1, 2], vec![2, 1, 1]] {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
        ] {
            let _ = section(
                raw,
                &Section {
                    part: part.clone(),
                    text,
                },
            );
        }
    }
});
