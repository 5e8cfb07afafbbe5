//! The one verdict of the stage, from the symbols a message got: accept, junk, reject or
//! defer; and how it is written into the message (headers mail clients and Sieve scripts
//! already read) and into the log.

use posthorn_proto::Reply;
use posthorn_proto::reply::table;

use super::symbols::{Class, Symbol, class_of};

/// What happens to the message.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Deliver normally.
    Accept,
    /// Deliver into the recipients' Junk folder.
    Junk,
    /// Refuse it now, at the end of DATA: never accept and bounce later, which would make
    /// us a source of backscatter.
    Reject(Reply),
    /// Answer `451`: the sender tries again later.
    Defer(Reply),
}

impl Action {
    /// The word in the log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Junk => "junk",
            Action::Reject(_) => "reject",
            Action::Defer(_) => "defer",
        }
    }
}

/// The stage's verdict on one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What happens.
    pub action: Action,
    /// The sum of the symbols' scores.
    pub score: f64,
    /// The score from which mail is junk.
    pub required: f64,
    /// Every symbol, highest score first.
    pub symbols: Vec<Symbol>,
    /// virustest's value (RFC 5235 §3.3), `None` when not scanned (see `virus`).
    pub virus: Option<u8>,
}

/// Thresholds and hard errors: `[checks]`.
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// Junk from this score.
    pub junk: f64,
    /// Reject from this score.
    pub reject: f64,
    /// Symbols that reject by themselves.
    pub hard_errors: Vec<String>,
}

impl Thresholds {
    /// The verdict on `symbols`, unless a check already decided (`decided`: a virus, a
    /// check that failed and defers, greylisting).
    pub fn judge(&self, mut symbols: Vec<Symbol>, decided: Option<Action>) -> Verdict {
        symbols.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.name.cmp(&b.name))
        });
        // `+ 0.0` turns the empty sum, -0.0, into 0.0.
        let score = symbols.iter().map(|s| s.score).sum::<f64>() + 0.0;
        let hard = symbols.iter().find(|s| self.hard_errors.contains(&s.name));
        let action = if let Some(action) = decided {
            action
        } else if let Some(symbol) = hard {
            let reason = reason(symbol);
            Action::Reject(match class_of(&symbol.name) {
                Class::Format => table::malformed_message(&reason),
                Class::Policy => table::content_refused(&reason),
            })
        } else if score >= self.reject {
            let main = symbols.first().map(reason).unwrap_or_default();
            Action::Reject(table::content_refused(&format!(
                "spam score {score:.1}, {main}"
            )))
        } else if score >= self.junk {
            Action::Junk
        } else {
            Action::Accept
        };
        Verdict {
            action,
            score,
            required: self.junk,
            symbols,
            virus: None,
        }
    }
}

impl Verdict {
    /// The header fields the message gets: `X-Spam-Flag` and `X-Spam-Status` as
    /// SpamAssassin writes them (what Sieve scripts and mail clients test), `X-Spam-Virus`
    /// with virustest's value when the message was scanned, and `X-Posthorn-Checks` with
    /// each symbol, its score and what it found.
    pub fn headers(&self) -> String {
        let spam = matches!(self.action, Action::Junk | Action::Reject(_));
        let names: Vec<&str> = self.symbols.iter().map(|s| s.name.as_str()).collect();
        let mut headers = format!(
            "X-Spam-Flag: {}\r\nX-Spam-Status: {}, score={:.1} required={:.1}\r\n\ttests={}\r\n",
            if spam { "YES" } else { "NO" },
            if spam { "Yes" } else { "No" },
            self.score,
            self.required,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(",")
            },
        );
        if let Some(virus) = self.virus {
            headers.push_str(&format!(
                "X-Spam-Virus: {}, virustest={virus}\r\n",
                if virus > 1 { "Yes" } else { "No" }
            ));
        }
        headers.push_str(&format!(
            "X-Posthorn-Checks: {}; score={:.2}",
            self.action.as_str(),
            self.score
        ));
        for symbol in &self.symbols {
            headers.push_str(&format!(";\r\n\t{}={:.2}", symbol.name, symbol.score));
            if !symbol.detail.is_empty() {
                headers.push_str(&format!(" ({})", header_safe(&symbol.detail)));
            }
        }
        headers.push_str("\r\n");
        headers
    }

    /// `junk score=7.2 A,B,C`: the verdict and the symbols that weigh most (whatever
    /// their sign), for the log.
    pub fn summary(&self) -> String {
        let mut top: Vec<&Symbol> = self.symbols.iter().collect();
        top.sort_by(|a, b| b.score.abs().total_cmp(&a.score.abs()));
        let names: Vec<&str> = top.iter().take(5).map(|s| s.name.as_str()).collect();
        let mut summary = format!("{} score={:.1}", self.action.as_str(), self.score);
        if !names.is_empty() {
            summary.push(' ');
            summary.push_str(&names.join(","));
        }
        summary
    }
}

