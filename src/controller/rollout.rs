//! The rollout of a versioned user worker (`spec.worker` with Worker Deployment Versioning),
//! decided by one pure function: from the version the spec asks for, the version Deployments
//! that exist, Temporal's description of the Worker Deployment and the clock, what to create,
//! route, scale down and delete, and the state of each version for the status.
//!
//! `AllAtOnce`: the wanted version's Deployment is applied; once all its replicas are Ready and
//! Temporal lists the version (its workers polled), it is made current. A version that is no
//! longer current drains: its pinned runs finish on it. Once Temporal reports it Drained it is
//! scaled to zero after `scaledownDelay`, and its Deployment and Temporal version are deleted
//! after `deleteDelay` (both counted from when it drained). A version that never became
//! current had no runs routed to it: its Deployment and Temporal version go at once. The unversioned Deployment of
//! an operator before versioning (`<name>-worker`) is deleted once a version is current.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::Value;

pub use crate::api::RolloutStrategy;
pub use crate::desired::worker_version::{RampStep, Sunset};
use crate::temporal::worker_deployments::{Drainage, ObservedWorkerDeployment};

/// While a rollout waits on Temporal or the pods, how often it looks again.
pub const WAITING_RECHECK: Duration = Duration::from_secs(5);
/// While a version drains, how often Temporal is asked whether it has drained.
pub const DRAINING_RECHECK: Duration = Duration::from_secs(30);
/// While a gate runs, how often it is looked at.
pub const GATE_RECHECK: Duration = Duration::from_secs(5);

/// A version Deployment as it is in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionDeployment {
    pub name: String,
    pub build_id: String,
    /// `spec.replicas`.
    pub replicas: i32,
    pub ready_replicas: i32,
    /// The hash of what the operator last applied to it.
    pub spec_hash: Option<String>,
}

/// What the planner is given.
#[derive(Debug, Clone)]
pub struct RolloutInput<'a> {
    /// The build id the spec asks for.
    pub target: &'a str,
    /// The Deployment that runs it, as the operator would apply it, and that body's hash.
    pub target_deployment: &'a Value,
    pub target_hash: &'a str,
    /// The replicas the spec asks for.
    pub replicas: i32,
    /// How the target takes over (never None: that is not a versioned worker).
    pub strategy: RolloutStrategy,
    /// Progressive's steps.
    pub steps: &'a [RampStep],
    /// A person holds the target where it stands.
    pub hold: Option<Hold>,
    /// Since when a rolled-back target is held: its pods go `sunset.scaledownDelay` later.
    pub held_since: Option<DateTime<Utc>>,
    /// The id of the gate run that has not passed yet for the routing change this plan makes
    /// to the target ([`gated_change`]): the change waits for it.
    pub gate_running: Option<&'a str>,
    /// The DurableJob's version Deployments.
    pub existing: &'a [VersionDeployment],
    /// The unversioned Deployment of an operator before versioning, if there is one.
    pub legacy: Option<&'a str>,
    /// Temporal's Worker Deployment; `None` when no versioned worker has polled yet.
    pub temporal: Option<&'a ObservedWorkerDeployment>,
    pub sunset: Sunset,
    pub now: DateTime<Utc>,
}

/// One step of the plan, in the order to take them.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create or update the wanted version's Deployment.
    Apply(Value),
    /// Route new runs to this version.
    SetCurrent {
        build_id: String,
        conflict_token: Vec<u8>,
    },
    /// Route `percentage` of new runs to this version (an empty build id: end a ramp).
    SetRamping {
        build_id: String,
        percentage: u8,
        conflict_token: Vec<u8>,
    },
    /// Scale a drained (or never routed) version's Deployment to zero.
    ScaleToZero {
        deployment: String,
    },
    DeleteDeployment {
        deployment: String,
    },
    /// Delete the version in Temporal (it has no pollers once its Deployment is gone).
    DeleteVersion {
        build_id: String,
    },
}

/// Where a version stands (the status's vocabulary).
pub use crate::api::WorkerVersionState as VersionState;

/// A version, for the status.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionReport {
    pub build_id: String,
    pub deployment: Option<String>,
    pub state: VersionState,
    pub ready_replicas: i32,
    /// Temporal lists it: its workers polled.
    pub polled: bool,
    /// While it ramps: its share of new runs.
    pub ramp_percentage: Option<u8>,
}

/// Why the wanted version is not current yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Its pods are not all Ready.
    ForReady { ready: i32, wanted: i32 },
    /// Its pods run, but Temporal has not seen them poll as this version.
    ForPollers,
    /// The spec asks for no replicas: nothing can serve it.
    NoReplicas,
    /// Manual: ready and polling; a person makes it current.
    ForPromotion,
    /// Progressive: at `step` (1-based) of `of`, `percentage` of new runs; the next step (or
    /// current) in `next`.
    Ramping {
        percentage: u8,
        step: usize,
        of: usize,
        next: Duration,
    },
    /// Another version's ramp is ended first (one routing change per look).
    EndingOtherRamp,
    /// Held by a person: nothing is routed to the target.
    Held(Hold),
    /// The gate workflow of this id runs on the target before routing goes on.
    ForGate(String),
}

