//! Issue 21: a namespace's DurableJobs can touch nothing outside that namespace. Each scenario
//! plays a tenant who may edit DurableJobs in its own namespace only (the shipped
//! `durablejob-edit` role, through impersonation) or who can reach the Temporal frontend (no
//! Temporal auth, as in the default install), tries the attacks of the issue and more, and
//! checks from the API server's audit log that the victim's namespace saw no write caused by
//! them, and that each refusal names its reason.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt, api::PostParams};
use serde_json::{Value, json};

use crate::Shared;
use crate::env::{Env, cluster, condition, manifest, quiet_schedule, wait_for};
use crate::operator::{Runner, scrape};
use crate::temporal;

scenarios!(
    forged_runs_and_activities_on_the_runners_queue_never_touch_the_victims_jobs,
    the_operator_refuses_what_would_cross_a_namespace_and_says_why,
);

const T: Duration = Duration::from_secs(60);

fn cli(env: &Env, args: &[&str]) -> anyhow::Result<String> {
    temporal::cli(&env.temporal, args).map_err(|e| anyhow::anyhow!("temporal {}: {e}", args.join(" ")))
}

/// Names of the finished Jobs of DurableJob `name`.
async fn job_names(env: &Env, name: &str) -> anyhow::Result<Vec<String>> {
    let api: Api<k8s_openapi::api::batch::v1::Job> = env.api();
    let mut names: Vec<String> = api
        .list(&kube::api::ListParams::default().labels(&format!("durablejob.dev/name={name}")))
        .await?
        .items
        .iter()
        .map(|j| j.name_any())
        .collect();
    names.sort();
    Ok(names)
}

