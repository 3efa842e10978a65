//! `spec.approval` and `spec.approvalTimeout` of KafkaRestore, KafkaOffsetReset and
//! KafkaOffsetRollback against the generated CRDs, checked the way an API server checks them
//! (structure with strict field validation, CEL rules, deserialization; see `common/mod.rs`):
//! Manual and a timeout are accepted with their defaults, misuses are rejected for their stated
//! reason, a status with a plan waiting for approval fits each status schema, `kubectl get` shows
//! the plan's hash, and what a resource stored before the schema said is stalled by the operator.

mod common;

use common::{assert_rejected, case, document, edit, Case, Layer};
use serde_json::json;
use tidemark_operator::crd::approval::{Approval, PlanStatus};
use tidemark_operator::crd::status::Phase;
use tidemark_operator::crd::{KafkaOffsetReset, KafkaOffsetRollback, KafkaRestore};

const RESET: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaOffsetReset
metadata:
  name: rewind
spec:
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
  consumerGroups:
    - order-processor
  resetStrategy: toEarliest
  approval: Manual
  storage:
    storageType: s3
    s3:
      bucket: snapshots
"#;

const ROLLBACK: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaOffsetRollback
metadata:
  name: undo
spec:
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
  operation: rollback
  snapshotId: before-change
  approval: Manual
  storage:
    storageType: s3
    s3:
      bucket: snapshots
"#;

const RESTORE: &str = r#"
apiVersion: tidemark.dev/v1alpha1
kind: KafkaRestore
metadata:
  name: orders
spec:
  kafkaCluster:
    bootstrapServers:
      - kafka:9092
  backupRef:
    name: orders-backup
  approval: Manual
"#;

const MANUAL: &str = "  approval: Manual\n";

fn accepted<K>(yaml: &str) -> K
where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    common::Checker::<K>::new()
        .check(&document(yaml))
        .unwrap_or_else(|r| panic!("refused: {r:#?}\n{yaml}"))
}

#[test]
fn manual_approval_and_a_timeout_are_accepted_with_their_defaults() {
    let timeout =
        |yaml: &str, t: &str| edit(yaml, MANUAL, &format!("{MANUAL}  approvalTimeout: {t}\n"));
    let reset: KafkaOffsetReset = accepted(&timeout(RESET, "12h"));
    assert_eq!(reset.spec.approval, Approval::Manual);
    assert_eq!(reset.spec.approval_timeout.as_deref(), Some("12h"));
    let rollback: KafkaOffsetRollback = accepted(&timeout(ROLLBACK, "2d"));
    assert_eq!(rollback.spec.approval, Approval::Manual);
    let restore: KafkaRestore = accepted(&timeout(RESTORE, "90m"));
    assert_eq!(restore.spec.approval, Approval::Manual);
    for t in ["3600s", "1w"] {
        let _: KafkaRestore = accepted(&timeout(RESTORE, t));
    }
    // Absent: Automatic, and the 24h default.
    let automatic: KafkaRestore = accepted(&edit(RESTORE, MANUAL, ""));
    assert_eq!(automatic.spec.approval, Approval::Automatic);
    assert_eq!(automatic.spec.approval_timeout, None);
    assert_eq!(
        tidemark_operator::crd::approval::approval_timeout(None),
        "24h"
    );
    let explicit: KafkaOffsetReset = accepted(&edit(RESET, MANUAL, "  approval: Automatic\n"));
    assert_eq!(explicit.spec.approval, Approval::Automatic);
    // The operator's own checks pass too.
    let mut r = reset;
    r.metadata.namespace = Some("kafka-backup".into());
    r.metadata.uid = Some("7d2f4b8a-51c3-4e0a-b6a1-2c9e8f7d6a50".into());
    assert_eq!(tidemark_operator::validate::validate(&r), vec![]);
}

