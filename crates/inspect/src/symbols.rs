//! Every symbol this crate can emit, declared once: the macro makes both the constant each
//! check pushes and the [`SYMBOLS`] table the server reads scores and descriptions from, so
//! a symbol cannot be emitted without being documented.

/// One symbol: its name, what it means, and whether it is by default a candidate for a hard
/// format error (the server's configuration decides whether it refuses or only scores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Symbol {
    pub name: &'static str,
    pub description: &'static str,
    pub format_error: bool,
}

macro_rules! symbols {
    ($($name:ident, $format_error:expr, $description:expr;)*) => {
        $(
            #[doc = $description]
            pub const $name: &str = stringify!($name);
        )*
        /// Every symbol [`crate::inspect`] can emit, in a stable order.
        pub const SYMBOLS: &[Symbol] = &[
            $(Symbol { name: $name, description: $description, format_error: $format_error },)*
        ];
    };
}

const FORMAT: bool = true;
const SCORE: bool = false;

symbols! {
    // RFC 5322 §3.6: required fields and how often a field may appear.
    MISSING_FROM, FORMAT, "No From field (RFC 5322 §3.6: required)";
    MISSING_DATE, FORMAT, "No Date field (RFC 5322 §3.6: required)";
    MISSING_MESSAGE_ID, SCORE, "No Message-ID field (RFC 5322 §3.6.4: should be present)";
    MISSING_RECIPIENTS, SCORE, "None of To, Cc or Bcc is present";
    MISSING_SUBJECT, SCORE, "No Subject field";
    DUPLICATE_HEADER, FORMAT, "A field allowed at most once appears more often (RFC 5322 §3.6 table)";
    FROM_UNPARSABLE, FORMAT, "From holds no parsable mailbox (RFC 5322 §3.6.2)";
    FROM_MULTIPLE_NO_SENDER, FORMAT, "From names several mailboxes but there is no Sender (RFC 5322 §3.6.2)";
    TO_UNPARSABLE, SCORE, "To or Cc holds an address that does not parse (RFC 5322 §3.6.3)";
    HEADER_LINE_TOO_LONG, FORMAT, "A header line is longer than the limit, 998 octets by default (RFC 5322 §2.1.1)";
    HEADER_8BIT_NO_SMTPUTF8, FORMAT, "Raw 8-bit octets in the header section of a message not sent with SMTPUTF8 (RFC 6532 §3)";
    HEADER_INVALID_UTF8, FORMAT, "8-bit header octets that are not UTF-8 (RFC 6532 §3.2)";
    DATE_UNPARSABLE, FORMAT, "The Date field does not parse as an RFC 5322 §3.3 date-time";
    DATE_IN_FUTURE, SCORE, "Date is further in the future than the limit (default one day)";
    DATE_IN_PAST, SCORE, "Date is further in the past than the limit (default 30 days)";
    // RFC 2045-2049: MIME structure and encodings.
    MIME_MISSING_VERSION, SCORE, "Content-Type is present but MIME-Version is not (RFC 2045 §4)";
    MIME_NO_BOUNDARY, FORMAT, "A multipart has no boundary parameter (RFC 2046 §5.1.1)";
    MIME_BOUNDARY_NOT_FOUND, FORMAT, "A multipart's boundary never appears in its body (RFC 2046 §5.1.1)";
    MIME_NO_CLOSING_BOUNDARY, SCORE, "A multipart has no close delimiter (RFC 2046 §5.1.1)";
    MIME_BAD_BASE64, FORMAT, "A base64 part holds characters or padding base64 does not allow (RFC 2045 §6.8)";
    MIME_BAD_QP, SCORE, "A quoted-printable part holds an '=' not followed by two hex digits or a line end (RFC 2045 §6.7)";
    MIME_UNKNOWN_CTE, FORMAT, "Content-Transfer-Encoding is none of 7bit, 8bit, binary, base64, quoted-printable (RFC 2045 §6.1)";
    MIME_TOO_DEEP, FORMAT, "Multiparts or attached messages are nested deeper than the limit";
    MIME_TOO_MANY_PARTS, FORMAT, "The message has more MIME parts than the limit; the rest was not inspected";
    // Spoofing.
    FROM_LOCAL_DOMAIN, SCORE, "The From domain is one of ours (the server adds: and no aligned DKIM pass)";
    FROM_LOOKALIKE_LOCAL, SCORE, "The From domain looks like one of ours (homoglyphs or punycode) but is not";
    FROM_NAME_HAS_ADDRESS, SCORE, "The From display name shows an address different from the real one";
    FROM_NAME_LOCAL_ADDRESS, SCORE, "The address shown in the From display name is in one of our domains";
    // Attachments and their content.
    ATTACH_DANGEROUS_NAME, SCORE, "A file name (attachment or archive entry) has an executable or disk image extension";
    ATTACH_DOUBLE_EXTENSION, SCORE, "A file name hides a dangerous extension behind a harmless one (invoice.pdf.exe)";
    ATTACH_BIDI_NAME, SCORE, "A file name holds bidirectional control characters (U+202E tricks)";
    ATTACH_EXECUTABLE, SCORE, "Content is a PE, ELF or Mach-O executable or Java class";
    ATTACH_SCRIPT, SCORE, "Content is a script starting with #!";
    ATTACH_SHORTCUT, SCORE, "Content is a Windows shortcut (LNK)";
    ATTACH_DISK_IMAGE, SCORE, "Content is a disk image (ISO 9660, VHD, VHDX, DMG)";
    ATTACH_HTML, SCORE, "An HTML file is attached (not the message body)";
    OFFICE_MACRO, SCORE, "An Office document carries VBA macros (OLE2 _VBA_PROJECT or OOXML vbaProject.bin)";
    HTML_PASSWORD_FORM, SCORE, "HTML with a form and a password input";
    // Archives.
    ARCHIVE_ENCRYPTED, SCORE, "An archive entry is encrypted, so its content cannot be checked";
    ARCHIVE_NESTED, SCORE, "An archive holds another archive";
    ARCHIVE_TOO_DEEP, SCORE, "Archives are nested deeper than the limit; the innermost were not opened";
    ARCHIVE_BOMB, SCORE, "An archive declares or expands to far more than its size (ratio, total, or overlapping entries)";
    ARCHIVE_TOO_MANY_ENTRIES, SCORE, "An archive lists more entries than the limit; the rest were not checked";
    ARCHIVE_UNCHECKED, SCORE, "The per-message decompression budget ran out; some archive content was not checked";
    ARCHIVE_UNLISTABLE, SCORE, "An archive this crate cannot list (RAR, 7z, gzip, bzip2, xz, CAB, or a broken zip)";
    // Links.
    PHISH_LINK_MISMATCH, SCORE, "A link's visible text shows a different registrable domain than its target";
    URL_BARE_IP, SCORE, "A link points at an IP address rather than a name";
    URL_LOOKALIKE_LOCAL, SCORE, "A link host looks like one of our domains (homoglyphs or punycode) but is not";
    URL_MIXED_SCRIPT, SCORE, "A link host label mixes Latin with Cyrillic or Greek letters";
    URL_TOO_MANY, SCORE, "More distinct link domains than the limit; the rest are not in url_domains";
}

/// The entry for `name`, if this crate emits it.
pub fn symbol(name: &str) -> Option<&'static Symbol> {
    SYMBOLS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_upper_snake_and_described() {
        let mut names: Vec<_> = SYMBOLS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SYMBOLS.len());
        for s in SYMBOLS {
            assert!(
                s.name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            );
            assert!(!s.description.is_empty());
        }
        assert!(symbol(MISSING_FROM).is_some_and(|s| s.format_error));
        assert!(symbol(URL_BARE_IP).is_some_and(|s| !s.format_error));
        assert!(symbol("NOPE").is_none());
    }
}
