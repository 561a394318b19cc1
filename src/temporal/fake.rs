//! An in-memory [`Schedules`] with a call log, so the driver's decisions are tested in
//! milliseconds. It keeps what was written and describes it back the way the operator relies
//! on: a fingerprint that changes with every write, the owner from the memo, the paused state.
//! The real server is exercised by the end-to-end tests.

use std::{collections::BTreeMap, sync::Mutex};

use chrono::{DateTime, Utc};

use super::worker_deployments::{Drainage, GateOutcome, ObservedWorkerDeployment, WorkerDeployments};
use super::{Created, ObservedSchedule, RunRecord, Schedules, TemporalError, WriteOptions};
use crate::desired::schedule::{DesiredSchedule, ScheduleLocation};
use crate::util::digest::hex_sha256;

/// One call the operator made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Describe(String),
    Create(String),
    Update(String),
    Delete(String),
    RecentRuns(String),
    /// A `ListSchedules` page of this namespace.
    ListPage(String),
    /// `ListScheduleMatchingTimes` of this schedule.
    MatchingTimes(String),
    Backfill(String),
    Trigger(String),
    Stop(String),
    /// A Worker Deployment call: the operation and the deployment (and build id).
    Deployment(&'static str, String),
    /// A retry's look at the run it retries, and its start (the new workflow id).
    EndedRun(String),
    StartRetry(String),
}

impl Call {
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Call::Create(_)
                | Call::Update(_)
                | Call::Delete(_)
                | Call::Backfill(_)
                | Call::Trigger(_)
                | Call::Stop(_)
                | Call::StartRetry(_)
        )
    }
}

#[derive(Default)]
struct State {
    schedules: BTreeMap<(String, String), ObservedSchedule>,
    calls: Vec<Call>,
    down: bool,
    writes: u64,
    /// The slots each schedule's spec matches (the fake does not compute them).
    slots: BTreeMap<(String, String), Vec<DateTime<Utc>>>,
    /// Worker Deployments by (namespace, name).
    deployments: BTreeMap<(String, String), ObservedWorkerDeployment>,
    /// Gate workflows by (namespace, workflow id): how they stand.
    gates: BTreeMap<(String, String), GateOutcome>,
    /// Runs a retry may look at, by (namespace, workflow id).
    ended: BTreeMap<(String, String), crate::temporal::retries::EndedRun>,
    /// Retries started: (namespace, workflow id) to the input.
    retries: BTreeMap<(String, String), serde_json::Value>,
    /// What visibility shows of each schedule's runs, newest first (none unless set).
    runs: BTreeMap<(String, String), Vec<RunRecord>>,
}

#[derive(Default)]
pub struct FakeSchedules {
    state: Mutex<State>,
}

fn key(at: &ScheduleLocation) -> (String, String) {
    (at.namespace.clone(), at.id.clone())
}

impl FakeSchedules {
    /// How run `workflow_id` ended, for a retry to find.
    pub fn set_ended_run(&self, namespace: &str, workflow_id: &str, run: crate::temporal::retries::EndedRun) {
        let mut st = self.state.lock().expect("fake");
        st.ended.insert((namespace.into(), workflow_id.into()), run);
    }

    /// The input a retry `workflow_id` was started with.
    pub fn retry_input(&self, namespace: &str, workflow_id: &str) -> Option<serde_json::Value> {
        let st = self.state.lock().expect("fake");
        st.retries.get(&(namespace.into(), workflow_id.into())).cloned()
    }

    /// Sets what visibility shows of the runs of the schedule at `at`, newest first.
    pub fn set_runs(&self, at: &ScheduleLocation, runs: Vec<RunRecord>) {
        self.state.lock().expect("fake").runs.insert(key(at), runs);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().expect("fake").calls.clone()
    }

    pub fn clear_calls(&self) {
        self.state.lock().expect("fake").calls.clear();
    }

