//! The configuration the server runs with: parsed and checked on its own terms by
//! `config`, then checked against what its values name, by the modules that own those:
//! the certificate and DKIM key files (`certs`, `mailauth::keys`) and the directory that
//! the accounts, aliases and users file make together (`accounts`). `serve`,
//! `check-config` and `sendmail` all load it here, so they agree on what is valid.

use std::path::Path;

use crate::accounts::directory::Directory;
use crate::accounts::users::{self, UsersFile};
use crate::config::{self, Account, Config, ConfigError};

/// Reads a config file and checks it whole, with the accounts of the users file it names:
/// an alias may lead to an account made by `posthorn user add`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: Some(path.to_path_buf()),
        line: None,
        key: String::new(),
        value: None,
        message: format!("cannot read: {e}"),
    })?;
    let config = config::parse(&text, Some(path))?;
    let users = UsersFile::load(&config.users_file())?;
    check(&config, &text, Some(path), &users.users)?;
    Ok(config)
}

/// Parses `text` and checks it whole, without a users file.
pub fn parse(text: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
    let config = config::parse(text, file)?;
    check(&config, text, file, &[])?;
    Ok(config)
}

/// Checks what the values of `config` (read from `text`, in `file`) name, and the
/// directory they make with `users`; a problem is reported at its line, or in the users
/// file for one of its entries.
fn check(
    config: &Config,
    text: &str,
    file: Option<&Path>,
    users: &[Account],
) -> Result<(), ConfigError> {
    crate::certs::check_files(config)
        .and_then(|()| crate::mailauth::keys::check_files(config))
        .and_then(|()| crate::inbound::checks::check_config(config))
        .and_then(|()| crate::delivery::sieve::global::check_config(config))
        .and_then(|()| Directory::build_with_users(config, users).map(drop))
        .map_err(|invalid| {
            if users::is_about_a_user(&invalid) {
                users::locate(&config.users_file(), invalid)
            } else {
                config::locate(invalid, text, file)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/posthorn.example.toml");
        let mut example = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let embedded = Config::embedded();
        example.server.hostname = embedded.server.hostname.clone();
        assert_eq!(example, embedded);
    }

    fn error(text: &str) -> ConfigError {
        parse(text, None).expect_err("config should be refused")
    }

    #[test]
    fn every_error_quotes_the_bad_value() {
        let cases = [
            (
                "[[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:99999\"\n",
                "\"127.0.0.1:99999\"",
            ),
            ("[delivery]\nnameserver = \"192.0.2.1\"\n", "\"192.0.2.1\""),
            (
                "[policy]\ntrusted_networks = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
                "\"10.0.0.0/33\"",
            ),
            ("[verify]\nskip_networks = [\"loopback\"]\n", "\"loopback\""),
            (
                "[[account]]\nname = \"alice\"\naddresses = [\"alice@@example.com\"]\n",
                "= \"alice@@example.com\"",
            ),
            (
                "[[account]]\nname = \"alice\"\nsend_as = [\"@bad domain\"]\n",
                "= \"@bad domain\"",
            ),
            ("[[account]]\nname = \"Alice\"\n", "= \"Alice\""),
            ("[[domain]]\nname = \"bad domain\"\n", "= \"bad domain\""),
            ("[server]\nhostname = \"not a host\"\n", "= \"not a host\""),
            ("[server]\nrecipient_delimiter = \"++\"\n", "= \"++\""),
            ("[limits]\nmax_recipients = 0\n", "= 0"),
            ("[limits]\nipv6_prefix_length = 200\n", "= 200"),
            ("[queue]\nlocal_concurrency = 0\n", "= 0"),
            ("[delivery]\nhelo_name = \"a b\"\n", "= \"a b\""),
            ("[delivery]\nport = 99999\n", "99999"),
            ("[limits]\ncommand_timeout = \"forever\"\n", "\"forever\""),
            ("[limits]\nbare_newline = \"maybe\"\n", "maybe"),
            ("[relay]\nhost = \"[a]:99999\"\n", "\"[a]:99999\""),
            (
                "[aliases]\n\"info@localhost\" = [\"nobody@localhost\"]\n",
                "= \"nobody@localhost\"",
            ),
            (
                "[tls]\ncertificate = \"/no/cert.pem\"\n",
                "= \"/no/cert.pem\"",
            ),
            (
                "[sieve]\nglobal_dir = \"/no/sieve-global\"\n",
                "key `sieve.global_dir` = \"/no/sieve-global\"",
            ),
            (
                "[sieve]\nglobal_dir = \"/dev/null\"\n",
                "= \"/dev/null\": not a folder",
            ),
        ];
        for (text, value) in cases {
            let e = error(text);
            assert!(e.line.is_some() && !e.key.is_empty(), "{e}");
            assert!(e.to_string().contains(value), "{value} not quoted: {e}");
        }
    }

    #[test]
    fn unreadable_dkim_key_is_named_with_its_line() {
        let e = error(
            "[dkim]\nsign = true\n[[dkim.key]]\ndomain = \"example.org\"\nselector = \"s1\"\nfile = \"/nonexistent/key.pem\"\n",
        );
        assert_eq!(e.key, "dkim.key[0].file");
        assert_eq!(e.line, Some(6));
        let e = error("[verify]\ndmarc_reject = \"bounce\"\n");
        assert_eq!(e.key, "verify.dmarc_reject");
    }
}
