//! Who a run of the built-in runner may act for, decided by pure functions before any activity
//! touches Kubernetes. Two questions, in order:
//!
//! 1. **Binding** ([`bind`]): is the workflow this activity belongs to a run that the
//!    DurableJob's own schedule started? Only facts a tenant cannot write count: the activity
//!    task as Temporal delivers it (workflow type, id and run id, Temporal namespace), the
//!    DurableJob as the API server returns it (its uid, and the schedule id and Temporal
//!    namespace the operator recorded in its status), the schedule as Temporal describes it
//!    (its running workflows and recent actions, written by Temporal's scheduler), the runs
//!    the operator started itself and recorded in the status (a `retry`, with its run id), and
//!    Jobs the runner itself made for this run after an earlier binding. The run's input and search
//!    attributes (`TemporalScheduledById` can be set by whoever starts a workflow) never count.
//! 2. **Template** ([`template`]): is the input's jobTemplate the DurableJob's own? A later
//!    attempt of a run that began before the template was edited keeps its template.
//!
//! Also whether a run was started at a slot of the schedule or by a trigger ([`is_manual`]).

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::job::{annotation, template_hash};
use crate::api::DurableJob;
use crate::run_contract::RunInput;
use crate::temporal::{ObservedSchedule, RunRef};

/// The workflow type whose runs the runner's activities serve.
pub const RUN_WORKFLOW: &str = "durablejob.run";

/// The run an activity belongs to, as Temporal delivered the activity task (never the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The Temporal namespace of the worker that received the task.
    pub temporal_namespace: String,
    /// `None` for an activity started on its own, without a workflow.
    pub workflow_type: Option<String>,
    pub run: Option<RunRef>,
}

/// What the schedule the DurableJob's status names says, as Temporal describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleFacts {
    /// The DurableJob uid the schedule's memo records (`None`: not made by the operator).
    pub owner_uid: Option<String>,
    /// Runs the schedule started: those still running and its recent actions.
    pub runs: Vec<RunRef>,
}

impl From<&ObservedSchedule> for ScheduleFacts {
    fn from(o: &ObservedSchedule) -> Self {
        let runs = o
            .running
            .iter()
            .cloned()
            .chain(o.recent_actions.iter().map(|a| a.run.clone()))
            .collect();
        Self {
            owner_uid: o.owner.as_ref().map(|w| w.uid.clone()),
            runs,
        }
    }
}

/// What the runner read before deciding.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    /// The DurableJob the input names, as the API server returned it (`None`: it does not exist).
    pub dj: Option<&'a DurableJob>,
    /// The schedule the DurableJob's status names (`None`: not found, or not read yet).
    pub schedule: Option<&'a ScheduleFacts>,
    /// Jobs of the DurableJob the runner read (an earlier attempt's, or all of them for cleanup).
    pub jobs: &'a [Job],
}

/// The DurableJob a run's input says it is for: to be proven by [`bind`], never trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

impl<'a> From<&'a RunInput> for Claim<'a> {
    fn from(i: &'a RunInput) -> Self {
        Self {
            namespace: &i.namespace,
            name: &i.name,
            uid: &i.uid,
        }
    }
}

/// Why a run may not act, and whether looking again can change that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing that happens later makes this run the DurableJob's.
    Final(String),
    /// Not yet proven: the operator may not have recorded the schedule in the status yet, or
    /// Temporal may not list the run it has just started. Asked again for a few seconds, then final.
    NotYet(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Final(m) | Refusal::NotYet(m) => m,
        }
    }
}

