//! When each waiting message is next due, and which messages are busy (being loaded,
//! delivered or written back), so that no message is ever worked on twice at once.

use std::collections::{BTreeSet, HashMap, HashSet};

use posthorn_spool::QueueId;

/// The due-time index of the queue.
#[derive(Debug, Default)]
pub struct Schedule {
    due: BTreeSet<(u64, QueueId)>,
    at: HashMap<QueueId, u64>,
    busy: HashSet<QueueId>,
}

impl Schedule {
    /// Sets (or moves) the due time of `id`. A busy message is rescheduled by whoever holds
    /// it when it is released, so this does nothing for it.
    pub fn set(&mut self, id: QueueId, time: u64) {
        if self.busy.contains(&id) {
            return;
        }
        if let Some(old) = self.at.insert(id, time) {
            self.due.remove(&(old, id));
        }
        self.due.insert((time, id));
    }

    /// Forgets `id` if it is waiting (held or deleted); returns whether it was.
    pub fn remove(&mut self, id: &QueueId) -> bool {
        match self.at.remove(id) {
            Some(time) => self.due.remove(&(time, *id)),
            None => false,
        }
    }

    /// Takes the earliest message due at `now` and marks it busy.
    pub fn take_due(&mut self, now: u64) -> Option<QueueId> {
        let (time, _) = self.due.first()?;
        if *time > now {
            return None;
        }
        let (_, id) = self.due.pop_first()?;
        self.at.remove(&id);
        self.busy.insert(id);
        Some(id)
    }

    /// Marks a message that arrived in memory (new mail, a notice) busy without scheduling.
    pub fn claim(&mut self, id: &QueueId) -> bool {
        if self.busy.contains(id) {
            return false;
        }
        self.remove(id);
        self.busy.insert(*id)
    }

    /// Releases a busy message, scheduling it at `next` if it still needs attempts.
    pub fn release(&mut self, id: QueueId, next: Option<u64>) {
        self.busy.remove(&id);
        if let Some(time) = next {
            self.set(id, time);
        }
    }

    /// True while the message is loaded, out for delivery, or being written back.
    pub fn is_busy(&self, id: &QueueId) -> bool {
        self.busy.contains(id)
    }

    /// True when the message waits in the schedule.
    pub fn is_waiting(&self, id: &QueueId) -> bool {
        self.at.contains_key(id)
    }

    /// Every waiting message.
    pub fn waiting(&self) -> Vec<QueueId> {
        self.at.keys().cloned().collect()
    }

    /// The earliest due time.
    pub fn next_due(&self) -> Option<u64> {
        self.due.first().map(|(time, _)| *time)
    }

    /// Every busy message.
    pub fn busy(&self) -> Vec<QueueId> {
        self.busy.iter().cloned().collect()
    }

    /// Messages busy now.
    pub fn busy_count(&self) -> usize {
        self.busy.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use posthorn_spool::IdGenerator;

    #[test]
    fn orders_by_time_and_leaves_busy_messages_alone() {
        let ids = IdGenerator::default();
        let (a, b) = (ids.generate(), ids.generate());
        let mut schedule = Schedule::default();
        schedule.set(b, 5);
        schedule.set(a, 10);
        assert_eq!(schedule.take_due(4), None);
        assert_eq!(schedule.take_due(5), Some(b));
        schedule.set(b, 0);
        assert_eq!(schedule.next_due(), Some(10), "busy: not rescheduled");
        schedule.release(b, Some(20));
        assert_eq!(schedule.at.get(&b), Some(&20));
        schedule.set(a, 1);
        assert_eq!(schedule.take_due(1), Some(a));
        schedule.release(a, None);
        assert!(schedule.remove(&b));
        assert_eq!(schedule.take_due(100), None);
        assert_eq!(schedule.busy_count(), 0);
    }

    #[test]
    fn claim_takes_a_waiting_message() {
        let id = IdGenerator::default().generate();
        let mut schedule = Schedule::default();
        schedule.set(id, 50);
        assert!(schedule.claim(&id));
        assert!(!schedule.claim(&id));
        assert_eq!(schedule.next_due(), None);
    }
}
