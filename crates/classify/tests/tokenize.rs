//! Tokenization of hostile and oddly encoded input: never a panic, always bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use posthorn_classify::{Features, MAX_FEATURES, digest, features};

/// Every charset name (and alias) mail-parser 0.11.9 decodes, as its map spells them.
const CHARSETS: &[&str] = &[
    "850",
    "866",
    "ansi_x3.4_1968",
    "arabic",
    "ascii",
    "asmo_708",
    "big5",
    "big5_hkscs",
    "chinese",
    "cn_big5",
    "cp1250",
    "cp1251",
    "cp1252",
    "cp1253",
    "cp1254",
    "cp1255",
    "cp1256",
    "cp1257",
    "cp1258",
    "cp819",
    "cp850",
    "cp866",
    "cp936",
    "csbig5",
    "cseuckr",
    "cseucpkdfmtjapanese",
    "csgb18030",
    "csgb2312",
    "csgbk",
    "csibm866",
    "csiso2022jp",
    "csiso2022kr",
    "csiso58gb231280",
    "csiso885913",
    "csiso885914",
    "csiso885915",
    "csiso885916",
    "csiso88596e",
    "csiso88596i",
    "csiso88598e",
    "csiso88598i",
    "csisolatin1",
    "csisolatin2",
    "csisolatin3",
    "csisolatin4",
    "csisolatin5",
    "csisolatin6",
    "csisolatin9",
    "csisolatinarabic",
    "csisolatincyrillic",
    "csisolatingreek",
    "csisolatinhebrew",
    "cskoi8r",
    "cskoi8u",
    "csksc56011987",
    "csmacintosh",
    "cspc850multilingual",
    "csshiftjis",
    "cstis620",
    "csunicode",
    "csutf16",
    "csutf16be",
    "csutf16le",
    "csutf7",
    "cswindows1250",
    "cswindows1251",
    "cswindows1252",
    "cswindows1253",
    "cswindows1254",
    "cswindows1255",
    "cswindows1256",
    "cswindows1257",
    "cswindows1258",
    "cswindows874",
    "cyrillic",
    "dos_874",
    "ecma_114",
    "ecma_118",
    "elot_928",
    "euc_jp",
    "euc_kr",
    "extended_unix_code_packed_format_for_japanese",
    "gb18030",
    "gb2312",
    "gb_2312",
    "gb_2312_80",
    "gbk",
    "greek",
    "greek8",
    "hebrew",
    "hz_gb_2312",
    "ibm819",
    "ibm850",
    "ibm866",
    "iso88591",
    "iso885910",
    "iso885911",
    "iso885913",
    "iso885914",
    "iso885915",
    "iso88592",
    "iso88593",
    "iso88594",
    "iso88595",
    "iso88596",
    "iso88597",
    "iso88598",
    "iso88599",
    "iso8859_1",
    "iso8859_10",
    "iso8859_11",
    "iso8859_13",
    "iso8859_14",
    "iso8859_15",
    "iso8859_2",
    "iso8859_3",
    "iso8859_4",
    "iso8859_5",
    "iso8859_6",
    "iso8859_7",
    "iso8859_8",
    "iso8859_9",
    "iso_10646_ucs_2",
    "iso_2022_cn",
    "iso_2022_cn_ext",
    "iso_2022_jp",
    "iso_2022_kr",
    "iso_8859_1",
    "iso_8859_10",
    "iso_8859_10:1992",
    "iso_8859_11",
    "iso_8859_13",
    "iso_8859_14",
    "iso_8859_14:1998",
    "iso_8859_15",
    "iso_8859_16",
    "iso_8859_16:2001",
    "iso_8859_1:1987",
    "iso_8859_2",
    "iso_8859_2:1987",
    "iso_8859_3",
    "iso_8859_3:1988",
    "iso_8859_4",
    "iso_8859_4:1988",
    "iso_8859_5",
    "iso_8859_5:1988",
    "iso_8859_6",
    "iso_8859_6:1987",
    "iso_8859_6_e",
    "iso_8859_6_i",
    "iso_8859_7",
    "iso_8859_7:1987",
    "iso_8859_8",
    "iso_8859_8:1988",
    "iso_8859_8_e",
    "iso_8859_8_i",
    "iso_8859_9",
    "iso_8859_9:1989",
    "iso_celtic",
    "iso_ir_100",
    "iso_ir_101",
    "iso_ir_109",
    "iso_ir_110",
    "iso_ir_126",
    "iso_ir_127",
    "iso_ir_138",
    "iso_ir_144",
    "iso_ir_148",
    "iso_ir_149",
    "iso_ir_157",
    "iso_ir_199",
    "iso_ir_226",
    "iso_ir_58",
    "koi",
    "koi8",
    "koi8_r",
    "koi8_ru",
    "koi8_u",
    "korean",
    "ks_c_5601_1987",
    "ks_c_5601_1989",
    "ksc5601",
    "ksc_5601",
    "l1",
    "l10",
    "l2",
    "l3",
    "l4",
    "l5",
    "l6",
    "l8",
    "l9",
    "latin1",
    "latin10",
    "latin2",
    "latin3",
    "latin4",
    "latin5",
    "latin6",
    "latin8",
    "latin_9",
    "logical",
    "mac",
    "macintosh",
    "ms932",
    "ms936",
    "ms_kanji",
    "replacement",
    "shift_jis",
    "sjis",
    "sun_eu_greek",
    "tis_620",
    "ucs_2",
    "unicode",
    "unicodefeff",
    "unicodefffe",
    "us_ascii",
    "utf_16",
    "utf_16be",
    "utf_16le",
    "utf_7",
    "visual",
    "windows_1250",
    "windows_1251",
    "windows_1252",
    "windows_1253",
    "windows_1254",
    "windows_1255",
    "windows_1256",
    "windows_1257",
    "windows_1258",
    "windows_31j",
    "windows_874",
    "windows_936",
    "windows_949",
    "x_cp1250",
    "x_cp1251",
    "x_cp1252",
    "x_cp1253",
    "x_cp1254",
    "x_cp1255",
    "x_cp1256",
    "x_cp1257",
    "x_cp1258",
    "x_euc_jp",
    "x_gbk",
    "x_mac_cyrillic",
    "x_mac_roman",
    "x_mac_ukrainian",
    "x_sjis",
    "x_user_defined",
    "x_x_big5",
];

