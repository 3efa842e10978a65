//! AWS KMS as the source of data keys: `GenerateDataKey` makes a backup's data key, `Decrypt`
//! unwraps it, `Encrypt` wraps an existing data key under another KMS key (re-wrap). The
//! encryption context `{"tidemark": <context>}` binds a wrapped key to its backup or object.
//!
//! The client uses the standard AWS credential chain (environment, web identity — IRSA —,
//! profile, ECS and EC2 metadata) and region; `AWS_ENDPOINT_URL_KMS` / `AWS_ENDPOINT_URL`
//! point it at another endpoint (the SDK reads them). A key given as an ARN is called in the
//! ARN's region. Calls are bounded ([`CONNECT_TIMEOUT`], [`ATTEMPT_TIMEOUT`],
//! [`OPERATION_TIMEOUT`]) and retried by the SDK's standard retry strategy.
//!
//! Failures, by what a person does about them:
//! * KMS cannot be reached, or keeps throttling or failing after the retries:
//!   [`Error::Storage`] (exit 7), located at `AWS KMS (<endpoint or region>)`.
//! * The key does not exist, is disabled or pending deletion, is not a symmetric encryption key,
//!   or access is denied: [`Error::InvalidInput`] naming the key and what to check.
//! * `Decrypt` refuses the wrapped key itself (altered, another context, another key):
//!   [`Error::Tampered`] naming the object.
//!
//! Messages never hold key material or credentials.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use zeroize::Zeroizing;

use super::DataKey;
use crate::error::{Error, Result};

/// How long establishing a connection to KMS may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt of a call may take (connecting, sending, reading the answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a call may take with its retries.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The key of the encryption context every wrapped key is bound with.
pub const CONTEXT_KEY: &str = "tidemark";

/// A KMS key (id, ARN, alias name or alias ARN) and a client to reach it.
pub struct KmsKeys {
    key_id: String,
    client: aws_sdk_kms::Client,
    /// The region calls go to (the key ARN's, else the configured one).
    region: Region,
    /// `AWS KMS (<endpoint or region>)`, where failures to reach it are located.
    location: String,
}

impl std::fmt::Debug for KmsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKeys")
            .field("key_id", &self.key_id)
            .field("location", &self.location)
            .finish()
    }
}

/// What a call was doing, for messages.
enum Call<'a> {
    Generate { context: &'a str },
    Encrypt { context: &'a str },
    Decrypt { context: &'a str, object: &'a str },
}

impl Call<'_> {
    fn action(&self) -> &'static str {
        match self {
            Call::Generate { .. } => "kms:GenerateDataKey",
            Call::Encrypt { .. } => "kms:Encrypt",
            Call::Decrypt { .. } => "kms:Decrypt",
        }
    }

    fn context(&self) -> &str {
        match self {
            Call::Generate { context }
            | Call::Encrypt { context }
            | Call::Decrypt { context, .. } => context,
        }
    }

    /// The start of a message: what was being done with which key.
    fn what(&self, key: &str) -> String {
        match self {
            Call::Generate { context } => {
                format!("AWS KMS key '{key}': generating the data key of '{context}'")
            }
            Call::Encrypt { context } => {
                format!("AWS KMS key '{key}': wrapping the data key of '{context}'")
            }
            Call::Decrypt { object, .. } => {
                format!("{object}: its data key is wrapped by AWS KMS key '{key}'")
            }
        }
    }

    /// What follows for the data when the key cannot be used to decrypt.
    fn unreadable(&self) -> &'static str {
        match self {
            Call::Decrypt { .. } => "; without that key the data cannot be read",
            _ => "",
        }
    }
}

/// How KMS refused a call (by its error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotFound,
    Disabled,
    InvalidState,
    AccessDenied,
    NotForEncryption,
    /// The wrapped key does not decrypt: altered, another context, another key.
    Ciphertext,
    /// Anything else: throttling beyond the retries, KMS's own failures.
    Unavailable,
}

fn refusal(code: &str) -> Refusal {
    match code {
        "NotFoundException" => Refusal::NotFound,
        "DisabledException" => Refusal::Disabled,
        "KMSInvalidStateException" => Refusal::InvalidState,
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken" => Refusal::AccessDenied,
        "InvalidKeyUsageException" | "UnsupportedOperationException" => Refusal::NotForEncryption,
        "InvalidCiphertextException" | "IncorrectKeyException" => Refusal::Ciphertext,
        _ => Refusal::Unavailable,
    }
}

