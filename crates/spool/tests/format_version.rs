//! Files the spool must refuse rather than misread: a later format version, keys version 1
//! does not know; and the leniency version 1 keeps for files of its first releases.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

use std::path::{Path, PathBuf};

use posthorn_spool::{FsQueueStore, QueueId, QueueStore};

/// A golden message with seven recipients and a state file (see `golden_v1.rs`).
const MESSAGE: &str = "0dz8k2m4q6s8v0x1";
/// A golden message whose flags are all false and whose recipients owe no DSN.
const PLAIN: &str = "0dz8k2m4q6s8v0x5";

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/v1")
            .join(name),
    )
    .unwrap()
}

fn id(text: &str) -> QueueId {
    QueueId::try_from(text.to_string()).unwrap()
}

/// A spool holding `files` (name, octets).
fn spool(files: &[(String, Vec<u8>)]) -> (tempfile::TempDir, FsQueueStore) {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let store = FsQueueStore::open_without_fsync(dir.path()).unwrap();
    store.recover().unwrap();
    (dir, store)
}

/// A message file's content and envelope, split by its footer.
fn split(file: &[u8]) -> (&[u8], &str) {
    let footer = &file[file.len() - 24..];
    let content_len = u64::from_le_bytes(footer[4..12].try_into().unwrap()) as usize;
    let (content, rest) = file.split_at(content_len);
    (
        content,
        std::str::from_utf8(&rest[..rest.len() - 24]).unwrap(),
    )
}

/// A version 1 message file, laid out by hand: content, envelope, then the footer `PHQ1`,
/// content length, envelope length (both 64-bit little-endian), `1QHP`.
fn message_file(content: &[u8], envelope: &str) -> Vec<u8> {
    let mut file = content.to_vec();
    file.extend_from_slice(envelope.as_bytes());
    file.extend_from_slice(b"PHQ1");
    file.extend_from_slice(&(content.len() as u64).to_le_bytes());
    file.extend_from_slice(&(envelope.len() as u64).to_le_bytes());
    file.extend_from_slice(b"1QHP");
    file
}

fn load_error(store: &FsQueueStore, name: &str) -> std::io::Error {
    let error = store.load(&id(name)).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
    error
}

fn set_aside(dir: &Path, store: &FsQueueStore, name: &str) -> PathBuf {
    store.quarantine(&id(name)).unwrap();
    assert!(store.ids().unwrap().is_empty());
    dir.join("corrupt")
}

#[test]
fn the_hand_made_layout_is_the_golden_one() {
    let file = golden(MESSAGE);
    let (content, envelope) = split(&file);
    assert_eq!(message_file(content, envelope), file);
}

#[test]
fn a_message_of_a_later_version_is_refused_and_can_be_set_aside() {
    let mut file = golden(MESSAGE);
    let len = file.len();
    file[len - 24..len - 20].copy_from_slice(b"PHQ4");
    file[len - 4..].copy_from_slice(b"4QHP");
    let (dir, store) = spool(&[(MESSAGE.to_string(), file.clone())]);
    let error = load_error(&store, MESSAGE);
    assert_eq!(
        error.to_string(),
        "spool file is in format version 4; this release reads versions 1 to 3 only"
    );
    let corrupt = set_aside(dir.path(), &store, MESSAGE);
    assert_eq!(std::fs::read(corrupt.join(MESSAGE)).unwrap(), file);
}

#[test]
fn a_state_file_of_a_later_version_is_refused_and_set_aside_with_its_message() {
    let state = format!("{MESSAGE}.state");
    let later = String::from_utf8(golden(&state))
        .unwrap()
        .replacen('{', "{\"version\":2,", 1);
    let (dir, store) = spool(&[
        (MESSAGE.to_string(), golden(MESSAGE)),
        (state.clone(), later.clone().into_bytes()),
    ]);
    let error = load_error(&store, MESSAGE);
    assert_eq!(
        error.to_string(),
        "state file names format version 2; this release reads version 1 only, which names none"
    );
    let corrupt = set_aside(dir.path(), &store, MESSAGE);
    assert_eq!(
        std::fs::read_to_string(corrupt.join(&state)).unwrap(),
        later
    );
}

#[test]
fn an_envelope_key_version_1_does_not_know_is_refused() {
    let file = golden(PLAIN);
    let (content, envelope) = split(&file);
    let unknown = envelope.replacen(
        "\"smtputf8\":false",
        "\"smtputf8\":false,\"requiretls\":true",
        1,
    );
    assert_ne!(unknown, envelope);
    let (_dir, store) = spool(&[(PLAIN.to_string(), message_file(content, &unknown))]);
    let error = load_error(&store, PLAIN);
    assert!(
        error.to_string().contains("unknown field `requiretls`"),
        "{error}"
    );
}

#[test]
fn a_state_key_version_1_does_not_know_is_refused() {
    let state = format!("{PLAIN}.state");
    let unknown = String::from_utf8(golden(&state)).unwrap().replacen(
        "\"hold\":",
        "\"frozen\":true,\"hold\":",
        1,
    );
    let (_dir, store) = spool(&[
        (PLAIN.to_string(), golden(PLAIN)),
        (state, unknown.into_bytes()),
    ]);
    let error = load_error(&store, PLAIN);
    assert!(
        error.to_string().contains("unknown field `frozen`"),
        "{error}"
    );
}

/// Files written before `hold`, `delay_notified`, `postmaster_notice`, `quarantine` and
/// `dsn_owed` existed lack them; they load with the defaults.
#[test]
fn keys_added_after_the_first_release_may_be_missing() {
    let file = golden(PLAIN);
    let (content, envelope) = split(&file);
    let old = envelope.replace(",\"dsn_owed\":null", "").replace(
        ",\"hold\":false,\"delay_notified\":false,\"postmaster_notice\":false,\"quarantine\":false",
        "",
    );
    assert!(
        !old.contains("dsn_owed") && !old.contains("quarantine"),
        "{old}"
    );
    let (_dir, store) = spool(&[(PLAIN.to_string(), message_file(content, &old))]);
    let (_golden_dir, golden_store) = spool(&[(PLAIN.to_string(), file.clone())]);
    assert_eq!(
        store.load(&id(PLAIN)).unwrap(),
        golden_store.load(&id(PLAIN)).unwrap()
    );
}
