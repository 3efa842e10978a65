//! AWS KMS as a key source, against moto's KMS on loopback: data keys generated, wrapped and
//! unwrapped through `tidemark::crypto::kms::KmsKeys` and the `Vault`, with the encryption
//! context binding a wrapped key to its backup; what KMS refuses, and an endpoint that cannot
//! be reached or keeps throttling, each reported in the error class a person acts on.
//!
//! The SDK reads its endpoint and credentials from the process environment, so every test
//! holds `KmsServer::exclusive()` while it runs (see tests/src/kms.rs).

use std::time::{Duration, Instant};

use tidemark::crypto::kms::KmsKeys;
use tidemark::crypto::{DataKey, Vault, KEY_PROVIDER_AWS_KMS, KEY_PROVIDER_SECRET};
use tidemark::task::exit;
use tidemark::task::Encryption;
use tidemark::Error;
use tidemark_tests::kms::{export_env, refusing_endpoint, KmsServer};
use tidemark_tests::slowdown::{SlowDown, Throttle};

const CONTEXT: &str = "backups/b1";
const OBJECT: &str = "'backups/b1/encryption.json' in s3://tidemark-test";

async fn connect(key: &str) -> KmsKeys {
    KmsKeys::connect(key).await.expect("a KMS client")
}

fn kms_vault(key: &str) -> Vault {
    Vault::new(&Encryption {
        kms_key_id: Some(key.to_string()),
        ..Encryption::default()
    })
    .expect("a vault with a KMS key")
}

/// `blob`, wrapped by `arn` for [`CONTEXT`], unwraps through `keys` to `dek`.
async fn assert_unwraps(keys: &KmsKeys, arn: &str, blob: &[u8], dek: &DataKey) {
    let back = keys
        .decrypt(arn, blob, CONTEXT, OBJECT)
        .await
        .expect("Decrypt");
    assert_eq!(back.bytes(), dek.bytes());
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_generated_data_key_decrypts_to_itself_and_its_blob_does_not_hold_it() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    kms.export_env();
    let key = kms.create_key();
    // Configured by alias: KMS reports the key's ARN, which is what gets recorded.
    let keys = connect(&key.alias).await;
    let (dek, blob, arn) = keys.generate(CONTEXT).await.expect("GenerateDataKey");
    assert_eq!(arn, key.arn);
    assert!(
        !contains(&blob, dek.bytes()),
        "the wrapped key holds the plaintext"
    );
    assert_unwraps(&keys, &arn, &blob, &dek).await;
    // Another client, configured with the bare key id, unwraps it too.
    let other = connect(&key.id).await;
    assert_unwraps(&other, &arn, &blob, &dek).await;
    let (second, _, _) = keys.generate(CONTEXT).await.expect("GenerateDataKey");
    assert_ne!(second.bytes(), dek.bytes(), "every data key is fresh");
}

#[tokio::test]
async fn credentials_from_web_identity_as_irsa_gives_them_reach_kms() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    let key = kms.create_key();
    let env = kms.web_identity_env();
    assert!(!env
        .iter()
        .any(|(name, _)| name.starts_with("AWS_ACCESS_KEY")));
    export_env(&env);
    // No static keys, profile, container or instance credentials: only the token file and
    // the role, exchanged at STS, can sign these calls.
    let keys = connect(&key.arn).await;
    let (dek, blob, arn) = keys.generate(CONTEXT).await.expect("GenerateDataKey");
    assert_unwraps(&keys, &arn, &blob, &dek).await;
}

