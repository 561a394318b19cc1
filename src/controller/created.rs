//! A schedule as Temporal holds it right after the operator created it, known without a
//! describe: the create's own request, the conflict token and listing Temporal answered with,
//! and the next run times [`crate::desired::slots`] works out as Temporal's scheduler does.
//!
//! Only for schedules whose description can be known that way: without jitter (Temporal's next
//! times carry a delay hashed from the namespace's id, which the operator cannot know) and
//! without a run limit (each run counted against it moves the conflict token, so the first
//! describe after a run could not tell that from a write). The others are described after
//! their create, as before. The first describe of a schedule known this way (when the sweep
//! lists something else for it, at the full resync, or on any other reconcile) holds Temporal's
//! answer to the token: see [`crate::controller::plan`].

use chrono::{DateTime, Utc};

use crate::desired::schedule::DesiredSchedule;
use crate::desired::slots::{Slot, Slots};
use crate::temporal::{Created, ObservedSchedule, WriteOptions};

/// How many next run times Temporal's describe gives (its `FutureActionCount`).
const FUTURE_ACTIONS: usize = 10;

/// How many slots, runs and excluded ones, the walk for them looks at before it gives up and
/// leaves the schedule to a describe.
const WALK: usize = 10_000;

/// The schedule just created from `desired` with `options`, as a describe would show it; `None`
/// when that cannot be known here (then the create is followed by a describe).
pub(crate) fn as_created(
    desired: &DesiredSchedule,
    options: &WriteOptions,
    created: &Created,
    now: DateTime<Utc>,
) -> Option<ObservedSchedule> {
    let c = &desired.calendar;
    if c.jitter.is_some_and(|j| !j.is_zero()) || options.remaining_actions.is_some() {
        return None;
    }
    let slots = Slots::new(c).ok()?;
    let future: Vec<DateTime<Utc>> = slots
        .after(now)
        .take(WALK)
        .filter_map(|s| match s {
            Slot::Run { at, .. } => Some(at),
            Slot::Excluded { .. } => None,
        })
        .take(FUTURE_ACTIONS)
        .collect();
    if future.is_empty() {
        return None; // nothing left to run, or all of the walk excluded: Temporal tells
    }
    Some(ObservedSchedule {
        // no fingerprint until described; the sync record holds the token instead. No run,
        // count or limit yet: those stay at their defaults
        owner: Some(desired.owner.clone()),
        action_count_base: options.action_count_base,
        created_hash: Some(desired.hash()),
        paused: options.paused,
        notes: options.notes.clone(),
        conflict_token: created.conflict_token.clone(),
        future_action_times: future,
        end_at: c.end_at,
        listing: created.listing.clone(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DurableJob;
    use chrono::TimeZone;
    use std::time::Duration;

    fn created() -> Created {
        Created {
            conflict_token: vec![0, 0, 0, 0, 0, 0, 0, 1],
            listing: "L".into(),
        }
    }

    fn options() -> WriteOptions {
        WriteOptions {
            paused: false,
            notes: "managed".into(),
            remaining_actions: None,
            action_count_base: 2,
        }
    }

    fn desired(cron: &str, edit: impl FnOnce(&mut crate::api::ScheduleSpec)) -> DesiredSchedule {
        let mut dj = DurableJob::test("r");
        dj.spec.schedule.cron = vec![cron.into()];
        edit(&mut dj.spec.schedule);
        dj.desired_schedule()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 10, 15, 0).unwrap()
    }

    #[test]
    fn a_new_schedule_shows_what_the_create_sent_and_its_next_ten_runs() {
        let d = desired("0 * * * *", |_| {});
        let o = as_created(&d, &options(), &created(), now()).expect("known without a describe");
        let hours: Vec<u32> = o.future_action_times.iter().map(chrono::Timelike::hour).collect();
        assert_eq!(hours, (11..=20).collect::<Vec<_>>());
        assert_eq!(o.owner.as_ref(), Some(&d.owner));
        assert_eq!(o.created_hash, Some(d.hash()));
        assert_eq!((o.paused, o.notes.as_str()), (false, "managed"));
        assert_eq!(o.conflict_token, created().conflict_token);
        assert_eq!((o.listing.as_str(), o.fingerprint.as_str()), ("L", ""));
        assert_eq!((o.action_count_base, o.total_actions()), (2, 2));
        assert!(o.running.is_empty() && o.recent_actions.is_empty());
    }

    #[test]
    fn jitter_a_run_limit_or_no_next_run_leave_the_schedule_to_a_describe() {
        let jittered = desired("0 * * * *", |s| s.jitter = Some("5m".into()));
        assert!(as_created(&jittered, &options(), &created(), now()).is_none());
        let plain = desired("0 * * * *", |_| {});
        let limited = WriteOptions {
            remaining_actions: Some(3),
            ..options()
        };
        assert!(as_created(&plain, &limited, &created(), now()).is_none());
        let ended = desired("0 * * * *", |s| s.end_at = Some("2026-12-04T10:30:00Z".into()));
        assert!(as_created(&ended, &options(), &created(), now()).is_none());
        let mut zero = plain.clone();
        zero.calendar.jitter = Some(Duration::ZERO);
        assert!(as_created(&zero, &options(), &created(), now()).is_some());
    }

    #[test]
    fn an_end_inside_the_ten_runs_shortens_the_list_and_is_shown() {
        let d = desired("0 * * * *", |s| s.end_at = Some("2026-12-04T13:00:00Z".into()));
        let o = as_created(&d, &options(), &created(), now()).expect("runs before the end");
        assert_eq!(
            o.future_action_times.len(),
            3,
            "11:00, 12:00 and 13:00 (endAt is inclusive)"
        );
        assert_eq!(o.end_at, d.calendar.end_at);
    }
}