/// Whether the activity's workflow is a run of the DurableJob that the input names, started by
/// that DurableJob's schedule (see the module doc for what counts).
pub fn bind(origin: &Origin, input: &Claim, ev: &Evidence) -> Result<(), Refusal> {
    let what = format!("DurableJob {}/{}", input.namespace, input.name);
    let run = run_of(origin)?;
    let Some(dj) = ev.dj else {
        return Err(Refusal::Final(format!(
            "{what} does not exist; the runner acts only for DurableJobs that do"
        )));
    };
    let uid = dj.uid().unwrap_or_default();
    if uid != input.uid {
        return Err(Refusal::Final(format!(
            "the run names {what} with uid {}, but that DurableJob has uid {uid}: the run is not this DurableJob's (it was recreated, or the input was forged)",
            input.uid
        )));
    }
    let status = dj.status.clone().unwrap_or_default();
    let (Some(schedule_id), Some(temporal_ns)) = (status.schedule_id, status.temporal_namespace) else {
        return Err(Refusal::NotYet(format!(
            "{what} has no Temporal schedule recorded in its status yet"
        )));
    };
    if temporal_ns != origin.temporal_namespace {
        return Err(Refusal::Final(format!(
            "workflow {} runs in Temporal namespace {}, but the schedule of {what} is in {temporal_ns}: it was not started by that schedule",
            run.workflow_id, origin.temporal_namespace
        )));
    }
    if let Some(owner) = ev.schedule.and_then(|s| s.owner_uid.as_deref())
        && owner != uid
    {
        return Err(Refusal::Final(format!(
            "Temporal schedule {schedule_id} records DurableJob uid {owner}, not {uid}: it is not the schedule of {what}"
        )));
    }
    let listed = ev
        .schedule
        .is_some_and(|s| s.owner_uid.is_some() && s.runs.contains(run));
    let earlier_job = ev.jobs.iter().any(|j| made_for_run(j, &uid, run));
    // a retry the operator started: recorded in the status, which only the operator writes
    let retry = status.requests.iter().any(|r| {
        r.verb == crate::api::RequestVerb::Retry
            && r.result == crate::api::RequestResult::Succeeded
            && r.workflow_ids.contains(&run.workflow_id)
            && r.run_ids.contains(&run.run_id)
    });
    if listed || earlier_job || retry {
        return Ok(());
    }
    Err(Refusal::NotYet(format!(
        "workflow {} (run {}) was not started by Temporal schedule {schedule_id} of {what}: the schedule lists no such run, and the runner made no Job for it",
        run.workflow_id, run.run_id
    )))
}

/// The workflow run an activity task belongs to, when it is one of the runner's own workflow:
/// decided from the task alone, before anything is read.
pub fn run_of(origin: &Origin) -> Result<&RunRef, Refusal> {
    let workflow_type = origin
        .workflow_type
        .as_deref()
        .unwrap_or("(none: a standalone activity)");
    if workflow_type != RUN_WORKFLOW {
        return Err(Refusal::Final(format!(
            "the activity was scheduled by workflow type {workflow_type}; the runner's activities serve only its own workflow {RUN_WORKFLOW}"
        )));
    }
    origin
        .run
        .as_ref()
        .ok_or_else(|| Refusal::Final("the activity task names no workflow run".into()))
}

/// A Job the runner made for `run` of the DurableJob with `uid` (after binding that run).
fn made_for_run(job: &Job, uid: &str, run: &RunRef) -> bool {
    let a = job.annotations();
    job.owner_references()
        .iter()
        .any(|o| o.uid == uid && o.controller == Some(true))
        && a.get(annotation::WORKFLOW_ID) == Some(&run.workflow_id)
        && a.get(annotation::RUN_ID) == Some(&run.run_id)
}

