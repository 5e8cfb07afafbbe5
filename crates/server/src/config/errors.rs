//! Reporting a problem: the dotted key, its line in the file and the bad value, so the
//! mistake is found at once.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

/// A configuration problem: which key, where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file it came from, if any.
    pub file: Option<PathBuf>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The dotted key, e.g. `limits.max_message_size` or `account[1].name`.
    pub key: String,
    /// The offending value as written (strings quoted), when the message does not quote
    /// it already (parse errors do).
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
        }
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        } else if self.file.is_some() {
            f.write_str(" ")?;
        }
        write_problem(f, &self.key, self.value.as_deref(), &self.message)
    }
}

/// `key `listener[1].address` = "127.0.0.1:25": message`: the key and value as the file
/// has them, so the line is easy to find and the mistake easy to see.
fn write_problem(
    f: &mut fmt::Formatter<'_>,
    key: &str,
    value: Option<&str>,
    message: &str,
) -> fmt::Result {
    if !key.is_empty() {
        write!(f, "key `{key}`")?;
        if let Some(value) = value {
            write!(f, " = {value}")?;
        }
        f.write_str(": ")?;
    }
    f.write_str(message)
}

impl std::error::Error for ConfigError {}

/// A problem found after parsing, with the span of the offending value.
#[derive(Debug)]
pub struct Invalid {
    /// The dotted key.
    pub key: String,
    /// Where the value is in the file; empty for defaults.
    pub span: Range<usize>,
    /// The value as written, strings quoted.
    pub value: String,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    /// A problem with the value of `key` held in `value`.
    pub fn at<T: fmt::Debug>(
        key: impl Into<String>,
        value: &Spanned<T>,
        message: impl Into<String>,
    ) -> Self {
        Invalid {
            key: key.into(),
            span: value.span(),
            value: format!("{:?}", value.get_ref()),
            message: message.into(),
        }
    }

    /// A problem with a value that carries no span (a number, a list); its line is found
    /// by its key.
    pub fn of(
        key: impl Into<String>,
        value: impl fmt::Display,
        message: impl Into<String>,
    ) -> Self {
        Invalid {
            key: key.into(),
            span: 0..0,
            value: value.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_problem(f, &self.key, Some(&self.value), &self.message)
    }
}

/// The dotted key of a parse error (`listener[0].address`), without the field through
/// which toml hands over a `Spanned` value.
pub(crate) fn key_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name }
                if !name.starts_with("$__serde_spanned") =>
            {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Map { .. } | Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    key
}

/// The line where the last segment of `key` is assigned, for problems found in values
/// that carry no span (plain numbers); `None` when the key is not in the text (a default).
fn key_line(text: &str, key: &str) -> Option<usize> {
    let name = key.rsplit('.').next()?;
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// The 1-based line holding byte `offset`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Places a problem found after parsing: at the line of its value's span in `text` (from
/// `file`), or of its key for a value without one.
pub fn locate(invalid: Invalid, text: &str, file: Option<&Path>) -> ConfigError {
    let line = if invalid.span.is_empty() {
        key_line(text, &invalid.key)
    } else {
        Some(line_of(text, invalid.span.start))
    };
    ConfigError {
        file: file.map(Path::to_path_buf),
        line,
        key: invalid.key,
        value: Some(invalid.value),
        message: invalid.message,
    }
}
