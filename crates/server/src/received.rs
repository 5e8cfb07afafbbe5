//! The trace header we add to every accepted message (RFC 5321 §4.4), and the headers
//! written at final delivery (Return-Path, Delivered-To).

use std::net::IpAddr;

use posthorn_proto::ReversePath;
use posthorn_proto::address::is_valid_hello_name;

/// What the Received header records about one accepted message.
#[derive(Debug, Clone)]
pub struct Trace<'a> {
    /// The client's EHLO/HELO name.
    pub helo: &'a str,
    /// The client's address, if it came over the network.
    pub ip: Option<IpAddr>,
    /// Our host name.
    pub hostname: &'a str,
    /// EHLO rather than HELO.
    pub esmtp: bool,
    /// SMTPUTF8 was used (RFC 6531 §3.7.3: `with UTF8SMTP`).
    pub smtputf8: bool,
    /// The TLS version and cipher, when the session was encrypted.
    pub tls: Option<&'a str>,
    /// The account the client authenticated as with AUTH.
    pub authenticated: Option<&'a str>,
    /// The Unix user id and name of a local program (`sendmail`).
    pub local_user: Option<(u32, &'a str)>,
    /// The queue id.
    pub queue_id: &'a str,
    /// The recipient, named only when there is exactly one (others stay private).
    pub single_recipient: Option<String>,
    /// Acceptance time, seconds since the epoch.
    pub time: u64,
}

/// The `with` keyword: ESMTP with `S` for TLS and `A` for AUTH (RFC 3848), UTF8SMTP and
/// its variants for SMTPUTF8 (RFC 6531 §3.7.3).
fn protocol(trace: &Trace) -> String {
    if !trace.esmtp && !trace.smtputf8 {
        return "SMTP".into();
    }
    let mut name = String::from(if trace.smtputf8 { "UTF8SMTP" } else { "ESMTP" });
    if trace.tls.is_some() {
        name.push('S');
    }
    if trace.authenticated.is_some() {
        name.push('A');
    }
    name
}

/// `Received: from helo ([ip]) (using TLS...) by host (Posthorn) with ESMTPS id ID for
/// <rcpt>; date`, folded, ending in CRLF.
pub fn received_header(trace: &Trace) -> String {
    let protocol = protocol(trace);
    let mut header = format!("Received: from {}", from_name(trace.helo));
    if let Some(ip) = trace.ip {
        match ip {
            IpAddr::V4(v4) => header.push_str(&format!(" ([{v4}])")),
            IpAddr::V6(v6) => header.push_str(&format!(" ([IPv6:{v6}])")),
        }
    }
    if let Some((uid, name)) = trace.local_user {
        header.push_str(&format!(" (from userid {uid} ({}))", comment_safe(name)));
    }
    if let Some(tls) = trace.tls {
        header.push_str(&format!("\r\n\t(using {})", header_safe(tls)));
    }
    // As Postfix records it: the receiver of a complaint can name the account.
    if let Some(user) = trace.authenticated {
        header.push_str(&format!(
            "\r\n\t(Authenticated sender: {})",
            comment_safe(user)
        ));
    }
    header.push_str(&format!(
        "\r\n\tby {} (Posthorn) with {protocol} id {}",
        trace.hostname, trace.queue_id
    ));
    if let Some(rcpt) = &trace.single_recipient {
        header.push_str(&format!("\r\n\tfor <{}>", header_safe(rcpt)));
    }
    header.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(trace.time)));
    header
}

/// The client's EHLO name as the `from` clause records it. The session accepts only a
/// Domain or an address-literal (RFC 5321 §4.1.1.1); anything else is written as
/// `unknown` with the name in an escaped comment, so it can neither close the comment,
/// end the clause with `;`, nor start a new line.
fn from_name(helo: &str) -> String {
    if is_valid_hello_name(helo) {
        return helo.to_string();
    }
    format!("unknown (HELO {})", comment_safe(helo))
}

/// `Return-Path` and `Delivered-To`, the first lines of a delivered message.
pub fn delivery_headers(sender: &ReversePath, recipient: &str) -> String {
    format!(
        "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
        header_safe(&sender.to_string()),
        header_safe(recipient)
    )
}

/// An RFC 5322 date-time in UTC.
pub fn rfc5322_date(time: u64) -> String {
    mail_parser::DateTime::from_timestamp(time as i64).to_rfc822()
}

