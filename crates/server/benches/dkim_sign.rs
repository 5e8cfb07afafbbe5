//! What DKIM signing costs per message: both signatures (Ed25519 and RSA-2048), as every
//! submitted message gets them, for a short and a 100 KiB message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use posthorn::mailauth::sign::{Keyring, Signer};

fn signer(dir: &std::path::Path) -> Signer {
    let config = posthorn::config::parse(
        &format!(
            "[server]\nhostname = \"mx.example.org\"\ndata_dir = \"{}\"\n\
             [[domain]]\nname = \"example.org\"\n",
            dir.display()
        ),
        None,
    )
    .expect("config");
    Signer::new(Keyring::load(&config, &["example.org".to_string()]).expect("keys"))
}

fn message(body_size: usize) -> Vec<u8> {
    let mut message = b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\n\
Subject: benchmark\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n"
        .to_vec();
    let line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n";
    while message.len() < body_size {
        message.extend_from_slice(line);
    }
    message
}

fn sign(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let signer = signer(dir.path());
    let prepend = b"Received: from client.example.net by mx.example.org; Mon, 23 Nov 2026\r\n";
    let mut group = c.benchmark_group("dkim_sign_both_keys");
    for (name, size) in [("1KiB", 1024), ("100KiB", 100 * 1024)] {
        let content = message(size);
        group.throughput(Throughput::Bytes(content.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut copy = content.clone();
                signer.sign(prepend, &mut copy)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, sign);
criterion_main!(benches);
