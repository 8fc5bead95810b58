//! Giving freed memory back to the system.
//!
//! Reading the status of a large repository allocates tens of MiB (libgit2's index and work-tree
//! scan) and frees it all when done. glibc keeps such memory in the freeing thread's arena, so an
//! idle agent would stay at its peak. This is the crate's one use of `unsafe`.

/// Returns free heap memory to the system (glibc only; elsewhere a no-op).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only walks glibc's own arenas under their locks and releases free pages;
    // it takes no pointers from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
