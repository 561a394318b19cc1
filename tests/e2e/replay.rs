//! Replaying a recorded `durablejob.run` history through the workflow code.

use durablejob::runner::workflow::DurableJobRun;
use temporalio_common::protos::temporal::api::history::v1::{History, HistoryEvent};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

/// Replays on a runtime of its own (the replayer's future is not `Send`).
pub async fn replay(events: Vec<HistoryEvent>) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let replayer = WorkflowReplayer::new(
                WorkflowReplayerOptions::new()
                    .register_workflow::<DurableJobRun>()?
                    .build(),
            )?;
            replayer
                .replay_workflow(temporalio_client::WorkflowHistory::from(History { events }))
                .await?;
            anyhow::Ok(())
        })
    })
    .await?
}

/// The history of run `workflow_id` in `env`'s namespace, replayed through the workflow code;
/// with the environment variable `record` set to a path, also written there (the fixture the
/// offline replay test uses, tests/replay.rs).
pub async fn replays_recorded(
    env: &crate::env::Env,
    workflow_id: &str,
    record: &str,
) -> anyhow::Result<Vec<HistoryEvent>> {
    let client = crate::runs::temporal_client(env).await?;
    let history = client
        .get_workflow_handle::<temporalio_common::UntypedWorkflow>(workflow_id.to_string())
        .fetch_history(Default::default())
        .into_events()
        .await?;
    if let Ok(path) = std::env::var(record) {
        let json = serde_json::to_vec_pretty(&History {
            events: history.clone(),
        })?;
        std::fs::write(&path, json)?;
    }
    replay(history.clone()).await?;
    Ok(history)
}
