//! Our DKIM signatures checked by two independent verifiers, with the public keys served by
//! the loopback DNS server (`common/dns.rs`) exactly as `posthorn dns-records` tells an admin
//! to publish them:
//!
//! - dkimpy (Python `dkim`): the library's `DKIM(msg).verify(idx, dnsfunc)` with a `dnsfunc`
//!   that asks our DNS through dnspython, once per signature; and its command-line
//!   `dkimverify`. That tool has no option for a name server, but it resolves through
//!   dnspython's module-level default resolver, so the test replaces that resolver with one
//!   pointed at our DNS and then runs the tool's own `main()`, unchanged. dkimpy checks
//!   Ed25519 with PyNaCl (`nacl`), an optional dependency: without it every ed25519-sha256
//!   signature fails, so the test demands it.
//! - OpenDKIM: Debian's `opendkim-testmsg` (opendkim-tools), the unmodified binary and
//!   libopendkim. It has no configuration file at all (its `-C` only makes a *signing* run
//!   end lines with CRLF; `TestPublicKeys`, `Nameservers` and friends belong to the milter's
//!   opendkim.conf, which this tool never reads), and Debian builds libopendkim without
//!   libunbound (`ldd` shows no libunbound): keys come from glibc's stub resolver
//!   (`res_ninit` + `res_nquery`) and so from the name servers in /etc/resolv.conf, which can
//!   only name port 53. (libopendkim's own `dkim_dns_nslist` is compiled only where
//!   `res_setservers` exists, i.e. not with glibc, and hard-codes port 53 anyway.) So the test
//!   preloads a small shim (compiled here with `cc`) that lets `res_ninit` read the system
//!   configuration as usual and then replaces its name server list with 127.0.0.1 and our
//!   port: the library's DNS code, EDNS and TXT parsing all run as in production, and the
//!   TXT query really reaches our DNS (the tests check the DNS saw it).
//!
//! This OpenDKIM (2.11.0~beta2, OpenSSL 3) verifies Ed25519 (RFC 8463) as well as RSA: our
//! ed25519-sha256 signatures pass alone, and fail with "Bad signature" when the DNS serves
//! another Ed25519 key, so both algorithms are asserted in both verifiers.
//!
//! `opendkim-testmsg` verifies the message on standard input and exits 0 with no output when
//! a signature passes; otherwise it prints `opendkim-testmsg: dkim_eom(): REASON` (or
//! `dkim_chunk(): ...` for a message it refuses to parse) and exits 70 (EX_SOFTWARE). With
//! several signatures it passes if any one does, so it is given one signature at a time.
//! libopendkim also insists on RFC 5322's required fields: a message without `Date:` is a
//! "Syntax error" before any key is fetched, so every sample has one.
//!
//! Negative controls keep the passes honest: a body changed after signing, a second `From:`
//! (or a `List-Unsubscribe:` the original did not have) added on top, which over-signing must
//! catch, and a DNS publishing some other key at our selectors all fail in both verifiers,
//! each next to the unmodified message passing with the same verifier and DNS.
//!
//! `white_space_only_last_lines_verify` covers our workaround of a bug in mail-auth's
//! relaxed body canonicalization (see there).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::dns::TestDns;
use hickory_proto::rr::RecordType;
use posthorn::mailauth::keys::Algorithm;
use posthorn::mailauth::sign::{Keyring, Signer};

/// The local domain whose mail we sign.
const DOMAIN: &str = "sender.test";

/// Where Debian puts the tool; root's PATH has /usr/sbin, other users' may not.
const OPENDKIM_TESTMSG: &str = "/usr/sbin/opendkim-testmsg";

// ---------------------------------------------------------------------------------------
// The signing side.

/// A keyring made the way the server makes one at start (`generate_keys`, the default) in a
/// fresh data folder, and the signer built on it.
struct Sender {
    _dir: tempfile::TempDir,
    signer: Signer,
}

impl Sender {
    fn new() -> Sender {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = format!(
            "[server]\nhostname = \"mx.test\"\ndata_dir = \"{}\"\n\n[[domain]]\nname = \"{DOMAIN}\"\n",
            dir.path().join("data").display()
        );
        let config = posthorn::config::parse(&text, None).expect("config parses");
        let keyring = Keyring::load(&config, &[DOMAIN.to_string()]).expect("keys made");
        Sender {
            _dir: dir,
            signer: Signer::new(keyring),
        }
    }

