//! The grammar of RFC 5228 §8.2 into an untyped tree: every command and test is a name
//! with arguments; what the names mean is `validate`'s job.

use crate::error::{CompileError, Pos};
use crate::lexer::{Spanned, Token};

/// A command or a test as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Lowercased: identifiers are case-insensitive (§2.6).
    pub name: String,
    pub pos: Pos,
    pub args: Vec<Arg>,
    /// The test or test-list that ends the arguments.
    pub tests: Vec<Node>,
    /// A command's block, `None` when the command ends with `;`.
    pub block: Option<Vec<Node>>,
}

/// One argument (§2.6.1).
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Tag(String, Pos),
    Number(u64, Pos),
    /// `single` tells a lone string from a one-element `["list"]`.
    Strings {
        values: Vec<String>,
        single: bool,
        pos: Pos,
    },
}

impl Arg {
    pub fn pos(&self) -> Pos {
        match self {
            Arg::Tag(_, pos) | Arg::Number(_, pos) | Arg::Strings { pos, .. } => *pos,
        }
    }
}

/// Parses a token stream into the script's top-level commands. `max_depth` bounds the
/// nesting of blocks and tests, so hostile input cannot exhaust the stack.
pub fn parse(tokens: &[Spanned], max_depth: usize) -> Result<Vec<Node>, CompileError> {
    let mut parser = Parser {
        tokens,
        at: 0,
        max_depth,
    };
    let commands = parser.commands(0)?;
    if let Some(extra) = parser.tokens.get(parser.at) {
        return Err(CompileError::new(extra.pos, "unexpected '}'"));
    }
    Ok(commands)
}

