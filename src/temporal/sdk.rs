//! [`Schedules`] on the official Temporal Rust SDK, through raw gRPC calls: the high-level
//! schedule API cannot set memo, timeouts or retry policies on create, and its update drops
//! parts of the action. The protobuf translation is made of pure functions, tested below.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use chrono::{DateTime, Utc};
use serde_json::Value;
use temporalio_client::tonic::{Code, Status};
use temporalio_client::{Client, NamespacedClient, grpc::WorkflowService, tonic::IntoRequest};
use temporalio_common::protos::{
    coresdk::{AsJsonPayloadExt, FromJsonPayloadExt},
    temporal::api::{
        common::v1::{
            Memo, Payload, Payloads, RetryPolicy, SearchAttributes, WorkflowExecution, WorkflowType,
        },
        enums::v1::{ScheduleOverlapPolicy, WorkflowExecutionStatus},
        schedule::v1::{
            BackfillRequest, IntervalSpec, Schedule, ScheduleAction, ScheduleActionResult, ScheduleListEntry,
            SchedulePatch, SchedulePolicies, ScheduleSpec, ScheduleState, StructuredCalendarSpec,
            TriggerImmediatelyRequest, schedule_action::Action,
        },
        taskqueue::v1::TaskQueue,
        workflow::v1::{NewWorkflowExecutionInfo, VersioningOverride, versioning_override},
        workflowservice::v1::{
            CreateScheduleRequest, DeleteScheduleRequest, DescribeScheduleRequest, DescribeScheduleResponse,
            ListScheduleMatchingTimesRequest, ListSchedulesRequest, ListWorkflowExecutionsRequest,
            PatchScheduleRequest, RequestCancelWorkflowExecutionRequest, TerminateWorkflowExecutionRequest,
            UpdateScheduleRequest,
        },
    },
};

use super::{
    Created, ListedSchedule, ObservedSchedule, RecentAction, RunRecord, RunRef, SchedulePage, Schedules,
    TemporalError, WriteOptions, connect::ClientPool,
};
use crate::api::{OverlapPolicy, RunResult};
use crate::desired::schedule::{DesiredSchedule, Owner, ScheduleLocation, memo};
use crate::desired::validate::ValidRetry;
use crate::util::digest::{canonical_json, hex_sha256};

use crate::run_contract::memo as run_memo;

/// Counts of the operator's Temporal calls by operation, for metrics and tests.
pub trait CallObserver: Send + Sync {
    fn observe(&self, operation: &'static str, ok: bool);
}

/// The SDK-backed implementation.
#[derive(Clone)]
pub struct SdkSchedules {
    pool: Arc<ClientPool>,
    pub(super) identity: String,
    observer: Option<Arc<dyn CallObserver>>,
    pub(super) limit: Arc<super::limit::Limiter>,
}

/// Temporal calls in flight at most, across reconciles (each reconcile makes one at a time).
pub const MAX_IN_FLIGHT: usize = 64;

impl SdkSchedules {
    pub fn new(pool: Arc<ClientPool>, identity: String, observer: Option<Arc<dyn CallObserver>>) -> Self {
        Self {
            pool,
            identity,
            observer,
            limit: Arc::new(super::limit::Limiter::new(MAX_IN_FLIGHT)),
        }
    }

    pub(super) async fn client(&self, namespace: &str) -> Result<Client, TemporalError> {
        self.pool.client(namespace).await
    }

    /// One gRPC call in `namespace` through the limiter, counted as `operation`: `call` gets a
    /// clone of the namespace's client per try; a NotFound answer is `if_missing` when given.
    pub(super) async fn rpc<T, F, Fut>(
        &self,
        namespace: &str,
        operation: &'static str,
        if_missing: Option<T>,
        call: F,
    ) -> Result<T, TemporalError>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let client = self.client(namespace).await?;
        let r = match self.limit.call(|| call(client.clone())).await {
            Ok(v) => Ok(v),
            Err(s) if is_not_found(&s) && if_missing.is_some() => Ok(if_missing.expect("checked")),
            Err(s) => Err(classify(namespace, s)),
        };
        self.observe(operation, &r);
        r
    }

    /// The latest run of workflow `workflow_id` as Temporal describes it; `Ok(None)` when
    /// there is none.
    pub(super) async fn describe_execution(
        &self,
        namespace: &str,
        operation: &'static str,
        workflow_id: &str,
    ) -> Result<
        Option<temporalio_common::protos::temporal::api::workflow::v1::WorkflowExecutionInfo>,
        TemporalError,
    > {
        self.rpc(namespace, operation, Some(None), |mut c| {
            let req = temporalio_common::protos::temporal::api::workflowservice::v1::DescribeWorkflowExecutionRequest {
                namespace: c.namespace(),
                execution: Some(WorkflowExecution {
                    workflow_id: workflow_id.to_string(),
                    run_id: String::new(),
                }),
            };
            async move {
                let info = WorkflowService::describe_workflow_execution(&mut c, req.into_request())
                    .await?
                    .into_inner()
                    .workflow_execution_info;
                Ok(Some(info.unwrap_or_default()))
            }
        })
        .await
    }

    pub(super) fn observe<T>(&self, operation: &'static str, r: &Result<T, TemporalError>) {
        if let Some(o) = &self.observer {
            o.observe(operation, r.is_ok());
        }
    }
}

impl SdkSchedules {
    async fn patch(
        &self,
        at: &ScheduleLocation,
        patch: SchedulePatch,
        request_id: String,
        operation: &'static str,
    ) -> Result<(), TemporalError> {
        let client = self.client(&at.namespace).await?;
        let req = PatchScheduleRequest {
            namespace: client.namespace(),
            schedule_id: at.id.clone(),
            patch: Some(patch),
            identity: self.identity.clone(),
            request_id,
        };
        let r = self
            .limit
            .call(|| {
                let mut c = client.clone();
                let req = req.clone();
                async move { WorkflowService::patch_schedule(&mut c, req.into_request()).await }
            })
            .await
            .map(|_| ())
            .map_err(|s| classify(&at.namespace, s));
        self.observe(operation, &r);
        r
    }
}