    /// (record name, TXT text, algorithm) for each key, as DNS must publish them.
    fn records(&self) -> Vec<(String, String, Algorithm)> {
        let (domain, keys) = self
            .signer
            .keyring()
            .for_domain(DOMAIN)
            .expect("keys for the domain");
        assert_eq!(domain, DOMAIN);
        keys.iter()
            .map(|k| {
                (
                    format!("{}._domainkey.{domain}", k.selector),
                    k.key.txt_record(),
                    k.key.algorithm,
                )
            })
            .collect()
    }

    /// The selector of our key of `algorithm`.
    fn selector(&self, algorithm: Algorithm) -> String {
        let (_, keys) = self.signer.keyring().for_domain(DOMAIN).expect("keys");
        keys.iter()
            .find(|k| k.key.algorithm == algorithm)
            .unwrap_or_else(|| panic!("no {algorithm:?} key"))
            .selector
            .clone()
    }

    /// A DNS server publishing our keys.
    fn zone(&self) -> TestDns {
        self.records()
            .iter()
            .fold(TestDns::builder(), |b, (name, txt, _)| b.txt(name, txt))
            .start()
    }

    /// A DNS server publishing `other`'s public keys under our selectors, algorithm for
    /// algorithm: what a verifier sees after a botched key rotation (or a forgery).
    fn zone_with_keys_of(&self, other: &Sender) -> TestDns {
        let theirs = other.records();
        self.records()
            .iter()
            .fold(TestDns::builder(), |b, (name, _, algorithm)| {
                let (_, txt, _) = theirs
                    .iter()
                    .find(|(_, _, a)| a == algorithm)
                    .expect("same algorithms");
                b.txt(name, txt)
            })
            .start()
    }

    /// The DKIM-Signature fields for `sample`, one per key.
    fn signatures(&self, sample: &Sample) -> Vec<Signature> {
        let (prepend, content): (&[u8], &[u8]) = match sample.parts.as_slice() {
            [content] => (b"", content),
            [prepend, content] => (prepend, content),
            _ => panic!("{}: one or two parts", sample.name),
        };
        // The signer may trim the copy it is given (see `white_space_only_last_lines_verify`);
        // the verifiers get the message as written, which must verify all the same.
        let block = self.signer.sign(prepend, &mut content.to_vec());
        assert!(
            block.ends_with("\r\n") && !block.contains("\n\n"),
            "{}: header block {block:?}",
            sample.name
        );
        let signatures: Vec<Signature> = fields(&block).into_iter().map(Signature::new).collect();
        assert_eq!(signatures.len(), 2, "{}: {block}", sample.name);
        signatures
    }
}

/// One DKIM-Signature header field as the signer produced it.
struct Signature {
    /// The whole field, folded lines and final CRLF included.
    field: String,
    /// Its tags, with folding white space taken out of the values.
    tags: BTreeMap<String, String>,
}

impl Signature {
    fn new(field: String) -> Signature {
        let (name, value) = field.split_once(':').expect("a header field");
        assert!(name.eq_ignore_ascii_case("DKIM-Signature"), "{field}");
        let tags = value
            .split(';')
            .filter_map(|tag| {
                let (key, value) = tag.split_once('=')?;
                let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                Some((key.trim().to_string(), value))
            })
            .collect();
        Signature { field, tags }
    }

    fn tag(&self, name: &str) -> &str {
        self.tags
            .get(name)
            .unwrap_or_else(|| panic!("no {name}= in {}", self.field))
    }

    /// `a=`.
    fn algorithm(&self) -> &str {
        self.tag("a")
    }

    /// The message signed with this signature alone.
    fn on(&self, message: &[u8]) -> Vec<u8> {
        [self.field.as_bytes(), message].concat()
    }
}

/// Splits a block of header lines into fields (continuation lines start with SP or HTAB).
fn fields(block: &str) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    for line in block.split_inclusive("\r\n") {
        if line.starts_with([' ', '\t']) {
            fields
                .last_mut()
                .expect("a field before its continuation")
                .push_str(line);
        } else {
            fields.push(line.to_string());
        }
    }
    fields
}

/// The message as it goes on the wire: all signatures on top of the content.
fn signed(signatures: &[Signature], sample: &Sample) -> Vec<u8> {
    let mut message: Vec<u8> = signatures.iter().flat_map(|s| s.field.bytes()).collect();
    message.extend(sample.whole());
    message
}

