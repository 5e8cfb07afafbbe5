//! ManageSieve command lines (RFC 5804 §4): a keyword, then atoms, quoted strings and
//! literals. A literal (`{N+}`, or `{N}` which we take the same way, §4) ends its line;
//! its octets follow, and the command goes on after them.

/// One argument as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    /// A bare word (numbers, mechanism names).
    Atom(String),
    /// A quoted string or a literal.
    Text(Vec<u8>),
}

impl Argument {
    /// The argument as text: strings must be UTF-8 (§1.6), atoms are.
    pub fn text(&self) -> Option<String> {
        match self {
            Argument::Atom(atom) => Some(atom.clone()),
            Argument::Text(bytes) => String::from_utf8(bytes.clone()).ok(),
        }
    }
}

/// What is left of a line once its arguments are read.
#[derive(Debug, PartialEq, Eq)]
pub enum Tail {
    /// The command is complete.
    End,
    /// A literal of this many octets follows the line, and the command goes on after it.
    Literal(usize),
}

/// Reads the arguments of `line` (after the keyword, or a continuation after a literal).
pub fn arguments(line: &str, into: &mut Vec<Argument>) -> Result<Tail, String> {
    let bytes = line.as_bytes();
    let mut at = 0;
    loop {
        while bytes.get(at) == Some(&b' ') {
            at += 1;
        }
        let Some(&first) = bytes.get(at) else {
            return Ok(Tail::End);
        };
        match first {
            b'"' => {
                let (text, used) = quoted(&bytes[at..])?;
                into.push(Argument::Text(text));
                at += used;
            }
            b'{' => {
                let close = line[at..].find('}').ok_or("unterminated literal length")?;
                if at + close + 1 != bytes.len() {
                    return Err("a literal must end its line".into());
                }
                let spec = &line[at + 1..at + close];
                let digits = spec.strip_suffix('+').unwrap_or(spec);
                let length = digits
                    .parse::<usize>()
                    .map_err(|_| format!("bad literal length {spec:?}"))?;
                return Ok(Tail::Literal(length));
            }
            _ => {
                let end = line[at..].find(' ').map_or(bytes.len(), |e| at + e);
                let atom = &line[at..end];
                if atom
                    .bytes()
                    .any(|b| b.is_ascii_control() || matches!(b, b'"' | b'{' | b'}'))
                {
                    return Err(format!("bad atom {atom:?}"));
                }
                into.push(Argument::Atom(atom.to_string()));
                at = end;
            }
        }
    }
}

/// A quoted string at the start of `bytes` (`\"` and `\\` escaped, §4); its content and
/// the octets it took.
fn quoted(bytes: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut text = Vec::new();
    let mut at = 1;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' => return Ok((text, at + 1)),
            b'\\' => match bytes.get(at + 1) {
                Some(&escaped @ (b'"' | b'\\')) => {
                    text.push(escaped);
                    at += 2;
                }
                _ => return Err("bad escape in a quoted string".into()),
            },
            b'\r' | b'\n' | 0 => return Err("bad character in a quoted string".into()),
            _ => {
                text.push(b);
                at += 1;
            }
        }
    }
    Err("unterminated quoted string".into())
}

/// A string as the server sends it (§4): quoted when it can be, else a literal.
pub fn string(text: &str) -> String {
    if text.len() > 1024 || text.contains(['\r', '\n', '\0']) {
        format!("{{{}}}\r\n{text}", text.len())
    } else {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> (Vec<Argument>, Tail) {
        let mut args = Vec::new();
        let tail = arguments(line, &mut args).unwrap();
        (args, tail)
    }

    #[test]
    fn atoms_strings_and_literals() {
        let (args, tail) = parse(r#"PLAIN "a \"b\" \\c"  42"#);
        assert_eq!(
            args,
            [
                Argument::Atom("PLAIN".into()),
                Argument::Text(br#"a "b" \c"#.to_vec()),
                Argument::Atom("42".into())
            ]
        );
        assert_eq!(tail, Tail::End);
        assert_eq!(parse(r#""name" {31+}"#).1, Tail::Literal(31));
        assert_eq!(parse("{5}").1, Tail::Literal(5));
        let mut args = Vec::new();
        for bad in [
            r#""open"#,
            "{x+}",
            "{3+} more",
            r#""a\b""#,
            "{99999999999999999999999}",
        ] {
            assert!(arguments(bad, &mut args).is_err(), "{bad}");
        }
    }

    #[test]
    fn strings_sent_quoted_or_as_literals() {
        assert_eq!(string(r#"my "s""#), r#""my \"s\"""#);
        assert_eq!(string("a\r\nb"), "{4}\r\na\r\nb");
    }
}
