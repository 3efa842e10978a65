//! Bash scripts that apply offsets with Kafka's own `kafka-consumer-groups.sh`, for a person to
//! review and run where only Kafka's tools may run: [`reset_script`] for a reset plan, and the
//! shared [`ToolScript`] skeleton (settings, one `run` per call, failure count, summary) that the
//! kmap restore script uses as well. Every name from the cluster goes through [`shell_quote`] in
//! commands and [`comment_safe`] in comments, so no group id can break out of either.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

/// Quotes a string for bash, so any group or topic name is passed through verbatim.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Text that is safe inside a `#` comment line: control characters, line breaks above all, are
/// written as escapes (`\n`), so the text cannot end the comment and start a command.
pub fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The tool check, counters and `run` function every generated script has after its settings.
/// `run LABEL ARGS...` calls the tool once with the connection options, ARGS and `$MODE`, shows
/// its output, and counts the call as failed when it exits non-zero or prints an `Error:` line:
/// Kafka's tool reports many failures, such as a group with active members, with
/// `Error: ...` and exit status 0.
const RUN_FUNCTION: &str = r#"
set -u
if ! command -v "$KAFKA_CONSUMER_GROUPS" >/dev/null 2>&1; then
  echo "error: $KAFKA_CONSUMER_GROUPS not found; set KAFKA_CONSUMER_GROUPS to its path" >&2
  exit 2
fi

TOTAL=0
OK=0
FAILED=0
FAILURES=()

# run LABEL ARGS...: one call of the tool with --bootstrap-server, the config options, ARGS and
# $MODE (--execute unless set). Kafka's tool can print "Error: ..." and still exit 0 (for
# example when the group has active members), so such output counts as a failure too.
run() {
  local label="$1" out rc
  shift
  TOTAL=$((TOTAL + 1))
  echo "[$TOTAL] $label"
  if [ -n "$COMMAND_CONFIG_FILE" ]; then
    set -- --command-config "$COMMAND_CONFIG_FILE" "$@"
  fi
  # shellcheck disable=SC2086 # COMMAND_CONFIG and MODE are split into options on purpose
  out="$("$KAFKA_CONSUMER_GROUPS" --bootstrap-server "$BOOTSTRAP_SERVERS" $COMMAND_CONFIG "$@" $MODE 2>&1)"
  rc=$?
  if [ -n "$out" ]; then
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
  if [ "$rc" -eq 0 ] && ! printf '%s\n' "$out" | grep -q '^Error'; then
    OK=$((OK + 1))
  else
    FAILED=$((FAILED + 1))
    FAILURES+=("$label")
    echo "    failed (exit status $rc); continuing" >&2
  fi
}

"#;

/// A bash script that calls `kafka-consumer-groups.sh` once per step and keeps going past
/// failures: built from a header, lines that call `run`, and a summary that exits 1 when any
/// call failed (2 when the tool is missing).
///
/// Overridable from the environment: `BOOTSTRAP_SERVERS`, `COMMAND_CONFIG_FILE` (a
/// `--command-config` file; set it empty for none), `COMMAND_CONFIG` (extra options, split on
/// spaces), `KAFKA_CONSUMER_GROUPS` (the tool) and `MODE` (`--execute`, or `--dry-run`).
#[derive(Debug, Clone)]
pub struct ToolScript {
    text: String,
}

impl ToolScript {
    /// Starts a script: the shebang, `header` as comment lines (made [`comment_safe`]), the
    /// stop-your-consumers warning, the settings with `bootstrap_servers` and `command_config`
    /// as defaults, the tool check and the `run` function.
    pub fn new(header: &[String], bootstrap_servers: &str, command_config: Option<&str>) -> Self {
        let mut s = ToolScript {
            text: "#!/usr/bin/env bash\n".to_string(),
        };
        for line in header {
            s.comment(line);
        }
        s.comment("");
        s.comment(
            "Stop every consumer of these groups first: Kafka refuses to reset offsets of active \
             groups.",
        );
        s.comment("To rehearse without changing anything, set MODE=\"--dry-run\".");
        // `${VAR:-'quoted'}` inside double quotes would keep the quotes, so the defaults are
        // assigned on lines of their own.
        s.line("");
        s.comment("Settings: edit them here or set them in the environment.");
        s.line("BOOTSTRAP_SERVERS=\"${BOOTSTRAP_SERVERS:-}\"");
        s.line(&format!(
            "if [ -z \"$BOOTSTRAP_SERVERS\" ]; then BOOTSTRAP_SERVERS={}; fi",
            shell_quote(bootstrap_servers)
        ));
        s.comment(
            "For SASL/TLS clusters, a client properties file passed as --command-config (empty \
             for none):",
        );
        s.line(&format!(
            "if [ -z \"${{COMMAND_CONFIG_FILE+set}}\" ]; then COMMAND_CONFIG_FILE={}; fi",
            shell_quote(command_config.unwrap_or(""))
        ));
        s.comment(
            "Further options for every call, split on spaces, e.g. \"--command-config \
             client.properties\":",
        );
        s.line("COMMAND_CONFIG=\"${COMMAND_CONFIG:-}\"");
        s.line("KAFKA_CONSUMER_GROUPS=\"${KAFKA_CONSUMER_GROUPS:-kafka-consumer-groups.sh}\"");
        s.line("MODE=\"${MODE:---execute}\"");
        s.text.push_str(RUN_FUNCTION);
        s
    }

