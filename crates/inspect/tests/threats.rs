//! Attachment and archive symbols. Archives are made by Debian's Info-ZIP `zip` where it can
//! make them (plain, encrypted, nested, bomb-like); the ones no honest tool writes
//! (overlapping entries) are built by hand.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;

const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

fn attached(name: &str, data: &[u8]) -> Vec<&'static str> {
    symbols(&run(&with_attachment(
        name,
        "application/octet-stream",
        data,
    )))
}

#[test]
fn pdf_attachment_is_clean() {
    let report = run(&with_attachment("report.pdf", "application/pdf", PDF));
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.parts, 2);
}

#[test]
fn dangerous_names() {
    for name in [
        "setup.exe",
        "run.SCR",
        "a.js",
        "x.ps1",
        "disk.iso",
        "photo.lnk",
        "t.vhdx",
        "trailing.exe. ",
    ] {
        assert_eq!(attached(name, b"data"), ["ATTACH_DANGEROUS_NAME"], "{name}");
    }
    for name in ["notes.txt", "exe", "data.exec", "archive.tar"] {
        assert!(attached(name, b"data").is_empty(), "{name}");
    }
}

#[test]
fn double_extensions_and_bidi() {
    assert_eq!(
        attached("invoice.pdf.exe", b"data"),
        ["ATTACH_DANGEROUS_NAME", "ATTACH_DOUBLE_EXTENSION"]
    );
    assert_eq!(
        attached("invoice.pdf        .scr", b"data"),
        ["ATTACH_DANGEROUS_NAME", "ATTACH_DOUBLE_EXTENSION"]
    );
    assert!(attached("report.2026.pdf", b"data").is_empty());
    // "invoice" RLO "fdp.exe" displays as "invoiceexe.pdf".
    let report = run(&with_attachment(
        "invoice\u{202E}fdp.exe",
        "application/pdf",
        b"data",
    ));
    assert_eq!(
        symbols(&report),
        ["ATTACH_BIDI_NAME", "ATTACH_DANGEROUS_NAME"]
    );
    assert!(report.findings[0].detail.contains("<U+202E>"));
}

#[test]
fn content_by_magic() {
    assert_eq!(attached("invoice.pdf", &pe_bytes()), ["ATTACH_EXECUTABLE"]);
    assert_eq!(
        attached("data.bin", b"\x7fELF\x02\x01\x01\0"),
        ["ATTACH_EXECUTABLE"]
    );
    assert_eq!(
        attached("data.bin", b"\xcf\xfa\xed\xfe\x07\0\0\x01"),
        ["ATTACH_EXECUTABLE"]
    );
    assert_eq!(
        attached("notes.txt", b"#!/bin/sh\nrm -rf ~\n"),
        ["ATTACH_SCRIPT"]
    );
    let mut lnk =
        b"\x4c\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
            .to_vec();
    lnk.resize(76, 0);
    assert_eq!(attached("photo.jpg", &lnk), ["ATTACH_SHORTCUT"]);
    let mut iso = vec![0u8; 0x9000];
    iso[0x8000] = 1;
    iso[0x8001..0x8006].copy_from_slice(b"CD001");
    assert_eq!(attached("scan.pdf", &iso), ["ATTACH_DISK_IMAGE"]);
    assert_eq!(
        attached("x.dat", b"Rar!\x1a\x07\x01\x00rest"),
        ["ARCHIVE_UNLISTABLE"]
    );
    assert_eq!(
        attached("x.dat", b"7z\xbc\xaf\x27\x1c\x00\x04"),
        ["ARCHIVE_UNLISTABLE"]
    );
    assert_eq!(
        attached("x.gz", b"\x1f\x8b\x08\x00\x00\x00"),
        ["ARCHIVE_UNLISTABLE"]
    );
    // "MZ" text without a PE header is no executable.
    assert!(attached("notes.txt", b"MZ is a postcode prefix").is_empty());
}

#[test]
fn office_macros() {
    let mut ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1".to_vec();
    ole.resize(512, 0);
    let mut with_vba = ole.clone();
    with_vba.extend("_VBA_PROJECT".encode_utf16().flat_map(u16::to_le_bytes));
    assert_eq!(attached("budget.xls", &with_vba), ["OFFICE_MACRO"]);
    assert!(attached("budget.xls", &ole).is_empty());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("word")).unwrap();
    std::fs::write(dir.path().join("[Content_Types].xml"), "<Types/>").unwrap();
    std::fs::write(dir.path().join("word/document.xml"), "<w:document/>").unwrap();
    let docx = zip_tool(dir.path(), &["-r", "[Content_Types].xml", "word"]);
    assert!(attached("letter.docx", &docx).is_empty());
    std::fs::write(dir.path().join("word/vbaProject.bin"), &with_vba).unwrap();
    let docm = zip_tool(dir.path(), &["-r", "[Content_Types].xml", "word"]);
    assert_eq!(attached("letter.docx", &docm), ["OFFICE_MACRO"]);
}

