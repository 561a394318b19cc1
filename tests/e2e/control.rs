//! Issue 12: run control from the resource. The verbs run as a user runs them: the real
//! `kubectl` with the binary linked as the plugin `kubectl-durablejob`, as a ServiceAccount
//! bound only to the shipped `durablejob-edit` role (no Temporal credentials for state changes).

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail, ensure};
use durablejob::api::{DurableJobStatus, RequestResult, RequestVerb, RunResult};
use k8s_openapi::api::batch::v1::Job;
use kube::{Api, ResourceExt, api::ListParams};
use serde_json::{Value, json};

use crate::Shared;
use crate::env::{Env, condition, manifest, quiet_schedule, wait_for};
use crate::operator::Runner;
use crate::temporal;

scenarios!(
    a_trigger_through_kubectl_gives_one_run_and_one_record_even_across_operator_restarts,
    a_backfill_over_three_hourly_slots_gives_three_runs_at_those_times,
    cancel_deletes_a_long_runs_job_after_query_status_shows_its_attempt_and_job,
    resume_unpauses_a_schedule_temporal_paused_after_a_failed_run,
    a_durablejob_in_a_second_temporal_namespace_runs_and_an_unserved_one_is_reported,
    a_forged_run_on_the_runners_queue_creates_no_job,
    kubectl_and_bash_complete_verbs_flags_and_the_namespaces_durablejobs,
    the_krew_manifest_installs_the_plugin_from_a_local_archive_and_refuses_another,
    logs_prints_every_attempts_pod_log_as_a_viewer_and_names_the_run_whose_jobs_are_gone,
);

const T: Duration = Duration::from_secs(45);

/// `kubectl durablejob ...` as a user with the `durablejob-edit` role.
pub struct Plugin {
    bin_dir: PathBuf,
    kubeconfig: PathBuf,
    temporal: String,
    namespace: String,
}

impl Plugin {
    pub fn new(env: &mut Env) -> anyhow::Result<Self> {
        Self::as_user(env, "durablejob-user", "durablejob-edit")
    }

    /// The plugin as ServiceAccount `sa`, bound to ClusterRole `role` only.
    pub fn as_user(env: &mut Env, sa: &str, role: &str) -> anyhow::Result<Self> {
        let kubeconfig = env.service_account(sa, role)?;
        let bin_dir = env.dir.join("plugin-bin");
        std::fs::create_dir_all(&bin_dir)?;
        let link = bin_dir.join("kubectl-durablejob");
        if !link.exists() {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_durablejob"), &link)?;
        }
        Ok(Self {
            bin_dir,
            kubeconfig,
            temporal: env.temporal.clone(),
            namespace: env.namespace.clone(),
        })
    }

