//! A versioned user worker (`spec.worker` with rollout AllAtOnce): observe the DurableJob's
//! version Deployments and Temporal's Worker Deployment, decide with [`rollout::plan`], act
//! (apply, route, scale down, delete), and report where the rollout stands. On deletion,
//! [`cleanup`] removes the versions, their Deployments and the Temporal Worker Deployment.

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use tracing::debug;

use super::Notice;
use super::k8s::{apply_worker, delete_deployment, problem};
use super::rollout_gate::{self, Gate, Verdict};
use super::rollout_requests::{self, RolloutRequests, RolloutTarget};
use super::schedule_sync::problem_for;
use crate::api::{DurableJob, RecentRun, RunResult, WorkerVersionStatus};
use crate::controller::Context;
use crate::controller::build::worker::{
    self, BUILD_ID_LABEL, SPEC_HASH_ANNOTATION, Version, WORKER_LABEL, WorkerHealth, WorkerTarget,
};
use crate::controller::rollout::{self, Action, RolloutInput, RolloutPlan, VersionDeployment, Waiting};
use crate::controller::status::{Problem, VersionedWorker, WorkerState};
use crate::desired::schedule::DesiredSchedule;
use crate::desired::validate::ValidWorker;
use crate::operator::FIELD_MANAGER;
use crate::reason::Reason;
use crate::temporal::worker_deployments::ObservedWorkerDeployment;
use crate::temporal::{Schedules, TemporalError};

/// With rollbackOnFailure, how often the runs of a version that gets runs are looked at.
pub(crate) const EVIDENCE_RECHECK: Duration = Duration::from_secs(15);

/// While Temporal still remembers a deleted version's pollers, how often deletion is retried.
pub(crate) const POLLERS_LINGER_RECHECK: Duration = Duration::from_secs(15);

