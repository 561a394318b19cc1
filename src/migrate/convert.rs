//! One CronJob manifest → one DurableJob manifest and the list of what changes in meaning.
//! Pure: no I/O.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::schedule::{self, Translated};
use crate::api::{DEFAULT_CATCHUP_WINDOW, OverlapPolicy};
use crate::desired::validate::MIN_CATCHUP_WINDOW;

/// How to map what has more than one sensible mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Zone for CronJobs without `timeZone` (they ran in the controller manager's zone).
    pub default_time_zone: String,
    /// `concurrencyPolicy: Replace` becomes this (TerminateOther, or CancelOther).
    pub replace_as: OverlapPolicy,
    /// `concurrencyPolicy: Forbid` becomes this (Skip, or BufferOne).
    pub forbid_as: OverlapPolicy,
    /// Cross-run retries (`workflow.retry.maximumAttempts`); `None` keeps CronJob's behaviour.
    pub retries: Option<u32>,
    /// Entries that fire at minute 0 get a hashed minute (`H`), so many converted jobs do not
    /// start in the same second.
    pub stagger: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            default_time_zone: "UTC".into(),
            replace_as: OverlapPolicy::TerminateOther,
            forbid_as: OverlapPolicy::Skip,
            retries: None,
            stagger: false,
        }
    }
}

/// Something the user should know about one converted CronJob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// The CronJob field it concerns.
    pub field: String,
    pub severity: Severity,
    pub message: String,
}

/// How much a difference matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The meaning carries over; worth knowing.
    Info,
    /// Behaviour differs.
    Warning,
    /// Could not be converted.
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The differences found so far, in the order the fields are translated.
#[derive(Default)]
struct Notes(Vec<Difference>);

impl Notes {
    fn push(&mut self, severity: Severity, field: &str, message: impl Into<String>) {
        self.0.push(Difference {
            field: field.into(),
            severity,
            message: message.into(),
        });
    }
}

/// CronJob spec fields this conversion handles.
const KNOWN_SPEC: &[&str] = &[
    "schedule",
    "timeZone",
    "concurrencyPolicy",
    "startingDeadlineSeconds",
    "suspend",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "jobTemplate",
];

type Spec = Map<String, Value>;

