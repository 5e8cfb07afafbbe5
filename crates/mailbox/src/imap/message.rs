//! FETCH data of one stored message: ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) and
//! the octets of BODY[section] (§6.4.5). mail-parser finds the MIME tree; everything sent is
//! sliced from the stored bytes by its offsets, so clients get exactly what was stored, and
//! offsets that do not fit the buffer yield nothing rather than a panic.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::ops::Range;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_parser::{
    Addr, Address, ContentType, Encoding, Group, Header, HeaderValue, Message, MessageParser,
    MessagePart, PartType,
};

use crate::imap::command::{Date, Section, SectionText};
use crate::imap::response::{nstring, string};

/// How many MIME levels BODYSTRUCTURE and SEARCH descend (Dovecot's default limit). Deeper
/// parts are described as plain text, so hostile nesting cannot exhaust the stack.
pub(crate) const MAX_DEPTH: usize = 100;

/// The charset BODYSTRUCTURE names for text parts that give none (RFC 2045 §5.2).
const DEFAULT_CHARSET: &str = "us-ascii";

/// The most octets of UTF-8 one RFC 2047 encoded word carries: 45 octets are 60 base64
/// characters, which with the `=?utf-8?b?` and `?=` framing stay within the 75 allowed.
const ENCODED_WORD_OCTETS: usize = 45;

/// Parses `raw`. Input in which mail-parser finds no header at all becomes a message with an
/// empty header and `raw` as its text, so callers always have a root part to work with.
pub(crate) fn parse(raw: &[u8]) -> Message<'_> {
    // mail-parser recurses once per nested multipart or message/rfc822 part without a
    // limit of its own: a small hostile message could overflow the stack. A message with
    // more such types named than we ever render is parsed for its top header only.
    let input = if nested_types(raw) > MAX_NESTED_TYPES {
        &raw[..header_end(raw)]
    } else {
        raw
    };
    MessageParser::default()
        .parse(input)
        .unwrap_or_else(|| headerless(raw))
}

/// More `multipart/` and `message/` than this and the body is not parsed.
const MAX_NESTED_TYPES: usize = 2 * MAX_DEPTH;

/// How many times `multipar(t)` or `message/` occurs, in any case: an upper bound on
/// the MIME nesting mail-parser would follow.
fn nested_types(raw: &[u8]) -> usize {
    raw.windows(8)
        .filter(|w| w.eq_ignore_ascii_case(b"message/") || w.eq_ignore_ascii_case(b"multipar"))
        .count()
}

/// Where the header section ends (after its blank line), or the whole input.
fn header_end(raw: &[u8]) -> usize {
    posthorn_proto::headers::section_end(raw).unwrap_or(raw.len())
}

/// A message of one part with no header fields, all of `raw` being its body.
fn headerless(raw: &[u8]) -> Message<'_> {
    Message {
        parts: vec![MessagePart {
            headers: Vec::new(),
            is_encoding_problem: true,
            body: PartType::Text("".into()),
            encoding: Encoding::None,
            offset_header: 0,
            offset_body: 0,
            offset_end: u32::try_from(raw.len()).unwrap_or(u32::MAX),
        }],
        raw_message: raw.into(),
        ..Message::default()
    }
}

/// One MIME part together with the message whose buffer its offsets index (an encapsulated
/// message that was transfer-encoded has its own, decoded, buffer).
#[derive(Clone, Copy)]
pub(crate) struct Node<'m, 'x> {
    message: &'m Message<'x>,
    part: &'m MessagePart<'x>,
    /// The part's index in `message.parts`; sub-parts always come later, which is what
    /// keeps a walk over a corrupt tree from going round in circles.
    index: usize,
}

impl<'m, 'x> Node<'m, 'x> {
    /// The top part of `message`: its header, and its body or multipart tree.
    pub(crate) fn root(message: &'m Message<'x>) -> Option<Self> {
        let part = message.parts.first()?;
        Some(Node {
            message,
            part,
            index: 0,
        })
    }

    /// Octets `from..to` of the buffer, empty when the offsets do not fit it.
    fn slice(&self, from: u32, to: u32) -> &'m [u8] {
        self.message
            .raw_message
            .get(from as usize..to as usize)
            .unwrap_or_default()
    }

    /// The header block as stored, with the blank line that ends it.
    pub(crate) fn header(&self) -> &'m [u8] {
        self.slice(self.part.offset_header, self.part.offset_body)
    }

    /// The body as stored, still transfer-encoded.
    pub(crate) fn body(&self) -> &'m [u8] {
        self.slice(self.part.offset_body, self.part.offset_end)
    }

    /// The header fields mail-parser recognised, in order.
    pub(crate) fn fields(&self) -> &'m [Header<'x>] {
        &self.part.headers
    }

    /// The first field called `name` (case-insensitively).
    fn field(&self, name: &str) -> Option<&'m Header<'x>> {
        self.part
            .headers
            .iter()
            .find(|field| field.name.as_str().eq_ignore_ascii_case(name))
    }

    /// A field's value as stored, unfolded (line breaks removed) and trimmed: what IMAP
    /// sends for fields it does not interpret, still RFC 2047-encoded.
    pub(crate) fn value(&self, field: &Header<'_>) -> Vec<u8> {
        let unfolded: Vec<u8> = self
            .slice(field.offset_start, field.offset_end)
            .iter()
            .copied()
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect();
        unfolded.trim_ascii().to_vec()
    }

    /// The stored value of the first field called `name`.
    fn raw_value(&self, name: &str) -> Option<Vec<u8>> {
        self.field(name).map(|field| self.value(field))
    }

    /// The parsed Content-Type.
    fn content_type(&self) -> Option<&'m ContentType<'x>> {
        self.field("Content-Type")?.value.as_content_type()
    }

    /// The sub-parts of a multipart, in order.
    fn children(&self) -> Vec<Node<'m, 'x>> {
        self.part
            .sub_parts()
            .unwrap_or_default()
            .iter()
            .map(|&id| id as usize)
            .filter(|&index| index > self.index)
            .filter_map(|index| {
                let part = self.message.parts.get(index)?;
                Some(Node {
                    message: self.message,
                    part,
                    index,
                })
            })
            .collect()
    }

    /// Sub-part `n` (from 1) of a multipart.
    fn child(&self, n: u32) -> Option<Node<'m, 'x>> {
        let position = (n as usize).checked_sub(1)?;
        self.children().into_iter().nth(position)
    }

    /// The message a message/rfc822 part encapsulates, when mail-parser could read it.
    fn nested(&self) -> Option<&'m Message<'x>> {
        self.part.message()
    }

    /// Part `n` below this one: a sub-part of a multipart, or a part of the encapsulated
    /// message of a message/rfc822 part.
    fn subpart(self, n: u32) -> Option<Node<'m, 'x>> {
        if self.part.sub_parts().is_some() {
            self.child(n)
        } else {
            numbered_part(self.nested()?, n)
        }
    }
}

