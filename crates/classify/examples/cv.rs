//! k-fold cross-validation over a training corpus laid out as DIR/{ham,spam}/*.eml:
//! folds split by a hash of the file name, fold scores pooled before computing
//! recall-at-FP (a 0.5% FP rate is only a couple of ham per fold).
//!
//! `cargo run --release -p posthorn-classify --example cv -- /work/corpus/train [FOLDS]`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a developer tool")]

use std::path::Path;

use posthorn_classify::{Class, digest, eval};

fn main() {
    let mut args = std::env::args().skip(1);
    let root = args.next().expect("usage: cv DIR [FOLDS]");
    let folds: u64 = args
        .next()
        .map_or(5, |f| f.parse().expect("FOLDS is a number"));
    let mut messages: Vec<(u64, Vec<u8>, Class, String)> = Vec::new();
    for (folder, class) in [("ham", Class::Ham), ("spam", Class::Spam)] {
        for entry in std::fs::read_dir(Path::new(&root).join(folder)).expect("corpus folder") {
            let path = entry.expect("directory entry").path();
            let fold = digest(path.file_name().expect("file name").as_encoded_bytes()) % folds;
            messages.push((
                fold,
                std::fs::read(&path).expect("message"),
                class,
                path.display().to_string(),
            ));
        }
    }
    let mut pooled = eval::Scores::default();
    let mut named: Vec<(f64, Class, String)> = Vec::new();
    for fold in 0..folds {
        let pick = |inside: bool| -> Vec<(Vec<u8>, Class)> {
            messages
                .iter()
                .filter(|m| (m.0 == fold) == inside)
                .map(|m| (m.1.clone(), m.2))
                .collect()
        };
        let model = eval::train(&pick(false));
        let scores = eval::scores(&model, &pick(true));
        let report = eval::report(&scores);
        println!(
            "fold {fold}: {} tokens, recall@0.5% {:.2}%, AUC {:.5}",
            model.tokens(),
            report.recall[1] * 100.0,
            report.auc
        );
        let test: Vec<_> = messages.iter().filter(|m| m.0 == fold).collect();
        for (class, values) in [(Class::Ham, &scores.ham), (Class::Spam, &scores.spam)] {
            let names = test.iter().filter(|m| m.2 == class).map(|m| m.3.clone());
            named.extend(values.iter().zip(names).map(|(&v, n)| (v, class, n)));
        }
        pooled.extend(scores);
    }
    println!("{}", eval::report(&pooled));
    if std::env::var_os("CV_ERRORS").is_some() {
        // The hardest messages: the highest-scoring ham and the lowest-scoring spam.
        named.sort_by(|a, b| b.0.total_cmp(&a.0));
        named
            .iter()
            .filter(|m| m.1 == Class::Ham)
            .take(12)
            .for_each(|m| println!("ham  {:9.2} {}", m.0, m.2));
        named
            .iter()
            .rev()
            .filter(|m| m.1 == Class::Spam)
            .take(20)
            .for_each(|m| println!("spam {:9.2} {}", m.0, m.2));
    }
}
