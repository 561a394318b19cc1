//! `spec.suspendAfterFailures`: consecutive failed runs, counted from what Temporal reports,
//! and the pause the operator puts on the schedule when there are enough of them. Pure.
//!
//! The pause is recorded in the schedule's notes (with its time), so it is recognised after
//! an operator restart or a lost status, and `spec.resumeAfter` can be measured from it.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::api::{FailureStreak, RecentRun, RunResult};
use crate::temporal::RecentAction;

/// One run as far as the streak is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    started: DateTime<Utc>,
    workflow_id: String,
    result: Option<RunResult>,
}

/// Runs named in the Event and the notes, newest first: at most this many.
pub(crate) const NAMED_RUNS: usize = 10;

/// The count after a resume: runs that started before `now` no longer count.
pub(crate) fn fresh(now: DateTime<Utc>) -> FailureStreak {
    FailureStreak {
        count: 0,
        runs: vec![],
        counted_until: Some(now),
    }
}

/// The streak carried forward over the runs Temporal reports now: each finished run that
/// started after the ones already counted is taken in order, oldest first: a failure (or
/// timeout) adds one, a success starts again from zero, a canceled or terminated run (by a
/// person or an overlap policy) neither counts nor ends the streak. A run still going, or
/// whose result is not known yet, stops the walk until it ends, so results are never skipped.
/// Results come from Temporal's recent actions, and from the runs read from its visibility
/// store where the description has none yet. The count persists in the status, so it is not
/// limited by how many runs Temporal reports at once.
pub(crate) fn advance(
    previous: Option<&FailureStreak>,
    actions: &[RecentAction],
    recorded: &[RecentRun],
) -> FailureStreak {
    let mut runs: BTreeMap<String, Seen> = BTreeMap::new();
    for r in recorded {
        runs.insert(
            r.run_id.clone(),
            Seen {
                started: r.start_time,
                workflow_id: r.workflow_id.clone(),
                result: Some(r.result),
            },
        );
    }
    for a in actions {
        let known = runs.get(&a.run.run_id).and_then(|s| s.result);
        let result = match (a.result, known) {
            (Some(RunResult::Running) | None, Some(k)) => Some(k),
            (r, _) => r,
        };
        runs.insert(
            a.run.run_id.clone(),
            Seen {
                started: a.actual_time,
                workflow_id: a.run.workflow_id.clone(),
                result,
            },
        );
    }
    let mut out = previous.cloned().unwrap_or_default();
    let mut seen: Vec<Seen> = runs
        .into_values()
        .filter(|s| out.counted_until.is_none_or(|t| s.started > t))
        .collect();
    seen.sort_by_key(|s| s.started);
    for s in seen {
        match s.result {
            Some(RunResult::Failed | RunResult::TimedOut) => {
                out.count += 1;
                out.runs.insert(0, s.workflow_id);
                out.runs.truncate(NAMED_RUNS);
            }
            Some(RunResult::Succeeded) => {
                out.count = 0;
                out.runs.clear();
            }
            // a partial failure neither breaks nor extends a streak of failed runs
            Some(RunResult::Canceled | RunResult::Terminated | RunResult::PartiallyFailed) => {}
            Some(RunResult::Running) | None => break,
        }
        out.counted_until = Some(s.started);
    }
    out
}

const PREFIX: &str = "Paused by durablejob at ";

/// The notes of a schedule paused for a failure streak.
pub(crate) fn pause_notes(resource: &str, at: DateTime<Utc>, streak: &FailureStreak) -> String {
    let more = streak.count - streak.runs.len() as i64;
    format!(
        "{PREFIX}{} after {} consecutive failed runs of DurableJob {resource}: {}{}",
        at.to_rfc3339_opts(SecondsFormat::Secs, true),
        streak.count,
        streak.runs.join(", "),
        if more > 0 {
            format!(" and {more} earlier")
        } else {
            String::new()
        }
    )
}

