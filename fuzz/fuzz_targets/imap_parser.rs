//! Any byte stream, cut into chunks where the input says: the IMAP command reader never
//! panics and never buffers more than a line, a literal and one chunk.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_mailbox::imap::parser::{CommandReader, Input, Limits};

const LIMITS: Limits = Limits {
    max_line: 1024,
    max_literal: 1024,
    max_append: 4096,
};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(cut).max(1);
    let mut reader = CommandReader::new(LIMITS);
    for piece in stream.chunks(chunk) {
        reader.feed(piece);
        loop {
            match reader.next() {
                Input::Incomplete => break,
                Input::Fatal { .. } => return,
                _ => {}
            }
        }
        assert!(reader.buffered() <= LIMITS.max_line + LIMITS.max_append + chunk + 16);
    }
});
