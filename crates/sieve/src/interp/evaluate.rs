//! Evaluating tests (RFC 5228 §5 and the extensions' tests): what each compares, and
//! the comparing, which also keeps `:matches` captures and counts steps.

use super::{Frame, Run, expand, lookup_named, split_flags};
use crate::address::{self, AddressPart, Mailbox};
use crate::ast::{BodyTransform, Test, Zone};
use crate::date;
use crate::error::RuntimeError;
use crate::matching::{MatchKind, Matcher};

impl Run<'_, '_> {
    pub(super) fn test(
        &mut self,
        test: &Test,
        frame: &mut Frame<'_>,
    ) -> Result<bool, RuntimeError> {
        self.step()?;
        let text = |frame: &Frame<'_>, s: &str| expand(frame, s, &self.globals);
        let texts = |frame: &Frame<'_>, list: &[String]| {
            list.iter()
                .map(|s| expand(frame, s, &self.globals))
                .collect::<Vec<_>>()
        };
        let (values, keys, matcher): (Vec<String>, &[String], &Matcher) = match test {
            Test::True => return Ok(true),
            Test::False => return Ok(false),
            Test::Not(inner) => return Ok(!self.test(inner, frame)?),
            Test::AllOf(tests) => {
                for t in tests {
                    if !self.test(t, frame)? {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
            Test::AnyOf(tests) => {
                for t in tests {
                    if self.test(t, frame)? {
                        return Ok(true);
                    }
                }
                return Ok(false);
            }
            Test::Exists(names) => {
                return Ok(texts(frame, names).iter().all(|n| self.message.has(n)));
            }
            Test::Size { over, limit } => {
                let size = self.message.size();
                return Ok(if *over { size > *limit } else { size < *limit });
            }
            Test::Header {
                names,
                keys,
                matcher,
            } => {
                let values = texts(frame, names)
                    .iter()
                    .flat_map(|n| self.message.values(n))
                    .collect();
                (values, keys, matcher)
            }
            Test::Address {
                names,
                keys,
                part,
                matcher,
            } => {
                let names = texts(frame, names);
                let values = names
                    .iter()
                    .flat_map(|n| {
                        self.message
                            .raw_values(n)
                            .flat_map(address::parse_list)
                            .collect::<Vec<_>>()
                    })
                    .map(|m| m.part(*part));
                (present(values, matcher), keys, matcher)
            }
            Test::Envelope {
                parts,
                keys,
                part,
                matcher,
            } => {
                let parts = texts(frame, parts);
                let values = parts
                    .iter()
                    .filter_map(|p| self.envelope_part(p))
                    .map(|address| envelope_value(&address, *part));
                (present(values, matcher), keys, matcher)
            }
            Test::Body {
                transform,
                keys,
                matcher,
            } => {
                let values = match transform {
                    BodyTransform::Raw => vec![self.message.raw_body()],
                    BodyTransform::Text => self.message.body_parts(None),
                    BodyTransform::Content(types) => {
                        self.message.body_parts(Some(&texts(frame, types)))
                    }
                };
                // Pigeonhole's body test sets no match variables (RFC 5229 §3.2 lets
                // each extension say).
                return self.compare(&values, &texts(frame, keys), matcher, frame, false);
            }
            Test::Date {
                header,
                zone,
                part,
                keys,
                matcher,
            } => {
                // No date (or no such part) is no value: nothing matches, and
                // `:count` counts zero.
                let first = self.message.values(&text(frame, header)).into_iter().next();
                let at = first.as_deref().and_then(date::parse_rfc5322);
                let value = at.and_then(|at| self.date_part(at, zone, &text(frame, part), frame));
                (value.into_iter().collect(), keys, matcher)
            }
            Test::CurrentDate {
                zone,
                part,
                keys,
                matcher,
            } => {
                let now = date::DateTime {
                    unix: self.ctx.now.unix,
                    offset: self.ctx.now.offset_minutes,
                };
                let value = self.date_part(now, zone, &text(frame, part), frame);
                (value.into_iter().collect(), keys, matcher)
            }
            Test::Spam {
                percent,
                value,
                matcher,
            } => (
                vec![spamtest_value(self.ctx.spam_score, *percent)],
                std::slice::from_ref(value),
                matcher,
            ),
            Test::Virus { value, matcher } => {
                let verdict = self.ctx.virus.map_or(0, |v| v.clamp(1, 5));
                (
                    vec![verdict.to_string()],
                    std::slice::from_ref(value),
                    matcher,
                )
            }
            Test::String {
                sources,
                keys,
                matcher,
            } => {
                let mut values = texts(frame, sources);
                // RFC 5229 §5: empty strings do not count for :count.
                if matches!(matcher.kind, MatchKind::Count(_)) {
                    values.retain(|v| !v.is_empty());
                }
                (values, keys, matcher)
            }
            Test::HasFlag {
                variables,
                keys,
                matcher,
            } => {
                let held = if variables.is_empty() {
                    self.flags.clone()
                } else {
                    variables
                        .iter()
                        .map(|v| lookup_named(frame, &self.globals, v))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let keys: Vec<String> = texts(frame, keys)
                    .iter()
                    .flat_map(|k| split_flags(k))
                    .collect();
                return self.compare(&split_flags(&held), &keys, matcher, frame, true);
            }
        };
        let keys = texts(frame, keys);
        self.compare(&values, &keys, matcher, frame, true)
    }

    /// Matches and, with variables, keeps the `:matches` wildcards' text (RFC 5229 §3.2).
    /// Every value-key comparison is a step, so long header lists against long key lists
    /// are bounded too.
    fn compare(
        &mut self,
        values: &[String],
        keys: &[String],
        matcher: &Matcher,
        frame: &mut Frame<'_>,
        sets_captures: bool,
    ) -> Result<bool, RuntimeError> {
        self.steps = self
            .steps
            .saturating_add((values.len() as u64).saturating_mul(keys.len() as u64));
        self.step()?;
        let mut captures =
            (sets_captures && frame.script.uses_variables && matcher.kind == MatchKind::Matches)
                .then(Vec::new);
        let matched = matcher.test(values, keys, &mut captures);
        if matched && let Some(found) = captures.filter(|c| !c.is_empty()) {
            frame.captures = found;
        }
        Ok(matched)
    }

    fn envelope_part(&self, part: &str) -> Option<String> {
        let envelope = self.ctx.envelope;
        match part.to_ascii_lowercase().as_str() {
            "from" => Some(envelope.from.clone()),
            "to" => Some(envelope.to.clone()),
            "auth" => envelope.auth.clone(),
            _ => None,
        }
    }

    fn date_part(
        &self,
        at: date::DateTime,
        zone: &Zone,
        part: &str,
        frame: &Frame<'_>,
    ) -> Option<String> {
        let offset = match zone {
            Zone::Local => self.ctx.now.offset_minutes,
            Zone::Original => at.offset,
            Zone::Fixed(zone) => date::zone_argument(&expand(frame, zone, &self.globals))
                .unwrap_or(self.ctx.now.offset_minutes),
        };
        date::part(at.unix, offset, part)
    }
}

/// The address parts to compare; `:count` counts the addresses, those without the
/// part too (a `:detail` of an address without one), as Pigeonhole does.
fn present(parts: impl Iterator<Item = Option<String>>, matcher: &Matcher) -> Vec<String> {
    if matches!(matcher.kind, MatchKind::Count(_)) {
        parts.map(Option::unwrap_or_default).collect()
    } else {
        parts.flatten().collect()
    }
}

/// RFC 5228 §5.4: the null reverse-path compares as the empty string.
fn envelope_value(address: &str, part: AddressPart) -> Option<String> {
    let bare = address.trim().trim_start_matches('<').trim_end_matches('>');
    if bare.is_empty() {
        return (part == AddressPart::All).then(String::new);
    }
    Mailbox::from_spec(bare).part(part)
}

/// RFC 5235 §3: "0" when untested; spamtest 1 (clear) to 10 (certain spam), or with
/// `:percent` 0 to 100, from a score on the 0–10 scale.
fn spamtest_value(score: Option<f64>, percent: bool) -> String {
    let Some(score) = score else {
        return "0".to_owned();
    };
    let scaled = (score.clamp(0.0, 10.0) * 10.0).round() as u32;
    if percent {
        scaled.to_string()
    } else {
        (1 + scaled * 9 / 100).to_string()
    }
}
