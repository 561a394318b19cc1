//! Issue 14: exclusions, DurableJobCalendars and `H`, judged by what the real Temporal dev
//! server says the schedules will do (`temporal schedule describe`).

use std::{sync::Arc, time::Duration};

use anyhow::ensure;
use chrono::{DateTime, Datelike, Duration as Days, NaiveDate, Utc};
use durablejob::api::DurableJobCalendar;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::Shared;
use crate::env::{Env, condition, manifest, wait_for};

scenarios!(
    an_excluded_weekday_and_date_have_no_future_runs_and_h_is_a_concrete_minute,
    editing_a_calendar_moves_the_future_runs_of_every_schedule_that_references_it,
);

/// The schedule's future start times, from `temporal schedule describe`.
fn future_times(d: Option<&Value>) -> Vec<DateTime<Utc>> {
    d.and_then(|d| d["info"]["futureActionTimes"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str()?.parse().ok())
        .collect()
}

fn days(times: &[DateTime<Utc>]) -> Vec<NaiveDate> {
    times.iter().map(|t| t.date_naive()).collect()
}

async fn an_excluded_weekday_and_date_have_no_future_runs_and_h_is_a_concrete_minute(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    // the sweep of ListSchedules every 2s must see the excluded schedule as unchanged
    let env = Env::new(&shared, "exclude", &["--resync-interval", "2s"]).await?;
    let today = Utc::now().date_naive();
    // the weekday three days from now, and the date five days from now
    let weekday = (today + Days::days(3)).weekday().num_days_from_sunday();
    let date = today + Days::days(5);
    env.create(manifest(
        "daily",
        json!({"schedule": {
            "cron": ["H 9 * * *"],
            "exclude": {"cron": [format!("* * * * {weekday}")], "dates": [date.to_string()]},
        }}),
    ))
    .await?;
    let status = env.wait_ready("daily").await?;
    let schedule = status.schedule.clone().unwrap_or_default();
    let minute: u32 = schedule
        .split(' ')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("status.schedule {schedule:?} is not a concrete cron"))?;
    ensure!(schedule == format!("{minute} 9 * * *"), "{schedule}");

    let d = env.describe("daily")?;
    let times = future_times(d.as_ref());
    ensure!(times.len() >= 7, "Temporal lists {} future runs", times.len());
    for t in &times {
        ensure!(
            t.weekday().num_days_from_sunday() != weekday,
            "{t} is on the excluded weekday {weekday}: {times:?}"
        );
        ensure!(t.date_naive() != date, "{t} is on the excluded date {date}");
        ensure!(
            t.format("%H:%M").to_string() == format!("09:{minute:02}"),
            "{t} is not at 09:{minute:02}"
        );
    }
    let excluded = d.as_ref().unwrap()["schedule"]["spec"]["excludeStructuredCalendar"].clone();
    ensure!(
        excluded.as_array().is_some_and(|a| a.len() == 2),
        "two exclusions in Temporal: {excluded}"
    );
    // the status shows the same times as Temporal
    ensure!(
        status.next_run_times.iter().all(|t| times.contains(t)),
        "{:?} vs {times:?}",
        status.next_run_times
    );
    // what ListSchedules shows of it matches what the describe recorded: no wake-up, no describe
    let listed = env.operator.temporal_requests("list_schedules").await;
    let described = env.operator.temporal_requests("describe").await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let listed = env.operator.temporal_requests("list_schedules").await - listed;
    let described = env.operator.temporal_requests("describe").await - described;
    ensure!(
        listed >= 2.0 && described == 0.0,
        "{listed} list pages, {described} describes in 7s"
    );
    // never described at all: Ready, the next run times and the listing the sweep compares came
    // from the create (its conflict token is what the first describe will be held to)
    let record = env.djs.get("daily").await?.status.and_then(|s| s.sync);
    ensure!(
        record
            .as_ref()
            .is_some_and(|r| r.observed_fingerprint.is_empty() && r.created_conflict_token.is_some()),
        "the record of a create no describe has confirmed yet: {record:?}"
    );
    Ok(())
}

