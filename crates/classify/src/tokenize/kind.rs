//! Seeds of the token kinds: the same string is a different feature as a body word, a
//! subject word or a URL host, because it means something different in each place.

pub(crate) const BODY: u64 = 1;
pub(crate) const SUBJECT: u64 = 2;
pub(crate) const HEADER_NAME: u64 = 3;
pub(crate) const HEADER_VALUE: u64 = 4;
pub(crate) const HEADER_SHAPE: u64 = 5;
pub(crate) const URL_HOST: u64 = 6;
pub(crate) const URL_DOMAIN: u64 = 7;
pub(crate) const HTML_TAG: u64 = 8;
pub(crate) const MIME: u64 = 9;
pub(crate) const LONG_WORD: u64 = 10;
pub(crate) const NUMBER: u64 = 11;
pub(crate) const STRUCTURE: u64 = 12;