#[tokio::test]
async fn no_credentials_anywhere_is_invalid_input_naming_irsa() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    let key = kms.create_key();
    let env: Vec<_> = kms
        .env()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("AWS_ACCESS_KEY") && !name.starts_with("AWS_SECRET"))
        .collect();
    export_env(&env);
    let err = connect(&key.arn)
        .await
        .generate(CONTEXT)
        .await
        .expect_err("no credentials");
    assert_eq!(err.exit_code(), exit::INVALID_INPUT, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&key.arn) && text.contains("no AWS credentials") && text.contains("IRSA"),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrapped_key_of_another_context_fails_authentication_naming_the_object() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    kms.export_env();
    let key = kms.create_key();
    let keys = connect(&key.arn).await;
    let (_, blob, arn) = keys.generate(CONTEXT).await.expect("GenerateDataKey");
    let err = keys
        .decrypt(&arn, &blob, "backups/b2", OBJECT)
        .await
        .expect_err("another context");
    assert_eq!(err.exit_code(), exit::MALFORMED, "{err}");
    assert!(
        matches!(&err, Error::Tampered { object, .. } if object == OBJECT),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&key.arn) && text.contains("cannot be read"),
        "{text}"
    );
    // A flipped bit in the blob is refused the same way.
    let mut flipped = blob.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let err = keys
        .decrypt(&arn, &flipped, CONTEXT, OBJECT)
        .await
        .expect_err("a flipped bit");
    assert!(matches!(err, Error::Tampered { .. }), "{err}");
}

#[tokio::test]
async fn a_blob_of_one_key_is_refused_when_another_key_is_asked() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    kms.export_env();
    let (a, b) = (kms.create_key(), kms.create_key());
    let (_, blob, _) = connect(&a.arn)
        .await
        .generate(CONTEXT)
        .await
        .expect("GenerateDataKey");
    let err = connect(&b.arn)
        .await
        .decrypt(&b.arn, &blob, CONTEXT, OBJECT)
        .await
        .expect_err("the blob is key A's");
    // AWS answers IncorrectKeyException (authentication failed, exit 8); moto answers
    // AccessDeniedException (exit 2). Either way the message names the key and the object.
    assert!(
        [exit::MALFORMED, exit::INVALID_INPUT].contains(&err.exit_code()),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(&b.arn) && text.contains(OBJECT), "{text}");
    assert!(text.contains("wrapped by"), "{text}");
}

#[tokio::test]
async fn an_unknown_key_is_invalid_input_naming_it() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    kms.export_env();
    kms.create_key();
    let unknown = "alias/tidemark-no-such-key";
    let err = connect(unknown)
        .await
        .generate(CONTEXT)
        .await
        .expect_err("no such key");
    assert_eq!(err.exit_code(), exit::INVALID_INPUT, "{err}");
    let text = err.to_string();
    assert!(
        text.contains(unknown) && text.contains("does not exist") && text.contains(CONTEXT),
        "{text}"
    );
    let err = connect(unknown)
        .await
        .decrypt(unknown, b"not a ciphertext", CONTEXT, OBJECT)
        .await
        .expect_err("no such key");
    assert!(err.to_string().contains(OBJECT), "{err}");
}

#[tokio::test]
async fn an_existing_data_key_rewrapped_with_encrypt_decrypts_to_itself() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    kms.export_env();
    let key = kms.create_key();
    let keys = connect(&key.alias).await;
    let dek = DataKey::generate().expect("a data key");
    let (blob, arn) = keys.encrypt(&dek, CONTEXT).await.expect("Encrypt");
    assert_eq!(arn, key.arn);
    assert!(
        !contains(&blob, dek.bytes()),
        "the wrapped key holds the plaintext"
    );
    assert_unwraps(&keys, &arn, &blob, &dek).await;
}

#[tokio::test]
async fn a_vault_with_a_kms_key_makes_and_unwraps_data_keys() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    kms.export_env();
    let key = kms.create_key();
    let vault = kms_vault(&key.alias);
    assert_eq!(
        vault.key_id(),
        format!("{KEY_PROVIDER_AWS_KMS}:{}", key.alias)
    );
    let (dek, wrapped) = vault.new_data_key(CONTEXT).await.expect("new data key");
    assert_eq!(wrapped.provider, KEY_PROVIDER_AWS_KMS);
    assert_eq!(wrapped.key_id, key.arn);
    // A restore's vault (a new process) unwraps it.
    let back = kms_vault(&key.arn)
        .unwrap(&wrapped, CONTEXT, OBJECT)
        .await
        .expect("unwrap");
    assert_eq!(back.bytes(), dek.bytes());
    let err = vault
        .unwrap(&wrapped, "backups/b2", OBJECT)
        .await
        .expect_err("another backup's context");
    assert!(matches!(err, Error::Tampered { .. }), "{err}");
}

