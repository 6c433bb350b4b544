//! The process's memory allocator: jemalloc, with two arenas.
//!
//! In: every heap allocation of every binary that links this library (the daemon, the
//! commands, the benchmarks and the tests). Out: memory from jemalloc, configured before `main`
//! runs (two arenas). It must never be configured at run time from input, and
//! never be swapped for another allocator without the two figures that chose it: ingest
//! throughput and the fetch cycle's peak memory (docs/design-notes.md, "Allocator"). glibc's
//! malloc and free took a quarter of the ingest benchmark's time (sled copies a leaf for every
//! key it inserts and frees the old copy); with jemalloc the one-flush ingest ran 20–28%
//! faster in interleaved runs and 6–13% in full bench reports. mimalloc was as fast but its
//! peak memory went over the 150 MB budget; jemalloc with two arenas stays well under it.

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once before `main`. Two arenas, not jemalloc's default of four
/// per core: the fetch cycle's threads share them, and on the 2,000-feed first cycle the peak
/// was 104–108 MB with two against 111–125 MB with the default, in the same time. An
/// operator's `_RJEM_MALLOC_CONF` is read after this and wins.
const OPTIONS: &[u8] = b"narenas:2\0";

/// The `malloc_conf` symbol jemalloc looks for (with the prefix the crate builds it with): a
/// pointer to `OPTIONS`.
#[cfg(not(target_env = "msvc"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: Option<&'static u8> = Some(&OPTIONS[0]);

#[cfg(all(test, not(target_env = "msvc")))]
mod tests {
    use std::ffi::{c_void, CStr};

    /// Reads a jemalloc control value of type `T`.
    fn read<T: Default>(name: &CStr) -> T {
        let mut value = T::default();
        let mut len = std::mem::size_of::<T>();
        // SAFETY: `name` is NUL-terminated, `value` has room for `len` bytes, and the names
        // below are jemalloc's, of the types they are read as (unsigned, uint64_t).
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                name.as_ptr(),
                (&mut value as *mut T).cast::<c_void>(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(rc, 0, "mallctl {name:?}");
        value
    }

    #[test]
    fn rust_allocations_go_to_jemalloc_with_its_options() {
        assert_eq!(read::<u32>(c"opt.narenas"), 2);
        let before = read::<u64>(c"thread.allocated");
        let block = vec![1u8; 1 << 20];
        let after = read::<u64>(c"thread.allocated");
        assert!(block.iter().all(|&b| b == 1));
        assert!(
            after - before >= 1 << 20,
            "a 1 MB Vec added {} bytes to jemalloc's count",
            after - before
        );
    }
}