// ---------------------------------------------------------------------------------------
// The messages.

/// A message to sign, in the parts the signer is given (usually one).
struct Sample {
    name: &'static str,
    parts: Vec<Vec<u8>>,
}

impl Sample {
    fn new(name: &'static str, lines: &[&str]) -> Sample {
        Sample {
            name,
            parts: vec![crlf(lines)],
        }
    }

    /// The parts one after the other: what follows the signatures on the wire.
    fn whole(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

/// Lines joined and ended with CRLF, as on the wire.
fn crlf(lines: &[&str]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| [l.as_bytes(), b"\r\n"])
        .flatten()
        .copied()
        .collect()
}

/// A plain text message, the shape of most mail our users send.
fn plain() -> Sample {
    Sample::new(
        "plain",
        &[
            "From: Ann Example <ann@sender.test>",
            "To: Bob <bob@example.test>",
            "Subject: Lunch on Friday",
            "Date: Mon, 23 Nov 2026 10:00:00 +0000",
            "Message-ID: <plain.1@sender.test>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=us-ascii",
            "",
            "Hi Bob,",
            "",
            "shall we have lunch on Friday?",
            "",
            "Ann",
        ],
    )
}

/// Everything relaxed canonicalization exists for: folded fields, mixed-case names, runs of
/// white space, trailing white space on header and body lines, empty lines at the end.
fn messy() -> Sample {
    Sample::new(
        "messy",
        &[
            "from:   \"Ann Example\"   <ann@sender.test>  ",
            "tO: bob@example.test,",
            "\tcarol@example.test ,",
            "   dave@example.test",
            "SUBJECT: A subject long enough to be folded",
            " over several lines,\t with   tabs ",
            "\tand trailing white space   ",
            "date: Mon, 23 Nov 2026 10:00:00 +0000",
            "Message-Id:<messy.1@sender.test>",
            "MIME-version: 1.0",
            "content-TYPE: text/plain;",
            "  charset=\"us-ascii\"",
            "X-Mailer: something   unsigned\t",
            "",
            "Line with trailing spaces   ",
            "Line with a trailing tab\t",
            "  leading,   inner    and\ttabbed  runs",
            "",
            " \t ",
            "last words  ",
            "",
            "",
            "",
        ],
    )
}

/// An 8-bit UTF-8 body (8BITMIME) and a raw UTF-8 subject and display name (RFC 6532).
fn utf8() -> Sample {
    Sample::new(
        "utf8",
        &[
            "From: Jürgen Müller <juergen@sender.test>",
            "To: bob@example.test",
            "Subject: Grüße aus Köln — 東京",
            "Date: Mon, 23 Nov 2026 10:00:00 +0100",
            "Message-ID: <utf8.1@sender.test>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
            "",
            "Grüße aus Köln! Ça va? Ünïcödé everywhere.",
            "東京からこんにちは ✓ — ½ € ß",
            "Trailing non-breaking space:\u{a0}",
        ],
    )
}

/// A newsletter: multipart/alternative, quoted-printable parts, List-Unsubscribe (RFC 8058).
fn multipart() -> Sample {
    Sample::new(
        "multipart",
        &[
            "From: Sender News <news@sender.test>",
            "To: bob@example.test",
            "Subject: November news",
            "Date: Mon, 23 Nov 2026 10:00:00 +0000",
            "Message-ID: <multi.1@sender.test>",
            "List-Unsubscribe: <https://sender.test/u/42>, <mailto:unsub@sender.test?subject=42>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative;",
            " boundary=\"=_b_42\"",
            "",
            "This is a multi-part message in MIME format.",
            "",
            "--=_b_42",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "Hello Bob,",
            "",
            "caf=C3=A9 tonight? A soft line break =",
            "joins this.   ",
            "",
            "--=_b_42",
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "<html><body><p>Hello Bob,</p>",
            "<p>caf=C3=A9 tonight?</p></body></html>",
            "",
            "--=_b_42--",
            "",
        ],
    )
}

/// Mail from a subdomain, signed with the parent's keys (aligned under relaxed DMARC).
fn subdomain() -> Sample {
    Sample::new(
        "subdomain",
        &[
            "From: Alerts <alerts@ops.sender.test>",
            "To: bob@example.test",
            "Subject: Disk almost full",
            "Date: Mon, 23 Nov 2026 10:00:00 +0000",
            "Message-ID: <sub.1@ops.sender.test>",
            "",
            "/var is 91% full.",
        ],
    )
}

/// No body at all: relaxed body canonicalization of the empty body is an edge case.
fn empty_body() -> Sample {
    Sample::new(
        "empty body",
        &[
            "From: ann@sender.test",
            "To: bob@example.test",
            "Subject: (subject only)",
            "Date: Mon, 23 Nov 2026 10:00:00 +0000",
            "Message-ID: <empty.1@sender.test>",
            "",
        ],
    )
}

/// The plain message given to the signer in two parts, as the server does: the trace
/// header it prepends, then the content as received.
fn in_two_parts() -> Sample {
    Sample {
        name: "two parts",
        parts: vec![
            crlf(&[
                "Received: from client.example.test (client.example.test [127.0.0.1])",
                "\tby mx.test with ESMTPSA id 1A2B3C; Mon, 23 Nov 2026 10:00:01 +0000",
            ]),
            plain().whole(),
        ],
    }
}

/// A body whose last lines hold only white space (a client's stray indentation after the
/// sign-off). Relaxed canonicalization strips that white space first, which leaves empty
/// lines, and then drops the empty lines at the end (RFC 6376 3.4.4 a, then b).
fn blank_last_lines() -> Sample {
    Sample::new(
        "blank last lines",
        &[
            "From: ann@sender.test",
            "To: bob@example.test",
            "Subject: See you",
            "Date: Mon, 23 Nov 2026 10:00:00 +0000",
            "Message-ID: <blank.1@sender.test>",
            "",
            "See you,",
            "Ann",
            "  ",
            "\t",
            "",
        ],
    )
}

fn samples() -> Vec<Sample> {
    vec![
        plain(),
        messy(),
        utf8(),
        multipart(),
        subdomain(),
        empty_body(),
        in_two_parts(),
    ]
}

/// `message` with the first `from` replaced by `to` (which must be there).
fn replaced(message: &[u8], from: &str, to: &str) -> Vec<u8> {
    let at = message
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("{from:?} not in the message"));
    [&message[..at], to.as_bytes(), &message[at + from.len()..]].concat()
}

