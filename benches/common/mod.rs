//! What the benches share: settings from the environment, a process's CPU time and memory (by
//! pid or by command name), percentiles, and Temporal's own work from its /metrics. (Starting `durablejob operator` / `runner`: processes.rs.)

/// `name` from the environment as a number, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of process `pid` so far (VmHWM), in KiB.
pub fn rss_peak_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// The resident size of process `pid` now, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The `p` percentile (0 to 1) of `sorted`; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU seconds (user and system) process `pid` used so far.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let Some(close) = stat.rfind(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds (user + system) used so far by every process whose command name starts with
/// one of `names`, by name.
pub fn cpu_by_name(names: &[&str]) -> Vec<(String, f64)> {
    let ticks = 100.0; // USER_HZ on Linux
    let mut out: Vec<(String, f64)> = names.iter().map(|n| (n.to_string(), 0.0)).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let secs = (u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0)) / ticks;
        if let Some(slot) = out.iter_mut().find(|(n, _)| comm.starts_with(n.as_str())) {
            slot.1 += secs;
        }
    }
    out
}

/// Temporal's own work so far, from the dev server's /metrics text (`metrics`): requests each of its services
/// answered (`service_requests`) and the persistence calls it made (`persistence_requests`), by
/// service and operation, every namespace summed. Two snapshots around a phase tell what the
/// phase cost Temporal, call by call.
pub fn server_work(metrics: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for l in metrics.lines() {
        let Some((metric, rest)) = l.split_once('{') else {
            continue;
        };
        if metric != "service_requests" && metric != "persistence_requests" {
            continue;
        }
        let label = |name: &str| {
            rest.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|v| v.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let n: f64 = l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let kind = if metric == "service_requests" {
            "request"
        } else {
            "persistence"
        };
        let key = format!("{kind} {} {}", label("service_name"), label("operation"));
        *out.entry(key).or_insert(0.0) += n;
    }
    out
}

/// `after - before`, per entry.
pub fn work_between(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> std::collections::BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .collect()
}
