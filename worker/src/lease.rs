//! Exclusive, expiring leases in the storage: one writer at a time per backup shard or restore.
//!
//! A lease is a small JSON object (`backups/<id>/lease/<shard>.json`,
//! `backups/<id>/restores/<restore>/lease.json`) naming its holder (host, pid, a random token),
//! when it was taken and renewed, and when it expires. Every change to it is conditional, on
//! every backend (see [`Storage::replace_versioned`]):
//!
//! * **acquire**: a conditional create. When the object exists, it is read with its version; a
//!   lease that is released, expired (its `expires_at` is past on this worker's clock), or held
//!   by a process of this same host that is provably gone (same boot, same pid namespace, and
//!   that pid no longer runs the process that wrote it) is taken over by a compare-and-swap of
//!   exactly the version read, so of two workers taking over one stale lease only one wins.
//!   Otherwise the worker fails with [`Error::LeaseHeld`] (exit 14) naming the holder and the
//!   expiry.
//! * **renew**: a heartbeat task swaps the lease for one with a later expiry every quarter of
//!   the TTL (default TTL 60 s, `TIDEMARK_LEASE_TTL_SECS`), again against the version it wrote
//!   last. A failed swap means another worker took the lease over: the heartbeat closes the
//!   write fence and sets the run's stop flag, and the run fails with exit 14 (resumable).
//! * **fence**: the [`Storage`] handle the run writes through is [`Storage::fenced`]: it refuses
//!   every write once the lease is lost, and also once three quarters of the TTL have passed
//!   since the last renewal was sent, so a worker whose renewals stall stops writing at least a
//!   quarter of the TTL before anyone may take the lease over. This assumes clocks that agree
//!   to well within that quarter (15 s by default); a write already in flight when the fence
//!   closes may still land.
//! * **release**: on a clean exit (success or failure), a last swap marks it released, so the
//!   next run starts at once. A crashed worker's lease expires after the TTL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::{ObjectVersion, Storage, WriteFence};

/// Environment variable for the lease TTL in seconds (default 60); renewed every quarter.
pub const ENV_LEASE_TTL: &str = "TIDEMARK_LEASE_TTL_SECS";
/// Default lease time to live.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);
/// Version tag of the lease document.
pub const LEASE_FORMAT: &str = "tidemark-lease/1";

/// How long a lease lasts and how often it is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub ttl: Duration,
    pub renew_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming::new(DEFAULT_LEASE_TTL)
    }
}

impl LeaseTiming {
    /// A TTL, renewed every quarter of it.
    pub fn new(ttl: Duration) -> LeaseTiming {
        LeaseTiming {
            ttl,
            renew_every: ttl / 4,
        }
    }

    /// The TTL from `TIDEMARK_LEASE_TTL_SECS` (seconds, at least 1), else the default.
    pub fn from_env() -> Result<LeaseTiming> {
        Self::from_value(std::env::var(ENV_LEASE_TTL).ok().as_deref())
    }

    fn from_value(value: Option<&str>) -> Result<LeaseTiming> {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(LeaseTiming::default()),
            Some(v) => match v.parse::<f64>() {
                Ok(secs) if (1.0..=86_400.0).contains(&secs) => {
                    Ok(LeaseTiming::new(Duration::from_secs_f64(secs)))
                }
                _ => Err(Error::invalid(format!(
                    "{ENV_LEASE_TTL}='{v}' is not a number of seconds between 1 and 86400"
                ))),
            },
        }
    }

    /// How long after sending a renewal the holder may keep writing.
    fn safe_window(&self) -> Duration {
        self.ttl - self.ttl / 4
    }
}

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Host name (the pod name in Kubernetes).
    pub host: String,
    pub pid: u32,
    /// Random, per process: tells two holders apart even with equal host and pid.
    pub token: String,
    /// Linux boot id, pid namespace and the process's start time (clock ticks after boot):
    /// with them a worker on the same host can tell that the holder process is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_start: Option<u64>,
}

