//! The one vocabulary of the operator: every condition type and every reason it gives. A
//! reason is at once a condition reason, an Event reason, a `pausedReason` and a metric label,
//! so what a user reads in `kubectl describe`, what `kubectl get dj` shows and what a dashboard
//! counts always agree. Nothing else in the code spells a reason as a string.

use strum::{AsRefStr, Display, EnumString, IntoStaticStr, VariantArray};

/// Condition types on a DurableJob.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, AsRefStr, Display, EnumString, IntoStaticStr, VariantArray,
)]
pub enum ConditionType {
    /// Everything the resource asks for is in place.
    Ready,
    /// The Temporal schedule matches the spec.
    ScheduleSynced,
    /// The user worker Deployment has available replicas (only with spec.worker).
    WorkerAvailable,
    /// A versioned user worker's new version is on its way to current (only with spec.worker
    /// and a versioned rollout).
    RolloutProgressing,
    /// kstatus: the operator is still working toward the spec (a transient problem or a change in flight).
    Reconciling,
    /// kstatus: the operator cannot make progress without a change by a person.
    Stalled,
}

/// Why: condition reasons, Event reasons, paused reasons and metric labels.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, AsRefStr, Display, EnumString, IntoStaticStr, VariantArray,
)]
pub enum Reason {
    // --- the schedule's state (conditions)
    Synced,
    Completed,
    PausedAfterFailure,
    AsExpected,
    Deleting,
    WorkerAvailable,
    WorkerUnavailable,
    /// A worker version's pods are not all Ready yet.
    WaitingForReplicas,
    /// A worker version's pods run, but Temporal has not seen them poll as that version.
    WaitingForPollers,
    /// spec.worker.replicas is 0: no version can become current.
    NoReplicas,
    /// rollout Manual: the new version is ready; a person makes it current.
    WaitingForPromotion,
    /// rollout Progressive: the new version gets a share of new runs.
    Ramping,
    /// A rollout held by `pause-rollout`, or after a `rollback`, until resumed or the spec changes.
    RolloutHeld,
    /// The rollout's gate workflow runs on the new version before routing goes on.
    GateRunning,
    // --- why a pause is in place (status.pausedReason)
    Suspended,
    RunFailed,
    /// spec.suspendAfterFailures runs failed in a row.
    ConsecutiveFailures,
    /// Paused in Temporal by someone else (not the spec, not after a failed run): shown until
    /// the operator's drift repair unpauses it.
    Paused,
    // --- problems (conditions, Warning Events, reconcile_failures)
    InvalidSpec,
    TemporalUnavailable,
    TemporalRejected,
    NamespaceNotFound,
    PermissionDenied,
    ScheduleOwnedElsewhere,
    Conflict,
    TemporalError,
    DeleteFailed,
    /// The worker Deployment could not be applied (a 403, an invalid template, ...).
    WorkerApplyFailed,
    /// A Kubernetes API request failed.
    KubernetesError,
    /// An object the operator cannot deserialize (an outdated CRD).
    UnreadableObject,
    /// A DurableJob without a namespace.
    NotNamespaced,
    /// A jobTemplate DurableJob in a Temporal namespace the built-in runner does not poll, or on
    /// a task queue that is not the runner's.
    RunnerNotServing,
    /// spec.temporal.namespace names a Temporal namespace the cluster admin did not grant to
    /// the DurableJob's Kubernetes namespace.
    TemporalNamespaceNotGranted,
    /// A spec.worker DurableJob names the built-in runner's workflow type or task queue.
    ReservedForRunner,
    /// A Deployment with the worker's name exists and is not this DurableJob's: left untouched.
    WorkerNameTaken,

    /// spec.schedule.excludeCalendars names a DurableJobCalendar that does not exist.
    CalendarNotFound,
    /// A referenced DurableJobCalendar has an entry that cannot be read.
    InvalidCalendar,
    /// A DurableJobCalendar's deletion waits until no DurableJob references it.
    CalendarInUse,
    // --- runs Temporal did not start (Warning Events, status.missedRunsByCause, metrics)
    /// Due longer ago than spec.catchupWindow when Temporal could start it.
    CatchupWindowPassed,
    /// Due while a run was going, with overlapPolicy Skip.
    OverlapSkipped,
    /// Due while the buffer of BufferOne/BufferAll was full.
    BufferFull,
    // --- a run's end (Events, with --run-events; RunFailed is above)
    RunSucceeded,
    /// A run completed, but items of a fan-out step (continueOnItemFailure) failed.
    RunPartiallyFailed,
    // --- run-control requests (status.requests, Events)
    RunTriggered,
    BackfillStarted,
    /// A retry of a multi-step run started (`kubectl durablejob retry`).
    RetryStarted,
    RunCanceled,
    RunTerminated,
    RequestRejected,
    RequestFailed,
    // --- writes (Normal Events, schedule_writes)
    ScheduleCreated,
    ScheduleRecreated,
    ScheduleUpdated,
    DriftRepaired,
    ScheduleAdopted,
    ScheduleResumed,
    ScheduleDeleted,
    ScheduleOrphaned,
    WorkerCreated,
    WorkerUpdated,
    WorkerDeleted,
    /// A worker version was made current: new runs go to it.
    VersionCurrent,
    /// A worker version's share of new runs was set (Progressive), or a ramp ended.
    VersionRamping,
    /// New runs were routed back to the version before (`rollback`).
    VersionRolledBack,
    /// The rollout's gate workflow failed on the new version: the rollout stops.
    GateFailed,
    /// A rollout is held where it stands (`pause-rollout`), or goes on (`resume-rollout`).
    RolloutPaused,
    RolloutResumed,
    /// A drained worker version's Deployment was scaled to zero.
    VersionScaledDown,
    /// A worker version's Deployment, or its Temporal version, was deleted.
    VersionDeleted,
    // --- the CronJob handover
    HandoverStarted,
    HandoverRefused,
    HandoverSuspended,
    HandoverUnpaused,
    HandoverBackfilled,
    HandedOver,
    RollbackStarted,
    RolledBack,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_spelled_as_its_variant_and_parses_back() {
        for r in Reason::VARIANTS {
            let text = r.as_str();
            assert_eq!(text, format!("{r:?}"));
            assert_eq!(text.parse::<Reason>(), Ok(*r));
            assert!(
                text.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && text.chars().all(|c| c.is_ascii_alphanumeric()),
                "a Kubernetes reason is UpperCamelCase: {text}"
            );
        }
        assert_eq!(ConditionType::ScheduleSynced.as_str(), "ScheduleSynced");
    }
}
