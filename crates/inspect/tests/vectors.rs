//! mail-parser's MIME vectors (tests/data/SOURCES.md): RFC examples, Dovecot's malformed
//! and third-party mails. Every one is inspected without panicking; the RFC examples have
//! no MIME structure faults, and the faults found in the others are the ones they hold.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::path::Path;

use common::run;

fn vectors(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir:?}");
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

const STRUCTURE: &[&str] = &[
    "MIME_NO_BOUNDARY",
    "MIME_BOUNDARY_NOT_FOUND",
    "MIME_NO_CLOSING_BOUNDARY",
    "MIME_TOO_DEEP",
    "MIME_TOO_MANY_PARTS",
];

#[test]
fn rfc_examples_have_well_formed_structure() {
    for (name, data) in vectors("rfc") {
        let report = run(&data);
        let faults: Vec<_> = report
            .symbols()
            .into_iter()
            .filter(|s| STRUCTURE.contains(s))
            .collect();
        assert!(faults.is_empty(), "rfc/{name}: {faults:?}");
        assert!(report.parts > 0, "rfc/{name}");
    }
}

#[test]
fn known_faults_are_found() {
    let expected: &[(&str, &str, &str)] = &[
        ("malformed", "001.eml", "MIME_BOUNDARY_NOT_FOUND"),
        ("malformed", "002.eml", "MIME_BOUNDARY_NOT_FOUND"),
        ("malformed", "006.eml", "MIME_NO_CLOSING_BOUNDARY"),
        ("malformed", "009.eml", "MIME_NO_CLOSING_BOUNDARY"),
        ("malformed", "016.eml", "MIME_NO_CLOSING_BOUNDARY"),
        ("malformed", "018.eml", "MIME_BAD_QP"),
        ("malformed", "019.eml", "DUPLICATE_HEADER"),
        ("thirdparty", "002.eml", "MIME_BAD_BASE64"),
        ("thirdparty", "004.eml", "MIME_UNKNOWN_CTE"),
        ("thirdparty", "010.eml", "HEADER_8BIT_NO_SMTPUTF8"),
        // RFC 2046's own example holds placeholder text where base64 would be.
        ("rfc", "000.eml", "MIME_BAD_BASE64"),
    ];
    for (folder, file, symbol) in expected {
        let data = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data")
                .join(folder)
                .join(file),
        )
        .unwrap();
        assert!(run(&data).has(symbol), "{folder}/{file}: {symbol}");
    }
}

#[test]
fn every_vector_is_inspected() {
    for folder in ["rfc", "malformed", "thirdparty"] {
        for (name, data) in vectors(folder) {
            let report = run(&data);
            assert!(report.findings.len() < 40, "{folder}/{name}");
        }
    }
}
