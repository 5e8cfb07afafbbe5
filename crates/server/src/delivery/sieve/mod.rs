//! Sieve at local delivery (RFC 5228, `posthorn-sieve`): the optional global script
//! (`[sieve] before`), then the account's active script (kept by ManageSieve beside its
//! Maildir) decide where a message goes. A script that fails to compile or run leaves
//! the message in the inbox (the implicit keep, as Pigeonhole does) and says why in the
//! log: a broken filter never loses mail. The same runs decide, at the end of DATA,
//! whether the message is refused there (`inbound::sieve_reject`).

pub mod global;
pub mod reply;
pub mod vacation;

use std::path::Path;
use std::sync::Arc;

use posthorn_mailbox::managesieve::SieveCheck;
use posthorn_mailbox::managesieve::scripts::Scripts;
use posthorn_proto::headers::header_section;
use posthorn_sieve::{Action, Context, Envelope, Extensions, Limits, Location, Now, Script};
use tracing::warn;

use crate::config::{Config, Invalid};
use global::GlobalScripts;

/// The compiler and limits, shared by delivery and ManageSieve.
pub struct Sieve {
    extensions: Extensions,
    limits: Limits,
    /// The global script run first.
    before: Option<Arc<Script>>,
    /// The scripts `include :global` names.
    global: Option<GlobalScripts>,
    /// How much of a message the scripts see.
    max_body_size: u64,
}

/// What local delivery knows of the message a script looks at. The checking stage's
/// verdicts (spamtest, virustest) are read from the header fields it added.
pub struct Delivery<'a> {
    /// The message as the recipient gets it, our header fields first: its start, up to
    /// `[sieve] max_body_size` at delivery, the first 64 KiB at the end of DATA.
    pub message: &'a [u8],
    /// MAIL FROM, "" for the null sender.
    pub sender: &'a str,
    /// The recipient's address.
    pub recipient: &'a str,
    /// Seconds since the epoch.
    pub now: i64,
}

impl Sieve {
    /// Sieve as `[sieve]` has it; the `before` script must compile.
    pub fn new(config: &Config) -> Result<Sieve, Invalid> {
        let limits = Limits {
            max_redirects: config.sieve.max_redirects,
            ..Limits::default()
        };
        let extensions = Extensions::all();
        let before = match &config.sieve.before {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path.get_ref()).map_err(|e| {
                    Invalid::at("sieve.before", path, format!("cannot read the script: {e}"))
                })?;
                let script = posthorn_sieve::compile(&text, &extensions, &limits)
                    .map_err(|e| Invalid::at("sieve.before", path, e.to_string()))?;
                Some(Arc::new(script))
            }
        };
        Ok(Sieve {
            extensions,
            limits,
            before,
            global: GlobalScripts::of(config),
            max_body_size: config.sieve.max_body_size.0,
        })
    }

    /// How much of a message a delivery's scripts see (`QueuedMessage::read_ahead`).
    pub fn max_body_size(&self) -> u64 {
        self.max_body_size
    }

    /// The scripts a message delivered to the account whose Maildir root is `root` runs:
    /// the global one, then the account's active one. A script that cannot be read or does
    /// not compile is left out, and the log says why. Blocking (reads the script).
    pub fn filters<'s>(&'s self, root: &Path, recipient: &str) -> Filters<'s> {
        let scripts = Scripts::of(root);
        let own = match scripts.active() {
            Ok(Some((name, text))) => {
                match posthorn_sieve::compile(&text, &self.extensions, &self.limits) {
                    Ok(script) => Some((name, script)),
                    Err(e) => {
                        warn!(recipient, script = name, error = %e, "the Sieve script does not compile; keeping");
                        None
                    }
                }
            }
            Ok(None) => None,
            Err(e) => {
                warn!(recipient, error = %e, "cannot read the Sieve script; keeping");
                None
            }
        };
        Filters {
            sieve: self,
            scripts,
            own,
        }
    }

    /// The actions for a message delivered to the account whose Maildir root is `root`
    /// (see `Filters::actions`). Blocking.
    pub fn actions(&self, root: &Path, delivery: &Delivery<'_>) -> Vec<Action> {
        self.filters(root, delivery.recipient).actions(delivery)
    }

    /// The text of the global script `name`, `None` without one. Blocking.
    fn global_script(&self, name: &str) -> Option<String> {
        match self.global.as_ref()?.get(name) {
            Ok(text) => text,
            Err(e) => {
                warn!(script = name, error = %e, "cannot read the global Sieve script");
                None
            }
        }
    }

    /// RFC 6609 §3.2 leaves the check of included scripts to the server: a global script
    /// a script includes (without `:optional`) must exist and compile, so the mistake is
    /// told at upload, not found at delivery. Personal ones are looked for at run time (a
    /// client may upload them in any order).
    fn check_global_includes(&self, script: &Script) -> Result<(), String> {
        for inclusion in script.includes() {
            if inclusion.location != Location::Global || inclusion.optional {
                continue;
            }
            let name = inclusion.name;
            let Some(text) = self.global_script(name) else {
                return Err(format!("include: there is no global script {name:?}"));
            };
            posthorn_sieve::compile(&text, &self.extensions, &self.limits)
                .map_err(|e| format!("include: the global script {name:?} is broken: {e}"))?;
        }
        Ok(())
    }
}

/// The scripts one delivery runs.
pub struct Filters<'s> {
    sieve: &'s Sieve,
    /// The account's scripts, for the ones its script includes.
    scripts: Scripts,
    /// The account's active script, compiled, and its name.
    own: Option<(String, Script)>,
}

