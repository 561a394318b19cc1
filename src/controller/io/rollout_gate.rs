//! A rollout's gate (`spec.worker.rollout.gate`): before new runs are routed to a new version
//! (made current, or each ramp step), a workflow of the gate's type runs pinned to that version;
//! routing waits while it runs (the planner is told: [`Verdict::Running`]), goes on when it
//! succeeded, and stops when it failed: the version is held like a rolled-back one, with a
//! Warning.

use super::Notice;
use super::rollout_requests::{RolloutRequests, RolloutTarget};
use super::schedule_sync::problem_for;
use crate::controller::rollout::{Hold, RolloutPlan, gated_change};
use crate::controller::status::Problem;
use crate::reason::Reason;
use crate::temporal::Schedules;
use crate::temporal::worker_deployments::GateOutcome;

/// What the gate says about the plan's routing change to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No gate, no change to gate, or its run succeeded: the plan stands.
    Open,
    /// The gate run of this id runs (started now, or before): the change waits.
    Running(String),
    /// The gate run failed: the target is held (in the requests), with a Warning.
    Failed,
}

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

/// The id of the gate run before routing `key` to `build_id`.
pub(crate) fn gate_id(schedule_id: &str, build_id: &str, key: &str) -> String {
    format!("{schedule_id}-gate-{build_id}-{key}")
}

/// Whether the plan's routing change to the target may go: starts its gate run if there is
/// none yet, and, when it failed, holds the version and says so.
pub(crate) async fn check<S: Schedules>(
    schedules: &S,
    g: Option<&Gate<'_>>,
    rt: &RolloutTarget<'_>,
    plan: &RolloutPlan,
    requests: &mut RolloutRequests,
    notices: &mut Vec<Notice>,
) -> Result<Verdict, Problem> {
    let (Some(g), Some((_, key))) = (g, gated_change(&plan.actions, rt.target)) else {
        return Ok(Verdict::Open);
    };
    let id = gate_id(g.schedule_id, rt.target, &key);
    let fail = |e| problem_for(&e);
    let outcome = schedules.gate_outcome(rt.namespace, &id).await.map_err(fail)?;
    let how = match outcome {
        Some(GateOutcome::Succeeded) => return Ok(Verdict::Open),
        Some(GateOutcome::Failed(how)) => how,
        Some(GateOutcome::Running) => return Ok(Verdict::Running(id)),
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
            return Ok(Verdict::Running(id));
        }
    };
    (requests.hold, requests.rolled_back) = (Some(Hold::RolledBack), Some(rt.target.to_string()));
    notices.push(Notice::warning(
        Reason::GateFailed,
        "Rollout",
        format!(
            "Gate workflow {id} ({}) on build {} ended {how}: the rollout stops and new runs stay where they are; fix the build and change the spec, or kubectl durablejob rollout promote to go on anyway",
            g.workflow_type, rt.target
        ),
    ));
    Ok(Verdict::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporal::fake::{Call, FakeSchedules};

    fn plan(action: crate::controller::rollout::Action) -> RolloutPlan {
        RolloutPlan {
            actions: vec![action],
            versions: vec![],
            waiting: None,
            requeue: None,
        }
    }

    fn current() -> crate::controller::rollout::Action {
        crate::controller::rollout::Action::SetCurrent {
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
        use crate::controller::rollout::Action;
        let fake = FakeSchedules::default();
        let id = gate_id("durablejob:apps/report", "v2", "current");
        let (mut r, mut n) = (RolloutRequests::default(), vec![]);
        // first look: the gate is started pinned to v2, and the change waits for it
        let v = check(&fake, Some(&GATE), &rt(), &plan(current()), &mut r, &mut n).await;
        assert_eq!(v.unwrap(), Verdict::Running(id.clone()));
        assert!(
            fake.calls()
                .contains(&Call::Deployment("start_gate", format!("{id}@v2")))
        );
        // still running: not started again
        fake.set_gate("default", &id, GateOutcome::Running);
        let v = check(&fake, Some(&GATE), &rt(), &plan(current()), &mut r, &mut n).await;
        assert_eq!(v.unwrap(), Verdict::Running(id.clone()));
        let starts = fake
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Deployment("start_gate", _)))
            .count();
        assert_eq!(starts, 1);
        // it passed: the routing change stands
        fake.set_gate("default", &id, GateOutcome::Succeeded);
        let v = check(&fake, Some(&GATE), &rt(), &plan(current()), &mut r, &mut n).await;
        assert_eq!(v.unwrap(), Verdict::Open);
        assert_eq!(r.hold, None);
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
        let v = check(&fake, Some(&GATE), &rt(), &plan(ramp), &mut r, &mut n).await;
        assert_eq!(v.unwrap(), Verdict::Failed);
        assert_eq!(
            (r.hold, r.rolled_back.as_deref()),
            (Some(Hold::RolledBack), Some("v2"))
        );
        assert!(n.iter().any(|n| n.reason == Reason::GateFailed), "{n:?}");
        // routing away from the target needs no gate
        let away = plan(Action::ScaleToZero {
            deployment: "report-v1".into(),
        });
        let v = check(&fake, Some(&GATE), &rt(), &away, &mut r, &mut n).await;
        assert_eq!(v.unwrap(), Verdict::Open);
    }
}
