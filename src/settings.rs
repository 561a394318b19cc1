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
    /// How user workers connect to Temporal besides the address and namespace.
    pub worker_connection: WorkerConnection,
}

/// Where a user worker's pods find the TLS files a versioned or plain worker Deployment mounts.
pub const WORKER_TLS_DIR: &str = "/etc/temporal/tls";

/// How user workers connect to Temporal besides the address and namespace (`--worker-temporal-*`):
/// what every worker container is told, as Temporal's SDKs read it from the environment
/// (TEMPORAL_TLS, TEMPORAL_TLS_SERVER_NAME, TEMPORAL_TLS_*_PATH, TEMPORAL_API_KEY). The
/// material stays in Secrets of the worker's own namespace: mounted, or referenced, never copied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerConnection {
    pub tls: bool,
    pub tls_server_name: Option<String>,
    /// A Secret with `ca.crt` and, for mTLS, `tls.crt` and `tls.key` (as cert-manager writes
    /// them), mounted read-only at [`WORKER_TLS_DIR`].
    pub tls_secret: Option<String>,
    /// The Secret and key holding an API key, given as TEMPORAL_API_KEY.
    pub api_key_secret: Option<(String, String)>,
}

impl WorkerConnection {
    /// A Secret name, as `--worker-temporal-tls-secret` takes it.
    pub fn parse_secret_name(text: &str) -> Result<String, String> {
        match Self::parse_secret_ref(text) {
            Ok((name, _)) if !text.contains(':') => Ok(name),
            _ => Err(format!(
                "{text:?} is not a Secret name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
            )),
        }
    }

    /// What every worker container is told (env entries as JSON), and the volume and mount
    /// that go with it.
    pub fn worker_env(&self) -> Vec<serde_json::Value> {
        use serde_json::json;
        let mut env = vec![];
        if self.tls {
            env.push(json!({"name": "TEMPORAL_TLS", "value": "true"}));
        }
        if let Some(n) = &self.tls_server_name {
            env.push(json!({"name": "TEMPORAL_TLS_SERVER_NAME", "value": n}));
        }
        if self.tls_secret.is_some() {
            for (var, file) in [
                ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "ca.crt"),
                ("TEMPORAL_TLS_CLIENT_CERT_PATH", "tls.crt"),
                ("TEMPORAL_TLS_CLIENT_KEY_PATH", "tls.key"),
            ] {
                env.push(json!({"name": var, "value": format!("{WORKER_TLS_DIR}/{file}")}));
            }
        }
        if let Some((name, key)) = &self.api_key_secret {
            env.push(json!({"name": "TEMPORAL_API_KEY", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}));
        }
        env
    }

    /// `NAME` or `NAME:KEY` (key `api-key` when left out), as `--worker-temporal-api-key-secret` takes it.
    pub fn parse_secret_ref(text: &str) -> Result<(String, String), String> {
        let (name, key) = text.split_once(':').unwrap_or((text, "api-key"));
        let dns = |s: &str| {
            !s.is_empty()
                && s.len() <= 253
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        };
        let key_ok = !key.is_empty()
            && key.len() <= 253
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !dns(name) || !key_ok {
            return Err(format!(
                "{text:?} is not a Secret reference: write SECRET or SECRET:KEY (a Secret name of lowercase letters, digits, '-' and '.'; a key of letters, digits, '-', '_' and '.')"
            ));
        }
        Ok((name.to_string(), key.to_string()))
    }
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
            worker_connection: WorkerConnection::default(),
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
    fn a_worker_secret_reference_names_a_secret_and_a_key() {
        let parse = WorkerConnection::parse_secret_ref;
        assert_eq!(
            parse("temporal-key"),
            Ok(("temporal-key".into(), "api-key".into()))
        );
        assert_eq!(
            parse("temporal-key:key.txt"),
            Ok(("temporal-key".into(), "key.txt".into()))
        );
        for bad in ["", "Temporal", "key:", ":k", "a:b/c", "-a"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("SECRET:KEY"), "{bad}: {e}");
        }
        assert_eq!(WorkerConnection::parse_secret_name("tls-1"), Ok("tls-1".into()));
        assert!(WorkerConnection::parse_secret_name("tls:key").is_err());
        assert!(
            WorkerConnection::default().worker_env().is_empty(),
            "nothing told by default"
        );
    }

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