/// A small deterministic byte generator (xorshift), so hostile input is reproducible.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn message(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut message = headers.replace('\n', "\r\n").into_bytes();
    message.extend_from_slice(b"\r\n");
    message.extend_from_slice(body);
    message
}

#[test]
fn empty_and_binary_input_gives_bounded_features() {
    assert!(features(b"").len() <= MAX_FEATURES);
    for seed in 1..50 {
        let bytes = noise(seed, 4096 * seed as usize);
        assert!(features(&bytes).len() <= MAX_FEATURES);
    }
}

#[test]
fn binary_parts_are_structure_not_words() {
    let body = [
        b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n".as_slice(),
        &noise(7, 100_000),
        b"\r\n--b--\r\n",
    ]
    .concat();
    let with_binary = features(&message(
        "Subject: x\nContent-Type: multipart/mixed; boundary=b\n",
        &body,
    ));
    assert!(!with_binary.is_empty());
    assert!(
        with_binary.len() < 100,
        "a binary part gave {} features",
        with_binary.len()
    );
}

#[test]
fn huge_lines_and_huge_messages_are_bounded() {
    let line = vec![b'a'; 3 << 20];
    assert!(features(&message("Subject: long\n", &line)).len() <= MAX_FEATURES);
    let words: String = (0..200_000).map(|i| format!("w{i:x}q ")).collect();
    let many = features(&message("Subject: many\n", words.as_bytes()));
    assert_eq!(many.len(), MAX_FEATURES);
    let header = format!(
        "Subject: {}\nTo: {}\n",
        "z ".repeat(1 << 20),
        "a@b, ".repeat(1 << 18)
    );
    assert!(features(&message(&header, b"hi")).len() <= MAX_FEATURES);
}

