//! What a filter decided: at each stage a [`Decision`], and at the end of a message an
//! [`Outcome`], the decision and every change the filter asked for, in order.

use crate::codec::SmtpReply;
use crate::headers::{HeaderEdit, HeaderField, apply_edits};

/// A filter's answer to one stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go on (SMFIR_CONTINUE); at the end of a message, accept it with the changes.
    Continue,
    /// Accept without asking the filter again (SMFIR_ACCEPT): for the rest of the message,
    /// or of the connection when answered to CONNECT or HELO.
    Accept,
    /// Accept the message and throw it away (SMFIR_DISCARD).
    Discard,
    /// Refuse (SMFIR_REJECT): the recipient when answered to RCPT, else the message, or
    /// the connection when answered to CONNECT or HELO. Postfix replies
    /// `550 5.7.1 Command rejected`.
    Reject,
    /// Refuse for now (SMFIR_TEMPFAIL), with the same reach as [`Decision::Reject`].
    /// Postfix replies `451 4.7.1 Service unavailable - try again later`.
    Tempfail,
    /// Refuse and close the SMTP connection (SMFIR_SHUTDOWN; Postfix replies
    /// `421 4.7.0 Server closing connection`).
    Shutdown,
    /// Refuse with this reply (SMFIR_REPLYCODE), with the same reach as
    /// [`Decision::Reject`].
    Reply(SmtpReply),
}

impl Decision {
    /// True when the MTA must refuse what was asked (reject, tempfail, shutdown, a reply).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Decision::Reject | Decision::Tempfail | Decision::Shutdown | Decision::Reply(_)
        )
    }
}

/// A change to the message asked for at its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Modification {
    /// Add, insert, change or delete a header field.
    Header(HeaderEdit),
    /// SMFIR_ADDRCPT, SMFIR_ADDRCPT_PAR: add a recipient (without angle brackets), with
    /// ESMTP parameters.
    AddRecipient {
        /// The address.
        address: String,
        /// Its RCPT parameters, e.g. `NOTIFY=NEVER`.
        args: Vec<String>,
    },
    /// SMFIR_DELRCPT: remove a recipient (without angle brackets).
    DeleteRecipient(String),
    /// SMFIR_CHGFROM: change the envelope sender (without angle brackets; empty for the
    /// null sender), with ESMTP parameters.
    ChangeSender {
        /// The address.
        address: String,
        /// Its MAIL parameters.
        args: Vec<String>,
    },
    /// SMFIR_REPLBODY: the new body, all of the filter's chunks joined.
    ReplaceBody(Vec<u8>),
    /// SMFIR_QUARANTINE: hold the message, for this reason.
    Quarantine(String),
}

/// A filter's verdict on a whole message. The changes are listed even when the decision
/// refuses the message, for logging; the MTA applies them only to mail it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The final decision.
    pub decision: Decision,
    /// The changes, in the order the filter sent them.
    pub modifications: Vec<Modification>,
}

impl Outcome {
    /// An outcome without changes.
    pub fn decided(decision: Decision) -> Outcome {
        Outcome {
            decision,
            modifications: Vec::new(),
        }
    }

    /// The header edits, in order.
    pub fn header_edits(&self) -> impl Iterator<Item = &HeaderEdit> {
        self.modifications.iter().filter_map(|m| match m {
            Modification::Header(edit) => Some(edit),
            _ => None,
        })
    }

    /// Applies the header edits to `fields`, the header section the filter was shown.
    pub fn apply_header_edits(&self, fields: &mut Vec<HeaderField>) {
        apply_edits(fields, self.header_edits());
    }

    /// The replacement body, if the filter sent one.
    pub fn replacement_body(&self) -> Option<&[u8]> {
        self.modifications.iter().find_map(|m| match m {
            Modification::ReplaceBody(body) => Some(body.as_slice()),
            _ => None,
        })
    }
}
