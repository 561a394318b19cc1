//! Per-DurableJob series, mirroring kube-state-metrics' `kube_cronjob_*` as `durablejob_*`,
//! computed at scrape time from the controller's cache: a deleted DurableJob's series vanish
//! with it, and labels are only namespace, name and spec fields (never run ids).

use std::sync::{Arc, Mutex};

use kube::{ResourceExt, core::DeserializeGuard, runtime::reflector::Store};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

use crate::api::DurableJob;

/// One sample: metric name (without `durablejob_`), labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// The series, their help and type, in the order they are written.
const SERIES: &[(&str, &str, MetricType)] = &[
    (
        "info",
        "Information about the DurableJob (always 1)",
        MetricType::Gauge,
    ),
    (
        "spec_suspend",
        "1 when spec.suspend pauses the DurableJob",
        MetricType::Gauge,
    ),
    (
        "next_schedule_time",
        "Unix time of the next scheduled run",
        MetricType::Gauge,
    ),
    (
        "status_last_schedule_time",
        "Unix time of the last scheduled run",
        MetricType::Gauge,
    ),
    (
        "status_last_successful_time",
        "Unix time of the last run that succeeded",
        MetricType::Gauge,
    ),
    (
        "status_last_failure_time",
        "Unix time of the last run that failed",
        MetricType::Gauge,
    ),
    ("status_running", "Runs in progress", MetricType::Gauge),
    (
        "status_paused",
        "1 while the schedule is paused, labelled with why: Suspended, RunFailed, ConsecutiveFailures or Paused",
        MetricType::Gauge,
    ),
    (
        "status_consecutive_failures",
        "Failed runs in a row (spec.suspendAfterFailures counts them)",
        MetricType::Gauge,
    ),
    (
        "missed_runs",
        "Runs Temporal skipped because they were due outside the catchup window",
        MetricType::Counter,
    ),
    (
        "runs_not_started",
        "Runs Temporal did not start, by cause: CatchupWindowPassed, OverlapSkipped, BufferFull",
        MetricType::Counter,
    ),
    (
        "status_condition",
        "The DurableJob's conditions (1 for the status the condition has)",
        MetricType::Gauge,
    ),
    (
        "worker_version_ready_replicas",
        "Ready pods of each version of a versioned user worker, labelled with its build id and state (Inactive, Current, Draining, Drained)",
        MetricType::Gauge,
    ),
];

fn unix(t: &chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

/// When runs start, as one label value: cron entries and intervals, `;`-separated.
fn schedule_label(dj: &DurableJob) -> String {
    let s = &dj.spec.schedule;
    let mut parts: Vec<String> = s.cron.clone();
    parts.extend(s.intervals.iter().map(|i| match &i.offset {
        Some(o) => format!("@every {} offset {o}", i.every),
        None => format!("@every {}", i.every),
    }));
    parts.join(";")
}

/// The samples of one DurableJob.
pub fn samples(dj: &DurableJob) -> Vec<Sample> {
    let id = || {
        vec![
            ("namespace", dj.namespace().unwrap_or_default()),
            ("name", dj.name_any()),
        ]
    };
    let sample = |metric, value: f64| Sample {
        metric,
        labels: id(),
        value,
    };
    let mut info = id();
    info.push(("schedule", schedule_label(dj)));
    info.push(("time_zone", dj.spec.schedule.time_zone.clone()));
    info.push((
        "overlap_policy",
        serde_json::to_value(dj.spec.overlap_policy)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
    ));
    let mut out = vec![
        Sample {
            metric: "info",
            labels: info,
            value: 1.0,
        },
        sample("spec_suspend", f64::from(u8::from(dj.spec.suspend))),
    ];
    let Some(status) = &dj.status else {
        return out;
    };
    if let Some(next) = status.next_run_times.first() {
        out.push(sample("next_schedule_time", unix(next)));
    }
    for (metric, time) in [
        ("status_last_schedule_time", &status.last_schedule_time),
        ("status_last_successful_time", &status.last_successful_time),
        ("status_last_failure_time", &status.last_failure_time),
    ] {
        if let Some(t) = time {
            out.push(sample(metric, unix(t)));
        }
    }
    out.push(sample("status_running", status.running_workflows.len() as f64));
    if status.paused {
        let mut labels = id();
        let reason = status.paused_reason.clone().unwrap_or_else(|| "Paused".into());
        labels.push(("reason", reason));
        out.push(Sample {
            metric: "status_paused",
            labels,
            value: 1.0,
        });
    }
    if let Some(n) = status.consecutive_failures {
        out.push(sample("status_consecutive_failures", n as f64));
    }
    out.push(sample("missed_runs", status.missed_runs as f64));
    let by_cause = &status.missed_runs_by_cause;
    for (cause, n) in [
        (
            crate::reason::Reason::CatchupWindowPassed,
            by_cause.catchup_window_passed,
        ),
        (crate::reason::Reason::OverlapSkipped, by_cause.overlap_skipped),
        (crate::reason::Reason::BufferFull, by_cause.buffer_full),
    ] {
        // only causes that happened: three series for each of thousands of DurableJobs that
        // never missed a run would be most of the scrape
        if n == 0 {
            continue;
        }
        let mut labels = id();
        labels.push(("cause", cause.as_str().to_string()));
        out.push(Sample {
            metric: "runs_not_started",
            labels,
            value: n as f64,
        });
    }
    for v in status.worker.iter().flat_map(|w| &w.versions) {
        let mut labels = id();
        labels.push(("build_id", v.build_id.clone()));
        labels.push(("state", format!("{:?}", v.state)));
        out.push(Sample {
            metric: "worker_version_ready_replicas",
            labels,
            value: f64::from(v.ready_replicas),
        });
    }
    for c in &status.conditions {
        for value in ["true", "false", "unknown"] {
            let mut labels = id();
            labels.push(("condition", c.type_.clone()));
            labels.push(("status", value.into()));
            let on = c.status.eq_ignore_ascii_case(value);
            out.push(Sample {
                metric: "status_condition",
                labels,
                value: f64::from(u8::from(on)),
            });
        }
    }
    out
}

/// Reads every watched namespace's cache when scraped.
#[derive(Clone, Default)]
pub struct DurableJobCollector {
    stores: Arc<Mutex<Vec<Store<DeserializeGuard<DurableJob>>>>>,
}

impl std::fmt::Debug for DurableJobCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DurableJobCollector")
    }
}

