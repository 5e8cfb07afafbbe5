//! Comparators (RFC 5228 §2.7.3, RFC 4790) and match types: `:is`, `:contains`,
//! `:matches` (§2.7.1) and the relational `:value` and `:count` (RFC 5231).

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    Octet,
    AsciiCasemap,
    AsciiNumeric,
}

impl Comparator {
    pub fn from_name(name: &str) -> Option<Comparator> {
        match name {
            "i;octet" => Some(Comparator::Octet),
            "i;ascii-casemap" => Some(Comparator::AsciiCasemap),
            "i;ascii-numeric" => Some(Comparator::AsciiNumeric),
            _ => None,
        }
    }

    /// RFC 4790 §9.1: i;ascii-numeric offers equality and ordering, not substrings.
    pub fn supports_substring(self) -> bool {
        self != Comparator::AsciiNumeric
    }

    fn fold(self, c: char) -> char {
        match self {
            Comparator::AsciiCasemap => c.to_ascii_lowercase(),
            _ => c,
        }
    }

    /// The order of two values; for i;ascii-numeric a value is its leading digits, and
    /// one without any is greater than every number (RFC 4790 §9.1.1).
    pub fn order(self, a: &str, b: &str) -> Ordering {
        match self {
            Comparator::Octet => a.as_bytes().cmp(b.as_bytes()),
            Comparator::AsciiCasemap => a
                .bytes()
                .map(|b| b.to_ascii_lowercase())
                .cmp(b.bytes().map(|b| b.to_ascii_lowercase())),
            Comparator::AsciiNumeric => numeric_key(a).cmp(&numeric_key(b)),
        }
    }

    fn contains(self, haystack: &str, needle: &str) -> bool {
        match self {
            Comparator::Octet => haystack.contains(needle),
            _ => haystack
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase()),
        }
    }
}

/// Digits with leading zeros removed, compared by length then text, so numbers of any
/// size order correctly; `None` (no leading digit) is positive infinity.
fn numeric_key(value: &str) -> (bool, usize, String) {
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return (true, 0, String::new());
    }
    let trimmed = digits.trim_start_matches('0').to_owned();
    (false, trimmed.len(), trimmed)
}

/// A relational operator (RFC 5231 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Relation {
    pub fn from_name(name: &str) -> Option<Relation> {
        match name.to_ascii_lowercase().as_str() {
            "gt" => Some(Relation::Gt),
            "ge" => Some(Relation::Ge),
            "lt" => Some(Relation::Lt),
            "le" => Some(Relation::Le),
            "eq" => Some(Relation::Eq),
            "ne" => Some(Relation::Ne),
            _ => None,
        }
    }

    fn holds(self, order: Ordering) -> bool {
        match self {
            Relation::Gt => order == Ordering::Greater,
            Relation::Ge => order != Ordering::Less,
            Relation::Lt => order == Ordering::Less,
            Relation::Le => order != Ordering::Greater,
            Relation::Eq => order == Ordering::Equal,
            Relation::Ne => order != Ordering::Equal,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Is,
    Contains,
    Matches,
    Value(Relation),
    Count(Relation),
}

/// A match type with its comparator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matcher {
    pub comparator: Comparator,
    pub kind: MatchKind,
}

impl Default for Matcher {
    /// RFC 5228 §2.7.1 and §2.7.3: `:is` with `i;ascii-casemap` when none is given.
    fn default() -> Self {
        Matcher {
            comparator: Comparator::AsciiCasemap,
            kind: MatchKind::Is,
        }
    }
}

impl Matcher {
    /// Whether any value matches any key (§2.7.1). For `:matches`, `captures` receives
    /// the text of each wildcard of the first pair that matched ([0] is the whole value).
    pub fn test(
        &self,
        values: &[String],
        keys: &[String],
        captures: &mut Option<Vec<String>>,
    ) -> bool {
        if let MatchKind::Count(relation) = self.kind {
            let count = values.len().to_string();
            return keys
                .iter()
                .any(|key| relation.holds(self.comparator.order(&count, key)));
        }
        values
            .iter()
            .any(|value| keys.iter().any(|key| self.one(value, key, captures)))
    }

