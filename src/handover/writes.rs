//! The handover's planner: from the typed CronJob, the DurableJob the handover made, what the
//! CronJob's Jobs and Temporal say, and the clock, everything one reconcile does, as data:
//! the writes in order, the Events, when to look again. The executor in [`super`] only
//! executes them.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::batch::v1::CronJob;
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use super::steps::{
    BOUNDARY, CronJobRuns, MIGRATE, MIGRATE_STATUS, MIGRATED_FROM, PHASE, START, SUSPEND_BEFORE,
    SUSPENDED_AT, Step, step,
};
use crate::api::DurableJob;
use crate::migrate::convert::{self, Options};
use crate::operator::events::Notice;
use crate::reason::Reason;
use crate::temporal::ObservedSchedule;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One write, in the order the plan lists them.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create this DurableJob (paused, labelled as the handover's).
    CreateDurableJob(Box<DurableJob>),
    /// A merge patch of the CronJob (annotations, `spec.suspend`).
    PatchCronJob(Value),
    /// A server-side apply of the CronJob's status.
    ApplyCronJobStatus(Value),
    /// A merge patch of the DurableJob (annotations, `spec.suspend`).
    PatchDurableJob(Value),
    /// Run the schedule's slots in `[from, to]`.
    Backfill { from: DateTime<Utc>, to: DateTime<Utc> },
}

/// Which object an Event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    CronJob,
    DurableJob,
}

/// Everything one reconcile of a CronJob does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub writes: Vec<Write>,
    pub events: Vec<(Target, Notice)>,
    /// `None`: wait for a change of the CronJob.
    pub requeue: Option<Duration>,
}

impl Plan {
    fn after(requeue: Duration) -> Self {
        Self {
            writes: vec![],
            events: vec![],
            requeue: Some(requeue),
        }
    }

    fn idle() -> Self {
        Self {
            writes: vec![],
            events: vec![],
            requeue: None,
        }
    }

    fn write(mut self, w: Write) -> Self {
        self.writes.push(w);
        self
    }

    fn event(mut self, target: Target, type_: EventType, reason: Reason, note: String) -> Self {
        self.events.push((
            target,
            Notice {
                type_,
                reason,
                action: "Handover",
                note,
            },
        ));
        self
    }
}

/// What the executor must read before planning, so nothing is read that the step does not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// The CronJob's Jobs (their slots, which still run).
    pub jobs: bool,
    /// Temporal's description of the DurableJob's schedule.
    pub schedule: bool,
}

fn annotation<'a>(cj: &'a CronJob, key: &str) -> Option<&'a str> {
    cj.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

fn phase(dj: Option<&DurableJob>) -> &str {
    dj.and_then(|d| d.metadata.annotations.as_ref()?.get(PHASE))
        .map(String::as_str)
        .unwrap_or_default()
}

/// Whether the CronJob asks for something the handover has not done yet; when not, a
/// reconcile reads and writes nothing.
pub fn asks(cj: &CronJob) -> bool {
    let Some(ask) = annotation(cj, MIGRATE) else {
        return false;
    };
    let state = annotation(cj, MIGRATE_STATUS).unwrap_or_default();
    !((ask == "true" && state == "handed-over") || (ask == "rollback" && state == "rolled-back"))
}

/// What to read for this CronJob: nothing at all when it asks for nothing or is done.
pub fn needs(cj: &CronJob, dj: Option<&DurableJob>) -> Option<Needs> {
    let ask = annotation(cj, MIGRATE)?;
    if !asks(cj) {
        return Some(Needs::default());
    }
    Some(Needs {
        jobs: ask == "true" && matches!(phase(dj), "paused" | "rolled-back"),
        schedule: ask == "true" && phase(dj) == "unpaused",
    })
}

/// What the planner is given.
pub struct Inputs<'a> {
    pub cronjob: &'a CronJob,
    pub durable_job: Option<&'a DurableJob>,
    /// Read when [`Needs::jobs`].
    pub runs: &'a CronJobRuns,
    /// Read when [`Needs::schedule`]; `None` when it is not there (yet).
    pub schedule: Option<&'a ObservedSchedule>,
    /// The zone for CronJobs without `timeZone` (`--handover-time-zone`).
    pub default_time_zone: &'a str,
    pub now: DateTime<Utc>,
}

