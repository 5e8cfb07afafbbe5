//! What the recipient's own mail taught (`crate::learning`): the classifier's verdict, a
//! near-copy of a message the user filed, and the sender's standing with the account, as
//! symbols. A standing that lowers the score
//! needs an authenticated From (DMARC, aligned DKIM, or SPF of the same domain), so a
//! forged From of a friend gains nothing; one that raises it needs none.

use posthorn_classify::Class;
use posthorn_proto::Mailbox;

use crate::config::Classifier;
use crate::learning::Learning;
use crate::mailauth::verify::AuthResults;

use super::auth::has_aligned_dkim;
use super::symbols::{Scores, Symbol};

/// What to ask about one message.
pub(crate) struct Question {
    /// The one account the message goes to; `None` for mail to several accounts, which
    /// only the global model scores.
    pub account: Option<String>,
    /// The From address, lower-case.
    pub author: Option<String>,
    /// True when the From address is authenticated.
    pub verified: bool,
}

impl Question {
    /// The question for a message to `accounts` from `authors`, sent by `sender`.
    pub(crate) fn new(
        accounts: &[String],
        authors: &[Mailbox],
        sender: Option<&Mailbox>,
        auth: Option<&AuthResults>,
    ) -> Question {
        let mut distinct = accounts.to_vec();
        distinct.sort();
        distinct.dedup();
        let author = authors.first();
        let verified = auth.zip(author).is_some_and(|(results, author)| {
            let from = author.domain.to_lowercase();
            results.dmarc == "pass"
                || has_aligned_dkim(results)
                || (results.spf == "pass"
                    && sender.is_some_and(|s| s.domain.eq_ignore_ascii_case(&from)))
        });
        Question {
            account: (distinct.len() == 1).then(|| distinct.remove(0)),
            author: author.map(|a| a.to_string().to_lowercase()),
            verified,
        }
    }
}

/// The symbols for a message with `content`. Blocking: it may read an account's model.
pub(crate) fn symbols(
    learning: &Learning,
    settings: &Classifier,
    reputation: bool,
    question: &Question,
    content: &[u8],
    scores: &Scores,
) -> Vec<Symbol> {
    let mut symbols = Vec::new();
    let account = question.account.as_deref();
    if settings.enabled
        && let Some((verdict, own)) = learning.score(account, content)
    {
        let p = verdict.spam_probability;
        let detail = format!("{p:.3} {}", if own { "account" } else { "global" });
        if p >= settings.spam_probability {
            symbols.push(scores.symbol("BAYES_SPAM", detail));
        } else if p <= settings.ham_probability {
            symbols.push(scores.symbol("BAYES_HAM", detail));
        }
    }
    if let Some(name) = account
        && learning.has_lookalikes(name)
        && let Some(fingerprint) = posthorn_classify::fingerprint(content)
        && let Some((class, similarity)) = learning.lookalike(name, &fingerprint)
    {
        let name = match class {
            Class::Spam => "JUNK_LOOKALIKE",
            Class::Ham => "KEPT_LOOKALIKE",
        };
        symbols.push(scores.symbol(name, format!("{similarity:.2}")));
    }
    let standing = account
        .zip(question.author.as_deref())
        .filter(|_| reputation)
        .and_then(|(account, author)| Some((author, learning.standing(account, author)?)));
    let wrote_to_address = standing.is_some_and(|(_, s)| s.sent > 0);
    let domain = question.author.as_deref().and_then(|a| a.rsplit_once('@'));
    if let (Some(account), Some((_, domain)), false, true, true) = (
        account,
        domain,
        wrote_to_address,
        reputation,
        question.verified,
    ) && learning
        .standing(account, &format!("@{domain}"))
        .is_some_and(|s| s.sent > 0)
    {
        symbols.push(scores.symbol("FROM_CORRESPONDENT_DOMAIN", domain));
    }
    if let Some((author, standing)) = standing {
        if standing.sent > 0 && question.verified {
            symbols.push(scores.symbol("FROM_CORRESPONDENT", author));
        }
        // A tie goes to the user's trust: filing a sender's mail out of Junk once
        // undoes having junked it once.
        if standing.junked > standing.kept {
            symbols.push(scores.symbol("FROM_JUNKED", author));
        } else if standing.kept > 0 && question.verified {
            symbols.push(scores.symbol("FROM_KEPT", author));
        }
    }
    symbols
}
