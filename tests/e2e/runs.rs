//! Issue 5: runs execute. The built-in runner turns each run into a Kubernetes Job, which the
//! real Job controller completes or fails as its pods end (the simulated kubelet's pod rule,
//! tests/cluster/README.md); user workers run as Deployments the operator manages.

use std::{sync::Arc, time::Duration};

use anyhow::ensure;
use durablejob::api::{DurableJobStatus, RunResult};
use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::Pod};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams},
};
use serde_json::{Value, json};

use crate::Shared;
use crate::env::{Env, condition, manifest, quiet_schedule, wait_for};
use crate::operator::Runner;
use crate::temporal;

scenarios!(
    a_triggered_run_creates_exactly_one_job_and_succeeds,
    a_job_that_fails_twice_then_succeeds_takes_three_attempts_and_replays_deterministically,
    a_run_that_exhausts_its_attempts_ends_failed_with_the_reason,
    killing_the_runner_mid_run_neither_loses_the_run_nor_duplicates_its_job,
    terminate_other_deletes_the_older_runs_job,
    history_limits_keep_only_the_newest_finished_jobs,
    a_worker_deployment_appears_rolls_and_drives_worker_available,
    a_job_past_its_active_deadline_ends_the_run_as_job_deadline_exceeded,
    deleting_a_durablejob_garbage_collects_its_jobs_and_pods,
    the_longest_name_runs_a_job_its_label_finds_and_a_longer_one_is_refused_at_apply,
);

const T: Duration = Duration::from_secs(40);

use testsupport::job_template;

/// Waits until the newest run of `name` has `result`; the runner's log on failure.
pub(crate) async fn last_run(
    env: &Env,
    runner: &Runner,
    name: &str,
    result: RunResult,
) -> anyhow::Result<DurableJobStatus> {
    env.wait_status(name, &format!("the newest run to be {result:?}"), T, |s| {
        s.recent_runs.first().is_some_and(|r| r.result == result)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(30)))
}

pub(crate) async fn with_runner(shared: &Shared, name: &str) -> anyhow::Result<(Env, Runner)> {
    let env = Env::new(shared, name, &[]).await?;
    let runner = Runner::start(&env.dir, &env.runner_kubeconfig, &env.temporal, &env.namespace)?;
    Ok((env, runner))
}

pub(crate) fn trigger(env: &Env, name: &str, overlap: Option<&str>) -> anyhow::Result<()> {
    let id = env.schedule_id(name);
    let mut args = vec![
        "schedule",
        "trigger",
        "--namespace",
        env.namespace.as_str(),
        "--schedule-id",
        id.as_str(),
    ];
    if let Some(p) = overlap {
        args.extend(["--overlap-policy", p]);
    }
    temporal::cli(&env.temporal, &args)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!(e))
}

pub(crate) async fn jobs_of(env: &Env, name: &str) -> anyhow::Result<Vec<Job>> {
    let api: Api<Job> = env.api();
    let mut jobs = api
        .list(&ListParams::default().labels(&format!("durablejob.dev/name={name}")))
        .await?
        .items;
    jobs.sort_by_key(|j| j.name_any());
    Ok(jobs)
}