impl Holder {
    /// This process (the same value for every call).
    pub fn current() -> Holder {
        static CURRENT: OnceLock<Holder> = OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let pid = std::process::id();
                Holder {
                    host: host_name(),
                    pid,
                    token: format!("{:016x}", rand::random::<u64>()),
                    boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
                    pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                        .ok()
                        .map(|p| p.to_string_lossy().into_owned()),
                    process_start: process_start(pid),
                }
            })
            .clone()
    }

    /// `host 'h' pid 42 (token 0123abcd…)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "host '{}' pid {} (token {})",
            self.host,
            self.pid,
            self.token.get(..8).unwrap_or(&self.token)
        )
    }

    /// True only when the holder ran on this host, in this boot and pid namespace, and its pid
    /// no longer runs the process that took the lease.
    fn is_gone(&self) -> bool {
        let me = Holder::current();
        let same_place = self.host == me.host
            && self.boot_id.is_some()
            && self.boot_id == me.boot_id
            && self.pid_namespace.is_some()
            && self.pid_namespace == me.pid_namespace;
        match (same_place, self.process_start) {
            (true, Some(start)) => process_start(self.pid) != Some(start),
            _ => false,
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Start time of process `pid` in clock ticks after boot (field 22 of `/proc/<pid>/stat`).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The lease document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub format: String,
    /// What the lease covers, for messages (`backup 'b' shard 00000-of-00001`).
    pub resource: String,
    pub holder: Holder,
    pub acquired_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set by a clean exit: the lease is free.
    #[serde(default)]
    pub released: bool,
}

impl LeaseRecord {
    fn to_bytes(&self) -> Result<Bytes> {
        serde_json::to_vec_pretty(self)
            .map(Bytes::from)
            .map_err(|e| Error::invalid_with("cannot encode a lease", e))
    }

    fn parse(data: &[u8], key: &str) -> Result<LeaseRecord> {
        serde_json::from_slice(data).map_err(|source| Error::MalformedJson {
            kind: "lease",
            file: key.to_string(),
            hint: "; if no worker runs on it, delete the object and run again",
            source,
        })
    }

    fn is_free(&self, now: DateTime<Utc>) -> bool {
        self.released || self.expires_at <= now || self.holder.is_gone()
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::days(1))
}

/// The lease this worker holds, and the fence its writes go through.
#[derive(Debug)]
pub struct Lease {
    inner: Arc<Inner>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    storage: Storage,
    key: String,
    timing: LeaseTiming,
    held: tokio::sync::Mutex<Held>,
    fence: Arc<WriteFence>,
}

#[derive(Debug)]
struct Held {
    record: LeaseRecord,
    version: ObjectVersion,
}

impl Lease {
    /// Takes the lease at `key` for `holder`, or fails with [`Error::LeaseHeld`] naming the
    /// current holder and its expiry. No heartbeat runs yet (see [`Lease::start_heartbeat`]).
    #[tracing::instrument(name = "lease.acquire", skip_all, fields(resource = %resource, key = %key))]
    pub async fn acquire(
        storage: &Storage,
        key: &str,
        resource: &str,
        holder: Holder,
        timing: LeaseTiming,
    ) -> Result<Lease> {
        let mut last_seen = None;
        for _ in 0..5 {
            let started = Instant::now();
            let now = Utc::now();
            let record = LeaseRecord {
                format: LEASE_FORMAT.into(),
                resource: resource.to_string(),
                holder: holder.clone(),
                acquired_at: now,
                renewed_at: now,
                expires_at: after(now, timing.ttl),
                released: false,
            };
            let data = record.to_bytes()?;
            let taken = match storage.create_versioned(key, data.clone()).await? {
                Some(version) => Some(version),
                None => match storage.get_versioned(key).await? {
                    // Deleted in between: try to create it again.
                    None => continue,
                    Some((current, version)) => {
                        let current = LeaseRecord::parse(&current, key)?;
                        if !current.is_free(Utc::now()) {
                            return Err(held_error(storage, key, resource, &current));
                        }
                        let taken = storage.replace_versioned(key, data, &version).await?;
                        if taken.is_some() {
                            tracing::info!(key, previous = %current.holder.describe(), released = current.released, expired_at = %time(current.expires_at), "took over a free lease");
                        }
                        last_seen = Some(current);
                        taken
                    }
                },
            };
            if let Some(version) = taken {
                tracing::info!(key, holder = %holder.describe(), expires_at = %time(record.expires_at), "lease acquired");
                let fence = WriteFence::new(resource, started + timing.safe_window());
                return Ok(Lease {
                    inner: Arc::new(Inner {
                        storage: storage.clone(),
                        key: key.to_string(),
                        timing,
                        held: tokio::sync::Mutex::new(Held { record, version }),
                        fence,
                    }),
                    heartbeat: None,
                });
            }
        }
        // Others kept changing it: someone holds it now.
        match storage.get_versioned(key).await? {
            Some((current, _)) => Err(held_error(
                storage,
                key,
                resource,
                &LeaseRecord::parse(&current, key)?,
            )),
            None => Err(Error::LeaseHeld {
                resource: resource.to_string(),
                detail: format!(
                    "the lease '{key}' kept changing while this worker tried to take it (last seen: {}); run again",
                    last_seen.map_or_else(|| "none".to_string(), |r| r.holder.describe())
                ),
            }),
        }
    }

    /// Takes the lease for this process with the TTL from the environment and starts its
    /// heartbeat, which sets `stop` if the lease is lost.
    pub async fn hold(
        storage: &Storage,
        key: &str,
        resource: &str,
        stop: &Arc<AtomicBool>,
    ) -> Result<Lease> {
        let timing = LeaseTiming::from_env()?;
        let mut lease = Lease::acquire(storage, key, resource, Holder::current(), timing).await?;
        lease.start_heartbeat(Arc::clone(stop));
        Ok(lease)
    }

    /// The storage, fenced: writes through it stop when the lease is lost or not renewed.
    pub fn storage(&self) -> Storage {
        self.inner.storage.fenced(Arc::clone(&self.inner.fence))
    }

    /// The fence of this lease's writes.
    pub fn fence(&self) -> Arc<WriteFence> {
        Arc::clone(&self.inner.fence)
    }

    /// The lease document as last written by this worker.
    pub async fn record(&self) -> LeaseRecord {
        self.inner.held.lock().await.record.clone()
    }

    /// Renews the lease once (the heartbeat does this every quarter of the TTL). A lease taken
    /// over by another worker closes the fence and is [`Error::LeaseHeld`].
    #[tracing::instrument(name = "lease.renew", skip_all, fields(key = %self.inner.key))]
    pub async fn renew(&self) -> Result<()> {
        self.inner.renew().await
    }

    /// Renews in the background until the lease is released; on loss sets `stop`.
    pub fn start_heartbeat(&mut self, stop: Arc<AtomicBool>) {
        if self.heartbeat.is_some() {
            return;
        }
        let inner = Arc::clone(&self.inner);
        self.heartbeat = Some(tokio::spawn(async move { inner.heartbeat(&stop).await }));
    }

    /// Releases the lease (a clean exit): the next worker may take it at once. A lease already
    /// lost is left alone.
    #[tracing::instrument(name = "lease.release", skip_all, fields(key = %self.inner.key))]
    pub async fn release(mut self) -> Result<()> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let inner = &self.inner;
        let mut held = inner.held.lock().await;
        if inner.fence.is_closed() {
            return Ok(());
        }
        inner.fence.close("the lease was released");
        let mut record = held.record.clone();
        record.released = true;
        record.expires_at = Utc::now();
        match inner
            .storage
            .replace_versioned(&inner.key, record.to_bytes()?, &held.version)
            .await?
        {
            Some(version) => {
                held.record = record;
                held.version = version;
                tracing::debug!(key = %inner.key, "lease released");
            }
            None => tracing::warn!(key = %inner.key, "the lease had changed when it was released"),
        }
        Ok(())
    }

    /// Releases the lease after a run and returns the run's result, except that a run that
    /// failed after losing its lease fails with the lease error (what stopped it).
    pub async fn finish<T>(self, result: Result<T>) -> Result<T> {
        let lost = self.inner.fence.check().err();
        if let Err(e) = Lease::release(self).await {
            tracing::warn!(error = %e, "the lease could not be released; it expires on its own");
        }
        match (result, lost) {
            (Ok(v), _) => Ok(v),
            (Err(e @ Error::LeaseHeld { .. }), _) => Err(e),
            (Err(e), Some(lost)) => {
                tracing::warn!(error = %e, "the run stopped after losing its lease");
                Err(lost)
            }
            (Err(e), None) => Err(e),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

impl Inner {
    async fn renew(&self) -> Result<()> {
        let mut held = self.held.lock().await;
        if self.fence.is_closed() {
            return self.fence.check();
        }
        for _ in 0..2 {
            let started = Instant::now();
            let now = Utc::now();
            let mut next = held.record.clone();
            next.renewed_at = now;
            next.expires_at = after(now, self.timing.ttl);
            if let Some(version) = self
                .storage
                .replace_versioned(&self.key, next.to_bytes()?, &held.version)
                .await?
            {
                held.record = next;
                held.version = version;
                self.fence.extend(started + self.timing.safe_window());
                return Ok(());
            }
            let current = self
                .storage
                .get_versioned(&self.key)
                .await?
                .map(|(data, version)| (LeaseRecord::parse(&data, &self.key), version));
            match current {
                // A renewal of ours that landed after its caller gave up on it (a timeout):
                // still ours; swap again from the version it left.
                Some((Ok(r), version)) if r.holder == held.record.holder && !r.released => {
                    held.record = r;
                    held.version = version;
                }
                other => {
                    let now_held = match other {
                        Some((Ok(r), _)) => format!(
                            "{} took it over (it expires at {})",
                            r.holder.describe(),
                            time(r.expires_at)
                        ),
                        Some((Err(e), _)) => {
                            format!("it was replaced by something unreadable ({e})")
                        }
                        None => "the lease object was deleted".into(),
                    };
                    self.fence.close(format!(
                        "this worker lost its lease '{}': {now_held}; it stopped writing, run it again to resume once the other worker is done",
                        self.key
                    ));
                    return self.fence.check();
                }
            }
        }
        Err(Error::Storage {
            location: self.storage.display().to_string(),
            reason: format!(
                "the lease '{}' kept changing while it was renewed",
                self.key
            ),
        })
    }

    #[tracing::instrument(name = "lease.heartbeat", skip_all, fields(key = %self.key))]
    async fn heartbeat(&self, stop: &AtomicBool) {
        let mut wait = self.timing.renew_every;
        loop {
            tokio::time::sleep(wait).await;
            let renewed = match tokio::time::timeout(self.timing.renew_every, self.renew()).await {
                Ok(r) => r,
                Err(_) => Err(Error::Storage {
                    location: self.storage.display().to_string(),
                    reason: format!(
                        "renewing the lease '{}' took longer than {:?}",
                        self.key, self.timing.renew_every
                    ),
                }),
            };
            match renewed {
                Ok(()) => wait = self.timing.renew_every,
                Err(e @ Error::LeaseHeld { .. }) => {
                    tracing::error!(error = %e, "lease lost: stopping");
                    stop.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => {
                    if let Some(reason) = self.fence.closed_reason() {
                        self.fence
                            .close(format!("{reason} (last renewal error: {e})"));
                        tracing::error!(error = %e, "the lease could not be renewed in time: stopping");
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                    tracing::warn!(error = %e, key = %self.key, "renewing the lease failed; retrying");
                    wait = self.timing.renew_every.min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// The error for a lease someone else holds.
fn held_error(storage: &Storage, key: &str, resource: &str, current: &LeaseRecord) -> Error {
    Error::LeaseHeld {
        resource: resource.to_string(),
        detail: format!(
            "{} has held it since {} and it expires at {} (lease '{key}' in {}); if that worker is gone, run again after that time",
            current.holder.describe(),
            time(current.acquired_at),
            time(current.expires_at),
            storage.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_from_the_environment_value() {
        assert_eq!(
            LeaseTiming::from_value(None).ok(),
            Some(LeaseTiming::default())
        );
        let t = LeaseTiming::from_value(Some(" 8 ")).expect("8 s");
        assert_eq!(t.ttl, Duration::from_secs(8));
        assert_eq!(t.renew_every, Duration::from_secs(2));
        assert_eq!(t.safe_window(), Duration::from_secs(6));
        for bad in ["0", "-3", "soon", "100000"] {
            let e = LeaseTiming::from_value(Some(bad)).expect_err(bad);
            assert!(e.to_string().contains(ENV_LEASE_TTL), "{e}");
        }
    }

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_gone() {
        let me = Holder::current();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.is_gone(), "{me:?}");
        // A child that has exited (and been reaped): same host, boot and namespace, but its pid
        // no longer runs the process that recorded its start time.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        let start = process_start(pid);
        child.wait().expect("wait");
        let dead = Holder {
            pid,
            token: "x".into(),
            process_start: start.or(Some(1)),
            ..me.clone()
        };
        assert!(dead.is_gone());
        // Another host, or no identity to compare: never presumed gone.
        let elsewhere = Holder {
            host: format!("{}-other", me.host),
            ..dead.clone()
        };
        assert!(!elsewhere.is_gone());
        let anonymous = Holder {
            boot_id: None,
            ..dead
        };
        assert!(!anonymous.is_gone());
    }

    #[tokio::test]
    async fn second_holder_is_refused_then_takes_over_after_expiry() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let storage = Storage::open(
            &dir.path().display().to_string(),
            &crate::storage::StorageOptions::default(),
        )?;
        let a = Holder {
            host: "elsewhere-a".into(),
            ..Holder::current()
        };
        let b = Holder {
            host: "elsewhere-b".into(),
            token: "bbbbbbbbbbbbbbbb".into(),
            ..Holder::current()
        };
        let timing = LeaseTiming::new(Duration::from_secs(1));
        let first = Lease::acquire(&storage, "l/x.json", "thing 'x'", a, timing).await?;
        let err = Lease::acquire(&storage, "l/x.json", "thing 'x'", b.clone(), timing)
            .await
            .expect_err("held");
        assert_eq!(err.exit_code(), 14);
        let msg = err.to_string();
        assert!(
            msg.contains("thing 'x'")
                && msg.contains("host 'elsewhere-a'")
                && msg.contains("expires at"),
            "{msg}"
        );
        first.renew().await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let second = Lease::acquire(&storage, "l/x.json", "thing 'x'", b, timing).await?;
        let lost = first.renew().await.expect_err("taken over");
        assert!(lost.to_string().contains("elsewhere-b"), "{lost}");
        assert!(first.storage().put("k", Bytes::new()).await.is_err());
        second.release().await?;
        Ok(())
    }

    #[tokio::test]
    async fn taking_renewing_and_releasing_a_lease_run_in_spans_naming_it() -> Result<()> {
        let (spans, _guard) = crate::trace_capture::Spans::install();
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let storage = Storage::open(
            &dir.path().display().to_string(),
            &crate::storage::StorageOptions::default(),
        )?;
        let timing = LeaseTiming::new(Duration::from_secs(30));
        let lease =
            Lease::acquire(&storage, "l/y.json", "thing 'y'", Holder::current(), timing).await?;
        lease.renew().await?;
        lease.release().await?;
        let acquired = spans.named("lease.acquire");
        assert_eq!(acquired.len(), 1, "{acquired:?}");
        assert_eq!(acquired[0]["key"], "l/y.json");
        assert_eq!(acquired[0]["resource"], "thing 'y'");
        for name in ["lease.renew", "lease.release"] {
            let seen = spans.named(name);
            assert_eq!(seen.len(), 1, "{name}: {seen:?}");
            assert_eq!(seen[0]["key"], "l/y.json", "{name}");
        }
        Ok(())
    }
}
