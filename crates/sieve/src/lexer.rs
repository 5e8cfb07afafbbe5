//! Tokens of a Sieve script (RFC 5228 §8.1): identifiers, tags, numbers with their
//! K/M/G quantifiers, quoted and multi-line strings, punctuation; comments are skipped.

use crate::error::{CompileError, Pos};

/// One lexical token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Identifier(String),
    /// A `:name` tagged argument, held without its colon and lowercased (tags are
    /// case-insensitive, §2.6.2).
    Tag(String),
    Number(u64),
    String(String),
    Semicolon,
    Comma,
    LeftParen,
    RightParen,
    LeftBracket,
    RightBracket,
    LeftBrace,
    RightBrace,
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned {
    pub token: Token,
    pub pos: Pos,
}

/// Splits a whole script into tokens.
pub fn tokenize(script: &str) -> Result<Vec<Spanned>, CompileError> {
    let mut lexer = Lexer {
        bytes: script.as_bytes(),
        at: 0,
        line: 1,
        column: 1,
    };
    let mut tokens = Vec::new();
    while let Some(token) = lexer.next_token()? {
        tokens.push(token);
    }
    Ok(tokens)
}

struct Lexer<'a> {
    bytes: &'a [u8],
    at: usize,
    line: u32,
    column: u32,
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.at + offset).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        if byte == b'\n' {
            self.line += 1;
            self.column = 1;
        } else if byte & 0xC0 != 0x80 {
            self.column += 1;
        }
        Some(byte)
    }

    fn error(&self, pos: Pos, message: impl Into<String>) -> CompileError {
        CompileError::new(pos, message)
    }

    /// Skips white space, `#` comments and `/* */` comments (§8.1).
    fn skip_blank(&mut self) -> Result<(), CompileError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => {
                    while let Some(byte) = self.bump() {
                        if byte == b'\n' {
                            break;
                        }
                    }
                }
                Some(b'/') if self.peek_at(1) == Some(b'*') => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => return Err(self.error(start, "unterminated comment")),
                            Some(b'*') if self.peek() == Some(b'/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn next_token(&mut self) -> Result<Option<Spanned>, CompileError> {
        self.skip_blank()?;
        let pos = self.pos();
        let Some(byte) = self.peek() else {
            return Ok(None);
        };
        let token = match byte {
            b';' => self.punct(Token::Semicolon),
            b',' => self.punct(Token::Comma),
            b'(' => self.punct(Token::LeftParen),
            b')' => self.punct(Token::RightParen),
            b'[' => self.punct(Token::LeftBracket),
            b']' => self.punct(Token::RightBracket),
            b'{' => self.punct(Token::LeftBrace),
            b'}' => self.punct(Token::RightBrace),
            b'"' => Token::String(self.quoted(pos)?),
            b':' => {
                self.bump();
                match self.peek() {
                    Some(b) if is_identifier_start(b) => {
                        Token::Tag(self.identifier().to_ascii_lowercase())
                    }
                    _ => return Err(self.error(pos, "expected a tag name after ':'")),
                }
            }
            b'0'..=b'9' => Token::Number(self.number(pos)?),
            b if is_identifier_start(b) => {
                let word = self.identifier();
                if word.eq_ignore_ascii_case("text") && self.peek() == Some(b':') {
                    self.bump();
                    Token::String(self.multiline(pos)?)
                } else {
                    Token::Identifier(word)
                }
            }
            other => {
                let shown = char::from(other);
                return Err(self.error(pos, format!("unexpected character '{shown}'")));
            }
        };
        Ok(Some(Spanned { token, pos }))
    }

    fn punct(&mut self, token: Token) -> Token {
        self.bump();
        token
    }

    fn identifier(&mut self) -> String {
        let start = self.at;
        while matches!(self.peek(), Some(b) if is_identifier_start(b) || b.is_ascii_digit()) {
            self.bump();
        }
        String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned()
    }

    /// A number with an optional quantifier: K = 2^10, M = 2^20, G = 2^30 (§2.4.1).
    fn number(&mut self, pos: Pos) -> Result<u64, CompileError> {
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            self.bump();
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                .ok_or_else(|| self.error(pos, "number is too large"))?;
        }
        let shift = match self.peek() {
            Some(b'K' | b'k') => 10,
            Some(b'M' | b'm') => 20,
            Some(b'G' | b'g') => 30,
            _ => 0,
        };
        if shift > 0 {
            self.bump();
            value = value
                .checked_mul(1 << shift)
                .ok_or_else(|| self.error(pos, "number is too large"))?;
        }
        if matches!(self.peek(), Some(b) if is_identifier_start(b)) {
            return Err(self.error(pos, "invalid number"));
        }
        Ok(value)
    }

    /// A quoted string: `\\` and `\"` stand for themselves, and a backslash before any
    /// other character is dropped (§2.4.2).
    fn quoted(&mut self, pos: Pos) -> Result<String, CompileError> {
        self.bump();
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err(self.error(pos, "unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    None => return Err(self.error(pos, "unterminated string")),
                    Some(escaped) => out.push(escaped),
                },
                Some(byte) => out.push(byte),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// A `text:` string: the rest of the `text:` line may hold only blanks and a hash
    /// comment; the text runs to a line holding a lone dot, and a leading dot is
    /// doubled ("dot-stuffed") on the lines in between (§2.4.2).
    fn multiline(&mut self, pos: Pos) -> Result<String, CompileError> {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
        if self.peek() == Some(b'#') {
            while let Some(byte) = self.bump() {
                if byte == b'\n' {
                    break;
                }
            }
        } else {
            if self.peek() == Some(b'\r') {
                self.bump();
            }
            if self.bump() != Some(b'\n') {
                return Err(self.error(pos, "text: must be followed by the end of the line"));
            }
        }
        let mut out = Vec::new();
        loop {
            let start = self.at;
            let mut end = None;
            while let Some(byte) = self.bump() {
                if byte == b'\n' {
                    end = Some(self.at);
                    break;
                }
            }
            let line_end = end.unwrap_or(self.at);
            let line = &self.bytes[start..line_end];
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if content == b"." {
                break;
            }
            if end.is_none() {
                return Err(self.error(pos, "unterminated text: string (no line with a lone '.')"));
            }
            let unstuffed = if content.starts_with(b"..") {
                &content[1..]
            } else {
                content
            };
            out.extend_from_slice(unstuffed);
            out.extend_from_slice(b"\r\n");
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

fn is_identifier_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(script: &str) -> Vec<Token> {
        tokenize(script)
            .unwrap()
            .into_iter()
            .map(|s| s.token)
            .collect()
    }

    #[test]
    fn numbers_take_quantifiers() {
        assert_eq!(
            tokens("1K 2M 3G 7"),
            vec![
                Token::Number(1024),
                Token::Number(2 << 20),
                Token::Number(3 << 30),
                Token::Number(7)
            ]
        );
    }

    #[test]
    fn quoted_strings_drop_unknown_escapes() {
        assert_eq!(
            tokens(r#""a\"b\\c\d""#),
            vec![Token::String("a\"b\\cd".into())]
        );
    }

    #[test]
    fn multiline_strings_unstuff_dots() {
        let script = "text: # comment\r\nline\r\n..dot\r\n.\r\n;";
        assert_eq!(
            tokens(script),
            vec![Token::String("line\r\n.dot\r\n".into()), Token::Semicolon]
        );
    }

    #[test]
    fn comments_are_skipped_and_tags_lowercased() {
        assert_eq!(
            tokens("# x\nkeep /* y */ :IS;"),
            vec![
                Token::Identifier("keep".into()),
                Token::Tag("is".into()),
                Token::Semicolon
            ]
        );
    }

    #[test]
    fn errors_carry_positions() {
        let err = tokenize("keep;\n  \"open").unwrap_err();
        assert_eq!((err.line, err.column), (2, 3));
        assert!(tokenize("/* open").is_err());
        assert!(tokenize("99999999999999999999").is_err());
        assert!(tokenize("text: x\nno end").is_err());
    }
}
