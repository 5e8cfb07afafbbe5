//! Concurrent connection limits, in all and per client address. A client over either limit
//! gets `421 4.7.0` and is disconnected before it costs us a session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::inbound::limits::client_key::ClientKey;

/// Counts open connections.
#[derive(Debug)]
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<ClientKey, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<ConnectionLimiter>,
    key: ClientKey,
}

impl ConnectionLimiter {
    /// A limiter with the configured maxima.
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimiter {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Admits a connection from `key`, or `None` when a limit is reached.
    pub fn admit(self: &Arc<Self>, key: ClientKey) -> Option<Permit> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let for_ip = counts.per_ip.get(&key).copied().unwrap_or(0);
        if counts.total >= self.max_total || for_ip >= self.max_per_ip {
            return None;
        }
        counts.total += 1;
        counts.per_ip.insert(key, for_ip + 1);
        Some(Permit {
            limiter: Arc::clone(self),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self
            .limiter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_and_total_limits() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a = ClientKey::of("192.0.2.1".parse().unwrap(), 64);
        let b = ClientKey::of("192.0.2.2".parse().unwrap(), 64);
        let first = limiter.admit(a).unwrap();
        let _second = limiter.admit(a).unwrap();
        assert!(limiter.admit(a).is_none());
        let _third = limiter.admit(b).unwrap();
        assert!(limiter.admit(b).is_none(), "total limit");
        drop(first);
        let _again = limiter.admit(a).unwrap();
        assert_eq!(limiter.open(), 3);
    }

    #[test]
    fn one_ipv6_network_is_one_client() {
        let limiter = ConnectionLimiter::new(10, 1);
        let key = |ip: &str| ClientKey::of(ip.parse().unwrap(), 64);
        let _first = limiter.admit(key("2001:db8:0:1::1")).unwrap();
        assert!(limiter.admit(key("2001:db8:0:1::2")).is_none());
        assert!(limiter.admit(key("2001:db8:0:2::1")).is_some());
    }
}
