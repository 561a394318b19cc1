//! The Kubernetes Job of one attempt of one run, built and judged by pure functions.

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::{Job, JobTemplateSpec};
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use crate::run_contract::RunInput;
use crate::util::digest::hex_sha256;

/// Labels on every Job the runner creates.
pub const LABEL_NAME: &str = "durablejob.dev/name";
pub const LABEL_SCHEDULED_TIME: &str = "durablejob.dev/scheduled-time";
pub const LABEL_ATTEMPT: &str = "durablejob.dev/attempt";
/// On the Jobs of a multi-step run: the step's name.
pub const LABEL_STEP: &str = "durablejob.dev/step";
/// On the Jobs of a fan-out step: the item's index (0-based).
pub const LABEL_ITEM: &str = "durablejob.dev/item";

/// Annotations on every Job the runner creates.
pub mod annotation {
    /// The slot the Job runs for, RFC 3339 (CronJob's `batch.kubernetes.io/cronjob-scheduled-timestamp`).
    pub const SCHEDULED_TIME: &str = "durablejob.dev/scheduled-time";
    /// `manual` on Jobs of runs started by a trigger (kubectl's `cronjob.kubernetes.io/instantiate`).
    pub const INSTANTIATE: &str = "durablejob.dev/instantiate";
    /// The Temporal run: workflow id and run id.
    pub const WORKFLOW_ID: &str = "durablejob.dev/workflow-id";
    pub const RUN_ID: &str = "durablejob.dev/run-id";
    /// Hash of the jobTemplate the Job was made from; later attempts of the run must match it.
    pub const TEMPLATE_HASH: &str = "durablejob.dev/template-hash";
}

/// Environment variables every container of a Job gets.
pub mod env {
    pub const SCHEDULED_TIME: &str = "DURABLEJOB_SCHEDULED_TIME";
    pub const ATTEMPT: &str = "DURABLEJOB_ATTEMPT";
    pub const RUN_ID: &str = "DURABLEJOB_RUN_ID";
    pub const WORKFLOW_ID: &str = "DURABLEJOB_WORKFLOW_ID";
    /// `scheduled` or `manual`.
    pub const TRIGGER: &str = "DURABLEJOB_TRIGGER";
    /// The step's name, in a multi-step run.
    pub const STEP: &str = "DURABLEJOB_STEP";
    /// `DURABLEJOB_RESULT_<STEP>`: an earlier step's result (compact JSON), the step's name
    /// upper-cased with '-' as '_'.
    pub const RESULT_PREFIX: &str = "DURABLEJOB_RESULT_";
    /// A fan-out step's item: a string as is, any other JSON value as JSON.
    pub const ITEM: &str = "DURABLEJOB_ITEM";
    /// The item's index in the step's items, from 0.
    pub const ITEM_INDEX: &str = "DURABLEJOB_ITEM_INDEX";
}

/// Which run and attempt a Job is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub slot: DateTime<Utc>,
    /// The step of a multi-step run (`None`: the run's one Job).
    pub step: Option<String>,
    pub attempt: u32,
    /// Started by a trigger rather than at a slot of the schedule.
    pub manual: bool,
    pub workflow_id: String,
    pub run_id: String,
    /// The results of the run's earlier steps, by step name.
    pub results: BTreeMap<String, serde_json::Value>,
    /// A fan-out step's item: its index and value.
    pub item: Option<(u32, serde_json::Value)>,
}

impl JobRun {
    /// What the Job's name says besides the run and attempt: the step, and the item.
    pub fn part(&self) -> Option<String> {
        part(self.step.as_deref(), self.item.as_ref().map(|(i, _)| *i))
    }
}

/// The step (and item index) part of a Job name: `extract`, `migrate-17`.
pub fn part(step: Option<&str>, item: Option<u32>) -> Option<String> {
    match (step, item) {
        (Some(step), Some(i)) => Some(format!("{step}-{i}")),
        (Some(step), None) => Some(step.to_string()),
        (None, _) => None,
    }
}

/// Failure types a DurableJob can list in `retry.nonRetryableErrorTypes`.
pub mod failure {
    pub const JOB_FAILED: &str = "JobFailed";
    pub const JOB_DEADLINE_EXCEEDED: &str = "JobDeadlineExceeded";
    pub const INVALID_JOB_TEMPLATE: &str = "InvalidJobTemplate";
    pub const FORBIDDEN: &str = "Forbidden";
    /// A fan-out's items are not a JSON array (an earlier step's result), or too many.
    pub const INVALID_ITEMS: &str = "InvalidItems";
}

