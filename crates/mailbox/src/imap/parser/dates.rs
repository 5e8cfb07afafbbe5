//! IMAP's dates: `date` for SEARCH (`1-Feb-2024`) and `date-time` for APPEND
//! (`"01-Feb-2024 10:00:00 +0100"`), RFC 9051 §9.

use super::super::command::Date;
use super::grammar::{Parsed, shorten};

/// Month names as IMAP dates spell them.
pub(super) const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// The number of a month name (`Jan` is 1), any case.
fn parse_month(name: &str) -> Option<u8> {
    let index = MONTHS
        .iter()
        .position(|month| month.eq_ignore_ascii_case(name))?;
    u8::try_from(index + 1).ok()
}

/// A run of `min..=max` (at most 4) ASCII digits.
fn parse_digits(text: &str, min: usize, max: usize) -> Option<u16> {
    let valid = (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| text.parse().ok()).flatten()
}

/// Exactly two ASCII digits.
fn two_digits(text: &str) -> Option<u8> {
    u8::try_from(parse_digits(text, 2, 2)?).ok()
}

/// Days in a month of the Gregorian calendar.
fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A SEARCH date: `1-Feb-1994` or `01-Feb-1994`.
pub(super) fn parse_search_date(text: &str) -> Parsed<Date> {
    let mut fields = text.split('-');
    let date = match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(day), Some(month), Some(year), None) => (
            parse_digits(day, 1, 2).and_then(|d| u8::try_from(d).ok()),
            parse_month(month),
            parse_digits(year, 4, 4),
        ),
        _ => (None, None, None),
    };
    match date {
        (Some(day @ 1..=31), Some(month), Some(year)) => Ok(Date { year, month, day }),
        _ => Err(format!("invalid date {}", shorten(text))),
    }
}

/// APPEND's date-time (`dd-Mon-yyyy hh:mm:ss +zzzz`, day possibly space-padded or a
/// single digit) as Unix seconds.
pub(super) fn parse_date_time(text: &str) -> Parsed<i64> {
    date_time(text)
        .map(|date| date.to_timestamp())
        .ok_or_else(|| format!("invalid date-time \"{}\"", shorten(text)))
}

/// The fields of APPEND's date-time, validated so the timestamp arithmetic is sound.
fn date_time(text: &str) -> Option<mail_parser::DateTime> {
    let text = text.strip_prefix(' ').unwrap_or(text);
    let (day, rest) = text.split_once('-')?;
    let (month, rest) = rest.split_once('-')?;
    let (year, rest) = rest.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let day = u8::try_from(parse_digits(day, 1, 2)?).ok()?;
    let month = parse_month(month)?;
    let year = parse_digits(year, 4, 4)?;
    let mut clock = time.split(':');
    let hour = two_digits(clock.next()?)?;
    let minute = two_digits(clock.next()?)?;
    let second = two_digits(clock.next()?)?;
    let (sign, zone) = zone.split_at_checked(1)?;
    let tz_before_gmt = match sign {
        "+" => false,
        "-" => true,
        _ => return None,
    };
    let (tz_hour, tz_minute) = zone.split_at_checked(2)?;
    let (tz_hour, tz_minute) = (two_digits(tz_hour)?, two_digits(tz_minute)?);
    let valid = clock.next().is_none()
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60
        && tz_hour < 24
        && tz_minute < 60;
    valid.then_some(mail_parser::DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        tz_before_gmt,
        tz_hour,
        tz_minute,
    })
}
