//! The rollout verbs of a versioned worker (`kubectl durablejob rollout promote|rollback|pause|
//! resume`): request annotations not yet in `status.requests`, acted on once each before the
//! rollout is planned. Promote and rollback change Temporal's routing at once; pause and the
//! hold a rollback leaves are kept in `status.worker` and read by the planner.

use chrono::{DateTime, Utc};
use tracing::info;

use super::Notice;
use super::requests::notice;
use kube::ResourceExt;

use crate::api::{BadRequest, DurableJob, Request, RequestRecord, RequestResult, RequestVerb, WorkerStatus};
use crate::controller::rollout::{Hold, VersionDeployment};
use crate::temporal::{Schedules, TemporalError};

/// Where the rollout verbs act: the Temporal Worker Deployment, the version the spec asks for
/// and the version Deployments in the cluster.
pub(crate) struct RolloutTarget<'a> {
    pub namespace: &'a str,
    pub deployment_name: &'a str,
    pub target: &'a str,
    pub existing: &'a [VersionDeployment],
}

/// What the requests did: records and Events, and the hold that stands after them.
#[derive(Debug, Default)]
pub(crate) struct RolloutRequests {
    pub records: Vec<RequestRecord>,
    pub notices: Vec<Notice>,
    pub hold: Option<Hold>,
    /// The build id a rollback routed away from (held until the spec asks for another).
    pub rolled_back: Option<String>,
}

/// The hold from the previous status: a pause, or a rollback of the build the spec still asks for.
pub(crate) fn kept_hold(previous: Option<&WorkerStatus>, target: &str) -> (Option<Hold>, Option<String>) {
    let rolled_back = previous
        .and_then(|w| w.rolled_back_build_id.clone())
        .filter(|b| b == target);
    let hold = if previous.is_some_and(|w| w.rollout_paused) {
        Some(Hold::Paused)
    } else {
        rolled_back.as_ref().map(|_| Hold::RolledBack)
    };
    (hold, rolled_back)
}

/// The DurableJob's rollout requests not handled yet, acted on.
pub(crate) async fn of<S: Schedules>(
    dj: &DurableJob,
    schedules: &S,
    t: &RolloutTarget<'_>,
) -> RolloutRequests {
    let previous = dj.status.clone().unwrap_or_default();
    let pending = super::requests::pending(dj.annotations(), &previous)
        .into_iter()
        .filter(|p| p.as_ref().map_or_else(|b| b.verb, |r| r.verb).is_rollout())
        .collect();
    handle(schedules, t, pending, previous.worker.as_ref(), Utc::now()).await
}

/// Acts on each pending rollout request once; one Temporal refuses or cannot hear is left for
/// the next reconcile when it may pass.
pub(crate) async fn handle<S: Schedules>(
    schedules: &S,
    t: &RolloutTarget<'_>,
    pending: Vec<Result<Request, BadRequest>>,
    previous: Option<&WorkerStatus>,
    now: DateTime<Utc>,
) -> RolloutRequests {
    let (hold, rolled_back) = kept_hold(previous, t.target);
    let mut out = RolloutRequests {
        hold,
        rolled_back,
        ..Default::default()
    };
    for p in pending {
        let r = match p {
            Ok(r) => r,
            Err(bad) => {
                out.notices
                    .push(notice(bad.verb, RequestResult::Rejected, &bad.id, &bad.message));
                out.records.push(RequestRecord {
                    id: bad.id,
                    verb: bad.verb,
                    handled_time: now,
                    result: RequestResult::Rejected,
                    message: bad.message,
                    workflow_ids: vec![],
                    run_ids: vec![],
                });
                continue;
            }
        };
        let outcome = match r.verb {
            RequestVerb::Promote => promote(schedules, t).await,
            RequestVerb::Rollback => rollback(schedules, t).await,
            RequestVerb::PauseRollout => Ok(Done::ok(format!(
                "the rollout of build {} is held where it stands",
                t.target
            ))),
            RequestVerb::ResumeRollout => Ok(Done::ok(format!("the rollout of build {} goes on", t.target))),
            _ => continue,
        };
        // what a request that went through leaves for the planner
        match (&outcome, r.verb) {
            (Ok(d), RequestVerb::Rollback) if d.result == RequestResult::Succeeded => {
                (out.hold, out.rolled_back) = (Some(Hold::RolledBack), Some(t.target.to_string()));
            }
            (Ok(_), RequestVerb::PauseRollout) => out.hold = Some(Hold::Paused),
            (Ok(d), RequestVerb::Promote | RequestVerb::ResumeRollout)
                if d.result == RequestResult::Succeeded =>
            {
                (out.hold, out.rolled_back) = (None, None);
            }
            _ => {}
        }
        let done = match outcome {
            Ok(d) => d,
            Err(e @ (TemporalError::Unavailable(_) | TemporalError::Conflict(_))) => {
                info!(verb = r.verb.as_str(), id = %r.id, error = %e, "rollout request waits for Temporal");
                continue;
            }
            Err(e) => Done {
                result: RequestResult::Failed,
                message: format!("Temporal refused it: {e}"),
            },
        };
        out.notices
            .push(notice(r.verb, done.result, &r.id, &done.message));
        out.records.push(RequestRecord {
            id: r.id,
            verb: r.verb,
            handled_time: now,
            result: done.result,
            message: done.message,
            workflow_ids: vec![],
            run_ids: vec![],
        });
    }
    out
}

