//! The `tern` binary's memory allocator.
//!
//! mimalloc serves every allocation of the process: Rust's through `#[global_allocator]`, and,
//! because the `override` feature makes it the process's `malloc`/`free`/`operator new`, those
//! of RocksDB's C++ code too. The one that matters is the memtable arena: a memtable insert walks
//! a skip list through nodes at random places of a multi-MiB arena, and with 4 KiB pages nearly
//! every node is a TLB miss. mimalloc advises its arenas for transparent huge pages
//! (`MADV_HUGEPAGE`), which the `madvise` THP mode most distributions ship honours; glibc's heaps,
//! where the arenas lived before, never get them (docs/decisions.md, "mimalloc").
//!
//! [`configure`] sets how long mimalloc keeps freed memory before returning it to the kernel
//! (the purge delay): mimalloc's default, 1 s, returns memtable blocks and small pages in pieces
//! smaller than a huge page, which breaks the huge pages up; 10 s outlives a memtable's turn
//! (flushed every 10 s by default), so freed blocks are reused before they are purged.

use std::ffi::c_long;

use libmimalloc_sys::{mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3's `mi_option_purge_delay` (the `mi_option_e` enum in `mimalloc.h`; libmimalloc-sys
/// exports no constant for it). The test below checks that this index holds the purge delay.
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// mimalloc's own default purge delay, in milliseconds.
#[cfg(test)]
const DEFAULT_PURGE_DELAY_MS: c_long = 1_000;

/// The purge delay Tern sets: longer than a memtable's life at the default flush interval.
const PURGE_DELAY_MS: c_long = 10_000;

/// The environment variable with which an operator sets the purge delay instead (mimalloc reads
/// it at start; `-1` never purges, `0` purges at once).
const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// Sets the allocator's options; call first thing in `main`, before any thread starts
/// (mimalloc's option setter is not thread-safe). Leaves a purge delay the operator set
/// through [`PURGE_DELAY_ENV`] alone.
pub fn configure() {
    if std::env::var_os(PURGE_DELAY_ENV).is_some() {
        return;
    }
    set_option(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
}

/// The purge delay in force, in milliseconds.
#[cfg(test)]
fn purge_delay_ms() -> c_long {
    get_option(MI_OPTION_PURGE_DELAY)
}

#[allow(unsafe_code)]
fn set_option(option: mi_option_t, value: c_long) {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table (no pointers, no
    // memory handed out); `option` is a valid index. It is not synchronised, which is why
    // `configure` runs before the process starts any other thread.
    unsafe { mi_option_set(option, value) }
}

#[cfg(test)]
#[allow(unsafe_code)]
fn get_option(option: mi_option_t) -> c_long {
    // SAFETY: `mi_option_get` reads an integer from mimalloc's option table; `option` is a
    // valid index.
    unsafe { libmimalloc_sys::mi_option_get(option) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test (not several): the option table is process-wide and not synchronised.
    #[test]
    fn the_index_is_the_purge_delay_and_configure_sets_it() {
        if std::env::var_os(PURGE_DELAY_ENV).is_some() {
            // The operator's value stays; nothing else to check.
            let before = purge_delay_ms();
            configure();
            assert_eq!(purge_delay_ms(), before);
            return;
        }
        // Its neighbours in the enum default to 1 (deprecated_eager_commit_delay) and 0
        // (use_numa_nodes): 1000 here means the index is the purge delay.
        assert_eq!(
            purge_delay_ms(),
            DEFAULT_PURGE_DELAY_MS,
            "option {MI_OPTION_PURGE_DELAY} is not the purge delay"
        );
        configure();
        assert_eq!(purge_delay_ms(), PURGE_DELAY_MS);
    }
}
