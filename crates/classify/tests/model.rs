//! The model: training symmetry, the ledger, pruning bounds, encoding, layered scoring.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use posthorn_classify::{
    Class, DecodeError, Features, Learned, Limits, Model, Readiness, digest, eval, features, score,
};

const SPAM_WORDS: &[&str] = &[
    "viagra", "winner", "cheap", "mortgage", "offer", "click", "free", "money", "casino", "pills",
];
const HAM_WORDS: &[&str] = &[
    "meeting", "patch", "review", "kernel", "lunch", "agenda", "release", "thanks", "build",
    "notes",
];

/// The `i`-th synthetic message of a class: a few of the class's words, a unique token.
fn synthetic(class: Class, i: usize) -> Vec<u8> {
    let words = if class == Class::Spam {
        SPAM_WORDS
    } else {
        HAM_WORDS
    };
    let body: Vec<&str> = (0..6)
        .map(|k| words[(i * 7 + k * 3) % words.len()])
        .collect();
    format!(
        "From: sender{i}@example.test\r\nSubject: {} {i}\r\n\r\n{} id{i}\r\n",
        words[i % 10],
        body.join(" ")
    )
    .into_bytes()
}

fn corpus(count: usize) -> Vec<(Vec<u8>, Class)> {
    (0..count)
        .flat_map(|i| {
            [
                (synthetic(Class::Spam, i), Class::Spam),
                (synthetic(Class::Ham, i), Class::Ham),
            ]
        })
        .collect()
}

fn trained(count: usize, day: u32) -> Model {
    let mut model = Model::default();
    for (message, class) in corpus(count) {
        assert_eq!(
            model.learn(digest(&message), &features(&message), class, day),
            Learned::Trained
        );
    }
    model
}

#[test]
fn train_then_forget_gives_back_an_equal_model() {
    let before = trained(20, 100);
    let mut model = before.clone();
    let message =
        b"Subject: brand new words\r\n\r\nzebra quartz unique plus viagra meeting".to_vec();
    let features = features(&message);
    assert_eq!(
        model.learn(digest(&message), &features, Class::Spam, 100),
        Learned::Trained
    );
    assert_ne!(model, before);
    assert!(model.forget(digest(&message), &features));
    assert_eq!(model, before);
    assert_eq!(model.encode(), before.encode());
    assert!(
        !model.forget(digest(&message), &features),
        "forgotten twice"
    );
}

#[test]
fn forgetting_everything_empties_the_model() {
    let mut model = trained(30, 5);
    for (message, _) in corpus(30) {
        assert!(model.forget(digest(&message), &features(&message)));
    }
    assert_eq!(model, Model::default());
}

#[test]
fn learning_twice_as_the_same_class_counts_once() {
    let mut model = trained(10, 1);
    let before = model.clone();
    let (message, class) = &corpus(10)[3];
    assert_eq!(
        model.learn(digest(message), &features(message), *class, 2),
        Learned::Unchanged
    );
    assert_eq!(model, before);
}

#[test]
fn retraining_reverses_the_earlier_training() {
    let message = synthetic(Class::Ham, 999);
    let (digest, features) = (digest(&message), features(&message));
    let mut retrained = trained(10, 1);
    retrained.learn(digest, &features, Class::Ham, 1);
    assert_eq!(
        retrained.learn(digest, &features, Class::Spam, 1),
        Learned::Retrained
    );
    let mut direct = trained(10, 1);
    direct.learn(digest, &features, Class::Spam, 1);
    assert_eq!(retrained.messages(), direct.messages());
    assert_eq!(retrained.encode().len(), direct.encode().len());
    // Same counts; only the ledger's sequence numbers may differ, so compare by scoring.
    let probe = features.clone();
    let ready = Readiness {
        min_spam: 1,
        min_ham: 1,
    };
    assert_eq!(
        score(&[&retrained], &probe, &ready),
        score(&[&direct], &probe, &ready)
    );
}