/// The evidence against the target version: its failed or timed-out runs that started since
/// it began to get runs, once there are `threshold` of them (newest first).
pub fn failing<'a>(
    target: &str,
    runs: &'a [crate::api::RecentRun],
    since: Option<DateTime<Utc>>,
    threshold: u32,
) -> Option<Vec<&'a crate::api::RecentRun>> {
    use crate::api::RunResult;
    // the status keeps whole seconds
    let since = since?.trunc_subsecs(0);
    let failed: Vec<&crate::api::RecentRun> = runs
        .iter()
        .filter(|r| r.build_id.as_deref() == Some(target) && r.start_time >= since)
        .filter(|r| matches!(r.result, RunResult::Failed | RunResult::TimedOut))
        .collect();
    (failed.len() as u32 >= threshold).then_some(failed)
}

/// Why a person holds a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// `rollout pause`, until `rollout resume`.
    Paused,
    /// `rollout rollback` routed back to the version before, until the spec asks for another
    /// build or `rollout resume`.
    RolledBack,
}

/// Everything one reconcile does about the worker's versions.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutPlan {
    pub actions: Vec<Action>,
    pub versions: Vec<VersionReport>,
    pub waiting: Option<Waiting>,
    /// When to look again; `None`: on the next change.
    pub requeue: Option<Duration>,
}

/// The plan for this reconcile.
pub fn plan(i: &RolloutInput<'_>) -> RolloutPlan {
    let mut p = RolloutPlan {
        actions: vec![],
        versions: vec![],
        waiting: None,
        requeue: None,
    };
    let current = i.temporal.and_then(|t| t.current.as_deref());
    let target = i.existing.iter().find(|d| d.build_id == i.target);
    // a version scaled down after it drained serves again when the spec asks for it again
    let sunk = held_scaledown(i);
    if target.is_none_or(|d| {
        d.spec_hash.as_deref() != Some(i.target_hash) || (d.replicas != i.replicas && sunk.is_none())
    }) {
        p.actions.push(Action::Apply(i.target_deployment.clone()));
    }
    match (sunk, target) {
        (Some(true), Some(d)) if d.replicas > 0 => p.actions.push(Action::ScaleToZero {
            deployment: d.name.clone(),
        }),
        (Some(false), _) => {
            let at = i.held_since.unwrap_or(i.now) + sunset_span(i.sunset.scaledown_delay);
            p.requeue = earliest(p.requeue, until(at, i.now));
        }
        _ => {}
    }
    route_target(i, target, current, &mut p);
    if let Some(id) = i.gate_running {
        wait_for_gate(i, id, &mut p);
    }
    let routed = p.actions.iter().any(|a| matches!(a, Action::SetCurrent { .. }));
    let current_now = if routed { Some(i.target) } else { current };
    for d in i.existing.iter().filter(|d| d.build_id != i.target) {
        sunset_version(i, d, current, current_now, &mut p);
    }
    forget_gone_versions(i, current_now, &mut p);
    if let (Some(legacy), Some(_)) = (i.legacy, current_now) {
        p.actions.push(Action::DeleteDeployment {
            deployment: legacy.to_string(),
        });
    }
    p
}

/// A rolled-back target keeps its pods for inspection until `scaledownDelay` after the rollback:
/// `Some(true)` once that has passed, `Some(false)` before, `None` when it is not rolled back.
fn held_scaledown(i: &RolloutInput<'_>) -> Option<bool> {
    let since = i.held_since.filter(|_| i.hold == Some(Hold::RolledBack))?;
    Some(i.now >= since + sunset_span(i.sunset.scaledown_delay))
}

/// The wanted version: once all its pods are Ready and Temporal lists it, made current
/// (AllAtOnce), ramped then made current (Progressive), or left to a person (Manual).
fn route_target(
    i: &RolloutInput<'_>,
    target: Option<&VersionDeployment>,
    current: Option<&str>,
    p: &mut RolloutPlan,
) {
    let ready = target.map_or(0, |d| d.ready_replicas);
    let polled = i.temporal.and_then(|t| t.version(i.target)).is_some();
    let is_current = current == Some(i.target);
    p.versions.push(VersionReport {
        build_id: i.target.to_string(),
        deployment: target.map(|d| d.name.clone()),
        state: if is_current {
            VersionState::Current
        } else {
            VersionState::Inactive
        },
        ready_replicas: ready,
        polled,
        ramp_percentage: None,
    });
    if is_current {
        return;
    }
    p.waiting = if i.replicas < 1 {
        Some(Waiting::NoReplicas)
    } else if ready < i.replicas {
        Some(Waiting::ForReady {
            ready,
            wanted: i.replicas,
        })
    } else if !polled {
        Some(Waiting::ForPollers)
    } else {
        None
    };
    if let (None, Some(hold)) = (&p.waiting, i.hold) {
        p.waiting = Some(Waiting::Held(hold));
        return;
    }
    match (&p.waiting, i.temporal) {
        (None, Some(t)) => take_over(i, t, current, p),
        (Some(Waiting::NoReplicas), _) => {}
        _ => p.requeue = Some(WAITING_RECHECK),
    }
}

