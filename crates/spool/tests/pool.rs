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
use posthorn_spool::{Envelope, FsQueueStore, QueueId, QueueStore, Recipient, Route};

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
    let non_empty = || {
        pool.keys()
            .filter(|name| std::fs::metadata(dir.path().join(name)).unwrap().len() > 0)
            .cloned()
            .collect::<Vec<_>>()
    };
    let used = non_empty();
    assert_eq!(used.len(), 1);
    drop(writer);
    assert_eq!(pool_files(dir.path()), pool);
    assert!(non_empty().is_empty());
    assert!(store.ids().unwrap().is_empty());
    // It is the next one handed out.
    let mut writer = store.writer(store.new_id()).unwrap();
    writer.write_all(b"Subject: next\r\n\r\n").unwrap();
    assert_eq!(non_empty(), used);
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

/// A message of `body` committed to `store`, with its envelope.
fn committed(store: &FsQueueStore, body: &[u8]) -> Envelope {
    let envelope = envelope(store);
    let mut writer = store.writer(envelope.id).unwrap();
    writer.write_all(body).unwrap();
    writer.commit(Vec::new(), &envelope).wait().unwrap();
    envelope
}

/// A message of `body` as a spool file, made in a spool of its own.
fn message_file(body: &[u8]) -> (Envelope, Vec<u8>) {
    let made = tempfile::tempdir().unwrap();
    let maker = FsQueueStore::open_without_fsync(made.path()).unwrap();
    let message = committed(&maker, body);
    let file = std::fs::read(made.path().join(message.id.as_str())).unwrap();
    (message, file)
}

/// A spool recovered after a crash that left `file` under the name `name`, and the ids
/// its recovery named.
fn recovered_from(name: &str, file: &[u8]) -> (tempfile::TempDir, FsQueueStore, Vec<QueueId>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), file).unwrap();
    let store = FsQueueStore::open_without_fsync(dir.path()).unwrap();
    let named = store.recover().unwrap();
    (dir, store, named)
}

fn content(store: &FsQueueStore, envelope: &Envelope) -> Vec<u8> {
    let mut content = Vec::new();
    std::io::Read::read_to_end(
        &mut store.content(&envelope.id).unwrap().reader,
        &mut content,
    )
    .unwrap();
    content
}

#[test]
fn a_delivered_message_file_holds_a_later_message_which_recovery_finds_there() {
    let (dir, store, _) = filled_spool();
    let long = committed(&store, &[b'x'; 3000]);
    let path = dir.path().join(long.id.as_str());
    let capacity = std::fs::metadata(&path).unwrap().len();
    assert_eq!(capacity, 4096, "a pool file's message ends its block");
    store.remove(&long.id).unwrap();
    let recycled = dir.path().join(format!(".pool-of-{}", long.id));
    assert_eq!(std::fs::metadata(&recycled).unwrap().len(), capacity);

    // The keeper makes its new name durable when the pool runs low, then hands it out
    // before the files it made.
    let mut later = Vec::new();
    while recycled.exists() {
        assert!(later.len() < 200, "the recycled file was never handed out");
        later.push(committed(&store, b"Subject: short\r\n\r\nbody\r\n"));
    }
    let short = later.pop().unwrap();
    let file = std::fs::read(dir.path().join(short.id.as_str())).unwrap();
    assert_eq!(
        file.len() as u64,
        capacity,
        "written over the old one, not cut short"
    );
    assert_eq!(&file[file.len() - 4..], b"3QHP", "a footer after a gap");
    assert_eq!(store.load(&short.id).unwrap(), short);
    assert_eq!(content(&store, &short), b"Subject: short\r\n\r\nbody\r\n");

    // A crash before its rename: recovery finds it under the recycled name.
    let (crashed, store, named) = recovered_from(&format!(".pool-of-{}", long.id), &file);
    assert_eq!(named, [short.id]);
    assert_eq!(store.load(&short.id).unwrap(), short);
    assert!(pool_files(crashed.path()).is_empty());
}

#[test]
fn recovery_removes_a_recycled_file_that_still_holds_the_message_delivered() {
    let (delivered, file) = message_file(b"Subject: delivered\r\n\r\nbody\r\n");
    // Its footer made void, or not yet on disk; or a later message begun over it.
    let mut void = file.clone();
    let len = void.len();
    void[len - 4..].fill(0);
    let mut overwritten = file.clone();
    overwritten[..8].copy_from_slice(b"Subject:");
    overwritten[9..14].copy_from_slice(b"later");

    for left in [void, file, overwritten] {
        let (dir, _, named) = recovered_from(&format!(".pool-of-{}", delivered.id), &left);
        assert_eq!(named, []);
        assert!(pool_files(dir.path()).is_empty());
        assert!(!dir.path().join("corrupt").exists());
    }
}

#[test]
fn a_gap_before_the_footer_is_read_past_in_version_3_only() {
    let (message, file) = message_file(b"Subject: gap\r\n\r\nbody\r\n");
    assert_eq!(&file[file.len() - 4..], b"2QHP");
    let with_gap = |version: u8| {
        let (front, footer) = file.split_at(file.len() - 28);
        let mut gapped = front.to_vec();
        gapped.extend_from_slice(b"left over from the message before");
        gapped.extend_from_slice(footer);
        let len = gapped.len();
        gapped[len - 28 + 3] = version;
        gapped[len - 4] = version;
        gapped
    };
    for (version, loads) in [(b'3', true), (b'2', false)] {
        let (_dir, store, _) = recovered_from(message.id.as_str(), &with_gap(version));
        match store.load(&message.id) {
            Ok(loaded) => {
                assert!(loads, "version {version} loaded with a gap");
                assert_eq!(loaded, message);
                assert_eq!(content(&store, &message), b"Subject: gap\r\n\r\nbody\r\n");
            }
            Err(e) => {
                assert!(!loads, "version {version}: {e}");
                assert_eq!(e.to_string(), "spool file footer is damaged");
            }
        }
    }
}

#[test]
fn a_message_begun_over_a_recycled_file_leaves_nothing_after_a_crash() {
    let (dir, store, _) = filled_spool();
    let old = committed(&store, &[b'x'; 3000]);
    store.remove(&old.id).unwrap();
    let recycled = dir.path().join(format!(".pool-of-{}", old.id));
    // Writers that have not committed, each writing past where the old message's envelope
    // was: enough to wake the keeper, which makes the recycled file's name durable, its
    // footer void, and puts it on top of the pool; then until one has begun over it.
    let begun = || std::fs::read(&recycled).unwrap()[0] == b'y';
    let ready = || begun() || std::fs::read(&recycled).unwrap().ends_with(&[0; 4]);
    let mut writers = Vec::new();
    let mut write_one = || {
        let mut writer = store.writer(envelope(&store).id).unwrap();
        writer.write_all(&[b'y'; 3500]).unwrap();
        writers.push(writer);
    };
    for _ in 0..20 {
        write_one();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "the keeper never took the file"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    for _ in 0..40 {
        if begun() {
            break;
        }
        write_one();
    }
    assert!(begun(), "the recycled file was not handed out first");
    // A SIGKILL now leaves the file as written: the old footer was made void before, so
    // recovery finds nothing there, not a damaged message.
    let left = std::fs::read(&recycled).unwrap();
    let (crashed, _, named) = recovered_from(&format!(".pool-of-{}", old.id), &left);
    assert_eq!(named, []);
    assert!(pool_files(crashed.path()).is_empty());
    assert!(!crashed.path().join("corrupt").exists());
}
