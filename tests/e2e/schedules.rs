//! Issue 2: DurableJobs become Temporal schedules, kept in sync, with status written back.

use std::{sync::Arc, time::Duration};

use anyhow::ensure;
use kube::api::DeleteParams;
use serde_json::{Value, json};

use crate::Shared;
use crate::env::{Env, condition, manifest, wait_for};
use crate::temporal::{self, calendar_summary, payload};

scenarios!(
    the_schedule_in_temporal_is_exactly_what_the_spec_asks_for,
    an_edit_updates_the_schedule,
    suspend_pauses_the_schedule_and_unsuspend_resumes_it,
    a_schedule_deleted_in_temporal_is_recreated,
    an_edit_made_directly_in_temporal_is_repaired_within_the_resync_interval,
    deleting_the_resource_deletes_the_schedule_and_orphan_keeps_it,
    a_bad_time_zone_is_reported_on_the_resource_and_never_reaches_temporal,
    a_job_template_the_api_server_refuses_is_an_invalid_spec_and_never_reaches_temporal,
    a_new_durablejob_takes_two_reconciles_and_the_operators_own_status_write_wakes_nothing,
    a_schedule_owned_by_someone_else_is_left_alone,
    a_finished_schedule_is_reported_completed_and_not_created,
    changing_the_temporal_namespace_moves_the_schedule,
    nothing_changing_for_30_seconds_means_no_temporal_writes,
    a_temporal_restart_is_survived_without_duplicates,
    failing_api_requests_and_dropped_watches_are_ridden_out,
    cleanup_deletes_the_schedule_even_when_no_status_was_written_and_the_spec_turned_invalid,
);

const T: Duration = Duration::from_secs(30);

fn calendar(d: &Value) -> Vec<String> {
    d["schedule"]["spec"]["structuredCalendar"]
        .as_array()
        .into_iter()
        .flatten()
        .map(calendar_summary)
        .collect()
}

async fn the_schedule_in_temporal_is_exactly_what_the_spec_asks_for(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "exact", &[]).await?;
    env.create(manifest(
        "report",
        json!({
            "schedule": {"cron": ["0 9 * * 1-5"], "timeZone": "Europe/Berlin", "jitter": "30s"},
            "overlapPolicy": "BufferAll",
            "catchupWindow": "10m",
            "pauseOnFailure": true,
            "workflow": {"executionTimeout": "1h", "taskTimeout": "15s", "retry": {"maximumAttempts": 3}, "memo": {"team": "billing"}},
        }),
    ))
    .await?;
    let status = env.wait_ready("report").await?;
    ensure!(
        status.observed_generation == Some(1),
        "observedGeneration: {:?}",
        status.observed_generation
    );
    ensure!(
        status.schedule_id.as_deref() == Some(env.schedule_id("report").as_str()),
        "{:?}",
        status.schedule_id
    );
    ensure!(status.temporal_namespace.as_deref() == Some(env.namespace.as_str()));
    ensure!(!status.next_run_times.is_empty(), "nextRunTimes from Temporal");

    // checked through Temporal's own CLI, not through the operator
    let d = env
        .describe("report")?
        .ok_or_else(|| anyhow::anyhow!("no schedule in Temporal"))?;
    let s = &d["schedule"];
    ensure!(
        calendar(&d) == vec!["sec=0 min=0 hour=9 dom=1-31 month=1-12 dow=1-5"],
        "calendar: {:?}",
        calendar(&d)
    );
    ensure!(s["spec"]["timezoneName"] == "Europe/Berlin", "{}", s["spec"]);
    ensure!(s["spec"]["jitter"] == "30s", "{}", s["spec"]);
    ensure!(
        s["policies"]["overlapPolicy"] == "SCHEDULE_OVERLAP_POLICY_BUFFER_ALL",
        "{}",
        s["policies"]
    );
    ensure!(s["policies"]["catchupWindow"] == "600s", "{}", s["policies"]);
    ensure!(s["policies"]["pauseOnFailure"] == true, "{}", s["policies"]);
    ensure!(
        s["state"]["paused"].as_bool() != Some(true),
        "not paused: {}",
        s["state"]
    );
    let w = &s["action"]["startWorkflow"];
    ensure!(w["workflowType"]["name"] == "durablejob.run", "{w}");
    ensure!(w["taskQueue"]["name"] == "durablejob-runner", "{w}");
    ensure!(
        w["workflowExecutionTimeout"] == "3600s" && w["workflowTaskTimeout"] == "15s",
        "{w}"
    );
    let input = payload(&w["input"]["payloads"][0]);
    ensure!(
        input["name"] == "report" && input["namespace"] == env.namespace.as_str(),
        "{input}"
    );
    ensure!(input["retry"]["maximumAttempts"] == 3, "{input}");
    ensure!(
        input["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36",
        "{input}"
    );
    ensure!(payload(&w["memo"]["fields"]["team"]) == "billing", "{w}");
    let owner = payload(&d["memo"]["fields"]["durablejob.dev/owner-uid"]);
    let uid = env.djs.get("report").await?.metadata.uid;
    ensure!(
        owner.as_str() == uid.as_deref(),
        "memo records the owner uid: {owner} vs {uid:?}"
    );
    env.wait_event("report", "ScheduleCreated").await?;
    Ok(())
}

