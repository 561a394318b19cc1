//! Converting 10,000 CronJob documents (one multi-document YAML, as a large GitOps repository
//! concatenated) on one core. Prints the figure; the target is under one second.
//!
//! `cargo bench --bench migrate`; `BENCH_DISTINCT_SCHEDULES=1` gives every CronJob a schedule of
//! its own (the worst case for the cache of judged cron entries; repositories repeat theirs).

use std::time::Instant;

use durablejob::migrate::{self, Output, Request, convert::Options, report::Report};

fn main() {
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];
    let policies = ["Allow", "Forbid", "Replace"];
    let distinct = std::env::var("BENCH_DISTINCT_SCHEDULES").is_ok_and(|v| v == "1");
    let mut input = String::new();
    for i in 0..10_000 {
        let (minute, hour, dow) = if distinct {
            // 60 x 24 x 7 = 10,080 different entries
            (i % 60, (i / 60) % 24, ((i / 1440) % 7).to_string())
        } else {
            (i % 60, i % 24, if i % 3 == 0 { "1-5".into() } else { "*".into() })
        };
        input.push_str(&format!(
            "---\n# job {i}\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: job-{i}\n  namespace: team-{}\n  labels: {{app: job-{i}}}\nspec:\n  schedule: \"{} {} * * {}\"\n  timeZone: {}\n  concurrencyPolicy: {}\n  startingDeadlineSeconds: {}\n  jobTemplate:\n    spec:\n      backoffLimit: 2\n      template:\n        spec:\n          restartPolicy: OnFailure\n          containers:\n          - name: main\n            image: registry.example.com/job:{i}\n            args: [\"--run\", \"{i}\"]\n",
            i % 20,
            minute,
            hour,
            dow,
            zones[i % zones.len()],
            policies[i % policies.len()],
            60 + i % 600,
        ));
    }
    let request = Request {
        paths: vec![],
        output: Output::Stdout,
        force: false,
        passthrough: false,
        options: Options::default(),
    };
    let mut best = f64::MAX;
    let mut bytes = 0;
    for _ in 0..3 {
        let mut stdin = input.as_bytes();
        let mut out = Vec::with_capacity(input.len() * 2);
        let mut report = Report::default();
        let started = Instant::now();
        let code = migrate::run(&request, &mut stdin, &mut out, &mut report);
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!((code, report.counts().0), (0, 10_000));
        best = best.min(elapsed);
        bytes = out.len();
    }
    println!(
        "migrate ({} schedules): 10,000 CronJob documents ({} KiB in, {} KiB out) in {:.3} s on one thread ({:.0} documents/s)",
        if distinct {
            "10,080 distinct"
        } else {
            "120 distinct"
        },
        input.len() / 1024,
        bytes / 1024,
        best,
        10_000.0 / best
    );
}
