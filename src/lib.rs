#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
//! durablejob: Kubernetes CronJob replacements driven by Temporal schedules.
//!
//! What a spec asks for (validated, and the schedule built from it) is [`desired`], below
//! everything that acts on it. The reconcile pipeline lives in [`controller`]: pure steps
//! (`controller::build`, `controller::plan`, `controller::status`) between thin I/O layers
//! that talk to Kubernetes and Temporal ([`temporal`]); the controllers share [`operator`]'s
//! core, beside the [`calendar`] controller and the CronJob [`handover`]. The built-in runner is
//! [`runner`]; the run-control verbs (`durablejob trigger|...`, `kubectl durablejob ...`) are
//! [`control`].

pub mod api;
pub mod calendar;
pub mod cli;
pub mod control;
pub mod controller;
pub mod crd;
pub(crate) mod cron;
pub mod desired;
pub mod get;
pub mod handover;
pub mod health;
pub mod leader;
pub(crate) mod manifests;
pub mod metrics;
pub mod migrate;
pub mod operator;
pub mod reason;
pub(crate) mod run_contract;
pub mod runner;
pub mod settings;
pub mod signal;
pub mod telemetry;
pub mod temporal;
pub(crate) mod util;
pub mod yaml;

#[cfg(test)]
mod fixtures;