impl DurableJobCollector {
    /// Adds a controller's cache.
    pub fn watch(&self, store: Store<DeserializeGuard<DurableJob>>) {
        self.stores.lock().expect("stores lock").push(store);
    }

    /// Every cached DurableJob, sorted by namespace and name.
    fn all(&self) -> Vec<Arc<DeserializeGuard<DurableJob>>> {
        let stores = self.stores.lock().expect("stores lock").clone();
        let mut djs: Vec<Arc<DeserializeGuard<DurableJob>>> = stores.iter().flat_map(Store::state).collect();
        djs.sort_by_key(|d| d.0.as_ref().ok().map(|d| (d.namespace(), d.name_any())));
        djs
    }
}

/// Writes samples as the `durablejob_*` families.
pub fn encode(samples: &[Sample], encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
    encode_each(
        |metric| Box::new(samples.iter().filter(move |s| s.metric == metric).cloned()),
        encoder,
    )
}

/// Writes the families of these DurableJobs, one family at a time: only one DurableJob's
/// samples exist at once, so a scrape's memory does not grow with the number of resources
/// (beyond the text itself).
pub fn encode_resources(djs: &[&DurableJob], encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
    encode_each(
        |metric| {
            Box::new(
                djs.iter()
                    .flat_map(move |dj| samples(dj).into_iter().filter(move |s| s.metric == metric)),
            )
        },
        encoder,
    )
}

type Samples<'a> = Box<dyn Iterator<Item = Sample> + 'a>;

/// For each family, `of(metric)` gives its samples; the families' help and type come from
/// [`SERIES`], and empty families are left out.
fn encode_each<'a>(
    of: impl Fn(&'static str) -> Samples<'a>,
    encoder: DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let mut encoder = encoder;
    for (metric, help, kind) in SERIES {
        let mut of_this = of(metric).peekable();
        if of_this.peek().is_none() {
            continue;
        }
        let name = format!("durablejob_{metric}");
        let mut family = encoder.encode_descriptor(&name, help, None, *kind)?;
        for s in of_this {
            let labels: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let metric_encoder = family.encode_family(&labels)?;
            match kind {
                MetricType::Counter => ConstCounter::new(s.value).encode(metric_encoder)?,
                _ => ConstGauge::new(s.value).encode(metric_encoder)?,
            }
        }
    }
    Ok(())
}

