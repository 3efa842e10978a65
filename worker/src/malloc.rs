//! glibc allocator settings for the worker process.
//!
//! A backup or restore moves hundreds of MiB through buffers of one to sixteen MiB
//! (librdkafka's fetch responses and request buffers, its message copies, the segments) from
//! several threads. With glibc's defaults, blocks over 128 KiB start out as their own mappings
//! and a thread's heap is handed back to the kernel as soon as 128 KiB at its top are free, so
//! the same memory is unmapped and faulted in again (a fresh, cleared page every 4 KiB) over
//! and over: on a virtual machine that costs a restore a third of its system time. Here buffers
//! under 32 MiB (glibc's largest setting; every fetch response of the backup reader's 16 MiB
//! `fetch.max.bytes` is under it) come from the heaps and up to 64 MiB of free heap is kept
//! for reuse; memory in use stays bounded by the engines' own budgets. Measured on a 256 MiB
//! backup (docs/perf/README.md): with a 4 MiB threshold about 94,000 page faults and 0.4 s of
//! system time, with this one about 40,000 and 0.2 s, and a zstd backup's CPU per GiB 28 %
//! lower, for about 40 MiB more peak RSS. A `GLIBC_TUNABLES` that sets any `glibc.malloc` tunable wins:
//! nothing is changed.
#![allow(unsafe_code)]

/// Allocations at least this large get their own mapping.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of a heap beyond this goes back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Applies the settings; call first thing in `main`, before other threads start.
pub fn tune() {
    if std::env::var_os("GLIBC_TUNABLES")
        .is_some_and(|v| v.to_string_lossy().contains("glibc.malloc"))
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets allocator parameters; it is called before any other
        // thread exists. A refused value (0 returned) leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
