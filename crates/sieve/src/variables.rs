//! The variables extension (RFC 5229): `${name}` substitution and `set`'s modifiers.

use crate::ast::Modifier;

/// RFC 5229 §6 lets a site bound a variable's length; Pigeonhole's default is 4 KiB.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Whether `name` is a variable name `set` may assign (RFC 5229 §3: identifiers,
/// optionally under a namespace such as `global.`).
pub fn is_assignable(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.iter().all(|p| is_identifier(p))
        && (parts.len() == 1 || (parts.len() == 2 && parts[0].eq_ignore_ascii_case("global")))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A reference inside `${...}` (RFC 5229 §3).
pub enum Reference<'a> {
    Match(usize),
    Named(&'a str),
}

fn reference(inner: &str) -> Option<Reference<'_>> {
    if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Reference::Match(inner.parse().unwrap_or(usize::MAX)));
    }
    inner
        .split('.')
        .all(is_identifier)
        .then_some(Reference::Named(inner))
}

/// Replaces each well-formed `${...}` with what `lookup` gives (unknown names give "");
/// anything else is left as written (§3).
pub fn expand(text: &str, lookup: &dyn Fn(Reference<'_>) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after
            .find('}')
            .and_then(|end| reference(&after[..end]).map(|r| (end, r)))
        {
            Some((end, found)) => {
                out.push_str(&lookup(found));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    truncate(out)
}

/// Cuts a value to [`MAX_VALUE_BYTES`] at a character boundary.
pub fn truncate(mut value: String) -> String {
    if value.len() > MAX_VALUE_BYTES {
        let mut cut = MAX_VALUE_BYTES;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
    }
    value
}

/// Applies `set`'s modifiers, highest precedence first (RFC 5229 §4.1).
pub fn apply_modifiers(value: String, modifiers: &[Modifier]) -> String {
    let mut ordered = modifiers.to_vec();
    ordered.sort_by_key(|m| std::cmp::Reverse(m.precedence()));
    ordered
        .into_iter()
        .fold(value, |v, modifier| match modifier {
            Modifier::Lower => v.to_lowercase(),
            Modifier::Upper => v.to_uppercase(),
            Modifier::LowerFirst => change_first(&v, char::to_lowercase),
            Modifier::UpperFirst => change_first(&v, char::to_uppercase),
            Modifier::QuoteWildcard => {
                let mut out = String::with_capacity(v.len());
                for c in v.chars() {
                    if matches!(c, '*' | '?' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out
            }
            Modifier::Length => v.chars().count().to_string(),
        })
}

fn change_first<I: Iterator<Item = char>>(value: &str, change: fn(char) -> I) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(first) => change(first).chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(r: Reference<'_>) -> String {
        match r {
            Reference::Match(n) => format!("m{n}"),
            Reference::Named(name) => name.to_ascii_lowercase(),
        }
    }

    #[test]
    fn expansion_leaves_malformed_references() {
        assert_eq!(expand("a${X}b${1}c", &lookup), "axbm1c");
        assert_eq!(expand("${global.Y}", &lookup), "global.y");
        assert_eq!(expand("${}${a-b}${", &lookup), "${}${a-b}${");
        assert_eq!(expand("$${x}", &lookup), "$x");
    }

    #[test]
    fn modifiers_in_precedence_order() {
        assert_eq!(
            apply_modifiers(
                "juMBlEd lETTERS".into(),
                &[Modifier::UpperFirst, Modifier::Lower]
            ),
            "Jumbled letters"
        );
        assert_eq!(
            apply_modifiers("a*b".into(), &[Modifier::Length, Modifier::QuoteWildcard]),
            "4"
        );
        assert!(
            is_assignable("global.x")
                && is_assignable("_a1")
                && !is_assignable("1a")
                && !is_assignable("a.b")
        );
    }
}
