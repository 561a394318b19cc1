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

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use crate::desired::worker_version::Sunset;
use crate::temporal::worker_deployments::{Drainage, ObservedWorkerDeployment};

/// While a rollout waits on Temporal or the pods, how often it looks again.
pub const WAITING_RECHECK: Duration = Duration::from_secs(5);
/// While a version drains, how often Temporal is asked whether it has drained.
pub const DRAINING_RECHECK: Duration = Duration::from_secs(30);

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
    if target.is_none_or(|d| d.spec_hash.as_deref() != Some(i.target_hash) || d.replicas != i.replicas) {
        p.actions.push(Action::Apply(i.target_deployment.clone()));
    }
    route_target(i, target, current, &mut p);
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

/// The wanted version: made current once all its pods are Ready and Temporal lists it.
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
    match (&p.waiting, i.temporal) {
        (None, Some(t)) => {
            p.actions.push(Action::SetCurrent {
                build_id: i.target.to_string(),
                conflict_token: t.conflict_token.clone(),
            });
            if let Some(r) = p.versions.last_mut() {
                r.state = VersionState::Current;
            }
        }
        (Some(Waiting::NoReplicas), _) => {}
        _ => p.requeue = Some(WAITING_RECHECK),
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
    let (state, drained_at) = match listed {
        _ if current == Some(d.build_id.as_str()) => (VersionState::Current, None),
        // routed away from in this plan: Temporal starts draining it
        _ if was_current == Some(d.build_id.as_str()) => (VersionState::Draining, None),
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

    #[test]
    fn no_replicas_is_said_and_nothing_routes() {
        let p = plan(&RolloutInput {
            target: "v2",
            target_deployment: &body(),
            target_hash: "hash-v2",
            replicas: 0,
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
