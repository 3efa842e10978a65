//! End-to-end tests of `tidemark run --task FILE`, the operator's entry point: task documents
//! (YAML) run by the real binary against a real Kafka-protocol broker (tansu) on loopback, with
//! snapshots on the local filesystem. Each run checks the exit code, the result file (a
//! `TaskResult` of at most 4096 bytes) and the JSON line on stdout.

use std::path::Path;
use std::time::{Duration, Instant};

use tidemark::task::{TaskResult, MAX_RESULT_BYTES};
use tidemark_tests::{
    commit, commits, committed_map, connect_admin as admin, create_and_fill, run_cli,
    topic_offsets, LiveConsumer, Tansu, TaskRun,
};

const BIN: &str = env!("CARGO_BIN_EXE_tidemark-under-test");

/// [`tidemark_tests::run_task`] of this test's binary.
fn run_task(dir: &Path, name: &str, yaml: &str, env: &[(&str, &str)]) -> TaskRun {
    tidemark_tests::run_task(BIN, dir, name, yaml, env)
}

/// A task document of `kind` against `bootstrap`, with `storage` as its location; `head` goes
/// before the connection settings and `extra` after them.
fn doc(kind: &str, head: &str, bootstrap: &str, storage: &Path, extra: &str) -> String {
    format!(
        "apiVersion: tidemark.dev/task-v1\n\
         kind: {kind}\n\
         {head}\
         kafka:\n  bootstrapServers: [\"{bootstrap}\"]\n  securityProtocol: PLAINTEXT\n\
         storage:\n  type: location\n  url: {}\n\
         {extra}",
        storage.display()
    )
}

