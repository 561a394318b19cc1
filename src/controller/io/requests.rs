//! The run-control step of a reconcile: the request annotations (`durablejob.dev/trigger`,
//! `backfill`, `cancel`, `resume`, `retry`) not yet in `status.requests` are acted on, once each, through
//! the [`Schedules`] trait, and each gives one record and one Event. A request that cannot be
//! acted on yet (Temporal unreachable) stays pending and is tried on the next reconcile.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::Notice;
use crate::api::{
    DurableJobStatus, OverlapPolicy, Request, RequestParams, RequestRecord, RequestResult, RequestVerb,
    handled,
};
use crate::controller::pause::{PausedBy, paused_by};
use crate::desired::schedule::DesiredSchedule;
use crate::reason::Reason;
use crate::temporal::{ObservedSchedule, RunRef, Schedules, TemporalError};
use crate::util::digest::hex_sha256;

/// The requests on the resource that are not handled yet, in a fixed order, each parsed or
/// refused. `legacy_resume` is the resume value an older operator recorded in `sync`.
pub(crate) fn pending(
    annotations: &BTreeMap<String, String>,
    previous: &DurableJobStatus,
) -> Vec<Result<Request, crate::api::BadRequest>> {
    let legacy_resume = previous.sync.as_ref().and_then(|s| s.handled_resume.as_deref());
    RequestVerb::ALL
        .iter()
        .filter_map(|verb| {
            let value = annotations.get(verb.annotation())?;
            let parsed = Request::parse(*verb, value);
            let id = match &parsed {
                Ok(r) => &r.id,
                Err(b) => &b.id,
            };
            let done = handled(&previous.requests, *verb, id)
                || (*verb == RequestVerb::Resume && legacy_resume == Some(value.as_str()));
            (!done).then_some(parsed)
        })
        .collect()
}

/// What the step did.
#[derive(Debug, Default)]
pub(crate) struct Handled {
    pub records: Vec<RequestRecord>,
    pub notices: Vec<Notice>,
    /// Requests left for the next reconcile (Temporal could not be reached).
    pub waiting: usize,
    /// A run was started or stopped: look again soon.
    pub acted: bool,
}

/// Where the schedule stands, as the request step needs it.
pub(crate) struct Target<'a> {
    pub desired: &'a DesiredSchedule,
    /// Temporal's description; `None` when the schedule finished and is gone.
    pub observed: Option<&'a ObservedSchedule>,
    /// The sync step resumed the schedule in this reconcile.
    pub resumed: bool,
}

