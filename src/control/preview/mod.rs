//! `durablejob preview`: when a DurableJob will run, before it is applied (`-f`, offline) or
//! as it is applied (`kubectl durablejob preview NAME`): the next runs as Temporal computes
//! them ([`crate::desired::slots`]), the times exclusions skip, and a month grid.
//!
//! The schedule is built as the operator builds it ([`plan`]: the spec validated, `H` resolved
//! for the resource's namespace and name, the referenced DurableJobCalendars' exclusions added)
//! and printed by [`text`]; this file reads the manifests or the cluster.

pub mod plan;
pub mod text;

use std::{io::Read, path::PathBuf};

use chrono::Utc;
use kube::{Api, ResourceExt};
use serde_json::Value;

pub use plan::{Preview, Subject, compute, subject};
pub use text::render;

use super::args::{Output, PreviewArgs};
use super::{ControlError, Result, connect, get, serialize_json, serialize_yaml, usage, user_agent};
use crate::api::{DurableJob, DurableJobCalendar};

/// A manifest document as read: its kind and where it came from.
fn documents(paths: &[PathBuf], stdin: &mut dyn Read) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for file in crate::manifests::read(paths, stdin) {
        let display = file.display;
        let text = file.text.map_err(|e| usage(format!("-f {display}: {e}")))?;
        let docs: Vec<Value> =
            crate::yaml::documents(&text).map_err(|e| usage(format!("{display}: not YAML or JSON: {e}")))?;
        for (i, doc) in docs.into_iter().enumerate() {
            let items = match doc.get("kind").and_then(Value::as_str) {
                Some(k) if k.ends_with("List") => doc
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                _ => vec![doc],
            };
            for item in items.into_iter().filter(|d| !d.is_null()) {
                out.push((format!("{display}, document {}", i + 1), item));
            }
        }
    }
    Ok(out)
}

fn of_kind<T: serde::de::DeserializeOwned>(docs: &[(String, Value)], kind: &str) -> Result<Vec<T>> {
    docs.iter()
        .filter(|(_, d)| {
            d.get("kind").and_then(Value::as_str) == Some(kind)
                && d.get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("durablejob.dev/"))
        })
        .map(|(at, d)| {
            serde_path_to_error::deserialize(d)
                .map_err(|e| usage(format!("{at}: not a valid {kind}: {}: {}", e.path(), e.inner())))
        })
        .collect()
}