/// A task document for `operation` against `bootstrap`, storing snapshots under `storage`.
fn task(operation: &str, bootstrap: &str, storage: &Path, extra: &str) -> String {
    let head = format!("source: default/{operation}-test\noperation: {operation}\n");
    doc("offsetRollback", &head, bootstrap, storage, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_verify_rollback_delete_tasks() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    create_and_fill(&bs, "orders", 3, 20).await;
    create_and_fill(&bs, "payments", 2, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "order-processor", &commits("orders", &[5, 7, 9])).await;
    commit(&admin, "payment-handler", &commits("payments", &[3, 4])).await;
    let groups = "consumerGroups: [order-processor, payment-handler]\n";

    // snapshot with an id
    let snap = run_task(
        dir,
        "snapshot",
        &task(
            "snapshot",
            &bs,
            &storage,
            &format!(
                "{groups}snapshotId: pre-migration-20241201\ndescription: Before the migration\n"
            ),
        ),
        &[],
    );
    assert_eq!(snap.out.code, 0, "{snap:?}");
    let r = &snap.result;
    assert_eq!(r.operation.as_deref(), Some("snapshot"));
    assert_eq!(r.snapshot_id.as_deref(), Some("pre-migration-20241201"));
    assert_eq!(
        r.message,
        "Snapshot pre-migration-20241201 created successfully: 2 groups, 5 partitions"
    );
    let data = r.snapshot_data.as_ref().expect("snapshotData");
    assert_eq!((data.groups, data.total_partitions), (2, 5));
    let taken = chrono::DateTime::parse_from_rfc3339(&data.timestamp).expect("RFC 3339");
    assert!((chrono::Utc::now() - taken.to_utc()).num_seconds().abs() < 120);
    assert!(r.error.is_none() && r.verification.is_none());
    assert_eq!(snap.report["snapshot_id"], "pre-migration-20241201");
    let stored = storage.join("snapshots/pre-migration-20241201.json");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stored).expect("stored snapshot")).expect("json");
    assert_eq!(doc["description"], "Before the migration");
    assert_eq!(
        doc["groups"]["order-processor"]["topics"]["orders"]["2"]["offset"],
        9
    );

    // snapshot without an id: one is generated and reported
    let generated = run_task(
        dir,
        "snapshot-generated",
        &task("snapshot", &bs, &storage, groups),
        &[],
    );
    assert_eq!(generated.out.code, 0, "{generated:?}");
    let id = generated.result.snapshot_id.clone().expect("generated id");
    assert!(id.starts_with("snap-") && id.len() == 29, "{id}");
    assert!(storage.join(format!("snapshots/{id}.json")).is_file());

    // the same id again: refused, the stored snapshot untouched
    let before = std::fs::read(&stored).expect("stored");
    let again = run_task(
        dir,
        "snapshot-again",
        &task(
            "snapshot",
            &bs,
            &storage,
            &format!("{groups}snapshotId: pre-migration-20241201\n"),
        ),
        &[],
    );
    assert_eq!(again.out.code, 2, "{again:?}");
    let err = again.result.error.as_ref().expect("error");
    assert_eq!(err.kind, "invalid_input");
    assert!(again.result.message.contains("already exists"), "{again:?}");
    assert_eq!(
        again.result.snapshot_id.as_deref(),
        Some("pre-migration-20241201")
    );
    assert_eq!(std::fs::read(&stored).expect("stored"), before);
    assert!(
        again.out.stderr.contains("Error: invalid input"),
        "{again:?}"
    );

    let id_line = "snapshotId: pre-migration-20241201\n";
    // verify, nothing moved (strict)
    let verify = run_task(
        dir,
        "verify-match",
        &task("verify", &bs, &storage, &format!("{id_line}strict: true\n")),
        &[],
    );
    assert_eq!(verify.out.code, 0, "{verify:?}");
    let v = verify.result.verification.as_ref().expect("verification");
    assert!(v.matched);
    assert_eq!(v.total_differences, 0);
    assert!(v.differences.is_empty());
    assert_eq!(
        verify
            .result
            .snapshot_data
            .as_ref()
            .map(|d| d.total_partitions),
        Some(5)
    );

    // A botched reset moves both groups; order-processor also commits a partition the
    // snapshot does not hold (only strict mode counts it).
    commit(&admin, "order-processor", &commits("orders", &[0, 0, 20])).await;
    commit(&admin, "order-processor", &commits("payments", &[1])).await;
    commit(&admin, "payment-handler", &commits("payments", &[10, 10])).await;

    let lenient = run_task(
        dir,
        "verify-lenient",
        &task("verify", &bs, &storage, id_line),
        &[],
    );
    assert_eq!(
        lenient.out.code, 0,
        "a non-strict verify reports differences without failing: {lenient:?}"
    );
    let v = lenient.result.verification.as_ref().expect("verification");
    assert!(!v.matched);
    assert_eq!(v.total_differences, 5);
    assert_eq!(v.differences.len(), 5);
    let first = &v.differences[0];
    assert_eq!(
        (
            first.group.as_str(),
            first.topic.as_str(),
            first.partition,
            first.expected,
            first.actual
        ),
        ("order-processor", "orders", 0, Some(5), Some(0))
    );
    assert!(lenient.result.error.is_none());
    assert!(
        lenient.result.message.starts_with(
            "Mismatch with snapshot pre-migration-20241201: 5 of 5 partitions in 2 of 2 groups"
        ),
        "{}",
        lenient.result.message
    );

    let strict = run_task(
        dir,
        "verify-strict",
        &task("verify", &bs, &storage, &format!("{id_line}strict: true\n")),
        &[],
    );
    assert_eq!(strict.out.code, 11, "{strict:?}");
    let err = strict.result.error.as_ref().expect("error");
    assert_eq!(err.kind, "verification_failed");
    let v = strict.result.verification.as_ref().expect("verification");
    assert_eq!(v.total_differences, 6);
    assert!(v
        .differences
        .iter()
        .any(|d| d.topic == "payments" && d.group == "order-processor" && d.expected.is_none()));
    assert_eq!(
        strict.report["differences"].as_array().map(Vec::len),
        Some(6),
        "the full report is on stdout"
    );

    // rollback (verified by default)
    let rb = run_task(
        dir,
        "rollback",
        &task("rollback", &bs, &storage, &format!("{groups}{id_line}")),
        &[],
    );
    assert_eq!(rb.out.code, 0, "{rb:?}");
    assert_eq!(rb.result.groups_rolled_back, Some(2));
    assert_eq!(rb.result.groups_failed, Some(0));
    assert!(
        rb.result
            .verification
            .as_ref()
            .is_some_and(|v| v.matched && v.total_differences == 0),
        "{rb:?}"
    );
    let safety = rb
        .result
        .safety_snapshot_id
        .clone()
        .expect("the rollback's safety snapshot");
    assert_eq!(
        rb.result.message,
        format!("Rolled back 2 groups (5 offsets) to snapshot pre-migration-20241201; verified; the offsets it replaced are in snapshot {safety}")
    );
    assert_eq!(rb.report["status"], "success");
    let op = committed_map(&admin, "order-processor").await;
    assert_eq!(topic_offsets(&op, "orders"), vec![5, 7, 9]);
    assert_eq!(
        topic_offsets(&op, "payments"),
        vec![1],
        "partitions the snapshot does not hold are left as they are"
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "payment-handler").await, "payments"),
        vec![3, 4]
    );

    // rollback of a subset, without verification
    commit(&admin, "payment-handler", &commits("payments", &[8, 8])).await;
    let subset = run_task(
        dir,
        "rollback-subset",
        &task(
            "rollback",
            &bs,
            &storage,
            &format!("consumerGroups: [payment-handler]\n{id_line}verifyAfterRollback: false\n"),
        ),
        &[],
    );
    assert_eq!(subset.out.code, 0, "{subset:?}");
    assert_eq!(subset.result.groups_rolled_back, Some(1));
    assert!(subset.result.verification.is_none());
    assert_eq!(
        topic_offsets(&committed_map(&admin, "payment-handler").await, "payments"),
        vec![3, 4]
    );

    // delete needs no kafka block
    let delete_task = format!(
        "apiVersion: tidemark.dev/task-v1\nkind: offsetRollback\noperation: delete\n\
         snapshotId: pre-migration-20241201\nstorage:\n  type: location\n  url: {}\n",
        storage.display()
    );
    let deleted = run_task(dir, "delete", &delete_task, &[]);
    assert_eq!(deleted.out.code, 0, "{deleted:?}");
    assert_eq!(deleted.result.operation.as_deref(), Some("delete"));
    assert!(!stored.exists());
    assert!(storage.join(format!("snapshots/{id}.json")).is_file());

    let gone = run_task(dir, "delete-again", &delete_task, &[]);
    assert_eq!(gone.out.code, 3, "{gone:?}");
    assert_eq!(
        gone.result.error.as_ref().map(|e| e.kind.as_str()),
        Some("snapshot_not_found")
    );
    assert!(
        gone.result
            .message
            .starts_with("snapshot 'pre-migration-20241201' not found in"),
        "{}",
        gone.result.message
    );
    let verify_gone = run_task(
        dir,
        "verify-gone",
        &task("verify", &bs, &storage, id_line),
        &[],
    );
    assert_eq!(verify_gone.out.code, 3, "{verify_gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_task_with_an_active_group_is_partial() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    create_and_fill(&bs, "live-topic", 2, 10).await;
    create_and_fill(&bs, "idle-topic", 2, 10).await;
    let admin = admin(&bs).await;
    commit(&admin, "live-group", &commits("live-topic", &[2, 3])).await;
    commit(&admin, "idle-group", &commits("idle-topic", &[4, 5])).await;
    let groups = "consumerGroups: [live-group, idle-group]\nsnapshotId: before\n";
    let snap = run_task(
        dir,
        "snapshot",
        &task("snapshot", &bs, &storage, groups),
        &[],
    );
    assert_eq!(snap.out.code, 0, "{snap:?}");

    commit(&admin, "live-group", &commits("live-topic", &[9, 9])).await;
    commit(&admin, "idle-group", &commits("idle-topic", &[9, 9])).await;
    let _consumer = LiveConsumer::start(&bs, "live-group", &["live-topic"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = admin
            .describe_groups(&["live-group".to_string()])
            .await
            .expect("describe");
        if !d[0].as_ref().expect("description").state.is_inactive() {
            break;
        }
        assert!(Instant::now() < deadline, "live-group never became active");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let rb = run_task(
        dir,
        "rollback",
        &task("rollback", &bs, &storage, groups),
        &[],
    );
    assert_eq!(rb.out.code, 10, "{rb:?}");
    assert_eq!(
        rb.result.error.as_ref().map(|e| e.kind.as_str()),
        Some("partial_failure")
    );
    assert_eq!(rb.result.groups_rolled_back, Some(1));
    assert_eq!(rb.result.groups_failed, Some(1));
    assert!(
        rb.result.message.starts_with(
            "Rolled back 1 of 2 groups to snapshot before; failed: live-group: Assignments can only be reset if the group 'live-group' is inactive"
        ),
        "{}",
        rb.result.message
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "idle-group").await, "idle-topic"),
        vec![4, 5]
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "live-group").await, "live-topic"),
        vec![9, 9],
        "the active group is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_differences_fit_the_termination_message() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    let topic = "wide-topic-with-a-long-name-for-bigger-differences";
    create_and_fill(&bs, topic, 300, 0).await;
    let admin = admin(&bs).await;
    commit(&admin, "wide-consumer-group", &commits(topic, &[0; 300])).await;
    let snap = run_task(
        dir,
        "snapshot",
        &task(
            "snapshot",
            &bs,
            &storage,
            "consumerGroups: [wide-consumer-group]\nsnapshotId: wide\n",
        ),
        &[],
    );
    assert_eq!(snap.out.code, 0, "{snap:?}");
    assert_eq!(
        snap.result
            .snapshot_data
            .as_ref()
            .map(|d| d.total_partitions),
        Some(300)
    );

    commit(&admin, "wide-consumer-group", &commits(topic, &[7; 300])).await;
    let verify = run_task(
        dir,
        "verify",
        &task("verify", &bs, &storage, "snapshotId: wide\nstrict: true\n"),
        &[],
    );
    assert_eq!(verify.out.code, 11, "{verify:?}");
    let v = verify.result.verification.as_ref().expect("verification");
    assert!(!v.matched);
    assert_eq!(v.total_differences, 300);
    assert!(
        !v.differences.is_empty() && v.differences.len() < 300,
        "{} differences kept",
        v.differences.len()
    );
    assert!(v
        .differences
        .iter()
        .all(|d| d.expected == Some(0) && d.actual == Some(7)));
    assert!(
        verify.raw.len() > MAX_RESULT_BYTES - 300,
        "as many differences as fit are kept: {} bytes",
        verify.raw.len()
    );
    assert_eq!(
        verify.report["differences"].as_array().map(Vec::len),
        Some(300),
        "stdout has every difference"
    );
}

