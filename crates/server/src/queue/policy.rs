//! What an attempt's outcome means for a recipient: when to try again, when to give up,
//! and which delivery status notification the sender is owed (RFC 3461 §4.1, RFC 3464).
//!
//! Everything here is a function of explicit times, so the whole life of a message (the
//! back-off steps, the one "delayed" notice, expiry and its bounce) is tested by handing in
//! the clock's readings instead of waiting for them.

use std::time::Duration;

use posthorn_proto::{Notify, Status};
use posthorn_spool::{DeliveryState, Diagnostic, DsnAction, Envelope, Recipient, RecipientStatus};

/// What became of one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered, or handed to the next hop; `dsn` is the success notice the sender may be
    /// owed (none when the next hop took over DSN duty).
    Delivered {
        /// What the final or next hop said.
        diagnostic: Diagnostic,
        /// `Delivered` for a mailbox here, `Relayed` for a hop without DSN support, `None`
        /// when the next hop was given the sender's NOTIFY request.
        dsn: Option<DsnAction>,
    },
    /// Not now: try again later.
    Deferred(Diagnostic),
    /// Never: give up on this recipient.
    Failed(Diagnostic),
}

/// The retry, expiry and notification rules.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Waits after each failed attempt; the last one repeats.
    pub retry_schedule: Vec<Duration>,
    /// Seconds after arrival when a recipient still pending is given up.
    pub max_lifetime: u64,
    /// Seconds after arrival when the sender is told, once, that delivery is delayed; 0
    /// never.
    pub delay_warning: u64,
}

impl Policy {
    /// The wait after the `attempts`-th failed attempt.
    pub fn retry_delay(&self, attempts: u32) -> u64 {
        let last = self.retry_schedule.len().saturating_sub(1);
        let step = (attempts.max(1) as usize - 1).min(last);
        self.retry_schedule
            .get(step)
            .map_or(300, |d| d.as_secs().max(1))
    }

    /// Records the outcome of an attempt at `now` on recipient `recipient` of a message
    /// that arrived at `arrival`.
    pub fn record(&self, recipient: &mut Recipient, arrival: u64, outcome: Outcome, now: u64) {
        let notify = recipient.notify;
        let state = &mut recipient.state;
        state.attempts += 1;
        state.last_attempt = Some(now);
        match outcome {
            Outcome::Delivered { diagnostic, dsn } => {
                state.status = RecipientStatus::Delivered;
                state.diagnostic = Some(diagnostic);
                state.dsn_owed = dsn.filter(|_| wants(notify, DsnAction::Delivered));
            }
            Outcome::Failed(diagnostic) => give_up(state, notify, diagnostic),
            Outcome::Deferred(diagnostic) if now >= arrival.saturating_add(self.max_lifetime) => {
                let days = self.max_lifetime as f64 / 86_400.0;
                state.status = RecipientStatus::Expired;
                state.diagnostic = Some(Diagnostic {
                    status: Status::new(4, 4, 7),
                    text: format!(
                        "delivery time expired after {days:.1} days; last error: {}",
                        diagnostic
                    ),
                    ..diagnostic
                });
                state.dsn_owed = wants(notify, DsnAction::Failed).then_some(DsnAction::Failed);
            }
            Outcome::Deferred(diagnostic) => {
                state.status = RecipientStatus::Pending;
                state.next_attempt = now + self.retry_delay(state.attempts);
                state.diagnostic = Some(diagnostic);
            }
        }
    }

    /// Gives up on every pending recipient with `diagnostic` (an operator's decision), owing
    /// the sender a failure notice where NOTIFY allows.
    pub fn fail_pending(
        &self,
        envelope: &mut Envelope,
        diagnostic: &Diagnostic,
        now: u64,
    ) -> usize {
        let arrival = envelope.arrival;
        let mut failed = 0;
        for recipient in &mut envelope.recipients {
            if recipient.state.status == RecipientStatus::Pending {
                self.record(recipient, arrival, Outcome::Failed(diagnostic.clone()), now);
                failed += 1;
            }
        }
        failed
    }

