//! Tidemark operator library: CRD types, operator configuration, validation, the pure
//! builders of the children (Jobs, CronJobs, task ConfigMaps, worker RBAC) the controllers apply, the
//! controllers themselves, their metrics, and the operator process (`run`).

pub mod build;
pub mod config;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod run;
pub mod server;
pub mod validate;
