//! The CronJob → DurableJob handover as a state machine: each step is decided by a pure
//! function from the CronJob, the DurableJob and the clock, and recorded in annotations, so a
//! restarted operator continues where it stopped and no step is done twice.
//!
//! Handover (`durablejob.dev/migrate: "true"` on the CronJob):
//! 1. create the DurableJob (converted like `durablejob migrate`) suspended: its schedule exists, paused;
//! 2. once Temporal has the schedule, suspend the CronJob, in a quiet window (not within a few
//!    seconds of one of its slots: [`super::quiet`]);
//! 3. a few seconds later (a sync the CronJob controller began before the suspend may still
//!    make a Job), read the CronJob's last slot T, the latest of its `status.lastScheduleTime`
//!    and of its Jobs' `batch.kubernetes.io/cronjob-scheduled-timestamp`; wait for its running
//!    Jobs unless the DurableJob's overlap policy is AllowAll; unpause the DurableJob;
//! 4. ask Temporal for F, the first slot the schedule runs itself (a paused schedule skips the
//!    slots that pass, it does not catch them up), record it, and backfill the slots in (T, F),
//!    which neither ran: no gap, no double run.
//!
//! Rollback (`"rollback"`): suspend the DurableJob in a quiet window; once paused, give the
//! CronJob the DurableJob's last slot as its `lastScheduleTime` and resume it.

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::batch::v1::CronJob;

use super::quiet;
use crate::api::{DurableJob, OverlapPolicy};

/// On the CronJob: what the user asks (`"true"` or `"rollback"`).
pub const MIGRATE: &str = "durablejob.dev/migrate";
/// On the CronJob: how far the operator got (`handed-over`, `rolled-back`, or a problem).
pub const MIGRATE_STATUS: &str = "durablejob.dev/migrate-status";
/// On the CronJob: its own `suspend` before the handover, restored on rollback.
pub const SUSPEND_BEFORE: &str = "durablejob.dev/suspend-before-handover";
/// On the CronJob: when the handover suspended it (RFC 3339).
pub const SUSPENDED_AT: &str = "durablejob.dev/suspended-at";
/// On a CronJob's Jobs (set by the CronJob controller): the slot the Job runs.
pub const CRONJOB_SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// How long after the suspend the CronJob's last slot is read: longer than a sync of the
/// CronJob controller that began just before the suspend takes to make its Job.
pub const SETTLE: TimeDelta = TimeDelta::seconds(3);

/// What the CronJob's own Jobs say, read by the executor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CronJobRuns {
    /// The latest slot among the CronJob's Jobs.
    pub last_scheduled: Option<DateTime<Utc>>,
    /// The CronJob's Jobs that have not finished.
    pub active: Vec<String>,
}
/// On the DurableJob: the handover phase (`paused`, `unpaused`, `backfilling`, `done`, `rolled-back`).
pub const PHASE: &str = "durablejob.dev/handover";
/// On the DurableJob: the CronJob's last slot (RFC 3339), or empty if it never ran.
pub const BOUNDARY: &str = "durablejob.dev/handover-after";
/// On the DurableJob: the first slot the schedule ran (or will run) itself.
pub const START: &str = "durablejob.dev/handover-start";
/// Label on DurableJobs the handover created.
pub const MIGRATED_FROM: &str = "durablejob.dev/migrated-from";

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to do (done, or not asked).
    Nothing,
    /// Wait this long and look again.
    Wait { why: String, retry: TimeDelta },
    /// Stop: a person must act; the message says what.
    Refuse(String),
    /// Create the paused DurableJob from the CronJob.
    CreateDurableJob,
    /// Suspend the CronJob, remembering its own suspend value.
    SuspendCronJob { was_suspended: bool },
    /// Unpause the DurableJob; `after` is the CronJob's last slot.
    Unpause {
        after: Option<DateTime<Utc>>,
        keep_suspended: bool,
    },
    /// Ask Temporal for the first slot the schedule runs itself and record it.
    FindFirstOwnSlot,
    /// Run the slots in [from, to] that neither ran.
    Backfill { from: DateTime<Utc>, to: DateTime<Utc> },
    /// Nothing to backfill: record the handover as done on the DurableJob.
    MarkDone,
    /// Record the handover on the CronJob.
    MarkHandedOver,
    /// Rollback: suspend the DurableJob.
    SuspendDurableJob,
    /// Rollback: give the CronJob the DurableJob's last slot and resume it.
    HandBack {
        last: Option<DateTime<Utc>>,
        suspend: bool,
    },
}

