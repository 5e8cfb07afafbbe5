//! The tests (RFC 5228 §5 and the extensions' tests), with the comparator, match
//! type and address part tags they share (§2.7).

use super::{
    MatchTags, TagValue, Tagged, Validator, Want, error, list, no_arguments, no_tests, positional,
    string,
};
use crate::address::{self, AddressPart};
use crate::ast::{BodyTransform, Test, Zone};
use crate::error::CompileError;
use crate::extensions::Extension;
use crate::matching::{Comparator, MatchKind, Matcher, Relation};
use crate::parser::{Arg, Node};

impl Validator<'_> {
    fn match_tag(&self, tags: &mut MatchTags, tag: &Tagged) -> Result<bool, CompileError> {
        let kind = match (tag.name.as_str(), &tag.value) {
            ("is", _) => MatchKind::Is,
            ("contains", _) => MatchKind::Contains,
            ("matches", _) => MatchKind::Matches,
            ("value" | "count", TagValue::String(op)) => {
                self.need(
                    Extension::Relational,
                    tag.pos,
                    &format!("unknown tagged argument ':{}'", tag.name),
                )?;
                let relation = Relation::from_name(op)
                    .ok_or_else(|| error(tag.pos, format!("invalid relational match '{op}'")))?;
                if tag.name == "value" {
                    MatchKind::Value(relation)
                } else {
                    MatchKind::Count(relation)
                }
            }
            ("comparator", TagValue::String(name)) => {
                let comparator = Comparator::from_name(name)
                    .ok_or_else(|| error(tag.pos, format!("unknown comparator '{name}'")))?;
                if comparator == Comparator::AsciiNumeric {
                    self.need(
                        Extension::ComparatorNumeric,
                        tag.pos,
                        "comparator 'i;ascii-numeric' is not required",
                    )?;
                }
                tags.comparator = Some(comparator);
                return Ok(true);
            }
            (part @ ("all" | "localpart" | "domain" | "user" | "detail"), _) => {
                let part = match part {
                    "all" => AddressPart::All,
                    "localpart" => AddressPart::LocalPart,
                    "domain" => AddressPart::Domain,
                    "user" => AddressPart::User,
                    _ => AddressPart::Detail,
                };
                if matches!(part, AddressPart::User | AddressPart::Detail) {
                    self.need(
                        Extension::Subaddress,
                        tag.pos,
                        &format!("unknown tagged argument ':{}'", tag.name),
                    )?;
                }
                if tags.part.replace(part).is_some() {
                    return Err(error(tag.pos, "more than one address part given"));
                }
                return Ok(true);
            }
            _ => return Ok(false),
        };
        if tags.kind.replace(kind).is_some() {
            return Err(error(tag.pos, "more than one match type given"));
        }
        Ok(true)
    }

    /// Splits a test's arguments, handling the shared tags, and hands back the others.
    fn split_matching(
        &self,
        node: &Node,
        address: bool,
        extra: impl Fn(&str) -> Option<Want>,
    ) -> Result<(MatchTags, Vec<Tagged>, Vec<Arg>), CompileError> {
        let split = self.split(node, "test", |t| match t {
            "is" | "contains" | "matches" => Some(Want::Nothing),
            "value" | "count" | "comparator" => Some(Want::String),
            "all" | "localpart" | "domain" | "user" | "detail" if address => Some(Want::Nothing),
            other => extra(other),
        })?;
        let mut tags = MatchTags::default();
        let mut rest = Vec::new();
        for tag in split.tags {
            if !self.match_tag(&mut tags, &tag)? {
                rest.push(tag);
            }
        }
        Ok((tags, rest, split.positional))
    }

    pub(super) fn test(&mut self, node: &Node) -> Result<Test, CompileError> {
        if node.block.is_some() {
            return Err(error(node.pos, "a test cannot have a block"));
        }
        let name = node.name.as_str();
        let unknown = || format!("unknown test '{name}'");
        let test = match name {
            "true" | "false" => {
                no_arguments(node)?;
                if name == "true" {
                    Test::True
                } else {
                    Test::False
                }
            }
            "not" => {
                if !node.args.is_empty() || node.tests.len() != 1 {
                    return Err(error(node.pos, "the not test takes one test"));
                }
                Test::Not(Box::new(self.test(&node.tests[0])?))
            }
            "allof" | "anyof" => {
                if !node.args.is_empty() || node.tests.is_empty() {
                    return Err(error(
                        node.pos,
                        format!("the {name} test takes a list of tests"),
                    ));
                }
                let tests = node
                    .tests
                    .iter()
                    .map(|t| self.test(t))
                    .collect::<Result<Vec<_>, _>>()?;
                if name == "allof" {
                    Test::AllOf(tests)
                } else {
                    Test::AnyOf(tests)
                }
            }
            "exists" => {
                no_tests(node)?;
                let split = self.split(node, "test", |_| None)?;
                let [names] = positional::<1>(node, split.positional)?;
                Test::Exists(list(&names)?)
            }
            "size" => {
                no_tests(node)?;
                let split = self.split(node, "test", |t| {
                    matches!(t, "over" | "under").then_some(Want::Nothing)
                })?;
                let [limit] = positional::<1>(node, split.positional)?;
                let Arg::Number(limit, _) = limit else {
                    return Err(error(limit.pos(), "the size test takes a number"));
                };
                match split.tags.as_slice() {
                    [one] => Test::Size {
                        over: one.name == "over",
                        limit,
                    },
                    _ => {
                        return Err(error(
                            node.pos,
                            "the size test takes one of :over or :under",
                        ));
                    }
                }
            }
            "header" => {
                no_tests(node)?;
                let (tags, _, args) = self.split_matching(node, false, |_| None)?;
                let [names, keys] = positional::<2>(node, args)?;
                Test::Header {
                    names: list(&names)?,
                    keys: list(&keys)?,
                    matcher: matcher(node, &tags)?,
                }
            }
            "address" | "envelope" => {
                no_tests(node)?;
                if name == "envelope" {
                    self.need(Extension::Envelope, node.pos, &unknown())?;
                }
                let (tags, _, args) = self.split_matching(node, true, |_| None)?;
                let [names, keys] = positional::<2>(node, args)?;
                let (names_pos, names, keys) = (names.pos(), list(&names)?, list(&keys)?);
                let (part, matcher) = (tags.part.unwrap_or_default(), matcher(node, &tags)?);
                if name == "address" {
                    if let Some(bad) = names
                        .iter()
                        .find(|n| !n.contains("${") && !address::is_address_field(n))
                    {
                        return Err(error(
                            names_pos,
                            format!("specified header '{bad}' is not allowed for the address test"),
                        ));
                    }
                    Test::Address {
                        names,
                        keys,
                        part,
                        matcher,
                    }
                } else {
                    if let Some(bad) = names.iter().find(|p| {
                        !p.contains("${")
                            && !matches!(p.to_ascii_lowercase().as_str(), "from" | "to" | "auth")
                    }) {
                        return Err(error(
                            names_pos,
                            format!(
                                "specified envelope part '{bad}' is not supported by the envelope test"
                            ),
                        ));
                    }
                    Test::Envelope {
                        parts: names,
                        keys,
                        part,
                        matcher,
                    }
                }
            }
            "body" => {
                no_tests(node)?;
                self.need(Extension::Body, node.pos, &unknown())?;
                let (tags, rest, args) = self.split_matching(node, false, |t| match t {
                    "raw" | "text" => Some(Want::Nothing),
                    "content" => Some(Want::List),
                    _ => None,
                })?;
                if rest.len() > 1 {
                    return Err(error(node.pos, "the body test takes one transform"));
                }
                let transform = match rest.into_iter().next().map(|t| (t.name, t.value)) {
                    Some((n, _)) if n == "raw" => BodyTransform::Raw,
                    Some((_, TagValue::List(types))) => BodyTransform::Content(types),
                    _ => BodyTransform::Text,
                };
                let [keys] = positional::<1>(node, args)?;
                Test::Body {
                    transform,
                    keys: list(&keys)?,
                    matcher: matcher(node, &tags)?,
                }
            }
            "date" | "currentdate" => {
                no_tests(node)?;
                self.need(Extension::Date, node.pos, &unknown())?;
                let current = name == "currentdate";
                let (tags, rest, args) = self.split_matching(node, false, |t| match t {
                    "zone" => Some(Want::String),
                    "originalzone" if !current => Some(Want::Nothing),
                    _ => None,
                })?;
                let zone = match rest
                    .into_iter()
                    .map(|t| (t.name, t.value))
                    .collect::<Vec<_>>()
                    .as_slice()
                {
                    [] => Zone::Local,
                    [(_, TagValue::String(zone))] => Zone::Fixed(zone.clone()),
                    [(_, _)] => Zone::Original,
                    _ => {
                        return Err(error(
                            node.pos,
                            ":zone and :originalzone cannot be combined",
                        ));
                    }
                };
                let matcher = matcher(node, &tags)?;
                if current {
                    let [part, keys] = positional::<2>(node, args)?;
                    Test::CurrentDate {
                        zone,
                        part: string(&part)?,
                        keys: list(&keys)?,
                        matcher,
                    }
                } else {
                    let [header, part, keys] = positional::<3>(node, args)?;
                    Test::Date {
                        header: string(&header)?,
                        zone,
                        part: string(&part)?,
                        keys: list(&keys)?,
                        matcher,
                    }
                }
            }
            "spamtest" | "virustest" => {
                no_tests(node)?;
                let ext = if name == "spamtest" {
                    Extension::SpamTest
                } else {
                    Extension::VirusTest
                };
                self.need(ext, node.pos, &unknown())?;
                let (tags, rest, args) = self.split_matching(node, false, |t| {
                    (name == "spamtest" && t == "percent").then_some(Want::Nothing)
                })?;
                if let Some(percent) = rest.first() {
                    self.need(
                        Extension::SpamTestPlus,
                        percent.pos,
                        "unknown tagged argument ':percent'",
                    )?;
                }
                let [value] = positional::<1>(node, args)?;
                let (value, matcher) = (string(&value)?, matcher(node, &tags)?);
                if name == "spamtest" {
                    Test::Spam {
                        percent: !rest.is_empty(),
                        value,
                        matcher,
                    }
                } else {
                    Test::Virus { value, matcher }
                }
            }
            "string" => {
                no_tests(node)?;
                self.need(Extension::Variables, node.pos, &unknown())?;
                let (tags, _, args) = self.split_matching(node, false, |_| None)?;
                let [sources, keys] = positional::<2>(node, args)?;
                Test::String {
                    sources: list(&sources)?,
                    keys: list(&keys)?,
                    matcher: matcher(node, &tags)?,
                }
            }
            "hasflag" => {
                no_tests(node)?;
                self.need(Extension::Imap4Flags, node.pos, &unknown())?;
                let (tags, _, args) = self.split_matching(node, false, |_| None)?;
                let (variables, keys) = self.flag_arguments(node, args, true)?;
                Test::HasFlag {
                    variables,
                    keys,
                    matcher: matcher(node, &tags)?,
                }
            }
            _ => return Err(error(node.pos, unknown())),
        };
        Ok(test)
    }
}

/// RFC 4790 §9.1: i;ascii-numeric cannot do `:contains` or `:matches`.
fn matcher(node: &Node, tags: &MatchTags) -> Result<Matcher, CompileError> {
    let default = Matcher::default();
    let found = Matcher {
        comparator: tags.comparator.unwrap_or(default.comparator),
        kind: tags.kind.unwrap_or(default.kind),
    };
    if !found.comparator.supports_substring()
        && matches!(found.kind, MatchKind::Contains | MatchKind::Matches)
    {
        return Err(error(
            node.pos,
            "the comparator 'i;ascii-numeric' does not support this match type",
        ));
    }
    Ok(found)
}
