//! Runs a compiled script against one message (RFC 5228 §2.10): evaluates tests,
//! gathers actions, keeps variables and flags, follows includes, and counts steps.
//! The tests are evaluated in `evaluate`.

use std::collections::{HashMap, HashSet};

use crate::actions::{Action, ActionSet, Vacation};
use crate::address;
use crate::ast::{Command, FlagOp, Location, Script, VacationSpec};
use crate::error::RuntimeError;
use crate::message::Message;
use crate::variables::{self, Reference};
use crate::{Context, Limits, vacation};

mod evaluate;

/// Runs `script` and returns the actions to take.
pub fn run(
    script: &Script,
    ctx: &Context<'_>,
    limits: &Limits,
) -> Result<Vec<Action>, RuntimeError> {
    let mut run = Run {
        ctx,
        limits,
        message: Message::parse(ctx.message),
        actions: ActionSet::new(limits.max_actions, limits.max_redirects),
        steps: 0,
        globals: HashMap::new(),
        flags: String::new(),
        included: HashSet::new(),
        stack: Vec::new(),
    };
    let mut frame = Frame::new(script);
    run.block(&script.commands, &mut frame)?;
    let flags = if script.uses_flags {
        split_flags(&run.flags)
    } else {
        Vec::new()
    };
    run.actions.finish(flags)
}

/// What ends a block early.
enum Flow {
    Next,
    Stop,
    Return,
}

/// One script's own state: RFC 6609 §3.3 keeps variables local to a script unless
/// declared `global`.
struct Frame<'s> {
    script: &'s Script,
    locals: HashMap<String, String>,
    captures: Vec<String>,
    globals: HashSet<String>,
}

impl<'s> Frame<'s> {
    fn new(script: &'s Script) -> Self {
        Frame {
            script,
            locals: HashMap::new(),
            captures: Vec::new(),
            globals: HashSet::new(),
        }
    }
}

struct Run<'c, 'm> {
    ctx: &'c Context<'m>,
    limits: &'c Limits,
    message: Message<'m>,
    actions: ActionSet,
    steps: u64,
    globals: HashMap<String, String>,
    /// The internal flags variable of imap4flags (RFC 5232 §3), space-separated.
    flags: String,
    included: HashSet<(Location, String)>,
    stack: Vec<(Location, String)>,
}

