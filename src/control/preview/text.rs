//! What `preview` prints: the header, the runs with the skips between them, and each month
//! as `cal` draws it. Pure.

use chrono::{Datelike, NaiveDate};

use super::plan::{Month, Preview, Skipped, rfc3339};

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// One month as `cal` draws it, weeks from Monday, `*` on run days and `x` on excluded ones.
fn grid(m: &Month, time_zone: &str) -> String {
    let (y, mo) = m.month.split_once('-').expect("YYYY-MM");
    let (y, mo): (i32, u32) = (y.parse().expect("year"), mo.parse().expect("month"));
    let first = NaiveDate::from_ymd_opt(y, mo, 1).expect("a month");
    let days = (first
        .checked_add_months(chrono::Months::new(1))
        .expect("next month")
        - first)
        .num_days() as u32;
    let mut out = format!("{} {y} ({time_zone})\n", MONTH_NAMES[mo as usize - 1]);
    out.push_str(
        ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
            .map(|d| format!("{d:>3} "))
            .concat()
            .trim_end(),
    );
    out.push('\n');
    let mut line = "    ".repeat(first.weekday().num_days_from_monday() as usize);
    for d in 1..=days {
        let mark = if m.run_days.contains(&d) {
            '*'
        } else if m.excluded_days.contains(&d) {
            'x'
        } else {
            ' '
        };
        line.push_str(&format!("{d:>3}{mark}"));
        let weekday = NaiveDate::from_ymd_opt(y, mo, d).expect("a day").weekday();
        if weekday == chrono::Weekday::Sun || d == days {
            out.push_str(line.trim_end());
            out.push('\n');
            line.clear();
        }
    }
    out
}

/// The text `preview` prints for one DurableJob.
pub fn render(p: &Preview) -> String {
    let mut out = String::new();
    out.push_str(&format!("DurableJob  {}\n", p.durable_job));
    out.push_str(&format!(
        "Schedule    {}\n",
        if p.schedule.is_empty() {
            "(none)"
        } else {
            &p.schedule
        }
    ));
    out.push_str(&format!("Time zone   {}\n", p.time_zone));
    for n in &p.notes {
        out.push_str(&format!("Note        {n}\n"));
    }
    if let Some(r) = &p.recorded {
        out.push_str(&format!("Temporal    {r}\n"));
    }
    out.push_str(&format!(
        "\nNext {} run(s) after {}:\n",
        p.runs.len(),
        rfc3339(p.after)
    ));
    let mut skipped = p.skipped.iter().peekable();
    let line_of_skip = |g: &Skipped| {
        if g.count == 1 {
            format!("  skipped {}  excluded by {}\n", rfc3339(g.first), g.by)
        } else {
            format!(
                "  skipped {} times {} .. {}  excluded by {}\n",
                g.count,
                rfc3339(g.first),
                rfc3339(g.last),
                g.by
            )
        }
    };
    for r in &p.runs {
        while let Some(g) = skipped.next_if(|g| g.first < r.time) {
            out.push_str(&line_of_skip(g));
        }
        let jitter = r
            .before
            .map(|b| format!("  (jitter: starts before {})", rfc3339(b)))
            .unwrap_or_default();
        out.push_str(&format!("  {}  {}{jitter}\n", r.local, rfc3339(r.time)));
    }
    for g in skipped {
        out.push_str(&line_of_skip(g));
    }
    if let Some(e) = &p.ends {
        out.push_str(&format!("  ({e})\n"));
    }
    for m in &p.months {
        out.push('\n');
        out.push_str(&grid(m, &p.time_zone));
    }
    if !p.months.is_empty() {
        out.push_str("  * a run starts   x every time excluded\n");
    }
    out
}
