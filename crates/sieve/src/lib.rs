//! Posthorn's Sieve (RFC 5228) mail filtering language: a parser and an interpreter
//! with the extensions local delivery offers. No I/O: the caller gives the script text,
//! the message, its envelope and the checking stage's verdict, and gets back the
//! actions to take.
//!
//! ```
//! use posthorn_sieve::{compile, run, Action, Context, Envelope, Extensions, Limits, Now};
//! let limits = Limits::default();
//! let script = compile("require \"fileinto\";\nif header :contains \"subject\" \"sale\" { fileinto \"Ads\"; }", &Extensions::all(), &limits).unwrap();
//! let envelope = Envelope { from: "shop@example.org".into(), to: "bob@example.com".into(), auth: None };
//! let ctx = Context { message: b"Subject: Big sale\r\n\r\nhi\r\n", envelope: &envelope, spam_score: None, virus: None, now: Now { unix: 0, offset_minutes: 0 }, include: &|_, _| None };
//! assert_eq!(run(&script, &ctx, &limits).unwrap(), vec![Action::FileInto { mailbox: "Ads".into(), flags: vec![], create: false, copy: false }]);
//! ```

mod actions;
mod address;
mod ast;
mod date;
mod error;
mod extensions;
mod interp;
mod lexer;
mod matching;
mod message;
mod parser;
mod vacation;
mod validate;
mod variables;

pub use actions::{Action, Vacation};
pub use ast::{Inclusion, Location, Script};
pub use error::{CompileError, RuntimeError};
pub use extensions::{Extension, Extensions};

/// The SMTP envelope of the delivery this run is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse-path, "" for the null sender.
    pub from: String,
    /// The recipient this run delivers to: the user's own address.
    pub to: String,
    /// The authenticated submitter, if any (`envelope "auth"`).
    pub auth: Option<String>,
}

/// The current time, given by the caller so runs can be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix: i64,
    /// The server's local zone, minutes east of UTC: `date` and `currentdate` report in
    /// it when no `:zone` is given (RFC 5260 §4.1).
    pub offset_minutes: i32,
}

/// What a run sees.
pub struct Context<'a> {
    pub message: &'a [u8],
    pub envelope: &'a Envelope,
    /// The checking stage's spam score on spamtest's 0–10 scale, `None` when the
    /// message was not checked (RFC 5235 §3.1).
    pub spam_score: Option<f64>,
    /// The virus verdict, 1 (clean) to 5 (infected, not cleaned), `None` when not
    /// scanned (RFC 5235 §3.3).
    pub virus: Option<u8>,
    pub now: Now,
    /// The text of a script `include` names, or `None` when there is none.
    pub include: &'a dyn Fn(&str, Location) -> Option<String>,
}

/// Bounds on what a script may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_script_bytes: usize,
    /// Blocks and tests inside one another.
    pub max_nesting: usize,
    /// Commands, tests and value-key comparisons in one run, includes counted.
    pub max_steps: u64,
    pub max_actions: usize,
    /// Distinct redirect addresses in one run (RFC 5228 §4.2 wants a bound against
    /// mail loops; Pigeonhole's default is 4).
    pub max_redirects: usize,
    pub max_include_depth: usize,
    /// The bounds a vacation period is clamped to (RFC 5230 §4.1).
    pub vacation_min_period: u64,
    pub vacation_max_period: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_script_bytes: 1 << 20,
            max_nesting: 32,
            max_steps: 100_000,
            max_actions: 32,
            max_redirects: 4,
            max_include_depth: 10,
            vacation_min_period: 86_400,
            vacation_max_period: 60 * 86_400,
        }
    }
}

/// Parses and checks a script; only the `extensions` given may be required.
pub fn compile(
    script: &str,
    extensions: &Extensions,
    limits: &Limits,
) -> Result<Script, CompileError> {
    if script.len() > limits.max_script_bytes {
        return Err(CompileError {
            line: 1,
            column: 1,
            message: format!(
                "the script is larger than {} bytes",
                limits.max_script_bytes
            ),
        });
    }
    let tokens = lexer::tokenize(script)?;
    let tree = parser::parse(&tokens, limits.max_nesting)?;
    validate::validate(&tree, extensions)
}

/// Runs a script on one message. On an error the caller keeps the message as the
/// implicit keep would (RFC 5228 §2.10.6).
pub fn run(
    script: &Script,
    ctx: &Context<'_>,
    limits: &Limits,
) -> Result<Vec<Action>, RuntimeError> {
    interp::run(script, ctx, limits)
}
