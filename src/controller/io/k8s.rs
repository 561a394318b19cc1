//! The Kubernetes steps of a reconcile: the user's worker Deployment and the calendars it
//! reads. The status write and the Events are the shared core's (`crate::operator`), as for
//! every controller; one field manager for every write.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::events::EventType,
};

use super::Notice;
use std::collections::BTreeMap;

use crate::api::{DurableJob, DurableJobCalendar};
use crate::controller::Context;
use crate::controller::build::worker::{self, WorkerPlan};
use crate::controller::status::{Problem, WorkerState};
use crate::desired::schedule::DesiredSchedule;
use crate::desired::validate::{Executor, ValidSpec};
use crate::operator::FIELD_MANAGER;
use crate::reason::Reason;
use crate::temporal::Schedules;

/// A failed Kubernetes request as a problem on the resource: a person must act on a refusal
/// (403, 422), anything else may pass.
pub(crate) fn problem(reason: Reason, what: String, e: &kube::Error) -> Problem {
    let stalled = matches!(e, kube::Error::Api(s) if matches!(s.code, 401 | 403 | 422));
    Problem {
        reason,
        message: format!("{what}: {e}"),
        stalled,
    }
}

/// Applies the worker Deployment for `spec.worker` (only when what the operator would apply
/// changed) and reports its health; removes the operator's Deployment when there is no worker.
/// A versioned worker (rollout AllAtOnce) is [`super::worker_versions`]'s, not this.
/// Observe (the cached or read Deployment), decide ([`worker::plan`]), act.
pub(crate) async fn sync_worker<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    valid: &ValidSpec,
    desired: &DesiredSchedule,
    notices: &mut Vec<Notice>,
) -> Result<Option<WorkerState>, Problem> {
    let namespace = dj.namespace().unwrap_or_default();
    let name = dj.name_any();
    let uid = dj.uid().unwrap_or_default();
    refuse_leaving_versions(ctx, &namespace, &name, &uid, valid)?;
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let deployment = worker::deployment_name(&name);
    let existing = existing_worker(ctx, &api, valid, &namespace, &deployment).await?;
    let want = match &valid.executor {
        Executor::UserWorker(w) => Some(worker::desired(
            &worker::WorkerTarget {
                namespace: &namespace,
                name: &name,
                uid: &uid,
                temporal_address: &ctx.settings.temporal_address,
                temporal_namespace: &desired.location.namespace,
                task_queue: &desired.action.task_queue,
                connection: &ctx.settings.worker_connection,
            },
            w,
        )),
        _ => None,
    };
    let current = match worker::plan(&uid, want.as_ref(), existing.as_ref()) {
        WorkerPlan::NameTaken { owner } => {
            return Err(Problem {
                reason: Reason::WorkerNameTaken,
                message: format!(
                    "Deployment {deployment} already exists in namespace {namespace} and is not this DurableJob's worker ({owner}), so the operator leaves it untouched: rename or remove that Deployment, or give this DurableJob another name (its worker is always <name>-worker)"
                ),
                stalled: true,
            });
        }
        WorkerPlan::Delete => {
            delete_worker(&api, &deployment, notices).await?;
            None
        }
        WorkerPlan::Keep => existing.filter(|_| want.is_some()),
        WorkerPlan::Apply { want, created } => {
            Some(apply_worker(&api, &deployment, want, created, notices).await?)
        }
    };
    Ok(current.map(|d| WorkerState {
        deployment,
        health: worker::health(&d),
        versioned: None,
    }))
}

/// A versioned worker cannot yet become one unversioned Deployment (rollout None) or the
/// built-in runner: runs may be pinned to its versions, and Temporal routes new runs to its
/// current version. Said, and nothing is changed, until the spec asks for versions again or the
/// DurableJob is recreated.
fn refuse_leaving_versions<S: Schedules>(
    ctx: &Context<S>,
    namespace: &str,
    name: &str,
    uid: &str,
    valid: &ValidSpec,
) -> Result<(), Problem> {
    let found = ctx
        .cached_workers_labelled(namespace, worker::WORKER_LABEL, name)
        .unwrap_or_default();
    let mut builds: Vec<&str> = found
        .iter()
        .filter(|d| d.owner_references().iter().any(|o| o.uid == uid))
        .filter_map(|d| d.labels().get(worker::BUILD_ID_LABEL).map(String::as_str))
        .collect();
    if builds.is_empty() {
        return Ok(());
    }
    builds.sort_unstable();
    let asks = match valid.executor {
        Executor::UserWorker(_) => "spec.worker.rollout.strategy None",
        _ => "spec.jobTemplate",
    };
    Err(Problem {
        reason: Reason::InvalidSpec,
        message: format!(
            "Invalid spec: {asks} would leave the versioned worker (builds {}), whose versions runs may be pinned to; going from versions back to one unversioned Deployment or to the built-in runner is not supported yet: set spec.worker.rollout.strategy: AllAtOnce again, or delete and recreate the DurableJob",
            builds.join(", ")
        ),
        stalled: true,
    })
}

