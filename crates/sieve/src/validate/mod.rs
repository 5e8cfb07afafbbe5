//! Checks the untyped tree against what each command and test takes (RFC 5228 §3–§5
//! and the extensions' grammars) and builds the typed [`Script`]. Every command, test
//! and tag an extension brings is refused unless the script required it (§3.2).
//! `command` checks each command, `test` each test; this file holds what they share.

use std::collections::BTreeSet;

use crate::address::AddressPart;
use crate::ast::{Command, Script, Test};
use crate::error::{CompileError, Pos};
use crate::extensions::{Extension, Extensions};
use crate::matching::{Comparator, MatchKind};
use crate::parser::{Arg, Node};

mod command;
mod test;

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
