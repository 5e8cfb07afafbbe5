//! Dates for `date` and `currentdate` (RFC 5260): reading an RFC 5322 §3.3 date-time
//! and naming its parts in a chosen zone.

/// An instant and the zone offset it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix: i64,
    /// Minutes east of UTC.
    pub offset: i32,
}

/// Parses `[day-name ","] day month year hour ":" minute [":" second] zone`, with
/// obsolete two-digit years and zone names (RFC 5322 §4.3, §4.5).
pub fn parse_rfc5322(value: &str) -> Option<DateTime> {
    let value = value.rsplit(';').next().unwrap_or(value);
    let value = match value.split_once(',') {
        Some((_, rest)) => rest,
        None => value,
    };
    let mut words = value.split_whitespace();
    let day: i64 = words.next()?.parse().ok()?;
    let month = month_number(words.next()?)?;
    let mut year: i64 = words.next()?.parse().ok()?;
    if year < 50 {
        year += 2000;
    } else if year < 1000 {
        year += 1900;
    }
    let mut time = words.next()?.split(':');
    let hour: i64 = time.next()?.parse().ok()?;
    let minute: i64 = time.next()?.parse().ok()?;
    let second: i64 = time.next().map_or(Some(0), |s| s.parse().ok())?;
    let offset = zone_offset(words.next().unwrap_or("-0000"))?;
    if !(1..=31).contains(&day)
        || !(0..=9999).contains(&year)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Some(DateTime {
        unix: local - i64::from(offset) * 60,
        offset,
    })
}

fn month_number(name: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let lower = name.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| *m == lower)
        .map(|i| i as i64 + 1)
}

/// A numeric `+hhmm` zone, or an obsolete name (RFC 5322 §4.3); unknown names are
/// taken as UTC as that section says.
pub fn zone_offset(zone: &str) -> Option<i32> {
    let bytes = zone.as_bytes();
    if bytes.len() == 5
        && (bytes[0] == b'+' || bytes[0] == b'-')
        && bytes[1..].iter().all(u8::is_ascii_digit)
    {
        let hours: i32 = zone[1..3].parse().ok()?;
        let minutes: i32 = zone[3..5].parse().ok()?;
        if minutes > 59 {
            return None;
        }
        let total = hours * 60 + minutes;
        return Some(if bytes[0] == b'-' { -total } else { total });
    }
    let hours = match zone.to_ascii_uppercase().as_str() {
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ if zone.chars().all(|c| c.is_ascii_alphabetic()) => 0,
        _ => return None,
    };
    Some(hours * 60)
}

/// The offset a `:zone` argument names (RFC 5260 §4.1: `+hhmm` or `-hhmm`), taken as
/// arithmetic as Pigeonhole does ("+0160" is two hours); `None` when it is no such
/// thing, and the local zone then applies.
pub fn zone_argument(zone: &str) -> Option<i32> {
    let bytes = zone.as_bytes();
    if bytes.len() != 5
        || !matches!(bytes[0], b'+' | b'-')
        || !bytes[1..].iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    let total = zone[1..3].parse::<i32>().ok()? * 60 + zone[3..5].parse::<i32>().ok()?;
    Some(if bytes[0] == b'-' { -total } else { total })
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let date = mail_parser::DateTime {
        year: u16::try_from(year).unwrap_or_default(),
        month: u8::try_from(month).unwrap_or_default(),
        day: u8::try_from(day).unwrap_or_default(),
        ..mail_parser::DateTime::default()
    };
    date.to_timestamp_local().div_euclid(86_400)
}

/// The proleptic Gregorian date (year, month, day) of a day since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let date = mail_parser::DateTime::from_timestamp(days * 86_400);
    (
        i64::from(date.year),
        i64::from(date.month),
        i64::from(date.day),
    )
}

/// The text of a date-part (RFC 5260 §4.2) of `at` seen from zone `offset`, or `None`
/// for an unknown part name.
pub fn part(at: i64, offset: i32, name: &str) -> Option<String> {
    let local = at + i64::from(offset) * 60;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    let sign = if offset < 0 { '-' } else { '+' };
    let (zh, zm) = (offset.abs() / 60, offset.abs() % 60);
    let text = match name.to_ascii_lowercase().as_str() {
        "year" => format!("{year:04}"),
        "month" => format!("{month:02}"),
        "day" => format!("{day:02}"),
        "date" => format!("{year:04}-{month:02}-{day:02}"),
        // Modified Julian Day: days since 1858-11-17.
        "julian" => (days + 40_587).to_string(),
        "hour" => format!("{hour:02}"),
        "minute" => format!("{minute:02}"),
        "second" => format!("{second:02}"),
        "time" => format!("{hour:02}:{minute:02}:{second:02}"),
        // RFC 3339 §5.6 as Pigeonhole writes it: "Z" for UTC.
        "iso8601" if offset == 0 => {
            format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
        }
        "iso8601" => format!(
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{sign}{zh:02}:{zm:02}"
        ),
        "std11" => {
            const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let weekday = DAYS[days.rem_euclid(7) as usize];
            let month_name = MONTHS[(month - 1) as usize];
            format!(
                "{weekday}, {day:02} {month_name} {year:04} {hour:02}:{minute:02}:{second:02} {sign}{zh:02}{zm:02}"
            )
        }
        "zone" => format!("{sign}{zh:02}{zm:02}"),
        // 0 is Sunday; 1970-01-01 was a Thursday.
        "weekday" => ((days + 4).rem_euclid(7)).to_string(),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_parts() {
        let d = parse_rfc5322("Sat, 13 Mar 2010 16:59:00 +0100").unwrap();
        assert_eq!(d.offset, 60);
        assert_eq!(
            part(d.unix, d.offset, "iso8601").unwrap(),
            "2010-03-13T16:59:00+01:00"
        );
        assert_eq!(part(d.unix, 0, "time").unwrap(), "15:59:00");
        assert_eq!(part(d.unix, d.offset, "weekday").unwrap(), "6");
        assert_eq!(part(d.unix, d.offset, "julian").unwrap(), "55268");
        assert_eq!(
            part(d.unix, d.offset, "std11").unwrap(),
            "Sat, 13 Mar 2010 16:59:00 +0100"
        );
        assert_eq!(
            part(d.unix - 12 * 86_400, d.offset, "std11").unwrap(),
            "Mon, 01 Mar 2010 16:59:00 +0100"
        );
        assert_eq!(part(d.unix, -330, "zone").unwrap(), "-0530");
        assert!(part(0, 0, "fortnight").is_none());
        assert_eq!(zone_argument("+0160"), Some(120));
        assert_eq!(zone_argument("-0530"), Some(-330));
        assert_eq!(zone_argument("garbage"), None);
    }

    #[test]
    fn obsolete_forms_and_received() {
        let d = parse_rfc5322("from x by y; 1 Jan 99 00:00 EST").unwrap();
        assert_eq!(part(d.unix, 0, "date").unwrap(), "1999-01-01");
        assert_eq!(part(d.unix, 0, "hour").unwrap(), "05");
        assert!(parse_rfc5322("yesterday").is_none());
        assert!(parse_rfc5322("32 Jan 2020 00:00 +0000").is_none());
        assert!(parse_rfc5322("1 Jan 99999999999999 00:00 +0000").is_none());
    }
}