/// `preview [NAME] [-f FILE...]`.
pub async fn preview(a: &PreviewArgs, stdin: &mut dyn Read) -> Result<String> {
    let after = a.from.unwrap_or_else(Utc::now);
    let count = a.count as usize;
    let subjects: Vec<std::result::Result<Subject, String>> = if a.filename.is_empty() {
        let Some(name) = &a.name else {
            return Err(usage(
                "preview needs a DurableJob: NAME for an applied one, or -f FILE for a manifest",
            ));
        };
        vec![Ok(applied(a, name).await?)]
    } else {
        let docs = documents(&a.filename, stdin)?;
        let calendars: Vec<DurableJobCalendar> = of_kind(&docs, "DurableJobCalendar")?;
        let mut jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob")?;
        if let Some(name) = &a.name {
            let names: Vec<String> = jobs.iter().map(|j| j.name_any()).collect();
            jobs.retain(|j| j.name_any() == *name);
            if jobs.is_empty() {
                return Err(usage(format!(
                    "no DurableJob {name:?} in the files given (they hold: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        }
        if jobs.is_empty() {
            let cronjobs = docs
                .iter()
                .any(|(_, d)| d.get("kind").and_then(Value::as_str) == Some("CronJob"));
            return Err(usage(if cronjobs {
                "the files hold CronJobs and no DurableJob: convert them first (durablejob migrate FILE | durablejob preview -f -)"
            } else {
                "the files hold no DurableJob (kind: DurableJob, apiVersion: durablejob.dev/v1alpha1)"
            }));
        }
        let namespace = a.cluster.namespace.clone().unwrap_or_else(|| "default".into());
        jobs.iter().map(|j| subject(j, &namespace, &calendars)).collect()
    };
    let mut previews = Vec::new();
    let mut errors = Vec::new();
    for s in subjects {
        match s.and_then(|s| compute(&s, after, count, a.months)) {
            Ok(p) => previews.push(p),
            Err(e) => errors.push(e),
        }
    }
    let text = match a.output {
        Some(Output::Json) if previews.len() == 1 => serialize_json(&previews[0])?,
        Some(Output::Yaml) if previews.len() == 1 => serialize_yaml(&previews[0])?,
        Some(Output::Json) => serialize_json(&serde_json::json!({ "items": previews }))?,
        Some(Output::Yaml) => serialize_yaml(&serde_json::json!({ "items": previews }))?,
        _ => previews.iter().map(render).collect::<Vec<_>>().join("\n---\n\n"),
    };
    if errors.is_empty() {
        return Ok(text);
    }
    // the DurableJobs that could be previewed are printed; the others fail the command
    print!("{text}");
    Err(ControlError::Usage(errors.join("\n")))
}

/// An applied DurableJob and its calendars, read with the caller's credentials.
async fn applied(a: &PreviewArgs, name: &str) -> Result<Subject> {
    let (client, namespace) = connect(&a.cluster, &user_agent()).await?;
    let dj = get(&client, &namespace, name).await?;
    let api: Api<DurableJobCalendar> = Api::namespaced(client, &namespace);
    let mut calendars = Vec::new();
    for c in &dj.spec.schedule.exclude_calendars {
        match api.get_opt(c).await {
            Ok(Some(cal)) => calendars.push(cal),
            Ok(None) => {
                return Err(usage(format!(
                    "durablejob {name} lists DurableJobCalendar {c:?} in spec.schedule.excludeCalendars, and it does not exist in namespace {namespace}: create it or remove it from the list"
                )));
            }
            Err(e) => {
                return Err(usage(format!(
                    "cannot read DurableJobCalendar {c:?} in namespace {namespace}: {e}"
                )));
            }
        }
    }
    let mut s = subject(&dj, &namespace, &calendars).map_err(usage)?;
    let status = dj.status.clone().unwrap_or_default();
    if status.paused && !dj.spec.suspend {
        s.notes.push(format!(
            "the schedule is paused in Temporal{}: kubectl durablejob resume {name} lets it run",
            status
                .paused_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    let synced = status.observed_generation.is_some() && status.observed_generation == dj.metadata.generation;
    if synced {
        s.recorded = Some(status.next_run_times.clone());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::plan::{agreement, rfc3339};
    use super::*;
    use chrono::{DateTime, TimeZone};

    fn manifest(yaml: &str) -> Vec<(String, Value)> {
        crate::yaml::documents::<Value>(yaml)
            .unwrap()
            .into_iter()
            .map(|d| ("test".to_string(), d))
            .collect()
    }

    const JOB: &str = r#"
apiVersion: durablejob.dev/v1alpha1
kind: DurableJob
metadata: {name: report, namespace: billing}
spec:
  schedule:
    cron: ["0 9 * * 1-5"]
    timeZone: Europe/Berlin
    jitter: 30s
    exclude: {dates: ["2026-12-24"]}
    excludeCalendars: [holidays]
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
---
apiVersion: durablejob.dev/v1alpha1
kind: DurableJobCalendar
metadata: {name: holidays}
spec:
  dates: ["2026-12-25", "2026-12-31"]
"#;

    fn preview_of(yaml: &str, after: DateTime<Utc>, count: usize) -> Preview {
        let docs = manifest(yaml);
        let cals: Vec<DurableJobCalendar> = of_kind(&docs, "DurableJobCalendar").unwrap();
        let jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob").unwrap();
        let s = subject(&jobs[0], "default", &cals).unwrap();
        compute(&s, after, count, None).unwrap()
    }

    #[test]
    fn a_manifest_with_its_calendar_lists_runs_skips_and_marks_the_grid() {
        let after = Utc.with_ymd_and_hms(2026, 12, 22, 12, 0, 0).unwrap();
        let p = preview_of(JOB, after, 3);
        assert_eq!(p.durable_job, "billing/report");
        assert_eq!(
            p.runs.iter().map(|r| rfc3339(r.time)).collect::<Vec<_>>(),
            [
                "2026-12-23T08:00:00Z",
                "2026-12-28T08:00:00Z",
                "2026-12-29T08:00:00Z"
            ]
        );
        assert_eq!(p.runs[0].local, "Wed 2026-12-23 09:00:00 CET");
        assert_eq!(
            p.runs[0].before,
            Some(Utc.with_ymd_and_hms(2026, 12, 23, 8, 0, 30).unwrap()),
            "jitter shows as a window"
        );
        assert_eq!(
            p.skipped
                .iter()
                .map(|g| (g.count, g.by.as_str()))
                .collect::<Vec<_>>(),
            [
                (1, "spec.schedule.exclude.dates 2026-12"),
                (1, "DurableJobCalendar holidays: spec.dates 2026-12")
            ]
        );
        assert_eq!(p.months.len(), 1);
        assert_eq!(p.months[0].excluded_days, [24, 25, 31]);
        assert!(p.months[0].run_days.contains(&23) && !p.months[0].run_days.contains(&26));
        let text = render(&p);
        assert!(text.contains("December 2026 (Europe/Berlin)"), "{text}");
        assert!(text.contains(" 22* 23* 24x 25x 26  27"), "{text}");
        assert!(
            text.contains("skipped 2026-12-24T08:00:00Z  excluded by spec.schedule.exclude.dates 2026-12"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_calendar_and_an_invalid_spec_say_what_to_do() {
        let docs = manifest(JOB.split("---").next().unwrap());
        let jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob").unwrap();
        let e = subject(&jobs[0], "default", &[]).unwrap_err();
        assert!(
            e.contains("\"holidays\"") && e.contains("-f holidays.yaml"),
            "{e}"
        );
        let bad = JOB.replace("0 9 * * 1-5", "0 9 * *");
        let docs = manifest(&bad);
        let jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob").unwrap();
        let e = subject(&jobs[0], "default", &[]).unwrap_err();
        assert!(e.contains("spec.schedule.cron[0]"), "{e}");
        let docs = manifest(&JOB.replace("timeZone: Europe/Berlin", "timeZone: [1]"));
        let e = of_kind::<DurableJob>(&docs, "DurableJob")
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.schedule.timeZone"), "{e}");
    }

    #[test]
    fn h_is_resolved_for_the_resource_and_said_so() {
        let yaml = JOB
            .replace("0 9 * * 1-5", "H 9 * * *")
            .replace("excludeCalendars: [holidays]", "");
        let docs = manifest(&yaml);
        let jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob").unwrap();
        let s = subject(&jobs[0], "default", &[]).unwrap();
        assert_ne!(s.calendar.cron[0], "H 9 * * *");
        assert!(s.notes[0].contains("billing/report"), "{:?}", s.notes);
    }

    #[test]
    fn an_end_before_count_is_explained() {
        let yaml = JOB.replace("excludeCalendars: [holidays]", "endAt: \"2026-12-23T12:00:00Z\"");
        let p = preview_of(&yaml, Utc.with_ymd_and_hms(2026, 12, 22, 12, 0, 0).unwrap(), 5);
        assert_eq!(p.runs.len(), 1);
        assert!(p.ends.as_deref().unwrap().contains("endAt"), "{:?}", p.ends);
    }

    #[test]
    fn recorded_times_agree_within_the_jitter_window_or_are_shown() {
        let after = Utc.with_ymd_and_hms(2026, 12, 22, 12, 0, 0).unwrap();
        let p = preview_of(JOB, after, 3);
        let t = |s: u32| Utc.with_ymd_and_hms(2026, 12, 23, 8, 0, s).unwrap();
        assert!(agreement(&[t(12)], &p.runs, after).contains("agree"));
        assert!(agreement(&[t(45)], &p.runs, after).contains("differ"));
    }
}
