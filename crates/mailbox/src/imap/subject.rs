//! The base subject of RFC 5256 §2.1, which SORT SUBJECT and both THREAD algorithms
//! compare: the subject without `Re:`, `Fwd:`, `[list]` tags and `(fwd)` trailers.

/// A message's base subject, upper-cased for comparison (the i;ascii-casemap collation,
/// extended to all of Unicode as Dovecot does), and whether extracting it removed a
/// reply or forward marker (what THREAD REFERENCES calls a reply/forward subject).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct BaseSubject {
    /// The comparison key.
    pub(super) key: String,
    /// `Re:`, `Fw:`, `Fwd:`, `(fwd)` or `[fwd: ...]` was removed.
    pub(super) reply: bool,
}

/// Extracts the base subject from a decoded subject (RFC 5256 §2.1 steps 1 to 6).
pub(super) fn base_subject(subject: &str) -> BaseSubject {
    // Step 1: every run of whitespace (folding included) becomes one space.
    let mut text = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut reply = false;
    loop {
        // Step 2: trailing `(fwd)` and whitespace.
        loop {
            let trimmed = text.trim_end();
            match strip_suffix_ci(trimmed, "(fwd)") {
                Some(rest) => {
                    text = rest.to_string();
                    reply = true;
                }
                None => {
                    text = trimmed.to_string();
                    break;
                }
            }
        }
        // Steps 3 and 4 until neither changes anything.
        loop {
            let before = text.len();
            while let Some(rest) = strip_leader(&text) {
                reply |= rest.1;
                text = rest.0.to_string();
            }
            if let Some(rest) = strip_blob(&text)
                && !rest.trim().is_empty()
            {
                text = rest.to_string();
            }
            if text.len() == before {
                break;
            }
        }
        // Step 5: `[fwd: ...]` around it all, then from step 2 again.
        match strip_prefix_ci(&text, "[fwd:").and_then(|rest| rest.strip_suffix(']')) {
            Some(inner) => {
                text = inner.to_string();
                reply = true;
            }
            None => break,
        }
    }
    BaseSubject {
        key: text.to_uppercase(),
        reply,
    }
}

/// Step 3: one subj-leader removed (a space, or blobs followed by `re`, `fw` or `fwd`,
/// an optional blob and a colon), with whether it was a reply/forward marker.
fn strip_leader(text: &str) -> Option<(&str, bool)> {
    if let Some(rest) = text.strip_prefix(' ') {
        return Some((rest, false));
    }
    let mut rest = text;
    while let Some(after) = strip_blob(rest) {
        rest = after;
    }
    let after_word = ["re", "fwd", "fw"]
        .iter()
        .find_map(|word| strip_prefix_ci(rest, word))?;
    let mut after = after_word.trim_start_matches(' ');
    if let Some(after_blob) = strip_blob(after) {
        after = after_blob;
    }
    after.strip_prefix(':').map(|rest| (rest, true))
}

/// A subj-blob (`[` anything but brackets `]`, then spaces) removed from the front.
fn strip_blob(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('[')?;
    let close = inner.find(['[', ']'])?;
    let rest = inner.get(close..)?.strip_prefix(']')?;
    Some(rest.trim_start_matches(' '))
}

/// `text` without the ASCII `prefix`, compared ignoring case.
fn strip_prefix_ci<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// `text` without the ASCII `suffix`, compared ignoring case.
fn strip_suffix_ci<'t>(text: &'t str, suffix: &str) -> Option<&'t str> {
    let cut = text.len().checked_sub(suffix.len())?;
    let tail = text.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix)
        .then(|| text.get(..cut))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(subject: &str) -> (String, bool) {
        let found = base_subject(subject);
        (found.key, found.reply)
    }

    #[test]
    fn reply_and_forward_markers_are_removed() {
        assert_eq!(base("Re: hello"), ("HELLO".into(), true));
        assert_eq!(base("RE: Fwd: re:hello"), ("HELLO".into(), true));
        assert_eq!(
            base("Fw: [list] Re[2]: hello (fwd)"),
            ("HELLO".into(), true)
        );
        assert_eq!(base("[fwd: Re: hello]"), ("HELLO".into(), true));
        assert_eq!(base("hello\t  world  "), ("HELLO WORLD".into(), false));
    }

    #[test]
    fn blobs_stay_when_nothing_else_is_left() {
        assert_eq!(base("[list] hello"), ("HELLO".into(), false));
        assert_eq!(base("[list]"), ("[LIST]".into(), false));
        assert_eq!(base("Re: [list]"), ("[LIST]".into(), true));
        assert_eq!(base("[a][b] x"), ("X".into(), false));
    }

    #[test]
    fn words_that_only_start_like_markers_stay() {
        assert_eq!(base("Reply needed"), ("REPLY NEEDED".into(), false));
        assert_eq!(base("re"), ("RE".into(), false));
        assert_eq!(base(""), (String::new(), false));
        assert_eq!(base("Ünïcode: ré: x"), ("ÜNÏCODE: RÉ: X".into(), false));
    }
}
