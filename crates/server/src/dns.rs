//! The one DNS resolver of the server (hickory-resolver): the system's configuration by
//! default, or a given nameserver, which is how tests serve real zones on loopback.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as ResolveError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

/// Why a lookup gave nothing, in the terms delivery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsError {
    /// NXDOMAIN: the name does not exist (permanent).
    NotFound,
    /// SERVFAIL, timeout, network trouble (try again later).
    Temporary(String),
}

/// The resolver.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl Dns {
    /// The system resolver, or `nameserver` (UDP and TCP on its port) when given.
    pub fn new(nameserver: Option<SocketAddr>, timeout: Duration) -> io::Result<Dns> {
        let builder = match nameserver {
            Some(server) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = server.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = server.port();
                let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                    server.ip(),
                    true,
                    vec![udp, tcp],
                )]);
                let mut options = ResolverOpts::default();
                options.use_hosts_file = ResolveHosts::Never;
                Resolver::builder_with_config(config, TokioRuntimeProvider::default())
                    .with_options(options)
            }
            None => Resolver::builder_tokio().map_err(io::Error::other)?,
        };
        let mut builder = builder;
        builder.options_mut().timeout = timeout;
        let resolver = builder.build().map_err(io::Error::other)?;
        Ok(Dns { resolver })
    }

    /// The same resolver for SPF, DKIM, DMARC and ARC: one cache, one configuration, and in
    /// tests the same loopback zone.
    pub fn authenticator(&self) -> mail_auth::MessageAuthenticator {
        mail_auth::MessageAuthenticator(self.resolver.clone())
    }

    /// The MX records of `domain` as (preference, exchange); empty when the domain exists
    /// but has none.
    pub async fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        match self.resolver.mx_lookup(fqdn(domain)).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect()),
            Err(e) => classify(e).map(|()| Vec::new()),
        }
    }

    /// The IPv4 addresses of `name`, which is how DNS lists answer (RFC 5782 §2.1); empty
    /// when the name does not exist, which is how they say "not listed".
    pub async fn ipv4(&self, name: &str) -> Result<Vec<std::net::Ipv4Addr>, DnsError> {
        match self.resolver.ipv4_lookup(fqdn(name)).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect()),
            Err(e) => match classify(e) {
                Ok(()) | Err(DnsError::NotFound) => Ok(Vec::new()),
                Err(temporary) => Err(temporary),
            },
        }
    }

    /// The IPv6 then IPv4 addresses of `host` (CNAMEs followed).
    pub async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let name = fqdn(host);
        let v6 = self.resolver.ipv6_lookup(name.clone()).await;
        let v4 = self.resolver.ipv4_lookup(name).await;
        let mut ips = Vec::new();
        let mut errors = Vec::new();
        match v6 {
            Ok(lookup) => ips.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })),
            Err(e) => errors.push(classify(e)),
        }
        match v4 {
            Ok(lookup) => ips.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                _ => None,
            })),
            Err(e) => errors.push(classify(e)),
        }
        if !ips.is_empty() {
            return Ok(ips);
        }
        // With nothing found, a temporary failure wins over "does not exist".
        for error in &errors {
            if let Err(DnsError::Temporary(e)) = error {
                return Err(DnsError::Temporary(e.clone()));
            }
        }
        if errors.len() == 2 && errors.iter().all(|e| *e == Err(DnsError::NotFound)) {
            return Err(DnsError::NotFound);
        }
        Ok(ips)
    }
}

/// NXDOMAIN → `NotFound`; no records of the type (NODATA) → `Ok`; the rest is temporary.
fn classify(error: NetError) -> Result<(), DnsError> {
    match error {
        NetError::Dns(ResolveError::NoRecordsFound(NoRecords {
            response_code: ResponseCode::NXDomain,
            ..
        })) => Err(DnsError::NotFound),
        NetError::Dns(ResolveError::NoRecordsFound(_)) => Ok(()),
        other => Err(DnsError::Temporary(other.to_string())),
    }
}

/// The name with its final dot, so no search domain is ever appended.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}