// ---------------------------------------------------------------------------------------
// dkimpy.

/// Verifies every DKIM-Signature of the message on stdin, one `DKIM.verify(idx)` call each,
/// the key fetched from our DNS (port in argv[1]) by dnspython; prints one line per
/// signature: index, a=, pass|fail, and what dkimpy logged as the reason.
const DKIMPY_LIBRARY: &str = r#"
import logging, sys
try:
    import dkim, dns.resolver
    from dkim.util import parse_tag_value
    import nacl.signing  # dkimpy verifies Ed25519 with PyNaCl and fails without it
except ImportError as e:
    print("missing Python module:", e, file=sys.stderr)
    sys.exit(3)

resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(sys.argv[1])

def dnsfunc(name, timeout=5):
    try:
        answer = resolver.resolve(name.decode("ascii"), "TXT", lifetime=timeout)
    except dns.resolver.NXDOMAIN:
        return None
    return b"".join(answer[0].strings)

class Reasons(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.seen = []
    def emit(self, record):
        self.seen.append(record.getMessage().replace("\t", " ").replace("\n", " "))

message = sys.stdin.buffer.read()
count = sum(1 for k, _ in dkim.DKIM(message).headers if k.lower() == b"dkim-signature")
for idx in range(count):
    reasons = Reasons()
    logger = logging.getLogger("dkimpy.%d" % idx)
    logger.setLevel(logging.INFO)
    logger.addHandler(reasons)
    d = dkim.DKIM(message, logger=logger)
    value = [v for k, v in d.headers if k.lower() == b"dkim-signature"][idx]
    algorithm = parse_tag_value(value)[b"a"].decode()
    try:
        ok = d.verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.DKIMException as e:  # a body hash mismatch, for one, is raised
        ok = False
        reasons.seen.append("%s: %s" % (type(e).__name__, e))
    print("%d\t%s\t%s\t%s" % (idx, algorithm, "pass" if ok else "fail", "; ".join(reasons.seen)))
"#;

/// Runs dkimpy's own `dkimverify` tool (argv: port, then the tool's arguments) with
/// dnspython's default resolver, the one the tool uses, pointed at our DNS.
const DKIMPY_CLI: &str = r#"
import sys
import dns.resolver
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(sys.argv[1])
dns.resolver.default_resolver = resolver
from dkim.dkimverify import main
sys.argv = ["dkimverify"] + sys.argv[2:]
main()
"#;

/// One signature as dkimpy judged it.
#[derive(Debug)]
struct Verdict {
    algorithm: String,
    pass: bool,
    reason: String,
}

/// Runs `python3 -c script args...` with `input` on stdin.
fn python(script: &str, args: &[String], input: &[u8]) -> Output {
    run(
        Command::new("python3").arg("-c").arg(script).args(args),
        input,
    )
    .unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}): dkimpy, dnspython and pynacl are needed (scripts/test-all installs them)")
    })
}

