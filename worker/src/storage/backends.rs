//! The backends a location opens: a local directory (`object_store`'s local file system with
//! fsync) or a bucket or container on S3, GCS or Azure, built from [`StorageOptions`] (CLI flags
//! and `TIDEMARK_*` variables), [`CloudSettings`] and the provider's standard environment
//! variables, with the timeouts, retries and plain-HTTP policy every cloud backend shares.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig, StaticCredentialProvider,
};

use super::errors::io_reason;
use super::locations::{is_plain_key, redact};
use super::Storage;
use crate::error::{Error, Result};

/// Environment variable for [`StorageOptions::s3_endpoint`] (CLI: `--s3-endpoint`).
pub const ENV_S3_ENDPOINT: &str = "TIDEMARK_S3_ENDPOINT";

/// Environment variable for [`StorageOptions::s3_region`] (CLI: `--s3-region`).
pub const ENV_S3_REGION: &str = "TIDEMARK_S3_REGION";

/// Environment variable for [`StorageOptions::s3_path_style`] (CLI: `--s3-path-style`).
pub const ENV_S3_PATH_STYLE: &str = "TIDEMARK_S3_PATH_STYLE";

/// Environment variable for [`StorageOptions::allow_http`] (CLI: `--allow-http`).
pub const ENV_ALLOW_HTTP: &str = "TIDEMARK_ALLOW_HTTP";

/// Time allowed to establish a TCP (and TLS) connection.
pub(super) const CONNECT_TIMEOUT: &str = "5s";

/// Time allowed without receiving any data on a connection.
pub(super) const READ_TIMEOUT: &str = "15s";

/// Time allowed for a whole request, body included.
pub(super) const REQUEST_TIMEOUT: &str = "300s";

/// Options for cloud locations that a URL cannot carry.
///
/// These are what the CLI flags set; [`StorageOptions::from_env`] reads the same settings from
/// `TIDEMARK_*` variables so the flags can override them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageOptions {
    /// S3 region; overrides `AWS_REGION` / `AWS_DEFAULT_REGION` (default `us-east-1`).
    pub s3_region: Option<String>,
    /// S3-compatible endpoint such as `https://minio.example:9000`; overrides `AWS_ENDPOINT*`.
    pub s3_endpoint: Option<String>,
    /// Path-style S3 requests (`endpoint/bucket/key`) instead of virtual-hosted ones
    /// (`bucket.endpoint/key`). Needed by most S3-compatible services; always used when the
    /// endpoint's host is an IP address or `localhost` and for bucket names with dots. When
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST` is set and this is false, the environment decides.
    pub s3_path_style: bool,
    /// Allow plain-HTTP endpoints (any backend). Without it an `http://` endpoint is refused.
    pub allow_http: bool,
    /// Envelope encryption of what is stored (keys from a file or Secret, or AWS KMS).
    pub encryption: Option<tidemark_task::Encryption>,
}

impl StorageOptions {
    /// Reads the options from the environment:
    ///
    /// * `TIDEMARK_S3_ENDPOINT`: [`Self::s3_endpoint`]
    /// * `TIDEMARK_S3_REGION`: [`Self::s3_region`]
    /// * `TIDEMARK_S3_PATH_STYLE`: [`Self::s3_path_style`] (`true`/`false`, `1`/`0`, `yes`/`no`)
    /// * `TIDEMARK_ALLOW_HTTP`: [`Self::allow_http`] (same boolean forms)
    /// * `TIDEMARK_ENCRYPTION_KEY_FILE`, `TIDEMARK_ENCRYPTION_KEY_ID`, `TIDEMARK_KMS_KEY_ID`:
    ///   [`Self::encryption`]
    ///
    /// Empty variables count as unset. An unparsable boolean is [`Error::InvalidInput`].
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `lookup` (for tests and embedding).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let text = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let flag = |name: &str| match text(name) {
            None => Ok(false),
            Some(v) => parse_bool(&v).ok_or_else(|| {
                Error::invalid(format!(
                    "{name}='{v}' is not a boolean; use true/false, 1/0 or yes/no"
                ))
            }),
        };
        Ok(StorageOptions {
            s3_region: text(ENV_S3_REGION),
            s3_endpoint: text(ENV_S3_ENDPOINT),
            s3_path_style: flag(ENV_S3_PATH_STYLE)?,
            allow_http: flag(ENV_ALLOW_HTTP)?,
            encryption: encryption_from(&text),
        })
    }
}