/// Waits until workflow `id` in Temporal namespace `ns` has closed; its status and its history.
async fn closed_workflow(env: &Env, ns: &str, id: &str, runner: &Runner) -> anyhow::Result<(String, String)> {
    let described = wait_for(&format!("workflow {id} to close"), T, || {
        let d = temporal::cli_json(
            &env.temporal,
            &["workflow", "describe", "--namespace", ns, "--workflow-id", id],
        )
        .ok();
        async move {
            let d = d?;
            let status = d["workflowExecutionInfo"]["status"].as_str()?.to_string();
            (status != "WORKFLOW_EXECUTION_STATUS_RUNNING").then_some(status)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(30)))?;
    let history = temporal::cli_json(
        &env.temporal,
        &["workflow", "show", "--namespace", ns, "--workflow-id", id],
    )?;
    Ok((described, history.to_string()))
}

/// Waits until standalone activity `id` has closed; its description.
async fn closed_activity(env: &Env, ns: &str, id: &str, runner: &Runner) -> anyhow::Result<Value> {
    wait_for(&format!("activity {id} to close"), T, || {
        let d = temporal::cli_json(
            &env.temporal,
            &["activity", "describe", "--namespace", ns, "--activity-id", id],
        )
        .ok();
        async move {
            let d = d?;
            (d["info"]["status"] != "ACTIVITY_EXECUTION_STATUS_RUNNING").then_some(d)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(30)))
}

async fn forged_runs_and_activities_on_the_runners_queue_never_touch_the_victims_jobs(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let victim = Env::new(&shared, "ten-victim", &[]).await?;
    let attacker = Env::new(&shared, "ten-attacker", &[]).await?;
    // one runner with cluster-wide rights serves both teams' Temporal namespaces
    let served = format!("{},{}", victim.namespace, attacker.namespace);
    let runner = Runner::start_with(
        &victim.dir,
        &victim.runner_kubeconfig,
        &victim.temporal,
        &victim.namespace,
        &["--temporal-namespaces", &served],
    )?;
    let vns = victim.namespace.clone();
    let ans = attacker.namespace.clone();
    victim
        .create(manifest(
            "report",
            json!({"schedule": quiet_schedule(), "overlapPolicy": "AllowAll", "successfulRunsHistoryLimit": 2,
                   "jobTemplate": testsupport::job_template(json!({"test.durablejob.dev/duration": "50ms"}))}),
        ))
        .await?;
    victim.wait_ready("report").await?;
    let schedule_id = victim.schedule_id("report");
    // the victim's own runs work: two finished Jobs
    for i in 0..2 {
        cli(
            &victim,
            &[
                "schedule",
                "trigger",
                "--namespace",
                &vns,
                "--schedule-id",
                &schedule_id,
            ],
        )?;
        victim
            .wait_status("report", &format!("run {i} to succeed"), T, |s| {
                s.recent_runs
                    .iter()
                    .filter(|r| r.result == durablejob::api::RunResult::Succeeded)
                    .count()
                    > i
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(30)))?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let jobs = wait_for("the victim's two Jobs", T, || async {
        job_names(&victim, "report").await.ok().filter(|j| j.len() == 2)
    })
    .await?;
    let victim_writes = |victim: &Env| {
        victim.audit_count(|e| {
            e.is_write()
                && !e.is_dry_run()
                && (e.object_ref.resource == "jobs" || e.object_ref.resource == "pods")
                && (e.verb == "create" || e.verb == "delete" || e.verb == "deletecollection")
        })
    };
    let runner_sa = |e: &testsupport::AuditEvent| e.is_service_account(&vns, "durablejob-runner");
    let writes_before = victim_writes(&victim);
    let runner_writes_before = victim.audit_count(|e| e.is_write() && runner_sa(e));

    // The victim's exact input, with history limits of 0: what an attacker copies from the
    // schedule (anyone who can describe it) to make the runner act for the victim.
    let described = victim.describe("report")?.context("the victim's schedule")?;
    let mut input =
        temporal::payload(&described["schedule"]["action"]["startWorkflow"]["input"]["payloads"][0]);
    ensure!(input["uid"].is_string(), "the action's input: {described}");
    input["successfulRunsHistoryLimit"] = json!(0);
    input["failedRunsHistoryLimit"] = json!(0);
    let input = input.to_string();
    let start = |ns: &str, id: &str, extra: &[&str]| {
        let mut args = vec![
            "workflow",
            "start",
            "--namespace",
            ns,
            "--task-queue",
            "durablejob-runner",
            "--type",
            "durablejob.run",
            "--workflow-id",
            id,
            "--input",
            &input,
        ];
        args.extend_from_slice(extra);
        cli(&victim, &args).map(|_| ())
    };
    // 1. started directly in the victim's Temporal namespace
    start(&vns, "forged-direct", &[])?;
    // 2. the same, claiming the victim's schedule in the search attribute Temporal sets on
    //    scheduled runs (whoever starts a workflow may set it)
    let claim = format!("TemporalScheduledById=\"{schedule_id}\"");
    start(&vns, "forged-scheduled-by", &["--search-attribute", &claim])?;
    // 3. from the attacker's own Temporal namespace, which the same runner polls
    start(&ans, "forged-other-namespace", &[])?;
    // 4. a second schedule with the victim's schedule id, in the attacker's Temporal namespace
    cli(
        &victim,
        &[
            "schedule",
            "create",
            "--namespace",
            &ans,
            "--schedule-id",
            &schedule_id,
            "--interval",
            "24h",
            "--type",
            "durablejob.run",
            "--task-queue",
            "durablejob-runner",
            "--workflow-id",
            &schedule_id,
            "--input",
            &input,
        ],
    )?;
    cli(
        &victim,
        &[
            "schedule",
            "trigger",
            "--namespace",
            &ans,
            "--schedule-id",
            &schedule_id,
        ],
    )?;
    // 5. the runner's activities started on their own (standalone activities), with no workflow
    let uid = input_uid(&input)?;
    let cleanup = json!({"namespace": vns, "name": "report", "uid": uid,
        "successfulRunsHistoryLimit": 0, "failedRunsHistoryLimit": 0})
    .to_string();
    let attempt = json!({"run": serde_json::from_str::<Value>(&input)?, "slot": chrono::Utc::now().timestamp(), "attempt": 1,
        "workflowId": "forged", "runId": "forged"})
    .to_string();
    let delete = json!([vns, jobs[0]]).to_string();
    let standalone = [
        ("standalone-cleanup", "durablejob.cleanupJobs", cleanup.as_str()),
        ("standalone-run", "durablejob.runJob", attempt.as_str()),
        ("standalone-delete", "durablejob.deleteJob", delete.as_str()),
    ];
    for (id, type_, input) in standalone {
        cli(
            &victim,
            &[
                "activity",
                "start",
                "--namespace",
                &vns,
                "--activity-id",
                id,
                "--type",
                type_,
                "--task-queue",
                "durablejob-runner",
                "--start-to-close-timeout",
                "1m",
                "--retry-maximum-attempts",
                "1",
                "--input",
                input,
            ],
        )?;
    }

    let not_started =
        format!("was not started by Temporal schedule {schedule_id} of DurableJob {vns}/report");
    let other_namespace =
        format!("runs in Temporal namespace {ans}, but the schedule of DurableJob {vns}/report is in {vns}");
    let scheduled_in_attacker = wait_for("the attacker's schedule to start its run", T, || async {
        let d = temporal::describe(&victim.temporal, &ans, &schedule_id).ok()??;
        d["info"]["recentActions"][0]["startWorkflowResult"]["workflowId"]
            .as_str()
            .map(String::from)
    })
    .await?;
    let cases = [
        (vns.as_str(), "forged-direct", not_started.as_str()),
        (vns.as_str(), "forged-scheduled-by", not_started.as_str()),
        (ans.as_str(), "forged-other-namespace", other_namespace.as_str()),
        (
            ans.as_str(),
            scheduled_in_attacker.as_str(),
            other_namespace.as_str(),
        ),
    ];
    for (ns, id, why) in cases {
        let (status, history) = closed_workflow(&victim, ns, id, &runner).await?;
        ensure!(status == "WORKFLOW_EXECUTION_STATUS_FAILED", "{id}: {status}");
        ensure!(
            history.contains("Forbidden") && history.contains(why),
            "{id} was refused with the reason {why:?}: {history}"
        );
    }
    for (id, _, _) in standalone {
        let d = closed_activity(&victim, &vns, id, &runner).await?;
        ensure!(
            d["info"]["status"] == "ACTIVITY_EXECUTION_STATUS_FAILED",
            "{id}: {d}"
        );
        let text = d.to_string();
        if id == "standalone-delete" {
            ensure!(
                !text.contains("deleted"),
                "the runner has no activity that deletes any Job it is named: {d}"
            );
        } else {
            ensure!(
                text.contains("Forbidden")
                    && text.contains("scheduled by workflow type (none: a standalone activity)"),
                "{id} was refused as standalone: {d}"
            );
        }
    }

    // 6. a workflow of the tenant's own that schedules the runner's cleanup on the runner's queue
    let outcome = run_tenant_workflow(&victim, &vns, &cleanup).await?;
    ensure!(
        outcome.contains("refused")
            && outcome.contains("Forbidden")
            && outcome.contains("scheduled by workflow type tenant.Sneaky"),
        "the runner refused the tenant's workflow: {outcome}"
    );

    ensure!(
        job_names(&victim, "report").await? == jobs,
        "the victim's Jobs are untouched"
    );
    if let (Some(before), Some(after)) = (writes_before, victim_writes(&victim)) {
        ensure!(
            before == after,
            "no Job or Pod was created or deleted in {vns}: {before} -> {after}"
        );
    }
    if let (Some(before), Some(after)) = (
        runner_writes_before,
        victim.audit_count(|e| e.is_write() && runner_sa(e)),
    ) {
        ensure!(
            before == after,
            "the runner wrote nothing in {vns}: {before} -> {after}"
        );
    }
    let metrics = scrape(runner.metrics_port).await;
    for ns in [&vns, &ans] {
        ensure!(
            metrics.contains(&format!(
                "durablejob_runs_refused_total{{temporal_namespace=\"{ns}\"}}"
            )),
            "refusals counted per Temporal namespace: {metrics}"
        );
    }
    Ok(())
}

fn input_uid(input: &str) -> anyhow::Result<String> {
    let v: Value = serde_json::from_str(input)?;
    v["uid"].as_str().map(String::from).context("uid")
}

/// The tenant: a user bound only to `durablejob-edit` in `namespace`, played with `--as`.
struct Tenant {
    user: String,
}

impl Tenant {
    fn bind(namespace: &str, user: &str) -> anyhow::Result<Self> {
        let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("{user}-durablejob-edit"), "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "durablejob-edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]});
        tokio::task::block_in_place(|| {
            cluster()
                .kubectl()
                .ok(&["apply", "-f", "-"], Some(&binding.to_string()))
        })?;
        Ok(Self { user: user.into() })
    }

    /// `kubectl --as USER ARGS`: whether it succeeded, and what it printed.
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut all = vec!["--as", self.user.as_str()];
        all.extend_from_slice(args);
        tokio::task::block_in_place(|| cluster().kubectl().run(&all, stdin))
    }

    fn apply(&self, namespace: &str, dj: Value) -> anyhow::Result<()> {
        let (ok, out) = self.kubectl(&["apply", "-n", namespace, "-f", "-"], Some(&dj.to_string()));
        ensure!(ok, "the tenant may apply DurableJobs in {namespace}: {out}");
        Ok(())
    }
}

