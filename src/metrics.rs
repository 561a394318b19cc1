//! Prometheus metrics of the operator, one struct for the component.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

use crate::reason::Reason;
use crate::temporal::sdk::CallObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    pub operation: String,
    pub outcome: String,
}

/// The operator's metrics.
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_failures: Family<ReasonLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub temporal_calls: Family<CallLabel, Counter>,
    pub schedule_writes: Family<ReasonLabel, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them under `durablejob_`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self {
            reconciles: Counter::default(),
            reconcile_failures: Family::default(),
            reconcile_duration: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            temporal_calls: Family::default(),
            schedule_writes: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("durablejob");
        r.register("reconciles", "Reconciles of DurableJobs", m.reconciles.clone());
        r.register(
            "reconcile_failures",
            "Reconciles that ended with a problem, by reason",
            m.reconcile_failures.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            m.reconcile_duration.clone(),
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