/// When the operator paused the schedule for a failure streak, read back from its notes.
pub(crate) fn paused_at(notes: &str) -> Option<DateTime<Utc>> {
    let rest = notes.strip_prefix(PREFIX)?;
    let (time, _) = rest.split_once(' ')?;
    DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporal::RunRef;
    use chrono::{TimeDelta, TimeZone};

    fn t(m: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap() + TimeDelta::minutes(m)
    }

    fn action(id: &str, minute: i64, result: Option<RunResult>) -> RecentAction {
        RecentAction {
            scheduled_time: t(minute),
            actual_time: t(minute),
            run: RunRef {
                workflow_id: format!("wf-{id}"),
                run_id: id.into(),
            },
            result,
        }
    }

    fn recorded(id: &str, minute: i64, result: RunResult) -> RecentRun {
        RecentRun {
            progress: None,
            workflow_id: format!("wf-{id}"),
            run_id: id.into(),
            scheduled_time: t(minute),
            start_time: t(minute),
            close_time: None,
            result,
            job_name: None,
            attempts: None,
            message: None,
            build_id: None,
        }
    }

    use RunResult::*;

    fn count(actions: &[RecentAction], recorded: &[RecentRun]) -> (i64, Vec<String>) {
        let s = advance(None, actions, recorded);
        (s.count, s.runs)
    }

    #[test]
    fn failures_since_the_last_success_count_newest_first() {
        let actions = [
            action("1", 1, Some(Failed)),
            action("2", 2, Some(Succeeded)),
            action("3", 3, Some(Failed)),
            action("4", 4, Some(TimedOut)),
        ];
        assert_eq!(count(&actions, &[]), (2, vec!["wf-4".into(), "wf-3".into()]));
        let all_good = [action("1", 1, Some(Failed)), action("2", 2, Some(Succeeded))];
        assert_eq!(count(&all_good, &[]).0, 0);
    }

    #[test]
    fn canceled_and_terminated_runs_neither_count_nor_end_the_streak() {
        let actions = [
            action("1", 1, Some(Failed)),
            action("2", 2, Some(Terminated)),
            action("3", 3, Some(Failed)),
            action("4", 4, Some(Canceled)),
        ];
        assert_eq!(count(&actions, &[]), (2, vec!["wf-3".into(), "wf-1".into()]));
    }

    #[test]
    fn a_run_still_going_holds_the_count_until_its_result_is_known() {
        let going = [
            action("1", 1, Some(Failed)),
            action("2", 2, Some(Running)),
            action("3", 3, Some(Failed)),
        ];
        let s = advance(None, &going, &[]);
        assert_eq!((s.count, s.counted_until), (1, Some(t(1))));
        let ended = [
            action("1", 1, Some(Failed)),
            action("2", 2, Some(Succeeded)),
            action("3", 3, Some(Failed)),
        ];
        let s = advance(Some(&s), &ended, &[]);
        assert_eq!(
            (s.count, s.counted_until),
            (1, Some(t(3))),
            "the success reset, then one"
        );
    }

    #[test]
    fn a_result_the_description_lacks_comes_from_the_recorded_runs() {
        let actions = [action("1", 1, Some(Failed)), action("2", 2, None)];
        let runs = [recorded("2", 2, Failed), recorded("0", 0, Failed)];
        assert_eq!(count(&actions, &runs).0, 3, "older recorded runs count too");
        let still = [action("2", 2, Some(Running))];
        assert_eq!(count(&still, &[recorded("2", 2, Running)]).0, 0);
    }

    #[test]
    fn the_count_carries_over_reconciles_beyond_the_runs_temporal_reports_at_once() {
        // Temporal's description lists the ten most recent runs; the count goes on past them
        let mut s = None;
        for batch in 0..3 {
            let actions: Vec<_> = (0..10)
                .map(|i| {
                    let n = batch * 10 + i;
                    action(&n.to_string(), n, Some(Failed))
                })
                .collect();
            s = Some(advance(s.as_ref(), &actions, &[]));
        }
        let s = s.unwrap();
        assert_eq!(s.count, 30);
        assert_eq!(s.runs.len(), NAMED_RUNS);
        assert_eq!(s.runs[0], "wf-29");
        // the same runs again add nothing
        assert_eq!(
            advance(Some(&s), &[action("29", 29, Some(Failed))], &[]).count,
            30
        );
    }

    #[test]
    fn runs_before_the_last_resume_do_not_count() {
        let actions = [
            action("1", 1, Some(Failed)),
            action("2", 2, Some(Failed)),
            action("3", 5, Some(Failed)),
        ];
        assert_eq!(advance(Some(&fresh(t(3))), &actions, &[]).count, 1);
    }

    #[test]
    fn the_pause_notes_carry_their_time_and_the_runs() {
        let streak = FailureStreak {
            count: 12,
            runs: vec!["wf-b".into(), "wf-a".into()],
            counted_until: None,
        };
        let notes = pause_notes("ns/job", t(7), &streak);
        assert!(
            notes.contains("12 consecutive failed runs of DurableJob ns/job: wf-b, wf-a and 10 earlier"),
            "{notes}"
        );
        assert_eq!(paused_at(&notes), Some(t(7)));
        assert_eq!(paused_at("paused due to workflow failure: x"), None);
    }
}
