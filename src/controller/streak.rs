//! `spec.suspendAfterFailures`: consecutive failed runs, counted from what Temporal reports,
//! and the pause the operator puts on the schedule when there are enough of them. Pure.
//!
//! The pause is recorded in the schedule's notes (with its time), so it is recognised after
//! an operator restart or a lost status, and `spec.resumeAfter` can be measured from it.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::api::{RecentRun, RunResult};
use crate::temporal::RecentAction;

/// What the spec asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreakPolicy {
    /// Failed runs in a row that pause the schedule.
    pub after: u32,
    /// Resume by itself this long after the pause.
    pub resume_after: Option<std::time::Duration>,
}

/// One run as far as the streak is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    started: DateTime<Utc>,
    workflow_id: String,
    result: Option<RunResult>,
}

/// The failed runs in a row, newest first, among the runs that started after `since` (the last
/// resume): a success ends the streak; runs still going, canceled or terminated (by a person or
/// an overlap policy) neither count nor end it. Results come from Temporal's recent actions,
/// and from the runs last read from its visibility store where the description has none yet.
pub(crate) fn failed_in_a_row(
    actions: &[RecentAction],
    recorded: &[RecentRun],
    since: Option<DateTime<Utc>>,
) -> Vec<String> {
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
    let mut seen: Vec<Seen> = runs
        .into_values()
        .filter(|s| since.is_none_or(|t| s.started > t))
        .collect();
    seen.sort_by_key(|s| std::cmp::Reverse(s.started));
    let mut out = Vec::new();
    for s in seen {
        match s.result {
            Some(RunResult::Failed | RunResult::TimedOut) => out.push(s.workflow_id),
            Some(RunResult::Succeeded) => break,
            _ => {}
        }
    }
    out
}

const PREFIX: &str = "Paused by durablejob at ";

/// The notes of a schedule paused for a failure streak.
pub(crate) fn pause_notes(resource: &str, at: DateTime<Utc>, runs: &[String]) -> String {
    format!(
        "{PREFIX}{} after {} consecutive failed runs of DurableJob {resource}: {}",
        at.to_rfc3339_opts(SecondsFormat::Secs, true),
        runs.len(),
        runs.join(", ")
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
            workflow_id: format!("wf-{id}"),
            run_id: id.into(),
            scheduled_time: t(minute),
            start_time: t(minute),
            close_time: None,
            result,
            job_name: None,
            attempts: None,
            message: None,
        }
    }

    use RunResult::*;

    #[test]
    fn failures_since_the_last_success_count_newest_first() {
        let actions = [
            action("1", 1, Some(Failed)),
            action("2", 2, Some(Succeeded)),
            action("3", 3, Some(Failed)),
            action("4", 4, Some(TimedOut)),
        ];
        assert_eq!(failed_in_a_row(&actions, &[], None), ["wf-4", "wf-3"]);
        let all_good = [action("1", 1, Some(Failed)), action("2", 2, Some(Succeeded))];
        assert!(failed_in_a_row(&all_good, &[], None).is_empty());
    }

    #[test]
    fn running_canceled_and_terminated_runs_neither_count_nor_end_the_streak() {
        let actions = [
            action("1", 1, Some(Failed)),
            action("2", 2, Some(Terminated)),
            action("3", 3, Some(Failed)),
            action("4", 4, Some(Canceled)),
            action("5", 5, Some(Running)),
        ];
        assert_eq!(failed_in_a_row(&actions, &[], None), ["wf-3", "wf-1"]);
    }

    #[test]
    fn a_result_the_description_lacks_comes_from_the_recorded_runs() {
        let actions = [action("1", 1, Some(Failed)), action("2", 2, None)];
        let runs = [recorded("2", 2, Failed), recorded("0", 0, Failed)];
        assert_eq!(
            failed_in_a_row(&actions, &runs, None),
            ["wf-2", "wf-1", "wf-0"],
            "older recorded runs count too"
        );
        let still = [action("2", 2, Some(Running))];
        assert_eq!(
            failed_in_a_row(&still, &[recorded("2", 2, Running)], None),
            Vec::<String>::new()
        );
    }

    #[test]
    fn runs_before_the_last_resume_do_not_count() {
        let actions = [
            action("1", 1, Some(Failed)),
            action("2", 2, Some(Failed)),
            action("3", 5, Some(Failed)),
        ];
        assert_eq!(failed_in_a_row(&actions, &[], Some(t(3))), ["wf-3"]);
    }

    #[test]
    fn the_pause_notes_carry_their_time_and_the_runs() {
        let notes = pause_notes("ns/job", t(7), &["wf-b".into(), "wf-a".into()]);
        assert!(
            notes.contains("2 consecutive failed runs of DurableJob ns/job: wf-b, wf-a"),
            "{notes}"
        );
        assert_eq!(paused_at(&notes), Some(t(7)));
        assert_eq!(paused_at("paused due to workflow failure: x"), None);
    }
}