/// A target that can serve: routed by the strategy, one routing change per plan (each
/// changes the conflict token the next would need).
fn take_over(i: &RolloutInput<'_>, t: &ObservedWorkerDeployment, current: Option<&str>, p: &mut RolloutPlan) {
    let ramp = t
        .ramping
        .as_ref()
        .map(|(b, pct)| (b.as_str(), pct.round().clamp(0.0, 100.0) as u8));
    let on_target = ramp.filter(|(b, _)| *b == i.target).map(|(_, pct)| pct);
    let other_ramp = ramp.is_some_and(|(b, _)| b != i.target);
    let report = |p: &mut RolloutPlan, state, pct| {
        if let Some(r) = p.versions.iter_mut().find(|r| r.build_id == i.target) {
            r.state = state;
            r.ramp_percentage = pct;
        }
    };
    let set = |build_id: &str, percentage: u8| Action::SetRamping {
        build_id: build_id.to_string(),
        percentage,
        conflict_token: t.conflict_token.clone(),
    };
    match i.strategy {
        RolloutStrategy::Manual => {
            // a person routes: a ramp they set is shown, nothing is changed
            report(
                p,
                if on_target.is_some() {
                    VersionState::Ramping
                } else {
                    VersionState::Inactive
                },
                on_target,
            );
            p.waiting = Some(Waiting::ForPromotion);
            p.requeue = Some(DRAINING_RECHECK);
        }
        _ if other_ramp => {
            p.actions.push(set("", 0));
            p.waiting = Some(Waiting::EndingOtherRamp);
            p.requeue = Some(Duration::from_secs(1));
        }
        // nothing serves yet, so nothing to ramp from
        RolloutStrategy::Progressive if current.is_some() && !i.steps.is_empty() => {
            ramp_step(i, t, on_target, p, &set);
            let pct = p.actions.iter().rev().find_map(|a| match a {
                Action::SetRamping { percentage, .. } => Some(*percentage),
                _ => None,
            });
            if !p.actions.iter().any(|a| matches!(a, Action::SetCurrent { .. })) {
                report(p, VersionState::Ramping, pct.or(on_target));
            } else {
                report(p, VersionState::Current, None);
            }
        }
        _ => {
            p.actions.push(Action::SetCurrent {
                build_id: i.target.to_string(),
                conflict_token: t.conflict_token.clone(),
            });
            report(p, VersionState::Current, None);
        }
    }
}

/// The routing change this plan makes to the target, which a gate run must pass first: its
/// index in the actions and its key (the ramp's percentage, or `current`).
pub fn gated_change(actions: &[Action], target: &str) -> Option<(usize, String)> {
    actions.iter().enumerate().find_map(|(at, a)| match a {
        Action::SetRamping {
            build_id, percentage, ..
        } if build_id == target && *percentage > 0 => Some((at, format!("{percentage}pct"))),
        Action::SetCurrent { build_id, .. } if build_id == target => Some((at, "current".to_string())),
        _ => None,
    })
}

/// The gate run `id` for the routing change to the target has not passed: the change waits,
/// and the target is reported where Temporal has it (so are the others, which nothing
/// re-routes).
fn wait_for_gate(i: &RolloutInput<'_>, id: &str, p: &mut RolloutPlan) {
    let Some((at, _)) = gated_change(&p.actions, i.target) else {
        return;
    };
    p.actions.remove(at);
    p.waiting = Some(Waiting::ForGate(id.to_string()));
    p.requeue = earliest(p.requeue, GATE_RECHECK);
    let ramp = i
        .temporal
        .and_then(|t| t.ramping.as_ref())
        .filter(|(b, _)| b == i.target)
        .map(|(_, pct)| pct.round().clamp(0.0, 100.0) as u8);
    if let Some(r) = p.versions.iter_mut().find(|r| r.build_id == i.target) {
        r.state = if ramp.is_some() {
            VersionState::Ramping
        } else {
            VersionState::Inactive
        };
        r.ramp_percentage = ramp;
    }
}

/// Progressive: start at the first step, hold each step for its pause, move to the next, and
/// make the target current after the last.
fn ramp_step(
    i: &RolloutInput<'_>,
    t: &ObservedWorkerDeployment,
    on_target: Option<u8>,
    p: &mut RolloutPlan,
    set: &dyn Fn(&str, u8) -> Action,
) {
    let steps = i.steps;
    let ramping = |p: &mut RolloutPlan, at: usize, next: Duration| {
        p.waiting = Some(Waiting::Ramping {
            percentage: steps[at].percentage,
            step: at + 1,
            of: steps.len(),
            next,
        });
        p.requeue = earliest(p.requeue, next.max(Duration::from_secs(1)));
    };
    let Some(pct) = on_target else {
        p.actions.push(set(i.target, steps[0].percentage));
        return ramping(p, 0, steps[0].pause);
    };
    // the step the ramp stands at (steps edited meanwhile: the first one not below it)
    let at = steps
        .iter()
        .position(|s| s.percentage >= pct)
        .unwrap_or(steps.len() - 1);
    if steps[at].percentage != pct {
        p.actions.push(set(i.target, steps[at].percentage));
        return ramping(p, at, steps[at].pause);
    }
    let due = t.ramping_since.unwrap_or(i.now) + sunset_span(steps[at].pause);
    if i.now < due {
        return ramping(p, at, until(due, i.now));
    }
    match steps.get(at + 1) {
        Some(next) => {
            p.actions.push(set(i.target, next.percentage));
            ramping(p, at + 1, next.pause);
        }
        None => p.actions.push(Action::SetCurrent {
            build_id: i.target.to_string(),
            conflict_token: t.conflict_token.clone(),
        }),
    }
}

