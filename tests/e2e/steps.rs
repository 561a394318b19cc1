//! Issue 24, multi-step runs: `spec.steps` run in order by the built-in runner, one Job per step
//! and attempt; a step that finished never runs again in that run, whether a later step is
//! retried or the runner is killed and restarted.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use durablejob::api::{ItemProgress, RunProgress, RunResult};
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{Api, ResourceExt, api::ListParams};
use serde_json::{Value, json};

use crate::Shared;
use crate::env::{Env, manifest, quiet_schedule, wait_for};
use crate::runs::{jobs_of, last_run, trigger, with_runner};
use testsupport::job_template;

scenarios!(
    a_three_step_run_retries_only_its_failing_step_and_runs_every_other_step_once,
    a_runner_killed_during_a_step_resumes_there_and_never_reruns_a_finished_step,
    a_fan_out_over_fifty_listed_items_goes_on_past_four_failures_and_names_them,
    a_cancel_during_a_fan_out_deletes_every_running_items_job,
    a_dag_runs_its_two_branches_at_once_and_joins_them_with_their_results,
);

const T: Duration = Duration::from_secs(60);

fn step(name: &str, pod_annotations: Value) -> Value {
    json!({"name": name, "jobTemplate": job_template(pod_annotations)})
}

/// Creates of Jobs the API server answered with `code`, by Job name (`None` off the audit log).
fn job_creates(env: &Env, code: u16, name: &str) -> Option<usize> {
    env.audit_count(|r| {
        r.is_write()
            && r.verb == "create"
            && r.object_ref.resource == "jobs"
            && r.object_ref.name == name
            && r.response_status.code == code
    })
}

/// The steps of the "etl" DurableJobs below, in the order they run.
const ETL: [&str; 3] = ["extract", "transform", "load"];

