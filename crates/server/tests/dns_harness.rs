//! The loopback DNS harness, checked through hickory-resolver configured the way the server
//! points it at a configured resolver address: what MX routing will see, including the ways a
//! lookup fails (NXDOMAIN, NODATA, SERVFAIL, silence).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a failed unwrap is a failed assertion"
)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::dns::TestDns;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

/// A resolver that talks only to `server`, over UDP and TCP on its one port, with no system
/// configuration (no resolv.conf, no hosts file, no search domains) and the default cache.
/// `attempts` counts retries after the first try.
fn resolver(server: SocketAddr, timeout: Duration, attempts: usize) -> TokioResolver {
    let mut udp = ConnectionConfig::udp();
    udp.port = server.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = server.port();
    let name_server = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
    let config = ResolverConfig::from_name_servers(vec![name_server]);

    let mut options = ResolverOpts::default();
    options.timeout = timeout;
    options.attempts = attempts;
    options.use_hosts_file = ResolveHosts::Never;
    options.num_concurrent_reqs = 1;
    Resolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .expect("resolver")
}

/// The resolver most tests use: failures come back fast.
fn quick_resolver(dns: &TestDns) -> TokioResolver {
    resolver(dns.addr, Duration::from_secs(1), 0)
}

/// Runs `f` on a fresh single-threaded runtime: the tests themselves are synchronous, like
/// the ones that drive the real binary.
fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// What a mail server must do with a failed lookup.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// The name does not exist: permanent.
    NxDomain,
    /// The name exists but has no record of that type (for MX: fall back to A/AAAA).
    NoData,
    /// SERVFAIL, timeout, network trouble: try again later.
    Temporary,
}

fn classify(error: &NetError) -> Failure {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(NoRecords {
            response_code: ResponseCode::NXDomain,
            ..
        })) => Failure::NxDomain,
        NetError::Dns(DnsError::NoRecordsFound(_)) => Failure::NoData,
        _ => Failure::Temporary,
    }
}

fn zone() -> TestDns {
    TestDns::builder()
        .mx("example.test", 20, "mx2.example.test")
        .mx("example.test", 10, "mx1.example.test")
        .a("mx1.example.test", "127.0.0.2")
        .a("mx1.example.test", "127.0.0.3")
        .aaaa("mx1.example.test", "::1")
        .a("mx2.example.test", "127.0.0.4")
        .cname("alias.example.test", "mx1.example.test")
        .cname("alias2.example.test", "alias.example.test")
        .cname("mailalias.test", "example.test")
        .null_mx("nomail.test")
        .txt("example.test", "v=spf1 -all")
        .servfail("broken.test")
        .timeout("slow.test")
        .start()
}

fn mx_of(lookup: &hickory_resolver::lookup::Lookup) -> Vec<(u16, String)> {
    let mut mx: Vec<(u16, String)> = lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
            _ => None,
        })
        .collect();
    mx.sort();
    mx
}

#[test]
fn mx_records_with_preferences_and_caching() {
    let dns = zone();
    run(async {
        let resolver = quick_resolver(&dns);
        let lookup = resolver.mx_lookup("example.test.").await.unwrap();
        assert_eq!(
            mx_of(&lookup),
            [
                (10, "mx1.example.test.".to_string()),
                (20, "mx2.example.test.".to_string())
            ]
        );
        // Answered from the resolver's cache the second time.
        resolver.mx_lookup("example.test.").await.unwrap();
    });
    assert_eq!(dns.count("example.test", RecordType::MX), 1);
    assert_eq!(
        dns.queries(),
        [("example.test".to_string(), RecordType::MX)]
    );
}

#[test]
fn a_and_aaaa() {
    let dns = zone();
    run(async {
        let resolver = quick_resolver(&dns);
        let mut v4: Vec<Ipv4Addr> = resolver
            .ipv4_lookup("mx1.example.test.")
            .await
            .unwrap()
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        v4.sort();
        assert_eq!(
            v4,
            [Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3)]
        );

        let v6: Vec<Ipv6Addr> = resolver
            .ipv6_lookup("mx1.example.test.")
            .await
            .unwrap()
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::AAAA(aaaa) => Some(aaaa.0),
                _ => None,
            })
            .collect();
        assert_eq!(v6, [Ipv6Addr::LOCALHOST]);

        let mut all: Vec<IpAddr> = resolver
            .lookup_ip("mx1.example.test.")
            .await
            .unwrap()
            .iter()
            .collect();
        all.sort();
        assert_eq!(
            all,
            [
                IpAddr::from([127, 0, 0, 2]),
                IpAddr::from([127, 0, 0, 3]),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
    });
}