/// The workflow id Temporal gives the run a trigger starts for `slot`.
pub(crate) fn triggered_workflow_id(desired: &DesiredSchedule, slot: DateTime<Utc>) -> String {
    format!(
        "{}-{}",
        desired.action.workflow_id,
        slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// An idempotency key per request, so a retried call is one request to Temporal.
fn request_id(desired: &DesiredSchedule, r: &Request, extra: &str) -> String {
    hex_sha256(format!("{}|{}|{}|{extra}", desired.location.id, r.verb.as_str(), r.id).as_bytes())[..32]
        .to_string()
}

enum Outcome {
    Done(RequestResult, String, Vec<String>),
    /// The operator started a run itself (a retry): recorded with its run id, which is what
    /// lets the built-in runner act for it.
    Started {
        message: String,
        workflow_id: String,
        run_id: String,
    },
    /// Try again later.
    Wait(TemporalError),
}

fn failed_or_wait(e: TemporalError, what: &str) -> Outcome {
    match e {
        TemporalError::Unavailable(_) | TemporalError::Conflict(_) | TemporalError::Other(_) => {
            Outcome::Wait(e)
        }
        _ => Outcome::Done(RequestResult::Failed, format!("{what}: {e}"), vec![]),
    }
}

/// Acts on each pending request once.
pub(crate) async fn handle<S: Schedules>(
    schedules: &S,
    target: &Target<'_>,
    pending: Vec<Result<Request, crate::api::BadRequest>>,
    now: DateTime<Utc>,
) -> Handled {
    let mut out = Handled::default();
    for p in pending {
        let (verb, id, outcome) = match p {
            Err(bad) => (
                bad.verb,
                bad.id,
                Outcome::Done(RequestResult::Rejected, bad.message, vec![]),
            ),
            Ok(r) => {
                let outcome = act(schedules, target, &r, now).await;
                (r.verb, r.id, outcome)
            }
        };
        let outcome = match outcome {
            Outcome::Started {
                message,
                workflow_id,
                run_id,
            } => {
                out.acted = true;
                out.notices
                    .push(notice(verb, RequestResult::Succeeded, &id, &message));
                out.records.push(RequestRecord {
                    id,
                    verb,
                    handled_time: now,
                    result: RequestResult::Succeeded,
                    message,
                    workflow_ids: vec![workflow_id],
                    run_ids: vec![run_id],
                });
                continue;
            }
            other => other,
        };
        match outcome {
            Outcome::Started { .. } => unreachable!("recorded above"),
            Outcome::Wait(e) => {
                tracing::info!(verb = verb.as_str(), id = %id, error = %e, "request waits for Temporal");
                out.waiting += 1;
            }
            Outcome::Done(result, message, workflow_ids) => {
                if result == RequestResult::Succeeded && verb != RequestVerb::Resume {
                    out.acted = true;
                }
                out.notices.push(notice(verb, result, &id, &message));
                out.records.push(RequestRecord {
                    id,
                    verb,
                    handled_time: now,
                    result,
                    message,
                    workflow_ids,
                    run_ids: vec![],
                });
            }
        }
    }
    out
}

/// The Event of a handled request.
pub(crate) fn notice(verb: RequestVerb, result: RequestResult, id: &str, message: &str) -> Notice {
    let note = format!("{} request {id}: {message}", verb.as_str());
    match (result, verb) {
        (RequestResult::Rejected, _) => Notice::warning(Reason::RequestRejected, "Request", note),
        (RequestResult::Failed, _) => Notice::warning(Reason::RequestFailed, "Request", note),
        (RequestResult::Succeeded, RequestVerb::Trigger) => {
            Notice::normal(Reason::RunTriggered, "Trigger", note)
        }
        (RequestResult::Succeeded, RequestVerb::Backfill) => {
            Notice::normal(Reason::BackfillStarted, "Backfill", note)
        }
        (RequestResult::Succeeded, RequestVerb::Cancel) if message.starts_with("Terminated") => {
            Notice::normal(Reason::RunTerminated, "Cancel", note)
        }
        (RequestResult::Succeeded, RequestVerb::Cancel) => {
            Notice::normal(Reason::RunCanceled, "Cancel", note)
        }
        (RequestResult::Succeeded, RequestVerb::Resume) => {
            Notice::normal(Reason::ScheduleResumed, "Resume", note)
        }
        (RequestResult::Succeeded, RequestVerb::Promote) => {
            Notice::normal(Reason::VersionCurrent, "Rollout", note)
        }
        (RequestResult::Succeeded, RequestVerb::Rollback) => {
            Notice::normal(Reason::VersionRolledBack, "Rollout", note)
        }
        (RequestResult::Succeeded, RequestVerb::PauseRollout) => {
            Notice::normal(Reason::RolloutPaused, "Rollout", note)
        }
        (RequestResult::Succeeded, RequestVerb::ResumeRollout) => {
            Notice::normal(Reason::RolloutResumed, "Rollout", note)
        }
        (RequestResult::Succeeded, RequestVerb::Retry) => Notice::normal(Reason::RetryStarted, "Retry", note),
    }
}

/// Carries out one request, by its verb.
async fn act<S: Schedules>(schedules: &S, t: &Target<'_>, r: &Request, now: DateTime<Utc>) -> Outcome {
    match &r.params {
        RequestParams::Trigger { overlap } => trigger(schedules, t, r, *overlap, now).await,
        RequestParams::Backfill {
            from,
            to,
            overlap,
            max_slots,
        } => {
            let limit = max_slots.unwrap_or(crate::api::BACKFILL_MAX_SLOTS);
            backfill(schedules, t, r, (*from, *to), *overlap, limit).await
        }
        RequestParams::Cancel { run, terminate } => cancel(schedules, t, r, run.as_deref(), *terminate).await,
        RequestParams::Resume => resume(t),
        RequestParams::Retry { run } => retry(schedules, t, r, run).await,
        // the worker's rollout step acts on these when there is a versioned worker
        RequestParams::Rollout => Outcome::Done(
            RequestResult::Rejected,
            format!(
                "{} applies to a versioned spec.worker (rollout AllAtOnce, Progressive or Manual); this DurableJob has none",
                r.verb.as_str()
            ),
            vec![],
        ),
    }
}

/// A retry of run `of`: a new run of the built-in runner with today's spec that takes over what
/// `of` finished ([`crate::controller::retry`]).
async fn retry<S: Schedules>(schedules: &S, t: &Target<'_>, r: &Request, of: &str) -> Outcome {
    use crate::temporal::retries::RetryStart;
    let (d, ns) = (t.desired, t.desired.location.namespace.as_str());
    let input = (d.action.workflow_type == crate::api::BUILTIN_WORKFLOW_TYPE)
        .then(|| d.action.args.first())
        .flatten()
        .and_then(|a| serde_json::from_value::<crate::run_contract::RunInput>(a.clone()).ok())
        .filter(|i| !i.steps.is_empty());
    let Some(mut input) = input else {
        let m = "retry runs again what failed in a multi-step run (spec.steps); this DurableJob has no steps: trigger a new run instead";
        return Outcome::Done(RequestResult::Rejected, m.to_string(), vec![]);
    };
    if !of.starts_with(&d.action.workflow_id) {
        let m = format!(
            "{of} is not a run of this DurableJob (its runs' workflow ids start with {}); kubectl durablejob runs NAME lists them",
            d.action.workflow_id
        );
        return Outcome::Done(RequestResult::Rejected, m, vec![]);
    }
    let ended = match schedules.ended_run(ns, of).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            let m = format!(
                "no run {of} in Temporal namespace {ns}; kubectl durablejob runs NAME lists the runs"
            );
            return Outcome::Done(RequestResult::Rejected, m, vec![]);
        }
        Err(e) => return failed_or_wait(e, "cannot read the run to retry"),
    };
    let reuse = match crate::controller::retry::reuse(of, &ended) {
        Ok(reuse) => reuse,
        Err(m) => return Outcome::Done(RequestResult::Rejected, m, vec![]),
    };
    let taken = crate::controller::retry::describe(&reuse);
    input.reuse = Some(reuse);
    let input = serde_json::to_value(&input).expect("a run input serializes");
    let workflow_id = format!("{}-retry-{}", d.action.workflow_id, r.id);
    let start = RetryStart {
        namespace: ns,
        schedule_id: &d.location.id,
        workflow_id: &workflow_id,
        task_queue: &d.action.task_queue,
        input: &input,
        retry_of: of,
        request_id: &request_id(d, r, ""),
    };
    match schedules.start_retry(&start).await {
        Ok(run_id) => Outcome::Started {
            message: format!(
                "Started run {workflow_id}, a retry of {of}: takes over {taken}, and runs what failed or never ran"
            ),
            workflow_id,
            run_id,
        },
        Err(e) => failed_or_wait(e, "Temporal refused the retry"),
    }
}