#[test]
fn html_attachment_with_password_form() {
    let page = b"<html><form action='https://collect.example.net/'><input type=password name=p></form></html>";
    let report = run(&with_attachment("login.html", "text/html", page));
    assert_eq!(symbols(&report), ["ATTACH_HTML", "HTML_PASSWORD_FORM"]);
    let body = message(
        "",
        "Content-Type: text/html\r\n\r\n<form><input type=\"password\"></form>\r\n",
    );
    assert_eq!(symbols(&run(&body)), ["HTML_PASSWORD_FORM"]);
    let search = message(
        "",
        "Content-Type: text/html\r\n\r\n<form><input type=text name=q></form>\r\n",
    );
    assert!(run(&search).findings.is_empty());
}

#[test]
fn zip_listing_checks_entry_names_and_content() {
    let clean = zip_of(&[("report.pdf", PDF), ("notes.txt", b"hello")], &[]);
    assert!(attached("files.zip", &clean).is_empty());
    let report = run(&with_attachment(
        "files.zip",
        "application/zip",
        &zip_of(&[("invoice.pdf.exe", b"x")], &[]),
    ));
    assert_eq!(
        symbols(&report),
        ["ATTACH_DANGEROUS_NAME", "ATTACH_DOUBLE_EXTENSION"]
    );
    assert_eq!(report.findings[0].detail, "files.zip/invoice.pdf.exe");
    // An executable under a harmless name is found by its content, deflated or stored.
    let mut pe = pe_bytes();
    pe.extend(std::iter::repeat_n(b'A', 4096));
    assert_eq!(
        attached("files.zip", &zip_of(&[("photo.jpg", &pe)], &[])),
        ["ATTACH_EXECUTABLE"]
    );
    assert_eq!(
        attached("files.zip", &zip_of(&[("photo.jpg", &pe)], &["-0"])),
        ["ATTACH_EXECUTABLE"]
    );
}

#[test]
fn encrypted_zip() {
    let locked = zip_of(&[("invoice.pdf", PDF)], &["-P", "secret"]);
    assert_eq!(attached("invoice.zip", &locked), ["ARCHIVE_ENCRYPTED"]);
}

#[test]
fn nested_zips_and_depth() {
    let inner = zip_of(&[("run.exe", &pe_bytes())], &[]);
    let outer = zip_of(&[("inner.zip", &inner)], &[]);
    let report = run(&with_attachment("outer.zip", "application/zip", &outer));
    assert_eq!(
        symbols(&report),
        [
            "ARCHIVE_NESTED",
            "ATTACH_DANGEROUS_NAME",
            "ATTACH_EXECUTABLE"
        ]
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.detail == "outer.zip/inner.zip/run.exe")
    );
    // Five levels: the limit (3) stops the descent.
    let mut archive = inner;
    for level in 0..4 {
        archive = zip_of(&[(&format!("level{level}.zip"), &archive)], &[]);
    }
    let report = run(&with_attachment("deep.zip", "application/zip", &archive));
    assert!(report.has("ARCHIVE_TOO_DEEP"), "{:?}", report.findings);
    assert!(!report.has("ATTACH_EXECUTABLE"));
}

#[test]
fn zip_bomb_by_ratio() {
    // 16 MiB of zeros deflate to about 16 KiB: a ratio near 1000.
    let zeros = vec![0u8; 16 << 20];
    let bomb = zip_of(&[("zeros.bin", &zeros)], &[]);
    assert!(bomb.len() < 100_000);
    assert_eq!(attached("bomb.zip", &bomb), ["ARCHIVE_BOMB"]);
    // The same ratio on a small file is no evidence.
    assert!(attached("small.zip", &zip_of(&[("zeros.bin", &zeros[..4096])], &[])).is_empty());
}

/// A stored-entries zip written by hand: local headers, central directory, end record.
/// `overlap` points every central entry at the first local header, as non-recursive zip
/// bombs do.
fn handmade_zip(entries: usize, overlap: bool) -> Vec<u8> {
    let data = b"payload";
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut local_offsets = Vec::new();
    for i in 0..entries {
        let name = format!("f{i}.txt");
        local_offsets.push(out.len() as u32);
        if overlap && i > 0 {
            continue;
        }
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(data);
    }
    let cd_start = out.len() as u32;
    for (i, &offset) in local_offsets.iter().enumerate() {
        let name = format!("f{i}.txt");
        let offset = if overlap { 0 } else { offset };
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend((data.len() as u32).to_le_bytes());
        central.extend((data.len() as u32).to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0u8; 12]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    let count = entries.min(0xffff) as u16;
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_start.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[test]
fn handmade_zip_is_read_like_the_tool_ones() {
    assert!(attached("a.zip", &handmade_zip(3, false)).is_empty());
}

#[test]
fn overlapping_entries_are_a_bomb() {
    assert_eq!(attached("a.zip", &handmade_zip(3, true)), ["ARCHIVE_BOMB"]);
}

#[test]
fn too_many_entries() {
    let report = run(&with_attachment(
        "many.zip",
        "application/zip",
        &handmade_zip(1500, false),
    ));
    assert_eq!(symbols(&report), ["ARCHIVE_TOO_MANY_ENTRIES"]);
}

#[test]
fn broken_zip_is_unlistable() {
    let mut broken = zip_of(&[("a.txt", b"hello")], &[]);
    broken.truncate(broken.len() - 30);
    assert_eq!(attached("a.zip", &broken), ["ARCHIVE_UNLISTABLE"]);
}
