//! The trace header we add to every accepted message (RFC 5321 §4.4), and the headers
//! written at final delivery (Return-Path, Delivered-To).

use std::net::IpAddr;

use posthorn_proto::ReversePath;

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
    /// The queue id.
    pub queue_id: &'a str,
    /// The recipient, named only when there is exactly one (others stay private).
    pub single_recipient: Option<String>,
    /// Acceptance time, seconds since the epoch.
    pub time: u64,
}

/// `Received: from helo ([ip]) by host (Posthorn) with ESMTP id ID for <rcpt>; date`,
/// folded, ending in CRLF.
pub fn received_header(trace: &Trace) -> String {
    let protocol = match (trace.smtputf8, trace.esmtp) {
        (true, _) => "UTF8SMTP",
        (false, true) => "ESMTP",
        (false, false) => "SMTP",
    };
    let mut header = format!("Received: from {}", header_safe(trace.helo));
    if let Some(ip) = trace.ip {
        match ip {
            IpAddr::V4(v4) => header.push_str(&format!(" ([{v4}])")),
            IpAddr::V6(v6) => header.push_str(&format!(" ([IPv6:{v6}])")),
        }
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
            queue_id: "id",
            single_recipient: None,
            time: 0,
        });
        assert!(header.contains("([IPv6:::1])"), "{header}");
        assert!(header.contains("with UTF8SMTP id id;"), "{header}");
        assert!(!header.contains("for <"));
    }

    #[test]
    fn null_sender_return_path() {
        assert_eq!(
            delivery_headers(&ReversePath::Null, "a@b"),
            "Return-Path: <>\r\nDelivered-To: a@b\r\n"
        );
    }
}
