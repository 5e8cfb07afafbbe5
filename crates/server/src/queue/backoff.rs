//! A destination that cannot be reached is backed off as a whole: its queued jobs are
//! deferred without an attempt until the back-off ends, so a dead host costs one timeout,
//! not one per message. Each failure in a row waits the next step of the retry schedule.

use std::collections::VecDeque;

use posthorn_spool::Diagnostic;

use super::policy::Policy;
use super::transport::Job;

/// Jobs waiting for one destination, its connections, and its back-off.
#[derive(Default)]
pub(super) struct DestinationState {
    /// Jobs not yet lent to a connection.
    pub(super) queue: VecDeque<Job>,
    /// Connections (or local deliveries) running.
    pub(super) workers: usize,
    /// No attempt before this time.
    dead_until: u64,
    /// Failures to reach it in a row.
    failures: u32,
    /// Why it was last unreachable, for the jobs deferred meanwhile.
    last_error: Option<Diagnostic>,
}

impl DestinationState {
    /// It could not be reached at `now`: backed off for the next step of the schedule.
    /// Returns the failures in a row.
    pub(super) fn unreachable(&mut self, why: Diagnostic, policy: &Policy, now: u64) -> u32 {
        self.failures += 1;
        self.dead_until = now + policy.retry_delay(self.failures);
        self.last_error = Some(why);
        self.failures
    }

    /// It was reached: the next failure starts the schedule again.
    pub(super) fn reached(&mut self) {
        self.failures = 0;
    }

    /// The operator asked for a flush: attempt at once, whatever the back-off.
    pub(super) fn revive(&mut self) {
        self.dead_until = 0;
    }

    /// While backed off at `now`: the reason (the last error, if known) to give the jobs
    /// deferred without an attempt.
    pub(super) fn backed_off(&self, now: u64) -> Option<Option<Diagnostic>> {
        (self.dead_until > now).then(|| self.last_error.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use posthorn_proto::Status;

    use super::*;

    fn policy() -> Policy {
        Policy {
            retry_schedule: vec![Duration::from_secs(60), Duration::from_secs(300)],
            max_lifetime: 5 * 86_400,
            delay_warning: 0,
        }
    }

    fn why(text: &str) -> Diagnostic {
        Diagnostic {
            status: Status::new(4, 4, 1),
            text: text.into(),
            remote_mta: None,
            smtp_reply: None,
        }
    }

    #[test]
    fn failures_in_a_row_walk_the_schedule_and_a_success_restarts_it() {
        let (policy, mut state) = (policy(), DestinationState::default());
        assert!(state.backed_off(1000).is_none());
        assert_eq!(state.unreachable(why("refused"), &policy, 1000), 1);
        assert_eq!(state.backed_off(1059), Some(Some(why("refused"))));
        assert!(state.backed_off(1060).is_none());
        assert_eq!(state.unreachable(why("timed out"), &policy, 2000), 2);
        assert!(state.backed_off(2299).is_some());
        assert!(state.backed_off(2300).is_none());
        state.unreachable(why("timed out"), &policy, 3000);
        assert!(state.backed_off(3299).is_some(), "the last step repeats");
        state.reached();
        assert_eq!(state.unreachable(why("refused"), &policy, 4000), 1);
        assert!(state.backed_off(4060).is_none());
    }

    #[test]
    fn a_flush_ends_the_back_off() {
        let (policy, mut state) = (policy(), DestinationState::default());
        state.unreachable(why("refused"), &policy, 1000);
        state.revive();
        assert!(state.backed_off(1000).is_none());
    }
}
