//! The remote transport: delivers jobs to other servers, found through MX records
//! (RFC 5321 §5), a configured per-domain route, or the relay host. One run keeps one
//! connection for every job the manager hands out for its destination.

pub(crate) mod connection;
mod idle;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use posthorn_proto::client::{Outgoing, TransactionEnd};
use posthorn_proto::dsn::xtext_encode;
use posthorn_proto::{BodyType, Reply, Ret, Status};
use posthorn_spool::{Diagnostic, DsnAction, Envelope, QueueStore};
use tracing::{info, warn};

use crate::accounts::users::LiveDirectory;
use crate::config::{HostSpec, NextHop, TlsPolicy};
use crate::delivery::local::local;
use crate::delivery::message::QueuedMessage;
use crate::dns::{Dns, DnsError};
use crate::queue::policy::Outcome;
use crate::queue::{Destination, Feed, Job, JobResult, Transport};
use connection::{Connection, Failure, Hop, Report, Settings, Source, diagnostic_of};
use idle::IdleConnections;

/// A configured next hop, ready to use.
#[derive(Debug, Clone)]
pub struct NextHopPlan {
    spec: HostSpec,
    tls: TlsPolicy,
    implicit_tls: bool,
    credentials: Option<(String, String)>,
}

impl NextHopPlan {
    /// From a `[relay]` or `[[route]]` entry (already validated).
    pub fn from_config(hop: &NextHop) -> Option<Self> {
        Some(NextHopPlan {
            spec: hop.target().ok()?,
            tls: hop.tls,
            implicit_tls: hop.implicit_tls,
            credentials: hop.credentials(),
        })
    }
}

/// Delivers to other servers.
pub struct Outbound {
    store: Arc<dyn QueueStore>,
    dns: Dns,
    settings: Arc<Settings>,
    mx_port: u16,
    mx_tls: TlsPolicy,
    relay: Option<NextHopPlan>,
    routes: HashMap<String, NextHopPlan>,
    own_listeners: Vec<SocketAddr>,
    hostname: String,
    max_hops: usize,
    directory: Arc<LiveDirectory>,
    idle: Arc<IdleConnections>,
}

/// What the outbound transport is built from.
pub struct OutboundParts {
    /// The spool, for message content.
    pub store: Arc<dyn QueueStore>,
    /// The resolver.
    pub dns: Dns,
    /// Connection settings.
    pub settings: Settings,
    /// Port of MX hosts.
    pub mx_port: u16,
    /// TLS policy for MX hosts.
    pub mx_tls: TlsPolicy,
    /// The smarthost.
    pub relay: Option<NextHopPlan>,
    /// Per-domain next hops, by lower-case domain.
    pub routes: HashMap<String, NextHopPlan>,
    /// Our own listening addresses: delivering to one of them would be a loop.
    pub own_listeners: Vec<SocketAddr>,
    /// Our host name: finding it among a domain's MX hosts means we are that MX.
    pub hostname: String,
    /// Most Received headers before a message is taken for a loop.
    pub max_hops: usize,
    /// The directory, for the sender forwarded mail leaves with (SRS).
    pub directory: Arc<LiveDirectory>,
}

impl Outbound {
    /// The transport.
    pub fn new(parts: OutboundParts) -> Self {
        let idle = Arc::new(IdleConnections::new(parts.settings.idle_limit));
        Outbound {
            store: parts.store,
            dns: parts.dns,
            settings: Arc::new(parts.settings),
            mx_port: parts.mx_port,
            mx_tls: parts.mx_tls,
            relay: parts.relay,
            routes: parts.routes,
            own_listeners: parts.own_listeners,
            hostname: parts.hostname.to_lowercase(),
            max_hops: parts.max_hops,
            directory: parts.directory,
            idle,
        }
    }

