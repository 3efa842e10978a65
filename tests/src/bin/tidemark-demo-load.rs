//! Load generator for the demo and for manual experiments: creates topics with records and
//! moves consumer-group offsets, through real Kafka clients.
//!
//! ```text
//! tidemark-demo-load fill   BOOTSTRAP TOPIC PARTITIONS RECORDS_PER_PARTITION
//! tidemark-demo-load commit BOOTSTRAP GROUP TOPIC:PARTITION=OFFSET...
//! ```

use std::process::ExitCode;
use std::time::Duration;

use tidemark::kafka::{CommittedOffset, GroupAdmin, KafkaConfig};

const USAGE: &str = "usage:\n  tidemark-demo-load fill BOOTSTRAP TOPIC PARTITIONS RECORDS_PER_PARTITION\n  tidemark-demo-load commit BOOTSTRAP GROUP TOPIC:PARTITION=OFFSET...";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("fill") if args.len() == 5 => {
            let partitions: i32 = args[3]
                .parse()
                .map_err(|_| format!("bad partition count '{}'", args[3]))?;
            let records: usize = args[4]
                .parse()
                .map_err(|_| format!("bad record count '{}'", args[4]))?;
            tidemark_tests::create_and_fill(&args[1], &args[2], partitions, records).await;
            println!(
                "created topic {} with {partitions} partitions x {records} records",
                args[2]
            );
            Ok(())
        }
        Some("commit") if args.len() >= 4 => {
            let offsets = args[3..]
                .iter()
                .map(|spec| parse_commit(spec))
                .collect::<Result<Vec<_>, _>>()?;
            let mut cfg = KafkaConfig::new(args[1].clone());
            cfg.request_timeout = Duration::from_secs(10);
            let admin = GroupAdmin::connect(&cfg).await.map_err(|e| e.to_string())?;
            let failures = admin
                .alter_offsets(&args[2], &offsets)
                .await
                .map_err(|e| e.to_string())?;
            if !failures.is_empty() {
                return Err(format!("partition failures: {failures:?}"));
            }
            println!("group {}: committed {} offset(s)", args[2], offsets.len());
            Ok(())
        }
        _ => Err("unknown or incomplete command".into()),
    }
}

fn parse_commit(spec: &str) -> Result<CommittedOffset, String> {
    let bad = || format!("'{spec}' is not TOPIC:PARTITION=OFFSET");
    let (tp, offset) = spec.rsplit_once('=').ok_or_else(bad)?;
    let (topic, partition) = tp.rsplit_once(':').ok_or_else(bad)?;
    Ok(CommittedOffset {
        topic: topic.to_string(),
        partition: partition.parse().map_err(|_| bad())?,
        offset: offset.parse().map_err(|_| bad())?,
        metadata: String::new(),
    })
}
