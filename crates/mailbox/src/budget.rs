//! One memory budget, shared by every session of every protocol, for messages that must be
//! held whole: SMTP's DKIM, ARC and DMARC checks and DKIM signing (which read a message
//! back from its spool file at the end of DATA), and IMAP's parses for ENVELOPE,
//! BODYSTRUCTURE and part sections, its text searches and its large APPEND literals.
//! Without it, N clients working on large messages at once would make us hold N whole
//! messages; with it, they take turns and memory stays below the budget (plus at most one
//! message when a single one is larger than the whole budget). The server makes one from
//! `limits.check_memory`.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in KiB, so that a `u32` of permits covers any sensible size.
const UNIT: u64 = 1024;

/// Memory that whole messages may take at once.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total: u32,
}

/// A share of the budget; dropping it gives the share back.
#[derive(Debug)]
pub struct Held {
    _permit: OwnedSemaphorePermit,
}

impl MemoryBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> MemoryBudget {
        let total = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, Semaphore::MAX_PERMITS as u32);
        MemoryBudget {
            units: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Waits until `bytes` of the budget are free and takes them. A request larger than
    /// the whole budget takes all of it, so it waits for everyone else and then runs alone.
    #[allow(
        clippy::expect_used,
        reason = "the semaphore is ours and never closed: no input can reach the panic"
    )]
    pub async fn hold(&self, bytes: u64) -> Held {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total);
        let permit = Arc::clone(&self.units)
            .acquire_many_owned(units)
            .await
            .expect("the budget's semaphore is never closed");
        Held { _permit: permit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holders_wait_for_room() {
        let budget = MemoryBudget::new(10 * UNIT);
        let first = budget.hold(6 * UNIT).await;
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.hold(6 * UNIT).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.unwrap();
    }

    #[tokio::test]
    async fn an_oversized_request_takes_the_whole_budget() {
        let budget = MemoryBudget::new(10 * UNIT);
        let all = budget.hold(100 * UNIT).await;
        assert_eq!(budget.units.available_permits(), 0);
        drop(all);
        assert_eq!(budget.units.available_permits(), 10);
    }
}
