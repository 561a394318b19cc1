//! Following a run without describing its schedule. A reconcile woken only by one of the
//! DurableJob's run Jobs (made, or finished) reads the runs from Temporal's visibility store
//! and lays them over the status, when nothing else can have changed since this process last
//! looked at the whole schedule. A describe is a query on the schedule's workflow, answered by
//! the Temporal namespace's own scheduler worker, the same worker that starts the scheduled
//! runs: in a fire storm every run's two Job wakes asked it twice per run, at the moment it had
//! most to start.
//!
//! What decides is pure ([`may_follow`], [`needs_a_look`]); [`Wakes`] remembers why each
//! DurableJob was woken and which ones this process has looked at in full.

use std::{collections::HashMap, sync::Mutex};

use kube::{ResourceExt, core::DeserializeGuard, runtime::reflector::ObjectRef};

use crate::api::{DurableJob, DurableJobStatus, RunResult};
use crate::controller::status::sync_record::written_from;
use crate::desired::schedule::DesiredSchedule;
use crate::temporal::RunRecord;

/// A DurableJob, as the controller's queue names it.
pub(crate) type Key = ObjectRef<DeserializeGuard<DurableJob>>;

/// Why a DurableJob was woken, as far as it matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Only a run's Job changed: it appeared, or it ended (the Job watch passes nothing
    /// between).
    Run,
    /// Anything else: a change to the resource, a calendar, the sweep seeing the schedule
    /// change in Temporal, a requeue. The schedule is described.
    Full,
}

/// What this process last looked at in full, per DurableJob: the object (its uid) at which
/// generation. A restarted operator has looked at nothing, so its first reconcile of each is a
/// full one whatever woke it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Looked {
    uid: String,
    generation: Option<i64>,
}

/// The wakes waiting for their reconcile, and the full looks made.
#[derive(Default)]
pub(crate) struct Wakes {
    pending: Mutex<HashMap<Key, Wake>>,
    looked: Mutex<HashMap<Key, Looked>>,
}

impl Wakes {
    /// A run's Job woke `key`. Does not weaken a full wake still waiting.
    pub(crate) fn by_run(&self, key: Key) {
        self.pending
            .lock()
            .expect("wakes lock")
            .entry(key)
            .or_insert(Wake::Run);
    }

    /// Something that needs the whole schedule looked at woke `key` (the sweep).
    pub(crate) fn by_change(&self, key: Key) {
        self.pending.lock().expect("wakes lock").insert(key, Wake::Full);
    }

    /// Why `dj` was woken, forgetting it: a wake nothing noted (the resource changed, a
    /// requeue) is a full one.
    pub(crate) fn take(&self, dj: &DurableJob) -> Wake {
        self.pending
            .lock()
            .expect("wakes lock")
            .remove(&key(dj))
            .unwrap_or(Wake::Full)
    }

    /// A full look at `dj` ended cleanly (no problem, nothing left to look at soon).
    pub(crate) fn looked(&self, dj: &DurableJob) {
        let seen = Looked {
            uid: dj.uid().unwrap_or_default(),
            generation: dj.metadata.generation,
        };
        self.looked.lock().expect("wakes lock").insert(key(dj), seen);
    }

    /// A look at `dj` did not end cleanly, or it is being deleted: the next reconcile is a
    /// full one.
    pub(crate) fn forget(&self, dj: &DurableJob) {
        let key = key(dj);
        self.looked.lock().expect("wakes lock").remove(&key);
        self.pending.lock().expect("wakes lock").remove(&key);
    }

    /// Whether this process's last full look was at this very object and generation, and
    /// ended cleanly.
    pub(crate) fn has_looked(&self, dj: &DurableJob) -> bool {
        let looked = self.looked.lock().expect("wakes lock");
        looked
            .get(&key(dj))
            .is_some_and(|l| l.uid == dj.uid().unwrap_or_default() && l.generation == dj.metadata.generation)
    }
}