/// What a reply says of a symbol: its name and what it found.
fn reason(symbol: &Symbol) -> String {
    if symbol.detail.is_empty() {
        symbol.name.clone()
    } else {
        format!("{} ({})", symbol.name, header_safe(&symbol.detail))
    }
}

/// `text` made safe for one header line or reply: printable ASCII only (what a hostile
/// message put in a file name must not break our header or reply), at most 200 chars.
pub fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbol(name: &str, score: f64, detail: &str) -> Symbol {
        Symbol {
            name: name.into(),
            score,
            detail: detail.into(),
        }
    }

    fn thresholds(hard: &[&str]) -> Thresholds {
        Thresholds {
            junk: 6.0,
            reject: 15.0,
            hard_errors: hard.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scores_decide_by_threshold() {
        let t = thresholds(&[]);
        assert_eq!(
            t.judge(vec![symbol("A", 2.0, "")], None).action,
            Action::Accept
        );
        assert_eq!(
            t.judge(vec![symbol("A", 2.0, ""), symbol("B", 4.5, "")], None)
                .action,
            Action::Junk
        );
        let rejected = t.judge(vec![symbol("A", 9.0, ""), symbol("B", 6.5, "x.test")], None);
        let Action::Reject(reply) = rejected.action else {
            panic!("not rejected");
        };
        assert_eq!(reply.code, 550);
        assert!(reply.text.contains("A"), "{reply}");
    }

    #[test]
    fn a_hard_error_rejects_whatever_the_score() {
        let verdict = thresholds(&["DANGEROUS_ATTACHMENT"]).judge(
            vec![symbol("DANGEROUS_ATTACHMENT", 0.5, "a.exe\r\nX: y")],
            None,
        );
        let Action::Reject(reply) = verdict.action else {
            panic!("not rejected");
        };
        assert_eq!(reply.to_string().lines().count(), 1, "{reply}");
        assert!(reply.text.contains("a.exe??X: y"), "{reply}");
    }

    #[test]
    fn headers_carry_flag_status_and_every_symbol() {
        let verdict = thresholds(&[]).judge(
            vec![symbol("LOW", -1.0, ""), symbol("HIGH", 7.25, "bad.test")],
            None,
        );
        let headers = verdict.headers();
        assert!(headers.starts_with("X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=6.2 required=6.0\r\n\ttests=HIGH,LOW\r\n"), "{headers}");
        assert!(
            headers.contains(
                "X-Posthorn-Checks: junk; score=6.25;\r\n\tHIGH=7.25 (bad.test);\r\n\tLOW=-1.00\r\n"
            ),
            "{headers}"
        );
        assert_eq!(verdict.summary(), "junk score=6.2 HIGH,LOW");
        assert!(!headers.contains("X-Spam-Virus"), "not scanned: {headers}");
    }

    #[test]
    fn the_virus_verdict_is_written_as_delivery_reads_it() {
        let mut verdict = thresholds(&[]).judge(vec![symbol("ATTACH_EXECUTABLE", 3.0, "")], None);
        verdict.virus = Some(4);
        let headers = verdict.headers();
        assert!(
            headers.contains("\r\nX-Spam-Virus: Yes, virustest=4\r\nX-Posthorn-Checks: "),
            "{headers}"
        );
        assert_eq!(
            crate::delivery::sieve::virus_verdict(headers.as_bytes()),
            Some(4)
        );
    }
}
