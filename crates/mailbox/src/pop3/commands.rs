//! POP3 command lines, parsed: keyword (case-insensitive) and arguments.

/// A POP3 command.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Capa,
    Stls,
    User(String),
    Pass(String),
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    Stat,
    List(Option<usize>),
    Uidl(Option<usize>),
    Retr(usize),
    Top(usize, usize),
    Dele(usize),
    Rset,
    Noop,
    Quit,
}

impl Command {
    /// Parses a line; the error is the text for `-ERR`.
    pub fn parse(line: &str) -> Result<Command, String> {
        let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
        let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
        let keyword = keyword.to_ascii_uppercase();
        let command = match (keyword.as_str(), args.as_slice()) {
            ("CAPA", []) => Command::Capa,
            ("STLS", []) => Command::Stls,
            ("USER", [name]) => Command::User((*name).to_string()),
            // The password is the rest of the line: it may contain spaces.
            ("PASS", [_, ..]) => Command::Pass(rest.to_string()),
            ("AUTH", [mechanism]) => Command::Auth {
                mechanism: (*mechanism).to_string(),
                initial: None,
            },
            ("AUTH", [mechanism, initial]) => Command::Auth {
                mechanism: (*mechanism).to_string(),
                initial: Some((*initial).to_string()),
            },
            ("STAT", []) => Command::Stat,
            ("LIST", []) => Command::List(None),
            ("LIST", [n]) => Command::List(Some(number(n)?)),
            ("UIDL", []) => Command::Uidl(None),
            ("UIDL", [n]) => Command::Uidl(Some(number(n)?)),
            ("RETR", [n]) => Command::Retr(number(n)?),
            ("TOP", [n, lines]) => Command::Top(number(n)?, count(lines)?),
            ("DELE", [n]) => Command::Dele(number(n)?),
            ("RSET", []) => Command::Rset,
            ("NOOP", []) => Command::Noop,
            ("QUIT", []) => Command::Quit,
            (
                "CAPA" | "STLS" | "USER" | "PASS" | "AUTH" | "STAT" | "LIST" | "UIDL" | "RETR"
                | "TOP" | "DELE" | "RSET" | "NOOP" | "QUIT",
                _,
            ) => return Err(format!("wrong arguments for {keyword}")),
            _ => return Err("unknown command".into()),
        };
        Ok(command)
    }
}

/// A message number (from 1).
fn number(text: &str) -> Result<usize, String> {
    match count(text)? {
        0 => Err("no message 0".into()),
        n => Ok(n),
    }
}

/// A non-negative decimal number.
fn count(text: &str) -> Result<usize, String> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a number"));
    }
    text.parse().map_err(|_| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(Command::parse("retr 3"), Ok(Command::Retr(3)));
        assert_eq!(Command::parse("TOP 1 0"), Ok(Command::Top(1, 0)));
        assert_eq!(
            Command::parse("PASS a b  c"),
            Ok(Command::Pass("a b  c".into()))
        );
        assert_eq!(
            Command::parse("AUTH PLAIN AGFAYg=="),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGFAYg==".into())
            })
        );
        assert!(Command::parse("RETR 0").is_err());
        assert!(Command::parse("RETR -1").is_err());
        assert!(Command::parse("RETR 99999999999999999999999").is_err());
        assert!(Command::parse("STAT 1").is_err());
        assert!(Command::parse("APOP x y").is_err());
    }
}