    /// Temporal unreachable (every call fails as unavailable) or back.
    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("fake").down = down;
    }

    /// The schedule stored at `at`.
    pub fn get(&self, at: &ScheduleLocation) -> Option<ObservedSchedule> {
        self.state.lock().expect("fake").schedules.get(&key(at)).cloned()
    }

    /// Puts a schedule in place as someone else (or an earlier write) left it.
    pub fn insert(&self, at: &ScheduleLocation, s: ObservedSchedule) {
        self.state.lock().expect("fake").schedules.insert(key(at), s);
    }

    /// The slots the schedule's spec matches, for `matching_times`.
    pub fn set_slots(&self, at: &ScheduleLocation, slots: Vec<DateTime<Utc>>) {
        self.state.lock().expect("fake").slots.insert(key(at), slots);
    }

    /// Changes a schedule as a person in the Temporal UI would (drift).
    pub fn tamper(&self, at: &ScheduleLocation) {
        let mut st = self.state.lock().expect("fake");
        if let Some(s) = st.schedules.get_mut(&key(at)) {
            s.fingerprint = hex_sha256(format!("{}-tampered", s.fingerprint).as_bytes());
            s.listing = hex_sha256(format!("{}-tampered", s.listing).as_bytes());
            // every write to a schedule moves its conflict token
            s.conflict_token.push(0);
        }
    }

    /// Temporal's Worker Deployment `namespace/name` as its workers and routing left it.
    pub fn set_deployment(&self, namespace: &str, name: &str, d: ObservedWorkerDeployment) {
        let mut st = self.state.lock().expect("fake");
        st.deployments.insert((namespace.into(), name.into()), d);
    }

    /// Ends (or sets) a gate workflow as its worker would.
    pub fn set_gate(&self, namespace: &str, workflow_id: &str, outcome: GateOutcome) {
        let mut st = self.state.lock().expect("fake");
        st.gates.insert((namespace.into(), workflow_id.into()), outcome);
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<ObservedWorkerDeployment> {
        let st = self.state.lock().expect("fake");
        st.deployments.get(&(namespace.into(), name.into())).cloned()
    }

    fn enter(&self, call: Call) -> Result<std::sync::MutexGuard<'_, State>, TemporalError> {
        let mut st = self.state.lock().expect("fake");
        st.calls.push(call);
        if st.down {
            return Err(TemporalError::Unavailable("connection refused (fake)".into()));
        }
        Ok(st)
    }

    fn stored(st: &mut State, desired: &DesiredSchedule, options: &WriteOptions) -> ObservedSchedule {
        st.writes += 1;
        ObservedSchedule {
            listing: hex_sha256(format!("{}|{}", desired.hash(), options.paused).as_bytes()),
            fingerprint: hex_sha256(format!("{}|{:?}|{}", desired.hash(), options, st.writes).as_bytes()),
            owner: Some(desired.owner.clone()),
            action_count_base: options.action_count_base,
            created_hash: Some(desired.hash()),
            paused: options.paused,
            notes: options.notes.clone(),
            conflict_token: st.writes.to_be_bytes().to_vec(),
            action_count: 0,
            missed_catchup_window: 0,
            overlap_skipped: 0,
            buffer_dropped: 0,
            limited_actions: options.remaining_actions.is_some(),
            remaining_actions: options.remaining_actions.unwrap_or(0),
            running: vec![],
            recent_actions: vec![],
            future_action_times: vec![],
            end_at: None,
        }
    }
}

impl Schedules for FakeSchedules {
    async fn describe(&self, at: &ScheduleLocation) -> Result<Option<ObservedSchedule>, TemporalError> {
        let st = self.enter(Call::Describe(at.id.clone()))?;
        Ok(st.schedules.get(&key(at)).cloned())
    }

    async fn create(
        &self,
        desired: &DesiredSchedule,
        options: &WriteOptions,
    ) -> Result<Created, TemporalError> {
        let mut st = self.enter(Call::Create(desired.location.id.clone()))?;
        if st.schedules.contains_key(&key(&desired.location)) {
            return Err(TemporalError::Conflict("schedule already exists (fake)".into()));
        }
        let s = Self::stored(&mut st, desired, options);
        let created = Created {
            conflict_token: s.conflict_token.clone(),
            listing: s.listing.clone(),
        };
        st.schedules.insert(key(&desired.location), s);
        Ok(created)
    }

    async fn update(
        &self,
        desired: &DesiredSchedule,
        options: &WriteOptions,
        conflict_token: &[u8],
    ) -> Result<(), TemporalError> {
        let mut st = self.enter(Call::Update(desired.location.id.clone()))?;
        match st.schedules.get(&key(&desired.location)) {
            None => return Err(TemporalError::Other("schedule not found (fake)".into())),
            Some(s) if s.conflict_token != conflict_token => {
                return Err(TemporalError::Conflict("conflict token mismatch (fake)".into()));
            }
            Some(_) => {}
        }
        // the memo is written at create only, as Temporal does
        let created_hash = st
            .schedules
            .get(&key(&desired.location))
            .and_then(|o| o.created_hash.clone());
        let mut s = Self::stored(&mut st, desired, options);
        s.created_hash = created_hash;
        st.schedules.insert(key(&desired.location), s);
        Ok(())
    }