/// A request for a schedule that finished and is gone from Temporal.
fn gone(t: &Target<'_>) -> Outcome {
    Outcome::Done(
        RequestResult::Failed,
        format!(
            "schedule {} has finished and is no longer in Temporal; raise runLimit or move endAt to run again",
            t.desired.location.id
        ),
        vec![],
    )
}

/// One run now, for the current second's slot.
async fn trigger<S: Schedules>(
    schedules: &S,
    t: &Target<'_>,
    r: &Request,
    overlap: Option<OverlapPolicy>,
    now: DateTime<Utc>,
) -> Outcome {
    let (d, at) = (t.desired, &t.desired.location);
    if t.observed.is_none() {
        return gone(t);
    }
    let slot = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    match schedules.trigger(at, overlap, slot, &request_id(d, r, "")).await {
        Ok(()) => {
            let wid = triggered_workflow_id(d, slot);
            let policy = overlap
                .map(|p| format!(" with overlap policy {p:?}"))
                .unwrap_or_default();
            Outcome::Done(
                RequestResult::Succeeded,
                format!("Triggered a run{policy} of schedule {} (workflow {wid})", at.id),
                vec![wid],
            )
        }
        Err(e) => failed_or_wait(e, "Temporal refused the trigger"),
    }
}

/// Every slot in `[from, to]`, once they are counted: none, or more than `limit`, is refused
/// before anything starts.
async fn backfill<S: Schedules>(
    schedules: &S,
    t: &Target<'_>,
    r: &Request,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    overlap: Option<OverlapPolicy>,
    limit: u32,
) -> Outcome {
    let (d, at) = (t.desired, &t.desired.location);
    if t.observed.is_none() {
        return gone(t);
    }
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let window = format!("from {} to {}", rfc(from), rfc(to));
    let count = match count_slots(schedules, at, from, to, limit).await {
        Ok(n) => n,
        Err(e) => return failed_or_wait(e, "Temporal could not list the schedule's slots for the backfill"),
    };
    if count == 0 {
        return Outcome::Done(
            RequestResult::Rejected,
            format!("Nothing to backfill: schedule {} has no slot {window}", at.id),
            vec![],
        );
    }
    if count > limit as usize {
        return Outcome::Done(
            RequestResult::Rejected,
            format!(
                "The backfill {window} covers more than {limit} slots of schedule {}, the limit; narrow --from/--to, or raise the limit with --max-slots (the request's maxSlots)",
                at.id
            ),
            vec![],
        );
    }
    match schedules
        .backfill_slots(at, from, to, overlap, &request_id(d, r, ""))
        .await
    {
        Ok(()) => Outcome::Done(
            RequestResult::Succeeded,
            format!("Backfilling {count} slot(s) {window} of schedule {}", at.id),
            vec![],
        ),
        Err(e) => failed_or_wait(e, "Temporal refused the backfill"),
    }
}

