//! Ordinary mail gives no findings: what a mail client sends every day must score zero.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;

#[test]
fn plain_text_mail() {
    let m = message(
        "Received: from mx.sender.example.net by mx.example.org; Thu, 15 Jan 2026 11:59:58 +0000\r\n",
        "Content-Type: text/plain; charset=utf-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Hi Bob,\r\n\r\nthe minutes are at https://wiki.sender.example.net/minutes/2026-01 as promised.\r\n\r\n\
         -- \r\nAlice\r\n",
    );
    let report = run(&m);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.url_domains, ["example.net"]);
}

#[test]
fn multipart_alternative_with_html() {
    let m = message(
        "",
        "Content-Type: multipart/alternative; boundary=\"=_alt_1\"\r\n\r\n\
         --=_alt_1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         Caf=C3=A9 on Friday? Menu: https://cafe.example.com/menu\r\n\
         --=_alt_1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
         <html><body><p>Caf=C3=A9 on Friday?</p><p><a href=3D\"https://cafe.example.com/menu\">cafe.example.com/me=\r\nnu</a>\
         </p><img src=3D\"cid:logo\"></body></html>\r\n\
         --=_alt_1--\r\n",
    );
    let report = run(&m);
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert_eq!(report.url_domains, ["example.com"]);
    assert_eq!(report.parts, 2);
}

#[test]
fn mail_with_pdf_and_docx_made_by_zip() {
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";
    assert!(
        run(&with_attachment(
            "Quarterly report.pdf",
            "application/pdf",
            pdf
        ))
        .findings
        .is_empty()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("word/_rels")).unwrap();
    std::fs::write(dir.path().join("[Content_Types].xml"), "<Types/>").unwrap();
    std::fs::write(
        dir.path().join("word/document.xml"),
        "<w:document/>".repeat(500),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("word/_rels/document.xml.rels"),
        "<Relationships/>",
    )
    .unwrap();
    let docx = zip_tool(dir.path(), &["-r", "[Content_Types].xml", "word"]);
    let report = run(&with_attachment(
        "Letter.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        &docx,
    ));
    assert!(report.findings.is_empty(), "{:?}", report.findings);
}
