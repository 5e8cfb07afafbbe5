//! The changes a filter asks for at the end of a message: each checked against the actions
//! it negotiated, converted to the MTA's form (addresses without angle brackets, header
//! values as they follow the colon), and counted against the [`Limits`].

use crate::codec::{Actions, Protocol, Reply};
use crate::error::MilterError;
use crate::headers::wire::from_wire;
use crate::headers::{HeaderEdit, HeaderField};
use crate::negotiate::Negotiated;
use crate::options::Limits;
use crate::outcome::Modification;
use crate::stage::END_OF_MESSAGE;

/// The changes collected so far for one message.
pub(crate) struct Changes {
    actions: Actions,
    leading_space: bool,
    limits: Limits,
    modifications: Vec<Modification>,
    body_octets: usize,
    other_octets: usize,
    /// Where the replacement body is in the list, once begun.
    body_at: Option<usize>,
}

impl Changes {
    pub(crate) fn new(negotiated: &Negotiated, limits: Limits) -> Changes {
        Changes {
            actions: negotiated.actions,
            leading_space: negotiated.wants(Protocol::HEADER_LEADING_SPACE),
            limits,
            modifications: Vec::new(),
            body_octets: 0,
            other_octets: 0,
            body_at: None,
        }
    }

    /// Records `reply` if it is a change; hands it back if it is not (a decision, or
    /// something the caller refuses).
    pub(crate) fn take(&mut self, reply: Reply) -> Result<Option<Reply>, MilterError> {
        if let Reply::ReplaceBody(chunk) = reply {
            self.require(Actions::CHANGE_BODY, "SMFIR_REPLBODY")?;
            return self.replace_body(chunk).map(|()| None);
        }
        let Some(change) = self.modification(&reply)? else {
            return Ok(Some(reply));
        };
        self.count(&change)?;
        self.modifications.push(change);
        Ok(None)
    }

    pub(crate) fn into_modifications(self) -> Vec<Modification> {
        self.modifications
    }

    fn require(&self, action: Actions, reply: &'static str) -> Result<(), MilterError> {
        if self.actions.contains(action) {
            Ok(())
        } else {
            Err(MilterError::Unexpected {
                stage: END_OF_MESSAGE.name,
                reply,
            })
        }
    }

    /// Adds a chunk of the replacement body: the first chunk takes its place in the
    /// list, later ones are joined to it.
    fn replace_body(&mut self, chunk: Vec<u8>) -> Result<(), MilterError> {
        self.body_octets += chunk.len();
        if self.body_octets > self.limits.replacement_body {
            return Err(MilterError::TooLarge {
                what: "replacement body",
                limit: self.limits.replacement_body,
            });
        }
        match self.body_at.and_then(|at| self.modifications.get_mut(at)) {
            Some(Modification::ReplaceBody(body)) => body.extend_from_slice(&chunk),
            _ => {
                self.body_at = Some(self.modifications.len());
                self.modifications.push(Modification::ReplaceBody(chunk));
            }
        }
        Ok(())
    }

    fn count(&mut self, change: &Modification) -> Result<(), MilterError> {
        let size = match change {
            Modification::Header(HeaderEdit::Add(field))
            | Modification::Header(HeaderEdit::Insert { field, .. })
            | Modification::Header(HeaderEdit::Change { field, .. }) => {
                field.name.len() + field.value.len()
            }
            Modification::Header(HeaderEdit::Delete { name, .. }) => name.len(),
            Modification::AddRecipient { address, args }
            | Modification::ChangeSender { address, args } => {
                address.len() + args.iter().map(String::len).sum::<usize>()
            }
            Modification::DeleteRecipient(text) | Modification::Quarantine(text) => text.len(),
            Modification::ReplaceBody(body) => body.len(),
        };
        // Each change also costs its bookkeeping, so even empty ones add up.
        self.other_octets += size + 16;
        if self.other_octets > self.limits.changes {
            return Err(MilterError::TooLarge {
                what: "changes",
                limit: self.limits.changes,
            });
        }
        Ok(())
    }

    /// The change `reply` asks for, or `None` if it is not a change (but a decision).
    fn modification(&self, reply: &Reply) -> Result<Option<Modification>, MilterError> {
        let leading_space = self.leading_space;
        let field = |name: &str, value: &[u8]| -> Result<HeaderField, MilterError> {
            let value = from_wire(value, leading_space).map_err(MilterError::BadChange)?;
            Ok(HeaderField::new(name, value))
        };
        let index = |index: &u32| usize::try_from(*index).unwrap_or(usize::MAX);
        let change = match reply {
            Reply::AddHeader { name, value } => {
                self.require(Actions::ADD_HEADERS, reply.name())?;
                Modification::Header(HeaderEdit::Add(field(name, value)?))
            }
            Reply::InsertHeader {
                index: at,
                name,
                value,
            } => {
                self.require(Actions::ADD_HEADERS, reply.name())?;
                Modification::Header(HeaderEdit::Insert {
                    index: index(at),
                    field: field(name, value)?,
                })
            }
            Reply::ChangeHeader {
                index: at,
                name,
                value,
            } => {
                self.require(Actions::CHANGE_HEADERS, reply.name())?;
                Modification::Header(if value.is_empty() {
                    HeaderEdit::Delete {
                        index: index(at),
                        name: name.clone(),
                    }
                } else {
                    HeaderEdit::Change {
                        index: index(at),
                        field: field(name, value)?,
                    }
                })
            }
            Reply::AddRecipient(address) => {
                self.require(Actions::ADD_RECIPIENTS, reply.name())?;
                Modification::AddRecipient {
                    address: bare_address(address)?,
                    args: Vec::new(),
                }
            }
            Reply::AddRecipientWithArgs { recipient, args } => {
                self.require(Actions::ADD_RECIPIENTS_WITH_ARGS, reply.name())?;
                Modification::AddRecipient {
                    address: bare_address(recipient)?,
                    args: split_args(args.as_deref())?,
                }
            }
            Reply::DeleteRecipient(address) => {
                self.require(Actions::DELETE_RECIPIENTS, reply.name())?;
                Modification::DeleteRecipient(bare_address(address)?)
            }
            Reply::ChangeSender { sender, args } => {
                self.require(Actions::CHANGE_SENDER, reply.name())?;
                Modification::ChangeSender {
                    address: bare_address(sender)?,
                    args: split_args(args.as_deref())?,
                }
            }
            Reply::Quarantine(reason) => {
                self.require(Actions::QUARANTINE, reply.name())?;
                Modification::Quarantine(reason.clone())
            }
            _ => return Ok(None),
        };
        Ok(Some(change))
    }
}

/// An address from the filter without its angle brackets; control characters would
/// corrupt the envelope and are refused.
fn bare_address(address: &str) -> Result<String, MilterError> {
    let trimmed = address.trim();
    let bare = trimmed
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(trimmed);
    if bare.chars().any(char::is_control) {
        return Err(MilterError::BadChange(
            "an address holds control characters",
        ));
    }
    Ok(bare.to_string())
}

/// ESMTP parameters from the filter, separated by spaces.
fn split_args(args: Option<&str>) -> Result<Vec<String>, MilterError> {
    let args = args.unwrap_or_default();
    if args.chars().any(|c| c.is_control() && c != '\t') {
        return Err(MilterError::BadChange("parameters hold control characters"));
    }
    Ok(args.split_whitespace().map(str::to_string).collect())
}