/// Environment variable: [`tidemark_task::Encryption::key_file`].
pub const ENV_ENCRYPTION_KEY_FILE: &str = "TIDEMARK_ENCRYPTION_KEY_FILE";
/// Environment variable: [`tidemark_task::Encryption::key_id`].
pub const ENV_ENCRYPTION_KEY_ID: &str = "TIDEMARK_ENCRYPTION_KEY_ID";
/// Environment variable: [`tidemark_task::Encryption::kms_key_id`].
pub const ENV_KMS_KEY_ID: &str = "TIDEMARK_KMS_KEY_ID";

/// Encryption settings from the environment: `None` unless a key file or KMS key is named.
fn encryption_from(text: &dyn Fn(&str) -> Option<String>) -> Option<tidemark_task::Encryption> {
    let e = tidemark_task::Encryption {
        key_file: text(ENV_ENCRYPTION_KEY_FILE),
        key_id: text(ENV_ENCRYPTION_KEY_ID),
        kms_key_id: text(ENV_KMS_KEY_ID),
    };
    (e.key_file.is_some() || e.kms_key_id.is_some()).then_some(e)
}

/// Provider settings that normally come from the standard environment variables (see the module
/// docs), set explicitly instead. `None`/`false` leaves the environment's value in effect.
///
/// `Debug` never shows the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CloudSettings {
    /// S3 access key id (environment: `AWS_ACCESS_KEY_ID`).
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (environment: `AWS_SECRET_ACCESS_KEY`).
    pub s3_secret_access_key: Option<String>,
    /// GCS endpoint such as `http://127.0.0.1:4443` (environment: `GOOGLE_BASE_URL`).
    pub gcs_endpoint: Option<String>,
    /// Azure blob endpoint including the account for path-style services such as Azurite,
    /// e.g. `http://127.0.0.1:10000/devstoreaccount1` (environment: `AZURE_STORAGE_ENDPOINT`).
    pub azure_endpoint: Option<String>,
    /// Azure storage account (environment: `AZURE_STORAGE_ACCOUNT_NAME`).
    pub azure_account: Option<String>,
    /// Azure storage account key (environment: `AZURE_STORAGE_ACCOUNT_KEY`).
    pub azure_access_key: Option<String>,
    /// Send unsigned requests (public buckets, emulators without authentication).
    pub anonymous: bool,
}