/// The plan for one reconcile of one CronJob: what the handover's next step writes.
pub fn plan(i: &Inputs<'_>) -> Plan {
    let cj = i.cronjob;
    let name = cj.metadata.name.clone().unwrap_or_default();
    match step(cj, i.durable_job, i.runs, i.now) {
        Step::Nothing => Plan::idle(),
        Step::Wait { retry, .. } => Plan::after(retry.to_std().unwrap_or(Duration::from_secs(1))),
        Step::Refuse(message) => refuse(cj, message),
        Step::CreateDurableJob => match durable_job_for(cj, i.default_time_zone) {
            Ok(dj) => create(&name, dj),
            Err(message) => refuse(cj, message),
        },
        Step::SuspendCronJob { was_suspended } => suspend_cronjob(&name, was_suspended, i.now),
        Step::Unpause { after, keep_suspended } => unpause(after, keep_suspended, i.runs),
        Step::FindFirstOwnSlot => match i.schedule {
            Some(observed) => record_first_own_slot(observed, i.now),
            None => Plan::after(Duration::from_secs(1)),
        },
        Step::Backfill { from, to } => backfill(from, to),
        Step::MarkDone => Plan::after(Duration::from_millis(200))
            .write(Write::PatchDurableJob(json!({"metadata": {"annotations": {PHASE: "done"}}}))),
        Step::MarkHandedOver => Plan::idle()
            .write(Write::PatchCronJob(json!({"metadata": {"annotations": {MIGRATE_STATUS: "handed-over"}}})))
            .event(
                Target::CronJob,
                EventType::Normal,
                Reason::HandedOver,
                format!("DurableJob {name} runs this schedule now; the CronJob stays suspended (nothing was deleted)"),
            ),
        Step::SuspendDurableJob => Plan::after(Duration::from_millis(500))
            .write(Write::PatchDurableJob(json!({"spec": {"suspend": true}})))
            .event(
                Target::CronJob,
                EventType::Normal,
                Reason::RollbackStarted,
                format!("Suspended DurableJob {name}"),
            ),
        Step::HandBack { last, suspend } => hand_back(&name, last, suspend),
    }
}

/// A refusal, recorded on the CronJob once: the same message again writes nothing.
fn refuse(cj: &CronJob, message: String) -> Plan {
    let recorded = format!("error: {message}");
    if annotation(cj, MIGRATE_STATUS) == Some(recorded.as_str()) {
        return Plan::idle();
    }
    Plan::idle()
        .write(Write::PatchCronJob(
            json!({"metadata": {"annotations": {MIGRATE_STATUS: recorded}}}),
        ))
        .event(
            Target::CronJob,
            EventType::Warning,
            Reason::HandoverRefused,
            message,
        )
}

fn create(name: &str, dj: DurableJob) -> Plan {
    Plan::after(Duration::from_secs(1))
        .write(Write::CreateDurableJob(Box::new(dj)))
        .event(
            Target::CronJob,
            EventType::Normal,
            Reason::HandoverStarted,
            format!("Created DurableJob {name} with its schedule paused"),
        )
        .event(
            Target::DurableJob,
            EventType::Normal,
            Reason::HandoverStarted,
            format!("Created from CronJob {name}; paused until the CronJob is suspended"),
        )
}

/// Suspends the CronJob, recording when and whether it was suspended before (for a rollback).
fn suspend_cronjob(name: &str, was_suspended: bool, now: DateTime<Utc>) -> Plan {
    Plan::after(Duration::from_millis(500))
        .write(Write::PatchCronJob(json!({
            "metadata": {"annotations": {SUSPEND_BEFORE: was_suspended.to_string(), SUSPENDED_AT: rfc3339(now), MIGRATE_STATUS: "suspended"}},
            "spec": {"suspend": true}
        })))
        .event(
            Target::CronJob,
            EventType::Normal,
            Reason::HandoverSuspended,
            format!("Suspended: DurableJob {name} takes over"),
        )
}