fn annotation<'a>(cj: &'a CronJob, key: &str) -> Option<&'a str> {
    cj.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

fn suspended(cj: &CronJob) -> bool {
    cj.spec.suspend == Some(true)
}

/// The CronJob controller's `status.lastScheduleTime`.
fn last_schedule_time(cj: &CronJob) -> Option<DateTime<Utc>> {
    let t = cj.status.as_ref()?.last_schedule_time.as_ref()?;
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether the DurableJob's status reflects its current spec, with the schedule synced.
fn settled(dj: &DurableJob) -> bool {
    let s = dj.status.clone().unwrap_or_default();
    s.observed_generation == dj.metadata.generation
        && s.schedule_id.is_some()
        && s.conditions
            .iter()
            .any(|c| c.type_ == "ScheduleSynced" && c.status == "True")
}

fn wait(why: impl Into<String>) -> Step {
    Step::Wait {
        why: why.into(),
        retry: TimeDelta::seconds(1),
    }
}

/// Waits for a quiet window of the schedule, or `None` when `now` is in one.
fn quiet_window(dj: &DurableJob, now: DateTime<Utc>) -> Option<Step> {
    // the slots are those of the concrete schedule (`H` expanded for this resource)
    let mut schedule = dj.spec.schedule.clone();
    schedule.cron = crate::desired::schedule::concrete_cron(
        &schedule.cron,
        &kube::ResourceExt::namespace(dj).unwrap_or_default(),
        &kube::ResourceExt::name_any(dj),
    );
    quiet::wait_for_quiet(&schedule, now).map(|retry| Step::Wait {
        why: "a quiet moment between the schedule's slots".into(),
        retry,
    })
}

fn ours(dj: &DurableJob) -> bool {
    dj.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.get(MIGRATED_FROM).map(String::as_str) == Some("cronjob"))
}

fn dj_annotation<'a>(dj: &'a DurableJob, key: &str) -> Option<&'a str> {
    dj.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The next step, from the CronJob, the DurableJob the handover made, what the CronJob's Jobs
/// say and the clock.
pub fn step(cronjob: &CronJob, dj: Option<&DurableJob>, runs: &CronJobRuns, now: DateTime<Utc>) -> Step {
    let state = annotation(cronjob, MIGRATE_STATUS).unwrap_or_default();
    match annotation(cronjob, MIGRATE).unwrap_or_default() {
        "true" if state == "handed-over" => Step::Nothing,
        "true" => hand_over(cronjob, dj, runs, now),
        "rollback" if state == "rolled-back" => Step::Nothing,
        "rollback" => roll_back(cronjob, dj, now),
        "" => Step::Nothing,
        other => Step::Refuse(format!(
            "{MIGRATE} must be \"true\" (hand over) or \"rollback\", not {other:?}"
        )),
    }
}

/// The handover's next step, by the phase recorded on the DurableJob.
fn hand_over(cronjob: &CronJob, dj: Option<&DurableJob>, runs: &CronJobRuns, now: DateTime<Utc>) -> Step {
    let Some(dj) = dj else {
        return Step::CreateDurableJob;
    };
    if !ours(dj) {
        return Step::Refuse(format!(
            "a DurableJob named {} already exists and was not created by the handover; rename or delete it, or remove the {MIGRATE} annotation",
            dj.metadata.name.clone().unwrap_or_default()
        ));
    }
    match dj_annotation(dj, PHASE).unwrap_or_default() {
        "paused" | "rolled-back" => take_over(cronjob, dj, runs, now),
        "unpaused" if !settled(dj) => wait("Temporal to take the unpaused schedule"),
        "unpaused" => Step::FindFirstOwnSlot,
        "backfilling" => backfill_gap(dj),
        "done" => Step::MarkHandedOver,
        other => Step::Refuse(format!(
            "the DurableJob's {PHASE} annotation has the unknown value {other:?}"
        )),
    }
}

