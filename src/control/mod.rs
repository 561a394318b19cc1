//! Run control: `durablejob trigger|backfill|cancel|resume|runs|status|logs|preview|signal|query NAME`, also
//! as the kubectl plugin `kubectl durablejob ...`. State changes are request annotations on the
//! DurableJob (so RBAC on the resource is all a user needs, and audit logs and GitOps see them);
//! the operator acts on each once and records it in `status.requests`. `runs` and `status` read
//! the status the operator fills from Temporal; `signal` and `query` go to Temporal directly.

pub mod args;
pub mod complete;
mod live;
pub mod logs;
pub use logs::logs;
pub mod preview;
pub use preview::preview;
pub mod render;

use std::time::Duration;

use kube::{
    Api, Client, Config, ResourceExt,
    api::{Patch, PatchParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde::Serialize;

use crate::api::{DurableJob, Request, RequestParams, RequestRecord, RequestResult, RequestVerb};
use args::{Output, Target};

/// The field manager of the annotations the verbs write.
pub const FIELD_MANAGER: &str = "kubectl-durablejob";

/// An error of a verb, with the exit code it gives.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The verb could not run (bad input, missing resource, unreachable cluster).
    #[error("{0}")]
    Usage(String),
    /// The operator (or Temporal) handled the request and refused it or failed.
    #[error("{0}")]
    Refused(String),
}

type Result<T> = std::result::Result<T, ControlError>;

fn usage(e: impl std::fmt::Display) -> ControlError {
    ControlError::Usage(e.to_string())
}

/// A client from `--kubeconfig`/`--context`, else the usual inference; and the namespace.
pub async fn connect(target: &args::Cluster, user_agent: &str) -> Result<(Client, String)> {
    let mut config = if target.kubeconfig.is_some() || target.context.is_some() {
        let kubeconfig = match &target.kubeconfig {
            Some(path) => Kubeconfig::read_from(path)
                .map_err(|e| usage(format!("cannot read kubeconfig {}: {e}", path.display())))?,
            None => Kubeconfig::read().map_err(|e| usage(format!("cannot read a kubeconfig: {e}")))?,
        };
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..Default::default()
        };
        Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| usage(format!("cannot use the kubeconfig: {e}")))?
    } else {
        Config::infer()
            .await
            .map_err(|e| usage(format!("cannot load a kubeconfig or in-cluster config: {e}")))?
    };
    if let Ok(v) = user_agent.parse() {
        config.headers.push((http::header::USER_AGENT, v));
    }
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client =
        Client::try_from(config).map_err(|e| usage(format!("cannot create the Kubernetes client: {e}")))?;
    Ok((client, namespace))
}

/// Reads the DurableJob, with an error that says where it looked.
pub async fn get(client: &Client, namespace: &str, name: &str) -> Result<DurableJob> {
    let djs: Api<DurableJob> = Api::namespaced(client.clone(), namespace);
    match djs.get_opt(name).await {
        Ok(Some(dj)) => Ok(dj),
        Ok(None) => Err(usage(format!(
            "durablejob {name:?} not found in namespace {namespace:?} (kubectl get dj -n {namespace} lists them)"
        ))),
        Err(kube::Error::Api(s)) if s.code == 403 => Err(usage(format!(
            "not allowed to read durablejob {name:?} in namespace {namespace:?}: {}",
            s.message
        ))),
        Err(e) => Err(usage(format!(
            "cannot read durablejob {name:?} in namespace {namespace:?}: {e}"
        ))),
    }
}

/// A new request id: the time and a few characters that differ between two calls in a second.
pub fn new_request_id(now: chrono::DateTime<chrono::Utc>) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let salt = format!(
        "{}|{}|{}",
        std::process::id(),
        now.timestamp_nanos_opt().unwrap_or(0),
        N.fetch_add(1, Ordering::Relaxed)
    );
    format!(
        "{}-{}",
        now.format("%Y%m%d-%H%M%S"),
        &crate::util::digest::hex_sha256(salt.as_bytes())[..4]
    )
}

