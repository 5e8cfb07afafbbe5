//! The configuration file: TOML, every key optional with its default here (and documented
//! in `config/posthorn.example.toml`). Loading reports the first problem with the key's
//! dotted name and its line, and nothing starts with a config that has one.

mod checks;
mod errors;
mod host;
mod mail_auth;
mod schema;
mod text;
mod units;
mod validate;

use std::path::Path;

pub use checks::{
    Checks, Clamav, Classifier, DnsList, Greylist, Lists, Lookup, Milter, OnFailure, Reputation,
};
pub use errors::{ConfigError, Invalid, locate};
pub(crate) use errors::{key_of, line_of};
pub use host::HostSpec;
pub use mail_auth::{Action, Dkim, DkimKeyConfig, DnsErrors, Verify};
pub use schema::{
    Account, Auth, Config, DEFAULT_IPV6_PREFIX, Delivery, Domain, Limits, Listener, NextHop,
    Policy, Queue, Role, SendingLimits, Server, Sieve, Tls, TlsPolicy,
};
pub use units::{Size, Span};

impl Config {
    /// The embedded defaults: used when `serve` runs without a file.
    pub fn embedded() -> Self {
        match parse("", None) {
            Ok(config) => config,
            Err(e) => unreachable!("the empty config is valid: {e}"),
        }
    }
}

/// Parses `text` and checks its values on their own terms (see `validate`); `file` names
/// it in errors. What the values name (files, accounts) is checked by `crate::settings`.
pub fn parse(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
    let config = deserialize(text, file)?;
    config
        .validate()
        .map_err(|invalid| locate(invalid, text, file))?;
    Ok(config)
}