struct Done {
    result: RequestResult,
    message: String,
}

impl Done {
    fn ok(message: String) -> Self {
        Self {
            result: RequestResult::Succeeded,
            message,
        }
    }

    fn refused(message: String) -> Self {
        Self {
            result: RequestResult::Rejected,
            message,
        }
    }
}

/// Routes new runs to `build_id`: a ramp of another version is ended first, then it is made
/// current (each call with the token of a fresh description).
async fn route_to<S: Schedules>(
    schedules: &S,
    t: &RolloutTarget<'_>,
    build_id: &str,
) -> Result<(), TemporalError> {
    let (ns, dn) = (t.namespace, t.deployment_name);
    let Some(d) = schedules.describe_deployment(ns, dn).await? else {
        return Err(TemporalError::Conflict(format!(
            "worker deployment {dn} is not in Temporal yet"
        )));
    };
    let token = if d.ramping.as_ref().is_some_and(|(b, _)| b != build_id) {
        schedules
            .set_ramping_version(ns, dn, "", 0.0, &d.conflict_token)
            .await?;
        let again = schedules.describe_deployment(ns, dn).await?;
        again.map(|d| d.conflict_token).unwrap_or_default()
    } else {
        d.conflict_token
    };
    schedules.set_current_version(ns, dn, build_id, &token).await
}

/// The version the spec asks for, current now, skipping ramp steps or a person's promotion.
async fn promote<S: Schedules>(schedules: &S, t: &RolloutTarget<'_>) -> Result<Done, TemporalError> {
    let d = schedules
        .describe_deployment(t.namespace, t.deployment_name)
        .await?;
    let Some(d) = d.filter(|d| d.version(t.target).is_some()) else {
        return Ok(Done::refused(format!(
            "build {} has not polled Temporal yet; promote it once its pods are Ready and polling",
            t.target
        )));
    };
    if d.current.as_deref() == Some(t.target) {
        return Ok(Done::ok(format!("build {} is already current", t.target)));
    }
    route_to(schedules, t, t.target).await?;
    Ok(Done::ok(format!(
        "build {} is current in Temporal worker deployment {}: new runs go to it",
        t.target, t.deployment_name
    )))
}

/// New runs back to the newest other version that still has Ready pods; the build routed to,
/// or `None` when there is none to go back to.
pub(crate) async fn roll_back<S: Schedules>(
    schedules: &S,
    t: &RolloutTarget<'_>,
) -> Result<Option<String>, TemporalError> {
    let Some(d) = schedules
        .describe_deployment(t.namespace, t.deployment_name)
        .await?
    else {
        return Ok(None);
    };
    let serving = |b: &str| t.existing.iter().any(|e| e.build_id == b && e.ready_replicas > 0);
    let Some(previous) = d
        .versions
        .iter()
        .filter(|v| v.build_id != t.target && serving(&v.build_id))
        .max_by_key(|v| v.created)
        .map(|v| v.build_id.clone())
    else {
        return Ok(None);
    };
    if d.current.as_deref() != Some(previous.as_str()) || d.ramping.is_some() {
        route_to(schedules, t, &previous).await?;
    }
    Ok(Some(previous))
}