/// The region in a KMS key or alias ARN (`arn:aws:kms:eu-west-1:111122223333:key/…`).
fn arn_region(key: &str) -> Option<&str> {
    let mut parts = key.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("kms"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

/// The endpoint the SDK was pointed at, for messages (it reads the same variables itself).
fn configured_endpoint(sdk: &SdkConfig) -> Option<String> {
    ["AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|v| !v.trim().is_empty())
        .or_else(|| sdk.endpoint_url().map(str::to_string))
}

/// Whether `err` comes from a credential chain that found no credentials, or a configuration
/// it cannot use (as opposed to a source that failed to answer, such as STS unreachable).
fn no_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return matches!(
                c,
                CredentialsError::CredentialsNotLoaded(_)
                    | CredentialsError::InvalidConfiguration(_)
            );
        }
        next = e.source();
    }
    false
}

/// An error and its sources, `: `-separated (each said once).
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

fn bytes(blob: Option<Blob>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(blob.map(Blob::into_inner).unwrap_or_default())
}

impl KmsKeys {
    /// A client for `key_id`; nothing is contacted yet (except, when no region is configured,
    /// the instance metadata the SDK asks for one).
    pub async fn connect(key_id: &str) -> Result<KmsKeys> {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(RetryConfig::standard())
            .timeout_config(timeouts())
            .load()
            .await;
        let region = match arn_region(key_id) {
            Some(r) => Region::new(r.to_string()),
            None => sdk.region().cloned().ok_or_else(|| {
                Error::invalid(format!(
                    "AWS KMS key '{key_id}': no AWS region is configured; set AWS_REGION, or \
                     give the key's ARN, which names its region"
                ))
            })?,
        };
        let location = format!(
            "AWS KMS ({})",
            configured_endpoint(&sdk).unwrap_or_else(|| region.to_string())
        );
        let config = aws_sdk_kms::config::Builder::from(&sdk)
            .region(region.clone())
            .build();
        Ok(KmsKeys {
            key_id: key_id.to_string(),
            client: aws_sdk_kms::Client::from_conf(config),
            region,
            location,
        })
    }

    /// The key as configured.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Where failures to reach KMS are located: `AWS KMS (<endpoint or region>)`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// A fresh AES-256 data key: the plaintext, the ciphertext blob KMS can decrypt, and the
    /// key's ARN as KMS reports it (recorded, so that unwrapping names the exact key).
    pub async fn generate(&self, context: &str) -> Result<(DataKey, Vec<u8>, String)> {
        let call = Call::Generate { context };
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| self.failure(&self.key_id, &call, e))?;
        let plaintext = bytes(out.plaintext);
        let dek = DataKey::from_slice(&plaintext)
            .ok_or_else(|| self.bad_answer(&call, "a data key that is not 32 bytes"))?;
        let blob = bytes(out.ciphertext_blob).to_vec();
        let arn = out.key_id.unwrap_or_default();
        if blob.is_empty() || arn.is_empty() {
            return Err(self.bad_answer(&call, "no wrapped data key or key ARN"));
        }
        Ok((dek, blob, arn))
    }

    /// Wraps an existing data key under this key (`Encrypt`): returns the blob and the key ARN.
    pub async fn encrypt(&self, key: &DataKey, context: &str) -> Result<(Vec<u8>, String)> {
        let call = Call::Encrypt { context };
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(key.bytes().to_vec()))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| self.failure(&self.key_id, &call, e))?;
        let blob = bytes(out.ciphertext_blob).to_vec();
        let arn = out.key_id.unwrap_or_default();
        if blob.is_empty() || arn.is_empty() {
            return Err(self.bad_answer(&call, "no wrapped data key or key ARN"));
        }
        Ok((blob, arn))
    }

    /// The data key in `blob`, wrapped by `key_arn` for `context` (`Decrypt`, with `KeyId`
    /// given so that a blob of another key is refused). `object` names what is being opened in
    /// messages.
    pub async fn decrypt(
        &self,
        key_arn: &str,
        blob: &[u8],
        context: &str,
        object: &str,
    ) -> Result<DataKey> {
        let call = Call::Decrypt { context, object };
        let mut request = self
            .client
            .decrypt()
            .key_id(key_arn)
            .ciphertext_blob(Blob::new(blob.to_vec()))
            .encryption_context(CONTEXT_KEY, context)
            .customize();
        // A key of another region is decrypted there.
        if let Some(region) = arn_region(key_arn).filter(|r| *r != self.region.as_ref()) {
            request = request.config_override(
                aws_sdk_kms::config::Builder::default().region(Region::new(region.to_string())),
            );
        }
        let out = request
            .send()
            .await
            .map_err(|e| self.failure(key_arn, &call, e))?;
        let plaintext = bytes(out.plaintext);
        DataKey::from_slice(&plaintext).ok_or_else(|| Error::Tampered {
            object: object.to_string(),
            reason: format!(
                "its data key, decrypted by AWS KMS key '{key_arn}', is not a 32-byte key"
            ),
        })
    }

    /// An answer KMS should never give (a broken endpoint or proxy).
    fn bad_answer(&self, call: &Call<'_>, what: &str) -> Error {
        Error::Storage {
            location: self.location.clone(),
            reason: format!("{}: KMS answered with {what}", call.what(&self.key_id)),
        }
    }

    /// The error a failed call is reported as (see the module's documentation).
    fn failure<E>(
        &self,
        key: &str,
        call: &Call<'_>,
        err: SdkError<E, aws_sdk_kms::config::http::HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                let status = service.raw().status().as_u16();
                let code = e.code().unwrap_or_default();
                let detail = match (code, e.message()) {
                    ("", _) => format!("HTTP {status}"),
                    (code, Some(message)) => format!("{code}: {message}"),
                    (code, None) => code.to_string(),
                };
                refused(&self.place(), key, call, refusal(code), &detail)
            }
            SdkError::ConstructionFailure(_) => Error::invalid(format!(
                "{}: the request could not be made: {}",
                call.what(key),
                causes(&err)
            )),
            _ if no_credentials(&err) => Error::invalid(format!(
                "{}: no AWS credentials: {}; give the Job's service account an IAM role (IRSA: \
                 its eks.amazonaws.com/role-arn annotation) or the worker credentials in its \
                 environment",
                call.what(key),
                causes(&err)
            )),
            _ => Error::Storage {
                location: self.location.clone(),
                reason: format!(
                    "{}: KMS could not be reached (after retries): {}",
                    call.what(key),
                    causes(&err)
                ),
            },
        }
    }

    fn place(&self) -> Place<'_> {
        Place {
            location: &self.location,
            region: self.region.as_ref(),
        }
    }
}

