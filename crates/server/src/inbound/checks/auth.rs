//! SPF, DKIM, DMARC and ARC results as symbols, and the one rule that joins them with
//! our own domains: a From in a local domain must come with an aligned DKIM pass.

use crate::mailauth::verify::AuthResults;

use super::symbols::{Scores, Symbol};

/// The symbols of `results`; `local_domains` are ours, lower-case.
pub fn symbols(results: &AuthResults, local_domains: &[String], scores: &Scores) -> Vec<Symbol> {
    let mut symbols = Vec::new();
    let spf = match results.spf {
        "pass" => Some("SPF_PASS"),
        "fail" => Some("SPF_FAIL"),
        "softfail" => Some("SPF_SOFTFAIL"),
        "neutral" => Some("SPF_NEUTRAL"),
        "none" => Some("SPF_NONE"),
        "temperror" => Some("SPF_TEMPERROR"),
        "permerror" => Some("SPF_PERMERROR"),
        _ => None,
    };
    let dkim = match results.dkim {
        "pass" => Some("DKIM_PASS"),
        "fail" | "permerror" | "neutral" => Some("DKIM_FAIL"),
        "temperror" => Some("DKIM_TEMPERROR"),
        "none" => Some("DKIM_NONE"),
        _ => None,
    };
    let dmarc = match results.dmarc {
        "pass" => Some("DMARC_PASS"),
        "fail" => Some("DMARC_FAIL"),
        "none" => Some("DMARC_NONE"),
        _ => None,
    };
    let arc = match results.arc {
        "pass" => Some("ARC_PASS"),
        "fail" => Some("ARC_FAIL"),
        _ => None,
    };
    let dkim_detail = results.dkim_domains.join(" ");
    for (name, detail) in [
        (spf, ""),
        (dkim, dkim_detail.as_str()),
        (dmarc, results.from_domain.as_str()),
        (arc, ""),
    ] {
        if let Some(name) = name {
            symbols.push(scores.symbol(name, detail));
        }
    }
    let from = results.from_domain.as_str();
    if is_local(from, local_domains) && !has_aligned_dkim(results) {
        symbols.push(scores.symbol("FROM_LOCAL_UNAUTHENTICATED", from));
    }
    symbols
}

/// True when `domain` is one of ours or below one.
pub fn is_local(domain: &str, local_domains: &[String]) -> bool {
    !domain.is_empty()
        && local_domains
            .iter()
            .any(|local| domain == local || domain.ends_with(&format!(".{local}")))
}

/// True when a DKIM signature that passed is in the From domain or a parent of it
/// (relaxed alignment as RFC 7489 §3.1.1 has it, short of the public suffix list, which
/// our own domains never need).
pub(crate) fn has_aligned_dkim(results: &AuthResults) -> bool {
    let from = results.from_domain.as_str();
    results
        .dkim_domains
        .iter()
        .any(|d| from == d || from.ends_with(&format!(".{d}")) || d.ends_with(&format!(".{from}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Checks;

    fn names(results: &AuthResults) -> Vec<String> {
        let scores = Scores::new(&Checks::default());
        symbols(results, &["ours.test".to_string()], &scores)
            .into_iter()
            .map(|s| s.name)
            .collect()
    }

    #[test]
    fn results_become_symbols() {
        let results = AuthResults {
            spf: "softfail",
            dkim: "pass",
            dkim_domains: vec!["far.test".into()],
            dmarc: "pass",
            arc: "none",
            from_domain: "far.test".into(),
        };
        assert_eq!(names(&results), ["SPF_SOFTFAIL", "DKIM_PASS", "DMARC_PASS"]);
    }

    #[test]
    fn our_domain_in_from_needs_our_signature() {
        let forged = AuthResults {
            spf: "pass",
            dkim: "pass",
            dkim_domains: vec!["attacker.test".into()],
            dmarc: "none",
            arc: "none",
            from_domain: "ours.test".into(),
        };
        assert!(names(&forged).contains(&"FROM_LOCAL_UNAUTHENTICATED".to_string()));
        let signed = AuthResults {
            dkim_domains: vec!["ours.test".into()],
            ..forged.clone()
        };
        assert!(!names(&signed).contains(&"FROM_LOCAL_UNAUTHENTICATED".to_string()));
        let sub = AuthResults {
            from_domain: "lists.ours.test".into(),
            ..forged
        };
        assert!(names(&sub).contains(&"FROM_LOCAL_UNAUTHENTICATED".to_string()));
    }
}
