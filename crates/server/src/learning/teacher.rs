//! Training from the mailbox: IMAP sessions report messages filed into or out of Junk
//! (`posthorn_mailbox::access::Learner`); one task reads each message and learns it, one
//! at a time, so filing a thousand messages costs one core's turn, not a thousand.

use std::io::Read as _;
use std::sync::Arc;

use posthorn_mailbox::access::{Class as Filed, Learner, Lesson};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Learning, READ_LIMIT};
use posthorn_classify::Class;

/// Lessons waiting at most; more are dropped with a warning (a user filing a huge
/// folder at once still trains on the first ones).
const QUEUE: usize = 10_000;

/// The IMAP sessions' learner: queues lessons for [`learn_from`].
pub struct Teacher {
    lessons: mpsc::Sender<Lesson>,
}

impl Teacher {
    /// Starts the task that learns what the sessions report.
    pub fn start(learning: Arc<Learning>) -> Teacher {
        let (lessons, queued) = mpsc::channel(QUEUE);
        tokio::spawn(learn_from(learning, queued));
        Teacher { lessons }
    }
}

impl Learner for Teacher {
    fn learn(&self, lessons: Vec<Lesson>) {
        for lesson in lessons {
            if let Err(e) = self.lessons.try_send(lesson) {
                warn!(error = %e, "too much training at once: a filed message is not learnt");
            }
        }
    }
}

/// Learns each lesson in turn on a blocking thread.
async fn learn_from(learning: Arc<Learning>, mut queued: mpsc::Receiver<Lesson>) {
    while let Some(lesson) = queued.recv().await {
        let learning = Arc::clone(&learning);
        let _ = tokio::task::spawn_blocking(move || learn_one(&learning, &lesson)).await;
    }
}

fn learn_one(learning: &Learning, lesson: &Lesson) {
    let class = match lesson.class {
        Filed::Spam => Class::Spam,
        Filed::Ham => Class::Ham,
    };
    // The message may have been renamed (flags) or expunged since it was filed.
    let message = match lesson.folder.open(&lesson.file) {
        Ok(Some(file)) => {
            let mut bytes = Vec::new();
            match file.take(READ_LIMIT as u64).read_to_end(&mut bytes) {
                Ok(_) => bytes,
                Err(e) => {
                    warn!(account = %lesson.account, file = %lesson.file, error = %e, "cannot read a filed message");
                    return;
                }
            }
        }
        Ok(None) => return,
        Err(e) => {
            warn!(account = %lesson.account, file = %lesson.file, error = %e, "cannot open a filed message");
            return;
        }
    };
    match learning.learn(Some(&lesson.account), &message, class) {
        Ok(learned) => {
            info!(account = %lesson.account, file = %lesson.file, ?class, ?learned, "learnt from filing")
        }
        Err(e) => warn!(account = %lesson.account, error = %e, "cannot learn a filed message"),
    }
}
