//! What a message costs the spool: a 4 KiB commit with fsync of file and folder (the price
//! of every 250), without fsync (the rest of the work), and a load.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use posthorn_proto::{Mailbox, ReversePath};
use posthorn_spool::{Envelope, FsQueueStore, QueueId, QueueStore, Recipient, Route};

fn envelope(id: QueueId) -> Envelope {
    let sender = Mailbox {
        local: "sender".into(),
        domain: "example.com".into(),
    };
    let recipient = Mailbox {
        local: "recipient".into(),
        domain: "example.org".into(),
    };
    Envelope {
        prepend: "Received: from client.example ([192.0.2.1])\r\n\tby mx.example (Posthorn) with ESMTP id X;\r\n\tThu, 1 Jan 2027 00:00:00 +0000\r\n".into(),
        ..Envelope::new(
            id,
            ReversePath::Mailbox(sender),
            vec![Recipient::new(recipient, Route::Remote)],
            1_800_000_000,
        )
    }
}

fn commit(store: &FsQueueStore, content: &[u8]) -> QueueId {
    let id = store.new_id();
    let writer = store.writer(id).expect("writer");
    writer
        .commit(content.to_vec(), &envelope(id))
        .wait()
        .expect("commit");
    id
}

fn spool(c: &mut Criterion) {
    let content = vec![b'x'; 4096];
    let dir = tempfile::tempdir().expect("temp dir");
    let durable = FsQueueStore::open(dir.path().join("durable")).expect("store");
    let fast = FsQueueStore::open_without_fsync(dir.path().join("fast")).expect("store");
    let mut group = c.benchmark_group("spool");
    group.bench_function("commit 4 KiB with fsync", |b| {
        b.iter(|| {
            let id = commit(&durable, &content);
            durable.remove(&id).expect("remove");
        })
    });
    group.bench_function("commit 4 KiB without fsync", |b| {
        b.iter(|| {
            let id = commit(&fast, &content);
            fast.remove(&id).expect("remove");
        })
    });
    let id = commit(&fast, &content);
    group.bench_function("load envelope", |b| {
        b.iter(|| fast.load(&id).expect("load"))
    });
    group.finish();
}

criterion_group!(benches, spool);
criterion_main!(benches);