/// Whether the DurableJob `uid` controls this Deployment.
fn controlled_by(d: &Deployment, uid: &str) -> bool {
    d.owner_references()
        .iter()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// The Deployments labelled as this DurableJob's worker, from the watch cache or listed.
async fn worker_deployments<S: Schedules>(
    ctx: &Context<S>,
    api: &Api<Deployment>,
    namespace: &str,
    name: &str,
) -> Result<Vec<Deployment>, Problem> {
    if let Some(cached) = ctx.cached_workers_labelled(namespace, WORKER_LABEL, name) {
        return Ok(cached.into_iter().map(|d| (*d).clone()).collect());
    }
    let selector = format!("{WORKER_LABEL}={name}");
    api.list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .map_err(|e| {
            problem(
                Reason::KubernetesError,
                format!("cannot list the worker Deployments of {name}"),
                &e,
            )
        })
}

/// A version Deployment as the planner sees it.
fn version_deployment(d: &Deployment) -> Option<VersionDeployment> {
    let build_id = d.labels().get(BUILD_ID_LABEL)?.clone();
    Some(VersionDeployment {
        name: d.name_any(),
        build_id,
        replicas: d.spec.replicas.unwrap_or(1),
        ready_replicas: d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
        spec_hash: d.annotations().get(SPEC_HASH_ANNOTATION).cloned(),
    })
}

/// Before a version's Deployment is first made: a Deployment of that name must not be
/// someone else's (the cache holds only labelled ones, so it is read).
async fn check_name_free(api: &Api<Deployment>, name: &str, uid: &str) -> Result<(), Problem> {
    let found = api.get_opt(name).await.map_err(|e| {
        problem(
            Reason::WorkerApplyFailed,
            format!("cannot read Deployment {name}"),
            &e,
        )
    })?;
    match found {
        Some(d) if !controlled_by(&d, uid) => Err(Problem {
            reason: Reason::WorkerNameTaken,
            message: format!(
                "Deployment {name} already exists and is not this DurableJob's worker version, so the operator leaves it untouched: rename or remove it, or stamp another spec.worker.buildId"
            ),
            stalled: true,
        }),
        _ => Ok(()),
    }
}

/// Rolls the worker's versions one reconcile further and reports where they stand.
pub(crate) async fn sync<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    w: &ValidWorker,
    desired: &DesiredSchedule,
    notices: &mut Vec<Notice>,
) -> Result<Option<WorkerState>, Problem> {
    let (namespace, name, uid) = (
        dj.namespace().unwrap_or_default(),
        dj.name_any(),
        dj.uid().unwrap_or_default(),
    );
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let t = WorkerTarget {
        namespace: &namespace,
        name: &name,
        uid: &uid,
        temporal_address: &ctx.settings.temporal_address,
        temporal_namespace: &desired.location.namespace,
        task_queue: &desired.action.task_queue,
        connection: &ctx.settings.worker_connection,
    };
    let (v, want, want_hash) = wanted(&t, w);
    // observe
    let found = worker_deployments(ctx, &api, &namespace, &name).await?;
    let ours: Vec<&Deployment> = found.iter().filter(|d| controlled_by(d, &uid)).collect();
    let existing: Vec<VersionDeployment> = ours.iter().filter_map(|d| version_deployment(d)).collect();
    if !existing.iter().any(|d| d.name == v.name) {
        check_name_free(&api, &v.name, &uid).await?;
    }
    let legacy_name = worker::deployment_name(&name);
    let legacy = ours.iter().find(|d| d.name_any() == legacy_name).copied();
    let tns = desired.location.namespace.as_str();
    // the rollout verbs a person sent, before the picture the plan is made from
    let rt = RolloutTarget {
        namespace: tns,
        deployment_name: &v.deployment_name,
        target: &v.build_id,
        existing: &existing,
    };
    let (mut requests, temporal) = routing(dj, ctx, w, &rt, notices).await?;
    // decide
    let mut input = RolloutInput {
        target: &v.build_id,
        target_deployment: &want,
        target_hash: &want_hash,
        replicas: w.replicas,
        strategy: w.rollout,
        steps: &w.steps,
        hold: requests.hold,
        held_since: held_since(dj, &requests),
        gate_running: None,
        existing: &existing,
        legacy: legacy.map(|_| legacy_name.as_str()),
        temporal: temporal.as_ref(),
        sunset: w.sunset,
        now: Utc::now(),
    };
    let mut plan = rollout::plan(&input);
    // a routing change to the target waits for its gate run: planned again without it
    let gate = Gate::of(w.gate.as_deref(), desired);
    let verdict =
        rollout_gate::check(&ctx.schedules, gate.as_ref(), &rt, &plan, &mut requests, notices).await?;
    let running = match &verdict {
        Verdict::Open => None,
        Verdict::Running(id) => Some(id.as_str()),
        Verdict::Failed => {
            (input.hold, input.held_since) = (requests.hold, held_since(dj, &requests));
            None
        }
    };
    if verdict != Verdict::Open {
        input.gate_running = running;
        plan = rollout::plan(&input);
    }
    // act
    let mut acts = Acts {
        api: &api,
        schedules: &ctx.schedules,
        tns,
        v: &v,
        existing: &existing,
        notices,
        applied: None,
        linger: false,
    };
    for a in &plan.actions {
        acts.act(a).await?;
    }
    let (applied, linger) = (acts.applied, acts.linger);
    let mut state = report(
        &v,
        &plan,
        &ours,
        applied.as_ref(),
        legacy,
        linger,
        temporal.as_ref().and_then(|t| t.current.clone()),
    );
    let watching = w.rollback_after.is_some() && temporal.and_then(|t| t.routed_since(&v.build_id)).is_some();
    if let Some(versioned) = state.versioned.as_mut() {
        let runs = dj.status.as_ref().map(|s| s.recent_runs.as_slice());
        count_open_runs(&mut versioned.versions, runs.unwrap_or_default());
        versioned.rolled_back_time = held_since(dj, &requests);
        keep_requests(versioned, requests, watching);
    }
    Ok(Some(state))
}

/// Each version's open runs among the schedule's recent runs (as the status last listed them).
fn count_open_runs(versions: &mut [WorkerVersionStatus], runs: &[RecentRun]) {
    for v in versions {
        let open = runs
            .iter()
            .filter(|r| r.result == RunResult::Running && r.build_id.as_ref() == Some(&v.build_id));
        v.open_runs = open.count() as i32;
    }
}

