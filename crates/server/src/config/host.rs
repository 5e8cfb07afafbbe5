//! Next hops as `[relay]` and `[[route]]` write them.

use posthorn_proto::address;

/// A next hop as written in `host`: `[name]:port` is used as is, `name[:port]` is looked
/// up as a domain's MX first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Host name or IP address.
    pub host: String,
    /// The port; 25 unless given.
    pub port: u16,
    /// Look up MX records of `host` first.
    pub mx_lookup: bool,
}

impl HostSpec {
    /// Parses `[host]:port`, `[host]`, `host:port` or `host`.
    pub fn parse(text: &str) -> Result<HostSpec, String> {
        let bad = || {
            format!(
                "{text:?} is not a host: use [host]:port, [192.0.2.1]:587, [2001:db8::1]:25 or host"
            )
        };
        let (host, rest, mx_lookup) = match text.strip_prefix('[') {
            Some(inner) => {
                let (host, rest) = inner.split_once(']').ok_or_else(bad)?;
                (host, rest, false)
            }
            None => match text.split_once(':') {
                Some((host, _)) => (host, &text[host.len()..], true),
                None => (text, "", true),
            },
        };
        let port = match rest.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| bad())?,
            None if rest.is_empty() => 25,
            None => return Err(bad()),
        };
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        if !(is_ip || address::is_valid_domain(host)) || (is_ip && mx_lookup) {
            return Err(bad());
        }
        Ok(HostSpec {
            host: host.to_string(),
            port,
            mx_lookup,
        })
    }
}