async fn the_operator_refuses_what_would_cross_a_namespace_and_says_why(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let granted = "e2e-ten-op-granted";
    let other = "e2e-ten-op-other";
    for ns in [granted, other] {
        tokio::task::block_in_place(|| temporal::create_namespace(&shared.temporal, ns))?;
    }
    let grant = format!("e2e-ten-op={granted}");
    let runner_namespaces = format!("e2e-ten-op,{granted}");
    let env = Env::new(
        &shared,
        "ten-op",
        &[
            "--temporal-namespace-grant",
            &grant,
            "--runner-namespaces",
            &runner_namespaces,
        ],
    )
    .await?;
    let ns = env.namespace.clone();
    let tenant = Tenant::bind(&ns, "tenant-of-ten-op")?;
    // a Deployment someone else made, with the name a worker of `taken` would get
    let platform: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "taken-worker", "labels": {"app": "platform"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "platform"}},
            "template": {"metadata": {"labels": {"app": "platform"}},
                "spec": {"containers": [{"name": "c", "image": "platform/agent:1"}]}}}}))?;
    let platform = env
        .api::<Deployment>()
        .create(&PostParams::default(), &platform)
        .await?;
    let worker = |workflow: Value| {
        json!({"schedule": quiet_schedule(), "workflow": workflow,
               "worker": {"image": "tenant/worker:1", "replicas": 0, "rollout": {"strategy": "None"}}})
    };
    let djs = [
        (
            "other",
            json!({"schedule": quiet_schedule(), "temporal": {"namespace": other},
                         "jobTemplate": testsupport::job_template(json!({}))}),
        ),
        (
            "granted",
            json!({"schedule": quiet_schedule(), "temporal": {"namespace": granted},
                           "jobTemplate": testsupport::job_template(json!({}))}),
        ),
        (
            "fake-runner",
            worker(json!({"type": "durablejob.run", "taskQueue": "team-queue",
            "args": [{"namespace": "e2e-ten-victim", "name": "report", "uid": "x"}]})),
        ),
        (
            "runner-queue",
            worker(json!({"type": "Sync", "taskQueue": "durablejob-runner"})),
        ),
        (
            "elsewhere",
            json!({"schedule": quiet_schedule(), "workflow": {"taskQueue": "team-queue"},
                             "jobTemplate": testsupport::job_template(json!({}))}),
        ),
        ("taken", worker(json!({"type": "Sync"}))),
    ];
    for (name, spec) in &djs {
        let mut m = manifest(name, spec.clone());
        m["metadata"]["namespace"] = json!(ns);
        tenant.apply(&ns, m)?;
    }
    env.wait_ready("granted").await?;
    ensure!(
        temporal::describe(&env.temporal, granted, &env.schedule_id("granted"))?.is_some(),
        "a granted Temporal namespace gets the schedule"
    );
    let refusals = [
        (
            "other",
            "TemporalNamespaceNotGranted",
            format!("--temporal-namespace-grant {ns}={other}"),
        ),
        (
            "fake-runner",
            "ReservedForRunner",
            "spec.workflow.type \"durablejob.run\" is reserved for the built-in runner".into(),
        ),
        (
            "runner-queue",
            "ReservedForRunner",
            "spec.workflow.taskQueue \"durablejob-runner\" is reserved".into(),
        ),
        (
            "elsewhere",
            "RunnerNotServing",
            "spec.workflow.taskQueue \"team-queue\" is not the built-in runner's task queue".into(),
        ),
        (
            "taken",
            "WorkerNameTaken",
            "Deployment taken-worker already exists".into(),
        ),
    ];
    for (name, reason, says) in &refusals {
        let s = env.wait_not_ready(name).await?;
        let ready = condition(&s, "Ready").context("Ready")?;
        ensure!(
            ready.reason == *reason && ready.message.contains(says.as_str()),
            "{name}: Ready {ready:?}"
        );
        ensure!(
            condition(&s, "Stalled").is_some_and(|c| c.status == "True" && c.reason == *reason),
            "{name}: a refusal is final (Stalled): {:?}",
            s.conditions
        );
        env.wait_event(name, reason).await?;
        ensure!(
            env.describe(name)?.is_none(),
            "{name}: nothing is created in Temporal"
        );
    }
    ensure!(
        temporal::schedule_ids(&env.temporal, other)?.is_empty(),
        "nothing in the Temporal namespace nobody granted"
    );
    let deployments = env.api::<Deployment>();
    ensure!(
        deployments.get_opt("fake-runner-worker").await?.is_none()
            && deployments.get_opt("runner-queue-worker").await?.is_none(),
        "no worker for a refused DurableJob"
    );
    let after = deployments.get("taken-worker").await?;
    let image = |d: &Deployment| {
        d.spec
            .template
            .spec
            .as_ref()
            .map(|p| p.containers[0].image.clone())
    };
    ensure!(
        image(&after) == image(&platform)
            && after.owner_references().is_empty()
            && after.labels() == platform.labels(),
        "the platform's Deployment is untouched: {:?}",
        after.metadata
    );
    let operator = format!("system:serviceaccount:{ns}:durablejob-operator");
    if let Some(writes) = env.audit_count(|e| {
        e.is_write() && e.object_ref.resource == "deployments" && e.user.username == operator
    }) {
        ensure!(writes == 0, "the operator wrote no Deployment: {writes}");
    }
    // the tenant reaches nothing outside its namespace: a run request on another namespace's
    // DurableJob, and the Jobs and Deployments of its own
    let (ok, out) = tenant.kubectl(
        &[
            "annotate",
            "durablejob",
            "granted",
            "-n",
            "e2e-ten-victim",
            "durablejob.dev/trigger=now",
        ],
        None,
    );
    ensure!(
        !ok && out.contains("forbidden"),
        "a request on another namespace is refused by RBAC: {out}"
    );
    let (ok, out) = tenant.kubectl(&["delete", "deployment", "taken-worker", "-n", &ns], None);
    ensure!(
        !ok && out.contains("forbidden"),
        "durablejob-edit grants no Deployment writes: {out}"
    );
    Ok(())
}

