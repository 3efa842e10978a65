//! `tidemark-operator`: the Kubernetes controller for the `tidemark.dev` custom resources.
//!
//! The controllers (KafkaBackup, KafkaRestore, KafkaOffsetReset, KafkaOffsetRollback) land in
//! their own modules; this binary currently only reports its version so the workspace, the
//! image build and the chart can be wired end to end.

fn main() {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version") | Some("version") => {
            println!("tidemark-operator {}", env!("CARGO_PKG_VERSION"));
        }
        _ => {
            eprintln!(
                "tidemark-operator {}: the controllers are not built yet; \
                 use the `tidemark` CLI for offset snapshots and rollbacks",
                env!("CARGO_PKG_VERSION")
            );
            std::process::exit(2);
        }
    }
}
