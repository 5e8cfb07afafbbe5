//! The actions a run hands back, and the rules for gathering them: duplicates collapse
//! (RFC 5228 §2.10.3, §4.1, §4.2), the implicit keep (§2.10.2), and the conflicts of
//! reject (RFC 5429 §2.1) and vacation (RFC 5230 §4.7).

use crate::error::RuntimeError;

/// One thing the server is to do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// File into the user's inbox: an explicit `keep` or the implicit keep.
    Keep {
        flags: Vec<String>,
    },
    FileInto {
        mailbox: String,
        flags: Vec<String>,
        /// `:create` (RFC 5490 §3.2): make the mailbox when it does not exist.
        create: bool,
        /// `:copy` (RFC 3894): told for the record; the implicit keep it left in place
        /// is already in the list.
        copy: bool,
    },
    /// Send the message on to `address`; the caller adds its own loop guard (RFC 5228
    /// §4.2), the count of distinct targets is bounded by `Limits::max_redirects`.
    Redirect {
        address: String,
        copy: bool,
    },
    /// Refuse the message: `extended` is `ereject`, which prefers an SMTP refusal to a
    /// bounce (RFC 5429 §2.1).
    Reject {
        reason: String,
        extended: bool,
    },
    Discard,
    Vacation(Vacation),
}

/// An automatic reply to send unless the caller's records say `to` already had one with
/// this `handle` within `period_seconds` (RFC 5230 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacation {
    /// The envelope sender, whom the reply goes to.
    pub to: String,
    /// `None`: the server builds "Auto: " and the original subject (RFC 5230 §4.3).
    pub subject: Option<String>,
    pub from: Option<String>,
    /// The body; with `mime` it starts with MIME header fields of its own.
    pub reason: String,
    pub mime: bool,
    pub period_seconds: u64,
    /// The key the caller's "already replied" records use: `:handle` when given,
    /// otherwise made from the arguments as Pigeonhole does, so a changed text is a new
    /// vacation.
    pub handle: String,
}

impl Action {
    /// The mailbox a store action files into; `keep` is the inbox.
    fn store_target(&self) -> Option<&str> {
        match self {
            Action::Keep { .. } => Some("INBOX"),
            Action::FileInto { mailbox, .. } => Some(mailbox),
            _ => None,
        }
    }

    fn delivers(&self) -> bool {
        matches!(
            self,
            Action::Keep { .. } | Action::FileInto { .. } | Action::Redirect { .. }
        )
    }
}

