//! What to do with Temporal for one DurableJob, decided without I/O from the desired
//! schedule, the previous status and Temporal's description.

use chrono::{DateTime, Utc};

use crate::api::{DurableJobStatus, SyncRecord};
use crate::controller::pause::PauseState;
use crate::controller::streak;
use crate::desired::schedule::{DesiredSchedule, Owner};
use crate::temporal::{ObservedSchedule, WriteOptions};

/// Why a schedule is (re)written; shown in Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteReason {
    /// No schedule existed.
    Created,
    /// The schedule vanished from Temporal (deleted there) and is put back.
    Recreated,
    /// The spec changed.
    SpecChanged,
    /// Someone changed the schedule directly in Temporal; the spec wins.
    DriftRepaired,
    /// The schedule existed without a record of the operator's last write (status lost).
    Adopted,
    /// The user resumed a schedule paused after failed runs (or spec.resumeAfter did).
    Resumed,
    /// spec.suspendAfterFailures runs failed in a row: the operator paused the schedule.
    FailureStreak,
}

impl WriteReason {
    /// The reason an Event and the schedule_writes metric give for this write.
    pub(crate) fn reason(self) -> crate::reason::Reason {
        use crate::reason::Reason;
        match self {
            WriteReason::Created => Reason::ScheduleCreated,
            WriteReason::Recreated => Reason::ScheduleRecreated,
            WriteReason::SpecChanged => Reason::ScheduleUpdated,
            WriteReason::DriftRepaired => Reason::DriftRepaired,
            WriteReason::Adopted => Reason::ScheduleAdopted,
            WriteReason::Resumed => Reason::ScheduleResumed,
            WriteReason::FailureStreak => Reason::ConsecutiveFailures,
        }
    }
}

/// The decision for one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    Create {
        options: WriteOptions,
        reason: WriteReason,
    },
    Update {
        options: WriteOptions,
        conflict_token: Vec<u8>,
        reason: WriteReason,
    },
    /// Nothing to write. `record_fingerprint` is set when Temporal changed the schedule in a
    /// way that is respected (a pause after a failed run): the new description becomes the
    /// reference for the next comparison.
    InSync { record_fingerprint: Option<String> },
    /// The schedule finished (endAt passed or runLimit used up) and Temporal removed it;
    /// creating it again would run nothing or run too much.
    Completed,
    /// The schedule id is taken by a schedule this operator instance did not create for this resource.
    Foreign { owner: Option<Owner> },
}

/// Facts about the resource the planner needs beyond the desired schedule.
#[derive(Debug, Clone)]
pub(crate) struct PlanInput<'a> {
    pub desired: &'a DesiredSchedule,
    pub desired_hash: &'a str,
    pub previous: &'a DurableJobStatus,
    pub observed: Option<&'a ObservedSchedule>,
    /// The failed runs in a row, counted up to this reconcile (with spec.suspendAfterFailures).
    pub failure_streak: Option<&'a crate::api::FailureStreak>,
    /// Value of the resume annotation when it differs from the one last handled.
    pub resume_requested: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Notes the operator keeps on its schedules.
pub(crate) fn notes(desired: &DesiredSchedule) -> String {
    if desired.paused {
        format!(
            "Suspended by spec.suspend of DurableJob {}.",
            desired.owner.resource
        )
    } else {
        format!(
            "Managed by DurableJob {} (durablejob operator); change the resource, not this schedule.",
            desired.owner.resource
        )
    }
}

