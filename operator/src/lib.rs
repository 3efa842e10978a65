//! Tidemark operator library: CRD types and the controllers that turn them into worker Jobs.

pub mod crd;