/// Part `n` of `message` as IMAP numbers them: a sub-part when the message is multipart,
/// otherwise part 1 is the message body itself and no other number exists.
fn numbered_part<'m, 'x>(message: &'m Message<'x>, n: u32) -> Option<Node<'m, 'x>> {
    let root = Node::root(message)?;
    if root.part.sub_parts().is_some() {
        root.child(n)
    } else {
        (n == 1).then_some(root)
    }
}

/// The part a section's part number (`1.2.3`) names.
fn resolve<'m, 'x>(message: &'m Message<'x>, path: &[u32]) -> Option<Node<'m, 'x>> {
    let (&first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(numbered_part(message, first)?, |node, &n| node.subpart(n))
}

/// ENVELOPE of the message in `raw`: `(date subject from sender reply-to to cc bcc
/// in-reply-to message-id)`, parentheses included. Clients show mailbox lists from it
/// without fetching headers, so it must follow RFC 3501 §7.4.2 to the letter: unstructured
/// fields raw (unfolded, RFC 2047 words left encoded), sender and reply-to defaulting to
/// from, addresses as `(name adl mailbox host)` with groups bracketed by
/// `(NIL NIL "group" NIL)` and `(NIL NIL NIL NIL)`, and NIL for what is missing.
pub fn envelope(raw: &[u8]) -> Vec<u8> {
    Parsed::new(raw).envelope()
}

/// A message FETCH renders several items of: parsed when the first item needs it, and
/// only once for all of them (BODY[] needs no parsing at all).
pub struct Parsed<'x> {
    raw: &'x [u8],
    message: OnceCell<Message<'x>>,
}

impl<'x> Parsed<'x> {
    /// The message in `raw`, not parsed yet.
    pub fn new(raw: &'x [u8]) -> Parsed<'x> {
        Parsed {
            raw,
            message: OnceCell::new(),
        }
    }

    fn message(&self) -> &Message<'x> {
        self.message.get_or_init(|| parse(self.raw))
    }

    /// The message as stored.
    pub fn raw(&self) -> &'x [u8] {
        self.raw
    }

    /// ENVELOPE, as [`envelope`] describes it.
    pub fn envelope(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_envelope(&mut out, self.message());
        out
    }

    /// BODYSTRUCTURE or BODY, as [`body_structure`] describes it.
    pub fn body_structure(&self, extensible: bool) -> Vec<u8> {
        let mut out = Vec::new();
        write_structure(&mut out, self.message(), extensible, 0);
        out
    }

    /// BODY[section], as [`section`] describes it: borrowed from the stored octets (or
    /// from an encapsulated message mail-parser decoded), built only for HEADER.FIELDS.
    pub fn section(&self, section: &Section) -> Cow<'_, [u8]> {
        if section.part.is_empty() && section.text.is_none() {
            return Cow::Borrowed(self.raw);
        }
        section_of(self.message(), section).unwrap_or_default()
    }

    /// What BINARY[part] decodes (RFC 3516 §4.2): the part's body as stored and its
    /// Content-Transfer-Encoding, or the whole message (no encoding) for an empty path;
    /// None when the part does not exist.
    pub(crate) fn encoded_part(&self, path: &[u32]) -> Option<(&[u8], Option<Vec<u8>>)> {
        if path.is_empty() {
            return Some((self.raw, None));
        }
        let node = resolve(self.message(), path)?;
        Some((node.body(), node.raw_value("Content-Transfer-Encoding")))
    }
}

/// A part declared `Content-Transfer-Encoding: binary`, as offsets into the message.
pub(crate) struct BinaryPart {
    /// The Content-Transfer-Encoding field, line break included.
    pub(crate) field: Range<usize>,
    /// The body.
    pub(crate) body: Range<usize>,
}

/// The parts of the message in `raw` (those of its own buffer, in order) declared binary,
/// with their offsets: what APPEND rewrites as base64.
pub(crate) fn binary_parts(raw: &[u8]) -> Vec<BinaryPart> {
    let message = parse(raw);
    let mut parts = Vec::new();
    for part in &message.parts {
        let field = part.headers.iter().rev().find(|field| {
            field
                .name
                .as_str()
                .eq_ignore_ascii_case("Content-Transfer-Encoding")
        });
        let Some(field) = field else { continue };
        let value = raw
            .get(field.offset_start as usize..field.offset_end as usize)
            .unwrap_or_default();
        let field = field.offset_field as usize..field.offset_end as usize;
        let body = part.offset_body as usize..part.offset_end as usize;
        if value.trim_ascii().eq_ignore_ascii_case(b"binary")
            && field.end <= body.start
            && body.end <= raw.len()
            && parts
                .last()
                .is_none_or(|last: &BinaryPart| last.body.end <= field.start)
        {
            parts.push(BinaryPart { field, body });
        }
    }
    parts
}

/// Writes the envelope of `message`.
fn write_envelope(out: &mut Vec<u8>, message: &Message<'_>) {
    let root = Node::root(message);
    let raw = |name: &str| root.and_then(|node| node.raw_value(name));
    let addresses = |name: &str| root.and_then(|node| address_field(node, name));
    let from = addresses("From");
    out.push(b'(');
    nstring(out, raw("Date").as_deref());
    out.push(b' ');
    nstring(out, raw("Subject").as_deref());
    for list in [
        from,
        addresses("Sender").or(from),
        addresses("Reply-To").or(from),
        addresses("To"),
        addresses("Cc"),
        addresses("Bcc"),
    ] {
        out.push(b' ');
        write_address_list(out, list);
    }
    out.push(b' ');
    nstring(out, raw("In-Reply-To").as_deref());
    out.push(b' ');
    nstring(out, raw("Message-ID").as_deref());
    out.push(b')');
}

