//! Per-address counters against floods and password guessing: connections per minute,
//! and failed logins that earn a temporary block. They live in memory only and are
//! bounded: past `MAX_TRACKED` addresses the stalest are forgotten, so a botnet cannot make
//! us grow without limit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::inbound::limits::client_key::ClientKey;

/// Most client addresses any one counter remembers.
const MAX_TRACKED: usize = 10_000;

/// Recent events per address within a sliding window.
#[derive(Debug)]
struct Window {
    length: Duration,
    events: HashMap<ClientKey, VecDeque<Instant>>,
}

impl Window {
    fn new(length: Duration) -> Self {
        Window {
            length,
            events: HashMap::new(),
        }
    }

    /// Records an event for `key` at `now`; returns the events in the window, this one
    /// included.
    fn record(&mut self, key: ClientKey, now: Instant) -> usize {
        if self.events.len() >= MAX_TRACKED && !self.events.contains_key(&key) {
            self.forget_stale(now);
        }
        let length = self.length;
        let events = self.events.entry(key).or_default();
        while events
            .front()
            .is_some_and(|t| now.duration_since(*t) >= length)
        {
            events.pop_front();
        }
        events.push_back(now);
        events.len()
    }

    /// The events of `key` in the window ending at `now`.
    fn count(&self, key: &ClientKey, now: Instant) -> usize {
        self.events.get(key).map_or(0, |events| {
            events
                .iter()
                .filter(|t| now.duration_since(**t) < self.length)
                .count()
        })
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

    fn clear(&mut self, key: &ClientKey) {
        self.events.remove(key);
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

    /// Counts a new connection from `key`; false when it is one too many.
    pub fn admit(&self, key: ClientKey) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        window.record(key, Instant::now()) <= self.per_minute as usize
    }
}

/// Failed logins per address, and the addresses blocked for having too many.
///
/// A password check takes tens of milliseconds, so an attacker can start many at once:
/// counting only finished failures would let all of them through before the first is
/// counted. Checks in flight therefore count against the limit too (see [`Self::begin`]).
#[derive(Debug)]
pub struct AuthThrottle {
    max_failures: u32,
    block_time: Duration,
    state: Mutex<ThrottleState>,
    /// Woken whenever a check ends, for attempts waiting for room (`attempt`).
    released: tokio::sync::Notify,
}

#[derive(Debug)]
struct ThrottleState {
    failures: Window,
    blocked: HashMap<ClientKey, Instant>,
    /// Checks begun and not yet decided, per address; an entry lives only while a check
    /// runs, so the map is bounded by the connections we admit.
    in_flight: HashMap<ClientKey, usize>,
}

impl ThrottleState {
    fn is_blocked(&mut self, key: &ClientKey, now: Instant) -> bool {
        match self.blocked.get(key) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.blocked.remove(key);
                false
            }
            None => false,
        }
    }
}

/// A password check counted against its address as long as it lives; a failure is
/// counted with [`Attempt::failed`] before it stops (so no other check ever sees neither).
#[derive(Debug)]
pub struct Attempt<'a> {
    throttle: &'a AuthThrottle,
    key: ClientKey,
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
                in_flight: HashMap::new(),
            }),
            released: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True while `key` is blocked.
    pub fn is_blocked(&self, key: ClientKey) -> bool {
        self.state().is_blocked(&key, Instant::now())
    }

    /// Starts a check for `key`, or `None` when the address is blocked or when its
    /// failures in the window plus the checks already in flight reach `max_failures`:
    /// were those all to fail, this one would be past the limit.
    pub fn begin(&self, key: ClientKey) -> Option<Attempt<'_>> {
        let mut state = self.state();
        let now = Instant::now();
        if state.is_blocked(&key, now) {
            return None;
        }
        let in_flight = state.in_flight.get(&key).copied().unwrap_or(0);
        if state.failures.count(&key, now) + in_flight >= self.max_failures as usize {
            return None;
        }
        state.in_flight.insert(key, in_flight + 1);
        Some(Attempt {
            throttle: self,
            key,
        })
    }

    /// Starts a check for `key` as soon as [`begin`](Self::begin) allows: an attempt
    /// beyond the room left waits for the checks in flight to end (as many parallel logins
    /// of a mail client with the right password do), and gets `None` only once the address
    /// is blocked.
    pub async fn attempt(&self, key: ClientKey) -> Option<Attempt<'_>> {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(attempt) = self.begin(key) {
                return Some(attempt);
            }
            if self.is_blocked(key) {
                return None;
            }
            released.await;
        }
    }

    /// Counts a failed login from `key`; true when it is now blocked.
    fn failed(&self, key: ClientKey) -> bool {
        let mut state = self.state();
        let now = Instant::now();
        if state.failures.record(key, now) < self.max_failures as usize {
            return false;
        }
        state.failures.clear(&key);
        if state.blocked.len() >= MAX_TRACKED {
            state.blocked.retain(|_, until| *until > now);
        }
        if state.blocked.len() < MAX_TRACKED {
            state.blocked.insert(key, now + self.block_time);
        }
        true
    }
}

