//! Issue 14: runs that fail in a row pause the schedule (`suspendAfterFailures`) and
//! `resumeAfter` resumes it; runs Temporal skips are reported one Event and one count each.
//! The built-in runner runs the Jobs; the simulated kubelet ends their pods as annotated.

use std::{sync::Arc, time::Duration};

use anyhow::ensure;
use durablejob::api::RunResult;
use serde_json::json;
use testsupport::job_template;

use crate::Shared;
use crate::env::{Env, manifest};
use crate::operator::Runner;

scenarios!(
    two_failed_runs_in_a_row_pause_the_schedule_and_resume_after_resumes_it,
    a_run_skipped_by_overlap_policy_skip_is_one_event_and_one_count,
);

async fn two_failed_runs_in_a_row_pause_the_schedule_and_resume_after_resumes_it(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "streak", &[]).await?;
    let runner = Runner::start(&env.dir, &env.runner_kubeconfig, &env.temporal, &env.namespace)?;
    env.create(manifest(
        "flaky",
        json!({
            "schedule": {"intervals": [{"every": "15s"}]},
            "suspendAfterFailures": 2,
            "resumeAfter": "20s",
            "jobTemplate": job_template(json!({"test.durablejob.dev/outcomes": "fail", "test.durablejob.dev/duration": "100ms"})),
        }),
    ))
    .await?;
    env.wait_ready("flaky").await?;
    let paused = env
        .wait_status(
            "flaky",
            "paused after two failed runs",
            Duration::from_secs(60),
            |s| s.paused_reason.as_deref() == Some("ConsecutiveFailures"),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    ensure!(paused.paused, "{paused:?}");
    ensure!(
        paused.consecutive_failures == Some(2),
        "{:?}",
        paused.consecutive_failures
    );
    ensure!(
        paused.action_count == 2,
        "exactly two runs before the pause: {}",
        paused.action_count
    );
    let d = env.describe("flaky")?.unwrap();
    ensure!(
        d["schedule"]["state"]["paused"] == true,
        "paused in Temporal: {}",
        d["schedule"]["state"]
    );
    let event = env.wait_event("flaky", "ConsecutiveFailures").await?;
    let failed: Vec<&str> = paused
        .recent_runs
        .iter()
        .filter(|r| r.result == RunResult::Failed)
        .map(|r| r.workflow_id.as_str())
        .collect();
    ensure!(failed.len() == 2, "{:?}", paused.recent_runs);
    for wf in &failed {
        ensure!(event.contains(wf), "the Event names {wf}: {event}");
    }
    ensure!(
        paused
            .message
            .as_deref()
            .is_some_and(|m| m.contains("resumes by itself")),
        "{:?}",
        paused.message
    );
    // while paused no run starts; resumeAfter ends the pause 20s after it began
    let resumed = env
        .wait_status("flaky", "resumed by resumeAfter", Duration::from_secs(40), |s| {
            !s.paused
        })
        .await?;
    ensure!(
        resumed.action_count == 2,
        "no run while paused: {}",
        resumed.action_count
    );
    env.wait_event("flaky", "ScheduleResumed").await?;
    // it runs again, and the count starts afresh: one more failure does not pause it
    let again = env
        .wait_status("flaky", "a run after the resume", Duration::from_secs(30), |s| {
            s.action_count >= 3
                && s.recent_runs
                    .first()
                    .is_some_and(|r| r.result == RunResult::Failed)
        })
        .await?;
    ensure!(!again.paused || again.action_count >= 4, "{again:?}");
    ensure!(
        again.paused || again.consecutive_failures == Some(1),
        "the count restarted at the resume: {:?}",
        again.consecutive_failures
    );
    Ok(())
}

async fn a_run_skipped_by_overlap_policy_skip_is_one_event_and_one_count(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "skipped", &[]).await?;
    let runner = Runner::start(&env.dir, &env.runner_kubeconfig, &env.temporal, &env.namespace)?;
    // a run lasts 14s and one is due every 10s: the second slot finds the first still running
    env.create(manifest(
        "slow",
        json!({
            "schedule": {"intervals": [{"every": "10s"}]},
            "overlapPolicy": "Skip",
            "jobTemplate": job_template(json!({"test.durablejob.dev/outcomes": "succeed", "test.durablejob.dev/duration": "14s"})),
        }),
    ))
    .await?;
    env.wait_ready("slow").await?;
    let s = env
        .wait_status("slow", "a skipped run counted", Duration::from_secs(45), |s| {
            s.missed_runs_by_cause.overlap_skipped >= 1
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n--- runner ---\n{}", runner.log_tail(20)))?;
    // stop further runs so the counts stay put, then compare Events with the count
    env.edit("slow", json!({"suspend": true})).await?;
    let s = env
        .wait_status("slow", "suspended", Duration::from_secs(15), |x| x.paused)
        .await
        .unwrap_or(s);
    let count = s.missed_runs_by_cause.overlap_skipped;
    let d = env.describe("slow")?.unwrap();
    let temporal_count = d["info"]["overlapSkipped"]
        .as_str()
        .and_then(|v| v.parse::<i64>().ok())
        .or_else(|| d["info"]["overlapSkipped"].as_i64())
        .unwrap_or(0);
    ensure!(
        count == temporal_count,
        "status {count} vs Temporal {temporal_count}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events: Vec<String> = env
        .events("slow")
        .await
        .into_iter()
        .filter(|e| e.starts_with("OverlapSkipped:"))
        .collect();
    ensure!(
        events.len() as i64 == count,
        "one Event per skipped run ({count}): {events:?}"
    );
    ensure!(
        events
            .iter()
            .all(|e| e.contains("overlapPolicy Skip") && e.contains('T')),
        "each names its slot and cause: {events:?}"
    );
    ensure!(s.missed_runs == 0, "no catch-up window misses: {}", s.missed_runs);
    Ok(())
}
