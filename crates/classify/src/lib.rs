//! Posthorn's learning spam classifier: a tokenizer ([`features`]), a count-based model
//! with a ledger of trained messages ([`Model`]) that makes learning idempotent and
//! untraining exact, scoring over layered models ([`score`]), fingerprints that find a
//! filed message's near-copies ([`fingerprint`]), a versioned binary model
//! encoding, and an evaluation ([`eval`]). No file or network I/O: the server stores the
//! encoded models. DESIGN.md argues the choices and gives the cross-validation figures.

mod codec;
pub mod eval;
mod features;
mod fuzzy;
mod hash;
mod model;
mod score;
mod tokenize;

pub use codec::DecodeError;
pub use features::{Features, MAX_FEATURES, MAX_INPUT, digest, features};
pub use fuzzy::{Fingerprint, SLOTS, fingerprint};
pub use model::{Learned, Limits, Model};
pub use score::{Readiness, Verdict, score};

/// The two classes a message is trained as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Unsolicited bulk mail.
    Spam,
    /// Wanted mail.
    Ham,
}
