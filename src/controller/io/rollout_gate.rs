//! A rollout's gate (`spec.worker.rollout.gate`): before new runs are routed to a new version
//! (made current, or each ramp step), a workflow of the gate's type runs pinned to that version;
//! routing waits while it runs, goes on when it succeeded, and stops when it failed: the version
//! is held like a rolled-back one, with a Warning.

use std::time::Duration;

use super::Notice;
use super::rollout_requests::{RolloutRequests, RolloutTarget};
use super::schedule_sync::problem_for;
use crate::controller::rollout::{Action, Hold, RolloutPlan, Waiting};
use crate::controller::status::Problem;
use crate::reason::Reason;
use crate::temporal::Schedules;
use crate::temporal::worker_deployments::GateOutcome;

/// While a gate runs, how often it is looked at.
pub(crate) const GATE_RECHECK: Duration = Duration::from_secs(5);

/// The gate of one DurableJob's rollout.
pub(crate) struct Gate<'a> {
    pub workflow_type: &'a str,
    pub task_queue: &'a str,
    /// The schedule id: the gate runs' ids start with it.
    pub schedule_id: &'a str,
}

impl<'a> Gate<'a> {
    /// The gate of a DurableJob whose spec names one.
    pub(crate) fn of(
        workflow_type: Option<&'a str>,
        desired: &'a crate::desired::schedule::DesiredSchedule,
    ) -> Option<Self> {
        Some(Self {
            workflow_type: workflow_type?,
            task_queue: &desired.action.task_queue,
            schedule_id: &desired.location.id,
        })
    }
}

/// The routing change the plan makes for the target, as the key of its gate run: the ramp's
/// percentage, or `current`.
fn routing_key(plan: &RolloutPlan, target: &str) -> Option<(usize, String)> {
    plan.actions.iter().enumerate().find_map(|(i, a)| match a {
        Action::SetRamping {
            build_id, percentage, ..
        } if build_id == target && *percentage > 0 => Some((i, format!("{percentage}pct"))),
        Action::SetCurrent { build_id, .. } if build_id == target => Some((i, "current".to_string())),
        _ => None,
    })
}

/// The id of the gate run before routing `key` to `build_id`.
pub(crate) fn gate_id(schedule_id: &str, build_id: &str, key: &str) -> String {
    format!("{schedule_id}-gate-{build_id}-{key}")
}

/// Holds the plan's routing change to the target until its gate run has succeeded: starts the
/// run, waits for it, or, when it failed, drops the change and holds the version.
pub(crate) async fn apply<S: Schedules>(
    schedules: &S,
    g: Option<&Gate<'_>>,
    rt: &RolloutTarget<'_>,
    plan: &mut RolloutPlan,
    requests: &mut RolloutRequests,
    notices: &mut Vec<Notice>,
) -> Result<(), Problem> {
    let (Some(g), Some((at, key))) = (g, routing_key(plan, rt.target)) else {
        return Ok(());
    };
    let id = gate_id(g.schedule_id, rt.target, &key);
    let fail = |e| problem_for(&e);
    let outcome = schedules.gate_outcome(rt.namespace, &id).await.map_err(fail)?;
    let failed = match outcome {
        Some(GateOutcome::Succeeded) => return Ok(()),
        Some(GateOutcome::Failed(how)) => Some(how),
        Some(GateOutcome::Running) => None,
        None => {
            schedules
                .start_pinned(
                    rt.namespace,
                    &id,
                    g.workflow_type,
                    g.task_queue,
                    rt.deployment_name,
                    rt.target,
                )
                .await
                .map_err(fail)?;
            None
        }
    };
    plan.actions.remove(at);
    match failed {
        None => {
            plan.waiting = Some(Waiting::ForGate(id));
            plan.requeue = Some(plan.requeue.map_or(GATE_RECHECK, |r| r.min(GATE_RECHECK)));
        }
        Some(how) => {
            (requests.hold, requests.rolled_back) = (Some(Hold::RolledBack), Some(rt.target.to_string()));
            plan.waiting = Some(Waiting::Held(Hold::RolledBack));
            notices.push(Notice::warning(
                Reason::GateFailed,
                "Rollout",
                format!(
                    "Gate workflow {id} ({}) on build {} ended {how}: the rollout stops and new runs stay where they are; fix the build and change the spec, or kubectl durablejob rollout promote to go on anyway",
                    g.workflow_type, rt.target
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporal::fake::{Call, FakeSchedules};

    fn plan(action: Action) -> RolloutPlan {
        RolloutPlan {
            actions: vec![action],
            versions: vec![],
            waiting: None,
            requeue: None,
        }
    }

    fn current() -> Action {
        Action::SetCurrent {
            build_id: "v2".into(),
            conflict_token: vec![1],
        }
    }

    const GATE: Gate<'static> = Gate {
        workflow_type: "SmokeTest",
        task_queue: "q",
        schedule_id: "durablejob:apps/report",
    };

    fn rt() -> RolloutTarget<'static> {
        RolloutTarget {
            namespace: "default",
            deployment_name: "apps/report",
            target: "v2",
            existing: &[],
        }
    }

    #[tokio::test]
    async fn routing_waits_for_the_gate_goes_on_when_it_passed_and_stops_when_it_failed() {
        let fake = FakeSchedules::default();
        let id = gate_id("durablejob:apps/report", "v2", "current");
        // first look: the gate is started pinned to v2, and nothing is routed
        let (mut p, mut r, mut n) = (plan(current()), RolloutRequests::default(), vec![]);
        apply(&fake, Some(&GATE), &rt(), &mut p, &mut r, &mut n)
            .await
            .unwrap();
        assert!(p.actions.is_empty());
        assert_eq!(p.waiting, Some(Waiting::ForGate(id.clone())));
        assert!(
            fake.calls()
                .contains(&Call::Deployment("start_gate", format!("{id}@v2")))
        );
        // it passed: the routing change stands
        fake.set_gate("default", &id, GateOutcome::Succeeded);
        let mut p = plan(current());
        apply(&fake, Some(&GATE), &rt(), &mut p, &mut r, &mut n)
            .await
            .unwrap();
        assert_eq!(p.actions, vec![current()]);
        // a ramp step has a gate run of its own; when it failed, the version is held
        let ramp = Action::SetRamping {
            build_id: "v2".into(),
            percentage: 25,
            conflict_token: vec![1],
        };
        fake.set_gate(
            "default",
            &gate_id("durablejob:apps/report", "v2", "25pct"),
            GateOutcome::Failed("FAILED".into()),
        );
        let mut p = plan(ramp);
        apply(&fake, Some(&GATE), &rt(), &mut p, &mut r, &mut n)
            .await
            .unwrap();
        assert!(p.actions.is_empty());
        assert_eq!(
            (r.hold, r.rolled_back.as_deref()),
            (Some(Hold::RolledBack), Some("v2"))
        );
        assert!(n.iter().any(|n| n.reason == Reason::GateFailed), "{n:?}");
        // routing away from the target needs no gate
        let mut p = plan(Action::ScaleToZero {
            deployment: "report-v1".into(),
        });
        apply(&fake, Some(&GATE), &rt(), &mut p, &mut r, &mut n)
            .await
            .unwrap();
        assert_eq!(p.actions.len(), 1);
    }
}