/// A version that is not the wanted one: it keeps serving while current, drains, then is
/// scaled down and deleted on the sunset's schedule. `was_current` is the current version as
/// Temporal described it, `current` the one after this plan's routing.
fn sunset_version(
    i: &RolloutInput<'_>,
    d: &VersionDeployment,
    was_current: Option<&str>,
    current: Option<&str>,
    p: &mut RolloutPlan,
) {
    let listed = i.temporal.and_then(|t| t.version(&d.build_id));
    let ramping = i
        .temporal
        .and_then(|t| t.ramping.as_ref())
        .filter(|(b, _)| *b == d.build_id)
        .map(|(_, pct)| pct.round().clamp(0.0, 100.0) as u8);
    let rerouted = p
        .actions
        .iter()
        .any(|a| matches!(a, Action::SetCurrent { .. } | Action::SetRamping { .. }));
    let (state, drained_at) = match listed {
        _ if current == Some(d.build_id.as_str()) => (VersionState::Current, None),
        // routed away from in this plan: Temporal starts draining it
        _ if was_current == Some(d.build_id.as_str()) => (VersionState::Draining, None),
        // a ramp someone else set (Manual), until this plan routes elsewhere
        _ if ramping.is_some() && !rerouted => (VersionState::Ramping, None),
        _ if ramping.is_some() => (VersionState::Draining, None),
        Some(v) if v.drainage == Drainage::Draining => (VersionState::Draining, None),
        Some(v) if v.drainage == Drainage::Drained => {
            (VersionState::Drained, Some(v.drainage_changed.unwrap_or(i.now)))
        }
        // never routed to (superseded before it became current): no run can be pinned to
        // it, so it goes at once
        _ => (VersionState::Inactive, None),
    };
    p.versions.push(VersionReport {
        build_id: d.build_id.clone(),
        deployment: Some(d.name.clone()),
        state,
        ready_replicas: d.ready_replicas,
        polled: listed.is_some(),
        ramp_percentage: ramping.filter(|_| state == VersionState::Ramping),
    });
    let Some(drained_at) = drained_at else {
        match state {
            VersionState::Draining => p.requeue = earliest(p.requeue, DRAINING_RECHECK),
            VersionState::Inactive => p.actions.push(Action::DeleteDeployment {
                deployment: d.name.clone(),
            }),
            _ => {}
        }
        return;
    };
    let scale_at = drained_at + sunset_span(i.sunset.scaledown_delay);
    let delete_at = drained_at + sunset_span(i.sunset.delete_delay);
    if i.now >= delete_at {
        p.actions.push(Action::DeleteDeployment {
            deployment: d.name.clone(),
        });
    } else if i.now >= scale_at {
        if d.replicas > 0 {
            p.actions.push(Action::ScaleToZero {
                deployment: d.name.clone(),
            });
        }
        p.requeue = earliest(p.requeue, until(delete_at, i.now));
    } else {
        p.requeue = earliest(p.requeue, until(scale_at, i.now));
    }
}

/// Temporal versions whose Deployment is gone: deleted in Temporal once past the delete
/// delay (or at once if they never served), unless current.
fn forget_gone_versions(i: &RolloutInput<'_>, current: Option<&str>, p: &mut RolloutPlan) {
    let Some(t) = i.temporal else { return };
    for v in &t.versions {
        let deployed = v.build_id == i.target || i.existing.iter().any(|d| d.build_id == v.build_id);
        let routed =
            current == Some(v.build_id.as_str()) || t.ramping.as_ref().is_some_and(|(b, _)| *b == v.build_id);
        if deployed || routed || v.drainage == Drainage::Draining {
            continue;
        }
        let gone_since = v
            .drainage_changed
            .unwrap_or(i.now - sunset_span(i.sunset.delete_delay));
        if i.now >= gone_since + sunset_span(i.sunset.delete_delay) || v.drainage == Drainage::NotDraining {
            p.actions.push(Action::DeleteVersion {
                build_id: v.build_id.clone(),
            });
        }
    }
}

fn sunset_span(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now)
        .to_std()
        .unwrap_or_default()
        .max(Duration::from_secs(1))
}