/// Checks a request against what the status knows, before anything is written.
pub fn check(dj: &DurableJob, request: &Request) -> Result<()> {
    let status = dj.status.clone().unwrap_or_default();
    let versioned = dj.spec.worker.as_ref().is_some_and(|w| {
        w.rollout
            .as_ref()
            .is_none_or(|r| r.strategy != crate::api::RolloutStrategy::None)
    });
    if request.verb.is_rollout() && !versioned {
        return Err(usage(format!(
            "durablejob {} has no versioned spec.worker (rollout AllAtOnce, Progressive or Manual): there is no rollout to {}",
            dj.name_any(),
            request.verb.as_str()
        )));
    }
    if request.verb == RequestVerb::Retry && dj.spec.steps.is_none() {
        return Err(usage(format!(
            "durablejob {} has no spec.steps: retry runs again what failed in a multi-step run; use kubectl durablejob trigger {} for a new run",
            dj.name_any(),
            dj.name_any()
        )));
    }
    if let RequestParams::Cancel { run: Some(wid), .. } = &request.params {
        let known = status.running_workflows.iter().any(|w| &w.workflow_id == wid)
            || status.recent_runs.iter().any(|r| &r.workflow_id == wid);
        if !known {
            let running: Vec<&str> = status
                .running_workflows
                .iter()
                .map(|w| w.workflow_id.as_str())
                .collect();
            return Err(usage(format!(
                "unknown run {wid:?}: not a running or recent run of durablejob {} (running: {}; kubectl durablejob runs {} lists them)",
                dj.name_any(),
                if running.is_empty() {
                    "none".into()
                } else {
                    running.join(", ")
                },
                dj.name_any()
            )));
        }
    }
    Ok(())
}

/// Writes the request annotation; with `--wait`, waits for the operator's record and prints it.
pub async fn request(
    target: &Target,
    verb: RequestVerb,
    params: RequestParams,
    wait: &args::Wait,
) -> Result<String> {
    let (client, namespace) = connect(&target.cluster, &user_agent()).await?;
    let dj = get(&client, &namespace, &target.name).await?;
    let request = Request {
        verb,
        id: new_request_id(chrono::Utc::now()),
        params,
    };
    check(&dj, &request)?;
    let djs: Api<DurableJob> = Api::namespaced(client.clone(), &namespace);
    // a merge patch of one annotation: the other verbs' requests and the user's own fields stay
    let patch = serde_json::json!({"metadata": {"annotations": {verb.annotation(): request.to_value()}}});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    djs.patch(&target.name, &params, &Patch::Merge(&patch))
    .await
    .map_err(|e| match e {
        kube::Error::Api(s) if s.code == 403 => usage(format!(
            "not allowed to annotate durablejob {:?} in namespace {namespace:?} (a run-control request needs patch on durablejobs): {}",
            target.name, s.message
        )),
        e => usage(format!("cannot write the {} request: {e}", verb.as_str())),
    })?;
    if !wait.wait {
        return Ok(format!(
            "durablejob.durablejob.dev/{} {} requested (id {}); see the outcome with: kubectl durablejob status {} -n {namespace}\n",
            target.name,
            verb.as_str(),
            request.id,
            target.name
        ));
    }
    let record = wait_for_record(&djs, &target.name, verb, &request.id, wait.timeout).await?;
    let text = print(&record, wait.output)?;
    match record.result {
        RequestResult::Succeeded => Ok(text),
        _ => Err(ControlError::Refused(text.trim_end().to_string())),
    }
}