/// While the DurableJob is paused: suspend the CronJob in a quiet window, let a sync begun
/// before settle, wait for the CronJob's running Jobs (unless AllowAll), then unpause after
/// the CronJob's last slot.
fn take_over(cronjob: &CronJob, dj: &DurableJob, runs: &CronJobRuns, now: DateTime<Utc>) -> Step {
    if !settled(dj) || !dj.status.as_ref().is_some_and(|s| s.paused) {
        return wait("the DurableJob's schedule to exist, paused, in Temporal");
    }
    if !suspended(cronjob) || annotation(cronjob, SUSPEND_BEFORE).is_none() {
        if let Some(w) = quiet_window(dj, now) {
            return w;
        }
        let was = annotation(cronjob, SUSPEND_BEFORE)
            .map(|v| v == "true")
            .unwrap_or(suspended(cronjob));
        return Step::SuspendCronJob { was_suspended: was };
    }
    if let Some(at) = annotation(cronjob, SUSPENDED_AT).and_then(time)
        && now < at + SETTLE
    {
        return Step::Wait {
            why: "the CronJob controller to finish a sync begun before the suspend".into(),
            retry: at + SETTLE - now,
        };
    }
    if !runs.active.is_empty() && dj.spec.overlap_policy != OverlapPolicy::AllowAll {
        return wait(format!(
            "the CronJob's running Job(s) {} to finish (the DurableJob's overlap policy {:?} would not run beside them)",
            runs.active.join(", "),
            dj.spec.overlap_policy
        ));
    }
    Step::Unpause {
        after: last_schedule_time(cronjob).max(runs.last_scheduled),
        keep_suspended: annotation(cronjob, SUSPEND_BEFORE) == Some("true"),
    }
}

/// The slots strictly between the CronJob's last and the schedule's first, if any.
fn backfill_gap(dj: &DurableJob) -> Step {
    let Some(first) = dj_annotation(dj, START).and_then(time) else {
        return Step::Refuse(format!(
            "the DurableJob's {START} annotation is missing or not a time"
        ));
    };
    match dj_annotation(dj, BOUNDARY).and_then(time) {
        Some(after) if after + TimeDelta::seconds(1) < first => Step::Backfill {
            from: after + TimeDelta::seconds(1),
            to: first - TimeDelta::seconds(1),
        },
        _ => Step::MarkDone,
    }
}

