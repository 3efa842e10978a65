//! Topic selection by name, glob or `~regex`: part of the task contract
//! ([`tidemark_task::topics`]), shared with the operator.

pub use tidemark_task::topics::*;