    fn one(&self, value: &str, key: &str, captures: &mut Option<Vec<String>>) -> bool {
        match self.kind {
            // An empty value is only ever the empty key, whatever the comparator says
            // (i;ascii-numeric holds any two non-numbers equal); as in Pigeonhole.
            MatchKind::Is if value.is_empty() => key.is_empty(),
            MatchKind::Is => self.comparator.order(value, key) == Ordering::Equal,
            MatchKind::Contains => self.comparator.contains(value, key),
            MatchKind::Value(relation) => relation.holds(self.comparator.order(value, key)),
            MatchKind::Count(_) => false,
            MatchKind::Matches => match glob(self.comparator, value, key) {
                Some(found) => {
                    if captures.is_some() {
                        *captures = Some(found);
                    }
                    true
                }
                None => false,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    Literal(char),
    One,
    Any,
}

fn pieces(pattern: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Piece::Any,
            '?' => Piece::One,
            '\\' => Piece::Literal(chars.next().unwrap_or('\\')),
            other => Piece::Literal(other),
        });
    }
    out
}

/// `:matches` (§2.7.1): `*` is any run of characters, `?` one character, `\` quotes the
/// next. Each `*` takes as little as it can (RFC 5229 §3.2's captures depend on that);
/// a mismatch widens only the latest `*`, which keeps the work at O(value × pattern).
/// Returns the whole value and each wildcard's text on a match.
fn glob(comparator: Comparator, value: &str, pattern: &str) -> Option<Vec<String>> {
    let text: Vec<char> = value.chars().collect();
    let pat = pieces(pattern);
    let (mut t, mut p) = (0usize, 0usize);
    // Each wildcard's (start, end) in `text`, in pattern order.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    // The latest `*`: its place in the pattern, where its text starts, how many spans
    // came before it.
    let mut backtrack: Option<(usize, usize, usize)> = None;
    loop {
        if p < pat.len() {
            match pat[p] {
                Piece::Any => {
                    backtrack = Some((p, t, spans.len()));
                    spans.push((t, t));
                    p += 1;
                    continue;
                }
                Piece::One if t < text.len() => {
                    spans.push((t, t + 1));
                    t += 1;
                    p += 1;
                    continue;
                }
                Piece::Literal(c)
                    if t < text.len() && comparator.fold(c) == comparator.fold(text[t]) =>
                {
                    t += 1;
                    p += 1;
                    continue;
                }
                _ => {}
            }
        } else if t == text.len() {
            let mut found = vec![value.to_owned()];
            found.extend(
                spans
                    .iter()
                    .map(|&(s, e)| text[s..e].iter().collect::<String>()),
            );
            return Some(found);
        }
        let (star, start, before) = backtrack?;
        let end = spans.get(before).map(|&(_, e)| e)?;
        if end >= text.len() {
            return None;
        }
        spans.truncate(before);
        spans.push((start, end + 1));
        t = end + 1;
        p = star + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(value: &str, pattern: &str) -> Option<Vec<String>> {
        glob(Comparator::AsciiCasemap, value, pattern)
    }

    #[test]
    fn glob_wildcards_and_captures() {
        assert_eq!(matches("a.b.c", "*.*").unwrap(), vec!["a.b.c", "a", "b.c"]);
        assert_eq!(
            matches("user@Example.com", "*@*").unwrap()[2],
            "Example.com"
        );
        assert_eq!(matches("abc", "a?c").unwrap(), vec!["abc", "b"]);
        assert!(matches("abc", "a\\?c").is_none());
        assert!(matches("a?c", "a\\?c").is_some());
        assert!(matches("ABC", "abc").is_some());
        assert!(glob(Comparator::Octet, "ABC", "abc").is_none());
        assert!(matches("", "*").is_some());
        assert!(matches("abcabd", "*ab?").is_some());
        assert!(matches("xaaaab", "*a*b").is_some());
        assert!(matches("ab", "a*c").is_none());
    }

    #[test]
    fn glob_stays_polynomial() {
        let value = "a".repeat(5000);
        assert!(matches(&value, &"*a".repeat(50)).is_some());
        assert!(matches(&value, &("*a".repeat(40) + "b")).is_none());
    }

    #[test]
    fn numeric_order_and_infinity() {
        let num = Comparator::AsciiNumeric;
        assert_eq!(num.order("10", "9"), Ordering::Greater);
        assert_eq!(num.order("007", "7"), Ordering::Equal);
        assert_eq!(num.order("x", "99999999999999999999999"), Ordering::Greater);
        assert_eq!(num.order("x", "y"), Ordering::Equal);
    }

    #[test]
    fn relational_count_and_value() {
        let values = vec!["a".to_owned(), "b".to_owned()];
        let count = Matcher {
            comparator: Comparator::AsciiNumeric,
            kind: MatchKind::Count(Relation::Ge),
        };
        assert!(count.test(&values, &["2".to_owned()], &mut None));
        assert!(!count.test(&values, &["3".to_owned()], &mut None));
        let value = Matcher {
            comparator: Comparator::AsciiCasemap,
            kind: MatchKind::Value(Relation::Lt),
        };
        assert!(value.test(&values, &["B".to_owned()], &mut None));
    }
}