    /// Appends `# text`, made [`comment_safe`].
    pub fn comment(&mut self, text: &str) {
        let text = comment_safe(text);
        if text.is_empty() {
            self.text.push_str("#\n");
        } else {
            self.text.push_str("# ");
            self.text.push_str(&text);
            self.text.push('\n');
        }
    }

    /// Appends bash verbatim (a function of the caller's, or a call); every value in it must
    /// already be [`shell_quote`]d.
    pub fn line(&mut self, bash: &str) {
        self.text.push_str(bash);
        self.text.push('\n');
    }

    /// Ends the script with `Summary: OK of TOTAL <noun> succeeded, FAILED failed`, the labels
    /// of the failed calls, and exit status 1 if any failed.
    pub fn finish(mut self, noun: &str) -> String {
        self.text.push_str(&format!(
            "\necho\nprintf 'Summary: %s of %s %s succeeded, %s failed\\n' \"$OK\" \"$TOTAL\" {} \"$FAILED\"\n",
            shell_quote(noun)
        ));
        self.text.push_str(
            "if [ \"$FAILED\" -gt 0 ]; then\n  printf '  failed: %s\\n' \"${FAILURES[@]}\"\n  exit 1\nfi\n",
        );
        self.text
    }
}

/// One partition of a reset: where its group's committed offset is and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptEntry {
    /// The consumer group id, verbatim.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// The committed offset when the plan was made; `None` where the group had none.
    pub current: Option<i64>,
    /// The offset the script sets with `--to-offset`.
    pub target: i64,
}

/// What the script header tells the reader, and the defaults of its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptContext {
    /// The cluster the plan was made against; the default of `BOOTSTRAP_SERVERS`.
    pub bootstrap_servers: String,
    /// How the targets were chosen, as the user asked, e.g.
    /// `--to-datetime 2024-12-01T10:00:00.000`.
    pub strategy: String,
    /// When the script was generated.
    pub generated_at: DateTime<Utc>,
    /// A client properties file for SASL/TLS clusters, passed as `--command-config`; the default
    /// of `COMMAND_CONFIG_FILE`.
    pub command_config: Option<String>,
}