/// The addresses of the first field called `name`, unless it is missing or names nobody
/// (RFC 3501 treats an empty Sender or Reply-To as absent).
fn address_field<'m, 'x>(node: Node<'m, 'x>, name: &str) -> Option<&'m Address<'x>> {
    let address = node.field(name)?.value.as_address()?;
    let named = match address {
        Address::List(list) => !list.is_empty(),
        Address::Group(groups) => groups
            .iter()
            .any(|group| group.name.is_some() || !group.addresses.is_empty()),
    };
    named.then_some(address)
}

/// Writes an address list, or NIL.
fn write_address_list(out: &mut Vec<u8>, address: Option<&Address<'_>>) {
    let Some(address) = address else {
        out.extend_from_slice(b"NIL");
        return;
    };
    out.push(b'(');
    match address {
        Address::List(list) => list.iter().for_each(|addr| write_address(out, addr)),
        Address::Group(groups) => groups.iter().for_each(|group| write_group(out, group)),
    }
    out.push(b')');
}

/// Writes the members of a group between its start and end markers; addresses outside
/// any group (mail-parser gives them a group without a name) are written as they are.
fn write_group(out: &mut Vec<u8>, group: &Group<'_>) {
    if let Some(name) = &group.name {
        out.extend_from_slice(b"(NIL NIL ");
        string(out, &phrase(name));
        out.extend_from_slice(b" NIL)");
    }
    group
        .addresses
        .iter()
        // In a named group, an entry without an address is a comment mail-parser read
        // as a name (`group: (comment) ;`): it names nobody, so the group stays empty.
        .filter(|addr| {
            group.name.is_none() || addr.address.as_deref().is_some_and(|a| !a.is_empty())
        })
        .for_each(|addr| write_address(out, addr));
    if group.name.is_some() {
        out.extend_from_slice(b"(NIL NIL NIL NIL)");
    }
}

/// Writes one `(name adl mailbox host)`. The host is never NIL, which would mark a group:
/// an address without `@` gets an empty host.
fn write_address(out: &mut Vec<u8>, addr: &Addr<'_>) {
    let (route, mailbox, host) = split_address(addr.address.as_deref().unwrap_or_default());
    let name = addr.name.as_deref().filter(|name| !name.is_empty());
    out.push(b'(');
    nstring(out, name.map(phrase).as_deref());
    out.push(b' ');
    nstring(out, route.map(str::as_bytes));
    out.push(b' ');
    string(out, mailbox.as_bytes());
    out.push(b' ');
    string(out, host.as_bytes());
    out.push(b')');
}

/// Splits `@route:local@host` into its source route (if any), local part and domain.
fn split_address(address: &str) -> (Option<&str>, &str, &str) {
    let (route, rest) = match address.split_once(':') {
        Some((route, rest)) if route.starts_with('@') => (Some(route), rest),
        _ => (None, address),
    };
    let (mailbox, host) = rest.rsplit_once('@').unwrap_or((rest, ""));
    (route, mailbox, host)
}

