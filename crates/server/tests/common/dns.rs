//! A real DNS server on loopback, serving a zone the test writes in code.
//!
//! MX routing, SPF and DKIM are only worth testing against the real wire protocol: the server
//! under test resolves with hickory-resolver exactly as in production, only pointed at
//! [`TestDns::addr`] instead of a public resolver. This server plays the part of that recursive
//! resolver for a made-up namespace (`.test`, RFC 2606), so nothing ever leaves 127.0.0.1.
//!
//! It is deliberately small: an in-memory map from names to record data, answered over UDP and
//! TCP on the same ephemeral port by a hand-written loop on top of hickory-proto's message
//! codec. hickory-server's `RequestHandler` would need the `async-trait` crate and its
//! Catalog/authority machinery knows nothing of the faults tests need (SERVFAIL, silence), so a
//! hundred lines of our own are simpler and show plainly what each query gets back:
//!
//! - a name with records of the asked type: those records, authoritative, NOERROR;
//! - a name that exists (it, or a name below it, has records) but has nothing of the asked
//!   type: NOERROR with no answers and a SOA in the authority section (NODATA);
//! - a name that does not exist: NXDOMAIN with a SOA in the authority section, so resolvers
//!   can cache the negative answer for the SOA's minimum TTL;
//! - a CNAME: the CNAME record, then the chain followed inside the zone, as a recursive
//!   resolver would return it, ending with the target's records of the asked type;
//! - a name marked [`TestDnsBuilder::servfail`]: SERVFAIL; one marked
//!   [`TestDnsBuilder::timeout`]: no response at all, over UDP or TCP.
//!
//! UDP answers larger than the client's EDNS buffer (512 bytes without EDNS) are truncated
//! (TC bit, no records), so a large TXT record makes the resolver retry over TCP, as on the
//! Internet.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// TTL of every record served, and the negative-caching TTL of the SOA: long enough that a
/// caching resolver really caches within a test, short enough not to matter.
const TTL: u32 = 60;

/// The UDP payload size this server advertises in its EDNS answers (the DNS flag day 2020
/// value).
const EDNS_PAYLOAD: u16 = 1232;

/// The zone a test defines: record data by lower-case, fully qualified owner name, plus the
/// names that fail.
#[derive(Default)]
struct Zone {
    records: HashMap<Name, Vec<RData>>,
    servfail: HashSet<Name>,
    timeout: HashSet<Name>,
}

/// Collects the zone for a [`TestDns`]. Every method takes names with or without the final
/// dot, in any case, and panics on malformed input: a typo in a test should fail loudly, not
/// turn into a surprising NXDOMAIN.
#[derive(Default)]
pub struct TestDnsBuilder {
    zone: Zone,
}

impl TestDnsBuilder {
    /// Adds any record data at `name`: the escape hatch for types without a helper (PTR, TLSA,
    /// SRV...).
    pub fn record(mut self, name: &str, data: RData) -> Self {
        self.zone.records.entry(fqdn(name)).or_default().push(data);
        self
    }

    /// Adds an MX record; call it again for more exchanges of the same domain.
    pub fn mx(self, name: &str, preference: u16, exchange: &str) -> Self {
        self.record(name, RData::MX(MX::new(preference, fqdn(exchange))))
    }

    /// Adds the RFC 7505 null MX (`MX 0 .`): the domain says it accepts no mail at all, which a
    /// sender must treat as a permanent failure rather than falling back to the A record.
    pub fn null_mx(self, name: &str) -> Self {
        self.record(name, RData::MX(MX::new(0, Name::root())))
    }

    /// Adds an A record; call it again for more addresses. Tests should stay in 127.0.0.0/8.
    pub fn a(self, name: &str, address: &str) -> Self {
        let address: Ipv4Addr = address
            .parse()
            .unwrap_or_else(|e| panic!("bad IPv4 address {address:?}: {e}"));
        self.record(name, RData::A(A(address)))
    }

    /// Adds an AAAA record; call it again for more addresses. Tests should stay on ::1.
    pub fn aaaa(self, name: &str, address: &str) -> Self {
        let address: Ipv6Addr = address
            .parse()
            .unwrap_or_else(|e| panic!("bad IPv6 address {address:?}: {e}"));
        self.record(name, RData::AAAA(AAAA(address)))
    }

    /// Makes `name` an alias of `target`. Chains (alias of an alias) are followed by the
    /// server; a name with a CNAME should have no other records, as in real DNS.
    pub fn cname(self, name: &str, target: &str) -> Self {
        self.record(name, RData::CNAME(CNAME(fqdn(target))))
    }

    /// Adds one TXT record (SPF, DKIM, DMARC...). Text longer than 255 bytes is split into
    /// 255-byte character-strings, as DNS requires and as DKIM keys usually are; readers of
    /// TXT records join them back.
    pub fn txt(self, name: &str, text: &str) -> Self {
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(255).collect();
        let chunks = if chunks.is_empty() {
            vec![&b""[..]]
        } else {
            chunks
        };
        self.record(name, RData::TXT(TXT::from_bytes(chunks)))
    }

