//! Durable writes and compare-and-swap on a local directory (a PVC, a mounted volume).
//!
//! Contract: a write returns only once its bytes and the directory entry that publishes them
//! are on stable storage. The bytes go to a staging file `<name>#<digits>` beside the target
//! (object_store's local listing leaves such names out, so a file a crash leaves behind is never
//! taken for an object), which is fsynced, then published by `rename` (replace) or `link`
//! (create-only: fails when the name exists), and the directory is fsynced after. Directories a
//! write creates are fsynced into their parents as well.
//!
//! [`swap_locked`] is the compare-and-swap leases need (object_store's local store has no
//! conditional update): every swap of an object holds an exclusive `flock` on its sidecar
//! `<name>#0` while it reads the current content, compares it with the expected one and
//! publishes the new one by rename. Swaps of one object are therefore serialised (on one node,
//! and across nodes where the filesystem forwards `flock`, as NFSv4 and CephFS do), and readers
//! that take no lock see the old or the new content, never a torn one.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::BufferPool;

/// Alignment `O_DIRECT` needs for the buffer, the file offset and the length.
const DIRECT_ALIGN: usize = 4096;

/// Aligned staging buffers of direct writes, reused by later writes.
static DIRECT_BUFFERS: BufferPool = BufferPool::new(4);

/// How a staged file is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Publish {
    /// Rename over whatever has the name.
    Replace,
    /// Only if nothing has the name (hard link); else [`Published::Exists`].
    Create,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Published {
    Written,
    /// A create found the name taken and changed nothing.
    Exists,
}

/// Writes `data` to `path` durably (see the module docs). With `direct`, the whole 4 KiB blocks
/// go through `O_DIRECT` from an aligned copy where the filesystem allows it.
pub(super) fn write_durable(
    path: &Path,
    data: &[u8],
    mode: Publish,
    direct: bool,
) -> std::io::Result<Published> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::other("not a file path"));
    };
    create_dirs_durable(dir)?;
    let tmp = staging_path(dir, &name.to_string_lossy());
    let result = stage(&tmp, data, direct).and_then(|()| publish(&tmp, path, dir, mode));
    if result.is_err() || result.as_ref().is_ok_and(|p| *p == Published::Exists) {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `<name>#<digits>` beside the target; never `#0`, which is the lock sidecar.
fn staging_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}#{}", rand::random::<u32>().max(1)))
}

/// The lock sidecar of `path`.
fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("#0");
    PathBuf::from(p)
}

/// Writes the staging file and fsyncs it.
fn stage(tmp: &Path, data: &[u8], direct: bool) -> std::io::Result<()> {
    let done = if direct { stage_direct(tmp, data)? } else { 0 };
    let mut file = if done > 0 {
        OpenOptions::new().append(true).open(tmp)?
    } else {
        OpenOptions::new().write(true).create_new(true).open(tmp)?
    };
    file.write_all(&data[done..])?;
    file.sync_all()?;
    trace(Step::SyncFile, tmp);
    Ok(())
}

/// Writes the whole 4 KiB blocks of `data` with `O_DIRECT`; the bytes written (0 when the
/// filesystem refuses `O_DIRECT`, as tmpfs does: the page cache it is).
fn stage_direct(tmp: &Path, data: &[u8]) -> std::io::Result<usize> {
    let direct_len = data.len() / DIRECT_ALIGN * DIRECT_ALIGN;
    if direct_len == 0 {
        return Ok(0);
    }
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(tmp)
    {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut staging = DIRECT_BUFFERS.take();
    if staging.len() < direct_len + DIRECT_ALIGN {
        staging.resize(direct_len + DIRECT_ALIGN, 0);
    }
    let at = staging.as_ptr().align_offset(DIRECT_ALIGN);
    let aligned = &mut staging[at..at + direct_len];
    aligned.copy_from_slice(&data[..direct_len]);
    let written = file.write_all(aligned);
    DIRECT_BUFFERS.give(staging);
    match written {
        Ok(()) => Ok(direct_len),
        // Refused after all: start again through the page cache.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            drop(file);
            std::fs::remove_file(tmp)?;
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// Publishes the fsynced staging file under `path`, then fsyncs the directory.
fn publish(tmp: &Path, path: &Path, dir: &Path, mode: Publish) -> std::io::Result<Published> {
    match mode {
        Publish::Replace => std::fs::rename(tmp, path)?,
        Publish::Create => match std::fs::hard_link(tmp, path) {
            Ok(()) => {
                trace(Step::Publish, path);
                std::fs::remove_file(tmp)?;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(Published::Exists),
            // A filesystem without hard links: check, then rename. Not atomic against another
            // writer, which the lease on the backup shard or restore already excludes.
            Err(e) if no_hard_links(&e) => {
                if path.symlink_metadata().is_ok() {
                    return Ok(Published::Exists);
                }
                std::fs::rename(tmp, path)?;
            }
            Err(e) => return Err(e),
        },
    }
    if mode == Publish::Replace {
        trace(Step::Publish, path);
    }
    fsync_dir(dir)?;
    Ok(Published::Written)
}

fn no_hard_links(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM) | Some(libc::EOPNOTSUPP) | Some(libc::EMLINK)
    ) || e.kind() == ErrorKind::Unsupported
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()?;
    trace(Step::SyncDir, dir);
    Ok(())
}

/// A step of a durable write, recorded per thread in unit tests (which check the order: the
/// staged file synced, then published, then its directory synced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    SyncFile,
    Publish,
    SyncDir,
}

#[cfg(test)]
thread_local! {
    static STEPS: std::cell::RefCell<Vec<(Step, PathBuf)>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(test)]
fn trace(step: Step, path: &Path) {
    STEPS.with(|s| s.borrow_mut().push((step, path.to_path_buf())));
}

#[cfg(not(test))]
fn trace(_: Step, _: &Path) {}

/// `create_dir_all`, with each directory it creates fsynced into its parent.
fn create_dirs_durable(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            fsync_dir(parent)?;
        }
    }
    Ok(())
}

