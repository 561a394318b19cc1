//! The driver's decisions against an in-memory Temporal ([`FakeSchedules`]), in milliseconds:
//! which calls a reconcile makes, what status it builds and when it looks again. The real
//! server is exercised by the end-to-end tests.

use chrono::{DateTime, TimeZone, Utc};
use pretty_assertions::assert_eq;

use super::reconcile::{Outcome, Requeue, build, schedule_and_status, schedule_locations};
use super::status::{Problem, WorkerState};
use crate::api::{DurableJob, DurableJobStatus};
use crate::controller::build::worker::WorkerHealth;
use crate::controller::io::schedule_sync::delete_everywhere;
use crate::reason::Reason;
use crate::settings::Settings;
use crate::temporal::fake::{Call, FakeSchedules};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

/// One reconcile of `dj` with no worker Deployment, as the driver runs it.
async fn reconcile(fake: &FakeSchedules, dj: &DurableJob) -> Outcome {
    reconcile_with_worker(fake, dj, Ok(None)).await
}

async fn reconcile_with_worker(
    fake: &FakeSchedules,
    dj: &DurableJob,
    worker: Result<Option<WorkerState>, Problem>,
) -> Outcome {
    let settings = Settings::default();
    let built = build(dj, &settings, &Default::default());
    schedule_and_status(
        dj,
        fake,
        &settings,
        built.as_ref().map_err(Clone::clone),
        worker,
        now(),
    )
    .await
}

fn condition<'a>(s: &'a DurableJobStatus, type_: &str) -> (&'a str, &'a str) {
    let c = s.conditions.iter().find(|c| c.type_ == type_).expect("condition");
    (c.status.as_str(), c.reason.as_str())
}

fn id(name: &str) -> String {
    Settings::default().schedule_id("default", name)
}

fn writes(fake: &FakeSchedules) -> Vec<Call> {
    fake.calls().into_iter().filter(Call::is_write).collect()
}

fn describes(fake: &FakeSchedules) -> usize {
    fake.calls()
        .iter()
        .filter(|c| matches!(c, Call::Describe(_)))
        .count()
}

#[tokio::test]
async fn a_new_resource_gets_its_schedule_then_an_unchanged_spec_means_one_describe_and_no_write() {
    let fake = FakeSchedules::default();
    let dj = DurableJob::test("report");
    let first = reconcile(&fake, &dj).await;
    assert_eq!(
        fake.calls(),
        vec![Call::Create(id("report"))],
        "a new resource creates without a describe first, and what Temporal holds then is known without one"
    );
    assert_eq!(first.problem, None);
    assert_eq!(first.writes, vec![Reason::ScheduleCreated]);
    assert_eq!(condition(&first.status, "Ready"), ("True", "Synced"));
    assert_eq!(
        first.status.next_run_times.first().map(|t| t.to_rfc3339()),
        Some("2026-06-02T09:00:00+00:00".to_string()),
        "worked out from the spec: 09:00 UTC Monday to Friday, after Monday noon"
    );
    let location = crate::desired::schedule::ScheduleLocation {
        namespace: "default".into(),
        id: id("report"),
    };
    let stored = fake.get(&location).expect("created");
    let record = first.status.sync.clone().expect("a record");
    assert_eq!(
        (record.observed_fingerprint.as_str(), record.listing.as_deref()),
        ("", Some(stored.listing.as_str())),
        "no fingerprint yet; the listing the create was answered with, for the sweep"
    );
    assert_eq!(
        record.created_conflict_token,
        Some(super::plan::hex_token(&stored.conflict_token))
    );

    // the first describe finds the schedule as created: no write, and its fingerprint is kept
    fake.clear_calls();
    let second = reconcile(&fake, &dj.clone().with_status(first.status.clone())).await;
    assert_eq!(fake.calls(), vec![Call::Describe(id("report"))]);
    assert_eq!(second.writes, vec![]);
    assert!(second.notices.is_empty(), "{:?}", second.notices);
    let record = second.status.sync.clone().expect("a record");
    assert_eq!(record.observed_fingerprint, stored.fingerprint);
    assert_eq!(record.created_conflict_token, None);

    fake.clear_calls();
    let again = reconcile(&fake, &dj.clone().with_status(second.status.clone())).await;
    assert_eq!(describes(&fake), 1);
    assert_eq!(writes(&fake), vec![]);
    assert_eq!(
        again.status, second.status,
        "nothing to write to the status either"
    );
    assert!(again.notices.is_empty());
}

