//! `logs NAME [--run W | --last] [--attempt N] [-f] [-c CONTAINER]`: the pod logs of a run's
//! Jobs, read through the Kubernetes logs API with the caller's own credentials (as `kubectl
//! logs` does). A run is found in the DurableJob's status; its Jobs by the DurableJob's label and
//! the run's workflow id annotation the runner sets; their pods by the same label (one list), each
//! Job's by `job-name`. A run whose
//! Jobs are gone says so and gives its Temporal UI link instead.

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api, ResourceExt,
    api::{ListParams, LogParams},
};
use tokio::io::AsyncWriteExt;

use super::{Result, args::LogsArgs, connect, get, usage};
use crate::api::{DurableJob, RunResult};
use crate::runner::job::{LABEL_ATTEMPT, LABEL_ITEM, LABEL_NAME, LABEL_STEP, annotation};

/// The run whose logs are printed: its workflow and run ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickedRun {
    pub workflow_id: String,
    pub run_id: String,
}

/// The run `--run` names (a workflow id, or a run id), else the newest: one running, else the
/// latest of `recentRuns`.
pub fn pick_run(dj: &DurableJob, run: Option<&str>) -> std::result::Result<PickedRun, String> {
    let status = dj.status.clone().unwrap_or_default();
    let running = status.running_workflows.iter().map(|r| PickedRun {
        workflow_id: r.workflow_id.clone(),
        run_id: r.run_id.clone(),
    });
    let recent = status.recent_runs.iter().map(|r| PickedRun {
        workflow_id: r.workflow_id.clone(),
        run_id: r.run_id.clone(),
    });
    let mut all = running.chain(recent);
    let name = dj.name_any();
    match run {
        Some(id) => all.find(|r| r.workflow_id == id || r.run_id == id).ok_or_else(|| {
            format!(
                "DurableJob {name} has no run {id} in its status (the last ten and the running ones); `kubectl durablejob runs {name}` lists them"
            )
        }),
        None => all
            .next()
            .ok_or_else(|| format!("DurableJob {name} has no run yet; `kubectl durablejob trigger {name}` starts one")),
    }
}

/// The run's Jobs among `jobs` (the DurableJob's), in the order they ran: by step as the spec
/// lists them, item, attempt, then creation; only attempt `attempt` when given.
pub fn run_jobs<'a>(dj: &DurableJob, jobs: &'a [Job], run: &PickedRun, attempt: Option<u32>) -> Vec<&'a Job> {
    let steps: Vec<&str> = dj.spec.steps.iter().flatten().map(|s| s.name.as_str()).collect();
    let label = |j: &Job, k: &str| j.labels().get(k).cloned();
    let number = |j: &Job, k: &str| label(j, k).and_then(|v| v.parse::<u32>().ok());
    let mut of_run: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.annotations().get(annotation::WORKFLOW_ID) == Some(&run.workflow_id))
        .filter(|j| {
            // a Job of another run of the same workflow id (a run Temporal reset) is not this one's
            j.annotations()
                .get(annotation::RUN_ID)
                .is_none_or(|r| r.is_empty() || run.run_id.is_empty() || *r == run.run_id)
        })
        .filter(|j| attempt.is_none_or(|a| number(j, LABEL_ATTEMPT) == Some(a)))
        .collect();
    of_run.sort_by_key(|j| {
        let step = label(j, LABEL_STEP).and_then(|s| steps.iter().position(|x| *x == s));
        (
            step,
            number(j, LABEL_ITEM),
            number(j, LABEL_ATTEMPT),
            j.creation_timestamp(),
            j.name_any(),
        )
    });
    of_run
}

/// `==> Job report-1a2b3c4d-2, pod report-1a2b3c4d-2-x7k2p (attempt 2, step load) <==`
pub fn header(job: &Job, pod: &Pod, container: Option<&str>) -> String {
    let mut what = vec![];
    for (key, word) in [
        (LABEL_ATTEMPT, "attempt"),
        (LABEL_STEP, "step"),
        (LABEL_ITEM, "item"),
    ] {
        if let Some(v) = job.labels().get(key) {
            what.push(format!("{word} {v}"));
        }
    }
    if let Some(c) = container {
        what.push(format!("container {c}"));
    }
    format!(
        "==> Job {}, pod {} ({}) <==",
        job.name_any(),
        pod.name_any(),
        what.join(", ")
    )
}

