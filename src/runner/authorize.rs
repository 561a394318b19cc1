//! What the runner checks before it creates a Job, decided by pure functions: the run's input
//! must be the DurableJob's own (same uid, same jobTemplate), so whoever can start workflows on
//! the runner's task queue still cannot make it create arbitrary Jobs. Also whether a run was
//! started at a slot of the schedule or by a trigger.

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;

use super::job::{annotation, template_hash};
use crate::api::DurableJob;
use crate::run_contract::RunInput;

/// `Ok` when a Job may be created for this input; otherwise why not, for the `Forbidden` failure.
///
/// The template must be the DurableJob's current jobTemplate. A later attempt of a run that
/// began before the template was edited keeps its template: it may go on when the run's first
/// Job (made after the same check) carries the same template hash.
pub fn authorize(
    input: &RunInput,
    dj: Option<&DurableJob>,
    attempt: u32,
    first_job: Option<&Job>,
) -> Result<(), String> {
    let what = format!("DurableJob {}/{}", input.namespace, input.name);
    let Some(dj) = dj else {
        return Err(format!(
            "{what} does not exist; the runner creates Jobs only for DurableJobs that do"
        ));
    };
    let uid = dj.uid().unwrap_or_default();
    if uid != input.uid {
        return Err(format!(
            "the run names {what} with uid {}, but that DurableJob has uid {uid}: the run is not this DurableJob's (it was recreated, or the input was forged)",
            input.uid
        ));
    }
    let hash = template_hash(&input.job_template);
    let current = dj.spec.job_template.as_ref().map(template_hash);
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
        None => format!("{what} has no spec.jobTemplate, so the built-in runner runs nothing for it"),
        Some(current) => format!(
            "the run's jobTemplate (hash {hash}) is not the spec.jobTemplate of {what} (hash {current}): the input was not built from this DurableJob"
        ),
    })
}

/// Whether a run for `slot` was started by a trigger: its time is no slot of the schedule.
/// Slots are whole seconds matching a cron entry in the time zone, or an interval's
/// `epoch + k·every + offset`; a spec that no longer validates counts every run as scheduled.
pub fn is_manual(dj: &DurableJob, slot: DateTime<Utc>) -> bool {
    let Ok(spec) = crate::controller::validate::validate(&dj.spec) else {
        return false;
    };
    if slot.timestamp_subsec_nanos() != 0 {
        return true;
    }
    let tz: chrono_tz::Tz = spec.time_zone.parse().unwrap_or(chrono_tz::UTC);
    let local = slot.with_timezone(&tz);
    let (namespace, name) = (dj.namespace().unwrap_or_default(), dj.name_any());
    let concrete = crate::controller::build::schedule::concrete_cron(&spec.cron, &namespace, &name);
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
        }
    }

    fn first_job(uid: &str, hash: &str) -> Job {
        serde_json::from_value(json!({"metadata": {
            "name": "report-x-1",
            "ownerReferences": [{"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "name": "report", "uid": uid}],
            "annotations": {annotation::TEMPLATE_HASH: hash}}}))
        .unwrap()
    }

    #[test]
    fn the_durablejobs_own_input_is_allowed() {
        let dj = dj();
        assert_eq!(authorize(&input(&dj), Some(&dj), 1, None), Ok(()));
    }

    #[test]
    fn a_forged_template_or_uid_or_a_missing_resource_is_refused_with_the_reason() {
        let dj = dj();
        let mut forged = input(&dj);
        forged.job_template["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil");
        let e = authorize(&forged, Some(&dj), 1, None).unwrap_err();
        assert!(
            e.contains("not the spec.jobTemplate of DurableJob default/report"),
            "{e}"
        );
        let other_uid = RunInput {
            uid: "uid-2".into(),
            ..input(&dj)
        };
        let e = authorize(&other_uid, Some(&dj), 1, None).unwrap_err();
        assert!(e.contains("uid uid-2") && e.contains("has uid uid-1"), "{e}");
        let e = authorize(&input(&dj), None, 1, None).unwrap_err();
        assert!(e.contains("does not exist"), "{e}");
        let hash = template_hash(&forged.job_template);
        assert!(
            authorize(&forged, Some(&dj), 1, Some(&first_job("uid-1", &hash))).is_err(),
            "a first attempt cannot lean on a Job"
        );
    }

    #[test]
    fn a_later_attempt_keeps_the_template_its_first_job_was_checked_with() {
        let dj = dj();
        let mut old = input(&dj);
        old.job_template["spec"]["backoffLimit"] = json!(4);
        let hash = template_hash(&old.job_template);
        assert_eq!(
            authorize(&old, Some(&dj), 2, Some(&first_job("uid-1", &hash))),
            Ok(())
        );
        assert!(authorize(&old, Some(&dj), 2, Some(&first_job("uid-9", &hash))).is_err());
        assert!(authorize(&old, Some(&dj), 2, Some(&first_job("uid-1", "other"))).is_err());
        assert!(authorize(&old, Some(&dj), 2, None).is_err());
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