    /// Delivers one job, opening a connection if there is none. Returns the outcomes, and
    /// the reason when the destination could not be reached at all.
    async fn deliver(
        &self,
        destination: &Destination,
        job: &Job,
        connection: &mut Option<Connection>,
    ) -> (Vec<(usize, Outcome)>, Option<Diagnostic>) {
        let message = match self.open(job).await {
            Ok(message) => message,
            Err(why) => return (all(job, Outcome::Deferred(why)), None),
        };
        if message.hops() > self.max_hops {
            let why = local(
                Status::new(5, 4, 6),
                format!(
                    "mail loop: {} Received headers, more than {}",
                    message.hops(),
                    self.max_hops
                ),
            );
            return (all(job, Outcome::Failed(why)), None);
        }
        let reused = connection.is_some();
        if connection.is_none() {
            match self.connect(destination).await {
                Ok(opened) => *connection = Some(opened),
                Err(failure) => return self.unreachable(job, failure),
            }
        }
        let Some(open) = connection.as_mut() else {
            return (Vec::new(), None);
        };
        let attempt = self.transaction(open, job, message).await;
        match attempt {
            Ok(outcomes) => (outcomes, None),
            Err(_) if reused => {
                // A cached connection may have been closed by the server while idle: try
                // once more on a fresh one.
                *connection = None;
                let message = match self.open(job).await {
                    Ok(message) => message,
                    Err(why) => return (all(job, Outcome::Deferred(why)), None),
                };
                match self.connect(destination).await {
                    Ok(mut fresh) => {
                        let result = self.transaction(&mut fresh, job, message).await;
                        match result {
                            Ok(outcomes) => {
                                *connection = Some(fresh);
                                (outcomes, None)
                            }
                            Err(failure) => (all(job, failure_outcome(failure)), None),
                        }
                    }
                    Err(failure) => self.unreachable(job, failure),
                }
            }
            Err(failure) => {
                *connection = None;
                (all(job, failure_outcome(failure)), None)
            }
        }
    }

    /// A job's message: from memory when it carries its content, else read from the spool on
    /// a blocking thread.
    async fn open(&self, job: &Job) -> Result<QueuedMessage, Diagnostic> {
        if job.content.is_some() {
            return QueuedMessage::for_job(self.store.as_ref(), job).map_err(|e| unreadable(&e));
        }
        let (store, job) = (Arc::clone(&self.store), job.clone());
        match tokio::task::spawn_blocking(move || QueuedMessage::for_job(store.as_ref(), &job))
            .await
        {
            Ok(opened) => opened.map_err(|e| unreadable(&e)),
            Err(e) => Err(local(Status::new(4, 3, 0), format!("task failed: {e}"))),
        }
    }

    /// Every recipient of a job gets the connection failure; a temporary one also backs
    /// the destination off.
    fn unreachable(
        &self,
        job: &Job,
        failure: Failure,
    ) -> (Vec<(usize, Outcome)>, Option<Diagnostic>) {
        let permanent = failure.permanent;
        let diagnostic = failure.diagnostic.clone();
        let outcomes = all(job, failure_outcome(failure));
        (outcomes, (!permanent).then_some(diagnostic))
    }