/// A tenant's own Temporal worker: a workflow of its own that schedules the built-in runner's
/// cleanup activity on the runner's task queue, naming the victim. What the reproduced attack
/// did with `durablejob.deleteJob`, which no longer exists.
mod sneaky {
    use std::time::Duration;

    use serde_json::Value;
    use temporalio_common::RetryPolicy;
    use temporalio_macros::{activities, workflow, workflow_methods};
    use temporalio_sdk::{
        ActivityOptions, WorkflowContext, WorkflowResult,
        activities::{ActivityContext, ActivityError},
    };

    pub struct RunnerActivities;

    #[activities]
    impl RunnerActivities {
        /// Only its name matters: the runner executes it.
        #[activity(name = "durablejob.cleanupJobs")]
        pub async fn cleanup(_ctx: ActivityContext, _input: Value) -> Result<Vec<String>, ActivityError> {
            Ok(vec![])
        }
    }

    #[workflow]
    #[derive(Default)]
    pub struct Sneaky;

    #[workflow_methods]
    impl Sneaky {
        /// Returns what became of the activity.
        #[run(name = "tenant.Sneaky")]
        pub async fn run(ctx: &mut WorkflowContext<Self>, input: Value) -> WorkflowResult<String> {
            let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
                .task_queue("durablejob-runner")
                .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
                .build();
            let outcome = ctx
                .execute_activity(RunnerActivities::cleanup, input, options)
                .await;
            Ok(match outcome {
                Ok(deleted) => format!("the runner deleted {deleted:?}"),
                Err(e) => format!("refused: {e:?}"),
            })
        }
    }
}