/// Starts `command`, writes `input` to its stdin and waits for it.
fn run(command: &mut Command, input: &[u8]) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output()?;
    // A verifier may stop reading early (and close the pipe) on a message it rejects.
    let _ = writer.join().expect("stdin writer");
    Ok(output)
}

/// dkimpy's verdict on each signature of `message`, in header order.
fn dkimpy(message: &[u8], dns: &TestDns) -> Vec<Verdict> {
    let output = python(DKIMPY_LIBRARY, &[dns.addr.port().to_string()], message);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() != Some(3),
        "dkimpy is not usable: {stderr}(scripts/test-all installs dkimpy, dnspython and pynacl)"
    );
    assert!(
        output.status.success(),
        "dkimpy script failed ({}): {stderr}",
        output.status
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let mut cols = line.splitn(4, '\t');
            let _index = cols.next();
            let algorithm = cols.next().expect("algorithm").to_string();
            let pass = match cols.next() {
                Some("pass") => true,
                Some("fail") => false,
                other => panic!("dkimpy said {other:?} in {line:?}"),
            };
            let reason = cols.next().unwrap_or_default().to_string();
            Verdict {
                algorithm,
                pass,
                reason,
            }
        })
        .collect()
}

/// dkimpy's verdict on the signature of `algorithm`.
fn dkimpy_on<'a>(verdicts: &'a [Verdict], algorithm: &str) -> &'a Verdict {
    let matching: Vec<&Verdict> = verdicts
        .iter()
        .filter(|v| v.algorithm == algorithm)
        .collect();
    assert_eq!(matching.len(), 1, "{algorithm} in {verdicts:?}");
    matching[0]
}

/// `dkimverify --index N`: true for "signature ok" (exit 0), false for "signature
/// verification failed" (exit 1).
fn dkimverify(message: &[u8], dns: &TestDns, index: usize) -> bool {
    let args = [
        dns.addr.port().to_string(),
        "--index".to_string(),
        index.to_string(),
    ];
    let output = python(DKIMPY_CLI, &args, message);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match (output.status.code(), stdout.trim()) {
        (Some(0), "signature ok") => true,
        (Some(1), "signature verification failed") => false,
        _ => panic!(
            "dkimverify: {} stdout {stdout:?} stderr {stderr:?}",
            output.status
        ),
    }
}

// ---------------------------------------------------------------------------------------
// OpenDKIM.

/// Preloaded into opendkim-testmsg: after glibc's `res_ninit` (which libopendkim calls to set
/// up its resolver; `res_init` too, for good measure) has read /etc/resolv.conf, the name
/// servers become just
/// 127.0.0.1:$DKIM_INTEROP_DNS_PORT. glibc keeps a list an application changed after
/// initialization ("something modified *ctx->resp. Do not override those changes", in
/// resolv_context.c). Without the variable it aborts rather than ask the real resolver.
const RESOLVER_SHIM: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdlib.h>

static void to_test_dns(res_state statp) {
    const char *port = getenv("DKIM_INTEROP_DNS_PORT");
    if (port == NULL || atoi(port) <= 0)
        abort();
    statp->nscount = 1;
    statp->nsaddr_list[0].sin_family = AF_INET;
    statp->nsaddr_list[0].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    statp->nsaddr_list[0].sin_port = htons((unsigned short) atoi(port));
}

int __res_ninit(res_state statp) {
    int (*real)(res_state) = (int (*)(res_state)) dlsym(RTLD_NEXT, "__res_ninit");
    int rc = real(statp);
    to_test_dns(statp);
    return rc;
}

int __res_init(void) {
    int (*real)(void) = (int (*)(void)) dlsym(RTLD_NEXT, "__res_init");
    int rc = real();
    to_test_dns(&_res);
    return rc;
}
"#;

