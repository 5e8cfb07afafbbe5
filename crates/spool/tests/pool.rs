//! The pool of spool files named ahead of their messages: a message is received into one
//! and takes its name; a writer that gives up gives its file back; and recovery tells the
//! whole messages a crash left under pool names from the files that hold none.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use posthorn_proto::{Mailbox, ReversePath};
use posthorn_spool::{Envelope, FsQueueStore, QueueStore, Recipient, Route};

fn envelope(store: &FsQueueStore) -> Envelope {
    let address = Mailbox {
        local: "bob".into(),
        domain: "localhost".into(),
    };
    let route = Route::Local {
        account: "bob".into(),
    };
    Envelope::new(
        store.new_id(),
        ReversePath::Null,
        vec![Recipient::new(address, route)],
        1_700_000_000,
    )
}

/// The pool files in `dir`: name and inode.
fn pool_files(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(".pool-"))
        .map(|entry| {
            let inode = entry.metadata().unwrap().ino();
            (entry.file_name().into_string().unwrap(), inode)
        })
        .collect()
}

/// A durable spool, its pool filled by recovery.
fn filled_spool() -> (tempfile::TempDir, FsQueueStore, BTreeMap<String, u64>) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open(dir.path()).unwrap();
    store.recover().unwrap();
    let pool = pool_files(dir.path());
    assert!(!pool.is_empty());
    (dir, store, pool)
}

#[test]
fn a_message_is_received_into_a_pool_file_and_takes_its_name() {
    let (dir, store, pool) = filled_spool();
    let envelope = envelope(&store);
    let mut writer = store.writer(envelope.id).unwrap();
    writer
        .write_all(b"Subject: pooled\r\n\r\nbody\r\n")
        .unwrap();
    writer.commit(Vec::new(), &envelope).wait().unwrap();
    let inode = std::fs::metadata(dir.path().join(envelope.id.as_str()))
        .unwrap()
        .ino();
    let taken: Vec<&String> = pool
        .iter()
        .filter(|(_, ino)| **ino == inode)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(taken.len(), 1, "the message file is one of {pool:?}");
    assert!(!dir.path().join(taken[0]).exists());
    assert_eq!(store.ids().unwrap(), [envelope.id]);
    assert_eq!(store.load(&envelope.id).unwrap(), envelope);
}

#[test]
fn a_writer_that_gives_up_gives_its_pool_file_back_empty() {
    let (dir, store, pool) = filled_spool();
    let envelope = envelope(&store);
    let mut writer = store.writer(envelope.id).unwrap();
    writer.write_all(b"Subject: abandoned\r\n\r\n").unwrap();
    drop(writer);
    assert_eq!(pool_files(dir.path()), pool);
    for name in pool.keys() {
        assert_eq!(std::fs::metadata(dir.path().join(name)).unwrap().len(), 0);
    }
    assert!(store.ids().unwrap().is_empty());
}

#[test]
fn recovery_names_whole_messages_left_under_pool_names_and_clears_the_rest() {
    // Messages as a run would have left them, one truncated and written again before its
    // commit (its checksum is of what it holds in the end).
    let made = tempfile::tempdir().unwrap();
    let maker = FsQueueStore::open_without_fsync(made.path()).unwrap();
    let whole = envelope(&maker);
    let mut writer = maker.writer(whole.id).unwrap();
    writer
        .write_all(b"Subject: whole\r\n\r\nfirst try")
        .unwrap();
    writer.truncate(18).unwrap();
    writer.write_all(b"second try\r\n").unwrap();
    writer.commit(b"tail\r\n".to_vec(), &whole).wait().unwrap();
    let whole_file = std::fs::read(made.path().join(whole.id.as_str())).unwrap();
    let damaged = envelope(&maker);
    let mut writer = maker.writer(damaged.id).unwrap();
    writer
        .write_all(b"Subject: damaged\r\n\r\nbody\r\n")
        .unwrap();
    writer.commit(Vec::new(), &damaged).wait().unwrap();
    let mut damaged_file = std::fs::read(made.path().join(damaged.id.as_str())).unwrap();
    damaged_file[3] ^= 0x20;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".pool-7"), &whole_file).unwrap();
    std::fs::write(dir.path().join(".pool-8"), b"").unwrap();
    std::fs::write(
        dir.path().join(".pool-9"),
        &whole_file[..whole_file.len() / 2],
    )
    .unwrap();
    std::fs::write(dir.path().join(".pool-10"), &damaged_file).unwrap();
    let store = FsQueueStore::open_without_fsync(dir.path()).unwrap();
    assert_eq!(store.recover().unwrap(), [whole.id]);
    assert_eq!(store.load(&whole.id).unwrap(), whole);
    let mut content = String::new();
    std::io::Read::read_to_string(&mut store.content(&whole.id).unwrap().reader, &mut content)
        .unwrap();
    assert_eq!(content, "Subject: whole\r\n\r\nsecond try\r\ntail\r\n");
    assert!(pool_files(dir.path()).is_empty());
    assert_eq!(
        std::fs::read(dir.path().join("corrupt").join(".pool-10")).unwrap(),
        damaged_file
    );
}