#[tokio::test]
async fn a_pause_temporal_made_before_the_first_describe_is_respected_not_repaired() {
    let fake = FakeSchedules::default();
    let mut dj = DurableJob::test("report");
    dj.spec.pause_on_failure = true;
    let first = reconcile(&fake, &dj).await;
    let location = crate::desired::schedule::ScheduleLocation {
        namespace: "default".into(),
        id: id("report"),
    };
    // Temporal paused it after a failed run (a write: the conflict token moves)
    let mut o = fake.get(&location).expect("created");
    o.paused = true;
    o.notes = "paused due to workflow failure: durablejob:default/report-1: boom".into();
    o.fingerprint = "paused".into();
    o.conflict_token.push(1);
    fake.insert(&location, o);
    fake.clear_calls();
    let out = reconcile(&fake, &dj.with_status(first.status)).await;
    assert_eq!(writes(&fake), vec![], "no write unpauses it");
    assert!(out.status.paused);
    assert_eq!(
        out.status
            .sync
            .map(|s| (s.observed_fingerprint, s.created_conflict_token)),
        Some(("paused".to_string(), None))
    );
    assert!(
        out.notices.iter().any(|n| n.reason == Reason::PausedAfterFailure),
        "{:?}",
        out.notices
    );
}

#[tokio::test]
async fn an_edited_spec_is_one_update() {
    let fake = FakeSchedules::default();
    let dj = DurableJob::test("report");
    let first = reconcile(&fake, &dj).await;
    fake.clear_calls();
    let mut edited = dj.with_cron(&["0 10 * * *"]).with_status(first.status);
    edited.metadata.generation = Some(2);
    let out = reconcile(&fake, &edited).await;
    assert_eq!(writes(&fake), vec![Call::Update(id("report"))]);
    assert_eq!(out.writes, vec![Reason::ScheduleUpdated]);
    assert_eq!(out.status.observed_generation, Some(2));
}

#[tokio::test]
async fn a_change_made_in_temporal_is_repaired_with_a_warning() {
    let fake = FakeSchedules::default();
    let dj = DurableJob::test("report");
    let first = reconcile(&fake, &dj).await;
    let location = first
        .status
        .schedule_id
        .clone()
        .map(|id| crate::desired::schedule::ScheduleLocation {
            namespace: "default".into(),
            id,
        });
    fake.tamper(&location.expect("a schedule id"));
    fake.clear_calls();
    let out = reconcile(&fake, &dj.with_status(first.status)).await;
    assert_eq!(writes(&fake), vec![Call::Update(id("report"))]);
    assert_eq!(out.writes, vec![Reason::DriftRepaired]);
    assert!(
        out.notices.iter().any(
            |n| n.reason == Reason::DriftRepaired && n.type_ == kube::runtime::events::EventType::Warning
        )
    );
}

#[tokio::test]
async fn temporal_down_is_reconciling_with_the_reason_and_retried_with_backoff() {
    let fake = FakeSchedules::default();
    fake.set_down(true);
    let out = reconcile(&fake, &DurableJob::test("report")).await;
    let p = out.problem.expect("a problem");
    assert_eq!((p.reason, p.stalled), (Reason::TemporalUnavailable, false));
    assert_eq!(out.requeue, Requeue::Backoff);
    assert_eq!(
        condition(&out.status, "Reconciling"),
        ("True", "TemporalUnavailable")
    );
    assert_eq!(condition(&out.status, "Stalled"), ("False", "AsExpected"));
    assert_eq!(condition(&out.status, "Ready"), ("False", "TemporalUnavailable"));
    assert_eq!(
        out.status.schedule_id,
        Some(id("report")),
        "the status still names the schedule"
    );
}

#[tokio::test]
async fn an_invalid_spec_never_reaches_temporal_and_waits_for_a_change() {
    let fake = FakeSchedules::default();
    let out = reconcile(&fake, &DurableJob::test("report").with_time_zone("Mars/Olympus")).await;
    assert_eq!(fake.calls(), vec![]);
    let p = out.problem.expect("a problem");
    assert_eq!((p.reason, p.stalled), (Reason::InvalidSpec, true));
    assert!(p.message.contains("spec.schedule.timeZone"), "{}", p.message);
    assert_eq!(out.requeue, Requeue::After(Settings::default().resync_interval));
    assert_eq!(condition(&out.status, "Stalled"), ("True", "InvalidSpec"));
}