async fn an_edit_updates_the_schedule(shared: Arc<Shared>) -> anyhow::Result<()> {
    let env = Env::new(&shared, "edit", &[]).await?;
    env.create(manifest("r", json!({"schedule": {"cron": ["0 9 * * *"]}})))
        .await?;
    env.wait_ready("r").await?;
    env.edit("r", json!({"schedule": {"cron": ["30 18 * * 1,3", "@hourly"], "timeZone": "America/New_York"}, "overlapPolicy": "AllowAll"})).await?;
    let status = env.wait_ready("r").await?;
    ensure!(status.observed_generation == Some(2));
    let d = env.describe("r")?.unwrap();
    let mut cals = calendar(&d);
    cals.sort();
    ensure!(
        cals == vec![
            "sec=0 min=0 hour=0-23 dom=1-31 month=1-12 dow=0-6",
            "sec=0 min=30 hour=18 dom=1-31 month=1-12 dow=1,3"
        ],
        "{cals:?}"
    );
    ensure!(d["schedule"]["spec"]["timezoneName"] == "America/New_York");
    ensure!(d["schedule"]["policies"]["overlapPolicy"] == "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL");
    ensure!(
        status.schedule.as_deref() == Some("30 18 * * 1,3, @hourly (America/New_York)"),
        "{:?}",
        status.schedule
    );
    env.wait_event("r", "ScheduleUpdated").await?;
    Ok(())
}

async fn suspend_pauses_the_schedule_and_unsuspend_resumes_it(shared: Arc<Shared>) -> anyhow::Result<()> {
    let env = Env::new(&shared, "suspend", &[]).await?;
    env.create(manifest(
        "r",
        json!({"schedule": {"intervals": [{"every": "1h"}]}}),
    ))
    .await?;
    env.wait_ready("r").await?;
    env.edit("r", json!({"suspend": true})).await?;
    let s = env.wait_ready("r").await?;
    ensure!(
        s.paused && s.paused_reason.as_deref() == Some("Suspended") && s.next_run_times.is_empty(),
        "{s:?}"
    );
    let d = env.describe("r")?.unwrap();
    ensure!(
        d["schedule"]["state"]["paused"] == true,
        "{}",
        d["schedule"]["state"]
    );
    env.edit("r", json!({"suspend": false})).await?;
    let s = env.wait_ready("r").await?;
    ensure!(!s.paused && s.paused_reason.is_none(), "{s:?}");
    let d = env.describe("r")?.unwrap();
    ensure!(
        d["schedule"]["state"]["paused"].as_bool() != Some(true),
        "{}",
        d["schedule"]["state"]
    );
    Ok(())
}

