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
