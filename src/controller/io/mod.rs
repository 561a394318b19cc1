//! The I/O steps of a reconcile: [`schedule_sync`] (Temporal, through the `Schedules` trait)
//! and [`k8s`] (status, Events, the worker Deployment), [`worker_versions`] (a versioned
//! worker's Deployments and Temporal Worker Deployment). The pure steps never call these.

pub(crate) mod dry_run;
pub(crate) mod k8s;
pub(crate) mod requests;
pub(crate) mod rollout_gate;
pub(crate) mod rollout_requests;
pub(crate) mod schedule_sync;
pub(crate) mod sweep;
pub(crate) mod worker_versions;

pub(crate) use crate::operator::events::Notice;
