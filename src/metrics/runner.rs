//! The built-in runner's metrics, recorded by its activities (never by workflow code, which
//! replays). Labels are the DurableJob's namespace and name and the result, never run ids, and
//! only for runs proven to be that DurableJob's.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    pub namespace: String,
    pub name: String,
}

/// The Temporal namespace a refused run came from: one of the namespaces the runner polls, so
/// a flood of forged runs adds no series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabel {
    pub temporal_namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub namespace: String,
    pub name: String,
    pub result: String,
}

/// A multi-step run's step: the DurableJob, the step's name and how its Job ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    pub namespace: String,
    pub name: String,
    pub step: String,
    pub result: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_buckets() -> Histogram {
    // From a second to a day: batch work, not request latency.
    Histogram::new([
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
    ])
}

fn delay_buckets() -> Histogram {
    Histogram::new([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0])
}

/// How a run ended, as `recentRuns[].result` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RunEnd {
    Succeeded,
    /// A multi-step run that completed though items of a fan-out failed.
    PartiallyFailed,
    Failed,
    Canceled,
}

impl RunEnd {
    fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "Succeeded",
            Self::PartiallyFailed => "PartiallyFailed",
            Self::Failed => "Failed",
            Self::Canceled => "Canceled",
        }
    }
}

pub struct RunnerMetrics {
    runs: Family<ResultLabel, Counter>,
    run_duration: Histograms<ResultLabel>,
    start_delay: Histograms<JobLabel>,
    job_creations: Family<JobLabel, Counter>,
    refused: Family<RefusedLabel, Counter>,
    step_jobs: Family<StepLabel, Counter>,
    step_job_duration: Histograms<StepLabel>,
}

impl RunnerMetrics {
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = Self {
            runs: Family::default(),
            run_duration: Family::new_with_constructor(duration_buckets),
            start_delay: Family::new_with_constructor(delay_buckets),
            job_creations: Family::default(),
            refused: Family::default(),
            step_jobs: Family::default(),
            step_job_duration: Family::new_with_constructor(duration_buckets),
        };
        let r = registry.sub_registry_with_prefix("durablejob");
        r.register("runs", "Runs that ended, by result", m.runs.clone());
        r.register(
            "run_duration_seconds",
            "From a run's scheduled time to its end, all attempts included",
            m.run_duration.clone(),
        );
        r.register(
            "run_start_delay_seconds",
            "From a run's scheduled time to the creation of its first Job",
            m.start_delay.clone(),
        );
        r.register(
            "job_creations",
            "Jobs created by the runner (one per attempt)",
            m.job_creations.clone(),
        );
        r.register(
            "runs_refused",
            "Activities refused before touching Kubernetes: not a run started by the named DurableJob's own schedule, or an input that is not its own (by Temporal namespace polled)",
            m.refused.clone(),
        );
        r.register(
            "step_jobs",
            "Jobs of multi-step runs' steps that ended, by step and result (each attempt, and each item of a fan-out, counts)",
            m.step_jobs.clone(),
        );
        r.register(
            "step_job_duration_seconds",
            "How long a step's Job ran, from its creation (or adoption) to its end, by step and result",
            m.step_job_duration.clone(),
        );
        Arc::new(m)
    }

    /// A step's Job ended (one attempt of the step, or of one of its items).
    pub fn step_job_ended(
        &self,
        namespace: &str,
        name: &str,
        step: &str,
        end: RunEnd,
        took: std::time::Duration,
    ) {
        let label = StepLabel {
            namespace: namespace.into(),
            name: name.into(),
            step: step.into(),
            result: end.as_str().into(),
        };
        self.step_jobs.get_or_create(&label).inc();
        self.step_job_duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// A Job was created for `attempt`; `delay` is from the scheduled time (first attempts only).
    pub fn job_created(&self, namespace: &str, name: &str, attempt: u32, delay: std::time::Duration) {
        let label = JobLabel {
            namespace: namespace.into(),
            name: name.into(),
        };
        self.job_creations.get_or_create(&label).inc();
        if attempt == 1 {
            self.start_delay
                .get_or_create(&label)
                .observe(delay.as_secs_f64());
        }
    }

    /// An activity was refused before it touched Kubernetes. Not labelled by DurableJob: the
    /// names a refused run gives are unproven input.
    pub fn refused(&self, temporal_namespace: &str) {
        let label = RefusedLabel {
            temporal_namespace: temporal_namespace.into(),
        };
        self.refused.get_or_create(&label).inc();
    }

    /// A run ended (its last attempt finished); `took` is from its scheduled time.
    pub fn run_ended(&self, namespace: &str, name: &str, end: RunEnd, took: std::time::Duration) {
        let label = ResultLabel {
            namespace: namespace.into(),
            name: name.into(),
            result: end.as_str().into(),
        };
        self.runs.get_or_create(&label).inc();
        self.run_duration
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn runs_and_jobs_are_counted_per_durablejob() {
        let mut registry = Registry::default();
        let m = RunnerMetrics::register(&mut registry);
        m.job_created("ns", "nightly", 1, Duration::from_millis(300));
        m.job_created("ns", "nightly", 2, Duration::from_secs(60));
        m.run_ended("ns", "nightly", RunEnd::Failed, Duration::from_secs(70));
        m.refused("jobs");
        m.step_job_ended("ns", "etl", "load", RunEnd::Succeeded, Duration::from_secs(4));
        m.step_job_ended("ns", "etl", "load", RunEnd::Failed, Duration::from_secs(2));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "durablejob_job_creations_total{namespace=\"ns\",name=\"nightly\"} 2",
            "durablejob_run_start_delay_seconds_count{namespace=\"ns\",name=\"nightly\"} 1",
            "durablejob_run_start_delay_seconds_sum{namespace=\"ns\",name=\"nightly\"} 0.3",
            "durablejob_runs_total{namespace=\"ns\",name=\"nightly\",result=\"Failed\"} 1",
            "durablejob_run_duration_seconds_sum{namespace=\"ns\",name=\"nightly\",result=\"Failed\"} 70.0",
            "durablejob_runs_refused_total{temporal_namespace=\"jobs\"} 1",
            "durablejob_step_jobs_total{namespace=\"ns\",name=\"etl\",step=\"load\",result=\"Succeeded\"} 1",
            "durablejob_step_jobs_total{namespace=\"ns\",name=\"etl\",step=\"load\",result=\"Failed\"} 1",
            "durablejob_step_job_duration_seconds_sum{namespace=\"ns\",name=\"etl\",step=\"load\",result=\"Succeeded\"} 4.0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
