#![forbid(unsafe_code)]
//! durablejob: Kubernetes CronJob replacements driven by Temporal schedules.
//!
//! Pure steps compute desired state ([`validate`], [`schedule`], [`controller::plan`],
//! [`controller::status`]); thin layers talk to Kubernetes ([`controller`]) and Temporal
//! ([`temporal`]).

pub mod api;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod cron;
pub mod get;
pub mod handover;
pub mod health;
pub mod metrics;
pub mod migrate;
pub mod run_contract;
pub mod runner;
pub mod schedule;
pub mod settings;
pub mod telemetry;
pub mod temporal;
pub mod validate;
pub mod worker_deployment;

#[cfg(test)]
mod fixtures;
