//! Splitting an entity (a message or a MIME part) into its header section and body, and the
//! header section into raw fields, in one linear pass. mail-parser decodes values; this
//! keeps the raw shape it hides: repeated names, line lengths, 8-bit octets.

use memchr::memchr;

/// One header field as received: its name and raw value (folding kept).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) value: &'a [u8],
}

impl Field<'_> {
    pub(crate) fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// An entity split at the blank line that ends its header section.
#[derive(Debug)]
pub(crate) struct Entity<'a> {
    /// The header section, with the line end of its last field.
    pub(crate) header: &'a [u8],
    pub(crate) body: &'a [u8],
}

/// The lines of `data`, each without its line end (CRLF or LF).
pub(crate) fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match memchr(b'\n', rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    })
}

/// Splits at the first empty line; an entity without one is all header (RFC 5322 §2.1: the
/// body is optional).
pub(crate) fn split(entity: &[u8]) -> Entity<'_> {
    let mut offset = 0;
    for line in lines(entity) {
        let consumed = line_length_with_end(entity, offset, line.len());
        if line.is_empty() {
            return Entity {
                header: &entity[..offset],
                body: &entity[offset + consumed..],
            };
        }
        offset += consumed;
    }
    Entity {
        header: entity,
        body: &entity[entity.len()..],
    }
}

/// The octets a line of `len` at `offset` takes including its line end.
fn line_length_with_end(data: &[u8], offset: usize, len: usize) -> usize {
    let mut end = offset + len;
    if data.get(end) == Some(&b'\r') {
        end += 1;
    }
    if data.get(end) == Some(&b'\n') {
        end += 1;
    }
    end - offset
}

/// The fields of a header section. A line that neither starts a field (`name:`) nor continues
/// one is skipped: mail-parser tolerates it too, and counting it is not a check of its own.
pub(crate) fn fields(header: &[u8]) -> Vec<Field<'_>> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut offset = 0;
    let mut current: Option<(usize, usize, usize)> = None; // name start, colon, value end
    for line in lines(header) {
        let start = offset;
        offset += line_length_with_end(header, offset, line.len());
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some((_, _, end)) = current.as_mut() {
                *end = start + line.len();
            }
            continue;
        }
        if let Some(field) = current.take() {
            fields.push(make_field(header, field));
        }
        if let Some(colon) = memchr(b':', line)
            && colon > 0
            && line[..colon]
                .iter()
                .all(|&b| b.is_ascii_graphic() || b == b' ')
        {
            current = Some((start, start + colon, start + line.len()));
        }
    }
    if let Some(field) = current {
        fields.push(make_field(header, field));
    }
    fields
}

fn make_field(header: &[u8], (start, colon, end): (usize, usize, usize)) -> Field<'_> {
    let name = header[start..colon].trim_ascii_end();
    Field {
        name,
        value: &header[colon + 1..end],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_crlf_and_lf_and_folds() {
        let m = b"From: a@b.example\r\nSubject: one\r\n two\r\n\r\nbody\r\n";
        let e = split(m);
        assert_eq!(e.body, b"body\r\n");
        let f = fields(e.header);
        assert_eq!(f.len(), 2);
        assert!(f[1].is("subject"));
        assert_eq!(f[1].value, b" one\r\n two");
        let e = split(b"A: 1\nB: 2\n\nx");
        assert_eq!(fields(e.header).len(), 2);
        assert_eq!(e.body, b"x");
    }

    #[test]
    fn no_blank_line_is_all_header_and_leading_blank_is_all_body() {
        assert!(split(b"A: 1\r\n").body.is_empty());
        let e = split(b"\r\nbody");
        assert!(e.header.is_empty());
        assert_eq!(e.body, b"body");
    }
}