    async fn delete(&self, at: &ScheduleLocation) -> Result<(), TemporalError> {
        let mut st = self.enter(Call::Delete(at.id.clone()))?;
        st.schedules.remove(&key(at));
        Ok(())
    }

    async fn recent_runs(
        &self,
        at: &ScheduleLocation,
        _limit: usize,
    ) -> Result<Vec<RunRecord>, TemporalError> {
        let st = self.enter(Call::RecentRuns(at.id.clone()))?;
        Ok(st.runs.get(&key(at)).cloned().unwrap_or_default())
    }

    async fn matching_times(
        &self,
        at: &ScheduleLocation,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, TemporalError> {
        let st = self.enter(Call::MatchingTimes(at.id.clone()))?;
        Ok(st
            .slots
            .get(&key(at))
            .into_iter()
            .flatten()
            // strictly after start, at one-second resolution, as Temporal answers
            .filter(|t| t.timestamp() > start.timestamp() && **t <= end)
            .copied()
            .collect())
    }

    async fn list_page(
        &self,
        namespace: &str,
        page_token: &[u8],
    ) -> Result<super::SchedulePage, TemporalError> {
        const PAGE: usize = 2;
        let st = self.enter(Call::ListPage(namespace.to_string()))?;
        let skip: usize = std::str::from_utf8(page_token)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let all: Vec<super::ListedSchedule> = st
            .schedules
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|((_, id), s)| super::ListedSchedule {
                id: id.clone(),
                listing: s.listing.clone(),
            })
            .collect();
        let next = skip + PAGE;
        Ok(super::SchedulePage {
            schedules: all.iter().skip(skip).take(PAGE).cloned().collect(),
            next_page_token: if next < all.len() {
                next.to_string().into_bytes()
            } else {
                vec![]
            },
        })
    }

    async fn backfill(
        &self,
        at: &ScheduleLocation,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
    ) -> Result<(), TemporalError> {
        drop(self.enter(Call::Backfill(at.id.clone()))?);
        Ok(())
    }

    async fn trigger(
        &self,
        at: &ScheduleLocation,
        _overlap: Option<crate::api::OverlapPolicy>,
        _scheduled_time: DateTime<Utc>,
        _request_id: &str,
    ) -> Result<(), TemporalError> {
        let st = self.enter(Call::Trigger(at.id.clone()))?;
        match st.schedules.get(&key(at)) {
            Some(_) => Ok(()),
            None => Err(TemporalError::Other(format!(
                "schedule {} not found (fake)",
                at.id
            ))),
        }
    }

    async fn backfill_slots(
        &self,
        at: &ScheduleLocation,
        _start: DateTime<Utc>,
        _end: DateTime<Utc>,
        _overlap: Option<crate::api::OverlapPolicy>,
        _request_id: &str,
    ) -> Result<(), TemporalError> {
        drop(self.enter(Call::Backfill(at.id.clone()))?);
        Ok(())
    }

    async fn stop_run(
        &self,
        _namespace: &str,
        run: &super::RunRef,
        _terminate: bool,
        _reason: &str,
        _request_id: &str,
    ) -> Result<bool, TemporalError> {
        let mut st = self.enter(Call::Stop(run.workflow_id.clone()))?;
        let mut found = false;
        for s in st.schedules.values_mut() {
            let before = s.running.len();
            s.running.retain(|r| r.workflow_id != run.workflow_id);
            found |= s.running.len() != before;
        }
        Ok(found)
    }
}

/// The deployment a routing change is made to, as Temporal guards it: it must exist and the
/// change must be decided on its latest description ([`changed`] gives it a new token).
fn routed<'a>(
    st: &'a mut State,
    namespace: &str,
    name: &str,
    conflict_token: &[u8],
) -> Result<&'a mut ObservedWorkerDeployment, TemporalError> {
    let d = st
        .deployments
        .get_mut(&(namespace.into(), name.into()))
        .ok_or_else(|| TemporalError::Rejected(format!("worker deployment {name} not found (fake)")))?;
    if d.conflict_token != conflict_token {
        return Err(TemporalError::Conflict("conflict token mismatch (fake)".into()));
    }
    Ok(d)
}

/// A routing change made: the next one needs the new token.
fn changed(d: &mut ObservedWorkerDeployment) {
    d.conflict_token = vec![d.conflict_token.first().copied().unwrap_or(0).wrapping_add(1)];
}

