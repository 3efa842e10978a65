//! The worker's process exit codes, named once: the worker's errors map to them, the operator
//! builds its Jobs' pod failure policies from them, and docs/cli.md#exit-codes lists them.

/// Invalid input: a flag, argument, task field, snapshot id or missing credential; nothing changed.
pub const INVALID_INPUT: i32 = 2;
/// A snapshot or backup does not exist.
pub const NOT_FOUND: i32 = 3;
/// A consumer group does not exist or has no committed offsets.
pub const GROUP_NOT_FOUND: i32 = 4;
/// Kafka could not be reached (unreachable, timeout).
pub const CONNECTION: i32 = 5;
/// SASL authentication failed.
pub const AUTHENTICATION: i32 = 6;
/// The storage is unreachable or refused the request.
pub const STORAGE: i32 = 7;
/// A snapshot, backup segment or input file could not be parsed or failed its checksum.
pub const MALFORMED: i32 = 8;
/// A Kafka request failed for another reason (e.g. not authorized).
pub const KAFKA: i32 = 9;
/// Some consumer groups failed (the others were changed), or a restore was stopped before it
/// finished.
pub const PARTIAL: i32 = 10;
/// A verification found differences (offsets, a damaged backup, a restore target holding
/// records the restore did not write).
pub const VERIFICATION_FAILED: i32 = 11;
/// A local file could not be read or written.
pub const IO: i32 = 12;
/// TLS setup or handshake failed.
pub const TLS: i32 = 13;
/// Another worker holds the lease on this backup shard or restore id, or this worker lost it.
pub const LEASE_HELD: i32 = 14;
/// An approved plan no longer matches the cluster (or its stored document is missing or does
/// not have the approved hash); nothing changed. The operator plans again.
pub const PLAN_CHANGED: i32 = 15;
/// A run stopped before it finished that resumes from its checkpoint when run again (75,
/// `EX_TEMPFAIL`): the operator's backup Jobs replace such a pod without counting a failure.
pub const INTERRUPTED: i32 = 75;

/// The codes no retry can fix (invalid input, snapshot or group not found, SASL authentication
/// failed, malformed file, verification differences, TLS setup, an approved plan the cluster no
/// longer matches): the operator's pod failure
/// policy fails the Job at once instead of spending `backoffLimit` on them.
pub const PERMANENT: [i32; 8] = [
    INVALID_INPUT,
    NOT_FOUND,
    GROUP_NOT_FOUND,
    AUTHENTICATION,
    MALFORMED,
    VERIFICATION_FAILED,
    TLS,
    PLAN_CHANGED,
];

/// [`PERMANENT`] plus [`PARTIAL`], for the kinds that change consumer offsets: their status
/// lists what failed, and running them again is a decision, not a retry.
pub const PERMANENT_OR_PARTIAL: [i32; 9] = [
    INVALID_INPUT,
    NOT_FOUND,
    GROUP_NOT_FOUND,
    AUTHENTICATION,
    MALFORMED,
    PARTIAL,
    VERIFICATION_FAILED,
    TLS,
    PLAN_CHANGED,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permanent_lists_are_sorted_and_partial_adds_only_partial() {
        assert!(PERMANENT.windows(2).all(|w| w[0] < w[1]));
        assert!(PERMANENT_OR_PARTIAL.windows(2).all(|w| w[0] < w[1]));
        let mut with_partial = PERMANENT.to_vec();
        with_partial.push(PARTIAL);
        with_partial.sort_unstable();
        assert_eq!(with_partial, PERMANENT_OR_PARTIAL);
        assert!(!PERMANENT.contains(&INTERRUPTED) && !PERMANENT.contains(&LEASE_HELD));
    }
}
