//! Per-address counters against floods and password guessing: connections per minute,
//! and failed logins that earn a temporary block. They live in memory only and are
//! bounded: past `MAX_TRACKED` addresses the stalest are forgotten, so a botnet cannot make
//! us grow without limit.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most client addresses any one counter remembers.
const MAX_TRACKED: usize = 10_000;

/// Recent events per address within a sliding window.
#[derive(Debug)]
struct Window {
    length: Duration,
    events: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Window {
    fn new(length: Duration) -> Self {
        Window {
            length,
            events: HashMap::new(),
        }
    }

    /// Records an event for `ip` at `now`; returns the events in the window, this one
    /// included.
    fn record(&mut self, ip: IpAddr, now: Instant) -> usize {
        if self.events.len() >= MAX_TRACKED && !self.events.contains_key(&ip) {
            self.forget_stale(now);
        }
        let length = self.length;
        let events = self.events.entry(ip).or_default();
        while events
            .front()
            .is_some_and(|t| now.duration_since(*t) >= length)
        {
            events.pop_front();
        }
        events.push_back(now);
        events.len()
    }

    /// Drops addresses with nothing in the window; if that is not enough, the half whose
    /// latest event is oldest.
    fn forget_stale(&mut self, now: Instant) {
        let length = self.length;
        self.events.retain(|_, events| {
            events
                .back()
                .is_some_and(|t| now.duration_since(*t) < length)
        });
        if self.events.len() >= MAX_TRACKED {
            let mut latest: Vec<Instant> = self
                .events
                .values()
                .filter_map(|e| e.back().copied())
                .collect();
            latest.sort_unstable();
            let cut = latest[latest.len() / 2];
            self.events
                .retain(|_, events| events.back().is_some_and(|t| *t > cut));
        }
    }

    fn clear(&mut self, ip: &IpAddr) {
        self.events.remove(ip);
    }
}

/// New connections per minute from one address.
#[derive(Debug)]
pub struct ConnectionRate {
    per_minute: u32,
    window: Mutex<Window>,
}

impl ConnectionRate {
    /// At most `per_minute` connections a minute per address; 0 lets everyone in.
    pub fn new(per_minute: u32) -> Self {
        ConnectionRate {
            per_minute,
            window: Mutex::new(Window::new(Duration::from_secs(60))),
        }
    }

    /// Counts a new connection from `ip`; false when it is one too many.
    pub fn admit(&self, ip: IpAddr) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.record(ip, Instant::now()) <= self.per_minute as usize
    }
}

/// Failed logins per address, and the addresses blocked for having too many.
#[derive(Debug)]
pub struct AuthThrottle {
    max_failures: u32,
    block_time: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug)]
struct ThrottleState {
    failures: Window,
    blocked: HashMap<IpAddr, Instant>,
}

impl AuthThrottle {
    /// Blocks an address for `block_time` after `max_failures` failures within `window`.
    pub fn new(max_failures: u32, window: Duration, block_time: Duration) -> Self {
        AuthThrottle {
            max_failures: max_failures.max(1),
            block_time,
            state: Mutex::new(ThrottleState {
                failures: Window::new(window),
                blocked: HashMap::new(),
            }),
        }
    }

    /// True while `ip` is blocked.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        match state.blocked.get(&ip) {
            Some(until) if *until > now => true,
            Some(_) => {
                state.blocked.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a failed login from `ip`; true when it is now blocked.
    pub fn failed(&self, ip: IpAddr) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if state.failures.record(ip, now) < self.max_failures as usize {
            return false;
        }
        state.failures.clear(&ip);
        if state.blocked.len() >= MAX_TRACKED {
            state.blocked.retain(|_, until| *until > now);
        }
        if state.blocked.len() < MAX_TRACKED {
            state.blocked.insert(ip, now + self.block_time);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn connection_rate_counts_per_address() {
        let rate = ConnectionRate::new(2);
        assert!(rate.admit(A) && rate.admit(A));
        assert!(!rate.admit(A));
        assert!(rate.admit(B));
        assert!(ConnectionRate::new(0).admit(A));
    }

    #[test]
    fn failures_block_after_the_limit() {
        let throttle = AuthThrottle::new(3, Duration::from_secs(60), Duration::from_secs(60));
        assert!(!throttle.failed(A));
        assert!(!throttle.failed(A));
        assert!(!throttle.is_blocked(A));
        assert!(throttle.failed(A));
        assert!(throttle.is_blocked(A));
        assert!(!throttle.is_blocked(B));
    }

    #[test]
    fn blocks_expire() {
        let throttle = AuthThrottle::new(1, Duration::from_secs(60), Duration::from_millis(1));
        assert!(throttle.failed(A));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!throttle.is_blocked(A));
    }

    #[test]
    fn memory_is_bounded() {
        let mut window = Window::new(Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            window.record(
                IpAddr::V4(i.into()),
                now + Duration::from_micros(u64::from(i)),
            );
        }
        assert!(window.events.len() <= MAX_TRACKED);
    }
}