pub(crate) fn decide(input: &PlanInput<'_>) -> Decision {
    let d = input.desired;
    let previous_sync = input.previous.sync.as_ref();
    let Some(obs) = input.observed else {
        return decide_absent(input);
    };
    match &obs.owner {
        Some(owner) if owner.uid == d.owner.uid && owner.prefix == d.owner.prefix => {}
        other => return Decision::Foreign { owner: other.clone() },
    }
    if let Some(pause) = streak_pause(input, obs) {
        return pause;
    }

    // a pause after failed runs is kept while the spec asks for it, until a resume request,
    // or (the operator's pause for a streak) until spec.resumeAfter ends it
    let pause = PauseState::of(Some(d), obs);
    let resume = input.resume_requested.is_some() || pause.resume_due(input.now);
    let resuming = resume && pause.after_failures();
    let failure_pause = pause.held && !resume;
    let spec_unchanged = previous_sync.is_some_and(|s| s.desired_hash == input.desired_hash);
    let description_unchanged = previous_sync.is_some_and(|s| as_recorded(s, obs, d));

    if spec_unchanged && description_unchanged && !resuming {
        // the first describe after a create: its fingerprint is the reference from now on
        let first_look = previous_sync.is_some_and(|s| s.created_conflict_token.is_some());
        return Decision::InSync {
            record_fingerprint: first_look.then(|| obs.fingerprint.clone()),
        };
    }
    if spec_unchanged && failure_pause {
        // Temporal paused the schedule itself after a failed run: respected until resumed.
        return Decision::InSync {
            record_fingerprint: Some(obs.fingerprint.clone()),
        };
    }
    // No record of a write, but the memo says the operator created this very schedule from
    // this very spec (its status write was lost): it is in sync, not adopted.
    let created_from_this_spec = obs.created_hash.as_deref() == Some(input.desired_hash);
    if previous_sync.is_none() && created_from_this_spec && obs.paused == d.paused && obs.notes == notes(d) {
        return Decision::InSync {
            record_fingerprint: Some(obs.fingerprint.clone()),
        };
    }
    let reason = match previous_sync {
        None => match &obs.created_hash {
            None => WriteReason::Adopted,
            Some(_) if created_from_this_spec => WriteReason::DriftRepaired,
            Some(_) => WriteReason::SpecChanged,
        },
        Some(_) if !spec_unchanged => WriteReason::SpecChanged,
        Some(_) if resuming => WriteReason::Resumed,
        Some(_) => WriteReason::DriftRepaired,
    };
    let (paused, notes) = if failure_pause && !d.paused {
        (true, obs.notes.clone())
    } else {
        (d.paused, notes(d))
    };
    Decision::Update {
        options: WriteOptions {
            paused,
            notes,
            remaining_actions: d.run_limit.map(|l| l - obs.total_actions()),
            action_count_base: obs.action_count_base,
        },
        conflict_token: obs.conflict_token.clone(),
        reason,
    }
}

/// Whether Temporal's description is the one the record holds: the same fingerprint; or, for a
/// schedule created and not described since, the conflict token the create was answered with
/// (every write to a schedule moves it) and the paused state and notes the create wrote.
fn as_recorded(record: &SyncRecord, obs: &ObservedSchedule, d: &DesiredSchedule) -> bool {
    match &record.created_conflict_token {
        Some(token) => {
            *token == hex_token(&obs.conflict_token) && obs.paused == d.paused && obs.notes == notes(d)
        }
        None => record.observed_fingerprint == obs.fingerprint,
    }
}

/// A conflict token as the sync record keeps it.
pub(crate) fn hex_token(token: &[u8]) -> String {
    token.iter().map(|b| format!("{b:02x}")).collect()
}

/// No schedule in Temporal: create it (again), unless its end or run limit has passed.
fn decide_absent(input: &PlanInput<'_>) -> Decision {
    let d = input.desired;
    let taken = input.previous.action_count;
    let finished = d.calendar.end_at.is_some_and(|end| end <= input.now)
        || d.run_limit.is_some_and(|limit| taken >= limit);
    if finished {
        return Decision::Completed;
    }
    let reason = if input.previous.sync.is_some() {
        WriteReason::Recreated
    } else {
        WriteReason::Created
    };
    Decision::Create {
        options: WriteOptions {
            paused: d.paused,
            notes: notes(d),
            remaining_actions: d.run_limit.map(|l| l - taken),
            action_count_base: taken,
        },
        reason,
    }
}

