//! Kafka's reset-plan CSV, as written by `kafka-consumer-groups.sh --reset-offsets --export` and
//! read by `--from-file`: one `group,topic,partition,offset` line per partition, or
//! `topic,partition,offset` when exactly one group is named. Fields follow RFC 4180 (double
//! quotes around fields holding commas, quotes or line breaks), so any group id survives a round
//! trip through [`write_reset_csv`] and [`parse_reset_csv`].

use std::collections::HashMap;

use crate::reset_spec::validate_topic_name;

/// One target offset from a reset plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOffset {
    /// The consumer group id, verbatim (it may hold any character).
    pub group: String,
    /// The topic, checked against Kafka's topic-name rules.
    pub topic: String,
    /// The partition number, never negative.
    pub partition: i32,
    /// The offset to move to, never negative.
    pub offset: i64,
}

/// Parses a reset-plan CSV.
///
/// `source` names the file in messages (`plan.csv line 3: ...`). Lines are
/// `group,topic,partition,offset`; `topic,partition,offset` lines are accepted only when
/// `single_group` is given, and then belong to that group (one file uses one form throughout).
/// Rows naming other groups are returned as they are: as in Kafka, the caller keeps the rows of
/// the groups it resets.
///
/// Also accepted: RFC 4180 quoting (`"a,b"`, `"say ""hi"""`, line breaks inside quotes), CRLF
/// line ends, a UTF-8 byte-order mark, blank lines, lines starting with `#`, and one header line
/// (`group,topic,partition,offset` or `topic,partition,offset`) before the first row. Partitions
/// and offsets must be non-negative decimal numbers, topics legal Kafka topic names, group ids
/// non-empty, and each group/topic/partition may appear once. A file without rows is an error.
pub fn parse_reset_csv(
    text: &str,
    source: &str,
    single_group: Option<&str>,
) -> Result<Vec<CsvOffset>, String> {
    crate::limits::check_size(text.len(), crate::limits::MAX_CSV_BYTES)
        .map_err(|why| format!("{source}: {why}"))?;
    let records =
        split_records(text).map_err(|(line, why)| format!("{source} line {line}: {why}"))?;
    let mut rows: Vec<CsvOffset> = Vec::new();
    let mut first_line: HashMap<(String, String, i32), usize> = HashMap::new();
    // The field count of the first row, which every other row must share.
    let mut form: Option<(usize, usize)> = None;
    let mut seen_record = false;
    for Record { line, fields } in records {
        let at = |why: String| format!("{source} line {line}: {why}");
        let first_record = !seen_record;
        seen_record = true;
        if first_record && is_header(&fields) {
            continue;
        }
        let (group, rest) =
            match (fields.len(), single_group) {
                (4, _) => (fields[0].as_str(), &fields[1..]),
                (3, Some(group)) => (group, &fields[..]),
                (3, None) => return Err(at(
                    "found 3 fields (topic,partition,offset) but no group; add the group as the \
                     first field, or name exactly one group with --groups to use this form"
                        .into(),
                )),
                (n, Some(_)) => {
                    return Err(at(format!(
                        "expected 4 fields (group,topic,partition,offset) or 3 \
                     (topic,partition,offset), found {n}"
                    )))
                }
                (n, None) => {
                    return Err(at(format!(
                        "expected 4 fields (group,topic,partition,offset), found {n}"
                    )))
                }
            };
        match form {
            None => form = Some((fields.len(), line)),
            Some((n, first)) if n != fields.len() => {
                return Err(at(format!(
                    "found {} fields but line {first} has {n}; use one form throughout the file",
                    fields.len()
                )))
            }
            Some(_) => {}
        }
        if group.is_empty() {
            return Err(at("the group id is empty".into()));
        }
        let topic = rest[0].as_str();
        validate_topic_name(topic).map_err(&at)?;
        let partition = parse_number::<i32>(&rest[1], "partition").map_err(&at)?;
        let offset = parse_number::<i64>(&rest[2], "offset").map_err(&at)?;
        let key = (group.to_string(), topic.to_string(), partition);
        if let Some(first) = first_line.get(&key) {
            return Err(at(format!(
                "duplicate entry for group '{group}' topic '{topic}' partition {partition} \
                 (first on line {first})"
            )));
        }
        first_line.insert(key, line);
        rows.push(CsvOffset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
            offset,
        });
    }
    if rows.is_empty() {
        return Err(format!(
            "{source}: no offsets found (expected lines of group,topic,partition,offset)"
        ));
    }
    Ok(rows)
}