async fn a_triggered_run_creates_exactly_one_job_and_succeeds(shared: Arc<Shared>) -> anyhow::Result<()> {
    let (env, runner) = with_runner(&shared, "run-once").await?;
    env.create(manifest(
        "report",
        json!({"schedule": quiet_schedule(), "jobTemplate": job_template(json!({}))}),
    ))
    .await?;
    env.wait_ready("report").await?;
    trigger(&env, "report", None)?;
    let s = last_run(&env, &runner, "report", RunResult::Succeeded).await?;
    let run = &s.recent_runs[0];
    let jobs = jobs_of(&env, "report").await?;
    ensure!(
        jobs.len() == 1,
        "exactly one Job: {:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    let job = &jobs[0];
    ensure!(
        run.job_name.as_deref() == Some(job.name_any().as_str()),
        "recentRuns names the Job: {run:?}"
    );
    ensure!(run.attempts == Some(1) && run.close_time.is_some(), "{run:?}");
    ensure!(
        job.name_any().starts_with("report-") && job.name_any().ends_with("-1"),
        "{}",
        job.name_any()
    );
    let labels = job.labels();
    ensure!(
        labels["durablejob.dev/attempt"] == "1" && labels["durablejob.dev/name"] == "report",
        "{labels:?}"
    );
    ensure!(
        labels["durablejob.dev/scheduled-time"].parse::<i64>().is_ok(),
        "{labels:?}"
    );
    let owner = &job.owner_references()[0];
    ensure!(
        owner.kind == "DurableJob" && Some(owner.uid.clone()) == env.djs.get("report").await?.metadata.uid
    );
    ensure!(s.last_successful_time.is_some());
    if let Some(creates) = env.audit_count(|r| {
        r.is_write() && r.verb == "create" && r.object_ref.resource == "jobs" && r.response_status.code == 201
    }) {
        ensure!(creates == 1, "one Job created, {creates} creates");
    }
    Ok(())
}

async fn a_job_that_fails_twice_then_succeeds_takes_three_attempts_and_replays_deterministically(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner) = with_runner(&shared, "retry").await?;
    env.create(manifest(
        "flaky",
        json!({
            "schedule": quiet_schedule(),
            "workflow": {"retry": {"initialInterval": "1s", "maximumInterval": "2s", "maximumAttempts": 3}},
            "failedRunsHistoryLimit": 5,
            "jobTemplate": job_template(json!({"test.durablejob.dev/outcomes": "fail,fail,succeed", "test.durablejob.dev/duration": "100ms"})),
        }),
    ))
    .await?;
    env.wait_ready("flaky").await?;
    trigger(&env, "flaky", None)?;
    let s = last_run(&env, &runner, "flaky", RunResult::Succeeded).await?;
    ensure!(s.recent_runs[0].attempts == Some(3), "{:?}", s.recent_runs[0]);
    let jobs = jobs_of(&env, "flaky").await?;
    let outcomes: Vec<(String, String)> = jobs
        .iter()
        .map(|j| {
            let done = j
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| {
                    cs.iter().find(|c| {
                        c.status == "True"
                            && matches!(c.type_.as_str(), "Complete" | "Failed" | "FailureTarget")
                    })
                })
                // FailureTarget comes a moment before Failed; both are the Job controller's verdict
                .map(|c| {
                    if c.type_ == "FailureTarget" {
                        "Failed".to_string()
                    } else {
                        c.type_.clone()
                    }
                })
                .unwrap_or_default();
            (j.labels()["durablejob.dev/attempt"].clone(), done)
        })
        .collect();
    let mut outcomes = outcomes;
    outcomes.sort();
    ensure!(
        outcomes
            == [("1", "Failed"), ("2", "Failed"), ("3", "Complete")]
                .map(|(a, o)| (a.to_string(), o.to_string())),
        "one Job per attempt, judged by the real Job controller: {outcomes:?}"
    );

    // the recorded history replays through the workflow code
    let wid = &s.recent_runs[0].workflow_id;
    crate::replay::replays_recorded(&env, wid, "DURABLEJOB_RECORD_HISTORY").await?;
    Ok(())
}

pub async fn temporal_client(env: &Env) -> anyhow::Result<temporalio_client::Client> {
    use std::str::FromStr;
    let conn = temporalio_client::Connection::connect(
        temporalio_client::ConnectionOptions::new(temporalio_client::Url::from_str(&format!(
            "http://{}",
            env.temporal
        ))?)
        .build(),
    )
    .await?;
    Ok(temporalio_client::Client::new(
        conn,
        temporalio_client::ClientOptions::new(env.namespace.clone()).build(),
    )?)
}

async fn a_run_that_exhausts_its_attempts_ends_failed_with_the_reason(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner) = with_runner(&shared, "exhaust").await?;
    env.create(manifest(
        "doomed",
        json!({
            "schedule": quiet_schedule(),
            "workflow": {"retry": {"initialInterval": "1s", "maximumAttempts": 2}},
            "jobTemplate": job_template(json!({"test.durablejob.dev/outcomes": "fail", "test.durablejob.dev/duration": "100ms"})),
        }),
    ))
    .await?;
    env.wait_ready("doomed").await?;
    trigger(&env, "doomed", None)?;
    let s = last_run(&env, &runner, "doomed", RunResult::Failed).await?;
    let run = &s.recent_runs[0];
    ensure!(run.attempts == Some(2), "{run:?}");
    let message = run.message.clone().unwrap_or_default();
    ensure!(
        message.contains("BackoffLimitExceeded") && message.contains(run.job_name.as_deref().unwrap_or("?")),
        "the reason: {message}"
    );
    ensure!(s.last_failure_time.is_some());
    ensure!(
        condition(&s, "Ready").is_some_and(|c| c.status == "True"),
        "a failed run never makes Ready false"
    );
    // the failure is on the resource for `kubectl describe`, once
    let event = env.wait_event("doomed", "RunFailed").await?;
    ensure!(
        event.contains(&run.workflow_id)
            && event.contains("after 2 attempts")
            && event.contains("BackoffLimitExceeded"),
        "{event}"
    );
    let failed = env.events("doomed").await;
    ensure!(
        failed.iter().filter(|e| e.starts_with("RunFailed:")).count() == 1,
        "one RunFailed Event: {failed:?}"
    );
    Ok(())
}