/// The version the spec asks for: its names, the Deployment to apply and that body's hash.
fn wanted(t: &WorkerTarget<'_>, w: &ValidWorker) -> (Version, serde_json::Value, String) {
    let v = worker::version(t, w);
    let want = worker::desired_version(t, w, &v);
    let hash = want["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (v, want, hash)
}

/// What people asked (the rollout verbs) and the runs' evidence did to routing, then
/// Temporal's picture of the Worker Deployment that the plan is made from.
async fn routing<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    w: &ValidWorker,
    rt: &RolloutTarget<'_>,
    notices: &mut Vec<Notice>,
) -> Result<(RolloutRequests, Option<ObservedWorkerDeployment>), Problem> {
    let mut requests = rollout_requests::of(dj, &ctx.schedules, rt).await;
    notices.extend(requests.notices.iter().cloned());
    let describe = || async {
        ctx.schedules
            .describe_deployment(rt.namespace, rt.deployment_name)
            .await
            .map_err(|e| problem_for(&e))
    };
    let temporal = describe().await?;
    if roll_back_on_evidence(dj, ctx, w, rt, temporal.as_ref(), &mut requests, notices).await? {
        return Ok((requests, describe().await?));
    }
    Ok((requests, temporal))
}

/// rollbackOnFailure: when runs that started on the new version failed, new runs go back to
/// the version before and the new one is held, with a Warning. Whether routing changed.
async fn roll_back_on_evidence<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    w: &ValidWorker,
    rt: &RolloutTarget<'_>,
    temporal: Option<&ObservedWorkerDeployment>,
    requests: &mut RolloutRequests,
    notices: &mut Vec<Notice>,
) -> Result<bool, Problem> {
    let (Some(threshold), Some(t), None) = (w.rollback_after, temporal, requests.hold) else {
        return Ok(false);
    };
    let runs = dj
        .status
        .as_ref()
        .map(|s| s.recent_runs.as_slice())
        .unwrap_or_default();
    let Some(failed) = rollout::failing(rt.target, runs, t.routed_since(rt.target), threshold) else {
        return Ok(false);
    };
    let first = failed
        .last()
        .map(|r| format!("{} {:?}", r.workflow_id, r.result))
        .unwrap_or_default();
    let why = format!(
        "{} run(s) that started on build {} failed (first: {first})",
        failed.len(),
        rt.target
    );
    let Some(previous) = rollout_requests::roll_back(&ctx.schedules, rt)
        .await
        .map_err(|e| problem_for(&e))?
    else {
        debug!(%why, "rollbackOnFailure: no version before has Ready pods to take the runs back");
        return Ok(false);
    };
    (requests.hold, requests.rolled_back) = (Some(rollout::Hold::RolledBack), Some(rt.target.to_string()));
    notices.push(Notice::warning(
        Reason::VersionRolledBack,
        "Rollout",
        format!(
            "{why}: new runs go to build {previous} again (rollbackOnFailure); build {} keeps its Deployment and is not routed to until the spec changes or kubectl durablejob rollout resume",
            rt.target
        ),
    ));
    Ok(true)
}

/// Since when the target is held after a rollback: the recorded time while the same build
/// stays held, else now.
fn held_since(dj: &DurableJob, r: &RolloutRequests) -> Option<chrono::DateTime<Utc>> {
    let held = r.rolled_back.as_ref()?;
    let previous = dj.status.as_ref().and_then(|s| s.worker.as_ref());
    let kept = previous.filter(|p| p.rolled_back_build_id.as_ref() == Some(held));
    Some(kept.and_then(|p| p.rolled_back_time).unwrap_or_else(Utc::now))
}

