//! Prometheus metrics of the operator (served on `/metrics`): reconciles, reconcile failures by
//! error label, reconcile durations, and worker Jobs by kind and outcome. Every series is
//! labelled with the custom resource `kind` (KafkaBackup, KafkaOffsetReset,
//! KafkaOffsetRollback, KafkaRestore), so one set serves every controller. A scheduled KafkaBackup counts a
//! Job as created when it sees a new one of its CronJob's start, and each ended one once.
//! The `tidemark_drill_*` gauges show each KafkaBackup's newest finished restore drill,
//! labelled with its `namespace` and `name` instead.

use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label set: `(name, value)` pairs.
type Labels = Vec<(&'static str, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Job outcome label: a worker Job was created for a run.
pub const JOB_CREATED: &str = "created";
/// Job outcome label: the run completed.
pub const JOB_SUCCEEDED: &str = "succeeded";
/// Job outcome label: the run failed.
pub const JOB_FAILED: &str = "failed";
/// Job outcome label: the Job was deleted before it finished.
pub const JOB_DELETED: &str = "deleted";

/// The operator's metrics; cheap to share (`Arc`), safe to use before registration (tests).
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    duration: HistogramFamily,
    jobs: Family<Labels, Counter>,
    drills: DrillGauges,
}

/// A gauge of floating-point values.
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The gauges of the newest finished restore drill of each KafkaBackup, labelled with its
/// `namespace` and `name`.
#[derive(Clone, Default)]
struct DrillGauges {
    time: Family<Labels, FloatGauge>,
    rto: Family<Labels, FloatGauge>,
    rpo: Family<Labels, FloatGauge>,
    verified: Family<Labels, Gauge>,
}