impl Collector for DurableJobCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.all();
        let djs: Vec<&DurableJob> = all.iter().filter_map(|d| d.0.as_ref().ok()).collect();
        encode_resources(&djs, encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Condition, DurableJobStatus, RunningWorkflow};

    #[derive(Debug)]
    struct Fixed(Vec<Sample>);
    impl Collector for Fixed {
        fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode(&self.0, encoder)
        }
    }

    fn scrape(djs: &[DurableJob]) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Fixed(djs.iter().flat_map(samples).collect())));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn the_series_mirror_kube_state_metrics_cronjob_ones() {
        let mut dj = DurableJob::test("nightly");
        dj.spec.schedule.cron = vec!["0 3 * * *".into()];
        dj.spec.schedule.time_zone = "Europe/Berlin".into();
        dj.spec.suspend = true;
        let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        dj.status = Some(DurableJobStatus {
            next_run_times: vec![t("2026-12-02T02:00:00Z")],
            last_schedule_time: Some(t("2026-12-01T02:00:00Z")),
            last_successful_time: Some(t("2026-11-30T02:00:00Z")),
            last_failure_time: Some(t("2026-12-01T02:00:05Z")),
            running_workflows: vec![RunningWorkflow {
                progress: None,
                workflow_id: "w".into(),
                run_id: "r".into(),
                start_time: None,
                attempt: None,
                job_name: None,
                step: None,
            }],
            missed_runs: 2,
            paused: true,
            paused_reason: Some("Suspended".into()),
            consecutive_failures: Some(4),
            missed_runs_by_cause: crate::api::MissedRuns {
                catchup_window_passed: 2,
                overlap_skipped: 3,
                buffer_full: 0,
            },
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Synced".into(),
                message: String::new(),
                last_transition_time: t("2026-12-01T00:00:00Z"),
                observed_generation: Some(1),
            }],
            ..DurableJobStatus::default()
        });
        let text = scrape(&[dj]);
        for line in [
            "durablejob_info{namespace=\"default\",name=\"nightly\",schedule=\"0 3 * * *\",time_zone=\"Europe/Berlin\",overlap_policy=\"Skip\"} 1",
            "durablejob_spec_suspend{namespace=\"default\",name=\"nightly\"} 1",
            "durablejob_runs_not_started_total{namespace=\"default\",name=\"nightly\",cause=\"OverlapSkipped\"} 3",
            "durablejob_runs_not_started_total{namespace=\"default\",name=\"nightly\",cause=\"CatchupWindowPassed\"} 2",
            "durablejob_next_schedule_time{namespace=\"default\",name=\"nightly\"} 1796176800",
            "durablejob_status_last_schedule_time{namespace=\"default\",name=\"nightly\"} 1796090400",
            "durablejob_status_last_successful_time{namespace=\"default\",name=\"nightly\"} 1796004000",
            "durablejob_status_last_failure_time{namespace=\"default\",name=\"nightly\"} 1796090405",
            "durablejob_status_running{namespace=\"default\",name=\"nightly\"} 1",
            "durablejob_status_paused{namespace=\"default\",name=\"nightly\",reason=\"Suspended\"} 1",
            "durablejob_status_consecutive_failures{namespace=\"default\",name=\"nightly\"} 4",
            "durablejob_missed_runs_total{namespace=\"default\",name=\"nightly\"} 2",
            "durablejob_status_condition{namespace=\"default\",name=\"nightly\",condition=\"Ready\",status=\"true\"} 1",
            "durablejob_status_condition{namespace=\"default\",name=\"nightly\",condition=\"Ready\",status=\"false\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(
            !text.contains("cause=\"BufferFull\""),
            "a cause that never happened has no series"
        );
    }

    #[test]
    fn each_worker_version_has_its_ready_pods_by_build_id_and_state() {
        use crate::api::{WorkerStatus, WorkerVersionState, WorkerVersionStatus};
        let mut dj = DurableJob::test("report").with_worker("Report");
        dj.status = Some(DurableJobStatus {
            worker: Some(WorkerStatus {
                deployment: "report-2-bbbb".into(),
                ready_replicas: 3,
                versions: vec![
                    WorkerVersionStatus {
                        build_id: "2-bbbb".into(),
                        deployment: Some("report-2-bbbb".into()),
                        state: WorkerVersionState::Current,
                        ready_replicas: 3,
                        polled: true,
                        open_runs: 0,
                        ramp_percentage: None,
                    },
                    WorkerVersionStatus {
                        build_id: "1-aaaa".into(),
                        deployment: Some("report-1-aaaa".into()),
                        state: WorkerVersionState::Draining,
                        ready_replicas: 1,
                        polled: true,
                        open_runs: 0,
                        ramp_percentage: None,
                    },
                ],
                ..Default::default()
            }),
            ..DurableJobStatus::default()
        });
        let text = scrape(&[dj]);
        for line in [
            "durablejob_worker_version_ready_replicas{namespace=\"default\",name=\"report\",build_id=\"2-bbbb\",state=\"Current\"} 3",
            "durablejob_worker_version_ready_replicas{namespace=\"default\",name=\"report\",build_id=\"1-aaaa\",state=\"Draining\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn a_durablejob_without_status_has_only_its_spec_series() {
        let text = scrape(&[DurableJob::test("fresh")]);
        assert!(text.contains("durablejob_info{"));
        assert!(text.contains("durablejob_spec_suspend{namespace=\"default\",name=\"fresh\"} 0"));
        assert!(!text.contains("durablejob_status_running"));
    }
}