fn calendar(name: &str, dates: &[NaiveDate]) -> DurableJobCalendar {
    serde_json::from_value(json!({
        "apiVersion": "durablejob.dev/v1alpha1",
        "kind": "DurableJobCalendar",
        "metadata": {"name": name},
        "spec": {"dates": dates.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    }))
    .expect("a calendar")
}

async fn editing_a_calendar_moves_the_future_runs_of_every_schedule_that_references_it(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "calendars", &[]).await?;
    let cals = env.api::<DurableJobCalendar>();
    let today = Utc::now().date_naive();
    let (first, second) = (today + Days::days(2), today + Days::days(4));
    cals.create(&PostParams::default(), &calendar("holidays", &[first]))
        .await?;
    for name in ["a", "b"] {
        env.create(manifest(
            name,
            json!({"schedule": {"cron": ["0 12 * * *"], "excludeCalendars": ["holidays"]}}),
        ))
        .await?;
    }
    // a calendar that does not exist is named on the resource
    env.create(manifest(
        "lost",
        json!({"schedule": {"cron": ["0 12 * * *"], "excludeCalendars": ["nope"]}}),
    ))
    .await?;
    let lost = env.wait_not_ready("lost").await?;
    let ready = condition(&lost, "Ready").unwrap();
    ensure!(
        ready.reason == "CalendarNotFound" && ready.message.contains("nope"),
        "{ready:?}"
    );
    ensure!(
        env.describe("lost")?.is_none(),
        "no schedule without its calendar"
    );
    for name in ["a", "b"] {
        env.wait_ready(name).await?;
        let t = days(&future_times(env.describe(name)?.as_ref()));
        ensure!(!t.contains(&first) && t.contains(&second), "{name}: {t:?}");
    }

    // the edit reaches both schedules within seconds
    let edited = std::time::Instant::now();
    cals.patch(
        "holidays",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"dates": [second.to_string()]}})),
    )
    .await?;
    for name in ["a", "b"] {
        env.wait_schedule(name, "the new holiday", Duration::from_secs(10), |d| {
            let t = days(&future_times(d));
            t.contains(&first) && !t.contains(&second)
        })
        .await?;
    }
    let took = edited.elapsed();
    ensure!(took < Duration::from_secs(10), "{took:?}");

    // creating the missing calendar lets the other DurableJob go on
    cals.create(&PostParams::default(), &calendar("nope", &[first]))
        .await?;
    env.wait_ready("lost").await?;

    // kubectl finds each kind by its own names, with calendars in the namespace
    let k = crate::env::cluster().kubectl();
    let ns = env.namespace.as_str();
    let dj = k.ok(&["get", "durablejob", "a", "-n", ns, "-o", "name"], None)?;
    ensure!(dj.trim() == "durablejob.durablejob.dev/a", "{dj}");
    let cal = k.ok(&["get", "djcal", "holidays", "-n", ns, "-o", "name"], None)?;
    ensure!(
        cal.trim() == "durablejobcalendar.durablejob.dev/holidays",
        "{cal}"
    );
    let all = k.ok(&["get", "durablejob-all", "-n", ns, "-o", "name"], None)?;
    ensure!(
        all.lines().count() == 5,
        "three DurableJobs and two calendars: {all}"
    );

    // a calendar in use is kept until nothing references it
    cals.delete("holidays", &DeleteParams::default()).await?;
    let held = wait_for("the deletion held", Duration::from_secs(10), || {
        let cals = cals.clone();
        async move {
            let c = cals.get_opt("holidays").await.ok()??;
            let m = c.status?.message?;
            (c.metadata.deletion_timestamp.is_some() && m.contains("a, b")).then_some(m)
        }
    })
    .await?;
    ensure!(held.contains("excludeCalendars"), "{held}");
    let event = env.wait_event("holidays", "CalendarInUse").await?;
    ensure!(event.contains("DurableJob a, b"), "{event}");
    for name in ["a", "b"] {
        env.edit(name, json!({"schedule": {"excludeCalendars": null}}))
            .await?;
    }
    wait_for("the calendar gone", Duration::from_secs(15), || {
        let cals = cals.clone();
        async move { cals.get_opt("holidays").await.ok()?.is_none().then_some(()) }
    })
    .await?;
    Ok(())
}