    /// One SMTP transaction for `job` on `connection`. `Err` means the connection is lost.
    async fn transaction(
        &self,
        connection: &mut Connection,
        job: &Job,
        message: QueuedMessage,
    ) -> Result<Vec<(usize, Outcome)>, Failure> {
        let envelope = &job.envelope;
        let caps = connection.capabilities().clone();
        let mta = connection.hop.name.clone();
        let len = message.size();
        if !caps.accepts_size(len) {
            let why = local(
                Status::new(5, 3, 4),
                format!(
                    "message of {len} octets is larger than the {} octets {mta} accepts",
                    caps.size.unwrap_or(0)
                ),
            );
            return Ok(all(job, Outcome::Failed(why)));
        }
        // The manager keeps recipients forwarded by one domain in jobs of their own, so the
        // first recipient's sender is the job's.
        let sender = match job
            .recipients
            .first()
            .and_then(|&i| envelope.recipients.get(i))
        {
            Some(first) => self
                .directory
                .current()
                .forwarding_sender(&envelope.sender, first),
            None => envelope.sender.clone(),
        };
        let needs_utf8 = sender.mailbox().is_some_and(|m| !m.is_ascii())
            || job.recipients.iter().any(|&i| {
                envelope
                    .recipients
                    .get(i)
                    .is_some_and(|r| !r.address.is_ascii())
            });
        if needs_utf8 && !caps.smtputf8 {
            let why = local(
                Status::new(5, 6, 7),
                format!("{mta} does not support SMTPUTF8, needed for a non-ASCII address"),
            );
            return Ok(all(job, Outcome::Failed(why)));
        }
        let eight_bit = envelope.body == BodyType::EightBitMime;
        if eight_bit && !caps.eight_bit_mime && self.has_eight_bit(envelope).await {
            // We do not convert 8-bit content to 7-bit (RFC 6152 §3 allows either): the
            // sender hears that the next hop cannot take it.
            let why = local(
                Status::new(5, 6, 3),
                format!(
                    "{mta} does not accept 8-bit content (no 8BITMIME); conversion is not supported"
                ),
            );
            return Ok(all(job, Outcome::Failed(why)));
        }
        let mut mail_params = Vec::new();
        if caps.size.is_some() {
            mail_params.push(format!("SIZE={len}"));
        }
        if eight_bit && caps.eight_bit_mime {
            mail_params.push("BODY=8BITMIME".into());
        }
        // SMTPUTF8 when the client asked for it, or when an address needs it (an alias may
        // have expanded to a non-ASCII address the client never sent).
        if (envelope.smtputf8 || needs_utf8) && caps.smtputf8 {
            mail_params.push("SMTPUTF8".into());
        }
        if caps.dsn {
            match envelope.ret {
                Some(Ret::Full) => mail_params.push("RET=FULL".into()),
                Some(Ret::Headers) => mail_params.push("RET=HDRS".into()),
                None => {}
            }
            if let Some(envid) = &envelope.envid {
                mail_params.push(format!("ENVID={}", xtext_encode(envid)));
            }
        }
        let recipients = job
            .recipients
            .iter()
            .filter_map(|&i| envelope.recipients.get(i))
            .map(|r| {
                let mut params = Vec::new();
                if caps.dsn {
                    if let Some(notify) = r.notify {
                        params.push(format!("NOTIFY={}", notify.to_param()));
                    }
                    match &r.orcpt {
                        Some(orcpt) => params.push(format!("ORCPT={}", orcpt.to_param())),
                        None if r.rcpt != r.address.to_string() => {
                            let kind = if r.rcpt.is_ascii() { "rfc822" } else { "utf-8" };
                            params.push(format!("ORCPT={kind};{}", xtext_encode(&r.rcpt)));
                        }
                        None => {}
                    }
                }
                (r.address.to_string(), params)
            })
            .collect();
        let outgoing = Outgoing {
            from: sender.to_string(),
            mail_params,
            recipients,
            chunk_len: caps.chunking.then_some(len),
        };
        let mut source = Source::new(message);
        let report = connection.send(outgoing, &mut source).await?;
        let success = if caps.dsn {
            None
        } else {
            Some(DsnAction::Relayed)
        };
        Ok(outcomes(job, &report, &connection.hop, success))
    }

