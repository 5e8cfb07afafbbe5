//! Header fields as the MTA holds them, and the filter's edits applied to them the way
//! Postfix applies them (its `cleanup_milter.c`): the indexes count in the header section
//! the filter was shown.

pub(crate) mod wire;

use std::fmt;

/// One header field (RFC 5322 §2.2): its name, and its value exactly as it follows the
/// colon (leading space and folded lines included, without the final line ending).
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderField {
    /// The field name, without the colon.
    pub name: String,
    /// The octets after the colon.
    pub value: Vec<u8>,
}

impl HeaderField {
    /// A field from its name and value.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> HeaderField {
        HeaderField {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The fields of a header section (lines ending in CRLF or LF, up to the empty line
    /// or the end). `None` if a line is neither a field (`name:`) nor the continuation
    /// of one (starting with a space or tab).
    pub fn parse_section(section: &[u8]) -> Option<Vec<HeaderField>> {
        let mut fields: Vec<HeaderField> = Vec::new();
        for line in section.split_inclusive(|&b| b == b'\n') {
            let content = line.strip_suffix(b"\n").unwrap_or(line);
            let content = content.strip_suffix(b"\r").unwrap_or(content);
            if content.is_empty() {
                break;
            }
            if matches!(content[0], b' ' | b'\t') {
                let field = fields.last_mut()?;
                field.value.extend_from_slice(b"\r\n");
                field.value.extend_from_slice(content);
                continue;
            }
            let colon = content.iter().position(|&b| b == b':')?;
            let name = std::str::from_utf8(&content[..colon]).ok()?;
            if name.is_empty() || name.bytes().any(|b| !(33..=126).contains(&b)) {
                return None;
            }
            fields.push(HeaderField::new(name, &content[colon + 1..]));
        }
        Some(fields)
    }

    /// The field as it is written in a message: `name:value` and CRLF.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.name.len() + self.value.len() + 3);
        out.extend_from_slice(self.name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&self.value);
        out.extend_from_slice(b"\r\n");
        out
    }
}

impl fmt::Debug for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{:?}",
            self.name,
            String::from_utf8_lossy(&self.value)
        )
    }
}

/// A change to the header section asked for at the end of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderEdit {
    /// SMFIR_ADDHEADER: append the field after the last one.
    Add(HeaderField),
    /// SMFIR_INSHEADER: insert the field before the one at `index` (0 is the top), or
    /// append it when there are not that many.
    Insert {
        /// The position, counted from 0.
        index: usize,
        /// The new field.
        field: HeaderField,
    },
    /// SMFIR_CHGHEADER with a value: replace the `index`th field with this name (counted
    /// from 1, any case; 0 counts as 1), or append the field when there are not that many.
    Change {
        /// Which occurrence of the name.
        index: usize,
        /// The new field.
        field: HeaderField,
    },
    /// SMFIR_CHGHEADER with an empty value: remove the `index`th field with this name
    /// (counted from 1; 0 counts as 1), if there is one.
    Delete {
        /// Which occurrence of the name.
        index: usize,
        /// The name.
        name: String,
    },
}

/// Applies `edits`, in order, to `fields`.
pub fn apply_edits<'e>(
    fields: &mut Vec<HeaderField>,
    edits: impl IntoIterator<Item = &'e HeaderEdit>,
) {
    for edit in edits {
        match edit {
            HeaderEdit::Add(field) => fields.push(field.clone()),
            HeaderEdit::Insert { index, field } => {
                fields.insert((*index).min(fields.len()), field.clone());
            }
            HeaderEdit::Change { index, field } => match occurrence(fields, &field.name, *index) {
                Some(at) => fields[at] = field.clone(),
                None => fields.push(field.clone()),
            },
            HeaderEdit::Delete { index, name } => {
                if let Some(at) = occurrence(fields, name, *index) {
                    fields.remove(at);
                }
            }
        }
    }
}

/// Where the `index`th field named `name` is (from 1, 0 meaning 1, as Sendmail does).
fn occurrence(fields: &[HeaderField], name: &str, index: usize) -> Option<usize> {
    fields
        .iter()
        .enumerate()
        .filter(|(_, field)| field.name.eq_ignore_ascii_case(name))
        .nth(index.max(1) - 1)
        .map(|(at, _)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(fields: &[HeaderField]) -> String {
        let bytes: Vec<u8> = fields.iter().flat_map(HeaderField::to_bytes).collect();
        String::from_utf8(bytes).unwrap()
    }

    fn sample() -> Vec<HeaderField> {
        HeaderField::parse_section(
            b"Received: one\r\nSubject: hi\r\n there\r\nreceived: two\r\nTo: a@b\r\n\r\nbody",
        )
        .unwrap()
    }

    #[test]
    fn a_section_parses_into_fields_and_writes_back_unchanged() {
        let fields = sample();
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[1], HeaderField::new("Subject", " hi\r\n there"));
        assert_eq!(
            section(&fields),
            "Received: one\r\nSubject: hi\r\n there\r\nreceived: two\r\nTo: a@b\r\n"
        );
        assert_eq!(HeaderField::parse_section(b"no colon here\r\n"), None);
        assert_eq!(HeaderField::parse_section(b" starts folded\r\n"), None);
    }

    #[test]
    fn change_and_delete_count_occurrences_of_the_name_from_one() {
        let mut fields = sample();
        apply_edits(
            &mut fields,
            &[
                HeaderEdit::Change {
                    index: 2,
                    field: HeaderField::new("Received", " changed"),
                },
                HeaderEdit::Delete {
                    index: 0,
                    name: "RECEIVED".into(),
                },
                HeaderEdit::Change {
                    index: 3,
                    field: HeaderField::new("To", " appended"),
                },
                HeaderEdit::Delete {
                    index: 5,
                    name: "Subject".into(),
                },
            ],
        );
        assert_eq!(
            section(&fields),
            "Subject: hi\r\n there\r\nReceived: changed\r\nTo: a@b\r\nTo: appended\r\n"
        );
    }

    #[test]
    fn insert_counts_positions_from_zero_and_add_appends() {
        let mut fields = sample();
        apply_edits(
            &mut fields,
            &[
                HeaderEdit::Insert {
                    index: 0,
                    field: HeaderField::new("X-Top", " 1"),
                },
                HeaderEdit::Insert {
                    index: 2,
                    field: HeaderField::new("X-Third", " 2"),
                },
                HeaderEdit::Insert {
                    index: 99,
                    field: HeaderField::new("X-Far", " 3"),
                },
                HeaderEdit::Add(HeaderField::new("X-Last", " 4")),
            ],
        );
        let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "X-Top", "Received", "X-Third", "Subject", "received", "To", "X-Far", "X-Last"
            ]
        );
    }
}
