//! The operator process (`tidemark-operator run`): JSON logs, configuration from the
//! environment, the HTTP server (health, readiness, metrics), a check that the CRDs are served
//! (exit with an install hint if not), leader election on a Lease so that only one replica runs
//! the controllers, and a graceful shutdown on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use prometheus_client::registry::Registry;
use tokio::sync::{oneshot, watch};

use crate::config::{ConfigError, OperatorConfig};
use crate::controller::{self, Context};
use crate::metrics::Metrics;
use crate::server;

/// Name of the leader-election Lease, in the operator's namespace.
pub const LEASE_NAME: &str = "tidemark-operator";
/// Namespace of the Lease (set from the pod's namespace by the manifests).
pub const ENV_POD_NAMESPACE: &str = "POD_NAMESPACE";
/// Identity in the Lease (default: the host name, i.e. the pod name).
pub const ENV_POD_NAME: &str = "POD_NAME";
/// Listen address of the health/metrics server (default `0.0.0.0:8080`).
pub const ENV_HTTP_ADDRESS: &str = "TIDEMARK_HTTP_ADDRESS";
/// `json` (default) or `text` logs.
pub const ENV_LOG_FORMAT: &str = "TIDEMARK_LOG_FORMAT";
/// How to install the CRDs, for the error when they are missing.
pub const INSTALL_HINT: &str =
    "install them first: kubectl apply -k config/crd (or kubectl apply -f crds/), or install the Helm chart";
/// How long to wait for an installed CRD to become Established.
const CRD_WAIT: Duration = Duration::from_secs(60);
/// Lease validity and renewal margin, in seconds.
const LEASE_DURATION: u64 = 15;
const LEASE_GRACE: u64 = 5;

/// Why the process stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("failed to create a Kubernetes client (in-cluster or from KUBECONFIG)")]
    Client(#[source] kube::Error),
    #[error("invalid {ENV_HTTP_ADDRESS} '{0}': expected host:port")]
    Address(String),
    #[error("failed to listen on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the CRD {name} is not installed; {INSTALL_HINT}")]
    CrdMissing { name: String },
    #[error("the CRD {name} is not established after {} s; check `kubectl describe crd {name}`", CRD_WAIT.as_secs())]
    CrdNotEstablished { name: String },
    #[error("failed to read the CRD {name}")]
    CrdRead {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("leader election failed")]
    Lease(#[source] kube_lease_manager::LeaseManagerError),
    #[error("lost the leader-election Lease; exiting so that a restart campaigns again")]
    LostLeadership,
}

/// Installs the global tracing subscriber: JSON lines (or text with `TIDEMARK_LOG_FORMAT=text`),
/// filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let text = std::env::var(ENV_LOG_FORMAT).is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let result = if text {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    };
    if let Err(error) = result {
        eprintln!("warning: logging was already initialized: {error}");
    }
}

/// Runs the operator until SIGTERM/Ctrl-C (`Ok`) or a fatal error.
pub async fn run() -> Result<(), RunError> {
    let config = OperatorConfig::from_env()?;
    let address_text =
        std::env::var(ENV_HTTP_ADDRESS).unwrap_or_else(|_| server::DEFAULT_ADDRESS.to_string());
    let address: SocketAddr = address_text
        .parse()
        .map_err(|_| RunError::Address(address_text.clone()))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(forward_signals(stop_tx));

    let mut registry = Registry::default();
    let metrics = Arc::new(
        Metrics::default()
            .register(&mut registry)
            .init_kinds(&controller::KINDS),
    );
    let state = Arc::new(server::State::new(registry));
    let listener = server::bind(address)
        .await
        .map_err(|source| RunError::Listen { address, source })?;
    let http = tokio::spawn(server::serve(listener, state.clone(), stop_rx.clone()));
    tracing::info!(%address, version = env!("CARGO_PKG_VERSION"), "tidemark-operator starting");

    let client = Client::try_default().await.map_err(RunError::Client)?;
    for crd in crate::crd::all() {
        if let Some(name) = crd.metadata.name {
            wait_for_crd(&client, &name).await?;
        }
    }
    state.set_ready(true);

    let namespace = std::env::var(ENV_POD_NAMESPACE)
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let reporter: kube::runtime::events::Reporter = "tidemark-operator".into();
    let identity = std::env::var(ENV_POD_NAME)
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| reporter.instance.clone())
        .unwrap_or_else(|| format!("tidemark-operator-{}", std::process::id()));
    tracing::info!(
        watch_namespaces = %if config.watch_namespaces.is_empty() {
            "(all)".to_string()
        } else {
            config.watch_namespaces.join(",")
        },
        lease = %format!("{namespace}/{LEASE_NAME}"),
        identity = %identity,
        "waiting for leadership"
    );
    let manager = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(LEASE_DURATION)
        .with_grace(LEASE_GRACE)
        .build()
        .await
        .map_err(RunError::Lease)?;
    let (leader, lease_task) = manager.watch().await;

    let ctx = Arc::new(Context::new(client, config, metrics, reporter));
    let outcome = lead(ctx, leader, stop_rx.clone()).await;

    // `lead` dropped the leadership channel: the lease task releases the Lease and ends.
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Err(error))) => tracing::warn!(%error, "failed to release the Lease"),
        Ok(Err(error)) => tracing::warn!(%error, "the lease task failed"),
        Err(_) => tracing::warn!("the Lease was not released in time"),
        Ok(Ok(Ok(_))) => tracing::info!("released the Lease"),
    }
    state.set_ready(false);
    let _ = http.await;
    tracing::info!("tidemark-operator stopped");
    outcome
}

