//! The run-control verbs' command lines, as `durablejob VERB` and `kubectl durablejob VERB`.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand, ValueEnum};

use crate::api::OverlapPolicy;
use crate::temporal::connect::TemporalArgs;

/// Which cluster and namespace: kubectl's flags.
#[derive(Debug, Clone, Args, Default, PartialEq, Eq)]
pub struct Cluster {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
}

/// Where the DurableJob is.
#[derive(Debug, Clone, Args, Default, PartialEq, Eq)]
pub struct Target {
    /// The DurableJob.
    pub name: String,
    #[command(flatten)]
    pub cluster: Cluster,
}

/// Output formats, as kubectl spells them.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    #[value(skip)]
    Table,
    Json,
    Yaml,
    Wide,
}

/// Overlap policies as flags: kubectl-style lower case, or Temporal's names.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Overlap {
    #[value(alias = "Skip")]
    Skip,
    #[value(alias = "BufferOne")]
    BufferOne,
    #[value(alias = "BufferAll")]
    BufferAll,
    #[value(alias = "CancelOther")]
    CancelOther,
    #[value(alias = "TerminateOther")]
    TerminateOther,
    #[value(alias = "AllowAll")]
    AllowAll,
}

impl From<Overlap> for OverlapPolicy {
    fn from(o: Overlap) -> Self {
        match o {
            Overlap::Skip => OverlapPolicy::Skip,
            Overlap::BufferOne => OverlapPolicy::BufferOne,
            Overlap::BufferAll => OverlapPolicy::BufferAll,
            Overlap::CancelOther => OverlapPolicy::CancelOther,
            Overlap::TerminateOther => OverlapPolicy::TerminateOther,
            Overlap::AllowAll => OverlapPolicy::AllowAll,
        }
    }
}

/// What state-changing verbs share: waiting for the operator.
#[derive(Debug, Clone, Args)]
pub struct Wait {
    /// Wait until the operator has handled the request, and print its outcome.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (Go duration).
    #[arg(long, default_value = "60s", value_parser = crate::util::duration::parse_positive)]
    pub timeout: Duration,
    /// Output format of the outcome (json or yaml print the status.requests record).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

#[derive(Debug, Args)]
pub struct TriggerArgs {
    #[command(flatten)]
    pub target: Target,
    /// Overlap policy for this run only (default: the DurableJob's overlapPolicy).
    #[arg(long, value_enum)]
    pub overlap: Option<Overlap>,
    #[command(flatten)]
    pub wait: Wait,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub target: Target,
    /// First slot of the range (RFC 3339, inclusive), e.g. 2026-12-01T00:00:00Z.
    #[arg(long, value_name = "TIME", value_parser = parse_from)]
    pub from: chrono::DateTime<chrono::Utc>,
    /// Last slot of the range (RFC 3339, inclusive).
    #[arg(long, value_name = "TIME", value_parser = parse_to)]
    pub to: chrono::DateTime<chrono::Utc>,
    /// Overlap policy for the backfilled runs (default: the DurableJob's overlapPolicy).
    #[arg(long, value_enum)]
    pub overlap: Option<Overlap>,
    /// Refuse the backfill when the range holds more slots than this (default 1000): a
    /// mistyped year would otherwise start thousands of runs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_slots: Option<u32>,
    #[command(flatten)]
    pub wait: Wait,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub target: Target,
    /// The workflow id of the run to cancel (default: every running run).
    #[arg(long, value_name = "WORKFLOW_ID")]
    pub run: Option<String>,
    /// Terminate instead of cancelling gracefully (the run ends Terminated).
    #[arg(long)]
    pub terminate: bool,
    #[command(flatten)]
    pub wait: Wait,
}

#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(flatten)]
    pub target: Target,
    /// The workflow id of the failed (or partially failed) run to retry (kubectl durablejob
    /// runs NAME lists them).
    #[arg(long, value_name = "WORKFLOW_ID")]
    pub run: String,
    #[command(flatten)]
    pub wait: Wait,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub wait: Wait,
}

/// `rollout VERB NAME`: a versioned user worker's rollout.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Where the rollout stands: the build current and the one rolling out, each version's
    /// state, share of new runs and Ready pods.
    Status(ShowArgs),
    /// Make the new version current now (Manual, or skipping the remaining ramp steps).
    Promote(ResumeArgs),
    /// Route new runs back to the version before; the new one keeps its pods and is held until
    /// the spec changes or `rollout resume`.
    Rollback(ResumeArgs),
    /// Hold the rollout where it stands (no routing change) until `rollout resume`.
    Pause(ResumeArgs),
    /// Let a paused or rolled-back rollout go on.
    Resume(ResumeArgs),
}