/// What every malformed task must produce: exit 2, a Failed result of kind invalid_input
/// whose message contains `want`, and nothing written to storage.
#[test]
fn malformed_tasks_fail_with_invalid_input_and_touch_nothing() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    // Nothing listens on port 1: a task that got as far as Kafka would fail differently.
    let bs = "127.0.0.1:1";
    let snapshot = task(
        "snapshot",
        bs,
        &storage,
        "consumerGroups: [g]\nsnapshotId: s1\n",
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bad-yaml",
            "apiVersion: tidemark.dev/task-v1\noperation: [\n".into(),
            "is not a valid task document",
        ),
        (
            "unknown-field",
            format!("{snapshot}colour: blue\n"),
            "unknown field `colour`",
        ),
        (
            "unknown-kafka-field",
            snapshot.replace(
                "  securityProtocol:",
                "  password: hunter2\n  securityProtocol:",
            ),
            "unknown field `password`",
        ),
        (
            "wrong-api-version",
            snapshot.replace("task-v1", "task-v9"),
            "task field 'apiVersion' is 'tidemark.dev/task-v9'",
        ),
        (
            "rollback-without-id",
            task("rollback", bs, &storage, "consumerGroups: [g]\n"),
            "task field 'snapshotId' is required for operation rollback",
        ),
        (
            "verify-without-kafka",
            format!(
                "apiVersion: tidemark.dev/task-v1\nkind: offsetRollback\noperation: verify\n\
                 snapshotId: s1\nstorage:\n  type: location\n  url: {}\n",
                storage.display()
            ),
            "task field 'kafka' is required for operation verify",
        ),
        (
            "escaping-id",
            task("delete", bs, &storage, "snapshotId: ../../etc/passwd\n"),
            "task field 'snapshotId': snapshot id '../../etc/passwd' is invalid",
        ),
        (
            "snapshot-without-groups",
            task("snapshot", bs, &storage, ""),
            "task field 'consumerGroups' is required for operation snapshot",
        ),
    ];
    for (name, yaml, want) in cases {
        let run = run_task(dir, name, &yaml, &[]);
        assert_eq!(run.out.code, 2, "{name}: {run:?}");
        let err = run.result.error.as_ref().expect("error");
        assert_eq!(err.kind, "invalid_input", "{name}");
        assert!(
            run.result.message.contains(want),
            "{name}: want '{want}' in '{}'",
            run.result.message
        );
        assert!(
            !run.result.message.contains('\n'),
            "{name}: the message is one line"
        );
        assert!(run.report.is_null(), "{name}: no report");
        assert!(
            run.out.stderr.contains("Error: invalid input"),
            "{name}: {run:?}"
        );
    }
    assert!(!storage.exists(), "nothing was written to storage");

    // A missing task file is a local file error (12), still reported in the result file.
    let result_file = dir.join("missing.result");
    let out = run_cli(
        BIN,
        &[
            "run",
            "--task",
            dir.join("nope.yaml").to_str().expect("utf8"),
            "--result-file",
            result_file.to_str().expect("utf8"),
        ],
        &[],
    );
    assert_eq!(out.code, 12, "{out:?}");
    let result: TaskResult =
        serde_json::from_slice(&std::fs::read(&result_file).expect("result")).expect("json");
    assert_eq!(result.phase, "Failed");
    assert_eq!(
        result.error.map(|e| (e.kind, e.exit_code)),
        Some(("io_error".to_string(), 12))
    );
    assert!(result.operation.is_none());
}

