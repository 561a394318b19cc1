#![forbid(unsafe_code)]
//! What durablejob's tests share: the real local control plane (`hack/cluster.sh`, one per
//! test binary), a namespace per test, ServiceAccount identities with the RBAC the project
//! ships, the `kubectl` built with the cluster, the API server's audit log, and a proxy that
//! injects the faults a real cluster does not offer on demand.
//!
//! `DURABLEJOB_TEST_KUBECONFIG=PATH` points the tests at a cluster the user already has
//! (kind, k3d, a dev cluster) instead; checks that need the audit log say they are skipped
//! there.

mod audit;
mod cluster;
mod faults;
mod kubectl;
pub mod manifests;
mod registry;
mod wait;
pub mod worker;
pub mod worker_pods;

pub use audit::{AuditEvent, AuditLog};
pub use cluster::{Cluster, Namespace, PrivateCluster, client_for, service_account_kubeconfig};
pub use faults::{FailRule, FaultProxy};
pub use kubectl::Kubectl;
pub use manifests::{cronjob, durable_job, job_template};
pub use registry::unregistered_scenario_files;
pub use wait::wait_for;

use std::path::PathBuf;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}
