//! What the vacation extension can decide from the message alone (RFC 5230 §4.5,
//! §4.6, §5): whom not to answer. "Once per sender per period" needs records across
//! deliveries and is the caller's, keyed by the handle built here.

use crate::address::{self, AddressPart, Mailbox};
use crate::message::Message;

/// The header fields whose addresses count as "sent to the user" (RFC 5230 §4.5).
const RECIPIENT_FIELDS: [&str; 5] = ["to", "cc", "bcc", "resent-to", "resent-cc"];

/// Why no reply goes out, or `None` when one may.
pub fn refusal(message: &Message<'_>, sender: &str, own: &[String]) -> Option<&'static str> {
    let sender = sender.trim().trim_start_matches('<').trim_end_matches('>');
    if sender.is_empty() {
        return Some("the sender is the null reverse-path");
    }
    // RFC 5230 §5 and RFC 3834 §2: auto-submitted mail gets no automatic answer.
    if message.values("auto-submitted").iter().any(|v| {
        !v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("no")
    }) {
        return Some("the message is auto-submitted");
    }
    if message
        .values("precedence")
        .iter()
        .any(|v| matches!(v.to_ascii_lowercase().as_str(), "bulk" | "list" | "junk"))
    {
        return Some("the message is bulk or list mail");
    }
    // RFC 2369 and RFC 2919 list fields mark list mail (RFC 5230 §4.6).
    if [
        "list-id",
        "list-help",
        "list-subscribe",
        "list-unsubscribe",
        "list-post",
        "list-owner",
        "list-archive",
    ]
    .iter()
    .any(|f| message.has(f))
    {
        return Some("the message came through a mailing list");
    }
    let local = Mailbox::from_spec(sender).local.to_ascii_lowercase();
    // RFC 5230 §4.6: addresses of list software and mail systems.
    if local == "mailer-daemon"
        || local == "listserv"
        || local == "majordomo"
        || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.starts_with("postmaster")
    {
        return Some("the sender is a list or mail system address");
    }
    if own.iter().any(|o| same_address(o, sender)) {
        return Some("the sender is the user");
    }
    // RFC 5230 §4.5: only mail addressed to the user (or one of :addresses) is answered.
    let addressed = RECIPIENT_FIELDS
        .iter()
        .flat_map(|field| message.raw_values(field))
        .flat_map(address::parse_list)
        .filter_map(|m| m.part(AddressPart::All))
        .any(|recipient| own.iter().any(|o| same_address(o, &recipient)));
    if !addressed {
        return Some("the user's address is not among the recipients");
    }
    None
}

/// Local parts compared exactly, domains without case (RFC 5321 §2.4).
fn same_address(a: &str, b: &str) -> bool {
    let (a, b) = (
        Mailbox::from_spec(a.trim_matches(['<', '>'])),
        Mailbox::from_spec(b.trim_matches(['<', '>'])),
    );
    a.local.eq_ignore_ascii_case(&b.local) && a.domain.eq_ignore_ascii_case(&b.domain)
}

/// The default handle (RFC 5230 §4.2 leaves its making to the implementation): the
/// arguments that make a reply what it is, laid out as Pigeonhole does.
pub fn default_handle(
    reason: &str,
    subject: Option<&str>,
    from: Option<&str>,
    mime: bool,
) -> String {
    format!(
        "{reason}{}{}{}",
        subject.unwrap_or("<default-subject>"),
        from.unwrap_or("<default-from>"),
        if mime { "<MIME>" } else { "<NO-MIME>" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(headers: &str, sender: &str) -> Option<&'static str> {
        let raw = format!("{headers}To: Bob <bob@example.com>\r\n\r\nhi\r\n");
        refusal(
            &Message::parse(raw.as_bytes()),
            sender,
            &["bob@example.com".to_owned()],
        )
    }

    #[test]
    fn replies_only_to_personal_mail() {
        assert_eq!(refuse("", "alice@example.org"), None);
        assert!(refuse("", "").is_some());
        assert!(refuse("Auto-Submitted: auto-replied\r\n", "alice@example.org").is_some());
        assert_eq!(refuse("Auto-Submitted: no\r\n", "alice@example.org"), None);
        assert!(refuse("Precedence: Bulk\r\n", "alice@example.org").is_some());
        assert!(refuse("List-Id: <l.example.org>\r\n", "alice@example.org").is_some());
        assert!(refuse("", "owner-list@example.org").is_some());
        assert!(refuse("", "MAILER-DAEMON@example.org").is_some());
        assert!(refuse("", "bob@EXAMPLE.com").is_some());
        let raw = b"To: carol@example.com\r\n\r\nhi\r\n";
        assert!(
            refusal(
                &Message::parse(raw),
                "alice@example.org",
                &["bob@example.com".to_owned()]
            )
            .is_some()
        );
    }

    #[test]
    fn handle_names_the_reply() {
        assert_eq!(
            default_handle("away", None, None, false),
            "away<default-subject><default-from><NO-MIME>"
        );
    }
}
