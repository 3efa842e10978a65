//! Plan, then approve on the command line: what `--plan-out` prints (the plan's hash, its
//! summary, how to execute exactly it) and how a run of `--approved-plan` names its plan.

use serde::Serialize;

use super::{print_json, Format};
use crate::error::Result;
use crate::plan::store::StoredPlan;
use crate::task::ResultPlan;

/// A report of executing an approved plan: the plan, then the usual report.
#[derive(Debug, Serialize)]
pub(super) struct Approved<'a, T: Serialize> {
    pub plan: ResultPlan,
    #[serde(flatten)]
    pub report: &'a T,
}

impl<'a, T: Serialize> Approved<'a, T> {
    pub fn new(stored: &StoredPlan, report: &'a T) -> Self {
        Approved {
            plan: stored.doc.result(&stored.hash, &stored.key),
            report,
        }
    }
}

/// Prints a plan `--plan-out` wrote: JSON, its bounded summary; text, its hash, what it does and
/// how to execute it.
pub(super) fn print_written(format: Format, stored: &StoredPlan) -> Result<()> {
    match format {
        Format::Json => print_json(&stored.doc.result(&stored.hash, &stored.key)),
        Format::Text => {
            let pre = &stored.doc.preconditions;
            println!("Plan written to {}", stored.key);
            println!("Plan hash: {}", stored.hash);
            println!("{}", stored.doc.summary);
            println!(
                "Executing it first checks {} and {} against the cluster.",
                crate::plan::count(pre.groups.len(), "group"),
                crate::plan::count(pre.topics.len(), "topic")
            );
            let refused = stored
                .doc
                .restore
                .as_ref()
                .map_or(0, |r| r.refused_configs.len());
            if refused > 0 {
                println!(
                    "Nothing was changed. Executing this plan fails (exit 2) before it creates any topic: the target would refuse the configs above. Create those topics on the target with configs it accepts, then plan again."
                );
                return Ok(());
            }
            println!(
                "Nothing was changed. To execute exactly this plan: --approved-plan {} --plan-hash {}",
                stored.key, stored.hash
            );
            Ok(())
        }
    }
}

/// The line a text report of an approved run starts with.
pub(super) fn announce(format: Format, stored: &StoredPlan) {
    if format == Format::Text {
        println!(
            "Executing approved plan {} (hash {}): {}\n",
            stored.key, stored.hash, stored.doc.summary
        );
    }
}