async fn a_schedule_deleted_in_temporal_is_recreated(shared: Arc<Shared>) -> anyhow::Result<()> {
    let env = Env::new(&shared, "recreate", &["--resync-interval", "3s"]).await?;
    env.create(manifest("r", json!({"schedule": {"cron": ["0 3 * * *"]}})))
        .await?;
    env.wait_ready("r").await?;
    temporal::cli(
        &env.temporal,
        &[
            "schedule",
            "delete",
            "--namespace",
            &env.namespace,
            "--schedule-id",
            &env.schedule_id("r"),
        ],
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    env.wait_schedule("r", "the schedule to be recreated", T, |d| d.is_some())
        .await?;
    let d = env.describe("r")?.unwrap();
    ensure!(
        calendar(&d) == vec!["sec=0 min=0 hour=3 dom=1-31 month=1-12 dow=0-6"],
        "{:?}",
        calendar(&d)
    );
    env.wait_event("r", "ScheduleRecreated").await?;
    Ok(())
}

async fn an_edit_made_directly_in_temporal_is_repaired_within_the_resync_interval(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "drift", &["--resync-interval", "5s"]).await?;
    env.create(manifest("r", json!({"schedule": {"cron": ["0 3 * * *"]}})))
        .await?;
    env.wait_ready("r").await?;
    let id = env.schedule_id("r");
    // someone changes the cron in Temporal, and pauses it from the UI
    temporal::cli(
        &env.temporal,
        &[
            "schedule",
            "update",
            "--namespace",
            &env.namespace,
            "--schedule-id",
            &id,
            "--cron",
            "15 4 * * *",
            "--workflow-id",
            "x",
            "--task-queue",
            "other",
            "--type",
            "Other",
        ],
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    temporal::cli(
        &env.temporal,
        &[
            "schedule",
            "toggle",
            "--namespace",
            &env.namespace,
            "--schedule-id",
            &id,
            "--pause",
            "--reason",
            "by hand",
        ],
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let drifted = env.describe("r")?.unwrap();
    ensure!(
        calendar(&drifted) == vec!["sec=0 min=15 hour=4 dom=1-31 month=1-12 dow=0-6"],
        "the edit took: {:?}",
        calendar(&drifted)
    );
    let started = std::time::Instant::now();
    env.wait_schedule("r", "the cron to be repaired", Duration::from_secs(15), |d| {
        d.is_some_and(|d| {
            calendar(d) == vec!["sec=0 min=0 hour=3 dom=1-31 month=1-12 dow=0-6"]
                && d["schedule"]["state"]["paused"].as_bool() != Some(true)
                && d["schedule"]["action"]["startWorkflow"]["workflowType"]["name"] == "durablejob.run"
        })
    })
    .await?;
    ensure!(
        started.elapsed() < Duration::from_secs(12),
        "repaired within the resync interval: {:?}",
        started.elapsed()
    );
    env.wait_event("r", "DriftRepaired").await?;
    Ok(())
}

async fn deleting_the_resource_deletes_the_schedule_and_orphan_keeps_it(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "delete", &[]).await?;
    env.create(manifest("gone", json!({"schedule": {"cron": ["@daily"]}})))
        .await?;
    env.create(manifest(
        "kept",
        json!({"schedule": {"cron": ["@daily"]}, "deletionPolicy": "Orphan"}),
    ))
    .await?;
    env.wait_ready("gone").await?;
    env.wait_ready("kept").await?;
    let finalizers = env.djs.get("gone").await?.metadata.finalizers.unwrap_or_default();
    ensure!(finalizers == vec!["durablejob.dev/schedule"], "{finalizers:?}");
    env.djs.delete("gone", &DeleteParams::default()).await?;
    env.djs.delete("kept", &DeleteParams::default()).await?;
    let djs = env.djs.clone();
    wait_for("both resources to be gone", T, || {
        let djs = djs.clone();
        async move {
            let a = djs.get_opt("gone").await.ok()?;
            let b = djs.get_opt("kept").await.ok()?;
            (a.is_none() && b.is_none()).then_some(())
        }
    })
    .await?;
    ensure!(
        env.describe("gone")?.is_none(),
        "the schedule was deleted with its resource"
    );
    ensure!(
        env.describe("kept")?.is_some(),
        "deletionPolicy Orphan leaves the schedule"
    );
    Ok(())
}

/// The first reconcile adds the finalizer, the second (woken by that) creates the schedule
/// and writes status; that status write wakes nothing. An annotation a person adds does.
async fn a_new_durablejob_takes_two_reconciles_and_the_operators_own_status_write_wakes_nothing(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "reconciles", &[]).await?;
    let reconciles = || env.operator.reconciles();
    env.create(manifest("r", json!({"schedule": {"cron": ["@yearly"]}})))
        .await?;
    env.wait_ready("r").await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_ready = reconciles().await;
    ensure!(
        after_ready == 2.0,
        "{after_ready} reconciles for one new DurableJob"
    );
    env.djs
        .patch(
            "r",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"annotations": {"team": "platform"}}})),
        )
        .await?;
    let more = wait_for("a reconcile for the annotation", T, || async {
        let n = reconciles().await;
        (n > after_ready).then_some(n)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(reconciles().await == more, "one annotation, one reconcile");
    // a jobTemplate DurableJob has no worker Deployment: the operator's watch cache says so,
    // no GET of deployments/r-worker is made
    if let Some(gets) = env.audit_count(|e| {
        e.verb == "get"
            && e.object_ref.resource == "deployments"
            && e.is_service_account(&env.namespace, "durablejob-operator")
    }) {
        ensure!(gets == 0, "{gets} GETs of the worker Deployment");
    }
    Ok(())
}

/// The jobTemplate is judged by a dry-run create of its Job: a container name that is not a DNS
/// label passes the operator's own checks, but the API server would refuse every run's Job.
async fn a_job_template_the_api_server_refuses_is_an_invalid_spec_and_never_reaches_temporal(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "dryrun", &[]).await?;
    let template = |container: &str| {
        json!({"spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": container, "image": "busybox:1.36", "command": ["true"]}]}}}})
    };
    env.create(manifest(
        "r",
        json!({"schedule": {"cron": ["@daily"]}, "jobTemplate": template("Main_Container")}),
    ))
    .await?;
    let s = env.wait_not_ready("r").await?;
    let ready = condition(&s, "Ready").unwrap();
    ensure!(ready.reason == "InvalidSpec", "{ready:?}");
    ensure!(
        ready.message.contains("spec.jobTemplate")
            && ready.message.contains("containers[0].name")
            && ready.message.contains("Main_Container"),
        "{}",
        ready.message
    );
    ensure!(condition(&s, "Stalled").is_some_and(|c| c.status == "True"));
    ensure!(env.describe("r")?.is_none(), "nothing was created in Temporal");
    let dry_runs = || {
        env.audit_count(|e| {
            e.is_dry_run() && e.object_ref.resource == "jobs" && e.object_ref.namespace == env.namespace
        })
    };
    env.edit("r", json!({"jobTemplate": template("main")})).await?;
    env.wait_ready("r").await?;
    ensure!(env.describe("r")?.is_some());
    // Checked on a spec change only: the reconciles after Ready do not dry-run again.
    let after_ready = dry_runs();
    tokio::time::sleep(Duration::from_secs(3)).await;
    ensure!(
        dry_runs() == after_ready,
        "{after_ready:?} then {:?} dry runs",
        dry_runs()
    );
    if let Some(n) = after_ready {
        ensure!((2..=4).contains(&n), "{n} dry runs for two specs");
    }
    Ok(())
}

