//! The ValiMail ARC test suite (github.com/ValiMail/arc_test_suite, MIT, copied byte for byte
//! into `tests/data/arc/`) run through the path production uses: chain validation by
//! `Verifier::message`, sealing by `Signer` through the same call, keys served by a loopback
//! DNS server. Sealed messages are also checked by an independent implementation, dkimpy's
//! `arc_verify`, so our seals are not only accepted by the library that made them.
//!
//! The suite was written against draft-ietf-dmarc-arc-protocol-18, which became RFC 8617.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::dns::TestDns;
use posthorn::config::Config;
use posthorn::dns::Dns;
use posthorn::mailauth::keys::{self, Algorithm};
use posthorn::mailauth::sign::{Keyring, Signer};
use posthorn::mailauth::verify::{Client, Verifier, strip_own_results};
use yaml_rust2::{Yaml, YamlLoader};

/// The client every message comes from: outside `skip_networks` (emptied below), so the
/// checks run as for a foreign server.
const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Validation tests whose result we knowingly differ on, each with the reason (checked
/// against mail-auth 0.13.3, `src/arc/`, and the suite's own draft-ietf-dmarc-arc-protocol-18).
/// The test fails on any other mismatch, and also when one of these starts to agree with
/// the suite, so the list cannot go stale.
const EXCEPTIONS: &[&str] = &[
    // -- The suite, not us, departs from the specification. --
    // `cv:` is empty: the suite expects no result at all for a chain with an ARC-Seal
    // saying cv=fail (dkimpy, which the suite was made with, answers None, "the chain is
    // terminated"). draft-18 §5.2 steps 2 and 3.3 make such a chain "fail", which we say.
    "cv_fail_i1_as_cv_fail",
    "cv_fail_i2_as2_fail",
    "cv_fail_i2_as1_fail",
    // No c= in the AMS, a signature made with relaxed/relaxed. The suite (like dkimpy: "only
    // relaxed canonicalization used by ARC") then assumes relaxed; draft-18 §4.1.2 gives the
    // AMS the syntax and semantics of DKIM-Signature, whose default is simple/simple (RFC
    // 6376 §3.5), as mail-auth does (arc/parse.rs `Signature::parse`), so it fails.
    "ams_fields_c_na",
    // An empty h= in the AMS, expected to pass. RFC 6376 §3.5 needs at least one header
    // name there; mail-auth refuses the AMS as malformed (`Signature::parse`:
    // MissingParameters, reported as neutral "broken ARC chain").
    "ams_fields_h_empty",
    // -- mail-auth 0.13.3 is laxer than the specification (reported, not fixable here). --
    // ARC-Seal and ARC-Authentication-Results but no ARC-Message-Signature: draft-18 §5.2
    // step 3.1 says fail; mail-auth counts only AMS headers (arc/verify.rs: none found →
    // `ArcOutput::default()`, i.e. arc=none).
    "cv_fail_i1_ams_na",
    "ams_struct_missing",
    // a=rsa-sha1 (validly signed): RFC 8301 §3.1 says verifiers MUST NOT accept rsa-sha1;
    // mail-auth verifies it (common/crypto/ring_impls.rs, `..._SHA1_FOR_LEGACY_USE_ONLY`).
    "ams_fields_a_sha1",
    "as_fields_a_sha1",
    // No a= tag, which RFC 6376 §3.5 requires: mail-auth defaults it to rsa-sha256
    // (arc/parse.rs: `Signature` and `Seal` start as RsaSha256, a= is never required).
    "ams_fields_a_na",
    "as_fields_a_na",
    // An AMS whose h= covers ARC-Seal: draft-18 §4.1.2 says ARC header fields MUST NOT be
    // signed by the AMS; mail-auth does not look.
    "ams_fields_h_includes_as",
    // ARC-Seal tag lists that RFC 6376 §3.2 makes invalid, each validly signed: a bad tag
    // name `_=`, `s=` twice, an upper-case `S=` (tag names are case-sensitive), an empty
    // tag `;;`. mail-auth's tag scanner (common/parse.rs `TagParser::key`) lowercases names,
    // skips empty and unknown tags and keeps the last duplicate, so the seal verifies.
    "as_format_inv_tag_key",
    "as_format_tags_dup",
    "as_format_tags_key_case",
    "as_format_tags_sc",
];

/// Where the copied suite files are.
fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/arc")
        .join(name)
}