    /// Runs `kubectl durablejob ARGS`; whether it exited 0, and stdout and stderr.
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let kubectl = testsupport::Kubectl::find(&self.kubeconfig);
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = kubectl
            .command()
            .arg("durablejob")
            .args(args)
            .env("PATH", path)
            .env("TEMPORAL_ADDRESS", &self.temporal)
            .env("TEMPORAL_NAMESPACE", &self.namespace)
            .env("DURABLEJOB_TEMPORAL_UI_URL", "http://127.0.0.1:8233")
            .output();
        match out {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (false, format!("cannot run kubectl: {e}")),
        }
    }

    /// Installs `kubectl_complete-durablejob` as the docs say (`durablejob completion kubectl`).
    fn install_completion(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_durablejob"))
            .args(["completion", "kubectl"])
            .output()?;
        ensure!(out.status.success(), "durablejob completion kubectl failed");
        let path = self.bin_dir.join("kubectl_complete-durablejob");
        std::fs::write(&path, &out.stdout)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }

    /// What `kubectl durablejob WORDS<TAB>` offers: kubectl's own `__complete`, which runs the
    /// plugin's completion executable; the candidates (without kubectl's directive line).
    fn complete(&self, words: &[&str]) -> anyhow::Result<Vec<String>> {
        let kubectl = testsupport::Kubectl::find(&self.kubeconfig);
        let path = format!(
            "{}:{}",
            self.bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = tokio::task::block_in_place(|| {
            kubectl
                .command()
                .args(["__complete", "durablejob"])
                .args(words)
                .env("PATH", path)
                .output()
        })?;
        ensure!(
            out.status.success(),
            "kubectl __complete: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with(':') && !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    pub fn ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let (ok, out) = tokio::task::block_in_place(|| self.run(args));
        if !ok {
            bail!("kubectl durablejob {} failed:\n{out}", args.join(" "));
        }
        Ok(out)
    }

    pub fn fails(&self, args: &[&str]) -> anyhow::Result<String> {
        let (ok, out) = tokio::task::block_in_place(|| self.run(args));
        ensure!(
            !ok,
            "kubectl durablejob {} should fail, printed:\n{out}",
            args.join(" ")
        );
        Ok(out)
    }
}

async fn with_runner(shared: &Shared, name: &str, extra: &[&str]) -> anyhow::Result<(Env, Runner, Plugin)> {
    let mut env = Env::new(shared, name, extra).await?;
    let runner = Runner::start(&env.dir, &env.runner_kubeconfig, &env.temporal, &env.namespace)?;
    let plugin = Plugin::new(&mut env)?;
    Ok((env, runner, plugin))
}

async fn jobs_of(env: &Env, name: &str) -> anyhow::Result<Vec<Job>> {
    let api: Api<Job> = env.api();
    Ok(api
        .list(&ListParams::default().labels(&format!("durablejob.dev/name={name}")))
        .await?
        .items)
}

/// Triggers a run of `name` through kubectl and waits until it runs with its Job: its
/// workflow id and `runningWorkflows` entry.
async fn running_run(
    env: &Env,
    kubectl: &Plugin,
    name: &str,
) -> anyhow::Result<(String, durablejob::api::RunningWorkflow)> {
    let out = kubectl.ok(&["trigger", name, "--wait", "-o", "json"])?;
    let record: Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    let wid = record["workflowIds"][0]
        .as_str()
        .context("the triggered run's id")?
        .to_string();
    let s = env
        .wait_status(name, &format!("run {wid} running with its Job"), T, |s| {
            s.running_workflows
                .iter()
                .any(|w| w.workflow_id == wid && w.job_name.is_some())
        })
        .await?;
    let running = s
        .running_workflows
        .into_iter()
        .find(|w| w.workflow_id == wid)
        .context("running")?;
    Ok((wid, running))
}

/// Waits until the Job is gone (or being deleted).
async fn job_gone(jobs: &Api<Job>, name: &str, what: &str) -> anyhow::Result<()> {
    wait_for(what, T, || async move {
        match jobs.get_opt(name).await {
            Ok(None) => Some(()),
            Ok(Some(j)) if j.metadata.deletion_timestamp.is_some() => Some(()),
            _ => None,
        }
    })
    .await
}

fn records(s: &DurableJobStatus, verb: RequestVerb) -> usize {
    s.requests.iter().filter(|r| r.verb == verb).count()
}

async fn a_trigger_through_kubectl_gives_one_run_and_one_record_even_across_operator_restarts(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (mut env, runner, kubectl) = with_runner(&shared, "ctl-trigger", &[]).await?;
    env.create(manifest(
        "report",
        json!({"schedule": quiet_schedule(), "jobTemplate": testsupport::job_template(json!({}))}),
    ))
    .await?;
    env.wait_ready("report").await?;

    // the request is written while no operator runs; the next one acts on it
    env.operator.stop().await;
    let said = kubectl.ok(&["trigger", "report", "-n", &env.namespace])?;
    ensure!(said.contains("trigger requested"), "{said}");
    env.operator.resume()?;
    let s = env
        .wait_status("report", "the trigger handled and its run succeeded", T, |s| {
            records(s, RequestVerb::Trigger) == 1
                && s.recent_runs
                    .first()
                    .is_some_and(|r| r.result == RunResult::Succeeded)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    let record = &s.requests[0];
    ensure!(record.result == RequestResult::Succeeded, "{record:?}");
    ensure!(
        s.recent_runs[0].workflow_id == record.workflow_ids[0],
        "the record names the run: {record:?} / {:?}",
        s.recent_runs[0]
    );

    // a restart with the annotation still in place starts nothing more
    env.operator.stop().await;
    env.operator.resume()?;
    env.wait_status("report", "a reconcile by the new operator", T, |s| {
        condition(s, "Ready").is_some_and(|c| c.status == "True")
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let s = env.djs.get("report").await?.status.unwrap_or_default();
    ensure!(
        records(&s, RequestVerb::Trigger) == 1,
        "one record: {:?}",
        s.requests
    );
    let jobs = jobs_of(&env, "report").await?;
    ensure!(
        jobs.len() == 1,
        "exactly one Job: {:?}",
        jobs.iter().map(|j| j.name_any()).collect::<Vec<_>>()
    );
    let triggered: Vec<String> = env
        .events("report")
        .await
        .into_iter()
        .filter(|e| e.starts_with("RunTriggered:"))
        .collect();
    ensure!(triggered.len() == 1, "one Event: {triggered:?}");
    if let Some(starts) = env.audit_count(|r| {
        r.is_write() && r.verb == "create" && r.object_ref.resource == "jobs" && r.response_status.code == 201
    }) {
        ensure!(starts == 1, "one Job created, {starts} creates");
    }

    // the Job knows its slot and that it is manual, and so does every container
    let job = &jobs[0];
    let a = job.annotations();
    ensure!(
        a.get("durablejob.dev/instantiate").map(String::as_str) == Some("manual"),
        "{a:?}"
    );
    let slot = a
        .get("durablejob.dev/scheduled-time")
        .context("scheduled-time annotation")?;
    chrono::DateTime::parse_from_rfc3339(slot)?;
    let container = &job
        .spec
        .as_ref()
        .context("spec")?
        .template
        .spec
        .as_ref()
        .context("pod")?
        .containers[0];
    let env_vars: Vec<(String, String)> = container
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    for (k, v) in [
        ("DURABLEJOB_SCHEDULED_TIME", slot.as_str()),
        ("DURABLEJOB_ATTEMPT", "1"),
        ("DURABLEJOB_RUN_ID", s.recent_runs[0].run_id.as_str()),
        ("DURABLEJOB_TRIGGER", "manual"),
    ] {
        ensure!(
            env_vars.contains(&(k.to_string(), v.to_string())),
            "{k}={v} in {env_vars:?}"
        );
    }

    // --wait prints the outcome; -o json the record
    let out = kubectl.ok(&[
        "trigger",
        "report",
        "--overlap",
        "allow-all",
        "--wait",
        "-o",
        "json",
    ])?;
    let record: Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    ensure!(
        record["result"] == "Succeeded" && record["verb"] == "Trigger",
        "{record}"
    );
    env.wait_status("report", "two runs succeeded", T, |s| {
        s.recent_runs.len() == 2 && s.recent_runs.iter().all(|r| r.result == RunResult::Succeeded)
    })
    .await?;

    // runs and status print what Temporal has
    let runs = kubectl.ok(&["runs", "report"])?;
    let lines: Vec<&str> = runs.lines().collect();
    ensure!(lines.len() == 3 && lines[0].starts_with("SCHEDULED"), "{runs}");
    ensure!(
        lines[1..]
            .iter()
            .all(|l| l.contains("Succeeded") && l.contains("http://127.0.0.1:8233/namespaces/")),
        "{runs}"
    );
    let status = kubectl.ok(&["status", "report", "-o", "yaml"])?;
    ensure!(
        status.contains("requests:") && status.contains("scheduleId:"),
        "{status}"
    );
    let text = kubectl.ok(&["status", "report"])?;
    ensure!(
        text.contains("Synced:        True") && text.contains("Requests:"),
        "{text}"
    );

    // bad input: a clear error and nothing written
    let e = kubectl.fails(&["trigger", "nope"])?;
    ensure!(e.contains("durablejob \"nope\" not found in namespace"), "{e}");
    let e = kubectl.fails(&[
        "backfill",
        "report",
        "--from",
        "yesterday",
        "--to",
        "2026-12-01T00:00:00Z",
    ])?;
    ensure!(e.contains("--from \"yesterday\" is not an RFC 3339 time"), "{e}");
    let e = kubectl.fails(&["cancel", "report", "--run", "not-a-run"])?;
    ensure!(e.contains("unknown run \"not-a-run\""), "{e}");
    Ok(())
}

async fn a_backfill_over_three_hourly_slots_gives_three_runs_at_those_times(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner, kubectl) = with_runner(&shared, "ctl-backfill", &[]).await?;
    // hourly slots with an offset that puts the next natural one half an hour away
    let now = chrono::Utc::now().timestamp();
    let offset = (now + 1800) % 3600 / 60 * 60;
    env.create(manifest(
        "hourly",
        json!({"schedule": {"intervals": [{"every": "1h", "offset": format!("{offset}s")}]}, "successfulRunsHistoryLimit": 5}),
    ))
    .await?;
    env.wait_ready("hourly").await?;
    let last_slot = (now - offset).div_euclid(3600) * 3600 + offset;
    let slots: Vec<chrono::DateTime<chrono::Utc>> = (0..3)
        .map(|i| chrono::DateTime::from_timestamp(last_slot - (5 - i) * 3600, 0).unwrap())
        .collect();
    let rfc = |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out = kubectl.ok(&[
        "backfill",
        "hourly",
        "--from",
        &rfc(&slots[0]),
        "--to",
        &rfc(&slots[2]),
        "--overlap",
        "buffer-all",
        "--wait",
    ])?;
    ensure!(
        out.contains("backfill request") && out.contains("Succeeded"),
        "{out}"
    );
    let s = env
        .wait_status("hourly", "three backfilled runs succeeded", T, |s| {
            s.recent_runs.len() == 3 && s.recent_runs.iter().all(|r| r.result == RunResult::Succeeded)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    let mut scheduled: Vec<_> = s.recent_runs.iter().map(|r| r.scheduled_time).collect();
    scheduled.sort();
    ensure!(
        scheduled == slots,
        "the runs are for the slots: {scheduled:?} vs {slots:?}"
    );
    let mut annotated: Vec<String> = jobs_of(&env, "hourly")
        .await?
        .iter()
        .map(|j| {
            ensure!(
                !j.annotations().contains_key("durablejob.dev/instantiate"),
                "a backfilled slot is not manual: {}",
                j.name_any()
            );
            Ok(j.annotations()["durablejob.dev/scheduled-time"].clone())
        })
        .collect::<anyhow::Result<_>>()?;
    annotated.sort();
    ensure!(
        annotated == slots.iter().map(rfc).collect::<Vec<_>>(),
        "{annotated:?}"
    );

    // two months of hourly slots (about 1,460) is more than the default limit of 1,000:
    // refused, counted from Temporal's own matching times, and no run started
    let long_ago = slots[0] - chrono::TimeDelta::days(61);
    let out = kubectl.fails(&[
        "backfill",
        "hourly",
        "--from",
        &rfc(&long_ago),
        "--to",
        &rfc(&slots[2]),
        "--wait",
    ])?;
    ensure!(
        out.contains("Rejected")
            && out.contains("covers more than 1000 slots")
            && out.contains("--max-slots"),
        "{out}"
    );
    // a limit of 0 never leaves the command line
    let out = kubectl.fails(&[
        "backfill",
        "hourly",
        "--from",
        &rfc(&slots[0]),
        "--to",
        &rfc(&slots[2]),
        "--max-slots",
        "0",
    ])?;
    ensure!(out.contains("--max-slots"), "{out}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = env.djs.get("hourly").await?.status.unwrap_or_default();
    ensure!(
        s.recent_runs.len() == 3 && s.running_workflows.is_empty(),
        "nothing more ran: {:?}",
        s.recent_runs
    );
    Ok(())
}

async fn cancel_deletes_a_long_runs_job_after_query_status_shows_its_attempt_and_job(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner, kubectl) = with_runner(&shared, "ctl-cancel", &[]).await?;
    env.create(manifest(
        "long",
        json!({"schedule": quiet_schedule(), "jobTemplate": testsupport::job_template(json!({"test.durablejob.dev/duration": "10m"}))}),
    ))
    .await?;
    env.wait_ready("long").await?;
    let (wid, running) = running_run(&env, &kubectl, "long").await?;
    ensure!(running.attempt == Some(1), "{running:?}");
    let job_name = running.job_name.clone().context("job")?;

    // the built-in run answers `status` with its attempt, Job and pods
    let answer = wait_for("the status query to see an active pod", T, || {
        let out = tokio::task::block_in_place(|| kubectl.run(&["query", "long", "--run", &wid, "status"]));
        async move {
            let (ok, text) = out;
            let v: Value = serde_json::from_str(&text).ok().filter(|_| ok)?;
            (v["active"] == 1).then_some(v)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    ensure!(
        answer["attempt"] == 1 && answer["jobName"] == job_name.as_str(),
        "{answer}"
    );
    ensure!(
        answer["lastHeartbeatTime"].is_string() && answer["startTime"].is_string(),
        "{answer}"
    );
    let e = kubectl.fails(&["query", "long", "--run", "durablejob:elsewhere/x-1", "status"])?;
    ensure!(e.contains("unknown run"), "{e}");

    let out = kubectl.ok(&["cancel", "long", "--run", &wid, "--wait"])?;
    ensure!(out.contains("Succeeded"), "{out}");
    let s = env
        .wait_status("long", "the run ended Canceled", T, |s| {
            s.recent_runs
                .first()
                .is_some_and(|r| r.workflow_id == wid && r.result == RunResult::Canceled)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    ensure!(s.running_workflows.is_empty(), "{:?}", s.running_workflows);
    let jobs: Api<Job> = env.api();
    job_gone(&jobs, &job_name, "the run's Job to be deleted").await?;
    env.wait_event("long", "RunCanceled").await?;
    let runs = kubectl.ok(&["runs", "long", "-o", "wide"])?;
    ensure!(runs.contains("Canceled") && runs.contains(&wid), "{runs}");

    // terminated: the run ends Terminated and the runner, finding its run gone, deletes the Job
    let (second, running) = running_run(&env, &kubectl, "long").await?;
    let job_name = running.job_name.clone().context("job")?;
    let out = kubectl.ok(&["cancel", "long", "--terminate", "--wait"])?;
    ensure!(out.contains("Terminated"), "{out}");
    env.wait_status("long", "the second run ended Terminated", T, |s| {
        s.recent_runs
            .first()
            .is_some_and(|r| r.workflow_id == second && r.result == RunResult::Terminated)
    })
    .await?;
    job_gone(&jobs, &job_name, "the terminated run's Job to be deleted")
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    env.wait_event("long", "RunTerminated").await?;

    // the built-in run's own `cancel` signal, sent straight to Temporal: Job deleted, Canceled
    let (third, running) = running_run(&env, &kubectl, "long").await?;
    let job_name = running.job_name.clone().context("job")?;
    let out = kubectl.ok(&["signal", "long", "--run", &third, "cancel"])?;
    ensure!(out.contains("signal \"cancel\" sent"), "{out}");
    env.wait_status("long", "the signalled run ended Canceled", T, |s| {
        s.recent_runs
            .first()
            .is_some_and(|r| r.workflow_id == third && r.result == RunResult::Canceled)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    job_gone(&jobs, &job_name, "the signalled run's Job to be deleted").await?;
    Ok(())
}

async fn resume_unpauses_a_schedule_temporal_paused_after_a_failed_run(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let (env, runner, kubectl) = with_runner(&shared, "ctl-resume", &[]).await?;
    // Temporal pauses on the failure of a run it started at a slot: every 20s, failing
    env.create(manifest(
        "fragile",
        json!({"schedule": {"intervals": [{"every": "20s"}]}, "pauseOnFailure": true,
               "jobTemplate": testsupport::job_template(json!({"test.durablejob.dev/outcomes": "fail", "test.durablejob.dev/duration": "100ms"}))}),
    ))
    .await?;
    env.wait_ready("fragile").await?;
    env.wait_status("fragile", "paused after the failed run", T, |s| {
        s.paused && s.paused_reason.as_deref() == Some("RunFailed")
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    let out = kubectl.ok(&["resume", "fragile", "--wait"])?;
    ensure!(out.contains("Resumed schedule"), "{out}");
    env.wait_schedule("fragile", "unpaused in Temporal", T, |d| {
        d.is_some_and(|d| d["schedule"]["state"]["paused"] != true)
    })
    .await?;
    let s = env
        .wait_status("fragile", "status says unpaused", T, |s| !s.paused)
        .await?;
    ensure!(records(&s, RequestVerb::Resume) == 1, "{:?}", s.requests);
    // a resume with nothing to resume says so and succeeds
    let out = kubectl.ok(&["resume", "fragile", "--wait"])?;
    ensure!(out.contains("Nothing to resume"), "{out}");
    Ok(())
}

async fn a_durablejob_in_a_second_temporal_namespace_runs_and_an_unserved_one_is_reported(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let name = "ctl-namespaces";
    let ns = format!("e2e-{name}");
    let second = format!("{ns}-b");
    temporal::create_namespace(&shared.temporal, &second)?;
    let served = format!("{ns},{second}");
    // the admin grants both other Temporal namespaces; the runner polls only the first
    let grant = format!("{ns}={second},{ns}-c");
    let mut env = Env::new(
        &shared,
        name,
        &[
            "--runner-namespaces",
            &served,
            "--temporal-namespace-grant",
            &grant,
        ],
    )
    .await?;
    let runner = Runner::start_with(
        &env.dir,
        &env.runner_kubeconfig,
        &env.temporal,
        &env.namespace,
        &["--temporal-namespaces", &served],
    )?;
    let kubectl = Plugin::new(&mut env)?;
    env.create(manifest(
        "elsewhere",
        json!({"schedule": quiet_schedule(), "temporal": {"namespace": second}}),
    ))
    .await?;
    env.wait_ready("elsewhere").await?;
    kubectl.ok(&["trigger", "elsewhere", "--wait"])?;
    let s = env
        .wait_status("elsewhere", "the run in the second namespace succeeded", T, |s| {
            s.recent_runs
                .first()
                .is_some_and(|r| r.result == RunResult::Succeeded)
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    ensure!(s.temporal_namespace.as_deref() == Some(second.as_str()), "{s:?}");

    env.create(manifest(
        "unserved",
        json!({"schedule": quiet_schedule(), "temporal": {"namespace": format!("{ns}-c")}}),
    ))
    .await?;
    let s = env.wait_not_ready("unserved").await?;
    let ready = condition(&s, "Ready").context("Ready")?;
    ensure!(
        ready.reason == "RunnerNotServing" && ready.message.contains("runner.temporalNamespaces"),
        "{ready:?}"
    );
    ensure!(
        s.schedule_id.is_none() || env.describe("unserved")?.is_none(),
        "no schedule nobody runs"
    );
    Ok(())
}

async fn a_forged_run_on_the_runners_queue_creates_no_job(shared: Arc<Shared>) -> anyhow::Result<()> {
    let (env, runner, _kubectl) = with_runner(&shared, "ctl-forged", &[]).await?;
    let dj = env
        .create(manifest(
            "target",
            json!({"schedule": quiet_schedule(), "jobTemplate": testsupport::job_template(json!({}))}),
        ))
        .await?;
    env.wait_ready("target").await?;
    let uid = dj.uid().context("uid")?;
    let mut evil = testsupport::job_template(json!({}));
    evil["spec"]["template"]["spec"]["containers"][0]["image"] = json!("attacker/miner:latest");
    let forged = [
        ("forged-template", uid.clone(), evil),
        (
            "forged-uid",
            "00000000-0000-0000-0000-000000000000".to_string(),
            testsupport::job_template(json!({})),
        ),
    ];
    for (wid, uid, template) in &forged {
        let input = json!({"version": 1, "namespace": env.namespace, "name": "target", "uid": uid,
            "jobTemplate": template, "successfulRunsHistoryLimit": 3, "failedRunsHistoryLimit": 1});
        temporal::cli(
            &env.temporal,
            &[
                "workflow",
                "start",
                "--namespace",
                &env.namespace,
                "--task-queue",
                "durablejob-runner",
                "--type",
                "durablejob.run",
                "--workflow-id",
                wid,
                "--input",
                &input.to_string(),
            ],
        )
        .map_err(|e| anyhow::anyhow!(e))?;
    }
    for (wid, _, _) in &forged {
        let described = wait_for(&format!("{wid} to fail"), T, || {
            let d = temporal::cli_json(
                &env.temporal,
                &[
                    "workflow",
                    "describe",
                    "--namespace",
                    &env.namespace,
                    "--workflow-id",
                    wid,
                ],
            )
            .ok();
            async move {
                let d = d?;
                let status = d["workflowExecutionInfo"]["status"].as_str()?.to_string();
                (status != "WORKFLOW_EXECUTION_STATUS_RUNNING").then_some(d)
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
        ensure!(
            described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_FAILED",
            "{described}"
        );
        let history = temporal::cli_json(
            &env.temporal,
            &[
                "workflow",
                "show",
                "--namespace",
                &env.namespace,
                "--workflow-id",
                wid,
            ],
        )?
        .to_string();
        ensure!(
            history.contains("Forbidden") && history.contains("refused: "),
            "{wid} failed as Forbidden: {history}"
        );
    }
    ensure!(jobs_of(&env, "target").await?.is_empty(), "no Job was created");
    if let Some(creates) =
        env.audit_count(|r| r.verb == "create" && r.object_ref.resource == "jobs" && !r.is_dry_run())
    {
        ensure!(creates == 0, "no Job create reached the API server: {creates}");
    }
    let metrics = crate::operator::scrape(runner.metrics_port).await;
    // each forged run is refused twice (its Job and its cleanup), counted by Temporal
    // namespace only: the names a forged input gives make no series
    ensure!(
        metrics.contains("durablejob_runs_refused_total{temporal_namespace=\"e2e-ctl-forged\"} 4"),
        "{metrics}"
    );
    Ok(())
}

async fn kubectl_and_bash_complete_verbs_flags_and_the_namespaces_durablejobs(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut env = Env::new(&shared, "ctl-complete", &[]).await?;
    let plugin = Plugin::new(&mut env)?;
    for name in ["nightly-report", "nightly-sync", "hourly"] {
        env.create(manifest(name, json!({"schedule": quiet_schedule()})))
            .await?;
    }
    plugin.install_completion()?;
    let ns = env.namespace.clone();
    // verbs (no server commands through kubectl), flags and a flag's values
    let verbs = plugin.complete(&["tr"])?;
    ensure!(verbs == ["trigger"], "{verbs:?}");
    let all = plugin.complete(&[""])?;
    ensure!(
        all.contains(&"retry".to_string()) && !all.contains(&"operator".to_string()),
        "{all:?}"
    );
    let flags = plugin.complete(&["backfill", "hourly", "--ma"])?;
    ensure!(flags == ["--max-slots"], "{flags:?}");
    let values = plugin.complete(&["trigger", "hourly", "--overlap", "allow"])?;
    ensure!(values == ["allow-all"], "{values:?}");
    // names: the DurableJobs of the namespace -n gives, listed with the user's own credentials
    let names = plugin.complete(&["trigger", "-n", &ns, "nightly"])?;
    ensure!(names == ["nightly-report", "nightly-sync"], "{names:?}");
    let names = plugin.complete(&["rollout", "status", "-n", &ns, ""])?;
    ensure!(names.len() == 3, "{names:?}");

    // bash, as `source <(durablejob completion bash)` sets it up
    let script = format!(
        r#"source <(durablejob completion bash)
COMP_WORDS=(durablejob status -n {ns} nightly-r); COMP_CWORD=4; _durablejob; echo "${{COMPREPLY[@]}}""#
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_durablejob"))
        .parent()
        .context("bin dir")?;
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("bash")
            .args(["-c", &script])
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
            )
            .env("KUBECONFIG", &plugin.kubeconfig)
            .output()
    })?;
    let offered = String::from_utf8_lossy(&out.stdout).trim().to_string();
    ensure!(
        offered == "nightly-report",
        "bash offered {offered:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

async fn the_krew_manifest_installs_the_plugin_from_a_local_archive_and_refuses_another(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut env = Env::new(&shared, "ctl-krew", &[]).await?;
    let plugin = Plugin::new(&mut env)?;
    env.create(manifest("report", json!({"schedule": quiet_schedule()})))
        .await?;
    env.wait_ready("report").await?;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let krew = repo.join(".tools/bin/krew");
    ensure!(
        krew.exists(),
        "{} is missing: make cluster-tools builds it",
        krew.display()
    );
    let platform = match std::env::consts::ARCH {
        "aarch64" => "linux/arm64",
        _ => "linux/amd64",
    };
    let dir = env.dir.join("krew");
    std::fs::create_dir_all(&dir)?;
    let sh = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new(repo.join("hack/krew.sh"))
            .args(args)
            .output()?;
        ensure!(
            out.status.success(),
            "hack/krew.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    // the release pieces, as a release makes them: the archive, and the manifest naming its sha256
    let archive = dir.join("kubectl-durablejob.tar.gz");
    let archive = archive.to_str().context("path")?;
    tokio::task::block_in_place(|| sh(&["archive", env!("CARGO_BIN_EXE_durablejob"), archive]))?;
    let rendered =
        tokio::task::block_in_place(|| sh(&["manifest", "v0.1.0", &format!("{platform}={archive}")]))?;
    let manifest_path = dir.join("durablejob.yaml");
    std::fs::write(&manifest_path, &rendered)?;
    let root = dir.join("root");
    let install = |archive: &str| {
        tokio::task::block_in_place(|| {
            std::process::Command::new(&krew)
                .args(["install", "--manifest"])
                .arg(&manifest_path)
                .args(["--archive", archive])
                .env("KREW_ROOT", &root)
                .env("KREW_NO_UPGRADE_CHECK", "1")
                .stdin(std::process::Stdio::null())
                .output()
        })
    };
    // another archive than the manifest names is refused by its sha256
    let other = dir.join("other.tar.gz");
    std::fs::write(&other, b"not the release")?;
    let refused = install(other.to_str().context("path")?)?;
    let said = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    ensure!(
        !refused.status.success() && said.contains("checksum does not match"),
        "krew took another archive: {said}"
    );
    let out = install(archive)?;
    ensure!(
        out.status.success(),
        "krew install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .contains("kubectl durablejob completion kubectl"),
        "the caveats say how to complete"
    );
    // kubectl finds the plugin krew linked, and it works against the cluster
    let path = format!(
        "{}:{}",
        root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let kubectl = testsupport::Kubectl::find(&plugin.kubeconfig);
    let run = |args: &[&str]| {
        tokio::task::block_in_place(|| kubectl.command().args(args).env("PATH", &path).output())
    };
    let listed = run(&["plugin", "list"])?;
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    ensure!(
        listed.contains(&root.join("bin/kubectl-durablejob").display().to_string()),
        "{listed}"
    );
    let status = run(&["durablejob", "status", "report", "-n", &env.namespace])?;
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    ensure!(
        status.status.success() && text.contains("report"),
        "{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    Ok(())
}

async fn logs_prints_every_attempts_pod_log_as_a_viewer_and_names_the_run_whose_jobs_are_gone(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut env = Env::new(&shared, "ctl-logs", &[]).await?;
    let runner = Runner::start(&env.dir, &env.runner_kubeconfig, &env.temporal, &env.namespace)?;
    // Kubernetes' own `view` role: it reads DurableJobs (durablejob-view aggregates into it),
    // Jobs, pods and their logs, and writes nothing
    let viewer = Plugin::as_user(&mut env, "viewer", "view")?;
    let flaky = testsupport::job_template(
        json!({"test.durablejob.dev/outcomes": "fail,succeed", "test.durablejob.dev/duration": "100ms"}),
    );
    env.create(manifest(
        "flaky",
        json!({"schedule": quiet_schedule(), "jobTemplate": flaky, "workflow": {"retry": {"initialInterval": "1s", "maximumAttempts": 2}}}),
    ))
    .await?;
    env.create(manifest(
        "gone",
        json!({"schedule": quiet_schedule(), "successfulRunsHistoryLimit": 0}),
    ))
    .await?;
    for name in ["flaky", "gone"] {
        env.wait_ready(name).await?;
        crate::runs::trigger(&env, name, None)?;
    }
    let flaky_run = crate::runs::last_run(&env, &runner, "flaky", RunResult::Succeeded).await?;
    let wid = flaky_run.recent_runs[0].workflow_id.clone();
    // every attempt's pod, in order, each under its header; the log is kwok's simulated one
    let out = viewer.ok(&["logs", "flaky"])?;
    let headers: Vec<&str> = out.lines().filter(|l| l.starts_with("==> Job ")).collect();
    ensure!(headers.len() == 2, "{out}");
    ensure!(
        headers[0].contains("(attempt 1)") && headers[1].contains("(attempt 2)"),
        "{out}"
    );
    ensure!(
        out.matches("durablejob test pod: 3 rows processed").count() == 2,
        "{out}"
    );
    let second = viewer.ok(&["logs", "flaky", "--run", &wid, "--attempt", "2"])?;
    ensure!(
        second.lines().filter(|l| l.starts_with("==> Job ")).count() == 1 && second.contains("(attempt 2)"),
        "{second}"
    );
    let e = viewer.fails(&["logs", "flaky", "-c", "nope"])?;
    ensure!(e.contains("no container \"nope\""), "{e}");
    // a run whose Job the history limit of 0 deleted: said, with its Temporal UI link
    let gone = crate::runs::last_run(&env, &runner, "gone", RunResult::Succeeded).await?;
    let gone_wid = gone.recent_runs[0].workflow_id.clone();
    wait_for("the gone run's Job to be deleted", T, || async {
        jobs_of(&env, "gone").await.ok()?.is_empty().then_some(())
    })
    .await?;
    let e = viewer.fails(&["logs", "gone", "--last"])?;
    ensure!(
        e.contains(&format!("run {gone_wid} has no Job left"))
            && e.contains("history limits")
            && e.contains("http://127.0.0.1:8233/namespaces/"),
        "{e}"
    );
    Ok(())
}