/// The rollback's next step: suspend the DurableJob in a quiet window, then hand back once
/// its schedule is paused.
fn roll_back(cronjob: &CronJob, dj: Option<&DurableJob>, now: DateTime<Utc>) -> Step {
    let Some(dj) = dj.filter(|d| ours(d)) else {
        return Step::Refuse("there is no DurableJob from a handover to roll back".into());
    };
    if !dj.spec.suspend {
        return quiet_window(dj, now).unwrap_or(Step::SuspendDurableJob);
    }
    if !settled(dj) || !dj.status.as_ref().is_some_and(|s| s.paused || s.completed) {
        return wait("the DurableJob's schedule to be paused");
    }
    Step::HandBack {
        last: dj.status.as_ref().and_then(|s| s.last_schedule_time),
        suspend: annotation(cronjob, SUSPEND_BEFORE) == Some("true"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DurableJobStatus;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 30).unwrap()
    }

    /// The step in the middle of a minute (quiet for an every-minute schedule), with no Jobs.
    fn plan(cj: &CronJob, dj: Option<&DurableJob>) -> Step {
        super::step(cj, dj, &CronJobRuns::default(), now())
    }

    fn cronjob(ask: &str, status: &str, suspend: bool, before: Option<&str>) -> CronJob {
        let mut ann = json!({MIGRATE: ask});
        if !status.is_empty() {
            ann[MIGRATE_STATUS] = json!(status);
        }
        if let Some(b) = before {
            ann[SUSPEND_BEFORE] = json!(b);
        }
        serde_json::from_value(json!({
            "metadata": {"name": "backup", "annotations": ann},
            "spec": {"suspend": suspend, "schedule": "* * * * *",
                "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
            "status": {"lastScheduleTime": "2026-06-01T11:59:00Z"}
        }))
        .expect("a CronJob")
    }

    fn dj(phase: &str, paused: bool, suspend: bool, extra: &[(&str, &str)]) -> DurableJob {
        let mut d = DurableJob::test("backup");
        d.spec.schedule.cron = vec!["* * * * *".into()];
        d.metadata.labels = Some([(MIGRATED_FROM.to_string(), "cronjob".to_string())].into());
        let mut ann: std::collections::BTreeMap<String, String> =
            [(PHASE.to_string(), phase.to_string())].into();
        for (k, v) in extra {
            ann.insert(k.to_string(), v.to_string());
        }
        d.metadata.annotations = Some(ann);
        d.spec.suspend = suspend;
        d.status = Some(DurableJobStatus {
            paused,
            last_schedule_time: Some(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()),
            ..DurableJobStatus::synced("durablejob:default/backup", now())
        });
        d
    }

    #[test]
    fn a_handover_walks_through_every_step_in_order() {
        let cj = cronjob("true", "", false, None);
        assert_eq!(plan(&cj, None), Step::CreateDurableJob);
        let mut unsynced = dj("paused", true, true, &[]);
        unsynced.status.as_mut().unwrap().observed_generation = None;
        assert!(
            matches!(plan(&cj, Some(&unsynced)), Step::Wait { .. }),
            "the schedule must be confirmed first"
        );
        assert_eq!(
            plan(&cj, Some(&dj("paused", true, true, &[]))),
            Step::SuspendCronJob { was_suspended: false }
        );
        let suspended = cronjob("true", "", true, Some("false"));
        let last = Utc.with_ymd_and_hms(2026, 6, 1, 11, 59, 0).unwrap();
        assert_eq!(
            plan(&suspended, Some(&dj("paused", true, true, &[]))),
            Step::Unpause {
                after: Some(last),
                keep_suspended: false
            }
        );
        let mut unsettled = dj("unpaused", false, false, &[]);
        unsettled.metadata.generation = Some(2);
        assert!(
            matches!(plan(&suspended, Some(&unsettled)), Step::Wait { .. }),
            "the unpause must reach Temporal first"
        );
        assert_eq!(
            plan(&suspended, Some(&dj("unpaused", false, false, &[]))),
            Step::FindFirstOwnSlot
        );
        let backfilling = dj(
            "backfilling",
            false,
            false,
            &[
                (START, "2026-06-01T12:01:00Z"),
                (BOUNDARY, "2026-06-01T11:59:00Z"),
            ],
        );
        assert_eq!(
            plan(&suspended, Some(&backfilling)),
            Step::Backfill {
                from: Utc.with_ymd_and_hms(2026, 6, 1, 11, 59, 1).unwrap(),
                to: Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 59).unwrap()
            }
        );
        let never_ran = dj("backfilling", false, false, &[(START, "2026-06-01T12:01:00Z")]);
        assert_eq!(
            plan(&suspended, Some(&never_ran)),
            Step::MarkDone,
            "a CronJob that never ran leaves nothing to backfill"
        );
        assert_eq!(
            plan(&suspended, Some(&dj("done", false, false, &[]))),
            Step::MarkHandedOver
        );
        assert_eq!(
            plan(
                &cronjob("true", "handed-over", true, Some("false")),
                Some(&dj("done", false, false, &[]))
            ),
            Step::Nothing
        );
    }

    #[test]
    fn a_cronjob_that_was_suspended_stays_suspended_as_a_durablejob() {
        let cj = cronjob("true", "", true, None);
        assert_eq!(
            plan(&cj, Some(&dj("paused", true, true, &[]))),
            Step::SuspendCronJob { was_suspended: true }
        );
        let recorded = cronjob("true", "", true, Some("true"));
        assert!(matches!(
            plan(&recorded, Some(&dj("paused", true, true, &[]))),
            Step::Unpause {
                keep_suspended: true,
                ..
            }
        ));
    }

    #[test]
    fn someone_elses_durablejob_is_not_taken_over() {
        let mut other = DurableJob::test("backup");
        other.metadata.labels = None;
        assert!(
            matches!(plan(&cronjob("true", "", false, None), Some(&other)), Step::Refuse(m) if m.contains("not created by the handover"))
        );
        assert!(
            matches!(plan(&cronjob("yes", "", false, None), None), Step::Refuse(m) if m.contains("rollback"))
        );
    }

    #[test]
    fn a_rollback_pauses_the_durablejob_then_hands_back_its_last_slot() {
        let cj = cronjob("rollback", "handed-over", true, Some("false"));
        assert_eq!(
            plan(&cj, Some(&dj("done", false, false, &[]))),
            Step::SuspendDurableJob
        );
        let mut pausing = dj("done", false, true, &[]);
        pausing.status.as_mut().unwrap().paused = false;
        assert!(matches!(plan(&cj, Some(&pausing)), Step::Wait { .. }));
        assert_eq!(
            plan(&cj, Some(&dj("done", true, true, &[]))),
            Step::HandBack {
                last: Some(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()),
                suspend: false
            }
        );
        assert_eq!(
            plan(&cronjob("rollback", "rolled-back", false, Some("false")), None),
            Step::Nothing
        );
    }

    #[test]
    fn the_cronjob_is_suspended_only_in_a_quiet_window() {
        let cj = cronjob("true", "", false, None);
        let paused = dj("paused", true, true, &[]);
        let just_after = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 2).unwrap();
        assert_eq!(
            super::step(&cj, Some(&paused), &CronJobRuns::default(), just_after),
            Step::Wait {
                why: "a quiet moment between the schedule's slots".into(),
                retry: TimeDelta::seconds(8)
            }
        );
        let just_before = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 58).unwrap();
        assert!(matches!(
            super::step(&cj, Some(&paused), &CronJobRuns::default(), just_before),
            Step::Wait { retry, .. } if retry == TimeDelta::seconds(12)
        ));
        assert_eq!(
            plan(&cj, Some(&paused)),
            Step::SuspendCronJob { was_suspended: false }
        );
    }

    #[test]
    fn the_last_slot_is_read_after_the_suspend_settles_and_includes_the_cronjobs_jobs() {
        let mut cj = cronjob("true", "", true, Some("false"));
        cj.metadata
            .annotations
            .get_or_insert_default()
            .insert(SUSPENDED_AT.into(), "2026-06-01T12:00:29Z".into());
        let paused = dj("paused", true, true, &[]);
        assert!(
            matches!(plan(&cj, Some(&paused)), Step::Wait { retry, .. } if retry == TimeDelta::seconds(2)),
            "a sync begun before the suspend may still make a Job"
        );
        let later = now() + TimeDelta::seconds(5);
        // the controller made the 12:00 Job before it wrote lastScheduleTime (still 11:59)
        let runs = CronJobRuns {
            last_scheduled: Some(Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()),
            active: vec![],
        };
        assert_eq!(
            super::step(&cj, Some(&paused), &runs, later),
            Step::Unpause {
                after: runs.last_scheduled,
                keep_suspended: false
            }
        );
    }

    #[test]
    fn a_running_cronjob_job_is_waited_for_unless_runs_may_overlap() {
        let cj = cronjob("true", "", true, Some("false"));
        let runs = CronJobRuns {
            last_scheduled: None,
            active: vec!["backup-29000000".into()],
        };
        let paused = dj("paused", true, true, &[]);
        assert!(matches!(
            super::step(&cj, Some(&paused), &runs, now()),
            Step::Wait { why, .. } if why.contains("backup-29000000") && why.contains("Skip")
        ));
        let mut allow = paused.clone();
        allow.spec.overlap_policy = OverlapPolicy::AllowAll;
        assert!(matches!(
            super::step(&cj, Some(&allow), &runs, now()),
            Step::Unpause { .. }
        ));
    }

    #[test]
    fn a_rollback_pauses_the_durablejob_only_in_a_quiet_window() {
        let cj = cronjob("rollback", "handed-over", true, Some("false"));
        let at_slot = Utc.with_ymd_and_hms(2026, 6, 1, 12, 1, 0).unwrap();
        assert!(matches!(
            super::step(
                &cj,
                Some(&dj("done", false, false, &[])),
                &CronJobRuns::default(),
                at_slot
            ),
            Step::Wait { .. }
        ));
    }
}