#[test]
fn result_file_from_the_environment_and_unwritable_result_files() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let task_file = dir.join("task.yaml");
    std::fs::write(&task_file, "apiVersion: tidemark.dev/task-v0\n").expect("write");
    let task_arg = task_file.to_str().expect("utf8");

    let from_env = dir.join("from-env.result");
    let out = run_cli(
        BIN,
        &["run", "--task", task_arg],
        &[("TIDEMARK_RESULT_FILE", from_env.to_str().expect("utf8"))],
    );
    assert_eq!(out.code, 2, "{out:?}");
    let result: TaskResult =
        serde_json::from_slice(&std::fs::read(&from_env).expect("result")).expect("json");
    assert_eq!(result.phase, "Failed");

    // The result cannot be written: logged, and the exit code is unchanged.
    let nowhere = dir.join("no-such-dir/result");
    let out = run_cli(
        BIN,
        &[
            "run",
            "--task",
            task_arg,
            "--result-file",
            nowhere.to_str().expect("utf8"),
        ],
        &[],
    );
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("failed to write the task result"),
        "{}",
        out.stderr
    );
    assert!(out.json()["result"]["phase"] == "Failed", "{out:?}");
}

#[test]
fn config_map_storage_without_an_api_server_is_storage_unreachable() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    // A kubeconfig pointing at a port where nothing listens, so no real cluster is ever used.
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\n\
         clusters: [{name: none, cluster: {server: \"http://127.0.0.1:1\"}}]\n\
         users: [{name: none, user: {}}]\n\
         contexts: [{name: none, context: {cluster: none, user: none, namespace: default}}]\n\
         current-context: none\n",
    )
    .expect("write kubeconfig");
    let yaml = "apiVersion: tidemark.dev/task-v1\nkind: offsetRollback\noperation: delete\n\
                snapshotId: pre-migration-20241201\n\
                storage:\n  type: configMap\n  namespace: payments\n  name: offset-snapshots\n";
    let run = run_task(
        dir,
        "configmap",
        yaml,
        &[("KUBECONFIG", kubeconfig.to_str().expect("utf8"))],
    );
    assert_eq!(run.out.code, 7, "{run:?}");
    assert_eq!(
        run.result.error.as_ref().map(|e| e.kind.as_str()),
        Some("storage_unreachable")
    );
    assert!(
        run.result.message.starts_with(
            "storage unreachable at configmap://payments/offset-snapshots: reading ConfigMap 'offset-snapshots' failed"
        ),
        "{}",
        run.result.message
    );
}

/// An offset-reset task document against `bootstrap`, with safety snapshots under `storage`.
fn reset_task(bootstrap: &str, storage: &Path, extra: &str) -> String {
    doc(
        "offsetReset",
        "source: default/reset-test\n",
        bootstrap,
        storage,
        extra,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_tasks_plan_execute_and_reuse_their_snapshot_on_retry() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    create_and_fill(&bs, "orders", 3, 20).await;
    let admin = admin(&bs).await;
    commit(&admin, "order-processor", &commits("orders", &[5, 7, 9])).await;
    commit(&admin, "billing", &commits("orders", &[1, 1, 1])).await;
    let _live = LiveConsumer::start(&bs, "live", &["orders"]);

    // A dry run plans and changes nothing.
    let plan = run_task(
        dir,
        "plan",
        &reset_task(
            &bs,
            &storage,
            "consumerGroups: [order-processor, billing]\ntopics: [\"orders:0,1\"]\n\
             strategy: {type: toOffset, offset: 12}\ndryRun: true\n",
        ),
        &[],
    );
    assert_eq!(plan.out.code, 0, "{:?}", plan.out);
    let r = plan.result.reset.as_ref().expect("reset summary");
    assert!(r.dry_run);
    assert_eq!(
        (r.groups_total, r.partitions_planned, r.offsets_reset),
        (2, 4, 0)
    );
    assert_eq!(plan.result.operation.as_deref(), Some("reset-plan"));
    assert_eq!(plan.report["status"], "dry_run", "never success");
    // Each group's plan: partitions 0 and 1, from the committed offset to 12.
    let planned = |group: &str| -> Vec<(i32, Option<i64>, i64, String)> {
        let g = r
            .group_results
            .iter()
            .find(|g| g.group == group)
            .expect("the group's result");
        g.plan
            .iter()
            .map(|p| {
                assert_eq!(p.topic, "orders");
                (p.partition, p.current, p.target, p.action.clone())
            })
            .collect()
    };
    assert_eq!(
        planned("order-processor"),
        [
            (0, Some(5), 12, "forward".to_string()),
            (1, Some(7), 12, "forward".to_string())
        ]
    );
    assert_eq!(
        planned("billing"),
        [
            (0, Some(1), 12, "forward".to_string()),
            (1, Some(1), 12, "forward".to_string())
        ]
    );
    assert!(
        plan.result.snapshot_id.is_none(),
        "no snapshot in a dry run"
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "order-processor").await, "orders"),
        vec![5, 7, 9]
    );

    // Executing stores the safety snapshot under the task's id, then resets.
    let exec = reset_task(
        &bs,
        &storage,
        "consumerGroups: [order-processor, billing]\ntopics: [\"orders:0,1\"]\n\
         strategy: {type: toOffset, offset: 12}\nsnapshotId: reset-default-run-1\n",
    );
    let first = run_task(dir, "execute", &exec, &[]);
    assert_eq!(first.out.code, 0, "{:?}", first.out);
    assert_eq!(
        first.result.snapshot_id.as_deref(),
        Some("reset-default-run-1")
    );
    let r = first.result.reset.as_ref().expect("reset summary");
    assert_eq!(
        (r.groups_reset, r.groups_failed, r.offsets_reset),
        (2, 0, 4)
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "order-processor").await, "orders"),
        vec![12, 12, 9]
    );
    assert_eq!(first.report["snapshot_id"], "reset-default-run-1");

    // A retried Job (same task, same id) keeps the first snapshot instead of capturing the
    // already-reset offsets, so rolling back still returns to the original offsets.
    let retry = run_task(dir, "retry", &exec, &[]);
    assert_eq!(retry.out.code, 0, "{:?}", retry.out);
    assert_eq!(retry.report["snapshot_reused"], true, "{}", retry.report);
    let rb = run_cli(
        BIN,
        &[
            "offset-rollback",
            "rollback",
            "--path",
            storage.to_str().expect("utf8"),
            "--snapshot-id",
            "reset-default-run-1",
            "--bootstrap-servers",
            &bs,
        ],
        &[],
    );
    assert_eq!(rb.code, 0, "{rb:?}");
    assert_eq!(
        topic_offsets(&committed_map(&admin, "order-processor").await, "orders"),
        vec![5, 7, 9]
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![1, 1, 1]
    );

    // A retried shiftBy plans from the first attempt's snapshot: the shift is applied once.
    let shift = reset_task(
        &bs,
        &storage,
        "consumerGroups: [order-processor]\ntopics: [orders]\n\
         strategy: {type: shiftBy, shift: -3}\nsnapshotId: reset-default-run-2\n",
    );
    for attempt in ["shift-1", "shift-2"] {
        let run = run_task(dir, attempt, &shift, &[]);
        assert_eq!(run.out.code, 0, "{attempt}: {:?}", run.out);
        assert_eq!(
            topic_offsets(&committed_map(&admin, "order-processor").await, "orders"),
            vec![2, 4, 6],
            "{attempt}"
        );
    }

    // A group with a live member is refused (exit 10, Failed) while the other is reset, and
    // the result lists the refused group first with Kafka's message.
    commit(&admin, "live", &commits("orders", &[2, 2, 2])).await;
    let mut partial = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while partial.is_none() {
        let run = run_task(
            dir,
            "partial",
            &reset_task(
                &bs,
                &storage,
                "consumerGroups: [billing, live]\ntopics: [orders]\nstrategy: {type: toEarliest}\n",
            ),
            &[],
        );
        if run.out.code == 10 {
            partial = Some(run);
        } else {
            // The consumer had not joined yet and the whole reset went through; put it back.
            assert!(
                Instant::now() < deadline,
                "group 'live' never became active"
            );
            commit(&admin, "live", &commits("orders", &[2, 2, 2])).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let partial = partial.expect("a partial run");
    let r = partial.result.reset.as_ref().expect("reset summary");
    assert_eq!((r.groups_reset, r.groups_failed), (1, 1));
    assert_eq!(r.group_results[0].group, "live");
    assert_eq!(r.group_results[0].status, "failed");
    assert!(
        r.group_results[0].error.as_deref().is_some_and(
            |e| e.starts_with("Assignments can only be reset if the group 'live' is inactive")
        ),
        "{:?}",
        r.group_results
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "live").await, "orders"),
        vec![2, 2, 2]
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![0, 0, 0]
    );

    // Bad strategy parameters name the task field and change nothing.
    let bad = run_task(
        dir,
        "bad",
        &reset_task(
            &bs,
            &storage,
            "consumerGroups: [billing]\nstrategy: {type: toDatetime, datetime: \"2024-02-30T00:00:00.000\"}\n",
        ),
        &[],
    );
    assert_eq!(bad.out.code, 2, "{:?}", bad.out);
    assert!(
        bad.result
            .message
            .contains("task field 'strategy.datetime'"),
        "{}",
        bad.result.message
    );
    assert_eq!(
        topic_offsets(&committed_map(&admin, "billing").await, "orders"),
        vec![0, 0, 0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_tasks_take_their_id_and_shard_from_the_job() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    create_and_fill(&bs, "orders", 3, 20).await;
    let admin = admin(&bs).await;
    commit(&admin, "order-processor", &commits("orders", &[5, 7, 9])).await;
    let task = format!(
        "apiVersion: tidemark.dev/task-v1\nkind: backup\nsource: default/nightly\n\
         kafka:\n  bootstrapServers: [\"{bs}\"]\n  securityProtocol: PLAINTEXT\n\
         storage:\n  type: location\n  url: {}\n\
         topics: {{include: [\"ord*\"]}}\nchain: default-nightly\nshardCount: 2\n",
        storage.display()
    );
    let mut parts = 0;
    for index in ["0", "1"] {
        let run = run_task(
            dir,
            &format!("shard-{index}"),
            &task,
            &[
                ("TIDEMARK_BACKUP_ID", "nightly-28391"),
                ("JOB_COMPLETION_INDEX", index),
            ],
        );
        assert_eq!(run.out.code, 0, "{:?}", run.out);
        let b = run.result.backup.as_ref().expect("backup summary");
        assert_eq!(b.backup_id, "nightly-28391");
        assert!(b.complete);
        parts += b.partitions;
        assert_eq!(
            run.report["shard_index"],
            index.parse::<u32>().expect("index")
        );
    }
    assert_eq!(parts, 3, "the shards split the partitions");
    let list = run_cli(
        BIN,
        &["list", "-p", storage.to_str().expect("utf8"), "-f", "json"],
        &[],
    );
    let backups = list.json()["backups"].clone();
    assert_eq!(backups[0]["backup_id"], "nightly-28391");
    assert_eq!(backups[0]["complete"], true);
    assert_eq!(backups[0]["records"], 60);

    // Without JOB_COMPLETION_INDEX a sharded task cannot know its shard: refused, exit 2.
    let lost = run_task(
        dir,
        "no-index",
        &task,
        &[("TIDEMARK_BACKUP_ID", "nightly-2")],
    );
    assert_eq!(lost.out.code, 2, "{:?}", lost.out);
    assert!(
        lost.result.message.contains("JOB_COMPLETION_INDEX"),
        "{}",
        lost.result.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_tasks_validate_restore_and_translate_groups() {
    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    create_and_fill(&bs, "orders", 3, 20).await;
    let admin = admin(&bs).await;
    commit(&admin, "order-processor", &commits("orders", &[5, 7, 9])).await;
    let backup = run_cli(
        BIN,
        &[
            "backup",
            "--bootstrap-servers",
            &bs,
            "-p",
            storage.to_str().expect("utf8"),
            "--topics",
            "orders",
            "--backup-id",
            "b1",
        ],
        &[],
    );
    assert_eq!(backup.code, 0, "{backup:?}");
    // produceBatchSize 1 keeps tansu's end offsets exact (it reports a batch's base offset + 1).
    let restore = |extra: &str| {
        doc(
            "restore",
            "source: default/dr\n",
            &bs,
            &storage,
            &format!(
                "backupId: b1\nrestoreId: kr-1234\ntopicMapping: {{orders: orders-copy}}\ncreateTopics: true\nproduceBatchSize: 1\nconsumerGroupStrategy: header-based\nresetConsumerOffsets: true\noffsetReportKey: reports/dr.json\n{extra}"
            ),
        )
    };
    let dry = run_task(dir, "dry", &restore("dryRun: true\n"), &[]);
    assert_eq!(dry.out.code, 0, "{:?}", dry.out);
    assert_eq!(dry.result.operation.as_deref(), Some("validate-restore"));
    let r = dry.result.restore.as_ref().expect("restore summary");
    assert!(r.dry_run);
    assert_eq!(r.records_total, 60);
    assert!(
        r.validation
            .as_deref()
            .is_some_and(|v| v.contains("is valid")),
        "{r:?}"
    );
    assert!(
        !admin
            .list_topics()
            .await
            .expect("topics")
            .contains(&"orders-copy".to_string()),
        "a dry run creates nothing"
    );

    let run = run_task(dir, "restore", &restore(""), &[]);
    assert_eq!(run.out.code, 0, "{:?}", run.out);
    let r = run.result.restore.as_ref().expect("restore summary");
    assert_eq!(r.restore_id, "kr-1234");
    assert!(r.complete);
    assert_eq!((r.records_restored, r.records_total), (60, 60));
    assert_eq!(r.groups_translated, 1);
    assert_eq!(
        r.offset_mapping.as_deref(),
        Some("backups/b1/restores/kr-1234/mapping.json")
    );
    let copy = tidemark_tests::committed_map(&admin, "order-processor").await;
    assert_eq!(
        tidemark_tests::topic_offsets(&copy, "orders-copy"),
        vec![5, 7, 9]
    );
    // The offset report is a copy of the mapping, at the task's key of the storage.
    let mapping = std::fs::read(storage.join("backups/b1/restores/kr-1234/mapping.json"))
        .expect("the mapping is stored");
    let report_path = storage.join("reports/dr.json");
    assert_eq!(
        std::fs::read(&report_path).expect("the offset report is stored"),
        mapping
    );
    // A retried Job finds the restore complete and writes nothing.
    let again = run_task(dir, "again", &restore(""), &[]);
    assert_eq!(again.out.code, 0, "{:?}", again.out);
    assert!(
        again.result.message.contains("already complete"),
        "{}",
        again.result.message
    );
    assert_eq!(std::fs::read(&report_path).expect("kept"), mapping);
    // A report key holding something else is never overwritten: the run fails naming it.
    std::fs::write(&report_path, b"{}").expect("overwrite the report");
    let taken = run_task(dir, "taken", &restore(""), &[]);
    assert_ne!(taken.out.code, 0, "{:?}", taken.out);
    assert!(
        taken.result.message.contains("reports/dr.json"),
        "{}",
        taken.result.message
    );
    assert_eq!(std::fs::read(&report_path).expect("untouched"), b"{}");

    // An invalid dry run fails the task with the problem in its message.
    let bad = run_task(
        dir,
        "bad",
        &restore("dryRun: true\nsourcePartitions: [9]\n"),
        &[],
    );
    assert_eq!(bad.out.code, 2, "{:?}", bad.out);
    assert!(
        bad.result
            .message
            .contains("source_partitions names partition 9"),
        "{}",
        bad.result.message
    );

    // A reset from the backup puts the group back where the restore's mapping says, after a
    // safety snapshot under the id the task names.
    commit(
        &admin,
        "order-processor",
        &commits("orders-copy", &[0, 0, 0]),
    )
    .await;
    let from_backup = |description: &str| {
        reset_task(
            &bs,
            &storage,
            &format!(
                "consumerGroups: [order-processor]\nstrategy: {{type: fromBackup, backupId: b1}}\nsnapshotId: dr-before-groups\nsnapshotDescription: {description}\n"
            ),
        )
    };
    let reset = run_task(dir, "from-backup", &from_backup("run one"), &[]);
    assert_eq!(reset.out.code, 0, "{:?}", reset.out);
    let now = tidemark_tests::committed_map(&admin, "order-processor").await;
    assert_eq!(
        tidemark_tests::topic_offsets(&now, "orders-copy"),
        vec![5, 7, 9]
    );
    assert_eq!(
        reset.result.snapshot_id.as_deref(),
        Some("dr-before-groups")
    );
    let snap: serde_json::Value = serde_json::from_slice(
        &std::fs::read(storage.join("snapshots/dr-before-groups.json")).expect("named snapshot"),
    )
    .expect("json");
    assert_eq!(snap["description"], "run one");
    // A retry of the same run reuses its snapshot; another run finds the named id taken and
    // changes nothing.
    let retry = run_task(dir, "from-backup-retry", &from_backup("run one"), &[]);
    assert_eq!(retry.out.code, 0, "{:?}", retry.out);
    commit(
        &admin,
        "order-processor",
        &commits("orders-copy", &[1, 1, 1]),
    )
    .await;
    let other = run_task(dir, "from-backup-other", &from_backup("run two"), &[]);
    assert_eq!(other.out.code, 2, "{:?}", other.out);
    assert!(
        other
            .result
            .message
            .contains("'dr-before-groups' already exists"),
        "{}",
        other.result.message
    );
    let now = tidemark_tests::committed_map(&admin, "order-processor").await;
    assert_eq!(
        tidemark_tests::topic_offsets(&now, "orders-copy"),
        vec![1, 1, 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_shards_as_two_pods_restore_every_record_once() {
    use tidemark::restore::mapping::OffsetMapping;
    use tidemark_tests::records::read_topic;

    let kafka = Tansu::start();
    let bs = kafka.bootstrap();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let storage = dir.join("storage");
    create_and_fill(&bs, "orders", 3, 20).await;
    let admin = admin(&bs).await;
    commit(&admin, "order-processor", &commits("orders", &[5, 7, 9])).await;
    let backup = run_cli(
        BIN,
        &[
            "backup",
            "--bootstrap-servers",
            &bs,
            "-p",
            storage.to_str().expect("utf8"),
            "--topics",
            "orders",
            "--backup-id",
            "b1",
        ],
        &[],
    );
    assert_eq!(backup.code, 0, "{backup:?}");
    // Two pods of an Indexed Job, at the same time, both creating the target topic.
    let task = doc(
        "restore",
        "source: default/dr\n",
        &bs,
        &storage,
        "backupId: b1\nrestoreId: kr-9\ntopicMapping: {orders: orders-copy}\ncreateTopics: true\nproduceBatchSize: 1\nshardCount: 2\n",
    );
    let runs: Vec<TaskRun> = std::thread::scope(|s| {
        let shards: Vec<_> = ["0", "1"]
            .into_iter()
            .map(|index| {
                let task = &task;
                s.spawn(move || {
                    run_task(
                        dir,
                        &format!("shard-{index}"),
                        task,
                        &[("JOB_COMPLETION_INDEX", index)],
                    )
                })
            })
            .collect();
        shards
            .into_iter()
            .map(|h| h.join().expect("shard thread"))
            .collect()
    });
    let mut parts = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        assert_eq!(run.out.code, 0, "shard {i}: {:?}", run.out);
        let r = run.result.restore.as_ref().expect("restore summary");
        assert!(r.complete, "shard {i}: {r:?}");
        assert_eq!(r.restore_id, format!("kr-9-s{i}-of-2"));
        assert_eq!(r.records_restored, r.records_total);
        parts.push(r.partitions);
    }
    assert_eq!(parts, [2, 1], "partitions 0 and 2 to shard 0, 1 to shard 1");

    // Every record in the target exactly once, where it was (offsets, keys, values).
    let source = read_topic(&bs, "orders", 3);
    let target = read_topic(&bs, "orders-copy", 3);
    for p in 0..3 {
        let want = &source[&("orders".to_string(), p)];
        let got = &target[&("orders-copy".to_string(), p)];
        assert_eq!(got.len(), 20, "partition {p}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.offset, &g.key, &g.value), (w.offset, &w.key, &w.value));
        }
    }
    // Each shard's mapping holds its partitions; together they cover the source once.
    let mut covered = Vec::new();
    for i in 0..2 {
        let key = format!("backups/b1/restores/kr-9-s{i}-of-2/mapping.json");
        let data = std::fs::read(storage.join(&key)).expect("each shard's mapping");
        let m = OffsetMapping::from_json(&data, &key).expect("a mapping");
        assert!(m.complete);
        for p in &m.partitions {
            assert_eq!((p.records, p.target_end), (20, 20), "{key}: {p:?}");
            covered.push((p.source_partition, p.target_partition));
        }
    }
    covered.sort_unstable();
    assert_eq!(covered, [(0, 0), (1, 1), (2, 2)]);

    // A retried pod finds its share complete and writes nothing again.
    let again = run_task(dir, "again", &task, &[("JOB_COMPLETION_INDEX", "1")]);
    assert_eq!(again.out.code, 0, "{:?}", again.out);
    assert!(
        again.result.message.contains("already complete"),
        "{}",
        again.result.message
    );
    let target = read_topic(&bs, "orders-copy", 3);
    assert_eq!(target.values().map(Vec::len).sum::<usize>(), 60);

    // Consumer groups: each shard restores its share; shard 0 then waits for the others'
    // mappings and translates the groups once, over the whole mapping.
    let groups = task
        .replace("kr-9", "kr-10")
        .replace("orders-copy", "orders-copy2")
        .replace(
            "shardCount: 2\n",
            "shardCount: 2\nconsumerGroupStrategy: header-based\nresetConsumerOffsets: true\nshardWaitSecs: 3\n",
        );
    let alone = run_task(dir, "groups-0", &groups, &[("JOB_COMPLETION_INDEX", "0")]);
    assert_eq!(alone.out.code, 75, "{:?}", alone.out);
    assert!(
        alone
            .result
            .message
            .contains("waited 3 s (shardWaitSecs) for shard 1 of 2"),
        "{}",
        alone.result.message
    );
    let before = committed_map(&admin, "order-processor").await;
    assert!(
        topic_offsets(&before, "orders-copy2").is_empty(),
        "nothing committed before every shard is in: {before:?}"
    );
    let other = run_task(dir, "groups-1", &groups, &[("JOB_COMPLETION_INDEX", "1")]);
    assert_eq!(other.out.code, 0, "{:?}", other.out);
    let r = other.result.restore.as_ref().expect("restore summary");
    assert!(r.complete);
    assert_eq!(r.groups_translated, 0, "only shard 0 translates");
    let last = run_task(dir, "groups-0b", &groups, &[("JOB_COMPLETION_INDEX", "0")]);
    assert_eq!(last.out.code, 0, "{:?}", last.out);
    let r = last.result.restore.as_ref().expect("restore summary");
    assert_eq!((r.groups_translated, r.groups_failed), (1, 0));
    let after = committed_map(&admin, "order-processor").await;
    assert_eq!(topic_offsets(&after, "orders-copy2"), vec![5, 7, 9]);
    let target = read_topic(&bs, "orders-copy2", 3);
    assert_eq!(target.values().map(Vec::len).sum::<usize>(), 60);
}
