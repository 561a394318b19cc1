//! Helpers that are not reconcile steps: digests and durations.

pub(crate) mod digest;
pub(crate) mod duration;