async fn killing_the_runner_mid_run_neither_loses_the_run_nor_duplicates_its_job(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, mut runner) = with_runner(&shared, "kill").await?;
    env.create(manifest("long", json!({"schedule": quiet_schedule(), "jobTemplate": job_template(json!({"test.durablejob.dev/duration": "6000ms"}))})))
        .await?;
    env.wait_ready("long").await?;
    trigger(&env, "long", None)?;
    let first = wait_for("the Job to start", T, || async {
        jobs_of(&env, "long").await.ok().filter(|j| !j.is_empty())
    })
    .await?;
    runner.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    runner.restart()?;
    let s = last_run(&env, &runner, "long", RunResult::Succeeded).await?;
    ensure!(
        s.recent_runs.len() == 1 && s.recent_runs[0].attempts == Some(1),
        "{:?}",
        s.recent_runs
    );
    let jobs = jobs_of(&env, "long").await?;
    ensure!(
        jobs.len() == 1 && jobs[0].name_any() == first[0].name_any(),
        "the same Job, adopted: {:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    let creates = |code: u16| {
        env.audit_count(|r| {
            r.is_write()
                && r.verb == "create"
                && r.object_ref.resource == "jobs"
                && r.response_status.code == code
        })
    };
    if let (Some(created), Some(adopted)) = (creates(201), creates(409)) {
        ensure!(
            created == 1 && adopted >= 1,
            "one create, then AlreadyExists on resume: {created} created, {adopted} conflicts"
        );
    }
    Ok(())
}

async fn terminate_other_deletes_the_older_runs_job(shared: Arc<Shared>) -> anyhow::Result<()> {
    let (env, runner) = with_runner(&shared, "terminate").await?;
    // a run every 4 seconds whose Job takes a minute: each new run terminates the previous one
    env.create(manifest(
        "replace",
        json!({"schedule": {"intervals": [{"every": "4s"}]}, "overlapPolicy": "TerminateOther",
            "jobTemplate": job_template(json!({"test.durablejob.dev/duration": "60000ms"}))}),
    ))
    .await?;
    env.wait_ready("replace").await?;
    let first = wait_for("the first Job", T, || async {
        jobs_of(&env, "replace").await.ok().filter(|j| !j.is_empty())
    })
    .await?;
    let older = first[0].name_any();
    wait_for(
        "the older Job to be deleted and a newer one to run",
        T,
        || async {
            let jobs = jobs_of(&env, "replace").await.ok()?;
            (!jobs.iter().any(|j| j.name_any() == older) && !jobs.is_empty()).then_some(jobs)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(30)))?;
    env.edit("replace", json!({"suspend": true})).await?;
    let s = env
        .wait_status("replace", "a terminated run in recentRuns", T, |s| {
            s.recent_runs.iter().any(|r| r.result == RunResult::Terminated)
        })
        .await?;
    ensure!(
        s.running_workflows.len() <= 1,
        "one run at a time: {:?}",
        s.running_workflows
    );
    Ok(())
}