/// The hold and the records the rollout requests leave in the status; with `watching` (the
/// new version gets runs and rollbackOnFailure is on) its runs are looked at again soon.
fn keep_requests(v: &mut VersionedWorker, r: RolloutRequests, watching: bool) {
    v.paused = r.hold == Some(rollout::Hold::Paused);
    v.rolled_back = r.rolled_back;
    v.requests = r.records;
    if watching && v.rolled_back.is_none() {
        v.requeue = Some(v.requeue.map_or(EVIDENCE_RECHECK, |r| r.min(EVIDENCE_RECHECK)));
    }
}

/// The actions of one plan, made in order.
struct Acts<'a, S: Schedules> {
    api: &'a Api<Deployment>,
    schedules: &'a S,
    tns: &'a str,
    v: &'a Version,
    existing: &'a [VersionDeployment],
    notices: &'a mut Vec<Notice>,
    /// The target's Deployment as this reconcile applied it.
    applied: Option<Deployment>,
    /// A version's deletion waits for Temporal to forget its pollers.
    linger: bool,
}

impl<S: Schedules> Acts<'_, S> {
    async fn act(&mut self, a: &Action) -> Result<(), Problem> {
        let dn = self.v.deployment_name.as_str();
        match a {
            Action::Apply(body) => self.apply(body).await?,
            Action::SetCurrent {
                build_id,
                conflict_token,
            } => {
                self.schedules
                    .set_current_version(self.tns, dn, build_id, conflict_token)
                    .await
                    .map_err(|e| problem_for(&e))?;
                self.notices.push(Notice::normal(
                    Reason::VersionCurrent,
                    "Rollout",
                    format!(
                        "Build {build_id} is current in Temporal worker deployment {dn}: new runs go to it"
                    ),
                ));
            }
            Action::SetRamping {
                build_id,
                percentage,
                conflict_token,
            } => {
                self.schedules
                    .set_ramping_version(self.tns, dn, build_id, f32::from(*percentage), conflict_token)
                    .await
                    .map_err(|e| problem_for(&e))?;
                let note = if build_id.is_empty() {
                    format!("Ended the ramp in Temporal worker deployment {dn}")
                } else {
                    format!(
                        "Build {build_id} gets {percentage}% of new runs in Temporal worker deployment {dn}"
                    )
                };
                self.notices
                    .push(Notice::normal(Reason::VersionRamping, "Rollout", note));
            }
            Action::ScaleToZero { deployment } => {
                let body = serde_json::json!({"spec": {"replicas": 0}});
                let pp = PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                self.api
                    .patch(deployment, &pp, &Patch::Merge(&body))
                    .await
                    .map_err(|e| {
                        problem(
                            Reason::WorkerApplyFailed,
                            format!("cannot scale down Deployment {deployment}"),
                            &e,
                        )
                    })?;
                self.notices.push(Notice::normal(
                    Reason::VersionScaledDown,
                    "Sunset",
                    format!(
                        "Scaled Deployment {deployment} to zero: its version drained (no open run uses it)"
                    ),
                ));
            }
            Action::DeleteDeployment { deployment } => {
                delete_deployment(self.api, deployment).await?;
                self.notices.push(Notice::normal(
                    Reason::VersionDeleted,
                    "Sunset",
                    format!("Deleted Deployment {deployment}: its version no longer gets runs"),
                ));
            }
            Action::DeleteVersion { build_id } => {
                match self.schedules.delete_version(self.tns, dn, build_id, false).await {
                    Ok(()) => self.notices.push(Notice::normal(
                        Reason::VersionDeleted,
                        "Sunset",
                        format!("Deleted version {build_id} of Temporal worker deployment {dn}"),
                    )),
                    // its workers stopped moments ago: Temporal remembers pollers for minutes
                    Err(e) if pollers_linger(&e) => {
                        debug!(build_id, error = %e, "version still has pollers in Temporal's memory; retrying later");
                        self.linger = true;
                    }
                    Err(e) => return Err(problem_for(&e)),
                }
            }
        }
        Ok(())
    }

    async fn apply(&mut self, body: &serde_json::Value) -> Result<(), Problem> {
        let created = !self.existing.iter().any(|d| d.name == self.v.name);
        let applied = apply_worker(self.api, &self.v.name, body, created, self.notices).await?;
        self.applied = Some(applied);
        Ok(())
    }
}