/// Where a client calls: for messages.
#[derive(Debug, Clone, Copy)]
struct Place<'a> {
    location: &'a str,
    region: &'a str,
}

/// The error for a call KMS refused with `why`; `detail` is its code and message.
fn refused(place: &Place<'_>, key: &str, call: &Call<'_>, why: Refusal, detail: &str) -> Error {
    let what = call.what(key);
    let decrypting = matches!(call, Call::Decrypt { .. });
    let unreadable = call.unreadable();
    let region = place.region;
    let message = match why {
        Refusal::NotFound => format!(
            "{what}: the key does not exist in {region}, or these credentials cannot see it \
             ({detail}); check the key id and the region{unreadable}"
        ),
        Refusal::Disabled => format!(
            "{what}: the key is disabled ({detail}); enable it (EnableKey){}",
            if decrypting {
                "; while it is disabled the data cannot be read"
            } else {
                ""
            }
        ),
        Refusal::InvalidState => format!(
            "{what}: the key cannot be used in its current state, pending deletion or waiting \
             for imported key material ({detail}); a key pending deletion is kept by \
             CancelKeyDeletion, and once it is deleted whatever it wrapped cannot be read"
        ),
        Refusal::AccessDenied => format!(
            "{what}: access denied ({detail}); check that the key policy and the IAM role the \
             worker runs as (with IRSA, the role of the Job's service account) allow {} on this \
             key with the encryption context {CONTEXT_KEY}={}{}",
            call.action(),
            call.context(),
            if decrypting {
                ", and that the data key was wrapped by this key"
            } else {
                ""
            }
        ),
        Refusal::NotForEncryption => format!(
            "{what}: the key is not a symmetric encryption key ({detail}); use a key with key \
             spec SYMMETRIC_DEFAULT and key usage ENCRYPT_DECRYPT"
        ),
        Refusal::Ciphertext => match call {
            Call::Decrypt { object, context } => {
                return Error::Tampered {
                    object: object.to_string(),
                    reason: format!(
                        "its data key does not decrypt under AWS KMS key '{key}' ({detail}): \
                         the wrapped key was altered, belongs to another backup or object \
                         (encryption context {CONTEXT_KEY}={context}), or was wrapped by another \
                         key; without the key that wrapped it the data cannot be read"
                    ),
                }
            }
            _ => return unavailable(place, &what, detail),
        },
        Refusal::Unavailable => return unavailable(place, &what, detail),
    };
    Error::invalid(message)
}