impl Schedules for SdkSchedules {
    async fn describe(&self, at: &ScheduleLocation) -> Result<Option<ObservedSchedule>, TemporalError> {
        let client = self.client(&at.namespace).await?;
        let req = DescribeScheduleRequest {
            namespace: client.namespace(),
            schedule_id: at.id.clone(),
        };
        let r = match self
            .limit
            .call(|| {
                let mut c = client.clone();
                let req = req.clone();
                async move { WorkflowService::describe_schedule(&mut c, req.into_request()).await }
            })
            .await
        {
            Ok(resp) => observed_from_describe(&resp.into_inner()).map(Some),
            Err(s) if is_not_found(&s) => Ok(None),
            Err(s) => Err(classify(&at.namespace, s)),
        };
        self.observe("describe", &r);
        r
    }

    async fn create(
        &self,
        desired: &DesiredSchedule,
        options: &WriteOptions,
    ) -> Result<Created, TemporalError> {
        let client = self.client(&desired.location.namespace).await?;
        let schedule = schedule_proto(desired, options)?;
        let req = CreateScheduleRequest {
            namespace: client.namespace(),
            schedule_id: desired.location.id.clone(),
            schedule: Some(schedule.clone()),
            initial_patch: None,
            identity: self.identity.clone(),
            request_id: request_id(),
            memo: Some(schedule_memo(
                &desired.owner,
                options.action_count_base,
                &desired.hash(),
            )?),
            search_attributes: None,
        };
        let r = self
            .limit
            .call(|| {
                let mut c = client.clone();
                let req = req.clone();
                async move { WorkflowService::create_schedule(&mut c, req.into_request()).await }
            })
            .await
            .map(|resp| Created {
                conflict_token: resp.into_inner().conflict_token,
                listing: created_listing(&schedule),
            })
            .map_err(|s| classify(&desired.location.namespace, s));
        self.observe("create", &r);
        r
    }

    async fn update(
        &self,
        desired: &DesiredSchedule,
        options: &WriteOptions,
        conflict_token: &[u8],
    ) -> Result<(), TemporalError> {
        let client = self.client(&desired.location.namespace).await?;
        let req = UpdateScheduleRequest {
            namespace: client.namespace(),
            schedule_id: desired.location.id.clone(),
            schedule: Some(schedule_proto(desired, options)?),
            conflict_token: conflict_token.to_vec(),
            identity: self.identity.clone(),
            request_id: request_id(),
            search_attributes: None,
            // the server refuses memo updates on workflow-backed schedules; the memo is set at create
            memo: None,
        };
        let r = self
            .limit
            .call(|| {
                let mut c = client.clone();
                let req = req.clone();
                async move { WorkflowService::update_schedule(&mut c, req.into_request()).await }
            })
            .await
            .map(|_| ())
            .map_err(|s| classify(&desired.location.namespace, s));
        self.observe("update", &r);
        r
    }

