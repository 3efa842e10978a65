//! Ids and keys: snapshot, backup, restore and chain ids, report keys, Kubernetes names.

/// Longest snapshot (and backup, restore, chain) id.
pub const MAX_ID_LEN: usize = 253;

/// Why `key` is not a report key: `/`-separated segments of letters, digits, `.`, `_` and
/// `-`, none of them `.` or `..`, at most 1024 characters.
pub fn validate_report_key(key: &str) -> std::result::Result<(), String> {
    let fine = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    if key.len() > 1024 || !key.split('/').all(fine) {
        return Err(format!(
            "is '{key}'; give a key relative to the storage such as reports/orders.json: segments of letters, digits, '.', '_' and '-' (not '.' or '..') joined by '/', at most 1024 characters"
        ));
    }
    Ok(())
}

/// Accepts ids of 1..=253 characters from `[A-Za-z0-9._-]`, starting with a letter or digit
/// and never containing `..`, so an id can never leave the snapshot folder. The error says why
/// (`snapshot id 'a..b' is invalid: it contains '..' (allowed: ...)`).
pub fn validate_id(id: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "snapshot id '{id}' is invalid: {why} (allowed: letters, digits, '.', '_', '-', starting with a letter or digit, at most {MAX_ID_LEN} characters)"
        ))
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.len() > MAX_ID_LEN {
        return bad("it is too long");
    }
    if id.contains("..") {
        return bad("it contains '..'");
    }
    if id.contains('/') || id.contains('\\') {
        return bad("it contains a path separator");
    }
    if !id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return bad("it must start with a letter or digit");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(&format!("it contains '{c}'"));
    }
    Ok(())
}