#[test]
fn misused_approval_fields_are_rejected_for_the_stated_reason() {
    use Layer::{Cel, Structure};
    let reset_cases: Vec<Case> = vec![
        case(
            "an unknown approval mode",
            edit(RESET, MANUAL, "  approval: manual\n"),
            Structure,
            "/spec/approval",
        ),
        case(
            "a timeout in an unknown unit",
            edit(RESET, MANUAL, "  approval: Manual\n  approvalTimeout: 2y\n"),
            Structure,
            "/spec/approvalTimeout",
        ),
        case(
            "a timeout of zero",
            edit(RESET, MANUAL, "  approval: Manual\n  approvalTimeout: 0h\n"),
            Structure,
            "/spec/approvalTimeout",
        ),
        case(
            "a Manual reset without storage",
            edit(
                &edit(
                    RESET,
                    "  storage:\n    storageType: s3\n    s3:\n      bucket: snapshots\n",
                    "",
                ),
                MANUAL,
                "  approval: Manual\n  snapshotBeforeReset: false\n",
            ),
            Cel,
            "approval Manual needs storage",
        ),
        case(
            "a Manual dry run",
            edit(RESET, MANUAL, "  approval: Manual\n  dryRun: true\n"),
            Cel,
            "approval Manual is not used with dryRun",
        ),
    ];
    assert_rejected(&common::Checker::<KafkaOffsetReset>::new(), &reset_cases);

    let rollback_cases: Vec<Case> = vec![
        case(
            "a Manual verify",
            edit(ROLLBACK, "  operation: rollback\n", "  operation: verify\n"),
            Cel,
            "approval Manual is only used with operation rollback",
        ),
        case(
            "a Manual snapshot",
            edit(
                &edit(
                    ROLLBACK,
                    "  operation: rollback\n",
                    "  operation: snapshot\n  consumerGroups:\n    - g\n",
                ),
                "  snapshotId: before-change\n",
                "",
            ),
            Cel,
            "approval Manual is only used with operation rollback",
        ),
    ];
    assert_rejected(
        &common::Checker::<KafkaOffsetRollback>::new(),
        &rollback_cases,
    );

    let restore_cases: Vec<Case> = vec![
        case(
            "a Manual dry run",
            edit(RESTORE, MANUAL, "  approval: Manual\n  dryRun: true\n"),
            Cel,
            "approval Manual is not used with dryRun",
        ),
        case(
            "a Manual restore in shards",
            edit(RESTORE, MANUAL, "  approval: Manual\n  shards: 3\n"),
            Cel,
            "approval Manual plans the restore in one worker pod",
        ),
    ];
    assert_rejected(&common::Checker::<KafkaRestore>::new(), &restore_cases);
}

// A resource stored before the schema had these rules is stalled by the operator, naming the
// field.
#[test]
fn what_an_older_schema_let_through_is_stalled_by_the_operator() {
    let stored = |yaml: &str| -> KafkaOffsetReset {
        let mut cr: KafkaOffsetReset = serde_yaml_ng::from_str(yaml).expect("yaml");
        cr.metadata.namespace = Some("kafka-backup".into());
        cr.metadata.uid = Some("7d2f4b8a-51c3-4e0a-b6a1-2c9e8f7d6a50".into());
        cr
    };
    let no_storage = stored(&edit(
        &edit(
            RESET,
            "  storage:\n    storageType: s3\n    s3:\n      bucket: snapshots\n",
            "",
        ),
        MANUAL,
        "  approval: Manual\n  snapshotBeforeReset: false\n",
    ));
    let problems = tidemark_operator::validate::validate(&no_storage);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].reason, "MissingField");
    assert!(problems[0]
        .message
        .contains("spec.approval Manual needs spec.storage"));

    let bad_timeout = stored(&edit(
        RESET,
        MANUAL,
        "  approval: Manual\n  approvalTimeout: 2y\n",
    ));
    let problems = tidemark_operator::validate::validate(&bad_timeout);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].reason, "InvalidField");
    assert!(
        problems[0].message.starts_with("spec.approvalTimeout '2y'"),
        "{problems:?}"
    );

    let mut verify: KafkaOffsetRollback = serde_yaml_ng::from_str(&edit(
        ROLLBACK,
        "  operation: rollback\n",
        "  operation: verify\n",
    ))
    .expect("yaml");
    verify.metadata.namespace = Some("kafka-backup".into());
    let problems = tidemark_operator::validate::validate(&verify);
    assert!(
        problems.iter().any(|p| p
            .message
            .contains("spec.approval Manual is only used with operation rollback")),
        "{problems:?}"
    );
}