fn key(dj: &DurableJob) -> Key {
    ObjectRef::new(&dj.name_any()).within(&dj.namespace().unwrap_or_default())
}

/// Whether a reconcile woken by `wake` may follow the runs alone: only a Job woke it, this
/// process looked at this generation in full and cleanly, the schedule was written from exactly
/// this spec where it is now, and nothing waits on the schedule itself (a request, a streak of
/// failures counted from its description, a finished schedule, a deletion).
pub(crate) fn may_follow(
    wake: Wake,
    looked: bool,
    dj: &DurableJob,
    desired: &DesiredSchedule,
    requests_pending: bool,
) -> bool {
    let Some(previous) = dj.status.as_ref() else {
        return false;
    };
    let written_from_this_spec = written_from(Some(previous), &desired.hash());
    wake == Wake::Run
        && looked
        && dj.metadata.deletion_timestamp.is_none()
        && previous.observed_generation == dj.metadata.generation
        && written_from_this_spec
        && previous.schedule_id.as_deref() == Some(desired.location.id.as_str())
        && previous.temporal_namespace.as_deref() == Some(desired.location.namespace.as_str())
        && !previous.completed
        && desired.streak.is_none()
        && !requests_pending
}

/// Whether the runs read show something the schedule's description must follow: a run that
/// ended other than successfully since the status was written (Temporal may have paused the
/// schedule for it).
pub(crate) fn needs_a_look(previous: &DurableJobStatus, runs: &[RunRecord]) -> bool {
    runs.iter()
        .filter(|r| !matches!(r.result, RunResult::Running | RunResult::Succeeded))
        .any(|r| {
            !previous
                .recent_runs
                .iter()
                .any(|p| p.run_id == r.run.run_id && p.result == r.result)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{RecentRun, SyncRecord};
    use crate::temporal::RunRef;
    use chrono::{TimeZone, Utc};

    /// A DurableJob this process looked at in full, as its status records it.
    fn followed() -> (DurableJob, DesiredSchedule) {
        let mut dj = DurableJob::test("nightly");
        dj.metadata.generation = Some(3);
        dj.metadata.uid = Some("uid-1".into());
        let desired = dj.desired_schedule();
        dj.status = Some(DurableJobStatus {
            observed_generation: Some(3),
            schedule_id: Some(desired.location.id.clone()),
            temporal_namespace: Some(desired.location.namespace.clone()),
            sync: Some(SyncRecord {
                desired_hash: desired.hash(),
                ..Default::default()
            }),
            ..Default::default()
        });
        (dj, desired)
    }

    #[test]
    fn only_a_job_wake_of_a_looked_at_unchanged_resource_follows_the_runs_alone() {
        let (dj, desired) = followed();
        assert!(may_follow(Wake::Run, true, &dj, &desired, false));
        assert!(
            !may_follow(Wake::Full, true, &dj, &desired, false),
            "woken by something else"
        );
        assert!(
            !may_follow(Wake::Run, false, &dj, &desired, false),
            "not looked at by this process"
        );
        assert!(
            !may_follow(Wake::Run, true, &dj, &desired, true),
            "a request waits"
        );
    }

    #[test]
    fn anything_the_schedule_must_follow_makes_a_full_look() {
        let (dj, desired) = followed();
        type Change = Box<dyn Fn(&mut DurableJob)>;
        let changes: Vec<(&str, Change)> = vec![
            ("a new generation", Box::new(|d| d.metadata.generation = Some(4))),
            (
                "a deletion",
                Box::new(|d| {
                    d.metadata.deletion_timestamp =
                        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                        ))
                }),
            ),
            (
                "written from another spec",
                Box::new(|d| d.status.as_mut().unwrap().sync.as_mut().unwrap().desired_hash = "old".into()),
            ),
            ("no status", Box::new(|d| d.status = None)),
            (
                "elsewhere in Temporal",
                Box::new(|d| d.status.as_mut().unwrap().temporal_namespace = Some("other".into())),
            ),
            (
                "finished",
                Box::new(|d| d.status.as_mut().unwrap().completed = true),
            ),
        ];
        for (what, change) in changes {
            let mut changed = dj.clone();
            change(&mut changed);
            assert!(!may_follow(Wake::Run, true, &changed, &desired, false), "{what}");
        }
        let mut streak = dj.clone();
        streak.spec.suspend_after_failures = Some(3);
        let counted = streak.desired_schedule();
        streak
            .status
            .as_mut()
            .unwrap()
            .sync
            .as_mut()
            .unwrap()
            .desired_hash = counted.hash();
        assert!(
            !may_follow(Wake::Run, true, &streak, &counted, false),
            "a failure streak is counted with the schedule's description"
        );
    }

    #[test]
    fn a_full_wake_is_not_weakened_by_a_job_and_a_wake_is_taken_once() {
        let (dj, _) = followed();
        let wakes = Wakes::default();
        assert_eq!(wakes.take(&dj), Wake::Full, "nothing noted: a full look");
        wakes.by_run(key(&dj));
        assert_eq!(wakes.take(&dj), Wake::Run);
        assert_eq!(wakes.take(&dj), Wake::Full, "taken once");
        wakes.by_change(key(&dj));
        wakes.by_run(key(&dj));
        assert_eq!(wakes.take(&dj), Wake::Full, "the sweep's wake stays full");
        wakes.by_run(key(&dj));
        wakes.by_change(key(&dj));
        assert_eq!(wakes.take(&dj), Wake::Full);
    }

    #[test]
    fn a_look_counts_for_the_same_object_and_generation_until_forgotten() {
        let (dj, _) = followed();
        let wakes = Wakes::default();
        assert!(!wakes.has_looked(&dj), "a new process has looked at nothing");
        wakes.looked(&dj);
        assert!(wakes.has_looked(&dj));
        let mut next = dj.clone();
        next.metadata.generation = Some(4);
        assert!(!wakes.has_looked(&next), "another generation");
        let mut recreated = dj.clone();
        recreated.metadata.uid = Some("uid-2".into());
        assert!(
            !wakes.has_looked(&recreated),
            "deleted and made again under the same name"
        );
        wakes.by_run(key(&dj));
        wakes.forget(&dj);
        assert!(!wakes.has_looked(&dj));
        assert_eq!(wakes.take(&dj), Wake::Full, "forgetting drops a waiting wake too");
    }

    fn record(id: &str, result: RunResult) -> RunRecord {
        let t = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
        RunRecord {
            run: RunRef {
                workflow_id: format!("wf-{id}"),
                run_id: id.into(),
            },
            scheduled_time: Some(t),
            start_time: t,
            close_time: (result != RunResult::Running).then_some(t),
            result,
            job_name: None,
            attempts: None,
            message: None,
            build_id: None,
            step: None,
            progress: None,
        }
    }

    #[test]
    fn a_run_that_newly_ended_other_than_successfully_needs_the_schedule_described() {
        let mut previous = DurableJobStatus::default();
        let ok = [record("a", RunResult::Succeeded), record("b", RunResult::Running)];
        assert!(!needs_a_look(&previous, &ok));
        for ended in [
            RunResult::Failed,
            RunResult::TimedOut,
            RunResult::Terminated,
            RunResult::Canceled,
        ] {
            assert!(needs_a_look(&previous, &[record("c", ended)]), "{ended:?}");
        }
        previous.recent_runs = vec![RecentRun {
            workflow_id: "wf-c".into(),
            run_id: "c".into(),
            scheduled_time: Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap(),
            start_time: Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap(),
            close_time: None,
            result: RunResult::Failed,
            job_name: None,
            attempts: None,
            message: None,
            build_id: None,
            progress: None,
        }];
        assert!(
            !needs_a_look(&previous, &[record("c", RunResult::Failed)]),
            "a failure the status already shows was looked at"
        );
    }
}
