//! `durablejob get`: the printer columns of `kubectl get dj`, for people without kubectl.

use chrono::{DateTime, Utc};
use kube::{Api, Client, ResourceExt, api::ListParams};

use crate::api::DurableJob;
use crate::reason::ConditionType;

/// Lists DurableJobs and renders them as a table.
pub async fn run(client: Client, namespace: Option<String>, all: bool) -> Result<String, kube::Error> {
    let api: Api<DurableJob> = if all {
        Api::all(client)
    } else {
        match namespace {
            Some(ns) => Api::namespaced(client, &ns),
            None => Api::default_namespaced(client),
        }
    };
    let mut items = api.list(&ListParams::default()).await?.items;
    items.sort_by_key(|a| (a.namespace(), a.name_any()));
    Ok(render(&items, Utc::now(), all))
}

/// The table; pure so it can be tested with a pinned clock.
pub fn render(items: &[DurableJob], now: DateTime<Utc>, with_namespace: bool) -> String {
    if items.is_empty() {
        return "No DurableJobs found.\n".into();
    }
    let mut rows = vec![];
    let mut header = vec![];
    if with_namespace {
        header.push("NAMESPACE".to_string());
    }
    header.extend(
        [
            "NAME", "SCHEDULE", "SUSPEND", "LAST RUN", "NEXT RUN", "READY", "AGE",
        ]
        .map(String::from),
    );
    rows.push(header);
    for dj in items {
        let status = dj.status.clone().unwrap_or_default();
        let mut row = vec![];
        if with_namespace {
            row.push(dj.namespace().unwrap_or_default());
        }
        row.push(dj.name_any());
        row.push(status.schedule.clone().unwrap_or_else(|| "<pending>".into()));
        row.push(dj.spec.suspend.to_string());
        row.push(status.last_schedule_time.map_or("<none>".into(), |t| ago(now, t)));
        row.push(match status.next_run_times.first() {
            Some(t) if *t > now => format!("in {}", human(*t - now)),
            Some(_) => "now".into(),
            None => "<none>".into(),
        });
        row.push(
            status
                .conditions
                .iter()
                .find(|c| c.type_ == ConditionType::Ready.as_str())
                .map_or("Unknown".into(), |c| c.status.clone()),
        );
        row.push(
            dj.metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
                .map_or("<unknown>".into(), |t| human(now - t)),
        );
        rows.push(row);
    }
    table(rows)
}

/// Rows (the first is the header) as kubectl prints them: columns padded, three spaces apart.
pub fn table(rows: Vec<Vec<String>>) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let widths: Vec<usize> = (0..first.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    if t > now {
        "just now".into()
    } else {
        format!("{} ago", human(now - t))
    }
}

/// kubectl's short human durations: 45s, 12m, 3h5m, 2d4h, 400d.
pub fn human(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10_800 => format!("{}m", s / 60),
        10_800..172_800 => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if m == 0 || h >= 8 {
                format!("{h}h")
            } else {
                format!("{h}h{m}m")
            }
        }
        _ => {
            let (days, h) = (s / 86_400, (s % 86_400) / 3600);
            if h == 0 || days >= 8 {
                format!("{days}d")
            } else {
                format!("{days}d{h}h")
            }
        }
    }
}