/// Waits until leader, then runs the controllers until shutdown (`Ok`) or until leadership is
/// lost (`Err`).
async fn lead(
    ctx: Arc<Context>,
    mut leader: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    tokio::select! {
        became = leader.wait_for(|is| *is) => if became.is_err() {
            return Err(RunError::LostLeadership);
        },
        _ = stop.wait_for(|s| *s) => return Ok(()),
    }
    tracing::info!("became the leader; starting the controllers");
    let lost = Arc::new(AtomicBool::new(false));
    let (trigger, triggered) = oneshot::channel::<()>();
    let watchdog = {
        let lost = lost.clone();
        let mut leader = leader.clone();
        tokio::spawn(async move {
            tokio::select! {
                // Losing the Lease, or the lease task ending, stops the controllers.
                _ = leader.wait_for(|is| !*is) => lost.store(true, Ordering::Relaxed),
                _ = stop.wait_for(|s| *s) => {}
            }
            let _ = trigger.send(());
        })
    };
    controller::run(ctx, async move {
        let _ = triggered.await;
    })
    .await;
    watchdog.abort();
    drop(leader);
    if lost.load(Ordering::Relaxed) {
        tracing::error!("lost leadership; stopping");
        Err(RunError::LostLeadership)
    } else {
        tracing::info!("controllers stopped");
        Ok(())
    }
}

/// Fires `stop` on SIGTERM or Ctrl-C.
async fn forward_signals(stop: watch::Sender<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the operator");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop.send(true);
}

/// Returns once the CRD `name` is served (Established); a missing CRD is an immediate error
/// with an install hint.
async fn wait_for_crd(client: &Client, name: &str) -> Result<(), RunError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + CRD_WAIT;
    loop {
        let crd = api
            .get_opt(name)
            .await
            .map_err(|source| RunError::CrdRead {
                name: name.to_string(),
                source,
            })?;
        let Some(crd) = crd else {
            return Err(RunError::CrdMissing {
                name: name.to_string(),
            });
        };
        if established(&crd) {
            tracing::info!(crd = name, "CRD is served");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RunError::CrdNotEstablished {
                name: name.to_string(),
            });
        }
        tracing::info!(crd = name, "waiting for the CRD to be established");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Whether the CRD's `Established` condition is `True`.
pub fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_crd_names_the_install_command() {
        let e = RunError::CrdMissing {
            name: "kafkaoffsetrollbacks.tidemark.dev".into(),
        };
        assert!(e.to_string().contains("kubectl apply -k config/crd"), "{e}");
    }

    #[test]
    fn every_served_crd_has_a_controller() {
        let mut served: Vec<String> = crate::crd::all()
            .into_iter()
            .map(|crd| crd.spec.names.kind)
            .collect();
        served.sort();
        assert_eq!(served, controller::KINDS);
    }

    #[test]
    fn established_reads_the_condition() {
        let mut crd = crate::crd::all().remove(0);
        assert!(!established(&crd));
        crd.status = Some(serde_json::from_value(serde_json::json!({
            "conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": ""}]
        })).expect("status"));
        assert!(established(&crd));
    }
}