// A status with a plan waiting for approval fits each kind's status schema, and `kubectl get`
// shows the phase and the plan's hash.
#[test]
fn an_awaiting_status_fits_the_schema_and_shows_in_columns() {
    let status = json!({
        "phase": "AwaitingApproval", "observedGeneration": 1, "run": "g1-r0",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "PlanReady", "message": "m",
             "lastTransitionTime": "2024-12-01T12:00:00Z", "observedGeneration": 1},
            {"type": "AwaitingApproval", "status": "True", "reason": "PlanReady", "message": "m",
             "lastTransitionTime": "2024-12-01T12:00:00Z", "observedGeneration": 1}
        ],
        "plan": {
            "groups": 1, "partitions": 6, "hash": "3f9a1c0e5b7d2e48",
            "key": "plans/u/g1-r0-1.json", "created": "2024-12-01T12:00:00Z",
            "expires": "2024-12-02T12:00:00Z", "run": "g1-r0", "attempt": 1,
            "jobName": "rewind-kor-g1-r0-plan1", "summary": "reset 1 group",
            "records": 10, "bytes": 100, "topics": 1, "offsets": 6,
            "topicsToCreate": ["orders"], "topicsToCreateTotal": 1,
            "refusedConfigs": ["orders: cleanup.policy"], "activeGroups": ["g"],
            "activeGroupsTotal": 1, "safetySnapshotId": "s", "ignoredApproval": "x"
        }
    });
    let with_status = |yaml: &str| {
        let mut doc = document(yaml);
        doc["status"] = status.clone();
        doc
    };
    let reset: KafkaOffsetReset = common::Checker::new()
        .check(&with_status(RESET))
        .unwrap_or_else(|r| panic!("{r:#?}"));
    let plan: &PlanStatus = reset
        .status
        .as_ref()
        .and_then(|s| s.plan.as_ref())
        .expect("plan");
    assert_eq!(plan.hash.as_deref(), Some("3f9a1c0e5b7d2e48"));
    assert_eq!(
        reset.status.as_ref().and_then(|s| s.common.phase),
        Some(Phase::AwaitingApproval)
    );
    let rollback: KafkaOffsetRollback = common::Checker::new()
        .check(&with_status(ROLLBACK))
        .unwrap_or_else(|r| panic!("{r:#?}"));
    assert!(rollback.status.and_then(|s| s.plan).is_some());
    let restore: KafkaRestore = common::Checker::new()
        .check(&with_status(RESTORE))
        .unwrap_or_else(|r| panic!("{r:#?}"));
    assert_eq!(
        restore.status.and_then(|s| s.plan).and_then(|p| p.records),
        Some(10)
    );

    for kind in ["KafkaOffsetReset", "KafkaOffsetRollback", "KafkaRestore"] {
        let crd = tidemark_operator::crd::all()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .expect("the CRD");
        let columns: Vec<(String, String)> = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.clone(), c.json_path.clone()))
            .collect();
        assert!(
            columns.contains(&("Phase".into(), ".status.phase".into())),
            "{kind}: {columns:?}"
        );
        assert!(
            columns.contains(&("Plan".into(), ".status.plan.hash".into())),
            "{kind}: {columns:?}"
        );
    }
}
