//! Checks the untyped tree against what each command and test takes (RFC 5228 §3–§5
//! and the extensions' grammars) and builds the typed [`Script`]. Every command, test
//! and tag an extension brings is refused unless the script required it (§3.2).

use std::collections::BTreeSet;

use crate::address::{self, AddressPart};
use crate::ast::{
    BodyTransform, Command, FlagOp, Location, Modifier, Script, Test, VacationSpec, Zone,
};
use crate::error::{CompileError, Pos};
use crate::extensions::{Extension, Extensions};
use crate::matching::{Comparator, MatchKind, Matcher, Relation};
use crate::parser::{Arg, Node};
use crate::variables;

/// Builds a script from the parsed top-level commands.
pub fn validate(nodes: &[Node], enabled: &Extensions) -> Result<Script, CompileError> {
    let mut validator = Validator {
        enabled,
        required: BTreeSet::new(),
    };
    let commands = validator.block(nodes, true)?;
    Ok(Script {
        commands,
        uses_variables: validator.required.contains(&Extension::Variables),
        uses_flags: validator.required.contains(&Extension::Imap4Flags),
        extensions: enabled.clone(),
    })
}

/// What a tag takes after it.
#[derive(Clone, Copy)]
enum Want {
    Nothing,
    String,
    List,
    Number,
}

enum TagValue {
    Nothing,
    String(String),
    List(Vec<String>),
    Number(u64),
}

struct Tagged {
    name: String,
    pos: Pos,
    value: TagValue,
}

/// A command's or test's arguments, tags (with their values) apart from the rest.
struct Split {
    tags: Vec<Tagged>,
    positional: Vec<Arg>,
}

/// The comparator, match type and address part tags many tests share (§2.7).
#[derive(Default)]
struct MatchTags {
    comparator: Option<Comparator>,
    kind: Option<MatchKind>,
    part: Option<AddressPart>,
}

struct Validator<'a> {
    enabled: &'a Extensions,
    required: BTreeSet<Extension>,
}

fn error(pos: Pos, message: impl Into<String>) -> CompileError {
    CompileError::new(pos, message)
}