/// Text for inside a comment: header-safe, with the parentheses and backslash that would
/// end or escape the comment written as quoted pairs (RFC 5322 §3.2.2).
fn comment_safe(text: &str) -> String {
    let mut escaped = String::new();
    for c in header_safe(text).chars() {
        if matches!(c, '(' | ')' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Peer-supplied text as it may appear inside a header: no CR, LF or other controls, and
/// not longer than a domain name can be.
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(320)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_header_for_one_recipient() {
        let header = received_header(&Trace {
            helo: "client.example",
            ip: Some("192.0.2.7".parse().unwrap()),
            hostname: "mx.test",
            esmtp: true,
            smtputf8: false,
            tls: None,
            authenticated: None,
            local_user: None,
            queue_id: "0abc",
            single_recipient: Some("a@mx.test".into()),
            time: 0,
        });
        assert_eq!(
            header,
            "Received: from client.example ([192.0.2.7])\r\n\tby mx.test (Posthorn) with ESMTP id 0abc\r\n\tfor <a@mx.test>;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n"
        );
    }

    #[test]
    fn ipv6_and_utf8_and_no_for() {
        let header = received_header(&Trace {
            helo: "x",
            ip: Some("::1".parse().unwrap()),
            hostname: "mx.test",
            esmtp: true,
            smtputf8: true,
            tls: None,
            authenticated: None,
            local_user: None,
            queue_id: "id",
            single_recipient: None,
            time: 0,
        });
        assert!(header.contains("([IPv6:::1])"), "{header}");
        assert!(header.contains("with UTF8SMTP id id;"), "{header}");
        assert!(!header.contains("for <"));
    }

    #[test]
    fn tls_and_auth_are_recorded() {
        let trace = Trace {
            helo: "laptop",
            ip: Some("192.0.2.7".parse().unwrap()),
            hostname: "mx.test",
            esmtp: true,
            smtputf8: false,
            tls: Some("TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384"),
            authenticated: Some("alice"),
            local_user: None,
            queue_id: "id",
            single_recipient: None,
            time: 0,
        };
        let header = received_header(&trace);
        assert!(
            header.contains("\r\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\r\n"),
            "{header}"
        );
        assert!(header.contains("with ESMTPSA id"), "{header}");
        assert!(
            header.contains("\r\n\t(Authenticated sender: alice)\r\n"),
            "{header}"
        );
        let plain_auth = Trace {
            tls: None,
            ..trace.clone()
        };
        assert!(received_header(&plain_auth).contains("with ESMTPA id"));
        let utf8 = Trace {
            smtputf8: true,
            authenticated: None,
            local_user: None,
            ..trace
        };
        assert!(received_header(&utf8).contains("with UTF8SMTPS id"));
    }

    #[test]
    fn a_malformed_helo_stays_in_a_comment() {
        let header = received_header(&Trace {
            helo: "fake.example.com([10.0.0.1])by=trusted;\r\n\\",
            ip: Some("192.0.2.7".parse().unwrap()),
            hostname: "mx.test",
            esmtp: true,
            smtputf8: false,
            tls: None,
            authenticated: None,
            local_user: None,
            queue_id: "id",
            single_recipient: None,
            time: 0,
        });
        assert!(
            header.starts_with(
                "Received: from unknown (HELO fake.example.com\\([10.0.0.1]\\)by=trusted;??\\\\) ([192.0.2.7])\r\n\tby mx.test"
            ),
            "{header}"
        );
    }

    #[test]
    fn null_sender_return_path() {
        assert_eq!(
            delivery_headers(&ReversePath::Null, "a@b"),
            "Return-Path: <>\r\nDelivered-To: a@b\r\n"
        );
    }

    #[test]
    fn local_users_are_named_by_id_and_name() {
        let header = received_header(&Trace {
            helo: "localhost",
            ip: None,
            hostname: "mx.test",
            esmtp: true,
            smtputf8: false,
            tls: None,
            authenticated: None,
            local_user: Some((1000, "web(x)")),
            queue_id: "id",
            single_recipient: None,
            time: 0,
        });
        assert!(
            header.starts_with("Received: from localhost (from userid 1000 (web\\(x\\)))\r\n"),
            "{header}"
        );
    }
}