impl WorkerDeployments for FakeSchedules {
    async fn describe_deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ObservedWorkerDeployment>, TemporalError> {
        let st = self.enter(Call::Deployment("describe", name.into()))?;
        Ok(st.deployments.get(&(namespace.into(), name.into())).cloned())
    }

    async fn set_current_version(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
        conflict_token: &[u8],
    ) -> Result<(), TemporalError> {
        let mut st = self.enter(Call::Deployment("set_current", format!("{name}:{build_id}")))?;
        let d = routed(&mut st, namespace, name, conflict_token)?;
        if !build_id.is_empty() && d.version(build_id).is_none() {
            return Err(TemporalError::Rejected(format!(
                "version {build_id} has no pollers (fake)"
            )));
        }
        let before = std::mem::replace(
            &mut d.current,
            Some(build_id.to_string()).filter(|b| !b.is_empty()),
        );
        for v in &mut d.versions {
            if Some(&v.build_id) == before.as_ref() && v.build_id != build_id {
                v.drainage = Drainage::Draining;
            }
            if v.build_id == build_id {
                v.drainage = Drainage::NotDraining;
            }
        }
        changed(d);
        Ok(())
    }

    async fn set_ramping_version(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
        percentage: f32,
        conflict_token: &[u8],
    ) -> Result<(), TemporalError> {
        let mut st = self.enter(Call::Deployment(
            "set_ramping",
            format!("{name}:{build_id}:{percentage}"),
        ))?;
        let d = routed(&mut st, namespace, name, conflict_token)?;
        d.ramping = (!build_id.is_empty()).then(|| (build_id.to_string(), percentage));
        changed(d);
        Ok(())
    }

    async fn delete_version(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
        skip_drainage: bool,
    ) -> Result<(), TemporalError> {
        let mut st = self.enter(Call::Deployment("delete_version", format!("{name}:{build_id}")))?;
        let Some(d) = st.deployments.get_mut(&(namespace.into(), name.into())) else {
            return Ok(());
        };
        if d.current.as_deref() == Some(build_id) {
            return Err(TemporalError::Rejected(format!(
                "version {build_id} is current (fake)"
            )));
        }
        if !skip_drainage
            && d.version(build_id)
                .is_some_and(|v| v.drainage == Drainage::Draining)
        {
            return Err(TemporalError::Rejected(format!(
                "version {build_id} is draining (fake)"
            )));
        }
        d.versions.retain(|v| v.build_id != build_id);
        Ok(())
    }

    async fn start_pinned(
        &self,
        namespace: &str,
        workflow_id: &str,
        _workflow_type: &str,
        _task_queue: &str,
        _name: &str,
        build_id: &str,
    ) -> Result<(), TemporalError> {
        let mut st = self.enter(Call::Deployment(
            "start_gate",
            format!("{workflow_id}@{build_id}"),
        ))?;
        st.gates
            .entry((namespace.into(), workflow_id.into()))
            .or_insert(GateOutcome::Running);
        Ok(())
    }

    async fn gate_outcome(
        &self,
        namespace: &str,
        workflow_id: &str,
    ) -> Result<Option<GateOutcome>, TemporalError> {
        let st = self.enter(Call::Deployment("gate", workflow_id.into()))?;
        Ok(st.gates.get(&(namespace.into(), workflow_id.into())).cloned())
    }

    async fn delete_deployment(&self, namespace: &str, name: &str) -> Result<(), TemporalError> {
        let mut st = self.enter(Call::Deployment("delete", name.into()))?;
        let key = (namespace.to_string(), name.to_string());
        if st.deployments.get(&key).is_some_and(|d| !d.versions.is_empty()) {
            return Err(TemporalError::Rejected(format!(
                "worker deployment {name} has versions (fake)"
            )));
        }
        st.deployments.remove(&key);
        Ok(())
    }
}

impl crate::temporal::retries::Retries for FakeSchedules {
    async fn ended_run(
        &self,
        namespace: &str,
        workflow_id: &str,
    ) -> Result<Option<crate::temporal::retries::EndedRun>, TemporalError> {
        let st = self.enter(Call::EndedRun(workflow_id.into()))?;
        Ok(st.ended.get(&(namespace.into(), workflow_id.into())).cloned())
    }

    async fn start_retry(
        &self,
        r: &crate::temporal::retries::RetryStart<'_>,
    ) -> Result<String, TemporalError> {
        let mut st = self.enter(Call::StartRetry(r.workflow_id.into()))?;
        st.retries
            .insert((r.namespace.into(), r.workflow_id.into()), r.input.clone());
        Ok(format!("run-of-{}", r.workflow_id))
    }
}
