//! The commands (RFC 5228 §3, §4 and the extensions' actions): what each takes.

use super::{
    TagValue, Tagged, Validator, Want, error, list, no_arguments, no_block_or_tests, positional,
    string,
};
use crate::address;
use crate::ast::{Command, FlagOp, Location, Modifier, VacationSpec};
use crate::error::CompileError;
use crate::extensions::Extension;
use crate::parser::{Arg, Node};
use crate::variables;

impl Validator<'_> {
    pub(super) fn command(&mut self, node: &Node) -> Result<Command, CompileError> {
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
    pub(super) fn flag_arguments(
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
