//! The client a per-address limit counts against. An IPv6 user is given a whole /64 (or
//! more), so limits keyed on its full address could be dodged by changing the low bits;
//! and an IPv4 client reaching a dual-stack socket appears as `::ffff:a.b.c.d`, which must
//! count as the same client as `a.b.c.d`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// An IPv4 address, an IPv6 network of the configured prefix length, or a local Unix user
/// (programs using `sendmail` count against the same connection limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A network client.
    Network(IpAddr),
    /// A local program, by its user id.
    LocalUser(u32),
}

impl ClientKey {
    /// The key of `ip`: IPv4 (mapped or not) as it is, IPv6 cut to `ipv6_prefix` bits.
    pub fn of(ip: IpAddr, ipv6_prefix: u8) -> ClientKey {
        match ip {
            IpAddr::V4(_) => ClientKey::Network(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::Network(IpAddr::V4(v4)),
                None => {
                    let keep = u32::from(ipv6_prefix.min(128));
                    let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
                    ClientKey::Network(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
                }
            },
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Network(ip) => ip.fmt(f),
            ClientKey::LocalUser(uid) => write!(f, "local uid {uid}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str, prefix: u8) -> ClientKey {
        ClientKey::of(ip.parse().unwrap(), prefix)
    }

    #[test]
    fn ipv6_is_grouped_by_prefix() {
        assert_eq!(
            key("2001:db8:1:2:aaaa::1", 64),
            key("2001:db8:1:2::ffff", 64)
        );
        assert_ne!(key("2001:db8:1:2::1", 64), key("2001:db8:1:3::1", 64));
        assert_eq!(key("2001:db8:1:2::1", 48), key("2001:db8:1:3::1", 48));
        assert_ne!(key("2001:db8::1", 128), key("2001:db8::2", 128));
        assert_eq!(key("2001:db8::1", 0), key("::", 0));
        assert_eq!(key("2001:db8:1:2::1", 64).to_string(), "2001:db8:1:2::");
    }

    #[test]
    fn ipv4_mapped_counts_as_ipv4() {
        assert_eq!(key("::ffff:192.0.2.1", 64), key("192.0.2.1", 64));
        assert_ne!(key("192.0.2.1", 64), key("192.0.2.2", 64));
        assert_eq!(key("192.0.2.1", 64).to_string(), "192.0.2.1");
    }
}
