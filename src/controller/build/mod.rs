//! Build: the controller's own desired state (the worker Deployment, the calendars a spec
//! excludes), from a validated spec, by pure functions. The desired schedule is built in
//! [`crate::desired::schedule`], which the runner and the Temporal layer share.

pub(crate) mod calendars;
pub(crate) mod worker;