/// Unpauses the DurableJob, recording the CronJob's last slot as the boundary.
fn unpause(after: Option<DateTime<Utc>>, keep_suspended: bool, runs: &CronJobRuns) -> Plan {
    let mut note = format!(
        "Unpaused; the CronJob's last slot was {}",
        after.map(rfc3339).unwrap_or_else(|| "none".into())
    );
    if !runs.active.is_empty() {
        note.push_str(&format!(
            "; the CronJob's Job(s) {} are still running beside it (overlap policy AllowAll)",
            runs.active.join(", ")
        ));
    }
    Plan::after(Duration::from_secs(1))
        .write(Write::PatchDurableJob(json!({
            "metadata": {"annotations": {PHASE: "unpaused", BOUNDARY: after.map(rfc3339).unwrap_or_default()}},
            "spec": {"suspend": keep_suspended},
        })))
        .event(Target::DurableJob, EventType::Normal, Reason::HandoverUnpaused, note)
}

/// Records the earliest slot the schedule itself ran or will run after the unpause; a
/// suspended or finished schedule runs nothing itself, so nothing can run twice.
fn record_first_own_slot(observed: &ObservedSchedule, now: DateTime<Utc>) -> Plan {
    let first = observed
        .recent_actions
        .iter()
        .map(|a| a.scheduled_time)
        .chain(observed.future_action_times.iter().copied())
        .min()
        .unwrap_or(now);
    Plan::after(Duration::from_millis(200)).write(Write::PatchDurableJob(
        json!({"metadata": {"annotations": {PHASE: "backfilling", START: rfc3339(first)}}}),
    ))
}

/// Runs the slots between the CronJob's last and the schedule's first, then marks it done.
fn backfill(from: DateTime<Utc>, to: DateTime<Utc>) -> Plan {
    Plan::after(Duration::from_millis(200))
        .write(Write::Backfill { from, to })
        .write(Write::PatchDurableJob(
            json!({"metadata": {"annotations": {PHASE: "done"}}}),
        ))
        .event(
            Target::DurableJob,
            EventType::Normal,
            Reason::HandoverBackfilled,
            format!(
                "Ran the slots between {} and {} that neither the CronJob nor the schedule ran",
                rfc3339(from),
                rfc3339(to)
            ),
        )
}

/// The rollback's last step: the CronJob gets the DurableJob's last slot and runs again.
fn hand_back(name: &str, last: Option<DateTime<Utc>>, suspend: bool) -> Plan {
    let mut plan = Plan::idle();
    if let Some(last) = last {
        plan = plan.write(Write::ApplyCronJobStatus(
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "status": {"lastScheduleTime": rfc3339(last)}}),
        ));
    }
    plan.write(Write::PatchCronJob(json!({
        "metadata": {"annotations": {MIGRATE_STATUS: "rolled-back"}},
        "spec": {"suspend": suspend}
    })))
    .write(Write::PatchDurableJob(json!({"metadata": {"annotations": {PHASE: "rolled-back"}}})))
    .event(
        Target::CronJob,
        EventType::Normal,
        Reason::RolledBack,
        format!(
            "The CronJob runs this schedule again after {}; DurableJob {name} stays suspended (nothing was deleted)",
            last.map(rfc3339).unwrap_or_else(|| "now".into())
        ),
    )
}