impl Attempt<'_> {
    /// The password was wrong; true when the address is now blocked.
    pub fn failed(self) -> bool {
        self.throttle.failed(self.key)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut state = self.throttle.state();
        if let Some(n) = state.in_flight.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                state.in_flight.remove(&self.key);
            }
        }
        drop(state);
        self.throttle.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn key(ip: &str) -> ClientKey {
        ClientKey::of(ip.parse().unwrap(), 64)
    }

    fn a() -> ClientKey {
        key("192.0.2.1")
    }

    fn b() -> ClientKey {
        key("192.0.2.2")
    }

    fn fail(throttle: &AuthThrottle, key: ClientKey) -> bool {
        throttle.begin(key).expect("not blocked").failed()
    }

    #[test]
    fn connection_rate_counts_per_address() {
        let rate = ConnectionRate::new(2);
        assert!(rate.admit(a()) && rate.admit(a()));
        assert!(!rate.admit(a()));
        assert!(rate.admit(b()));
        assert!(ConnectionRate::new(0).admit(a()));
    }

    #[test]
    fn failures_block_after_the_limit() {
        let throttle = AuthThrottle::new(3, Duration::from_secs(60), Duration::from_secs(60));
        assert!(!fail(&throttle, a()));
        assert!(!fail(&throttle, a()));
        assert!(!throttle.is_blocked(a()));
        drop(throttle.begin(a()).expect("a success does not count"));
        assert!(fail(&throttle, a()));
        assert!(throttle.is_blocked(a()));
        assert!(throttle.begin(a()).is_none());
        assert!(!throttle.is_blocked(b()));
    }

    #[test]
    fn checks_in_flight_count_against_the_limit() {
        let throttle = AuthThrottle::new(3, Duration::from_secs(60), Duration::from_secs(60));
        assert!(!fail(&throttle, a()));
        let first = throttle.begin(a()).unwrap();
        let second = throttle.begin(a()).unwrap();
        assert!(throttle.begin(a()).is_none(), "1 failure + 2 in flight");
        assert!(
            throttle.begin(b()).is_some(),
            "other addresses are not held up"
        );
        drop(first);
        let third = throttle.begin(a()).expect("the success freed its place");
        assert!(!second.failed());
        assert!(third.failed(), "the third failure blocks");
        assert!(throttle.begin(a()).is_none());
        assert!(throttle.state().in_flight.is_empty());
    }

    #[tokio::test]
    async fn attempts_beyond_the_room_wait_until_blocked_or_freed() {
        let throttle = AuthThrottle::new(2, Duration::from_secs(60), Duration::from_secs(60));
        let first = throttle.attempt(a()).await.unwrap();
        let second = throttle.attempt(a()).await.unwrap();
        let third = throttle.attempt(a());
        tokio::pin!(third);
        assert!(futures_poll(third.as_mut()).is_none(), "no room: it waits");
        drop(first);
        let third = third.await.expect("a success made room");
        assert!(!second.failed());
        let fourth = throttle.attempt(a());
        tokio::pin!(fourth);
        assert!(futures_poll(fourth.as_mut()).is_none());
        assert!(third.failed(), "the second failure blocks");
        assert!(
            fourth.await.is_none(),
            "a waiting attempt is refused once blocked"
        );
    }

    /// Polls `future` once.
    fn futures_poll<F: std::future::Future>(future: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        match future.poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn blocks_expire() {
        let throttle = AuthThrottle::new(1, Duration::from_secs(60), Duration::from_millis(1));
        assert!(fail(&throttle, a()));
        std::thread::sleep(Duration::from_millis(5));
        assert!(!throttle.is_blocked(a()));
    }

    #[test]
    fn memory_is_bounded() {
        let mut window = Window::new(Duration::from_secs(60));
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            window.record(
                ClientKey::of(IpAddr::V4(i.into()), 64),
                now + Duration::from_micros(u64::from(i)),
            );
        }
        assert!(window.events.len() <= MAX_TRACKED);
    }
}
