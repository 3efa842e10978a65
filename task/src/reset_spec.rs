//! The user's reset parameters, read with the rules of Apache Kafka's
//! `kafka-consumer-groups.sh --reset-offsets`: `--to-datetime` (Kafka's `Utils.getDateTime`),
//! `--by-duration` (`java.time.Duration.parse`) and `--topic topic[:p,q]`. Pure functions; errors
//! are plain messages that quote the input, for the caller to prefix with the flag's name.

use chrono::{FixedOffset, NaiveDate, NaiveTime, TimeZone};

/// The accepted `--to-datetime` form, appended to every date-time error.
const DATETIME_HINT: &str =
    "expected e.g. 2024-12-01T10:00:00.000, optionally followed by Z or +01:00";

/// The accepted `--by-duration` form, appended to every duration error.
const DURATION_HINT: &str = "expected an ISO-8601 duration such as PT6H, P1DT12H or PT0.5S";

/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Parses a `--to-datetime` value into epoch milliseconds, as Kafka's `Utils.getDateTime` does:
/// `yyyy-MM-ddTHH:mm:ss.SSS` followed by an optional zone, `Z`, `+hh:mm`, `+hhmm` or `+hh` (or
/// `-`); without a zone the time is UTC.
///
/// Extension: the `.SSS` part may be left out (`2024-12-01T10:00:00`), meaning `.000`.
///
/// Stricter than Kafka where Kafka is surprising: the fraction must have exactly three digits
/// (Kafka's `SimpleDateFormat` reads `.5` as 5 ms, not 500 ms), nothing may follow the zone (Kafka
/// ignores trailing text), and times before 1970-01-01T00:00:00Z are refused (negative timestamps
/// are sentinels such as "latest" in Kafka's offset lookup).
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    let fail = |why: &str| format!("'{s}' is not a valid date-time: {why} ({DATETIME_HINT})");
    let parsed = DateTimeParts::lex(s).map_err(|why| fail(&why))?;
    parsed.to_epoch_millis().map_err(|why| fail(&why))
}

/// The fields of a `--to-datetime` value, checked only for shape.
struct DateTimeParts {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
    /// Offset east of UTC in seconds, with the zone text for messages.
    offset: Option<(i32, String)>,
}

/// A cursor over the bytes of a value being lexed.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    /// Consumes `c` if it comes next.
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes the run of ASCII digits that comes next (possibly empty).
    fn digits(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// Consumes exactly `n` digits, or fails saying what `what` should have looked like.
    fn fixed(&mut self, n: usize, what: &str) -> Result<u32, String> {
        let d = self.digits();
        if d.len() != n {
            return Err(format!("{what} must be {n} digits"));
        }
        d.parse().map_err(|_| format!("{what} must be {n} digits"))
    }

    /// Consumes `c` or fails naming the part it separates.
    fn expect(&mut self, c: u8, after: &str) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' after the {after}", c as char))
        }
    }
}

impl DateTimeParts {
    fn lex(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("it is empty".into());
        }
        let Some((date, time)) = s.split_once('T') else {
            return Err(if is_date_only(s) {
                "a date alone is not enough; add the time of day (THH:mm:ss.SSS)".into()
            } else {
                "it is not in the form yyyy-MM-ddTHH:mm:ss.SSS".into()
            });
        };
        let mut c = Cursor::new(date);
        let year = c.fixed(4, "the year")?;
        c.expect(b'-', "year")?;
        let month = c.fixed(2, "the month")?;
        c.expect(b'-', "month")?;
        let day = c.fixed(2, "the day")?;
        if !c.rest().is_empty() {
            return Err(format!("unexpected '{}' after the date", c.rest()));
        }

