//! What to do with Temporal for one DurableJob, decided without I/O from the desired
//! schedule, the previous status and Temporal's description.

use chrono::{DateTime, Utc};

use crate::api::{DurableJobStatus, SyncRecord};
use crate::schedule::{DesiredSchedule, Owner};
use crate::temporal::{ObservedSchedule, WriteOptions};

/// Why a schedule is (re)written; shown in Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteReason {
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
    /// The user resumed a schedule Temporal paused after a failed run.
    Resumed,
}

/// The decision for one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
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
pub struct PlanInput<'a> {
    pub desired: &'a DesiredSchedule,
    pub desired_hash: &'a str,
    pub previous: &'a DurableJobStatus,
    pub observed: Option<&'a ObservedSchedule>,
    /// Value of the resume annotation when it differs from the one last handled.
    pub resume_requested: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Notes the operator keeps on its schedules.
pub fn notes(desired: &DesiredSchedule) -> String {
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

pub fn decide(input: &PlanInput<'_>) -> Decision {
    let d = input.desired;
    let previous_sync = input.previous.sync.as_ref();
    let Some(obs) = input.observed else {
        let taken = input.previous.action_count;
        let finished = d.calendar.end_at.is_some_and(|end| end <= input.now)
            || d.run_limit.is_some_and(|limit| taken >= limit);
        if finished {
            return Decision::Completed;
        }
        let reason = if previous_sync.is_some() {
            WriteReason::Recreated
        } else {
            WriteReason::Created
        };
        return Decision::Create {
            options: WriteOptions {
                paused: d.paused,
                notes: notes(d),
                remaining_actions: d.run_limit.map(|l| l - taken),
                action_count_base: taken,
            },
            reason,
        };
    };

    match &obs.owner {
        Some(owner) if owner.uid == d.owner.uid && owner.prefix == d.owner.prefix => {}
        other => return Decision::Foreign { owner: other.clone() },
    }

    let resume = input.resume_requested.is_some();
    let failure_pause = obs.paused_by_failure() && d.pause_on_failure && !resume;
    let spec_unchanged = previous_sync.is_some_and(|s| s.desired_hash == input.desired_hash);
    let description_unchanged = previous_sync.is_some_and(|s| s.observed_fingerprint == obs.fingerprint);

    if spec_unchanged && description_unchanged && !(resume && obs.paused_by_failure()) {
        return Decision::InSync {
            record_fingerprint: None,
        };
    }
    if spec_unchanged && failure_pause {
        // Temporal paused the schedule itself after a failed run: respected until resumed.
        return Decision::InSync {
            record_fingerprint: Some(obs.fingerprint.clone()),
        };
    }

    let reason = if previous_sync.is_none() {
        WriteReason::Adopted
    } else if !spec_unchanged {
        WriteReason::SpecChanged
    } else if resume && obs.paused_by_failure() {
        WriteReason::Resumed
    } else {
        WriteReason::DriftRepaired
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

/// The sync record to keep after a write, or after accepting Temporal's own change.
pub fn sync_record(desired_hash: &str, fingerprint: &str, handled_resume: Option<String>) -> SyncRecord {
    SyncRecord {
        desired_hash: desired_hash.to_string(),
        observed_fingerprint: fingerprint.to_string(),
        handled_resume,
    }
}
