//! Training signals for the spam classifier from the way a user files mail (Posthorn issue
//! 18): moving or copying a message into the Junk folder, or appending it there, teaches
//! spam; moving it out of Junk teaches ham, unless it goes to Trash (deleting junk says
//! nothing new about it). The `$Junk` and `$NotJunk` keywords of the IMAP keyword registry
//! (RFC 5788), which Thunderbird and Apple Mail set, teach the same when a STORE makes one
//! of them the message's verdict. The folders are known by their special use (RFC 6154),
//! as clients find them.
//!
//! The rules decide; [`Lessons`] gathers what one command taught and hands it to the
//! server's [`Learner`] once the command's change is on disk.

use std::sync::Arc;

use posthorn_maildir::store::{Flags, Folder, Mailbox};

use super::command::Flag;
use crate::access::{Class, Learner, Lesson};

/// The keyword a client sets on a message it files as junk.
const JUNK: &str = "$Junk";
/// The keyword a client sets on a message it files as not junk.
const NOT_JUNK: &str = "$NotJunk";

/// True if the folder `name` has the special use `usage`.
fn has_use(name: &str, usage: &str) -> bool {
    Mailbox::special_use(name) == Some(usage)
}

/// What copying or moving a message from the folder `source` into `target` teaches.
pub(super) fn of_filing(source: &str, target: &str) -> Option<Class> {
    match (has_use(source, "\\Junk"), has_use(target, "\\Junk")) {
        (false, true) => Some(Class::Spam),
        (true, false) if !has_use(target, "\\Trash") => Some(Class::Ham),
        _ => None,
    }
}

/// What appending a message to the folder `target` teaches.
pub(super) fn of_append(target: &str) -> Option<Class> {
    has_use(target, "\\Junk").then_some(Class::Spam)
}

/// What a change of a message's flags from `before` to `after` teaches: the verdict its
/// keywords give, when the change made it. A message that gains `$Junk` without ending
/// with `$NotJunk` is spam and the reverse ham; so is one left with one of them after a
/// `-FLAGS`, as Thunderbird's "junk" and "not junk" add the one keyword and then remove the
/// other in two commands. A keyword the message already had teaches nothing again.
pub(super) fn of_keywords(before: &Flags, after: &Flags) -> Option<Class> {
    let now = verdict(after)?;
    (verdict(before) != Some(now)).then_some(now)
}

/// What a message's keywords say it is: one of `$Junk` and `$NotJunk` without the other.
/// Keywords compare case-insensitively (RFC 3501 §2.3.2).
fn verdict(flags: &Flags) -> Option<Class> {
    let junk = flags.contains(&Flag::Keyword(JUNK.into()));
    let not_junk = flags.contains(&Flag::Keyword(NOT_JUNK.into()));
    match (junk, not_junk) {
        (true, false) => Some(Class::Spam),
        (false, true) => Some(Class::Ham),
        _ => None,
    }
}

/// What one command taught, for one account.
pub(super) struct Lessons {
    /// `None` when the server trains nothing: then nothing is gathered either.
    learner: Option<Arc<dyn Learner>>,
    account: String,
    found: Vec<Lesson>,
}

impl Lessons {
    /// Lessons of `account`, for `learner`.
    pub(super) fn new(learner: Option<&Arc<dyn Learner>>, account: &str) -> Lessons {
        Lessons {
            learner: learner.cloned(),
            account: account.to_string(),
            found: Vec::new(),
        }
    }

    /// Notes that the message `file` of `folder` is of `class`.
    pub(super) fn add(&mut self, folder: &Folder, file: &str, class: Class) {
        if self.learner.is_some() {
            self.found.push(Lesson {
                account: self.account.clone(),
                folder: folder.clone(),
                file: file.to_string(),
                class,
            });
        }
    }

    /// Gives the learner everything gathered, in one call; none when nothing was.
    pub(super) fn hand_over(self) {
        if let Some(learner) = self.learner
            && !self.found.is_empty()
        {
            learner.learn(self.found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(keywords: &[&str]) -> Flags {
        let mut flags = Flags::default();
        for k in keywords {
            flags.insert(&Flag::Keyword((*k).into()));
        }
        flags
    }

    #[test]
    fn filing_into_and_out_of_junk() {
        assert_eq!(of_filing("INBOX", "Junk"), Some(Class::Spam));
        assert_eq!(of_filing("Trash", "Junk"), Some(Class::Spam));
        assert_eq!(of_filing("Junk", "INBOX"), Some(Class::Ham));
        assert_eq!(of_filing("Junk", "Archive.2024"), Some(Class::Ham));
        assert_eq!(of_filing("Junk", "Trash"), None);
        assert_eq!(of_filing("INBOX", "Archive"), None);
        assert_eq!(
            of_filing("INBOX", "junk"),
            None,
            "only the special-use folder"
        );
        assert_eq!(of_append("Junk"), Some(Class::Spam));
        assert_eq!(of_append("INBOX"), None);
    }

    #[test]
    fn keywords_teach_when_their_verdict_changes() {
        let cases: [(&[&str], &[&str], Option<Class>); 11] = [
            (&[], &["$Junk"], Some(Class::Spam)),
            (&[], &["$junk"], Some(Class::Spam)),
            (&["$Junk"], &["$Junk"], None),
            (&["$Junk"], &[], None),
            (&[], &["$Junk", "$NotJunk"], None),
            (&["$Junk"], &["$NotJunk"], Some(Class::Ham)),
            (&[], &["$NOTJUNK"], Some(Class::Ham)),
            (&["$NotJunk"], &["$NotJunk", "$Junk"], None),
            // Thunderbird's second command, -FLAGS of the other keyword.
            (&["$NotJunk", "$Junk"], &["$NotJunk"], Some(Class::Ham)),
            (&["$NotJunk", "$Junk"], &["$Junk"], Some(Class::Spam)),
            (&["$Junk", "Work"], &["$Junk"], None),
        ];
        for (before, after, class) in cases {
            assert_eq!(
                of_keywords(&flags(before), &flags(after)),
                class,
                "{before:?} -> {after:?}"
            );
        }
    }
}
