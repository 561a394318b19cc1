//! Build: the desired state, from a validated spec, by pure functions.

pub mod schedule;
pub mod worker;
