//! KafkaOffsetRollback as a [`WorkerKind`]: its task document (an offset-rollback task for the
//! spec's operation), the Kafka connection every operation but delete needs, its storage, and
//! what each operation does in a ConfigMap storage.

use k8s_openapi::api::core::v1::ResourceRequirements;
use tidemark_task::{OffsetRollbackTask, RollbackOperation, Task, TaskWork, TASK_API_VERSION};

use super::task::{kafka_target, source, storage_target};
use super::{
    instance_hash, name, namespace, required_storage, ConfigMapAccess, Error, RunId, WorkerKind,
};
use crate::crd::common::{EncryptionSpec, JobOptions, KafkaClusterSpec, StorageSpec};
use crate::crd::rollback::Operation;
use crate::crd::KafkaOffsetRollback;

/// `app.kubernetes.io/component` of a KafkaOffsetRollback's children.
pub const COMPONENT: &str = "offset-rollback";

/// Longest part of the resource name kept in a safety snapshot id.
const MAX_NAME_IN_ID: usize = 100;

/// The id of the safety snapshot a rollback run `run` of `cr` stores before changing offsets:
/// `<name>-rollback-<run>-<hash>` (the hash covers namespace, name and uid), the same for
/// every attempt of one run, so a retried Job keeps what its first attempt stored.
pub fn safety_snapshot_id(cr: &KafkaOffsetRollback, run: RunId) -> Result<String, Error> {
    let cr_name = name(cr)?;
    let hash = instance_hash(cr)?;
    let cut = &cr_name[..cr_name.len().min(MAX_NAME_IN_ID)];
    let cut = cut.trim_end_matches(['-', '.']);
    Ok(format!("{cut}-rollback-{run}-{hash:08x}"))
}

impl WorkerKind for KafkaOffsetRollback {
    const COMPONENT: &'static str = COMPONENT;
    const TAG: &'static str = "korb";

    /// delete only touches storage: no Kafka connection, so no Kafka Secrets are needed.
    fn kafka_cluster(&self) -> Option<&KafkaClusterSpec> {
        self.spec
            .kafka_cluster
            .as_ref()
            .filter(|_| self.spec.operation != Operation::Delete)
    }

    /// Every operation keeps its snapshots in `spec.storage`; the schema lets a `snapshot`
    /// skeleton omit it, and validation stalls such a resource before anything is built.
    fn storage(&self) -> Result<Option<&StorageSpec>, Error> {
        required_storage(self.spec.storage.as_ref()).map(Some)
    }

    fn encryption(&self) -> Option<&EncryptionSpec> {
        self.spec.encryption.as_ref()
    }

    fn config_map_access(&self) -> ConfigMapAccess {
        match self.spec.operation {
            Operation::Snapshot => ConfigMapAccess::Create,
            // delete removes one entry with a patch; rollback adds its safety snapshot to the
            // ConfigMap it reads the snapshot from.
            Operation::Delete | Operation::Rollback => ConfigMapAccess::Write,
            // verify only reads the snapshot.
            Operation::Verify => ConfigMapAccess::Read,
        }
    }

    fn job_options(&self) -> Option<&JobOptions> {
        self.spec.job.as_ref()
    }

    fn resources(&self) -> Option<&ResourceRequirements> {
        self.spec.resources.as_ref()
    }

    fn approved_run(&self, run: RunId) -> Option<super::approval::ApprovedRun> {
        super::approval::approved_run(
            self,
            self.spec.approval,
            self.status.as_ref().and_then(|s| s.plan.as_ref()),
            run,
        )
    }

    fn task(&self, run: RunId) -> Result<Task, Error> {
        let spec = &self.spec;
        let kafka = match (spec.operation, self.kafka_cluster()) {
            (Operation::Delete, _) => None,
            (_, Some(cluster)) => Some(kafka_target(cluster)),
            (_, None) => return Err(Error::MissingField("spec.kafkaCluster")),
        };
        let storage = required_storage(spec.storage.as_ref())?;
        Ok(Task {
            api_version: TASK_API_VERSION.to_string(),
            source: Some(source(self)?),
            work: TaskWork::OffsetRollback(OffsetRollbackTask {
                operation: match spec.operation {
                    Operation::Snapshot => RollbackOperation::Snapshot,
                    Operation::Rollback => RollbackOperation::Rollback,
                    Operation::Verify => RollbackOperation::Verify,
                    Operation::Delete => RollbackOperation::Delete,
                },
                kafka,
                storage: storage_target(storage, &namespace(self)?, spec.encryption.as_ref())?,
                consumer_groups: match spec.operation {
                    Operation::Delete => Vec::new(),
                    _ => spec.consumer_groups.clone(),
                },
                snapshot_id: spec.snapshot_id.clone(),
                description: match spec.operation {
                    Operation::Snapshot => spec.description.clone(),
                    _ => None,
                },
                strict: spec.verify.as_ref().is_some_and(|v| v.strict),
                verify_after_rollback: spec.verify.as_ref().is_none_or(|v| v.after_rollback),
                safety_snapshot_id: match spec.operation {
                    Operation::Rollback => Some(safety_snapshot_id(self, run)?),
                    _ => None,
                },
                plan_out: None,
                approved_plan: None,
            }),
        })
    }
}