/// What the drill gauges show of one KafkaBackup's newest finished drill.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DrillFigures {
    /// When it ended, Unix seconds.
    pub time: f64,
    /// Restore wall time, seconds.
    pub rto_seconds: Option<f64>,
    /// Age of the newest backed-up record at drill time, seconds.
    pub rpo_seconds: Option<f64>,
    /// It verified the backup within the drill's limits.
    pub verified: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn duration_histogram() -> Histogram {
    // 5 ms … ~20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            reconciles: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            jobs: Family::default(),
            drills: DrillGauges::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric in `registry` under the `tidemark_` prefix.
    pub fn register(self, registry: &mut Registry) -> Self {
        let sub = registry.sub_registry_with_prefix("tidemark");
        sub.register(
            "reconciles",
            "Reconciliations started, by kind",
            self.reconciles.clone(),
        );
        sub.register(
            "reconcile_failures",
            "Reconciliations that ended in an error, by kind and error label",
            self.failures.clone(),
        );
        sub.register(
            "reconcile_duration_seconds",
            "Duration of reconciliations, by kind",
            self.duration.clone(),
        );
        sub.register(
            "worker_jobs",
            "Worker Jobs, by kind and outcome (created, succeeded, failed, deleted)",
            self.jobs.clone(),
        );
        let d = &self.drills;
        sub.register(
            "drill_last_time_seconds",
            "When the newest restore drill of a KafkaBackup ended (Unix seconds), by namespace and name",
            d.time.clone(),
        );
        sub.register(
            "drill_rto_seconds",
            "Restore wall time of the newest restore drill of a KafkaBackup, seconds",
            d.rto.clone(),
        );
        sub.register(
            "drill_rpo_seconds",
            "Age of the newest backed-up record when the newest restore drill of a KafkaBackup ran, seconds",
            d.rpo.clone(),
        );
        sub.register(
            "drill_verified",
            "1 when the newest restore drill of a KafkaBackup verified its backup within its limits, else 0",
            d.verified.clone(),
        );
        self
    }

    /// Creates every series of each of `kinds` at zero (reconciles, durations and each Job
    /// outcome), so that dashboards and alerts see every kind before its first reconcile.
    pub fn init_kinds(self, kinds: &[&str]) -> Self {
        for kind in kinds {
            let by_kind = vec![("kind", kind.to_string())];
            drop(self.reconciles.get_or_create(&by_kind));
            drop(self.duration.get_or_create(&by_kind));
            for outcome in [JOB_CREATED, JOB_SUCCEEDED, JOB_FAILED, JOB_DELETED] {
                drop(self.jobs.get_or_create(&vec![
                    ("kind", kind.to_string()),
                    ("outcome", outcome.to_string()),
                ]));
            }
        }
        self
    }

    /// Counts a reconcile of `kind` and times it until the returned guard is dropped.
    pub fn reconcile(&self, kind: &str) -> ReconcileTimer {
        self.reconciles
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
        ReconcileTimer {
            start: Instant::now(),
            histogram: self
                .duration
                .get_or_create_owned(&vec![("kind", kind.to_string())]),
        }
    }

    /// Counts a failed reconcile of `kind` with the error's label.
    pub fn reconcile_failure(&self, kind: &str, error: &str) {
        self.failures
            .get_or_create(&vec![
                ("kind", kind.to_string()),
                ("error", error.to_string()),
            ])
            .inc();
    }

    /// Counts a worker Job of `kind` reaching `outcome` (one of the `JOB_*` labels).
    pub fn job(&self, kind: &str, outcome: &str) {
        self.jobs
            .get_or_create(&vec![
                ("kind", kind.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .inc();
    }

    /// Shows the newest finished drill of KafkaBackup `namespace/name`.
    pub fn drill(&self, namespace: &str, name: &str, figures: DrillFigures) {
        let labels = vec![
            ("namespace", namespace.to_string()),
            ("name", name.to_string()),
        ];
        let d = &self.drills;
        d.time.get_or_create(&labels).set(figures.time);
        match figures.rto_seconds {
            Some(v) => drop(d.rto.get_or_create(&labels).set(v)),
            None => drop(d.rto.remove(&labels)),
        }
        match figures.rpo_seconds {
            Some(v) => drop(d.rpo.get_or_create(&labels).set(v)),
            None => drop(d.rpo.remove(&labels)),
        }
        d.verified
            .get_or_create(&labels)
            .set(i64::from(figures.verified));
    }

    /// What the drill gauges show of KafkaBackup `namespace/name` (for tests).
    pub fn drill_figures(&self, namespace: &str, name: &str) -> Option<DrillFigures> {
        let labels = vec![
            ("namespace", namespace.to_string()),
            ("name", name.to_string()),
        ];
        let d = &self.drills;
        Some(DrillFigures {
            time: d.time.get(&labels)?.get(),
            rto_seconds: d.rto.get(&labels).map(|g| g.get()),
            rpo_seconds: d.rpo.get(&labels).map(|g| g.get()),
            verified: d.verified.get(&labels)?.get() == 1,
        })
    }

    /// Current value of the job counter (for tests).
    pub fn job_count(&self, kind: &str, outcome: &str) -> u64 {
        self.jobs
            .get(&vec![
                ("kind", kind.to_string()),
                ("outcome", outcome.to_string()),
            ])
            .map_or(0, |c| c.get())
    }

    /// Current value of the failure counter (for tests).
    pub fn failure_count(&self, kind: &str, error: &str) -> u64 {
        self.failures
            .get(&vec![
                ("kind", kind.to_string()),
                ("error", error.to_string()),
            ])
            .map_or(0, |c| c.get())
    }
}

/// Observes the reconcile duration when dropped.
pub struct ReconcileTimer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_with_the_prefix() {
        let mut registry = Registry::default();
        let metrics = Metrics::default()
            .register(&mut registry)
            .init_kinds(&crate::controller::KINDS);
        drop(metrics.reconcile("KafkaOffsetRollback"));
        metrics.reconcile_failure("KafkaOffsetRollback", "apply");
        metrics.job("KafkaOffsetRollback", JOB_CREATED);
        metrics.drill(
            "kafka-backup",
            "orders",
            DrillFigures {
                time: 1_733_054_400.0,
                rto_seconds: Some(12.5),
                rpo_seconds: Some(3600.0),
                verified: true,
            },
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for needle in [
            r#"tidemark_reconciles_total{kind="KafkaOffsetRollback"} 1"#,
            r#"tidemark_reconciles_total{kind="KafkaOffsetReset"} 0"#,
            r#"tidemark_worker_jobs_total{kind="KafkaBackup",outcome="succeeded"} 0"#,
            r#"tidemark_worker_jobs_total{kind="KafkaOffsetReset",outcome="deleted"} 0"#,
            r#"tidemark_reconcile_failures_total{kind="KafkaOffsetRollback",error="apply"} 1"#,
            r#"tidemark_reconcile_duration_seconds_count{kind="KafkaOffsetRollback"} 1"#,
            r#"tidemark_worker_jobs_total{kind="KafkaOffsetRollback",outcome="created"} 1"#,
            r#"tidemark_drill_last_time_seconds{namespace="kafka-backup",name="orders"} 1733054400.0"#,
            r#"tidemark_drill_rto_seconds{namespace="kafka-backup",name="orders"} 12.5"#,
            r#"tidemark_drill_rpo_seconds{namespace="kafka-backup",name="orders"} 3600.0"#,
            r#"tidemark_drill_verified{namespace="kafka-backup",name="orders"} 1"#,
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