async fn a_bad_time_zone_is_reported_on_the_resource_and_never_reaches_temporal(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "badtz", &[]).await?;
    env.create(manifest(
        "r",
        json!({"schedule": {"cron": ["@daily"], "timeZone": "Mars/Olympus"}}),
    ))
    .await?;
    let s = env.wait_not_ready("r").await?;
    let ready = condition(&s, "Ready").unwrap();
    ensure!(ready.reason == "InvalidSpec", "{ready:?}");
    ensure!(
        ready.message.contains("spec.schedule.timeZone") && ready.message.contains("Mars/Olympus"),
        "{}",
        ready.message
    );
    ensure!(condition(&s, "Stalled").is_some_and(|c| c.status == "True"));
    ensure!(s.observed_generation == Some(1));
    ensure!(env.describe("r")?.is_none(), "nothing was created in Temporal");
    env.wait_event("r", "InvalidSpec").await?;
    // fixing it makes it Ready
    env.edit("r", json!({"schedule": {"timeZone": "Europe/Paris"}}))
        .await?;
    env.wait_ready("r").await?;
    ensure!(env.describe("r")?.is_some());
    // and the operator still deletes nothing it did not make: a resource that never validated goes at once
    env.create(manifest(
        "never",
        json!({"schedule": {"cron": ["@daily"], "timeZone": "Nowhere/Land"}}),
    ))
    .await?;
    env.wait_not_ready("never").await?;
    env.djs.delete("never", &DeleteParams::default()).await?;
    env.wait_gone("never", T).await?;
    Ok(())
}

