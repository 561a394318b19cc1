//! `kubectl durablejob retry NAME --run RUN`: what a retry of a multi-step run takes over from
//! the run it retries, decided from how that run ended (pure; the request step does the I/O).
//! Steps that succeeded there are not run again (their results are taken over), nor are the
//! items of a fan-out that succeeded; what failed or never ran runs.

use crate::api::RunResult;
use crate::run_contract::RunOutcome;
use crate::run_contract::{Reuse, ReusedStep};
use crate::temporal::retries::EndedRun;

/// Why a run cannot be retried: the message for the request's record.
pub(crate) type NotRetryable = String;

/// What a retry of workflow `of` (whose latest run is `ended`) takes over.
pub(crate) fn reuse(of: &str, ended: &EndedRun) -> Result<Reuse, NotRetryable> {
    match ended.result {
        RunResult::Failed | RunResult::PartiallyFailed => {}
        RunResult::Running => {
            return Err(format!(
                "run {of} is still running; retry it once it has ended, or cancel it first"
            ));
        }
        RunResult::Succeeded => return Err(format!("run {of} succeeded: there is nothing to retry")),
        other => {
            return Err(format!(
                "run {of} ended {other:?} and recorded no progress to take over; trigger a new run instead"
            ));
        }
    }
    let outcome: RunOutcome = ended
        .outcome
        .clone()
        .and_then(|o| serde_json::from_value(o).ok())
        .filter(|o: &RunOutcome| !o.steps.is_empty() || ended.result == RunResult::Failed)
        .ok_or_else(|| {
            format!(
                "run {of} recorded no steps it finished (a run of spec.jobTemplate, or one that failed before its first step ended); trigger a new run instead"
            )
        })?;
    let mut steps = std::collections::BTreeMap::new();
    for s in outcome.steps {
        let reused = match &s.items {
            Some(i) if !i.failed.is_empty() || !i.not_started.is_empty() => {
                let failed: Vec<u32> = i.failed.iter().map(|f| f.index).collect();
                let done = (0..i.total)
                    .filter(|n| !failed.contains(n) && !i.not_started.contains(n))
                    .collect();
                ReusedStep {
                    result: None,
                    items_done: Some(done),
                }
            }
            _ => ReusedStep {
                result: s.result,
                items_done: None,
            },
        };
        steps.insert(s.name, reused);
    }
    Ok(Reuse {
        of: of.to_string(),
        steps,
    })
}

/// What the retry takes over, in words: `steps list, report; 46 of 50 items of migrate`.
pub(crate) fn describe(r: &Reuse) -> String {
    let whole: Vec<&str> = r
        .steps
        .iter()
        .filter(|(_, s)| s.items_done.is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    let items: Vec<String> = r
        .steps
        .iter()
        .filter_map(|(n, s)| Some(format!("{} items of {n}", s.items_done.as_ref()?.len())))
        .collect();
    let mut parts = vec![];
    if !whole.is_empty() {
        parts.push(format!(
            "step{} {}",
            if whole.len() == 1 { "" } else { "s" },
            whole.join(", ")
        ));
    }
    parts.extend(items);
    if parts.is_empty() {
        "nothing (no step had finished)".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ended(result: RunResult, outcome: serde_json::Value) -> EndedRun {
        EndedRun {
            run_id: "r1".into(),
            result,
            outcome: Some(outcome),
        }
    }

    #[test]
    fn a_retry_takes_over_finished_steps_and_succeeded_items_and_runs_the_rest() {
        // list finished, migrate went on past 2 failed items, report never ran
        let partial = ended(
            RunResult::PartiallyFailed,
            json!({"jobName": "j", "attempts": 1, "steps": [
                {"name": "list", "jobName": "l", "attempts": 1, "result": ["a", "b", "c", "d", "e"]},
                {"name": "migrate", "jobName": "m", "attempts": 1, "items": {"total": 5, "succeeded": 3,
                    "failed": [{"index": 1, "item": "b", "message": "x"}, {"index": 3, "item": "d", "message": "x"}]}},
                {"name": "report", "jobName": "r", "attempts": 1}
            ]}),
        );
        let r = reuse("wf-1", &partial).unwrap();
        assert_eq!(r.of, "wf-1");
        assert_eq!(r.steps["list"].result, Some(json!(["a", "b", "c", "d", "e"])));
        assert_eq!(r.steps["list"].items_done, None, "the whole step");
        assert_eq!(r.steps["migrate"].items_done, Some(vec![0, 2, 4]));
        assert_eq!(describe(&r), "steps list, report; 3 items of migrate");

        // a failed fan-out stopped early: items never started run too
        let failed = ended(
            RunResult::Failed,
            json!({"jobName": "", "attempts": 0, "steps": [
                {"name": "migrate", "jobName": "m", "attempts": 1, "items": {"total": 6, "succeeded": 2,
                    "failed": [{"index": 2, "item": 2, "message": "x"}], "notStarted": [4, 5]}}
            ]}),
        );
        let r = reuse("wf-2", &failed).unwrap();
        assert_eq!(r.steps["migrate"].items_done, Some(vec![0, 1, 3]));

        // a failed step with nothing before it: nothing taken over, the run starts over
        let none = ended(
            RunResult::Failed,
            json!({"jobName": "", "attempts": 0, "steps": []}),
        );
        assert!(reuse("wf-3", &none).unwrap().steps.is_empty());
    }

    #[test]
    fn running_succeeded_cancelled_and_single_job_runs_are_not_retried_and_say_why() {
        let run = |result| EndedRun {
            run_id: "r".into(),
            result,
            outcome: None,
        };
        assert!(
            reuse("w", &run(RunResult::Running))
                .unwrap_err()
                .contains("still running")
        );
        assert!(
            reuse("w", &run(RunResult::Succeeded))
                .unwrap_err()
                .contains("nothing to retry")
        );
        assert!(
            reuse("w", &run(RunResult::Canceled))
                .unwrap_err()
                .contains("trigger a new run")
        );
        assert!(
            reuse("w", &run(RunResult::Failed))
                .unwrap_err()
                .contains("spec.jobTemplate")
        );
    }
}