#[test]
fn deep_nesting_is_bounded() {
    let mut body = b"innermost words here".to_vec();
    for depth in 0..200 {
        let boundary = format!("b{depth}");
        body = [
            format!("Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n--{boundary}\r\n")
                .as_bytes(),
            &body,
            format!("\r\n--{boundary}--\r\n").as_bytes(),
        ]
        .concat();
    }
    assert!(features(&message("Subject: nest\n", &body)).len() <= MAX_FEATURES);
}

#[test]
fn every_charset_decodes_without_panic() {
    let high: Vec<u8> = (0x80..=0xff).chain(0x20..0x7f).collect();
    for charset in CHARSETS {
        let headers = format!(
            "Subject: =?{charset}?B?wqTp4fI=?=\nContent-Type: text/plain; charset={charset}\n"
        );
        let plain = features(&message(&headers, &high));
        assert!(!plain.is_empty(), "{charset}");
        let html_headers = headers.replace("text/plain", "text/html");
        assert!(
            !features(&message(&html_headers, &high)).is_empty(),
            "{charset}"
        );
    }
}

#[test]
fn base64_and_quoted_printable_bodies_are_decoded() {
    let plain = features(&message(
        "Content-Type: text/plain\n",
        b"cheap replica watches today\r\n",
    ));
    let base64 = features(&message(
        "Content-Type: text/plain\nContent-Transfer-Encoding: base64\n",
        b"Y2hlYXAgcmVwbGljYSB3YXRjaGVzIHRvZGF5DQo=\r\n",
    ));
    let quoted = features(&message(
        "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n",
        b"cheap rep=\r\nlica watches =74oday\r\n",
    ));
    // The same words; only the encoding token differs.
    let shared =
        |a: &Features, b: &Features| a.hashes().iter().filter(|h| b.hashes().contains(h)).count();
    assert!(
        shared(&plain, &base64) + 1 >= plain.len(),
        "{plain:?} vs {base64:?}"
    );
    assert!(
        shared(&plain, &quoted) + 1 >= plain.len(),
        "{plain:?} vs {quoted:?}"
    );
    let broken = features(&message(
        "Content-Transfer-Encoding: base64\n",
        b"!!!!not base64 at all===\r\n",
    ));
    assert!(broken.len() <= MAX_FEATURES);
}

#[test]
fn html_obfuscation_is_read_through() {
    let plain = features(&message("Content-Type: text/plain\n", b"viagra"));
    let html = features(&message(
        "Content-Type: text/html\n",
        b"<p>V<!-- x -->IA<b>g</b>&#114;a</p>",
    ));
    assert!(plain.hashes().iter().any(|h| html.hashes().contains(h)));
    // Unterminated tags, comments and entities are text, not a panic.
    for hostile in [
        &b"<"[..],
        b"<!--",
        b"&#",
        b"&#x110000;",
        b"<a href=",
        b"<a href='",
        b"<script>",
        b"<</>>",
    ] {
        features(&message("Content-Type: text/html\n", hostile));
    }
}

#[test]
fn filter_headers_are_not_features() {
    let clean = features(&message("Subject: hello\n", b"body"));
    let marked = features(&message(
        "Subject: hello\nX-Spam-Status: Yes, score=99\nX-Posthorn-Spam: 0.99\nX-Spam-Flag: YES\n",
        b"body",
    ));
    assert_eq!(clean, marked);
}

#[test]
fn digest_is_the_identity_of_the_bytes() {
    assert_eq!(
        digest(b"Subject: a\r\n\r\nx"),
        digest(b"Subject: a\r\n\r\nx")
    );
    assert_ne!(
        digest(b"Subject: a\r\n\r\nx"),
        digest(b"Subject: a\r\n\r\ny")
    );
    assert_ne!(digest(b""), digest(b"\0"));
}
