//! Reset specs (datetimes, ISO-8601 durations, topic scopes, topic names): part of the task
//! contract ([`tidemark_task::reset_spec`]), which validates them in reset tasks.

pub use tidemark_task::reset_spec::*;
