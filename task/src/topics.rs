//! Topic selection as kafka-backup's configuration means it: include and exclude patterns, each an exact name, a
//! glob (`payments-*`, `??-topic`, `orders-[abc]`) or a `~regex` matched against the whole name.
//! A topic is selected when some include pattern matches it and no exclude pattern does.
//! Internal topics (`__consumer_offsets`, `__transaction_state`, any name starting with `__`)
//! are selected only by an include pattern that names them exactly, never by a glob or regex.

use glob::{MatchOptions, Pattern};
use regex::Regex;

/// Prefix of Kafka's internal topics.
const INTERNAL_PREFIX: &str = "__";

/// Globs match case-sensitively, and `*` may match any character (topic names have no `/`).
const GLOB_OPTIONS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

/// One parsed pattern.
#[derive(Debug, Clone)]
enum Matcher {
    /// A name without glob characters: equality.
    Exact(String),
    Glob(Pattern),
    /// Anchored at both ends.
    Regex(Regex),
}

impl Matcher {
    fn parse(pattern: &str, list: &str) -> Result<Matcher, String> {
        let p = pattern.trim();
        if p.is_empty() {
            return Err(format!(
                "{list} pattern '{pattern}' is empty: give a topic name, a glob (orders-*) or ~regex"
            ));
        }
        if let Some(re) = p.strip_prefix('~') {
            if re.is_empty() {
                return Err(format!("{list} pattern '{pattern}' has no regex after '~'"));
            }
            return crate::limits::anchored_regex(re)
                .map(Matcher::Regex)
                .map_err(|e| format!("{list} pattern '{pattern}' is not a valid regex: {e}"));
        }
        if p.contains(['*', '?', '[', ']']) {
            // `**` means "any path depth" to the glob crate and must stand alone between `/`s;
            // topic names have no `/`, so any run of `*` is one `*`.
            let mut glob = String::with_capacity(p.len());
            for c in p.chars() {
                if !(c == '*' && glob.ends_with('*')) {
                    glob.push(c);
                }
            }
            return Pattern::new(&glob)
                .map(Matcher::Glob)
                .map_err(|e| format!("{list} pattern '{pattern}' is not a valid glob: {e}"));
        }
        Ok(Matcher::Exact(p.to_string()))
    }

    fn matches(&self, topic: &str) -> bool {
        match self {
            Matcher::Exact(name) => name == topic,
            Matcher::Glob(glob) => glob.matches_with(topic, GLOB_OPTIONS),
            Matcher::Regex(re) => re.is_match(topic),
        }
    }

    fn is_exact(&self, topic: &str) -> bool {
        matches!(self, Matcher::Exact(name) if name == topic)
    }
}

/// Which topics a backup or restore covers (see the module docs for the rules).
#[derive(Debug, Clone)]
pub struct TopicFilter {
    include: Vec<(String, Matcher)>,
    exclude: Vec<Matcher>,
}

impl TopicFilter {
    /// include/exclude patterns: an exact name, a glob (`*`, `?`, `[abc]`, e.g. `payments-*`),
    /// or `~regex` matched against the whole name. Errors name the bad pattern.
    ///
    /// Surrounding whitespace is ignored (topic names cannot contain any); an empty pattern is
    /// an error. No include pattern selects nothing.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        use crate::limits::check_list;
        check_list(include.len()).map_err(|e| format!("the include list {e}"))?;
        check_list(exclude.len()).map_err(|e| format!("the exclude list {e}"))?;
        let include = include
            .iter()
            .map(|p| Matcher::parse(p, "include").map(|m| (p.clone(), m)))
            .collect::<Result<_, _>>()?;
        let exclude = exclude
            .iter()
            .map(|p| Matcher::parse(p, "exclude"))
            .collect::<Result<_, _>>()?;
        Ok(TopicFilter { include, exclude })
    }

    /// Included by some include pattern and by no exclude pattern. Internal topics (names
    /// starting with "__", e.g. __consumer_offsets, __transaction_state) match only when an
    /// include pattern names them exactly (never through a glob or regex).
    pub fn matches(&self, topic: &str) -> bool {
        let internal = is_internal(topic);
        let included = self.include.iter().any(|(_, m)| {
            if internal {
                m.is_exact(topic)
            } else {
                m.matches(topic)
            }
        });
        included && !self.exclude.iter().any(|m| m.matches(topic))
    }

    /// The matching topics of `all`, sorted (each once).
    pub fn select<'a>(&self, all: &'a [String]) -> Vec<&'a String> {
        let mut out: Vec<&String> = all.iter().filter(|t| self.matches(t)).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Include patterns that match none of `all` (before excludes), as written: usually a
    /// misspelt name or a topic that does not exist yet, worth a warning.
    pub fn unmatched_includes(&self, all: &[String]) -> Vec<&str> {
        self.include
            .iter()
            .filter(|(_, m)| {
                !all.iter().any(|t| {
                    if is_internal(t) {
                        m.is_exact(t)
                    } else {
                        m.matches(t)
                    }
                })
            })
            .map(|(p, _)| p.as_str())
            .collect()
    }
}