/// Enough failed runs in a row: pause, naming them (only a running schedule the operator has
/// written before can trip).
fn streak_pause(input: &PlanInput<'_>, obs: &ObservedSchedule) -> Option<Decision> {
    let d = input.desired;
    let (policy, streak) = (d.streak?, input.failure_streak?);
    let trips =
        !obs.paused && !d.paused && input.previous.sync.is_some() && streak.count >= i64::from(policy.after);
    trips.then(|| Decision::Update {
        options: WriteOptions {
            paused: true,
            notes: streak::pause_notes(&d.owner.resource, input.now, streak),
            remaining_actions: d.run_limit.map(|l| l - obs.total_actions()),
            action_count_base: obs.action_count_base,
        },
        conflict_token: obs.conflict_token.clone(),
        reason: WriteReason::FailureStreak,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DurableJob, SyncRecord};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn observed(d: &DesiredSchedule, fingerprint: &str) -> ObservedSchedule {
        ObservedSchedule {
            fingerprint: fingerprint.into(),
            owner: Some(d.owner.clone()),
            paused: d.paused,
            notes: notes(d),
            conflict_token: vec![9],
            ..ObservedSchedule::test()
        }
    }

    fn synced(hash: &str, fp: &str) -> DurableJobStatus {
        DurableJobStatus {
            sync: Some(SyncRecord {
                desired_hash: hash.into(),
                observed_fingerprint: fp.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn decide_with(
        d: &DesiredSchedule,
        previous: &DurableJobStatus,
        obs: Option<&ObservedSchedule>,
        resume: Option<&str>,
    ) -> Decision {
        decide(&PlanInput {
            desired: d,
            desired_hash: &d.hash(),
            previous,
            observed: obs,
            failure_streak: None,
            resume_requested: resume,
            now: now(),
        })
    }

    #[test]
    fn a_missing_schedule_is_created_with_the_spec_pause_and_run_limit() {
        let mut dj = DurableJob::test("x").suspended();
        dj.spec.run_limit = Some(5);
        let d = dj.desired_schedule();
        let Decision::Create { options, reason } = decide_with(&d, &DurableJobStatus::default(), None, None)
        else {
            panic!()
        };
        assert_eq!(reason, WriteReason::Created);
        assert_eq!(
            options,
            WriteOptions {
                paused: true,
                notes: notes(&d),
                remaining_actions: Some(5),
                action_count_base: 0
            }
        );
    }

    #[test]
    fn a_schedule_deleted_in_temporal_is_recreated_counting_runs_already_taken() {
        let mut dj = DurableJob::test("x");
        dj.spec.run_limit = Some(5);
        let d = dj.desired_schedule();
        let previous = DurableJobStatus {
            action_count: 2,
            ..synced(&d.hash(), "fp")
        };
        let Decision::Create { options, reason } = decide_with(&d, &previous, None, None) else {
            panic!()
        };
        assert_eq!(reason, WriteReason::Recreated);
        assert_eq!(
            (options.remaining_actions, options.action_count_base),
            (Some(3), 2)
        );
    }

    #[test]
    fn a_finished_schedule_that_temporal_removed_is_not_recreated() {
        let mut dj = DurableJob::test("x");
        dj.spec.run_limit = Some(2);
        let d = dj.desired_schedule();
        let used_up = DurableJobStatus {
            action_count: 2,
            ..synced(&d.hash(), "fp")
        };
        assert_eq!(decide_with(&d, &used_up, None, None), Decision::Completed);
        let mut ended = DurableJob::test("x");
        ended.spec.schedule.end_at = Some("2026-05-01T00:00:00Z".into());
        assert_eq!(
            decide_with(
                &ended.desired_schedule(),
                &DurableJobStatus::default(),
                None,
                None
            ),
            Decision::Completed
        );
        let mut raised = DurableJob::test("x");
        raised.spec.run_limit = Some(4);
        assert!(
            matches!(
                decide_with(&raised.desired_schedule(), &used_up, None, None),
                Decision::Create { .. }
            ),
            "raising runLimit runs again"
        );
    }

    #[test]
    fn nothing_is_written_when_spec_and_description_are_unchanged() {
        let d = DurableJob::test("x").desired_schedule();
        let obs = observed(&d, "fp");
        assert_eq!(
            decide_with(&d, &synced(&d.hash(), "fp"), Some(&obs), None),
            Decision::InSync {
                record_fingerprint: None
            }
        );
    }

    #[test]
    fn a_spec_change_updates_with_the_conflict_token() {
        let d = DurableJob::test("x").desired_schedule();
        let obs = observed(&d, "fp");
        let Decision::Update {
            conflict_token,
            reason,
            ..
        } = decide_with(&d, &synced("old-hash", "fp"), Some(&obs), None)
        else {
            panic!()
        };
        assert_eq!((conflict_token, reason), (vec![9], WriteReason::SpecChanged));
    }

    #[test]
    fn an_edit_made_in_temporal_is_drift_and_repaired() {
        let d = DurableJob::test("x").desired_schedule();
        let obs = ObservedSchedule {
            paused: true,
            notes: "paused in the UI".into(),
            ..observed(&d, "edited")
        };
        let Decision::Update { options, reason, .. } =
            decide_with(&d, &synced(&d.hash(), "fp"), Some(&obs), None)
        else {
            panic!()
        };
        assert_eq!(reason, WriteReason::DriftRepaired);
        assert!(
            !options.paused,
            "a pause made in Temporal is drift: the resource owns paused"
        );
    }

    #[test]
    fn a_schedule_found_without_a_record_is_adopted() {
        let d = DurableJob::test("x").desired_schedule();
        let obs = ObservedSchedule {
            created_hash: None,
            ..observed(&d, "fp")
        };
        let Decision::Update { reason, .. } = decide_with(&d, &DurableJobStatus::default(), Some(&obs), None)
        else {
            panic!()
        };
        assert_eq!(reason, WriteReason::Adopted);
    }

    #[test]
    fn the_operators_own_create_whose_status_was_lost_is_in_sync_not_adopted() {
        let d = DurableJob::test("x").desired_schedule();
        let obs = ObservedSchedule {
            created_hash: Some(d.hash()),
            ..observed(&d, "fp")
        };
        assert_eq!(
            decide_with(&d, &DurableJobStatus::default(), Some(&obs), None),
            Decision::InSync {
                record_fingerprint: Some("fp".into())
            }
        );
        let edited_since = DurableJob::test("x")
            .with_cron(&["0 10 * * *"])
            .desired_schedule();
        let Decision::Update { reason, .. } =
            decide_with(&edited_since, &DurableJobStatus::default(), Some(&obs), None)
        else {
            panic!()
        };
        assert_eq!(reason, WriteReason::SpecChanged, "ours, from an older spec");
        let paused_there = ObservedSchedule {
            paused: true,
            ..obs.clone()
        };
        let Decision::Update { reason, .. } =
            decide_with(&d, &DurableJobStatus::default(), Some(&paused_there), None)
        else {
            panic!()
        };
        assert_eq!(reason, WriteReason::DriftRepaired);
    }

    #[test]
    fn another_owners_schedule_is_left_alone() {
        let d = DurableJob::test("x").desired_schedule();
        let other = Owner {
            uid: "someone-else".into(),
            ..d.owner.clone()
        };
        let obs = ObservedSchedule {
            owner: Some(other.clone()),
            ..observed(&d, "fp")
        };
        assert_eq!(
            decide_with(&d, &DurableJobStatus::default(), Some(&obs), None),
            Decision::Foreign { owner: Some(other) }
        );
        let unowned = ObservedSchedule {
            owner: None,
            ..observed(&d, "fp")
        };
        assert_eq!(
            decide_with(&d, &DurableJobStatus::default(), Some(&unowned), None),
            Decision::Foreign { owner: None }
        );
        let other_prefix = ObservedSchedule {
            owner: Some(Owner {
                prefix: "staging".into(),
                ..d.owner.clone()
            }),
            ..observed(&d, "fp")
        };
        assert!(matches!(
            decide_with(&d, &DurableJobStatus::default(), Some(&other_prefix), None),
            Decision::Foreign { .. }
        ));
    }

    #[test]
    fn a_pause_after_a_failed_run_is_respected_until_resumed() {
        let mut dj = DurableJob::test("x");
        dj.spec.pause_on_failure = true;
        let d = dj.desired_schedule();
        let failed = ObservedSchedule {
            paused: true,
            notes: "paused due to workflow failure: w-1: JobFailed".into(),
            ..observed(&d, "after-failure")
        };
        let previous = synced(&d.hash(), "fp");
        assert_eq!(
            decide_with(&d, &previous, Some(&failed), None),
            Decision::InSync {
                record_fingerprint: Some("after-failure".into())
            }
        );
        // a spec edit keeps the pause
        let Decision::Update { options, .. } =
            decide_with(&d, &synced("old", "after-failure"), Some(&failed), None)
        else {
            panic!()
        };
        assert!(options.paused);
        assert_eq!(options.notes, failed.notes);
        // the resume annotation unpauses
        let Decision::Update { options, reason, .. } =
            decide_with(&d, &synced(&d.hash(), "after-failure"), Some(&failed), Some("1"))
        else {
            panic!()
        };
        assert_eq!(reason, WriteReason::Resumed);
        assert!(!options.paused);
    }

    #[test]
    fn without_pause_on_failure_a_failure_pause_is_drift() {
        let d = DurableJob::test("x").desired_schedule();
        let failed = ObservedSchedule {
            paused: true,
            notes: "paused due to workflow failure: w: x".into(),
            ..observed(&d, "x")
        };
        assert!(matches!(
            decide_with(&d, &synced(&d.hash(), "fp"), Some(&failed), None),
            Decision::Update {
                reason: WriteReason::DriftRepaired,
                ..
            }
        ));
    }

    #[test]
    fn an_update_sends_remaining_runs_from_temporals_count() {
        let mut dj = DurableJob::test("x");
        dj.spec.run_limit = Some(10);
        let d = dj.desired_schedule();
        let obs = ObservedSchedule {
            action_count_base: 2,
            action_count: 3,
            ..observed(&d, "fp")
        };
        let Decision::Update { options, .. } = decide_with(&d, &synced("old", "fp"), Some(&obs), None) else {
            panic!()
        };
        assert_eq!(
            (options.remaining_actions, options.action_count_base),
            (Some(5), 2)
        );
    }

    fn streak(count: i64) -> crate::api::FailureStreak {
        crate::api::FailureStreak {
            count,
            runs: (0..count).rev().map(|i| format!("wf-{i}")).collect(),
            counted_until: Some(now()),
        }
    }

    #[test]
    fn enough_failed_runs_in_a_row_pause_the_schedule_naming_them() {
        let d = DurableJob::test("x")
            .with_failure_streak(2, None)
            .desired_schedule();
        let previous = synced(&d.hash(), "fp");
        let obs = observed(&d, "fp");
        let with = |count: i64| {
            let st = streak(count);
            decide(&PlanInput {
                desired: &d,
                desired_hash: &d.hash(),
                previous: &previous,
                observed: Some(&obs),
                failure_streak: Some(&st),
                resume_requested: None,
                now: now(),
            })
        };
        assert!(matches!(with(1), Decision::InSync { .. }));
        let Decision::Update { options, reason, .. } = with(2) else {
            panic!()
        };
        assert_eq!(reason, WriteReason::FailureStreak);
        assert!(options.paused);
        assert!(
            options.notes.contains("2 consecutive failed runs"),
            "{}",
            options.notes
        );
        assert!(options.notes.contains("wf-1, wf-0"), "{}", options.notes);
        assert_eq!(streak::paused_at(&options.notes), Some(now()));
    }

    #[test]
    fn the_streak_pause_holds_until_resumed_by_request_or_after_resume_after() {
        let d = DurableJob::test("x")
            .with_failure_streak(2, Some("10m"))
            .desired_schedule();
        let paused = |at: DateTime<Utc>| ObservedSchedule {
            paused: true,
            notes: streak::pause_notes("default/x", at, &streak(2)),
            ..observed(&d, "paused")
        };
        let previous = synced(&d.hash(), "fp");
        let recent = paused(now() - chrono::TimeDelta::minutes(3));
        assert_eq!(
            decide_with(&d, &previous, Some(&recent), None),
            Decision::InSync {
                record_fingerprint: Some("paused".into())
            },
            "a pause of its own is respected, not drift"
        );
        let Decision::Update { options, reason, .. } = decide_with(&d, &previous, Some(&recent), Some("r1"))
        else {
            panic!()
        };
        assert_eq!((reason, options.paused), (WriteReason::Resumed, false));
        let old = paused(now() - chrono::TimeDelta::minutes(11));
        let Decision::Update { options, reason, .. } =
            decide_with(&d, &synced(&d.hash(), "paused"), Some(&old), None)
        else {
            panic!()
        };
        assert_eq!(
            (reason, options.paused),
            (WriteReason::Resumed, false),
            "resumeAfter passed"
        );
        // without suspendAfterFailures the operator's pause is drift like any other
        let plain = DurableJob::test("x").desired_schedule();
        assert!(matches!(
            decide_with(&plain, &synced(&plain.hash(), "fp"), Some(&recent), None),
            Decision::Update {
                reason: WriteReason::DriftRepaired,
                ..
            }
        ));
    }
}
