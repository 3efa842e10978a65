//! The use cases: a task (or the request the CLI's flags make) in, a report out. Both the
//! CLI's handlers ([`crate::cli`]) and `tidemark run --task` ([`crate::run`]) call them;
//! they open the clients they need, never parse arguments and never print.
//!
//! - [`backup`]: a backup run and retention over a chain.
//! - [`restore`]: a restore (data, then consumer offsets), its validation, the offset mapping.
//! - [`reset`]: an offset reset task, and a reset strategy turned into the planner's form.
//! - [`rollback`]: offset snapshots, rollbacks and their verification.
//! - [`signals`]: the process's stop signals as the flags the engines watch.

pub mod backup;
pub mod reset;
pub mod restore;
pub mod rollback;
pub mod signals;

use crate::configmap::ConfigMapStore;
use crate::error::Result;
use crate::snapshot::SnapshotStore;
use crate::storage::open_location;
use crate::task::StorageTarget;

/// Opens the snapshot store a task names. Location options the task leaves unset come from
/// the `TIDEMARK_*` environment, as for the CLI.
pub async fn open_snapshot_store(target: &StorageTarget) -> Result<SnapshotStore> {
    match target {
        StorageTarget::Location { .. } => Ok(SnapshotStore::new(open_location(target)?)),
        StorageTarget::ConfigMap { namespace, name } => Ok(SnapshotStore::config_map(
            ConfigMapStore::connect(namespace, name).await?,
        )),
    }
}
