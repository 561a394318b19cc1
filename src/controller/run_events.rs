//! Events for runs that ended (`--run-events`): a Warning `RunFailed` for each failed or
//! timed-out run, and with `all` a Normal `RunSucceeded` for each that succeeded, so
//! `kubectl describe dj` and event exporters show failures without access to Temporal. Pure:
//! a run is reported when this reconcile's read of the runs shows it ended and the previous
//! status did not; nothing is reported from the first read of a DurableJob's runs (an adopted
//! schedule's history is not news).

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::api::{DurableJobStatus, RunResult};
use crate::controller::io::Notice;
use crate::controller::status::RECENT_RUNS;
use crate::reason::Reason;
use crate::settings::RunEvents;
use crate::temporal::RunRecord;

/// The Events for the runs in `runs` (newest first) that ended since `previous` was written.
pub(crate) fn notices(previous: &DurableJobStatus, runs: &[RunRecord], which: RunEvents) -> Vec<Notice> {
    let first_read = previous.sync.as_ref().is_none_or(|s| s.runs_marker.is_none());
    if which == RunEvents::None || first_read {
        return vec![];
    }
    let known: HashMap<&str, RunResult> = previous
        .recent_runs
        .iter()
        .map(|r| (r.run_id.as_str(), r.result))
        .collect();
    // with a full list before, a run it does not know that started before its oldest fell
    // out of the window: it is not new
    let horizon = (previous.recent_runs.len() >= RECENT_RUNS)
        .then(|| previous.recent_runs.iter().map(|r| r.start_time).min())
        .flatten();
    runs.iter()
        .take(RECENT_RUNS)
        .filter(|run| match known.get(run.run.run_id.as_str()) {
            Some(before) => *before != run.result,
            None => horizon.is_none_or(|h| run.start_time >= h),
        })
        .filter_map(|run| notice(run, which))
        .collect()
}

fn notice(run: &RunRecord, which: RunEvents) -> Option<Notice> {
    let slot = run
        .scheduled_time
        .map(rfc3339)
        .map(|t| format!(" for {t}"))
        .unwrap_or_default();
    let attempts = run
        .attempts
        .map(|n| format!(" after {n} attempt{}", if n == 1 { "" } else { "s" }))
        .unwrap_or_default();
    let job = run
        .job_name
        .as_ref()
        .map(|j| format!(" (Job {j})"))
        .unwrap_or_default();
    let id = &run.run.workflow_id;
    match run.result {
        RunResult::Failed | RunResult::TimedOut => {
            let how = if run.result == RunResult::TimedOut {
                "timed out"
            } else {
                "failed"
            };
            let why = run.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
            Some(Notice::warning(
                Reason::RunFailed,
                "Run",
                format!("Run {id}{slot} {how}{attempts}{job}{why}"),
            ))
        }
        RunResult::PartiallyFailed => {
            let why = run.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default();
            Some(Notice::warning(
                Reason::RunPartiallyFailed,
                "Run",
                format!("Run {id}{slot} completed with failed items{why}"),
            ))
        }
        RunResult::Succeeded if which == RunEvents::All => Some(Notice::normal(
            Reason::RunSucceeded,
            "Run",
            format!("Run {id}{slot} succeeded{attempts}{job}"),
        )),
        _ => None,
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RecentRun, SyncRecord};
    use crate::temporal::RunRef;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, h, 0, 0).unwrap()
    }

    fn record(id: &str, hour: u32, result: RunResult) -> RunRecord {
        RunRecord {
            progress: None,
            run: RunRef {
                workflow_id: format!("wf-{id}"),
                run_id: id.into(),
            },
            scheduled_time: Some(t(hour)),
            start_time: t(hour),
            close_time: (result != RunResult::Running).then(|| t(hour)),
            result,
            job_name: Some(format!("job-{id}")),
            attempts: Some(3),
            message: Some("exit code 1".into()),
            build_id: None,
            step: None,
        }
    }

    fn previous(runs: &[(&str, u32, RunResult)]) -> DurableJobStatus {
        DurableJobStatus {
            sync: Some(SyncRecord {
                runs_marker: Some("read".into()),
                ..Default::default()
            }),
            recent_runs: runs
                .iter()
                .map(|(id, hour, result)| RecentRun {
                    progress: None,
                    workflow_id: format!("wf-{id}"),
                    run_id: id.to_string(),
                    scheduled_time: t(*hour),
                    start_time: t(*hour),
                    close_time: None,
                    result: *result,
                    job_name: None,
                    attempts: None,
                    message: None,
                    build_id: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn reasons(n: &[Notice]) -> Vec<Reason> {
        n.iter().map(|n| n.reason).collect()
    }

    #[test]
    fn a_run_that_ended_since_the_last_status_is_reported_once() {
        let before = previous(&[("a", 9, RunResult::Running), ("old", 8, RunResult::Failed)]);
        let now = [
            record("b", 10, RunResult::Succeeded),
            record("a", 9, RunResult::Failed),
            record("old", 8, RunResult::Failed),
        ];
        let n = notices(&before, &now, RunEvents::Failures);
        assert_eq!(
            reasons(&n),
            vec![Reason::RunFailed],
            "a ended failed; old was known"
        );
        assert_eq!(
            n[0].note,
            "Run wf-a for 2026-12-04T09:00:00Z failed after 3 attempts (Job job-a): exit code 1"
        );
        assert_eq!(n[0].type_, kube::runtime::events::EventType::Warning);
        let all = notices(&before, &now, RunEvents::All);
        assert_eq!(reasons(&all), vec![Reason::RunSucceeded, Reason::RunFailed]);
        assert!(notices(&before, &now, RunEvents::None).is_empty());
    }

    #[test]
    fn nothing_is_reported_from_the_first_read_or_twice() {
        let now = [record("a", 9, RunResult::Failed)];
        assert!(
            notices(&DurableJobStatus::default(), &now, RunEvents::All).is_empty(),
            "the first read of an adopted schedule's runs is not news"
        );
        let after = previous(&[("a", 9, RunResult::Failed)]);
        assert!(notices(&after, &now, RunEvents::All).is_empty());
    }

    #[test]
    fn a_timeout_is_a_failure_and_a_cancel_is_not_reported() {
        let before = previous(&[]);
        let now = [
            record("t", 9, RunResult::TimedOut),
            record("c", 8, RunResult::Canceled),
            record("r", 7, RunResult::Running),
        ];
        let n = notices(&before, &now, RunEvents::All);
        assert_eq!(reasons(&n), vec![Reason::RunFailed]);
        assert!(n[0].note.contains("timed out"), "{}", n[0].note);
    }

    #[test]
    fn with_a_full_list_before_an_older_unknown_run_is_not_news() {
        let full: Vec<(String, u32)> = (0..RECENT_RUNS as u32)
            .map(|i| (format!("k{i}"), 10 + i))
            .collect();
        let refs: Vec<(&str, u32, RunResult)> = full
            .iter()
            .map(|(id, h)| (id.as_str(), *h, RunResult::Succeeded))
            .collect();
        let before = previous(&refs);
        let now = [
            record("new", 22, RunResult::Failed),
            record("ancient", 3, RunResult::Failed),
        ];
        let n = notices(&before, &now, RunEvents::Failures);
        assert_eq!(n.len(), 1);
        assert!(n[0].note.contains("wf-new"), "{}", n[0].note);
    }
}