/// A display name as the envelope carries it. mail-parser hands names over decoded, and
/// IMAP wants them as they appear in the header, so names outside ASCII are encoded again
/// as RFC 2047 words; ASCII names go as they are.
fn phrase(name: &str) -> Vec<u8> {
    if name.is_ascii() {
        return name.as_bytes().to_vec();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in name.chars() {
        if chunk.len() + c.len_utf8() > ENCODED_WORD_OCTETS {
            words.push(encoded_word(&chunk));
            chunk.clear();
        }
        chunk.push(c);
    }
    words.push(encoded_word(&chunk));
    words.join(" ").into_bytes()
}

/// One `=?utf-8?b?...?=` word.
fn encoded_word(text: &str) -> String {
    format!("=?utf-8?b?{}?=", BASE64.encode(text))
}

/// BODYSTRUCTURE (`extensible`) or BODY of the message in `raw`, outer parentheses
/// included: what clients read to fetch only the parts they show. Written as Dovecot does:
/// text/plain with charset us-ascii and 7bit when nothing else is said, sizes in stored
/// octets, line counts for text/* and message/rfc822, and parameters in header order.
pub fn body_structure(raw: &[u8], extensible: bool) -> Vec<u8> {
    Parsed::new(raw).body_structure(extensible)
}

/// How a part is described.
enum Kind<'m, 'x> {
    /// multipart/*: its sub-parts, written one after the other, then the subtype.
    Multipart(&'m str),
    /// message/rfc822 or message/global: the encapsulated message's envelope and structure.
    Message(&'m str, Option<&'m Message<'x>>),
    /// Any other type and subtype.
    Single(&'m str, &'m str),
}

/// What `node` is, from its Content-Type. A part without a usable one is text/plain,
/// except that an encapsulated message (as multipart/digest implies) stays message/rfc822;
/// a multipart that names no subtype is mixed (RFC 2046 §5.1.3); below the depth limit
/// everything is plain text.
fn kind<'m, 'x>(node: Node<'m, 'x>, depth: usize) -> Kind<'m, 'x> {
    if depth >= MAX_DEPTH {
        return Kind::Single("text", "plain");
    }
    let content_type = node.content_type();
    let media_type = content_type.map_or("", |ct| ct.c_type.as_ref());
    let is = |name: &str| media_type.eq_ignore_ascii_case(name);
    match content_type.and_then(|ct| ct.c_subtype.as_deref()) {
        subtype if is("multipart") => Kind::Multipart(subtype.unwrap_or("mixed")),
        Some(subtype)
            if is("message")
                && (subtype.eq_ignore_ascii_case("rfc822")
                    || subtype.eq_ignore_ascii_case("global")) =>
        {
            Kind::Message(subtype, node.nested())
        }
        Some(subtype) => Kind::Single(media_type, subtype),
        None if node.nested().is_some() => Kind::Message("rfc822", node.nested()),
        None => Kind::Single("text", "plain"),
    }
}

/// Writes the structure of `message`'s root part.
fn write_structure(out: &mut Vec<u8>, message: &Message<'_>, extensible: bool, depth: usize) {
    match Node::root(message) {
        Some(root) => write_part(out, root, extensible, depth),
        None => write_structure(out, &headerless(b""), extensible, depth),
    }
}

/// Writes one part, parenthesised.
fn write_part(out: &mut Vec<u8>, node: Node<'_, '_>, extensible: bool, depth: usize) {
    out.push(b'(');
    match kind(node, depth) {
        Kind::Multipart(subtype) => write_multipart(out, node, subtype, extensible, depth),
        Kind::Message(subtype, nested) => {
            write_fields(out, node, "message", subtype, false);
            write_encapsulated(out, node, nested, extensible, depth);
            write_single_extension(out, node, extensible);
        }
        Kind::Single(media_type, subtype) => {
            let text = media_type.eq_ignore_ascii_case("text");
            write_fields(out, node, media_type, subtype, text);
            if text {
                write_lines(out, node);
            }
            write_single_extension(out, node, extensible);
        }
    }
    out.push(b')');
}

/// Writes a multipart's sub-parts, subtype and, for BODYSTRUCTURE, its parameters,
/// disposition, language and location. A multipart without parts (not allowed, but
/// found) is given one empty text part, as Dovecot does, so the answer stays parseable.
fn write_multipart(
    out: &mut Vec<u8>,
    node: Node<'_, '_>,
    subtype: &str,
    extensible: bool,
    depth: usize,
) {
    let children = node.children();
    if children.is_empty() {
        write_structure(out, &headerless(b""), extensible, depth + 1);
    }
    for child in children {
        write_part(out, child, extensible, depth + 1);
    }
    out.push(b' ');
    string(out, subtype.as_bytes());
    if extensible {
        out.push(b' ');
        write_params(out, node, false);
        write_extension_tail(out, node);
    }
}

/// Writes the body fields every non-multipart part has: type, subtype, parameters, id,
/// description, transfer encoding and size. Text parts get a default charset.
fn write_fields(
    out: &mut Vec<u8>,
    node: Node<'_, '_>,
    media_type: &str,
    subtype: &str,
    text: bool,
) {
    string(out, media_type.as_bytes());
    out.push(b' ');
    string(out, subtype.as_bytes());
    out.push(b' ');
    write_params(out, node, text);
    out.push(b' ');
    nstring(out, node.raw_value("Content-ID").as_deref());
    out.push(b' ');
    nstring(out, node.raw_value("Content-Description").as_deref());
    out.push(b' ');
    string(out, &transfer_encoding(node));
    out.push(b' ');
    out.extend_from_slice(node.body().len().to_string().as_bytes());
}

/// The Content-Transfer-Encoding as written, or `7bit` when it is missing or not a token.
fn transfer_encoding(node: Node<'_, '_>) -> Vec<u8> {
    node.raw_value("Content-Transfer-Encoding")
        .filter(|value| {
            !value.is_empty()
                && value
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
        })
        .unwrap_or_else(|| b"7bit".to_vec())
}

/// Writes ` lines`: the number of lines of the body as stored.
fn write_lines(out: &mut Vec<u8>, node: Node<'_, '_>) {
    let lines = node.body().iter().filter(|&&b| b == b'\n').count();
    out.push(b' ');
    out.extend_from_slice(lines.to_string().as_bytes());
}

/// Writes what follows the body fields of a message/rfc822 part: the encapsulated
/// message's envelope and structure, and the part's line count. A message mail-parser could
/// not read is described as one with no header and the part's body as text.
fn write_encapsulated(
    out: &mut Vec<u8>,
    node: Node<'_, '_>,
    nested: Option<&Message<'_>>,
    extensible: bool,
    depth: usize,
) {
    let unreadable;
    let nested = match nested {
        Some(nested) => nested,
        None => {
            unreadable = headerless(node.body());
            &unreadable
        }
    };
    out.push(b' ');
    write_envelope(out, nested);
    out.push(b' ');
    write_structure(out, nested, extensible, depth + 1);
    write_lines(out, node);
}

/// Writes the extension data of a non-multipart part for BODYSTRUCTURE: MD5, then
/// disposition, language and location.
fn write_single_extension(out: &mut Vec<u8>, node: Node<'_, '_>, extensible: bool) {
    if extensible {
        out.push(b' ');
        nstring(out, node.raw_value("Content-MD5").as_deref());
        write_extension_tail(out, node);
    }
}

/// Writes ` disposition language location`, the extension data all parts share.
fn write_extension_tail(out: &mut Vec<u8>, node: Node<'_, '_>) {
    out.push(b' ');
    write_disposition(out, node);
    out.push(b' ');
    write_language(out, node);
    out.push(b' ');
    nstring(out, node.raw_value("Content-Location").as_deref());
}

/// Writes the Content-Type parameters as `("name" "value" ...)`, or NIL when there are
/// none; with `default_charset`, a missing charset is given as us-ascii.
fn write_params(out: &mut Vec<u8>, node: Node<'_, '_>, default_charset: bool) {
    let mut params = attributes(node.content_type());
    if default_charset
        && !params
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("charset"))
    {
        params.push(("charset", DEFAULT_CHARSET));
    }
    write_pairs(out, &params);
}

/// The parameters of a Content-Type or Content-Disposition, in header order.
fn attributes<'m>(value: Option<&'m ContentType<'_>>) -> Vec<(&'m str, &'m str)> {
    value
        .and_then(ContentType::attributes)
        .unwrap_or_default()
        .iter()
        .map(|attr| (attr.name.as_ref(), attr.value.as_ref()))
        .collect()
}

/// Writes name/value pairs as a parenthesised list, or NIL when there are none.
fn write_pairs(out: &mut Vec<u8>, pairs: &[(&str, &str)]) {
    let strings: Vec<&str> = pairs
        .iter()
        .flat_map(|&(name, value)| [name, value])
        .collect();
    write_string_list(out, &strings);
}

/// Writes strings as a parenthesised list, or NIL when there are none.
fn write_string_list(out: &mut Vec<u8>, strings: &[&str]) {
    if strings.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, value) in strings.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, value.as_bytes());
    }
    out.push(b')');
}

/// Writes `("disposition" (params))` from Content-Disposition, or NIL.
fn write_disposition(out: &mut Vec<u8>, node: Node<'_, '_>) {
    let Some(disposition) = node
        .field("Content-Disposition")
        .and_then(|field| field.value.as_content_type())
    else {
        out.extend_from_slice(b"NIL");
        return;
    };
    out.push(b'(');
    string(out, disposition.c_type.as_bytes());
    out.push(b' ');
    write_pairs(out, &attributes(Some(disposition)));
    out.push(b')');
}

/// Writes the Content-Language tags as a list, or NIL.
fn write_language(out: &mut Vec<u8>, node: Node<'_, '_>) {
    let tags: Vec<&str> = match node.field("Content-Language").map(|field| &field.value) {
        Some(HeaderValue::Text(tag)) => vec![tag.as_ref()],
        Some(HeaderValue::TextList(tags)) => tags.iter().map(|tag| tag.as_ref()).collect(),
        _ => Vec::new(),
    };
    write_string_list(out, &tags);
}

