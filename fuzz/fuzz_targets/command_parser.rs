//! Any command line: the parser returns a command or a well-formed error reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posthorn_proto::command::parse_command;

fuzz_target!(|line: &[u8]| {
    if let Err(reply) = parse_command(line) {
        assert!((500..600).contains(&reply.code));
        assert!(reply.status.is_some());
    }
});