        let mut c = Cursor::new(time);
        let hour = c.fixed(2, "the hour")?;
        c.expect(b':', "hour")?;
        let minute = c.fixed(2, "the minute")?;
        c.expect(b':', "minute")?;
        let second = c.fixed(2, "the second")?;
        let mut millis = 0;
        if c.eat(b'.') {
            let frac = c.digits();
            if frac.len() != 3 {
                return Err(format!(
                    "the fraction '.{frac}' must have exactly 3 digits (milliseconds, e.g. .500)"
                ));
            }
            millis = frac
                .parse()
                .map_err(|_| "the fraction must be digits".to_string())?;
        }
        let offset = match c.peek() {
            None => None,
            Some(b'Z') => {
                c.pos += 1;
                Some((0, "Z".to_string()))
            }
            Some(b'+' | b'-') => Some(lex_zone(&mut c)?),
            Some(_) => return Err(format!("unexpected '{}' after the time", c.rest())),
        };
        if !c.rest().is_empty() {
            return Err(format!("unexpected '{}' after the zone", c.rest()));
        }
        Ok(DateTimeParts {
            year: i32::try_from(year).map_err(|_| "the year is out of range".to_string())?,
            month,
            day,
            hour,
            minute,
            second,
            millis,
            offset,
        })
    }

    /// Checks the fields against the calendar (chrono's) and converts to epoch milliseconds.
    fn to_epoch_millis(&self) -> Result<i64, String> {
        if !(1..=12).contains(&self.month) {
            return Err(format!("month {} is out of range 1-12", self.month));
        }
        let date = NaiveDate::from_ymd_opt(self.year, self.month, self.day).ok_or_else(|| {
            format!(
                "day {} does not exist in {:04}-{:02}",
                self.day, self.year, self.month
            )
        })?;
        if self.hour > 23 {
            return Err(format!("hour {} is out of range 0-23", self.hour));
        }
        if self.minute > 59 {
            return Err(format!("minute {} is out of range 0-59", self.minute));
        }
        if self.second > 59 {
            return Err(format!("second {} is out of range 0-59", self.second));
        }
        let time = NaiveTime::from_hms_milli_opt(self.hour, self.minute, self.second, self.millis)
            .ok_or_else(|| "the time of day is out of range".to_string())?;
        let (east, zone) = match &self.offset {
            Some((east, zone)) => (*east, zone.as_str()),
            None => (0, "Z"),
        };
        let tz = FixedOffset::east_opt(east)
            .ok_or_else(|| format!("zone offset '{zone}' is out of range"))?;
        let at = tz
            .from_local_datetime(&date.and_time(time))
            .single()
            .ok_or_else(|| "the time does not exist in its zone".to_string())?;
        let ms = at.timestamp_millis();
        if ms < 0 {
            return Err(
                "it is before 1970-01-01T00:00:00.000Z, where Kafka's record timestamps start"
                    .into(),
            );
        }
        Ok(ms)
    }
}

/// `+hh`, `+hhmm` or `+hh:mm` (or `-`): the offset east of UTC in seconds and its text.
fn lex_zone(c: &mut Cursor<'_>) -> Result<(i32, String), String> {
    let text = c.rest().to_string();
    let bad = || {
        format!("zone '{text}' is not an offset (expected Z, +hh, +hhmm or +hh:mm, e.g. +01:00)")
    };
    let negative = c.peek() == Some(b'-');
    c.pos += 1;
    let first = c.digits();
    let (hh, mm) = match (first.len(), c.eat(b':')) {
        (2, false) => (first, "00"),
        (4, false) => first.split_at(2),
        (2, true) => (first, c.digits()),
        _ => return Err(bad()),
    };
    if mm.len() != 2 || !c.rest().is_empty() {
        return Err(bad());
    }
    let hours: u32 = hh.parse().map_err(|_| bad())?;
    let minutes: u32 = mm.parse().map_err(|_| bad())?;
    if hours > 18 || minutes > 59 || (hours == 18 && minutes > 0) {
        return Err(format!(
            "zone offset '{text}' is out of range -18:00 to +18:00"
        ));
    }
    let secs = i32::try_from(hours * 3600 + minutes * 60).map_err(|_| bad())?;
    Ok((if negative { -secs } else { secs }, text))
}

/// `yyyy-MM-dd` and nothing else, to tell a missing time apart from a malformed value.
fn is_date_only(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, ch)| match i {
            4 | 7 => *ch == b'-',
            _ => ch.is_ascii_digit(),
        })
}