/// `<name, truncated>-<hash of uid and slot>[-<step>[-<item>]]-<attempt>`, at most 63
/// characters, so a retried or replayed activity names the same Job and never creates a second
/// one for a slot, step, item and attempt (`step` is the [`part`]).
pub fn job_name(name: &str, uid: &str, slot: DateTime<Utc>, step: Option<&str>, attempt: u32) -> String {
    let hash = &hex_sha256(format!("{uid}/{}", slot.timestamp()).as_bytes())[..8];
    let suffix = match step {
        Some(step) => format!("-{hash}-{step}-{attempt}"),
        None => format!("-{hash}-{attempt}"),
    };
    let room = 63 - suffix.len();
    let mut prefix: String = name.chars().take(room).collect();
    while prefix.ends_with(['-', '.']) {
        prefix.pop();
    }
    format!("{prefix}{suffix}")
}

/// Hash of a jobTemplate over its canonical JSON form.
pub fn template_hash(template: &serde_json::Value) -> String {
    crate::util::digest::hex_sha256(&crate::util::digest::canonical_json(template))[..16].to_string()
}

/// The Job for one attempt (of one step), from the DurableJob's jobTemplate (the step's).
pub fn build(input: &RunInput, run: &JobRun) -> Result<Job, String> {
    let (slot, attempt, step) = (run.slot, run.attempt, run.step.as_deref());
    let what = match step {
        Some(step) => format!("step {step} of DurableJob {}/{}", input.namespace, input.name),
        None => format!("DurableJob {}/{}", input.namespace, input.name),
    };
    let source = input
        .template_of(step)
        .ok_or_else(|| format!("the run has no jobTemplate for {what}"))?;
    let template: JobTemplateSpec = serde_json::from_value(source.clone())
        .map_err(|e| format!("the jobTemplate of {what} is not a JobTemplateSpec: {e}"))?;
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        annotation::SCHEDULED_TIME.into(),
        slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    if run.manual {
        annotations.insert(annotation::INSTANTIATE.into(), "manual".into());
    }
    annotations.insert(annotation::WORKFLOW_ID.into(), run.workflow_id.clone());
    annotations.insert(annotation::RUN_ID.into(), run.run_id.clone());
    annotations.insert(annotation::TEMPLATE_HASH.into(), template_hash(source));
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(LABEL_NAME.into(), input.name.clone());
    labels.insert(LABEL_SCHEDULED_TIME.into(), slot.timestamp().to_string());
    labels.insert(LABEL_ATTEMPT.into(), attempt.to_string());
    if let Some(step) = step {
        labels.insert(LABEL_STEP.into(), step.to_string());
    }
    if let Some((index, _)) = &run.item {
        labels.insert(LABEL_ITEM.into(), index.to_string());
    }
    // The pods carry the same labels, so `kubectl get pods -l durablejob.dev/name=X` finds a
    // DurableJob's pods as `job-name` does a CronJob's.
    let mut spec = template.spec;
    if let Some(spec) = spec.as_mut() {
        let pod_meta = spec.template.metadata.get_or_insert_with(Default::default);
        let pod_labels = pod_meta.labels.get_or_insert_with(Default::default);
        for key in [
            LABEL_NAME,
            LABEL_SCHEDULED_TIME,
            LABEL_ATTEMPT,
            LABEL_STEP,
            LABEL_ITEM,
        ] {
            if let Some(value) = labels.get(key) {
                pod_labels.insert(key.into(), value.clone());
            }
        }
        let vars = run_env(run);
        if let Some(pod) = spec.template.spec.as_mut() {
            let init = pod.init_containers.iter_mut().flatten();
            for container in pod.containers.iter_mut().chain(init) {
                let env = container.env.get_or_insert_with(Default::default);
                env.retain(|e| !vars.iter().any(|v| v.name == e.name));
                env.extend(vars.iter().cloned());
            }
        }
    }
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(
                &input.name,
                &input.uid,
                slot,
                run.part().as_deref(),
                attempt,
            )),
            namespace: Some(input.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "durablejob.dev/v1alpha1".into(),
                kind: "DurableJob".into(),
                name: input.name.clone(),
                uid: input.uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec,
        status: None,
    })
}

