//! One scenario's world: its own namespace in the binary's cluster (and a Temporal namespace of
//! the same name), and its own operator, which runs as the ServiceAccount `durablejob-operator`
//! bound to the shipped `config/rbac/` role and watches that namespace only.

use std::{path::PathBuf, time::Duration};

use anyhow::bail;
use durablejob::api::{DurableJob, DurableJobStatus};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};
use testsupport::{AuditLog, Cluster, FaultProxy, Namespace, PrivateCluster};

use crate::operator::Operator;

pub struct Env {
    pub djs: Api<DurableJob>,
    pub client: kube::Client,
    pub temporal: String,
    /// The scenario's Kubernetes namespace, and its Temporal namespace.
    pub namespace: String,
    pub operator: Operator,
    /// The runner's identity: ServiceAccount `durablejob-runner` with the shipped role.
    pub runner_kubeconfig: PathBuf,
    pub dir: PathBuf,
    /// The proxy between the operator and the API server, for scenarios that inject faults.
    pub faults: Option<FaultProxy>,
    /// The API server's audit log (`None` on a user's own cluster).
    audit: Option<AuditLog>,
    /// Deleted (with its role bindings) when the scenario ends.
    ns: Namespace,
}

/// Which cluster a scenario runs in.
#[derive(Clone, Copy)]
enum Site<'a> {
    /// The binary's cluster ([`cluster`]).
    Shared,
    /// A cluster of the scenario's own, with the CRDs and roles installed.
    Private(&'a PrivateCluster),
}

pub fn cluster() -> &'static Cluster {
    Cluster::shared()
}

impl Env {
    /// A fresh namespace (Kubernetes and Temporal), and an operator for it.
    pub async fn new(shared: &crate::Shared, name: &str, extra_args: &[&str]) -> anyhow::Result<Self> {
        Self::with_temporal(shared, name, &shared.temporal, extra_args).await
    }

    /// Like [`Env::new`] against another Temporal server.
    pub async fn with_temporal(
        shared: &crate::Shared,
        name: &str,
        temporal: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::build(shared, name, temporal, extra_args, false, Site::Shared).await
    }

    /// Like [`Env::new`], with the operator talking to the API server through a fault proxy
    /// ([`Env::faults`]).
    pub async fn with_faults(
        shared: &crate::Shared,
        name: &str,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::build(shared, name, &shared.temporal, extra_args, true, Site::Shared).await
    }

    /// Like [`Env::with_faults`] in `private`, a cluster of the scenario's own made by
    /// `Cluster::private_with_durablejob`; `private` must outlive the Env.
    pub async fn on_private_cluster(
        shared: &crate::Shared,
        name: &str,
        private: &PrivateCluster,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::build(
            shared,
            name,
            &shared.temporal,
            extra_args,
            true,
            Site::Private(private),
        )
        .await
    }

    async fn build(
        shared: &crate::Shared,
        name: &str,
        temporal: &str,
        extra_args: &[&str],
        with_faults: bool,
        site: Site<'_>,
    ) -> anyhow::Result<Self> {
        let dir = shared.dir.join(name);
        std::fs::create_dir_all(&dir)?;
        let namespace = format!("e2e-{name}");
        let (ns, operator_kubeconfig, runner_kubeconfig) = tokio::task::block_in_place(|| {
            let mut ns = match site {
                Site::Shared => cluster().namespace(&namespace)?,
                Site::Private(c) => c.namespace(&namespace)?,
            };
            let op = ns.service_account("durablejob-operator", "durablejob-operator", &dir)?;
            let runner = ns.service_account("durablejob-runner", "durablejob-runner", &dir)?;
            anyhow::Ok((ns, op, runner))
        })?;
        let (admin, audit) = match site {
            Site::Shared => (cluster().kubeconfig(), cluster().audit()),
            Site::Private(c) => (c.kubeconfig.as_path(), Some(c.audit())),
        };
        let client = testsupport::client_for(admin).await?;
        let (faults, operator_kubeconfig) = if with_faults {
            let proxy = FaultProxy::start(admin).await?;
            let through =
                proxy.kubeconfig_for(&operator_kubeconfig, &dir.join("operator-via-proxy.kubeconfig"))?;
            (Some(proxy), through)
        } else {
            (None, operator_kubeconfig)
        };
        crate::temporal::create_namespace(temporal, &namespace)?;
        let mut args = vec!["--watch-namespaces", namespace.as_str()];
        args.extend_from_slice(extra_args);
        let operator = Operator::start(&dir, &operator_kubeconfig, temporal, &namespace, &args)?;
        Ok(Self {
            djs: Api::namespaced(client.clone(), &namespace),
            client,
            temporal: temporal.into(),
            namespace,
            operator,
            runner_kubeconfig,
            dir,
            faults,
            audit,
            ns,
        })
    }

    /// A kubeconfig for a ServiceAccount of the scenario's namespace bound to `cluster_role`.
    pub fn service_account(&mut self, sa: &str, cluster_role: &str) -> anyhow::Result<PathBuf> {
        let dir = self.dir.clone();
        tokio::task::block_in_place(|| self.ns.service_account(sa, cluster_role, &dir))
    }

