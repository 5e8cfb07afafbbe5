//! What the clients do: a busy mail client's mix, login loops, one command as fast as it
//! goes, and a session on a very large mailbox. Each returns counts and times; the caller
//! samples the server's memory around them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::imap::client::{Client, quoted};
use crate::imap::mailbox::{RARE_SENDER, RARE_SUBJECT_WORD, Rng};

/// How long a client waits for any one response.
pub const TIMEOUT: Duration = Duration::from_secs(600);

/// Commands (or logins) done in a timed loop, and those that failed.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Completed.
    pub done: usize,
    /// Failed (the connection is dropped and a new one made).
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Wall time of the loop.
    pub elapsed: Duration,
}

impl Tally {
    /// Completed per second.
    pub fn per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn failure(&mut self, error: &anyhow::Error) {
        self.failed += 1;
        self.first_error.get_or_insert_with(|| format!("{error:#}"));
    }

    fn merge(&mut self, other: Tally) {
        self.done += other.done;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Who logs in, with which password.
#[derive(Clone)]
pub struct Login {
    /// The server.
    pub addr: SocketAddr,
    /// The password of every user.
    pub password: Arc<str>,
}

impl Login {
    async fn as_user(&self, user: &str) -> anyhow::Result<Client> {
        Client::login(self.addr, user, &self.password, TIMEOUT).await
    }

    /// Logs in as `user` and selects INBOX; the session and the message count.
    async fn selected(&self, user: &str) -> anyhow::Result<(Client, u32)> {
        let mut client = self.as_user(user).await?;
        let exists = client.command("SELECT INBOX").await?.exists().unwrap_or(0);
        anyhow::ensure!(exists > 0, "{user}'s INBOX is empty");
        Ok((client, exists))
    }
}

/// Runs `clients` copies of `worker` (given its number) and sums their tallies, with the
/// wall time of the whole.
async fn run_clients<F, Fut>(clients: usize, worker: F) -> Tally
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let started = Instant::now();
    let handles: Vec<_> = (0..clients).map(|i| tokio::spawn(worker(i))).collect();
    let mut total = Tally::default();
    for handle in handles {
        match handle.await {
            Ok(tally) => total.merge(tally),
            Err(e) => total.failure(&anyhow::anyhow!("client task: {e}")),
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// One command against a selected mailbox of `exists` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// FLAGS and ENVELOPE of 10 consecutive messages from a random place.
    FetchEnvelopes,
    /// The whole of one random message (`BODY.PEEK[]`).
    FetchBody,
    /// `UID SEARCH SUBJECT` for a word in 1% of subjects.
    SearchSubject,
    /// `UID SEARCH FROM` for a sender of 0.5% of messages.
    SearchFrom,
    /// `UID SEARCH BODY` for a word pair in message texts (every message read).
    SearchBody,
    /// `STORE +FLAGS` or `-FLAGS` `\Flagged` on a random message.
    Store,
    /// NOOP.
    Noop,
}

impl Op {
    /// The commands measured one at a time.
    pub const MEASURED: [Op; 4] = [
        Op::FetchEnvelopes,
        Op::FetchBody,
        Op::SearchSubject,
        Op::SearchBody,
    ];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Op::FetchEnvelopes => "FETCH 10 × (FLAGS ENVELOPE)",
            Op::FetchBody => "FETCH 1 × BODY.PEEK[]",
            Op::SearchSubject => "UID SEARCH SUBJECT",
            Op::SearchFrom => "UID SEARCH FROM",
            Op::SearchBody => "UID SEARCH BODY",
            Op::Store => "STORE ±FLAGS",
            Op::Noop => "NOOP",
        }
    }

    fn command(self, rng: &mut Rng, exists: u32) -> String {
        let random = |rng: &mut Rng| rng.below(exists as usize) as u32 + 1;
        match self {
            Op::FetchEnvelopes => {
                let first = random(rng).min(exists.saturating_sub(9).max(1));
                format!("FETCH {first}:{} (FLAGS ENVELOPE)", (first + 9).min(exists))
            }
            Op::FetchBody => format!("FETCH {} (BODY.PEEK[])", random(rng)),
            Op::SearchSubject => format!("UID SEARCH SUBJECT {RARE_SUBJECT_WORD}"),
            Op::SearchFrom => format!("UID SEARCH FROM {}", quoted(RARE_SENDER)),
            Op::SearchBody => "UID SEARCH BODY \"budget deadline\"".to_string(),
            Op::Store => {
                let sign = if rng.one_in(2) { '+' } else { '-' };
                format!("STORE {} {sign}FLAGS (\\Flagged)", random(rng))
            }
            Op::Noop => "NOOP".to_string(),
        }
    }
}

/// Commands in one busy session after SELECT, before LOGOUT.
const BUSY_COMMANDS_PER_SESSION: usize = 20;
/// How long a busy client stays in IDLE when it idles.
const BUSY_IDLE: Duration = Duration::from_millis(200);

/// A busy client's next command: mostly FETCHes, some searches, flag changes, NOOP, and
/// IDLE one time in ten (`None`).
fn busy_step(rng: &mut Rng) -> Option<Op> {
    match rng.below(100) {
        0..=29 => Some(Op::FetchEnvelopes),
        30..=44 => Some(Op::FetchBody),
        45..=49 => Some(Op::SearchSubject),
        50..=54 => Some(Op::SearchFrom),
        55..=74 => Some(Op::Store),
        75..=89 => Some(Op::Noop),
        _ => None,
    }
}

/// `clients` busy clients for `duration`, client `i` as `users[i % len]`: sessions of
/// LOGIN, SELECT INBOX, 20 mixed commands, LOGOUT, over and over. Counts commands.
pub async fn busy(login: Login, users: Arc<[String]>, clients: usize, duration: Duration) -> Tally {
    let deadline = Instant::now() + duration;
    run_clients(clients, |i| {
        let (login, users) = (login.clone(), Arc::clone(&users));
        async move {
            let user = &users[i % users.len()];
            let mut rng = Rng::new(i as u64 + 1);
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                if let Err(e) = busy_session(&login, user, &mut rng, &mut tally).await {
                    tally.failure(&e);
                }
            }
            tally
        }
    })
    .await
}