impl fmt::Debug for CloudSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("CloudSettings")
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field("s3_secret_access_key", &secret(&self.s3_secret_access_key))
            .field("gcs_endpoint", &self.gcs_endpoint)
            .field("azure_endpoint", &self.azure_endpoint)
            .field("azure_account", &self.azure_account)
            .field("azure_access_key", &secret(&self.azure_access_key))
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub(super) enum Backend {
    /// A local directory; it may not exist until the first `put`.
    Local { root: PathBuf },
    /// A bucket or container; `prefix` is the root inside it (normalised, may be empty).
    Remote {
        store: Arc<dyn ObjectStore>,
        prefix: String,
        provider: Provider,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Provider {
    S3,
    Gcs,
    Azure,
}

impl Provider {
    pub(super) fn scheme(self) -> &'static str {
        match self {
            Provider::S3 => "s3",
            Provider::Gcs => "gs",
            Provider::Azure => "az",
        }
    }

    pub(super) fn credential_hint(self) -> &'static str {
        match self {
            Provider::S3 => {
                "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the instance/pod role), the \
                 region and that the bucket policy allows this"
            }
            Provider::Gcs => {
                "check GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT (or the workload \
                 identity) and that it has a Storage Object role on the bucket"
            }
            Provider::Azure => {
                "check AZURE_STORAGE_ACCOUNT_NAME/AZURE_STORAGE_ACCOUNT_KEY (or the SAS, service \
                 principal or managed identity) and its role on the container"
            }
        }
    }

    pub(super) fn bucket_word(self) -> &'static str {
        match self {
            Provider::Azure => "container",
            _ => "bucket",
        }
    }
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Checks an endpoint URL; a plain-HTTP one needs `allow_http`.
pub(super) fn check_endpoint(what: &str, endpoint: &str, allow_http: bool) -> Result<url::Url> {
    let url = url::Url::parse(endpoint).map_err(|e| {
        Error::invalid(format!(
            "invalid {what} endpoint '{}': {e}; expected http(s)://host[:port]",
            redact(endpoint)
        ))
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http => Ok(url),
        "http" => Err(Error::invalid(format!(
            "the {what} endpoint '{}' uses plain HTTP; pass --allow-http (or set \
             {ENV_ALLOW_HTTP}=true) to allow unencrypted connections",
            redact(endpoint)
        ))),
        _ => Err(Error::invalid(format!(
            "invalid {what} endpoint '{}': expected http(s)://host[:port]",
            redact(endpoint)
        ))),
    }
}

/// True when virtual-hosted addressing (`bucket.host`) cannot work for this endpoint host.
pub(super) fn host_needs_path_style(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(_)) | Some(url::Host::Ipv6(_)) | None => true,
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
    }
}

/// Retries of a failed request (object_store's [`RetryConfig`]).
pub(super) const RETRIES: usize = 4;

/// No retry starts after this long.
pub(super) const RETRY_TIMEOUT: Duration = Duration::from_secs(10);

/// What object_store does with a failed request: every request (conditional creates, parts and
/// multipart completions included) answered with a 5xx status, 429 or 408 — S3's `503
/// SlowDown` among them — is sent again after an exponential backoff with jitter (100 ms, then
/// a random pause up to twice the previous, at most 2 s), [`RETRIES`] times, none started
/// after [`RETRY_TIMEOUT`]; so are requests that could not be sent, and idempotent ones that
/// timed out.
pub(super) fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: RETRIES,
        retry_timeout: RETRY_TIMEOUT,
    }
}