/// Converts a `batch/v1` CronJob; `Err` when it cannot be converted at all. Each field has its
/// translator below; this only puts their results together.
pub fn convert(cronjob: &Value, opts: &Options) -> Result<(Value, Vec<Difference>), String> {
    let mut notes = Notes::default();
    let meta = &cronjob["metadata"];
    let name = meta["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or("metadata.name is missing")?;
    if let Some(why) = crate::api::name_too_long(name) {
        return Err(format!(
            "{why} (kubectl would refuse this CronJob too: its limit is 52)"
        ));
    }
    let spec = cronjob["spec"].as_object().ok_or("spec is missing")?;
    let schedule = schedule_and_time_zone(spec, opts, &mut notes)?;
    let overlap = overlap_policy(spec, opts, &mut notes)?;
    let catchup = catchup_window(spec, &mut notes);
    let job_template = job_template(spec, &mut notes)?;
    let workflow = cross_run_retries(opts, &mut notes);
    unknown_fields(spec, &mut notes);
    let out_meta = metadata(meta, name, &mut notes);

    let mut out_spec = Map::new();
    out_spec.insert("schedule".into(), Value::Object(schedule));
    out_spec.insert(
        "overlapPolicy".into(),
        serde_json::to_value(overlap).expect("enum serializes"),
    );
    out_spec.insert("catchupWindow".into(), Value::from(catchup));
    out_spec.insert(
        "suspend".into(),
        Value::from(spec.get("suspend").and_then(Value::as_bool).unwrap_or(false)),
    );
    if !workflow.is_empty() {
        out_spec.insert("workflow".into(), Value::Object(workflow));
    }
    out_spec.insert("jobTemplate".into(), job_template);
    let limit =
        |field: &str, default: i64| Value::from(spec.get(field).and_then(Value::as_i64).unwrap_or(default));
    out_spec.insert(
        "successfulRunsHistoryLimit".into(),
        limit("successfulJobsHistoryLimit", 3),
    );
    out_spec.insert(
        "failedRunsHistoryLimit".into(),
        limit("failedJobsHistoryLimit", 1),
    );
    out_spec.insert("deletionPolicy".into(), Value::from("Delete"));

    let dj = json!({
        "apiVersion": "durablejob.dev/v1alpha1",
        "kind": "DurableJob",
        "metadata": Value::Object(out_meta),
        "spec": Value::Object(out_spec),
    });
    refused_by_the_operator(&dj)?;
    Ok((dj, notes.0))
}

/// What the operator would refuse (a pod without containers, `restartPolicy: Always`, ...) is
/// refused here too, naming the field of the CronJob it came from.
fn refused_by_the_operator(dj: &Value) -> Result<(), String> {
    let typed: crate::api::DurableJob = serde_json::from_value(dj.clone())
        .map_err(|e| format!("the converted DurableJob does not decode: {e}"))?;
    crate::desired::validate::validate(&typed.spec)
        .map(|_| ())
        .map_err(|invalid| {
            // the field paths hold for the CronJob too: its jobTemplate is kept at spec.jobTemplate
            format!("the operator would refuse it: {invalid}")
        })
}

/// `spec.schedule` and `spec.timeZone` → `spec.schedule` (cron entries or intervals, and the zone).
fn schedule_and_time_zone(spec: &Spec, opts: &Options, notes: &mut Notes) -> Result<Spec, String> {
    let sched = spec
        .get("schedule")
        .and_then(Value::as_str)
        .ok_or("spec.schedule is missing")?;
    let t: Translated = schedule::translate(sched).map_err(|e| format!("spec.schedule: {e}"))?;
    for n in &t.notes {
        notes.push(Severity::Info, "spec.schedule", n.clone());
    }
    for entry in &t.cron {
        crate::cron::check(entry)
            .map_err(|e| format!("spec.schedule: the translation {entry:?} is not accepted: {e}"))?;
    }
    let time_zone = match (spec.get("timeZone").and_then(Value::as_str), &t.time_zone) {
        (Some(_), Some(_)) => {
            return Err(
                "spec.schedule has a CRON_TZ=/TZ= prefix and spec.timeZone is set; keep only spec.timeZone"
                    .into(),
            );
        }
        (Some(z), None) => z.to_string(),
        (None, Some(z)) => z.clone(),
        (None, None) => {
            notes.push(
                Severity::Warning,
                "spec.timeZone",
                format!(
                    "not set: the CronJob ran in the kube-controller-manager's time zone; the DurableJob uses {} (--default-time-zone)",
                    opts.default_time_zone
                ),
            );
            opts.default_time_zone.clone()
        }
    };
    if time_zone.parse::<chrono_tz::Tz>().is_err() {
        return Err(format!("spec.timeZone: {time_zone:?} is not an IANA time zone"));
    }
    let dst = dst_hours(&time_zone);
    let touched: Vec<String> = (0..24)
        .filter(|h| dst[*h] && (!t.intervals.is_empty() || t.cron.iter().any(|c| hours_of(c)[*h])))
        .map(|h| format!("{h:02}:00-{h:02}:59"))
        .collect();
    if !touched.is_empty() {
        notes.push(
            Severity::Warning,
            "spec.timeZone",
            format!(
                "{time_zone} changes to or from daylight saving time within {} local time, when this schedule runs: on those days Temporal runs a time in a repeated hour twice (once in each copy) and skips local times that do not exist, while the CronJob controller derived missed runs from the interval between two schedule times",
                touched.join(", ")
            ),
        );
    }
    let cron = stagger(&t.cron, opts.stagger, notes);
    let mut schedule = Map::new();
    if !cron.is_empty() {
        schedule.insert("cron".into(), json!(cron));
    }
    if !t.intervals.is_empty() {
        schedule.insert(
            "intervals".into(),
            Value::Array(t.intervals.iter().map(|d| json!({"every": d})).collect()),
        );
    }
    schedule.insert("timeZone".into(), Value::from(time_zone));
    Ok(schedule)
}

/// Entries that fire at minute 0, with `H` for the minute when `--stagger` asks for it; either
/// way the report says so.
fn stagger(cron: &[String], on: bool, notes: &mut Notes) -> Vec<String> {
    let mut out = Vec::with_capacity(cron.len());
    for entry in cron {
        match crate::cron::hash::staggered(entry) {
            Some(h) if on => {
                notes.push(
                    Severity::Warning,
                    "spec.schedule",
                    format!(
                        "{entry:?} started at minute 0; --stagger made it {h:?}: each DurableJob keeps a minute derived from its namespace and name (status.schedule shows it), so the jobs converted together no longer start in the same second"
                    ),
                );
                out.push(h);
            }
            Some(h) => {
                notes.push(
                    Severity::Info,
                    "spec.schedule",
                    format!(
                        "{entry:?} starts at minute 0, as many CronJobs do; `durablejob migrate --stagger` writes {h:?} instead to spread them over the hour"
                    ),
                );
                out.push(entry.clone());
            }
            None => out.push(entry.clone()),
        }
    }
    out
}

/// `spec.concurrencyPolicy` → `spec.overlapPolicy`.
fn overlap_policy(spec: &Spec, opts: &Options, notes: &mut Notes) -> Result<OverlapPolicy, String> {
    let field = "spec.concurrencyPolicy";
    match spec
        .get("concurrencyPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Allow")
    {
        "Allow" => {
            notes.push(
                Severity::Info,
                field,
                "Allow became AllowAll (Temporal's default would be Skip, so it is written explicitly)",
            );
            Ok(OverlapPolicy::AllowAll)
        }
        "Forbid" => {
            let why = match opts.forbid_as {
                OverlapPolicy::BufferOne => {
                    "BufferOne: a run due while one is going starts right after it (CronJob would skip it)"
                }
                _ => "Skip: a run due while one is going is skipped, as with CronJob",
            };
            notes.push(Severity::Info, field, format!("Forbid became {why}"));
            Ok(opts.forbid_as)
        }
        "Replace" => {
            let why = match opts.replace_as {
                OverlapPolicy::CancelOther => {
                    "CancelOther: the running run is cancelled, which deletes its Job (--replace-as)"
                }
                _ => {
                    "TerminateOther: the running run is terminated and its Job deleted, as CronJob deletes the Job (use --replace-as CancelOther for a graceful cancel)"
                }
            };
            notes.push(Severity::Info, field, format!("Replace became {why}"));
            Ok(opts.replace_as)
        }
        other => Err(format!("{field}: {other:?} is not Allow, Forbid or Replace")),
    }
}

/// `spec.startingDeadlineSeconds` → `spec.catchupWindow`.
fn catchup_window(spec: &Spec, notes: &mut Notes) -> String {
    let field = "spec.startingDeadlineSeconds";
    match spec.get("startingDeadlineSeconds").and_then(Value::as_i64) {
        Some(s) => {
            let secs = s.max(MIN_CATCHUP_WINDOW.as_secs() as i64) as u64;
            if (s as u64) < MIN_CATCHUP_WINDOW.as_secs() {
                notes.push(
                    Severity::Warning,
                    field,
                    format!("{s}s is below Temporal's minimum catch-up window; raised to 10s"),
                );
            }
            notes.push(
                Severity::Info,
                field,
                "became catchupWindow: runs missed while Temporal was unavailable start if at most this late; CronJob starts only the most recent missed run, Temporal starts each missed run the overlap policy allows",
            );
            crate::util::duration::format(std::time::Duration::from_secs(secs))
        }
        None => {
            notes.push(
                Severity::Warning,
                field,
                format!(
                    "not set: CronJob would start the most recent missed run however late; the DurableJob catches up runs at most {DEFAULT_CATCHUP_WINDOW} late (catchupWindow)"
                ),
            );
            DEFAULT_CATCHUP_WINDOW.to_string()
        }
    }
}

/// `spec.jobTemplate`, kept whole; what its Job-level fields now mean.
fn job_template(spec: &Spec, notes: &mut Notes) -> Result<Value, String> {
    let job_template = spec
        .get("jobTemplate")
        .cloned()
        .ok_or("spec.jobTemplate is missing")?;
    let job_spec = &job_template["spec"];
    let backoff = job_spec["backoffLimit"].as_i64().unwrap_or(6);
    notes.push(
        Severity::Info,
        "spec.jobTemplate.spec.backoffLimit",
        format!(
            "backoffLimit {backoff} still retries pods inside each Job; CronJob had no retries of whole Jobs"
        ),
    );
    if !job_spec["podFailurePolicy"].is_null() {
        notes.push(
            Severity::Info,
            "spec.jobTemplate.spec.podFailurePolicy",
            "kept on the Job: it decides pod retries inside one Job; a Job it fails counts as one failed attempt of the run",
        );
    }
    if let Some(d) = job_spec["activeDeadlineSeconds"].as_i64() {
        notes.push(
            Severity::Info,
            "spec.jobTemplate.spec.activeDeadlineSeconds",
            format!("kept on the Job ({d}s): a Job past it fails the run with JobDeadlineExceeded"),
        );
    }
    if !job_spec["ttlSecondsAfterFinished"].is_null() {
        notes.push(
            Severity::Info,
            "spec.jobTemplate.spec.ttlSecondsAfterFinished",
            "kept on the Job: finished Jobs are deleted after it as before, independent of the history limits",
        );
    }
    Ok(job_template)
}

/// `--retries` → `spec.workflow.retry` (CronJob has no retries of whole Jobs).
fn cross_run_retries(opts: &Options, notes: &mut Notes) -> Spec {
    let mut workflow = Map::new();
    match opts.retries {
        Some(n) if n > 1 => {
            workflow.insert(
                "retry".into(),
                json!({"initialInterval": "30s", "backoffCoefficient": 2, "maximumInterval": "10m", "maximumAttempts": n}),
            );
            notes.push(
                Severity::Info,
                "retry",
                format!("Temporal retries a failed run up to {n} attempts in total (a new Job each time, --retries)"),
            );
        }
        _ => notes.push(
            Severity::Info,
            "retry",
            "cross-run retries are off, as with CronJob (--retries N turns them on)",
        ),
    }
    workflow
}

/// Spec fields this conversion does not know are dropped, each reported as an error.
fn unknown_fields(spec: &Spec, notes: &mut Notes) {
    for k in spec.keys().filter(|k| !KNOWN_SPEC.contains(&k.as_str())) {
        notes.push(
            Severity::Error,
            &format!("spec.{k}"),
            "not a CronJob field this conversion knows; it was dropped",
        );
    }
}

/// Name, namespace, labels and annotations carry over (kubectl's last-applied annotation,
/// which describes the CronJob, does not).
fn metadata(meta: &Value, name: &str, notes: &mut Notes) -> Spec {
    let mut out_meta = Map::new();
    out_meta.insert("name".into(), Value::from(name));
    if let Some(ns) = meta["namespace"].as_str() {
        out_meta.insert("namespace".into(), Value::from(ns));
    }
    if let Some(labels) = meta["labels"].as_object().filter(|l| !l.is_empty()) {
        out_meta.insert("labels".into(), Value::Object(labels.clone()));
    }
    let mut annotations: BTreeMap<String, Value> = meta["annotations"]
        .as_object()
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    if annotations
        .remove("kubectl.kubernetes.io/last-applied-configuration")
        .is_some()
    {
        notes.push(
            Severity::Info,
            "metadata.annotations",
            "kubectl's last-applied-configuration annotation was dropped (it described the CronJob)",
        );
    }
    if !annotations.is_empty() {
        out_meta.insert("annotations".into(), json!(annotations));
    }
    out_meta
}

/// Local hours in which a zone's clock jumps (a missing or a repeated hour), over a year.
fn dst_hours(zone: &str) -> [bool; 24] {
    use chrono::{Datelike, LocalResult, NaiveDate, TimeZone};
    use std::{collections::HashMap, sync::Mutex, sync::OnceLock};
    static CACHE: OnceLock<Mutex<HashMap<String, [bool; 24]>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(h) = cache.lock().expect("cache lock").get(zone) {
        return *h;
    }
    let mut hours = [false; 24];
    if let Ok(tz) = zone.parse::<chrono_tz::Tz>() {
        let mut day = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
        while day.year() == 2026 {
            for (h, hour) in hours.iter_mut().enumerate() {
                let local = day.and_hms_opt(h as u32, 30, 0).expect("a time");
                if !matches!(tz.from_local_datetime(&local), LocalResult::Single(_)) {
                    *hour = true;
                }
            }
            day = day.succ_opt().expect("next day");
        }
    }
    cache.lock().expect("cache lock").insert(zone.to_string(), hours);
    hours
}

/// Hours a translated cron entry runs in.
fn hours_of(entry: &str) -> [bool; 24] {
    let mut set = [false; 24];
    let field = match entry {
        "@hourly" => "*",
        e if e.starts_with('@') => "0",
        e => e.split_whitespace().nth(1).unwrap_or("*"),
    };
    for part in field.split(',') {
        let (range, step) = part
            .split_once('/')
            .map(|(r, s)| (r, s.parse().unwrap_or(1)))
            .unwrap_or((part, 1));
        let (a, b) = match range {
            "*" => (0, 23),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().unwrap_or(0), b.parse().unwrap_or(23)),
                None if part.contains('/') => (r.parse().unwrap_or(0), 23),
                None => (r.parse().unwrap_or(0), r.parse().unwrap_or(0)),
            },
        };
        let mut h: usize = a;
        while h <= b.min(23) {
            set[h] = true;
            h += step.max(1);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cronjob(spec: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "backup", "namespace": "db", "labels": {"app": "db"},
            "annotations": {"owner": "team-db", "kubectl.kubernetes.io/last-applied-configuration": "{}"}}, "spec": spec})
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"job": "backup"}}, "spec": {"backoffLimit": 2, "activeDeadlineSeconds": 600,
            "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "b", "image": "backup:1"}]}}}})
    }

    #[test]
    fn every_field_maps_and_defaults_are_written_explicitly() {
        let (dj, diffs) = convert(
            &cronjob(json!({"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "concurrencyPolicy": "Forbid",
                "startingDeadlineSeconds": 300, "suspend": true, "successfulJobsHistoryLimit": 5, "failedJobsHistoryLimit": 2,
                "jobTemplate": template()})),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            dj,
            json!({
                "apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob",
                "metadata": {"name": "backup", "namespace": "db", "labels": {"app": "db"}, "annotations": {"owner": "team-db"}},
                "spec": {
                    "schedule": {"cron": ["0 3 * * *"], "timeZone": "Europe/Berlin"},
                    "overlapPolicy": "Skip", "catchupWindow": "5m", "suspend": true,
                    "jobTemplate": template(), "successfulRunsHistoryLimit": 5, "failedRunsHistoryLimit": 2, "deletionPolicy": "Delete"
                }
            })
        );
        let fields: Vec<&str> = diffs.iter().map(|d| d.field.as_str()).collect();
        for f in [
            "spec.concurrencyPolicy",
            "spec.startingDeadlineSeconds",
            "spec.jobTemplate.spec.backoffLimit",
            "spec.jobTemplate.spec.activeDeadlineSeconds",
            "retry",
            "metadata.annotations",
        ] {
            assert!(fields.contains(&f), "{f} reported: {fields:?}");
        }
    }

    #[test]
    fn cronjob_defaults_become_explicit_temporal_settings() {
        let (dj, diffs) = convert(
            &cronjob(json!({"schedule": "*/5 * * * *", "jobTemplate": template()})),
            &Options::default(),
        )
        .unwrap();
        let s = &dj["spec"];
        assert_eq!(s["overlapPolicy"], "AllowAll", "CronJob's Allow");
        assert_eq!(s["schedule"]["timeZone"], "UTC");
        assert_eq!(s["catchupWindow"], "1m");
        assert_eq!(
            (
                s["successfulRunsHistoryLimit"].as_i64(),
                s["failedRunsHistoryLimit"].as_i64()
            ),
            (Some(3), Some(1))
        );
        assert!(diffs.iter().any(|d| d.field == "spec.timeZone"
            && d.severity == Severity::Warning
            && d.message.contains("controller-manager")));
    }

    #[test]
    fn replace_and_retries_follow_the_options() {
        let cj = cronjob(
            json!({"schedule": "@hourly", "concurrencyPolicy": "Replace", "jobTemplate": template()}),
        );
        let (dj, _) = convert(&cj, &Options::default()).unwrap();
        assert_eq!(dj["spec"]["overlapPolicy"], "TerminateOther");
        let opts = Options {
            replace_as: OverlapPolicy::CancelOther,
            retries: Some(3),
            ..Options::default()
        };
        let (dj, diffs) = convert(&cj, &opts).unwrap();
        assert_eq!(dj["spec"]["overlapPolicy"], "CancelOther");
        assert_eq!(dj["spec"]["workflow"]["retry"]["maximumAttempts"], 3);
        assert!(
            diffs
                .iter()
                .any(|d| d.field == "retry" && d.message.contains("3 attempts"))
        );
    }

    #[test]
    fn a_short_deadline_is_raised_to_temporals_minimum() {
        let (dj, diffs) = convert(
            &cronjob(json!({"schedule": "@daily", "startingDeadlineSeconds": 3, "jobTemplate": template()})),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(dj["spec"]["catchupWindow"], "10s");
        assert!(
            diffs
                .iter()
                .any(|d| d.severity == Severity::Warning && d.message.contains("minimum"))
        );
    }

    #[test]
    fn a_zone_prefix_moves_to_time_zone_and_conflicts_are_refused() {
        let (dj, _) = convert(
            &cronjob(json!({"schedule": "CRON_TZ=Asia/Tokyo 0 9 * * *", "jobTemplate": template()})),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(dj["spec"]["schedule"]["timeZone"], "Asia/Tokyo");
        let e = convert(
            &cronjob(json!({"schedule": "TZ=UTC 0 9 * * *", "timeZone": "UTC", "jobTemplate": template()})),
            &Options::default(),
        )
        .unwrap_err();
        assert!(e.contains("keep only spec.timeZone"), "{e}");
    }

    #[test]
    fn broken_cronjobs_say_what_is_missing() {
        assert!(
            convert(&cronjob(json!({"jobTemplate": template()})), &Options::default())
                .unwrap_err()
                .contains("spec.schedule is missing")
        );
        assert!(
            convert(&cronjob(json!({"schedule": "@daily"})), &Options::default())
                .unwrap_err()
                .contains("spec.jobTemplate is missing")
        );
        assert!(
            convert(
                &cronjob(json!({"schedule": "70 * * * *", "jobTemplate": template()})),
                &Options::default()
            )
            .unwrap_err()
            .contains("minute field")
        );
        assert!(
            convert(
                &cronjob(json!({"schedule": "@daily", "timeZone": "Mars/Base", "jobTemplate": template()})),
                &Options::default()
            )
            .unwrap_err()
            .contains("IANA")
        );
        let (_, diffs) = convert(
            &cronjob(json!({"schedule": "@daily", "jobTemplate": template(), "parallelism": 2})),
            &Options::default(),
        )
        .unwrap();
        assert!(
            diffs
                .iter()
                .any(|d| d.severity == Severity::Error && d.field == "spec.parallelism")
        );
    }

    #[test]
    fn a_dst_zone_gets_a_warning() {
        let (_, diffs) = convert(
            &cronjob(
                json!({"schedule": "30 2 * * *", "timeZone": "America/New_York", "jobTemplate": template()}),
            ),
            &Options::default(),
        )
        .unwrap();
        assert!(
            diffs
                .iter()
                .any(|d| d.field == "spec.timeZone" && d.message.contains("daylight saving"))
        );
        let (_, diffs) = convert(
            &cronjob(json!({"schedule": "30 2 * * *", "timeZone": "Asia/Tokyo", "jobTemplate": template()})),
            &Options::default(),
        )
        .unwrap();
        assert!(
            !diffs.iter().any(|d| d.message.contains("daylight saving")),
            "no DST in Tokyo"
        );
        let (_, diffs) = convert(
            &cronjob(
                json!({"schedule": "0 8 * * *", "timeZone": "America/New_York", "jobTemplate": template()}),
            ),
            &Options::default(),
        )
        .unwrap();
        assert!(
            !diffs.iter().any(|d| d.message.contains("daylight saving")),
            "08:00 is far from the change"
        );
        assert_eq!(
            dst_hours("America/New_York")
                .iter()
                .enumerate()
                .filter(|(_, b)| **b)
                .map(|(h, _)| h)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(
            dst_hours("Europe/Berlin")
                .iter()
                .enumerate()
                .filter(|(_, b)| **b)
                .map(|(h, _)| h)
                .collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn a_job_template_the_operator_would_refuse_is_refused_naming_the_field() {
        let mut cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "x"},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Always", "containers": [{"name": "c", "image": "busybox"}]}}}}}});
        let err = convert(&cj, &Options::default()).unwrap_err();
        assert!(
            err.contains("operator would refuse") && err.contains("spec.jobTemplate"),
            "{err}"
        );
        assert!(err.contains("restartPolicy"), "{err}");
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"] =
            json!({"restartPolicy": "Never", "containers": []});
        let err = convert(&cj, &Options::default()).unwrap_err();
        assert!(err.contains("containers"), "{err}");
    }

    #[test]
    fn stagger_gives_top_of_the_hour_schedules_a_hashed_minute_and_says_so() {
        let cj = cronjob(json!({"schedule": "0 2 * * *", "timeZone": "UTC", "jobTemplate": template()}));
        let (dj, notes) = convert(&cj, &Options::default()).unwrap();
        assert_eq!(
            dj["spec"]["schedule"]["cron"],
            json!(["0 2 * * *"]),
            "unchanged without --stagger"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.severity == Severity::Info && n.message.contains("--stagger")),
            "{notes:?}"
        );
        let opts = Options {
            stagger: true,
            ..Options::default()
        };
        let (dj, notes) = convert(&cj, &opts).unwrap();
        assert_eq!(dj["spec"]["schedule"]["cron"], json!(["H 2 * * *"]));
        assert!(
            notes
                .iter()
                .any(|n| n.severity == Severity::Warning && n.message.contains("\"H 2 * * *\"")),
            "{notes:?}"
        );
        let off = cronjob(json!({"schedule": "17 2 * * *", "timeZone": "UTC", "jobTemplate": template()}));
        let (dj, notes) = convert(&off, &opts).unwrap();
        assert_eq!(dj["spec"]["schedule"]["cron"], json!(["17 2 * * *"]));
        assert!(!notes.iter().any(|n| n.message.contains("stagger")), "{notes:?}");
        // the result validates and builds to a concrete minute
        let staggered: crate::api::DurableJob =
            serde_json::from_value(convert(&cj, &opts).unwrap().0).unwrap();
        assert!(crate::desired::validate::validate(&staggered.spec).is_ok());
    }
}
