//! Storage locations: every snapshot and backup object tidemark reads or writes goes through
//! [`Storage`]. Contract: keys are `/`-separated and relative to the location's root; `get` of a
//! missing key is `Ok(None)`; `put` is atomic for readers (one PUT on object stores, write to a
//! temporary file then rename on local disk); `delete` of a missing key is `Ok(false)`; `list` is
//! recursive, by plain string prefix, sorted by key; every failure names the location as the
//! user wrote it (never credentials) and says what to check.
//!
//! # Durability and create-only objects
//!
//! On a local directory every write is durable when it returns: the staged file is fsynced
//! before the rename (or hard link) that publishes it, and its directory after (new directories
//! too). Objects that are written once (backup segments and manifests, restore mappings) go
//! through [`Storage::put_once`] / [`Storage::put_large`]: a conditional create on every
//! backend, where an existing object is accepted only when it holds the same bytes (a retry
//! after a crash) and is otherwise an error naming the key. Only checkpoints, reports and leases
//! are replaced; leases only by compare-and-swap ([`Storage::replace_versioned`]).
//!
//! A handle made with [`Storage::fenced`] refuses every write once its [`WriteFence`] closes
//! (the writer's lease was lost or could not be renewed in time).
//!
//! # Locations
//!
//! | form | backend |
//! | --- | --- |
//! | `some/dir`, `/abs/dir` | local directory (created on the first write) |
//! | `file:///abs/dir` | local directory (absolute paths only) |
//! | `s3://bucket[/prefix]` | Amazon S3 or an S3-compatible service |
//! | `gs://bucket[/prefix]` | Google Cloud Storage |
//! | `az://container[/prefix]`, `azure://container[/prefix]` | Azure Blob Storage |
//!
//! The `abfs[s]://`, `adl://` and `https://account.blob.core.windows.net` forms are not
//! accepted: name the account with `AZURE_STORAGE_ACCOUNT_NAME` instead.
//!
//! # Configuration
//!
//! Credentials and most settings come from each provider's standard environment variables,
//! read by `object_store`'s `from_env` builders:
//!
//! * S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` /
//!   `AWS_DEFAULT_REGION`, `AWS_ENDPOINT` / `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`, web
//!   identity (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`), ECS task roles, then EC2 IMDS.
//!   Profiles in `~/.aws` are not read.
//! * GCS: `GOOGLE_SERVICE_ACCOUNT` (path) or `GOOGLE_SERVICE_ACCOUNT_KEY` (JSON),
//!   `GOOGLE_APPLICATION_CREDENTIALS`, gcloud application-default credentials, then the GCE
//!   metadata server. `GOOGLE_BASE_URL` points at another endpoint (emulators).
//! * Azure: `AZURE_STORAGE_ACCOUNT_NAME` plus `AZURE_STORAGE_ACCOUNT_KEY`, a SAS
//!   (`AZURE_STORAGE_SAS_KEY`), a service principal (`AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`,
//!   `AZURE_TENANT_ID`), workload identity or managed identity. `AZURE_STORAGE_ENDPOINT` points at
//!   another endpoint; `AZURE_STORAGE_USE_EMULATOR=true` talks to Azurite at
//!   `AZURITE_BLOB_STORAGE_URL` (default `http://127.0.0.1:10000`) with its well-known account.
//! * `AWS_SKIP_SIGNATURE`, `GOOGLE_SKIP_SIGNATURE`, `AZURE_SKIP_SIGNATURE` send unsigned requests.
//!
//! [`StorageOptions`] carries what the CLI flags set (see [`StorageOptions::from_env`] for the
//! matching `TIDEMARK_*` variables); [`CloudSettings`] overrides the provider variables
//! explicitly (tests, embedding). Plain-HTTP endpoints are refused unless
//! [`StorageOptions::allow_http`] is set.
//!
//! Requests time out after 5 s connecting, 15 s without receiving data, and 300 s in total; failed
//! requests are retried (4 retries, exponential backoff, no retry started after 10 s), so an
//! unreachable endpoint fails within about 10 s and one that accepts but never answers within
//! about 15 s. Throttling (S3's `503 SlowDown`, 429) is retried the same way; throttling that
//! outlasts the retries is reported as such. Large segments go up to S3 in parts
//! (`storage/multipart.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};

mod backends;
mod errors;
mod flock;
mod local;
mod locations;
mod multipart;
mod open;
mod sealed;

pub use multipart::{MULTIPART_THRESHOLD, PARTS_IN_FLIGHT, PART_BYTES};
pub use open::open_location;
pub use sealed::{shown_key_id, KeyRecord, Rewrap, KEY_RECORD_FORMAT};

use backends::{build_azure, build_gcs, build_s3, Backend, Provider};
pub use backends::{
    CloudSettings, StorageOptions, ENV_ALLOW_HTTP, ENV_S3_ENDPOINT, ENV_S3_PATH_STYLE,
    ENV_S3_REGION,
};
use errors::io_reason;
use locations::{is_plain_key, normalize_key, parse_location, split_list_prefix, Location};

/// Attempts at a request that object_store does not retry itself (conditional creates and
/// S3's bulk delete) before its error is reported.
const ATTEMPTS: u32 = 3;