/// Timeouts, user agent and plain-HTTP policy shared by every cloud backend.
pub(super) fn client_settings(allow_http: bool) -> [(ClientConfigKey, String); 5] {
    [
        (ClientConfigKey::AllowHttp, allow_http.to_string()),
        (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT.to_string()),
        (ClientConfigKey::ReadTimeout, READ_TIMEOUT.to_string()),
        (ClientConfigKey::Timeout, REQUEST_TIMEOUT.to_string()),
        (
            ClientConfigKey::UserAgent,
            concat!("tidemark/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
    ]
}

pub(super) fn build_error(location: &str, err: object_store::Error, hint: &str) -> Error {
    Error::invalid(format!(
        "cannot configure storage location '{}': {err}; {hint}",
        redact(location)
    ))
}

pub(super) fn build_s3(
    location: &str,
    bucket: &str,
    options: &StorageOptions,
    settings: &CloudSettings,
) -> Result<Arc<dyn ObjectStore>> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(region) = &options.s3_region {
        b = b.with_region(region);
    }
    if let Some(endpoint) = &options.s3_endpoint {
        // AWS_ENDPOINT_URL_S3 would win over a plain endpoint; the flag must win over both.
        b = b
            .with_config(AmazonS3ConfigKey::Endpoint, endpoint)
            .with_config(AmazonS3ConfigKey::S3Endpoint, endpoint);
    }
    if let Some(id) = &settings.s3_access_key_id {
        b = b.with_access_key_id(id);
    }
    if let Some(secret) = &settings.s3_secret_access_key {
        b = b.with_secret_access_key(secret);
    }
    if settings.anonymous {
        b = b.with_skip_signature(true);
    }
    let endpoint = b
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| b.get_config_value(&AmazonS3ConfigKey::Endpoint))
        .filter(|e| !e.is_empty());
    // With AWS_VIRTUAL_HOSTED_STYLE_REQUEST set, the environment chose the addressing (and an
    // endpoint to match); only --s3-path-style overrides it.
    let env_addressing =
        std::env::var_os("AWS_VIRTUAL_HOSTED_STYLE_REQUEST").is_some() && !options.s3_path_style;
    match endpoint {
        Some(endpoint) => {
            let url = check_endpoint("S3", &endpoint, options.allow_http)?;
            if env_addressing {
                // Keep the environment's addressing as it is.
            } else if options.s3_path_style || host_needs_path_style(&url) || bucket.contains('.') {
                b = b.with_virtual_hosted_style_request(false);
            } else {
                // object_store expects a virtual-hosted endpoint to include the bucket already.
                let host = url.host_str().unwrap_or_default();
                let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
                let virtual_endpoint = format!("{}://{bucket}.{host}{port}", url.scheme());
                b = b
                    .with_config(AmazonS3ConfigKey::Endpoint, &virtual_endpoint)
                    .with_config(AmazonS3ConfigKey::S3Endpoint, &virtual_endpoint)
                    .with_virtual_hosted_style_request(true);
            }
        }
        None if env_addressing => {}
        None => {
            // AWS itself: virtual-hosted unless asked otherwise (dotted names break TLS there).
            let path_style = options.s3_path_style || bucket.contains('.');
            b = b.with_virtual_hosted_style_request(!path_style);
        }
    }
    for (key, value) in client_settings(options.allow_http) {
        b = b.with_config(AmazonS3ConfigKey::Client(key), value);
    }
    // Conditional writes (If-None-Match / If-Match on the ETag) for create-only objects and
    // leases, whatever AWS_CONDITIONAL_PUT says: AWS S3 and most compatible stores have them.
    b = b.with_conditional_put(S3ConditionalPut::ETagMatch);
    // Multipart uploads complete only if the key is free, as a conditional PUT creates.
    b = b.with_http_connector(super::multipart::CreateOnlyCompletes);
    let store = b.with_retry(retry_config()).build().map_err(|e| {
        build_error(
            location,
            e,
            "check the AWS_* variables, --s3-region and --s3-endpoint",
        )
    })?;
    Ok(Arc::new(store))
}

pub(super) fn build_gcs(
    location: &str,
    bucket: &str,
    options: &StorageOptions,
    settings: &CloudSettings,
) -> Result<Arc<dyn ObjectStore>> {
    let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &settings.gcs_endpoint {
        b = b.with_base_url(endpoint);
    }
    if settings.anonymous {
        b = b.with_skip_signature(true);
    }
    let unsigned = b
        .get_config_value(&GoogleConfigKey::SkipSignature)
        .and_then(|v| parse_bool(&v))
        .unwrap_or(false);
    if unsigned {
        // object_store's GCS PUT and DELETE ask the credential provider even when signing is
        // skipped, and without credentials that means the GCE metadata server. Unsigned means
        // no credentials at all: give them an empty static token instead.
        b = b.with_credentials(Arc::new(StaticCredentialProvider::new(GcpCredential {
            bearer: String::new(),
        })));
    }
    if let Some(endpoint) = b
        .get_config_value(&GoogleConfigKey::BaseUrl)
        .filter(|e| !e.is_empty())
    {
        check_endpoint("GCS", &endpoint, options.allow_http)?;
    }
    for (key, value) in client_settings(options.allow_http) {
        b = b.with_config(GoogleConfigKey::Client(key), value);
    }
    let store = b.with_retry(retry_config()).build().map_err(|e| {
        build_error(
            location,
            e,
            "check GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT",
        )
    })?;
    Ok(Arc::new(store))
}