/// Where the Temporal Web UI is, for the links to runs.
#[derive(Debug, Clone, Args)]
pub struct TemporalUi {
    /// Base URL of the Temporal Web UI, for the links to runs.
    #[arg(
        long,
        env = "DURABLEJOB_TEMPORAL_UI_URL",
        default_value = "http://localhost:8233",
        value_name = "URL"
    )]
    pub temporal_ui_url: String,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub target: Target,
    /// Output format.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub ui: TemporalUi,
}

/// Arguments of `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub target: Target,
    /// The run: its workflow id (or run id), as `runs` lists them (default: the newest run, a
    /// running one first).
    #[arg(long, value_name = "RUN", conflicts_with = "last")]
    pub run: Option<String>,
    /// The newest run (the default).
    #[arg(long)]
    pub last: bool,
    /// Only this attempt's Job (default: every attempt, step and item, in order).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,
    /// Follow a pod that is still running until it ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The container (default: the pod's default container, else its first).
    #[arg(short = 'c', long, value_name = "CONTAINER")]
    pub container: Option<String>,
    #[command(flatten)]
    pub ui: TemporalUi,
}

/// Arguments of `preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The DurableJob: an applied one, or with -f one of the files' (default: each of them).
    pub name: Option<String>,
    /// Manifests to preview instead of the cluster: DurableJobs and the DurableJobCalendars they
    /// list, files or folders (read recursively; repeat the flag; - reads stdin). Nothing is sent
    /// anywhere.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: Vec<PathBuf>,
    /// The cluster of an applied DurableJob; with -f, `-n` is the namespace of a manifest that
    /// names none (H depends on it; default "default").
    #[command(flatten)]
    pub cluster: Cluster,
    /// List the runs after this time (RFC 3339; default: now).
    #[arg(long, value_name = "TIME", value_parser = parse_from)]
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// How many runs to list.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// Months of calendar grid from --from's month (default: through the last listed run's
    /// month, at most 3; 0 leaves the grid out).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=24))]
    pub months: Option<u32>,
    /// Output format (json or yaml give the times, skips and grid as data).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
}

#[derive(Debug, Args)]
pub struct SignalArgs {
    #[command(flatten)]
    pub target: Target,
    /// The workflow id of the run.
    #[arg(long, value_name = "WORKFLOW_ID")]
    pub run: String,
    /// The signal's name (the built-in runner accepts `cancel`).
    pub signal: String,
    /// The signal's input, as JSON.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub input: Option<serde_json::Value>,
    #[command(flatten)]
    pub temporal: TemporalArgs,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub target: Target,
    /// The workflow id of the run.
    #[arg(long, value_name = "WORKFLOW_ID")]
    pub run: String,
    /// The query's name (the built-in runner answers `status`).
    pub query: String,
    /// The query's input, as JSON.
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub input: Option<serde_json::Value>,
    /// Output format (json is the default).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Output>,
    #[command(flatten)]
    pub temporal: TemporalArgs,
}

fn parse_from(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::api::parse_time("--from", s)
}