async fn a_schedule_owned_by_someone_else_is_left_alone(shared: Arc<Shared>) -> anyhow::Result<()> {
    let env = Env::new(&shared, "foreign", &[]).await?;
    let id = env.schedule_id("r");
    temporal::cli(
        &env.temporal,
        &[
            "schedule",
            "create",
            "--namespace",
            &env.namespace,
            "--schedule-id",
            &id,
            "--cron",
            "0 5 * * *",
            "--workflow-id",
            "theirs",
            "--task-queue",
            "theirs",
            "--type",
            "Theirs",
        ],
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    env.create(manifest("r", json!({"schedule": {"cron": ["@daily"]}})))
        .await?;
    let s = env.wait_not_ready("r").await?;
    let ready = condition(&s, "Ready").unwrap();
    ensure!(ready.reason == "ScheduleOwnedElsewhere", "{ready:?}");
    ensure!(
        ready.message.contains("temporal schedule delete"),
        "{}",
        ready.message
    );
    let d = env.describe("r")?.unwrap();
    ensure!(
        d["schedule"]["action"]["startWorkflow"]["workflowType"]["name"] == "Theirs",
        "untouched"
    );
    // deleting the resource does not delete someone else's schedule
    env.djs.delete("r", &DeleteParams::default()).await?;
    env.wait_gone("r", T).await?;
    ensure!(env.describe("r")?.is_some(), "the foreign schedule survives");
    Ok(())
}

async fn a_finished_schedule_is_reported_completed_and_not_created(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "done", &[]).await?;
    env.create(manifest(
        "r",
        json!({"schedule": {"cron": ["@daily"], "startAt": "2020-01-01T00:00:00Z", "endAt": "2020-02-01T00:00:00Z"}}),
    ))
    .await?;
    let s = env.wait_status("r", "completed", T, |s| s.completed).await?;
    ensure!(
        condition(&s, "Ready").is_some_and(|c| c.status == "True" && c.reason == "Completed"),
        "{:?}",
        s.conditions
    );
    ensure!(
        env.describe("r")?.is_none(),
        "a schedule that could never run is not created"
    );
    Ok(())
}

async fn changing_the_temporal_namespace_moves_the_schedule(shared: Arc<Shared>) -> anyhow::Result<()> {
    // the built-in runner is said to poll both namespaces (else the move is RunnerNotServing),
    // and the admin granted the second to this namespace (else TemporalNamespaceNotGranted)
    let env = Env::new(
        &shared,
        "move",
        &[
            "--runner-namespaces",
            "e2e-move,e2e-move-b",
            "--temporal-namespace-grant",
            "e2e-move=e2e-move-b",
        ],
    )
    .await?;
    let other = format!("{}-b", env.namespace);
    temporal::create_namespace(&env.temporal, &other)?;
    env.create(manifest("r", json!({"schedule": {"cron": ["@daily"]}})))
        .await?;
    env.wait_ready("r").await?;
    env.edit("r", json!({"temporal": {"namespace": other}})).await?;
    let s = env.wait_ready("r").await?;
    ensure!(
        s.temporal_namespace.as_deref() == Some(other.as_str()),
        "{:?}",
        s.temporal_namespace
    );
    ensure!(
        temporal::describe(&env.temporal, &other, &env.schedule_id("r"))?.is_some(),
        "created in the new namespace"
    );
    ensure!(env.describe("r")?.is_none(), "deleted from the old namespace");
    Ok(())
}

