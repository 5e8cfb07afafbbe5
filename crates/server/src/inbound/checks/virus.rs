//! The stage's virus verdict on RFC 5235 §3.3's scale, for Sieve's `virustest`: written
//! into the message as `X-Spam-Virus` (see `Verdict::headers`) and read back at local
//! delivery and at the end of DATA as the spam score is.

use super::symbols::Symbol;

/// clamd found a signature: "definitely contains a known virus". Such mail is refused
/// at DATA, so a script sees this value only if that ever changes.
const INFECTED: u8 = 5;
/// Content that commonly carries malware: "possibly contains a known virus".
const SUSPECT: u8 = 4;
/// Scanned and nothing found.
const CLEAN: u8 = 1;

/// The content symbols of `posthorn_inspect` that find what malware travels in:
/// programs, scripts, shortcuts, macros, and names that hide them.
const THREATS: &[&str] = &[
    "ATTACH_EXECUTABLE",
    "ATTACH_SCRIPT",
    "ATTACH_SHORTCUT",
    "ATTACH_DANGEROUS_NAME",
    "ATTACH_DOUBLE_EXTENSION",
    "ATTACH_BIDI_NAME",
    "OFFICE_MACRO",
];

/// The symbols that mean the content was not inspected: an allowed sender's, or one
/// too large or too slow to inspect.
const UNINSPECTED: &[&str] = &["SENDER_ALLOWED", "TOO_BIG_TO_CHECK", "CHECKS_TIMEOUT"];

/// The verdict on a message with `symbols`, which clamd scanned clean when `clamd_clean`.
/// `None`: neither clamd nor the content inspection looked at it (virustest's 0).
pub fn verdict(symbols: &[Symbol], clamd_clean: bool) -> Option<u8> {
    let has = |names: &[&str]| symbols.iter().any(|s| names.contains(&s.name.as_str()));
    if has(&["CLAMAV_VIRUS"]) {
        Some(INFECTED)
    } else if has(THREATS) {
        Some(SUSPECT)
    } else {
        (clamd_clean || !has(UNINSPECTED)).then_some(CLEAN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(names: &[&str]) -> Vec<Symbol> {
        names
            .iter()
            .map(|name| Symbol {
                name: name.to_string(),
                score: 0.0,
                detail: String::new(),
            })
            .collect()
    }

    #[test]
    fn threats_weigh_over_a_clean_scan() {
        assert_eq!(verdict(&symbols(&["CLAMAV_VIRUS"]), false), Some(5));
        assert_eq!(
            verdict(&symbols(&["MISSING_DATE", "ATTACH_EXECUTABLE"]), true),
            Some(4)
        );
        assert_eq!(verdict(&symbols(&["MISSING_DATE"]), false), Some(1));
        assert_eq!(verdict(&symbols(&["SENDER_ALLOWED"]), true), Some(1));
        assert_eq!(
            verdict(&symbols(&["CLAMAV_FAIL", "TOO_BIG_TO_CHECK"]), false),
            None
        );
    }

    #[test]
    fn threats_are_symbols_inspection_gives() {
        for name in THREATS {
            assert!(posthorn_inspect::symbol(name).is_some(), "{name}");
        }
    }
}