pub(super) fn build_azure(
    location: &str,
    container: &str,
    options: &StorageOptions,
    settings: &CloudSettings,
) -> Result<Arc<dyn ObjectStore>> {
    let mut b = MicrosoftAzureBuilder::from_env().with_container_name(container);
    if let Some(account) = &settings.azure_account {
        b = b.with_account(account);
    }
    if let Some(key) = &settings.azure_access_key {
        b = b.with_access_key(key);
    }
    if let Some(endpoint) = &settings.azure_endpoint {
        b = b.with_endpoint(endpoint.clone()).with_use_emulator(false);
    }
    if settings.anonymous {
        b = b.with_skip_signature(true);
    }
    let emulator = b
        .get_config_value(&AzureConfigKey::UseEmulator)
        .and_then(|v| parse_bool(&v))
        .unwrap_or(false);
    // The emulator mode (AZURE_STORAGE_USE_EMULATOR) is an explicit opt-in to plain HTTP.
    let allow_http = options.allow_http || emulator;
    if !emulator {
        if let Some(endpoint) = b
            .get_config_value(&AzureConfigKey::Endpoint)
            .filter(|e| !e.is_empty())
        {
            check_endpoint("Azure", &endpoint, allow_http)?;
        }
    }
    for (key, value) in client_settings(allow_http) {
        b = b.with_config(AzureConfigKey::Client(key), value);
    }
    let store = b.with_retry(retry_config()).build().map_err(|e| {
        build_error(
            location,
            e,
            "set AZURE_STORAGE_ACCOUNT_NAME and credentials (AZURE_STORAGE_ACCOUNT_KEY, a SAS, a \
             service principal or a managed identity)",
        )
    })?;
    Ok(Arc::new(store))
}

impl Storage {
    pub(super) async fn local_store(
        &self,
        root: &FsPath,
        create: bool,
    ) -> Result<Option<Arc<dyn ObjectStore>>> {
        match tokio::fs::metadata(root).await {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(
                    self.storage_error(format!("{} exists but is not a directory", root.display()))
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tokio::fs::create_dir_all(root).await.map_err(|e| {
                    self.storage_error(format!(
                        "cannot create directory {}: {}",
                        root.display(),
                        io_reason(&e)
                    ))
                })?;
            }
            Err(e) => {
                return Err(self.storage_error(format!(
                    "cannot access {}: {}",
                    root.display(),
                    io_reason(&e)
                )))
            }
        }
        // fsync the staged file before it is published and the directory after.
        let store = LocalFileSystem::new_with_prefix(root)
            .map_err(|e| {
                self.storage_error(format!("cannot open directory {}: {e}", root.display()))
            })?
            .with_fsync(true);
        Ok(Some(Arc::new(store)))
    }

    pub(super) fn provider(&self) -> Option<Provider> {
        match &self.backend {
            Backend::Local { .. } => None,
            Backend::Remote { provider, .. } => Some(*provider),
        }
    }

    /// The file of `key` in a local directory (`None` on object stores, or when the directory
    /// does not exist and `create` is false), mapped as object_store's local store maps keys.
    pub(super) async fn local_path(&self, key: &str, create: bool) -> Result<Option<PathBuf>> {
        let Backend::Local { root } = &self.backend else {
            return Ok(None);
        };
        if is_plain_key(key) {
            if create {
                self.local_store(root, true).await?;
            }
            return Ok(Some(root.join(key)));
        }
        if self.local_store(root, create).await?.is_none() {
            return Ok(None);
        }
        let path = ObjectPath::parse(key)
            .map_err(|e| Error::invalid(format!("invalid storage key '{key}': {e}")))?;
        LocalFileSystem::new_with_prefix(root)
            .and_then(|fs| fs.path_to_filesystem(&path))
            .map(Some)
            .map_err(|e| self.storage_error(format!("cannot map '{key}' to a file: {e}")))
    }
}
