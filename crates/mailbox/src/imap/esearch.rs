//! The ESEARCH response (RFC 4731 §3.1): what SEARCH RETURN asked for instead of every
//! number, so a client can learn a count or the newest match of a large mailbox cheaply.

use super::command::SearchReturn;
use super::response::string;

/// Writes `* ESEARCH (TAG "tag") [UID] [MIN n] [MAX n] [ALL set] [COUNT n]` for `found`,
/// which is in ascending order. MIN, MAX and ALL are left out when nothing matched.
pub(super) fn write(
    out: &mut Vec<u8>,
    tag: &str,
    uid: bool,
    found: &[u32],
    returning: SearchReturn,
    modseq: Option<u64>,
) {
    out.extend_from_slice(b"* ESEARCH (TAG ");
    string(out, tag.as_bytes());
    out.push(b')');
    if uid {
        out.extend_from_slice(b" UID");
    }
    if let (Some(min), true) = (found.first(), returning.min) {
        out.extend_from_slice(format!(" MIN {min}").as_bytes());
    }
    if let (Some(max), true) = (found.last(), returning.max) {
        out.extend_from_slice(format!(" MAX {max}").as_bytes());
    }
    if returning.all && !found.is_empty() {
        out.extend_from_slice(b" ALL ");
        out.extend_from_slice(sequence_set(found).as_bytes());
    }
    if returning.count {
        out.extend_from_slice(format!(" COUNT {}", found.len()).as_bytes());
    }
    if let Some(modseq) = modseq {
        out.extend_from_slice(format!(" MODSEQ {modseq}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Ascending numbers as the shortest sequence set: runs become `a:b`.
fn sequence_set(numbers: &[u32]) -> String {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &n in numbers {
        match ranges.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(n) => *end = n,
            _ => ranges.push((n, n)),
        }
    }
    ranges
        .iter()
        .map(|&(start, end)| {
            if start == end {
                start.to_string()
            } else {
                format!("{start}:{end}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(found: &[u32], returning: SearchReturn) -> String {
        let mut out = Vec::new();
        write(&mut out, "a1", true, found, returning, None);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn runs_are_ranges() {
        assert_eq!(sequence_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(sequence_set(&[]), "");
    }

    #[test]
    fn every_option_and_none_matched() {
        let all = SearchReturn {
            min: true,
            max: true,
            all: true,
            count: true,
        };
        assert_eq!(
            text(&[2, 3, 9], all),
            "* ESEARCH (TAG \"a1\") UID MIN 2 MAX 9 ALL 2:3,9 COUNT 3\r\n"
        );
        assert_eq!(text(&[], all), "* ESEARCH (TAG \"a1\") UID COUNT 0\r\n");
    }
}
