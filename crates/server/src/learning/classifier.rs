//! The classifier's models as learnt state: a `posthorn_classify::Model` whose lessons
//! are messages learnt or forgotten. The model's ledger makes each lesson count once, so
//! applying one again over a newer file (see `stored`) changes nothing.

use std::sync::Arc;

use posthorn_classify::{Class, Features, Learned, Limits, Model};

use super::stored::Learnt;

/// A model of the classifier.
#[derive(Default)]
pub(crate) struct Bayes(pub(crate) Model);

/// A message to learn or forget, by its digest and features.
pub(crate) enum Training {
    /// Learn it as `class` (a retrain when it was learnt as the other).
    Learn {
        digest: u64,
        features: Arc<Features>,
        class: Class,
    },
    /// Take it back out.
    Forget {
        digest: u64,
        features: Arc<Features>,
    },
}

impl Bayes {
    /// Applies `training`: what it did (a forget that found the message is `Trained`).
    pub(crate) fn train(&mut self, training: &Training, day: u32) -> Learned {
        match training {
            Training::Learn {
                digest,
                features,
                class,
            } => self.0.learn(*digest, features, *class, day),
            Training::Forget { digest, features } => match self.0.forget(*digest, features) {
                true => Learned::Trained,
                false => Learned::Unchanged,
            },
        }
    }
}

impl Learnt for Bayes {
    type Change = Training;
    type Bounds = Limits;

    fn apply(&mut self, change: &Training, day: u32) {
        self.train(change, day);
    }

    fn prune(&mut self, bounds: &Limits, day: u32) {
        self.0.prune(bounds, day);
    }

    fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        Model::decode(bytes).map(Bayes).map_err(|e| e.to_string())
    }
}