#[tokio::test]
async fn a_schedule_someone_else_made_is_left_alone() {
    let fake = FakeSchedules::default();
    let other = DurableJob::test("report");
    let mut theirs = other.clone();
    theirs.metadata.uid = Some("someone-else".into());
    reconcile(&fake, &theirs).await;
    let location = crate::desired::schedule::ScheduleLocation {
        namespace: "default".into(),
        id: id("report"),
    };
    let before = fake.get(&location);
    fake.clear_calls();
    let out = reconcile(&fake, &other).await;
    assert_eq!(
        fake.calls(),
        vec![Call::Create(id("report")), Call::Describe(id("report"))],
        "the create is refused (it exists), and the description says whose it is"
    );
    assert_eq!(fake.get(&location), before, "their schedule is untouched");
    let p = out.problem.expect("a problem");
    assert_eq!((p.reason, p.stalled), (Reason::ScheduleOwnedElsewhere, true));
}

#[tokio::test]
async fn a_worker_deployment_that_cannot_be_applied_reaches_status_like_a_temporal_failure() {
    let fake = FakeSchedules::default();
    let refused = Problem {
        reason: Reason::WorkerApplyFailed,
        message: "cannot apply worker Deployment report-worker: forbidden".into(),
        stalled: true,
    };
    let out = reconcile_with_worker(&fake, &DurableJob::test("report"), Err(refused.clone())).await;
    assert_eq!(
        fake.calls(),
        vec![],
        "no Temporal call before the worker is in place"
    );
    assert_eq!(out.problem, Some(refused));
    assert_eq!(condition(&out.status, "Ready"), ("False", "WorkerApplyFailed"));
    assert_eq!(condition(&out.status, "Stalled"), ("True", "WorkerApplyFailed"));
}

#[tokio::test]
async fn an_available_worker_is_reported() {
    let fake = FakeSchedules::default();
    let worker = WorkerState {
        deployment: "report-worker".into(),
        health: WorkerHealth {
            ready_replicas: 2,
            available: true,
            message: "2/2 worker replicas ready".into(),
        },
        versioned: None,
    };
    let out = reconcile_with_worker(&fake, &DurableJob::test("report"), Ok(Some(worker))).await;
    assert_eq!(
        condition(&out.status, "WorkerAvailable"),
        ("True", "WorkerAvailable")
    );
    assert_eq!(out.status.worker.map(|w| w.ready_replicas), Some(2));
}