fn same_mailbox(a: &str, b: &str) -> bool {
    // RFC 3501 §5.1: INBOX is case-insensitive, every other name is not.
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

/// The actions of one run so far.
pub struct ActionSet {
    actions: Vec<Action>,
    implicit_keep: bool,
    max_actions: usize,
    max_redirects: usize,
}

impl ActionSet {
    pub fn new(max_actions: usize, max_redirects: usize) -> Self {
        ActionSet {
            actions: Vec::new(),
            implicit_keep: true,
            max_actions,
            max_redirects,
        }
    }

    /// Adds an action; `cancels_keep` is false for `:copy` (RFC 3894 §3) and vacation.
    /// A repeat of an action already taken is dropped (§2.10.3) before it can cancel the
    /// implicit keep, as Pigeonhole does; a repeated store only brings its flags.
    pub fn add(&mut self, action: Action, cancels_keep: bool) -> Result<(), RuntimeError> {
        self.check_conflicts(&action)?;
        if let Some(existing) = self.actions.iter_mut().find(|a| repeats(a, &action)) {
            merge_store(existing, action);
            return Ok(());
        }
        if let Action::Redirect { .. } = action {
            let redirects = self
                .actions
                .iter()
                .filter(|a| matches!(a, Action::Redirect { .. }))
                .count();
            if redirects >= self.max_redirects {
                return Err(RuntimeError::TooManyRedirects(self.max_redirects));
            }
        }
        if self.actions.len() >= self.max_actions {
            return Err(RuntimeError::TooManyActions(self.max_actions));
        }
        if cancels_keep {
            self.implicit_keep = false;
        }
        self.actions.push(action);
        Ok(())
    }

    /// RFC 5429 §2.1: a reject cannot go with anything that delivers the message or
    /// answers the sender; RFC 5230 §4.7: one vacation per run.
    fn check_conflicts(&self, action: &Action) -> Result<(), RuntimeError> {
        let has_reject = self
            .actions
            .iter()
            .any(|a| matches!(a, Action::Reject { .. }));
        let conflict = match action {
            Action::Reject { .. } => self
                .actions
                .iter()
                .find(|a| a.delivers() || matches!(a, Action::Reject { .. } | Action::Vacation(_))),
            Action::Vacation(_) => self
                .actions
                .iter()
                .find(|a| matches!(a, Action::Reject { .. } | Action::Vacation(_))),
            a if a.delivers() && has_reject => self
                .actions
                .iter()
                .find(|a| matches!(a, Action::Reject { .. })),
            _ => None,
        };
        match conflict {
            Some(other) => Err(RuntimeError::Conflict(format!(
                "{} conflicts with an earlier {}",
                name(action),
                name(other)
            ))),
            None => Ok(()),
        }
    }

    /// The final list: the implicit keep, if nothing cancelled it, files into the inbox
    /// with the flags in effect at the end (RFC 5232 §3).
    pub fn finish(mut self, flags: Vec<String>) -> Result<Vec<Action>, RuntimeError> {
        if self.implicit_keep {
            self.implicit_keep = false;
            self.add(Action::Keep { flags }, false)?;
        }
        Ok(self.actions)
    }
}

/// Whether `new` does what `existing` already does: stores into the same mailbox
/// (§4.1), redirects to the same address (§4.2), or discards again.
fn repeats(existing: &Action, new: &Action) -> bool {
    match (existing.store_target(), new.store_target()) {
        (Some(a), Some(b)) => return same_mailbox(a, b),
        (None, None) => {}
        _ => return false,
    }
    match (existing, new) {
        (Action::Redirect { address: a, .. }, Action::Redirect { address: b, .. }) => {
            a.eq_ignore_ascii_case(b)
        }
        (Action::Discard, Action::Discard) => true,
        _ => false,
    }
}

/// A second store into the same mailbox is one delivery; its flags replace the
/// earlier ones, as in Pigeonhole.
fn merge_store(existing: &mut Action, new: Action) {
    let (new_flags, new_create) = match new {
        Action::Keep { flags } => (flags, false),
        Action::FileInto { flags, create, .. } => (flags, create),
        _ => return,
    };
    match existing {
        Action::Keep { flags } => *flags = new_flags,
        Action::FileInto { flags, create, .. } => {
            *flags = new_flags;
            *create |= new_create;
        }
        _ => {}
    }
}

fn name(action: &Action) -> &'static str {
    match action {
        Action::Keep { .. } | Action::FileInto { .. } => "store",
        Action::Redirect { .. } => "redirect",
        Action::Reject { .. } => "reject",
        Action::Discard => "discard",
        Action::Vacation(_) => "vacation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(mailbox: &str, flags: &[&str]) -> Action {
        Action::FileInto {
            mailbox: mailbox.into(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            create: false,
            copy: false,
        }
    }

    #[test]
    fn duplicates_collapse_and_last_flags_win() {
        let mut set = ActionSet::new(10, 4);
        set.add(store("X", &["a"]), true).unwrap();
        set.add(store("X", &["b"]), true).unwrap();
        set.add(store("inbox", &[]), true).unwrap();
        set.add(
            Action::Keep {
                flags: vec!["c".into()],
            },
            true,
        )
        .unwrap();
        let actions = set.finish(Vec::new()).unwrap();
        assert_eq!(actions, vec![store("X", &["b"]), store("inbox", &["c"])]);
    }

    #[test]
    fn implicit_keep_unless_cancelled() {
        let mut set = ActionSet::new(10, 4);
        set.add(
            Action::Redirect {
                address: "a@b".into(),
                copy: true,
            },
            false,
        )
        .unwrap();
        assert_eq!(
            set.finish(vec!["\\Seen".into()]).unwrap().last(),
            Some(&Action::Keep {
                flags: vec!["\\Seen".into()]
            })
        );
        let mut set = ActionSet::new(10, 4);
        set.add(Action::Discard, true).unwrap();
        assert_eq!(set.finish(Vec::new()).unwrap(), vec![Action::Discard]);
    }

    #[test]
    fn limits_and_conflicts() {
        let mut set = ActionSet::new(10, 2);
        for addr in ["a@x", "A@X", "b@x"] {
            set.add(
                Action::Redirect {
                    address: addr.into(),
                    copy: false,
                },
                true,
            )
            .unwrap();
        }
        assert_eq!(
            set.add(
                Action::Redirect {
                    address: "c@x".into(),
                    copy: false
                },
                true
            ),
            Err(RuntimeError::TooManyRedirects(2))
        );
        assert!(matches!(
            set.add(
                Action::Reject {
                    reason: "no".into(),
                    extended: false
                },
                true
            ),
            Err(RuntimeError::Conflict(_))
        ));
        let mut set = ActionSet::new(1, 4);
        set.add(Action::Discard, true).unwrap();
        assert_eq!(
            set.add(store("Y", &[]), true),
            Err(RuntimeError::TooManyActions(1))
        );
    }
}
