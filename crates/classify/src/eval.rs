//! Evaluation: train on one set of messages, score another, and report spam recall at
//! fixed ham false-positive rates, AUC and scoring speed. `posthorn spam eval` prints it;
//! the cross-validation example pools [`Scores`] over folds.

use std::fmt;
use std::time::{Duration, Instant};

use crate::score::Evidence;
use crate::{Class, Model, digest, features};

/// The false-positive rates recall is reported at.
pub const FALSE_POSITIVE_RATES: [f64; 3] = [0.001, 0.005, 0.01];

/// Trains a model on labelled messages (day 0, no pruning).
pub fn train(messages: &[(Vec<u8>, Class)]) -> Model {
    let mut model = Model::default();
    for (message, class) in messages {
        model.learn(digest(message), &features(message), *class, 0);
    }
    model
}

/// Log-odds scores of test messages, by true class.
#[derive(Clone, Debug, Default)]
pub struct Scores {
    /// Scores of the ham messages.
    pub ham: Vec<f64>,
    /// Scores of the spam messages.
    pub spam: Vec<f64>,
    /// Time spent tokenizing and scoring, on one thread.
    pub elapsed: Duration,
    /// Messages tokenized and scored in that time (the set is scored again until the
    /// timing is long enough to mean something).
    pub timed: usize,
    /// Octets of the messages timed.
    pub octets: usize,
}

impl Scores {
    /// Adds another set (another fold) to this one.
    pub fn extend(&mut self, other: Scores) {
        self.ham.extend(other.ham);
        self.spam.extend(other.spam);
        self.elapsed += other.elapsed;
        self.timed += other.timed;
        self.octets += other.octets;
    }
}

/// Scoring is timed over at least this long: a small test set scored once takes a few
/// milliseconds, which timer and scheduler noise swamp.
const TIMING: Duration = Duration::from_secs(1);

/// Scores `test` with `model`, timing the tokenizing and scoring (see [`TIMING`]).
pub fn scores(model: &Model, test: &[(Vec<u8>, Class)]) -> Scores {
    let score = |message: &[u8]| Evidence::of(model, &features(message)).log_odds();
    let mut scores = Scores::default();
    let start = Instant::now();
    let values: Vec<f64> = test.iter().map(|(message, _)| score(message)).collect();
    let size: usize = test.iter().map(|(message, _)| message.len()).sum();
    (scores.timed, scores.octets) = (test.len(), size);
    while !test.is_empty() && start.elapsed() < TIMING {
        for (message, _) in test {
            std::hint::black_box(score(message));
        }
        scores.timed += test.len();
        scores.octets += size;
    }
    scores.elapsed = start.elapsed();
    for ((_, class), value) in test.iter().zip(values) {
        match class {
            Class::Spam => scores.spam.push(value),
            Class::Ham => scores.ham.push(value),
        }
    }
    scores
}

/// What an evaluation measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Ham messages scored.
    pub ham: usize,
    /// Spam messages scored.
    pub spam: usize,
    /// Spam recall at each of [`FALSE_POSITIVE_RATES`].
    pub recall: [f64; 3],
    /// Area under the ROC curve (ties count half).
    pub auc: f64,
    /// Messages tokenized and scored per second on one thread.
    pub messages_per_second: f64,
    /// The mean size of the messages scored, in octets.
    pub mean_size: usize,
}

/// Trains on `train`, scores `test`, and reports.
pub fn evaluate(train_set: &[(Vec<u8>, Class)], test: &[(Vec<u8>, Class)]) -> Report {
    report(&scores(&train(train_set), test))
}

/// Computes the report of a set of scores.
pub fn report(scores: &Scores) -> Report {
    let mut ham = scores.ham.clone();
    ham.sort_unstable_by(|a, b| b.total_cmp(a));
    let recall = FALSE_POSITIVE_RATES.map(|rate| {
        // The threshold lets through at most `allowed` ham: spam must score above the
        // next ham down.
        let allowed = (rate * ham.len() as f64).floor() as usize;
        match ham.get(allowed) {
            Some(&threshold) => fraction(
                scores.spam.iter().filter(|&&s| s > threshold).count(),
                scores.spam.len(),
            ),
            None => 1.0,
        }
    });
    let seconds = scores.elapsed.as_secs_f64();
    Report {
        ham: scores.ham.len(),
        spam: scores.spam.len(),
        recall,
        auc: auc(&scores.ham, &scores.spam),
        messages_per_second: if seconds > 0.0 {
            scores.timed as f64 / seconds
        } else {
            0.0
        },
        mean_size: scores.octets.checked_div(scores.timed).unwrap_or(0),
    }
}

/// Mann-Whitney AUC: the chance a random spam outscores a random ham.
fn auc(ham: &[f64], spam: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = ham
        .iter()
        .map(|&s| (s, false))
        .chain(spam.iter().map(|&s| (s, true)))
        .collect();
    all.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut wins = 0.0;
    let mut ham_below = 0usize;
    let mut i = 0;
    while i < all.len() {
        let j = i + all[i..]
            .iter()
            .take_while(|item| item.0 == all[i].0)
            .count();
        let hams = all[i..j].iter().filter(|item| !item.1).count();
        let spams = j - i - hams;
        wins += spams as f64 * (ham_below as f64 + hams as f64 / 2.0);
        ham_below += hams;
        i = j;
    }
    let pairs = ham.len() as f64 * spam.len() as f64;
    if pairs > 0.0 { wins / pairs } else { 0.0 }
}

fn fraction(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "messages        {} ham, {} spam", self.ham, self.spam)?;
        for (rate, recall) in FALSE_POSITIVE_RATES.iter().zip(self.recall) {
            writeln!(
                f,
                "recall @ {:>4.1}% FP  {:>6.2}%",
                rate * 100.0,
                recall * 100.0
            )?;
        }
        writeln!(f, "AUC             {:.5}", self.auc)?;
        writeln!(
            f,
            "speed           {:.0} msgs/s of {:.1} KiB on average (tokenize + score, one thread)",
            self.messages_per_second,
            self.mean_size as f64 / 1024.0
        )
    }
}