    /// Scans the content for octets above 127. Blocking read on a blocking thread.
    async fn has_eight_bit(&self, envelope: &Envelope) -> bool {
        let store = Arc::clone(&self.store);
        let id = envelope.id;
        let prepend_8bit = !envelope.prepend.is_ascii();
        let scan = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            let mut content = store.content(&id)?;
            let mut block = vec![0; 64 * 1024];
            loop {
                let n = content.reader.read(&mut block)?;
                if n == 0 {
                    return Ok(false);
                }
                if !block[..n].is_ascii() {
                    return Ok(true);
                }
            }
        })
        .await;
        prepend_8bit || !matches!(scan, Ok(Ok(false)))
    }

    /// Finds the hops of a destination and connects to the first that answers.
    async fn connect(&self, destination: &Destination) -> Result<Connection, Failure> {
        let hops = self.hops(destination).await?;
        let mut last = None;
        for hop in hops {
            let address = hop.address;
            match Connection::open(hop, Arc::clone(&self.settings)).await {
                Ok(connection) => {
                    info!(%destination, mta = %connection.hop.name, %address, tls = connection.tls.as_deref().unwrap_or("none"), "connected");
                    return Ok(connection);
                }
                Err(failure) => {
                    warn!(%destination, %address, error = %failure.diagnostic, "connection failed, trying the next host");
                    last = Some(failure);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Failure::local(
                Status::new(4, 4, 4),
                format!("no host to connect to for {destination}"),
                None,
            )
        }))
    }

    /// The hosts to try for a destination, in order.
    async fn hops(&self, destination: &Destination) -> Result<Vec<Hop>, Failure> {
        let (plan, domain) = match destination {
            Destination::Local => {
                return Err(Failure::local(
                    Status::new(4, 3, 5),
                    "local destination in the remote transport",
                    None,
                ));
            }
            Destination::Mx(domain) => (None, domain.clone()),
            Destination::Literal(ip) => {
                let hop = self.mx_hop(ip.to_string(), SocketAddr::new(*ip, self.mx_port));
                return self.resolved(vec![(0, hop)], Vec::new(), &ip.to_string());
            }
            Destination::Relay | Destination::Route(_) => {
                let plan = match destination {
                    Destination::Relay => self.relay.clone(),
                    Destination::Route(domain) => self.routes.get(domain).cloned(),
                    _ => None,
                };
                let Some(plan) = plan else {
                    return Err(Failure::local(
                        Status::new(4, 3, 5),
                        format!("no next hop configured for {destination}"),
                        None,
                    ));
                };
                let host = plan.spec.host.clone();
                (Some(plan), host)
            }
        };
        let names = match &plan {
            Some(plan) if !plan.spec.mx_lookup => vec![(0, plan.spec.host.clone())],
            _ => self.mx_hosts(&domain).await?,
        };
        let mut hops = Vec::new();
        let mut lookup_errors = Vec::new();
        for (preference, name) in names {
            let ips = match name.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => match self.dns.ips(&name).await {
                    Ok(ips) => ips,
                    Err(DnsError::NotFound) => Vec::new(),
                    // One broken MX host must not hold the domain's mail: try the others.
                    Err(DnsError::Temporary(e)) => {
                        lookup_errors.push(format!("address lookup of {name} failed: {e}"));
                        Vec::new()
                    }
                },
            };
            for ip in ips {
                let hop = match &plan {
                    Some(plan) => Hop {
                        name: name.clone(),
                        address: SocketAddr::new(ip, plan.spec.port),
                        tls: plan.tls,
                        implicit_tls: plan.implicit_tls,
                        credentials: plan.credentials.clone(),
                    },
                    None => self.mx_hop(name.clone(), SocketAddr::new(ip, self.mx_port)),
                };
                hops.push((preference, hop));
            }
        }
        self.resolved(hops, lookup_errors, &domain)
    }

    /// The hops to try, after RFC 5321 §5.1's rule: a host that is ourselves (by its
    /// address) removes itself and every host of equal or worse preference.
    fn resolved(
        &self,
        hops: Vec<(u16, Hop)>,
        lookup_errors: Vec<String>,
        target: &str,
    ) -> Result<Vec<Hop>, Failure> {
        let own = hops
            .iter()
            .filter(|(_, hop)| self.is_own(hop.address))
            .map(|(preference, _)| *preference)
            .min();
        let usable: Vec<Hop> = hops
            .into_iter()
            .filter(|(preference, _)| own.is_none_or(|own| *preference < own))
            .map(|(_, hop)| hop)
            .collect();
        if !usable.is_empty() {
            return Ok(usable);
        }
        if own.is_some() {
            return Err(Failure::local(
                Status::new(5, 4, 6),
                format!("mail for {target} loops back to myself"),
                None,
            ));
        }
        if let Some(error) = lookup_errors.into_iter().next() {
            return Err(Failure::local(Status::new(4, 4, 3), error, None));
        }
        Err(Failure::local(
            Status::new(4, 4, 4),
            format!("no address found for {target}"),
            None,
        ))
    }

    fn mx_hop(&self, name: String, address: SocketAddr) -> Hop {
        Hop {
            name,
            address,
            tls: self.mx_tls,
            implicit_tls: false,
            credentials: None,
        }
    }

    /// RFC 5321 §5.1: MX hosts by preference, random among equals; the domain itself when
    /// it has no MX; none at all for a null MX (RFC 7505). When our own name is among them,
    /// it and every host of equal or worse preference are dropped (we are that MX).
    async fn mx_hosts(&self, domain: &str) -> Result<Vec<(u16, String)>, Failure> {
        let records = match self.dns.mx(domain).await {
            Ok(records) => records,
            Err(DnsError::NotFound) => {
                return Err(Failure::local(
                    Status::new(5, 1, 2),
                    format!("domain {domain} does not exist"),
                    None,
                ));
            }
            Err(DnsError::Temporary(e)) => {
                return Err(Failure::local(
                    Status::new(4, 4, 3),
                    format!("MX lookup of {domain} failed: {e}"),
                    None,
                ));
            }
        };
        if records.is_empty() {
            return Ok(vec![(0, domain.to_string())]);
        }
        if records.len() == 1 && records[0].1.trim_end_matches('.').is_empty() {
            return Err(Failure::local(
                Status::new(5, 1, 10),
                format!("domain {domain} does not accept mail (null MX)"),
                None,
            ));
        }
        let mut records: Vec<(u16, String)> = records
            .into_iter()
            .map(|(preference, host)| (preference, host.trim_end_matches('.').to_lowercase()))
            .collect();
        if let Some(own) = records
            .iter()
            .filter(|(_, host)| *host == self.hostname)
            .map(|(p, _)| *p)
            .min()
        {
            records.retain(|(preference, _)| *preference < own);
            if records.is_empty() {
                return Err(Failure::local(
                    Status::new(5, 4, 6),
                    format!("mail for {domain} loops back to myself ({})", self.hostname),
                    None,
                ));
            }
        }
        shuffle(&mut records);
        records.sort_by_key(|(preference, _)| *preference);
        Ok(records)
    }

    fn is_own(&self, address: SocketAddr) -> bool {
        self.own_listeners.iter().any(|own| {
            own.port() == address.port()
                && (own.ip() == address.ip()
                    || (own.ip().is_unspecified() && address.ip().is_loopback()))
        })
    }
}

