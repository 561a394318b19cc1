//! What a DurableJob's spec asks for, below everything that acts on it: the spec validated
//! ([`validate`]) and the Temporal schedule built from it ([`schedule`]: the desired schedule,
//! its location, owner and memo). The controller, the Temporal layer and the runner's
//! authorization all import these; nothing here imports them. Pure.

pub mod schedule;
pub mod validate;
