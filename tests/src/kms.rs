//! AWS KMS for tests: moto's KMS on a free loopback port (the same `moto_server` as the S3
//! tests, started by [`S3Server::start`], so one server also serves S3 with bucket
//! [`crate::objstore::BUCKET`]), keys created in it, and the environment a client needs to
//! reach it.
//!
//! The AWS SDK finds its endpoint, region and credentials in the process environment
//! (`AWS_ENDPOINT_URL_KMS`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...). A `tidemark` child process
//! gets [`KmsServer::env`]; a test that uses the worker's KMS client in its own process sets
//! them with [`KmsServer::export_env`] while holding [`KmsServer::exclusive`], so that tests
//! of one binary running in parallel threads do not point each other's clients elsewhere.
//!
//! Keys are created with moto's JSON API (`POST /`, `X-Amz-Target: TrentService.<Action>`):
//! moto tells the service from the credential scope of the `Authorization` header and does not
//! check signatures. moto's KMS encrypts for real (AES-GCM with the encryption context as
//! associated data) and refuses a `Decrypt` whose `KeyId` is not the key of the ciphertext,
//! but does not refuse a disabled key or one pending deletion (it records the state only).

use crate::objstore::{http, S3Server};
use crate::unique;

/// The region keys are created in and clients use.
pub const REGION: &str = "us-east-1";
/// The access key clients use (moto accepts any; a test value, not a secret).
const ACCESS_KEY: &str = "tidemark-test";
/// The secret key that goes with [`ACCESS_KEY`] (a test value, not a secret).
const SECRET_KEY: &str = "tidemark-test-secret";

/// Serialises tests that change the process environment the AWS SDK reads.
static ENV_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A KMS key created in moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKey {
    /// The key id (a UUID).
    pub id: String,
    /// `arn:aws:kms:us-east-1:123456789012:key/<id>`.
    pub arn: String,
    /// `alias/tidemark-test-…`, pointing at the key.
    pub alias: String,
}

/// moto serving KMS (and S3) on loopback, stopped when dropped.
#[derive(Debug)]
pub struct KmsServer {
    moto: S3Server,
}

impl KmsServer {
    /// Starts moto.
    pub fn start() -> KmsServer {
        KmsServer {
            moto: S3Server::start(),
        }
    }

    /// The same moto as an S3 server (bucket [`crate::objstore::BUCKET`] exists).
    pub fn s3(&self) -> &S3Server {
        &self.moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto.server.port)
    }

    /// One KMS call; panics unless moto answers 200.
    pub fn call(&self, action: &str, request: serde_json::Value) -> serde_json::Value {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20260101/{REGION}/kms/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let target = format!("TrentService.{action}");
        let headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", target.as_str()),
            ("Authorization", auth.as_str()),
        ];
        let body = request.to_string();
        let (status, answer) = http(
            self.moto.server.port,
            "POST",
            "/",
            &headers,
            body.as_bytes(),
        );
        assert_eq!(
            status, 200,
            "moto KMS {action} gave HTTP {status}: {answer}"
        );
        if answer.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&answer)
            .unwrap_or_else(|e| panic!("moto KMS {action} answered {answer}: {e}"))
    }

    /// Creates a symmetric encryption key and an alias for it.
    pub fn create_key(&self) -> KmsKey {
        let made = self.call(
            "CreateKey",
            serde_json::json!({
                "Description": "tidemark test key",
                "KeyUsage": "ENCRYPT_DECRYPT",
                "KeySpec": "SYMMETRIC_DEFAULT",
            }),
        );
        let meta = &made["KeyMetadata"];
        let field = |name: &str| {
            meta[name]
                .as_str()
                .unwrap_or_else(|| panic!("moto KMS CreateKey answered without {name}: {made}"))
                .to_string()
        };
        let (id, arn) = (field("KeyId"), field("Arn"));
        let alias = format!("alias/tidemark-test-{}", unique());
        self.call(
            "CreateAlias",
            serde_json::json!({ "AliasName": alias, "TargetKeyId": id }),
        );
        KmsKey { id, arn, alias }
    }

    /// What a client process needs to reach this KMS: endpoint, region, dummy credentials,
    /// no shared config files (they name files that do not exist) and no instance metadata
    /// lookups.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.common_env();
        env.push(("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()));
        env.push(("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()));
        env
    }

    /// [`env`](Self::env) with credentials from web identity instead of static keys, as IRSA
    /// gives a pod: a token file and a role, exchanged at moto's STS
    /// (`AssumeRoleWithWebIdentity`, which moto answers without checking the token).
    pub fn web_identity_env(&self) -> Vec<(&'static str, String)> {
        let token = self.moto.dir.path().join("web-identity-token");
        std::fs::write(&token, "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl")
            .expect("write the web identity token");
        let mut env = self.common_env();
        env.push(("AWS_ENDPOINT_URL_STS", self.endpoint()));
        env.push((
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/tidemark-backup".into(),
        ));
        env.push(("AWS_ROLE_SESSION_NAME", "tidemark-test".into()));
        env.push(("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()));
        env
    }

    fn common_env(&self) -> Vec<(&'static str, String)> {
        let missing = |name: &str| self.moto.dir.path().join(name).display().to_string();
        vec![
            ("AWS_ENDPOINT_URL_KMS", self.endpoint()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", missing("no-aws-config")),
            ("AWS_SHARED_CREDENTIALS_FILE", missing("no-aws-credentials")),
        ]
    }

    /// Sets [`env`](Self::env) in this process (hold [`exclusive`](Self::exclusive)), and
    /// clears what else could point the SDK elsewhere.
    pub fn export_env(&self) {
        export_env(&self.env());
    }

    /// Holds the process environment for one test (see the module's documentation).
    pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
        ENV_LOCK.lock().await
    }
}

/// Sets `vars` in this process, after clearing the variables that would take precedence or
/// point the SDK at another endpoint, profile or session (hold [`KmsServer::exclusive`]).
pub fn export_env(vars: &[(&'static str, String)]) {
    for name in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_ENDPOINT_URL_STS",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_ROLE_SESSION_NAME",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_EC2_METADATA_DISABLED",
    ] {
        std::env::remove_var(name);
    }
    for (name, value) in vars {
        std::env::set_var(name, value);
    }
}

/// A loopback endpoint where nothing listens (connections are refused).
pub fn refusing_endpoint() -> String {
    format!("http://127.0.0.1:{}", crate::free_port())
}
