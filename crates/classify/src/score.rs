//! Scoring: Robinson's smoothed per-token spam probability f(w), combined over the
//! message's significant tokens with Fisher's chi-square method (as SpamBayes and
//! bogofilter do). DESIGN.md compares it with the alternatives measured.

use crate::features::Family;
use crate::{Features, Model};

/// Robinson's strength of the prior (s): how many messages' worth of weight the
/// neutral 0.5 has against a token's own counts. Small: on this data, even a token seen
/// once or twice is good evidence (cross-validated: 0.05-0.2 best, 1.0 clearly worse).
const PRIOR_STRENGTH: f64 = 0.1;

/// The prior spam probability of an unknown token (Robinson's x).
const PRIOR: f64 = 0.5;

/// Tokens with |f(w) - 0.5| below this are left out: near-neutral tokens only dilute
/// the chi-square with degrees of freedom.
const MIN_DEVIATION: f64 = 0.1;

/// How much the header section's evidence counts against the content's. Header tokens
/// come in correlated crowds (every Received hop of a mailing list says "ham"), so as
/// many independent votes they drown the body of spam sent through a list.
const HEADER_WEIGHT: f64 = 0.7;

/// f(w) is kept within [1 - CLIP, CLIP] so that one token cannot decide alone.
const CLIP: f64 = 0.999;

/// How many trained messages of each class a model needs before it scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Spam messages trained, at least.
    pub min_spam: u32,
    /// Ham messages trained, at least.
    pub min_ham: u32,
}

impl Default for Readiness {
    /// 100 of each: trained on 50 + 50 messages the model caught 47% of spam at 0.5%
    /// false positives on held-out mail, on 100 + 100 already 79% (DESIGN.md); until
    /// then the global model scores for the account.
    fn default() -> Self {
        Readiness {
            min_spam: 100,
            min_ham: 100,
        }
    }
}

impl Readiness {
    /// True when `model` has learnt enough of both kinds to score (at least one of each,
    /// whatever the thresholds: a class never seen has no probabilities).
    pub fn admits(&self, model: &Model) -> bool {
        let (spam, ham) = model.messages();
        spam >= self.min_spam.max(1) && ham >= self.min_ham.max(1)
    }
}

/// The classifier's opinion of one message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// Robinson's combined indicator in [0, 1]: near 1 spam, near 0 ham, near 0.5
    /// no evidence or evidence both ways.
    pub spam_probability: f64,
    /// Index in `layers` of the model that scored.
    pub layer: usize,
}

/// Scores with the first model in `layers` that is ready (account model first, then
/// global); `None` if none is.
pub fn score(layers: &[&Model], features: &Features, ready: &Readiness) -> Option<Verdict> {
    let layer = layers.iter().position(|model| ready.admits(model))?;
    let evidence = Evidence::of(layers[layer], features);
    Some(Verdict {
        spam_probability: evidence.probability(),
        layer,
    })
}

/// The two chi-square tail probabilities of a message, in natural logs.
pub(crate) struct Evidence {
    /// ln Q(-2 Σ ln f, 2n): small when the tokens look like ham.
    ham_tail: f64,
    /// ln Q(-2 Σ ln (1 - f), 2n): small when the tokens look like spam.
    spam_tail: f64,
}

impl Evidence {
    /// Computes the evidence of `features` in `model`: a chi-square test for each
    /// family of tokens, the header section's weighed by [`HEADER_WEIGHT`].
    pub(crate) fn of(model: &Model, features: &Features) -> Evidence {
        let (spam, ham) = model.messages();
        let spam = f64::from(spam.max(1));
        let ham = f64::from(ham.max(1));
        let mut tests = [Fisher::default(), Fisher::default()];
        // All lookups first: they are independent, so the processor overlaps their cache
        // misses (scoring is bound by them) instead of waiting for each in turn.
        let known: Vec<(u64, u32, u32)> = features
            .hashes()
            .iter()
            .filter_map(|&token| model.counts(token).map(|c| (token, c.spam, c.ham)))
            .collect();
        for (token, in_spam_messages, in_ham_messages) in known {
            let in_spam = f64::from(in_spam_messages) / spam;
            let in_ham = f64::from(in_ham_messages) / ham;
            if in_spam + in_ham <= 0.0 {
                continue;
            }
            let p = in_spam / (in_spam + in_ham);
            let n = f64::from(in_spam_messages) + f64::from(in_ham_messages);
            let f = (PRIOR_STRENGTH * PRIOR + n * p) / (PRIOR_STRENGTH + n);
            if (f - 0.5).abs() < MIN_DEVIATION {
                continue;
            }
            tests[Family::of(token) as usize].add(f.clamp(1.0 - CLIP, CLIP));
        }
        let [header, content] = tests.map(|test| test.tails());
        Evidence {
            ham_tail: HEADER_WEIGHT * header.0 + content.0,
            spam_tail: HEADER_WEIGHT * header.1 + content.1,
        }
    }