/// The octets of BODY[section] before any partial range is applied (RFC 3501 §6.4.5):
/// the whole message; HEADER, HEADER.FIELDS (.NOT) or TEXT of the message or of an
/// encapsulated message/rfc822 part; a numbered part's body; or its MIME header. Headers
/// are returned as stored (continuation lines included) with the blank line after them.
/// A part that does not exist, or a HEADER/TEXT of a part that is no message, is empty.
pub fn section(raw: &[u8], section: &Section) -> Vec<u8> {
    Parsed::new(raw).section(section).into_owned()
}

/// The octets of `section` in `message`, None when it names nothing. The whole message
/// (`BODY[]`) is left to [`section`], which needs no parsing for it.
fn section_of<'m>(message: &'m Message<'_>, section: &Section) -> Option<Cow<'m, [u8]>> {
    if section.part.is_empty() {
        return message_section(message, section.text.as_ref()?, whole_buffer(message));
    }
    let node = resolve(message, &section.part)?;
    match &section.text {
        None => Some(Cow::Borrowed(node.body())),
        Some(SectionText::Mime) => Some(Cow::Borrowed(node.header())),
        Some(text) => {
            let nested = node.nested()?;
            // An encapsulated message read from the outer buffer ends where its part
            // does; one mail-parser decoded has a buffer of its own.
            let end = if std::ptr::eq(nested.raw_message.as_ptr(), message.raw_message.as_ptr()) {
                node.part.offset_end
            } else {
                whole_buffer(nested)
            };
            message_section(nested, text, end)
        }
    }
}

/// The end of `message`'s buffer, as an offset.
fn whole_buffer(message: &Message<'_>) -> u32 {
    u32::try_from(message.raw_message.len()).unwrap_or(u32::MAX)
}

/// HEADER, HEADER.FIELDS (.NOT) or TEXT of `message`, whose octets end at `end`; MIME
/// names nothing at this level. TEXT runs to `end` rather than to the end of the root
/// part: mail-parser ends a multipart body at its closing boundary, but the epilogue
/// after it is text of the message too (RFC 3501 §6.4.5, RFC 2046 §5.1.1).
fn message_section<'m>(
    message: &'m Message<'_>,
    text: &SectionText,
    end: u32,
) -> Option<Cow<'m, [u8]>> {
    let root = Node::root(message)?;
    match text {
        SectionText::Header => Some(Cow::Borrowed(root.header())),
        SectionText::HeaderFields { not, fields } => {
            Some(Cow::Owned(header_fields(root, fields, *not)))
        }
        SectionText::Text => Some(Cow::Borrowed(root.slice(root.part.offset_body, end))),
        SectionText::Mime => None,
    }
}