/// The worker Deployment as it is: from the cache of labelled worker Deployments, or read.
async fn existing_worker<S: Schedules>(
    ctx: &Context<S>,
    api: &Api<Deployment>,
    valid: &ValidSpec,
    namespace: &str,
    deployment: &str,
) -> Result<Option<Deployment>, Problem> {
    match ctx.cached_worker(namespace, deployment) {
        crate::controller::Cached::Known(Some(d)) => Ok(Some((*d).clone())),
        // Not listed yet. A jobTemplate DurableJob only looks for a leftover worker Deployment
        // of its own to remove, and the first list of Deployments wakes it if there is one (it
        // owns it), so it makes no request.
        _ if !matches!(valid.executor, Executor::UserWorker(_)) => Ok(None),
        // The cache holds only labelled worker Deployments: before making one, a Deployment of
        // that name that someone else made is looked for, so it is never taken over.
        _ => api.get_opt(deployment).await.map_err(|e| {
            problem(
                Reason::WorkerApplyFailed,
                format!("cannot read Deployment {deployment}"),
                &e,
            )
        }),
    }
}

async fn delete_worker(
    api: &Api<Deployment>,
    deployment: &str,
    notices: &mut Vec<Notice>,
) -> Result<(), Problem> {
    delete_deployment(api, deployment).await?;
    notices.push(Notice::normal(
        Reason::WorkerDeleted,
        "Delete",
        format!("Deleted worker Deployment {deployment}: the resource no longer has spec.worker"),
    ));
    Ok(())
}

/// Deletes a worker Deployment (in the background); one already gone is not an error.
pub(crate) async fn delete_deployment(api: &Api<Deployment>, name: &str) -> Result<(), Problem> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(problem(
            Reason::WorkerApplyFailed,
            format!("cannot delete Deployment {name}"),
            &e,
        )),
    }
}

/// Applies a worker Deployment (server-side, forced) and says so in an Event.
pub(crate) async fn apply_worker(
    api: &Api<Deployment>,
    deployment: &str,
    want: &serde_json::Value,
    created: bool,
    notices: &mut Vec<Notice>,
) -> Result<Deployment, Problem> {
    let applied = api
        .patch(
            deployment,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(want),
        )
        .await
        .map_err(|e| {
            problem(
                Reason::WorkerApplyFailed,
                format!("cannot apply worker Deployment {deployment}"),
                &e,
            )
        })?;
    let (reason, verb) = if created {
        (Reason::WorkerCreated, "Created")
    } else {
        (Reason::WorkerUpdated, "Updated")
    };
    notices.push(Notice::normal(
        reason,
        "Sync",
        format!("{verb} worker Deployment {deployment}"),
    ));
    Ok(applied)
}

/// The DurableJobCalendars the spec lists, from the watch cache (or, before it has listed,
/// the API server): `None` for one that does not exist.
pub(crate) async fn calendars<S: Schedules>(
    ctx: &Context<S>,
    dj: &DurableJob,
) -> Result<BTreeMap<String, Option<DurableJobCalendar>>, Problem> {
    let namespace = dj.namespace().unwrap_or_default();
    let mut out = BTreeMap::new();
    for name in &dj.spec.schedule.exclude_calendars {
        let found = match ctx.cached_calendar(&namespace, name) {
            crate::controller::Cached::Known(c) => c.map(|c| (*c).clone()),
            crate::controller::Cached::Unknown => {
                let api: Api<DurableJobCalendar> = Api::namespaced(ctx.client.clone(), &namespace);
                api.get_opt(name).await.map_err(|e| {
                    problem(
                        Reason::KubernetesError,
                        format!("cannot read DurableJobCalendar {name}"),
                        &e,
                    )
                })?
            }
        };
        out.insert(name.clone(), found);
    }
    Ok(out)
}

/// A problem's Warning Event.
pub(crate) fn warning_for(p: &Problem) -> Notice {
    Notice {
        type_: EventType::Warning,
        reason: p.reason,
        action: "Reconcile",
        note: p.message.clone(),
    }
}
