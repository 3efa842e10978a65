//! Plan, then approve: a restore, offset reset or offset rollback task can be asked only to plan
//! (write the full plan to storage and report its hash and a bounded summary, changing nothing),
//! or to execute exactly a plan a person approved (refusing when the cluster no longer matches it).

use serde::{Deserialize, Serialize};

use crate::field::{field_error, field_invalid};
use crate::ids::validate_report_key;
use crate::Result;

/// Length of a plan hash: the first 16 lowercase hex digits of the SHA-256 of the stored plan
/// document's bytes.
pub const PLAN_HASH_LEN: usize = 16;

/// Execute exactly the plan stored under `key` (relative to the task's storage), whose hash must
/// be `hash`. The worker reads the plan, checks its hash, checks that the cluster still matches
/// what the plan depends on, and fails with [`crate::exit::PLAN_CHANGED`] (nothing changed)
/// when it does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovedPlan {
    pub key: String,
    pub hash: String,
}

/// Checks a plan key (`planOut` or `approvedPlan.key`): a storage key such as
/// `plans/<uid>/<n>.json`.
pub fn validate_plan_key(field: &str, key: &str) -> Result<()> {
    validate_report_key(key).map_err(|e| field_invalid(field, e))
}

/// Checks a plan hash: [`PLAN_HASH_LEN`] lowercase hex digits.
pub fn validate_plan_hash(field: &str, hash: &str) -> Result<()> {
    if hash.len() != PLAN_HASH_LEN
        || !hash
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        return Err(field_error(
            field,
            format!("is '{hash}'; a plan hash is {PLAN_HASH_LEN} lowercase hex digits"),
        ));
    }
    Ok(())
}

/// Checks the pair of plan fields a task carries: not both, and each well formed.
pub fn validate_plan_fields(plan_out: Option<&str>, approved: Option<&ApprovedPlan>) -> Result<()> {
    if plan_out.is_some() && approved.is_some() {
        return Err(field_error(
            "planOut",
            "is set with {approvedPlan}: a task either plans or executes an approved plan",
        ));
    }
    if let Some(key) = plan_out {
        validate_plan_key("planOut", key)?;
    }
    if let Some(a) = approved {
        validate_plan_key("approvedPlan.key", &a.key)?;
        validate_plan_hash("approvedPlan.hash", &a.hash)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_fields_are_one_or_the_other_and_well_formed() {
        let ok = ApprovedPlan {
            key: "plans/u1/1.json".into(),
            hash: "0123456789abcdef".into(),
        };
        validate_plan_fields(None, Some(&ok)).expect("approved");
        validate_plan_fields(Some("plans/u1/1.json"), None).expect("plan");
        let e = validate_plan_fields(Some("plans/a.json"), Some(&ok)).expect_err("both");
        assert!(e.to_string().contains("planOut"), "{e}");
        for bad in ["0123456789ABCDEF", "0123", "0123456789abcdeg"] {
            let a = ApprovedPlan {
                hash: bad.into(),
                ..ok.clone()
            };
            let e = validate_plan_fields(None, Some(&a))
                .expect_err(bad)
                .to_string();
            assert!(e.contains("approvedPlan.hash"), "{e}");
        }
        let e = validate_plan_fields(Some("../x"), None).expect_err("key");
        assert!(e.to_string().contains("planOut"), "{e}");
    }
}