/// The DurableJob a CronJob becomes, converted as `durablejob migrate` converts a manifest
/// (the converter reads manifests), suspended and marked as the handover's.
fn durable_job_for(cronjob: &CronJob, default_time_zone: &str) -> Result<DurableJob, String> {
    let opts = Options {
        default_time_zone: default_time_zone.to_string(),
        ..Options::default()
    };
    let mut source = serde_json::to_value(cronjob).map_err(|e| format!("cannot read the CronJob: {e}"))?;
    source["apiVersion"] = json!("batch/v1");
    source["kind"] = json!("CronJob");
    let (mut manifest, _) =
        convert::convert(&source, &opts).map_err(|e| format!("cannot convert the CronJob: {e}"))?;
    manifest["metadata"]["labels"][MIGRATED_FROM] = json!("cronjob");
    manifest["metadata"]["annotations"][PHASE] = json!("paused");
    manifest["spec"]["suspend"] = json!(true);
    serde_json::from_value(manifest).map_err(|e| format!("the converted DurableJob does not decode: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 30).unwrap()
    }

    fn cronjob(annotations: Value, suspend: bool) -> CronJob {
        serde_json::from_value(json!({
            "metadata": {"name": "backup", "namespace": "ops", "uid": "cj-uid", "annotations": annotations},
            "spec": {"schedule": "* * * * *", "timeZone": "UTC", "suspend": suspend, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}},
            "status": {"lastScheduleTime": "2026-06-01T12:00:00Z"}
        }))
        .unwrap()
    }

    fn run(cj: &CronJob, dj: Option<&DurableJob>) -> Plan {
        plan(&Inputs {
            cronjob: cj,
            durable_job: dj,
            runs: &CronJobRuns::default(),
            schedule: None,
            default_time_zone: "UTC",
            now: now(),
        })
    }

    fn reasons(p: &Plan) -> Vec<(Target, Reason)> {
        p.events.iter().map(|(t, n)| (*t, n.reason)).collect()
    }

    #[test]
    fn a_cronjob_that_asks_for_nothing_needs_no_read_and_no_write() {
        let cj = cronjob(json!({}), false);
        assert_eq!(needs(&cj, None), None);
        assert_eq!(run(&cj, None), Plan::idle());
    }

    #[test]
    fn a_finished_handover_reads_nothing() {
        let cj = cronjob(json!({MIGRATE: "true", MIGRATE_STATUS: "handed-over"}), true);
        assert!(!asks(&cj));
        assert_eq!(needs(&cj, None), Some(Needs::default()));
        assert!(asks(&cronjob(
            json!({MIGRATE: "rollback", MIGRATE_STATUS: "handed-over"}),
            true
        )));
    }

    #[test]
    fn the_first_step_creates_the_paused_durablejob_and_says_so_on_both_objects() {
        let cj = cronjob(json!({MIGRATE: "true"}), false);
        assert_eq!(needs(&cj, None), Some(Needs::default()));
        let p = run(&cj, None);
        let [Write::CreateDurableJob(dj)] = p.writes.as_slice() else {
            panic!("{p:?}")
        };
        assert!(dj.spec.suspend, "created paused");
        assert_eq!(dj.metadata.labels.as_ref().unwrap()[MIGRATED_FROM], "cronjob");
        assert_eq!(dj.metadata.annotations.as_ref().unwrap()[PHASE], "paused");
        assert_eq!(dj.spec.schedule.cron, vec!["* * * * *".to_string()]);
        assert_eq!(
            reasons(&p),
            vec![
                (Target::CronJob, Reason::HandoverStarted),
                (Target::DurableJob, Reason::HandoverStarted)
            ]
        );
        assert_eq!(p.requeue, Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_refusal_is_recorded_once() {
        let cj = cronjob(json!({MIGRATE: "yes"}), false);
        let p = run(&cj, None);
        assert!(matches!(p.writes.as_slice(), [Write::PatchCronJob(_)]));
        assert_eq!(reasons(&p), vec![(Target::CronJob, Reason::HandoverRefused)]);
        let Write::PatchCronJob(patch) = &p.writes[0] else {
            unreachable!()
        };
        let recorded = patch["metadata"]["annotations"][MIGRATE_STATUS].as_str().unwrap();
        let again = cronjob(json!({MIGRATE: "yes", MIGRATE_STATUS: recorded}), false);
        assert_eq!(run(&again, None), Plan::idle(), "no second write or Event");
    }

    #[test]
    fn the_suspend_records_when_it_happened() {
        let cj = cronjob(json!({MIGRATE: "true"}), false);
        let mut dj = run(&cj, None);
        let Write::CreateDurableJob(dj) = dj.writes.remove(0) else {
            unreachable!()
        };
        let mut dj = *dj;
        dj.metadata.generation = Some(1);
        dj.status = Some(crate::api::DurableJobStatus {
            paused: true,
            ..crate::api::DurableJobStatus::synced("durablejob:ops/backup", now())
        });
        assert_eq!(
            needs(&cj, Some(&dj)),
            Some(Needs {
                jobs: true,
                schedule: false
            })
        );
        let p = run(&cj, Some(&dj));
        let [Write::PatchCronJob(patch)] = p.writes.as_slice() else {
            panic!("{p:?}")
        };
        assert_eq!(patch["spec"]["suspend"], true);
        assert_eq!(
            patch["metadata"]["annotations"][SUSPENDED_AT],
            "2026-06-01T12:00:30Z"
        );
        assert_eq!(patch["metadata"]["annotations"][SUSPEND_BEFORE], "false");
        assert_eq!(reasons(&p), vec![(Target::CronJob, Reason::HandoverSuspended)]);
    }

    #[test]
    fn the_first_own_slot_waits_for_the_schedule_and_is_recorded() {
        let cj = cronjob(json!({MIGRATE: "true"}), true);
        let mut dj = DurableJob::test("backup");
        dj.metadata.annotations = Some([(PHASE.to_string(), "unpaused".to_string())].into());
        dj.metadata.labels = Some([(MIGRATED_FROM.to_string(), "cronjob".to_string())].into());
        dj.status = Some(crate::api::DurableJobStatus {
            ..crate::api::DurableJobStatus::synced("durablejob:default/backup", now())
        });
        assert_eq!(
            needs(&cj, Some(&dj)),
            Some(Needs {
                jobs: false,
                schedule: true
            })
        );
        assert_eq!(
            run(&cj, Some(&dj)),
            Plan::after(Duration::from_secs(1)),
            "no schedule yet"
        );
        let observed = ObservedSchedule {
            future_action_times: vec![Utc.with_ymd_and_hms(2026, 6, 1, 12, 1, 0).unwrap()],
            ..ObservedSchedule::test()
        };
        let p = plan(&Inputs {
            cronjob: &cj,
            durable_job: Some(&dj),
            runs: &CronJobRuns::default(),
            schedule: Some(&observed),
            default_time_zone: "UTC",
            now: now(),
        });
        assert_eq!(
            p.writes,
            vec![Write::PatchDurableJob(
                json!({"metadata": {"annotations": {PHASE: "backfilling", START: "2026-06-01T12:01:00Z"}}})
            )]
        );
    }

    #[test]
    fn the_hand_back_gives_the_cronjob_the_last_slot_then_resumes_it() {
        let cj = cronjob(
            json!({MIGRATE: "rollback", MIGRATE_STATUS: "handed-over", SUSPEND_BEFORE: "false"}),
            true,
        );
        let mut dj = DurableJob::test("backup");
        dj.spec.suspend = true;
        dj.metadata.labels = Some([(MIGRATED_FROM.to_string(), "cronjob".to_string())].into());
        dj.status = Some(crate::api::DurableJobStatus {
            paused: true,
            last_schedule_time: Some(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()),
            ..crate::api::DurableJobStatus::synced("durablejob:default/backup", now())
        });
        let p = run(&cj, Some(&dj));
        assert_eq!(
            p.writes,
            vec![
                Write::ApplyCronJobStatus(
                    json!({"apiVersion": "batch/v1", "kind": "CronJob", "status": {"lastScheduleTime": "2026-06-01T12:00:00Z"}})
                ),
                Write::PatchCronJob(
                    json!({"metadata": {"annotations": {MIGRATE_STATUS: "rolled-back"}}, "spec": {"suspend": false}})
                ),
                Write::PatchDurableJob(json!({"metadata": {"annotations": {PHASE: "rolled-back"}}})),
            ]
        );
        assert_eq!(reasons(&p), vec![(Target::CronJob, Reason::RolledBack)]);
        assert_eq!(p.requeue, None);
    }
}
