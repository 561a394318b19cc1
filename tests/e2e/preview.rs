//! Issue 25's preview: the times `durablejob preview` computes offline are Temporal's own
//! (`ListScheduleMatchingTimes` on the dev server, for random and pinned calendars), and the
//! verb works on a manifest (no cluster) and on an applied DurableJob with its calendar.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Datelike, Duration as Days, TimeDelta, TimeZone, Utc};
use durablejob::api::{DurableJob, DurableJobCalendar, OverlapPolicy};
use durablejob::control::preview;
use durablejob::desired::schedule::{DesiredSchedule, Owner, ScheduleLocation, StartWorkflow};
use durablejob::desired::slots::{Slot, Slots};
use durablejob::temporal::{Schedules, WriteOptions, connect::ClientPool, sdk::SdkSchedules};
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::Shared;
use crate::control::Plugin;
use crate::env::{Env, manifest};

scenarios!(
    preview_times_are_temporals_matching_times_for_random_calendars,
    preview_reads_a_manifest_offline_and_an_applied_durablejob_with_its_calendar,
);

/// A small deterministic generator (splitmix64): a failing case is found again from its seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below((hi - lo + 1) as u64) as u32
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// One cron field over `lo..=hi`, in one of the forms Temporal and the spec accept.
    fn field(&mut self, lo: u32, hi: u32, star_percent: u64) -> String {
        if self.chance(star_percent) {
            return "*".into();
        }
        let a = self.range(lo, hi);
        let b = self.range(a, hi);
        let step = self.range(2, ((hi - lo) / 2).max(2));
        match self.below(6) {
            0 => a.to_string(),
            1 => format!("{a},{b}"),
            2 => format!("{a}-{b}"),
            3 => format!("{a}-{b}/{step}"),
            4 => format!("*/{step}"),
            _ => format!("{a}/{step}"),
        }
    }

    fn cron(&mut self) -> String {
        if self.chance(8) {
            return self
                .pick(&["@hourly", "@daily", "@weekly", "@monthly"])
                .to_string();
        }
        let minute = if self.chance(10) {
            "H".to_string()
        } else {
            self.field(0, 59, 10)
        };
        let dow = if self.chance(15) {
            self.pick(&["MON-FRI", "SAT,SUN", "TUE", "7", "1-7/2"])
                .to_string()
        } else {
            self.field(0, 6, 70)
        };
        format!(
            "{minute} {} {} {} {dow}",
            self.field(0, 23, 35),
            self.field(1, 31, 75),
            self.field(1, 12, 85)
        )
    }
}

/// Time zones with and without daylight saving, both hemispheres, and offsets off the hour.
const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "America/Sao_Paulo",
    "Pacific/Auckland",
    "America/Santiago",
];

/// Instants near the 2026/2027 clock changes of those zones, and plain ones.
fn around(g: &mut Gen) -> DateTime<Utc> {
    let anchors = [
        Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap(), // Europe springs forward
        Utc.with_ymd_and_hms(2026, 10, 25, 0, 0, 0).unwrap(), // Europe falls back
        Utc.with_ymd_and_hms(2026, 3, 8, 9, 0, 0).unwrap(),  // US springs forward
        Utc.with_ymd_and_hms(2026, 11, 1, 5, 0, 0).unwrap(), // US falls back
        Utc.with_ymd_and_hms(2026, 4, 4, 15, 0, 0).unwrap(), // Sydney, Auckland fall back
        Utc.with_ymd_and_hms(2026, 9, 26, 14, 0, 0).unwrap(), // Auckland springs forward
        Utc.with_ymd_and_hms(2026, 10, 3, 15, 0, 0).unwrap(), // Sydney springs forward
        Utc.with_ymd_and_hms(2026, 9, 6, 4, 0, 0).unwrap(),  // Santiago skips its midnight
        Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2027, 2, 27, 23, 59, 30).unwrap(),
    ];
    let base = *g.pick(&anchors);
    base + TimeDelta::seconds(g.below(2 * 86_400) as i64 - 86_400)
}