    /// An Api for a namespaced kind in the scenario's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Finished requests in the scenario's namespace that satisfy `f`, from the API server's
    /// audit log. `None` only on a user's own cluster, which has none: the check is skipped
    /// there, and the output says so.
    pub fn audit_count(&self, f: impl Fn(&testsupport::AuditEvent) -> bool) -> Option<usize> {
        let Some(log) = self.audit.as_ref() else {
            eprintln!(
                "{}: a request count from the audit log is skipped: this cluster has none",
                self.namespace
            );
            return None;
        };
        Some(log.count(|e| e.object_ref.namespace == self.namespace && f(e)))
    }

    /// The id the operator gives the schedule (the product's own rule, default prefix).
    pub fn schedule_id(&self, name: &str) -> String {
        durablejob::settings::Settings::default().schedule_id(&self.namespace, name)
    }

    pub async fn create(&self, manifest: Value) -> anyhow::Result<DurableJob> {
        let dj: DurableJob = serde_json::from_value(manifest)?;
        Ok(self.djs.create(&PostParams::default(), &dj).await?)
    }

    /// A user's edit: a merge patch of the spec.
    pub async fn edit(&self, name: &str, spec_patch: Value) -> anyhow::Result<DurableJob> {
        Ok(self
            .djs
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec_patch})),
            )
            .await?)
    }

    pub fn describe(&self, name: &str) -> anyhow::Result<Option<Value>> {
        crate::temporal::describe(&self.temporal, &self.namespace, &self.schedule_id(name))
    }

    /// Waits until the resource's status satisfies `check`.
    pub async fn wait_status(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&DurableJobStatus) -> bool,
    ) -> anyhow::Result<DurableJobStatus> {
        let djs = self.djs.clone();
        let n = name.to_string();
        let r = wait_for(what, timeout, || {
            let djs = djs.clone();
            let n = n.clone();
            let check = &check;
            async move {
                let dj = djs.get_opt(&n).await.ok().flatten()?;
                let s = dj.status.unwrap_or_default();
                check(&s).then_some(s)
            }
        })
        .await;
        match r {
            Ok(s) => Ok(s),
            Err(e) => {
                let last = self.djs.get_opt(name).await.ok().flatten().and_then(|d| d.status);
                let last = serde_json::to_string_pretty(&last).unwrap_or_default();
                Err(anyhow::anyhow!(
                    "{e}\n--- last status ---\n{last}\n--- operator log ---\n{}",
                    self.operator.log_tail(30)
                ))
            }
        }
    }

    /// Waits until Ready=True for the current generation.
    pub async fn wait_ready(&self, name: &str) -> anyhow::Result<DurableJobStatus> {
        let generation = self.djs.get(name).await?.metadata.generation;
        self.wait_status(
            name,
            &format!("{name} Ready for generation {generation:?}"),
            Duration::from_secs(30),
            |s| {
                s.observed_generation == generation
                    && condition(s, "Ready").is_some_and(|c| c.status == "True")
            },
        )
        .await
    }

    /// Waits until Ready=False; gives the status.
    pub async fn wait_not_ready(&self, name: &str) -> anyhow::Result<DurableJobStatus> {
        self.wait_status(
            name,
            &format!("{name} Ready=False"),
            Duration::from_secs(30),
            |s| condition(s, "Ready").is_some_and(|c| c.status == "False"),
        )
        .await
    }

    /// Waits until the DurableJob is gone from the API server (its finalizer done).
    pub async fn wait_gone(&self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        let djs = self.djs.clone();
        wait_for(&format!("{name} to be gone"), timeout, || {
            let djs = djs.clone();
            async move { djs.get_opt(name).await.ok()?.is_none().then_some(()) }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- operator log ---\n{}", self.operator.log_tail(20)))
    }

    /// Waits until Temporal's description of the schedule satisfies `check`.
    pub async fn wait_schedule(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(Option<&Value>) -> bool,
    ) -> anyhow::Result<Option<Value>> {
        let id = self.schedule_id(name);
        let r = wait_for(what, timeout, || {
            let d = crate::temporal::describe(&self.temporal, &self.namespace, &id).ok();
            let check = &check;
            async move {
                let d = d?;
                check(d.as_ref()).then_some(d)
            }
        })
        .await;
        r.map_err(|e| anyhow::anyhow!("{e}\n--- operator log ---\n{}", self.operator.log_tail(30)))
    }

    /// Events recorded for a DurableJob (events.k8s.io/v1), as "Reason: note".
    pub async fn events(&self, name: &str) -> Vec<String> {
        let api: Api<k8s_openapi::api::events::v1::Event> = self.api();
        api.list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                    .map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Env {
    /// Waits for an Event with this reason on the DurableJob.
    pub async fn wait_event(&self, name: &str, reason: &str) -> anyhow::Result<String> {
        let prefix = format!("{reason}:");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.events(name).await;
            if let Some(e) = events.iter().find(|e| e.starts_with(&prefix)) {
                return Ok(e.clone());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no {reason} Event on {name} within 10s; events: {events:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// An interval schedule whose next start is twelve hours away: runs come only from triggers
/// and requests.
pub fn quiet_schedule() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"intervals": [{"every": "24h", "offset": format!("{}s", (now + 43_200) % 86_400)}]})
}

pub fn condition<'a>(s: &'a DurableJobStatus, type_: &str) -> Option<&'a durablejob::api::Condition> {
    s.conditions.iter().find(|c| c.type_ == type_)
}

pub use testsupport::{durable_job as manifest, wait_for};
