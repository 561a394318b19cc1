//! What a DurableJob may make the operator and the built-in runner do, beyond a valid spec:
//! a namespace's DurableJobs act only in that namespace and only through the Temporal
//! namespaces the cluster admin granted it, and only the built-in runner's own schedules use
//! its workflow type and task queue. Pure: decided from the spec, the schedule built from it
//! and the settings; a refusal is final until the spec or the grants change (`Stalled`).

use super::status::Problem;
use crate::api::BUILTIN_WORKFLOW_TYPE;
use crate::desired::schedule::DesiredSchedule;
use crate::desired::validate::{Executor, ValidSpec};
use crate::reason::Reason;
use crate::settings::Settings;

/// `Ok` when the DurableJob in Kubernetes namespace `namespace` may have this schedule.
pub(crate) fn check(
    namespace: &str,
    valid: &ValidSpec,
    desired: &DesiredSchedule,
    settings: &Settings,
) -> Result<(), Problem> {
    temporal_namespace_granted(namespace, desired, settings)?;
    runner_reserved(valid, desired, settings)?;
    runner_serves(valid, desired, settings)
}

fn refused(reason: Reason, message: String) -> Problem {
    Problem {
        reason,
        message,
        stalled: true,
    }
}

/// spec.temporal.namespace names a Temporal namespace the admin granted this namespace.
fn temporal_namespace_granted(
    namespace: &str,
    desired: &DesiredSchedule,
    settings: &Settings,
) -> Result<(), Problem> {
    let temporal = &desired.location.namespace;
    if settings.may_use(namespace, temporal) {
        return Ok(());
    }
    let mut allowed: Vec<&str> = vec![settings.default_temporal_namespace.as_str()];
    allowed.extend(settings.namespace_grants.granted(namespace));
    allowed.dedup();
    Err(refused(
        Reason::TemporalNamespaceNotGranted,
        format!(
            "spec.temporal.namespace {temporal:?} is not granted to Kubernetes namespace {namespace:?} (it may use {}): remove spec.temporal.namespace, or ask the cluster admin to grant it (Helm value temporal.namespaceGrants, operator --temporal-namespace-grant {namespace}={temporal})",
            allowed.join(", ")
        ),
    ))
}

/// A user worker never names the built-in runner's workflow type or task queue: runs there are
/// the runner's, which acts only for its own schedules.
fn runner_reserved(valid: &ValidSpec, desired: &DesiredSchedule, settings: &Settings) -> Result<(), Problem> {
    if !matches!(valid.executor, Executor::UserWorker(_)) {
        return Ok(());
    }
    let action = &desired.action;
    let field = if action.workflow_type == BUILTIN_WORKFLOW_TYPE {
        format!("spec.workflow.type {:?}", action.workflow_type)
    } else if action.task_queue == settings.runner_task_queue {
        format!("spec.workflow.taskQueue {:?}", action.task_queue)
    } else {
        return Ok(());
    };
    Err(refused(
        Reason::ReservedForRunner,
        format!(
            "{field} is reserved for the built-in runner (workflow type {BUILTIN_WORKFLOW_TYPE}, task queue {}): a spec.worker DurableJob names its own worker's workflow type and task queue (default durablejob.<namespace>.<name>); to run a Job, use spec.jobTemplate instead of spec.worker",
            settings.runner_task_queue
        ),
    ))
}