/// opendkim-testmsg, with the resolver shim built in its own folder.
struct OpenDkim {
    _dir: tempfile::TempDir,
    shim: PathBuf,
    program: PathBuf,
}

impl OpenDkim {
    fn new() -> OpenDkim {
        let program = if Path::new(OPENDKIM_TESTMSG).exists() {
            PathBuf::from(OPENDKIM_TESTMSG)
        } else {
            PathBuf::from("opendkim-testmsg")
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let source = dir.path().join("resolver_shim.c");
        let shim = dir.path().join("resolver_shim.so");
        std::fs::write(&source, RESOLVER_SHIM).expect("write shim");
        let output = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&shim)
            .arg(&source)
            .output()
            .unwrap_or_else(|e| panic!("cannot run cc to build the resolver shim: {e}"));
        assert!(
            output.status.success(),
            "cc failed on the resolver shim:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        OpenDkim {
            _dir: dir,
            shim,
            program,
        }
    }

    /// Ok when opendkim-testmsg passes the message (exit 0, nothing printed), else its
    /// complaint ("dkim_eom(): Bad signature", ...; exit 70).
    fn verify(&self, message: &[u8], dns: &TestDns) -> Result<(), String> {
        let output = run(
            Command::new(&self.program)
                .env("LD_PRELOAD", &self.shim)
                .env("DKIM_INTEROP_DNS_PORT", dns.addr.port().to_string()),
            message,
        )
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): install Debian's opendkim-tools (scripts/test-all does)",
                self.program.display()
            )
        });
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) if stdout.is_empty() && stderr.is_empty() => Ok(()),
            Some(70) if stderr.starts_with("opendkim-testmsg: ") => Err(stderr
                .trim()
                .trim_start_matches("opendkim-testmsg: ")
                .to_string()),
            _ => panic!(
                "opendkim-testmsg: {} stdout {stdout:?} stderr {stderr:?}",
                output.status
            ),
        }
    }
}

/// How often the DNS was asked for the TXT record of our key of `algorithm`.
fn key_queries(dns: &TestDns, sender: &Sender, algorithm: Algorithm) -> usize {
    let name = format!("{}._domainkey.{DOMAIN}", sender.selector(algorithm));
    dns.count(&name, RecordType::TXT)
}

const ALGORITHMS: [(Algorithm, &str); 2] = [
    (Algorithm::Ed25519, "ed25519-sha256"),
    (Algorithm::Rsa, "rsa-sha256"),
];

/// The one signature with `a=algorithm`.
fn with_algorithm<'a>(signatures: &'a [Signature], algorithm: &str) -> &'a Signature {
    let found: Vec<&Signature> = signatures
        .iter()
        .filter(|s| s.algorithm() == algorithm)
        .collect();
    assert_eq!(found.len(), 1, "one {algorithm} signature");
    found[0]
}

// ---------------------------------------------------------------------------------------
// The tests.

#[test]
fn signatures_carry_the_expected_tags() {
    let sender = Sender::new();
    for sample in samples() {
        let signatures = sender.signatures(&sample);
        for (algorithm, a) in ALGORITHMS {
            let signature = with_algorithm(&signatures, a);
            let name = sample.name;
            assert_eq!(signature.tag("v"), "1", "{name}");
            assert_eq!(signature.tag("c"), "relaxed/relaxed", "{name}");
            assert_eq!(signature.tag("d"), DOMAIN, "{name}");
            assert_eq!(signature.tag("s"), sender.selector(algorithm), "{name}");
            let signed: Vec<String> = signature
                .tag("h")
                .split(':')
                .map(str::to_ascii_lowercase)
                .collect();
            // Every From present, plus once more: a From added later breaks the signature.
            let froms = signed.iter().filter(|h| *h == "from").count();
            assert!(froms >= 2, "{name}: h={:?}", signature.tag("h"));
            for header in ["subject", "date", "to", "message-id", "list-unsubscribe"] {
                assert!(
                    signed.iter().filter(|h| *h == header).count() >= 1,
                    "{name}: {header} not in h={:?}",
                    signature.tag("h")
                );
            }
            assert!(!signature.tag("bh").is_empty() && !signature.tag("b").is_empty());
        }
    }
    // The RSA record is longer than one DNS character-string, so the verifiers below must
    // join the 255-byte pieces back together.
    let (_, rsa_record, _) = sender
        .records()
        .into_iter()
        .find(|(_, _, a)| *a == Algorithm::Rsa)
        .expect("RSA record");
    assert!(rsa_record.len() > 255, "{rsa_record}");
}

