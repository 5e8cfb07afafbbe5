//! Inflow control, after Postfix's `in_flow_delay`: a session waits (a second at most) for
//! a ticket before it takes a new message, and the queue manager hands the ticket back
//! once that message's first delivery attempt is over. When delivery falls behind
//! acceptance, clients are slowed to the pace of delivery instead of the queue growing
//! without end, so the cores go to moving mail out rather than taking ever more in, and
//! mail leaves about as fast as it arrives.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

/// The tickets.
#[derive(Debug)]
pub struct Flow {
    tickets: Semaphore,
    /// Messages taken in without a ticket (after waiting the whole delay): their return
    /// pays this debt instead of making a new ticket.
    owed: AtomicUsize,
    delay: Duration,
}

/// A session's right to take one message in. It travels with the message to the queue
/// manager, which drops it when the first attempt is over; a transaction that ends
/// without a message drops it at once. Either way the window gets it back.
#[derive(Debug)]
pub struct Ticket {
    flow: Arc<Flow>,
}

impl Flow {
    /// `window` messages may wait for their first attempt before sessions are slowed, by
    /// `delay` at most each.
    pub fn new(window: usize, delay: Duration) -> Arc<Flow> {
        Arc::new(Flow {
            tickets: Semaphore::new(window),
            owed: AtomicUsize::new(0),
            delay,
        })
    }

    /// A ticket: at once while the window has room, else as soon as a message's attempt
    /// ends, or after the delay (the message is taken all the same; mail is slowed,
    /// never refused).
    pub async fn admit(self: &Arc<Self>) -> Ticket {
        match tokio::time::timeout(self.delay, self.tickets.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            _ => {
                self.owed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ticket {
            flow: Arc::clone(self),
        }
    }

    /// A ticket came back.
    fn release(&self) {
        let paid = self
            .owed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |owed| {
                owed.checked_sub(1)
            })
            .is_ok();
        if !paid {
            self.tickets.add_permits(1);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.flow.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_window_slows_sessions_until_an_attempt_ends() {
        let flow = Flow::new(2, Duration::from_secs(1));
        let first = flow.admit().await;
        let _second = flow.admit().await;
        let started = tokio::time::Instant::now();
        let waiting = tokio::spawn({
            let flow = Arc::clone(&flow);
            async move { flow.admit().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(first);
        let _third = waiting.await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn no_session_waits_longer_than_the_delay_and_the_debt_is_paid_first() {
        let flow = Flow::new(1, Duration::from_secs(1));
        let first = flow.admit().await;
        let started = tokio::time::Instant::now();
        let second = flow.admit().await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        // Two messages out, one ticket in the window: the first return pays the debt.
        drop(first);
        assert_eq!(flow.tickets.available_permits(), 0);
        drop(second);
        assert_eq!(flow.tickets.available_permits(), 1);
    }

    #[tokio::test]
    async fn an_abandoned_transaction_gives_its_ticket_back() {
        let flow = Flow::new(1, Duration::from_secs(1));
        drop(flow.admit().await);
        assert_eq!(flow.tickets.available_permits(), 1);
    }
}