#[tokio::test]
async fn cleanup_deletes_the_schedule_even_when_no_status_was_written_and_the_spec_is_now_invalid() {
    let fake = FakeSchedules::default();
    let dj = DurableJob::test("report");
    reconcile(&fake, &dj).await;
    // the status write never happened, and the spec was then made invalid
    let broken = dj.with_time_zone("Mars/Olympus");
    assert!(broken.status.is_none());
    let settings = Settings::default();
    let locations = schedule_locations(&broken, &settings);
    let deleted = delete_everywhere(&fake, &locations, "uid-1", &settings.schedule_id_prefix)
        .await
        .expect("deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(fake.get(&locations[0]), None, "no schedule is left");

    // and someone else's schedule at the same id is never deleted
    let mut theirs = DurableJob::test("report");
    theirs.metadata.uid = Some("someone-else".into());
    reconcile(&fake, &theirs).await;
    let deleted = delete_everywhere(&fake, &locations, "uid-1", &settings.schedule_id_prefix)
        .await
        .expect("nothing to delete");
    assert!(deleted.is_empty());
    assert!(fake.get(&locations[0]).is_some());
}

#[test]
fn cleanup_never_looks_in_a_temporal_namespace_the_resource_was_not_granted() {
    let mut dj = DurableJob::test("report");
    dj.spec.temporal = Some(serde_json::from_value(serde_json::json!({"namespace": "other"})).unwrap());
    let settings = Settings::default();
    assert!(
        schedule_locations(&dj, &settings).is_empty(),
        "never created there, never touched there"
    );
    let granted = Settings {
        namespace_grants: crate::settings::NamespaceGrants::parse(&["default=other"]).unwrap(),
        ..Settings::default()
    };
    assert_eq!(schedule_locations(&dj, &granted)[0].namespace, "other");
    // what the status recorded is always looked at
    dj.status = Some(crate::api::DurableJobStatus {
        schedule_id: Some("durablejob:default/report".into()),
        temporal_namespace: Some("other".into()),
        ..Default::default()
    });
    assert_eq!(schedule_locations(&dj, &settings)[0].namespace, "other");
}

#[tokio::test]
async fn a_create_whose_status_write_was_lost_is_recognised_without_a_second_write() {
    let fake = FakeSchedules::default();
    let dj = DurableJob::test("report");
    let first = reconcile(&fake, &dj).await;
    assert_eq!(first.writes, vec![Reason::ScheduleCreated]);
    // the status never reached the API server: the next reconcile sees no record
    fake.clear_calls();
    let again = reconcile(&fake, &dj).await;
    assert_eq!(
        fake.calls(),
        vec![Call::Create(id("report")), Call::Describe(id("report"))],
        "the create is refused as existing, the describe recognises the operator's own schedule, and there is no update"
    );
    assert_eq!(again.writes, vec![]);
    assert!(
        again.notices.is_empty(),
        "no ScheduleAdopted, no other Event: {:?}",
        again.notices
    );
    assert_eq!(condition(&again.status, "Ready"), ("True", "Synced"));
    assert!(again.status.sync.is_some(), "the record is written now");
}

#[tokio::test]
async fn visibility_is_read_only_when_the_description_shows_new_runs() {
    use crate::temporal::{RecentAction, RunRef};
    let fake = FakeSchedules::default();
    let dj = DurableJob::test("report");
    let created = reconcile(&fake, &dj).await;
    // the first describe after the create keeps the schedule's fingerprint
    let first = reconcile(&fake, &dj.clone().with_status(created.status)).await;
    let list_calls = |fake: &FakeSchedules| {
        fake.calls()
            .iter()
            .filter(|c| matches!(c, Call::RecentRuns(_)))
            .count()
    };
    assert_eq!(list_calls(&fake), 0, "a new schedule has no runs to read");
    fake.clear_calls();
    let idle = reconcile(&fake, &dj.clone().with_status(first.status.clone())).await;
    assert_eq!(
        fake.calls(),
        vec![Call::Describe(id("report"))],
        "idle: one describe, nothing else"
    );
    assert_eq!(idle.status, first.status);

    // a run started: the description's recent actions change, so the runs are read
    let location = crate::desired::schedule::ScheduleLocation {
        namespace: "default".into(),
        id: id("report"),
    };
    let mut o = fake.get(&location).expect("schedule");
    o.action_count = 1;
    o.recent_actions = vec![RecentAction {
        scheduled_time: now(),
        actual_time: now(),
        run: RunRef {
            workflow_id: "w".into(),
            run_id: "r".into(),
        },
        result: Some(crate::api::RunResult::Running),
    }];
    fake.insert(&location, o);
    fake.clear_calls();
    let moved = reconcile(&fake, &dj.clone().with_status(idle.status.clone())).await;
    assert_eq!(list_calls(&fake), 1);
    fake.clear_calls();
    reconcile(&fake, &dj.with_status(moved.status)).await;
    assert_eq!(list_calls(&fake), 0, "the same runs again: not read again");
}

#[test]
fn the_cache_keeps_no_managed_fields_or_last_applied_copy() {
    use kube::{ResourceExt, core::DeserializeGuard};
    let mut dj = DurableJob::test("report");
    dj.metadata.managed_fields = Some(vec![Default::default()]);
    dj.annotations_mut().insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        "{...}".into(),
    );
    dj.annotations_mut()
        .insert("durablejob.dev/trigger".into(), "t1".into());
    let mut guarded = DeserializeGuard(Ok(dj));
    super::trim(&mut guarded);
    let dj = guarded.0.expect("a DurableJob");
    assert!(dj.managed_fields().is_empty());
    assert_eq!(
        dj.annotations().keys().collect::<Vec<_>>(),
        vec!["durablejob.dev/trigger"],
        "requests stay"
    );
}

