//! The checks a configuration passes on its own: names that must be host names, limits
//! no lower than the RFCs allow, keys that go in pairs, listeners that cannot all bind.

use std::net::SocketAddr;

use posthorn_proto::address;
use toml::Spanned;

use super::{Config, Invalid, NextHop};

impl Config {
    /// Refuses two listeners that would bind the same socket: `serve` would otherwise fail
    /// at start with "address in use" while `check-config` said OK.
    fn check_listener_addresses(&self) -> Result<(), Invalid> {
        for (i, listener) in self.listeners.iter().enumerate() {
            let address = *listener.address.get_ref();
            let earlier = self.listeners[..i]
                .iter()
                .position(|other| binds_overlap(*other.address.get_ref(), address));
            if let Some(j) = earlier {
                return Err(Invalid::at(
                    format!("listener[{i}].address"),
                    &Spanned::new(listener.address.span(), address.to_string()),
                    format!(
                        "listener[{j}] ({}) listens there already",
                        self.listeners[j].address.get_ref()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks every value on its own terms: syntax, ranges, combinations. Files the
    /// values name are checked by the modules that read them (see `crate::settings`).
    pub fn validate(&self) -> Result<(), Invalid> {
        let hostname = &self.server.hostname;
        if !address::is_valid_domain(hostname.get_ref()) {
            return Err(Invalid::at(
                "server.hostname",
                hostname,
                "not a valid host name",
            ));
        }
        if let Some(delimiter) = &self.server.recipient_delimiter
            && delimiter.get_ref().chars().count() != 1
        {
            return Err(Invalid::at(
                "server.recipient_delimiter",
                delimiter,
                "must be exactly one character",
            ));
        }
        if self.listeners.is_empty() {
            return Err(Invalid::of(
                "listener",
                "[]",
                "at least one listener is needed",
            ));
        }
        self.check_listener_addresses()?;
        let limits = &self.limits;
        let minimums: [(&str, u64, u64); 8] = [
            ("queue.inflow_window", self.queue.inflow_window as u64, 1),
            // RFC 5321 §4.5.3.1: the smallest limits a server may impose.
            (
                "limits.max_command_line",
                limits.max_command_line as u64,
                512,
            ),
            ("limits.max_text_line", limits.max_text_line as u64, 998),
            ("limits.max_recipients", limits.max_recipients as u64, 1),
            ("limits.max_message_size", limits.max_message_size.0, 1024),
            ("limits.max_connections", limits.max_connections as u64, 1),
            (
                "limits.max_connections_per_ip",
                limits.max_connections_per_ip as u64,
                1,
            ),
            // Shorter prefixes would put whole providers behind one key.
            (
                "limits.ipv6_prefix_length",
                u64::from(limits.ipv6_prefix_length),
                16,
            ),
        ];
        for (key, value, minimum) in minimums {
            if value < minimum {
                return Err(Invalid::of(
                    key,
                    value,
                    format!("below the minimum of {minimum}"),
                ));
            }
        }
        if limits.ipv6_prefix_length > 128 {
            return Err(Invalid::of(
                "limits.ipv6_prefix_length",
                limits.ipv6_prefix_length,
                "above the maximum of 128",
            ));
        }
        if self.tls.certificate.is_some() != self.tls.key.is_some() {
            let (key, value) = match (&self.tls.certificate, &self.tls.key) {
                (Some(c), None) => ("tls.certificate", c),
                (None, Some(k)) => ("tls.key", k),
                _ => unreachable!("exactly one is set"),
            };
            return Err(Invalid::at(
                key,
                value,
                "give both tls.certificate and tls.key",
            ));
        }
        for (i, key) in self.dkim.keys.iter().enumerate() {
            let name = format!("dkim.key[{i}]");
            if !address::is_valid_domain(key.domain.get_ref()) {
                return Err(Invalid::at(
                    format!("{name}.domain"),
                    &key.domain,
                    "not a valid domain name",
                ));
            }
            if !address::is_valid_domain(key.selector.get_ref()) {
                return Err(Invalid::at(
                    format!("{name}.selector"),
                    &key.selector,
                    "not a valid selector (DNS labels)",
                ));
            }
        }
        let queue = &self.queue;
        let counts = [
            ("queue.local_concurrency", queue.local_concurrency),
            ("queue.active_limit", queue.active_limit),
            ("delivery.max_connections", self.delivery.max_connections),
            (
                "delivery.max_connections_per_destination",
                self.delivery.max_connections_per_destination,
            ),
            (
                "delivery.max_recipients_per_transaction",
                self.delivery.max_recipients_per_transaction,
            ),
        ];
        for (key, value) in counts {
            if value == 0 {
                return Err(Invalid::of(key, value, "must be at least 1"));
            }
        }
        if queue.retry_schedule.is_empty() {
            return Err(Invalid::of(
                "queue.retry_schedule",
                "[]",
                "list at least one wait",
            ));
        }
        let srs_days = self.delivery.srs_max_age.0.as_secs() / 86_400;
        if !(1..=1023).contains(&srs_days) {
            return Err(Invalid::of(
                "delivery.srs_max_age",
                format!("{}s", self.delivery.srs_max_age.0.as_secs()),
                "must be between 1 and 1023 days",
            ));
        }
        if let Some(name) = &self.delivery.helo_name
            && !address::is_valid_domain(name.get_ref())
        {
            return Err(Invalid::at(
                "delivery.helo_name",
                name,
                "not a valid host name",
            ));
        }
        if let Some(relay) = &self.relay {
            if let Some(domain) = &relay.domain {
                return Err(Invalid::at(
                    "relay.domain",
                    domain,
                    "the relay takes every domain; use [[route]] for one",
                ));
            }
            relay.validate("relay")?;
        }
        for (i, route) in self.routes.iter().enumerate() {
            let key = format!("route[{i}]");
            let Some(domain) = &route.domain else {
                return Err(Invalid::at(
                    format!("{key}.host"),
                    &route.host,
                    "a route needs a domain",
                ));
            };
            if !address::is_valid_domain(domain.get_ref()) {
                return Err(Invalid::at(
                    format!("{key}.domain"),
                    domain,
                    "not a valid domain name",
                ));
            }
            route.validate(&key)?;
        }
        Ok(())
    }
}

impl NextHop {
    fn validate(&self, key: &str) -> Result<(), Invalid> {
        self.target()
            .map_err(|e| Invalid::at(format!("{key}.host"), &self.host, e))?;
        if let (Some(password), Some(_)) = (&self.password, &self.password_file) {
            return Err(Invalid::at(
                format!("{key}.password"),
                password,
                "give password or password_file, not both",
            ));
        }
        let has_password = self.password.is_some() || self.password_file.is_some();
        if self.username.is_some() != has_password {
            return Err(Invalid::at(
                format!("{key}.host"),
                &self.host,
                "AUTH needs both username and password (or password_file)",
            ));
        }
        if let Some(file) = &self.password_file
            && let Err(e) = std::fs::read_to_string(file.get_ref())
        {
            return Err(Invalid::at(
                format!("{key}.password_file"),
                file,
                format!("cannot read: {e}"),
            ));
        }
        Ok(())
    }
}

/// True when listening on `a` and on `b` cannot both succeed: the same port (port 0 picks
/// a free one each time) on the same address, or on a wildcard address covering the other
/// (`[::]` covers IPv4 too, as Linux binds it dual-stack by default).
pub(super) fn binds_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    let covers = |wide: SocketAddr, other: SocketAddr| {
        wide.ip().is_unspecified() && (wide.is_ipv6() || other.is_ipv4())
    };
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || covers(a, b) || covers(b, a))
}