/// Writes rows in the 4-field form Kafka's `--from-file` and [`parse_reset_csv`] read: no header,
/// one `\n`-terminated line per row, fields quoted only when they need it (a comma, quote, line
/// break, leading or trailing blank, a leading `#` that would read as a comment, a leading
/// byte-order mark, or nothing at all).
///
/// Kafka's own reader splits the file on line breaks before parsing fields, so a group id holding
/// a line break is readable only by [`parse_reset_csv`].
pub fn write_reset_csv(rows: &[CsvOffset]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&quote_field(&r.group));
        out.push(',');
        out.push_str(&quote_field(&r.topic));
        out.push(',');
        out.push_str(&r.partition.to_string());
        out.push(',');
        out.push_str(&r.offset.to_string());
        out.push('\n');
    }
    out
}

/// A field as written in the CSV: verbatim, or double-quoted with inner quotes doubled.
fn quote_field(field: &str) -> String {
    let needs_quotes = field.is_empty()
        || field.starts_with(['#', '\u{feff}'])
        || field.starts_with(char::is_whitespace)
        || field.ends_with(char::is_whitespace)
        || field.contains([',', '"', '\n', '\r']);
    if needs_quotes {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// Whether the first record is one of the two header lines.
fn is_header(fields: &[String]) -> bool {
    let names: Vec<String> = fields
        .iter()
        .map(|f| f.trim().to_ascii_lowercase())
        .collect();
    names == ["group", "topic", "partition", "offset"] || names == ["topic", "partition", "offset"]
}

/// A non-negative decimal number; `what` names the field in messages.
fn parse_number<T>(text: &str, what: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + Default + std::fmt::Display,
{
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} '{text}' is not a number"));
    }
    let n: T = text
        .parse()
        .map_err(|_| format!("{what} '{text}' is out of range"))?;
    if n < T::default() {
        return Err(format!("{what} {n} is negative"));
    }
    Ok(n)
}

/// One CSV record: its fields and the 1-based line it starts on.
#[derive(Debug, PartialEq)]
struct Record {
    line: usize,
    fields: Vec<String>,
}

/// Splits the text into records with RFC 4180 quoting, dropping blank lines, `#` comment lines
/// and a byte-order mark. Errors carry the line number they are about.
fn split_records(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut r = Reader {
        chars: text.chars().peekable(),
        line: 1,
    };
    while r.chars.peek().is_some() {
        // Blank and comment lines are whole physical lines, recognised before any field.
        let mut lookahead = r.chars.clone();
        let physical: String = lookahead.by_ref().take_while(|c| *c != '\n').collect();
        if physical.trim().is_empty() || physical.starts_with('#') {
            r.chars = lookahead;
            r.line += 1;
            continue;
        }
        let start = r.line;
        let mut fields = Vec::new();
        loop {
            let field = if r.chars.peek() == Some(&'"') {
                r.quoted_field()?
            } else {
                r.unquoted_field()?
            };
            fields.push(field);
            if !r.field_separator()? {
                break;
            }
        }
        records.push(Record {
            line: start,
            fields,
        });
    }
    Ok(records)
}

/// A position in the CSV text, counting physical lines.
struct Reader<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl Reader<'_> {
    /// Whether a record ends here: at the end of the text (after an optional `\r`), or at a
    /// `\n` or `\r\n`, which is consumed.
    fn at_record_end(&mut self) -> bool {
        match self.chars.peek() {
            None => true,
            Some('\n') => {
                self.chars.next();
                self.line += 1;
                true
            }
            Some('\r') => {
                let mut after = self.chars.clone();
                after.next();
                match after.peek() {
                    None => {
                        self.chars = after;
                        true
                    }
                    Some('\n') => {
                        after.next();
                        self.chars = after;
                        self.line += 1;
                        true
                    }
                    Some(_) => false,
                }
            }
            Some(_) => false,
        }
    }

    /// After a field: `Ok(true)` for a comma (another field follows), `Ok(false)` at the end of
    /// the record.
    fn field_separator(&mut self) -> Result<bool, (usize, String)> {
        if self.at_record_end() {
            return Ok(false);
        }
        match self.chars.next() {
            Some(',') => Ok(true),
            Some(c) => Err((
                self.line,
                format!("unexpected {c:?} after a closing quote; expected ','"),
            )),
            None => Ok(false),
        }
    }

    /// A field without quotes, up to the next comma or line end.
    fn unquoted_field(&mut self) -> Result<String, (usize, String)> {
        let mut field = String::new();
        loop {
            match self.chars.peek() {
                None | Some(',' | '\n') => return Ok(field),
                Some('\r') => {
                    let mut after = self.chars.clone();
                    after.next();
                    if matches!(after.peek(), None | Some('\n')) {
                        return Ok(field);
                    }
                    field.push('\r');
                    self.chars.next();
                }
                Some('"') => {
                    return Err((
                        self.line,
                        "a '\"' inside an unquoted field; quote the whole field and double the \
                         quote (\"say \"\"hi\"\"\")"
                            .into(),
                    ))
                }
                Some(&c) => {
                    field.push(c);
                    self.chars.next();
                }
            }
        }
    }

    /// A field in double quotes, `""` standing for one quote; it may span lines.
    fn quoted_field(&mut self) -> Result<String, (usize, String)> {
        let opened = self.line;
        self.chars.next();
        let mut field = String::new();
        loop {
            match self.chars.next() {
                None => {
                    return Err((
                        opened,
                        "a quoted field is never closed (missing '\"')".into(),
                    ))
                }
                Some('"') if self.chars.peek() == Some(&'"') => {
                    self.chars.next();
                    field.push('"');
                }
                Some('"') => return Ok(field),
                Some(c) => {
                    if c == '\n' {
                        self.line += 1;
                    }
                    field.push(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, topic: &str, partition: i32, offset: i64) -> CsvOffset {
        CsvOffset {
            group: group.into(),
            topic: topic.into(),
            partition,
            offset,
        }
    }

    #[test]
    fn reads_kafkas_export() {
        let text = "my-group,orders,0,12345\nmy-group,orders,1,67890\nother,payments,0,5\n";
        assert_eq!(
            parse_reset_csv(text, "plan.csv", None),
            Ok(vec![
                row("my-group", "orders", 0, 12345),
                row("my-group", "orders", 1, 67890),
                row("other", "payments", 0, 5),
            ])
        );
    }

    #[test]
    fn three_field_lines_belong_to_the_single_group() {
        let text = "orders,0,1\norders,1,2";
        assert_eq!(
            parse_reset_csv(text, "p", Some("g")),
            Ok(vec![row("g", "orders", 0, 1), row("g", "orders", 1, 2)])
        );
        let err = parse_reset_csv(text, "plan.csv", None).expect_err("no group");
        assert!(err.starts_with("plan.csv line 1: found 3 fields"), "{err}");
        assert!(
            err.contains("name exactly one group with --groups"),
            "{err}"
        );
    }

    #[test]
    fn four_field_lines_keep_their_group_when_one_group_is_named() {
        assert_eq!(
            parse_reset_csv("a,t,0,1\nb,t,0,2\n", "p", Some("a")),
            Ok(vec![row("a", "t", 0, 1), row("b", "t", 0, 2)])
        );
    }

    #[test]
    fn blank_comment_header_crlf_and_bom_are_skipped() {
        let text = "\u{feff}# exported 2024-12-01\r\n\r\ngroup,topic,partition,offset\r\n  \r\n\
                    g,t,0,1\r\n# a note\r\ng,t,1,2\r\n\r\n";
        assert_eq!(
            parse_reset_csv(text, "p", None),
            Ok(vec![row("g", "t", 0, 1), row("g", "t", 1, 2)])
        );
        assert_eq!(
            parse_reset_csv("Topic,Partition,Offset\nt,3,9", "p", Some("g")),
            Ok(vec![row("g", "t", 3, 9)])
        );
    }

    #[test]
    fn carriage_returns_end_records_only_before_a_line_feed_or_the_end() {
        assert_eq!(
            parse_reset_csv("\"g\",t,0,\"1\"\r", "p", None),
            Ok(vec![row("g", "t", 0, 1)])
        );
        assert_eq!(
            parse_reset_csv("a\rb,t,0,1\r\n", "p", None),
            Ok(vec![row("a\rb", "t", 0, 1)])
        );
    }

    #[test]
    fn a_header_only_counts_as_the_first_record() {
        let err = parse_reset_csv("g,t,0,1\ngroup,topic,partition,offset\n", "plan.csv", None)
            .expect_err("second header");
        assert_eq!(
            err,
            "plan.csv line 2: partition 'partition' is not a number"
        );
    }

    #[test]
    fn quoted_fields_follow_rfc_4180() {
        let text =
            "\"a,b\",t,0,1\n\"say \"\"hi\"\"\",t,0,2\n\"multi\nline\",t,0,3\n\"\"\"\",t,0,4\n\
                    \"#not a comment\",t,0,5\n\"g\",\"t\",\"1\",\"6\"\n";
        assert_eq!(
            parse_reset_csv(text, "p", None),
            Ok(vec![
                row("a,b", "t", 0, 1),
                row("say \"hi\"", "t", 0, 2),
                row("multi\nline", "t", 0, 3),
                row("\"", "t", 0, 4),
                row("#not a comment", "t", 0, 5),
                row("g", "t", 1, 6),
            ])
        );
    }

    #[test]
    fn line_numbers_count_physical_lines() {
        let text = "# c\n\"two\nlines\",t,0,1\n\nx,t,0,-5\n";
        assert_eq!(
            parse_reset_csv(text, "plan.csv", None),
            Err("plan.csv line 5: offset -5 is negative".into())
        );
    }

    #[test]
    fn errors_name_source_line_and_problem() {
        let cases: [(&str, Option<&str>, &str); 16] = [
            ("g,t,0,1\ng,t,1,2\ng,t\n", None, "plan.csv line 3: expected 4 fields (group,topic,partition,offset), found 2"),
            ("g,t\n", Some("g"), "plan.csv line 1: expected 4 fields (group,topic,partition,offset) or 3 (topic,partition,offset), found 2"),
            ("g,t,0,1,9\n", None, "plan.csv line 1: expected 4 fields (group,topic,partition,offset), found 5"),
            ("g,t,x,1\n", None, "plan.csv line 1: partition 'x' is not a number"),
            ("g,t,,1\n", None, "plan.csv line 1: partition '' is not a number"),
            ("g,t, 1,1\n", None, "plan.csv line 1: partition ' 1' is not a number"),
            ("g,t,+1,1\n", None, "plan.csv line 1: partition '+1' is not a number"),
            ("g,t,-1,1\n", None, "plan.csv line 1: partition -1 is negative"),
            ("g,t,2147483648,1\n", None, "plan.csv line 1: partition '2147483648' is out of range"),
            ("g,t,0,1.5\n", None, "plan.csv line 1: offset '1.5' is not a number"),
            ("g,t,0,-5\n", None, "plan.csv line 1: offset -5 is negative"),
            ("g,t,0,9223372036854775808\n", None, "plan.csv line 1: offset '9223372036854775808' is out of range"),
            ("g,t,0,1\nh,t,0,1\ng,t,0,2\n", None, "plan.csv line 3: duplicate entry for group 'g' topic 't' partition 0 (first on line 1)"),
            (",t,0,1\n", None, "plan.csv line 1: the group id is empty"),
            ("g,t,0,1\nt,0,1\n", Some("g"), "plan.csv line 2: found 3 fields but line 1 has 4; use one form throughout the file"),
            ("g,t,0,1\n\"g\"x,t,0,1\n", None, "plan.csv line 2: unexpected 'x' after a closing quote; expected ','"),
        ];
        for (text, single, want) in cases {
            assert_eq!(
                parse_reset_csv(text, "plan.csv", single),
                Err(want.to_string()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn bad_topics_and_quotes_are_reported() {
        let err = parse_reset_csv("g,my topic,0,1\n", "plan.csv", None).expect_err("space");
        assert!(
            err.starts_with("plan.csv line 1: topic name 'my topic' contains ' '"),
            "{err}"
        );
        let err = parse_reset_csv("g,,0,1\n", "plan.csv", None).expect_err("empty topic");
        assert_eq!(err, "plan.csv line 1: the topic name is empty");
        let err = parse_reset_csv("ok,t,0,1\n\"open,t,0,1\n\n", "plan.csv", None)
            .expect_err("unterminated");
        assert_eq!(
            err,
            "plan.csv line 2: a quoted field is never closed (missing '\"')"
        );
        let err = parse_reset_csv("g\"x,t,0,1\n", "plan.csv", None).expect_err("stray quote");
        assert!(
            err.starts_with("plan.csv line 1: a '\"' inside an unquoted field"),
            "{err}"
        );
    }

    #[test]
    fn files_without_rows_are_errors() {
        for text in [
            "",
            "\n\n",
            "# only a comment\n",
            "group,topic,partition,offset\n",
            "\u{feff}",
        ] {
            assert_eq!(
                parse_reset_csv(text, "plan.csv", None),
                Err(
                    "plan.csv: no offsets found (expected lines of group,topic,partition,offset)"
                        .to_string()
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn writes_the_four_field_form_quoting_only_when_needed() {
        let rows = vec![
            row("plain-group", "orders", 0, 12345),
            row("a,b", "orders", 1, 0),
            row("say \"hi\"", "t", 2, 7),
            row("#hash", "t", 0, 1),
            row(" padded ", "t", 0, 1),
            row("", "t", 0, 1),
        ];
        assert_eq!(
            write_reset_csv(&rows),
            "plain-group,orders,0,12345\n\"a,b\",orders,1,0\n\"say \"\"hi\"\"\",t,2,7\n\
             \"#hash\",t,0,1\n\" padded \",t,0,1\n\"\",t,0,1\n"
        );
        assert_eq!(write_reset_csv(&[]), "");
    }

    #[test]
    fn round_trips_tricky_group_ids() {
        let groups = [
            "plain",
            "a,b",
            "say \"hi\"",
            "\"",
            "\"\"",
            "\",\"",
            " spaced out ",
            "\t",
            "ünïcødé 🚀 グループ",
            "#hash",
            "# hash with space",
            "multi\nline",
            "crlf\r\ninside",
            "trailing-cr\r",
            "group",
            "topic",
            "it's $HOME `x`",
            "a;b|c&d",
            "\u{feff}bom-first",
        ];
        let rows: Vec<CsvOffset> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let i = i32::try_from(i).expect("small");
                row(g, "topic.name_with-chars", i, i64::from(i) * 1_000_000_007)
            })
            .chain([
                row("group", "partition", 0, i64::MAX),
                row("g", "offset", i32::MAX, 0),
            ])
            .collect();
        let text = write_reset_csv(&rows);
        assert_eq!(
            parse_reset_csv(&text, "rt", None),
            Ok(rows.clone()),
            "{text}"
        );
        // Each row alone, so none of them depends on the row before it.
        for r in rows {
            let one = vec![r];
            assert_eq!(
                parse_reset_csv(&write_reset_csv(&one), "rt", None),
                Ok(one.clone()),
                "{one:?}"
            );
        }
    }
}