impl Run<'_, '_> {
    fn step(&mut self) -> Result<(), RuntimeError> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(RuntimeError::TooManySteps(self.limits.max_steps));
        }
        Ok(())
    }

    fn block(&mut self, commands: &[Command], frame: &mut Frame<'_>) -> Result<Flow, RuntimeError> {
        for command in commands {
            match self.command(command, frame)? {
                Flow::Next => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Next)
    }

    fn command(&mut self, command: &Command, frame: &mut Frame<'_>) -> Result<Flow, RuntimeError> {
        self.step()?;
        match command {
            Command::If {
                branches,
                otherwise,
            } => {
                for (test, body) in branches {
                    if self.test(test, frame)? {
                        return self.block(body, frame);
                    }
                }
                if let Some(body) = otherwise {
                    return self.block(body, frame);
                }
            }
            Command::Stop => return Ok(Flow::Stop),
            Command::Return => return Ok(Flow::Return),
            Command::Keep { flags } => {
                let flags = self.flags_for(flags.as_deref(), frame);
                self.actions.add(Action::Keep { flags }, true)?;
            }
            Command::Discard => self.actions.add(Action::Discard, true)?,
            Command::FileInto {
                mailbox,
                flags,
                copy,
                create,
            } => {
                let mailbox = expand(frame, mailbox, &self.globals);
                // RFC 3501 §5.1: INBOX is one mailbox however it is spelled.
                let mailbox = if mailbox.eq_ignore_ascii_case("INBOX") {
                    "INBOX".to_owned()
                } else {
                    mailbox
                };
                let action = Action::FileInto {
                    mailbox,
                    flags: self.flags_for(flags.as_deref(), frame),
                    create: *create,
                    copy: *copy,
                };
                self.actions.add(action, !copy)?;
            }
            Command::Redirect { address, copy } => {
                let address = expand(frame, address, &self.globals);
                // §4.2: checked again once variables have had their say.
                if !address::is_plausible_mailbox(&address) {
                    return Err(RuntimeError::InvalidAddress(address));
                }
                self.actions.add(
                    Action::Redirect {
                        address,
                        copy: *copy,
                    },
                    !copy,
                )?;
            }
            Command::Reject { reason, extended } => {
                let reason = expand(frame, reason, &self.globals);
                self.actions.add(
                    Action::Reject {
                        reason,
                        extended: *extended,
                    },
                    true,
                )?;
            }
            Command::Vacation(spec) => self.vacation(spec, frame)?,
            Command::Set {
                name,
                value,
                modifiers,
            } => {
                let value = variables::truncate(variables::apply_modifiers(
                    expand(frame, value, &self.globals),
                    modifiers,
                ));
                self.assign(frame, name, value);
            }
            Command::Flags {
                op,
                variable,
                flags,
            } => {
                let given: Vec<String> = flags
                    .iter()
                    .map(|f| expand(frame, f, &self.globals))
                    .collect();
                let current = match variable {
                    Some(name) => lookup_named(frame, &self.globals, name),
                    None => self.flags.clone(),
                };
                let changed = change_flags(&current, *op, &given);
                match variable {
                    Some(name) => self.assign(frame, name, changed),
                    None => self.flags = changed,
                }
            }
            Command::Include {
                name,
                location,
                once,
                optional,
            } => {
                let name = expand(frame, name, &self.globals);
                return self.include(name, *location, *once, *optional, frame.script);
            }
            Command::Global(names) => frame
                .globals
                .extend(names.iter().map(|n| n.to_ascii_lowercase())),
        }
        Ok(Flow::Next)
    }

    fn assign(&mut self, frame: &mut Frame<'_>, name: &str, value: String) {
        let key = name.to_ascii_lowercase();
        match key.strip_prefix("global.") {
            Some(global) => {
                self.globals.insert(global.to_owned(), value);
            }
            None if frame.globals.contains(&key) => {
                self.globals.insert(key, value);
            }
            None => {
                frame.locals.insert(key, value);
            }
        }
    }

    /// The flags a store gets: its own `:flags`, else the internal variable (RFC 5232 §5).
    fn flags_for(&self, given: Option<&[String]>, frame: &Frame<'_>) -> Vec<String> {
        match given {
            Some(list) => split_flags(
                &list
                    .iter()
                    .map(|f| expand(frame, f, &self.globals))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            None if frame.script.uses_flags => split_flags(&self.flags),
            None => Vec::new(),
        }
    }

    fn vacation(&mut self, spec: &VacationSpec, frame: &Frame<'_>) -> Result<(), RuntimeError> {
        let text = |s: &str| expand(frame, s, &self.globals);
        let reason = text(&spec.reason);
        let subject = spec.subject.as_deref().map(text);
        let from = spec.from.as_deref().map(text);
        let mut own = vec![self.ctx.envelope.to.clone()];
        own.extend(spec.addresses.iter().map(|a| text(a)));
        if vacation::refusal(&self.message, &self.ctx.envelope.from, &own).is_some() {
            return Ok(());
        }
        // The default handle is made from the arguments as written, before variables
        // are expanded, so one vacation keeps one record whatever it quotes (as in
        // Pigeonhole).
        let handle = match &spec.handle {
            Some(handle) => text(handle),
            None => vacation::default_handle(
                &spec.reason,
                spec.subject.as_deref(),
                spec.from.as_deref(),
                spec.mime,
            ),
        };
        let period = spec.period.unwrap_or(7 * 86_400).clamp(
            self.limits.vacation_min_period,
            self.limits.vacation_max_period,
        );
        let reply = Vacation {
            to: self.ctx.envelope.from.clone(),
            subject,
            from,
            reason,
            mime: spec.mime,
            period_seconds: period,
            handle,
        };
        self.actions.add(Action::Vacation(reply), false)
    }

    /// RFC 6609 §3.2: runs another script in this run; its `stop` ends everything, its
    /// `return` only itself.
    fn include(
        &mut self,
        name: String,
        location: Location,
        once: bool,
        optional: bool,
        parent: &Script,
    ) -> Result<Flow, RuntimeError> {
        let problem = |problem: &str| RuntimeError::Include {
            name: name.clone(),
            problem: problem.to_owned(),
        };
        if name.is_empty() || name.contains('/') {
            return Err(problem("is not a valid script name"));
        }
        let key = (location, name.clone());
        if self.stack.contains(&key) {
            return Err(problem("includes itself"));
        }
        if once && self.included.contains(&key) {
            return Ok(Flow::Next);
        }
        if self.stack.len() >= self.limits.max_include_depth {
            return Err(problem("is nested too deeply"));
        }
        let Some(text) = (self.ctx.include)(&name, location) else {
            return if optional {
                Ok(Flow::Next)
            } else {
                Err(problem("does not exist"))
            };
        };
        let script = crate::compile(&text, &parent.extensions, self.limits)
            .map_err(|e| problem(&format!("does not compile: {e}")))?;
        self.included.insert(key.clone());
        self.stack.push(key);
        let mut frame = Frame::new(&script);
        let flow = self.block(&script.commands, &mut frame);
        self.stack.pop();
        match flow? {
            Flow::Stop => Ok(Flow::Stop),
            _ => Ok(Flow::Next),
        }
    }
}

fn expand(frame: &Frame<'_>, text: &str, globals: &HashMap<String, String>) -> String {
    if !frame.script.uses_variables {
        return text.to_owned();
    }
    variables::expand(text, &|reference| match reference {
        Reference::Match(n) => frame.captures.get(n).cloned().unwrap_or_default(),
        Reference::Named(name) => lookup_named(frame, globals, name),
    })
}

fn lookup_named(frame: &Frame<'_>, globals: &HashMap<String, String>, name: &str) -> String {
    let key = name.to_ascii_lowercase();
    let found = match key.strip_prefix("global.") {
        Some(global) => globals.get(global),
        None if frame.globals.contains(&key) => globals.get(&key),
        None => frame.locals.get(&key),
    };
    found.cloned().unwrap_or_default()
}

/// The distinct flags of a space-separated list, first spelling kept (RFC 5232 §3:
/// flags compare without case).
fn split_flags(list: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for flag in list.split_whitespace() {
        if !seen.iter().any(|s| s.eq_ignore_ascii_case(flag)) {
            seen.push(flag.to_owned());
        }
    }
    seen
}

fn change_flags(current: &str, op: FlagOp, given: &[String]) -> String {
    let given = split_flags(&given.join(" "));
    let result = match op {
        FlagOp::Set => given,
        FlagOp::Add => split_flags(&format!("{current} {}", given.join(" "))),
        FlagOp::Remove => split_flags(current)
            .into_iter()
            .filter(|f| !given.iter().any(|g| g.eq_ignore_ascii_case(f)))
            .collect(),
    };
    variables::truncate(result.join(" "))
}