async fn history_limits_keep_only_the_newest_finished_jobs(shared: Arc<Shared>) -> anyhow::Result<()> {
    let (env, _runner) = with_runner(&shared, "history").await?;
    env.create(manifest(
        "h",
        json!({"schedule": quiet_schedule(), "overlapPolicy": "AllowAll", "successfulRunsHistoryLimit": 1, "jobTemplate": job_template(json!({"test.durablejob.dev/duration": "50ms"}))}),
    ))
    .await?;
    env.wait_ready("h").await?;
    for i in 0..3 {
        trigger(&env, "h", None)?;
        env.wait_status("h", &format!("run {i} to succeed"), T, |s| {
            s.recent_runs
                .iter()
                .filter(|r| r.result == RunResult::Succeeded)
                .count()
                > i
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(1100)).await; // distinct slots (seconds)
    }
    let jobs = wait_for("older Jobs to be deleted", T, || async {
        jobs_of(&env, "h").await.ok().filter(|j| j.len() == 1)
    })
    .await?;
    let s = env.djs.get("h").await?.status.unwrap_or_default();
    ensure!(
        s.recent_runs[0].job_name.as_deref() == Some(jobs[0].name_any().as_str()),
        "the newest Job is kept"
    );
    Ok(())
}

async fn a_worker_deployment_appears_rolls_and_drives_worker_available(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "worker", &[]).await?;
    env.create(manifest(
        "sync",
        json!({"schedule": quiet_schedule(), "workflow": {"type": "InvoiceSync"}, "worker": {"image": "example/worker:1", "replicas": 2, "env": [{"name": "MODE", "value": "fast"}], "rollout": {"strategy": "None"}}}),
    ))
    .await?;
    let deployments: Api<Deployment> = env.api();
    let s = env.wait_ready("sync").await?;
    ensure!(
        condition(&s, "WorkerAvailable").is_some_and(|c| c.status == "True"),
        "{:?}",
        s.conditions
    );
    ensure!(
        s.worker
            .as_ref()
            .is_some_and(|w| w.deployment == "sync-worker" && w.ready_replicas == 2),
        "{:?}",
        s.worker
    );
    let d = deployments.get("sync-worker").await?;
    let c = &d.spec.template.spec.as_ref().unwrap().containers[0];
    ensure!(c.image.as_deref() == Some("example/worker:1"));
    let env_vars: Vec<(String, String)> = c
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    ensure!(
        env_vars.contains(&("TEMPORAL_ADDRESS".into(), env.temporal.clone())),
        "{env_vars:?}"
    );
    ensure!(
        env_vars.contains(&("TEMPORAL_NAMESPACE".into(), env.namespace.clone())),
        "{env_vars:?}"
    );
    ensure!(
        env_vars.contains(&(
            "TEMPORAL_TASK_QUEUE".into(),
            format!("durablejob.{}.sync", env.namespace)
        )),
        "{env_vars:?}"
    );
    ensure!(env_vars.contains(&("MODE".into(), "fast".into())), "{env_vars:?}");
    ensure!(d.owner_references()[0].kind == "DurableJob");
    let d2 = env.describe("sync")?.unwrap();
    ensure!(
        d2["schedule"]["action"]["startWorkflow"]["taskQueue"]["name"]
            == format!("durablejob.{}.sync", env.namespace)
    );

    // an image change rolls the Deployment
    env.edit("sync", json!({"worker": {"image": "example/worker:2"}}))
        .await?;
    wait_for("the Deployment to roll", T, || async {
        let d = deployments.get("sync-worker").await.ok()?;
        let image = d.spec.template.spec.as_ref()?.containers[0].image.clone()?;
        (image == "example/worker:2" && d.metadata.generation == Some(2)).then_some(())
    })
    .await?;
    env.wait_ready("sync").await?;

    // a worker whose pods never become ready makes the resource not Ready (a stuck rollout
    // of an available worker does not: its old ReplicaSet keeps serving, as Kubernetes says)
    env.create(manifest(
        "broken",
        json!({"schedule": quiet_schedule(), "workflow": {"type": "InvoiceSync"}, "worker": {"image": "example/worker:1", "rollout": {"strategy": "None"},
            "template": {"metadata": {"annotations": {"test.durablejob.dev/unavailable": "true"}}}}}),
    ))
    .await?;
    let s = env
        .wait_status("broken", "WorkerAvailable=False", T, |s| {
            condition(s, "WorkerAvailable").is_some_and(|c| c.status == "False")
        })
        .await?;
    ensure!(
        condition(&s, "Ready").is_some_and(|c| c.status == "False" && c.reason == "WorkerUnavailable"),
        "{:?}",
        s.conditions
    );

    // switching to the built-in runner removes the Deployment
    let mut jt = serde_json::Map::new();
    jt.insert("worker".into(), Value::Null);
    jt.insert("workflow".into(), Value::Null);
    jt.insert("jobTemplate".into(), job_template(json!({})));
    env.edit("sync", Value::Object(jt)).await?;
    wait_for("the Deployment to be deleted", T, || async {
        deployments
            .get_opt("sync-worker")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await?;
    let s = env.wait_ready("sync").await?;
    ensure!(
        s.worker.is_none() && condition(&s, "WorkerAvailable").is_none(),
        "{s:?}"
    );
    Ok(())
}

async fn a_job_past_its_active_deadline_ends_the_run_as_job_deadline_exceeded(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner) = with_runner(&shared, "deadline").await?;
    // the pod would run an hour; the real Job controller stops the Job after 2 seconds
    let mut jt = job_template(json!({"test.durablejob.dev/duration": "1h"}));
    jt["spec"]["activeDeadlineSeconds"] = json!(2);
    env.create(manifest(
        "slow",
        json!({
            "schedule": quiet_schedule(),
            "workflow": {"retry": {"initialInterval": "1s", "maximumAttempts": 3, "nonRetryableErrorTypes": ["JobDeadlineExceeded"]}},
            "jobTemplate": jt,
        }),
    ))
    .await?;
    env.wait_ready("slow").await?;
    trigger(&env, "slow", None)?;
    let s = last_run(&env, &runner, "slow", RunResult::Failed).await?;
    let run = &s.recent_runs[0];
    ensure!(
        run.attempts == Some(1),
        "JobDeadlineExceeded is not retried when listed as non-retryable: {run:?}"
    );
    ensure!(
        run.message
            .as_deref()
            .is_some_and(|m| m.contains("DeadlineExceeded")),
        "{run:?}"
    );
    // the Job controller marks FailureTarget first and Failed once the pod has stopped
    let reason = wait_for("the Job controller to fail the Job", T, || async {
        let jobs = jobs_of(&env, "slow").await.ok()?;
        jobs.first()?
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Failed" && c.status == "True")
            .and_then(|c| c.reason.clone())
    })
    .await?;
    ensure!(
        reason == "DeadlineExceeded",
        "the Job controller's reason: {reason}"
    );
    Ok(())
}

async fn deleting_a_durablejob_garbage_collects_its_jobs_and_pods(shared: Arc<Shared>) -> anyhow::Result<()> {
    let (env, _runner) = with_runner(&shared, "gc").await?;
    env.create(manifest(
        "doomed",
        json!({"schedule": quiet_schedule(), "jobTemplate": job_template(json!({"test.durablejob.dev/duration": "1h"}))}),
    ))
    .await?;
    env.wait_ready("doomed").await?;
    trigger(&env, "doomed", None)?;
    let pods: Api<Pod> = env.api();
    let selector = ListParams::default().labels("durablejob.dev/name=doomed");
    wait_for("the run's pod to be Running", T, || async {
        let list = pods.list(&selector).await.ok()?;
        list.items
            .iter()
            .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .then_some(())
    })
    .await?;
    env.djs.delete("doomed", &DeleteParams::default()).await?;
    wait_for("the garbage collector to remove the Jobs and pods", T, || async {
        let jobs = jobs_of(&env, "doomed").await.ok()?;
        let left = pods.list(&selector).await.ok()?.items;
        (jobs.is_empty() && left.is_empty()).then_some(())
    })
    .await?;
    ensure!(env.djs.get_opt("doomed").await?.is_none());
    Ok(())
}

async fn the_longest_name_runs_a_job_its_label_finds_and_a_longer_one_is_refused_at_apply(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner) = with_runner(&shared, "long-name").await?;
    let name = format!(
        "{:x<63}",
        "nightly-report-for-the-accounting-team-of-the-eu-region-"
    );
    ensure!(name.len() == 63);
    env.create(manifest(
        &name,
        json!({"schedule": quiet_schedule(), "jobTemplate": job_template(json!({"test.durablejob.dev/duration": "50ms"}))}),
    ))
    .await?;
    env.wait_ready(&name).await?;
    trigger(&env, &name, None)?;
    let s = last_run(&env, &runner, &name, RunResult::Succeeded).await?;
    let jobs = jobs_of(&env, &name).await?;
    ensure!(
        jobs.len() == 1 && s.recent_runs[0].job_name.as_deref() == Some(jobs[0].name_any().as_str()),
        "the label durablejob.dev/name finds exactly its Job: {:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    ensure!(jobs[0].name_any().len() <= 63, "{}", jobs[0].name_any());
    // one character more: refused by the API server when applied, saying the limit and why
    let longer = manifest(
        &format!("{name}y"),
        json!({"schedule": quiet_schedule(), "jobTemplate": job_template(json!({}))}),
    );
    let (ok, out) = tokio::task::block_in_place(|| {
        crate::env::cluster().kubectl().run(
            &["apply", "-n", &env.namespace, "-f", "-"],
            Some(&longer.to_string()),
        )
    });
    ensure!(
        !ok && out.contains("may have at most 63 characters") && out.contains("durablejob.dev/name"),
        "{out}"
    );
    Ok(())
}