/// Runs `request` again after an error, [`ATTEMPTS`] times in all, pausing 100 ms then 400 ms:
/// for requests that are safe to repeat but that object_store does not retry.
async fn again_on_error<T, F, Fut>(key: &str, mut request: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = object_store::Result<T>>,
{
    let mut pause = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match request().await {
            Err(e) if attempt < ATTEMPTS => {
                tracing::debug!(key, error = %e, attempt, "retrying a storage request");
                tokio::time::sleep(pause).await;
                pause *= 4;
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// One listed object, with its key relative to the location's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

/// A storage location: local directory, file://, s3://, gs:// or az://.
#[derive(Debug, Clone)]
pub struct Storage {
    display: String,
    backend: Backend,
    /// Set on handles that write on behalf of a lease holder: writes stop once it closes.
    fence: Option<Arc<WriteFence>>,
    /// Set when the location is encrypted: objects are sealed on write and opened on read.
    vault: Option<Arc<crate::crypto::Vault>>,
}

/// The version of an object read with [`Storage::get_versioned`], for a compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion(Version);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Version {
    /// What the service reports (S3 and Azure: the ETag; GCS: the generation).
    Remote {
        e_tag: Option<String>,
        version: Option<String>,
    },
    /// A local file: its whole content (the swap compares it under an exclusive lock).
    Local(Bytes),
}

/// Closes a [`Storage`] handle for writes when the lease its writer holds can no longer be
/// trusted: explicitly ([`close`](Self::close): the lease was taken over) or because it was not
/// renewed in time (the deadline passed, [`extend`](Self::extend) moves it).
#[derive(Debug)]
pub struct WriteFence {
    resource: String,
    state: std::sync::Mutex<FenceState>,
}

#[derive(Debug)]
struct FenceState {
    valid_until: Instant,
    closed: Option<String>,
}

impl WriteFence {
    /// A fence for `resource` (named in its error) that is open until `valid_until`.
    pub fn new(resource: impl Into<String>, valid_until: Instant) -> Arc<WriteFence> {
        Arc::new(WriteFence {
            resource: resource.into(),
            state: std::sync::Mutex::new(FenceState {
                valid_until,
                closed: None,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FenceState> {
        match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// Keeps the fence open until `until` (a renewal succeeded); never shortens it.
    pub fn extend(&self, until: Instant) {
        let mut s = self.state();
        if until > s.valid_until {
            s.valid_until = until;
        }
    }

    /// Closes the fence for good; the first reason is kept.
    pub fn close(&self, reason: impl Into<String>) {
        let mut s = self.state();
        if s.closed.is_none() {
            s.closed = Some(reason.into());
        }
    }

    /// Closed by [`close`](Self::close) (not merely past its deadline, which a renewal moves).
    pub fn is_closed(&self) -> bool {
        self.state().closed.is_some()
    }

    /// Why the fence is closed, if it is (closed explicitly, or its deadline passed).
    pub fn closed_reason(&self) -> Option<String> {
        let s = self.state();
        match &s.closed {
            Some(reason) => Some(reason.clone()),
            None if Instant::now() >= s.valid_until => Some(
                "this worker could not renew its lease in time, so it stopped writing before the \
                 lease could expire; run it again to resume"
                    .to_string(),
            ),
            None => None,
        }
    }

    /// `Ok` while writes may go on; else [`Error::LeaseHeld`] with the reason.
    pub fn check(&self) -> Result<()> {
        match self.closed_reason() {
            None => Ok(()),
            Some(detail) => Err(Error::LeaseHeld {
                resource: self.resource.clone(),
                detail,
            }),
        }
    }
}

impl Storage {
    /// Opens a location from `--path`, with provider settings from the environment.
    pub fn open(location: &str, options: &StorageOptions) -> Result<Self> {
        Self::open_with(location, options, &CloudSettings::default())
    }

    /// Opens a location with [`StorageOptions::from_env`] (no CLI flags).
    pub fn open_from_env(location: &str) -> Result<Self> {
        Self::open(location, &StorageOptions::from_env()?)
    }

    /// Opens a location, with `settings` overriding the provider environment variables.
    ///
    /// Nothing is contacted yet: a wrong endpoint or missing credentials show up on the first
    /// operation, as [`Error::Storage`].
    pub fn open_with(
        location: &str,
        options: &StorageOptions,
        settings: &CloudSettings,
    ) -> Result<Self> {
        let display = location.to_string();
        let backend = match parse_location(location)? {
            Location::Local(root) => Backend::Local { root },
            Location::Remote {
                provider,
                bucket,
                prefix,
            } => {
                let store = match provider {
                    Provider::S3 => build_s3(location, &bucket, options, settings)?,
                    Provider::Gcs => build_gcs(location, &bucket, options, settings)?,
                    Provider::Azure => build_azure(location, &bucket, options, settings)?,
                };
                Backend::Remote {
                    store,
                    prefix,
                    provider,
                }
            }
        };
        let vault = match &options.encryption {
            Some(settings) => Some(Arc::new(crate::crypto::Vault::new(settings)?)),
            None => None,
        };
        Ok(Storage {
            display,
            backend,
            fence: None,
            vault,
        })
    }

    /// The same location, with every write (put, delete) refused once `fence` closes.
    pub fn fenced(&self, fence: Arc<WriteFence>) -> Storage {
        Storage {
            fence: Some(fence),
            ..self.clone()
        }
    }

    fn check_fence(&self) -> Result<()> {
        match &self.fence {
            Some(f) => f.check(),
            None => Ok(()),
        }
    }

    /// The location as the user gave it (no credentials).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The backend: `"file"`, `"s3"`, `"gs"` or `"az"`.
    pub fn scheme(&self) -> &'static str {
        match &self.backend {
            Backend::Local { .. } => "file",
            Backend::Remote { provider, .. } => provider.scheme(),
        }
    }

    /// Reads an object; `Ok(None)` when it does not exist. A sealed object is opened (and a
    /// manifest's MAC checked) on an encrypted location.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.get_raw(key).await? {
            Some(data) => Ok(Some(self.opened(key, data).await?)),
            None => Ok(None),
        }
    }

    /// [`get`](Self::get) of the stored bytes, as they are.
    async fn get_raw(&self, key: &str) -> Result<Option<Bytes>> {
        let key = normalize_key(key, false)?;
        let Some((store, path)) = self.resolve(&key, false).await? else {
            return Ok(None);
        };
        let result = match store.get(&path).await {
            Ok(result) => result,
            Err(e) if self.is_missing_object(&e) => return Ok(None),
            Err(e) => return Err(self.failure("read", &key, e)),
        };
        match result.bytes().await {
            Ok(data) => Ok(Some(data)),
            // Deleted between the response headers and the body (local files).
            Err(e) if self.is_missing_object(&e) => Ok(None),
            Err(e) => Err(self.failure("read", &key, e)),
        }
    }

    /// [`get`](Self::get) into `buffer`'s memory: its content is replaced and its capacity
    /// reused (grown once to the object's size when too small), and the result converts back
    /// into it with `Bytes::try_into_mut` once every copy is dropped. On a local directory a key
    /// of other than plain characters is read as `get` does.
    pub async fn get_into(&self, key: &str, buffer: Vec<u8>) -> Result<Option<Bytes>> {
        match self.get_into_raw(key, buffer).await? {
            Some(data) => Ok(Some(self.opened(key, data).await?)),
            None => Ok(None),
        }
    }

    async fn get_into_raw(&self, key: &str, buffer: Vec<u8>) -> Result<Option<Bytes>> {
        if let Backend::Remote { .. } = &self.backend {
            return self.get_remote_into(key, buffer).await;
        }
        if let Backend::Local { root } = &self.backend {
            let normalized = normalize_key(key, false)?;
            if is_plain_key(&normalized) {
                let path = root.join(&normalized);
                let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    use std::io::Read;
                    let mut buffer = buffer;
                    buffer.clear();
                    let mut file = std::fs::File::open(&path)?;
                    // Exactly the object's size: a reused buffer too small grows once, not
                    // step by step into fresh pages.
                    let len = file.metadata()?.len();
                    buffer.reserve_exact(usize::try_from(len).unwrap_or(0));
                    file.read_to_end(&mut buffer)?;
                    Ok(buffer)
                })
                .await
                .map_err(|e| {
                    self.storage_error(format!("reading '{normalized}' did not complete: {e}"))
                })?;
                return match read {
                    Ok(data) => Ok(Some(Bytes::from(data))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(self
                        .storage_error(format!("read '{normalized}' failed: {}", io_reason(&e)))),
                };
            }
        }
        self.get_raw(key).await
    }

    /// [`get_into`](Self::get_into) on an object store: the response body is copied into
    /// `buffer` as it arrives.
    async fn get_remote_into(&self, key: &str, mut buffer: Vec<u8>) -> Result<Option<Bytes>> {
        let key = normalize_key(key, false)?;
        let Some((store, path)) = self.resolve(&key, false).await? else {
            return Ok(None);
        };
        let result = match store.get(&path).await {
            Ok(result) => result,
            Err(e) if self.is_missing_object(&e) => return Ok(None),
            Err(e) => return Err(self.failure("read", &key, e)),
        };
        buffer.clear();
        let len = result.range.end.saturating_sub(result.range.start);
        buffer.reserve_exact(usize::try_from(len).unwrap_or(0));
        let mut body = result.into_stream();
        loop {
            match body.try_next().await {
                Ok(Some(chunk)) => buffer.extend_from_slice(&chunk),
                Ok(None) => return Ok(Some(Bytes::from(buffer))),
                Err(e) if self.is_missing_object(&e) => return Ok(None),
                Err(e) => return Err(self.failure("read", &key, e)),
            }
        }
    }

    /// [`put_once`](Self::put_once) for large objects not read back soon (backup segments). On a
    /// local directory the bytes bypass the page cache where the filesystem allows it
    /// (`O_DIRECT`, through a reused aligned buffer): a backup neither evicts what the node has
    /// cached nor fills the pod's memory with dirty pages. On S3, an object above
    /// [`MULTIPART_THRESHOLD`] bytes goes up in parts, several at once, completed only if the
    /// key is still free (see `storage/multipart.rs`). Durable and create-only like `put_once`.
    pub async fn put_large(&self, key: &str, data: Bytes) -> Result<()> {
        self.check_fence()?;
        let stored = self.sealed(key, data).await?;
        self.put_large_stored(key, stored).await
    }

    /// [`put_large`](Self::put_large) of a buffer the caller gives up, handed back through
    /// `release` once written so that its memory can serve again: on an encrypted location it
    /// is sealed where it is (no second buffer of its size), and what comes back is the sealed
    /// object.
    pub async fn put_large_with(
        &self,
        key: &str,
        data: Vec<u8>,
        release: impl FnOnce(Bytes) + Send,
    ) -> Result<()> {
        self.check_fence()?;
        let stored = self.sealed_owned(key, data).await?;
        let written = self.put_large_stored(key, stored.clone()).await;
        release(stored);
        written
    }

    /// What an object stored as `stored` under `key` holds (opened if sealed).
    async fn content_of(&self, key: &str, stored: &Bytes) -> Result<Bytes> {
        if self.vault.is_some() {
            self.opened(key, stored.clone()).await
        } else {
            Ok(stored.clone())
        }
    }

    /// [`put_large`](Self::put_large) of bytes as they are to be stored.
    async fn put_large_stored(&self, key: &str, data: Bytes) -> Result<()> {
        if let Backend::Local { root } = &self.backend {
            let normalized = normalize_key(key, false)?;
            if is_plain_key(&normalized) {
                let path = root.join(&normalized);
                let staged = data.clone();
                let written = tokio::task::spawn_blocking(move || {
                    local::write_durable(&path, &staged, local::Publish::Create, true)
                })
                .await
                .map_err(|e| {
                    self.storage_error(format!("writing '{normalized}' did not complete: {e}"))
                })?;
                return match written {
                    Ok(local::Published::Written) => Ok(()),
                    Ok(local::Published::Exists) => {
                        let plain = self.content_of(&normalized, &data).await?;
                        self.accept_identical(&normalized, &plain).await
                    }
                    Err(e) => Err(self
                        .storage_error(format!("write '{normalized}' failed: {}", io_reason(&e)))),
                };
            }
        }
        if self.provider() == Some(Provider::S3) && data.len() > multipart::MULTIPART_THRESHOLD {
            return self.put_parts_once(key, data).await;
        }
        self.put_once_sealed(key, data, None).await
    }

    /// Writes an object atomically (readers see the old or the new content, never a torn one),
    /// replacing any object with that key. For objects that may be rewritten (checkpoints).
    pub async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.check_fence()?;
        let data = self.sealed(key, data).await?;
        let key = normalize_key(key, false)?;
        let Some((store, path)) = self.resolve(&key, true).await? else {
            return Err(self.storage_error(format!("cannot write '{key}': root is missing")));
        };
        store
            .put(&path, data.into())
            .await
            .map(|_| ())
            .map_err(|e| self.failure("write", &key, e))
    }

    /// Creates an object that is never overwritten (segments, manifests, mappings): a
    /// conditional create; when the key already exists, its content is read back and accepted
    /// only if it is the same bytes (an idempotent retry after a crash or a lost response),
    /// otherwise the write fails naming the key and nothing is changed.
    pub async fn put_once(&self, key: &str, data: Bytes) -> Result<()> {
        self.check_fence()?;
        let sealed = self.sealed(key, data.clone()).await?;
        self.put_once_sealed(key, sealed, Some(&data)).await
    }

    /// [`put_once`](Self::put_once) of `data`, already sealed; an existing object is compared
    /// with `plain`, its content (opened from `data` when not given).
    async fn put_once_sealed(&self, key: &str, data: Bytes, plain: Option<&Bytes>) -> Result<()> {
        let key = normalize_key(key, false)?;
        let Some((store, path)) = self.resolve(&key, true).await? else {
            return Err(self.storage_error(format!("cannot write '{key}': root is missing")));
        };
        // object_store does not retry a conditional create; retrying one is safe here: a
        // create that landed before its answer was lost is found identical on the next try.
        let created = again_on_error(&key, || async {
            match store
                .put_opts(
                    &path,
                    data.clone().into(),
                    object_store::PutMode::Create.into(),
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| self.failure("write", &key, e))?;
        if created {
            return Ok(());
        }
        match plain {
            Some(plain) => self.accept_identical(&key, plain).await,
            None => {
                let plain = self.content_of(&key, &data).await?;
                self.accept_identical(&key, &plain).await
            }
        }
    }

    /// After a create found `key` taken: `Ok` when it holds `data` (opened, on an encrypted
    /// location: a retry seals the same content under another nonce), else an error naming it.
    async fn accept_identical(&self, key: &str, data: &Bytes) -> Result<()> {
        match self.get(key).await? {
            Some(existing) if existing == *data => {
                tracing::debug!(key, "object already stored with the same content");
                Ok(())
            }
            Some(existing) => Err(Error::VerificationFailed(format!(
                "refusing to overwrite '{key}' in {}: it already exists with other content ({} \
                 bytes, this write has {}); objects are created once and never replaced: another \
                 worker wrote it, or this id was used before",
                self.display,
                existing.len(),
                data.len()
            ))),
            None => Err(self.storage_error(format!(
                "'{key}' was reported as existing but cannot be read back; run again"
            ))),
        }
    }

    /// Writes an object only if no object has that key (a conditional create, atomic on every
    /// backend); `Ok(false)` when one already exists, which is then left untouched.
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<bool> {
        self.check_fence()?;
        let data = self.sealed(key, data).await?;
        let key = normalize_key(key, false)?;
        let Some((store, path)) = self.resolve(&key, true).await? else {
            return Err(self.storage_error(format!("cannot write '{key}': root is missing")));
        };
        match store
            .put_opts(&path, data.into(), object_store::PutMode::Create.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.failure("write", &key, e)),
        }
    }

    /// Reads an object with its version, for [`replace_versioned`](Self::replace_versioned);
    /// `Ok(None)` when it does not exist. Not fenced (leases use it).
    pub async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, ObjectVersion)>> {
        let key = normalize_key(key, false)?;
        if let Some(path) = self.local_path(&key, false).await? {
            let read = tokio::task::spawn_blocking(move || std::fs::read(&path))
                .await
                .map_err(|e| {
                    self.storage_error(format!("reading '{key}' did not complete: {e}"))
                })?;
            return match read {
                Ok(data) => {
                    let data = Bytes::from(data);
                    Ok(Some((data.clone(), ObjectVersion(Version::Local(data)))))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => {
                    Err(self.storage_error(format!("read '{key}' failed: {}", io_reason(&e))))
                }
            };
        }
        let Some((store, path)) = self.resolve(&key, false).await? else {
            return Ok(None);
        };
        let result = match store.get(&path).await {
            Ok(result) => result,
            Err(e) if self.is_missing_object(&e) => return Ok(None),
            Err(e) => return Err(self.failure("read", &key, e)),
        };
        let version = Version::Remote {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        match result.bytes().await {
            Ok(data) => Ok(Some((data, ObjectVersion(version)))),
            Err(e) if self.is_missing_object(&e) => Ok(None),
            Err(e) => Err(self.failure("read", &key, e)),
        }
    }

    /// Creates an object only if none has that key, returning its version; `Ok(None)` when one
    /// exists (left untouched). Not fenced (leases use it).
    pub async fn create_versioned(&self, key: &str, data: Bytes) -> Result<Option<ObjectVersion>> {
        self.swap(key, data, None).await
    }

    /// Replaces an object only if it is still at `expected` (compare-and-swap), returning the
    /// new version; `Ok(None)` when it changed or was deleted meanwhile. Atomic on every
    /// backend: S3 `If-Match` on the ETag, Azure `If-Match`, GCS `ifGenerationMatch`; a local
    /// directory compares the content under an exclusive `flock` that every swap of the object
    /// takes. Not fenced (leases use it).
    pub async fn replace_versioned(
        &self,
        key: &str,
        data: Bytes,
        expected: &ObjectVersion,
    ) -> Result<Option<ObjectVersion>> {
        self.swap(key, data, Some(expected)).await
    }

    async fn swap(
        &self,
        key: &str,
        data: Bytes,
        expected: Option<&ObjectVersion>,
    ) -> Result<Option<ObjectVersion>> {
        let key = normalize_key(key, false)?;
        if let Some(path) = self.local_path(&key, true).await? {
            let want = match expected {
                None => None,
                Some(ObjectVersion(Version::Local(b))) => Some(b.clone()),
                Some(_) => {
                    return Err(self.storage_error(format!(
                        "cannot swap '{key}': its version comes from another storage"
                    )))
                }
            };
            let new = data.clone();
            let swapped = tokio::task::spawn_blocking(move || {
                local::swap_locked(&path, want.as_deref(), &new)
            })
            .await
            .map_err(|e| self.storage_error(format!("writing '{key}' did not complete: {e}")))?;
            return match swapped {
                Ok(true) => Ok(Some(ObjectVersion(Version::Local(data)))),
                Ok(false) => Ok(None),
                Err(e) => {
                    Err(self.storage_error(format!("write '{key}' failed: {}", io_reason(&e))))
                }
            };
        }
        let Some((store, path)) = self.resolve(&key, true).await? else {
            return Err(self.storage_error(format!("cannot write '{key}': root is missing")));
        };
        let mode = match expected {
            None => object_store::PutMode::Create,
            Some(ObjectVersion(Version::Remote { e_tag, version })) => {
                object_store::PutMode::Update(object_store::UpdateVersion {
                    e_tag: e_tag.clone(),
                    version: version.clone(),
                })
            }
            Some(_) => {
                return Err(self.storage_error(format!(
                    "cannot swap '{key}': its version comes from another storage"
                )))
            }
        };
        match store.put_opts(&path, data.into(), mode.into()).await {
            Ok(r) => Ok(Some(ObjectVersion(Version::Remote {
                e_tag: r.e_tag,
                version: r.version,
            }))),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) if self.is_missing_object(&e) => Ok(None),
            Err(e) => Err(self.failure("conditional write", &key, e)),
        }
    }

    /// Deletes an object; `Ok(false)` when it did not exist.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.check_fence()?;
        let key = normalize_key(key, false)?;
        let Some((store, path)) = self.resolve(&key, false).await? else {
            return Ok(false);
        };
        // S3, GCS and Azure deletes differ on missing objects; ask first so all say the same.
        match store.head(&path).await {
            Ok(_) => {}
            Err(e) if self.is_missing_object(&e) => return Ok(false),
            Err(e) => return Err(self.failure("check", &key, e)),
        }
        // A delete is idempotent, but object_store does not retry S3's (a bulk-delete POST):
        // one dropped connection would fail a run whose work is done, so it is retried here.
        let deleted = again_on_error(&key, || async {
            match store.delete(&path).await {
                Ok(()) => Ok(true),
                Err(e) if self.is_missing_object(&e) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await;
        deleted.map_err(|e| self.failure("delete", &key, e))
    }

    /// Lists objects under `prefix` (recursively), keys relative to the root.
    ///
    /// `prefix` is a plain string prefix of the key (`"snap"` matches `snap/a` and `snapshot-1`);
    /// end it with `/` to list one "directory". `""` lists everything. Sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let (dir, filter) = split_list_prefix(prefix)?;
        let Some((store, path)) = self.resolve(&dir, false).await? else {
            return Ok(vec![]);
        };
        let root = match &self.backend {
            Backend::Local { .. } => String::new(),
            Backend::Remote { prefix, .. } => prefix.clone(),
        };
        let listed: Vec<object_store::ObjectMeta> = {
            let stream = if path.as_ref().is_empty() {
                store.list(None)
            } else {
                store.list(Some(&path))
            };
            match stream.try_collect().await {
                Ok(listed) => listed,
                Err(e) if self.is_missing_object(&e) => vec![],
                Err(e) => return Err(self.failure("list", prefix, e)),
            }
        };
        let mut objects: Vec<ObjectInfo> = listed
            .into_iter()
            .filter_map(|meta| {
                let full = meta.location.as_ref();
                let key = if root.is_empty() {
                    full
                } else {
                    full.strip_prefix(root.as_str())?.strip_prefix('/')?
                };
                key.starts_with(filter.as_str()).then(|| ObjectInfo {
                    key: key.to_string(),
                    size: meta.size,
                    last_modified: meta.last_modified,
                })
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// Lists the objects directly in the folder `dir` (`""`: the root), not those in folders
    /// below it: one request however much the folders below hold. Keys relative to the root,
    /// sorted.
    pub async fn list_folder(&self, dir: &str) -> Result<Vec<ObjectInfo>> {
        let dir = normalize_key(dir, true)?;
        let Some((store, path)) = self.resolve(&dir, false).await? else {
            return Ok(vec![]);
        };
        let listed = match store
            .list_with_delimiter((!path.as_ref().is_empty()).then_some(&path))
            .await
        {
            Ok(listed) => listed.objects,
            Err(e) if self.is_missing_object(&e) => vec![],
            Err(e) => return Err(self.failure("list", &dir, e)),
        };
        let mut objects: Vec<ObjectInfo> = listed
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                Some(ObjectInfo {
                    key: if dir.is_empty() {
                        name.to_string()
                    } else {
                        format!("{dir}/{name}")
                    },
                    size: meta.size,
                    last_modified: meta.last_modified,
                })
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The store and full object path for `key` (already normalised; may be empty for the root).
    /// `None` when the location is a local directory that does not exist and `create` is false.
    async fn resolve(
        &self,
        key: &str,
        create: bool,
    ) -> Result<Option<(Arc<dyn ObjectStore>, ObjectPath)>> {
        match &self.backend {
            Backend::Remote { store, prefix, .. } => {
                let full = match (prefix.is_empty(), key.is_empty()) {
                    (true, _) => key.to_string(),
                    (false, true) => prefix.clone(),
                    (false, false) => format!("{prefix}/{key}"),
                };
                let path = ObjectPath::parse(&full)
                    .map_err(|e| Error::invalid(format!("invalid storage key '{key}': {e}")))?;
                Ok(Some((Arc::clone(store), path)))
            }
            Backend::Local { root } => {
                let Some(store) = self.local_store(root, create).await? else {
                    return Ok(None);
                };
                let path = ObjectPath::parse(key)
                    .map_err(|e| Error::invalid(format!("invalid storage key '{key}': {e}")))?;
                Ok(Some((store, path)))
            }
        }
    }
}

/// Spare byte buffers kept for reuse, so large reads and writes do not fault in fresh memory
/// each time. Keeps at most `max` (and no empty one).
#[derive(Debug)]
pub struct BufferPool {
    spare: std::sync::Mutex<Vec<Vec<u8>>>,
    max: usize,
}

impl BufferPool {
    /// An empty pool that keeps at most `max` buffers.
    pub const fn new(max: usize) -> Self {
        BufferPool {
            spare: std::sync::Mutex::new(Vec::new()),
            max,
        }
    }

    /// A spare buffer (its old content is still in it), or a new empty one.
    pub fn take(&self) -> Vec<u8> {
        match self.spare.lock() {
            Ok(mut p) => p.pop(),
            Err(p) => p.into_inner().pop(),
        }
        .unwrap_or_default()
    }

    /// Keeps `buffer` for a later [`take`](Self::take), unless it is empty or the pool full.
    pub fn give(&self, buffer: Vec<u8>) {
        if buffer.capacity() == 0 {
            return;
        }
        let mut spare = match self.spare.lock() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        if spare.len() < self.max {
            spare.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::backends::*;
    use super::errors::*;
    use super::locations::*;
    use super::*;
    use std::fmt;
    use std::path::PathBuf;

    #[tokio::test]
    async fn a_request_object_store_does_not_retry_is_tried_three_times() {
        let tries = std::sync::atomic::AtomicU32::new(0);
        let fail = || object_store::Error::Generic {
            store: "test",
            source: "connection reset".into(),
        };
        let twice_then_ok = again_on_error("k", || async {
            match tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 | 1 => Err(fail()),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(twice_then_ok.ok(), Some(7));
        tries.store(0, std::sync::atomic::Ordering::SeqCst);
        let never = again_on_error("k", || async {
            tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<(), _>(fail())
        })
        .await;
        assert!(never.is_err());
        assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), ATTEMPTS);
    }

    fn remote(provider: Provider, bucket: &str, prefix: &str) -> Location {
        Location::Remote {
            provider,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    fn invalid_message(result: Result<impl fmt::Debug>) -> String {
        match result {
            Err(Error::InvalidInput(msg)) => msg,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn parses_cloud_schemes() -> Result<()> {
        assert_eq!(
            parse_location("s3://bucket/some/prefix")?,
            remote(Provider::S3, "bucket", "some/prefix")
        );
        assert_eq!(
            parse_location("s3://bucket")?,
            remote(Provider::S3, "bucket", "")
        );
        assert_eq!(
            parse_location("s3://bucket/")?,
            remote(Provider::S3, "bucket", "")
        );
        assert_eq!(
            parse_location("gs://my-bucket//a//b/")?,
            remote(Provider::Gcs, "my-bucket", "a/b")
        );
        assert_eq!(
            parse_location("az://container/x")?,
            remote(Provider::Azure, "container", "x")
        );
        assert_eq!(
            parse_location("azure://container/x/y")?,
            remote(Provider::Azure, "container", "x/y")
        );
        assert_eq!(
            parse_location("S3://bucket/p")?,
            remote(Provider::S3, "bucket", "p")
        );
        Ok(())
    }

    #[test]
    fn parses_local_paths() -> Result<()> {
        let cwd = std::env::current_dir().map_err(|e| Error::invalid(e.to_string()))?;
        assert_eq!(
            parse_location("backups/snaps")?,
            Location::Local(cwd.join("backups/snaps"))
        );
        assert_eq!(
            parse_location("/var/lib/tidemark")?,
            Location::Local(PathBuf::from("/var/lib/tidemark"))
        );
        assert_eq!(
            parse_location("file:///var/lib/tidemark")?,
            Location::Local(PathBuf::from("/var/lib/tidemark"))
        );
        assert_eq!(
            parse_location("file:///var/lib/with%20space")?,
            Location::Local(PathBuf::from("/var/lib/with space"))
        );
        Ok(())
    }

    #[test]
    fn rejects_bad_locations() {
        let msg = invalid_message(parse_location("ftp://x/y"));
        assert!(
            msg.contains("'ftp://'") && msg.contains("s3://bucket/prefix"),
            "{msg}"
        );
        let msg = invalid_message(parse_location("file://relative/dir"));
        assert!(msg.contains("file:///absolute/dir"), "{msg}");
        let msg = invalid_message(parse_location("s3:///prefix"));
        assert!(msg.contains("no bucket name"), "{msg}");
        let msg = invalid_message(parse_location("az://"));
        assert!(msg.contains("no container name"), "{msg}");
        let msg = invalid_message(parse_location("s3://bad bucket/x"));
        assert!(msg.contains("contains ' '"), "{msg}");
        let msg = invalid_message(parse_location("s3://b/x/../y"));
        assert!(msg.contains("'..'"), "{msg}");
        let msg = invalid_message(parse_location("s3://b/x?versionId=1"));
        assert!(msg.contains("query"), "{msg}");
        let msg = invalid_message(parse_location(""));
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn never_echoes_embedded_credentials() {
        let msg = invalid_message(parse_location("s3://AKIAXX:supersecret@bucket/p"));
        assert!(
            !msg.contains("supersecret") && !msg.contains("AKIAXX"),
            "{msg}"
        );
        assert!(msg.contains("s3://***@bucket/p"), "{msg}");
        let msg = invalid_message(parse_location("ftp://user:supersecret@host/p"));
        assert!(!msg.contains("supersecret"), "{msg}");
    }

    #[test]
    fn normalises_keys() -> Result<()> {
        assert_eq!(normalize_key("a/b/c.json", false)?, "a/b/c.json");
        assert_eq!(normalize_key("/a//b/", false)?, "a/b");
        assert_eq!(normalize_key("", true)?, "");
        assert_eq!(normalize_key("snap shot-1=x", false)?, "snap shot-1=x");
        invalid_message(normalize_key("", false));
        invalid_message(normalize_key("///", false));
        invalid_message(normalize_key("a/../b", false));
        invalid_message(normalize_key("./a", false));
        invalid_message(normalize_key("a\\b", false));
        invalid_message(normalize_key("a#1", false));
        invalid_message(normalize_key("a\nb", false));
        Ok(())
    }

    #[test]
    fn splits_list_prefixes() -> Result<()> {
        assert_eq!(split_list_prefix("")?, (String::new(), String::new()));
        assert_eq!(split_list_prefix("/")?, (String::new(), String::new()));
        assert_eq!(split_list_prefix("snap")?, (String::new(), "snap".into()));
        assert_eq!(
            split_list_prefix("snapshots/")?,
            ("snapshots".into(), "snapshots/".into())
        );
        assert_eq!(
            split_list_prefix("/snapshots//2024-")?,
            ("snapshots".into(), "snapshots/2024-".into())
        );
        Ok(())
    }

    #[test]
    fn plain_http_endpoints_need_allow_http() -> Result<()> {
        let options = StorageOptions {
            s3_endpoint: Some("http://127.0.0.1:9000".into()),
            ..StorageOptions::default()
        };
        let msg = invalid_message(Storage::open("s3://bucket/p", &options));
        assert!(
            msg.contains("--allow-http") && msg.contains(ENV_ALLOW_HTTP),
            "{msg}"
        );

        let options = StorageOptions {
            allow_http: true,
            ..options
        };
        let storage = Storage::open("s3://bucket/p", &options)?;
        assert_eq!(storage.display(), "s3://bucket/p");
        assert_eq!(storage.scheme(), "s3");

        let settings = CloudSettings {
            gcs_endpoint: Some("http://127.0.0.1:4443".into()),
            anonymous: true,
            ..CloudSettings::default()
        };
        let msg = invalid_message(Storage::open_with(
            "gs://bucket",
            &StorageOptions::default(),
            &settings,
        ));
        assert!(msg.contains("--allow-http"), "{msg}");

        let settings = CloudSettings {
            azure_endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into()),
            azure_account: Some("devstoreaccount1".into()),
            azure_access_key: Some("a2V5".into()),
            ..CloudSettings::default()
        };
        let msg = invalid_message(Storage::open_with(
            "az://container",
            &StorageOptions::default(),
            &settings,
        ));
        assert!(msg.contains("--allow-http"), "{msg}");
        Ok(())
    }

    #[test]
    fn rejects_malformed_endpoints() {
        let options = StorageOptions {
            s3_endpoint: Some("minio:9000".into()),
            ..StorageOptions::default()
        };
        let msg = invalid_message(Storage::open("s3://bucket", &options));
        assert!(msg.contains("http(s)://host"), "{msg}");
    }

    #[test]
    fn opens_every_scheme() -> Result<()> {
        let options = StorageOptions {
            allow_http: true,
            ..StorageOptions::default()
        };
        let settings = CloudSettings {
            gcs_endpoint: Some("http://127.0.0.1:4443".into()),
            azure_endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into()),
            azure_account: Some("devstoreaccount1".into()),
            azure_access_key: Some("a2V5".into()),
            anonymous: true,
            ..CloudSettings::default()
        };
        for (location, scheme) in [
            ("s3://b/p", "s3"),
            ("gs://b/p", "gs"),
            ("az://c/p", "az"),
            ("azure://c", "az"),
            ("file:///tmp/x", "file"),
            ("some/dir", "file"),
        ] {
            let storage = Storage::open_with(location, &options, &settings)?;
            assert_eq!(storage.display(), location);
            assert_eq!(storage.scheme(), scheme);
        }
        Ok(())
    }

    #[test]
    fn options_from_lookup() -> Result<()> {
        let vars = |name: &str| match name {
            ENV_S3_ENDPOINT => Some("https://s3.example".to_string()),
            ENV_S3_REGION => Some("eu-west-1".to_string()),
            ENV_S3_PATH_STYLE => Some("Yes".to_string()),
            ENV_ALLOW_HTTP => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            StorageOptions::from_lookup(vars)?,
            StorageOptions {
                s3_region: Some("eu-west-1".into()),
                s3_endpoint: Some("https://s3.example".into()),
                s3_path_style: true,
                allow_http: false,
                encryption: None,
            }
        );
        let bad = |name: &str| (name == ENV_ALLOW_HTTP).then(|| "maybe".to_string());
        let msg = invalid_message(StorageOptions::from_lookup(bad));
        assert!(
            msg.contains(ENV_ALLOW_HTTP) && msg.contains("maybe"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn debug_hides_secrets() {
        let settings = CloudSettings {
            s3_access_key_id: Some("AKIDEXAMPLE".into()),
            s3_secret_access_key: Some("wJalrXUtnFEMI".into()),
            azure_access_key: Some("azuresecret".into()),
            ..CloudSettings::default()
        };
        let text = format!("{settings:?}");
        assert!(
            !text.contains("wJalrXUtnFEMI") && !text.contains("azuresecret"),
            "{text}"
        );
        assert!(text.contains("<redacted>"), "{text}");
    }

    fn generic(message: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::other(message.to_string())),
        }
    }

    fn not_found(body: &str) -> object_store::Error {
        object_store::Error::NotFound {
            path: "p/k".into(),
            source: Box::new(std::io::Error::other(format!(
                "{STATUS_MARKER}404 Not Found: {body}"
            ))),
        }
    }

    #[test]
    fn classifies_errors() {
        let refused = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert_eq!(classify(&refused), Cause::Refused);
        assert_eq!(
            classify(&generic(
                "client error (Connect): tcp connect error: Connection refused (os error 111)"
            )),
            Cause::Refused
        );
        assert_eq!(
            classify(&generic("dns error: failed to lookup address information")),
            Cause::Dns
        );
        assert_eq!(classify(&generic("operation timed out")), Cause::Timeout);
        assert_eq!(
            classify(&generic(
                "Error performing token request: GET http://169.254.169.254/latest/api/token"
            )),
            Cause::Credentials
        );
        assert_eq!(
            classify(&generic(&format!(
                "PUT http://x/b/k - {STATUS_MARKER}403 Forbidden: AccessDenied"
            ))),
            Cause::Denied(403)
        );
        let denied = object_store::Error::PermissionDenied {
            path: "k".into(),
            source: Box::new(std::io::Error::other("denied")),
        };
        assert_eq!(classify(&denied), Cause::Denied(403));
        assert_eq!(
            classify(&not_found("<Code>NoSuchBucket</Code>")),
            Cause::BucketMissing
        );
        assert_eq!(
            classify(&not_found("ContainerNotFound")),
            Cause::BucketMissing
        );
        assert_eq!(classify(&generic("something else")), Cause::Other);
        assert_eq!(http_status(&not_found("NoSuchKey")), Some(404));
    }

    #[test]
    fn failures_are_actionable() -> Result<()> {
        let options = StorageOptions {
            s3_endpoint: Some("https://s3.example".into()),
            ..StorageOptions::default()
        };
        let settings = CloudSettings {
            s3_access_key_id: Some("AKIDEXAMPLE".into()),
            s3_secret_access_key: Some("wJalrXUtnFEMI".into()),
            ..CloudSettings::default()
        };
        let storage = Storage::open_with("s3://bucket/prefix", &options, &settings)?;
        assert!(storage.is_missing_object(&not_found("<Code>NoSuchKey</Code>")));
        assert!(!storage.is_missing_object(&not_found("<Code>NoSuchBucket</Code>")));

        let reason = |err: object_store::Error| match storage.failure("read", "a/b", err) {
            e @ Error::StorageClient(_) => {
                let (location, reason) = e.storage_parts().expect("a storage error");
                assert_eq!(location, "s3://bucket/prefix");
                assert!(!reason.contains("wJalrXUtnFEMI"), "{reason}");
                reason.to_string()
            }
            other => panic!("expected a storage error, got {other:?}"),
        };
        let r = reason(generic(
            "tcp connect error: Connection refused (os error 111)",
        ));
        assert!(
            r.starts_with("connection refused (is the endpoint right"),
            "{r}"
        );
        assert!(r.contains("read 'a/b' failed"), "{r}");
        let r = reason(generic(&format!(
            "{STATUS_MARKER}403 Forbidden: AccessDenied"
        )));
        assert!(
            r.contains("access denied (HTTP 403)") && r.contains("AWS_ACCESS_KEY_ID"),
            "{r}"
        );
        let r = reason(generic(
            "Error performing token request: http://169.254.169.254/",
        ));
        assert!(r.starts_with("cannot get credentials"), "{r}");
        let r = reason(not_found("<Code>NoSuchBucket</Code>"));
        assert!(r.starts_with("the bucket does not exist"), "{r}");
        let r = reason(generic(&format!(
            "{STATUS_MARKER}500 Internal Server Error: boom"
        )));
        assert!(r.contains("HTTP 500 Internal Server Error: boom"), "{r}");
        Ok(())
    }

    #[tokio::test]
    async fn filesystem_round_trip() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let root = dir.path().join("not/yet/there");
        let storage = Storage::open(&root.display().to_string(), &StorageOptions::default())?;

        // Nothing exists yet: reads do not create the directory.
        assert_eq!(storage.get("a.json").await?, None);
        assert!(storage.list("").await?.is_empty());
        assert!(!storage.delete("a.json").await?);
        assert!(!root.exists());

        let payload = Bytes::from((0..=255u8).cycle().take(70_000).collect::<Vec<_>>());
        storage
            .put("snapshots/2024/a.json", payload.clone())
            .await?;
        storage
            .put("/snapshots//b.json", Bytes::from_static(b"{}"))
            .await?;
        storage.put("snapshots-old/c.json", Bytes::new()).await?;
        storage.put("top.txt", Bytes::from_static(b"top")).await?;
        assert!(root.join("snapshots/2024/a.json").is_file());

        assert_eq!(
            storage.get("snapshots/2024/a.json").await?,
            Some(payload.clone())
        );
        assert_eq!(
            storage.get("snapshots-old/c.json").await?,
            Some(Bytes::new())
        );
        assert_eq!(storage.get("snapshots/missing.json").await?, None);
        assert_eq!(storage.get("nodir/missing.json").await?, None);

        let keys =
            |objects: Vec<ObjectInfo>| objects.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(
            keys(storage.list("").await?),
            [
                "snapshots-old/c.json",
                "snapshots/2024/a.json",
                "snapshots/b.json",
                "top.txt"
            ]
        );
        let listed = storage.list("snapshots/").await?;
        assert_eq!(
            keys(listed.clone()),
            ["snapshots/2024/a.json", "snapshots/b.json"]
        );
        assert_eq!(listed[0].size, 70_000);
        assert_eq!(
            keys(storage.list("snap").await?),
            [
                "snapshots-old/c.json",
                "snapshots/2024/a.json",
                "snapshots/b.json"
            ]
        );
        assert!(storage.list("nothing/").await?.is_empty());

        // A "directory" is not an object.
        assert_eq!(storage.get("snapshots").await?, None);
        assert!(!storage.delete("snapshots").await?);
        assert!(root.join("snapshots").is_dir());

        // Overwrite replaces the content.
        storage.put("top.txt", Bytes::from_static(b"new")).await?;
        assert_eq!(
            storage.get("top.txt").await?,
            Some(Bytes::from_static(b"new"))
        );

        assert!(storage.delete("snapshots/b.json").await?);
        assert!(!storage.delete("snapshots/b.json").await?);
        assert_eq!(storage.get("snapshots/b.json").await?, None);
        assert_eq!(
            keys(storage.list("snapshots/").await?),
            ["snapshots/2024/a.json"]
        );

        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(root.join("snapshots-old"))
            .map_err(|e| Error::invalid(e.to_string()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains('#'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        Ok(())
    }

    #[tokio::test]
    async fn get_into_reads_into_the_given_memory() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let storage = Storage::open(
            &dir.path().display().to_string(),
            &StorageOptions::default(),
        )?;
        let payload = Bytes::from((0..=255u8).cycle().take(300_000).collect::<Vec<_>>());
        storage.put("backups/b-1/x.seg", payload.clone()).await?;
        storage.put("odd name", Bytes::from_static(b"odd")).await?;

        // A used, larger buffer: its old bytes are gone, its memory is reused and comes back.
        let buffer = vec![7u8; 1 << 20];
        let at = buffer.as_ptr();
        let data = storage.get_into("backups/b-1/x.seg", buffer).await?;
        let data = data.ok_or_else(|| Error::invalid("missing".to_string()))?;
        assert_eq!(data, payload);
        assert_eq!(data.as_ptr(), at);
        let back = Vec::from(
            data.try_into_mut()
                .map_err(|_| Error::invalid("shared".to_string()))?,
        );
        assert_eq!(back.as_ptr(), at);
        assert!(back.capacity() >= 1 << 20);

        // Missing objects, keys that go through object_store, bad keys: as `get`.
        assert_eq!(storage.get_into("backups/b-1/none.seg", back).await?, None);
        assert_eq!(
            storage.get_into("odd name", Vec::new()).await?,
            Some(Bytes::from_static(b"odd"))
        );
        assert!(matches!(
            storage.get_into("../escape", Vec::new()).await,
            Err(Error::InvalidInput(_))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn a_fenced_handle_stops_writing_when_its_fence_closes() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let storage = Storage::open(
            &dir.path().display().to_string(),
            &StorageOptions::default(),
        )?;
        let fence = WriteFence::new(
            "backup 'b' shard 0",
            Instant::now() + Duration::from_secs(60),
        );
        let fenced = storage.fenced(Arc::clone(&fence));
        fenced.put("a", Bytes::from_static(b"1")).await?;
        fence.close("this worker lost its lease 'k': someone took it over");
        for result in [
            fenced.put("a", Bytes::from_static(b"2")).await,
            fenced.put_once("b", Bytes::from_static(b"2")).await,
            fenced.put_large("c", Bytes::from_static(b"2")).await,
            fenced.delete("a").await.map(|_| ()),
        ] {
            match result {
                Err(e @ Error::LeaseHeld { .. }) => {
                    assert_eq!(e.exit_code(), 14);
                    assert!(e.to_string().contains("backup 'b' shard 0"), "{e}");
                }
                other => panic!("expected the lease error, got {other:?}"),
            }
        }
        // Reads go on; the unfenced handle is not affected.
        assert_eq!(fenced.get("a").await?, Some(Bytes::from_static(b"1")));
        storage.put("a", Bytes::from_static(b"3")).await?;
        // A deadline that passes closes the fence too, until a renewal extends it.
        let late = WriteFence::new("r", Instant::now());
        let fenced = storage.fenced(Arc::clone(&late));
        assert!(fenced.put("x", Bytes::new()).await.is_err());
        late.extend(Instant::now() + Duration::from_secs(60));
        fenced.put("x", Bytes::new()).await?;
        Ok(())
    }

    #[tokio::test]
    async fn local_compare_and_swap() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let storage = Storage::open(
            &dir.path().join("new").display().to_string(),
            &StorageOptions::default(),
        )?;
        assert_eq!(storage.get_versioned("l/odd key.json").await?, None);
        let v1 = storage
            .create_versioned("l/odd key.json", Bytes::from_static(b"1"))
            .await?
            .ok_or_else(|| Error::invalid("created".to_string()))?;
        assert_eq!(
            storage
                .create_versioned("l/odd key.json", Bytes::from_static(b"x"))
                .await?,
            None
        );
        let (data, read) = storage
            .get_versioned("l/odd key.json")
            .await?
            .ok_or_else(|| Error::invalid("exists".to_string()))?;
        assert_eq!((data, &read), (Bytes::from_static(b"1"), &v1));
        let v2 = storage
            .replace_versioned("l/odd key.json", Bytes::from_static(b"2"), &v1)
            .await?;
        assert!(v2.is_some());
        // The old version no longer matches.
        assert_eq!(
            storage
                .replace_versioned("l/odd key.json", Bytes::from_static(b"3"), &v1)
                .await?,
            None
        );
        assert_eq!(
            storage.get("l/odd key.json").await?,
            Some(Bytes::from_static(b"2"))
        );
        // Only the object is listed, not its lock.
        let keys: Vec<String> = storage.list("").await?.into_iter().map(|o| o.key).collect();
        assert_eq!(keys, ["l/odd key.json"]);
        Ok(())
    }

    #[tokio::test]
    async fn put_large_creates_once_around_the_page_cache() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let storage = Storage::open(
            &dir.path().display().to_string(),
            &StorageOptions::default(),
        )?;
        // Whole 4 KiB blocks plus a tail, an exact multiple, less than a block, empty.
        for (i, len) in [3 * 4096 + 77, 8 * 4096, 100, 0, 1 << 20]
            .into_iter()
            .enumerate()
        {
            let payload = Bytes::from((0..len).map(|n| (n * 7 + i) as u8).collect::<Vec<_>>());
            let key = format!("backups/b/topics/t/0/{i:020}.seg");
            storage.put_large(&key, payload.clone()).await?;
            assert_eq!(
                storage.get(&key).await?,
                Some(payload.clone()),
                "{len} bytes"
            );
            // Written again: the same bytes are accepted, other bytes refused naming the key,
            // and the object is unchanged.
            storage.put_large(&key, payload.clone()).await?;
            let other = Bytes::from(vec![0xEE; len / 2 + 1]);
            match storage.put_large(&key, other).await {
                Err(Error::VerificationFailed(m)) => assert!(m.contains(&key), "{m}"),
                r => panic!("expected a refusal, got {r:?}"),
            }
            assert_eq!(storage.get(&key).await?, Some(payload));
        }
        // No staging file is left, and a stray one (a crash) is not listed.
        let part = dir.path().join("backups/b/topics/t/0");
        std::fs::write(part.join("00000000000000000009.seg#12345"), b"torn")
            .map_err(|e| Error::invalid(e.to_string()))?;
        let keys: Vec<String> = storage
            .list("backups/b/")
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
        assert!(keys.iter().all(|k| k.ends_with(".seg")), "{keys:?}");
        Ok(())
    }

    #[tokio::test]
    async fn file_url_and_invalid_keys() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let location = format!("file://{}", dir.path().display());
        let storage = Storage::open(&location, &StorageOptions::default())?;
        assert_eq!(storage.display(), location);
        storage.put("x/y", Bytes::from_static(b"1")).await?;
        assert_eq!(storage.get("x/y").await?, Some(Bytes::from_static(b"1")));
        assert!(matches!(
            storage.get("../escape").await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            storage.put("", Bytes::new()).await,
            Err(Error::InvalidInput(_))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn local_root_that_is_a_file_is_a_storage_error() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::invalid(e.to_string()))?;
        let file = dir.path().join("plain-file");
        std::fs::write(&file, b"x").map_err(|e| Error::invalid(e.to_string()))?;
        let location = file.display().to_string();
        let storage = Storage::open(&location, &StorageOptions::default())?;
        match storage
            .put("k", Bytes::new())
            .await
            .as_ref()
            .map_err(Error::storage_parts)
        {
            Err(Some((l, reason))) => {
                assert_eq!(l, location);
                assert!(reason.contains("not a directory"), "{reason}");
            }
            other => panic!("expected a storage error, got {other:?}"),
        }
        Ok(())
    }
}