#[test]
fn counts_never_underflow() {
    let mut model = trained(5, 1);
    let message = synthetic(Class::Spam, 0);
    // Forgetting with other features than trained (a caller error) must not wrap counts.
    let other = Features::from_hashes((0..50).collect());
    assert!(model.forget(digest(&message), &other));
    assert_eq!(model.messages(), (4, 5));
    assert!(!model.forget(digest(&message), &features(&message)));
}

#[test]
fn prune_keeps_the_bounds() {
    let mut model = trained(200, 10);
    let limits = Limits {
        max_tokens: 50,
        max_ledger: 30,
    };
    model.prune(&limits, 10);
    assert!(model.tokens() <= 50, "{} tokens", model.tokens());
    // The frequent class words survive, the unique ids go first.
    let frequent = features(b"Subject: x\r\n\r\nviagra meeting");
    assert!(
        frequent
            .hashes()
            .iter()
            .filter(|h| model.encode().windows(8).any(|w| w == h.to_le_bytes()))
            .count()
            >= 2
    );
    // Only the 30 newest messages can still be forgotten.
    let all = corpus(200);
    let forgettable = all
        .iter()
        .filter(|(m, _)| model.clone().forget(digest(m), &features(m)))
        .count();
    assert_eq!(forgettable, 30);
    let (m, _) = &all[all.len() - 1];
    assert!(model.forget(digest(m), &features(m)));
}

#[test]
fn prune_drops_old_rare_tokens_only() {
    let mut model = trained(20, 0);
    let fresh = model.tokens();
    model.prune(&Limits::default(), 10);
    assert_eq!(model.tokens(), fresh, "young tokens are kept");
    model.prune(&Limits::default(), 1000);
    assert!(model.tokens() < fresh, "old hapaxes are dropped");
    assert!(model.tokens() > 0, "old frequent tokens are kept");
}

#[test]
fn encoding_round_trips() {
    for model in [Model::default(), trained(40, 12345)] {
        let bytes = model.encode();
        assert_eq!(Model::decode(&bytes).unwrap(), model);
    }
}

#[test]
fn damaged_encodings_are_errors() {
    let bytes = trained(10, 7).encode();
    for length in 0..bytes.len() {
        assert!(
            Model::decode(&bytes[..length]).is_err(),
            "truncated to {length}"
        );
    }
    for at in (0..bytes.len()).step_by(7) {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x20;
        assert!(Model::decode(&damaged).is_err(), "byte {at} flipped");
    }
    let mut other = bytes.clone();
    other[0] = b'X';
    assert_eq!(Model::decode(&other), Err(DecodeError::Magic));
    let mut newer = bytes;
    newer[7] = 99;
    assert_eq!(Model::decode(&newer), Err(DecodeError::Version(99)));
}

#[test]
fn the_first_ready_layer_scores() {
    let global = trained(120, 1);
    let young_account = trained(10, 1);
    let ready = Readiness::default();
    let spam = features(&synthetic(Class::Spam, 1234));
    let verdict = score(&[&young_account, &global], &spam, &ready).unwrap();
    assert_eq!(verdict.layer, 1);
    assert!(verdict.spam_probability > 0.9, "{verdict:?}");
    let ham = features(&synthetic(Class::Ham, 1234));
    assert!(score(&[&global], &ham, &ready).unwrap().spam_probability < 0.1);
    let account = trained(100, 1);
    assert_eq!(score(&[&account, &global], &spam, &ready).unwrap().layer, 0);
    assert_eq!(score(&[&young_account], &spam, &ready), None);
    assert_eq!(score(&[], &spam, &ready), None);
    let nothing = score(&[&global], &Features::default(), &ready).unwrap();
    assert!((nothing.spam_probability - 0.5).abs() < 1e-9);
}

#[test]
fn evaluation_reports_a_separable_set() {
    let report = eval::evaluate(&corpus(60), &corpus(80)[120..]);
    assert_eq!((report.ham, report.spam), (20, 20));
    assert_eq!(report.recall, [1.0, 1.0, 1.0]);
    assert_eq!(report.auc, 1.0);
    assert!(report.messages_per_second > 0.0);
    assert!(report.to_string().contains("recall @  0.5% FP  100.00%"));
}