/// A bash script that applies `entries` with Kafka's `kafka-consumer-groups.sh`, one call per
/// partition: `--group G --topic T:P --reset-offsets --to-offset N --execute`, each after a
/// comment showing the committed offset and the target. The header names the time, cluster,
/// strategy, groups and partition counts and says to stop every consumer first. It carries on
/// past a failed call, prints a summary and exits 1 if any call failed (see [`ToolScript`]).
///
/// The targets are the ones resolved when the plan was made; Kafka moves a `--to-offset` outside
/// the partition's current log to the log's start or end.
pub fn reset_script(entries: &[ScriptEntry], ctx: &ScriptContext) -> String {
    let mut per_group: BTreeMap<&str, usize> = BTreeMap::new();
    for e in entries {
        *per_group.entry(e.group.as_str()).or_default() += 1;
    }
    let mut header = vec![
        "Resets consumer group offsets with Kafka's kafka-consumer-groups.sh, one call per \
         partition."
            .to_string(),
        format!(
            "Generated: {}",
            ctx.generated_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        format!("Cluster: {}", ctx.bootstrap_servers),
        format!("Strategy: {}", ctx.strategy),
        format!("Groups: {}, partitions: {}", per_group.len(), entries.len()),
    ];
    for (group, n) in &per_group {
        header.push(format!(
            "  {}: {}",
            shell_quote(group),
            plural(*n, "partition")
        ));
    }
    header.push(
        "Each target was resolved when this script was generated; Kafka moves a --to-offset \
         outside"
            .to_string(),
    );
    header.push("the partition's current log to the log's start or end.".to_string());

    let mut s = ToolScript::new(
        &header,
        &ctx.bootstrap_servers,
        ctx.command_config.as_deref(),
    );
    for e in entries {
        let topic_partition = format!("{}:{}", e.topic, e.partition);
        s.comment(&format!(
            "{} {topic_partition}: {}",
            shell_quote(&e.group),
            movement(e.current, e.target)
        ));
        s.line(&format!(
            "run {} --group {} --topic {} --reset-offsets --to-offset {}",
            shell_quote(&format!("{} {topic_partition}", e.group)),
            shell_quote(&e.group),
            shell_quote(&topic_partition),
            e.target
        ));
    }
    s.finish("partition resets")
}

/// `1200 -> 1000 (back 200)`, or `no committed offset -> 1000`.
fn movement(current: Option<i64>, target: i64) -> String {
    match current {
        None => format!("no committed offset -> {target}"),
        Some(cur) => {
            let how = match target.cmp(&cur) {
                std::cmp::Ordering::Less => format!("back {}", cur.abs_diff(target)),
                std::cmp::Ordering::Greater => format!("forward {}", target.abs_diff(cur)),
                std::cmp::Ordering::Equal => "unchanged".to_string(),
            };
            format!("{cur} -> {target} ({how})")
        }
    }
}

/// `1 partition`, `3 partitions`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::{Command, Output};

    use super::*;

    /// A group id that needs every kind of quoting care.
    const NASTY: &str = r#"it's "quoted" $HOME `id` \ ; *"#;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-12-01T10:30:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn ctx(command_config: Option<&str>) -> ScriptContext {
        ScriptContext {
            bootstrap_servers: "kafka-1:9092,kafka-2:9092".into(),
            strategy: "--to-datetime 2024-12-01T10:00:00.000".into(),
            generated_at: at(),
            command_config: command_config.map(str::to_string),
        }
    }

    fn entry(
        group: &str,
        topic: &str,
        partition: i32,
        current: Option<i64>,
        target: i64,
    ) -> ScriptEntry {
        ScriptEntry {
            group: group.into(),
            topic: topic.into(),
            partition,
            current,
            target,
        }
    }

    fn entries() -> Vec<ScriptEntry> {
        vec![
            entry("orders-app", "orders", 0, Some(1200), 1000),
            entry("orders-app", "orders", 1, None, 7),
            entry(NASTY, "orders", 0, Some(5), 42),
            entry("broken", "payments", 2, Some(3), 3),
            entry("active", "payments", 0, Some(1), 9),
            entry("orders-app", "payments", 0, Some(10), 10),
        ]
    }

    /// A stand-in for `kafka-consumer-groups.sh`: appends each argument on its own line to
    /// `$FAKE_LOG` and an `--end--` line per call; exits 1 for group `$FAIL_GROUP`, and for group
    /// `$ACTIVE_GROUP` prints Kafka's inactive-group error and exits 0, as the real tool does.
    const FAKE_TOOL: &str = r#"#!/usr/bin/env bash
for a in "$@"; do printf '%s\n' "$a" >> "$FAKE_LOG"; done
echo '--end--' >> "$FAKE_LOG"
group=''; prev=''
for a in "$@"; do
  if [ "$prev" = --group ]; then group="$a"; fi
  prev="$a"
done
if [ "$group" = "${FAIL_GROUP:-}" ]; then
  echo "boom: cannot reach the cluster" >&2
  exit 1
fi
if [ "$group" = "${ACTIVE_GROUP:-}" ]; then
  printf '\nError: Assignments can only be reset if the group '\''%s'\'' is inactive, but the current state is Stable.\n' "$group"
  exit 0
