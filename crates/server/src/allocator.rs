//! How the server asks glibc's allocator to give memory back. A burst of large blocks
//! (a 19 MiB argon2 check per login, message buffers) must not stay with the process once
//! the burst is over: by default glibc raises its mmap threshold after the first such block
//! is freed and serves the next ones from the heap of whichever arena the thread uses, which
//! keeps them (measured: 330 MiB kept after 100 logins on changing blocking threads). A
//! fixed threshold makes every block from 4 MiB up its own mapping, returned when freed;
//! with it, bursts of logins, checked 10 MiB messages and IMAP FETCHes leave the server
//! within 2x of its idle size (README, "Memory").
//!
//! Smaller blocks freed in the middle of an arena's heap stay with the process too: after
//! 50 IMAP clients left, the benchmark found 125 MiB kept against 18 MiB idle (Dovecot's
//! sessions are processes, which give everything back as they exit). So a task looks at
//! the arenas every few seconds and, when much lies free in them, has glibc hand the free
//! pages back (`malloc_trim`, which `madvise`s them away without moving anything).

/// Sets the allocator up for the server; call once, before any thread starts.
///
/// A fixed mmap threshold also fixes glibc's trim threshold at its default of 128 KiB,
/// and then nearly every message freed enough at the top of some thread's arena for glibc
/// to `madvise` it away, only for the next message to fault the pages back in (one
/// `madvise` per message at 1000 messages/s). The periodic trim below gives free memory
/// back instead, so each arena's top may keep up to [`KEEP_AT_TOP`] between trims.
#[allow(unsafe_code, reason = "mallopt has no safe wrapper in libc or rustix")]
pub fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets tuning parameters of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_AT_TOP);
    }
}

/// Free octets at the top of an arena that a `free` leaves in place (glibc's trim
/// threshold); more is given back at once.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const KEEP_AT_TOP: i32 = 1 << 20;

/// Free octets in the arenas above which they are trimmed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_ABOVE: usize = 8 << 20;
/// How often the arenas are looked at.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Gives the arenas' free pages back whenever much lies free, until `shutdown`. What the
/// mailbox store holds for sessions to come is let go first once unused for a while, so
/// that its pages go back in the same pass after the clients have left.
pub async fn trim_while_running(mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TRIM_EVERY) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        // A trim walks the heaps: a blocking thread's work, not a worker's.
        let _ = tokio::task::spawn_blocking(|| {
            posthorn_maildir::store::release_idle();
            trim_if_worth_it();
        })
        .await;
    }
}

#[allow(unsafe_code, reason = "mallinfo2 and malloc_trim have no safe wrapper")]
fn trim_if_worth_it() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: both only read or release the allocator's own free memory.
    unsafe {
        if libc::mallinfo2().fordblks > TRIM_ABOVE {
            libc::malloc_trim(0);
        }
    }
}
