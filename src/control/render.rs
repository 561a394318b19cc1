//! What `runs` and `status` print, from the DurableJob's status (which the operator fills from
//! Temporal); pure, so tests pin the clock.

use chrono::{DateTime, SecondsFormat, Utc};
use kube::ResourceExt;

use crate::api::{DurableJob, RecentRun, RequestRecord, RunningWorkflow};
use crate::get::{human, table};
use crate::reason::ConditionType;

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Characters a URL path segment may carry unencoded (RFC 3986 unreserved).
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Temporal Web UI page of a run.
pub fn run_link(ui: &str, namespace: &str, workflow_id: &str, run_id: &str) -> String {
    format!(
        "{}/namespaces/{}/workflows/{}/{}/history",
        ui.trim_end_matches('/'),
        encode(namespace),
        encode(workflow_id),
        encode(run_id)
    )
}

fn duration(run: &RecentRun, now: DateTime<Utc>) -> String {
    human(run.close_time.unwrap_or(now) - run.start_time)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// The `runs` table, newest first. `wide` adds the workflow and run ids and the full message.
pub fn runs(dj: &DurableJob, ui: &str, now: DateTime<Utc>, wide: bool) -> String {
    let status = dj.status.clone().unwrap_or_default();
    if status.recent_runs.is_empty() {
        return format!("No runs of DurableJob {} yet.\n", dj.name_any());
    }
    let namespace = status.temporal_namespace.clone().unwrap_or_default();
    let mut header = vec![
        "SCHEDULED",
        "STARTED",
        "DURATION",
        "RESULT",
        "ATTEMPTS",
        "JOB",
        "MESSAGE",
    ];
    if wide {
        header.extend(["WORKFLOW ID", "RUN ID"]);
    }
    header.push("LINK");
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for run in &status.recent_runs {
        let message = run.message.clone().unwrap_or_default();
        let mut row = vec![
            time(&run.scheduled_time),
            time(&run.start_time),
            duration(run, now),
            format!("{:?}", run.result),
            run.attempts.map_or("-".into(), |a| a.to_string()),
            run.job_name.clone().unwrap_or_else(|| "-".into()),
            if message.is_empty() {
                "-".into()
            } else if wide {
                message
            } else {
                shorten(&message, 48)
            },
        ];
        if wide {
            row.extend([run.workflow_id.clone(), run.run_id.clone()]);
        }
        row.push(run_link(ui, &namespace, &run.workflow_id, &run.run_id));
        rows.push(row);
    }
    table(rows)
}

fn condition_line(dj: &DurableJob, t: ConditionType) -> String {
    let status = dj.status.clone().unwrap_or_default();
    match status.conditions.iter().find(|c| c.type_ == t.as_str()) {
        None => "Unknown".into(),
        Some(c) if c.message.is_empty() => format!("{} ({})", c.status, c.reason),
        Some(c) => format!("{} ({}): {}", c.status, c.reason, c.message),
    }
}

fn request_line(r: &RequestRecord) -> String {
    format!(
        "{}  {} {}  {:?}: {}",
        time(&r.handled_time),
        r.verb.as_str(),
        r.id,
        r.result,
        r.message
    )
}

/// One run in flight: its workflow, attempt, Job, age and link.
fn running_line(w: &RunningWorkflow, ui: &str, namespace: &str, now: DateTime<Utc>) -> String {
    let mut details = vec![];
    match (&w.progress, &w.step) {
        (Some(p), _) => details.push(p.summary()),
        (None, Some(step)) => details.push(format!("step {step}")),
        (None, None) => {}
    }
    if let Some(a) = w.attempt {
        details.push(format!("attempt {a}"));
    }
    if let Some(j) = &w.job_name {
        details.push(format!("Job {j}"));
    }
    if let Some(t) = &w.start_time {
        details.push(format!("for {}", human(now - *t)));
    }
    let mut what = w.workflow_id.clone();
    if !details.is_empty() {
        what.push_str(&format!(" ({})", details.join(", ")));
    }
    format!("{what} {}", run_link(ui, namespace, &w.workflow_id, &w.run_id))
}

/// The user worker: the Deployment serving new runs and, when versioned, where the rollout
/// stands and each version.
fn worker_lines(w: &crate::api::WorkerStatus) -> Vec<String> {
    let mut out = vec![format!(
        "Deployment {} ({} ready)",
        w.deployment, w.ready_replicas
    )];
    if let Some(name) = &w.deployment_name {
        let current = w.current_build_id.as_deref().unwrap_or("<none>");
        let mut l = format!("Temporal worker deployment {name}: build {current} current");
        if let Some(t) = w
            .target_build_id
            .as_deref()
            .filter(|t| Some(*t) != w.current_build_id.as_deref())
        {
            l.push_str(&format!(", rolling out {t}"));
        }
        out.push(l);
    }
    if w.rollout_paused {
        out.push("rollout paused (kubectl durablejob rollout resume to go on)".into());
    }
    if let Some(b) = &w.rolled_back_build_id {
        out.push(format!(
            "build {b} rolled back (kubectl durablejob rollout resume to roll it out again)"
        ));
    }
    for v in &w.versions {
        out.push(format!(
            "  {:<24} {:<9} {} ready{}{}  {}",
            v.build_id,
            match v.ramp_percentage {
                Some(p) => format!("{:?} {p}%", v.state),
                None => format!("{:?}", v.state),
            },
            v.ready_replicas,
            if v.polled { ", polled" } else { "" },
            match v.open_runs {
                0 => String::new(),
                1 => ", 1 open run".to_string(),
                n => format!(", {n} open runs"),
            },
            v.deployment.as_deref().unwrap_or("<deleted>")
        ));
    }
    out
}

/// The `rollout status` text: the worker's lines and the RolloutProgressing condition.
pub fn rollout(dj: &DurableJob) -> String {
    let s = dj.status.clone().unwrap_or_default();
    let mut out: Vec<String> = s.worker.as_ref().map(worker_lines).unwrap_or_default();
    out.insert(
        0,
        format!(
            "DurableJob {}/{}",
            dj.namespace().unwrap_or_default(),
            dj.name_any()
        ),
    );
    if let Some(c) = s
        .conditions
        .iter()
        .find(|c| c.type_ == ConditionType::RolloutProgressing.as_str())
    {
        let what = if c.status == "True" { "in progress" } else { "done" };
        out.push(format!("Rollout {what} ({}): {}", c.reason, c.message));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// The `status` text: schedule, sync state, pause, next runs, running runs, missed runs, requests.
pub fn status(dj: &DurableJob, ui: &str, now: DateTime<Utc>) -> String {
    let s = dj.status.clone().unwrap_or_default();
    let mut out = vec![];
    let mut line = |k: &str, v: String| out.push(format!("{:<15}{v}", format!("{k}:")));
    line("Name", dj.name_any());
    line("Namespace", dj.namespace().unwrap_or_default());
    line(
        "Schedule",
        s.schedule.clone().unwrap_or_else(|| "<pending>".into()),
    );
    line(
        "Temporal",
        match (&s.schedule_id, &s.temporal_namespace) {
            (Some(id), Some(ns)) => format!("schedule {id} in namespace {ns}"),
            _ => "<no schedule yet>".into(),
        },
    );
    line("Ready", condition_line(dj, ConditionType::Ready));
    line("Synced", condition_line(dj, ConditionType::ScheduleSynced));
    line(
        "Paused",
        match (s.paused, &s.paused_reason) {
            (false, _) => "no".into(),
            (true, Some(why)) => format!("yes ({why})"),
            (true, None) => "yes".into(),
        },
    );
    if s.completed {
        line("Completed", "yes: the schedule starts no more runs".into());
    }
    line(
        "Next runs",
        if s.next_run_times.is_empty() {
            "<none>".into()
        } else {
            s.next_run_times
                .iter()
                .map(|t| format!("{} (in {})", time(t), human(*t - now)))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    line(
        "Last run",
        s.last_schedule_time.as_ref().map_or("<none>".into(), time),
    );
    line(
        "Last success",
        s.last_successful_time.as_ref().map_or("<none>".into(), time),
    );
    line(
        "Last failure",
        s.last_failure_time.as_ref().map_or("<none>".into(), time),
    );
    line("Runs started", s.action_count.to_string());
    let m = &s.missed_runs_by_cause;
    let catchup = m.catchup_window_passed.max(s.missed_runs);
    line(
        "Missed runs",
        format!(
            "{} (catch-up window passed {catchup}, overlap skipped {}, buffer full {})",
            catchup + m.overlap_skipped + m.buffer_full,
            m.overlap_skipped,
            m.buffer_full
        ),
    );
    if s.running_workflows.is_empty() {
        line("Running", "<none>".into());
    }
    let namespace = s.temporal_namespace.clone().unwrap_or_default();
    for (i, w) in s.running_workflows.iter().enumerate() {
        line(
            if i == 0 { "Running" } else { "" },
            running_line(w, ui, &namespace, now),
        );
    }
    if let Some(w) = &s.worker {
        for (i, l) in worker_lines(w).into_iter().enumerate() {
            line(if i == 0 { "Worker" } else { "" }, l);
        }
    }
    if let Some(m) = &s.message {
        line("Message", m.clone());
    }
    for (i, r) in s.requests.iter().take(5).enumerate() {
        line(if i == 0 { "Requests" } else { "" }, request_line(r));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RequestResult, RequestVerb, RunResult};
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    fn dj() -> DurableJob {
        let mut dj = DurableJob::test("report");
        let s = dj.status.get_or_insert_with(Default::default);
        s.schedule_id = Some("durablejob:default/report".into());
        s.temporal_namespace = Some("default".into());
        s.schedule = Some("0 9 * * 1-5 (UTC)".into());
        s.recent_runs = vec![
            RecentRun { progress: None,
                workflow_id: "durablejob:default/report-2026-12-01T09:00:00Z".into(),
                run_id: "r2".into(),
                scheduled_time: t(9, 0),
                start_time: t(9, 0),
                close_time: None,
                result: RunResult::Running,
                job_name: Some("report-1a2b3c4d-1".into()),
                attempts: Some(1),
                message: None,
                build_id: None,
            },
            RecentRun { progress: None,
                workflow_id: "durablejob:default/report-2026-11-30T09:00:00Z".into(),
                run_id: "r1".into(),
                scheduled_time: t(9, 0) - chrono::TimeDelta::days(1),
                start_time: t(9, 0) - chrono::TimeDelta::days(1),
                close_time: Some(t(9, 3) - chrono::TimeDelta::days(1)),
                result: RunResult::Failed,
                job_name: Some("report-9f8e7d6c-2".into()),
                attempts: Some(2),
                message: Some("Job report-9f8e7d6c-2 failed: BackoffLimitExceeded: Job has reached the specified backoff limit".into()),
                build_id: None,
            },
        ];
        s.running_workflows = vec![RunningWorkflow {
            progress: None,
            workflow_id: "durablejob:default/report-2026-12-01T09:00:00Z".into(),
            run_id: "r2".into(),
            start_time: Some(t(9, 0)),
            attempt: Some(1),
            job_name: Some("report-1a2b3c4d-1".into()),
            step: Some("load (2/3)".into()),
        }];
        s.requests = vec![RequestRecord {
            id: "20261201-090000-ab12".into(),
            verb: RequestVerb::Trigger,
            handled_time: t(9, 0),
            result: RequestResult::Succeeded,
            message: "Triggered a run".into(),
            workflow_ids: vec![],
            run_ids: vec![],
        }];
        dj
    }

    #[test]
    fn a_link_opens_the_run_in_the_temporal_ui() {
        assert_eq!(
            run_link(
                "http://localhost:8233/",
                "team a",
                "durablejob:ns/x-2026-12-01T09:00:00Z",
                "r1"
            ),
            "http://localhost:8233/namespaces/team%20a/workflows/durablejob%3Ans%2Fx-2026-12-01T09%3A00%3A00Z/r1/history"
        );
    }

    #[test]
    fn runs_lists_every_run_newest_first_with_result_attempts_job_and_link() {
        let text = runs(&dj(), "http://ui", t(9, 5), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("SCHEDULED") && lines[0].ends_with("LINK"),
            "{text}"
        );
        assert!(
            lines[1].contains("Running")
                && lines[1].contains("5m0s")
                && lines[1].contains("report-1a2b3c4d-1"),
            "{text}"
        );
        assert!(
            lines[2].contains("Failed") && lines[2].contains(" 2 ") && lines[2].contains("3m0s"),
            "{text}"
        );
        assert!(lines[2].contains("…"), "long messages are shortened: {text}");
        assert!(
            lines[2].contains("http://ui/namespaces/default/workflows/"),
            "{text}"
        );
        let wide = runs(&dj(), "http://ui", t(9, 5), true);
        assert!(
            wide.contains("RUN ID") && wide.contains("reached the specified backoff limit"),
            "{wide}"
        );
        let mut none = DurableJob::test("fresh");
        none.status = None;
        assert_eq!(
            runs(&none, "u", t(9, 5), false),
            "No runs of DurableJob fresh yet.\n"
        );
    }

    #[test]
    fn status_says_schedule_sync_pause_next_running_missed_and_requests() {
        let text = status(&dj(), "http://ui", t(9, 5));
        for expected in [
            "Schedule:      0 9 * * 1-5 (UTC)",
            "Temporal:      schedule durablejob:default/report in namespace default",
            "Paused:        no",
            "Missed runs:   0",
            "Running:       durablejob:default/report-2026-12-01T09:00:00Z (step load (2/3), attempt 1, Job report-1a2b3c4d-1, for 5m0s)",
            "Requests:      2026-12-01T09:00:00Z  trigger 20261201-090000-ab12  Succeeded: Triggered a run",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("Worker:"), "no worker, no worker lines");
    }

    #[test]
    fn status_shows_a_multi_step_runs_progress_and_its_fan_outs_items() {
        use crate::api::{ItemProgress, RunProgress};
        let mut dj = dj();
        let running = &mut dj.status.as_mut().unwrap().running_workflows[0];
        running.progress = Some(RunProgress {
            steps_done: 1,
            steps_total: 3,
            running: vec!["migrate".into()],
            items: Some(ItemProgress {
                step: "migrate".into(),
                total: 50,
                succeeded: 20,
                failed: 2,
                running: 5,
                pending: 23,
            }),
        });
        let text = status(&dj, "http://ui", t(9, 5));
        let expected = "(1/3 steps (migrate running); 50 items of migrate: 20 succeeded, 2 failed, 5 running, 23 pending, attempt 1";
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }

    #[test]
    fn status_shows_a_rollout_and_every_version() {
        use crate::api::{WorkerStatus, WorkerVersionState, WorkerVersionStatus};
        let mut dj = dj();
        let version = |b: &str, state, d: Option<&str>| WorkerVersionStatus {
            build_id: b.into(),
            deployment: d.map(str::to_string),
            state,
            ready_replicas: 2,
            polled: true,
            ramp_percentage: None,
            open_runs: 0,
        };
        dj.status.as_mut().unwrap().worker = Some(WorkerStatus {
            deployment: "report-1-aaaa".into(),
            ready_replicas: 2,
            deployment_name: Some("default/report".into()),
            current_build_id: Some("1-aaaa".into()),
            target_build_id: Some("2-bbbb".into()),
            versions: vec![
                version("2-bbbb", WorkerVersionState::Inactive, Some("report-2-bbbb")),
                version("1-aaaa", WorkerVersionState::Current, Some("report-1-aaaa")),
                WorkerVersionStatus {
                    open_runs: 2,
                    ..version("0-dddd", WorkerVersionState::Draining, Some("report-0-dddd"))
                },
                version("0-cccc", WorkerVersionState::Drained, None),
            ],
            rollout_paused: true,
            rolled_back_build_id: None,
            rolled_back_time: None,
        });
        let text = status(&dj, "http://ui", t(9, 5));
        for expected in [
            "Worker:        Deployment report-1-aaaa (2 ready)",
            "Temporal worker deployment default/report: build 1-aaaa current, rolling out 2-bbbb",
            "2-bbbb                   Inactive  2 ready, polled  report-2-bbbb",
            "0-cccc                   Drained   2 ready, polled  <deleted>",
            "0-dddd                   Draining  2 ready, polled, 2 open runs  report-0-dddd",
            "rollout paused (kubectl durablejob rollout resume to go on)",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