/// Compare-and-swap of the file at `path` (see the module docs): writes `data` when the current
/// content is `expected` (`None`: the file must not exist). `Ok(false)` when it is not, and
/// nothing changed.
pub(super) fn swap_locked(
    path: &Path,
    expected: Option<&[u8]>,
    data: &[u8],
) -> std::io::Result<bool> {
    if let Some(dir) = path.parent() {
        create_dirs_durable(dir)?;
    }
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path(path))?;
    super::flock::lock_exclusive(&lock)?;
    let current = match File::open(path) {
        Ok(mut f) => {
            let mut buf = Vec::new();
            f.read_to_end(&mut buf)?;
            Some(buf)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if current.as_deref() != expected {
        return Ok(false);
    }
    write_durable(path, data, Publish::Replace, false)?;
    // The lock is released when `lock` is closed.
    drop(lock);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    /// The write path stages, fsyncs and publishes: the content is complete, nothing staged is
    /// left, new directories exist, and a create never replaces. (That the fsyncs happen is
    /// shown by `sync_all` / `fsync_dir` returning errors through this path: see
    /// `a_failed_directory_sync_fails_the_write`.)
    #[test]
    fn durable_writes_publish_whole_files_and_create_never_replaces() {
        let d = dir();
        let path = d.path().join("a/b/c.seg");
        let data: Vec<u8> = (0..3 * DIRECT_ALIGN + 17).map(|i| i as u8).collect();
        for direct in [true, false] {
            let _ = std::fs::remove_file(&path);
            assert_eq!(
                write_durable(&path, &data, Publish::Create, direct).expect("create"),
                Published::Written
            );
            assert_eq!(std::fs::read(&path).expect("read"), data);
            assert_eq!(
                write_durable(&path, b"other", Publish::Create, direct).expect("create again"),
                Published::Exists
            );
            assert_eq!(std::fs::read(&path).expect("read"), data, "not replaced");
            assert_eq!(
                names(&d.path().join("a/b")),
                ["c.seg"],
                "nothing staged left"
            );
        }
        assert_eq!(
            write_durable(&path, b"new", Publish::Replace, false).expect("replace"),
            Published::Written
        );
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
    }

    fn take_steps() -> Vec<(Step, PathBuf)> {
        STEPS.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    /// The order that makes a write durable: the staged file is fsynced before the rename or
    /// link that publishes it, the directory after; directories created on the way are fsynced
    /// into their parents. (The steps are recorded where the system calls return success; a
    /// failing fsync fails the write.)
    #[test]
    fn writes_fsync_the_file_before_publishing_and_the_directory_after() {
        let d = dir();
        let path = d.path().join("new/dir/x.json");
        take_steps();
        for (mode, direct) in [(Publish::Create, true), (Publish::Replace, false)] {
            write_durable(&path, &[7u8; 9000], mode, direct).expect("write");
            let steps = take_steps();
            let kinds: Vec<Step> = steps.iter().map(|(k, _)| *k).collect();
            let tail = &kinds[kinds.len() - 3..];
            assert_eq!(
                tail,
                [Step::SyncFile, Step::Publish, Step::SyncDir],
                "{steps:?}"
            );
            let n = steps.len();
            assert!(
                steps[n - 3].1.to_string_lossy().contains("x.json#"),
                "{steps:?}"
            );
            assert_eq!(steps[n - 2].1, path);
            assert_eq!(steps[n - 1].1, d.path().join("new/dir"));
            if mode == Publish::Create {
                // The two new directories, each synced into its parent, before anything else.
                assert_eq!(
                    steps[..n - 3].to_vec(),
                    [
                        (Step::SyncDir, d.path().to_path_buf()),
                        (Step::SyncDir, d.path().join("new"))
                    ]
                );
            } else {
                assert_eq!(n, 3, "{steps:?}");
            }
        }
        // A create that finds the name taken publishes nothing.
        write_durable(&path, b"x", Publish::Create, false).expect("write");
        let kinds: Vec<Step> = take_steps().into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [Step::SyncFile]);
    }

    #[test]
    fn swap_compares_under_the_lock() {
        let d = dir();
        let path = d.path().join("leases/x.json");
        assert!(swap_locked(&path, None, b"one").expect("create"));
        assert!(!swap_locked(&path, None, b"two").expect("create again"));
        assert!(!swap_locked(&path, Some(b"zero"), b"two").expect("stale"));
        assert_eq!(std::fs::read(&path).expect("read"), b"one");
        assert!(swap_locked(&path, Some(b"one"), b"two").expect("swap"));
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        // The sidecar is hidden from listings (`#<digits>`); nothing else is left.
        assert_eq!(names(&d.path().join("leases")), ["x.json", "x.json#0"]);
    }

    #[test]
    fn concurrent_swaps_of_one_version_have_one_winner() {
        let d = dir();
        let path = d.path().join("l.json");
        assert!(swap_locked(&path, None, b"v0").expect("create"));
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || {
                        swap_locked(path, Some(b"v0"), format!("v1-{i}").as_bytes()).expect("swap")
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().expect("join")))
                .sum()
        });
        assert_eq!(winners, 1);
    }
}
