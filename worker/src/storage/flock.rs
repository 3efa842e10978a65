//! `flock(2)`, the one system call local leases need that std does not offer at this crate's
//! minimum Rust version.

#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

/// Takes an exclusive lock on `file`, waiting for it; released when the file is closed.
pub(super) fn lock_exclusive(file: &File) -> std::io::Result<()> {
    loop {
        // SAFETY: `file` is an open file for the whole call, so its descriptor is valid;
        // flock takes no pointers.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