    async fn delete(&self, at: &ScheduleLocation) -> Result<(), TemporalError> {
        let client = self.client(&at.namespace).await?;
        let req = DeleteScheduleRequest {
            namespace: client.namespace(),
            schedule_id: at.id.clone(),
            identity: self.identity.clone(),
        };
        let r = match self
            .limit
            .call(|| {
                let mut c = client.clone();
                let req = req.clone();
                async move { WorkflowService::delete_schedule(&mut c, req.into_request()).await }
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if is_not_found(&s) => Ok(()),
            Err(s) => Err(classify(&at.namespace, s)),
        };
        self.observe("delete", &r);
        r
    }

    async fn backfill(
        &self,
        at: &ScheduleLocation,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), TemporalError> {
        // the same window is one request: a retried backfill is not run twice
        let id =
            hex_sha256(format!("backfill|{}|{}|{}", at.id, start.timestamp(), end.timestamp()).as_bytes())
                [..32]
                .to_string();
        let patch = SchedulePatch {
            backfill_request: vec![BackfillRequest {
                start_time: Some(proto_time(start)),
                end_time: Some(proto_time(end)),
                overlap_policy: ScheduleOverlapPolicy::BufferAll as i32,
            }],
            ..Default::default()
        };
        self.patch(at, patch, id, "backfill").await
    }

    async fn backfill_slots(
        &self,
        at: &ScheduleLocation,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        overlap: Option<OverlapPolicy>,
        request_id: &str,
    ) -> Result<(), TemporalError> {
        // Temporal's range excludes its start: begin a second earlier so `start` is included
        let patch = SchedulePatch {
            backfill_request: vec![BackfillRequest {
                start_time: Some(proto_time(start - chrono::TimeDelta::seconds(1))),
                end_time: Some(proto_time(end)),
                overlap_policy: overlap
                    .map(overlap_proto)
                    .unwrap_or(ScheduleOverlapPolicy::Unspecified) as i32,
            }],
            ..Default::default()
        };
        self.patch(at, patch, request_id.to_string(), "backfill").await
    }

    async fn trigger(
        &self,
        at: &ScheduleLocation,
        overlap: Option<OverlapPolicy>,
        scheduled_time: DateTime<Utc>,
        request_id: &str,
    ) -> Result<(), TemporalError> {
        let patch = SchedulePatch {
            trigger_immediately: Some(TriggerImmediatelyRequest {
                overlap_policy: overlap
                    .map(overlap_proto)
                    .unwrap_or(ScheduleOverlapPolicy::Unspecified) as i32,
                scheduled_time: Some(proto_time(scheduled_time)),
            }),
            ..Default::default()
        };
        self.patch(at, patch, request_id.to_string(), "trigger").await
    }

    async fn stop_run(
        &self,
        namespace: &str,
        run: &RunRef,
        terminate: bool,
        reason: &str,
        request_id: &str,
    ) -> Result<bool, TemporalError> {
        let client = self.client(namespace).await?;
        let execution = Some(WorkflowExecution {
            workflow_id: run.workflow_id.clone(),
            run_id: run.run_id.clone(),
        });
        let r = if terminate {
            let req = TerminateWorkflowExecutionRequest {
                namespace: client.namespace(),
                workflow_execution: execution,
                reason: reason.to_string(),
                identity: self.identity.clone(),
                ..Default::default()
            };
            self.limit
                .call(|| {
                    let mut c = client.clone();
                    let req = req.clone();
                    async move { WorkflowService::terminate_workflow_execution(&mut c, req.into_request()).await }
                })
                .await
                .map(|_| ())
        } else {
            let req = RequestCancelWorkflowExecutionRequest {
                namespace: client.namespace(),
                workflow_execution: execution,
                identity: self.identity.clone(),
                request_id: request_id.to_string(),
                reason: reason.to_string(),
                ..Default::default()
            };
            self.limit
                .call(|| {
                    let mut c = client.clone();
                    let req = req.clone();
                    async move {
                        WorkflowService::request_cancel_workflow_execution(&mut c, req.into_request()).await
                    }
                })
                .await
                .map(|_| ())
        };
        let r = match r {
            Ok(()) => Ok(true),
            // already closed: nothing left to stop
            Err(s) if s.code() == Code::NotFound || s.code() == Code::FailedPrecondition => Ok(false),
            Err(s) => Err(classify(namespace, s)),
        };
        self.observe(if terminate { "terminate" } else { "cancel" }, &r);
        r
    }

    async fn recent_runs(
        &self,
        at: &ScheduleLocation,
        limit: usize,
    ) -> Result<Vec<RunRecord>, TemporalError> {
        let client = self.client(&at.namespace).await?;
        let req = ListWorkflowExecutionsRequest {
            namespace: client.namespace(),
            page_size: limit as i32,
            next_page_token: Vec::new(),
            query: format!("TemporalScheduledById = '{}'", at.id.replace('\'', "\\'")),
        };
        let r = self
            .limit
            .call(|| {
                let mut c = client.clone();
                let req = req.clone();
                async move { WorkflowService::list_workflow_executions(&mut c, req.into_request()).await }
            })
            .await
            .map_err(|s| classify(&at.namespace, s))
            .map(|resp| {
                let mut runs: Vec<RunRecord> = resp
                    .into_inner()
                    .executions
                    .iter()
                    .filter_map(run_record)
                    .collect();
                runs.sort_by(|a, b| {
                    (b.scheduled_time.unwrap_or(b.start_time), b.start_time)
                        .cmp(&(a.scheduled_time.unwrap_or(a.start_time), a.start_time))
                });
                runs.truncate(limit);
                runs
            });
        self.observe("list", &r);
        r
    }

    async fn matching_times(
        &self,
        at: &ScheduleLocation,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, TemporalError> {
        let client = self.client(&at.namespace).await?;
        let req = ListScheduleMatchingTimesRequest {
            namespace: client.namespace(),
            schedule_id: at.id.clone(),
            start_time: Some(proto_time(start)),
            end_time: Some(proto_time(end)),
        };
        let r = self
            .limit
            .call(|| {
                let mut c = client.clone();
                let req = req.clone();
                async move { WorkflowService::list_schedule_matching_times(&mut c, req.into_request()).await }
            })
            .await
            .map_err(|s| classify(&at.namespace, s))
            .map(|resp| {
                resp.into_inner()
                    .start_time
                    .iter()
                    .filter_map(from_proto_time)
                    .collect()
            });
        self.observe("list_schedule_matching_times", &r);
        r
    }

    async fn list_page(&self, namespace: &str, page_token: &[u8]) -> Result<SchedulePage, TemporalError> {
        let client = self.client(namespace).await?;
        let req = ListSchedulesRequest {
            namespace: client.namespace(),
            maximum_page_size: LIST_PAGE_SIZE,
            next_page_token: page_token.to_vec(),
            query: String::new(),
        };
        let r = self
            .limit
            .call(|| {
                let mut c = client.clone();
                let req = req.clone();
                async move { WorkflowService::list_schedules(&mut c, req.into_request()).await }
            })
            .await
            .map_err(|s| classify(namespace, s))
            .map(|resp| {
                let resp = resp.into_inner();
                SchedulePage {
                    schedules: resp.schedules.iter().map(listed).collect(),
                    next_page_token: resp.next_page_token,
                }
            });
        self.observe("list_schedules", &r);
        r
    }
}

/// Schedules per `ListSchedules` page (Temporal's own maximum is 1,000).
const LIST_PAGE_SIZE: i32 = 1000;

/// The listing hash of what `ListSchedules` and `DescribeSchedule` both show: the spec (minus
/// the time zone data only the describe carries), the workflow type, the paused flag and the
/// newest run. Run outcomes are left out: the list's copy of them may lag the description's.
pub fn listing(
    spec: Option<&ScheduleSpec>,
    workflow_type: &str,
    paused: bool,
    recent: &[ScheduleActionResult],
) -> String {
    let mut spec = spec.cloned().unwrap_or_default();
    spec.timezone_data = Vec::new();
    let newest = recent
        .iter()
        .filter_map(|a| a.start_workflow_result.as_ref())
        .map(|r| r.run_id.as_str())
        .next_back()
        .unwrap_or("");
    let json = serde_json::json!({
        "spec": serde_json::to_value(&spec).expect("schedule protos serialize"),
        "type": workflow_type,
        "paused": paused,
        "newest": newest,
    });
    hex_sha256(&canonical_json(&json))[..32].to_string()
}

/// How many entries of each spec list (calendars, intervals, exclusions) Temporal copies into
/// the schedule's list info (its `SpecFieldLengthLimit`).
const LISTED_SPEC_ENTRIES: usize = 10;

/// The listing hash `ListSchedules` shows for a schedule created as `schedule`, before any run.
/// Temporal stores the spec as it is sent when it is already canonical (structured calendars,
/// intervals; see [`schedule_proto`]) and lists it without its time zone data and with at most
/// ten entries per list (`LISTED_SPEC_ENTRIES`). A server that lists it differently costs one
/// describe, at the first sweep, and nothing else.
pub fn created_listing(schedule: &Schedule) -> String {
    let mut spec = schedule.spec.clone().unwrap_or_default();
    spec.structured_calendar.truncate(LISTED_SPEC_ENTRIES);
    spec.interval.truncate(LISTED_SPEC_ENTRIES);
    spec.exclude_structured_calendar.truncate(LISTED_SPEC_ENTRIES);
    let workflow_type = match schedule.action.as_ref().and_then(|a| a.action.as_ref()) {
        Some(Action::StartWorkflow(w)) => w.workflow_type.as_ref().map(|t| t.name.as_str()),
        _ => None,
    };
    let paused = schedule.state.as_ref().is_some_and(|s| s.paused);
    listing(Some(&spec), workflow_type.unwrap_or(""), paused, &[])
}

fn listed(e: &ScheduleListEntry) -> ListedSchedule {
    let info = e.info.clone().unwrap_or_default();
    let workflow_type = info.workflow_type.as_ref().map(|t| t.name.as_str()).unwrap_or("");
    ListedSchedule {
        id: e.schedule_id.clone(),
        listing: listing(
            info.spec.as_ref(),
            workflow_type,
            info.paused,
            &info.recent_actions,
        ),
    }
}

/// Idempotency key of one write: the SDK retries a request with the same key, while a new
/// reconcile gets a new one (a key reused after the schedule was deleted would be answered
/// with the old result and create nothing).
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hex_sha256(format!("{}|{now}|{n}", std::process::id()).as_bytes())[..32].to_string()
}

/// Temporal's NamespaceNotFound (`Namespace <name> is not found.`); other NotFound messages
/// name the schedule or workflow, whose ids may contain the word "namespace" themselves.
fn is_namespace_not_found(s: &Status) -> bool {
    let m = s.message();
    s.code() == Code::NotFound && m.starts_with("Namespace ") && m.contains("not found")
}

pub(super) fn is_not_found(s: &Status) -> bool {
    s.code() == Code::NotFound && !is_namespace_not_found(s)
}

pub(super) fn classify(namespace: &str, s: Status) -> TemporalError {
    let msg = s.message().to_string();
    match s.code() {
        Code::NotFound if is_namespace_not_found(&s) => {
            TemporalError::NamespaceNotFound(namespace.to_string())
        }
        Code::InvalidArgument => TemporalError::Rejected(msg),
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => TemporalError::Conflict(msg),
        Code::PermissionDenied | Code::Unauthenticated => TemporalError::PermissionDenied(msg),
        Code::ResourceExhausted if super::limit::is_busy_workflow(&s) => TemporalError::Unavailable(format!(
            "the workflow this call is about is busy in Temporal (ResourceExhausted BUSY_WORKFLOW after {} tries); it is retried: {msg}",
            super::limit::TRIES
        )),
        Code::ResourceExhausted => TemporalError::Unavailable(format!(
            "Temporal is rate limiting the operator (ResourceExhausted after {} tries with a shared back-off): {msg}",
            super::limit::TRIES
        )),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => {
            TemporalError::Unavailable(if msg.is_empty() {
                format!("{:?}", s.code())
            } else {
                msg
            })
        }
        other => TemporalError::Other(format!("{other:?}: {msg}")),
    }
}

pub(super) fn json_payload(v: &Value) -> Result<Payload, TemporalError> {
    v.as_json_payload()
        .map_err(|e| TemporalError::Other(format!("cannot encode payload: {e}")))
}

pub(super) fn payload_value(p: &Payload) -> Option<Value> {
    Value::from_json_payload(p).ok()
}

fn proto_duration(d: std::time::Duration) -> Result<prost_wkt_types::Duration, TemporalError> {
    d.try_into()
        .map_err(|e| TemporalError::Other(format!("duration out of range: {e:?}")))
}

fn proto_time(t: DateTime<Utc>) -> prost_wkt_types::Timestamp {
    SystemTime::from(t).into()
}

pub(super) fn from_proto_time(t: &prost_wkt_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
}

/// The schedule's memo: who owns it.
pub fn schedule_memo(
    owner: &Owner,
    action_count_base: i64,
    desired_hash: &str,
) -> Result<Memo, TemporalError> {
    let mut fields = HashMap::new();
    fields.insert(
        memo::OWNER_UID.to_string(),
        json_payload(&Value::from(owner.uid.clone()))?,
    );
    fields.insert(
        memo::PREFIX.to_string(),
        json_payload(&Value::from(owner.prefix.clone()))?,
    );
    fields.insert(
        memo::RESOURCE.to_string(),
        json_payload(&Value::from(owner.resource.clone()))?,
    );
    fields.insert(
        memo::DESIRED_HASH.to_string(),
        json_payload(&Value::from(desired_hash.to_string()))?,
    );
    fields.insert(
        memo::ACTION_COUNT_BASE.to_string(),
        json_payload(&Value::from(action_count_base))?,
    );
    Ok(Memo { fields })
}

fn overlap_proto(p: OverlapPolicy) -> ScheduleOverlapPolicy {
    match p {
        OverlapPolicy::Skip => ScheduleOverlapPolicy::Skip,
        OverlapPolicy::BufferOne => ScheduleOverlapPolicy::BufferOne,
        OverlapPolicy::BufferAll => ScheduleOverlapPolicy::BufferAll,
        OverlapPolicy::CancelOther => ScheduleOverlapPolicy::CancelOther,
        OverlapPolicy::TerminateOther => ScheduleOverlapPolicy::TerminateOther,
        OverlapPolicy::AllowAll => ScheduleOverlapPolicy::AllowAll,
    }
}

fn retry_proto(r: &ValidRetry) -> Result<RetryPolicy, TemporalError> {
    Ok(RetryPolicy {
        initial_interval: Some(proto_duration(r.initial_interval)?),
        backoff_coefficient: r.backoff_coefficient,
        maximum_interval: Some(proto_duration(r.maximum_interval)?),
        maximum_attempts: r.maximum_attempts,
        non_retryable_error_types: r.non_retryable_error_types.clone(),
    })
}

/// A cron entry as the structured calendar Temporal would parse it into: at second 0 of each
/// minute it matches, every year, the entry itself as the comment (which the Temporal UI and
/// `temporal schedule describe` show). Sent this way, the spec Temporal stores is the one sent.
fn cron_calendar(entry: &str) -> Result<StructuredCalendarSpec, TemporalError> {
    let mut m = crate::cron::ranges::cron(entry, entry.to_string())
        .map_err(|e| TemporalError::Other(format!("cron entry {entry:?}: {e}")))?;
    m.second = vec![crate::cron::ranges::Span { start: 0, end: 0 }];
    m.year = vec![];
    Ok(structured(&m))
}

/// A calendar match (a cron entry, or an exclusion) as Temporal's structured calendar.
fn structured(m: &crate::cron::ranges::Match) -> StructuredCalendarSpec {
    let ranges = |spans: &[crate::cron::ranges::Span]| {
        spans
            .iter()
            .map(
                |s| temporalio_common::protos::temporal::api::schedule::v1::Range {
                    start: s.start as i32,
                    end: s.end as i32,
                    step: 1,
                },
            )
            .collect()
    };
    StructuredCalendarSpec {
        second: ranges(&m.second),
        minute: ranges(&m.minute),
        hour: ranges(&m.hour),
        day_of_month: ranges(&m.day_of_month),
        month: ranges(&m.month),
        year: ranges(&m.year),
        day_of_week: ranges(&m.day_of_week),
        comment: m.comment.clone(),
    }
}

/// The full Temporal schedule for a desired state (an update replaces the whole schedule).
pub fn schedule_proto(d: &DesiredSchedule, o: &WriteOptions) -> Result<Schedule, TemporalError> {
    let c = &d.calendar;
    let spec = ScheduleSpec {
        structured_calendar: c
            .cron
            .iter()
            .map(|entry| cron_calendar(entry))
            .collect::<Result<_, _>>()?,
        interval: c
            .intervals
            .iter()
            .map(|iv| {
                Ok(IntervalSpec {
                    interval: Some(proto_duration(iv.every)?),
                    phase: iv.offset.map(proto_duration).transpose()?,
                })
            })
            .collect::<Result<_, TemporalError>>()?,
        timezone_name: c.time_zone.clone(),
        jitter: c.jitter.map(proto_duration).transpose()?,
        start_time: c.start_at.map(proto_time),
        end_time: c.end_at.map(proto_time),
        exclude_structured_calendar: c.exclude.iter().map(structured).collect(),
        ..Default::default()
    };
    let a = &d.action;
    let mut memo_fields = HashMap::new();
    for (k, v) in &a.memo {
        memo_fields.insert(k.clone(), json_payload(v)?);
    }
    let mut sa_fields = HashMap::new();
    for (k, v) in &a.search_attributes {
        sa_fields.insert(k.clone(), json_payload(v)?);
    }
    let input = if a.args.is_empty() {
        None
    } else {
        Some(Payloads {
            payloads: a.args.iter().map(json_payload).collect::<Result<_, _>>()?,
        })
    };
    let action = NewWorkflowExecutionInfo {
        workflow_id: a.workflow_id.clone(),
        workflow_type: Some(WorkflowType {
            name: a.workflow_type.clone(),
        }),
        task_queue: Some(TaskQueue {
            name: a.task_queue.clone(),
            ..Default::default()
        }),
        input,
        workflow_execution_timeout: a.execution_timeout.map(proto_duration).transpose()?,
        workflow_run_timeout: a.run_timeout.map(proto_duration).transpose()?,
        workflow_task_timeout: a.task_timeout.map(proto_duration).transpose()?,
        retry_policy: a.retry.as_ref().map(retry_proto).transpose()?,
        memo: (!memo_fields.is_empty()).then_some(Memo { fields: memo_fields }),
        search_attributes: (!sa_fields.is_empty()).then_some(SearchAttributes {
            indexed_fields: sa_fields,
        }),
        versioning_override: a.auto_upgrade.then(|| VersioningOverride {
            r#override: Some(versioning_override::Override::AutoUpgrade(true)),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(Schedule {
        spec: Some(spec),
        action: Some(ScheduleAction {
            action: Some(Action::StartWorkflow(action)),
        }),
        policies: Some(SchedulePolicies {
            overlap_policy: overlap_proto(d.overlap_policy) as i32,
            catchup_window: Some(proto_duration(d.catchup_window)?),
            pause_on_failure: d.pause_on_failure,
            keep_original_workflow_id: false,
        }),
        state: Some(ScheduleState {
            notes: o.notes.clone(),
            paused: o.paused,
            limited_actions: o.remaining_actions.is_some(),
            remaining_actions: o.remaining_actions.unwrap_or(0).max(0),
        }),
    })
}

/// Fingerprint of a schedule definition: what a person could change in Temporal. Counters
/// that move by themselves (remaining actions) and `info` are left out.
pub fn fingerprint(schedule: &Schedule) -> String {
    let mut s = schedule.clone();
    if let Some(state) = s.state.as_mut() {
        state.remaining_actions = 0;
    }
    let json = serde_json::to_value(&s).expect("schedule protos serialize");
    hex_sha256(&canonical_json(&json))
}

fn memo_string(m: &Option<Memo>, key: &str) -> Option<String> {
    m.as_ref()?
        .fields
        .get(key)
        .and_then(payload_value)
        .and_then(|v| v.as_str().map(str::to_string))
}

pub(super) fn memo_i64(m: &Option<Memo>, key: &str) -> Option<i64> {
    m.as_ref()?
        .fields
        .get(key)
        .and_then(payload_value)
        .and_then(|v| v.as_i64())
}

/// Reduces a DescribeSchedule response to the operator's view of it.
pub fn observed_from_describe(resp: &DescribeScheduleResponse) -> Result<ObservedSchedule, TemporalError> {
    let schedule = resp
        .schedule
        .as_ref()
        .ok_or_else(|| TemporalError::Other("DescribeSchedule returned no schedule".into()))?;
    let owner = match (
        memo_string(&resp.memo, memo::OWNER_UID),
        memo_string(&resp.memo, memo::PREFIX),
        memo_string(&resp.memo, memo::RESOURCE),
    ) {
        (Some(uid), Some(prefix), Some(resource)) => Some(Owner {
            uid,
            prefix,
            resource,
        }),
        _ => None,
    };
    let state = schedule.state.clone().unwrap_or_default();
    let info = resp.info.clone().unwrap_or_default();
    let recent_actions = info
        .recent_actions
        .iter()
        .filter_map(|a| {
            let run = a.start_workflow_result.as_ref()?;
            Some(RecentAction {
                scheduled_time: a.schedule_time.as_ref().and_then(from_proto_time)?,
                actual_time: a.actual_time.as_ref().and_then(from_proto_time)?,
                run: RunRef {
                    workflow_id: run.workflow_id.clone(),
                    run_id: run.run_id.clone(),
                },
                result: run_result(a.start_workflow_status),
            })
        })
        .collect();
    let workflow_type = match schedule.action.as_ref().and_then(|a| a.action.as_ref()) {
        Some(Action::StartWorkflow(w)) => w.workflow_type.as_ref().map(|t| t.name.clone()),
        _ => None,
    };
    Ok(ObservedSchedule {
        listing: listing(
            schedule.spec.as_ref(),
            workflow_type.as_deref().unwrap_or(""),
            state.paused,
            &info.recent_actions,
        ),
        fingerprint: fingerprint(schedule),
        owner,
        action_count_base: memo_i64(&resp.memo, memo::ACTION_COUNT_BASE).unwrap_or(0),
        created_hash: memo_string(&resp.memo, memo::DESIRED_HASH),
        paused: state.paused,
        notes: state.notes.clone(),
        conflict_token: resp.conflict_token.clone(),
        action_count: info.action_count,
        missed_catchup_window: info.missed_catchup_window,
        overlap_skipped: info.overlap_skipped,
        buffer_dropped: info.buffer_dropped,
        limited_actions: state.limited_actions,
        remaining_actions: state.remaining_actions,
        running: info
            .running_workflows
            .iter()
            .map(|w| RunRef {
                workflow_id: w.workflow_id.clone(),
                run_id: w.run_id.clone(),
            })
            .collect(),
        recent_actions,
        future_action_times: info
            .future_action_times
            .iter()
            .filter_map(from_proto_time)
            .collect(),
        end_at: schedule
            .spec
            .as_ref()
            .and_then(|s| s.end_time.as_ref())
            .and_then(from_proto_time),
    })
}

pub(super) fn run_result(status: i32) -> Option<RunResult> {
    match WorkflowExecutionStatus::try_from(status).ok()? {
        WorkflowExecutionStatus::Running | WorkflowExecutionStatus::ContinuedAsNew => {
            Some(RunResult::Running)
        }
        WorkflowExecutionStatus::Completed => Some(RunResult::Succeeded),
        WorkflowExecutionStatus::Failed => Some(RunResult::Failed),
        WorkflowExecutionStatus::Canceled => Some(RunResult::Canceled),
        WorkflowExecutionStatus::Terminated => Some(RunResult::Terminated),
        WorkflowExecutionStatus::TimedOut => Some(RunResult::TimedOut),
        _ => None,
    }
}

fn run_record(
    e: &temporalio_common::protos::temporal::api::workflow::v1::WorkflowExecutionInfo,
) -> Option<RunRecord> {
    let exec = e.execution.as_ref()?;
    let scheduled_time = e
        .search_attributes
        .as_ref()
        .and_then(|sa| sa.indexed_fields.get("TemporalScheduledStartTime"))
        .and_then(payload_value)
        .and_then(|v| v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()))
        .map(|t| t.with_timezone(&Utc));
    // `<deployment name>:<build id>` (a deployment name the operator makes has no ':')
    let build_id = e
        .search_attributes
        .as_ref()
        .and_then(|sa| sa.indexed_fields.get("TemporalWorkerDeploymentVersion"))
        .and_then(payload_value)
        .and_then(|v| {
            v.as_str()
                .and_then(|s| s.rsplit_once(':'))
                .map(|(_, b)| b.to_string())
        });
    let memo = &e.memo;
    Some(RunRecord {
        run: RunRef {
            workflow_id: exec.workflow_id.clone(),
            run_id: exec.run_id.clone(),
        },
        scheduled_time,
        start_time: e.start_time.as_ref().and_then(from_proto_time)?,
        close_time: e.close_time.as_ref().and_then(from_proto_time),
        result: match run_result(e.status)? {
            RunResult::Succeeded if memo_i64(memo, run_memo::FAILED_ITEMS).is_some_and(|n| n > 0) => {
                RunResult::PartiallyFailed
            }
            r => r,
        },
        job_name: memo_string(memo, run_memo::JOB_NAME),
        step: memo_string(memo, run_memo::STEP),
        progress: memo
            .as_ref()
            .and_then(|m| m.fields.get(run_memo::PROGRESS))
            .and_then(payload_value)
            .and_then(|v| serde_json::from_value(v).ok()),
        attempts: memo_i64(memo, run_memo::ATTEMPTS).map(|n| n as i32),
        // a retry says which run it retries (`kubectl durablejob runs` shows it)
        message: match (
            memo_string(memo, run_memo::RETRY_OF),
            memo_string(memo, run_memo::MESSAGE),
        ) {
            (Some(of), Some(m)) => Some(format!("retry of {of}: {m}")),
            (Some(of), None) => Some(format!("retry of {of}")),
            (None, m) => m,
        },
        build_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DurableJob;
    use temporalio_common::protos::temporal::api::{
        common::v1::WorkflowExecution,
        schedule::v1::{ScheduleActionResult, ScheduleInfo},
    };

    #[test]
    fn a_missing_namespace_is_told_apart_from_a_missing_schedule_whose_id_says_namespace() {
        let missing_ns = Status::new(Code::NotFound, "Namespace team-b is not found.");
        assert!(matches!(
            classify("team-b", missing_ns),
            TemporalError::NamespaceNotFound(_)
        ));
        let missing_schedule = Status::new(
            Code::NotFound,
            "workflow not found for ID: temporal-sys-scheduler:durablejob:e2e-namespaces/x",
        );
        assert!(is_not_found(&missing_schedule));
        assert!(!is_not_found(&Status::new(
            Code::NotFound,
            "Namespace n is not found."
        )));
    }

    fn options() -> WriteOptions {
        WriteOptions {
            paused: true,
            notes: "n".into(),
            remaining_actions: Some(7),
            action_count_base: 3,
        }
    }

    fn start_workflow(s: &Schedule) -> &NewWorkflowExecutionInfo {
        match s.action.as_ref().unwrap().action.as_ref().unwrap() {
            Action::StartWorkflow(w) => w,
        }
    }

    #[test]
    fn the_proto_carries_every_field_of_the_desired_schedule() {
        let s = schedule_proto(&DurableJob::test_full("nightly").desired_schedule(), &options()).unwrap();
        let spec = s.spec.as_ref().unwrap();
        assert!(
            spec.cron_string.is_empty(),
            "cron entries go as structured calendars"
        );
        // each cron entry: its comment, minute spans and hour spans
        type Spans = Vec<(i32, i32)>;
        let spans = |r: &[temporalio_common::protos::temporal::api::schedule::v1::Range]| -> Spans {
            r.iter().map(|r| (r.start, r.end)).collect()
        };
        let calendars: Vec<(&str, Spans, Spans)> = spec
            .structured_calendar
            .iter()
            .map(|c| (c.comment.as_str(), spans(&c.minute), spans(&c.hour)))
            .collect();
        assert_eq!(
            calendars,
            vec![
                ("30 2 * * *", vec![(30, 30)], vec![(2, 2)]),
                ("@hourly", vec![(0, 0)], vec![(0, 23)]),
            ]
        );
        for c in &spec.structured_calendar {
            assert_eq!(
                (c.second.len(), c.second[0].start, c.second[0].end),
                (1, 0, 0),
                "second 0 of each minute"
            );
            assert!(c.year.is_empty(), "every year, as Temporal writes `*`");
            assert_eq!((c.day_of_week[0].start, c.day_of_week[0].end), (0, 6));
            assert!(c.minute.iter().chain(&c.hour).all(|r| r.step == 1));
        }
        assert_eq!(spec.interval.len(), 1);
        assert_eq!(spec.interval[0].interval.as_ref().unwrap().seconds, 5400);
        assert_eq!(spec.interval[0].phase.as_ref().unwrap().seconds, 300);
        assert_eq!(spec.timezone_name, "Europe/Berlin");
        assert_eq!(spec.jitter.as_ref().unwrap().seconds, 30);
        assert_eq!(spec.start_time.as_ref().unwrap().seconds, 1_767_225_600);
        assert_eq!(spec.end_time.as_ref().unwrap().seconds, 1_798_758_000);
        let p = s.policies.as_ref().unwrap();
        assert_eq!(p.overlap_policy, ScheduleOverlapPolicy::BufferAll as i32);
        assert_eq!(p.catchup_window.as_ref().unwrap().seconds, 5400);
        assert!(p.pause_on_failure);
        let st = s.state.as_ref().unwrap();
        assert!(st.paused && st.limited_actions);
        assert_eq!((st.remaining_actions, st.notes.as_str()), (7, "n"));
        let w = start_workflow(&s);
        assert_eq!(w.workflow_id, "durablejob:default/nightly");
        assert_eq!(w.workflow_type.as_ref().unwrap().name, "durablejob.run");
        assert_eq!(w.task_queue.as_ref().unwrap().name, "custom-runner");
        assert_eq!(w.workflow_execution_timeout.as_ref().unwrap().seconds, 7200);
        assert_eq!(w.workflow_run_timeout.as_ref().unwrap().seconds, 3600);
        assert_eq!(w.workflow_task_timeout.as_ref().unwrap().seconds, 20);
        assert!(
            w.retry_policy.is_none(),
            "the built-in runner counts attempts itself"
        );
        let input = payload_value(&w.input.as_ref().unwrap().payloads[0]).unwrap();
        assert_eq!(input["retry"]["maximumAttempts"], 4);
        assert_eq!(
            input["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
            "Never"
        );
        assert_eq!(
            payload_value(&w.memo.as_ref().unwrap().fields["team"]).unwrap(),
            "billing"
        );
        assert_eq!(
            payload_value(&w.search_attributes.as_ref().unwrap().indexed_fields["CustomKeywordField"])
                .unwrap(),
            "nightly"
        );
    }

    #[test]
    fn auto_upgrade_runs_carry_temporals_override_and_pinned_ones_none() {
        let mut d = DurableJob::test_full("nightly").desired_schedule();
        let s = schedule_proto(&d, &options()).unwrap();
        assert_eq!(
            start_workflow(&s).versioning_override,
            None,
            "the worker's behavior applies"
        );
        let before = d.hash();
        d.action.auto_upgrade = true;
        assert_ne!(d.hash(), before, "turning it on rewrites the schedule");
        let s = schedule_proto(&d, &options()).unwrap();
        let o = start_workflow(&s).versioning_override.clone().unwrap();
        assert_eq!(
            o.r#override,
            Some(versioning_override::Override::AutoUpgrade(true))
        );
    }

    #[test]
    fn every_overlap_policy_maps_to_temporals() {
        for (p, expected) in [
            (OverlapPolicy::Skip, ScheduleOverlapPolicy::Skip),
            (OverlapPolicy::BufferOne, ScheduleOverlapPolicy::BufferOne),
            (OverlapPolicy::BufferAll, ScheduleOverlapPolicy::BufferAll),
            (OverlapPolicy::CancelOther, ScheduleOverlapPolicy::CancelOther),
            (
                OverlapPolicy::TerminateOther,
                ScheduleOverlapPolicy::TerminateOther,
            ),
            (OverlapPolicy::AllowAll, ScheduleOverlapPolicy::AllowAll),
        ] {
            let s = schedule_proto(
                &DurableJob::test("x").with_overlap(p).desired_schedule(),
                &options(),
            )
            .unwrap();
            assert_eq!(s.policies.unwrap().overlap_policy, expected as i32, "{p:?}");
        }
    }

    #[test]
    fn a_user_workflow_gets_temporals_retry_policy_and_its_args() {
        let mut dj = DurableJob::test("x").with_worker("Sync");
        let wf = dj.spec.workflow.as_mut().unwrap();
        wf.args = vec![serde_json::json!({"a": 1}), serde_json::json!("b")];
        wf.retry = Some(crate::api::RetrySpec {
            maximum_attempts: Some(5),
            non_retryable_error_types: vec!["Bad".into()],
            ..Default::default()
        });
        let s = schedule_proto(
            &dj.desired_schedule(),
            &WriteOptions {
                remaining_actions: None,
                ..options()
            },
        )
        .unwrap();
        let w = start_workflow(&s);
        let r = w.retry_policy.as_ref().unwrap();
        assert_eq!((r.maximum_attempts, r.backoff_coefficient), (5, 2.0));
        assert_eq!(r.non_retryable_error_types, vec!["Bad"]);
        assert_eq!(w.input.as_ref().unwrap().payloads.len(), 2);
        assert!(!s.state.unwrap().limited_actions);
    }

    fn describe_response(schedule: Schedule, memo: Memo) -> DescribeScheduleResponse {
        DescribeScheduleResponse {
            schedule: Some(schedule),
            memo: Some(memo),
            conflict_token: vec![1, 2],
            info: Some(ScheduleInfo {
                action_count: 4,
                missed_catchup_window: 2,
                running_workflows: vec![WorkflowExecution {
                    workflow_id: "w".into(),
                    run_id: "r".into(),
                }],
                recent_actions: vec![ScheduleActionResult {
                    schedule_time: Some(prost_wkt_types::Timestamp {
                        seconds: 100,
                        nanos: 0,
                    }),
                    actual_time: Some(prost_wkt_types::Timestamp {
                        seconds: 101,
                        nanos: 0,
                    }),
                    start_workflow_result: Some(WorkflowExecution {
                        workflow_id: "w".into(),
                        run_id: "r".into(),
                    }),
                    start_workflow_status: WorkflowExecutionStatus::Running as i32,
                }],
                future_action_times: vec![prost_wkt_types::Timestamp {
                    seconds: 200,
                    nanos: 0,
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_description_is_reduced_to_the_operators_view() {
        let d = DurableJob::test("x").desired_schedule();
        let schedule = schedule_proto(&d, &options()).unwrap();
        let o = observed_from_describe(&describe_response(
            schedule.clone(),
            schedule_memo(&d.owner, 3, &d.hash()).unwrap(),
        ))
        .unwrap();
        assert_eq!(o.owner, Some(d.owner.clone()));
        assert_eq!(o.created_hash, Some(d.hash()));
        assert_eq!(
            (o.action_count_base, o.action_count, o.total_actions()),
            (3, 4, 7)
        );
        assert_eq!(o.missed_catchup_window, 2);
        assert!(o.paused && o.notes == "n");
        assert_eq!(o.conflict_token, vec![1, 2]);
        assert_eq!(
            o.running,
            vec![RunRef {
                workflow_id: "w".into(),
                run_id: "r".into()
            }]
        );
        assert_eq!(o.recent_actions[0].result, Some(RunResult::Running));
        assert_eq!(o.future_action_times[0].timestamp(), 200);
        assert_eq!(o.fingerprint, fingerprint(&schedule));
    }

    #[test]
    fn a_schedule_without_our_memo_has_no_owner() {
        let d = DurableJob::test("x").desired_schedule();
        let o = observed_from_describe(&describe_response(
            schedule_proto(&d, &options()).unwrap(),
            Memo::default(),
        ))
        .unwrap();
        assert_eq!(o.owner, None);
    }

    #[test]
    fn the_created_listing_is_the_listing_of_the_schedule_as_sent_before_any_run() {
        let s = schedule_proto(&DurableJob::test_full("nightly").desired_schedule(), &options()).unwrap();
        let spec = s.spec.clone().unwrap();
        assert_eq!(
            created_listing(&s),
            listing(Some(&spec), "durablejob.run", true, &[]),
            "the spec as sent, the workflow type, paused, no run yet"
        );
        // Temporal lists ten entries of each list at most
        let mut long = s.clone();
        let spec = long.spec.as_mut().unwrap();
        let one = spec.structured_calendar[0].clone();
        spec.structured_calendar = vec![one; 12];
        let mut ten = long.clone();
        ten.spec.as_mut().unwrap().structured_calendar.truncate(10);
        assert_eq!(created_listing(&long), created_listing(&ten));
        assert_ne!(created_listing(&long), created_listing(&s));
    }

    #[test]
    fn the_fingerprint_ignores_the_remaining_actions_counter_and_sees_edits() {
        let d = DurableJob::test("x").desired_schedule();
        let a = schedule_proto(&d, &options()).unwrap();
        let mut counted_down = a.clone();
        counted_down.state.as_mut().unwrap().remaining_actions = 2;
        assert_eq!(fingerprint(&a), fingerprint(&counted_down));
        let mut edited = a.clone();
        edited.spec.as_mut().unwrap().timezone_name = "Asia/Tokyo".into();
        assert_ne!(fingerprint(&a), fingerprint(&edited));
        let mut paused_by_hand = a.clone();
        paused_by_hand.state.as_mut().unwrap().paused = false;
        assert_ne!(fingerprint(&a), fingerprint(&paused_by_hand));
    }

    #[test]
    fn errors_are_classified_by_what_the_reconcile_should_do() {
        assert!(matches!(
            classify("ns", Status::unavailable("down")),
            TemporalError::Unavailable(_)
        ));
        assert!(
            matches!(classify("ns", Status::invalid_argument("bad cron")), TemporalError::Rejected(m) if m == "bad cron")
        );
        assert!(
            matches!(classify("ns", Status::not_found("Namespace ns is not found.")), TemporalError::NamespaceNotFound(n) if n == "ns")
        );
        assert!(matches!(
            classify("ns", Status::already_exists("x")),
            TemporalError::Conflict(_)
        ));
        assert!(matches!(
            classify("ns", Status::permission_denied("no")),
            TemporalError::PermissionDenied(_)
        ));
        assert!(is_not_found(&Status::not_found("schedule not found")));
        assert!(!is_not_found(&Status::not_found("Namespace x is not found.")));
    }
}