/// `Ok` when a Job may be created from the input's jobTemplate (of `step`, in a multi-step
/// run); otherwise why not.
///
/// The template must be the DurableJob's current jobTemplate (its step's of that name). A later
/// attempt of a run that began before the template was edited keeps its template: it may go on
/// when the first Job of the run (of the step) made after the same check carries the same
/// template hash.
pub fn template(
    input: &RunInput,
    step: Option<&str>,
    dj: &DurableJob,
    attempt: u32,
    first_job: Option<&Job>,
) -> Result<(), String> {
    let what = match step {
        Some(step) => format!("step {step} of DurableJob {}/{}", input.namespace, input.name),
        None => format!("DurableJob {}/{}", input.namespace, input.name),
    };
    let uid = dj.uid().unwrap_or_default();
    let Some(given) = input.template_of(step) else {
        return Err(format!("the run carries no jobTemplate for {what}"));
    };
    let hash = template_hash(given);
    let current = match step {
        None => dj.spec.job_template.as_ref().map(template_hash),
        Some(step) => dj
            .spec
            .steps
            .iter()
            .flatten()
            .find(|s| s.name == step)
            .map(|s| template_hash(&s.job_template)),
    };
    if current.as_deref() == Some(hash.as_str()) {
        return Ok(());
    }
    let first_has_it = attempt > 1
        && first_job.is_some_and(|j| {
            j.owner_references().iter().any(|o| o.uid == uid)
                && j.annotations().get(annotation::TEMPLATE_HASH) == Some(&hash)
        });
    if first_has_it {
        return Ok(());
    }
    Err(match current {
        None => {
            format!("{what} has no such jobTemplate in its spec, so the built-in runner runs nothing for it")
        }
        Some(current) => format!(
            "the run's jobTemplate (hash {hash}) is not the one in the spec of {what} (hash {current}): the input was not built from this DurableJob"
        ),
    })
}

