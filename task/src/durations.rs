//! Durations written as a number and a unit (`30d`, `12h`, `90m`, `3600s`, `2w`), as retention
//! and grace periods are.

use chrono::Duration as ChronoDuration;

/// `30d`, `12h`, `90m`, `3600s`, `2w`: a positive duration. The error names the value.
pub fn parse_age(s: &str) -> Result<ChronoDuration, String> {
    let bad = || format!("maxAge '{s}' is not a duration like 30d, 12h, 90m or 2w");
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let d = match unit {
        "s" => ChronoDuration::try_seconds(n),
        "m" => ChronoDuration::try_minutes(n),
        "h" => ChronoDuration::try_hours(n),
        "d" => ChronoDuration::try_days(n),
        "w" => ChronoDuration::try_weeks(n),
        _ => None,
    };
    d.filter(|d| *d > ChronoDuration::zero()).ok_or_else(bad)
}
