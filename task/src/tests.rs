use super::*;

const SNAPSHOT_TASK: &str = r#"
apiVersion: tidemark.dev/task-v1
kind: offsetRollback
source: payments/pre-migration
operation: snapshot
kafka:
  bootstrapServers: ["kafka-0:9092", "kafka-1:9092"]
  securityProtocol: SASL_SSL
  saslMechanism: SCRAM-SHA-512
  sslCaLocation: /etc/tidemark/kafka-tls/ca.crt
  properties:
    client.id: tidemark
storage:
  type: configMap
  namespace: payments
  name: offset-snapshots
consumerGroups: [order-processor, payment-handler]
snapshotId: pre-migration-20241201
description: Before the migration
"#;

fn parse(text: &str) -> Result<Task> {
    Task::parse(text.as_bytes(), "task.yaml")
}

#[test]
fn parses_and_validates_a_yaml_task() {
    let task = parse(SNAPSHOT_TASK).expect("parses");
    task.validate().expect("valid");
    assert_eq!(task.source.as_deref(), Some("payments/pre-migration"));
    let TaskWork::OffsetRollback(t) = &task.work else {
        panic!("an offset-rollback task: {task:?}");
    };
    assert_eq!(t.operation, RollbackOperation::Snapshot);
    assert_eq!(t.consumer_groups.len(), 2);
    assert!(t.verify_after_rollback, "defaults to true");
    assert_eq!(
        t.storage,
        StorageTarget::ConfigMap {
            namespace: "payments".into(),
            name: "offset-snapshots".into()
        }
    );
    let kafka = t.kafka.as_ref().expect("kafka");
    assert_eq!(kafka.properties["client.id"], "tidemark");
    assert_eq!(task.operation(), "snapshot");
}

#[test]
fn every_refused_property_fails_task_validation_naming_it() {
    for p in crate::properties::REFUSED_PROPERTIES {
        let key = if p.contains {
            format!("x.{}", p.key)
        } else {
            p.key.to_string()
        };
        let text = SNAPSHOT_TASK.replace("client.id: tidemark", &format!("{key}: \"v\""));
        let err = parse(&text).and_then(|t| t.validate()).expect_err(&key);
        assert_eq!(err.exit_code(), 2, "{key}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("task field 'kafka.properties[{key}]'")),
            "{msg}"
        );
        assert!(msg.contains(p.instead), "{msg}");
    }
}

#[test]
fn storage_location_fields_are_camel_case() {
    let target = StorageTarget::Location {
        url: "s3://b/p".into(),
        s3_region: Some("eu-west-1".into()),
        s3_endpoint: None,
        s3_path_style: true,
        allow_http: false,
        encryption: None,
    };
    let json = serde_json::to_value(&target).expect("encode");
    assert_eq!(
        json,
        serde_json::json!({"type": "location", "url": "s3://b/p", "s3Region": "eu-west-1", "s3PathStyle": true, "allowHttp": false})
    );
    let snake = r#"{"type":"location","url":"s3://b/p","s3_region":"x"}"#;
    assert!(
        serde_json::from_str::<StorageTarget>(snake).is_err(),
        "one spelling only"
    );
}