    /// Every query for exactly `name` (any type) gets SERVFAIL: a temporary failure, after
    /// which a sender must retry later rather than bounce. A CNAME leading here fails too.
    pub fn servfail(mut self, name: &str) -> Self {
        self.zone.servfail.insert(fqdn(name));
        self
    }

    /// Every query for exactly `name` (any type) gets no response at all, over UDP and TCP,
    /// so the resolver runs into its own timeout. A CNAME leading here is silent too.
    pub fn timeout(mut self, name: &str) -> Self {
        self.zone.timeout.insert(fqdn(name));
        self
    }

    /// Binds UDP and TCP on the same ephemeral port of 127.0.0.1 (a resolver is configured
    /// with one address for both) and serves the zone from a background thread with its own
    /// tokio runtime, so plain synchronous tests can use it. The sockets are bound before this
    /// returns: queries sent right away are answered.
    pub fn start(self) -> TestDns {
        let (udp, tcp) = bind_same_port();
        let addr = udp.local_addr().expect("UDP local address");
        let queries = Arc::new(Mutex::new(Vec::new()));
        let server = Arc::new(Server {
            zone: self.zone,
            queries: queries.clone(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("test-dns-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("DNS runtime");
                runtime.block_on(async move {
                    let udp = tokio::net::UdpSocket::from_std(udp).expect("tokio UDP socket");
                    let tcp = tokio::net::TcpListener::from_std(tcp).expect("tokio TCP listener");
                    tokio::select! {
                        _ = stopped => {}
                        _ = serve_udp(udp, server.clone()) => {}
                        _ = serve_tcp(tcp, server) => {}
                    }
                });
                // Dropping the runtime here cancels the open TCP connections too.
            })
            .expect("spawn DNS thread");
        TestDns {
            addr,
            queries,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// A running DNS server; it stops (and its port closes) when dropped, so keep it alive for as
/// long as the server under test may resolve names.
pub struct TestDns {
    /// The address it answers on, UDP and TCP alike: give it to the server under test as its
    /// resolver.
    pub addr: SocketAddr,
    queries: Arc<Mutex<Vec<(String, RecordType)>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestDns {
    /// Starts describing a zone.
    pub fn builder() -> TestDnsBuilder {
        TestDnsBuilder::default()
    }

    /// Every question received so far, in order, as (lower-case name without the final dot,
    /// type), whether answered or not: lets a test assert what the server under test asked
    /// (and, with caching, what it did not ask again). UDP retransmissions and the TCP retry
    /// after a truncated answer each count as a question.
    pub fn queries(&self) -> Vec<(String, RecordType)> {
        self.queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many questions were received for `name` (any spelling) and `record_type`: the
    /// common shape of an assertion on [`TestDns::queries`].
    pub fn count(&self, name: &str, record_type: RecordType) -> usize {
        let name = display_name(&fqdn(name));
        self.queries()
            .iter()
            .filter(|(n, t)| *n == name && *t == record_type)
            .count()
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the serving tasks share.
struct Server {
    zone: Zone,
    queries: Arc<Mutex<Vec<(String, RecordType)>>>,
}

impl Server {
    /// The response to one request, or `None` to stay silent (a `timeout` name, or a packet
    /// that is not a query).
    fn respond(&self, request: &Message) -> Option<Message> {
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata = Metadata::response_from_request(&request.metadata);
        response.metadata.authoritative = true;
        // We follow CNAMEs like a recursive resolver, so say we are one.
        response.metadata.recursion_available = true;
        response.queries = request.queries.clone();
        if request.edns.is_some() {
            // RFC 6891: a query with OPT gets an answer with OPT.
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            response.edns = Some(edns);
        }
        if request.metadata.op_code != OpCode::Query {
            response.metadata.response_code = ResponseCode::NotImp;
            return Some(response);
        }
        let [query] = request.queries.as_slice() else {
            response.metadata.response_code = ResponseCode::FormErr;
            return Some(response);
        };
        let qtype = query.query_type();
        self.queries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((display_name(query.name()), qtype));

        // The owner of the first answer keeps the query's spelling (0x20 case randomisation).
        let mut owner = query.name().clone();
        let mut name = owner.to_lowercase();
        let mut visited = HashSet::new();
        loop {
            if self.zone.timeout.contains(&name) {
                return None;
            }
            if self.zone.servfail.contains(&name) || !visited.insert(name.clone()) {
                // A CNAME loop is a broken zone: SERVFAIL, like a real resolver.
                response.answers.clear();
                response.metadata.response_code = ResponseCode::ServFail;
                return Some(response);
            }
            let data = self
                .zone
                .records
                .get(&name)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let cname = data.iter().find_map(|d| match d {
                RData::CNAME(CNAME(target)) => Some(target.clone()),
                _ => None,
            });
            if let Some(target) = cname
                && qtype != RecordType::CNAME
                && qtype != RecordType::ANY
            {
                response.answers.push(Record::from_rdata(
                    owner,
                    TTL,
                    RData::CNAME(CNAME(target.clone())),
                ));
                owner = target.clone();
                name = target;
                continue;
            }
            let matching: Vec<Record> = data
                .iter()
                .filter(|d| qtype == RecordType::ANY || d.record_type() == qtype)
                .map(|d| Record::from_rdata(owner.clone(), TTL, d.clone()))
                .collect();
            if matching.is_empty() {
                // RFC 6604: the code describes the last name of the chain.
                if !self.exists(&name) {
                    response.metadata.response_code = ResponseCode::NXDomain;
                }
                response.authorities.push(soa_for(&name));
            }
            response.answers.extend(matching);
            return Some(response);
        }
    }

    /// A name exists if it or any name below it owns records (RFC 8020: an empty
    /// non-terminal such as `test.` is NODATA, not NXDOMAIN).
    fn exists(&self, name: &Name) -> bool {
        self.zone.records.keys().any(|owner| name.zone_of(owner))
    }
}

/// A SOA for negative answers, owned by the last two labels of `name` (our zones are flat;
/// resolvers only use it for the negative-caching TTL).
fn soa_for(name: &Name) -> Record {
    let mut apex = name.trim_to(2);
    apex.set_fqdn(true);
    let ns = Name::from_ascii("ns").and_then(|n| n.append_domain(&apex));
    let mbox = Name::from_ascii("hostmaster").and_then(|n| n.append_domain(&apex));
    let soa = SOA::new(
        ns.unwrap_or_else(|_| Name::root()),
        mbox.unwrap_or_else(|_| Name::root()),
        1,
        3600,
        600,
        86400,
        TTL,
    );
    Record::from_rdata(apex, TTL, RData::SOA(soa))
}

/// Answers datagrams until cancelled, one at a time (answers are computed without waiting).
async fn serve_udp(socket: tokio::net::UdpSocket, server: Arc<Server>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(request) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let Some(response) = server.respond(&request) else {
            continue;
        };
        let Ok(mut bytes) = response.to_vec() else {
            continue;
        };
        if bytes.len() > usize::from(request.max_payload()) {
            // Too big for the client's buffer: TC bit, no records; it will ask again over TCP.
            let Ok(truncated) = response.truncate().to_vec() else {
                continue;
            };
            bytes = truncated;
        }
        let _ = socket.send_to(&bytes, peer).await;
    }
}

/// Accepts TCP connections until cancelled, each served on its own task.
async fn serve_tcp(listener: tokio::net::TcpListener, server: Arc<Server>) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_tcp_connection(stream, server.clone()));
        }
    }
}

/// Answers the length-prefixed messages of one connection in order (RFC 1035 §4.2.2). A
/// `timeout` name gets no answer but the connection stays open, so later queries on it are
/// still answered, as with a slow upstream.
async fn serve_tcp_connection(
    mut stream: tokio::net::TcpStream,
    server: Arc<Server>,
) -> io::Result<()> {
    loop {
        let len = stream.read_u16().await?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        let request = Message::from_vec(&buf).map_err(io::Error::other)?;
        if let Some(response) = server.respond(&request) {
            let bytes = response.to_vec().map_err(io::Error::other)?;
            let len = u16::try_from(bytes.len()).map_err(io::Error::other)?;
            stream.write_u16(len).await?;
            stream.write_all(&bytes).await?;
        }
    }
}

/// A UDP socket and a TCP listener on the same ephemeral port of 127.0.0.1, non-blocking for
/// tokio. The kernel picks the UDP port; if another process holds it for TCP, try again.
fn bind_same_port() -> (UdpSocket, TcpListener) {
    let mut last_error = None;
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP on 127.0.0.1");
        let port = udp.local_addr().expect("UDP local address").port();
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(tcp) => {
                udp.set_nonblocking(true).expect("non-blocking UDP");
                tcp.set_nonblocking(true).expect("non-blocking TCP");
                return (udp, tcp);
            }
            Err(e) => last_error = Some(e),
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1: {last_error:?}");
}

/// `name` as a lower-case, fully qualified DNS name; panics on malformed names.
fn fqdn(name: &str) -> Name {
    let mut parsed =
        Name::from_ascii(name).unwrap_or_else(|e| panic!("bad DNS name {name:?}: {e}"));
    parsed.set_fqdn(true);
    parsed.to_lowercase()
}

/// How [`TestDns::queries`] spells a name: lower case, no final dot (`.` for the root).
fn display_name(name: &Name) -> String {
    let text = name.to_lowercase().to_ascii();
    match text.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => stripped.to_string(),
        _ => text,
    }
}
