//! Helpers that are not reconcile steps: digests, durations and how watches recover.

pub(crate) mod digest;
pub(crate) mod duration;
pub(crate) mod watch;