async fn nothing_changing_for_30_seconds_means_no_temporal_writes(shared: Arc<Shared>) -> anyhow::Result<()> {
    let env = Env::new(
        &shared,
        "quiet",
        &["--resync-interval", "2s", "--full-resync-interval", "10s"],
    )
    .await?;
    env.create(manifest(
        "cron",
        json!({"schedule": {"cron": ["0 3 * * *"], "timeZone": "Asia/Tokyo", "jitter": "1m"}, "runLimit": 5}),
    ))
    .await?;
    env.create(manifest(
        "interval",
        json!({"schedule": {"intervals": [{"every": "7m", "offset": "1m"}]}, "suspend": true}),
    ))
    .await?;
    env.wait_ready("cron").await?;
    env.wait_ready("interval").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_before = env.operator.temporal_writes().await;
    ensure!(writes_before == 2, "two creates so far, got {writes_before}");
    let updated_before: Vec<Value> = ["cron", "interval"]
        .iter()
        .map(|n| env.describe(n).map(|d| d.unwrap()["info"]["updateTime"].clone()))
        .collect::<anyhow::Result<_>>()?;
    let status_writes = || env.audit_count(|r| r.verb == "patch" && r.object_ref.subresource == "status");
    let status_writes_before = status_writes();
    let listed_before = env.operator.temporal_requests("list_schedules").await;
    let described_before = env.operator.temporal_requests("describe").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let writes_after = env.operator.temporal_writes().await;
    let updated_after: Vec<Value> = ["cron", "interval"]
        .iter()
        .map(|n| env.describe(n).map(|d| d.unwrap()["info"]["updateTime"].clone()))
        .collect::<anyhow::Result<_>>()?;
    let reconciles = env
        .operator
        .metrics()
        .await
        .lines()
        .find(|l| l.starts_with("controller_runtime_reconcile_total"))
        .unwrap_or_default()
        .to_string();
    ensure!(
        writes_after == writes_before,
        "Temporal writes went from {writes_before} to {writes_after} ({reconciles})"
    );
    ensure!(
        updated_after == updated_before,
        "Temporal's updateTime moved: {updated_before:?} -> {updated_after:?}"
    );
    // the sweep lists the namespace every 2 s and finds both schedules as they were described:
    // only the full resync (10 s) describes them
    let listed = env.operator.temporal_requests("list_schedules").await - listed_before;
    let described = env.operator.temporal_requests("describe").await - described_before;
    eprintln!("quiet: {listed} list pages and {described} describes in 30 s");
    ensure!(
        listed >= 10.0,
        "the operator kept sweeping (resync 2s): {listed} list pages"
    );
    ensure!(
        described <= 10.0,
        "{described} describes in 30 s: the sweep woke DurableJobs whose schedules had not changed (the listing from ListSchedules differs from the one recorded at describe)"
    );
    if let (Some(before), Some(after)) = (status_writes_before, status_writes()) {
        ensure!(
            after == before,
            "no status writes either while nothing changed: {}",
            after - before
        );
    }
    Ok(())
}

