//! What can go wrong: at compile time with a position, at run time with a reason.

/// A place in a script, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// A script that cannot be run: where and why, worded like Pigeonhole's messages
/// ("unknown command 'filein'").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct CompileError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl CompileError {
    pub(crate) fn new(pos: Pos, message: impl Into<String>) -> Self {
        CompileError {
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }
}

/// A run that stopped part way. RFC 5228 §2.10.6: the caller then files the message as
/// the implicit keep would, ignoring the actions gathered so far.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("the script ran more than {0} commands and tests")]
    TooManySteps(u64),
    #[error("the script asked for more than {0} actions")]
    TooManyActions(usize),
    #[error("number of redirect actions exceeds the limit of {0}")]
    TooManyRedirects(usize),
    #[error("{0}")]
    Conflict(String),
    #[error("redirect address '{0}' is invalid")]
    InvalidAddress(String),
    #[error("included script '{name}' {problem}")]
    Include { name: String, problem: String },
}
