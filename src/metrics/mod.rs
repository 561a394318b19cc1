//! Prometheus metrics. The operator's controllers use controller-runtime's series names, so the
//! dashboards and alerts written for Go operators work unchanged; what is ours is `durablejob_`.
//! Per-DurableJob series are read from the controller's cache at scrape time ([`resources`]),
//! the way kube-state-metrics does it for CronJobs; the runner's are in [`runner`].

pub mod kube_requests;
pub mod resources;
pub mod runner;

use std::{sync::Arc, time::Duration};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::reason::Reason;
use crate::temporal::sdk::CallObserver;

/// The Lease name leader election uses; `leader_election_master_status{name}` carries it.
pub const LEADER_ELECTION_ID: &str = "durablejob-operator";
/// The `controller` label of the DurableJob controller.
pub const DURABLEJOB_CONTROLLER: &str = "durablejob";
/// The `controller` label of the CronJob handover controller.
pub const HANDOVER_CONTROLLER: &str = "cronjob-handover";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub controller: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    pub name: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn reconcile_buckets() -> Histogram {
    // controller-runtime's buckets for reconcile_time_seconds.
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
        1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0,
        40.0, 50.0, 60.0,
    ])
}

/// How one reconcile ended, as controller-runtime labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    Success,
    RequeueAfter,
    Error,
}

impl ReconcileResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::RequeueAfter => "requeue_after",
            Self::Error => "error",
        }
    }
}

/// The operator's metrics.
pub struct Metrics {
    reconcile_total: Family<ResultLabel, Counter>,
    reconcile_errors: Family<ControllerLabel, Counter>,
    reconcile_time: HistogramFamily<ControllerLabel>,
    active_workers: Family<ControllerLabel, Gauge>,
    max_concurrent: Family<ControllerLabel, Gauge>,
    leading: Family<NameLabel, Gauge>,
    reconcile_failures: Family<ReasonLabel, Counter>,
    temporal_calls: Family<CallLabel, Counter>,
    schedule_writes: Family<ReasonLabel, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self {
            reconcile_total: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_time: Family::new_with_constructor(reconcile_buckets),
            active_workers: Family::default(),
            max_concurrent: Family::default(),
            leading: Family::default(),
            reconcile_failures: Family::default(),
            temporal_calls: Family::default(),
            schedule_writes: Family::default(),
        };
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            m.reconcile_total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            m.reconcile_time.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of reconciles running now per controller",
            m.active_workers.clone(),
        );
        registry.register(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller (--max-concurrent-reconciles, shared by both)",
            m.max_concurrent.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "1 while this process holds the leader Lease of that name, 0 otherwise",
            m.leading.clone(),
        );
        // The standby replicas report 0 from the start, so "nobody leads" is visible.
        m.leader_gauge();
        let r = registry.sub_registry_with_prefix("durablejob");
        r.register(
            "reconcile_failures",
            "Reconciles that ended with a problem, by reason",
            m.reconcile_failures.clone(),
        );
        r.register(
            "temporal_requests",
            "Requests to Temporal by operation and outcome",
            m.temporal_calls.clone(),
        );
        r.register(
            "schedule_writes",
            "Schedule creates, updates and deletes by reason",
            m.schedule_writes.clone(),
        );
        Arc::new(m)
    }

    /// The gauge leader election sets.
    pub fn leader_gauge(&self) -> Gauge {
        self.leading
            .get_or_create(&NameLabel {
                name: LEADER_ELECTION_ID.into(),
            })
            .clone()
    }

    /// Records the reconcile concurrency limit of a controller.
    pub fn max_concurrent(&self, controller: &'static str, n: u16) {
        self.max_concurrent
            .get_or_create(&ControllerLabel {
                controller: controller.into(),
            })
            .set(i64::from(n));
    }

    /// Counts a reconcile as running until the guard is dropped.
    pub fn start(&self, controller: &'static str) -> Running<'_> {
        let gauge = self.active_workers.get_or_create(&ControllerLabel {
            controller: controller.into(),
        });
        gauge.inc();
        Running {
            metrics: self,
            controller,
            started: std::time::Instant::now(),
        }
    }

    fn finished(&self, controller: &'static str, result: ReconcileResult, took: Duration) {
        let label = ControllerLabel {
            controller: controller.into(),
        };
        self.active_workers.get_or_create(&label).dec();
        self.reconcile_time
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        if result == ReconcileResult::Error {
            self.reconcile_errors.get_or_create(&label).inc();
        }
        self.reconcile_total
            .get_or_create(&ResultLabel {
                controller: controller.into(),
                result: result.as_str().into(),
            })
            .inc();
    }

    pub fn failure(&self, reason: Reason) {
        self.reconcile_failures
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().into(),
            })
            .inc();
    }

    pub fn write(&self, reason: Reason) {
        self.schedule_writes
            .get_or_create(&ReasonLabel {
                reason: reason.as_str().into(),
            })
            .inc();
    }
}

/// One reconcile in flight; [`Running::done`] records how it ended.
pub struct Running<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    started: std::time::Instant,
}

impl Running<'_> {
    pub fn done(self, result: ReconcileResult) {
        self.metrics
            .finished(self.controller, result, self.started.elapsed());
    }
}

/// The controller-runtime result of a kube-runtime reconcile.
pub fn result_of<E>(r: &Result<kube::runtime::controller::Action, E>) -> ReconcileResult {
    match r {
        Err(_) => ReconcileResult::Error,
        Ok(a) if *a == kube::runtime::controller::Action::await_change() => ReconcileResult::Success,
        Ok(_) => ReconcileResult::RequeueAfter,
    }
}

impl CallObserver for Metrics {
    fn observe(&self, operation: &'static str, ok: bool) {
        self.temporal_calls
            .get_or_create(&CallLabel {
                operation: operation.into(),
                outcome: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_under_controller_runtime_names() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        m.start(DURABLEJOB_CONTROLLER).done(ReconcileResult::RequeueAfter);
        m.start(DURABLEJOB_CONTROLLER).done(ReconcileResult::Error);
        let running = m.start(HANDOVER_CONTROLLER);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "controller_runtime_reconcile_total{controller=\"durablejob\",result=\"requeue_after\"} 1",
            "controller_runtime_reconcile_total{controller=\"durablejob\",result=\"error\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"durablejob\"} 1",
            "controller_runtime_reconcile_time_seconds_count{controller=\"durablejob\"} 2",
            "controller_runtime_active_workers{controller=\"cronjob-handover\"} 1",
            "leader_election_master_status{name=\"durablejob-operator\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        running.done(ReconcileResult::Success);
    }
}