/// The Jobs of `name`, as (step, attempt, Job name), in the order they were created: by
/// creation second, then (within one second) by the step's place in `order` and the attempt.
async fn step_jobs(env: &Env, name: &str, order: &[&str]) -> anyhow::Result<Vec<(String, String, String)>> {
    let jobs: Vec<Job> = jobs_of(env, name).await?;
    let mut seen = jobs
        .iter()
        .map(|j| {
            let l = j.labels();
            let step = l.get("durablejob.dev/step").cloned().context("the step label")?;
            let attempt: u32 = l["durablejob.dev/attempt"].parse()?;
            let place = order.iter().position(|s| *s == step);
            Ok((
                (j.creation_timestamp(), place, attempt),
                (step, attempt.to_string(), j.name_any()),
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(seen.into_iter().map(|(_, job)| job).collect())
}

async fn a_three_step_run_retries_only_its_failing_step_and_runs_every_other_step_once(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner) = with_runner(&shared, "steps").await?;
    let flaky =
        json!({"test.durablejob.dev/outcomes": "fail,fail,succeed", "test.durablejob.dev/duration": "100ms"});
    let mut transform = step("transform", flaky);
    transform["retry"] = json!({"initialInterval": "1s", "maximumInterval": "2s", "maximumAttempts": 3});
    env.create(manifest(
        "etl",
        json!({"schedule": quiet_schedule(), "failedRunsHistoryLimit": 5,
            "steps": [step("extract", json!({"test.durablejob.dev/duration": "100ms", "test.durablejob.dev/result": "{\"rows\": 3}"})), transform,
                      step("load", json!({"test.durablejob.dev/duration": "100ms"}))]}),
    ))
    .await?;
    env.wait_ready("etl").await?;
    trigger(&env, "etl", None)?;
    let s = last_run(&env, &runner, "etl", RunResult::Succeeded).await?;

    // one Job per step and attempt, in order: transform's two failures retried it alone
    let jobs = step_jobs(&env, "etl", &ETL).await?;
    let seen: Vec<(&str, &str)> = jobs.iter().map(|(s, a, _)| (s.as_str(), a.as_str())).collect();
    ensure!(
        seen == [
            ("extract", "1"),
            ("transform", "1"),
            ("transform", "2"),
            ("transform", "3"),
            ("load", "1")
        ],
        "{seen:?}"
    );
    for (step, attempt, name) in &jobs {
        ensure!(name.ends_with(&format!("-{step}-{attempt}")), "{name}");
        if let Some(created) = job_creates(&env, 201, name) {
            ensure!(created == 1, "Job {name} created {created} times");
        }
    }
    let run = &s.recent_runs[0];
    ensure!(
        run.job_name.as_deref() == Some(jobs[4].2.as_str()),
        "the run names its last Job: {run:?}"
    );
    // each step's pods learn their step
    let load: Job = env.api().get(&jobs[4].2).await?;
    let container = &load
        .spec
        .context("spec")?
        .template
        .spec
        .context("pod")?
        .containers[0];
    let step_env = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "DURABLEJOB_STEP")
        .and_then(|e| e.value.clone());
    ensure!(step_env.as_deref() == Some("load"), "{step_env:?}");

    // the runner counts each step's Jobs by result
    let metrics = crate::operator::scrape(runner.metrics_port).await;
    for line in [
        r#"durablejob_step_jobs_total{namespace="e2e-steps",name="etl",step="transform",result="Failed"} 2"#,
        r#"durablejob_step_jobs_total{namespace="e2e-steps",name="etl",step="transform",result="Succeeded"} 1"#,
        r#"durablejob_step_jobs_total{namespace="e2e-steps",name="etl",step="load",result="Succeeded"} 1"#,
        // the run counts once, as it ended: its failed attempts were a step's
        r#"durablejob_runs_total{namespace="e2e-steps",name="etl",result="Succeeded"} 1"#,
    ] {
        ensure!(metrics.contains(line), "missing {line} in the runner's metrics");
    }
    ensure!(
        !metrics.contains(r#"durablejob_runs_total{namespace="e2e-steps",name="etl",result="Failed"}"#),
        "a step's failed attempt is not a failed run"
    );

    // the recorded history replays through the workflow code
    crate::replay::replays_recorded(&env, &run.workflow_id, "DURABLEJOB_RECORD_STEPS_HISTORY").await?;
    Ok(())
}

async fn a_runner_killed_during_a_step_resumes_there_and_never_reruns_a_finished_step(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, mut runner) = with_runner(&shared, "steps-kill").await?;
    env.create(manifest(
        "etl",
        json!({"schedule": quiet_schedule(),
            "steps": [step("extract", json!({"test.durablejob.dev/duration": "100ms"})),
                      step("transform", json!({"test.durablejob.dev/duration": "6000ms"})),
                      step("load", json!({"test.durablejob.dev/duration": "100ms"}))]}),
    ))
    .await?;
    env.wait_ready("etl").await?;
    trigger(&env, "etl", None)?;
    let transform = wait_for("the transform step's Job", T, || async {
        let jobs = step_jobs(&env, "etl", &ETL).await.ok()?;
        jobs.into_iter()
            .find(|(s, _, _)| s == "transform")
            .map(|(_, _, n)| n)
    })
    .await?;
    // the status says which step the run is at
    env.wait_status("etl", "the running step in the status", T, |s| {
        s.running_workflows.first().and_then(|w| w.step.as_deref()) == Some("transform (2/3)")
    })
    .await?;
    runner.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    runner.restart()?;
    last_run(&env, &runner, "etl", RunResult::Succeeded).await?;
    let jobs = step_jobs(&env, "etl", &ETL).await?;
    let seen: Vec<(&str, &str)> = jobs.iter().map(|(s, a, _)| (s.as_str(), a.as_str())).collect();
    ensure!(
        seen == [("extract", "1"), ("transform", "1"), ("load", "1")],
        "{seen:?}"
    );
    ensure!(jobs[1].2 == transform, "transform's Job adopted, not made again");
    let extract = &jobs[0].2;
    if let (Some(extract_creates), Some(transform_creates), Some(adopted)) = (
        job_creates(&env, 201, extract),
        job_creates(&env, 201, &transform),
        job_creates(&env, 409, &transform),
    ) {
        ensure!(
            extract_creates == 1 && job_creates(&env, 409, extract) == Some(0),
            "the finished step was not run again: {extract_creates} creates"
        );
        ensure!(
            transform_creates == 1 && adopted >= 1,
            "the step resumed on its Job: {transform_creates} creates, {adopted} conflicts"
        );
    }
    Ok(())
}

async fn a_fan_out_over_fifty_listed_items_goes_on_past_four_failures_and_names_them(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (mut env, runner) = with_runner(&shared, "fan-out").await?;
    let accounts: Vec<String> = (0..50).map(|i| format!("acct-{i}")).collect();
    let list = json!({"test.durablejob.dev/duration": "100ms",
        "test.durablejob.dev/result": serde_json::to_string(&accounts)?});
    let mut migrate = step(
        "migrate",
        json!({"test.durablejob.dev/duration": "100ms", "test.durablejob.dev/fail-items": "3,17,22,41"}),
    );
    migrate["forEach"] = json!({"fromStep": "list", "parallelism": 5});
    migrate["continueOnItemFailure"] = json!(true);
    migrate["retry"] = json!({"initialInterval": "1s", "maximumAttempts": 2});
    env.create(manifest(
        "accounts",
        json!({"schedule": quiet_schedule(), "successfulRunsHistoryLimit": 100, "failedRunsHistoryLimit": 100,
            "steps": [step("list", list), migrate, step("report", json!({"test.durablejob.dev/duration": "100ms"}))]}),
    ))
    .await?;
    env.wait_ready("accounts").await?;
    trigger(&env, "accounts", None)?;
    let s = env
        .wait_status(
            "accounts",
            "the run to end partially failed",
            Duration::from_secs(150),
            |s| {
                s.recent_runs
                    .first()
                    .is_some_and(|r| r.result == RunResult::PartiallyFailed)
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(30)))?;
    let message = s.recent_runs[0].message.clone().unwrap_or_default();
    ensure!(
        message.starts_with(
            r#"step migrate: 4 of 50 items failed: #3 "acct-3", #17 "acct-17", #22 "acct-22", #41 "acct-41""#
        ),
        "{message}"
    );
    // the run's last progress: every step done, the fan-out's items 46 / 4
    let progress = s.recent_runs[0].progress.clone().context("the run's progress")?;
    ensure!(
        progress.summary() == "3/3 steps; 50 items of migrate: 46 succeeded, 4 failed, 0 running, 0 pending",
        "{progress:?}"
    );
    // the runner counts the run once, partially failed (not a failed run per failed item)
    let metrics = crate::operator::scrape(runner.metrics_port).await;
    let runs_line = |result: &str| {
        format!(
            r#"durablejob_runs_total{{namespace="{}",name="accounts",result="{result}"}}"#,
            env.namespace
        )
    };
    ensure!(
        metrics.contains(&format!("{} 1", runs_line("PartiallyFailed")))
            && !metrics.contains(&runs_line("Failed")),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("durablejob_runs_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // one Job per item and attempt (the four failed ones twice), list and report once each
    let jobs = jobs_of(&env, "accounts").await?;
    let count = |step: &str| {
        jobs.iter()
            .filter(|j| j.labels().get("durablejob.dev/step").map(String::as_str) == Some(step))
            .count()
    };
    ensure!(
        (count("list"), count("migrate"), count("report")) == (1, 46 + 4 * 2, 1),
        "{:?}",
        (count("list"), count("migrate"), count("report"))
    );
    let item17: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.labels().get("durablejob.dev/item").map(String::as_str) == Some("17"))
        .collect();
    ensure!(item17.len() == 2, "item 17 tried twice: {}", item17.len());
    let item_env = item17[0]
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].env.clone().unwrap_or_default())
        .unwrap_or_default();
    ensure!(
        item_env
            .iter()
            .any(|e| e.name == "DURABLEJOB_ITEM" && e.value.as_deref() == Some("acct-17")),
        "{item_env:?}"
    );
    // the run's result in Temporal names every failed item
    let wid = &s.recent_runs[0].workflow_id;
    let history = crate::replay::replays_recorded(&env, wid, "DURABLEJOB_RECORD_FAN_OUT_HISTORY").await?;
    let completed = history.iter().rev().find_map(|e| match &e.attributes {
        Some(temporalio_common::protos::temporal::api::history::v1::history_event::Attributes::WorkflowExecutionCompletedEventAttributes(a)) => a.result.clone(),
        _ => None,
    });
    let payload = completed
        .context("a completed run")?
        .payloads
        .into_iter()
        .next()
        .context("its result")?;
    let result: Value = serde_json::from_slice(&payload.data)?;
    let failed: Vec<u64> = result["steps"][1]["items"]["failed"]
        .as_array()
        .context("failed items")?
        .iter()
        .filter_map(|f| f["index"].as_u64())
        .collect();
    ensure!(failed == [3, 17, 22, 41], "{failed:?}");
    ensure!(result["steps"][1]["items"]["succeeded"] == 46, "{result}");

    // the items' bug fixed, `retry` runs the four failed items only: list and report, and the
    // 46 items that succeeded, are taken over
    let mut fixed = env.djs.get("accounts").await?.spec.steps.context("steps")?;
    let pod = &mut fixed[1].job_template["spec"]["template"]["metadata"]["annotations"];
    pod.as_object_mut()
        .context("annotations")?
        .remove("test.durablejob.dev/fail-items");
    env.edit("accounts", json!({"steps": fixed})).await?;
    env.wait_status("accounts", "the fixed spec in the schedule", T, |s| {
        s.observed_generation == Some(2)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
    .await?;
    let failed_run = s.recent_runs[0].workflow_id.clone();
    let plugin = crate::control::Plugin::new(&mut env)?;
    let out = plugin.ok(&["retry", "accounts", "--run", &failed_run, "--wait"])?;
    ensure!(
        out.contains("Succeeded") && out.contains("takes over steps list, report; 46 items of migrate"),
        "{out}"
    );
    let retried = env
        .wait_status("accounts", "the retry to succeed", T, |s| {
            s.recent_runs
                .first()
                .is_some_and(|r| r.workflow_id != failed_run && r.result == RunResult::Succeeded)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(30)))?;
    let retry = &retried.recent_runs[0];
    ensure!(
        retry.message.as_deref() == Some(format!("retry of {failed_run}").as_str()),
        "{retry:?}"
    );
    let made: Vec<Job> = jobs_of(&env, "accounts")
        .await?
        .into_iter()
        .filter(|j| j.annotations().get("durablejob.dev/workflow-id") == Some(&retry.workflow_id))
        .collect();
    let mut items: Vec<String> = made
        .iter()
        .map(|j| {
            format!(
                "{}/{}",
                j.labels()["durablejob.dev/step"],
                j.labels().get("durablejob.dev/item").cloned().unwrap_or_default()
            )
        })
        .collect();
    items.sort();
    ensure!(
        items == ["migrate/17", "migrate/22", "migrate/3", "migrate/41"],
        "the retry made exactly the failed items' Jobs: {items:?}"
    );
    plugin.fails(&["retry", "accounts", "--run", &retry.workflow_id, "--wait"])?;
    Ok(())
}

async fn a_cancel_during_a_fan_out_deletes_every_running_items_job(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner) = with_runner(&shared, "fan-cancel").await?;
    let mut slow = step("slow", json!({"test.durablejob.dev/duration": "60000ms"}));
    slow["forEach"] = json!({"items": (0..10).collect::<Vec<u32>>(), "parallelism": 4});
    env.create(manifest(
        "fan",
        json!({"schedule": quiet_schedule(), "steps": [slow]}),
    ))
    .await?;
    env.wait_ready("fan").await?;
    trigger(&env, "fan", None)?;
    let running = wait_for("four items' Jobs", T, || async {
        let jobs = jobs_of(&env, "fan").await.ok()?;
        (jobs.len() == 4).then_some(jobs)
    })
    .await?;
    // the status shows the fan-out's items as they stand (from the run's progress memo)
    let want = RunProgress {
        steps_done: 0,
        steps_total: 1,
        running: vec!["slow".into()],
        items: Some(ItemProgress {
            step: "slow".into(),
            total: 10,
            succeeded: 0,
            failed: 0,
            running: 4,
            pending: 6,
        }),
    };
    let wid = wait_for("the run's progress in the status", T, || async {
        let dj = env.djs.get("fan").await.ok()?;
        let run = dj.status?.running_workflows.first()?.clone();
        (run.progress.as_ref() == Some(&want)).then_some(run.workflow_id)
    })
    .await?;
    let args = [
        "workflow",
        "signal",
        "--namespace",
        env.namespace.as_str(),
        "--workflow-id",
        wid.as_str(),
        "--name",
        "cancel",
    ];
    crate::temporal::cli(&env.temporal, &args).map_err(|e| anyhow::anyhow!("signal: {e}"))?;
    last_run(&env, &runner, "fan", RunResult::Canceled).await?;
    wait_for("every item's Job to be deleted", T, || async {
        jobs_of(&env, "fan").await.ok()?.is_empty().then_some(())
    })
    .await?;
    let deleted = env.audit_count(|r| r.is_write() && r.verb == "delete" && r.object_ref.resource == "jobs");
    if let Some(deleted) = deleted {
        ensure!(
            deleted >= running.len(),
            "{deleted} Job deletes for {} running items",
            running.len()
        );
    }
    let created = env.audit_count(|r| {
        r.is_write() && r.verb == "create" && r.object_ref.resource == "jobs" && r.response_status.code == 201
    });
    if let Some(created) = created {
        ensure!(
            created == 4,
            "no item started after the cancel: {created} Jobs created"
        );
    }
    Ok(())
}

async fn a_dag_runs_its_two_branches_at_once_and_joins_them_with_their_results(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner) = with_runner(&shared, "dag").await?;
    let after = |name: &str, on: &[&str], pod: Value| {
        let mut s = step(name, pod);
        s["dependsOn"] = json!(on);
        s
    };
    let slow = |result: &str| json!({"test.durablejob.dev/duration": "4000ms", "test.durablejob.dev/result": result});
    env.create(manifest(
        "dag",
        json!({"schedule": quiet_schedule(), "steps": [
            step("root", json!({"test.durablejob.dev/duration": "100ms", "test.durablejob.dev/result": "\"r\""})),
            after("left", &["root"], slow("\"l\"")),
            after("right", &["root"], slow("\"x\"")),
            after("join", &["left", "right"], json!({"test.durablejob.dev/duration": "100ms"})),
        ]}),
    ))
    .await?;
    env.wait_ready("dag").await?;
    trigger(&env, "dag", None)?;
    last_run(&env, &runner, "dag", RunResult::Succeeded).await?;
    let jobs: Vec<Job> = jobs_of(&env, "dag").await?;
    let of = |step: &str| {
        jobs.iter()
            .find(|j| j.labels().get("durablejob.dev/step").map(String::as_str) == Some(step))
            .with_context(|| format!("step {step}'s Job"))
    };
    // from the Job's creation to its pod's end (the run goes on as the pod succeeds; the Job
    // controller marks the Job Complete a second later)
    let pods: Api<Pod> = env.api();
    let span = async |j: &Job| -> anyhow::Result<(i64, i64)> {
        let created = j.creation_timestamp().context("created")?.0.as_second();
        let selector = format!("batch.kubernetes.io/job-name={}", j.name_any());
        let listed = pods.list(&ListParams::default().labels(&selector)).await?;
        let done = listed
            .items
            .iter()
            .filter_map(|p| {
                p.status
                    .as_ref()?
                    .container_statuses
                    .as_ref()?
                    .first()?
                    .state
                    .as_ref()?
                    .terminated
                    .as_ref()?
                    .finished_at
                    .clone()
            })
            .max()
            .with_context(|| format!("the end of {}'s pod", j.name_any()))?
            .0
            .as_second();
        Ok((created, done))
    };
    let (root, left, right, join) = (
        span(of("root")?).await?,
        span(of("left")?).await?,
        span(of("right")?).await?,
        span(of("join")?).await?,
    );
    ensure!(
        left.0 >= root.1 && right.0 >= root.1,
        "the branches wait for root: {root:?} {left:?} {right:?}"
    );
    ensure!(
        left.0 < right.1 && right.0 < left.1,
        "the two branches ran at once: left {left:?}, right {right:?}"
    );
    ensure!(join.0 >= left.1.max(right.1), "join waits for both: {join:?}");
    let env_of = |j: &Job, var: &str| {
        j.spec.as_ref()?.template.spec.as_ref()?.containers[0]
            .env
            .iter()
            .flatten()
            .find(|e| e.name == var)
            .and_then(|e| e.value.clone())
    };
    let joined = of("join")?;
    ensure!(
        env_of(joined, "DURABLEJOB_RESULT_ROOT").as_deref() == Some("\"r\"")
            && env_of(joined, "DURABLEJOB_RESULT_LEFT").as_deref() == Some("\"l\"")
            && env_of(joined, "DURABLEJOB_RESULT_RIGHT").as_deref() == Some("\"x\""),
        "join sees the results of every step it waits for"
    );
    ensure!(
        env_of(of("left")?, "DURABLEJOB_RESULT_RIGHT").is_none(),
        "a branch does not see the other's result"
    );
    Ok(())
}