/// What a container learns about its run, as CronJob Jobs learn their slot from an annotation.
fn run_env(run: &JobRun) -> Vec<EnvVar> {
    let var = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    };
    let mut vars = vec![
        var(
            env::SCHEDULED_TIME,
            run.slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ),
        var(env::ATTEMPT, run.attempt.to_string()),
        var(env::WORKFLOW_ID, run.workflow_id.clone()),
        var(env::RUN_ID, run.run_id.clone()),
        var(
            env::TRIGGER,
            if run.manual { "manual" } else { "scheduled" }.into(),
        ),
    ];
    if let Some(step) = &run.step {
        vars.push(var(env::STEP, step.clone()));
    }
    for (step, result) in &run.results {
        vars.push(var(&result_var(step), result.to_string()));
    }
    if let Some((index, item)) = &run.item {
        let value = match item {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        vars.push(var(env::ITEM, value));
        vars.push(var(env::ITEM_INDEX, index.to_string()));
    }
    vars
}

/// The environment variable that carries step `step`'s result to later steps.
pub fn result_var(step: &str) -> String {
    format!(
        "{}{}",
        env::RESULT_PREFIX,
        step.to_ascii_uppercase().replace('-', "_")
    )
}

/// A step's result is at most this many bytes (Kubernetes keeps no more of a termination
/// message).
pub const MAX_RESULT: usize = 4096;

/// A succeeded Job's result: the termination message of the first container (in spec order)
/// of its newest succeeded pod that left one, as JSON (a message that is not JSON is a JSON
/// string). `None` when no container left one.
pub fn result_of<'a>(
    pods: impl IntoIterator<Item = &'a k8s_openapi::api::core::v1::Pod>,
) -> Option<serde_json::Value> {
    let succeeded = pods
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
        .max_by_key(|p| p.metadata.creation_timestamp.clone())?;
    let names: Vec<&str> = succeeded
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.as_str()))
        .collect();
    let statuses = succeeded.status.as_ref()?.container_statuses.as_ref()?;
    let message = names.iter().find_map(|name| {
        let status = statuses.iter().find(|c| c.name == *name)?;
        let m = status.state.as_ref()?.terminated.as_ref()?.message.as_deref()?;
        (!m.trim().is_empty()).then(|| m.trim().to_string())
    })?;
    Some(serde_json::from_str(&message).unwrap_or(serde_json::Value::String(message)))
}

/// Whether an existing Job (found on AlreadyExists) belongs to this run attempt.
pub fn is_ours(job: &Job, input: &RunInput) -> bool {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == input.uid)
}

/// Where a Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    Failed { deadline: bool, message: String },
}

pub fn state(job: &Job) -> JobState {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .cloned()
        .unwrap_or_default();
    let is_true = |t: &str| conditions.iter().find(|c| c.type_ == t && c.status == "True");
    if is_true("Complete").is_some() {
        return JobState::Succeeded;
    }
    if let Some(c) = is_true("Failed").or_else(|| is_true("FailureTarget")) {
        let reason = c.reason.clone().unwrap_or_default();
        let message = c.message.clone().unwrap_or_else(|| reason.clone());
        return JobState::Failed {
            deadline: reason == "DeadlineExceeded",
            message: if reason.is_empty() {
                message
            } else {
                format!("{reason}: {message}")
            },
        };
    }
    JobState::Running
}

/// Whether a Job is done as soon as one of its pods succeeded, before the Job controller says
/// so (it batches pod changes for a second before it marks a Job Complete): a Job of one pod
/// (`completions` and `parallelism` unset or 1), whose one success completes it. Not with
/// `activeDeadlineSeconds`, which the Job controller may still enforce when it gets to the
/// succeeded pod, nor for a suspended Job.
pub fn done_by_its_pod(desired: &Job) -> bool {
    desired.spec.as_ref().is_some_and(|s| {
        s.completions.unwrap_or(1) == 1
            && s.parallelism.unwrap_or(1) == 1
            && s.active_deadline_seconds.is_none()
            && s.suspend != Some(true)
    })
}

/// Where a Job stands, given its pods as well: a Job [`done_by_its_pod`] that the controller
/// still calls running has succeeded once one of its pods did.
pub fn state_with_pods(
    job: &Job,
    pods: &[std::sync::Arc<k8s_openapi::api::core::v1::Pod>],
    by_pod: bool,
) -> JobState {
    match state(job) {
        JobState::Running
            if by_pod
                && pods
                    .iter()
                    .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")) =>
        {
            JobState::Succeeded
        }
        other => other,
    }
}

/// A finished run: its slot (unix seconds) and when its newest Job was created, when its last Job
/// finished, and its Jobs' names. Runs are ordered by the first, the newest last.
type FinishedRun = ((Option<i64>, Option<i64>, DateTime<Utc>), Vec<String>);

