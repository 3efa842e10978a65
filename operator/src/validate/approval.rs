//! `spec.approval` and `spec.approvalTimeout` of the kinds that plan, then run once approved:
//! the timeout is a duration like the other durations, and `Manual` is refused where there is
//! nothing to approve (a dry run, an operation that changes no offsets) or nowhere to keep the
//! plan (no storage).

use super::*;
use crate::crd::approval::Approval;

/// Problems of `approval` and `timeout`; `refused` says why `Manual` cannot be used with the
/// rest of the spec (`None`: it can), naming the field.
pub fn approval_problems(
    approval: Approval,
    timeout: Option<&str>,
    refused: Option<(&'static str, String)>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(value) = timeout {
        if let Err(why) = parse_age(value) {
            problems.push(Problem::new(
                REASON_INVALID_FIELD,
                format!("spec.approvalTimeout{}", why.trim_start_matches("maxAge")),
            ));
        }
    }
    if approval.is_manual() {
        if let Some((reason, message)) = refused {
            problems.push(Problem::new(reason, message));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_timeout_and_a_refused_manual_approval_name_their_fields() {
        let p = approval_problems(Approval::Automatic, Some("2y"), None);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].reason, REASON_INVALID_FIELD);
        assert_eq!(
            p[0].message,
            "spec.approvalTimeout '2y' is not a duration like 30d, 12h, 90m or 2w"
        );
        assert!(approval_problems(Approval::Manual, Some("24h"), None).is_empty());
        let refused = || Some((REASON_MISSING_FIELD, "spec.storage is required".to_string()));
        assert!(approval_problems(Approval::Automatic, None, refused()).is_empty());
        let p = approval_problems(Approval::Manual, None, refused());
        assert_eq!(p[0].reason, REASON_MISSING_FIELD);
        assert!(p[0].message.contains("spec.storage"), "{p:?}");
    }
}