    /// Unbounded spamminess (log of the tails' ratio): ranks messages without the ties
    /// the saturated [`Evidence::probability`] has; the evaluation uses it.
    pub(crate) fn log_odds(&self) -> f64 {
        self.ham_tail - self.spam_tail
    }

    /// Robinson's indicator (1 + Q_ham - Q_spam) / 2.
    pub(crate) fn probability(&self) -> f64 {
        (1.0 + self.ham_tail.exp() - self.spam_tail.exp()) / 2.0
    }
}

/// Fisher's method over one family's token probabilities.
#[derive(Default)]
struct Fisher {
    ln_f: LogProduct,
    ln_not_f: LogProduct,
    tokens: usize,
}

impl Fisher {
    fn add(&mut self, f: f64) {
        self.ln_f.multiply(f);
        self.ln_not_f.multiply(1.0 - f);
        self.tokens += 1;
    }

    /// (ln Q_ham, ln Q_spam).
    fn tails(&self) -> (f64, f64) {
        (
            ln_chi2_tail(-2.0 * self.ln_f.ln(), self.tokens),
            ln_chi2_tail(-2.0 * self.ln_not_f.ln(), self.tokens),
        )
    }
}

/// The log of a product of probabilities, taking a logarithm only when the running
/// product nears underflow rather than one per factor (scoring is bound by them).
struct LogProduct {
    logs: f64,
    product: f64,
}

impl Default for LogProduct {
    fn default() -> Self {
        LogProduct {
            logs: 0.0,
            product: 1.0,
        }
    }
}

impl LogProduct {
    /// Multiplies by `factor` (in (0, 1]: f(w) is clipped away from 0).
    fn multiply(&mut self, factor: f64) {
        self.product *= factor;
        if self.product < 1e-250 {
            self.logs += self.product.ln();
            self.product = 1.0;
        }
    }

    fn ln(&self) -> f64 {
        self.logs + self.product.ln()
    }
}

/// ln Q(x, 2k): the natural log of the chi-square upper tail with 2k degrees of freedom,
/// Q = e^(-m) Σ_{i<k} m^i / i! with m = x/2, summed in logs so that it neither
/// underflows nor overflows for thousands of tokens.
fn ln_chi2_tail(x: f64, k: usize) -> f64 {
    let m = x / 2.0;
    if k == 0 || m <= 0.0 {
        return 0.0;
    }
    let ln_m = m.ln();
    // Streaming log-sum-exp of the terms ln(m^i / i!).
    let (mut term, mut max, mut sum) = (0.0f64, 0.0f64, 1.0f64);
    for i in 1..k {
        term += ln_m - (i as f64).ln();
        if term < max - 40.0 && i as f64 > m {
            // Past the peak every further term is smaller still: below e^-40 of the
            // largest, they cannot change the sum in double precision.
            break;
        }
        if term > max {
            sum = sum * (max - term).exp() + 1.0;
            max = term;
        } else {
            sum += (term - max).exp();
        }
    }
    (-m + max + sum.ln()).min(0.0)
}

#[cfg(test)]
mod tests {
    use super::ln_chi2_tail;

    #[test]
    fn chi2_tail_matches_closed_forms() {
        // 2 degrees of freedom: Q = e^(-x/2).
        assert!((ln_chi2_tail(3.0, 1) - (-1.5)).abs() < 1e-12);
        // 4 degrees of freedom: Q = e^(-m) (1 + m).
        let m: f64 = 2.5;
        assert!((ln_chi2_tail(2.0 * m, 2) - (-m + (1.0 + m).ln())).abs() < 1e-12);
        // Huge statistics stay finite and negative rather than underflowing.
        let tail = ln_chi2_tail(1e5, 3000);
        assert!(tail.is_finite() && tail < -1000.0);
    }
}