fn parse_to(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::api::parse_time("--to", s)
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| {
        format!("{s:?} is not JSON ({e}); quote strings, e.g. --input '\"now\"' or --input '{{\"k\": 1}}'")
    })
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Command, String> {
        let mut argv = vec!["kubectl-durablejob"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map(|c| c.command)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_verb_takes_kubectls_flags() {
        let Ok(Command::Trigger(t)) = parse(&[
            "trigger",
            "report",
            "-n",
            "team",
            "--kubeconfig",
            "/k",
            "--context",
            "prod",
            "--overlap",
            "allow-all",
            "--wait",
            "-o",
            "json",
        ]) else {
            panic!("a trigger");
        };
        assert_eq!(
            (
                t.target.name.as_str(),
                t.target.cluster.namespace.as_deref(),
                t.target.cluster.context.as_deref()
            ),
            ("report", Some("team"), Some("prod"))
        );
        assert_eq!(t.overlap, Some(super::Overlap::AllowAll));
        assert!(t.wait.wait && t.wait.output == Some(super::Output::Json));
        assert!(
            matches!(
                parse(&["trigger", "r", "--overlap", "AllowAll"]),
                Ok(Command::Trigger(_))
            ),
            "Temporal's spelling"
        );
        let Ok(Command::Backfill(b)) = parse(&[
            "backfill",
            "r",
            "--from",
            "2026-12-01T00:00:00Z",
            "--to",
            "2026-12-01T03:00:00+01:00",
        ]) else {
            panic!("a backfill");
        };
        assert_eq!(b.to - b.from, chrono::TimeDelta::hours(2));
        let Ok(Command::Cancel(c)) = parse(&["cancel", "r", "--run", "w-1", "--terminate"]) else {
            panic!("a cancel");
        };
        assert_eq!((c.run.as_deref(), c.terminate), (Some("w-1"), true));
        let Ok(Command::Retry(r)) = parse(&["retry", "r", "--run", "w-1", "-n", "apps", "--wait"]) else {
            panic!("a retry");
        };
        assert_eq!(
            (r.run.as_str(), r.target.cluster.namespace.as_deref(), r.wait.wait),
            ("w-1", Some("apps"), true)
        );
        assert!(parse(&["retry", "r"]).is_err(), "retry needs --run");
        assert!(
            matches!(parse(&["resume", "r", "--wait", "--timeout", "2m"]), Ok(Command::Resume(r)) if r.wait.timeout.as_secs() == 120)
        );
        assert!(
            matches!(parse(&["runs", "r", "-o", "wide"]), Ok(Command::Runs(r)) if r.output == Some(super::Output::Wide))
        );
        assert!(matches!(
            parse(&["status", "r", "-o", "yaml"]),
            Ok(Command::Status(_))
        ));
        for verb in ["promote", "rollback", "pause", "resume"] {
            let Ok(Command::Rollout(r)) = parse(&["rollout", verb, "r", "-n", "apps", "--wait"]) else {
                panic!("rollout {verb}");
            };
            let a = match r.command {
                super::RolloutCommand::Promote(a)
                | super::RolloutCommand::Rollback(a)
                | super::RolloutCommand::Pause(a)
                | super::RolloutCommand::Resume(a) => a,
                super::RolloutCommand::Status(_) => panic!("rollout {verb} is not status"),
            };
            assert_eq!(
                (a.target.cluster.namespace.as_deref(), a.wait.wait),
                (Some("apps"), true)
            );
        }
        assert!(matches!(
            parse(&["rollout", "status", "r", "-o", "json"]),
            Ok(Command::Rollout(r)) if matches!(r.command, super::RolloutCommand::Status(_))
        ));
        assert!(
            parse(&["rollout", "undo", "r"]).is_err(),
            "unknown rollout verbs are refused"
        );
        let Ok(Command::Signal(s)) =
            parse(&["signal", "r", "--run", "w", "cancel", "--input", "{\"why\": 1}"])
        else {
            panic!("a signal");
        };
        assert_eq!(
            (s.signal.as_str(), s.input),
            ("cancel", Some(serde_json::json!({"why": 1})))
        );
        assert!(
            matches!(parse(&["query", "r", "--run", "w", "status", "--temporal-address", "t:7233"]), Ok(Command::Query(q)) if q.temporal.temporal_address.as_deref() == Some("t:7233"))
        );
    }

    #[test]
    fn bad_arguments_say_what_to_write() {
        let e = parse(&[
            "backfill",
            "r",
            "--from",
            "yesterday",
            "--to",
            "2026-12-01T00:00:00Z",
        ])
        .unwrap_err();
        assert!(
            e.contains("--from \"yesterday\" is not an RFC 3339 time") && e.contains("2026-12-01T09:00:00Z"),
            "{e}"
        );
        let e = parse(&["backfill", "r", "--from", "2026-12-01T00:00:00Z"]).unwrap_err();
        assert!(e.contains("--to"), "{e}");
        let e = parse(&["trigger", "r", "--overlap", "sometimes"]).unwrap_err();
        assert!(e.contains("allow-all"), "the choices are listed: {e}");
        let e = parse(&["signal", "r", "cancel"]).unwrap_err();
        assert!(e.contains("--run"), "{e}");
        let e = parse(&["signal", "r", "--run", "w", "s", "--input", "not json"]).unwrap_err();
        assert!(e.contains("is not JSON"), "{e}");
        let e = parse(&["trigger"]).unwrap_err();
        assert!(e.contains("<NAME>"), "{e}");
        let e = parse(&["runs", "r", "-o", "xml"]).unwrap_err();
        assert!(
            e.contains("json") && e.contains("yaml") && e.contains("wide"),
            "{e}"
        );
    }
}