/// `rollback`: [`roll_back`]; the spec's version keeps its Deployment for inspection and is not
/// routed to again until the spec changes or `resume-rollout`.
async fn rollback<S: Schedules>(schedules: &S, t: &RolloutTarget<'_>) -> Result<Done, TemporalError> {
    Ok(match roll_back(schedules, t).await? {
        Some(previous) => Done::ok(format!(
            "new runs go to build {previous} again; build {} keeps its Deployment and is not routed to until the spec changes or resume-rollout",
            t.target
        )),
        None => Done::refused(format!(
            "no version before build {} has Ready pods to take the runs back; set the spec back to the version you want instead",
            t.target
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RequestParams;
    use crate::temporal::fake::FakeSchedules;
    use crate::temporal::worker_deployments::{
        Drainage, ObservedVersion, ObservedWorkerDeployment, WorkerDeployments,
    };
    use chrono::TimeZone;

    const NS: &str = "default";
    const DN: &str = "apps/report";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap()
    }

    fn version(b: &str, minutes_old: i64) -> ObservedVersion {
        ObservedVersion {
            build_id: b.into(),
            drainage: Drainage::NotDraining,
            drainage_changed: None,
            created: Some(now() - chrono::TimeDelta::minutes(minutes_old)),
        }
    }

    /// v1 (oldest), v2 and v3 polled; `current` current, v3 ramping at 20 % when `ramp`.
    fn fake(current: &str, ramp: bool) -> FakeSchedules {
        let fake = FakeSchedules::default();
        fake.set_deployment(
            NS,
            DN,
            ObservedWorkerDeployment {
                current: Some(current.into()),
                ramping: ramp.then(|| ("v3".to_string(), 20.0)),
                ramping_since: None,
                current_since: None,
                ramp_started: None,
                versions: vec![version("v1", 30), version("v2", 20), version("v3", 10)],
                conflict_token: vec![1],
            },
        );
        fake
    }

    fn deployed(b: &str, ready: i32) -> VersionDeployment {
        VersionDeployment {
            name: format!("report-{b}"),
            build_id: b.into(),
            replicas: ready,
            ready_replicas: ready,
            spec_hash: None,
        }
    }

    fn request(verb: RequestVerb, id: &str) -> Result<Request, BadRequest> {
        Ok(Request {
            verb,
            id: id.into(),
            params: RequestParams::Rollout,
        })
    }

    async fn run(
        fake: &FakeSchedules,
        existing: &[VersionDeployment],
        verbs: &[RequestVerb],
    ) -> RolloutRequests {
        let t = RolloutTarget {
            namespace: NS,
            deployment_name: DN,
            target: "v3",
            existing,
        };
        let pending = verbs
            .iter()
            .enumerate()
            .map(|(i, v)| request(*v, &format!("r{i}")))
            .collect();
        handle(fake, &t, pending, None, now()).await
    }

    #[tokio::test]
    async fn promote_makes_the_target_current_ending_its_ramp() {
        let fake = fake("v2", true);
        let out = run(&fake, &[], &[RequestVerb::Promote]).await;
        assert_eq!(
            out.records[0].result,
            RequestResult::Succeeded,
            "{:?}",
            out.records
        );
        let d = fake.describe_deployment(NS, DN).await.unwrap().unwrap();
        assert_eq!(d.current.as_deref(), Some("v3"));
        assert_eq!((out.hold, out.rolled_back), (None, None));
    }

    #[tokio::test]
    async fn rollback_routes_to_the_newest_version_with_ready_pods_and_holds_the_target() {
        let fake = fake("v3", false);
        let existing = [deployed("v1", 2), deployed("v2", 0), deployed("v3", 2)];
        let out = run(&fake, &existing, &[RequestVerb::Rollback]).await;
        assert_eq!(
            out.records[0].result,
            RequestResult::Succeeded,
            "{:?}",
            out.records
        );
        let d = fake.describe_deployment(NS, DN).await.unwrap().unwrap();
        assert_eq!(
            d.current.as_deref(),
            Some("v1"),
            "v2 is scaled down: v1 takes the runs back"
        );
        assert_eq!(
            (out.hold, out.rolled_back.as_deref()),
            (Some(Hold::RolledBack), Some("v3"))
        );
        // with nothing to go back to, refused and nothing changes
        // (v1 and v2 are listed in Temporal but have no Deployment with Ready pods)
        let alone = self::fake("v3", false);
        let out = run(&alone, &[deployed("v3", 2)], &[RequestVerb::Rollback]).await;
        assert_eq!(out.records[0].result, RequestResult::Rejected);
        assert!(
            out.records[0].message.contains("no version before build v3"),
            "{:?}",
            out.records
        );
        assert_eq!(out.hold, None);
    }

    #[tokio::test]
    async fn pause_holds_and_resume_lets_go_and_a_bad_request_is_recorded_once() {
        let fake = fake("v2", false);
        let out = run(&fake, &[], &[RequestVerb::PauseRollout]).await;
        assert_eq!(out.hold, Some(Hold::Paused));
        let out = run(
            &fake,
            &[],
            &[RequestVerb::PauseRollout, RequestVerb::ResumeRollout],
        )
        .await;
        assert_eq!(out.hold, None);
        assert_eq!(out.records.len(), 2);
        // a kept pause, and a rollback held only while the spec still asks for that build
        let previous = WorkerStatus {
            rollout_paused: true,
            rolled_back_build_id: Some("v2".into()),
            ..Default::default()
        };
        assert_eq!(kept_hold(Some(&previous), "v3"), (Some(Hold::Paused), None));
        let previous = WorkerStatus {
            rolled_back_build_id: Some("v3".into()),
            ..Default::default()
        };
        assert_eq!(
            kept_hold(Some(&previous), "v3"),
            (Some(Hold::RolledBack), Some("v3".into()))
        );
        let t = RolloutTarget {
            namespace: NS,
            deployment_name: DN,
            target: "v3",
            existing: &[],
        };
        let bad = Err(BadRequest {
            verb: RequestVerb::Promote,
            id: "invalid-1".into(),
            message: "annotation durablejob.dev/promote: nope".into(),
        });
        let out = handle(&fake, &t, vec![bad], None, now()).await;
        assert_eq!(out.records[0].result, RequestResult::Rejected);
        assert_eq!(out.notices.len(), 1);
    }
}