/// Runs the tenant's workflow on its own worker in Temporal namespace `ns` with `input`, and
/// gives the workflow's result. The SDK's worker future is not `Send`: it runs on a thread of
/// its own.
async fn run_tenant_workflow(env: &Env, ns: &str, input: &str) -> anyhow::Result<String> {
    let worker = tokio::task::block_in_place(|| {
        crate::test_worker::TestWorker::spawn(&env.temporal, ns, || {
            Ok(temporalio_sdk::WorkerOptions::new("tenant-queue")
                .register_workflow::<sneaky::Sneaky>()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .build())
        })
    })?;
    cli(
        env,
        &[
            "workflow",
            "start",
            "--namespace",
            ns,
            "--task-queue",
            "tenant-queue",
            "--type",
            "tenant.Sneaky",
            "--workflow-id",
            "tenant-sneaky",
            "--input",
            input,
        ],
    )?;
    let result = wait_for("the tenant's workflow to finish", T, || async {
        let d = temporal::cli_json(
            &env.temporal,
            &[
                "workflow",
                "result",
                "--namespace",
                ns,
                "--workflow-id",
                "tenant-sneaky",
            ],
        )
        .ok()?;
        Some(d.to_string())
    })
    .await;
    tokio::task::block_in_place(|| worker.stop())?;
    result
}
