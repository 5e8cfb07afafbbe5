//! Sizes and durations as people write them in a config file: `25MiB`, `10 MB`, `90s`,
//! `5m`, `4h`, `5d`, or a bare number (octets, seconds).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// A size in octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

/// A duration, whole seconds or milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1024),
    ("kb", 1000),
    ("kib", 1024),
    ("m", 1024 * 1024),
    ("mb", 1000 * 1000),
    ("mib", 1024 * 1024),
    ("g", 1024 * 1024 * 1024),
    ("gb", 1000 * 1000 * 1000),
    ("gib", 1024 * 1024 * 1024),
    ("t", 1 << 40),
    ("tb", 1000 * 1000 * 1000 * 1000),
    ("tib", 1 << 40),
];

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("", 1000),
    ("s", 1000),
    ("m", 60_000),
    ("min", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 7 * 86_400_000),
];

/// Splits `25 MiB` into (25, "mib").
fn split_number(text: &str) -> Option<(u64, String)> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let number = text[..digits].parse().ok()?;
    Some((number, text[digits..].trim().to_ascii_lowercase()))
}

fn scaled(text: &str, units: &[(&str, u64)]) -> Option<u64> {
    let (number, unit) = split_number(text)?;
    let factor = units.iter().find(|(name, _)| *name == unit)?.1;
    number.checked_mul(factor)
}

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        scaled(text, SIZE_UNITS).map(Size).ok_or_else(|| {
            format!("invalid size {text:?}: use a number of octets or a unit such as 512KiB, 25MiB, 1GiB, 10MB")
        })
    }
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        scaled(text, DURATION_UNITS)
            .map(|ms| Span(Duration::from_millis(ms)))
            .ok_or_else(|| {
                format!("invalid duration {text:?}: use seconds or a unit such as 500ms, 30s, 5m, 4h, 5d")
            })
    }
}

impl fmt::Display for Size {
    /// In the largest binary unit that divides it (`2GiB`, `1536KiB`), as people write it
    /// in the configuration; it reads back the same.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ]
        .into_iter()
        .find(|&(_, factor)| self.0 != 0 && self.0.is_multiple_of(factor));
        match unit {
            Some((name, factor)) => write!(f, "{}{name}", self.0 / factor),
            None => write!(f, "{}", self.0),
        }
    }
}

/// Accepts a non-negative integer or a string with a unit.
struct NumberOrText<T>(std::marker::PhantomData<T>, &'static str, fn(u64) -> T);

impl<T: std::str::FromStr<Err = String>> Visitor<'_> for NumberOrText<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        u64::try_from(v)
            .map(self.2)
            .map_err(|_| E::custom(format!("{v} is negative: expected {}", self.1)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok((self.2)(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
}

impl serde::Serialize for Size {
    /// As a plain number of octets, which reads back the same.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrText(
            std::marker::PhantomData,
            "a size such as 25MiB or a number of octets",
            Size,
        ))
    }
}

impl<'de> serde::Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberOrText(
            std::marker::PhantomData,
            "a duration such as 30s, 5m or 4h, or a number of seconds",
            |s| Span(Duration::from_secs(s)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("25MiB".parse::<Size>(), Ok(Size(25 * 1024 * 1024)));
        assert_eq!("10 MB".parse::<Size>(), Ok(Size(10_000_000)));
        assert_eq!("512".parse::<Size>(), Ok(Size(512)));
        assert!("ten".parse::<Size>().is_err());
        assert!("10 parsecs".parse::<Size>().is_err());
        assert!("99999999999999999999TiB".parse::<Size>().is_err());
        for (size, shown) in [
            (2 << 30, "2GiB"),
            (1536 << 10, "1536KiB"),
            (1000, "1000"),
            (0, "0"),
        ] {
            assert_eq!(Size(size).to_string(), shown);
            assert_eq!(shown.parse::<Size>(), Ok(Size(size)));
        }
    }

    #[test]
    fn durations() {
        assert_eq!("90s".parse::<Span>(), Ok(Span(Duration::from_secs(90))));
        assert_eq!("5m".parse::<Span>(), Ok(Span(Duration::from_secs(300))));
        assert_eq!(
            "500ms".parse::<Span>(),
            Ok(Span(Duration::from_millis(500)))
        );
        assert_eq!("2 h".parse::<Span>(), Ok(Span(Duration::from_secs(7200))));
        assert!("-5s".parse::<Span>().is_err());
    }
}
