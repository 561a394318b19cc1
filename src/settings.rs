//! Operator-wide settings that shape desired state (from flags and environment).

use std::time::Duration;

/// Default `--schedule-id-prefix`.
pub const DEFAULT_SCHEDULE_ID_PREFIX: &str = "durablejob";
/// Default `--runner-task-queue`.
pub const DEFAULT_RUNNER_TASK_QUEUE: &str = "durablejob-runner";

/// What the pure builders need to know about the operator's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// First part of every schedule id; two clusters sharing a Temporal namespace use different ones.
    pub schedule_id_prefix: String,
    /// Task queue of the built-in runner.
    pub runner_task_queue: String,
    /// Temporal namespaces the built-in runner polls.
    pub runner_namespaces: Vec<String>,
    /// Temporal namespace for resources that do not name one.
    pub default_temporal_namespace: String,
    /// How often the schedule lists are swept; the longest wait of a stalled resource.
    pub resync_interval: Duration,
    /// Longest time between two describes of one resource's schedule.
    pub full_resync_interval: Duration,
    /// Temporal's address as user workers should reach it (host:port).
    pub temporal_address: String,
    /// Time zone for handed-over CronJobs without `timeZone`.
    pub handover_time_zone: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            schedule_id_prefix: DEFAULT_SCHEDULE_ID_PREFIX.into(),
            runner_task_queue: DEFAULT_RUNNER_TASK_QUEUE.into(),
            runner_namespaces: vec!["default".into()],
            default_temporal_namespace: "default".into(),
            resync_interval: Duration::from_secs(300),
            full_resync_interval: Duration::from_secs(3600),
            temporal_address: "localhost:7233".into(),
            handover_time_zone: "UTC".into(),
        }
    }
}

impl Settings {
    /// `<prefix>:<namespace>/<name>`: neither `:` nor `/` can occur in Kubernetes names.
    pub fn schedule_id(&self, namespace: &str, name: &str) -> String {
        format!("{}:{namespace}/{name}", self.schedule_id_prefix)
    }
}