/// A random DurableJob the operator would accept, and the time to list from.
fn random_case(g: &mut Gen, i: usize) -> (Value, DateTime<Utc>) {
    let from = around(g);
    let mut schedule = json!({"timeZone": *g.pick(ZONES)});
    let crons: Vec<String> = (0..g.below(3)).map(|_| g.cron()).collect();
    let mut intervals = vec![];
    if crons.is_empty() || g.chance(20) {
        let every = *g.pick(&[60u64, 300, 3600, 5400, 7 * 3600, 86_400, 100_000]);
        let offset = g.below(every);
        intervals.push(json!({"every": format!("{every}s"), "offset": format!("{offset}s")}));
    }
    schedule["cron"] = json!(crons);
    schedule["intervals"] = json!(intervals);
    if g.chance(25) {
        schedule["jitter"] = json!(format!("{}s", g.range(1, 7200)));
    }
    let mut start = from;
    if g.chance(20) {
        start = from + TimeDelta::seconds(g.below(3 * 86_400) as i64);
        schedule["startAt"] = json!(start.to_rfc3339());
    }
    if g.chance(20) {
        // the operator wants endAt after startAt
        let end = start + TimeDelta::seconds(1 + g.below(20 * 86_400) as i64);
        schedule["endAt"] = json!(end.to_rfc3339());
    }
    if g.chance(40) {
        let mut cron = vec![];
        if g.chance(60) {
            cron.push(
                g.pick(&["* * * * 0,6", "* 0-5 * * *", "0-29 * * * *", "* 9-17 * * 1-5"])
                    .to_string(),
            );
        }
        let dates: Vec<String> = (0..g.below(3))
            .map(|_| (from + Days::days(g.below(10) as i64)).date_naive().to_string())
            .collect();
        schedule["exclude"] = json!({"cron": cron, "dates": dates});
    }
    (
        manifest(&format!("case-{i}"), json!({ "schedule": schedule })),
        from,
    )
}

/// Calendars that have surprised before: kept as cases of their own.
fn pinned() -> Vec<(Value, DateTime<Utc>)> {
    let case = |name: &str, schedule: Value, from: DateTime<Utc>| {
        (manifest(name, json!({ "schedule": schedule })), from)
    };
    vec![
        case(
            "berlin-daily-in-the-repeated-hour",
            json!({"cron": ["30 2 * * *"], "timeZone": "Europe/Berlin"}),
            Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap(),
        ),
        case(
            "berlin-hourly-over-the-repeated-hour",
            json!({"cron": ["30 * * * *"], "timeZone": "Europe/Berlin"}),
            Utc.with_ymd_and_hms(2026, 10, 24, 23, 0, 0).unwrap(),
        ),
        case(
            "berlin-quarter-hours-over-the-repeated-hour",
            json!({"cron": ["*/15 * * * *"], "timeZone": "Europe/Berlin"}),
            Utc.with_ymd_and_hms(2026, 10, 24, 23, 20, 0).unwrap(),
        ),
        case(
            "new-york-daily-in-the-repeated-hour",
            json!({"cron": ["30 1 * * *"], "timeZone": "America/New_York"}),
            Utc.with_ymd_and_hms(2026, 10, 31, 12, 0, 0).unwrap(),
        ),
        case(
            "new-york-quarter-hours-over-the-repeated-hour",
            json!({"cron": ["*/15 * * * *"], "timeZone": "America/New_York"}),
            Utc.with_ymd_and_hms(2026, 11, 1, 4, 50, 0).unwrap(),
        ),
        case(
            "berlin-skipped-hour",
            json!({"cron": ["30 2 * * *", "*/20 2 * * *"], "timeZone": "Europe/Berlin"}),
            Utc.with_ymd_and_hms(2026, 3, 28, 0, 0, 0).unwrap(),
        ),
        case(
            "santiago-midnight-the-clock-skips",
            json!({"cron": ["0 0 * * *", "30 * * * *"], "timeZone": "America/Santiago"}),
            Utc.with_ymd_and_hms(2026, 9, 5, 12, 0, 0).unwrap(),
        ),
        case(
            "friday-the-13th",
            json!({"cron": ["0 9 13 * FRI"], "timeZone": "UTC"}),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ),
        case(
            "leap-day",
            json!({"cron": ["0 0 29 2 *"], "timeZone": "Asia/Tokyo"}),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ),
        case(
            "jitter-wider-than-the-gap",
            json!({"cron": ["*/5 * * * *"], "jitter": "1h", "timeZone": "UTC"}),
            Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap(),
        ),
        case(
            "bounds-on-a-slot",
            json!({"intervals": [{"every": "1h"}], "startAt": "2026-12-04T10:00:00Z", "endAt": "2026-12-04T14:00:00Z"}),
            Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap(),
        ),
    ]
}