#[test]
fn cname_chain_of_two_is_followed() {
    let dns = zone();
    run(async {
        let resolver = quick_resolver(&dns);
        let ips: Vec<IpAddr> = resolver
            .lookup_ip("alias2.example.test.")
            .await
            .unwrap()
            .iter()
            .collect();
        assert!(ips.contains(&IpAddr::from([127, 0, 0, 2])), "{ips:?}");
        assert!(ips.contains(&IpAddr::V6(Ipv6Addr::LOCALHOST)), "{ips:?}");

        let lookup = resolver.ipv4_lookup("alias2.example.test.").await.unwrap();
        let cnames = lookup
            .answers()
            .iter()
            .filter(|r| r.record_type() == RecordType::CNAME)
            .count();
        assert_eq!(cnames, 2, "intermediate CNAMEs are kept: {lookup:?}");

        // MX through a CNAME works too.
        let lookup = resolver.mx_lookup("mailalias.test.").await.unwrap();
        assert_eq!(mx_of(&lookup).len(), 2);
    });
    // The server followed the chain itself: the resolver asked once per name and type.
    assert_eq!(dns.count("mx1.example.test", RecordType::A), 0);
    assert_eq!(dns.count("example.test", RecordType::MX), 0);
}

#[test]
fn null_mx() {
    let dns = zone();
    run(async {
        let lookup = quick_resolver(&dns)
            .mx_lookup("nomail.test.")
            .await
            .unwrap();
        let mx: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some(mx.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(mx.len(), 1);
        assert_eq!(mx[0].preference, 0);
        assert!(mx[0].exchange.is_root(), "{:?}", mx[0]);
    });
}

#[test]
fn nxdomain_nodata_and_servfail_are_told_apart() {
    let dns = zone();
    run(async {
        let resolver = quick_resolver(&dns);

        let nx = resolver.mx_lookup("nosuch.test.").await.unwrap_err();
        assert!(nx.is_nx_domain(), "{nx:?}");
        assert_eq!(classify(&nx), Failure::NxDomain);
        // The SOA in the authority section gives the negative-caching TTL.
        assert!(nx.clone().into_soa().is_some(), "{nx:?}");
        // ...so the second time it comes from the cache.
        resolver.mx_lookup("nosuch.test.").await.unwrap_err();
        assert_eq!(dns.count("nosuch.test", RecordType::MX), 1);

        // A name with an A record but no MX: NODATA (NOERROR, no answers).
        let nodata = resolver.mx_lookup("mx2.example.test.").await.unwrap_err();
        assert!(
            nodata.is_no_records_found() && !nodata.is_nx_domain(),
            "{nodata:?}"
        );
        assert_eq!(classify(&nodata), Failure::NoData);
        // An empty non-terminal exists too (RFC 8020).
        let ent = resolver.mx_lookup("test.").await.unwrap_err();
        assert_eq!(classify(&ent), Failure::NoData, "{ent:?}");

        let servfail = resolver.mx_lookup("broken.test.").await.unwrap_err();
        assert!(
            matches!(
                servfail,
                NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail))
            ),
            "{servfail:?}"
        );
        assert_eq!(classify(&servfail), Failure::Temporary);
        let servfail = resolver.lookup_ip("broken.test.").await.unwrap_err();
        assert_eq!(classify(&servfail), Failure::Temporary, "{servfail:?}");
    });
}

#[test]
fn silence_times_out() {
    let dns = zone();
    // In hickory-resolver 0.26 `attempts` is the number of *retries*: 1 means two tries, each
    // bounded by `timeout` (and each try over UDP may resend the datagram).
    let started = Instant::now();
    let error = run(async {
        resolver(dns.addr, Duration::from_secs(1), 1)
            .mx_lookup("slow.test.")
            .await
            .unwrap_err()
    });
    let elapsed = started.elapsed();
    assert!(matches!(error, NetError::Timeout), "{error:?}");
    assert_eq!(classify(&error), Failure::Temporary);
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(dns.count("slow.test", RecordType::MX) >= 2);
}

#[test]
fn txt_records_short_long_and_over_tcp() {
    let long = "k".repeat(600);
    let huge = "h".repeat(3000);
    let dns = TestDns::builder()
        .txt("example.test", "v=spf1 -all")
        .txt("key._domainkey.example.test", &long)
        .txt("huge.example.test", &huge)
        .start();
    run(async {
        let resolver = quick_resolver(&dns);
        let texts = |lookup: hickory_resolver::lookup::Lookup| -> Vec<Vec<usize>> {
            lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(txt.txt_data.iter().map(|s| s.len()).collect()),
                    _ => None,
                })
                .collect()
        };

        let spf = resolver.txt_lookup("example.test.").await.unwrap();
        let RData::TXT(txt) = &spf.answers()[0].data else {
            panic!("{spf:?}")
        };
        assert_eq!(&*txt.txt_data[0], b"v=spf1 -all");

        let dkim = resolver
            .txt_lookup("key._domainkey.example.test.")
            .await
            .unwrap();
        assert_eq!(texts(dkim), [vec![255, 255, 90]]);

        // Too big for UDP: truncated there, then fetched over TCP on the same port.
        let big = resolver.txt_lookup("huge.example.test.").await.unwrap();
        let sizes = texts(big);
        assert_eq!(sizes[0].iter().sum::<usize>(), 3000);
    });
    assert_eq!(dns.count("huge.example.test", RecordType::TXT), 2);
}