/// Whether `topic` is one of Kafka's internal topics (its name starts with `__`).
pub fn is_internal(topic: &str) -> bool {
    topic.starts_with(INTERNAL_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn filter(include: &[&str], exclude: &[&str]) -> TopicFilter {
        TopicFilter::new(&strings(include), &strings(exclude)).expect("valid patterns")
    }

    #[test]
    fn the_restore_guide_example() {
        let f = filter(
            &["orders", "payments-*", "events-*", "~transactions-\\d+"],
            &["*-internal", "__*"],
        );
        let table = [
            ("orders", true),
            ("orders-v2", false),
            ("my-orders", false),
            ("payments-v1", true),
            ("payments-", true),
            ("payments", false),
            ("payments-internal", false),
            ("events-clicks", true),
            ("events-internal", false),
            ("transactions-1", true),
            ("transactions-123", true),
            ("transactions-", false),
            ("transactions-12a", false),
            ("pre-transactions-1", false),
            ("__consumer_offsets", false),
            ("__transaction_state", false),
            ("audit", false),
        ];
        for (topic, expected) in table {
            assert_eq!(f.matches(topic), expected, "{topic}");
        }
        let all = strings(&[
            "transactions-7",
            "audit",
            "orders",
            "events-internal",
            "payments-eu",
            "__consumer_offsets",
            "events-a",
            "orders",
        ]);
        assert_eq!(
            f.select(&all),
            vec!["events-a", "orders", "payments-eu", "transactions-7"]
        );
    }

    #[test]
    fn glob_forms() {
        let table: &[(&str, &str, bool)] = &[
            ("payments-*", "payments-v1", true),
            ("*-events", "user-events", true),
            ("*-events", "user-events-x", false),
            ("??-topic", "us-topic", true),
            ("??-topic", "usa-topic", false),
            ("orders-[abc]", "orders-b", true),
            ("orders-[abc]", "orders-d", false),
            ("orders-[!abc]", "orders-d", true),
            ("orders-[a-c]", "orders-c", true),
            ("*", "anything.at_all-1", true),
            ("Orders*", "orders", false),
            ("a.b", "a.b", true),
            ("a.b", "aXb", false),
            ("payments-**", "payments-v1", true),
            ("**-events", "user-events", true),
            ("a***b", "a-b", true),
        ];
        for (pattern, topic, expected) in table {
            assert_eq!(
                filter(&[pattern], &[]).matches(topic),
                *expected,
                "{pattern} vs {topic}"
            );
        }
    }

    #[test]
    fn regexes_match_the_whole_name() {
        let table: &[(&str, &str, bool)] = &[
            ("~orders-\\d+", "orders-123", true),
            ("~orders-\\d+", "orders-123-x", false),
            ("~orders-\\d+", "x-orders-1", false),
            ("~^(payments|billing)$", "billing", true),
            ("~^(payments|billing)$", "billing2", false),
            ("~payments|billing", "payments", true),
            ("~payments|billing", "payments-x", false),
            ("~.*-v[0-9]+$", "topic-v12", true),
            ("~.*-v[0-9]+$", "topic-v12b", false),
            ("~(?i)ORDERS", "orders", true),
        ];
        for (pattern, topic, expected) in table {
            assert_eq!(
                filter(&[pattern], &[]).matches(topic),
                *expected,
                "{pattern} vs {topic}"
            );
        }
    }

    #[test]
    fn internal_topics_only_by_exact_name() {
        let all = strings(&[
            "__consumer_offsets",
            "__transaction_state",
            "__strimzi_store_topic",
            "_schemas",
            "orders",
        ]);
        for pattern in [
            "*",
            "__*",
            "__consumer_*",
            "~.*",
            "~__consumer_offsets",
            "?_consumer_offsets",
        ] {
            let f = filter(&[pattern], &[]);
            assert!(!f.matches("__consumer_offsets"), "{pattern}");
            assert!(!f.matches("__transaction_state"), "{pattern}");
        }
        // A single underscore is not internal.
        assert!(filter(&["*"], &[]).matches("_schemas"));
        assert_eq!(filter(&["*"], &[]).select(&all), vec!["_schemas", "orders"]);
        let named = filter(&["__consumer_offsets", "orders"], &[]);
        assert_eq!(named.select(&all), vec!["__consumer_offsets", "orders"]);
        // Exclude still wins over an exact include.
        let excluded = filter(&["__consumer_offsets", "*"], &["__*"]);
        assert_eq!(excluded.select(&all), vec!["_schemas", "orders"]);
        assert!(is_internal("__x") && !is_internal("_x") && !is_internal("x__"));
    }

    #[test]
    fn exclude_patterns_of_every_form() {
        let f = filter(
            &["*"],
            &["*-changelog", "~.*-test$", "scratch", "tmp-[0-9]"],
        );
        let table = [
            ("orders", true),
            ("app-store-changelog", false),
            ("orders-test", false),
            ("orders-testing", true),
            ("scratch", false),
            ("scratch-2", true),
            ("tmp-1", false),
            ("tmp-x", true),
        ];
        for (topic, expected) in table {
            assert_eq!(f.matches(topic), expected, "{topic}");
        }
    }

    #[test]
    fn no_include_selects_nothing_and_whitespace_is_ignored() {
        let none = filter(&[], &[]);
        assert!(!none.matches("orders"));
        assert!(none.select(&strings(&["orders"])).is_empty());
        let spaced = filter(&[" orders ", " ~pay.* "], &[" payments-old"]);
        assert!(spaced.matches("orders"));
        assert!(spaced.matches("payments"));
        assert!(!spaced.matches("payments-old"));
    }

    #[test]
    fn bad_patterns_are_named() {
        let cases: &[(&[&str], &[&str], &str)] = &[
            (
                &["orders", "payments-["],
                &[],
                "include pattern 'payments-[' is not a valid glob",
            ),
            (
                &["~transactions-(\\d+"],
                &[],
                "include pattern '~transactions-(\\d+' is not a valid regex",
            ),
            (
                &["orders"],
                &["~["],
                "exclude pattern '~[' is not a valid regex",
            ),
            (
                &["orders"],
                &["tmp-[0-9"],
                "exclude pattern 'tmp-[0-9' is not a valid glob",
            ),
            (&["[!]"], &[], "include pattern '[!]' is not a valid glob"),
            (&[""], &[], "include pattern '' is empty"),
            (&["orders"], &["  "], "exclude pattern '  ' is empty"),
            (&["~"], &[], "include pattern '~' has no regex after '~'"),
        ];
        for (include, exclude, expected) in cases {
            let err = TopicFilter::new(&strings(include), &strings(exclude)).expect_err(expected);
            assert!(
                err.starts_with(expected),
                "expected '{expected}', got '{err}'"
            );
        }
    }

    #[test]
    fn unmatched_includes_point_at_likely_typos() {
        let f = filter(
            &[
                "orders",
                "ordres",
                "payments-*",
                "~refunds-\\d+",
                "__consumer_offsets",
                "__*",
            ],
            &["orders"],
        );
        let all = strings(&["orders", "payments-eu", "__consumer_offsets"]);
        assert_eq!(
            f.unmatched_includes(&all),
            vec!["ordres", "~refunds-\\d+", "__*"]
        );
    }
}
