//! The protocol's hot paths: parsing command lines, decoding DATA content, and a whole
//! session fed the bytes of a transaction.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use posthorn_proto::command::parse_command;
use posthorn_proto::data::{BareNewline, ContentDecoder, ContentLimits};
use posthorn_proto::reply::table;
use posthorn_proto::{Action, Session, SessionConfig};

const LIMITS: ContentLimits = ContentLimits {
    max_line: 8000,
    max_size: 64 << 20,
    bare_newline: BareNewline::Reject,
};

fn content(size: usize) -> Vec<u8> {
    let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcd\r\n";
    let mut text = b"Subject: benchmark\r\n\r\n".to_vec();
    while text.len() < size {
        text.extend_from_slice(if text.len().is_multiple_of(1600) {
            b".dotted line\r\n"
        } else {
            line
        });
    }
    text.extend_from_slice(b".\r\n");
    text
}

fn parser(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_command");
    for line in [
        &b"MAIL FROM:<sender@example.com> SIZE=4096 BODY=8BITMIME"[..],
        b"RCPT TO:<recipient@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;recipient@example.org",
        b"EHLO client.example.net",
    ] {
        let name = String::from_utf8_lossy(&line[..4]).into_owned();
        group.bench_function(name, |b| b.iter(|| parse_command(black_box(line))));
    }
    group.finish();
}

fn decoder(c: &mut Criterion) {
    let mut group = c.benchmark_group("data_decoder");
    for size in [4 << 10, 1 << 20] {
        let input = content(size);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(format!("{size} octets"), |b| {
            let mut out = Vec::with_capacity(input.len());
            b.iter(|| {
                out.clear();
                let mut decoder = ContentDecoder::for_data(LIMITS);
                decoder.decode(black_box(&input), &mut out)
            })
        });
    }
    group.finish();
}

fn session(c: &mut Criterion) {
    let mut transaction =
        b"EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
            .to_vec();
    transaction.extend_from_slice(&content(4 << 10));
    transaction.extend_from_slice(b"QUIT\r\n");
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Bytes(transaction.len() as u64));
    group.bench_function("4 KiB transaction", |b| {
        b.iter(|| {
            let mut session: Session<()> = Session::new(SessionConfig::new("mx.example"));
            session.greet();
            session.feed(black_box(&transaction));
            let mut sink = Vec::new();
            loop {
                match session.next_action() {
                    Action::NeedInput | Action::Close | Action::StartTls | Action::Auth(_) => break,
                    Action::Hello(_) | Action::Mail(_) | Action::DataStart => session.accept(),
                    Action::Rcpt(_) => session.accept_rcpt(()),
                    Action::Data => session.take_content(&mut sink),
                    Action::DataEnd => session.finish(table::queued("BENCH")),
                    Action::DataAbort => sink.clear(),
                }
            }
            sink.len()
        })
    });
    group.finish();
}

criterion_group!(benches, parser, decoder, session);
criterion_main!(benches);