async fn a_temporal_restart_is_survived_without_duplicates(shared: Arc<Shared>) -> anyhow::Result<()> {
    let dir = shared.dir.join("restart");
    std::fs::create_dir_all(&dir)?;
    let mut server = temporal::DevServer::start(dir.clone(), Some(dir.join("temporal.db"))).await?;
    let env = Env::with_temporal(
        &shared,
        "restart",
        &server.address(),
        &["--resync-interval", "3s"],
    )
    .await?;
    env.create(manifest("r", json!({"schedule": {"cron": ["0 3 * * *"]}})))
        .await?;
    env.create(manifest("doomed", json!({"schedule": {"cron": ["0 4 * * *"]}})))
        .await?;
    env.wait_ready("r").await?;
    env.wait_ready("doomed").await?;

    server.stop().await;
    // while Temporal is down: an edit is reported as waiting, and a deletion is held by the finalizer
    env.edit("r", json!({"schedule": {"cron": ["0 5 * * *"]}}))
        .await?;
    let s = env
        .wait_status("r", "Reconciling=True (TemporalUnavailable)", T, |s| {
            condition(s, "Reconciling")
                .is_some_and(|c| c.status == "True" && c.reason == "TemporalUnavailable")
        })
        .await?;
    ensure!(
        condition(&s, "Stalled").is_some_and(|c| c.status == "False"),
        "an outage is not Stalled"
    );
    env.djs.delete("doomed", &DeleteParams::default()).await?;
    let s = env
        .wait_status("doomed", "a message that the delete waits for Temporal", T, |s| {
            s.message
                .as_deref()
                .is_some_and(|m| m.contains("Cannot delete Temporal schedule"))
        })
        .await?;
    ensure!(
        s.message.unwrap().contains("finalizer"),
        "the message says why the resource stays"
    );
    ensure!(
        env.djs.get_opt("doomed").await?.is_some(),
        "held by its finalizer"
    );

    server.restart().await?;
    env.wait_ready("r").await?;
    env.wait_gone("doomed", T).await?;
    let ids = temporal::schedule_ids(&server.address(), &env.namespace)?;
    ensure!(
        ids == vec![env.schedule_id("r")],
        "exactly one schedule, no duplicates: {ids:?}"
    );
    let d = env.describe("r")?.unwrap();
    ensure!(
        calendar(&d) == vec!["sec=0 min=0 hour=5 dom=1-31 month=1-12 dow=0-6"],
        "the edit made during the outage landed: {:?}",
        calendar(&d)
    );
    drop(env);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn failing_api_requests_and_dropped_watches_are_ridden_out(shared: Arc<Shared>) -> anyhow::Result<()> {
    let env = Env::with_faults(&shared, "faults", &[]).await?;
    let proxy = env.faults.as_ref().expect("a fault proxy");
    proxy.fail(testsupport::FailRule::next(
        "PATCH",
        "/durablejobs/report/status",
        500,
        3,
    ));
    env.create(manifest("report", json!({"schedule": {"cron": ["0 3 * * *"]}})))
        .await?;
    env.wait_ready("report").await?;
    ensure!(
        proxy.injected() == 3,
        "three status writes failed and were retried: {}",
        proxy.injected()
    );

    // a dropped watch is resumed: an edit made after the drop lands long before a resync would
    proxy.drop_watches();
    env.edit("report", json!({"schedule": {"cron": ["0 4 * * *"]}}))
        .await?;
    env.wait_ready("report").await?;
    let d = env.describe("report")?.unwrap();
    ensure!(
        calendar(&d) == vec!["sec=0 min=0 hour=4 dom=1-31 month=1-12 dow=0-6"],
        "{:?}",
        calendar(&d)
    );
    Ok(())
}

async fn cleanup_deletes_the_schedule_even_when_no_status_was_written_and_the_spec_turned_invalid(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::with_faults(&shared, "cleanup", &[]).await?;
    let proxy = env.faults.as_ref().expect("a fault proxy");
    // every status write fails: the operator makes the schedule but never records it
    proxy.fail(testsupport::FailRule {
        method: Some("PATCH".into()),
        path_contains: "/durablejobs/gone/status".into(),
        code: 500,
        count: None,
        ratio: 1.0,
    });
    env.create(manifest("gone", json!({"schedule": {"cron": ["0 3 * * *"]}})))
        .await?;
    env.wait_schedule("gone", "the schedule to be made", T, |d| d.is_some())
        .await?;
    ensure!(
        env.djs
            .get("gone")
            .await?
            .status
            .and_then(|s| s.schedule_id)
            .is_none(),
        "no status was written"
    );
    // the spec turns invalid (the CRD lets an unknown time zone in; the operator refuses it)
    env.edit("gone", json!({"schedule": {"timeZone": "Mars/Olympus"}}))
        .await?;
    env.djs.delete("gone", &DeleteParams::default()).await?;
    env.wait_gone("gone", T).await?;
    ensure!(env.describe("gone")?.is_none(), "no schedule is left in Temporal");
    Ok(())
}