async fn wait_for_record(
    djs: &Api<DurableJob>,
    name: &str,
    verb: RequestVerb,
    id: &str,
    timeout: Duration,
) -> Result<RequestRecord> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let dj = djs.get(name).await.map_err(usage)?;
        let status = dj.status.clone().unwrap_or_default();
        if let Some(r) = status.requests.iter().find(|r| r.verb == verb && r.id == id) {
            return Ok(r.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            let why = status
                .message
                .map(|m| format!("; the DurableJob says: {m}"))
                .unwrap_or_default();
            return Err(ControlError::Refused(format!(
                "the operator has not handled {} request {id} within {}s (is it running and watching namespace {}?){why}",
                verb.as_str(),
                timeout.as_secs(),
                dj.namespace().unwrap_or_default()
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A request's outcome as text, JSON or YAML.
pub fn print(record: &RequestRecord, output: Option<Output>) -> Result<String> {
    match output {
        Some(Output::Json) => serialize_json(record),
        Some(Output::Yaml) => serialize_yaml(record),
        _ => {
            let mut line = format!(
                "{} request {}: {:?}: {}",
                record.verb.as_str(),
                record.id,
                record.result,
                record.message
            );
            line.push('\n');
            Ok(line)
        }
    }
}

fn serialize_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v).map(|s| s + "\n").map_err(usage)
}

fn serialize_yaml<T: Serialize>(v: &T) -> Result<String> {
    serde_saphyr::to_string(v).map_err(usage)
}

fn user_agent() -> String {
    format!("kubectl-durablejob/{}", env!("CARGO_PKG_VERSION"))
}

/// `runs NAME`.
pub async fn runs(a: &args::ShowArgs) -> Result<String> {
    let (client, namespace) = connect(&a.target.cluster, &user_agent()).await?;
    let dj = get(&client, &namespace, &a.target.name).await?;
    let status = dj.status.clone().unwrap_or_default();
    match a.output {
        Some(Output::Json) => serialize_json(&status.recent_runs),
        Some(Output::Yaml) => serialize_yaml(&status.recent_runs),
        o => Ok(render::runs(
            &dj,
            &a.ui.temporal_ui_url,
            chrono::Utc::now(),
            o == Some(Output::Wide),
        )),
    }
}

/// `status NAME`.
pub async fn status(a: &args::ShowArgs) -> Result<String> {
    let (client, namespace) = connect(&a.target.cluster, &user_agent()).await?;
    let dj = get(&client, &namespace, &a.target.name).await?;
    let status = dj.status.clone().unwrap_or_default();
    match a.output {
        Some(Output::Json) => serialize_json(&status),
        Some(Output::Yaml) => serialize_yaml(&status),
        _ => Ok(render::status(&dj, &a.ui.temporal_ui_url, chrono::Utc::now())),
    }
}

/// `rollout status NAME`: the worker lines of `status` and where the rollout stands.
pub async fn rollout_status(a: &args::ShowArgs) -> Result<String> {
    let (client, namespace) = connect(&a.target.cluster, &user_agent()).await?;
    let dj = get(&client, &namespace, &a.target.name).await?;
    let status = dj.status.clone().unwrap_or_default();
    let Some(worker) = status.worker.as_ref().filter(|w| w.deployment_name.is_some()) else {
        return Err(usage(format!(
            "durablejob {} has no versioned worker in its status (spec.worker with rollout AllAtOnce, Progressive or Manual)",
            dj.name_any()
        )));
    };
    match a.output {
        Some(Output::Json) => serialize_json(worker),
        Some(Output::Yaml) => serialize_yaml(worker),
        _ => Ok(render::rollout(&dj)),
    }
}

/// `signal NAME --run W SIGNAL`.
pub async fn signal(a: &args::SignalArgs) -> Result<String> {
    let (client, namespace) = connect(&a.target.cluster, &user_agent()).await?;
    let dj = get(&client, &namespace, &a.target.name).await?;
    let at = live::Run::of(&dj, &a.run)?;
    live::signal(&a.temporal, &at, &a.signal, a.input.as_ref()).await?;
    Ok(format!("signal {:?} sent to run {}\n", a.signal, a.run))
}

/// `query NAME --run W QUERY`.
pub async fn query(a: &args::QueryArgs) -> Result<String> {
    let (client, namespace) = connect(&a.target.cluster, &user_agent()).await?;
    let dj = get(&client, &namespace, &a.target.name).await?;
    let at = live::Run::of(&dj, &a.run)?;
    let answer = live::query(&a.temporal, &at, &a.query, a.input.as_ref()).await?;
    match a.output {
        Some(Output::Yaml) => serialize_yaml(&answer),
        _ => serialize_json(&answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RecentRun, RunResult};

    #[test]
    fn request_ids_are_time_ordered_and_distinct_within_a_second() {
        let now = chrono::DateTime::from_timestamp(1_796_130_301, 0).unwrap();
        let (a, b) = (new_request_id(now), new_request_id(now));
        assert!(
            a.starts_with("20261201-") && a.len() == "20261201-130501-abcd".len(),
            "{a}"
        );
        assert_ne!(a, b);
        assert!(
            Request::parse(RequestVerb::Trigger, &a).is_ok(),
            "an id is a valid request id"
        );
    }

    #[test]
    fn cancelling_an_unknown_run_is_refused_before_anything_is_written() {
        let mut dj = DurableJob::test("report");
        dj.status.get_or_insert_with(Default::default).recent_runs = vec![RecentRun {
            progress: None,
            workflow_id: "w-1".into(),
            run_id: "r".into(),
            scheduled_time: chrono::Utc::now(),
            start_time: chrono::Utc::now(),
            close_time: None,
            result: RunResult::Running,
            job_name: None,
            attempts: None,
            message: None,
            build_id: None,
        }];
        let cancel = |run: &str| Request {
            verb: RequestVerb::Cancel,
            id: "c".into(),
            params: RequestParams::Cancel {
                run: Some(run.into()),
                terminate: false,
            },
        };
        let e = check(&dj, &cancel("w-9")).unwrap_err().to_string();
        assert!(
            e.contains("unknown run \"w-9\"") && e.contains("kubectl durablejob runs report"),
            "{e}"
        );
        assert!(check(&dj, &cancel("w-1")).is_ok());
    }

    #[test]
    fn an_outcome_prints_as_a_line_or_as_json() {
        let r = RequestRecord {
            id: "i".into(),
            verb: RequestVerb::Trigger,
            handled_time: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            result: RequestResult::Succeeded,
            message: "Triggered".into(),
            workflow_ids: vec!["w".into()],
            run_ids: vec![],
        };
        assert_eq!(
            print(&r, None).unwrap(),
            "trigger request i: Succeeded: Triggered\n"
        );
        let json: serde_json::Value = serde_json::from_str(&print(&r, Some(Output::Json)).unwrap()).unwrap();
        assert_eq!(json["workflowIds"][0], "w");
        assert!(print(&r, Some(Output::Yaml)).unwrap().contains("verb: Trigger"));
    }
}
