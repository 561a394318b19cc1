//! The runner's workflow stays compatible with histories recorded by earlier versions: recorded
//! runs are replayed through today's code with no server. A one-Job run (three attempts: fail,
//! fail, succeed) recorded before the end-of-run cleanup was a local activity, the same run
//! recorded after (its patch marker and the local activity's marker in the history), and a
//! three-step run whose middle step fails twice. Each was recorded from the e2e suite, e.g.
//! `DURABLEJOB_RECORD_HISTORY=$PWD/tests/fixtures/run-history-local-cleanup.json cargo test --test e2e -- fails_twice`
//! and `DURABLEJOB_RECORD_STEPS_HISTORY=$PWD/tests/fixtures/run-history-steps.json cargo test --test e2e -- a_three_step`;
//! a fixture recorded by an older version is kept, never refreshed, as long as runs it stands for
//! may still be in flight.

use durablejob::runner::workflow::DurableJobRun;
use temporalio_common::protos::temporal::api::history::v1::{History, history_event::Attributes};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

#[tokio::test]
async fn a_recorded_three_attempt_run_replays_without_nondeterminism() {
    replays("run-history-three-attempts.json", 20).await;
}

#[tokio::test]
async fn a_run_whose_cleanup_was_a_local_activity_replays_without_nondeterminism() {
    let history = fixture("run-history-local-cleanup.json");
    let marker = |name: &str| {
        history.events.iter().any(|e| {
            matches!(&e.attributes, Some(Attributes::MarkerRecordedEventAttributes(m)) if m.marker_name == name)
        })
    };
    assert!(
        marker("core_patch") && marker("core_local_activity"),
        "the fixture is a run recorded with the local cleanup"
    );
    replays("run-history-local-cleanup.json", 20).await;
}

#[tokio::test]
async fn a_recorded_three_step_run_replays_without_nondeterminism() {
    replays("run-history-steps.json", 60).await;
}

/// The recorded history in tests/fixtures/`name`.
fn fixture(name: &str) -> History {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Replays the recorded history `name` (of more than `events` events) through today's code.
async fn replays(name: &str, events: usize) {
    let history = fixture(name);
    assert!(history.events.len() > events, "a real recorded history");
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<DurableJobRun>()
            .unwrap()
            .build(),
    )
    .unwrap();
    replayer
        .replay_workflow(temporalio_client::WorkflowHistory::from(history))
        .await
        .expect("deterministic replay");
}

#[tokio::test]
async fn a_history_from_different_workflow_code_is_refused() {
    // The same history with the attempts' activity renamed: replay must report the mismatch,
    // which is what makes the test above able to fail.
    let mut corrupted = fixture("run-history-three-attempts.json");
    for e in corrupted.events.iter_mut() {
        if let Some(Attributes::ActivityTaskScheduledEventAttributes(a)) = e.attributes.as_mut() {
            a.activity_type.as_mut().unwrap().name = "somethingElse".into();
        }
    }
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<DurableJobRun>()
            .unwrap()
            .build(),
    )
    .unwrap();
    let result = replayer
        .replay_workflow(temporalio_client::WorkflowHistory::from(corrupted))
        .await;
    assert!(
        result.is_err(),
        "a history from different workflow code is refused"
    );
}
