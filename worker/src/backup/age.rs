//! Ages and periods as retention settings write them: `30d`, `12h`, `90m`, `3600s`, `2w`.

use chrono::Duration as ChronoDuration;

use crate::error::{Error, Result};

/// `30d`, `12h`, `90m`, `3600s`, `2w`.
pub fn parse_age(s: &str) -> Result<ChronoDuration> {
    let bad = || {
        Error::invalid(format!(
            "maxAge '{s}' is not a duration like 30d, 12h, 90m or 2w"
        ))
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_age("30d").ok(), ChronoDuration::try_days(30));
        assert_eq!(parse_age("12h").ok(), ChronoDuration::try_hours(12));
        assert_eq!(parse_age("2w").ok(), ChronoDuration::try_weeks(2));
        for bad in ["", "d", "10", "10y", "-1d", "0h", "1.5d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