fi
printf '\nGROUP TOPIC PARTITION NEW-OFFSET\n'
exit 0
"#;

    /// Writes the script and the stand-in tool (as `kafka-consumer-groups.sh` in `bin/`).
    fn setup(dir: &Path, script: &str) {
        std::fs::write(dir.join("reset.sh"), script).expect("write script");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        let tool = bin.join("kafka-consumer-groups.sh");
        std::fs::write(&tool, FAKE_TOOL).expect("write tool");
        let status = Command::new("chmod")
            .arg("+x")
            .arg(&tool)
            .status()
            .expect("chmod");
        assert!(status.success());
    }

    /// Runs the script with bash and a clean set of the script's settings.
    fn run_script(dir: &Path, env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("bash");
        cmd.arg(dir.join("reset.sh"))
            .env("PATH", path)
            .env("FAKE_LOG", dir.join("calls.log"))
            .env("HOME", "/home/should-not-expand");
        for var in [
            "BOOTSTRAP_SERVERS",
            "COMMAND_CONFIG",
            "COMMAND_CONFIG_FILE",
            "KAFKA_CONSUMER_GROUPS",
            "MODE",
            "FAIL_GROUP",
            "ACTIVE_GROUP",
        ] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run bash")
    }

    /// The logged calls, each as its list of arguments.
    fn calls(dir: &Path) -> Vec<Vec<String>> {
        let log = std::fs::read_to_string(dir.join("calls.log")).unwrap_or_default();
        let mut out = vec![];
        let mut cur = vec![];
        for line in log.lines() {
            if line == "--end--" {
                out.push(std::mem::take(&mut cur));
            } else {
                cur.push(line.to_string());
            }
        }
        out
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quoting_survives_bash_for_every_character() {
        for s in [
            "",
            "plain",
            "it's",
            "''",
            r#""$HOME" `x` $(y) \n"#,
            "a\nb",
            "ü 🚀",
        ] {
            let out = Command::new("bash")
                .arg("-c")
                .arg(format!("printf '%s' {}", shell_quote(s)))
                .output()
                .expect("bash");
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }

    #[test]
    fn comments_cannot_be_broken_out_of() {
        assert_eq!(comment_safe("a\nrm -rf /\r\tz"), r"a\nrm -rf /\r\tz");
        assert_eq!(comment_safe("ü 'x' $HOME"), "ü 'x' $HOME");
    }

    #[test]
    fn header_names_time_cluster_strategy_groups_and_the_warning() {
        let s = reset_script(&entries(), &ctx(None));
        assert!(
            s.starts_with("#!/usr/bin/env bash\n# Resets consumer group offsets"),
            "{s}"
        );
        for want in [
            "# Generated: 2024-12-01T10:30:00Z\n",
            "# Cluster: kafka-1:9092,kafka-2:9092\n",
            "# Strategy: --to-datetime 2024-12-01T10:00:00.000\n",
            "# Groups: 4, partitions: 6\n",
            "#   'orders-app': 3 partitions\n",
            "#   'broken': 1 partition\n",
            "# Stop every consumer of these groups first",
            "KAFKA_CONSUMER_GROUPS=\"${KAFKA_CONSUMER_GROUPS:-kafka-consumer-groups.sh}\"\n",
            "then BOOTSTRAP_SERVERS='kafka-1:9092,kafka-2:9092'; fi\n",
            "# 'orders-app' orders:0: 1200 -> 1000 (back 200)\n",
            "run 'orders-app orders:0' --group 'orders-app' --topic 'orders:0' --reset-offsets \
             --to-offset 1000\n",
            "# 'orders-app' orders:1: no committed offset -> 7\n",
            "# 'broken' payments:2: 3 -> 3 (unchanged)\n",
            "# 'active' payments:0: 1 -> 9 (forward 8)\n",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
    }

    #[test]
    fn script_is_valid_bash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut many = entries();
        many.push(entry("line\nbreak", "t", 0, None, 0));
        let s = reset_script(&many, &ctx(Some("/etc/kafka/it's client.properties")));
        std::fs::write(dir.path().join("reset.sh"), &s).expect("write");
        let out = Command::new("bash")
            .arg("-n")
            .arg(dir.path().join("reset.sh"))
            .output()
            .expect("bash -n");
        assert!(
            out.status.success(),
            "{}\n{s}",
            String::from_utf8_lossy(&out.stderr)
        );
        let empty = reset_script(&[], &ctx(None));
        std::fs::write(dir.path().join("empty.sh"), &empty).expect("write");
        let out = Command::new("bash")
            .arg("-n")
            .arg(dir.path().join("empty.sh"))
            .output()
            .expect("bash -n");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn runs_every_call_with_exact_arguments_and_counts_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = "/etc/kafka/my client's.properties";
        setup(dir.path(), &reset_script(&entries(), &ctx(Some(config))));
        let out = run_script(
            dir.path(),
            &[
                ("BOOTSTRAP_SERVERS", "target:9092"),
                ("FAIL_GROUP", "broken"),
                ("ACTIVE_GROUP", "active"),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");

        let conn = [
            "--bootstrap-server",
            "target:9092",
            "--command-config",
            config,
        ];
        let call = |group: &str, tp: &str, target: &str| {
            let mut v = args(&conn);
            v.extend(args(&[
                "--group",
                group,
                "--topic",
                tp,
                "--reset-offsets",
                "--to-offset",
                target,
                "--execute",
            ]));
            v
        };
        assert_eq!(
            calls(dir.path()),
            vec![
                call("orders-app", "orders:0", "1000"),
                call("orders-app", "orders:1", "7"),
                call(NASTY, "orders:0", "42"),
                call("broken", "payments:2", "3"),
                call("active", "payments:0", "9"),
                call("orders-app", "payments:0", "10"),
            ]
        );
        assert!(
            stdout.contains("Summary: 4 of 6 partition resets succeeded, 2 failed\n"),
            "{stdout}"
        );
        assert!(stdout.contains("  failed: broken payments:2\n"), "{stdout}");
        assert!(stdout.contains("  failed: active payments:0\n"), "{stdout}");
        assert!(
            stdout.contains(&format!("[3] {NASTY} orders:0\n")),
            "{stdout}"
        );
        assert!(
            stdout.contains("    Error: Assignments can only be reset if the group 'active'"),
            "the tool's output is shown: {stdout}"
        );
        assert!(
            stderr.contains("failed (exit status 1); continuing"),
            "{stderr}"
        );
        assert!(
            stderr.contains("failed (exit status 0); continuing"),
            "{stderr}"
        );
    }

    #[test]
    fn defaults_come_from_the_context_and_settings_from_the_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = [entry("g", "t", 3, Some(1), 0)];
        setup(dir.path(), &reset_script(&one, &ctx(None)));
        let out = run_script(dir.path(), &[]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("Summary: 1 of 1 partition resets succeeded, 0 failed"),
            "{stdout}"
        );
        let base = args(&[
            "--group",
            "g",
            "--topic",
            "t:3",
            "--reset-offsets",
            "--to-offset",
            "0",
        ]);
        let mut want = args(&["--bootstrap-server", "kafka-1:9092,kafka-2:9092"]);
        want.extend(base.clone());
        want.push("--execute".into());
        assert_eq!(calls(dir.path()), vec![want]);

        // The tool by path, a properties file, extra options and a rehearsal.
        std::fs::remove_file(dir.path().join("calls.log")).expect("clear log");
        let tool = dir.path().join("bin/kafka-consumer-groups.sh");
        let tool = tool.to_str().expect("utf8");
        let out = run_script(
            dir.path(),
            &[
                ("PATH", "/usr/bin:/bin"),
                ("KAFKA_CONSUMER_GROUPS", tool),
                ("COMMAND_CONFIG_FILE", "/tmp/a b.properties"),
                ("COMMAND_CONFIG", "--timeout 60000"),
                ("MODE", "--dry-run"),
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let mut want = args(&[
            "--bootstrap-server",
            "kafka-1:9092,kafka-2:9092",
            "--timeout",
            "60000",
            "--command-config",
            "/tmp/a b.properties",
        ]);
        want.extend(base);
        want.push("--dry-run".into());
        assert_eq!(calls(dir.path()), vec![want]);
    }

    #[test]
    fn an_empty_command_config_file_setting_turns_the_default_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        setup(
            dir.path(),
            &reset_script(&[entry("g", "t", 0, None, 1)], &ctx(Some("/x.properties"))),
        );
        let out = run_script(dir.path(), &[("COMMAND_CONFIG_FILE", "")]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let got = calls(dir.path());
        assert_eq!(got.len(), 1);
        assert!(!got[0].contains(&"--command-config".to_string()), "{got:?}");
    }

    #[test]
    fn a_missing_tool_stops_before_any_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        setup(dir.path(), &reset_script(&entries(), &ctx(None)));
        let out = run_script(
            dir.path(),
            &[("KAFKA_CONSUMER_GROUPS", "/nonexistent/kcg.sh")],
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/kcg.sh not found"));
        assert!(calls(dir.path()).is_empty());
    }

    #[test]
    fn names_with_line_breaks_cannot_inject_commands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let evil = "x\nexit 7\n";
        let ctx = ScriptContext {
            bootstrap_servers: "k:9092\nexit 8".into(),
            strategy: "--to-offset 1\nexit 9".into(),
            ..ctx(None)
        };
        let script = reset_script(&[entry(evil, "t", 0, Some(0), 1)], &ctx);
        setup(dir.path(), &script);
        let out = run_script(dir.path(), &[]);
        assert_eq!(out.status.code(), Some(0), "{out:?}\n{script}");
        assert!(
            script.contains("# Strategy: --to-offset 1\\nexit 9\n"),
            "{script}"
        );
        let log = std::fs::read_to_string(dir.path().join("calls.log")).expect("log");
        assert!(
            log.contains("--bootstrap-server\nk:9092\nexit 8\n--group\nx\nexit 7\n\n--topic\n"),
            "{log}"
        );
    }
}