#[tokio::test]
async fn the_sweep_lists_pages_instead_of_describing_and_wakes_only_a_schedule_changed_in_temporal() {
    use crate::controller::io::sweep::{Target, sweep_once};
    use kube::runtime::{reflector, watcher};
    let fake = FakeSchedules::default();
    let mut djs = Vec::new();
    for name in ["a", "b", "c"] {
        let mut dj = DurableJob::test(name);
        dj.status = Some(reconcile(&fake, &dj).await.status);
        djs.push(dj);
    }
    let (store, mut writer) = reflector::store();
    for dj in &djs {
        writer.apply_watcher_event(&watcher::Event::Apply(kube::core::DeserializeGuard(Ok(
            dj.clone()
        ))));
    }
    let (wake, mut woken) = tokio::sync::mpsc::channel(8);
    let targets = [Target { store, wake }];
    fake.clear_calls();
    assert_eq!(sweep_once(&fake, &targets).await, 0, "nothing changed");
    assert_eq!(
        fake.calls(),
        vec![Call::ListPage("default".into()), Call::ListPage("default".into())],
        "three schedules are two pages of the fake's two, and no describe"
    );
    let b = crate::desired::schedule::ScheduleLocation {
        namespace: "default".into(),
        id: id("b"),
    };
    fake.tamper(&b);
    assert_eq!(sweep_once(&fake, &targets).await, 1);
    assert_eq!(woken.recv().await.map(|r| r.name), Some("b".to_string()));
}

#[tokio::test]
async fn each_run_temporal_skipped_is_one_warning_naming_its_slot_and_one_count() {
    let fake = FakeSchedules::default();
    let dj = DurableJob::test("report");
    let first = reconcile(&fake, &dj).await;
    let at = crate::desired::schedule::ScheduleLocation {
        namespace: "default".into(),
        id: id("report"),
    };
    let slot = |m: i64| now() - chrono::TimeDelta::minutes(m);
    let mut s = fake.get(&at).unwrap();
    s.overlap_skipped = 1;
    s.recent_actions = vec![crate::temporal::RecentAction {
        scheduled_time: slot(20),
        actual_time: slot(20),
        run: crate::temporal::RunRef {
            workflow_id: "wf".into(),
            run_id: "r".into(),
        },
        result: Some(crate::api::RunResult::Running),
    }];
    fake.insert(&at, s);
    fake.set_slots(&at, vec![slot(20), slot(10)]);
    let out = reconcile(&fake, &dj.clone().with_status(first.status)).await;
    let skipped: Vec<_> = out
        .notices
        .iter()
        .filter(|n| n.reason == Reason::OverlapSkipped)
        .collect();
    assert_eq!(skipped.len(), 1, "{:?}", out.notices);
    assert!(
        skipped[0].note.contains("2026-06-01T11:50:00Z"),
        "{}",
        skipped[0].note
    );
    assert_eq!(out.status.missed_runs_by_cause.overlap_skipped, 1);
    assert_eq!(out.status.sync.as_ref().unwrap().missed_checked_at, Some(now()));
    // the same count again reports nothing and asks Temporal for no slots
    fake.clear_calls();
    let again = reconcile(&fake, &dj.with_status(out.status.clone())).await;
    assert!(again.notices.iter().all(|n| n.reason != Reason::OverlapSkipped));
    assert!(!fake.calls().iter().any(|c| matches!(c, Call::MatchingTimes(_))));
    assert_eq!(again.status, out.status);
}