async fn busy_session(
    login: &Login,
    user: &str,
    rng: &mut Rng,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let (mut client, exists) = login.selected(user).await?;
    tally.done += 2;
    for _ in 0..BUSY_COMMANDS_PER_SESSION {
        match busy_step(rng) {
            Some(op) => client.command(&op.command(rng, exists)).await.map(drop)?,
            None => client.idle(BUSY_IDLE).await.map(drop)?,
        }
        tally.done += 1;
    }
    client.logout().await?;
    tally.done += 1;
    Ok(())
}

/// Which logins a login loop makes.
#[derive(Clone)]
pub enum Logins {
    /// Each of these users once (none has logged in before: no cache can help).
    EachOnce(Arc<[String]>),
    /// This user over and over, for this long.
    Repeat(Arc<str>, Duration),
}

/// `clients` clients each connecting, LOGIN, LOGOUT, in a loop; counts logins.
pub async fn logins(login: Login, clients: usize, plan: Logins) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    run_clients(clients, |_| {
        let (login, plan, next) = (login.clone(), plan.clone(), Arc::clone(&next));
        async move {
            let mut tally = Tally::default();
            loop {
                let user: &str = match &plan {
                    Logins::EachOnce(users) => {
                        match users.get(next.fetch_add(1, Ordering::Relaxed)) {
                            Some(user) => user,
                            None => break,
                        }
                    }
                    Logins::Repeat(user, duration) => {
                        if started.elapsed() >= *duration {
                            break;
                        }
                        user
                    }
                };
                match login_logout(&login, user).await {
                    Ok(()) => tally.done += 1,
                    Err(e) => tally.failure(&e),
                }
            }
            tally
        }
    })
    .await
}

async fn login_logout(login: &Login, user: &str) -> anyhow::Result<()> {
    login.as_user(user).await?.logout().await
}

/// `clients` sessions of `user` with INBOX selected, each sending `op` as fast as the
/// answers come, for `duration`. Also returns the hits of the last SEARCH (the same on
/// every server, or the servers do not search alike).
pub async fn op_rate(
    login: Login,
    user: Arc<str>,
    clients: usize,
    op: Op,
    duration: Duration,
) -> (Tally, usize) {
    let hits = Arc::new(AtomicUsize::new(0));
    let tally = run_clients(clients, |i| {
        let (login, user, hits) = (login.clone(), Arc::clone(&user), Arc::clone(&hits));
        async move {
            let mut tally = Tally::default();
            let mut rng = Rng::new(i as u64 + 100);
            let (mut client, exists) = match login.selected(&user).await {
                Ok(selected) => selected,
                Err(e) => {
                    tally.failure(&e);
                    return tally;
                }
            };
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline {
                match client.command(&op.command(&mut rng, exists)).await {
                    Ok(reply) => {
                        tally.done += 1;
                        hits.store(reply.search_hits(), Ordering::Relaxed);
                    }
                    Err(e) => {
                        tally.failure(&e);
                        break;
                    }
                }
            }
            let _ = client.logout().await;
            tally
        }
    })
    .await;
    (tally, hits.load(Ordering::Relaxed))
}

/// The times of one session on a large mailbox.
#[derive(Debug, Clone, Default)]
pub struct LargeSession {
    /// Messages SELECT reported.
    pub exists: u32,
    /// SELECT INBOX.
    pub select: Duration,
    /// FETCH of the 50 newest messages' FLAGS and ENVELOPE.
    pub fetch_newest: Duration,
    /// `UID SEARCH SUBJECT`, and its hits.
    pub search_subject: (Duration, usize),
    /// `UID SEARCH FROM`, and its hits.
    pub search_from: (Duration, usize),
}

/// One session on `user`'s (large) INBOX: each step timed on its own.
pub async fn large_session(login: &Login, user: &str) -> anyhow::Result<LargeSession> {
    let mut client = login.as_user(user).await?;
    let mut rng = Rng::new(1);
    let mut session = LargeSession::default();
    let started = Instant::now();
    session.exists = client.command("SELECT INBOX").await?.exists().unwrap_or(0);
    session.select = started.elapsed();
    let started = Instant::now();
    let newest = client
        .command(&format!(
            "FETCH {}:* (FLAGS ENVELOPE)",
            session.exists.saturating_sub(49).max(1)
        ))
        .await?;
    session.fetch_newest = started.elapsed();
    anyhow::ensure!(
        newest.lines.len() >= 50,
        "FETCH of the newest 50 gave {} lines",
        newest.lines.len()
    );
    for (op, slot) in [
        (Op::SearchSubject, &mut session.search_subject),
        (Op::SearchFrom, &mut session.search_from),
    ] {
        let started = Instant::now();
        let reply = client
            .command(&op.command(&mut rng, session.exists))
            .await?;
        *slot = (started.elapsed(), reply.search_hits());
    }
    client.logout().await?;
    Ok(session)
}