#[test]
fn json_round_trip_keeps_the_shape() {
    let task = parse(SNAPSHOT_TASK).expect("parses");
    let json = serde_json::to_string(&task).expect("encode");
    assert!(json.contains(r#""kind":"offsetRollback""#), "{json}");
    assert!(json.contains(r#""type":"configMap""#), "{json}");
    let back = Task::parse(json.as_bytes(), "task.json").expect("json parses");
    assert_eq!(back, task);
    // What the operator renders with serde_yaml_ng parses back to the same task.
    let yaml = serde_yaml_ng::to_string(&task).expect("yaml");
    assert_eq!(
        Task::parse(yaml.as_bytes(), "task.yaml").expect("yaml parses"),
        task
    );
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    for (from, to) in [
        ("source:", "colour: blue\nsource:"),
        (
            "operation: snapshot",
            "operation: snapshot\nverify: {strict: true}",
        ),
        (
            "  securityProtocol:",
            "  password: hunter2\n  securityProtocol:",
        ),
        (
            "  name: offset-snapshots",
            "  name: offset-snapshots\n  key: x",
        ),
    ] {
        let text = SNAPSHOT_TASK.replacen(from, to, 1);
        let err = parse(&text).expect_err(to);
        assert_eq!(err.exit_code(), 2, "{to}: {err}");
        assert!(err.to_string().contains("unknown field"), "{to}: {err}");
        assert!(err.to_string().contains("task.yaml"), "{err}");
    }
}

#[test]
fn malformed_documents_are_invalid_input() {
    for text in [
        "",
        "operation: [",
        "just a string",
        "{\"apiVersion\": 1}",
        &SNAPSHOT_TASK.replace("kind: offsetRollback", "kind: backup"),
        &SNAPSHOT_TASK.replace("operation: snapshot", "operation: explode"),
        &SNAPSHOT_TASK.replace("type: configMap", "type: floppy"),
    ] {
        let err = parse(text).expect_err(text);
        assert_eq!(err.label(), "invalid_input", "{text}: {err}");
    }
}

fn invalid(text: &str) -> String {
    let task = parse(text).expect("parses");
    let err = task.validate().expect_err("must be invalid");
    assert_eq!(err.exit_code(), 2, "{err}");
    err.to_string()
}

#[test]
fn validation_names_the_field() {
    let with = |from: &str, to: &str| SNAPSHOT_TASK.replacen(from, to, 1);
    let cases = [
        (
            with("task-v1", "task-v2"),
            "task field 'apiVersion' is 'tidemark.dev/task-v2'",
        ),
        (
            with("operation: snapshot", "operation: rollback")
                .replace("snapshotId: pre-migration-20241201", ""),
            "task field 'snapshotId' is required for operation rollback",
        ),
        (
            with("snapshotId: pre-migration-20241201", "snapshotId: ../etc"),
            "task field 'snapshotId': snapshot id '../etc' is invalid",
        ),
        (
            with("operation: snapshot", "operation: verify").replace(
                "kafka:\n  bootstrapServers: [\"kafka-0:9092\", \"kafka-1:9092\"]\n  securityProtocol: SASL_SSL\n  saslMechanism: SCRAM-SHA-512\n  sslCaLocation: /etc/tidemark/kafka-tls/ca.crt\n  properties:\n    client.id: tidemark\n",
                "",
            ),
            "task field 'kafka' is required for operation verify",
        ),
        (
            with("consumerGroups: [order-processor, payment-handler]", ""),
            "task field 'consumerGroups' is required for operation snapshot",
        ),
        (
            with("SASL_SSL", "TLS"),
            "task field 'kafka.securityProtocol': security protocol 'TLS'",
        ),
        (
            with("SCRAM-SHA-512", "GSSAPI"),
            "task field 'kafka.saslMechanism'",
        ),
        (
            with("[\"kafka-0:9092\", \"kafka-1:9092\"]", "[]"),
            "task field 'kafka.bootstrapServers' is empty",
        ),
        (
            with("name: offset-snapshots", "name: Offset_Snapshots"),
            "task field 'storage.name'",
        ),
        (
            with("namespace: payments", "namespace: a.b"),
            "task field 'storage.namespace'",
        ),
    ];
    for (text, want) in cases {
        let msg = invalid(&text);
        assert!(msg.contains(want), "want '{want}' in: {msg}");
    }
}

#[test]
fn delete_needs_neither_kafka_nor_groups() {
    let text = r#"{"apiVersion": "tidemark.dev/task-v1", "kind": "offsetRollback",
            "operation": "delete", "snapshotId": "s1",
            "storage": {"type": "location", "url": "/data"}}"#;
    let task = parse(text).expect("parses as JSON");
    task.validate().expect("valid");
}

fn diff(i: usize) -> ResultDifference {
    ResultDifference {
        group: format!("group-{}", i % 7),
        topic: "orders-with-a-rather-long-topic-name".into(),
        partition: i as i32,
        expected: Some(1000 + i as i64),
        actual: (!i.is_multiple_of(3)).then_some(i as i64),
    }
}

#[test]
fn small_results_are_written_whole() {
    let r = TaskResult {
        phase: PHASE_COMPLETED.into(),
        operation: Some("verify".into()),
        snapshot_id: Some("s1".into()),
        message: "3 partitions differ\nfrom snapshot s1".into(),
        verification: Some(ResultVerification {
            matched: false,
            total_differences: 3,
            differences: (0..3).map(diff).collect(),
        }),
        ..TaskResult::default()
    };
    let out = r.to_bounded_json();
    let back: TaskResult = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(back.message, "3 partitions differ from snapshot s1");
    assert_eq!(back.verification, r.verification);
}

#[test]
fn thousands_of_differences_are_truncated_to_fit() {
    let r = TaskResult {
        phase: PHASE_FAILED.into(),
        operation: Some("verify".into()),
        snapshot_id: Some("s1".into()),
        message: "5000 partitions differ from snapshot s1".into(),
        snapshot_data: Some(ResultSnapshotData {
            groups: 7,
            total_partitions: 5000,
            timestamp: "2024-12-01T12:00:00Z".into(),
        }),
        verification: Some(ResultVerification {
            matched: false,
            total_differences: 5000,
            differences: (0..5000).map(diff).collect(),
        }),
        error: Some(ResultError {
            kind: "verification_failed".into(),
            exit_code: 11,
        }),
        ..TaskResult::default()
    };
    let out = r.to_bounded_json();
    assert!(out.len() <= MAX_RESULT_BYTES, "{} bytes", out.len());
    let back: TaskResult = serde_json::from_slice(&out).expect("valid JSON");
    let v = back.verification.expect("verification kept");
    assert_eq!(v.total_differences, 5000);
    assert!(!v.differences.is_empty());
    assert!(v.differences.len() < 5000);
    assert_eq!(
        v.differences[..],
        r.verification.expect("v").differences[..v.differences.len()]
    );
    // As many as fit: one more would not.
    assert!(out.len() > MAX_RESULT_BYTES - 200, "{} bytes", out.len());
    assert_eq!(back.error, r.error);
    assert_eq!(back.snapshot_data, r.snapshot_data);
}

#[test]
fn huge_messages_and_ids_are_cut() {
    let r = TaskResult {
        phase: PHASE_FAILED.into(),
        operation: Some("rollback".into()),
        snapshot_id: Some("x".repeat(10_000)),
        message: "é\"\\\n".repeat(5_000),
        error: Some(ResultError {
            kind: "kafka_error".into(),
            exit_code: 9,
        }),
        ..TaskResult::default()
    };
    let out = r.to_bounded_json();
    assert!(out.len() <= MAX_RESULT_BYTES, "{} bytes", out.len());
    let back: TaskResult = serde_json::from_slice(&out).expect("valid JSON");
    assert!(back.message.ends_with('…'), "{}", back.message);
    assert!(!back.message.contains('\n'));
    assert_eq!(
        back.snapshot_id.map(|id| id.chars().count()),
        Some(MAX_ID_LEN)
    );
    assert_eq!(back.error, r.error);
    assert_eq!(back.phase, PHASE_FAILED);

    let long_message = TaskResult {
        message: "m".repeat(10_000),
        snapshot_id: Some("s1".into()),
        ..r
    };
    let out = long_message.to_bounded_json();
    assert!(out.len() <= MAX_RESULT_BYTES);
    let back: TaskResult = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(back.snapshot_id.as_deref(), Some("s1"));
    assert!(back.message.len() > 3000, "the message keeps what fits");
}

#[test]
fn a_plan_keeps_its_hash_when_its_names_do_not_fit() {
    let names = |c: char| -> Vec<String> {
        (0..20)
            .map(|i| format!("{i}{}", c.to_string().repeat(240)))
            .collect()
    };
    let r = TaskResult {
        phase: PHASE_COMPLETED.into(),
        operation: Some("validate-restore".into()),
        message: "Plan 0123456789abcdef stored".into(),
        plan: Some(ResultPlan {
            hash: "0123456789abcdef".into(),
            key: "plans/u/1.json".into(),
            created: "2026-12-07T08:00:00Z".into(),
            summary: "Restore 3 records".into(),
            topics_to_create: names('t'),
            topics_to_create_total: 20,
            refused_configs: names('c'),
            active_groups: names('g'),
            active_groups_total: 20,
            ..ResultPlan::default()
        }),
        ..TaskResult::default()
    };
    let out = r.to_bounded_json();
    assert!(out.len() <= MAX_RESULT_BYTES, "{} bytes", out.len());
    let back: TaskResult = serde_json::from_slice(&out).expect("valid JSON");
    let p = back.plan.expect("the plan stays");
    assert_eq!(
        (p.hash.as_str(), p.key.as_str(), p.topics_to_create_total),
        ("0123456789abcdef", "plans/u/1.json", 20)
    );
    assert!(
        !p.topics_to_create.is_empty() && p.topics_to_create.len() < 20,
        "the first names that fit: {}",
        p.topics_to_create.len()
    );
    assert_eq!(
        back.message, r.message,
        "the message is cut after the names"
    );
}

#[test]
fn reset_tasks_are_checked_before_anything_runs() {
    let base = "apiVersion: tidemark.dev/task-v1\nkind: offsetReset\n\
                kafka: {bootstrapServers: [\"k:9092\"], securityProtocol: PLAINTEXT}\n\
                storage: {type: location, url: /s}\n";
    let ok = format!(
        "{base}consumerGroups: [g]\ntopics: [\"orders:0,1\"]\nstrategy: {{type: toEarliest}}\n"
    );
    let task = parse(&ok).expect("parses");
    task.validate().expect("valid");
    assert_eq!(task.operation(), "reset");
    let TaskWork::OffsetReset(t) = &task.work else {
        panic!("a reset task: {task:?}");
    };
    assert_eq!((t.max_concurrent, t.max_retries), (50, 3));
    assert!(t.snapshot_before_reset && !t.dry_run);
    let cases = [
        ("strategy: {type: toEarliest}\n", "consumerGroups"),
        ("consumerGroups: [g]\nstrategy: {type: toDatetime, datetime: \"2024-13-01T00:00:00.000\"}\n", "strategy.datetime"),
        ("consumerGroups: [g]\nstrategy: {type: byDuration, duration: \"1h\"}\n", "strategy.duration"),
        ("consumerGroups: [g]\nstrategy: {type: fromFile, csv: \"g,orders,x,1\"}\n", "strategy.csv"),
        ("consumerGroups: [g]\ntopics: [\"orders:\"]\nstrategy: {type: toLatest}\n", "topics[0]"),
        ("consumerGroups: [g]\nstrategy: {type: toOffset, offset: -1}\n", "strategy.offset"),
        ("consumerGroups: [g]\nmaxConcurrent: 0\nstrategy: {type: toLatest}\n", "maxConcurrent"),
        ("groupsRegex: \"(\"\nstrategy: {type: toLatest}\n", "groupsRegex"),
    ];
    for (extra, field) in cases {
        let err = parse(&format!("{base}{extra}"))
            .and_then(|t| t.validate())
            .expect_err(extra);
        assert!(err.to_string().contains(field), "{extra}: {err}");
        assert_eq!(err.exit_code(), 2, "{extra}");
    }
    let no_storage = "apiVersion: tidemark.dev/task-v1\nkind: offsetReset\n\
                      kafka: {bootstrapServers: [\"k:9092\"], securityProtocol: PLAINTEXT}\n\
                      consumerGroups: [g]\nstrategy: {type: toLatest}\n";
    let err = parse(no_storage)
        .and_then(|t| t.validate())
        .expect_err("no storage");
    assert!(err.to_string().contains("'storage'"), "{err}");
    parse(&format!("{no_storage}dryRun: true\n"))
        .and_then(|t| t.validate())
        .expect("a dry run needs no storage");
}

#[test]
fn reset_plans_are_cut_before_groups_to_fit_the_termination_message() {
    let plan: Vec<ResultPartitionPlan> = (0..MAX_RESULT_PLAN_PARTITIONS as i32)
        .map(|p| ResultPartitionPlan {
            topic: "payments-ledger-events".into(),
            partition: p,
            current: Some(1_000_000 + i64::from(p)),
            target: 0,
            action: "rewind".into(),
        })
        .collect();
    let groups: Vec<ResultGroup> = (0..40)
        .map(|i| ResultGroup {
            group: format!("payments-consumer-{i}"),
            status: "planned".into(),
            partitions: 12,
            error: None,
            plan: plan.clone(),
        })
        .collect();
    let result = TaskResult {
        phase: PHASE_COMPLETED.into(),
        message: "Dry run".into(),
        reset: Some(ResultReset {
            dry_run: true,
            groups_total: 40,
            total_group_results: 40,
            group_results: groups,
            ..ResultReset::default()
        }),
        ..TaskResult::default()
    };
    let bytes = result.to_bounded_json();
    assert!(bytes.len() <= MAX_RESULT_BYTES, "{}", bytes.len());
    let back: TaskResult = serde_json::from_slice(&bytes).expect("valid JSON");
    let reset = back.reset.expect("reset");
    // The first group keeps its whole plan; later ones lose theirs before any group goes.
    assert_eq!(reset.group_results[0].plan, plan);
    assert!(reset.group_results.iter().any(|g| g.plan.is_empty()));
    assert!(
        reset.group_results.len() > 20,
        "{}",
        reset.group_results.len()
    );
    assert_eq!(reset.total_group_results, 40);
}

#[test]
fn field_errors_carry_the_task_path_and_the_rest_of_the_sentence() {
    let base = "apiVersion: tidemark.dev/task-v1\nkind: offsetReset\n\
                kafka: {bootstrapServers: [\"k:9092\"], securityProtocol: PLAINTEXT}\n\
                storage: {type: location, url: /s}\n";
    // (document tail, path, reason, the whole message)
    let cases = [
        (
            "consumerGroups: [g]\nmaxConcurrent: 0\nstrategy: {type: toLatest}\n",
            "maxConcurrent",
            "is 0; use 1 to 1000",
            "task field 'maxConcurrent' is 0; use 1 to 1000",
        ),
        (
            "consumerGroups: [g]\nstrategy: {type: fromSnapshot, snapshotId: \"a..b\"}\n",
            "strategy.snapshotId",
            ": snapshot id 'a..b' is invalid: it contains '..' (allowed: letters, digits, '.', '_', '-', starting with a letter or digit, at most 253 characters)",
            "task field 'strategy.snapshotId': snapshot id 'a..b' is invalid: it contains '..' (allowed: letters, digits, '.', '_', '-', starting with a letter or digit, at most 253 characters)",
        ),
        (
            "consumerGroups: [g]\nstrategy: {type: fromFile, csv: \"g,orders,x,1\"}\n",
            "strategy.csv",
            "line 1: partition 'x' is not a number",
            "task field 'strategy.csv' line 1: partition 'x' is not a number",
        ),
    ];
    for (tail, path, reason, message) in cases {
        let task = parse(&format!("{base}{tail}")).expect("parses");
        let err = task.validate().expect_err(path);
        let field = err.field().expect("a field error");
        assert_eq!(field.path, path);
        assert_eq!(field.reason, reason);
        assert_eq!(field.to_string(), message);
        assert_eq!(err.to_string(), format!("invalid input: {message}"));
        assert_eq!(
            field.message_naming("spec.x"),
            message.replace(&format!("task field '{path}'"), "spec.x")
        );
    }
}

#[test]
fn every_spelling_of_a_shared_enum_parses_to_the_one_type() {
    for m in [
        BackupMode::OneShot,
        BackupMode::Continuous,
        BackupMode::Incremental,
    ] {
        assert_eq!(m.as_str().parse::<BackupMode>(), Ok(m));
    }
    for text in ["one_shot", "one-shot", "oneShot", "ONESHOT"] {
        assert_eq!(
            text.parse::<BackupMode>(),
            Ok(BackupMode::OneShot),
            "{text}"
        );
    }
    for c in [Compression::Zstd, Compression::Lz4, Compression::None] {
        assert_eq!(c.as_str().parse::<Compression>(), Ok(c));
    }
    for g in [
        GroupStrategy::Skip,
        GroupStrategy::HeaderBased,
        GroupStrategy::TimestampBased,
        GroupStrategy::ClusterScan,
        GroupStrategy::Manual,
    ] {
        assert_eq!(g.as_str().parse::<GroupStrategy>(), Ok(g));
        let json = serde_json::to_value(g).expect("encode");
        assert_eq!(json, g.as_str(), "the task spells it as the spec does");
    }
    assert_eq!("header_based".parse(), Ok(GroupStrategy::HeaderBased));
    assert_eq!("headerBased".parse(), Ok(GroupStrategy::HeaderBased));
    for e in [
        ExistingData::Refuse,
        ExistingData::Append,
        ExistingData::Purge,
    ] {
        assert_eq!(e.as_str().parse::<ExistingData>(), Ok(e));
    }
    assert_eq!("kafka_backup".parse(), Ok(HeaderStyle::KafkaBackup));
    assert_eq!("-1".parse(), Ok(Acks::All));
    assert_eq!("1".parse(), Ok(Acks::Leader));
    assert!("0"
        .parse::<Acks>()
        .expect_err("acks 0")
        .contains("exactly once"));
    assert!("zip"
        .parse::<Compression>()
        .expect_err("zip")
        .contains("zstd, lz4, none"));
}

#[test]
fn a_reason_names_the_other_fields_it_mentions_in_the_readers_terms() {
    let table = [
        ("timeWindowStart", "restore.time_window_start"),
        ("timeWindowEnd", "restore.time_window_end"),
        ("topicMapping", "restore.topic_mapping"),
    ];
    let named = |path: &str| crate::field::rename(&table, path);
    let window = RestoreTask {
        time_window_start: Some(5),
        time_window_end: Some(3),
        ..restore_task_for_names()
    };
    let err = window.validate().expect_err("an empty window");
    let field = err.field().expect("a field error");
    assert_eq!(
        field.to_string(),
        "task field 'timeWindowStart' (5) is after timeWindowEnd (3): the window is empty"
    );
    assert_eq!(
        field.message_with("restore.time_window_start", named),
        "restore.time_window_start (5) is after restore.time_window_end (3): the window is empty"
    );
    // A prefix keeps the rest of the path; an unknown path is no name.
    assert_eq!(
        named("topicMapping.orders").as_deref(),
        Some("restore.topic_mapping.orders")
    );
    assert_eq!(named("timeWindowStartish"), None);
    // Braces around anything but a task path are the reason's own text.
    let literal = FieldError::new("topics", "holds '~a{2,' and '{Weird}' and '{'");
    assert_eq!(
        literal.message_with("x", |_| Some("NAMED".into())),
        "x holds '~a{2,' and '{Weird}' and '{'"
    );
}

/// A restore task that passes validation, to vary one field of.
fn restore_task_for_names() -> RestoreTask {
    serde_json::from_value(serde_json::json!({
        "kafka": {"bootstrapServers": ["k:9092"], "securityProtocol": "PLAINTEXT"},
        "storage": {"type": "location", "url": "/b"},
        "backupId": "b1"
    }))
    .expect("a minimal restore task")
}