/// Parses a `--by-duration` value into signed milliseconds with the rules of
/// `java.time.Duration.parse`: `[+-]P[nD][T[nH][nM][n[.f]S]]`, letters in either case, each
/// number optionally signed, a fraction of up to 9 digits on the seconds only (`.` or `,`), at
/// least one component, and a `T` only when a time component follows it. Sub-millisecond parts
/// are truncated toward zero; a total beyond `i64` milliseconds is an error.
///
/// Examples: `PT0.5S` = 500, `P1DT2H` = 93 600 000, `-PT6H` = −21 600 000,
/// `PT-1H30M` = −1 800 000. Years, months and weeks (`P1Y`, `P1M`, `P1W`) are not durations in
/// Java (or Kafka) and are refused.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let fail = |why: &str| format!("'{s}' is not a valid duration: {why} ({DURATION_HINT})");
    let upper = s.to_ascii_uppercase();
    let mut c = Cursor::new(&upper);
    let negate_all = if c.eat(b'-') {
        true
    } else {
        c.eat(b'+');
        false
    };
    if !c.eat(b'P') {
        return Err(fail("it must start with P (or -P)"));
    }
    let days = component(&mut c, b'D');
    let mut hours = None;
    let mut minutes = None;
    let mut seconds = None;
    let time_part = c.eat(b'T');
    if time_part {
        hours = component(&mut c, b'H');
        minutes = component(&mut c, b'M');
        seconds = seconds_component(&mut c).map_err(|why| fail(&why))?;
    }
    if !c.rest().is_empty() {
        let rest = c.rest();
        let unit = rest
            .trim_start_matches(['+', '-'])
            .trim_start_matches(|ch: char| ch.is_ascii_digit() || ch == '.' || ch == ',');
        let why = match unit.as_bytes().first() {
            Some(b'Y' | b'W') => "years, months and weeks are not supported; use days (P7D)".into(),
            Some(b'M') if !upper.contains('T') => {
                "years, months and weeks are not supported; minutes go after T (PT1M)".into()
            }
            _ => format!("unexpected '{}'", &s[c.pos..]),
        };
        return Err(fail(&why));
    }
    if time_part && hours.is_none() && minutes.is_none() && seconds.is_none() {
        return Err(fail("'T' must be followed by hours, minutes or seconds"));
    }
    if days.is_none() && hours.is_none() && minutes.is_none() && seconds.is_none() {
        return Err(fail("it has no days, hours, minutes or seconds"));
    }

    let overflow = || fail("it is too long to count in milliseconds");
    let mut nanos: i128 = 0;
    for (text, unit_secs) in [(days, 86_400), (hours, 3_600), (minutes, 60)] {
        if let Some(text) = text {
            nanos += i128::from(parse_i64(text).ok_or_else(overflow)?) * unit_secs * 1_000_000_000;
        }
    }
    if let Some((whole, frac)) = seconds {
        let secs = i128::from(parse_i64(whole).ok_or_else(overflow)?);
        // Java: the fraction takes the sign written on the seconds, so PT-0.5S is -500 ms.
        let mut frac_nanos = 0;
        if !frac.is_empty() {
            let padded = format!("{frac:0<9}");
            frac_nanos = padded.parse::<i128>().map_err(|_| overflow())?;
        }
        if whole.starts_with('-') {
            frac_nanos = -frac_nanos;
        }
        nanos += secs * 1_000_000_000 + frac_nanos;
    }
    if negate_all {
        nanos = -nanos;
    }
    i64::try_from(nanos / 1_000_000).map_err(|_| overflow())
}

/// `[+-]digits` followed by `unit`, consumed only when the whole component is there.
fn component<'a>(c: &mut Cursor<'a>, unit: u8) -> Option<&'a str> {
    let start = c.pos;
    let number = signed_digits(c);
    if number.is_some() && c.eat(unit) {
        number
    } else {
        c.pos = start;
        None
    }
}

