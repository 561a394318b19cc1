//! Helpers that are not reconcile steps: digests and durations.

pub mod digest;
pub mod duration;
