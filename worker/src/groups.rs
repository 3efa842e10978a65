//! Choosing consumer groups (names, a regex, or all) and reading their committed offsets in
//! bulk with bounded concurrency.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};
use regex::Regex;

use crate::error::{Error, Result};
use crate::kafka::{CommittedOffset, GroupAdmin};

/// Default number of groups read or written at once.
pub const DEFAULT_CONCURRENCY: usize = 50;

/// Which groups a command acts on.
#[derive(Debug, Clone, Default)]
pub struct GroupSelector {
    /// Explicit names (`--groups a,b`).
    pub names: Vec<String>,
    /// `--groups-regex`, matched against the whole group id.
    pub regex: Option<Regex>,
    /// `--all-groups`.
    pub all: bool,
}

impl GroupSelector {
    /// Builds a selector from CLI inputs, validating the regex and that something was chosen.
    pub fn new(names: &[String], regex: Option<&str>, all: bool) -> Result<Self> {
        let names = split_names(names);
        crate::limits::check_list(names.len())
            .map_err(|e| Error::invalid(format!("--groups {e}")))?;
        let regex = regex
            .map(|r| {
                crate::limits::anchored_regex(r).map_err(|e| {
                    Error::invalid(format!("--groups-regex '{r}' is not a valid regex: {e}"))
                })
            })
            .transpose()?;
        if names.is_empty() && regex.is_none() && !all {
            return Err(Error::invalid(
                "no consumer groups selected: pass --groups, --groups-regex or --all-groups",
            ));
        }
        Ok(GroupSelector { names, regex, all })
    }

    /// Whether any group was named explicitly (those must exist).
    pub fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// Whether listing the cluster's groups is needed.
    pub fn needs_listing(&self) -> bool {
        self.all || self.regex.is_some()
    }

    /// Whether `group` matches the regex or `--all-groups` (explicit names aside).
    pub fn matches_pattern(&self, group: &str) -> bool {
        self.all || self.regex.as_ref().is_some_and(|r| r.is_match(group))
    }

    /// Resolves to concrete group ids: the explicit names plus, when a pattern is given, the
    /// matching groups the cluster lists. Sorted and de-duplicated.
    pub async fn resolve(&self, admin: &GroupAdmin) -> Result<Vec<String>> {
        let mut out: Vec<String> = self.names.clone();
        if self.needs_listing() {
            for g in admin.list_groups().await? {
                if self.matches_pattern(&g.group_id) {
                    out.push(g.group_id);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

pub use tidemark_task::reset::split_names;

/// Committed offsets of many groups, read concurrently.
#[derive(Debug, Clone, Default)]
pub struct CommittedByGroup {
    pub offsets: BTreeMap<String, Vec<CommittedOffset>>,
    /// Time spent reading, for reports.
    pub elapsed_ms: u128,
}

/// Reads the committed offsets of `groups`, at most `concurrency` requests at once. A failure
/// of any single read fails the whole call (a partial snapshot would be a false safety net).
pub async fn read_committed(
    admin: &GroupAdmin,
    groups: &[String],
    concurrency: usize,
) -> Result<CommittedByGroup> {
    let started = Instant::now();
    let offsets: BTreeMap<String, Vec<CommittedOffset>> = stream::iter(groups.iter().cloned())
        .map(|g| async move {
            let offs = admin.committed_offsets(&g).await?;
            Ok::<_, Error>((g, offs))
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(CommittedByGroup {
        offsets,
        elapsed_ms: started.elapsed().as_millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_needs_a_choice_and_a_valid_regex() {
        assert!(GroupSelector::new(&[], None, false).is_err());
        assert!(GroupSelector::new(&[" , ".into()], None, false).is_err());
        let err = GroupSelector::new(&[], Some("("), false).expect_err("bad regex");
        assert!(err.to_string().contains("--groups-regex"), "{err}");
        let s = GroupSelector::new(&["a, b".into(), "c".into()], Some("orders-.*"), false)
            .expect("valid");
        assert_eq!(s.names, vec!["a", "b", "c"]);
        assert!(s.matches_pattern("orders-1"));
        assert!(!s.matches_pattern("x-orders-1"), "regex is anchored");
        assert!(GroupSelector::new(&[], None, true)
            .expect("all")
            .matches_pattern("anything"));
    }
}