/// The container whose log is read: `-c`, else the pod's default container (its
/// `kubectl.kubernetes.io/default-container` annotation), else its first.
fn container_of(pod: &Pod, wanted: Option<&str>) -> std::result::Result<String, String> {
    let names: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
        .collect();
    match wanted {
        Some(c) if names.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(format!(
            "pod {} has no container {c:?}; its containers: {}",
            pod.name_any(),
            names.join(", ")
        )),
        None => Ok(pod
            .annotations()
            .get("kubectl.kubernetes.io/default-container")
            .cloned()
            .or_else(|| names.first().cloned())
            .unwrap_or_default()),
    }
}

/// Prints the logs of the run's pods, one after another under a header each; with `-f`, a pod
/// still running is followed until it ends.
pub async fn logs(a: &LogsArgs) -> Result<String> {
    let (client, namespace) = connect(&a.target.cluster, &super::user_agent()).await?;
    let dj = get(&client, &namespace, &a.target.name).await?;
    let run = pick_run(&dj, a.run.as_deref()).map_err(usage)?;
    let jobs_api: Api<Job> = Api::namespaced(client.clone(), &namespace);
    let selector = format!("{LABEL_NAME}={}", a.target.name);
    let jobs = jobs_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            usage(format!(
                "cannot list the Jobs of DurableJob {}: {e}",
                a.target.name
            ))
        })?
        .items;
    let of_run = run_jobs(&dj, &jobs, &run, a.attempt);
    let status = dj.status.clone().unwrap_or_default();
    if of_run.is_empty() {
        let link = super::render::run_link(
            &a.ui.temporal_ui_url,
            status.temporal_namespace.as_deref().unwrap_or("default"),
            &run.workflow_id,
            &run.run_id,
        );
        let which = a.attempt.map(|n| format!(" of attempt {n}")).unwrap_or_default();
        let ended = status
            .recent_runs
            .iter()
            .find(|r| r.workflow_id == run.workflow_id)
            .is_some_and(|r| r.result != RunResult::Running);
        let why = if ended {
            "deleted by the history limits (successfulRunsHistoryLimit, failedRunsHistoryLimit), or the run never made one"
        } else {
            "not created yet"
        };
        return Err(usage(format!(
            "run {} has no Job{which} left in namespace {namespace} ({why}); its history in Temporal: {link}",
            run.workflow_id
        )));
    }
    let pods_api: Api<Pod> = Api::namespaced(client, &namespace);
    // one list for the pods of every Job of the run: they carry the DurableJob's label too
    let all_pods = pods_api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            usage(format!(
                "cannot list the pods of DurableJob {}: {e}",
                a.target.name
            ))
        })?
        .items;
    let mut out = tokio::io::stdout();
    let mut printed_any = false;
    for job in of_run {
        let mut pods: Vec<&Pod> = all_pods
            .iter()
            .filter(|p| p.labels().get("batch.kubernetes.io/job-name") == Some(&job.name_any()))
            .collect();
        pods.sort_by_key(|p| (p.creation_timestamp(), p.name_any()));
        if pods.is_empty() {
            let line = format!("==> Job {}: no pod left <==\n", job.name_any());
            let _ = out.write_all(line.as_bytes()).await;
            continue;
        }
        for pod in &pods {
            let container = container_of(pod, a.container.as_deref()).map_err(usage)?;
            let shown = a.container.as_deref().or_else(|| {
                let many = pod.spec.as_ref().is_some_and(|s| s.containers.len() > 1);
                many.then_some(container.as_str())
            });
            if printed_any {
                let _ = out.write_all(b"\n").await;
            }
            let _ = out
                .write_all(format!("{}\n", header(job, pod, shown)).as_bytes())
                .await;
            printed_any = true;
            let params = LogParams {
                container: Some(container.clone()),
                follow: a.follow,
                ..Default::default()
            };
            let stream = match pods_api.log_stream(&pod.name_any(), &params).await {
                Ok(s) => s,
                Err(kube::Error::Api(e)) => {
                    // a pod not started yet, or whose node is gone: say so and go on
                    let line = format!("(no log: {})\n", e.message);
                    let _ = out.write_all(line.as_bytes()).await;
                    continue;
                }
                Err(e) => {
                    return Err(usage(format!(
                        "cannot read the log of pod {}: {e}",
                        pod.name_any()
                    )));
                }
            };
            let mut lines = stream.lines();
            while let Some(line) = lines
                .try_next()
                .await
                .map_err(|e| usage(format!("reading the log of pod {}: {e}", pod.name_any())))?
            {
                let _ = out.write_all(format!("{line}\n").as_bytes()).await;
            }
            let _ = out.flush().await;
        }
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dj() -> DurableJob {
        let mut dj = DurableJob::test("etl");
        dj.spec.steps = serde_json::from_value(json!([
            {"name": "extract", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
            {"name": "load", "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}
        ]))
        .unwrap();
        dj.status = Some(
            serde_json::from_value(json!({
                "recentRuns": [
                    {"workflowId": "w-2", "runId": "r-2", "scheduledTime": "2026-12-01T10:00:00Z", "startTime": "2026-12-01T10:00:00Z", "result": "Failed"},
                    {"workflowId": "w-1", "runId": "r-1", "scheduledTime": "2026-12-01T09:00:00Z", "startTime": "2026-12-01T09:00:00Z", "result": "Succeeded"}
                ],
                "runningWorkflows": [{"workflowId": "w-3", "runId": "r-3"}]
            }))
            .unwrap(),
        );
        dj
    }

    fn job(name: &str, wid: &str, step: &str, attempt: u32) -> Job {
        serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {LABEL_NAME: "etl", LABEL_STEP: step, LABEL_ATTEMPT: attempt.to_string()},
            "annotations": {annotation::WORKFLOW_ID: wid, annotation::RUN_ID: format!("r{}", &wid[1..])}}}))
        .unwrap()
    }

    #[test]
    fn the_newest_run_is_a_running_one_and_run_takes_a_workflow_or_run_id() {
        let dj = dj();
        assert_eq!(pick_run(&dj, None).unwrap().workflow_id, "w-3");
        assert_eq!(pick_run(&dj, Some("w-1")).unwrap().run_id, "r-1");
        assert_eq!(pick_run(&dj, Some("r-2")).unwrap().workflow_id, "w-2");
        let e = pick_run(&dj, Some("w-9")).unwrap_err();
        assert!(
            e.contains("no run w-9") && e.contains("kubectl durablejob runs etl"),
            "{e}"
        );
        let mut fresh = DurableJob::test("new");
        fresh.status = None;
        assert!(pick_run(&fresh, None).unwrap_err().contains("no run yet"));
    }

    #[test]
    fn a_runs_jobs_come_in_step_and_attempt_order_and_attempt_picks_one() {
        let dj = dj();
        let jobs = vec![
            job("etl-load-1", "w-2", "load", 1),
            job("etl-extract-2", "w-2", "extract", 2),
            job("etl-extract-1", "w-2", "extract", 1),
            job("etl-other-run", "w-1", "extract", 1),
        ];
        let run = pick_run(&dj, Some("w-2")).unwrap();
        let names: Vec<String> = run_jobs(&dj, &jobs, &run, None)
            .iter()
            .map(|j| j.name_any())
            .collect();
        assert_eq!(names, ["etl-extract-1", "etl-extract-2", "etl-load-1"]);
        let second: Vec<String> = run_jobs(&dj, &jobs, &run, Some(2))
            .iter()
            .map(|j| j.name_any())
            .collect();
        assert_eq!(second, ["etl-extract-2"]);
    }

    #[test]
    fn the_header_names_the_job_pod_attempt_and_step_and_a_container_when_asked() {
        let j = job("etl-load-1", "w-2", "load", 1);
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "etl-load-1-abcde"},
            "spec": {"containers": [{"name": "main"}, {"name": "sidecar"}]}}))
        .unwrap();
        assert_eq!(
            header(&j, &pod, None),
            "==> Job etl-load-1, pod etl-load-1-abcde (attempt 1, step load) <=="
        );
        assert!(header(&j, &pod, Some("sidecar")).ends_with("(attempt 1, step load, container sidecar) <=="));
        assert_eq!(container_of(&pod, None).unwrap(), "main");
        let e = container_of(&pod, Some("nope")).unwrap_err();
        assert!(
            e.contains("no container \"nope\"") && e.contains("main, sidecar"),
            "{e}"
        );
    }
}