/// Temporal refuses to delete a version whose workers it saw poll recently.
fn pollers_linger(e: &TemporalError) -> bool {
    matches!(e, TemporalError::Rejected(m) | TemporalError::Other(m) | TemporalError::Conflict(m) if m.contains("poller"))
}

/// The sentence and reason for a rollout that waits.
fn waiting(v: &Version, w: &Waiting) -> (Reason, String) {
    let b = &v.build_id;
    match w {
        Waiting::ForReady { ready, wanted } => (
            Reason::WaitingForReplicas,
            format!("build {b}: {ready}/{wanted} pods Ready"),
        ),
        Waiting::ForPollers => (
            Reason::WaitingForPollers,
            format!(
                "build {b}: pods Ready, but Temporal has not seen them poll as version {b} of worker deployment {}; the worker must read TEMPORAL_DEPLOYMENT_NAME and TEMPORAL_WORKER_BUILD_ID and turn on worker versioning (docs/workers.md), or set spec.worker.rollout.strategy: None",
                v.deployment_name
            ),
        ),
        Waiting::NoReplicas => (
            Reason::NoReplicas,
            format!("spec.worker.replicas is 0: build {b} cannot become current"),
        ),
        Waiting::ForPromotion => (
            Reason::WaitingForPromotion,
            format!(
                "build {b} is ready and polling; rollout Manual: make it current with `temporal worker deployment set-current-version --deployment-name {} --build-id {b}`",
                v.deployment_name
            ),
        ),
        Waiting::Ramping {
            percentage,
            step,
            of,
            next,
        } => (
            Reason::Ramping,
            format!(
                "build {b} gets {percentage}% of new runs (step {step} of {of}); {} in {}",
                if step == of { "current" } else { "the next step" },
                crate::get::human(chrono::TimeDelta::from_std(*next).unwrap_or(chrono::TimeDelta::MAX))
            ),
        ),
        Waiting::Held(rollout::Hold::Paused) => (
            Reason::RolloutHeld,
            format!("the rollout of build {b} is paused (kubectl durablejob rollout resume to go on)"),
        ),
        Waiting::Held(rollout::Hold::RolledBack) => (
            Reason::RolloutHeld,
            format!(
                "build {b} was rolled back: new runs go to the version before; change the spec to another build, or kubectl durablejob rollout resume to roll it out again"
            ),
        ),
        Waiting::ForGate(id) => (
            Reason::GateRunning,
            format!("gate workflow {id} runs on build {b} before new runs go to it"),
        ),
        Waiting::EndingOtherRamp => (
            Reason::Ramping,
            format!("ending another version's ramp before build {b} takes over"),
        ),
    }
}

/// What the status says: the Deployment serving new runs (the current version's, else the
/// unversioned one left from before, else the target's) and every version.
fn report(
    v: &Version,
    plan: &RolloutPlan,
    ours: &[&Deployment],
    applied: Option<&Deployment>,
    legacy: Option<&Deployment>,
    linger: bool,
    was_current: Option<String>,
) -> WorkerState {
    let routed = plan
        .actions
        .iter()
        .any(|a| matches!(a, Action::SetCurrent { .. }));
    let current = if routed {
        Some(v.build_id.clone())
    } else {
        was_current
    };
    let find = |build: &str| -> Option<&Deployment> {
        if build == v.build_id && applied.is_some() {
            return applied;
        }
        ours.iter()
            .find(|d| d.labels().get(BUILD_ID_LABEL).map(String::as_str) == Some(build))
            .copied()
    };
    let serving = current.as_deref().and_then(find).or(legacy);
    let wait = plan.waiting.as_ref().map(|w| waiting(v, w));
    let (deployment, health) = match serving {
        Some(d) => (d.name_any(), worker::health(d)),
        None => {
            let target = find(&v.build_id);
            let ready = target
                .and_then(|d| d.status.as_ref())
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            let message = wait
                .as_ref()
                .map(|(_, m)| m.clone())
                .unwrap_or_else(|| format!("build {} is not current yet", v.build_id));
            (
                v.name.clone(),
                WorkerHealth {
                    ready_replicas: ready,
                    available: false,
                    message,
                },
            )
        }
    };
    let versions = plan
        .versions
        .iter()
        .map(|r| WorkerVersionStatus {
            build_id: r.build_id.clone(),
            deployment: r
                .deployment
                .clone()
                .or_else(|| (r.build_id == v.build_id).then(|| v.name.clone())),
            state: r.state,
            ready_replicas: r.ready_replicas,
            polled: r.polled,
            ramp_percentage: r.ramp_percentage.map(i32::from),
            open_runs: 0,
        })
        .collect();
    let requeue = match (plan.requeue, linger) {
        (r, true) => Some(r.map_or(POLLERS_LINGER_RECHECK, |r| r.min(POLLERS_LINGER_RECHECK))),
        (r, false) => r,
    };
    WorkerState {
        deployment,
        health,
        versioned: Some(VersionedWorker {
            deployment_name: v.deployment_name.clone(),
            target: v.build_id.clone(),
            current,
            versions,
            waiting: wait,
            requeue,
            paused: false,
            rolled_back: None,
            rolled_back_time: None,
            requests: vec![],
        }),
    }
}

