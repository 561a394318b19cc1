//! Build: the desired state, from a validated spec, by pure functions.

pub(crate) mod calendars;
pub(crate) mod schedule;
pub(crate) mod worker;