/// The header fields of `node` that are listed in `names` (or, with `not`, that are not),
/// as stored and in order, followed by the blank line.
pub(crate) fn header_fields(node: Node<'_, '_>, names: &[impl AsRef<str>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for field in node.fields() {
        let listed = names
            .iter()
            .any(|name| name.as_ref().eq_ignore_ascii_case(field.name.as_str()));
        if listed != not {
            let stored = node.slice(field.offset_field, field.offset_end);
            out.extend_from_slice(stored);
            if !stored.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The calendar date of `message`'s Date: header, in the zone the header gives; what
/// SENTBEFORE, SENTON and SENTSINCE compare. None when the field is missing or not a
/// valid date.
pub(crate) fn header_date(message: &Message<'_>) -> Option<Date> {
    let date = Node::root(message)?.field("Date")?.value.as_datetime()?;
    date.is_valid().then_some(Date {
        year: date.year,
        month: date.month,
        day: date.day,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeply_nested_messages_do_not_exhaust_the_stack() {
        let mut raw = b"Subject: deep\r\n".to_vec();
        for _ in 0..50_000 {
            raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"Subject: inner\r\n\r\nbody\r\n");
        let structure = body_structure(&raw, true);
        assert!(
            structure.starts_with(b"(\"message\" \"rfc822\""),
            "{}",
            String::from_utf8_lossy(&structure[..80.min(structure.len())])
        );
        assert!(String::from_utf8_lossy(&envelope(&raw)).contains("\"deep\""));
    }

    /// A test message written with `\n` line ends, stored as mail is: with CRLF.
    fn crlf(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("test output is UTF-8")
    }

    fn envelope_of(message: &str) -> String {
        text(envelope(&crlf(message)))
    }

    fn structure_of(message: &str, extensible: bool) -> String {
        text(body_structure(&crlf(message), extensible))
    }

    fn section_of_text(message: &[u8], part: &[u32], text: Option<SectionText>) -> String {
        let spec = Section {
            part: part.to_vec(),
            text,
        };
        String::from_utf8_lossy(&section(message, &spec)).into_owned()
    }

    fn fields(not: bool, names: &[&str]) -> Option<SectionText> {
        Some(SectionText::HeaderFields {
            not,
            fields: names.iter().map(|name| name.to_string()).collect(),
        })
    }

    const PLAIN: &str = "From: user@domain.org\n\
        Date: Sat, 24 Mar 2017 23:00:00 +0200\n\
        Mime-Version: 1.0\n\
        Content-Type: text/plain; charset=us-ascii\n\
        \n\
        body\n";

    /// A multipart/mixed with a nested alternative and an attached message.
    const NESTED: &str = "From: a@example.org\n\
        Subject: nested\n\
        Content-Type: multipart/mixed; boundary=\"outer\"\n\
        \n\
        preamble\n\
        --outer\n\
        Content-Type: text/plain\n\
        \n\
        part one\n\
        --outer\n\
        Content-Type: multipart/alternative; boundary=inner\n\
        \n\
        --inner\n\
        Content-Type: text/plain\n\
        \n\
        inner plain\n\
        --inner\n\
        Content-Type: text/html\n\
        \n\
        <b>inner html</b>\n\
        --inner--\n\
        \n\
        --outer\n\
        Content-Type: message/rfc822\n\
        \n\
        From: b@example.org\n\
        Subject: attached\n\
        X-Folded: a\n \
        b\n\
        \n\
        attached body\n\
        --outer--\n";

    #[test]
    fn envelope_of_a_complete_header() {
        let message = "Date: Sat, 24 Mar 2017 23:00:00 +0200\n\
            Subject: Hello\n \
            folded\n\
            From: Alice <alice@example.org>\n\
            Sender: bob@example.org\n\
            Reply-To: replies@example.org\n\
            To: carol@example.org, Dave <dave@example.net>\n\
            Cc: erin@example.org\n\
            Bcc: frank@example.org\n\
            In-Reply-To: <parent@example.org>\n\
            Message-ID: <id@example.org>\n\
            \n\
            body\n";
        assert_eq!(
            envelope_of(message),
            "(\"Sat, 24 Mar 2017 23:00:00 +0200\" \"Hello folded\" \
             ((\"Alice\" NIL \"alice\" \"example.org\")) \
             ((NIL NIL \"bob\" \"example.org\")) \
             ((NIL NIL \"replies\" \"example.org\")) \
             ((NIL NIL \"carol\" \"example.org\")(\"Dave\" NIL \"dave\" \"example.net\")) \
             ((NIL NIL \"erin\" \"example.org\")) \
             ((NIL NIL \"frank\" \"example.org\")) \
             \"<parent@example.org>\" \"<id@example.org>\")"
        );
    }

    #[test]
    fn envelope_defaults_sender_and_reply_to_and_leaves_missing_fields_nil() {
        assert_eq!(
            envelope_of("From: user@domain.org\nReply-To:\n\nbody\n"),
            "(NIL NIL ((NIL NIL \"user\" \"domain.org\")) ((NIL NIL \"user\" \"domain.org\")) \
             ((NIL NIL \"user\" \"domain.org\")) NIL NIL NIL NIL NIL)"
        );
        assert_eq!(
            envelope_of("Subject: only\n\nbody\n"),
            "(NIL \"only\" NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
        let nothing = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
        assert_eq!(text(envelope(b"")), nothing);
        assert_eq!(text(envelope(b"no header at all")), nothing);
    }

    #[test]
    fn envelope_writes_groups_with_markers() {
        let message = "From: a@example.org\n\
            To: Friends: b@example.org, \"Carol\" <c@example.org>;, d@example.org\n\
            Cc: undisclosed-recipients:;\n\
            \n";
        let envelope = envelope_of(message);
        assert!(
            envelope.ends_with(
                " ((NIL NIL \"Friends\" NIL)(NIL NIL \"b\" \"example.org\")\
                 (\"Carol\" NIL \"c\" \"example.org\")(NIL NIL NIL NIL)\
                 (NIL NIL \"d\" \"example.org\")) \
                 ((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)"
            ),
            "{envelope}"
        );
    }

    #[test]
    fn a_comment_in_an_empty_group_is_no_address() {
        let envelope = envelope_of("From: a@example.org\nCc: group:;, group2: (foo) ;\n\n");
        assert!(
            envelope.ends_with(
                " ((NIL NIL \"group\" NIL)(NIL NIL NIL NIL)\
                 (NIL NIL \"group2\" NIL)(NIL NIL NIL NIL)) NIL NIL NIL)"
            ),
            "{envelope}"
        );
    }

    #[test]
    fn envelope_keeps_encoded_words_and_escapes_quotes() {
        let message = "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Bern\n\
            From: \"John \\\"Q\\\" Public\" <john@example.org>\n\
            To: =?iso-8859-1?q?Andr=E9?= Pirard <andre@example.be>\n\
            Cc: <@relay.example:route@example.org>, nodomain\n\
            \n";
        assert_eq!(
            envelope_of(message),
            "(NIL \"=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus Bern\" \
             ((\"John \\\"Q\\\" Public\" NIL \"john\" \"example.org\")) \
             ((\"John \\\"Q\\\" Public\" NIL \"john\" \"example.org\")) \
             ((\"John \\\"Q\\\" Public\" NIL \"john\" \"example.org\")) \
             ((\"=?utf-8?b?QW5kcsOpIFBpcmFyZA==?=\" NIL \"andre\" \"example.be\")) \
             ((NIL \"@relay.example\" \"route\" \"example.org\")(\"nodomain\" NIL \"\" \"\")) \
             NIL NIL NIL)"
        );
    }

    #[test]
    fn long_names_are_split_into_several_encoded_words() {
        let name = "Ä".repeat(40);
        let encoded = text(phrase(&name));
        let words: Vec<&str> = encoded.split(' ').collect();
        assert_eq!(words.len(), 2);
        assert!(words.iter().all(|word| word.len() <= 75), "{encoded}");
        assert!(words.iter().all(|word| word.starts_with("=?utf-8?b?")));
    }

    #[test]
    fn raw_8bit_subjects_go_as_literals() {
        let raw = "Subject: Grüße\r\n\r\n".as_bytes();
        assert_eq!(
            text(envelope(raw)),
            "(NIL {7}\r\nGrüße NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
    }

    #[test]
    fn structure_of_plain_text_as_dovecot_writes_it() {
        assert_eq!(
            structure_of(PLAIN, true),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)"
        );
        assert_eq!(
            structure_of(PLAIN, false),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)"
        );
        assert_eq!(
            structure_of("From: a@b.example\n\nline one\nline two\n", true),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 20 2 NIL NIL NIL NIL)"
        );
        assert_eq!(
            text(body_structure(b"", false)),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
        );
    }

    #[test]
    fn structure_of_multipart_alternative() {
        let message = "From: a@example.org\n\
            Content-Type: multipart/alternative; boundary=\"alt\"\n\
            \n\
            --alt\n\
            Content-Type: text/plain; charset=utf-8\n\
            Content-Transfer-Encoding: quoted-printable\n\
            \n\
            Hello\n\
            \n\
            --alt\n\
            Content-Type: text/html; charset=utf-8\n\
            \n\
            <p>Hello</p>\n\
            --alt--\n";
        assert_eq!(
            structure_of(message, true),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 7 1 \
             NIL NIL NIL NIL)(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 0 \
             NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"alt\") NIL NIL NIL)"
        );
        assert_eq!(
            structure_of(message, false),
            "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 7 1)\
             (\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 0) \"alternative\")"
        );
    }

    #[test]
    fn structure_of_mixed_with_attachment() {
        let message = "From: a@example.org\n\
            Content-Type: multipart/mixed; boundary=\"foo bar\"\n\
            \n\
            --foo bar\n\
            Content-Type: text/plain; charset=us-ascii; format=flowed\n\
            Content-ID: <text@example.org>\n\
            Content-Description: The text\n\
            Content-Language: en, de\n\
            \n\
            See attached.\n\
            \n\
            --foo bar\n\
            Content-Type: application/pdf; name=\"report.pdf\"\n\
            Content-Transfer-Encoding: base64\n\
            Content-Disposition: attachment; filename=\"report.pdf\"\n\
            Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n\
            Content-Location: http://example.org/report.pdf\n\
            \n\
            JVBERi0xLjQK\n\
            --foo bar--\n";
        assert_eq!(
            structure_of(message, true),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" \"flowed\") \
             \"<text@example.org>\" \"The text\" \"7bit\" 15 1 NIL NIL (\"en\" \"de\") NIL)\
             (\"application\" \"pdf\" (\"name\" \"report.pdf\") NIL NIL \"base64\" 12 \
             \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"attachment\" (\"filename\" \"report.pdf\")) NIL \
             \"http://example.org/report.pdf\") \"mixed\" (\"boundary\" \"foo bar\") NIL NIL NIL)"
        );
        assert_eq!(
            structure_of(message, false),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\" \"format\" \"flowed\") \
             \"<text@example.org>\" \"The text\" \"7bit\" 15 1)\
             (\"application\" \"pdf\" (\"name\" \"report.pdf\") NIL NIL \"base64\" 12) \"mixed\")"
        );
    }

    #[test]
    fn structure_of_an_attached_message() {
        let message = "From: user@domain.org\n\
            Content-Type: multipart/mixed; boundary=\"foo bar\"\n\
            \n\
            --foo bar\n\
            Content-Type: text/plain; charset=us-ascii\n\
            \n\
            See attached...\n\
            \n\
            --foo bar\n\
            Content-Type: message/rfc822\n\
            Content-Description: Forwarded\n\
            \n\
            From: user@domain.org\n\
            Date: Sat, 24 Mar 2017 23:00:00 +0200\n\
            Mime-Version: 1.0\n\
            Content-Type: text/plain; charset=us-ascii\n\
            \n\
            body\n\
            \n\
            --foo bar--\n";
        let envelope = "(\"Sat, 24 Mar 2017 23:00:00 +0200\" NIL \
            ((NIL NIL \"user\" \"domain.org\")) ((NIL NIL \"user\" \"domain.org\")) \
            ((NIL NIL \"user\" \"domain.org\")) NIL NIL NIL NIL NIL)";
        assert_eq!(
            structure_of(message, true),
            format!(
                "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 17 1 \
                 NIL NIL NIL NIL)(\"message\" \"rfc822\" NIL NIL \"Forwarded\" \"7bit\" 133 \
                 {envelope} (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 \
                 NIL NIL NIL NIL) 6 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"foo bar\") \
                 NIL NIL NIL)"
            )
        );
        assert_eq!(
            structure_of(message, false),
            format!(
                "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 17 1)\
                 (\"message\" \"rfc822\" NIL NIL \"Forwarded\" \"7bit\" 133 {envelope} \
                 (\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) 6) \
                 \"mixed\")"
            )
        );
    }

    #[test]
    fn structure_of_broken_multiparts_stays_parseable() {
        assert_eq!(
            structure_of("Content-Type: multipart/mixed; boundary=\"foo\"\n\n", true),
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 \
             NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"foo\") NIL NIL NIL)"
        );
        assert_eq!(
            structure_of(
                "Content-Type: text/plain\nContent-Transfer-Encoding: ?bad\n\nx",
                false
            ),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"
        );
    }

    #[test]
    fn deep_nesting_is_cut_off_at_the_depth_limit() {
        let mut message = String::from("From: a@example.org\n");
        for level in 0..MAX_DEPTH + 20 {
            message.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=b{level}\n\n--b{level}\n"
            ));
        }
        message.push_str("\nleaf\n");
        let structure = structure_of(&message, true);
        assert_eq!(structure.matches("\"mixed\"").count(), MAX_DEPTH);
        assert!(balanced(structure.as_bytes()));
    }

    #[test]
    fn whole_message_header_and_text() {
        let raw = crlf(NESTED);
        assert_eq!(section_of_text(&raw, &[], None).as_bytes(), raw.as_slice());
        assert_eq!(
            section_of_text(&raw, &[], Some(SectionText::Header)),
            "From: a@example.org\r\nSubject: nested\r\n\
             Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
        );
        let body = section_of_text(&raw, &[], Some(SectionText::Text));
        assert!(body.starts_with("preamble\r\n--outer\r\n"), "{body}");
        assert!(body.ends_with("attached body\r\n--outer--\r\n"), "{body}");
    }

    #[test]
    fn header_fields_and_header_fields_not() {
        let raw = crlf(NESTED);
        assert_eq!(
            section_of_text(&raw, &[], fields(false, &["FROM", "SUBJECT"])),
            "From: a@example.org\r\nSubject: nested\r\n\r\n"
        );
        assert_eq!(
            section_of_text(&raw, &[], fields(true, &["SUBJECT"])),
            "From: a@example.org\r\nContent-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"
        );
        assert_eq!(
            section_of_text(&raw, &[], fields(false, &["X-MISSING"])),
            "\r\n"
        );
        assert_eq!(
            section_of_text(&raw, &[3], fields(false, &["X-FOLDED"])),
            "X-Folded: a\r\n b\r\n\r\n"
        );
    }

    #[test]
    fn numbered_parts_mime_headers_and_nested_parts() {
        let raw = crlf(NESTED);
        assert_eq!(section_of_text(&raw, &[1], None), "part one");
        assert_eq!(
            section_of_text(&raw, &[1], Some(SectionText::Mime)),
            "Content-Type: text/plain\r\n\r\n"
        );
        assert_eq!(section_of_text(&raw, &[2, 1], None), "inner plain");
        assert_eq!(section_of_text(&raw, &[2, 2], None), "<b>inner html</b>");
        assert_eq!(
            section_of_text(&raw, &[2, 2], Some(SectionText::Mime)),
            "Content-Type: text/html\r\n\r\n"
        );
        let alternative = section_of_text(&raw, &[2], None);
        assert!(alternative.starts_with("--inner\r\n"), "{alternative}");
        assert!(alternative.ends_with("--inner--\r\n"), "{alternative}");
    }

    #[test]
    fn the_text_of_an_attached_multipart_keeps_its_epilogue() {
        let raw = crlf(
            "From: a@example.org\n\
             Content-Type: message/rfc822\n\
             \n\
             From: b@example.org\n\
             Content-Type: multipart/digest; boundary=\"foo\"\n\
             \n\
             prologue\n\
             --foo\n\
             \n\
             From: m1@example.com\n\
             \n\
             m1 body\n\
             --foo--\n\
             \n\
             epilogue\n",
        );
        let text = "prologue\r\n--foo\r\n\r\nFrom: m1@example.com\r\n\r\nm1 body\r\n\
                    --foo--\r\n\r\nepilogue\r\n";
        assert_eq!(section_of_text(&raw, &[1], Some(SectionText::Text)), text);
        let whole = section_of_text(&raw, &[], Some(SectionText::Text));
        assert!(whole.ends_with(text), "{whole}");
    }

    #[test]
    fn attached_message_sections() {
        let raw = crlf(NESTED);
        let attached = "From: b@example.org\r\nSubject: attached\r\nX-Folded: a\r\n b\r\n\r\n";
        assert_eq!(
            section_of_text(&raw, &[3], None),
            format!("{attached}attached body")
        );
        assert_eq!(
            section_of_text(&raw, &[3], Some(SectionText::Header)),
            attached
        );
        assert_eq!(
            section_of_text(&raw, &[3], Some(SectionText::Text)),
            "attached body"
        );
        assert_eq!(section_of_text(&raw, &[3, 1], None), "attached body");
    }

    #[test]
    fn a_single_part_message_has_only_part_one() {
        let raw = crlf(PLAIN);
        assert_eq!(section_of_text(&raw, &[1], None), "body\r\n");
        assert_eq!(
            section_of_text(&raw, &[1], Some(SectionText::Mime)),
            section_of_text(&raw, &[], Some(SectionText::Header))
        );
        assert_eq!(section_of_text(&raw, &[2], None), "");
        assert_eq!(section_of_text(&raw, &[1, 1], None), "");
    }

    #[test]
    fn nonexistent_parts_are_empty() {
        let raw = crlf(NESTED);
        for path in [&[0][..], &[4], &[1, 1], &[2, 3], &[2, 1, 1], &[3, 2]] {
            assert_eq!(section_of_text(&raw, path, None), "", "{path:?}");
        }
        assert_eq!(
            section_of_text(&raw, &[1], Some(SectionText::Header)),
            "",
            "a text part has no message header"
        );
        assert_eq!(section_of_text(&raw, &[], Some(SectionText::Mime)), "");
    }

    #[test]
    fn bare_line_feeds_work_too() {
        let raw = b"From: a@example.org\nSubject: lf\n\nbody\n";
        assert_eq!(
            section_of_text(raw, &[], fields(false, &["SUBJECT"])),
            "Subject: lf\n\r\n"
        );
        assert_eq!(section_of_text(raw, &[], Some(SectionText::Text)), "body\n");
        assert_eq!(
            text(body_structure(raw, false)),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1)"
        );
    }

    #[test]
    fn sent_date_is_the_header_calendar_date() {
        let date = |header: &str| header_date(&parse(format!("Date: {header}\r\n\r\n").as_bytes()));
        assert_eq!(
            date("Mon, 31 Dec 2018 23:30:00 -0500"),
            Some(Date {
                year: 2018,
                month: 12,
                day: 31
            })
        );
        assert_eq!(date("not a date"), None);
        assert_eq!(header_date(&parse(b"Subject: no date\r\n\r\n")), None);
    }

    /// True if the parentheses outside quoted strings and literals balance.
    fn balanced(structure: &[u8]) -> bool {
        let mut depth = 0i64;
        let mut i = 0;
        while let Some(&b) = structure.get(i) {
            match b {
                b'"' => i = skip_quoted(structure, i),
                b'{' => i = skip_literal(structure, i),
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return false;
            }
            i += 1;
        }
        depth == 0
    }

    /// The index of the quote closing the quoted string that starts at `start`.
    fn skip_quoted(bytes: &[u8], start: usize) -> usize {
        let mut i = start + 1;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'\\' => i += 2,
                b'"' => return i,
                _ => i += 1,
            }
        }
        i
    }

    /// The index of the last octet of the literal that starts at `start`.
    fn skip_literal(bytes: &[u8], start: usize) -> usize {
        let rest = bytes.get(start + 1..).unwrap_or_default();
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let length: usize = String::from_utf8_lossy(&rest[..digits])
            .parse()
            .unwrap_or(0);
        start + 1 + digits + 3 + length - 1
    }

    #[test]
    fn corpus_never_panics_and_structures_balance() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mime");
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).expect("tests/data/mime exists") {
            let path = entry.expect("readable directory").path();
            if path.extension().is_none_or(|ext| ext != "eml") {
                continue;
            }
            let raw = std::fs::read(&path).expect("readable file");
            for raw in [raw.clone(), crlf(&String::from_utf8_lossy(&raw))] {
                check_everything(&raw, &path);
            }
            files += 1;
        }
        assert!(files >= 10, "only {files} corpus files");
    }

    /// Computes every FETCH item of `raw`, over every part it has.
    fn check_everything(raw: &[u8], path: &std::path::Path) {
        let envelope = envelope(raw);
        assert!(
            balanced(&envelope),
            "{path:?}: {}",
            String::from_utf8_lossy(&envelope)
        );
        for extensible in [false, true] {
            let structure = body_structure(raw, extensible);
            assert!(
                balanced(&structure),
                "{path:?}: {}",
                String::from_utf8_lossy(&structure)
            );
        }
        let _ = header_date(&parse(raw));
        for path in part_paths(&parse(raw)) {
            for text in [
                None,
                Some(SectionText::Mime),
                Some(SectionText::Header),
                Some(SectionText::Text),
                fields(false, &["FROM", "CONTENT-TYPE"]),
                fields(true, &["FROM"]),
            ] {
                let _ = section(
                    raw,
                    &Section {
                        part: path.clone(),
                        text,
                    },
                );
            }
        }
    }

    /// Every part number of `message`, plus a few that do not exist.
    fn part_paths(message: &Message<'_>) -> Vec<Vec<u32>> {
        let mut paths = vec![vec![], vec![0], vec![99]];
        let mut pending = vec![vec![1]];
        while let Some(path) = pending.pop() {
            if resolve(message, &path).is_none() || path.len() > 8 {
                continue;
            }
            let mut next = path.clone();
            if let Some(last) = next.last_mut() {
                *last += 1;
            }
            let mut deeper = path.clone();
            deeper.push(1);
            pending.extend([next, deeper]);
            paths.push(path);
        }
        paths
    }
}