#[tokio::test]
async fn a_vault_with_a_key_file_and_a_kms_key_unwraps_keys_wrapped_by_either() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    kms.export_env();
    let key = kms.create_key();
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("k1");
    std::fs::write(&key_file, [7u8; 32]).expect("write the key file");
    let key_file = key_file.display().to_string();
    let file_only = Vault::new(&Encryption {
        key_file: Some(key_file.clone()),
        ..Encryption::default()
    })
    .expect("a key-file vault");
    let (old_dek, old) = file_only.new_data_key(CONTEXT).await.expect("file key");
    assert_eq!(old.provider, KEY_PROVIDER_SECRET);

    let both = Vault::new(&Encryption {
        key_file: Some(key_file),
        key_id: None,
        kms_key_id: Some(key.arn.clone()),
    })
    .expect("a vault with both");
    // New data keys come from KMS.
    let (new_dek, new) = both.new_data_key("backups/b2").await.expect("KMS key");
    assert_eq!(
        (new.provider.as_str(), new.key_id.as_str()),
        (KEY_PROVIDER_AWS_KMS, key.arn.as_str())
    );
    let got = both.unwrap(&old, CONTEXT, OBJECT).await.expect("old");
    assert_eq!(got.bytes(), old_dek.bytes());
    let got = both.unwrap(&new, "backups/b2", OBJECT).await.expect("new");
    assert_eq!(got.bytes(), new_dek.bytes());
    // Re-wrapping the key file's data key moves it to KMS, same data key.
    let moved = both.wrap(&old_dek, CONTEXT).await.expect("re-wrap");
    assert_eq!(moved.provider, KEY_PROVIDER_AWS_KMS);
    let got = both.unwrap(&moved, CONTEXT, OBJECT).await.expect("moved");
    assert_eq!(got.bytes(), old_dek.bytes());
}

#[tokio::test]
async fn an_endpoint_that_refuses_connections_fails_soon_as_unreachable_storage() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    let mut env = kms.env();
    let endpoint = refusing_endpoint();
    for (name, value) in &mut env {
        if *name == "AWS_ENDPOINT_URL_KMS" {
            *value = endpoint.clone();
        }
    }
    export_env(&env);
    let keys = connect("arn:aws:kms:us-east-1:123456789012:key/k1").await;
    let started = Instant::now();
    let err = keys
        .generate(CONTEXT)
        .await
        .expect_err("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(err.exit_code(), exit::STORAGE, "{err}");
    let (location, reason) = err.storage_parts().expect("a storage error");
    assert_eq!(location, format!("AWS KMS ({endpoint})"));
    assert!(
        reason.contains(CONTEXT) && reason.contains("k1"),
        "{reason}"
    );
    let err = keys
        .decrypt(
            "arn:aws:kms:us-east-1:123456789012:key/k1",
            b"x",
            CONTEXT,
            OBJECT,
        )
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.exit_code(), exit::STORAGE, "{err}");
    assert!(err.to_string().contains(OBJECT), "{err}");
}

#[tokio::test]
async fn throttling_is_retried_and_throttling_that_never_stops_is_unreachable_storage() {
    let _env = KmsServer::exclusive().await;
    let kms = KmsServer::start();
    let key = kms.create_key();
    let front = SlowDown::start(([127, 0, 0, 1], kms.s3().server.port).into());
    let mut env = kms.env();
    for (name, value) in &mut env {
        if *name == "AWS_ENDPOINT_URL_KMS" {
            *value = format!("http://127.0.0.1:{}", front.port);
        }
    }
    export_env(&env);
    let keys = connect(&key.arn).await;
    // Two throttled attempts, then through: the SDK's standard retries recover.
    front.set(Throttle::EveryNth { every: 1, times: 2 });
    keys.generate(CONTEXT).await.expect("retried through");
    assert_eq!(front.stats().throttled, 2, "{:?}", front.stats());
    front.set(Throttle::Always);
    let err = keys.generate(CONTEXT).await.expect_err("always throttled");
    assert_eq!(err.exit_code(), exit::STORAGE, "{err}");
    assert!(front.stats().throttled >= 5, "{:?}", front.stats());
}