#[tokio::test]
async fn a_pause_for_failed_runs_in_a_row_is_kept_until_the_resume_request_and_the_count_restarts() {
    let fake = FakeSchedules::default();
    let dj = DurableJob::test("report").with_failure_streak(2, None);
    let first = reconcile(&fake, &dj).await;
    let at = crate::desired::schedule::ScheduleLocation {
        namespace: "default".into(),
        id: id("report"),
    };
    let mut s = fake.get(&at).unwrap();
    s.paused = true;
    s.notes = crate::controller::streak::pause_notes(
        "default/report",
        now() - chrono::TimeDelta::minutes(30),
        &crate::api::FailureStreak {
            count: 2,
            runs: vec!["wf-2".into(), "wf-1".into()],
            counted_until: None,
        },
    );
    s.fingerprint = "paused-by-the-operator".into();
    let held_schedule = s.clone();
    fake.insert(&at, s);
    let held = reconcile(&fake, &dj.clone().with_status(first.status)).await;
    assert_eq!(writes(&fake).len(), 1, "only the create: the pause is kept");
    assert_eq!(held.status.paused_reason.as_deref(), Some("ConsecutiveFailures"));
    assert_eq!(condition(&held.status, "Ready"), ("True", "ConsecutiveFailures"));
    let message = held.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("wf-2, wf-1") && message.contains("kubectl durablejob resume"),
        "{message}"
    );

    fake.clear_calls();
    let mut asked = dj.with_status(held.status);
    asked
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(crate::api::RESUME_ANNOTATION.into(), r#"{"id":"r1"}"#.into());
    let resumed = reconcile(&fake, &asked).await;
    assert_eq!(writes(&fake), vec![Call::Update(id("report"))]);
    assert_eq!(resumed.writes, vec![Reason::ScheduleResumed]);
    assert!(!fake.get(&at).unwrap().paused);
    assert_eq!(
        resumed.status.sync.as_ref().unwrap().failure_streak,
        Some(crate::controller::streak::fresh(now())),
        "failed runs before the resume no longer count"
    );
    assert_eq!(resumed.status.consecutive_failures, Some(0));
    let record = resumed.status.requests.first().expect("the request is recorded");
    assert!(record.message.contains("Resumed"), "{record:?}");
    assert_eq!(
        resumed.status.sync.as_ref().unwrap().handled_resume,
        None,
        "the request ledger alone records a resume"
    );

    // paused again later: the same request, still on the resource, resumes nothing
    fake.insert(&at, held_schedule.clone());
    let mut again = asked.clone();
    again.status = Some(resumed.status.clone());
    fake.clear_calls();
    let kept = reconcile(&fake, &again).await;
    assert_eq!(writes(&fake), vec![], "{:?}", kept.writes);
    assert!(fake.get(&at).unwrap().paused);
    // nor does one an older operator recorded in sync.handled_resume, before the ledger
    let mut legacy = resumed.status.clone();
    legacy.requests.clear();
    legacy.sync.as_mut().unwrap().handled_resume = Some(r#"{"id":"r1"}"#.into());
    again.status = Some(legacy);
    fake.clear_calls();
    reconcile(&fake, &again).await;
    assert_eq!(writes(&fake), vec![]);
}

#[test]
fn a_persisting_problem_is_one_warning_and_an_unchanged_status_is_not_written() {
    use super::reconcile::{Report, report};
    let problem = Problem {
        reason: Reason::TemporalUnavailable,
        message: "Temporal is unreachable".into(),
        stalled: false,
    };
    let created = crate::controller::io::Notice::normal(Reason::ScheduleCreated, "Create", "made".into());
    let before = DurableJobStatus::default();
    let failing = DurableJobStatus {
        message: Some(problem.message.clone()),
        ..Default::default()
    };
    let first = report(&before, &failing, Some(&problem), std::slice::from_ref(&created));
    assert_eq!(first.events.len(), 2, "the step's Event, then the Warning");
    assert_eq!(first.events[0], created);
    assert_eq!(
        (first.events[1].reason, first.events[1].type_),
        (
            Reason::TemporalUnavailable,
            kube::runtime::events::EventType::Warning
        )
    );
    assert!(first.write_status);
    assert_eq!(
        report(&failing, &failing, Some(&problem), &[]),
        Report {
            events: vec![],
            write_status: false
        },
        "the same problem again: no Warning, no write"
    );
    let other = Problem {
        message: "another message".into(),
        ..problem.clone()
    };
    assert_eq!(report(&failing, &failing, Some(&other), &[]).events.len(), 1);
}

#[tokio::test]
async fn backoff_grows_per_resource_to_a_minute_and_a_success_resets_it() {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).expect("a client that connects on first use");
    let ctx = super::Context::new(std::sync::Arc::new(crate::operator::Core::new(
        client,
        FakeSchedules::default(),
        Settings::default(),
        crate::metrics::Metrics::register(&mut prometheus_client::registry::Registry::default()),
    )));
    let (a, b) = (DurableJob::test("a"), DurableJob::test("b"));
    let waits: Vec<u64> = (0..8).map(|_| ctx.next_backoff(&a).as_secs()).collect();
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(
        ctx.next_backoff(&b).as_secs(),
        1,
        "each resource backs off on its own"
    );
    ctx.reset_backoff(&a);
    assert_eq!(ctx.next_backoff(&a).as_secs(), 1);
}

