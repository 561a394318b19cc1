//! What a DurableJob's spec asks for, below everything that acts on it: the spec validated
//! ([`validate`]) and the Temporal schedule built from it ([`schedule`]: the desired schedule,
//! its location, owner and memo), the times that schedule runs ([`slots`], as Temporal computes
//! them), and the names of a user worker's versions
//! ([`worker_version`]: Temporal deployment name, build id, version Deployment). The controller, the Temporal layer and the runner's
//! authorization all import these; nothing here imports them. Pure.

pub mod schedule;
pub mod slots;
pub mod validate;
pub mod worker_version;