/// The schedule's slots in `[from, to]`, counted up to `limit + 1`: Temporal answers a page of
/// matching times per call, each after the time asked from, so the count starts a second
/// before `from` (a slot at `from` is backfilled, so it counts) and goes on after the last time
/// of each page until a call finds none.
async fn count_slots<S: Schedules>(
    schedules: &S,
    at: &crate::desired::schedule::ScheduleLocation,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<usize, crate::temporal::TemporalError> {
    let (mut count, mut after) = (0usize, from - chrono::TimeDelta::seconds(1));
    // each call either finds at least one more slot or ends the count
    while count <= limit as usize && after < to {
        let times = schedules.matching_times(at, after, to).await?;
        let Some(last) = times.iter().max() else { break };
        count += times.iter().filter(|t| **t >= from && **t <= to).count();
        after = *last;
    }
    Ok(count)
}

/// Stops one running run (`run`) or all, gracefully or terminated; a run that is not running
/// is refused, naming what is.
async fn cancel<S: Schedules>(
    schedules: &S,
    t: &Target<'_>,
    r: &Request,
    run: Option<&str>,
    terminate: bool,
) -> Outcome {
    let (d, at) = (t.desired, &t.desired.location);
    let running: Vec<&RunRef> = t.observed.map(|o| o.running.iter().collect()).unwrap_or_default();
    let targets: Vec<&RunRef> = match run {
        Some(wid) => running.iter().copied().filter(|x| x.workflow_id == wid).collect(),
        None => running.clone(),
    };
    if targets.is_empty() {
        let now_running = if running.is_empty() {
            "no run is running".to_string()
        } else {
            let ids: Vec<&str> = running.iter().map(|x| x.workflow_id.as_str()).collect();
            format!("running: {}", ids.join(", "))
        };
        let what = match run {
            Some(wid) => format!("run {wid} is not a running run of this DurableJob ({now_running})"),
            None => format!("nothing to cancel: {now_running}"),
        };
        return Outcome::Done(RequestResult::Rejected, what, vec![]);
    }
    let reason = format!("durablejob cancel request {}", r.id);
    let mut stopped = vec![];
    for x in &targets {
        let id = request_id(d, r, &x.run_id);
        if let Err(e) = schedules
            .stop_run(&at.namespace, x, terminate, &reason, &id)
            .await
        {
            return failed_or_wait(e, &format!("Temporal refused to stop {}", x.workflow_id));
        }
        stopped.push(x.workflow_id.clone());
    }
    let how = if terminate {
        "Terminated"
    } else {
        "Requested cancellation of"
    };
    Outcome::Done(
        RequestResult::Succeeded,
        format!("{how} {}", stopped.join(", ")),
        stopped,
    )
}

/// What a resume did: the schedule step resumes a kept pause; this says which case it was.
fn resume(t: &Target<'_>) -> Outcome {
    let id = &t.desired.location.id;
    let message = if t.resumed {
        format!("Resumed schedule {id} after the pause that followed failed runs")
    } else if t.observed.and_then(paused_by) == Some(PausedBy::Failure) {
        format!("Schedule {id} stays paused: spec.pauseOnFailure is off, so the pause is repaired as drift")
    } else {
        format!(
            "Nothing to resume: schedule {id} is not paused after failed runs (spec.suspend is the user's pause)"
        )
    };
    Outcome::Done(RequestResult::Succeeded, message, vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DurableJob, RunResult};
    use crate::temporal::fake::{Call, FakeSchedules};
    use crate::temporal::{Schedules, WriteOptions};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 13, 5, 1).unwrap()
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn fake_with(d: &DesiredSchedule, running: &[&str]) -> FakeSchedules {
        let fake = FakeSchedules::default();
        fake.create(
            d,
            &WriteOptions {
                paused: false,
                notes: String::new(),
                remaining_actions: None,
                action_count_base: 0,
            },
        )
        .await
        .unwrap();
        let mut o = fake.get(&d.location).unwrap();
        o.running = running
            .iter()
            .map(|w| RunRef {
                workflow_id: w.to_string(),
                run_id: format!("run-of-{w}"),
            })
            .collect();
        fake.insert(&d.location, o);
        fake.clear_calls();
        fake
    }

    async fn run(
        fake: &FakeSchedules,
        d: &DesiredSchedule,
        previous: &DurableJobStatus,
        a: &BTreeMap<String, String>,
    ) -> Handled {
        let observed = fake.get(&d.location);
        let t = Target {
            desired: d,
            observed: observed.as_ref(),
            resumed: false,
        };
        handle(fake, &t, pending(a, previous), now()).await
    }

    #[tokio::test]
    async fn a_trigger_is_acted_on_once_and_names_the_run_it_started() {
        let d = DurableJob::test("x").desired_schedule();
        let fake = fake_with(&d, &[]).await;
        let a = annotations(&[("durablejob.dev/trigger", r#"{"id":"t1"}"#)]);
        let first = run(&fake, &d, &DurableJobStatus::default(), &a).await;
        assert_eq!(fake.calls(), vec![Call::Trigger(d.location.id.clone())]);
        let rec = &first.records[0];
        assert_eq!(
            (rec.verb, rec.result),
            (RequestVerb::Trigger, RequestResult::Succeeded)
        );
        assert_eq!(
            rec.workflow_ids,
            vec!["durablejob:default/x-2026-12-01T13:05:01Z"]
        );
        assert_eq!(first.notices[0].reason, Reason::RunTriggered);
        assert!(first.acted);
        // recorded: the next reconcile (or a restarted operator) leaves it alone
        let previous = DurableJobStatus {
            requests: first.records.clone(),
            ..Default::default()
        };
        fake.clear_calls();
        let again = run(&fake, &d, &previous, &a).await;
        assert!(again.records.is_empty() && fake.calls().is_empty());
    }

    #[tokio::test]
    async fn a_retry_starts_a_run_that_takes_over_what_the_failed_run_finished() {
        use crate::temporal::retries::EndedRun;
        let mut dj = DurableJob::test("x");
        let template = dj.spec.job_template.take().unwrap();
        dj.spec.steps = Some(
            ["list", "load"]
                .iter()
                .map(|n| crate::api::StepSpec {
                    name: n.to_string(),
                    job_template: template.clone(),
                    ..Default::default()
                })
                .collect(),
        );
        let d = dj.desired_schedule();
        let fake = fake_with(&d, &[]).await;
        let failed = format!("{}-2026-12-01T13:00:00Z", d.action.workflow_id);
        fake.set_ended_run(
            &d.location.namespace,
            &failed,
            EndedRun {
                run_id: "r-1".into(),
                result: RunResult::Failed,
                outcome: Some(serde_json::json!({"jobName": "", "attempts": 0, "steps": [
                    {"name": "list", "jobName": "j", "attempts": 1, "result": [1, 2]}]})),
            },
        );
        let request = format!(r#"{{"id":"re1","run":"{failed}"}}"#);
        let a = annotations(&[("durablejob.dev/retry", request.as_str())]);
        let h = run(&fake, &d, &DurableJobStatus::default(), &a).await;
        let rec = &h.records[0];
        assert_eq!(
            (rec.verb, rec.result),
            (RequestVerb::Retry, RequestResult::Succeeded),
            "{rec:?}"
        );
        let retry = format!("{}-retry-re1", d.action.workflow_id);
        assert_eq!(rec.workflow_ids, vec![retry.clone()]);
        assert_eq!(
            rec.run_ids,
            vec![format!("run-of-{retry}")],
            "the runner binds by run id"
        );
        assert!(rec.message.contains("takes over step list"), "{}", rec.message);
        assert_eq!(h.notices[0].reason, Reason::RetryStarted);
        let input = fake.retry_input(&d.location.namespace, &retry).unwrap();
        assert_eq!(input["reuse"]["of"], serde_json::json!(failed));
        assert_eq!(
            input["reuse"]["steps"]["list"]["result"],
            serde_json::json!([1, 2])
        );
        assert_eq!(input["steps"].as_array().unwrap().len(), 2, "today's steps");

        // a run of another DurableJob, an unknown run, and a DurableJob without steps
        let other = annotations(&[(
            "durablejob.dev/retry",
            r#"{"id":"re2","run":"durablejob:default/y-1"}"#,
        )]);
        let h = run(&fake, &d, &DurableJobStatus::default(), &other).await;
        assert_eq!(h.records[0].result, RequestResult::Rejected);
        assert!(h.records[0].message.contains("not a run of this DurableJob"));
        let unknown = format!(r#"{{"id":"re3","run":"{}-nope"}}"#, d.action.workflow_id);
        let h = run(
            &fake,
            &d,
            &DurableJobStatus::default(),
            &annotations(&[("durablejob.dev/retry", unknown.as_str())]),
        )
        .await;
        assert!(
            h.records[0].message.contains("no run"),
            "{}",
            h.records[0].message
        );
        let plain = DurableJob::test("x").desired_schedule();
        let h = run(&fake, &plain, &DurableJobStatus::default(), &a).await;
        assert!(
            h.records[0].message.contains("has no steps"),
            "{}",
            h.records[0].message
        );
        // the annotation needs the run
        let bare = annotations(&[("durablejob.dev/retry", "re4")]);
        let h = run(&fake, &d, &DurableJobStatus::default(), &bare).await;
        assert!(
            h.records[0].message.contains("\"run\" is required"),
            "{}",
            h.records[0].message
        );
    }

    #[tokio::test]
    async fn a_request_waits_while_temporal_is_down_and_is_acted_on_after() {
        let d = DurableJob::test("x").desired_schedule();
        let fake = fake_with(&d, &[]).await;
        fake.set_down(true);
        let a = annotations(&[("durablejob.dev/trigger", "t1")]);
        let down = run(&fake, &d, &DurableJobStatus::default(), &a).await;
        assert_eq!((down.records.len(), down.waiting), (0, 1));
        fake.set_down(false);
        let up = run(&fake, &d, &DurableJobStatus::default(), &a).await;
        assert_eq!(up.records[0].result, RequestResult::Succeeded);
    }

    #[tokio::test]
    async fn cancel_stops_the_named_run_or_all_and_refuses_an_unknown_one() {
        let d = DurableJob::test("x").desired_schedule();
        let fake = fake_with(&d, &["w-1", "w-2"]).await;
        let one = run(
            &fake,
            &d,
            &DurableJobStatus::default(),
            &annotations(&[("durablejob.dev/cancel", r#"{"id":"c1","run":"w-2"}"#)]),
        )
        .await;
        assert_eq!(fake.calls(), vec![Call::Stop("w-2".into())]);
        assert_eq!(one.records[0].workflow_ids, vec!["w-2"]);
        assert_eq!(one.notices[0].reason, Reason::RunCanceled);
        let unknown = run(
            &fake,
            &d,
            &DurableJobStatus::default(),
            &annotations(&[("durablejob.dev/cancel", r#"{"id":"c2","run":"w-9"}"#)]),
        )
        .await;
        let rec = &unknown.records[0];
        assert_eq!(rec.result, RequestResult::Rejected);
        assert!(
            rec.message.contains("w-9 is not a running run") && rec.message.contains("running: w-1"),
            "{}",
            rec.message
        );
        let all = run(
            &fake,
            &d,
            &DurableJobStatus::default(),
            &annotations(&[("durablejob.dev/cancel", r#"{"id":"c3","terminate":true}"#)]),
        )
        .await;
        assert_eq!(all.records[0].workflow_ids, vec!["w-1"]);
        assert_eq!(all.notices[0].reason, Reason::RunTerminated);
    }

    #[tokio::test]
    async fn a_backfill_counts_its_slots_first_and_refuses_none_or_more_than_the_limit() {
        let d = DurableJob::test("x").desired_schedule();
        let fake = fake_with(&d, &[]).await;
        let hour = |h: u32| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
        fake.set_slots(&d.location, (0..24).map(hour).collect());
        let backfill = |id: &str, extra: &str| {
            format!(r#"{{"id":"{id}","from":"2026-12-01T01:00:00Z","to":"2026-12-01T03:00:00Z"{extra}}}"#)
        };
        let backfilled = |h: &Handled| {
            fake.calls().iter().any(|c| matches!(c, Call::Backfill(_))) && !h.records.is_empty()
        };

        // three slots within the default limit: backfilled, the count said
        let ok = backfill("b1", "");
        let h = run(
            &fake,
            &d,
            &DurableJobStatus::default(),
            &annotations(&[("durablejob.dev/backfill", &ok)]),
        )
        .await;
        assert_eq!(
            h.records[0].result,
            RequestResult::Succeeded,
            "{}",
            h.records[0].message
        );
        assert!(
            h.records[0]
                .message
                .starts_with("Backfilling 3 slot(s) from 2026-12-01T01:00:00Z"),
            "{}",
            h.records[0].message
        );
        assert!(backfilled(&h));

        // more than the request's limit: refused, nothing started
        fake.clear_calls();
        let over = backfill("b2", r#","maxSlots":2"#);
        let h = run(
            &fake,
            &d,
            &DurableJobStatus::default(),
            &annotations(&[("durablejob.dev/backfill", &over)]),
        )
        .await;
        let rec = &h.records[0];
        assert_eq!(rec.result, RequestResult::Rejected);
        assert!(
            rec.message.contains("covers more than 2 slots") && rec.message.contains("--max-slots"),
            "{}",
            rec.message
        );
        assert!(
            !fake.calls().iter().any(|c| matches!(c, Call::Backfill(_))),
            "{:?}",
            fake.calls()
        );
        assert_eq!(h.notices[0].reason, Reason::RequestRejected);

        // no slot in the window
        fake.set_slots(&d.location, vec![]);
        let h = run(
            &fake,
            &d,
            &DurableJobStatus::default(),
            &annotations(&[("durablejob.dev/backfill", &backfill("b3", ""))]),
        )
        .await;
        assert_eq!(h.records[0].result, RequestResult::Rejected);
        assert!(
            h.records[0].message.starts_with("Nothing to backfill"),
            "{}",
            h.records[0].message
        );
    }

    #[tokio::test]
    async fn a_bad_annotation_is_rejected_once_with_the_reason() {
        let d = DurableJob::test("x").desired_schedule();
        let fake = fake_with(&d, &[]).await;
        let a = annotations(&[(
            "durablejob.dev/backfill",
            r#"{"id":"b1","from":"monday","to":"2026-12-01T00:00:00Z"}"#,
        )]);
        let h = run(&fake, &d, &DurableJobStatus::default(), &a).await;
        assert!(fake.calls().is_empty(), "nothing reaches Temporal");
        assert_eq!(h.records[0].result, RequestResult::Rejected);
        assert_eq!(h.notices[0].reason, Reason::RequestRejected);
        let previous = DurableJobStatus {
            requests: h.records,
            ..Default::default()
        };
        assert!(pending(&a, &previous).is_empty());
    }

    #[tokio::test]
    async fn a_trigger_on_a_finished_schedule_fails_saying_why() {
        let d = DurableJob::test("x").desired_schedule();
        let fake = FakeSchedules::default();
        let t = Target {
            desired: &d,
            observed: None,
            resumed: false,
        };
        let h = handle(
            &fake,
            &t,
            pending(
                &annotations(&[("durablejob.dev/trigger", "t")]),
                &DurableJobStatus::default(),
            ),
            now(),
        )
        .await;
        assert_eq!(h.records[0].result, RequestResult::Failed);
        assert!(h.records[0].message.contains("raise runLimit"));
    }

    #[test]
    fn a_resume_an_older_operator_handled_is_not_pending() {
        let previous = DurableJobStatus {
            sync: Some(crate::api::SyncRecord {
                handled_resume: Some("2".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(pending(&annotations(&[("durablejob.dev/resume", "2")]), &previous).is_empty());
        assert_eq!(
            pending(&annotations(&[("durablejob.dev/resume", "3")]), &previous).len(),
            1
        );
    }
}