fn unavailable(place: &Place<'_>, what: &str, detail: &str) -> Error {
    Error::Storage {
        location: place.location.to_string(),
        reason: format!("{what}: KMS kept failing after retries ({detail})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_regions_are_read_and_bare_ids_have_none() {
        assert_eq!(
            arn_region("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab"),
            Some("eu-west-1")
        );
        assert_eq!(
            arn_region("arn:aws-cn:kms:cn-north-1:111122223333:alias/backups"),
            Some("cn-north-1")
        );
        assert_eq!(arn_region("1234abcd-12ab-34cd-56ef-1234567890ab"), None);
        assert_eq!(arn_region("alias/backups"), None);
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
    }

    #[test]
    fn refusals_are_classified_by_their_aws_error_code() {
        assert_eq!(refusal("NotFoundException"), Refusal::NotFound);
        assert_eq!(refusal("DisabledException"), Refusal::Disabled);
        assert_eq!(refusal("KMSInvalidStateException"), Refusal::InvalidState);
        assert_eq!(refusal("AccessDeniedException"), Refusal::AccessDenied);
        assert_eq!(
            refusal("UnrecognizedClientException"),
            Refusal::AccessDenied
        );
        assert_eq!(refusal("InvalidCiphertextException"), Refusal::Ciphertext);
        assert_eq!(refusal("IncorrectKeyException"), Refusal::Ciphertext);
        assert_eq!(
            refusal("InvalidKeyUsageException"),
            Refusal::NotForEncryption
        );
        assert_eq!(refusal("ThrottlingException"), Refusal::Unavailable);
        assert_eq!(refusal("KMSInternalException"), Refusal::Unavailable);
    }

    const PLACE: Place<'static> = Place {
        location: "AWS KMS (eu-west-1)",
        region: "eu-west-1",
    };
    const KEY: &str = "arn:aws:kms:eu-west-1:111122223333:key/k1";
    const OBJECT: &str = "'backups/b1/encryption.json' in s3://bucket";

    fn decrypt_refused(why: Refusal) -> Error {
        let call = Call::Decrypt {
            context: "backups/b1",
            object: OBJECT,
        };
        refused(&PLACE, KEY, &call, why, "SomeException: some message")
    }

    #[test]
    fn a_disabled_or_deleted_key_says_the_data_cannot_be_read_without_it() {
        // moto does not refuse a disabled key or one pending deletion (it only records the
        // state), so these messages are checked here, from the codes KMS answers with.
        for why in [Refusal::Disabled, Refusal::InvalidState, Refusal::NotFound] {
            let err = decrypt_refused(why);
            assert_eq!(err.exit_code(), tidemark_task::exit::INVALID_INPUT, "{err}");
            let text = err.to_string();
            assert!(text.contains(OBJECT) && text.contains(KEY), "{text}");
            assert!(text.contains("cannot be read"), "{text}");
        }
        let text = decrypt_refused(Refusal::Disabled).to_string();
        assert!(
            text.contains("is disabled") && text.contains("EnableKey"),
            "{text}"
        );
        let text = decrypt_refused(Refusal::InvalidState).to_string();
        assert!(
            text.contains("pending deletion") && text.contains("CancelKeyDeletion"),
            "{text}"
        );
        let generate = Call::Generate {
            context: "backups/b1",
        };
        let text = refused(
            &PLACE,
            KEY,
            &generate,
            Refusal::Disabled,
            "DisabledException: x",
        )
        .to_string();
        assert!(
            text.contains("generating the data key of 'backups/b1'"),
            "{text}"
        );
        assert!(!text.contains("cannot be read"), "{text}");
    }

    #[test]
    fn access_denied_names_the_permission_and_the_context_to_allow() {
        let text = decrypt_refused(Refusal::AccessDenied).to_string();
        assert!(
            text.contains("kms:Decrypt") && text.contains("tidemark=backups/b1"),
            "{text}"
        );
        assert!(
            text.contains("IRSA") && text.contains("key policy"),
            "{text}"
        );
    }

    #[test]
    fn a_refused_ciphertext_is_tampering_and_throttling_is_unreachable_storage() {
        let err = decrypt_refused(Refusal::Ciphertext);
        assert_eq!(err.exit_code(), tidemark_task::exit::MALFORMED);
        assert!(
            matches!(&err, Error::Tampered { object, .. } if object == OBJECT),
            "{err}"
        );
        let err = decrypt_refused(Refusal::Unavailable);
        assert_eq!(err.exit_code(), tidemark_task::exit::STORAGE);
        assert_eq!(
            err.storage_parts().map(|p| p.0),
            Some("AWS KMS (eu-west-1)")
        );
    }
}