fn visible_run(id: &str, result: crate::api::RunResult) -> crate::temporal::RunRecord {
    crate::temporal::RunRecord {
        run: crate::temporal::RunRef {
            workflow_id: format!("wf-{id}"),
            run_id: id.into(),
        },
        scheduled_time: Some(now()),
        start_time: now(),
        close_time: (result != crate::api::RunResult::Running).then(now),
        result,
        job_name: Some(format!("job-{id}")),
        attempts: Some(1),
        message: None,
        build_id: None,
        step: None,
        progress: None,
    }
}

#[tokio::test]
async fn a_run_is_followed_from_visibility_alone_until_one_fails() {
    use crate::api::RunResult;
    let fake = FakeSchedules::default();
    let dj = DurableJob::test("report");
    let created = reconcile(&fake, &dj).await;
    let looked = reconcile(&fake, &dj.clone().with_status(created.status)).await;
    assert!(looked.clean, "a full look with nothing left to do");
    let dj = dj.with_status(looked.status.clone());
    let desired = dj.desired_schedule();
    let settings = Settings::default();

    fake.clear_calls();
    fake.set_runs(&desired.location, vec![visible_run("r1", RunResult::Running)]);
    let started = super::reconcile::follow_runs(&dj, &fake, &settings, &desired, now())
        .await
        .expect("followed");
    assert_eq!(
        fake.calls(),
        vec![Call::RecentRuns(id("report"))],
        "the runs are read; the schedule is not described"
    );
    let running: Vec<_> = started
        .status
        .running_workflows
        .iter()
        .map(|w| w.run_id.as_str())
        .collect();
    assert_eq!(running, vec!["r1"]);
    assert_eq!(started.requeue, Requeue::After(std::time::Duration::from_secs(5)));
    assert_eq!(
        (
            started.status.conditions.clone(),
            started.status.next_run_times.clone()
        ),
        (
            looked.status.conditions.clone(),
            looked.status.next_run_times.clone()
        )
    );

    let dj = dj.with_status(started.status.clone());
    fake.set_runs(&desired.location, vec![visible_run("r1", RunResult::Succeeded)]);
    let ended = super::reconcile::follow_runs(&dj, &fake, &settings, &desired, now())
        .await
        .expect("followed");
    assert!(ended.status.running_workflows.is_empty());
    assert_eq!(ended.status.recent_runs[0].result, RunResult::Succeeded);

    let dj = dj.with_status(ended.status.clone());
    let again = super::reconcile::follow_runs(&dj, &fake, &settings, &desired, now()).await;
    assert!(
        again.is_none(),
        "nothing new and nothing in flight (a Job's run visibility does not show yet): described"
    );

    fake.set_runs(&desired.location, vec![visible_run("r2", RunResult::Failed)]);
    let failed = super::reconcile::follow_runs(&dj, &fake, &settings, &desired, now()).await;
    assert!(
        failed.is_none(),
        "a failed run may have paused the schedule: it is described"
    );
    fake.set_down(true);
    let down = super::reconcile::follow_runs(&dj, &fake, &settings, &desired, now()).await;
    assert!(
        down.is_none(),
        "runs that cannot be read leave it to the full look"
    );
}

#[test]
fn a_runs_job_wakes_its_durablejob_when_it_appears_and_when_it_ended() {
    use k8s_openapi::api::batch::v1::Job;
    let job = |conditions: serde_json::Value| -> Job {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "nightly-1", "namespace": "apps", "ownerReferences": [
                {"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "name": "nightly", "uid": "u", "controller": true},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "other", "uid": "c"}
            ]},
            "status": {"active": 1, "conditions": conditions}
        }))
        .expect("a Job")
    };
    let running = super::job_ended(&job(serde_json::json!([])));
    let progressed = super::job_ended(&job(
        serde_json::json!([{"type": "SuccessCriteriaMet", "status": "True"}]),
    ));
    let complete = super::job_ended(&job(serde_json::json!([{"type": "Complete", "status": "True"}])));
    let failed = super::job_ended(&job(serde_json::json!([{"type": "Failed", "status": "True"}])));
    assert_eq!(
        running, progressed,
        "the Job controller's steps between do not wake it"
    );
    assert_ne!(running, complete);
    assert_eq!(complete, failed, "ended either way");
    assert_eq!(
        super::owners(&job(serde_json::json!([]))),
        vec![kube::runtime::reflector::ObjectRef::new("nightly").within("apps")],
        "only the DurableJob owner, in the Job's namespace"
    );
}