    /// The recipients a "delayed" notice should name now, if one is due: once per message,
    /// after `delay_warning`, never for a bounce (null sender).
    pub fn delay_notice(&self, envelope: &Envelope, now: u64) -> Vec<usize> {
        let due = self.delay_warning > 0
            && !envelope.delay_notified
            && envelope.sender.mailbox().is_some()
            && now >= envelope.arrival.saturating_add(self.delay_warning);
        if !due {
            return Vec::new();
        }
        envelope
            .recipients
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.state.status == RecipientStatus::Pending && wants(r.notify, DsnAction::Delayed)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// When the message must next be looked at: its earliest pending recipient, or `None`
    /// when nothing is pending.
    pub fn next_due(envelope: &Envelope) -> Option<u64> {
        envelope
            .recipients
            .iter()
            .filter(|r| r.state.status == RecipientStatus::Pending)
            .map(|r| r.state.next_attempt)
            .min()
    }
}

/// A recipient refused as the message arrived, though the message was accepted for
/// others (its Sieve script rejected it, RFC 5429 §2.1.2): a failed attempt at `now`, so
/// the sender's notice is written with the message's first write-back.
pub fn refused_on_arrival(recipient: &mut Recipient, diagnostic: Diagnostic, now: u64) {
    recipient.state.attempts += 1;
    recipient.state.last_attempt = Some(now);
    give_up(&mut recipient.state, recipient.notify, diagnostic);
}

/// Final failure: the sender is owed a notice unless NOTIFY declined it.
fn give_up(state: &mut DeliveryState, notify: Option<Notify>, diagnostic: Diagnostic) {
    state.status = RecipientStatus::Failed;
    state.diagnostic = Some(diagnostic);
    state.dsn_owed = wants(notify, DsnAction::Failed).then_some(DsnAction::Failed);
}

/// Whether the sender asked for (or, without NOTIFY, gets by default) a notice of `action`
/// (RFC 3461 §4.1: without NOTIFY, failures and delays are reported, successes are not).
fn wants(notify: Option<Notify>, action: DsnAction) -> bool {
    match (notify, action) {
        (None, DsnAction::Failed | DsnAction::Delayed) => true,
        (None, DsnAction::Delivered | DsnAction::Relayed) => false,
        (Some(n), DsnAction::Failed) => n.failure,
        (Some(n), DsnAction::Delayed) => n.delay,
        (Some(n), DsnAction::Delivered | DsnAction::Relayed) => n.success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posthorn_proto::{Mailbox, ReversePath};
    use posthorn_spool::{IdGenerator, Route};

    const DAY: u64 = 86_400;
    const HOUR: u64 = 3_600;

    fn policy() -> Policy {
        Policy {
            retry_schedule: [60, 300, 900, 1800, 3600, 7200]
                .map(Duration::from_secs)
                .to_vec(),
            max_lifetime: 5 * DAY,
            delay_warning: 4 * HOUR,
        }
    }

    fn envelope(notify: Option<Notify>, sender: ReversePath) -> Envelope {
        let address = Mailbox {
            local: "r".into(),
            domain: "remote.example".into(),
        };
        let recipient = Recipient {
            notify,
            ..Recipient::new(address, Route::Remote)
        };
        Envelope::new(
            IdGenerator::default().generate(),
            sender,
            vec![recipient],
            1_000_000,
        )
    }

    fn sender() -> ReversePath {
        ReversePath::Mailbox(Mailbox {
            local: "s".into(),
            domain: "here.example".into(),
        })
    }

    fn temporary() -> Diagnostic {
        Diagnostic {
            status: Status::new(4, 4, 1),
            text: "connection refused".into(),
            remote_mta: Some("mx.remote.example".into()),
            smtp_reply: None,
        }
    }

    /// Plays a recipient that always fails temporarily, with a clock that jumps to each next
    /// attempt; records the attempt times, when the delay notice fell due, and the end.
    #[test]
    fn full_life_of_an_undeliverable_message() {
        let policy = policy();
        let mut env = envelope(None, sender());
        let mut now = env.arrival;
        let mut attempts = Vec::new();
        let mut delay_notices = Vec::new();
        loop {
            attempts.push(now - env.arrival);
            policy.record(
                &mut env.recipients[0],
                env.arrival,
                Outcome::Deferred(temporary()),
                now,
            );
            if !policy.delay_notice(&env, now).is_empty() {
                delay_notices.push(now - env.arrival);
                env.delay_notified = true;
            }
            match Policy::next_due(&env) {
                Some(due) => now = due,
                None => break,
            }
        }
        // 0, +1m, +5m, +15m, +30m, +1h, then every 2h.
        assert_eq!(&attempts[..7], &[0, 60, 360, 1260, 3060, 6660, 13860]);
        assert!(attempts.windows(2).skip(6).all(|w| w[1] - w[0] == 7200));
        assert_eq!(delay_notices.len(), 1, "the delay notice is sent once");
        assert!((4 * HOUR..4 * HOUR + 7200).contains(&delay_notices[0]));
        let last = *attempts.last().unwrap();
        assert!(
            (5 * DAY..5 * DAY + 7200).contains(&last),
            "expires at 5 days: {last}"
        );
        let state = &env.recipients[0].state;
        assert_eq!(state.status, RecipientStatus::Expired);
        assert_eq!(state.dsn_owed, Some(DsnAction::Failed));
        let diagnostic = state.diagnostic.as_ref().unwrap();
        assert_eq!(diagnostic.status, Status::new(4, 4, 7));
        assert!(diagnostic.text.contains("connection refused"));
        assert_eq!(diagnostic.remote_mta.as_deref(), Some("mx.remote.example"));
    }

    #[test]
    fn notify_decides_which_notices_are_owed() {
        let policy = policy();
        let delivered = Diagnostic {
            status: Status::new(2, 0, 0),
            text: "ok".into(),
            remote_mta: None,
            smtp_reply: None,
        };
        let success = Notify {
            success: true,
            ..Notify::NEVER
        };
        let cases = [
            (None, Some(DsnAction::Delivered), None),
            (
                Some(success),
                Some(DsnAction::Delivered),
                Some(DsnAction::Delivered),
            ),
            (
                Some(success),
                Some(DsnAction::Relayed),
                Some(DsnAction::Relayed),
            ),
            (Some(success), None, None),
            (Some(Notify::NEVER), Some(DsnAction::Delivered), None),
        ];
        for (notify, offered, owed) in cases {
            let mut env = envelope(notify, sender());
            let outcome = Outcome::Delivered {
                diagnostic: delivered.clone(),
                dsn: offered,
            };
            policy.record(&mut env.recipients[0], env.arrival, outcome, env.arrival);
            assert_eq!(
                env.recipients[0].state.dsn_owed, owed,
                "{notify:?} {offered:?}"
            );
        }
        let mut env = envelope(Some(Notify::NEVER), sender());
        let failed = Outcome::Failed(temporary());
        policy.record(&mut env.recipients[0], env.arrival, failed, env.arrival);
        assert_eq!(env.recipients[0].state.status, RecipientStatus::Failed);
        assert_eq!(env.recipients[0].state.dsn_owed, None);
    }

    #[test]
    fn no_delay_notice_for_bounces_or_when_not_asked() {
        let policy = policy();
        let late = 1_000_000 + 5 * HOUR;
        let bounce = envelope(None, ReversePath::Null);
        assert!(policy.delay_notice(&bounce, late).is_empty());
        let failure_only = Notify {
            failure: true,
            ..Notify::NEVER
        };
        assert!(
            policy
                .delay_notice(&envelope(Some(failure_only), sender()), late)
                .is_empty()
        );
        assert_eq!(policy.delay_notice(&envelope(None, sender()), late), [0]);
        assert!(
            policy
                .delay_notice(&envelope(None, sender()), late - 2 * HOUR)
                .is_empty()
        );
        let off = Policy {
            delay_warning: 0,
            ..policy
        };
        assert!(off.delay_notice(&envelope(None, sender()), late).is_empty());
    }
}
