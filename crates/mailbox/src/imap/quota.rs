//! QUOTA (RFC 9208) for the account's one limit: the quota root `""` covers every folder,
//! its STORAGE usage is the Maildir++ `maildirsize` figure in KiB. Limits are set by the
//! operator in the users file, so SETQUOTA is refused.

use posthorn_maildir::Quota;
use posthorn_maildir::store::{FolderError, Mailbox};

use super::enabled::Enabled;
use super::folders::refusal;
use super::names;
use super::response::Done;
use crate::blocking;

/// The name of the account's one quota root.
const ROOT: &str = "";

/// GETQUOTA root.
pub(super) fn get_quota(
    mailbox: &Mailbox,
    quota: Option<u64>,
    root: &str,
    out: &mut Vec<u8>,
) -> Done {
    match quota {
        Some(limit) if root == ROOT => match write_quota(mailbox, limit, out) {
            Ok(()) => Done::ok("GETQUOTA completed"),
            Err(done) => done,
        },
        _ => Done::no("[NONEXISTENT] no such quota root"),
    }
}

/// GETQUOTAROOT mailbox: the mailbox's roots (none for an account without a limit) and
/// each root's usage.
pub(super) fn get_quota_root(
    mailbox: &Mailbox,
    quota: Option<u64>,
    name: &str,
    enabled: Enabled,
    out: &mut Vec<u8>,
) -> Done {
    if let Err(e) = mailbox.folder(name) {
        return match e {
            FolderError::NotFound => Done::no("[NONEXISTENT] no such mailbox"),
            e => refusal(&e),
        };
    }
    let mut line = b"* QUOTAROOT ".to_vec();
    names::write(&mut line, name, enabled);
    if quota.is_some() {
        line.extend_from_slice(b" \"\"");
    }
    line.extend_from_slice(b"\r\n");
    let mut quota_line = Vec::new();
    if let Some(limit) = quota
        && let Err(done) = write_quota(mailbox, limit, &mut quota_line)
    {
        return done;
    }
    out.extend_from_slice(&line);
    out.extend_from_slice(&quota_line);
    Done::ok("GETQUOTAROOT completed")
}

/// SETQUOTA: the limit is the operator's (RFC 9208 §4.3 lets a server refuse).
pub(super) fn set_quota() -> Done {
    Done::no("[NOPERM] quota limits are set by the administrator")
}

/// `* QUOTA "" (STORAGE used limit)`, in KiB: usage rounded up, the limit down, so a
/// client never sees room that is not there.
fn write_quota(mailbox: &Mailbox, limit: u64, out: &mut Vec<u8>) -> Result<(), Done> {
    let quota = Quota::new(limit);
    let used =
        blocking(|| quota.usage(mailbox.root())).map_err(|e| refusal(&FolderError::Io(e)))?;
    out.extend_from_slice(
        format!(
            "* QUOTA \"\" (STORAGE {} {})\r\n",
            used.div_ceil(1024),
            limit / 1024
        )
        .as_bytes(),
    );
    Ok(())
}
