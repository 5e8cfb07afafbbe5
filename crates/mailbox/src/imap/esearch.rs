//! The ESEARCH response (RFC 4731 §3.1): what SEARCH RETURN asked for instead of every
//! number, so a client can learn a count or the newest match of a large mailbox cheaply.

use super::command::SearchReturn;
use super::condstore::number_set;
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
        out.extend_from_slice(number_set(found).as_bytes());
    }
    if returning.count {
        out.extend_from_slice(format!(" COUNT {}", found.len()).as_bytes());
    }
    if let Some(modseq) = modseq {
        out.extend_from_slice(format!(" MODSEQ {modseq}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
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
        assert_eq!(number_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(number_set(&[]), "");
    }

    #[test]
    fn every_option_and_none_matched() {
        let all = SearchReturn {
            min: true,
            max: true,
            all: true,
            count: true,
            save: false,
        };
        assert_eq!(
            text(&[2, 3, 9], all),
            "* ESEARCH (TAG \"a1\") UID MIN 2 MAX 9 ALL 2:3,9 COUNT 3\r\n"
        );
        assert_eq!(text(&[], all), "* ESEARCH (TAG \"a1\") UID COUNT 0\r\n");
    }
}
