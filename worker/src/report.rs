//! Text rendering for reports: the 80-column boxed style, plain tables, and number
//! formatting. JSON reports are the serde form of the report structs.

use std::fmt::Write as _;

/// Inner width of a box (80 columns with the borders).
pub const INNER: usize = 78;

/// Builds an 80-column box made of `║` lines with `╠═╣` and `╟─╢` separators.
#[derive(Debug, Default)]
pub struct BoxReport {
    lines: Vec<Line>,
}

#[derive(Debug)]
enum Line {
    Title(String),
    Text(String),
    Heavy,
    Light,
}

impl BoxReport {
    /// A box whose first row is `title`, centred.
    pub fn new(title: &str) -> Self {
        BoxReport {
            lines: vec![Line::Title(title.to_string()), Line::Heavy],
        }
    }

    /// A left-aligned row, truncated with `...` when too long.
    pub fn line(&mut self, text: impl Into<String>) -> &mut Self {
        self.lines.push(Line::Text(text.into()));
        self
    }

    /// A `label: value` row with the value starting at a fixed column.
    pub fn field(&mut self, label: &str, value: impl std::fmt::Display) -> &mut Self {
        self.line(format!("  {:<20}{}", format!("{label}: "), value))
    }

    /// A thin separator.
    pub fn light(&mut self) -> &mut Self {
        self.lines.push(Line::Light);
        self
    }

    /// A thick separator.
    pub fn heavy(&mut self) -> &mut Self {
        self.lines.push(Line::Heavy);
        self
    }

    /// The finished box.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "╔{}╗", "═".repeat(INNER));
        for l in &self.lines {
            match l {
                Line::Title(t) => {
                    let t = truncate(t, INNER);
                    let w = t.chars().count();
                    let left = (INNER - w) / 2;
                    let _ = writeln!(
                        out,
                        "║{}{}{}║",
                        " ".repeat(left),
                        t,
                        " ".repeat(INNER - w - left)
                    );
                }
                Line::Text(t) => {
                    let t = truncate(&format!(" {t}"), INNER);
                    let _ = writeln!(out, "║{}{}║", t, " ".repeat(INNER - t.chars().count()));
                }
                Line::Heavy => {
                    let _ = writeln!(out, "╠{}╣", "═".repeat(INNER));
                }
                Line::Light => {
                    let _ = writeln!(out, "╟{}╢", "─".repeat(INNER));
                }
            }
        }
        let _ = writeln!(out, "╚{}╝", "═".repeat(INNER));
        out
    }
}

/// Cuts `s` to `max` characters, ending in `...` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep = max.saturating_sub(3);
    let mut out: String = s.chars().take(keep).collect();
    out.push_str("...");
    out
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: impl Into<i128>) -> String {
    let n: i128 = n.into();
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Formats an optional offset, `-` when absent.
pub fn opt_offset(o: Option<i64>) -> String {
    o.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Draws a progress bar on stderr until the returned flag is set. `read` gives the total, the
/// position and the message, polled five times a second.
pub fn spawn_progress_bar(
    read: impl Fn() -> (u64, u64, String) + Send + 'static,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<()>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&done);
    let handle = tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        loop {
            let (total, position, message) = read();
            bar.set_length(total.max(1));
            bar.set_position(position.min(total));
            bar.set_message(message);
            if flag.load(Ordering::SeqCst) {
                bar.finish_and_clear();
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    (done, handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_box_line_is_80_columns() {
        let mut b = BoxReport::new("ROLLBACK RESULT");
        b.line("Status: ✓ SUCCESS")
            .light()
            .field("Groups Rolled Back", 3)
            .line("x".repeat(200))
            .heavy();
        let text = b.render();
        for line in text.lines() {
            assert_eq!(line.chars().count(), 80, "{line}");
        }
        assert!(text.contains("║   Groups Rolled Back: 3"));
        assert!(text.contains("xxx..."));
    }

    #[test]
    fn number_formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1250), "1,250");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(opt_offset(None), "-");
        assert_eq!(truncate("abcdef", 5), "ab...");
    }
}
