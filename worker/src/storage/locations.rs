//! Location strings and keys: what `--path` accepts (see the parent module's table) parsed into
//! a [`Location`], and keys normalised before they reach a backend. Errors name the location
//! with any `user:password@` part redacted.

use std::path::{Path as FsPath, PathBuf};

use super::Provider;
use crate::error::{Error, Result};

/// A parsed location string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Location {
    Local(PathBuf),
    Remote {
        provider: Provider,
        bucket: String,
        prefix: String,
    },
}

/// Shows a location with any `user:password@` part replaced, for error messages.
pub(super) fn redact(location: &str) -> String {
    if let Some((scheme, rest)) = location.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    location.to_string()
}

/// Parses a `--path` value (see the module docs for the accepted forms).
pub(super) fn parse_location(location: &str) -> Result<Location> {
    if location.trim().is_empty() {
        return Err(Error::invalid("storage location is empty"));
    }
    let Some((scheme, rest)) = location.split_once("://") else {
        return Ok(Location::Local(local_root(FsPath::new(location))?));
    };
    let provider = match scheme.to_ascii_lowercase().as_str() {
        "file" => {
            let url = url::Url::parse(location).map_err(|e| {
                Error::invalid(format!("invalid file location '{}': {e}", redact(location)))
            })?;
            let path = url
                .to_file_path()
                .ok()
                .filter(|_| url.query().is_none() && url.fragment().is_none())
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "invalid file location '{}': use file:///absolute/dir or a plain path",
                        redact(location)
                    ))
                })?;
            return Ok(Location::Local(local_root(&path)?));
        }
        "s3" => Provider::S3,
        "gs" => Provider::Gcs,
        "az" | "azure" => Provider::Azure,
        other => {
            return Err(Error::invalid(format!(
                "unsupported storage location '{}': scheme '{other}://' is not supported; use a \
                 local directory, file:///dir, s3://bucket/prefix, gs://bucket/prefix or \
                 az://container/prefix",
                redact(location)
            )))
        }
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let word = provider.bucket_word();
    if bucket.contains('@') {
        return Err(Error::invalid(format!(
            "storage location '{}' embeds credentials; pass them through the environment instead",
            redact(location)
        )));
    }
    if bucket.is_empty() {
        return Err(Error::invalid(format!(
            "storage location '{location}' has no {word} name; use {}://{word}/prefix",
            provider.scheme()
        )));
    }
    if let Some(bad) = bucket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(Error::invalid(format!(
            "storage location '{location}': {word} name '{bucket}' contains '{bad}'; {word} names \
             use letters, digits, '.', '-' and '_'"
        )));
    }
    if prefix.contains(['?', '#']) {
        return Err(Error::invalid(format!(
            "storage location '{location}' has a query or fragment; use {}://{word}/prefix",
            provider.scheme()
        )));
    }
    let prefix = normalize_key(prefix, true)
        .map_err(|e| Error::invalid(format!("storage location '{location}': {e}")))?;
    Ok(Location::Remote {
        provider,
        bucket: bucket.to_string(),
        prefix,
    })
}

/// An absolute local root (relative paths are taken from the current directory).
pub(super) fn local_root(path: &FsPath) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| {
        Error::invalid(format!(
            "invalid local storage path '{}': {e}",
            path.display()
        ))
    })
}

/// Normalises a key: leading, trailing and repeated `/` are dropped. Rejected: `.` and `..`
/// segments, control characters, `\` and `#` (reserved for local temporary files), and an empty
/// key unless `allow_empty`.
pub(super) fn normalize_key(key: &str, allow_empty: bool) -> Result<String> {
    let mut segments = Vec::new();
    for segment in key.split('/').filter(|s| !s.is_empty()) {
        if segment == "." || segment == ".." {
            return Err(Error::invalid(format!(
                "invalid storage key '{key}': '.' and '..' segments are not allowed"
            )));
        }
        if let Some(bad) = segment
            .chars()
            .find(|c| c.is_control() || matches!(c, '\\' | '#'))
        {
            return Err(Error::invalid(format!(
                "invalid storage key '{}': character {bad:?} is not allowed",
                key.escape_debug()
            )));
        }
        segments.push(segment);
    }
    if segments.is_empty() && !allow_empty {
        return Err(Error::invalid(format!(
            "invalid storage key '{key}': it is empty"
        )));
    }
    Ok(segments.join("/"))
}

/// Splits a list prefix into the directory to list (normalised) and the string keys must start
/// with.
pub(super) fn split_list_prefix(prefix: &str) -> Result<(String, String)> {
    let normalized = normalize_key(prefix, true)?;
    if normalized.is_empty() {
        return Ok((String::new(), String::new()));
    }
    if prefix.ends_with('/') {
        let filter = format!("{normalized}/");
        return Ok((normalized, filter));
    }
    let dir = normalized
        .rsplit_once('/')
        .map(|(dir, _)| dir.to_string())
        .unwrap_or_default();
    Ok((dir, normalized))
}

/// A normalised key of characters that map to the same path on every local filesystem, so a
/// file can be read or written directly instead of through object_store's path encoding.
pub(super) fn is_plain_key(key: &str) -> bool {
    key.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b'='))
}