/// The seconds component: `[+-]digits[(.|,)digits{0,9}]S`, as (whole, fraction digits).
fn seconds_component<'a>(c: &mut Cursor<'a>) -> Result<Option<(&'a str, &'a str)>, String> {
    let start = c.pos;
    let Some(whole) = signed_digits(c) else {
        c.pos = start;
        return Ok(None);
    };
    let mut frac = "";
    if c.eat(b'.') || c.eat(b',') {
        frac = c.digits();
        if frac.len() > 9 {
            return Err("seconds take at most 9 fraction digits".into());
        }
    }
    if c.eat(b'S') {
        Ok(Some((whole, frac)))
    } else {
        c.pos = start;
        Ok(None)
    }
}

/// An optionally signed run of at least one digit.
fn signed_digits<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    let start = c.pos;
    if !c.eat(b'-') {
        c.eat(b'+');
    }
    if c.digits().is_empty() {
        c.pos = start;
        return None;
    }
    Some(&c.s[start..c.pos])
}

/// Java's `Long.parseLong` on an optionally signed digit string.
fn parse_i64(text: &str) -> Option<i64> {
    text.parse().ok()
}

/// A `--topic` argument: one topic, and the partitions named after a colon, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicScope {
    /// The topic name, checked against Kafka's rules.
    pub topic: String,
    /// `None` for every partition of the topic; otherwise sorted and without duplicates.
    pub partitions: Option<Vec<i32>>,
}

/// Parses Kafka's `--topic` syntax: `orders` (every partition) or `orders:0,1,2`.
///
/// Errors use Kafka's wording: `Invalid topic arg 'orders:', expected topic name and partitions`,
/// `Invalid partition 'x' specified in topic arg 'orders:x'`. Partition numbers must be
/// non-negative; duplicates are dropped and the list is sorted. Unlike Kafka (whose Java
/// `split` drops trailing empty strings) `orders:0,1,` is refused like `orders:0,,1`.
pub fn parse_topic_scope(arg: &str) -> Result<TopicScope, String> {
    let Some((topic, list)) = arg.split_once(':') else {
        validate_topic_name(arg).map_err(|why| format!("Invalid topic arg '{arg}': {why}"))?;
        return Ok(TopicScope {
            topic: arg.to_string(),
            partitions: None,
        });
    };
    if list.is_empty() || list.contains(':') {
        return Err(format!(
            "Invalid topic arg '{arg}', expected topic name and partitions"
        ));
    }
    validate_topic_name(topic).map_err(|why| format!("Invalid topic arg '{arg}': {why}"))?;
    let mut partitions = Vec::new();
    for p in list.split(',') {
        let invalid = || format!("Invalid partition '{p}' specified in topic arg '{arg}'");
        let n: i32 = p.parse().map_err(|_| invalid())?;
        if n < 0 {
            return Err(format!("{}: partitions are numbered from 0", invalid()));
        }
        partitions.push(n);
    }
    partitions.sort_unstable();
    partitions.dedup();
    Ok(TopicScope {
        topic: topic.to_string(),
        partitions: Some(partitions),
    })
}

