//! Any DATA or BDAT content, cut anywhere: the decoder never panics, never stores a bare
//! CR or LF in reject mode, and never reads past the end of DATA.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_proto::data::{BareNewline, ContentDecoder, ContentLimits};

fuzz_target!(|input: &[u8]| {
    let Some((&selector, bytes)) = input.split_first() else {
        return;
    };
    let limits = ContentLimits {
        max_line: 100,
        max_size: 10_000,
        bare_newline: if selector & 1 == 0 {
            BareNewline::Reject
        } else {
            BareNewline::Normalize
        },
    };
    let mut decoder = if selector & 2 == 0 {
        ContentDecoder::for_data(limits)
    } else {
        ContentDecoder::for_chunks(limits)
    };
    let cut = (selector as usize >> 2).min(bytes.len());
    let mut out = Vec::new();
    let (first, done) = decoder.decode(&bytes[..cut], &mut out);
    if !done {
        let (second, _) = decoder.decode(&bytes[cut..], &mut out);
        assert!(first + second <= bytes.len());
    }
    assert!(out.len() <= 10_000);
    if limits.bare_newline == BareNewline::Reject && decoder.error().is_none() {
        for (i, &b) in out.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && out[i - 1] == b'\r');
            }
        }
    }
});