/// How many runs each case compares.
const RUNS_PER_CASE: usize = 60;
/// How many random cases.
const RANDOM_CASES: usize = 60;

fn temporal_client(address: &str) -> anyhow::Result<SdkSchedules> {
    let config = durablejob::temporal::connect::TemporalArgs {
        temporal_address: Some(address.to_string()),
        temporal_namespace: Some("default".into()),
        ..Default::default()
    }
    .resolve("e2e-preview")?;
    Ok(SdkSchedules::new(
        Arc::new(ClientPool::new(config)),
        "e2e-preview".into(),
        None,
    ))
}

/// The schedule the operator would create, paused, under an id of this test.
fn schedule(id: &str, calendar: durablejob::desired::schedule::Calendar) -> DesiredSchedule {
    DesiredSchedule {
        location: ScheduleLocation {
            namespace: "default".into(),
            id: id.into(),
        },
        owner: Owner {
            uid: id.into(),
            prefix: "e2e-preview".into(),
            resource: format!("default/{id}"),
        },
        calendar,
        action: StartWorkflow {
            workflow_id: id.into(),
            workflow_type: "never-runs".into(),
            task_queue: "e2e-preview-nobody".into(),
            args: vec![],
            execution_timeout: None,
            run_timeout: None,
            task_timeout: None,
            retry: None,
            memo: Default::default(),
            search_attributes: Default::default(),
            auto_upgrade: false,
        },
        overlap_policy: OverlapPolicy::Skip,
        catchup_window: Duration::from_secs(60),
        pause_on_failure: false,
        paused: true,
        run_limit: None,
        streak: None,
    }
}

/// Creates the schedule the operator would send for `desired`, under `id`, with its cron
/// entries as strings for Temporal to parse.
async fn create_as_cron_strings(
    address: &str,
    desired: &DesiredSchedule,
    options: &WriteOptions,
    id: &str,
) -> anyhow::Result<()> {
    use std::str::FromStr;
    use temporalio_client::{
        Client, ClientOptions, Connection, ConnectionOptions, NamespacedClient, Url, grpc::WorkflowService,
        tonic::IntoRequest,
    };
    use temporalio_common::protos::temporal::api::workflowservice::v1::CreateScheduleRequest;
    let mut schedule = durablejob::temporal::sdk::schedule_proto(desired, options)?;
    let spec = schedule.spec.as_mut().context("a spec")?;
    spec.structured_calendar.clear();
    spec.cron_string = desired.calendar.cron.clone();
    let conn =
        Connection::connect(ConnectionOptions::new(Url::from_str(&format!("http://{address}"))?).build())
            .await?;
    let mut client = Client::new(
        conn,
        ClientOptions::new(desired.location.namespace.clone()).build(),
    )?;
    let req = CreateScheduleRequest {
        namespace: client.namespace(),
        schedule_id: id.to_string(),
        schedule: Some(schedule),
        request_id: id.to_string(),
        ..Default::default()
    };
    WorkflowService::create_schedule(&mut client, req.into_request()).await?;
    Ok(())
}

