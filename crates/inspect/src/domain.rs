//! Domain names: registrable domains (Public Suffix List, via `psl`) and look-alikes of our
//! own domains. The look-alike test is a small confusables skeleton (in the spirit of
//! Unicode TS #39 §4): Cyrillic and Greek letters that render like Latin ones, and the digits
//! 0 and 1, map to the Latin letter; two different names with one skeleton look alike.

/// The registrable domain of `host` (`mail.example.co.uk` -> `example.co.uk`), lower-cased
/// and in ASCII (punycode) form; `None` for names under no known public suffix.
pub(crate) fn registrable(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_lowercase();
    let ascii = if host.is_ascii() {
        host
    } else {
        idna::domain_to_ascii(&host).ok()?
    };
    let domain = psl::domain(ascii.as_bytes())?;
    if !domain.suffix().is_known() {
        return None;
    }
    std::str::from_utf8(domain.as_bytes())
        .ok()
        .map(str::to_owned)
}

pub(crate) fn is_local(domain: &str, locals: &[String]) -> bool {
    let domain = domain.trim_end_matches('.');
    locals.iter().any(|l| l.eq_ignore_ascii_case(domain))
}

/// The local domain `host` (or its registrable domain) imitates, if any. A host that is one
/// of ours, or under one of ours, imitates nothing.
pub(crate) fn lookalike_of<'l>(host: &str, locals: &'l [String]) -> Option<&'l str> {
    let mut candidates = vec![host.trim_end_matches('.').to_lowercase()];
    candidates.extend(registrable(host));
    if candidates.iter().any(|c| is_local(c, locals)) {
        return None;
    }
    let skeletons: Vec<String> = candidates.iter().map(|c| skeleton(c)).collect();
    locals
        .iter()
        .find(|local| skeletons.contains(&skeleton(local)))
        .map(String::as_str)
}

/// Whether a label of `host` (decoded from punycode) mixes Latin letters with Cyrillic or
/// Greek ones, a homograph sign no legitimate single-language name needs.
pub(crate) fn mixed_script(host: &str) -> bool {
    unicode(host).split('.').any(|label| {
        let latin = label.chars().any(|c| c.is_ascii_alphabetic());
        latin && label.chars().any(|c| is_cyrillic(c) || is_greek(c))
    })
}

fn unicode(host: &str) -> String {
    let lower = host.trim_end_matches('.').to_lowercase();
    if lower.split('.').any(|label| label.starts_with("xn--")) {
        idna::domain_to_unicode(&lower).0
    } else {
        lower
    }
}

fn skeleton(host: &str) -> String {
    unicode(host).chars().map(confusable).collect()
}

fn is_cyrillic(c: char) -> bool {
    ('\u{0400}'..='\u{04FF}').contains(&c) || ('\u{0500}'..='\u{052F}').contains(&c)
}

fn is_greek(c: char) -> bool {
    ('\u{0370}'..='\u{03FF}').contains(&c)
}

/// The Latin letter `c` is usually mistaken for (lower case only: callers lower-case first).
fn confusable(c: char) -> char {
    match c {
        'а' | 'α' => 'a',
        'в' | 'ь' | 'β' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ё' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ї' | 'ι' | '1' | 'ӏ' => 'l',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'м' => 'm',
        'о' | 'ο' | 'σ' | '0' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' => 'u',
        'ν' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        'i' => 'l',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locals() -> Vec<String> {
        vec!["paypal.example".to_owned(), "bank.co.uk".to_owned()]
    }

    #[test]
    fn registrable_domains() {
        assert_eq!(
            registrable("www.Mail.Bank.co.uk.").as_deref(),
            Some("bank.co.uk")
        );
        assert_eq!(registrable("example.com").as_deref(), Some("example.com"));
        assert_eq!(registrable("co.uk"), None);
        assert_eq!(registrable("localhost"), None);
    }

    #[test]
    fn lookalikes_of_local_domains() {
        let locals = locals();
        // Cyrillic а and р.
        assert_eq!(
            lookalike_of("раypal.example", &locals),
            Some("paypal.example")
        );
        assert_eq!(
            lookalike_of("xn--ypal-43d9g.example", &locals),
            Some("paypal.example")
        );
        assert_eq!(
            lookalike_of("login.bαnk.co.uk", &locals),
            Some("bank.co.uk")
        );
        assert_eq!(
            lookalike_of("paypa1.example", &locals),
            Some("paypal.example")
        );
        assert_eq!(lookalike_of("paypal.example", &locals), None);
        assert_eq!(lookalike_of("other.example", &locals), None);
        assert_eq!(lookalike_of("b4nk.co.uk", &locals), None);
        assert_eq!(lookalike_of("www.bank.co.uk", &locals), None);
    }

    #[test]
    fn mixed_scripts() {
        assert!(mixed_script("раypal.example"));
        assert!(mixed_script("xn--ypal-43d9g.example"));
        assert!(!mixed_script("пример.рф"));
        assert!(!mixed_script("example.com"));
    }
}
