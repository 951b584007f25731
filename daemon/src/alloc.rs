//! The daemon's memory allocator: mimalloc, declared `#[global_allocator]` by each binary that
//! serves MCP (`orchestratord`, and the benchmark's no-op floor so it stays the same process
//! setup), with [`tune`] called first in `main`. Under many workers' calls the C library's
//! allocator spent a sixth of the daemon's CPU: a block freed on another thread than the one
//! that allocated it takes that arena's lock, and consolidation ran on the database thread
//! (BENCHMARKS.md, tenth session).
//!
//! **Invariant:** the daemon's resident memory stays within its goals (≤ 20 MB idle, ≤ 32 MB
//! under 64 live workers). mimalloc is built without transparent huge pages (its `no_thp`
//! feature: with them each arena it touched was resident in 2 MiB pieces, which doubled both
//! figures), and [`tune`] has it return freed memory after 10 ms instead of a second.

/// The global allocator both binaries declare:
/// `#[global_allocator] static ALLOCATOR: Allocator = alloc::ALLOCATOR;`.
pub type Allocator = mimalloc::MiMalloc;

/// The value of [`Allocator`] to declare.
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (`mi_option_t` in its `mimalloc.h`; Cargo.lock pins the
/// version): the crate exports no constant for it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before returning it to the system, in ms.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Returns freed memory to the system after [`PURGE_DELAY_MS`], unless the user chose
/// (`MIMALLOC_PURGE_DELAY`). Call it first in `main`, while the process has one thread.
#[allow(unsafe_code)]
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's options are plain integers, read when it purges; `mi_option_set`
        // is not thread safe, and `main` calls this before it starts any other thread.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    }
}