/// What one case showed.
enum Outcome {
    /// This many runs compared.
    Compared(usize),
    /// Exclusions skip every time the walk looked at: Temporal's own search would run into
    /// its compute bound, so there is nothing to ask it.
    AllExcluded,
}

/// Compares one case: the runs the preview lists after `from` against the times Temporal
/// lists for the same window. Temporal searches each time from the one before as jitter moved
/// it, so each of its times is held to the preview's next run after Temporal's previous time:
/// equal without jitter, within the run's jitter window with it, and none left after the last.
async fn check_case(
    temporal: &SdkSchedules,
    address: &str,
    id: &str,
    dj: &Value,
    from: DateTime<Utc>,
) -> anyhow::Result<Outcome> {
    let dj: DurableJob = serde_json::from_value(dj.clone())?;
    let subject = preview::subject(&dj, "e2e", &[])
        .map_err(|e| anyhow::anyhow!("the generator made a spec the operator refuses: {e}"))?;
    let slots = Slots::new(&subject.calendar).map_err(anyhow::Error::msg)?;
    let next_run = |after: DateTime<Utc>| {
        slots.after(after).take(20_000).find_map(|s| match s {
            Slot::Run { at, jitter } => Some((at, jitter)),
            Slot::Excluded { .. } => None,
        })
    };
    let ours: Vec<(DateTime<Utc>, TimeDelta)> =
        std::iter::successors(next_run(from), |(at, _)| next_run(*at))
            .take(RUNS_PER_CASE)
            .collect();
    let any_time = slots.after(from).next().is_some();
    if ours.is_empty() && any_time && subject.calendar.end_at.is_none() {
        return Ok(Outcome::AllExcluded);
    }
    // the window ends with the last run compared, jitter included (Temporal lists the jittered
    // times; the next run's window begins where this one's ends), or 30 days on
    let end = ours.last().map_or(from + Days::days(30), |(t, jitter)| {
        *t + (*jitter - TimeDelta::milliseconds(1)).max(TimeDelta::zero())
    });
    let desired = schedule(id, subject.calendar.clone());
    let options = WriteOptions {
        paused: true,
        notes: "preview property test".into(),
        remaining_actions: None,
        action_count_base: 0,
    };
    temporal.create(&desired, &options).await.context("create")?;
    let theirs = temporal
        .matching_times(&desired.location, from, end)
        .await
        .context("list matching times");
    let _ = temporal.delete(&desired.location).await;
    let theirs = theirs?;
    // the operator sends cron entries as the structured calendars it works out itself: the same
    // entries sent as strings, parsed by Temporal, match the same times (jitter aside, which
    // differs with the schedule id)
    let jittered = subject.calendar.jitter.is_some_and(|j| !j.is_zero());
    if !subject.calendar.cron.is_empty() && !jittered {
        let twin = ScheduleLocation {
            namespace: desired.location.namespace.clone(),
            id: format!("{id}-cron"),
        };
        create_as_cron_strings(address, &desired, &options, &twin.id)
            .await
            .context("create with cron strings")?;
        let parsed = temporal
            .matching_times(&twin, from, end)
            .await
            .context("list matching times (cron strings)");
        let _ = temporal.delete(&twin).await;
        let parsed = parsed?;
        ensure!(
            parsed == theirs,
            "Temporal's parse of {:?} matches other times than the calendars the operator sends:\n  parsed: {parsed:?}\n  sent:   {theirs:?}",
            subject.calendar.cron
        );
    }
    let shown = |v: &[DateTime<Utc>]| v.iter().map(|t| t.to_rfc3339()).collect::<Vec<_>>().join(" ");
    let ours_times: Vec<DateTime<Utc>> = ours.iter().map(|(t, _)| *t).collect();
    let context = || {
        format!(
            "\n  preview:  {}\n  Temporal: {}",
            shown(&ours_times),
            shown(&theirs)
        )
    };
    let mut after = from;
    for t in &theirs {
        let Some((at, jitter)) = next_run(after) else {
            bail!(
                "Temporal lists {t} after {after}; the preview has no run after it{}",
                context()
            );
        };
        let window_end = at + jitter.max(TimeDelta::milliseconds(1));
        ensure!(
            *t >= at && *t < window_end,
            "after {after}, Temporal's {t} is not in the preview's window [{at}, {window_end}){}",
            context()
        );
        after = *t;
    }
    if let Some((at, _)) = next_run(after).filter(|(at, _)| *at <= end) {
        bail!(
            "the preview runs at {at}, within the window, and Temporal lists nothing after {after}{}",
            context()
        );
    }
    Ok(Outcome::Compared(theirs.len()))
}

