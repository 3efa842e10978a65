//! Large create-only objects on S3 in parts: above [`MULTIPART_THRESHOLD`] bytes an object goes
//! up as a multipart upload of [`PART_BYTES`] parts, [`PARTS_IN_FLIGHT`] at a time, and the
//! upload is completed with `If-None-Match: *` ([`CreateOnlyCompletes`]), so it is as
//! create-only as a single conditional PUT: a key that already exists is refused by the service
//! and its content compared ([`Storage::accept_identical`]). A failed upload is aborted (the
//! parts are freed); one cut short by a crash leaves parts that the bucket's lifecycle rule for
//! incomplete multipart uploads removes.
//!
//! `object_store` has no public way to send a conditional completion (its own copy-if-not-exists
//! does it internally), so the header is added by the HTTP client the S3 store is built with:
//! only to `POST …?uploadId=…` (CompleteMultipartUpload), and tidemark uploads in parts only
//! what it creates once. Services that ignore `If-None-Match` ignore it on a single PUT too.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, HeaderValue, ObjectStore, ObjectStoreExt};

use super::{again_on_error, locations::normalize_key, Storage};
use crate::error::Result;

/// Objects larger than this go up in parts (on S3).
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;

/// Size of each part but the last (S3's minimum is 5 MiB).
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one object uploaded at once.
pub const PARTS_IN_FLIGHT: usize = 4;

impl Storage {
    /// [`put_once`](Self::put_once) in parts: a multipart upload completed only if the key does
    /// not exist yet; an existing key is accepted only when it holds the same content (`data`
    /// may be sealed: its content is compared, not its bytes).
    pub(super) async fn put_parts_once(&self, key: &str, data: Bytes) -> Result<()> {
        let key = normalize_key(key, false)?;
        let Some((store, path)) = self.resolve(&key, true).await? else {
            return Err(self.storage_error(format!("cannot write '{key}': root is missing")));
        };
        // Each part and the completion are retried by object_store; the whole upload is run
        // again after any other failure (a completion that landed before its answer was lost
        // is found existing the next time).
        let created = again_on_error(&key, || upload_in_parts(store.as_ref(), &path, &data))
            .await
            .map_err(|e| self.failure("write", &key, e))?;
        if created {
            Ok(())
        } else {
            let plain = self.content_of(&key, &data).await?;
            self.accept_identical(&key, &plain).await
        }
    }
}

/// One multipart upload of `data` to `path`; `Ok(false)` when the key exists already (the
/// upload is then aborted).
async fn upload_in_parts(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    data: &Bytes,
) -> object_store::Result<bool> {
    let mut upload = store.put_multipart(path).await?;
    let parts: Vec<_> = (0..data.len().div_ceil(PART_BYTES))
        .map(|i| {
            let end = ((i + 1) * PART_BYTES).min(data.len());
            upload.put_part(data.slice(i * PART_BYTES..end).into())
        })
        .collect();
    let sent = futures::stream::iter(parts)
        .buffer_unordered(PARTS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await;
    let completed = match sent {
        Ok(_) => upload.complete().await,
        Err(e) => Err(e),
    };
    match completed {
        Ok(_) => Ok(true),
        Err(e) => {
            // Best effort: the service frees the parts (a lifecycle rule does otherwise).
            if let Err(abort) = upload.abort().await {
                tracing::debug!(path = %path, error = %abort, "aborting a multipart upload failed");
            }
            match e {
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. } => Ok(false),
                e => Err(e),
            }
        }
    }
}

/// The HTTP client of S3 stores: object_store's own, with `If-None-Match: *` added to every
/// CompleteMultipartUpload (see the module docs).
#[derive(Debug, Default)]
pub(super) struct CreateOnlyCompletes;

impl HttpConnector for CreateOnlyCompletes {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(CompleteIfAbsent(inner)))
    }
}

#[derive(Debug)]
struct CompleteIfAbsent(HttpClient);

#[async_trait::async_trait]
impl HttpService for CompleteIfAbsent {
    async fn call(&self, mut request: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        if completes_an_upload(&request) {
            request
                .headers_mut()
                .insert("if-none-match", HeaderValue::from_static("*"));
        }
        self.0.execute(request).await
    }
}

/// `POST <key>?uploadId=…`: S3's CompleteMultipartUpload.
fn completes_an_upload(request: &HttpRequest) -> bool {
    request.method() == "POST"
        && request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("uploadId=")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str) -> HttpRequest {
        let mut r = HttpRequest::new(object_store::client::HttpRequestBody::empty());
        *r.method_mut() = method.parse().expect("method");
        *r.uri_mut() = uri.parse().expect("uri");
        r
    }

    #[test]
    fn only_completions_are_made_conditional() {
        assert!(completes_an_upload(&request(
            "POST",
            "http://h/b/k?uploadId=abc"
        )));
        assert!(completes_an_upload(&request(
            "POST",
            "http://h/b/k?x=1&uploadId=abc"
        )));
        // Starting an upload, sending a part, aborting it, a bulk delete.
        assert!(!completes_an_upload(&request(
            "POST",
            "http://h/b/k?uploads"
        )));
        assert!(!completes_an_upload(&request(
            "PUT",
            "http://h/b/k?partNumber=1&uploadId=abc"
        )));
        assert!(!completes_an_upload(&request(
            "DELETE",
            "http://h/b/k?uploadId=abc"
        )));
        assert!(!completes_an_upload(&request("POST", "http://h/b?delete")));
    }
}