#[test]
fn dkimpy_verifies_both_signatures() {
    let sender = Sender::new();
    let dns = sender.zone();
    let mut failures = Vec::new();
    for sample in samples() {
        let signatures = sender.signatures(&sample);
        let message = signed(&signatures, &sample);
        let verdicts = dkimpy(&message, &dns);
        assert_eq!(verdicts.len(), 2, "{}: {verdicts:?}", sample.name);
        for (_, a) in ALGORITHMS {
            let verdict = dkimpy_on(&verdicts, a);
            if !verdict.pass {
                failures.push(format!("{}: {a}: {}", sample.name, verdict.reason));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "dkimpy failed:\n{}",
        failures.join("\n")
    );
    for (algorithm, _) in ALGORITHMS {
        assert!(
            key_queries(&dns, &sender, algorithm) > 0,
            "{algorithm:?} key never asked for"
        );
    }
}

#[test]
fn dkimpy_command_line_verifies_both_signatures() {
    let sender = Sender::new();
    let dns = sender.zone();
    for sample in [plain(), messy(), utf8(), multipart()] {
        let signatures = sender.signatures(&sample);
        let message = signed(&signatures, &sample);
        // These samples have no unsigned field with a date in it: this changes Date.
        let tampered = replaced(&message, "23 Nov 2026", "24 Nov 2026");
        for (index, signature) in signatures.iter().enumerate() {
            let a = signature.algorithm();
            assert!(
                dkimverify(&message, &dns, index),
                "{}: dkimverify --index {index} ({a})",
                sample.name
            );
            assert!(
                !dkimverify(&tampered, &dns, index),
                "{}: dkimverify --index {index} ({a}) passed a changed Date",
                sample.name
            );
        }
    }
}

#[test]
fn opendkim_verifies_both_signatures() {
    let opendkim = OpenDkim::new();
    let sender = Sender::new();
    let dns = sender.zone();
    let mut failures = Vec::new();
    for sample in samples() {
        let signatures = sender.signatures(&sample);
        let whole = sample.whole();
        for (_, a) in ALGORITHMS {
            let message = with_algorithm(&signatures, a).on(&whole);
            if let Err(e) = opendkim.verify(&message, &dns) {
                failures.push(format!("{}: {a}: {e}", sample.name));
            }
        }
        // Both signatures at once pass as well (OpenDKIM passes a message if any one does).
        let both = signed(&signatures, &sample);
        if let Err(e) = opendkim.verify(&both, &dns) {
            failures.push(format!("{}: both: {e}", sample.name));
        }
    }
    assert!(
        failures.is_empty(),
        "OpenDKIM failed:\n{}",
        failures.join("\n")
    );
    for (algorithm, _) in ALGORITHMS {
        assert!(
            key_queries(&dns, &sender, algorithm) > 0,
            "OpenDKIM never asked our DNS for the {algorithm:?} key"
        );
    }
}

/// A change made to a signed message after signing.
type Tampering = fn(&[u8]) -> Vec<u8>;

/// What a forger or a careless relay does to the plain message, and what opendkim-testmsg
/// then says.
const TAMPERINGS: [(&str, Tampering, &str); 3] = [
    (
        "body changed",
        |m| replaced(m, "lunch on Friday?", "lunch on Monday?"),
        "dkim_eom(): Bad signature",
    ),
    // Above everything, where a reader's client looks first. libopendkim refuses a message
    // with two From fields outright (RFC 5322 allows one; dkim_geterror() says "multiple
    // From: header fields present") before any signature is checked, so for OpenDKIM the
    // next case is the one that shows over-signing at work.
    (
        "From added",
        |m| [b"From: CEO <ceo@sender.test>\r\n".as_slice(), m].concat(),
        "dkim_chunk(): Syntax error",
    ),
    // Absent when signed, yet named in h= (over-signed): adding one must break the signature,
    // where a signer listing only the fields present would let it through.
    (
        "List-Unsubscribe added",
        |m| [b"List-Unsubscribe: <https://evil.test/u>\r\n".as_slice(), m].concat(),
        "dkim_eom(): Bad signature",
    ),
];

#[test]
fn messages_changed_after_signing_fail_in_both_verifiers() {
    let opendkim = OpenDkim::new();
    let sender = Sender::new();
    let dns = sender.zone();
    let sample = plain();
    let signatures = sender.signatures(&sample);
    let message = signed(&signatures, &sample);

    // The controls: unchanged, the same message passes both, with the same DNS.
    let verdicts = dkimpy(&message, &dns);
    assert!(verdicts.iter().all(|v| v.pass), "{verdicts:?}");
    for (_, a) in ALGORITHMS {
        let one = with_algorithm(&signatures, a).on(&sample.whole());
        assert_eq!(opendkim.verify(&one, &dns), Ok(()), "control {a}");
    }

    for (case, tamper, opendkim_says) in TAMPERINGS {
        let verdicts = dkimpy(&tamper(&message), &dns);
        assert_eq!(verdicts.len(), 2, "{case}: {verdicts:?}");
        for (_, a) in ALGORITHMS {
            let verdict = dkimpy_on(&verdicts, a);
            assert!(!verdict.pass, "{case}: dkimpy passed {a}");
            if case == "body changed" {
                assert!(
                    verdict.reason.contains("body hash mismatch"),
                    "{case}: dkimpy {a}: {verdict:?}"
                );
            }
            let one = with_algorithm(&signatures, a).on(&sample.whole());
            let error = opendkim
                .verify(&tamper(&one), &dns)
                .expect_err(&format!("{case}: OpenDKIM passed {a}"));
            assert_eq!(error, opendkim_says, "{case}: OpenDKIM {a}");
        }
    }
}

#[test]
fn a_wrong_public_key_fails_in_both_verifiers() {
    let opendkim = OpenDkim::new();
    let sender = Sender::new();
    let other = Sender::new();
    let right = sender.zone();
    let wrong = sender.zone_with_keys_of(&other);
    let sample = plain();
    let signatures = sender.signatures(&sample);
    let message = signed(&signatures, &sample);

    let with_right = dkimpy(&message, &right);
    assert!(with_right.iter().all(|v| v.pass), "{with_right:?}");
    let with_wrong = dkimpy(&message, &wrong);
    assert_eq!(with_wrong.len(), 2, "{with_wrong:?}");
    for (_, a) in ALGORITHMS {
        let verdict = dkimpy_on(&with_wrong, a);
        assert!(!verdict.pass, "dkimpy passed {a} with the wrong key");
    }

    for (algorithm, a) in ALGORITHMS {
        let one = with_algorithm(&signatures, a).on(&sample.whole());
        assert_eq!(
            opendkim.verify(&one, &right),
            Ok(()),
            "{a} with the right key"
        );
        let error = opendkim
            .verify(&one, &wrong)
            .expect_err(&format!("OpenDKIM passed {a} with the wrong key"));
        assert_eq!(error, "dkim_eom(): Bad signature", "{a}");
        assert!(
            key_queries(&wrong, &sender, algorithm) > 0,
            "{a}: key not asked for"
        );
    }
}

/// mail-auth 0.13.3's relaxed body canonicalization turns a white-space-only line into an
/// empty line but then keeps it even at the end of the body, so on its own it would sign
/// "See you,\r\nAnn\r\n\r\n\r\n" where RFC 6376 3.4.4, dkimpy and OpenDKIM all hash
/// "See you,\r\nAnn\r\n" (minimal form: `Canonicalization::Relaxed.canonical_body(
/// b"a\r\n \r\n", 0)` writes "a\r\n\r\n"). Our signer trims such lines before signing
/// (`posthorn::mailauth::blank_tail`); this checks that the untrimmed message, as a
/// verifier could receive it, verifies everywhere.
#[test]
fn white_space_only_last_lines_verify() {
    let opendkim = OpenDkim::new();
    let sender = Sender::new();
    let dns = sender.zone();
    let sample = blank_last_lines();
    let signatures = sender.signatures(&sample);
    let mut failures = Vec::new();
    for verdict in dkimpy(&signed(&signatures, &sample), &dns) {
        if !verdict.pass {
            failures.push(format!("dkimpy {}: {}", verdict.algorithm, verdict.reason));
        }
    }
    for (_, a) in ALGORITHMS {
        let one = with_algorithm(&signatures, a).on(&sample.whole());
        if let Err(e) = opendkim.verify(&one, &dns) {
            failures.push(format!("OpenDKIM {a}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