/// Parses `text` into a configuration, unchecked; `file` names it in errors.
pub(crate) fn deserialize(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
    let error = |line: Option<usize>, key: String, message: String| ConfigError {
        file: file.map(Path::to_path_buf),
        line,
        key,
        value: None,
        message,
    };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        error(
            e.span().map(|s| line_of(text, s.start)),
            String::new(),
            e.message().to_string(),
        )
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = key_of(e.path());
        let inner = e.into_inner();
        error(
            inner.span().map(|s| line_of(text, s.start)),
            key,
            inner.message().to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::validate::binds_overlap;
    use super::*;

    fn error(text: &str) -> ConfigError {
        parse(text, None).expect_err("config should be refused")
    }

    #[test]
    fn empty_config_is_the_embedded_default() {
        let config = Config::embedded();
        assert_eq!(config.listeners.len(), 8);
        assert_eq!(
            config.listeners[6].address.get_ref().to_string(),
            "127.0.0.1:9930"
        );
        assert_eq!(
            config.listeners[0].address.get_ref().to_string(),
            "127.0.0.1:2525"
        );
        assert_eq!(config.listeners[1].role, Role::Submission);
        assert!(config.listeners[1].offers_auth() && !config.listeners[0].offers_auth());
        assert_eq!(config.domains[0].name.get_ref(), "localhost");
        assert_eq!(config.accounts[0].name.get_ref(), "postmaster");
        assert_eq!(config.server.data_dir, PathBuf::from("posthorn-data"));
    }

    #[test]
    fn units_are_understood() {
        let config = parse(
            "[limits]\nmax_message_size = \"10MiB\"\ncommand_timeout = \"2m\"\ndata_timeout = 30\n",
            None,
        )
        .unwrap();
        assert_eq!(config.limits.max_message_size, Size(10 << 20));
        assert_eq!(
            config.limits.command_timeout,
            Span(Duration::from_secs(120))
        );
        assert_eq!(config.limits.data_timeout, Span(Duration::from_secs(30)));
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let e = error("[limits]\nmax_recipients = 10\nmax_recipient = 5\n");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("unknown field `max_recipient`"), "{e}");
        assert!(e.to_string().contains("line 3"), "{e}");
    }

    #[test]
    fn bad_value_is_named_with_key_and_line() {
        let e =
            error("[server]\nhostname = \"mx.example\"\n\n[limits]\nmax_message_size = \"huge\"\n");
        assert_eq!(e.line, Some(5));
        assert_eq!(e.key, "limits.max_message_size");
        assert!(e.message.contains("invalid size"), "{e}");
    }

    #[test]
    fn bad_enum_value_is_named() {
        let e = error("[limits]\nbare_newline = \"maybe\"\n");
        assert_eq!(e.key, "limits.bare_newline");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn bad_listener_address_is_named() {
        let e = error("[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1\"\n");
        assert_eq!(e.key, "listener[0].address");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn an_srs_age_beyond_its_clock_is_named() {
        let e = error("[delivery]\nsrs = true\nsrs_max_age = \"2000d\"\n");
        assert_eq!(e.key, "delivery.srs_max_age");
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("1023 days"), "{e}");
    }

    #[test]
    fn toml_syntax_error_has_a_line() {
        let e = error("[limits]\nmax_recipients = = 3\n");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn invalid_hostname_is_refused() {
        let e = error("[server]\nhostname = \"not a host\"\n");
        assert_eq!(e.key, "server.hostname");
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn host_specs() {
        let spec = |t: &str| HostSpec::parse(t);
        assert_eq!(
            spec("[smtp.example.net]:587").unwrap(),
            HostSpec {
                host: "smtp.example.net".into(),
                port: 587,
                mx_lookup: false
            }
        );
        assert_eq!(
            spec("example.net").unwrap(),
            HostSpec {
                host: "example.net".into(),
                port: 25,
                mx_lookup: true
            }
        );
        assert_eq!(spec("example.net:2525").unwrap().port, 2525);
        assert_eq!(spec("[2001:db8::1]:25").unwrap().host, "2001:db8::1");
        assert_eq!(spec("[192.0.2.1]").unwrap().port, 25);
        for bad in [
            "[x",
            "host:port",
            "[a]:99999",
            "bad host",
            "192.0.2.1",
            "[a]x",
        ] {
            assert!(spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relay_and_routes_are_checked() {
        let e = error("[relay]\nhost = \"smtp.example:abc\"\n");
        assert_eq!((e.key.as_str(), e.line), ("relay.host", Some(2)));
        let e = error("[[route]]\nhost = \"[10.0.0.1]:25\"\n");
        assert_eq!(e.key, "route[0].host");
        let e = error("[relay]\nhost = \"[a.example]\"\nusername = \"u\"\n");
        assert!(e.message.contains("AUTH needs both"), "{e}");
        let config = parse("[relay]\nhost = \"[a.example]:587\"\ntls = \"required\"\nusername = \"u\"\npassword = \"p\"\n\n[[route]]\ndomain = \"b.example\"\nhost = \"[127.0.0.1]:2526\"\ntls = \"none\"\n", None).unwrap();
        assert_eq!(
            config.relay.unwrap().credentials(),
            Some(("u".into(), "p".into()))
        );
        assert_eq!(config.routes[0].tls, TlsPolicy::None);
    }

    #[test]
    fn listeners_sharing_an_address_are_refused() {
        let e = error(
            "[[listener]]\nrole = \"mx\"\naddress = \"0.0.0.0:25\"\n\n[[listener]]\nrole = \"submission\"\naddress = \"127.0.0.1:25\"\n",
        );
        assert_eq!((e.key.as_str(), e.line), ("listener[1].address", Some(7)));
        assert!(
            e.to_string()
                .contains("key `listener[1].address` = \"127.0.0.1:25\": listener[0] (0.0.0.0:25)"),
            "{e}"
        );
        let overlap = |a: &str, b: &str| binds_overlap(a.parse().unwrap(), b.parse().unwrap());
        assert!(overlap("127.0.0.1:25", "127.0.0.1:25"));
        assert!(overlap("[::]:25", "192.0.2.1:25"));
        assert!(overlap("[::1]:25", "[::]:25"));
        assert!(!overlap("0.0.0.0:25", "[::1]:25"));
        assert!(!overlap("127.0.0.1:25", "127.0.0.1:587"));
        assert!(!overlap("127.0.0.1:25", "127.0.0.2:25"));
        assert!(
            !overlap("127.0.0.1:0", "127.0.0.1:0"),
            "port 0 picks a free port"
        );
    }

    #[test]
    fn limits_below_rfc_minimums_are_refused() {
        let e = error("[limits]\nmax_errors = 3\nmax_command_line = 100\n");
        assert_eq!(e.key, "limits.max_command_line");
        assert_eq!(e.line, Some(3));
    }
}