/// A jobTemplate's runs need the built-in runner: its task queue, in a Temporal namespace it
/// polls; a schedule nobody would run is not created.
fn runner_serves(valid: &ValidSpec, desired: &DesiredSchedule, settings: &Settings) -> Result<(), Problem> {
    if !matches!(
        valid.executor,
        Executor::BuiltinRunner { .. } | Executor::Steps(_)
    ) {
        return Ok(());
    }
    let queue = &desired.action.task_queue;
    if *queue != settings.runner_task_queue {
        return Err(refused(
            Reason::RunnerNotServing,
            format!(
                "spec.workflow.taskQueue {queue:?} is not the built-in runner's task queue ({}), so no runner of this installation would run the jobTemplate: remove spec.workflow.taskQueue",
                settings.runner_task_queue
            ),
        ));
    }
    let namespace = &desired.location.namespace;
    if settings.runner_namespaces.is_empty() {
        return Err(refused(
            Reason::RunnerNotServing,
            "No built-in runner is installed with this operator (Helm runner.enabled=false, operator --no-builtin-runner), so no run of this spec.jobTemplate would start: install the runner (Helm runner.enabled=true), or run your own worker with spec.worker or spec.workflow instead of spec.jobTemplate".to_string(),
        ));
    }
    if settings.runner_namespaces.iter().any(|n| n == namespace) {
        return Ok(());
    }
    Err(refused(
        Reason::RunnerNotServing,
        format!(
            "The built-in runner does not poll Temporal namespace {namespace:?} (it polls {}), so no run of this DurableJob would start: add {namespace:?} to the Helm value runner.temporalNamespaces (runner --temporal-namespaces and operator --runner-namespaces), or remove spec.temporal.namespace",
            settings.runner_namespaces.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DurableJob;
    use crate::desired::schedule::{self, ResourceRef};
    use crate::settings::NamespaceGrants;
    use serde_json::json;

    fn settings() -> Settings {
        Settings {
            default_temporal_namespace: "jobs".into(),
            runner_namespaces: vec!["jobs".into(), "payments".into()],
            namespace_grants: NamespaceGrants::parse(&["team-a=payments", "*=shared"]).unwrap(),
            ..Settings::default()
        }
    }

    /// The check for `dj` in Kubernetes namespace `namespace`, through the real validate and build.
    fn check_in(namespace: &str, dj: &DurableJob, settings: &Settings) -> Result<(), Problem> {
        let valid = crate::desired::validate::validate(&dj.spec).expect("a valid spec");
        let r = ResourceRef {
            namespace,
            name: "report",
            uid: "uid-1",
        };
        let desired = schedule::desired(&r, &valid, &[], settings);
        check(namespace, &valid, &desired, settings)
    }

    fn in_temporal(ns: &str) -> DurableJob {
        let mut dj = DurableJob::test("report");
        dj.spec.temporal = Some(serde_json::from_value(json!({"namespace": ns})).unwrap());
        dj
    }

    fn worker(workflow: serde_json::Value) -> DurableJob {
        let mut dj = DurableJob::test("sync").with_worker("InvoiceSync");
        dj.spec.workflow = Some(serde_json::from_value(workflow).unwrap());
        dj
    }

    /// The case, Kubernetes namespace, resource, and the refusal's reason and start.
    type Row = (
        &'static str,
        &'static str,
        DurableJob,
        Option<(Reason, &'static str)>,
    );

    #[test]
    fn what_a_namespace_may_make_the_operator_do() {
        let s = settings();
        let rows: Vec<Row> = vec![
            (
                "the default Temporal namespace",
                "team-b",
                DurableJob::test("report"),
                None,
            ),
            (
                "a granted Temporal namespace",
                "team-a",
                in_temporal("payments"),
                None,
            ),
            (
                "a grant to every namespace (the runner does not poll it)",
                "team-b",
                in_temporal("shared"),
                Some((
                    Reason::RunnerNotServing,
                    "The built-in runner does not poll Temporal namespace \"shared\"",
                )),
            ),
            (
                "another namespace's grant",
                "team-b",
                in_temporal("payments"),
                Some((
                    Reason::TemporalNamespaceNotGranted,
                    "spec.temporal.namespace \"payments\" is not granted to Kubernetes namespace \"team-b\" (it may use jobs, shared)",
                )),
            ),
            (
                "a Temporal namespace nobody granted",
                "team-a",
                in_temporal("other"),
                Some((
                    Reason::TemporalNamespaceNotGranted,
                    "spec.temporal.namespace \"other\" is not granted",
                )),
            ),
            (
                "a worker of its own",
                "team-a",
                worker(json!({"type": "InvoiceSync"})),
                None,
            ),
            (
                "a worker naming the runner's workflow type",
                "team-a",
                worker(json!({"type": "durablejob.run", "taskQueue": "mine"})),
                Some((
                    Reason::ReservedForRunner,
                    "spec.workflow.type \"durablejob.run\" is reserved for the built-in runner",
                )),
            ),
            (
                "a worker naming the runner's task queue",
                "team-a",
                worker(json!({"type": "InvoiceSync", "taskQueue": "durablejob-runner"})),
                Some((
                    Reason::ReservedForRunner,
                    "spec.workflow.taskQueue \"durablejob-runner\" is reserved",
                )),
            ),
            (
                "a jobTemplate on another task queue",
                "team-a",
                {
                    let mut dj = DurableJob::test("report");
                    dj.spec.workflow =
                        Some(serde_json::from_value(json!({"taskQueue": "elsewhere"})).unwrap());
                    dj
                },
                Some((
                    Reason::RunnerNotServing,
                    "spec.workflow.taskQueue \"elsewhere\" is not the built-in runner's task queue",
                )),
            ),
        ];
        for (what, namespace, dj, expected) in rows {
            match (check_in(namespace, &dj, &s), expected) {
                (Ok(()), None) => {}
                (Err(p), Some((reason, text))) => {
                    assert_eq!(p.reason, reason, "{what}: {}", p.message);
                    assert!(p.stalled, "{what}: a refusal is final");
                    assert!(p.message.starts_with(text), "{what}: {}", p.message);
                }
                (got, expected) => panic!("{what}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn without_a_runner_a_job_template_is_refused_and_a_worker_is_not() {
        let s = Settings {
            runner_namespaces: vec![],
            ..settings()
        };
        let p = check_in("team-a", &DurableJob::test("report"), &s).unwrap_err();
        assert_eq!(p.reason, Reason::RunnerNotServing);
        assert!(p.stalled);
        assert!(
            p.message.starts_with("No built-in runner is installed")
                && p.message.contains("runner.enabled=true"),
            "{}",
            p.message
        );
        let worker: DurableJob = serde_json::from_value(json!({
            "apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob",
            "metadata": {"name": "report", "namespace": "team-a"},
            "spec": {"schedule": {"cron": ["0 * * * *"]}, "worker": {"image": "example.com/report:1"}, "workflow": {"type": "Report"}}
        }))
        .unwrap();
        assert_eq!(check_in("team-a", &worker, &s), Ok(()));
    }

    #[test]
    fn a_refused_temporal_namespace_says_how_to_grant_it() {
        let p = check_in("team-b", &in_temporal("other"), &settings()).unwrap_err();
        assert!(
            p.message.contains("--temporal-namespace-grant team-b=other")
                && p.message.contains("temporal.namespaceGrants"),
            "{}",
            p.message
        );
    }
}
