//! Kafka's reset CSV: part of the task contract ([`tidemark_task::reset_csv`]), which validates
//! it in reset tasks.

pub use tidemark_task::reset_csv::*;