/// Jobs of finished runs beyond the history limits, to delete (oldest run first). The limits
/// count runs: a run's Jobs (its attempts, steps and items, by the run annotations) are kept or
/// deleted together, and a run counts as what its last finished Job did. Runs with a Job still
/// running are left alone; a Job without the run annotations is a run of its own.
///
/// The newest runs are those of the latest slot (then of the latest created Job), as the
/// CronJob controller keeps the latest started: when a Job finished is known only to the second
/// and from two clocks (the Job controller marks a Job Complete a second or more after its pod
/// ended, and a Job done by its pod has only the pod's time), so it only breaks ties.
///
/// `pods` are the pods the runner's watch has (any Jobs'): a Job [`done_by_its_pod`] whose pod
/// succeeded counts as succeeded, as the run that waited for it did, though the Job controller
/// has not marked it Complete yet (it is then the newest, unless its pod says when it ended).
pub fn beyond_history(jobs: &[Job], pods: &[Arc<Pod>], successful: i32, failed: i32) -> Vec<String> {
    let pods_of = |j: &Job| -> Vec<Arc<Pod>> {
        let uid = j.metadata.uid.as_deref();
        pods.iter()
            .filter(|p| {
                p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && Some(o.uid.as_str()) == uid)
            })
            .cloned()
            .collect()
    };
    let state = |j: &Job| state_with_pods(j, &pods_of(j), done_by_its_pod(j));
    let finished_at = |j: &Job| -> Option<DateTime<Utc>> {
        let at = |t: &Time| DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32);
        let own = j.status.as_ref().and_then(|s| {
            s.completion_time.clone().or_else(|| {
                s.conditions
                    .as_ref()?
                    .iter()
                    .filter(|c| c.status == "True")
                    .filter_map(|c| c.last_transition_time.clone())
                    .max()
            })
        });
        if let Some(t) = own {
            return at(&t);
        }
        // done by its pod: when the pod's containers ended, else the newest of all
        (state(j) == JobState::Succeeded).then(|| {
            pods_of(j)
                .iter()
                .flat_map(|p| {
                    p.status
                        .iter()
                        .flat_map(|s| s.container_statuses.iter().flatten())
                })
                .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.clone())
                .max()
                .and_then(|t| at(&t))
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
    };
    let mut runs: BTreeMap<(String, String), Vec<&Job>> = BTreeMap::new();
    for j in jobs {
        let a = j.metadata.annotations.as_ref();
        let key = match (
            a.and_then(|a| a.get(annotation::WORKFLOW_ID)),
            a.and_then(|a| a.get(annotation::RUN_ID)),
        ) {
            (Some(w), Some(r)) => (w.clone(), r.clone()),
            _ => (String::new(), j.metadata.name.clone().unwrap_or_default()),
        };
        runs.entry(key).or_default().push(j);
    }
    // the finished runs, by whether they succeeded
    let mut by_kind: BTreeMap<bool, Vec<FinishedRun>> = BTreeMap::new();
    for run in runs.values() {
        if run.iter().any(|j| state(j) == JobState::Running) {
            continue;
        }
        let Some(last) = run.iter().max_by_key(|j| {
            (
                finished_at(j).unwrap_or(DateTime::<Utc>::MIN_UTC),
                j.metadata.name.clone(),
            )
        }) else {
            continue;
        };
        let ok = state(last) == JobState::Succeeded;
        let when = finished_at(last).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let slot = run
            .iter()
            .filter_map(|j| {
                j.metadata
                    .labels
                    .as_ref()?
                    .get(LABEL_SCHEDULED_TIME)?
                    .parse::<i64>()
                    .ok()
            })
            .max();
        let created = run
            .iter()
            .filter_map(|j| Some(j.metadata.creation_timestamp.as_ref()?.0.as_second()))
            .max();
        let mut names: Vec<String> = run.iter().filter_map(|j| j.metadata.name.clone()).collect();
        names.sort();
        by_kind
            .entry(ok)
            .or_default()
            .push(((slot, created, when), names));
    }
    let mut out = vec![];
    for (ok, mut list) in by_kind {
        let keep = if ok { successful } else { failed }.max(0) as usize;
        list.sort_by(|a, b| b.cmp(a));
        let mut extra: Vec<FinishedRun> = list.into_iter().skip(keep).collect();
        extra.reverse();
        out.extend(extra.into_iter().flat_map(|(_, names)| names));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn input() -> RunInput {
        RunInput {
            version: crate::run_contract::VERSION,
            namespace: "team".into(),
            name: "nightly-report".into(),
            uid: "uid-1".into(),
            job_template: json!({
                "metadata": {"labels": {"app": "report"}, "annotations": {"team": "x"}},
                "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}
            }),
            retry: None,
            successful_runs_history_limit: 3,
            failed_runs_history_limit: 1,
            steps: vec![],
            reuse: None,
        }
    }

    fn slot() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 2, 30, 0).unwrap()
    }

    fn run(attempt: u32) -> JobRun {
        JobRun {
            slot: slot(),
            step: None,
            results: BTreeMap::new(),
            item: None,
            attempt,
            manual: false,
            workflow_id: "durablejob:team/nightly-report-2026-03-01T02:30:00Z".into(),
            run_id: "run-1".into(),
        }
    }

    #[test]
    fn a_job_name_is_stable_per_slot_and_attempt_and_fits_63_characters() {
        let a = job_name("nightly-report", "uid-1", slot(), None, 1);
        assert_eq!(a, job_name("nightly-report", "uid-1", slot(), None, 1));
        assert!(a.starts_with("nightly-report-") && a.ends_with("-1"), "{a}");
        assert_ne!(a, job_name("nightly-report", "uid-1", slot(), None, 2));
        assert_ne!(
            a,
            job_name(
                "nightly-report",
                "uid-1",
                slot() + chrono::TimeDelta::minutes(1),
                None,
                1
            )
        );
        assert_ne!(
            a,
            job_name("nightly-report", "uid-2", slot(), None, 1),
            "a recreated resource gets new names"
        );
        let long = job_name(&"x".repeat(253), "uid-1", slot(), None, 12);
        assert_eq!(long.len(), 63);
        let dashed = job_name(&format!("{}-y", "x".repeat(50)), "u", slot(), None, 1);
        assert!(!dashed.contains("--"), "{dashed}");
        // a step's Jobs: the step before the attempt, one name per step and attempt, 63 at most
        let step = job_name("nightly-report", "uid-1", slot(), Some("extract"), 1);
        assert!(
            step.starts_with("nightly-report-") && step.ends_with("-extract-1"),
            "{step}"
        );
        assert_ne!(step, job_name("nightly-report", "uid-1", slot(), Some("load"), 1));
        assert_ne!(step, a);
        let long = job_name(&"x".repeat(253), "uid-1", slot(), Some(&"s".repeat(20)), 12);
        assert_eq!(long.len(), 63);
    }

    #[test]
    fn a_step_result_is_the_first_termination_message_of_the_succeeded_pod_and_later_steps_see_it() {
        let pod = |phase: &str, messages: &[(&str, Option<&str>)], minute: u32| {
            serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(json!({
                "metadata": {"name": format!("p{minute}"), "creationTimestamp": format!("2026-03-01T02:{minute:02}:00Z")},
                "spec": {"containers": messages.iter().map(|(n, _)| json!({"name": n})).collect::<Vec<_>>()},
                "status": {"phase": phase, "containerStatuses": messages.iter().rev().map(|(n, m)| json!({
                    "name": n, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "message": m}}})).collect::<Vec<_>>()}
            }))
            .unwrap()
        };
        let pods = [
            pod("Failed", &[("main", Some("{\"n\": 1}"))], 1),
            pod(
                "Succeeded",
                &[("sidecar", None), ("main", Some(" {\"accounts\": [7, 9]}\n"))],
                2,
            ),
        ];
        assert_eq!(result_of(&pods[..]), Some(json!({"accounts": [7, 9]})));
        // not JSON: a string; no message: no result
        assert_eq!(
            result_of(&[pod("Succeeded", &[("main", Some("done"))], 3)]),
            Some(json!("done"))
        );
        assert_eq!(result_of(&[pod("Succeeded", &[("main", None)], 3)]), None);
        assert_eq!(result_of(&pods[..1]), None, "a failed pod has no result");

        let mut run = run(1);
        run.results
            .insert("list-accounts".into(), json!({"accounts": [7, 9]}));
        let job = build(&input(), &run).unwrap();
        let env = job.spec.unwrap().template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap();
        let var = env
            .iter()
            .find(|e| e.name == "DURABLEJOB_RESULT_LIST_ACCOUNTS")
            .unwrap();
        assert_eq!(var.value.as_deref(), Some("{\"accounts\":[7,9]}"));
    }

    #[test]
    fn a_steps_job_is_made_from_its_step_and_says_which_step_it_is() {
        let mut steps_input = input();
        steps_input.job_template = serde_json::Value::Null;
        steps_input.steps = vec![crate::run_contract::RunStep {
            name: "load".into(),
            job_template: json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "l", "image": "loader:2"}]}}}}),
            retry: None,
            timeout: None,
            depends_on: vec![],
            for_each: None,
            continue_on_item_failure: false,
        }];
        let run = JobRun {
            step: Some("load".into()),
            ..run(1)
        };
        let job = build(&steps_input, &run).unwrap();
        assert!(job.metadata.name.as_ref().unwrap().ends_with("-load-1"));
        assert_eq!(job.metadata.labels.as_ref().unwrap()[LABEL_STEP], "load");
        let pod = job.spec.as_ref().unwrap().template.clone();
        assert_eq!(pod.metadata.unwrap().labels.unwrap()[LABEL_STEP], "load");
        let c = &pod.spec.unwrap().containers[0];
        assert_eq!(c.image.as_deref(), Some("loader:2"));
        let env = c.env.as_ref().unwrap();
        assert!(
            env.iter()
                .any(|e| e.name == env::STEP && e.value.as_deref() == Some("load"))
        );
        // a step the run does not carry, and a run of steps asked for its one Job
        let missing = JobRun {
            step: Some("publish".into()),
            ..run.clone()
        };
        assert!(
            build(&steps_input, &missing)
                .unwrap_err()
                .contains("step publish")
        );
        assert!(build(&steps_input, &JobRun { step: None, ..run }).is_err());
    }

    #[test]
    fn the_job_keeps_the_template_and_is_labelled_and_owned() {
        let job = build(&input(), &run(2)).unwrap();
        let m = &job.metadata;
        assert_eq!(m.namespace.as_deref(), Some("team"));
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "report");
        assert_eq!(labels[LABEL_NAME], "nightly-report");
        assert_eq!(labels[LABEL_SCHEDULED_TIME], slot().timestamp().to_string());
        assert_eq!(labels[LABEL_ATTEMPT], "2");
        assert_eq!(m.annotations.as_ref().unwrap()["team"], "x");
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("DurableJob", "uid-1", Some(true))
        );
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(
            [LABEL_NAME, LABEL_SCHEDULED_TIME, LABEL_ATTEMPT].map(|k| pod_labels[k].clone()),
            [
                "nightly-report".to_string(),
                slot().timestamp().to_string(),
                "2".into()
            ],
            "the pods carry the run's labels too"
        );
        assert!(is_ours(&build(&input(), &run(1)).unwrap(), &input()));
    }

    #[test]
    fn every_container_learns_its_slot_attempt_and_run_and_a_manual_run_says_so() {
        let mut template = input();
        template.job_template["spec"]["template"]["spec"]["initContainers"] = json!([{"name": "init", "image": "i", "env": [{"name": "DURABLEJOB_ATTEMPT", "value": "stale"}, {"name": "KEEP", "value": "k"}]}]);
        let manual = JobRun {
            manual: true,
            ..run(3)
        };
        let job = build(&template, &manual).unwrap();
        let a = job.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[annotation::SCHEDULED_TIME], "2026-03-01T02:30:00Z");
        assert_eq!(a[annotation::INSTANTIATE], "manual");
        assert_eq!(a[annotation::RUN_ID], "run-1");
        assert_eq!(
            a[annotation::TEMPLATE_HASH],
            template_hash(&template.job_template)
        );
        assert_eq!(a["team"], "x", "the template's own annotations stay");
        let pod = job.spec.unwrap().template.spec.unwrap();
        let env_of = |c: &k8s_openapi::api::core::v1::Container| -> Vec<(String, String)> {
            c.env
                .iter()
                .flatten()
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        };
        let main = env_of(&pod.containers[0]);
        let expected = [
            ("DURABLEJOB_SCHEDULED_TIME", "2026-03-01T02:30:00Z"),
            ("DURABLEJOB_ATTEMPT", "3"),
            (
                "DURABLEJOB_WORKFLOW_ID",
                "durablejob:team/nightly-report-2026-03-01T02:30:00Z",
            ),
            ("DURABLEJOB_RUN_ID", "run-1"),
            ("DURABLEJOB_TRIGGER", "manual"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        assert_eq!(main, expected);
        let init = env_of(&pod.init_containers.unwrap()[0]);
        assert_eq!(init[0], ("KEEP".to_string(), "k".to_string()));
        assert_eq!(&init[1..], &expected, "ours replace a same-named variable");
        let scheduled = build(&input(), &run(1)).unwrap();
        assert!(
            !scheduled
                .metadata
                .annotations
                .unwrap()
                .contains_key(annotation::INSTANTIATE),
            "a scheduled run is not marked manual"
        );
    }

    #[test]
    fn a_template_that_is_not_a_job_template_is_reported() {
        let mut bad = input();
        bad.job_template = json!({"spec": {"backoffLimit": "many"}});
        assert!(build(&bad, &run(1)).unwrap_err().contains("team/nightly-report"));
    }

    fn finished(name: &str, ok: bool, minute: u32) -> Job {
        let t = format!("2026-03-01T03:{minute:02}:00Z");
        let (ty, reason) = if ok {
            ("Complete", "CompletionsReached")
        } else {
            ("Failed", "BackoffLimitExceeded")
        };
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {
            "conditions": [{"type": ty, "status": "True", "reason": reason, "message": "m", "lastTransitionTime": t}]}}))
        .unwrap()
    }

    #[test]
    fn job_state_follows_the_conditions() {
        assert_eq!(state(&finished("a", true, 1)), JobState::Succeeded);
        assert_eq!(
            state(&finished("a", false, 1)),
            JobState::Failed {
                deadline: false,
                message: "BackoffLimitExceeded: m".into()
            }
        );
        let deadline: Job =
            serde_json::from_value(json!({"metadata": {"name": "d"}, "status": {"conditions": [
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too long"}]}}))
            .unwrap();
        assert!(matches!(
            state(&deadline),
            JobState::Failed { deadline: true, .. }
        ));
        let running: Job =
            serde_json::from_value(json!({"metadata": {"name": "r"}, "status": {"active": 1}})).unwrap();
        assert_eq!(state(&running), JobState::Running);
    }

    #[test]
    fn history_limits_keep_the_newest_finished_jobs() {
        let jobs = vec![
            finished("ok-1", true, 1),
            finished("ok-2", true, 2),
            finished("ok-3", true, 3),
            finished("bad-1", false, 4),
            finished("bad-2", false, 5),
            serde_json::from_value(json!({"metadata": {"name": "running"}})).unwrap(),
        ];
        assert_eq!(beyond_history(&jobs, &[], 2, 1), vec!["bad-1", "ok-1"]);
        assert_eq!(
            beyond_history(&jobs, &[], 0, 0),
            vec!["bad-1", "bad-2", "ok-1", "ok-2", "ok-3"]
        );
        assert!(beyond_history(&jobs, &[], 5, 5).is_empty());
    }

    #[test]
    fn a_job_whose_pod_succeeded_counts_as_the_newest_succeeded_run_before_it_is_complete() {
        let job = |name: &str, uid: &str, spec: serde_json::Value| -> Job {
            serde_json::from_value(json!({"metadata": {"name": name, "uid": uid},
                "spec": {"template": {"spec": {"containers": []}}, "completions": spec["completions"]},
                "status": {"active": 1}}))
            .unwrap()
        };
        let pod = |uid: &str, finished: Option<&str>| -> Arc<Pod> {
            let terminated = finished.map(|t| json!({"exitCode": 0, "finishedAt": t}));
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": format!("{uid}-pod"),
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "x", "uid": uid, "controller": true}]},
                    "status": {"phase": "Succeeded", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
                        "restartCount": 0, "state": terminated.map(|t| json!({"terminated": t}))}]}}))
                .unwrap(),
            )
        };
        let jobs = vec![
            finished("old", true, 1),
            job("new", "u-new", json!({})),
            job("later", "u-later", json!({})),
            job("many", "u-many", json!({"completions": 3})),
        ];
        // "new" ended at 03:05 by its pod, "later" ended by its pod at an unknown time (the newest)
        let pods = [
            pod("u-new", Some("2026-03-01T03:05:00Z")),
            pod("u-later", None),
            pod("u-many", None),
        ];
        assert_eq!(beyond_history(&jobs, &pods, 2, 1), vec!["old"]);
        assert_eq!(beyond_history(&jobs, &pods, 0, 0), vec!["old", "new", "later"]);
        assert_eq!(
            beyond_history(&jobs, &[], 0, 0),
            vec!["old"],
            "without the pods they still run"
        );
        assert!(
            !beyond_history(&jobs, &pods, 0, 0).contains(&"many".to_string()),
            "a Job of more pods is done when the Job says so"
        );
    }

    #[test]
    fn the_newest_run_is_the_latest_slot_whoever_marked_its_job_finished_later() {
        // the run of 03:10:00 was marked Complete late by the Job controller (03:10:09); the run
        // of 03:10:05 is done by its pod, which ended in the same second or before
        let of_slot = |name: &str, uid: &str, slot: i64, status: serde_json::Value| -> Job {
            serde_json::from_value(json!({"metadata": {"name": name, "uid": uid,
                "labels": {LABEL_SCHEDULED_TIME: slot.to_string()}},
                "spec": {"template": {"spec": {"containers": []}}},
                "status": status}))
            .unwrap()
        };
        let base = 1_772_334_600; // 2026-03-01T03:10:00Z
        let older = of_slot(
            "h-older",
            "u-older",
            base,
            json!({"completionTime": "2026-03-01T03:10:09Z", "conditions": [
                {"type": "Complete", "status": "True", "lastTransitionTime": "2026-03-01T03:10:09Z"}]}),
        );
        let newer = of_slot("h-newer", "u-newer", base + 5, json!({"active": 1}));
        let pod: Arc<Pod> = Arc::new(
            serde_json::from_value(json!({"metadata": {"name": "p",
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "h-newer", "uid": "u-newer", "controller": true}]},
                "status": {"phase": "Succeeded", "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0, "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-03-01T03:10:07Z"}}}]}}))
            .unwrap(),
        );
        assert_eq!(
            beyond_history(&[newer, older], &[pod], 1, 1),
            vec!["h-older"],
            "the run of the later slot is kept"
        );
    }

    #[test]
    fn history_limits_keep_or_delete_a_runs_jobs_together_judged_by_its_last_job() {
        let of_run = |name: &str, ok: bool, minute: u32, run: &str| {
            let mut j = finished(name, ok, minute);
            j.metadata.annotations = Some(
                [
                    (annotation::WORKFLOW_ID.to_string(), format!("w-{run}")),
                    (annotation::RUN_ID.to_string(), run.to_string()),
                ]
                .into(),
            );
            j
        };
        let mut running = of_run("c-load", true, 9, "c");
        running.status = None;
        let jobs = vec![
            // run a: attempt 1 failed, attempt 2 succeeded: a successful run
            of_run("a-1", false, 1, "a"),
            of_run("a-2", true, 2, "a"),
            // run b: three steps, the last failed
            of_run("b-extract", true, 3, "b"),
            of_run("b-load", false, 4, "b"),
            // run c: still running (one step done)
            of_run("c-extract", true, 8, "c"),
            running,
            // run d: two steps, both succeeded
            of_run("d-extract", true, 5, "d"),
            of_run("d-load", true, 6, "d"),
        ];
        assert_eq!(beyond_history(&jobs, &[], 1, 1), vec!["a-1", "a-2"]);
        assert_eq!(
            beyond_history(&jobs, &[], 0, 0),
            vec!["b-extract", "b-load", "a-1", "a-2", "d-extract", "d-load"]
        );
        assert!(beyond_history(&jobs, &[], 2, 1).is_empty());
    }

    #[test]
    fn a_job_of_one_pod_is_done_by_its_pod_unless_a_deadline_or_more_pods_could_change_it() {
        let with = |spec: serde_json::Value| -> Job {
            let mut spec = spec;
            spec["template"] = json!({"spec": {"containers": []}});
            serde_json::from_value(json!({"spec": spec})).unwrap()
        };
        assert!(done_by_its_pod(&with(json!({}))));
        assert!(done_by_its_pod(&with(
            json!({"completions": 1, "parallelism": 1, "backoffLimit": 6})
        )));
        assert!(!done_by_its_pod(&with(json!({"completions": 3}))));
        assert!(
            !done_by_its_pod(&with(json!({"parallelism": 2}))),
            "a work queue ends when all its pods do"
        );
        assert!(!done_by_its_pod(&with(json!({"activeDeadlineSeconds": 60}))));
        assert!(!done_by_its_pod(&with(json!({"suspend": true}))));
        assert!(!done_by_its_pod(&Job::default()));
    }

    #[test]
    fn a_succeeded_pod_finishes_a_running_job_only_when_the_job_is_done_by_its_pod() {
        use k8s_openapi::api::core::v1::Pod;
        let pod = |phase: &str| -> std::sync::Arc<Pod> {
            std::sync::Arc::new(serde_json::from_value(json!({"status": {"phase": phase}})).unwrap())
        };
        let running: Job = serde_json::from_value(json!({"status": {"active": 1}})).unwrap();
        let failed: Job = serde_json::from_value(json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}})).unwrap();
        let done = [pod("Failed"), pod("Succeeded")];
        assert_eq!(state_with_pods(&running, &done, true), JobState::Succeeded);
        assert_eq!(state_with_pods(&running, &done, false), JobState::Running);
        assert_eq!(
            state_with_pods(&running, &[pod("Running")], true),
            JobState::Running
        );
        assert_eq!(state_with_pods(&running, &[], true), JobState::Running);
        assert!(
            matches!(state_with_pods(&failed, &done, true), JobState::Failed { .. }),
            "the Job controller's word stands once it has spoken"
        );
    }
}
