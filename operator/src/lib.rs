//! Tidemark operator library: CRD types, operator configuration, validation, and the pure
//! builders of the children (Jobs, task ConfigMaps, worker RBAC) the controllers apply.

pub mod build;
pub mod config;
pub mod crd;
pub mod validate;
