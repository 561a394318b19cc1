//! The embedded jobTemplate (each step's) judged by the API server that will run it: a
//! server-side dry-run create (`dryRun=All`) of the Job the runner would make, in the
//! DurableJob's namespace, so schema validation and admission policies both speak before a
//! schedule exists. Only when the spec changed since the schedule was last written.

use chrono::Utc;
use k8s_openapi::api::batch::v1::Job;
use kube::{Api, ResourceExt, api::PostParams, core::Status};

use crate::api::{BUILTIN_WORKFLOW_TYPE, DurableJob};
use crate::controller::status::Problem;
use crate::desired::schedule::DesiredSchedule;
use crate::reason::Reason;
use crate::run_contract::RunInput;

/// The run input of a built-in-runner schedule (`None` for a user workflow).
fn run_input(desired: &DesiredSchedule) -> Option<RunInput> {
    let action = &desired.action;
    if action.workflow_type != BUILTIN_WORKFLOW_TYPE {
        return None;
    }
    serde_json::from_value(action.args.first()?.clone()).ok()
}

/// Whether this spec was already accepted: the schedule was written from exactly it.
fn already_checked(dj: &DurableJob, desired: &DesiredSchedule) -> bool {
    crate::controller::status::sync_record::written_from(dj.status.as_ref(), &desired.hash())
}

/// What the API server's refusal means for the DurableJob. Field paths in the server's
/// message are the Job's; under the DurableJob they sit below `field` (`spec.jobTemplate`, or
/// a step's).
pub(crate) fn refusal(e: &Status, field: &str) -> Problem {
    let rbac = e.code == 403 && e.message.contains("cannot create resource");
    match e.code {
        _ if rbac => Problem {
            reason: Reason::PermissionDenied,
            message: format!(
                "cannot check {field} with a dry-run Job create: {}; the operator's role needs create on jobs (the Helm chart and config/rbac grant it)",
                e.message
            ),
            stalled: true,
        },
        403 | 422 => Problem {
            reason: Reason::InvalidSpec,
            message: format!(
                "Invalid spec: the API server refuses the Job {field} makes (field paths below are under {field}): {}",
                e.message
            ),
            stalled: true,
        },
        _ => Problem {
            reason: Reason::KubernetesError,
            message: format!("cannot check {field} with a dry-run Job create: {}", e.message),
            stalled: false,
        },
    }
}

/// Dry-runs the Job of a run of `dj` when its spec is new to the schedule.
pub(crate) async fn check_job(
    client: &kube::Client,
    dj: &DurableJob,
    desired: &DesiredSchedule,
) -> Result<(), Problem> {
    if already_checked(dj, desired) {
        return Ok(());
    }
    let Some(input) = run_input(desired) else {
        return Ok(());
    };
    let jobs: Api<Job> = Api::namespaced(client.clone(), &dj.namespace().unwrap_or_default());
    let steps: Vec<Option<String>> = match input.steps.is_empty() {
        true => vec![None],
        false => input.steps.iter().map(|s| Some(s.name.clone())).collect(),
    };
    for (i, step) in steps.into_iter().enumerate() {
        let field = match step {
            Some(_) => format!("spec.steps[{i}].jobTemplate"),
            None => "spec.jobTemplate".to_string(),
        };
        dry_run(&jobs, &input, step, &field).await?;
    }
    Ok(())
}

/// One dry-run create of the Job of `step` (`None`: the run's one Job).
async fn dry_run(
    jobs: &Api<Job>,
    input: &RunInput,
    step: Option<String>,
    field: &str,
) -> Result<(), Problem> {
    let run = crate::runner::job::JobRun {
        slot: Utc::now(),
        step,
        attempt: 1,
        manual: false,
        workflow_id: "dry-run".into(),
        run_id: "dry-run".into(),
        results: Default::default(),
        item: None,
    };
    let job = crate::runner::job::build(input, &run).map_err(|message| Problem {
        reason: Reason::InvalidSpec,
        message: format!("Invalid spec: {message}"),
        stalled: true,
    })?;
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match jobs.create(&params, &job).await {
        Ok(_) => Ok(()),
        // A Job of that name exists (a run of this very slot): the template was accepted.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(kube::Error::Api(e)) => Err(refusal(&e, field)),
        Err(e) => Err(Problem {
            reason: Reason::KubernetesError,
            message: format!("cannot check {field} with a dry-run Job create: {e}"),
            stalled: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(code: u16, message: &str) -> Status {
        Status {
            code,
            message: message.into(),
            ..Status::default()
        }
    }

    #[test]
    fn an_invalid_job_is_an_invalid_spec_naming_the_field() {
        let p = refusal(
            &response(
                422,
                r#"Job.batch "r-1a2b3c-1" is invalid: spec.template.spec.containers[0].name: Invalid value: "Main_Container": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"#,
            ),
            "spec.jobTemplate",
        );
        assert_eq!(p.reason, Reason::InvalidSpec);
        assert!(p.stalled);
        assert!(
            p.message.contains("spec.jobTemplate") && p.message.contains("containers[0].name"),
            "{}",
            p.message
        );
    }

    #[test]
    fn an_admission_policy_denial_is_an_invalid_spec_and_a_missing_permission_is_not() {
        let denied = refusal(
            &response(
                403,
                "admission webhook \"policy.example.com\" denied the request: images must come from registry.example.com",
            ),
            "spec.jobTemplate",
        );
        assert_eq!(denied.reason, Reason::InvalidSpec);
        let rbac = refusal(
            &response(
                403,
                "jobs.batch is forbidden: User \"system:serviceaccount:durablejob-system:durablejob-operator\" cannot create resource \"jobs\" in API group \"batch\" in the namespace \"apps\"",
            ),
            "spec.jobTemplate",
        );
        assert_eq!(rbac.reason, Reason::PermissionDenied);
        assert!(rbac.message.contains("create on jobs"));
        let flaky = refusal(
            &response(503, "the server is currently unable to handle the request"),
            "spec.jobTemplate",
        );
        assert!(!flaky.stalled, "a transient error is retried");
    }
}