/// Checks a topic name with Kafka's rules (`org.apache.kafka.common.internals.Topic.validate`):
/// 1 to 249 characters from `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!(
            "topic name '{name}' is not allowed ('.' and '..' are reserved)"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains {bad:?}; Kafka allows only ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(format!(
            "topic name '{name}' is {} characters, longer than Kafka's limit of {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch milliseconds of a UTC time, computed independently with chrono.
    fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_milli_opt(h, mi, s, ms))
            .expect("valid test date")
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn datetime_without_zone_is_utc() {
        assert_eq!(
            parse_datetime("2024-12-01T10:00:00.000"),
            Ok(utc_ms(2024, 12, 1, 10, 0, 0, 0))
        );
        assert_eq!(
            parse_datetime("2024-12-01T10:00:00.000"),
            Ok(1_733_047_200_000)
        );
        assert_eq!(
            parse_datetime("2020-11-10T16:51:38.198"),
            Ok(utc_ms(2020, 11, 10, 16, 51, 38, 198))
        );
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000"), Ok(0));
    }

    #[test]
    fn datetime_zones_in_every_kafka_form() {
        let utc = utc_ms(2020, 11, 10, 8, 51, 38, 198);
        for s in [
            "2020-11-10T16:51:38.198+08:00",
            "2020-11-10T16:51:38.198+0800",
            "2020-11-10T16:51:38.198+08",
            "2020-11-10T08:51:38.198Z",
            "2020-11-10T07:51:38.198-01:00",
            "2020-11-10T03:21:38.198-0530",
            "2020-11-10T08:51:38.198+00:00",
            "2020-11-10T08:51:38.198-00",
        ] {
            assert_eq!(parse_datetime(s), Ok(utc), "{s}");
        }
        assert_eq!(
            parse_datetime("2024-01-01T00:30:00.000+01:00"),
            Ok(utc_ms(2023, 12, 31, 23, 30, 0, 0)),
            "a zone can move the instant into the previous year"
        );
    }

    #[test]
    fn datetime_without_millis_is_accepted_as_an_extension() {
        assert_eq!(
            parse_datetime("2024-12-01T10:00:00"),
            parse_datetime("2024-12-01T10:00:00.000")
        );
        assert_eq!(
            parse_datetime("2024-12-01T10:00:00+01:00"),
            Ok(utc_ms(2024, 12, 1, 9, 0, 0, 0))
        );
        assert_eq!(
            parse_datetime("2024-12-01T10:00:00Z"),
            Ok(utc_ms(2024, 12, 1, 10, 0, 0, 0))
        );
    }

    #[test]
    fn datetime_uses_the_real_calendar() {
        assert_eq!(
            parse_datetime("2024-02-29T23:59:59.999"),
            Ok(utc_ms(2024, 2, 29, 23, 59, 59, 999))
        );
        let err = parse_datetime("2023-02-29T00:00:00.000").expect_err("not a leap year");
        assert!(err.contains("day 29 does not exist in 2023-02"), "{err}");
        let err = parse_datetime("2024-04-31T00:00:00.000").expect_err("30 days");
        assert!(err.contains("day 31 does not exist in 2024-04"), "{err}");
        let err = parse_datetime("2024-01-00T00:00:00.000").expect_err("day 0");
        assert!(err.contains("day 0 does not exist"), "{err}");
    }

    #[test]
    fn datetime_errors_quote_the_input_and_show_the_form() {
        let err = parse_datetime("2024-13-01T10:00:00.000").expect_err("month 13");
        assert_eq!(
            err,
            "'2024-13-01T10:00:00.000' is not a valid date-time: month 13 is out of range 1-12 \
             (expected e.g. 2024-12-01T10:00:00.000, optionally followed by Z or +01:00)"
        );
        let cases = [
            ("2024-00-01T10:00:00.000", "month 0 is out of range"),
            ("2024-12-01T24:00:00.000", "hour 24 is out of range 0-23"),
            ("2024-12-01T10:60:00.000", "minute 60 is out of range"),
            ("2024-12-01T10:00:60.000", "second 60 is out of range"),
            ("2024-12-01", "a date alone is not enough"),
            ("yesterday", "not in the form yyyy-MM-ddTHH:mm:ss.SSS"),
            ("", "it is empty"),
            ("  ", "it is empty"),
            (
                "2024-12-01T10:00:00.000Zjunk",
                "unexpected 'junk' after the zone",
            ),
            ("2024-12-01T10:00:00.000 ", "unexpected ' ' after the time"),
            (
                "2024-12-01T10:00:00.000UTC",
                "unexpected 'UTC' after the time",
            ),
            ("2024-12-01T10:00:00.5", "exactly 3 digits"),
            ("2024-12-01T10:00:00.1234", "exactly 3 digits"),
            ("2024-12-01T10:00:00.", "exactly 3 digits"),
            ("2024-12-01T10:00", "expected ':' after the minute"),
            ("2024-12-01T10:00:00.000+1", "zone '+1' is not an offset"),
            (
                "2024-12-01T10:00:00.000+01:0",
                "zone '+01:0' is not an offset",
            ),
            ("2024-12-01T10:00:00.000+01:00:00", "is not an offset"),
            (
                "2024-12-01T10:00:00.000+19:00",
                "out of range -18:00 to +18:00",
            ),
            ("2024-12-01T10:00:00.000+01:60", "out of range"),
            ("24-12-01T10:00:00.000", "the year must be 4 digits"),
            ("2024-1-01T10:00:00.000", "the month must be 2 digits"),
            ("2024/12/01T10:00:00.000", "expected '-' after the year"),
            ("2024-12-01 10:00:00.000", "not in the form"),
            ("2024-12-01t10:00:00.000", "not in the form"),
            ("2024-12-01TT10:00:00.000", "the hour must be 2 digits"),
            (
                "2024-12-01x T10:00:00.000",
                "unexpected 'x ' after the date",
            ),
            ("1969-12-31T23:59:59.999Z", "before 1970-01-01"),
            ("1970-01-01T00:30:00.000+01:00", "before 1970-01-01"),
            ("２０２４-12-01T10:00:00.000", "the year must be 4 digits"),
        ];
        for (input, why) in cases {
            let err = parse_datetime(input).expect_err(input);
            assert!(
                err.starts_with(&format!("'{input}' is not a valid date-time: ")),
                "{err}"
            );
            assert!(err.contains(why), "{input}: {err}");
            assert!(err.ends_with(&format!("({DATETIME_HINT})")), "{err}");
        }
    }

    #[test]
    fn duration_examples() {
        let cases = [
            ("PT0.5S", 500),
            ("P1DT2H", 93_600_000),
            ("-PT6H", -21_600_000),
            ("PT-1H30M", -1_800_000),
            ("PT6H", 21_600_000),
            ("P1D", 86_400_000),
            ("PT15M", 900_000),
            ("PT1M30S", 90_000),
            (
                "P2DT3H4M5.006S",
                2 * 86_400_000 + 3 * 3_600_000 + 4 * 60_000 + 5_006,
            ),
            ("+PT1S", 1_000),
            ("-P-1D", 86_400_000),
            ("PT+2H", 7_200_000),
            ("PT0S", 0),
            ("P0D", 0),
            ("-PT0S", 0),
        ];
        for (input, ms) in cases {
            assert_eq!(parse_duration(input), Ok(ms), "{input}");
        }
    }

    #[test]
    fn duration_letters_are_case_insensitive() {
        assert_eq!(parse_duration("p1dt2h"), Ok(93_600_000));
        assert_eq!(parse_duration("pT1m"), Ok(60_000));
        assert_eq!(parse_duration("-pt0.25s"), Ok(-250));
    }

    #[test]
    fn duration_fractions_follow_java() {
        assert_eq!(parse_duration("PT1,5S"), Ok(1_500), "comma as decimal mark");
        assert_eq!(parse_duration("PT1.S"), Ok(1_000), "empty fraction");
        assert_eq!(
            parse_duration("PT0.123456789S"),
            Ok(123),
            "9 digits, truncated"
        );
        assert_eq!(parse_duration("PT0.0009S"), Ok(0));
        assert_eq!(
            parse_duration("PT-0.5S"),
            Ok(-500),
            "the fraction takes the seconds' sign"
        );
        assert_eq!(parse_duration("-PT-0.5S"), Ok(500));
        assert_eq!(parse_duration("PT-1.5S"), Ok(-1_500));
        assert_eq!(parse_duration("PT1H-0.5S"), Ok(3_599_500));
        assert_eq!(parse_duration("-PT0.0009S"), Ok(0), "truncated toward zero");
        assert_eq!(
            parse_duration("PT-0.0019S"),
            Ok(-1),
            "truncated toward zero"
        );
    }

    #[test]
    fn duration_limits_and_overflow() {
        assert_eq!(parse_duration("PT9223372036854775.807S"), Ok(i64::MAX));
        assert_eq!(parse_duration("-PT9223372036854775.808S"), Ok(i64::MIN));
        for input in [
            "PT9223372036854775.808S",
            "P106751991167301D",
            "PT9223372036854775808S",
            "P99999999999999999999D",
            "PT2562047788015216H",
        ] {
            let err = parse_duration(input).expect_err(input);
            assert!(
                err.contains("too long to count in milliseconds"),
                "{input}: {err}"
            );
        }
    }

    #[test]
    fn duration_errors_quote_the_input() {
        let cases = [
            ("", "must start with P"),
            ("6h", "must start with P"),
            ("1D", "must start with P"),
            ("P", "no days, hours, minutes or seconds"),
            ("-P", "no days, hours, minutes or seconds"),
            ("PT", "'T' must be followed by hours, minutes or seconds"),
            ("P1DT", "'T' must be followed"),
            ("PT1H2D", "unexpected '2D'"),
            ("PT1S2M", "unexpected '2M'"),
            ("P1H", "unexpected '1H'"),
            ("PT1.5H", "unexpected '1.5H'"),
            ("PT.5S", "unexpected '.5S'"),
            ("PT0.1234567891S", "at most 9 fraction digits"),
            ("P1Y", "years, months and weeks are not supported"),
            ("P1W", "years, months and weeks are not supported"),
            ("P1M", "years, months and weeks are not supported"),
            ("P2DT1H ", "unexpected ' '"),
            (" PT1H", "must start with P"),
            ("PT1H1H", "unexpected '1H'"),
            ("P--1D", "unexpected '--1D'"),
            ("PT1e3S", "unexpected '1e3S'"),
        ];
        for (input, why) in cases {
            let err = parse_duration(input).expect_err(input);
            assert!(
                err.starts_with(&format!("'{input}' is not a valid duration: ")),
                "{err}"
            );
            assert!(err.contains(why), "{input}: {err}");
            assert!(err.ends_with(&format!("({DURATION_HINT})")), "{err}");
        }
    }

    #[test]
    fn topic_scope_forms() {
        assert_eq!(
            parse_topic_scope("orders"),
            Ok(TopicScope {
                topic: "orders".into(),
                partitions: None
            })
        );
        assert_eq!(
            parse_topic_scope("orders:2,0,1,2"),
            Ok(TopicScope {
                topic: "orders".into(),
                partitions: Some(vec![0, 1, 2])
            })
        );
        assert_eq!(
            parse_topic_scope("my.topic_v-2:7").map(|s| s.partitions),
            Ok(Some(vec![7]))
        );
        assert_eq!(
            parse_topic_scope("t:2147483647").map(|s| s.partitions),
            Ok(Some(vec![i32::MAX]))
        );
    }

    #[test]
    fn topic_scope_errors_use_kafkas_wording() {
        let cases = [
            ("orders:", "Invalid topic arg 'orders:', expected topic name and partitions"),
            ("a:0:1", "Invalid topic arg 'a:0:1', expected topic name and partitions"),
            ("orders:x", "Invalid partition 'x' specified in topic arg 'orders:x'"),
            ("orders:0,,1", "Invalid partition '' specified in topic arg 'orders:0,,1'"),
            ("orders:0,1,", "Invalid partition '' specified in topic arg 'orders:0,1,'"),
            ("orders: 1", "Invalid partition ' 1' specified in topic arg 'orders: 1'"),
            (
                "orders:2147483648",
                "Invalid partition '2147483648' specified in topic arg 'orders:2147483648'",
            ),
            (
                "orders:-1",
                "Invalid partition '-1' specified in topic arg 'orders:-1': partitions are numbered from 0",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_topic_scope(input), Err(want.to_string()), "{input}");
        }
        for (input, why) in [
            (":0", "the topic name is empty"),
            ("", "the topic name is empty"),
            ("..", "'.' and '..' are reserved"),
            (".:1", "'.' and '..' are reserved"),
            ("my topic", "contains ' '"),
            ("tópico:0", "contains 'ó'"),
        ] {
            let err = parse_topic_scope(input).expect_err(input);
            assert!(
                err.starts_with(&format!("Invalid topic arg '{input}': ")),
                "{err}"
            );
            assert!(err.contains(why), "{input}: {err}");
        }
    }

    #[test]
    fn topic_names_follow_kafkas_rules() {
        assert!(validate_topic_name("a").is_ok());
        assert!(validate_topic_name("...").is_ok());
        assert!(validate_topic_name("__consumer_offsets").is_ok());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
        let err = validate_topic_name(&"x".repeat(250)).expect_err("too long");
        assert!(err.contains("longer than Kafka's limit of 249"), "{err}");
        for bad in ["a/b", "a,b", "a:b", "a\nb", "a\"b", "é"] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
