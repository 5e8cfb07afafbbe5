//! The embedded queue store on a real folder.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use std::io::{Read, Write};

use posthorn_proto::{Mailbox, ReversePath, Status};
use posthorn_spool::{
    ClientInfo, DeliveryState, Diagnostic, DsnAction, Envelope, FsQueueStore, QueueId, QueueStore,
    Recipient, RecipientStatus, Route,
};

fn envelope(id: QueueId, recipients: usize) -> Envelope {
    let sender = Mailbox {
        local: "alice".into(),
        domain: "example.com".into(),
    };
    let recipients = (0..recipients)
        .map(|i| {
            let address = Mailbox {
                local: format!("r{i}"),
                domain: "localhost".into(),
            };
            let route = Route::Local {
                account: format!("r{i}"),
            };
            Recipient::new(address, route)
        })
        .collect();
    Envelope {
        envid: Some("env-1".into()),
        client: ClientInfo {
            ip: Some("127.0.0.1".parse().unwrap()),
            helo: Some("client.example".into()),
        },
        prepend: "Received: test\r\n".into(),
        ..Envelope::new(id, ReversePath::Mailbox(sender), recipients, 1_700_000_000)
    }
}

fn commit(store: &FsQueueStore, content: &[u8], recipients: usize) -> Envelope {
    let id = store.new_id();
    let mut writer = store.writer(id).unwrap();
    writer.write_all(content).unwrap();
    let envelope = envelope(id, recipients);
    writer.commit(Vec::new(), &envelope).wait().unwrap();
    envelope
}

fn read_content(store: &FsQueueStore, id: &QueueId) -> Vec<u8> {
    let mut content = store.content(id).unwrap();
    let mut bytes = Vec::new();
    content.reader.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, content.len);
    bytes
}

#[test]
fn committed_message_loads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open(dir.path()).unwrap();
    store.recover().unwrap();
    let content = b"Subject: x\r\n\r\nbody\x00\xff\r\n";
    let envelope = commit(&store, content, 2);
    assert_eq!(store.load(&envelope.id).unwrap(), envelope);
    assert_eq!(read_content(&store, &envelope.id), content);
    assert_eq!(store.ids().unwrap(), [envelope.id]);
}

#[test]
fn empty_content_is_a_valid_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open(dir.path()).unwrap();
    let envelope = commit(&store, b"", 1);
    assert_eq!(read_content(&store, &envelope.id), b"");
}

#[test]
fn abandoned_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open(dir.path()).unwrap();
    let mut writer = store.writer(store.new_id()).unwrap();
    writer.write_all(b"half a message").unwrap();
    assert_eq!(
        open_files_in(dir.path()),
        1,
        "the unnamed file being written"
    );
    drop(writer);
    assert_eq!(open_files_in(dir.path()), 0);
    assert!(store.ids().unwrap().is_empty());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["tmp"]);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

/// Files under `dir` this process holds open, named or not (the store's own open folder
/// aside).
fn open_files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter(|target| target.starts_with(dir) && target != dir)
        .count()
}

#[test]
fn state_changes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut envelope = {
        let store = FsQueueStore::open(dir.path()).unwrap();
        commit(&store, b"x\r\n", 2)
    };
    let store = FsQueueStore::open(dir.path()).unwrap();
    assert_eq!(store.recover().unwrap(), [envelope.id]);
    envelope.recipients[0].state = DeliveryState {
        status: RecipientStatus::Delivered,
        attempts: 1,
        next_attempt: 0,
        last_attempt: Some(1_700_000_100),
        diagnostic: Some(Diagnostic {
            status: Status::new(2, 0, 0),
            text: "delivered to maildir".into(),
            remote_mta: None,
            smtp_reply: None,
        }),
        dsn_owed: Some(DsnAction::Delivered),
    };
    envelope.recipients[1].state.attempts = 1;
    envelope.recipients[1].state.next_attempt = 1_700_000_400;
    envelope.hold = true;
    store.save_state(&envelope).unwrap();
    let reopened = FsQueueStore::open(dir.path()).unwrap();
    reopened.recover().unwrap();
    assert_eq!(reopened.load(&envelope.id).unwrap(), envelope);
    assert!(!envelope.is_complete());
}

#[test]
fn remove_deletes_message_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open(dir.path()).unwrap();
    let envelope = commit(&store, b"x\r\n", 1);
    store.save_state(&envelope).unwrap();
    store.remove(&envelope.id).unwrap();
    assert!(store.ids().unwrap().is_empty());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["tmp"]);
}

#[test]
fn recovery_wipes_temporaries_and_orphan_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open(dir.path()).unwrap();
    let kept = commit(&store, b"x\r\n", 1);
    std::fs::write(dir.path().join("tmp").join("half"), b"partial").unwrap();
    let orphan = store.new_id();
    std::fs::write(dir.path().join(format!("{orphan}.state")), b"{}").unwrap();
    let reopened = FsQueueStore::open(dir.path()).unwrap();
    assert_eq!(reopened.recover().unwrap(), std::slice::from_ref(&kept.id));
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    assert!(!dir.path().join(format!("{orphan}.state")).exists());
    assert!(reopened.new_id() > kept.id);
}

#[test]
fn damaged_file_is_reported_and_can_be_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open(dir.path()).unwrap();
    let envelope = commit(&store, b"hello\r\n", 1);
    let path = dir.path().join(envelope.id.as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&path, bytes).unwrap();
    let error = store.load(&envelope.id).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    store.quarantine(&envelope.id).unwrap();
    assert!(store.ids().unwrap().is_empty());
    assert!(
        dir.path()
            .join("corrupt")
            .join(envelope.id.as_str())
            .exists()
    );
}

#[test]
fn files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open(dir.path().join("q")).unwrap();
    let envelope = commit(&store, b"x\r\n", 1);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("q")), 0o700);
    assert_eq!(
        mode(&dir.path().join("q").join(envelope.id.as_str())),
        0o600
    );
}

#[test]
fn concurrent_commits_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(FsQueueStore::open(dir.path()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|i| commit(&store, format!("{t}-{i}\r\n").as_bytes(), 1).id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<QueueId> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.sort();
    assert_eq!(store.ids().unwrap(), ids);
}

#[test]
fn written_content_reads_back_and_truncates_before_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsQueueStore::open(dir.path()).unwrap();
    let id = store.new_id();
    let mut writer = store.writer(id).unwrap();
    assert_eq!(writer.read_back(u64::MAX).unwrap(), b"");
    writer
        .write_all(b"Subject: x\r\n\r\nbody\r\n \r\n")
        .unwrap();
    assert_eq!(writer.written(), 23);
    assert_eq!(
        writer.read_back(u64::MAX).unwrap(),
        b"Subject: x\r\n\r\nbody\r\n \r\n"
    );
    writer.truncate(20).unwrap();
    assert_eq!(writer.written(), 20);
    assert_eq!(
        writer.read_back(u64::MAX).unwrap(),
        b"Subject: x\r\n\r\nbody\r\n"
    );
    assert_eq!(writer.read_back(10).unwrap(), b"Subject: x");
    writer.write_all(b"end\r\n").unwrap();
    let envelope = envelope(id, 1);
    writer
        .commit(b"tail\r\n".to_vec(), &envelope)
        .wait()
        .unwrap();
    assert_eq!(
        read_content(&store, &id),
        b"Subject: x\r\n\r\nbody\r\nend\r\ntail\r\n"
    );
}
