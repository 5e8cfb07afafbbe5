//! Values written as text that a standard parser reads (socket addresses, networks). Their
//! own errors ("invalid socket address syntax") neither quote the text nor say what was
//! expected; these deserializers do both.

use std::net::SocketAddr;
use std::str::FromStr;

use serde::de::{Deserialize, Deserializer, Error as _};
use toml::Spanned;

/// A type read from a string, and how to write one.
pub(super) trait Textual: FromStr {
    /// What it is, for "invalid WHAT".
    const NAME: &'static str;
    /// What a valid value looks like.
    const EXPECTED: &'static str;
}

impl Textual for SocketAddr {
    const NAME: &'static str = "address";
    const EXPECTED: &'static str =
        "an IP address and a port from 0 to 65535, e.g. 0.0.0.0:25 or [::1]:587";
}

impl Textual for ipnet::IpNet {
    const NAME: &'static str = "network";
    const EXPECTED: &'static str = "an address and a prefix length, e.g. 192.0.2.0/24 or ::1/128";
}

/// One value, parsed from its text.
struct Parsed<T>(T);

impl<'de, T: Textual> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Parsed).map_err(|_| {
            D::Error::custom(format!("invalid {} {text:?}: use {}", T::NAME, T::EXPECTED))
        })
    }
}

/// A value with its place in the file.
pub(super) fn spanned<'de, D: Deserializer<'de>, T: Textual>(d: D) -> Result<Spanned<T>, D::Error> {
    let parsed = Spanned::<Parsed<T>>::deserialize(d)?;
    let span = parsed.span();
    Ok(Spanned::new(span, parsed.into_inner().0))
}

/// An optional value.
pub(super) fn optional<'de, D: Deserializer<'de>, T: Textual>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<Parsed<T>>::deserialize(d)?.map(|p| p.0))
}

/// A list; an error names the entry (`key[2]`) and its line.
pub(super) fn list<'de, D: Deserializer<'de>, T: Textual>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Parsed<T>>::deserialize(d)?
        .into_iter()
        .map(|p| p.0)
        .collect())
}