/// On deletion: the version Deployments go, routing returns to unversioned workers, and every
/// version and the Temporal Worker Deployment are deleted. `Ok(false)` while Temporal still
/// remembers pollers of a version whose workers just stopped (the finalizer waits; up to
/// Temporal's `matching.PollerHistoryTTL`, 5 minutes by default).
pub(crate) async fn cleanup<S: Schedules>(
    ctx: &Context<S>,
    dj: &DurableJob,
    tns: &str,
    deployment_name: &str,
) -> Result<bool, Problem> {
    let (namespace, name, uid) = (
        dj.namespace().unwrap_or_default(),
        dj.name_any(),
        dj.uid().unwrap_or_default(),
    );
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    for d in worker_deployments(ctx, &api, &namespace, &name).await? {
        if controlled_by(&d, &uid) {
            delete_deployment(&api, &d.name_any()).await?;
        }
    }
    let fail = |e: TemporalError| problem_for(&e);
    let Some(observed) = ctx
        .schedules
        .describe_deployment(tns, deployment_name)
        .await
        .map_err(fail)?
    else {
        return Ok(true);
    };
    if observed.current.is_some() {
        ctx.schedules
            .set_current_version(tns, deployment_name, "", &observed.conflict_token)
            .await
            .map_err(fail)?;
    }
    let mut lingering = false;
    for version in &observed.versions {
        match ctx
            .schedules
            .delete_version(tns, deployment_name, &version.build_id, true)
            .await
        {
            Ok(()) => {}
            Err(e) if pollers_linger(&e) => lingering = true,
            Err(e) => return Err(fail(e)),
        }
    }
    if lingering {
        return Ok(false);
    }
    ctx.schedules
        .delete_deployment(tns, deployment_name)
        .await
        .map_err(fail)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_counts_the_runs_still_open_on_it() {
        let run = |build: Option<&str>, result| RecentRun {
            progress: None,
            workflow_id: "w".into(),
            run_id: "r".into(),
            scheduled_time: Utc::now(),
            start_time: Utc::now(),
            close_time: None,
            result,
            job_name: None,
            attempts: None,
            message: None,
            build_id: build.map(str::to_string),
        };
        let runs = [
            run(Some("v1"), RunResult::Running),
            run(Some("v1"), RunResult::Running),
            run(Some("v1"), RunResult::Succeeded),
            run(Some("v2"), RunResult::Running),
            run(None, RunResult::Running),
        ];
        let mut versions = vec![
            WorkerVersionStatus {
                build_id: "v1".into(),
                ..Default::default()
            },
            WorkerVersionStatus {
                build_id: "v3".into(),
                open_runs: 4,
                ..Default::default()
            },
        ];
        count_open_runs(&mut versions, &runs);
        let open: Vec<i32> = versions.iter().map(|v| v.open_runs).collect();
        assert_eq!(open, vec![2, 0]);
    }
}
