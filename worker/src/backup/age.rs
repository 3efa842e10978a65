//! Ages and periods as retention settings write them: `30d`, `12h`, `90m`, `3600s`, `2w`.

use chrono::Duration as ChronoDuration;

use crate::error::{Error, Result};

/// `30d`, `12h`, `90m`, `3600s`, `2w` (the contract's parser, with the worker's error).
pub fn parse_age(s: &str) -> Result<ChronoDuration> {
    tidemark_task::durations::parse_age(s).map_err(Error::invalid)
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