/// The scenarios (YAML documents) of one suite file.
fn scenarios(name: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(data(name)).expect("read the suite");
    YamlLoader::load_from_str(&unique_test_names(&text)).expect("parse the suite")
}

/// The suite text with repeated test names in a scenario made unique (`name#2`). The
/// validation suite gives four "Arc Seal Fields" tests (as_fields_b_*) two different
/// bodies under one name; PyYAML, which the upstream runner uses, keeps the last, so that
/// runner sees 171 tests. yaml-rust2 refuses duplicate keys instead; renaming runs all 175.
fn unique_test_names(text: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        if line.starts_with("---") {
            seen.clear();
        }
        let key = line
            .trim_end()
            .strip_suffix(':')
            .filter(|k| k.len() > 2 && k.starts_with("  ") && !k[2..].contains([' ', ':']));
        match key {
            Some(key) if !seen.insert(key.to_string()) => {
                let mut n = 2;
                while !seen.insert(format!("{key}#{n}")) {
                    n += 1;
                }
                out.push_str(&format!("{key}#{n}:\n"));
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// A scenario's `txt-records` as (name, text). Served as written: the suite folds long
/// keys over lines, which leaves whitespace inside `p=`, legal folding whitespace in a
/// DKIM key record (RFC 6376 §3.6.1).
fn txt_records(scenario: &Yaml) -> Vec<(String, String)> {
    scenario["txt-records"]
        .as_hash()
        .map(|records| {
            records
                .iter()
                .map(|(name, text)| {
                    (
                        name.as_str().expect("record name").to_string(),
                        text.as_str().expect("record text").trim_end().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A loopback DNS server publishing `records`.
fn serve(records: &[(String, String)]) -> TestDns {
    records
        .iter()
        .fold(TestDns::builder(), |builder, (name, text)| {
            builder.txt(name, text)
        })
        .start()
}

/// The message as it arrives over SMTP: the suite writes LF line ends (YAML), the wire has
/// CRLF, and DKIM/ARC canonicalization is defined on CRLF lines (RFC 6376 §3.4). The
/// suite's own runner hands the LF text to dkimpy, which converts the same way.
fn wire(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

/// A configuration for a verifier that calls itself `hostname`, checks loopback clients
/// and holds the keys given as (domain, selector, PEM file).
fn config(dir: &Path, hostname: &str, keys: &[(&str, &str, &Path)]) -> Config {
    try_config(dir, hostname, keys).expect("test configuration")
}

/// [`config`], or why the configuration was refused (a key it cannot load, say).
fn try_config(dir: &Path, hostname: &str, keys: &[(&str, &str, &Path)]) -> Result<Config, String> {
    let mut text = format!(
        "[server]\nhostname = \"{hostname}\"\ndata_dir = \"{}\"\n\n\
         [[listener]]\nrole = \"mx\"\naddress = \"127.0.0.1:0\"\n\n\
         [verify]\nskip_networks = []\n\n[dkim]\ngenerate_keys = false\n",
        dir.join("data").display()
    );
    for (domain, selector, file) in keys {
        write!(
            text,
            "\n[[dkim.key]]\ndomain = \"{domain}\"\nselector = \"{selector}\"\nfile = \"{}\"\n",
            file.display()
        )
        .unwrap();
    }
    posthorn::config::parse(&text, None).map_err(|e| e.to_string())
}

/// A verifier resolving through `dns`, as the server builds it.
fn verifier(dns: &TestDns, config: &Config) -> Verifier {
    let resolver = Dns::new(Some(dns.addr), Duration::from_secs(5)).expect("resolver");
    Verifier::new(resolver.authenticator(), config)
}

/// Runs `f` on a fresh single-threaded runtime, as the other harness tests do.
fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// What one pass through `Verifier::message` gave: the `arc=` keyword of the summary, the
/// `arc=` clause of our `Authentication-Results` (with mail-auth's reason), and the header
/// lines it prepends (an ARC set first when sealing).
struct Checked {
    keyword: String,
    clause: String,
    headers: String,
}

/// Checks `content` as mail from a foreign server, sealing as `seal` when given. `content`
/// is left as the server would store it (our own forged results stripped).
async fn check(
    verifier: &Verifier,
    content: &mut Vec<u8>,
    seal: Option<(&Signer, &str)>,
) -> Checked {
    let client = Client {
        ip: CLIENT_IP,
        helo: "client.test",
    };
    // The suite's sender; d1.example.org has no SPF record (spf=none), which ARC ignores.
    let spf = verifier
        .spf(&client, "jqd@d1.example.org")
        .await
        .expect("SPF never defers here");
    // The server strips them as the header section arrives, before any check.
    strip_own_results(content, verifier.authserv_id());
    let verdict = verifier.message(&client, &spf, content, seal).await;
    let keyword = verdict
        .summary
        .rsplit("arc=")
        .next()
        .unwrap_or_default()
        .to_string();
    let results = field(&verdict.headers, "Authentication-Results").unwrap_or_default();
    let clause = results
        .split("arc=")
        .nth(1)
        .and_then(|c| c.split(';').next())
        .map(|c| format!("arc={}", c.trim()))
        .unwrap_or_default();
    assert!(
        clause.starts_with(&format!("arc={keyword}")),
        "summary {:?} disagrees with {results:?}",
        verdict.summary
    );
    Checked {
        keyword,
        clause,
        headers: verdict.headers,
    }
}

/// The suite's chain validation state (Pass/Fail/None) for one of our `arc=` keywords.
/// mail-auth also answers `neutral` (a malformed ARC header, a body hash mismatch, an
/// expired AMS) and `permerror` (no usable key). ARC has only none, pass and fail
/// (draft-18 §4.4) and "any error validating [a chain] results in ... fail" (§5.2.1), so
/// both count as Fail here (that our header shows them is a separate finding, see
/// `arc_results_are_none_pass_or_fail`). `temperror` is left as it is: the test DNS never
/// fails, so one would be a fault of the setup and must show up as a mismatch.
fn as_cv(keyword: &str) -> &str {
    match keyword {
        "pass" => "Pass",
        "none" => "None",
        "fail" | "neutral" | "permerror" => "Fail",
        other => other,
    }
}

/// One validation-suite test as it went through our path.
struct Outcome {
    name: String,
    scenario: String,
    /// The suite's `cv` (Pass/Fail/None, or empty: see [`EXCEPTIONS`]).
    expected: String,
    checked: Checked,
}

/// Every validation-suite test through `Verifier::message`. Each scenario gets a fresh DNS
/// server and resolver: scenarios may publish different records under one name, and the
/// resolver caches.
fn run_validation_suite() -> Vec<Outcome> {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "mx.test", &[]);
    let mut outcomes = Vec::new();
    for scenario in scenarios("arc-draft-validation-tests.yml") {
        let title = scenario["description"].as_str().unwrap_or("?").trim();
        let dns = serve(&txt_records(&scenario));
        run(async {
            let verifier = verifier(&dns, &config);
            for (name, test) in scenario["tests"].as_hash().expect("tests") {
                let mut content = wire(test["message"].as_str().expect("message"));
                outcomes.push(Outcome {
                    name: name.as_str().expect("test name").to_string(),
                    scenario: title.to_string(),
                    expected: test["cv"].as_str().expect("cv").trim().to_string(),
                    checked: check(&verifier, &mut content, None).await,
                });
            }
        });
    }
    outcomes
}

#[test]
fn validation_suite() {
    let started = Instant::now();
    let outcomes = run_validation_suite();
    let mut passed = 0;
    let mut surprises = Vec::new();
    for outcome in &outcomes {
        let Outcome {
            name,
            scenario,
            expected,
            checked,
        } = outcome;
        let agrees = as_cv(&checked.keyword).eq_ignore_ascii_case(expected);
        let excepted = EXCEPTIONS.contains(&name.as_str());
        let line = format!(
            "{name} ({scenario}): expected {expected:?}, got {}",
            checked.clause
        );
        match (agrees, excepted) {
            (true, false) => passed += 1,
            (true, true) => {
                passed += 1;
                surprises.push(format!("{line}: listed as an exception but now agrees"));
            }
            (false, true) => println!("  exception {line}"),
            (false, false) => surprises.push(line),
        }
    }
    for missing in EXCEPTIONS
        .iter()
        .filter(|e| !outcomes.iter().any(|o| o.name == **e))
    {
        surprises.push(format!(
            "{missing}: listed as an exception but not in the suite"
        ));
    }
    let relabelled = outcomes
        .iter()
        .filter(|o| matches!(o.checked.keyword.as_str(), "neutral" | "permerror"))
        .count();
    println!(
        "ARC validation suite: {passed} of {} passed, {} known exceptions ({:.1?})",
        outcomes.len(),
        EXCEPTIONS.len(),
        started.elapsed()
    );
    println!("  {relabelled} results came as arc=neutral or arc=permerror, counted as Fail");
    assert!(
        surprises.is_empty(),
        "unexpected results:\n{}",
        surprises.join("\n")
    );
}

/// mail-auth reports a malformed ARC header or a body hash mismatch as neutral and a
/// missing or unparseable key as permerror, 53 of the suite's messages in all. The "arc"
/// method has exactly three results, none, pass and fail (draft-18 §10.1, the IANA
/// registration; §5.2.1 "any error ... results in ... fail"); `verify.rs` maps the others
/// to fail, which this checks over the whole suite.
#[test]
fn arc_results_are_none_pass_or_fail() {
    let unregistered: Vec<String> = run_validation_suite()
        .iter()
        .filter(|o| !matches!(o.checked.keyword.as_str(), "none" | "pass" | "fail"))
        .map(|o| format!("{}: {}", o.name, o.checked.clause))
        .collect();
    assert!(
        unregistered.is_empty(),
        "{} results:\n{}",
        unregistered.len(),
        unregistered.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Signing.
//
// The sign suite expects exact ARC-Seal and ARC-Message-Signature values made at fixed
// times (`t=12345`) with its 1024-bit key over headers it names (`sig-headers`). Our
// sealer stamps the current time, signs its own header list and writes its own
// Authentication-Results into the AAR, so the b= values cannot match byte for byte. What
// is compared instead: whether a set is added, its i= and cv=, a=, c=, the body hash bh=
// (time- and key-independent), and that the sealed message validates, with us as the
// next hop and with dkimpy.
// ---------------------------------------------------------------------------------------

/// dkimpy's ARC verifier over our test DNS: one line per message file, "cv reason".
const DKIMPY_ARC: &str = r#"
import sys
import dkim
import dns.resolver

resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["127.0.0.1"]
resolver.port = int(sys.argv[1])
resolver.lifetime = 10.0

def txt(name, timeout=5):
    try:
        answer = resolver.resolve(name.decode("ascii"), "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    return b"".join(b"".join(record.strings) for record in answer)

for path in sys.argv[2:]:
    with open(path, "rb") as message:
        cv, _, reason = dkim.arc_verify(message.read(), dnsfunc=txt)
    # None (not b"none") is dkimpy's answer for a chain whose newest seal says cv=fail.
    cv = cv.decode() if cv is not None else "terminated"
    print(cv, " ".join(str(reason).split()))
"#;

/// dkimpy's verdict (cv, reason) on each message, resolving through `dns`.
fn dkimpy_arc(dns: &TestDns, messages: &[Vec<u8>]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (n, message) in messages.iter().enumerate() {
        let path = dir.path().join(format!("{n}.eml"));
        std::fs::write(&path, message).unwrap();
        paths.push(path);
    }
    let output = Command::new("python3")
        .arg("-c")
        .arg(DKIMPY_ARC)
        .arg(dns.addr.port().to_string())
        .args(&paths)
        .output()
        .expect("run python3 (dkimpy and dnspython are needed)");
    assert!(
        output.status.success(),
        "dkimpy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<(String, String)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (cv, reason) = line.split_once(' ').unwrap_or((line, ""));
            (cv.to_string(), reason.to_string())
        })
        .collect();
    assert_eq!(
        lines.len(),
        messages.len(),
        "one dkimpy verdict per message"
    );
    lines
}

/// The header fields of `text` up to its first empty line, as (name, value) with
/// continuation lines joined: enough to read tags out of the ARC headers we add.
fn fields(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            fields.push((name.to_string(), value.to_string()));
        }
    }
    fields
}

/// The value of the first header field called `name` in `text`.
fn field(text: &str, name: &str) -> Option<String> {
    fields(text)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Tag `name` of a tag list (`a=...; b=...`), whitespace removed: folded b= and bh= values
/// compare equal however they were wrapped.
fn tag(list: &str, name: &str) -> Option<String> {
    list.split(';').find_map(|spec| {
        let (key, value) = spec.split_once('=')?;
        (key.trim() == name).then(|| value.split_whitespace().collect())
    })
}

/// The sealing side: keys in a temporary folder, the DNS publishing them (and the suite's
/// records), a forwarder `mx.test` sealing as example.org, a relay `relay.test` sealing as
/// example.net, and a next hop `next-hop.test` that only validates.
struct Lab {
    dns: TestDns,
    forwarder: Verifier,
    forwarder_signer: Signer,
    relay: Verifier,
    relay_signer: Signer,
    next_hop: Verifier,
    key_note: String,
    _dir: tempfile::TempDir,
}

/// The key the forwarder seals with: the suite's own (selector `dummy`, already in the
/// suite's records) when our configuration accepts it; otherwise a fresh RSA-2048 key under
/// selector `posthorn`, whose record is returned for publishing, and why. (aws-lc-rs
/// refuses RSA keys under 2048 bits; should it ever take this one and then fail to sign,
/// the forwarder adds no ARC set and `signing_suite` reports every test as not sealed.)
fn forwarder_key(dir: &Path, suite_pem: &str) -> (String, PathBuf, Option<String>, String) {
    let suite_file = dir.join("suite-dummy.pem");
    std::fs::write(&suite_file, suite_pem).unwrap();
    let loaded = try_config(dir, "probe.test", &[("example.org", "dummy", &suite_file)])
        .and_then(|config| Keyring::load(&config, &[]));
    match loaded {
        Ok(_) => (
            "dummy".into(),
            suite_file,
            None,
            "sealing with the suite's 1024-bit key (selector dummy)".into(),
        ),
        Err(why) => {
            let pem = keys::generate(Algorithm::Rsa).expect("generate a key");
            let file = dir.join("posthorn.pem");
            std::fs::write(&file, &pem).unwrap();
            let record = keys::parse(pem.as_bytes()).unwrap().txt_record();
            let note = format!(
                "the suite's 1024-bit RSA key is refused ({why}); sealing with a new \
                 2048-bit key, selector posthorn"
            );
            ("posthorn".into(), file, Some(record), note)
        }
    }
}

impl Lab {
    /// Sets everything up; `suite_records` are the sign suite's (its key for the ARC sets
    /// already in some messages).
    fn new(suite_pem: &str, suite_records: &[(String, String)]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let (selector, key_file, record, key_note) = forwarder_key(dir.path(), suite_pem);
        let relay_pem = keys::generate(Algorithm::Rsa).expect("generate a key");
        let relay_file = dir.path().join("relay.pem");
        std::fs::write(&relay_file, &relay_pem).unwrap();
        let mut records = suite_records.to_vec();
        if let Some(record) = record {
            records.push((format!("{selector}._domainkey.example.org"), record));
        }
        records.push((
            "relay._domainkey.example.net".into(),
            keys::parse(relay_pem.as_bytes()).unwrap().txt_record(),
        ));
        let dns = serve(&records);
        let forwarder_config = config(
            dir.path(),
            "mx.test",
            &[("example.org", &selector, &key_file)],
        );
        let relay_config = config(
            dir.path(),
            "relay.test",
            &[("example.net", "relay", &relay_file)],
        );
        let next_hop_config = config(dir.path(), "next-hop.test", &[]);
        Lab {
            forwarder: verifier(&dns, &forwarder_config),
            forwarder_signer: Signer::new(Keyring::load(&forwarder_config, &[]).unwrap()),
            relay: verifier(&dns, &relay_config),
            relay_signer: Signer::new(Keyring::load(&relay_config, &[]).unwrap()),
            next_hop: verifier(&dns, &next_hop_config),
            dns,
            key_note,
            _dir: dir,
        }
    }

    /// `content` after the forwarder has checked and sealed it: our headers (ARC set
    /// first, if one was added), then the message as stored. Also the forwarder's verdict.
    async fn seal(&self, content: &[u8]) -> (Vec<u8>, Checked) {
        let mut stored = content.to_vec();
        let checked = check(
            &self.forwarder,
            &mut stored,
            Some((&self.forwarder_signer, "example.org")),
        )
        .await;
        let mut sealed = checked.headers.clone().into_bytes();
        sealed.extend_from_slice(&stored);
        (sealed, checked)
    }

    /// The next hop's view of a message: its `arc=` keyword and clause.
    async fn validate(&self, message: &[u8]) -> Checked {
        check(&self.next_hop, &mut message.to_vec(), None).await
    }
}

/// The message with a line added at the end of its body: a change relaxed body
/// canonicalization does not hide.
fn tamper_body(message: &[u8]) -> Vec<u8> {
    let mut changed = message.to_vec();
    changed.extend_from_slice(b"P.S. added after sealing\r\n");
    changed
}

/// The message with its Subject changed (a signed header).
fn tamper_subject(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(message);
    assert!(text.contains("\r\nSubject: "), "a Subject to change");
    text.replacen("\r\nSubject: ", "\r\nSubject: Re: ", 1)
        .into_bytes()
}

/// One message for the two verifiers, with what each must say.
struct Case {
    label: String,
    message: Vec<u8>,
    /// Our next hop's verdict, as the suite writes it (Pass/Fail/None).
    ours: &'static str,
    /// dkimpy's cv. "terminated" is its None for a chain whose newest seal says cv=fail,
    /// the answer it also gives in the validation suite's cv_fail_* tests (see
    /// [`EXCEPTIONS`]); the specification calls that chain "fail".
    dkimpy: &'static str,
}

/// The cases for a sealed message whose chain passes: itself, and the negative controls,
/// its body or its Subject changed after sealing, which must fail everywhere.
fn passing_and_tampered(label: &str, sealed: Vec<u8>) -> Vec<Case> {
    vec![
        Case {
            label: format!("{label} +body"),
            message: tamper_body(&sealed),
            ours: "Fail",
            dkimpy: "fail",
        },
        Case {
            label: format!("{label} +subject"),
            message: tamper_subject(&sealed),
            ours: "Fail",
            dkimpy: "fail",
        },
        Case {
            label: label.to_string(),
            message: sealed,
            ours: "Pass",
            dkimpy: "pass",
        },
    ]
}

/// Seals one sign-suite message and compares the set we add with the suite's expected
/// one, as far as the current time and our own key and header list allow: whether there
/// is a set, AS i=/cv=/a=, AMS i=/a=/c=/bh=, AAR i=. Mismatches go to `problems`; the
/// messages to validate come back.
async fn seal_like_suite(
    lab: &Lab,
    name: &str,
    test: &Yaml,
    problems: &mut Vec<String>,
) -> Vec<Case> {
    let (sealed, checked) = lab.seal(&wire(test["message"].as_str().unwrap())).await;
    let expected_as = test["AS"].as_str().unwrap_or_default();
    let expected_ams = test["AMS"].as_str().unwrap_or_default();
    let expected_aar = test["AAR"].as_str().unwrap_or_default();
    let Some(ours_as) = field(&checked.headers, "ARC-Seal") else {
        if tag(expected_as, "i").is_some() {
            problems.push(format!("{name}: not sealed ({})", checked.clause));
        }
        // No new set, as the suite expects when the chain has failed already
        // (no_additional_sig): the message goes on with its failed chain.
        return vec![Case {
            label: name.to_string(),
            message: sealed,
            ours: "Fail",
            dkimpy: "terminated",
        }];
    };
    if tag(expected_as, "i").is_none() {
        problems.push(format!(
            "{name}: sealed, but the suite adds no set: {ours_as}"
        ));
        return Vec::new();
    }
    let ours_ams = field(&checked.headers, "ARC-Message-Signature").unwrap_or_default();
    let ours_aar = field(&checked.headers, "ARC-Authentication-Results").unwrap_or_default();
    let mut compare = |what: &str, ours: &str, suite: &str, tags: &[&str]| {
        for t in tags {
            let (ours, suite) = (tag(ours, t), tag(suite, t));
            if ours != suite {
                problems.push(format!(
                    "{name}: {what} {t}=: ours {ours:?}, suite {suite:?}"
                ));
            }
        }
    };
    compare("AS", &ours_as, expected_as, &["i", "cv", "a"]);
    compare("AMS", &ours_ams, expected_ams, &["i", "a", "c", "bh"]);
    compare("AAR", &ours_aar, expected_aar, &["i"]);
    if tag(&ours_as, "cv").as_deref() == Some("fail") {
        vec![Case {
            label: name.to_string(),
            message: sealed,
            ours: "Fail",
            dkimpy: "terminated",
        }]
    } else {
        passing_and_tampered(name, sealed)
    }
}

/// Runs every case through our next hop and dkimpy; returns the disagreements and prints
/// the rest.
async fn validate_everywhere(lab: &Lab, cases: &[Case]) -> Vec<String> {
    let messages: Vec<Vec<u8>> = cases.iter().map(|c| c.message.clone()).collect();
    let dkimpy = dkimpy_arc(&lab.dns, &messages);
    let mut problems = Vec::new();
    for (case, (dkimpy_cv, reason)) in cases.iter().zip(&dkimpy) {
        let ours = lab.validate(&case.message).await;
        let verdict = format!("ours {}; dkimpy {dkimpy_cv} ({reason})", ours.clause);
        if as_cv(&ours.keyword) != case.ours || dkimpy_cv != case.dkimpy {
            problems.push(format!(
                "{}: expected ours {}, dkimpy {}; got {verdict}",
                case.label, case.ours, case.dkimpy
            ));
        } else {
            println!("  {}: {verdict}", case.label);
        }
    }
    problems
}

/// The sign suite's scenarios and the one key and zone they all share.
fn sign_suite() -> (Vec<Yaml>, String, Vec<(String, String)>) {
    let suite = scenarios("arc-draft-sign-tests.yml");
    let pem = suite[0]["privatekey"]
        .as_str()
        .expect("privatekey")
        .to_string();
    let records = txt_records(&suite[0]);
    for scenario in &suite {
        assert_eq!(
            scenario["privatekey"].as_str(),
            Some(pem.as_str()),
            "one key"
        );
        assert_eq!(txt_records(scenario), records, "one zone");
        assert_eq!(scenario["domain"].as_str(), Some("example.org"));
    }
    (suite, pem, records)
}

#[test]
fn signing_suite() {
    let started = Instant::now();
    let (suite, pem, records) = sign_suite();
    let lab = Lab::new(&pem, &records);
    println!("ARC signing suite: {}", lab.key_note);
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    let mut names = Vec::new();
    run(async {
        for scenario in &suite {
            for (name, test) in scenario["tests"].as_hash().expect("tests") {
                let name = name.as_str().expect("test name");
                names.push(name.to_string());
                cases.extend(seal_like_suite(&lab, name, test, &mut problems).await);
            }
        }
        problems.extend(validate_everywhere(&lab, &cases).await);
    });
    let failed = names
        .iter()
        .filter(|n| {
            problems
                .iter()
                .any(|p| p.starts_with(&format!("{n}:")) || p.starts_with(&format!("{n} +")))
        })
        .count();
    println!(
        "ARC signing suite: {} of {} passed (set added or not, i=, cv=, a=, c=, bh= as the \
         suite says; {} messages incl. tampered copies validated by us and by dkimpy) ({:.1?})",
        names.len() - failed,
        names.len(),
        cases.len(),
        started.elapsed()
    );
    assert!(problems.is_empty(), "problems:\n{}", problems.join("\n"));
}

#[test]
fn second_hop_seals_our_chain() {
    let (suite, pem, records) = sign_suite();
    let lab = Lab::new(&pem, &records);
    let plain = wire(
        suite[1]["tests"]["i0_base"]["message"]
            .as_str()
            .expect("i0_base"),
    );
    let problems = run(async {
        // The forwarder seals (i=1); the relay checks that set and seals again as
        // example.net (i=2, cv=pass).
        let (first, _) = lab.seal(&plain).await;
        let mut stored = first;
        let relayed = check(
            &lab.relay,
            &mut stored,
            Some((&lab.relay_signer, "example.net")),
        )
        .await;
        assert_eq!(relayed.keyword, "pass", "the relay sees our i=1 set pass");
        let relay_as = field(&relayed.headers, "ARC-Seal").expect("the relay seals");
        for (t, value) in [
            ("i", "2"),
            ("cv", "pass"),
            ("d", "example.net"),
            ("s", "relay"),
        ] {
            assert_eq!(tag(&relay_as, t).as_deref(), Some(value), "{relay_as}");
        }
        let mut second = relayed.headers.into_bytes();
        second.extend_from_slice(&stored);
        validate_everywhere(&lab, &passing_and_tampered("two hops", second)).await
    });
    assert!(problems.is_empty(), "problems:\n{}", problems.join("\n"));
}

/// When mail-auth cannot make ARC sets out of a message's ARC headers (one it cannot
/// parse: i= out of range, b= missing...; sets that do not line up: a header missing or
/// repeated; seals without any ARC-Message-Signature), it hands `Signer::seal` fewer sets
/// than the headers number, and its sealer would number the new set from those (i=1 cv=none
/// for none), misstating the chain (draft-18 §5.1 wants the next instance, §5.1.2/§5.2
/// cv=fail for a failed chain). `Signer::seal` then adds no set; this checks that every
/// set we add over the suite's broken chains is the next instance with cv=fail.
#[test]
fn sealing_a_broken_chain_says_fail() {
    let (_, pem, _) = sign_suite();
    let mut wrong = Vec::new();
    for scenario in scenarios("arc-draft-validation-tests.yml") {
        let lab = Lab::new(&pem, &txt_records(&scenario));
        run(async {
            for (name, test) in scenario["tests"].as_hash().expect("tests") {
                let content = wire(test["message"].as_str().expect("message"));
                let Some(highest) = fields(&String::from_utf8_lossy(&content))
                    .iter()
                    .filter(|(n, _)| n.to_ascii_lowercase().starts_with("arc-"))
                    .map(|(_, v)| tag(v, "i").and_then(|i| i.parse::<u32>().ok()).unwrap_or(0))
                    .max()
                else {
                    continue; // no chain at all
                };
                let (_, checked) = lab.seal(&content).await;
                let Some(seal) = field(&checked.headers, "ARC-Seal") else {
                    continue; // not sealing a failed chain is allowed (§5.1 step 2)
                };
                let (i, cv) = (tag(&seal, "i"), tag(&seal, "cv"));
                let next = i.as_deref().and_then(|i| i.parse::<u32>().ok()) > Some(highest);
                if checked.keyword != "pass" && (cv.as_deref() != Some("fail") || !next) {
                    wrong.push(format!(
                        "{} ({}): new set i={} cv={} over instances up to {highest}",
                        name.as_str().unwrap_or("?"),
                        checked.clause,
                        i.unwrap_or_default(),
                        cv.unwrap_or_default()
                    ));
                }
            }
        });
    }
    assert!(
        wrong.is_empty(),
        "{} sealed wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
