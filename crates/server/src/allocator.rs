//! How the server asks glibc's allocator to give memory back. A burst of large blocks
//! (a 19 MiB argon2 check per login, message buffers) must not stay with the process once
//! the burst is over: by default glibc raises its mmap threshold after the first such block
//! is freed and serves the next ones from the heap of whichever arena the thread uses, which
//! keeps them (measured: 330 MiB kept after 100 logins on changing blocking threads). A
//! fixed threshold makes every block from 4 MiB up its own mapping, returned when freed;
//! with it, bursts of logins, checked 10 MiB messages and IMAP FETCHes leave the server
//! within 2x of its idle size (README, "Memory").

/// Sets the allocator up for the server; call once, before any thread starts.
#[allow(unsafe_code, reason = "mallopt has no safe wrapper in libc or rustix")]
pub fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}
