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
    /// Temporal namespace for resources that do not name one; every Kubernetes namespace may use it.
    pub default_temporal_namespace: String,
    /// Other Temporal namespaces a Kubernetes namespace's DurableJobs may name.
    pub namespace_grants: NamespaceGrants,
    /// How often the schedule lists are swept; the longest wait of a stalled resource.
    pub resync_interval: Duration,
    /// Longest time between two describes of one resource's schedule.
    pub full_resync_interval: Duration,
    /// Temporal's address as user workers should reach it (host:port).
    pub temporal_address: String,
    /// Time zone for handed-over CronJobs without `timeZone`.
    pub handover_time_zone: String,
    /// Which ended runs get an Event on their DurableJob.
    pub run_events: RunEvents,
}

/// Which ended runs get an Event on their DurableJob (`--run-events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RunEvents {
    /// A Warning `RunFailed` for each failed or timed-out run.
    #[default]
    Failures,
    /// Those, and a Normal `RunSucceeded` for each run that succeeded.
    All,
    None,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            schedule_id_prefix: DEFAULT_SCHEDULE_ID_PREFIX.into(),
            runner_task_queue: DEFAULT_RUNNER_TASK_QUEUE.into(),
            runner_namespaces: vec!["default".into()],
            default_temporal_namespace: "default".into(),
            namespace_grants: NamespaceGrants::default(),
            resync_interval: Duration::from_secs(300),
            full_resync_interval: Duration::from_secs(3600),
            temporal_address: "localhost:7233".into(),
            handover_time_zone: "UTC".into(),
            run_events: RunEvents::default(),
        }
    }
}

impl Settings {
    /// `<prefix>:<namespace>/<name>`: neither `:` nor `/` can occur in Kubernetes names.
    pub fn schedule_id(&self, namespace: &str, name: &str) -> String {
        format!("{}:{namespace}/{name}", self.schedule_id_prefix)
    }

    /// Whether the DurableJobs of Kubernetes namespace `kube_ns` may use Temporal namespace `temporal_ns`.
    pub fn may_use(&self, kube_ns: &str, temporal_ns: &str) -> bool {
        temporal_ns == self.default_temporal_namespace
            || self.namespace_grants.granted(kube_ns).contains(temporal_ns)
    }
}

/// Which Temporal namespaces the DurableJobs of a Kubernetes namespace may use besides the
/// operator's default one: the cluster admin's decision (flag `--temporal-namespace-grant`, Helm
/// value `temporal.namespaceGrants`), never the tenant's. Keys are Kubernetes namespaces, or
/// `*` for every namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceGrants(std::collections::BTreeMap<String, std::collections::BTreeSet<String>>);

/// The key of a grant to every Kubernetes namespace.
pub const EVERY_NAMESPACE: &str = "*";

impl NamespaceGrants {
    /// Parses `KUBERNETES_NAMESPACE=TEMPORAL_NAMESPACE[,TEMPORAL_NAMESPACE...]` entries; a
    /// Kubernetes namespace given twice gets the union.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut grants = Self::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            let Some((kube_ns, temporal)) = entry.split_once('=') else {
                return Err(format!(
                    "--temporal-namespace-grant {entry:?}: write KUBERNETES_NAMESPACE=TEMPORAL_NAMESPACE[,TEMPORAL_NAMESPACE...] (KUBERNETES_NAMESPACE may be * for every namespace)"
                ));
            };
            let kube_ns = kube_ns.trim();
            if kube_ns != EVERY_NAMESPACE && !is_dns_label(kube_ns) {
                return Err(format!(
                    "--temporal-namespace-grant {entry:?}: {kube_ns:?} is not a Kubernetes namespace name (a DNS label) or *"
                ));
            }
            let names: Vec<&str> = temporal
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if names.is_empty() {
                return Err(format!(
                    "--temporal-namespace-grant {entry:?}: name at least one Temporal namespace after ="
                ));
            }
            grants
                .0
                .entry(kube_ns.to_string())
                .or_default()
                .extend(names.into_iter().map(String::from));
        }
        Ok(grants)
    }

    /// The Temporal namespaces granted to `kube_ns` (its own grants and those to every namespace).
    pub fn granted(&self, kube_ns: &str) -> std::collections::BTreeSet<&str> {
        [kube_ns, EVERY_NAMESPACE]
            .iter()
            .filter_map(|k| self.0.get(*k))
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// Every Temporal namespace some Kubernetes namespace was granted.
    pub fn temporal_namespaces(&self) -> std::collections::BTreeSet<&str> {
        self.0.values().flatten().map(String::as_str).collect()
    }

    /// The flag form, one entry per Kubernetes namespace (for logs).
    pub fn describe(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={}", v.iter().cloned().collect::<Vec<_>>().join(",")))
            .collect()
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse_per_namespace_and_for_every_namespace() {
        let g = NamespaceGrants::parse(&["team-a=payments,billing", "*=shared", "team-a=ops", ""]).unwrap();
        assert_eq!(
            g.granted("team-a").into_iter().collect::<Vec<_>>(),
            ["billing", "ops", "payments", "shared"]
        );
        assert_eq!(g.granted("team-b").into_iter().collect::<Vec<_>>(), ["shared"]);
        assert_eq!(g.describe(), ["*=shared", "team-a=billing,ops,payments"]);
        assert!(NamespaceGrants::default().granted("team-a").is_empty());
    }

    #[test]
    fn a_malformed_grant_says_how_to_write_it() {
        for (bad, says) in [
            ("team-a", "write KUBERNETES_NAMESPACE=TEMPORAL_NAMESPACE"),
            ("Team_A=x", "is not a Kubernetes namespace name"),
            ("team-a=", "name at least one Temporal namespace"),
            ("team-a= , ", "name at least one Temporal namespace"),
        ] {
            let e = NamespaceGrants::parse(&[bad]).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
