//! Opening the storage location a task names.

use super::{Storage, StorageOptions};
use crate::error::{Error, Result};
use crate::task::StorageTarget;

/// Opens a `location` storage target (an error for a ConfigMap). Options the task leaves
/// unset come from the `TIDEMARK_*` environment, as for the CLI.
pub fn open_location(target: &StorageTarget) -> Result<Storage> {
    match target {
        StorageTarget::Location {
            url,
            s3_region,
            s3_endpoint,
            s3_path_style,
            allow_http,
            encryption,
        } => {
            let env = StorageOptions::from_env()?;
            let options = StorageOptions {
                s3_region: s3_region.clone().or(env.s3_region),
                s3_endpoint: s3_endpoint.clone().or(env.s3_endpoint),
                s3_path_style: *s3_path_style || env.s3_path_style,
                allow_http: *allow_http || env.allow_http,
                encryption: encryption.clone().or(env.encryption),
            };
            Storage::open(url, &options)
        }
        StorageTarget::ConfigMap { .. } => Err(Error::invalid(
            "task field 'storage' is a ConfigMap; this operation needs a PVC, s3, gcs or azure location",
        )),
    }
}