async fn preview_times_are_temporals_matching_times_for_random_calendars(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let temporal = temporal_client(&shared.temporal)?;
    let seed: u64 = std::env::var("DURABLEJOB_PREVIEW_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64);
    let mut g = Gen(seed);
    let mut cases = pinned();
    cases.extend((0..RANDOM_CASES).map(|i| random_case(&mut g, i)));
    let (mut compared, mut all_excluded, mut failures) = (0usize, 0usize, Vec::new());
    for (i, (dj, from)) in cases.iter().enumerate() {
        let id = format!("e2e-preview-{seed}-{i}");
        match check_case(&temporal, &shared.temporal, &id, dj, *from).await {
            Ok(Outcome::Compared(n)) => compared += n,
            Ok(Outcome::AllExcluded) => all_excluded += 1,
            Err(e) => failures.push(format!(
                "case {i} ({}) from {from}: {e:#}\n  spec.schedule: {}",
                dj["metadata"]["name"], dj["spec"]["schedule"]
            )),
        }
    }
    ensure!(
        failures.is_empty(),
        "the preview differs from Temporal in {} of {} cases (DURABLEJOB_PREVIEW_SEED={seed} repeats them):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    ensure!(
        compared > cases.len() * 10,
        "only {compared} runs compared: the cases say too little"
    );
    println!(
        "preview: {} cases ({all_excluded} with every time excluded), {compared} runs, all as Temporal lists them (seed {seed})",
        cases.len()
    );
    Ok(())
}

fn calendar(name: &str, dates: &[chrono::NaiveDate]) -> Value {
    json!({
        "apiVersion": "durablejob.dev/v1alpha1",
        "kind": "DurableJobCalendar",
        "metadata": {"name": name},
        "spec": {"dates": dates.iter().map(|d| d.to_string()).collect::<Vec<_>>()},
    })
}

/// Runs the durablejob binary as a person would, with no cluster in reach.
fn offline(args: &[&str], stdin: Option<&str>) -> anyhow::Result<(bool, String, String)> {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_durablejob"))
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes())?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

async fn preview_reads_a_manifest_offline_and_an_applied_durablejob_with_its_calendar(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut env = Env::new(&shared, "preview", &[]).await?;
    let today = Utc::now().date_naive();
    let (holiday, excluded) = (today + Days::days(2), today + Days::days(3));
    let dj = manifest(
        "nightly",
        json!({"schedule": {
            "cron": ["0 12 * * *"],
            "exclude": {"dates": [excluded.to_string()]},
            "excludeCalendars": ["holidays"],
        }}),
    );
    let cal = calendar("holidays", &[holiday]);

    // offline: a manifest file and its calendar, nothing else in reach
    let dir = env.dir.join("preview");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("nightly.yaml");
    std::fs::write(
        &file,
        format!(
            "{}\n---\n{}\n",
            serde_json::to_string(&dj)?,
            serde_json::to_string(&cal)?
        ),
    )?;
    let from = Utc
        .from_utc_datetime(&today.and_hms_opt(13, 0, 0).expect("13:00"))
        .to_rfc3339();
    let file_s = file.to_string_lossy().to_string();
    let (ok, out, err) = offline(
        &[
            "preview", "-f", &file_s, "--from", &from, "--count", "5", "--months", "2", "-o", "json",
        ],
        None,
    )?;
    ensure!(ok, "preview -f: {err}{out}");
    let p: Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    let days: Vec<String> = p["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some(r["time"].as_str()?[..10].to_string()))
        .collect();
    let expected: Vec<String> = [1, 4, 5, 6, 7]
        .iter()
        .map(|d| (today + Days::days(*d)).to_string())
        .collect();
    ensure!(
        days == expected,
        "runs on {days:?}, expected {expected:?} (skipping {holiday} and {excluded})"
    );
    let skipped: Vec<&str> = p["skipped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["by"].as_str())
        .collect();
    ensure!(
        skipped.len() == 2
            && skipped[0].contains("DurableJobCalendar holidays")
            && skipped[1].contains("spec.schedule.exclude.dates"),
        "skipped: {skipped:?}"
    );
    // the grid marks both excluded days, in whichever of the two months they fall
    for day in [holiday, excluded] {
        let month = day.format("%Y-%m").to_string();
        let marked = p["months"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["month"] == month.as_str())
            .is_some_and(|m| {
                m["excludedDays"]
                    .as_array()
                    .is_some_and(|d| d.contains(&json!(day.day())))
            });
        ensure!(marked, "the grid does not mark {day} excluded: {}", p["months"]);
    }
    // the text view draws the month, and stdin works as kubectl's -f - does
    let text = std::fs::read_to_string(&file)?;
    let (ok, out, err) = offline(
        &["preview", "-f", "-", "--from", &from, "--count", "3"],
        Some(&text),
    )?;
    ensure!(
        ok && out.contains("Mo  Tu  We  Th  Fr  Sa  Su") && out.contains("x every time excluded"),
        "{err}{out}"
    );
    // without the calendar: refused, naming it and what to give
    std::fs::write(dir.join("alone.yaml"), serde_json::to_string(&dj)?)?;
    let alone = dir.join("alone.yaml").to_string_lossy().to_string();
    let (ok, out, err) = offline(&["preview", "-f", &alone], None)?;
    ensure!(
        !ok && err.contains("\"holidays\"") && err.contains("-f holidays.yaml"),
        "{out}{err}"
    );
    // a bad spec: the field named, as the operator would
    let mut bad = dj.clone();
    bad["spec"]["schedule"]["cron"] = json!(["0 12 * *"]);
    std::fs::write(dir.join("bad.yaml"), serde_json::to_string(&bad)?)?;
    let bad_s = dir.join("bad.yaml").to_string_lossy().to_string();
    let (ok, out, err) = offline(&["preview", "-f", &bad_s], None)?;
    ensure!(!ok && err.contains("spec.schedule.cron[0]"), "{out}{err}");

    // applied: the plugin reads the DurableJob and its calendar with the user's own rights
    env.api::<DurableJobCalendar>()
        .create(&PostParams::default(), &serde_json::from_value(cal)?)
        .await?;
    env.create(dj).await?;
    env.wait_ready("nightly").await?;
    let plugin = Plugin::as_user(&mut env, "durablejob-viewer", "durablejob-view")?;
    let (ok, out) = plugin.run(&["preview", "nightly", "--count", "5", "-o", "json"]);
    ensure!(ok, "kubectl durablejob preview: {out}");
    let p: Value = serde_json::from_str(&out).with_context(|| out.clone())?;
    ensure!(
        p["recorded"].as_str().is_some_and(|r| r.contains("agree")),
        "Temporal's recorded next times agree: {}",
        p["recorded"]
    );
    let (ok, out) = plugin.run(&["preview", "nightly", "--months", "2"]);
    ensure!(ok && out.matches("Mo  Tu  We").count() == 2, "{out}");
    let (ok, out) = plugin.run(&["preview", "missing"]);
    ensure!(!ok && out.contains("\"missing\" not found"), "{out}");
    Ok(())
}