impl Filters<'_> {
    /// Whether any script runs: without one the message is simply kept, and need not be
    /// read further.
    pub fn any(&self) -> bool {
        self.sieve.before.is_some() || self.own.is_some()
    }

    /// The actions for the message: the global script's when it decides, else the
    /// account's; keep without scripts, or when a script fails.
    pub fn actions(&self, delivery: &Delivery<'_>) -> Vec<Action> {
        let keep = || vec![Action::Keep { flags: Vec::new() }];
        let envelope = Envelope {
            from: delivery.sender.to_string(),
            to: delivery.recipient.to_string(),
            auth: None,
        };
        let include = |name: &str, location: Location| match location {
            Location::Personal => self.scripts.get(name).ok(),
            Location::Global => self.sieve.global_script(name),
        };
        let section = header_section(delivery.message);
        let context = Context {
            message: delivery.message,
            envelope: &envelope,
            spam_score: spam_score(section),
            virus: virus_verdict(section),
            now: Now {
                unix: delivery.now,
                offset_minutes: 0,
            },
            include: &include,
        };
        let limits = &self.sieve.limits;
        if let Some(before) = &self.sieve.before {
            match posthorn_sieve::run(before, &context, limits) {
                Ok(actions) if !only_keeps(&actions) => return actions,
                Ok(_) => {}
                Err(e) => {
                    warn!(recipient = delivery.recipient, error = %e, "the global Sieve script failed; keeping")
                }
            }
        }
        let Some((name, script)) = &self.own else {
            return keep();
        };
        match posthorn_sieve::run(script, &context, limits) {
            Ok(actions) => actions,
            Err(e) => {
                warn!(recipient = delivery.recipient, script = name, error = %e, "the Sieve script failed; keeping");
                keep()
            }
        }
    }
}

/// True when a run decided nothing but keeping the message where it was going.
fn only_keeps(actions: &[Action]) -> bool {
    actions
        .iter()
        .all(|a| matches!(a, Action::Keep { flags } if flags.is_empty()))
}

/// ManageSieve checks uploads with the same compiler and limits.
impl SieveCheck for Sieve {
    fn extensions(&self) -> String {
        self.extensions.names().collect::<Vec<_>>().join(" ")
    }

    fn check(&self, script: &str) -> Result<(), String> {
        let script = posthorn_sieve::compile(script, &self.extensions, &self.limits)
            .map_err(|e| e.to_string())?;
        self.check_global_includes(&script)
    }
}

/// spamtest's value (RFC 5235 §3.1: 1 surely not spam, 10 surely spam) from the score
/// the checking stage wrote in `X-Spam-Status` (`score=S required=R`): the junk
/// threshold R is 5.5, twice it or more is 10.
pub fn spam_score(header_section: &[u8]) -> Option<f64> {
    let section = String::from_utf8_lossy(header_section);
    let status = section
        .split("\r\n")
        .find(|line| starts_with_field(line, "x-spam-status:"))?;
    let number = |key: &str| -> Option<f64> {
        let at = status.find(key)? + key.len();
        let rest = &status[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    let (score, required) = (number("score=")?, number("required=")?);
    if required <= 0.0 {
        return None;
    }
    Some(1.0 + 9.0 * (score / (2.0 * required)).clamp(0.0, 1.0))
}

/// virustest's value (RFC 5235 §3.3: 1 clean, 4 possibly infected, 5 infected) from the
/// `X-Spam-Virus` field the checking stage wrote (`Yes, virustest=4 ...`); `None` when it
/// did not scan the message.
pub fn virus_verdict(header_section: &[u8]) -> Option<u8> {
    let section = String::from_utf8_lossy(header_section);
    let field = section
        .split("\r\n")
        .find(|line| starts_with_field(line, "x-spam-virus:"))?;
    let at = field.find("virustest=")? + "virustest=".len();
    let value = field[at..].chars().next()?.to_digit(10)?;
    u8::try_from(value).ok().filter(|v| (1..=5).contains(v))
}

/// True when `line` starts with `name` (which ends in its colon), in any case. A line
/// of a lossily decoded header may hold characters of several octets anywhere.
fn starts_with_field(line: &str, name: &str) -> bool {
    line.get(..name.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virustest_from_the_virus_header() {
        let at = |field: &str| virus_verdict(format!("Subject: x\r\n{field}\r\n\r\n").as_bytes());
        assert_eq!(at("X-Spam-Virus: No, virustest=1"), Some(1));
        assert_eq!(
            at("X-Spam-Virus: Yes, virustest=4 tests=ATTACH_EXECUTABLE"),
            Some(4)
        );
        assert_eq!(at("x-spam-virus: Yes, virustest=9"), None);
        assert_eq!(at("X-Spam-Status: No, score=1.0 required=6.0"), None);
    }

    #[test]
    fn spamtest_from_the_status_header() {
        let at = |status: &str| spam_score(format!("Subject: x\r\n{status}\r\n\r\n").as_bytes());
        assert_eq!(at("X-Spam-Status: No, score=0.0 required=6.0"), Some(1.0));
        assert_eq!(
            at("X-Spam-Status: Yes, score=6.0 required=6.0 tests=A"),
            Some(5.5)
        );
        assert_eq!(at("X-Spam-Status: Yes, score=30 required=6.0"), Some(10.0));
        assert_eq!(at("X-Other: 1"), None);
        // A character of several octets where the field name would end.
        assert_eq!(at("X-Spam-Statu\u{20ac}: Yes, score=30 required=6.0"), None);
    }
}
