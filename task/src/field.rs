//! Why a task document is refused: [`FieldError`] names the field by its path in the task
//! document (`kafka.securityProtocol`, `topics[2]`, `strategy.csv`), so the operator can name
//! the spec field behind it without reading the message. A reason that mentions another field
//! marks it `{timeWindowEnd}`, so each reader names that one in its own terms too
//! ([`FieldError::message_with`], [`rename`]).

use std::fmt;

/// A field of the task document and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's camelCase path in the task document: `shardCount`, `kafka.properties[k]`,
    /// `topicMapping.orders`.
    pub path: String,
    /// The rest of the sentence after the field's name: a clause (`is 0; use 1 or more`), or,
    /// when another check's message explains it, `: ` and that message.
    pub reason: String,
}

impl FieldError {
    /// `path` followed by the clause `reason` (`is empty`).
    pub fn new(path: impl Into<String>, reason: impl fmt::Display) -> Self {
        FieldError {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// `path` refused by a check whose own message (`cause`) says why.
    pub fn because(path: impl Into<String>, cause: impl fmt::Display) -> Self {
        FieldError {
            path: path.into(),
            reason: format!(": {cause}"),
        }
    }

    /// The sentence naming the field `name` instead of its task path, e.g.
    /// `spec.shards is 0; use 1 to 1000`; other fields the reason mentions keep their task
    /// paths.
    pub fn message_naming(&self, name: &str) -> String {
        self.message_with(name, |_| None)
    }

    /// The sentence naming the field `name`, and each other field its reason mentions by
    /// `names` (given the task path; `None` keeps the path): e.g. `restore.time_window_start
    /// (5) is after restore.time_window_end (3)`.
    pub fn message_with(&self, name: &str, names: impl Fn(&str) -> Option<String>) -> String {
        let reason = name_references(&self.reason, names);
        if reason.starts_with(':') {
            format!("{name}{reason}")
        } else {
            format!("{name} {reason}")
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_naming(&format!("task field '{}'", self.path)))
    }
}

/// `reason` with each marked field reference (`{consumerGroupStrategy}`: a task path between
/// braces) named by `names`, or by its path. Braces around anything else are kept as written.
fn name_references(reason: &str, names: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let path = after.find('}').map(|close| &after[..close]);
        match path.filter(|p| is_task_path(p)) {
            Some(path) => {
                out.push_str(&names(path).unwrap_or_else(|| path.to_string()));
                rest = &after[path.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A camelCase task path such as `timeWindowEnd` or `kafka.securityProtocol`.
fn is_task_path(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_lowercase())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
}

/// The name another document gives the task field `path`, by `table` (task path prefix → name
/// there): the first prefix that is the path or ends at one of its `.`/`[` steps, with the
/// rest of the path kept (`topicMapping.orders` → `restore.topic_mapping.orders`). `None`
/// when no prefix matches.
pub fn rename(table: &[(&str, &str)], path: &str) -> Option<String> {
    table.iter().find_map(|(task, name)| {
        let rest = path.strip_prefix(task)?;
        (rest.is_empty() || rest.starts_with(['.', '['])).then(|| format!("{name}{rest}"))
    })
}

/// A task document, or a value in it, that cannot be run. The worker reports it as invalid
/// input ([`crate::exit::INVALID_INPUT`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// One field is wrong.
    #[error("invalid input: {0}")]
    Field(FieldError),
    /// The document (or the environment it is run in) is wrong as a whole.
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl TaskError {
    /// The message without its `invalid input: ` label.
    pub fn message(&self) -> String {
        match self {
            TaskError::Field(f) => f.to_string(),
            TaskError::Invalid(m) => m.clone(),
        }
    }

    /// The field refused, when one is.
    pub fn field(&self) -> Option<&FieldError> {
        match self {
            TaskError::Field(f) => Some(f),
            TaskError::Invalid(_) => None,
        }
    }

    /// The error's kind as results and JSON errors name it: always `invalid_input`.
    pub fn label(&self) -> &'static str {
        "invalid_input"
    }

    /// Always [`crate::exit::INVALID_INPUT`].
    pub fn exit_code(&self) -> i32 {
        crate::exit::INVALID_INPUT
    }
}

impl From<FieldError> for TaskError {
    fn from(e: FieldError) -> Self {
        TaskError::Field(e)
    }
}

/// Result of the contract's checks.
pub type Result<T, E = TaskError> = std::result::Result<T, E>;

/// A [`TaskError`] about `field`, followed by the clause `why`.
pub(crate) fn field_error(field: &str, why: impl fmt::Display) -> TaskError {
    TaskError::Field(FieldError::new(field, why))
}

/// A [`TaskError`] about `field`, carrying the message of the check that refused it.
pub(crate) fn field_invalid(field: &str, why: impl fmt::Display) -> TaskError {
    TaskError::Field(FieldError::because(field, why))
}