impl Transport for Outbound {
    fn run(
        self: Arc<Self>,
        destination: Destination,
        job: Job,
        feed: Feed,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut connection = self.idle.take(&destination).await;
            let mut next = Some(job);
            let mut all_delivered = true;
            while let Some(job) = next {
                let (outcomes, unreachable) =
                    self.deliver(&destination, &job, &mut connection).await;
                all_delivered &= outcomes
                    .iter()
                    .all(|(_, outcome)| matches!(outcome, Outcome::Delivered { .. }));
                let id = job.envelope.id;
                next = feed
                    .next(
                        JobResult {
                            id,
                            outcomes,
                            spawned: Vec::new(),
                        },
                        unreachable,
                    )
                    .await;
            }
            // A connection whose server refused something is not kept: the next
            // attempt starts afresh, as it would at a server that counts per connection.
            let closing = match connection {
                Some(open) if all_delivered => self.idle.park(destination, open),
                other => other,
            };
            if let Some(connection) = closing {
                connection.quit().await;
            }
        })
    }

    fn destination(&self, envelope: &Envelope, index: usize) -> Destination {
        let Some(recipient) = envelope.recipients.get(index) else {
            return Destination::Local;
        };
        let domain = recipient.address.domain_key();
        if self.routes.contains_key(&domain) {
            Destination::Route(domain)
        } else if self.relay.is_some() {
            Destination::Relay
        } else if let Some(ip) = recipient.address.literal_ip() {
            Destination::Literal(ip)
        } else {
            Destination::Mx(domain)
        }
    }
}

fn unreadable(e: &std::io::Error) -> Diagnostic {
    local(
        Status::new(4, 3, 0),
        format!("cannot read the queued message: {e}"),
    )
}

/// The same outcome for every recipient of a job.
fn all(job: &Job, outcome: Outcome) -> Vec<(usize, Outcome)> {
    job.recipients
        .iter()
        .map(|&i| (i, outcome.clone()))
        .collect()
}

fn failure_outcome(failure: Failure) -> Outcome {
    if failure.permanent {
        Outcome::Failed(failure.diagnostic)
    } else {
        Outcome::Deferred(failure.diagnostic)
    }
}

/// Outcomes from a transaction's replies: a recipient refused at RCPT keeps that reply;
/// an accepted one gets the verdict on the content.
fn outcomes(
    job: &Job,
    report: &Report,
    server: &Hop,
    success: Option<DsnAction>,
) -> Vec<(usize, Outcome)> {
    let verdict = |reply: &Reply, context: &str| -> Outcome {
        let diagnostic = diagnostic_of(reply, server, context);
        match reply.code / 100 {
            2 => Outcome::Delivered {
                diagnostic,
                dsn: success,
            },
            4 => Outcome::Deferred(diagnostic),
            _ => Outcome::Failed(diagnostic),
        }
    };
    job.recipients
        .iter()
        .enumerate()
        .map(|(position, &index)| {
            let rcpt = report.recipients.get(position).cloned().flatten();
            let outcome = match (&report.end, rcpt) {
                (TransactionEnd::MailRefused(reply), _) => verdict(reply, "MAIL FROM refused"),
                (_, Some(reply)) if reply.code >= 400 => verdict(&reply, "RCPT TO refused"),
                (_, None) => Outcome::Deferred(local(
                    Status::new(4, 4, 2),
                    format!("no reply to RCPT from {server}"),
                )),
                (TransactionEnd::NoRecipients, Some(reply)) => verdict(&reply, "RCPT TO"),
                (TransactionEnd::DataRefused(reply), Some(_)) => verdict(reply, "DATA refused"),
                (TransactionEnd::Content(reply), Some(_)) => verdict(reply, "after the message"),
            };
            (index, outcome)
        })
        .collect()
}

/// Shuffles in place (Fisher-Yates) so MX hosts of equal preference share the load.
fn shuffle<T>(items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let mut bytes = [0u8; 8];
        let _ = getrandom::fill(&mut bytes);
        let j = (u64::from_le_bytes(bytes) % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}