fn earliest(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporal::worker_deployments::ObservedVersion;
    use chrono::{TimeDelta, TimeZone};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
    }

    fn deployment(build_id: &str, replicas: i32, ready: i32) -> VersionDeployment {
        VersionDeployment {
            name: format!("report-{build_id}"),
            build_id: build_id.into(),
            replicas,
            ready_replicas: ready,
            spec_hash: Some(format!("hash-{build_id}")),
        }
    }

    fn version(build_id: &str, drainage: Drainage, changed_minutes_ago: i64) -> ObservedVersion {
        ObservedVersion {
            build_id: build_id.into(),
            drainage,
            drainage_changed: Some(now() - TimeDelta::minutes(changed_minutes_ago)),
            created: None,
        }
    }

    fn temporal(current: Option<&str>, versions: Vec<ObservedVersion>) -> ObservedWorkerDeployment {
        ObservedWorkerDeployment {
            current: current.map(str::to_string),
            ramping: None,
            ramping_since: None,
            current_since: None,
            ramp_started: None,
            versions,
            conflict_token: vec![1],
        }
    }

    /// v2 current, v1 in `drainage` since `minutes_ago`.
    fn v2_current(drainage: Drainage, minutes_ago: i64) -> Option<ObservedWorkerDeployment> {
        Some(temporal(
            Some("v2"),
            vec![
                version("v1", drainage, minutes_ago),
                version("v2", Drainage::NotDraining, 0),
            ],
        ))
    }

    /// v1 current, v2 listed (its workers polled).
    fn v1_current() -> Option<ObservedWorkerDeployment> {
        Some(temporal(
            Some("v1"),
            vec![
                version("v1", Drainage::NotDraining, 0),
                version("v2", Drainage::NotDraining, 0),
            ],
        ))
    }

    /// v1 and v2 deployed, all pods Ready.
    fn both() -> Vec<VersionDeployment> {
        vec![deployment("v1", 2, 2), deployment("v2", 2, 2)]
    }

    fn sunset() -> Sunset {
        Sunset {
            scaledown_delay: Duration::from_secs(60 * 60),
            delete_delay: Duration::from_secs(24 * 60 * 60),
        }
    }

    struct Case {
        name: &'static str,
        existing: Vec<VersionDeployment>,
        legacy: Option<&'static str>,
        temporal: Option<ObservedWorkerDeployment>,
        actions: Vec<Action>,
        waiting: Option<Waiting>,
    }

    fn body() -> Value {
        json!({"metadata": {"name": "report-v2"}})
    }

    fn run(c: &Case) -> RolloutPlan {
        plan(&RolloutInput {
            target: "v2",
            target_deployment: &body(),
            target_hash: "hash-v2",
            replicas: 2,
            strategy: RolloutStrategy::AllAtOnce,
            steps: &[],
            hold: None,
            held_since: None,
            gate_running: None,
            existing: &c.existing,
            legacy: c.legacy,
            temporal: c.temporal.as_ref(),
            sunset: sunset(),
            now: now(),
        })
    }

    fn set_current() -> Action {
        Action::SetCurrent {
            build_id: "v2".into(),
            conflict_token: vec![1],
        }
    }

    fn scale(d: &str) -> Action {
        Action::ScaleToZero {
            deployment: format!("report-{d}"),
        }
    }

    fn delete(d: &str) -> Action {
        Action::DeleteDeployment {
            deployment: format!("report-{d}"),
        }
    }

    #[test]
    fn all_at_once_rollouts_step_by_step() {
        let cases = vec![
            Case {
                name: "nothing yet: the version's Deployment is made, and waited for",
                existing: vec![],
                legacy: None,
                temporal: None,
                actions: vec![Action::Apply(body())],
                waiting: Some(Waiting::ForReady { ready: 0, wanted: 2 }),
            },
            Case {
                name: "pods Ready, no poller seen: wait, say so",
                existing: vec![deployment("v2", 2, 2)],
                legacy: None,
                temporal: None,
                actions: vec![],
                waiting: Some(Waiting::ForPollers),
            },
            Case {
                name: "Ready and polling: made current",
                existing: vec![deployment("v2", 2, 2)],
                legacy: None,
                temporal: Some(temporal(None, vec![version("v2", Drainage::NotDraining, 0)])),
                actions: vec![set_current()],
                waiting: None,
            },
            Case {
                name: "one pod of two Ready: v1 stays current",
                existing: vec![deployment("v1", 2, 2), deployment("v2", 2, 1)],
                legacy: None,
                temporal: v1_current(),
                actions: vec![],
                waiting: Some(Waiting::ForReady { ready: 1, wanted: 2 }),
            },
            Case {
                name: "v2 ready and polling while v1 is current: v2 made current, v1 left to drain",
                existing: both(),
                legacy: None,
                temporal: v1_current(),
                actions: vec![set_current()],
                waiting: None,
            },
            Case {
                name: "rolled back to a version scaled to zero after it drained: it is scaled up again",
                existing: vec![deployment("v1", 2, 2), deployment("v2", 0, 0)],
                legacy: None,
                temporal: v1_current(),
                actions: vec![Action::Apply(body())],
                waiting: Some(Waiting::ForReady { ready: 0, wanted: 2 }),
            },
            Case {
                name: "v1 draining: kept running",
                existing: both(),
                legacy: None,
                temporal: v2_current(Drainage::Draining, 5),
                actions: vec![],
                waiting: None,
            },
            Case {
                name: "v1 drained 10 minutes ago: kept until the scale-down delay",
                existing: both(),
                legacy: None,
                temporal: v2_current(Drainage::Drained, 10),
                actions: vec![],
                waiting: None,
            },
            Case {
                name: "v1 drained two hours ago: scaled to zero",
                existing: both(),
                legacy: None,
                temporal: v2_current(Drainage::Drained, 120),
                actions: vec![scale("v1")],
                waiting: None,
            },
            Case {
                name: "v1 drained a day ago: its Deployment deleted",
                existing: vec![deployment("v1", 0, 0), deployment("v2", 2, 2)],
                legacy: None,
                temporal: v2_current(Drainage::Drained, 24 * 60 + 1),
                actions: vec![delete("v1")],
                waiting: None,
            },
            Case {
                name: "v1's Deployment gone a day after it drained: its Temporal version deleted",
                existing: vec![deployment("v2", 2, 2)],
                legacy: None,
                temporal: v2_current(Drainage::Drained, 24 * 60 + 1),
                actions: vec![Action::DeleteVersion {
                    build_id: "v1".into(),
                }],
                waiting: None,
            },
            Case {
                name: "a version that never became current goes at once",
                existing: vec![deployment("v1", 2, 2), deployment("v2", 2, 0)],
                legacy: None,
                temporal: Some(temporal(None, vec![version("v1", Drainage::NotDraining, 0)])),
                actions: vec![delete("v1")],
                waiting: Some(Waiting::ForReady { ready: 0, wanted: 2 }),
            },
            Case {
                name: "and once its Deployment is gone, so does its Temporal version",
                existing: vec![deployment("v2", 2, 0)],
                legacy: None,
                temporal: Some(temporal(None, vec![version("v1", Drainage::NotDraining, 0)])),
                actions: vec![Action::DeleteVersion {
                    build_id: "v1".into(),
                }],
                waiting: Some(Waiting::ForReady { ready: 0, wanted: 2 }),
            },
            Case {
                name: "the unversioned Deployment goes once a version is current",
                existing: vec![deployment("v2", 2, 2)],
                legacy: Some("report-worker"),
                temporal: Some(temporal(None, vec![version("v2", Drainage::NotDraining, 0)])),
                actions: vec![
                    set_current(),
                    Action::DeleteDeployment {
                        deployment: "report-worker".into(),
                    },
                ],
                waiting: None,
            },
            Case {
                name: "the unversioned Deployment serves until then",
                existing: vec![deployment("v2", 2, 2)],
                legacy: Some("report-worker"),
                temporal: None,
                actions: vec![],
                waiting: Some(Waiting::ForPollers),
            },
        ];
        for c in &cases {
            let p = run(c);
            assert_eq!(p.actions, c.actions, "{}", c.name);
            assert_eq!(p.waiting, c.waiting, "{}", c.name);
        }
    }

    #[test]
    fn a_changed_template_of_the_same_build_id_is_applied_again() {
        let mut stale = deployment("v2", 2, 2);
        stale.spec_hash = Some("older".into());
        let c = Case {
            name: "",
            existing: vec![stale],
            legacy: None,
            temporal: Some(temporal(
                Some("v2"),
                vec![version("v2", Drainage::NotDraining, 0)],
            )),
            actions: vec![],
            waiting: None,
        };
        assert_eq!(run(&c).actions, vec![Action::Apply(body())]);
    }

    fn steps() -> Vec<RampStep> {
        vec![
            RampStep {
                percentage: 10,
                pause: Duration::from_secs(300),
            },
            RampStep {
                percentage: 50,
                pause: Duration::from_secs(600),
            },
        ]
    }

    /// v1 current, v2 listed and ramping at `pct` since `minutes_ago` (no ramp: `None`).
    fn ramping(pct: Option<f32>, minutes_ago: i64) -> ObservedWorkerDeployment {
        let mut t = v1_current().unwrap();
        t.ramping = pct.map(|p| ("v2".to_string(), p));
        t.ramping_since = Some(now() - TimeDelta::minutes(minutes_ago));
        t
    }

    fn run_with(strategy: RolloutStrategy, temporal: &ObservedWorkerDeployment) -> RolloutPlan {
        run_gated(strategy, temporal, None)
    }

    /// Like [`run_with`], with the gate run `gate` not passed yet.
    fn run_gated(
        strategy: RolloutStrategy,
        temporal: &ObservedWorkerDeployment,
        gate: Option<&str>,
    ) -> RolloutPlan {
        let steps = steps();
        plan(&RolloutInput {
            target: "v2",
            target_deployment: &body(),
            target_hash: "hash-v2",
            replicas: 2,
            strategy,
            steps: &steps,
            hold: None,
            held_since: None,
            gate_running: gate,
            existing: &both(),
            legacy: None,
            temporal: Some(temporal),
            sunset: sunset(),
            now: now(),
        })
    }

    fn ramp(pct: u8) -> Action {
        Action::SetRamping {
            build_id: "v2".into(),
            percentage: pct,
            conflict_token: vec![1],
        }
    }

    fn state_of(p: &RolloutPlan, b: &str) -> (VersionState, Option<u8>) {
        let r = p.versions.iter().find(|r| r.build_id == b).unwrap();
        (r.state, r.ramp_percentage)
    }

    #[test]
    fn progressive_ramps_step_by_step_then_makes_current() {
        use RolloutStrategy::Progressive;
        let waiting = |percentage, step, minutes: u64| {
            Some(Waiting::Ramping {
                percentage,
                step,
                of: 2,
                next: Duration::from_secs(minutes * 60),
            })
        };
        // ready and polling: the first step
        let p = run_with(Progressive, &ramping(None, 0));
        assert_eq!(p.actions, vec![ramp(10)]);
        assert_eq!(p.waiting, waiting(10, 1, 5));
        assert_eq!(state_of(&p, "v2"), (VersionState::Ramping, Some(10)));
        assert_eq!(state_of(&p, "v1").0, VersionState::Current, "v1 keeps the rest");
        assert_eq!(p.requeue, Some(Duration::from_secs(300)));
        // two minutes into the first step: wait out its pause
        let p = run_with(Progressive, &ramping(Some(10.0), 2));
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.waiting, waiting(10, 1, 3));
        // its pause over: the next step
        let p = run_with(Progressive, &ramping(Some(10.0), 5));
        assert_eq!(p.actions, vec![ramp(50)]);
        assert_eq!(p.waiting, waiting(50, 2, 10));
        // the last step's pause over: current, and v1 drains
        let p = run_with(Progressive, &ramping(Some(50.0), 10));
        assert_eq!(p.actions, vec![set_current()]);
        assert_eq!(p.waiting, None);
        assert_eq!(state_of(&p, "v2"), (VersionState::Current, None));
        assert_eq!(state_of(&p, "v1").0, VersionState::Draining);
        // steps edited while ramping (30% is no step): moved to the step at or above it
        let p = run_with(Progressive, &ramping(Some(30.0), 1));
        assert_eq!(p.actions, vec![ramp(50)]);
        // the first version of all has nothing to ramp from: made current at once
        let mut first = temporal(None, vec![version("v2", Drainage::NotDraining, 0)]);
        first.conflict_token = vec![1];
        assert_eq!(run_with(Progressive, &first).actions[0], set_current());
    }

    #[test]
    fn a_routing_change_waits_for_its_gate_and_versions_stay_where_temporal_has_them() {
        use RolloutStrategy::{AllAtOnce, Progressive};
        // AllAtOnce: v2 would be made current; while the gate runs v1 stays current, not draining
        let p = run_gated(AllAtOnce, &ramping(None, 0), Some("gate-1"));
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.waiting, Some(Waiting::ForGate("gate-1".into())));
        assert_eq!(state_of(&p, "v2"), (VersionState::Inactive, None));
        assert_eq!(state_of(&p, "v1").0, VersionState::Current);
        assert_eq!(p.requeue, Some(GATE_RECHECK));
        // Progressive at 10 %, due for 50 %: it stays at 10 % while the gate runs
        let p = run_gated(Progressive, &ramping(Some(10.0), 5), Some("gate-1"));
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(state_of(&p, "v2"), (VersionState::Ramping, Some(10)));
        assert_eq!(state_of(&p, "v1").0, VersionState::Current);
        // a plan that routes nothing to the target waits for no gate
        let p = run_gated(Progressive, &ramping(Some(10.0), 2), Some("gate-1"));
        assert!(
            matches!(p.waiting, Some(Waiting::Ramping { .. })),
            "{:?}",
            p.waiting
        );
    }

    #[test]
    fn a_ramp_of_a_superseded_version_ends_first_and_it_drains() {
        let mut t = v1_current().unwrap();
        t.versions.push(version("v3", Drainage::NotDraining, 0));
        t.ramping = Some(("v3".into(), 10.0));
        let existing = vec![
            deployment("v1", 2, 2),
            deployment("v2", 2, 2),
            deployment("v3", 2, 2),
        ];
        let p = plan(&RolloutInput {
            target: "v2",
            target_deployment: &body(),
            target_hash: "hash-v2",
            replicas: 2,
            strategy: RolloutStrategy::AllAtOnce,
            steps: &[],
            hold: None,
            held_since: None,
            gate_running: None,
            existing: &existing,
            legacy: None,
            temporal: Some(&t),
            sunset: sunset(),
            now: now(),
        });
        assert_eq!(
            p.actions,
            vec![Action::SetRamping {
                build_id: String::new(),
                percentage: 0,
                conflict_token: vec![1]
            }],
            "one routing change per look"
        );
        assert_eq!(p.waiting, Some(Waiting::EndingOtherRamp));
        assert_eq!(
            state_of(&p, "v3").0,
            VersionState::Draining,
            "runs may be pinned to it"
        );
        assert_eq!(p.requeue, Some(Duration::from_secs(1)));
    }

    #[test]
    fn the_evidence_is_the_targets_failed_runs_since_it_got_runs() {
        use crate::api::{RecentRun, RunResult};
        let run = |b: &str, minutes_ago: i64, result| RecentRun {
            progress: None,
            workflow_id: format!("w-{b}-{minutes_ago}"),
            run_id: "r".into(),
            scheduled_time: now() - TimeDelta::minutes(minutes_ago),
            start_time: now() - TimeDelta::minutes(minutes_ago),
            close_time: None,
            result,
            job_name: None,
            attempts: None,
            message: None,
            build_id: Some(b.into()),
        };
        let runs = vec![
            run("v2", 1, RunResult::Failed),
            run("v2", 2, RunResult::Succeeded),
            run("v1", 3, RunResult::Failed),
            run("v2", 4, RunResult::TimedOut),
            run("v2", 30, RunResult::Failed),
        ];
        let since = Some(now() - TimeDelta::minutes(10));
        let failed = failing("v2", &runs, since, 2).expect("two failures of v2 since it got runs");
        assert_eq!(
            failed.len(),
            2,
            "v1's failure and one from before v2 got runs do not count"
        );
        assert!(failing("v2", &runs, since, 3).is_none(), "below the threshold");
        assert!(
            failing("v2", &runs, None, 1).is_none(),
            "not routed to: no evidence"
        );
        assert!(failing("v3", &runs, since, 1).is_none());
        // a run started in the second it was routed counts (the status keeps whole seconds)
        let at = now() - TimeDelta::minutes(1);
        let sub = at + TimeDelta::milliseconds(400);
        assert_eq!(failing("v2", &runs, Some(sub), 1).map(|f| f.len()), Some(1));
    }

    #[test]
    fn a_held_rollout_routes_nothing_to_the_target_while_versions_before_are_sunset_as_ever() {
        let steps = steps();
        for hold in [Hold::Paused, Hold::RolledBack] {
            let p = plan(&RolloutInput {
                target: "v2",
                target_deployment: &body(),
                target_hash: "hash-v2",
                replicas: 2,
                strategy: RolloutStrategy::Progressive,
                steps: &steps,
                hold: Some(hold),
                held_since: None,
                gate_running: None,
                existing: &both(),
                legacy: None,
                temporal: v1_current().as_ref(),
                sunset: sunset(),
                now: now(),
            });
            assert!(p.actions.is_empty(), "{hold:?}: {:?}", p.actions);
            assert_eq!(p.waiting, Some(Waiting::Held(hold)));
            assert_eq!(state_of(&p, "v1").0, VersionState::Current);
        }
        // a rolled-back target keeps its pods for the scale-down delay, then they go, and a
        // scaled-down held target is not scaled up again
        let held = |minutes_ago: i64, v2_replicas: i32| {
            let existing = vec![deployment("v1", 2, 2), deployment("v2", v2_replicas, v2_replicas)];
            plan(&RolloutInput {
                target: "v2",
                target_deployment: &body(),
                target_hash: "hash-v2",
                replicas: 2,
                strategy: RolloutStrategy::AllAtOnce,
                steps: &[],
                hold: Some(Hold::RolledBack),
                held_since: Some(now() - TimeDelta::minutes(minutes_ago)),
                gate_running: None,
                existing: &existing,
                legacy: None,
                temporal: v1_current().as_ref(),
                sunset: sunset(),
                now: now(),
            })
        };
        let p = held(10, 2);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.requeue, Some(Duration::from_secs(50 * 60)));
        assert_eq!(held(61, 2).actions, vec![scale("v2")]);
        assert!(held(61, 0).actions.is_empty(), "{:?}", held(61, 0).actions);
    }

    #[test]
    fn manual_deploys_and_waits_for_a_person_and_shows_what_they_set() {
        use RolloutStrategy::Manual;
        let p = run_with(Manual, &ramping(None, 0));
        assert!(p.actions.is_empty(), "nothing routed: {:?}", p.actions);
        assert_eq!(p.waiting, Some(Waiting::ForPromotion));
        assert_eq!(state_of(&p, "v2").0, VersionState::Inactive);
        assert_eq!(state_of(&p, "v1").0, VersionState::Current);
        // a person ramped it: shown, left alone
        let p = run_with(Manual, &ramping(Some(20.0), 1));
        assert!(p.actions.is_empty());
        assert_eq!(state_of(&p, "v2"), (VersionState::Ramping, Some(20)));
        // a person made it current: v1 drains as after any rollout
        let p = run_with(Manual, &v2_current(Drainage::Draining, 0).unwrap());
        assert!(p.actions.is_empty());
        assert_eq!(p.waiting, None);
        assert_eq!(state_of(&p, "v2").0, VersionState::Current);
        assert_eq!(state_of(&p, "v1").0, VersionState::Draining);
    }

    #[test]
    fn no_replicas_is_said_and_nothing_routes() {
        let p = plan(&RolloutInput {
            target: "v2",
            target_deployment: &body(),
            target_hash: "hash-v2",
            replicas: 0,
            strategy: RolloutStrategy::AllAtOnce,
            steps: &[],
            hold: None,
            held_since: None,
            gate_running: None,
            existing: &[deployment("v2", 0, 0)],
            legacy: None,
            temporal: Some(&temporal(None, vec![version("v2", Drainage::NotDraining, 0)])),
            sunset: sunset(),
            now: now(),
        });
        assert_eq!(p.waiting, Some(Waiting::NoReplicas));
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.requeue, None, "nothing to wait for until the spec changes");
    }

    #[test]
    fn the_status_lists_every_version_with_its_state_and_the_next_look_is_the_next_deadline() {
        let c = Case {
            name: "",
            existing: both(),
            legacy: None,
            temporal: v2_current(Drainage::Drained, 10),
            actions: vec![],
            waiting: None,
        };
        let p = run(&c);
        let states: Vec<_> = p
            .versions
            .iter()
            .map(|v| (v.build_id.as_str(), v.state))
            .collect();
        assert_eq!(
            states,
            vec![("v2", VersionState::Current), ("v1", VersionState::Drained)]
        );
        assert_eq!(
            p.requeue,
            Some(Duration::from_secs(50 * 60)),
            "v1 is scaled down 50 minutes from now"
        );
    }
}