impl Validator<'_> {
    fn has(&self, ext: Extension) -> bool {
        self.required.contains(&ext)
    }

    /// Refuses what an extension brings unless the script required it (§3.2).
    fn need(&self, ext: Extension, pos: Pos, what: &str) -> Result<(), CompileError> {
        if self.has(ext) {
            return Ok(());
        }
        Err(error(
            pos,
            format!("{what} (require \"{}\" first)", ext.name()),
        ))
    }

    fn block(&mut self, nodes: &[Node], top: bool) -> Result<Vec<Command>, CompileError> {
        let mut commands = Vec::new();
        let mut requires_allowed = top;
        let mut at = 0;
        while at < nodes.len() {
            let node = &nodes[at];
            at += 1;
            if node.name == "require" {
                if !requires_allowed {
                    return Err(error(
                        node.pos,
                        "require command can only be placed at top level at the beginning of the file",
                    ));
                }
                self.require(node)?;
                continue;
            }
            requires_allowed = false;
            match node.name.as_str() {
                "if" => {
                    let mut branches = vec![self.branch(node)?];
                    let mut otherwise = None;
                    while let Some(next) = nodes.get(at) {
                        match next.name.as_str() {
                            "elsif" => branches.push(self.branch(next)?),
                            "else" => {
                                no_arguments(next)?;
                                otherwise = Some(
                                    self.block(next.block.as_deref().unwrap_or_default(), false)?,
                                );
                                if next.block.is_none() {
                                    return Err(error(
                                        next.pos,
                                        "the else command requires a block",
                                    ));
                                }
                            }
                            _ => break,
                        }
                        at += 1;
                        if otherwise.is_some() {
                            break;
                        }
                    }
                    commands.push(Command::If {
                        branches,
                        otherwise,
                    });
                }
                "elsif" | "else" => {
                    return Err(error(
                        node.pos,
                        format!(
                            "{} command not preceded by an if or elsif command",
                            node.name
                        ),
                    ));
                }
                _ => commands.push(self.command(node)?),
            }
        }
        Ok(commands)
    }

    fn require(&mut self, node: &Node) -> Result<(), CompileError> {
        no_block_or_tests(node)?;
        let split = self.split(node, "command", |_| None)?;
        let [arg] = positional::<1>(node, split.positional)?;
        for name in list(&arg)? {
            if name == "comparator-i;octet" || name == "comparator-i;ascii-casemap" {
                continue;
            }
            let ext = Extension::from_name(&name)
                .filter(|ext| self.enabled.contains(*ext))
                .ok_or_else(|| {
                    error(
                        arg.pos(),
                        format!("require command: unknown Sieve capability `{name}'"),
                    )
                })?;
            self.required.insert(ext);
            match ext {
                Extension::SpamTestPlus => self.required.insert(Extension::SpamTest),
                Extension::VacationSeconds => self.required.insert(Extension::Vacation),
                _ => false,
            };
        }
        Ok(())
    }

    fn branch(&mut self, node: &Node) -> Result<(Test, Vec<Command>), CompileError> {
        if !node.args.is_empty() || node.tests.len() != 1 {
            return Err(error(
                node.pos,
                format!("the {} command requires one test", node.name),
            ));
        }
        let body = node.block.as_deref().ok_or_else(|| {
            error(
                node.pos,
                format!("the {} command requires a block", node.name),
            )
        })?;
        Ok((self.test(&node.tests[0])?, self.block(body, false)?))
    }

    /// Separates tags from positional arguments; `want` says which tags this command
    /// or test takes and what follows each.
    fn split(
        &self,
        node: &Node,
        kind: &str,
        want: impl Fn(&str) -> Option<Want>,
    ) -> Result<Split, CompileError> {
        let mut tags = Vec::new();
        let mut positional = Vec::new();
        let mut args = node.args.iter();
        while let Some(arg) = args.next() {
            let Arg::Tag(name, pos) = arg else {
                positional.push(arg.clone());
                continue;
            };
            let wanted = want(name).ok_or_else(|| {
                error(
                    *pos,
                    format!(
                        "unknown tagged argument ':{name}' for the {} {kind}",
                        node.name
                    ),
                )
            })?;
            let missing = || {
                error(
                    *pos,
                    format!(
                        "the :{name} tag of the {} {kind} lacks its argument",
                        node.name
                    ),
                )
            };
            let value = match wanted {
                Want::Nothing => TagValue::Nothing,
                Want::String => TagValue::String(string(args.next().ok_or_else(missing)?)?),
                Want::List => TagValue::List(list(args.next().ok_or_else(missing)?)?),
                Want::Number => match args.next() {
                    Some(Arg::Number(n, _)) => TagValue::Number(*n),
                    _ => return Err(missing()),
                },
            };
            if tags.iter().any(|t: &Tagged| t.name == *name) {
                return Err(error(*pos, format!("the :{name} tag is given twice")));
            }
            tags.push(Tagged {
                name: name.clone(),
                pos: *pos,
                value,
            });
        }
        Ok(Split { tags, positional })
    }

    fn command(&mut self, node: &Node) -> Result<Command, CompileError> {
        no_block_or_tests(node)?;
        let name = node.name.as_str();
        let unknown = || format!("unknown command '{name}'");
        let command = match name {
            "stop" => {
                no_arguments(node)?;
                Command::Stop
            }
            "discard" => {
                no_arguments(node)?;
                Command::Discard
            }
            "keep" => {
                let split =
                    self.split(node, "command", |t| (t == "flags").then_some(Want::List))?;
                positional::<0>(node, split.positional)?;
                Command::Keep {
                    flags: self.flags_tag(&split.tags)?,
                }
            }
            "fileinto" => {
                self.need(Extension::FileInto, node.pos, &unknown())?;
                let split = self.split(node, "command", |t| match t {
                    "copy" | "create" => Some(Want::Nothing),
                    "flags" => Some(Want::List),
                    _ => None,
                })?;
                let [mailbox] = positional::<1>(node, split.positional)?;
                Command::FileInto {
                    mailbox: string(&mailbox)?,
                    flags: self.flags_tag(&split.tags)?,
                    copy: self.flag_tag(&split.tags, "copy", Extension::Copy)?,
                    create: self.flag_tag(&split.tags, "create", Extension::Mailbox)?,
                }
            }
            "redirect" => {
                let split =
                    self.split(node, "command", |t| (t == "copy").then_some(Want::Nothing))?;
                let [address] = positional::<1>(node, split.positional)?;
                let address_pos = address.pos();
                let address = string(&address)?;
                // §4.2: the address must be a valid RFC 5322 address; checked here when
                // no variable can still change it.
                if !address.contains("${") && !address::is_plausible_mailbox(&address) {
                    return Err(error(
                        address_pos,
                        format!("specified redirect address '{address}' is invalid"),
                    ));
                }
                Command::Redirect {
                    address,
                    copy: self.flag_tag(&split.tags, "copy", Extension::Copy)?,
                }
            }
            "reject" | "ereject" => {
                let ext = if name == "reject" {
                    Extension::Reject
                } else {
                    Extension::Ereject
                };
                self.need(ext, node.pos, &unknown())?;
                let split = self.split(node, "command", |_| None)?;
                let [reason] = positional::<1>(node, split.positional)?;
                Command::Reject {
                    reason: string(&reason)?,
                    extended: name == "ereject",
                }
            }
            "vacation" => {
                self.need(Extension::Vacation, node.pos, &unknown())?;
                self.vacation(node)?
            }
            "set" => {
                self.need(Extension::Variables, node.pos, &unknown())?;
                self.set(node)?
            }
            "setflag" | "addflag" | "removeflag" => {
                self.need(Extension::Imap4Flags, node.pos, &unknown())?;
                let op = match name {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                let split = self.split(node, "command", |_| None)?;
                let (variable, flags) = self.flag_arguments(node, split.positional, false)?;
                Command::Flags {
                    op,
                    variable: variable.into_iter().next(),
                    flags,
                }
            }
            "include" => {
                self.need(Extension::Include, node.pos, &unknown())?;
                let split = self.split(node, "command", |t| {
                    matches!(t, "personal" | "global" | "once" | "optional")
                        .then_some(Want::Nothing)
                })?;
                let tags: Vec<&str> = split.tags.iter().map(|t| t.name.as_str()).collect();
                let has = |tag: &str| tags.contains(&tag);
                if has("personal") && has("global") {
                    return Err(error(
                        node.pos,
                        "include: :personal and :global cannot be combined",
                    ));
                }
                let [script] = positional::<1>(node, split.positional)?;
                let location = if has("global") {
                    Location::Global
                } else {
                    Location::Personal
                };
                Command::Include {
                    name: string(&script)?,
                    location,
                    once: has("once"),
                    optional: has("optional"),
                }
            }
            "return" => {
                self.need(Extension::Include, node.pos, &unknown())?;
                no_arguments(node)?;
                Command::Return
            }
            "global" => {
                self.need(Extension::Include, node.pos, &unknown())?;
                self.need(
                    Extension::Variables,
                    node.pos,
                    "the global command needs variables",
                )?;
                let split = self.split(node, "command", |_| None)?;
                let [names] = positional::<1>(node, split.positional)?;
                let names = list(&names)?;
                if let Some(bad) = names.iter().find(|n| !variables::is_assignable(n)) {
                    return Err(error(node.pos, format!("invalid variable name '{bad}'")));
                }
                Command::Global(names)
            }
            _ => return Err(error(node.pos, unknown())),
        };
        Ok(command)
    }

    fn flag_tag(&self, tags: &[Tagged], name: &str, ext: Extension) -> Result<bool, CompileError> {
        match tags.iter().find(|t| t.name == name) {
            Some(tag) => self
                .need(ext, tag.pos, &format!("unknown tagged argument ':{name}'"))
                .map(|()| true),
            None => Ok(false),
        }
    }

    /// `:flags` on keep and fileinto (RFC 5232 §5).
    fn flags_tag(&self, tags: &[Tagged]) -> Result<Option<Vec<String>>, CompileError> {
        match tags.iter().find(|t| t.name == "flags") {
            Some(Tagged {
                pos,
                value: TagValue::List(flags),
                ..
            }) => {
                self.need(
                    Extension::Imap4Flags,
                    *pos,
                    "unknown tagged argument ':flags'",
                )?;
                Ok(Some(flags.clone()))
            }
            _ => Ok(None),
        }
    }

    /// `[<variablename>] <list-of-flags: string-list>` (RFC 5232 §3); `hasflag` takes a
    /// list of variable names (§4), the other commands one.
    fn flag_arguments(
        &self,
        node: &Node,
        args: Vec<Arg>,
        many: bool,
    ) -> Result<(Vec<String>, Vec<String>), CompileError> {
        match args.as_slice() {
            [flags] => Ok((Vec::new(), list(flags)?)),
            [variables, flags] => {
                self.need(
                    Extension::Variables,
                    variables.pos(),
                    "a flag variable needs variables",
                )?;
                let names = if many {
                    list(variables)?
                } else {
                    vec![string(variables)?]
                };
                if let Some(bad) = names.iter().find(|n| !variables::is_assignable(n)) {
                    return Err(error(
                        variables.pos(),
                        format!("invalid variable name '{bad}'"),
                    ));
                }
                Ok((names, list(flags)?))
            }
            _ => Err(error(
                node.pos,
                format!(
                    "'{}' takes an optional variable name and a list of flags",
                    node.name
                ),
            )),
        }
    }

    fn vacation(&self, node: &Node) -> Result<Command, CompileError> {
        let split = self.split(node, "command", |t| match t {
            "days" | "seconds" => Some(Want::Number),
            "subject" | "from" | "handle" => Some(Want::String),
            "addresses" => Some(Want::List),
            "mime" => Some(Want::Nothing),
            _ => None,
        })?;
        let [reason] = positional::<1>(node, split.positional)?;
        let mut spec = VacationSpec {
            period: None,
            subject: None,
            from: None,
            addresses: Vec::new(),
            mime: false,
            handle: None,
            reason: string(&reason)?,
        };
        for tag in split.tags {
            match (tag.name.as_str(), tag.value) {
                ("days", TagValue::Number(days)) => spec.period = Some(days.saturating_mul(86_400)),
                ("seconds", TagValue::Number(seconds)) => {
                    self.need(
                        Extension::VacationSeconds,
                        tag.pos,
                        "unknown tagged argument ':seconds'",
                    )?;
                    spec.period = Some(seconds);
                }
                ("subject", TagValue::String(s)) => spec.subject = Some(s),
                ("from", TagValue::String(s)) => spec.from = Some(s),
                ("handle", TagValue::String(s)) => spec.handle = Some(s),
                ("addresses", TagValue::List(list)) => spec.addresses = list,
                ("mime", _) => spec.mime = true,
                _ => {}
            }
        }
        Ok(Command::Vacation(Box::new(spec)))
    }

    /// `set [MODIFIER...] <name> <value>` (RFC 5229 §4).
    fn set(&self, node: &Node) -> Result<Command, CompileError> {
        let split = self.split(node, "command", |t| modifier(t).map(|_| Want::Nothing))?;
        let [name_arg, value] = positional::<2>(node, split.positional)?;
        let name = string(&name_arg)?;
        if !variables::is_assignable(&name) {
            return Err(error(
                name_arg.pos(),
                format!("invalid variable name '{name}'"),
            ));
        }
        let mut modifiers: Vec<Modifier> = Vec::new();
        for tag in &split.tags {
            let Some(m) = modifier(&tag.name) else {
                continue;
            };
            if modifiers
                .iter()
                .any(|seen| seen.precedence() == m.precedence())
            {
                return Err(error(
                    tag.pos,
                    format!(
                        "the :{} modifier cannot be combined with another of its precedence",
                        tag.name
                    ),
                ));
            }
            modifiers.push(m);
        }
        Ok(Command::Set {
            name,
            value: string(&value)?,
            modifiers,
        })
    }

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

    fn test(&mut self, node: &Node) -> Result<Test, CompileError> {
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

fn modifier(tag: &str) -> Option<Modifier> {
    match tag {
        "lower" => Some(Modifier::Lower),
        "upper" => Some(Modifier::Upper),
        "lowerfirst" => Some(Modifier::LowerFirst),
        "upperfirst" => Some(Modifier::UpperFirst),
        "quotewildcard" => Some(Modifier::QuoteWildcard),
        "length" => Some(Modifier::Length),
        _ => None,
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

fn positional<const N: usize>(node: &Node, args: Vec<Arg>) -> Result<[Arg; N], CompileError> {
    let count = args.len();
    args.try_into().map_err(|_| {
        error(
            node.pos,
            format!(
                "'{}' takes {N} positional argument(s), found {count}",
                node.name
            ),
        )
    })
}

/// A string argument: RFC 5228 §8.2 keeps it apart from a string list, even of one.
fn string(arg: &Arg) -> Result<String, CompileError> {
    match arg {
        Arg::Strings {
            values,
            single: true,
            ..
        } => Ok(values.concat()),
        other => Err(error(other.pos(), "expected a string, not a string list")),
    }
}

fn list(arg: &Arg) -> Result<Vec<String>, CompileError> {
    match arg {
        Arg::Strings { values, .. } => Ok(values.clone()),
        other => Err(error(other.pos(), "expected a string list")),
    }
}

fn no_tests(node: &Node) -> Result<(), CompileError> {
    match node.tests.first() {
        Some(test) => Err(error(
            test.pos,
            format!("the {} cannot take a test", node.name),
        )),
        None => Ok(()),
    }
}

fn no_block_or_tests(node: &Node) -> Result<(), CompileError> {
    if node.block.is_some() {
        return Err(error(
            node.pos,
            format!("the {} command cannot have a block", node.name),
        ));
    }
    no_tests(node)
}

fn no_arguments(node: &Node) -> Result<(), CompileError> {
    match node.args.first() {
        Some(arg) => Err(error(
            arg.pos(),
            format!("the {} takes no arguments", node.name),
        )),
        None => no_tests(node),
    }
}
