//! `tidemark drill`: the drill configuration and its flags to a task, the drill of
//! [`crate::drill`], the report printed (also when the drill failed: its exit code says so).

use super::{print_json, DrillArgs, Format};
use crate::drill::config::{parse_config, DrillOverrides};
use crate::error::Result;
use crate::service::signals::stop_on_signal;

/// `drill`.
pub async fn drill(a: DrillArgs) -> Result<i32> {
    let text = crate::limits::read_text_limited(&a.config, crate::limits::MAX_CONFIG_BYTES)?;
    let overrides = DrillOverrides {
        backup_id: a.backup_id.clone(),
        prefix: a.prefix.clone(),
        drill_id: a.drill_id.clone(),
    };
    let c = parse_config(&text, &a.config.display().to_string(), &overrides, |v| {
        std::env::var(v).ok()
    })?;
    let mut task = c.task;
    for (k, v) in crate::kafka::config::parse_properties(&a.kafka_properties)? {
        task.kafka.properties.insert(k, v);
    }
    task.kafka.tls_insecure_skip_verify |= a.insecure_skip_tls_verify;
    task.validate()?;
    let report = crate::drill::run_drill(&task, c.credentials, stop_on_signal()).await?;
    if let Some(e) = &report.error {
        eprintln!("Error: {}", e.message);
    }
    match a.format.format {
        Format::Json => print_json(&report)?,
        Format::Text => print!("{}", report.text()),
    }
    Ok(report.exit_code())
}