/// Whether a run for `slot` was started by a trigger: its time is no slot of the schedule.
/// Slots are whole seconds matching a cron entry in the time zone, or an interval's
/// `epoch + k·every + offset`; a spec that no longer validates counts every run as scheduled.
pub fn is_manual(dj: &DurableJob, slot: DateTime<Utc>) -> bool {
    let Ok(spec) = crate::desired::validate::validate(&dj.spec) else {
        return false;
    };
    if slot.timestamp_subsec_nanos() != 0 {
        return true;
    }
    let tz: chrono_tz::Tz = spec.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = slot.with_timezone(&tz);
    let (namespace, name) = (dj.namespace().unwrap_or_default(), dj.name_any());
    let concrete = crate::desired::schedule::concrete_cron(&spec.cron, &namespace, &name);
    let cron_slot = concrete.iter().any(|entry| {
        crate::cron::parse(entry)
            .ok()
            .and_then(|c| c.is_time_matching(&local).ok())
            .unwrap_or(false)
    });
    let interval_slot = spec.intervals.iter().any(|iv| {
        let every = iv.every.as_secs() as i64;
        let offset = iv.offset.map(|o| o.as_secs() as i64).unwrap_or(0);
        every > 0 && (slot.timestamp() - offset).rem_euclid(every) == 0
    });
    !(cron_slot || interval_slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn dj() -> DurableJob {
        let mut dj = DurableJob::test("report");
        dj.metadata.uid = Some("uid-1".into());
        dj.status = Some(crate::api::DurableJobStatus {
            schedule_id: Some("durablejob:default/report".into()),
            temporal_namespace: Some("jobs".into()),
            ..Default::default()
        });
        dj
    }

    fn input(dj: &DurableJob) -> RunInput {
        RunInput {
            version: 1,
            namespace: "default".into(),
            name: "report".into(),
            uid: "uid-1".into(),
            job_template: dj.spec.job_template.clone().unwrap(),
            retry: None,
            successful_runs_history_limit: 3,
            failed_runs_history_limit: 1,
            steps: vec![],
            reuse: None,
        }
    }

    fn run(id: &str) -> RunRef {
        RunRef {
            workflow_id: format!("durablejob:default/report-{id}"),
            run_id: format!("run-{id}"),
        }
    }

    fn origin(run_id: &str) -> Origin {
        Origin {
            temporal_namespace: "jobs".into(),
            workflow_type: Some(RUN_WORKFLOW.into()),
            run: Some(run(run_id)),
        }
    }

    fn schedule(owner: &str, runs: &[&str]) -> ScheduleFacts {
        ScheduleFacts {
            owner_uid: Some(owner.into()),
            runs: runs.iter().map(|r| run(r)).collect(),
        }
    }

    fn job_for(uid: &str, run: &RunRef, hash: &str) -> Job {
        serde_json::from_value(json!({"metadata": {
            "name": "report-x-1",
            "ownerReferences": [{"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "name": "report", "uid": uid, "controller": true}],
            "annotations": {
                annotation::TEMPLATE_HASH: hash,
                annotation::WORKFLOW_ID: run.workflow_id,
                annotation::RUN_ID: run.run_id,
            }}}))
        .unwrap()
    }

    fn first_job(uid: &str, hash: &str) -> Job {
        job_for(uid, &run("a"), hash)
    }

    /// One case: what the runner saw (origin, input, DurableJob, schedule, Jobs) and the start
    /// of the refusal (`None`: allowed; `Some((final, text))`).
    struct Case {
        what: &'static str,
        origin: Origin,
        input: RunInput,
        dj: Option<DurableJob>,
        schedule: Option<ScheduleFacts>,
        jobs: Vec<Job>,
        refused: Option<(bool, &'static str)>,
    }

    #[test]
    fn a_run_acts_only_when_the_durablejobs_own_schedule_started_it() {
        let dj = dj();
        let no_status = {
            let mut d = dj.clone();
            d.status = None;
            d
        };
        let moved = {
            let mut d = dj.clone();
            d.status.as_mut().unwrap().temporal_namespace = Some("default".into());
            d
        };
        let ours = schedule("uid-1", &["a"]);
        let elsewhere = schedule("uid-1", &["b"]);
        let hash = template_hash(&input(&dj).job_template);
        let case = |what, refused| Case {
            what,
            origin: origin("a"),
            input: input(&dj),
            dj: Some(dj.clone()),
            schedule: Some(ours.clone()),
            jobs: vec![],
            refused,
        };
        let not_listed = Some((
            false,
            "workflow durablejob:default/report-a (run run-a) was not started by Temporal schedule durablejob:default/report of DurableJob default/report",
        ));
        let cases = vec![
            case("a run the schedule lists", None),
            Case {
                schedule: Some(elsewhere.clone()),
                jobs: vec![job_for("uid-1", &run("a"), &hash)],
                ..case("a later activity of a run the runner made a Job for", None)
            },
            Case {
                schedule: None,
                jobs: vec![job_for("uid-1", &run("a"), &hash)],
                ..case("a later activity while the schedule is gone", None)
            },
            Case {
                origin: Origin {
                    workflow_type: None,
                    run: None,
                    ..origin("a")
                },
                ..case(
                    "a standalone activity",
                    Some((true, "the activity was scheduled by workflow type (none")),
                )
            },
            Case {
                origin: Origin {
                    workflow_type: Some("tenant.Sneaky".into()),
                    ..origin("a")
                },
                ..case(
                    "a tenant's own workflow scheduling the runner's activity",
                    Some((true, "the activity was scheduled by workflow type tenant.Sneaky")),
                )
            },
            Case {
                dj: None,
                ..case(
                    "a DurableJob that does not exist",
                    Some((true, "DurableJob default/report does not exist")),
                )
            },
            Case {
                input: RunInput {
                    uid: "uid-2".into(),
                    ..input(&dj)
                },
                ..case(
                    "a forged uid",
                    Some((true, "the run names DurableJob default/report with uid uid-2")),
                )
            },
            Case {
                dj: Some(no_status),
                ..case(
                    "a status the operator has not written yet",
                    Some((
                        false,
                        "DurableJob default/report has no Temporal schedule recorded",
                    )),
                )
            },
            Case {
                origin: Origin {
                    temporal_namespace: "default".into(),
                    ..origin("a")
                },
                ..case(
                    "a run in another Temporal namespace than the schedule",
                    Some((
                        true,
                        "workflow durablejob:default/report-a runs in Temporal namespace default, but the schedule",
                    )),
                )
            },
            Case {
                dj: Some(moved),
                ..case(
                    "the DurableJob's schedule is recorded in another namespace",
                    Some((
                        true,
                        "workflow durablejob:default/report-a runs in Temporal namespace jobs, but the schedule",
                    )),
                )
            },
            Case {
                schedule: Some(schedule("uid-9", &["a"])),
                ..case(
                    "a schedule recording another uid",
                    Some((
                        true,
                        "Temporal schedule durablejob:default/report records DurableJob uid uid-9",
                    )),
                )
            },
            Case {
                schedule: Some(ScheduleFacts {
                    owner_uid: None,
                    runs: vec![run("a")],
                }),
                ..case("a schedule the operator did not make", not_listed)
            },
            Case {
                schedule: Some(elsewhere.clone()),
                ..case("a workflow started directly, not by the schedule", not_listed)
            },
            Case {
                schedule: Some(elsewhere.clone()),
                jobs: vec![job_for("uid-1", &run("b"), &hash)],
                ..case("a Job of another run proves nothing", not_listed)
            },
            Case {
                schedule: None,
                jobs: vec![job_for("uid-9", &run("a"), &hash)],
                ..case("a Job owned by another uid proves nothing", not_listed)
            },
        ];
        for c in cases {
            let ev = Evidence {
                dj: c.dj.as_ref(),
                schedule: c.schedule.as_ref(),
                jobs: &c.jobs,
            };
            let what = c.what;
            match (c.refused, bind(&c.origin, &Claim::from(&c.input), &ev)) {
                (None, Ok(())) => {}
                (Some((final_, text)), Err(r)) => {
                    assert_eq!(matches!(r, Refusal::Final(_)), final_, "{what}: {r:?}");
                    assert!(r.message().starts_with(text), "{what}: {}", r.message());
                }
                (e, g) => panic!("{what}: expected {e:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn a_retry_the_operator_recorded_binds_with_its_exact_run() {
        let mut dj = dj();
        let retry = |result, run_id: &str| crate::api::RequestRecord {
            id: "r1".into(),
            verb: crate::api::RequestVerb::Retry,
            handled_time: chrono::Utc::now(),
            result,
            message: String::new(),
            workflow_ids: vec![run("x").workflow_id],
            run_ids: vec![run_id.to_string()],
        };
        let ev = |dj: &DurableJob| {
            let claim = input(dj);
            bind(
                &origin("x"),
                &Claim::from(&claim),
                &Evidence {
                    dj: Some(dj),
                    schedule: None,
                    jobs: &[],
                },
            )
        };
        assert!(matches!(ev(&dj), Err(Refusal::NotYet(_))), "not recorded yet");
        let status = dj.status.get_or_insert_with(Default::default);
        status.requests = vec![retry(crate::api::RequestResult::Succeeded, "run-x")];
        assert_eq!(ev(&dj), Ok(()));
        // another run of that workflow id (started by someone else), or a refused request
        dj.status.as_mut().unwrap().requests = vec![retry(crate::api::RequestResult::Succeeded, "run-other")];
        assert!(ev(&dj).is_err());
        dj.status.as_mut().unwrap().requests = vec![retry(crate::api::RequestResult::Rejected, "run-x")];
        assert!(ev(&dj).is_err());
    }

    #[test]
    fn the_schedule_facts_are_its_running_and_recent_runs_and_its_owner() {
        let mut o = ObservedSchedule::test();
        o.owner = Some(crate::desired::schedule::Owner {
            uid: "uid-1".into(),
            prefix: "durablejob".into(),
            resource: "default/report".into(),
        });
        o.running = vec![run("a")];
        o.recent_actions = vec![crate::temporal::RecentAction {
            scheduled_time: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap(),
            actual_time: Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 1).unwrap(),
            run: run("b"),
            result: None,
        }];
        let f = ScheduleFacts::from(&o);
        assert_eq!(f.runs, vec![run("a"), run("b")]);
        assert_eq!(f.owner_uid, o.owner.map(|w| w.uid));
    }

    #[test]
    fn the_durablejobs_own_template_is_allowed() {
        let dj = dj();
        assert_eq!(template(&input(&dj), None, &dj, 1, None), Ok(()));
    }

    #[test]
    fn a_forged_template_is_refused_with_the_reason() {
        let dj = dj();
        let mut forged = input(&dj);
        forged.job_template["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil");
        let e = template(&forged, None, &dj, 1, None).unwrap_err();
        assert!(
            e.contains("is not the one in the spec of DurableJob default/report"),
            "{e}"
        );
        let hash = template_hash(&forged.job_template);
        assert!(
            template(&forged, None, &dj, 1, Some(&first_job("uid-1", &hash))).is_err(),
            "a first attempt cannot lean on a Job"
        );
    }

    #[test]
    fn a_step_runs_only_its_own_template_from_the_durablejobs_step_of_that_name() {
        let mut dj = dj();
        let step = |name: &str, image: &str| crate::api::StepSpec {
            name: name.into(),
            job_template: json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
            ..Default::default()
        };
        let mut run = input(&dj);
        dj.spec.job_template = None;
        dj.spec.steps = Some(vec![step("extract", "x:1"), step("load", "l:1")]);
        run.job_template = serde_json::Value::Null;
        run.steps = ["extract", "load"]
            .iter()
            .zip(dj.spec.steps.iter().flatten())
            .map(|(n, s)| crate::run_contract::RunStep {
                name: n.to_string(),
                job_template: s.job_template.clone(),
                retry: None,
                timeout: None,
                depends_on: vec![],
                for_each: None,
                continue_on_item_failure: false,
            })
            .collect();
        assert_eq!(template(&run, Some("load"), &dj, 1, None), Ok(()));
        // load's template under extract's name: refused
        let mut swapped = run.clone();
        swapped.steps[0].job_template = run.steps[1].job_template.clone();
        let e = template(&swapped, Some("extract"), &dj, 1, None).unwrap_err();
        assert!(e.contains("step extract of DurableJob default/report"), "{e}");
        // a step the DurableJob does not have, and a run of steps asked for its one Job
        assert!(template(&run, Some("publish"), &dj, 1, None).is_err());
        assert!(template(&run, None, &dj, 1, None).is_err());
    }

    #[test]
    fn a_later_attempt_keeps_the_template_its_first_job_was_checked_with() {
        let dj = dj();
        let mut old = input(&dj);
        old.job_template["spec"]["backoffLimit"] = json!(4);
        let hash = template_hash(&old.job_template);
        assert_eq!(
            template(&old, None, &dj, 2, Some(&first_job("uid-1", &hash))),
            Ok(())
        );
        assert!(template(&old, None, &dj, 2, Some(&first_job("uid-9", &hash))).is_err());
        assert!(template(&old, None, &dj, 2, Some(&first_job("uid-1", "other"))).is_err());
        assert!(template(&old, None, &dj, 2, None).is_err());
    }

    #[test]
    fn a_run_off_the_schedules_slots_is_manual() {
        let mut dj = dj();
        dj.spec.schedule.cron = vec!["30 2 * * *".into()];
        dj.spec.schedule.time_zone = "Europe/Berlin".into();
        // 02:30 in Berlin is 00:30 UTC in winter
        let slot = Utc.with_ymd_and_hms(2026, 3, 1, 1, 30, 0).unwrap();
        assert!(!is_manual(&dj, slot));
        assert!(is_manual(&dj, slot + chrono::TimeDelta::seconds(7)));
        assert!(is_manual(&dj, slot + chrono::TimeDelta::milliseconds(1)));
        dj.spec.schedule.cron = vec![];
        dj.spec.schedule.intervals =
            vec![serde_json::from_value(json!({"every": "1h", "offset": "5m"})).unwrap()];
        let on = Utc.with_ymd_and_hms(2026, 3, 1, 7, 5, 0).unwrap();
        assert!(!is_manual(&dj, on));
        assert!(is_manual(&dj, on + chrono::TimeDelta::minutes(1)));
    }
}