struct Parser<'a> {
    tokens: &'a [Spanned],
    at: usize,
    max_depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.at)
    }

    fn end_pos(&self) -> Pos {
        self.tokens.last().map(|t| t.pos).unwrap_or_default()
    }

    fn check_depth(&self, depth: usize, pos: Pos) -> Result<(), CompileError> {
        if depth > self.max_depth {
            return Err(CompileError::new(
                pos,
                format!("nesting deeper than {} levels", self.max_depth),
            ));
        }
        Ok(())
    }

    fn commands(&mut self, depth: usize) -> Result<Vec<Node>, CompileError> {
        let mut commands = Vec::new();
        while let Some(next) = self.peek() {
            if next.token == Token::RightBrace {
                break;
            }
            commands.push(self.command(depth)?);
        }
        Ok(commands)
    }

    fn command(&mut self, depth: usize) -> Result<Node, CompileError> {
        let (name, pos) = self.identifier("a command")?;
        self.check_depth(depth, pos)?;
        let (args, tests) = self.arguments(depth)?;
        let next = self.peek().cloned();
        let block = match next.map(|s| (s.token, s.pos)) {
            Some((Token::Semicolon, _)) => {
                self.at += 1;
                None
            }
            Some((Token::LeftBrace, _)) => {
                self.at += 1;
                let body = self.commands(depth + 1)?;
                match self.peek() {
                    Some(Spanned {
                        token: Token::RightBrace,
                        ..
                    }) => self.at += 1,
                    _ => {
                        return Err(CompileError::new(
                            self.end_pos(),
                            "missing '}' at the end of a block",
                        ));
                    }
                }
                Some(body)
            }
            Some((_, pos)) => {
                return Err(CompileError::new(
                    pos,
                    format!("expected ';' or a block after the {name} command"),
                ));
            }
            None => {
                return Err(CompileError::new(
                    self.end_pos(),
                    format!("missing ';' after the {name} command"),
                ));
            }
        };
        Ok(Node {
            name,
            pos,
            args,
            tests,
            block,
        })
    }

    fn identifier(&mut self, what: &str) -> Result<(String, Pos), CompileError> {
        match self.peek() {
            Some(Spanned {
                token: Token::Identifier(name),
                pos,
            }) => {
                let found = (name.to_ascii_lowercase(), *pos);
                self.at += 1;
                Ok(found)
            }
            Some(other) => Err(CompileError::new(
                other.pos,
                format!("expected {what}, found {}", describe(&other.token)),
            )),
            None => Err(CompileError::new(
                self.end_pos(),
                format!("expected {what} at the end of the script"),
            )),
        }
    }

    /// Arguments, then an optional test or parenthesised test list (§8.2).
    fn arguments(&mut self, depth: usize) -> Result<(Vec<Arg>, Vec<Node>), CompileError> {
        let mut args = Vec::new();
        while let Some(next) = self.peek().cloned() {
            match next.token {
                Token::Tag(tag) => {
                    self.at += 1;
                    args.push(Arg::Tag(tag, next.pos));
                }
                Token::Number(n) => {
                    self.at += 1;
                    args.push(Arg::Number(n, next.pos));
                }
                Token::String(s) => {
                    self.at += 1;
                    args.push(Arg::Strings {
                        values: vec![s],
                        single: true,
                        pos: next.pos,
                    });
                }
                Token::LeftBracket => {
                    self.at += 1;
                    args.push(Arg::Strings {
                        values: self.string_list()?,
                        single: false,
                        pos: next.pos,
                    });
                }
                _ => break,
            }
        }
        let tests = match self.peek().map(|s| s.token.clone()) {
            Some(Token::Identifier(_)) => vec![self.test(depth + 1)?],
            Some(Token::LeftParen) => {
                let pos = self.peek().map(|s| s.pos).unwrap_or_default();
                self.at += 1;
                self.check_depth(depth + 1, pos)?;
                let mut tests = vec![self.test(depth + 1)?];
                loop {
                    match self.peek().map(|s| (s.token.clone(), s.pos)) {
                        Some((Token::Comma, _)) => {
                            self.at += 1;
                            tests.push(self.test(depth + 1)?);
                        }
                        Some((Token::RightParen, _)) => {
                            self.at += 1;
                            break;
                        }
                        Some((token, pos)) => {
                            return Err(CompileError::new(
                                pos,
                                format!(
                                    "expected ',' or ')' in a test list, found {}",
                                    describe(&token)
                                ),
                            ));
                        }
                        None => {
                            return Err(CompileError::new(
                                self.end_pos(),
                                "missing ')' at the end of a test list",
                            ));
                        }
                    }
                }
                tests
            }
            _ => Vec::new(),
        };
        Ok((args, tests))
    }

    fn test(&mut self, depth: usize) -> Result<Node, CompileError> {
        let (name, pos) = self.identifier("a test")?;
        self.check_depth(depth, pos)?;
        let (args, tests) = self.arguments(depth)?;
        Ok(Node {
            name,
            pos,
            args,
            tests,
            block: None,
        })
    }

    fn string_list(&mut self) -> Result<Vec<String>, CompileError> {
        let mut values = Vec::new();
        loop {
            match self.peek().map(|s| (s.token.clone(), s.pos)) {
                Some((Token::String(s), _)) => {
                    self.at += 1;
                    values.push(s);
                }
                Some((token, pos)) => {
                    return Err(CompileError::new(
                        pos,
                        format!(
                            "expected a string in a string list, found {}",
                            describe(&token)
                        ),
                    ));
                }
                None => {
                    return Err(CompileError::new(
                        self.end_pos(),
                        "missing ']' at the end of a string list",
                    ));
                }
            }
            match self.peek().map(|s| (s.token.clone(), s.pos)) {
                Some((Token::Comma, _)) => self.at += 1,
                Some((Token::RightBracket, _)) => {
                    self.at += 1;
                    return Ok(values);
                }
                Some((token, pos)) => {
                    return Err(CompileError::new(
                        pos,
                        format!(
                            "expected ',' or ']' in a string list, found {}",
                            describe(&token)
                        ),
                    ));
                }
                None => {
                    return Err(CompileError::new(
                        self.end_pos(),
                        "missing ']' at the end of a string list",
                    ));
                }
            }
        }
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Identifier(name) => format!("identifier '{name}'"),
        Token::Tag(tag) => format!("tag ':{tag}'"),
        Token::Number(n) => format!("number {n}"),
        Token::String(_) => "a string".to_owned(),
        Token::Semicolon => "';'".to_owned(),
        Token::Comma => "','".to_owned(),
        Token::LeftParen => "'('".to_owned(),
        Token::RightParen => "')'".to_owned(),
        Token::LeftBracket => "'['".to_owned(),
        Token::RightBracket => "']'".to_owned(),
        Token::LeftBrace => "'{'".to_owned(),
        Token::RightBrace => "'}'".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::tokenize;

    fn parse_str(script: &str) -> Result<Vec<Node>, CompileError> {
        parse(&tokenize(script)?, 8)
    }

    #[test]
    fn commands_tests_and_blocks() {
        let tree = parse_str(
            "if anyof (true, header :is \"a\" [\"b\", \"c\"]) { keep; } else { discard; }",
        )
        .unwrap();
        assert_eq!(tree.len(), 2);
        assert_eq!(tree[0].name, "if");
        assert_eq!(tree[0].tests[0].tests.len(), 2);
        assert_eq!(tree[0].tests[0].tests[1].args.len(), 3);
        assert_eq!(tree[1].block.as_ref().unwrap()[0].name, "discard");
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parse_str("keep;\nkeep").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(parse_str("if true { keep;").is_err());
        assert!(parse_str("keep ]").is_err());
        assert!(parse_str("x [\"a\" \"b\"];").is_err());
        assert!(parse_str("}").is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "if true {".repeat(20) + &"}".repeat(20);
        assert!(parse_str(&deep).unwrap_err().message.contains("nesting"));
        let tests = "not ".repeat(20);
        assert!(parse_str(&format!("if {tests} true {{}}")).is_err());
    }
}
