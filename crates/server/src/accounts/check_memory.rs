//! The memory an argon2 check works in (19 MiB for our own hashes, 64 MiB for Dovecot's
//! defaults), mapped afresh for each check and asked for in transparent huge pages.
//! Allocated the usual way, its 4 KiB pages fault in one by one, and the faults cost a
//! fifth of the check: 137 ms for m=64 MiB, t=3 here, against 107 ms in huge pages
//! (Dovecot's libsodium: about 120 ms). Unmapped when the check ends, so nothing stays
//! with the process after a burst of logins.

use std::ptr::NonNull;

use argon2::Block;

/// A check's blocks: a private anonymous mapping, or a vector where mapping fails.
pub enum CheckMemory {
    /// Mapped with `MADV_HUGEPAGE`; unmapped on drop.
    Mapped {
        /// The first block.
        start: NonNull<Block>,
        /// How many blocks.
        blocks: usize,
    },
    /// The allocator's, when `mmap` refused.
    Allocated(Vec<Block>),
}

// SAFETY: the mapping is owned by this value alone, like a Vec's buffer.
#[allow(unsafe_code, reason = "a raw mapping is owned like a Vec's buffer")]
unsafe impl Send for CheckMemory {}

impl CheckMemory {
    /// Zeroed memory for `blocks` blocks.
    #[allow(
        unsafe_code,
        reason = "mmap and madvise have no safe wrapper in our crates"
    )]
    pub fn new(blocks: usize) -> CheckMemory {
        let len = blocks.saturating_mul(std::mem::size_of::<Block>());
        if len == 0 {
            return CheckMemory::Allocated(Vec::new());
        }
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing
        // touches no existing memory; the result is checked before use.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return CheckMemory::Allocated(vec![Block::default(); blocks]);
        }
        // SAFETY: advice on the mapping just made; a refusal changes nothing.
        unsafe {
            libc::madvise(mapped, len, libc::MADV_HUGEPAGE);
        }
        match NonNull::new(mapped.cast::<Block>()) {
            Some(start) => CheckMemory::Mapped { start, blocks },
            None => CheckMemory::Allocated(vec![Block::default(); blocks]),
        }
    }
}

impl AsMut<[Block]> for CheckMemory {
    #[allow(unsafe_code, reason = "the mapping seen as the blocks it holds")]
    fn as_mut(&mut self) -> &mut [Block] {
        match self {
            // SAFETY: the mapping is `blocks` blocks long, page-aligned (more than a
            // block's 64-octet alignment), zero-filled (a valid Block is any bits), and
            // borrowed mutably through `self` only.
            CheckMemory::Mapped { start, blocks } => unsafe {
                std::slice::from_raw_parts_mut(start.as_ptr(), *blocks)
            },
            CheckMemory::Allocated(blocks) => blocks,
        }
    }
}

impl Drop for CheckMemory {
    #[allow(unsafe_code, reason = "munmap has no safe wrapper in our crates")]
    fn drop(&mut self) {
        if let CheckMemory::Mapped { start, blocks } = self {
            // SAFETY: unmaps exactly the mapping `new` made, which nothing borrows now.
            unsafe {
                libc::munmap(
                    start.as_ptr().cast(),
                    *blocks * std::mem::size_of::<Block>(),
                );
            }
        }
    }
}
