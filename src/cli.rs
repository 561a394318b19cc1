//! Command-line interface: `durablejob <operator|runner|crd|get|migrate>` (`worker` is the
//! runner's older name and still works) and the run-control verbs, which also answer as the
//! kubectl plugin `kubectl durablejob VERB` when the binary is named `kubectl-durablejob`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::settings::{DEFAULT_RUNNER_TASK_QUEUE, DEFAULT_SCHEDULE_ID_PREFIX};
use crate::temporal::connect::TemporalArgs;

#[derive(Debug, Parser)]
#[command(
    name = "durablejob",
    version,
    about = "Run Kubernetes CronJob workloads on Temporal schedules"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: reconcile DurableJobs into Temporal schedules.
    Operator(Box<OperatorArgs>),
    /// Run the built-in runner: a Temporal worker that executes each run as a Kubernetes Job.
    // `worker`, its old name, still works (with a warning); it is not listed in the help
    #[command(alias = "worker")]
    Runner(Box<RunnerArgs>),
    /// Convert CronJob manifests (files, folders or stdin) into DurableJob manifests.
    Migrate(Box<MigrateArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crd(CrdArgs),
    /// List DurableJobs with the same columns as `kubectl get dj`.
    Get(GetArgs),
    /// Start one run now (as `kubectl create job --from=cronjob/NAME`).
    Trigger(Box<crate::control::args::TriggerArgs>),
    /// Run every slot of the schedule from --from to --to.
    Backfill(Box<crate::control::args::BackfillArgs>),
    /// Cancel the running run(s): the Job is deleted and the run ends Canceled (or Terminated).
    Cancel(Box<crate::control::args::CancelArgs>),
    /// Resume a schedule paused after failed runs (spec.pauseOnFailure or spec.suspendAfterFailures).
    Resume(Box<crate::control::args::ResumeArgs>),
    /// A new run of a failed multi-step run (spec.steps) that runs only what failed or never
    /// ran: finished steps and succeeded items are taken over.
    Retry(Box<crate::control::args::RetryArgs>),
    /// Recent runs, newest first: scheduled time, start, duration, result, attempts, Job, link.
    Runs(Box<crate::control::args::ShowArgs>),
    /// The schedule, its sync state, pause, next runs, running runs, missed runs and requests.
    Status(Box<crate::control::args::ShowArgs>),
    /// The pod logs of a run's Jobs (every attempt, step and item), with your own credentials.
    Logs(Box<crate::control::args::LogsArgs>),
    /// When a DurableJob will run, as Temporal computes it: the next runs, the times exclusions
    /// skip, and a month grid; from a manifest (-f, offline) or an applied DurableJob.
    Preview(Box<crate::control::args::PreviewArgs>),
    /// Send a signal to a run (Temporal credentials as the temporal CLI reads them).
    Signal(Box<crate::control::args::SignalArgs>),
    /// Query a run, e.g. `status` on a built-in run (Temporal credentials as the temporal CLI reads them).
    Query(Box<crate::control::args::QueryArgs>),
    /// A versioned worker's rollout: status, promote, rollback, pause, resume.
    Rollout(Box<crate::control::args::RolloutArgs>),
    /// Print a shell completion script: bash, zsh, fish, or kubectl (the
    /// `kubectl_complete-durablejob` executable for `kubectl durablejob <TAB>`).
    Completion(CompletionArgs),
    /// What may come next on a command line (the completion scripts ask it).
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
}

/// Arguments of `durablejob completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    pub shell: Shell,
}

/// The shells `durablejob completion` writes for.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    /// kubectl's plugin completion: the `kubectl_complete-durablejob` executable.
    Kubectl,
}

/// Arguments of `durablejob __complete`: the words after the program's name, the last the one
/// being completed.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub words: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Arguments of `durablejob crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write each CRD to DIR/PLURAL.GROUP.yaml instead of printing them all.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Namespaces to watch, comma-separated; all namespaces when empty.
    #[arg(
        long,
        env = "DURABLEJOB_WATCH_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,..."
    )]
    pub watch_namespaces: Vec<String>,
    /// Task queue of the built-in runner.
    #[arg(long, env = "DURABLEJOB_RUNNER_TASK_QUEUE", default_value = DEFAULT_RUNNER_TASK_QUEUE)]
    pub runner_task_queue: String,
    /// Temporal namespaces the built-in runner polls (its --temporal-namespaces), comma-separated;
    /// default: the operator's namespace. A DurableJob with a jobTemplate in another one is
    /// reported as RunnerNotServing instead of getting a schedule nobody runs.
    #[arg(
        long,
        env = "DURABLEJOB_RUNNER_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,..."
    )]
    pub runner_namespaces: Vec<String>,
    /// No built-in runner is installed (the chart's runner.enabled=false): a DurableJob with a
    /// jobTemplate is reported as RunnerNotServing instead of turning Ready and never running.
    #[arg(
        long,
        env = "DURABLEJOB_NO_BUILTIN_RUNNER",
        conflicts_with = "runner_namespaces"
    )]
    pub no_builtin_runner: bool,
    /// First part of schedule ids (`<prefix>:<namespace>/<name>`); differ per cluster sharing a Temporal namespace.
    #[arg(long, env = "DURABLEJOB_SCHEDULE_ID_PREFIX", default_value = DEFAULT_SCHEDULE_ID_PREFIX, value_parser = parse_prefix)]
    pub schedule_id_prefix: String,
    /// Temporal namespaces, besides the operator's own, that the DurableJobs of a Kubernetes
    /// namespace may name in spec.temporal.namespace: `KUBERNETES_NAMESPACE=TEMPORAL_NAMESPACE[,...]`,
    /// `*` for every Kubernetes namespace; repeat the flag (or separate entries with `;` in the
    /// environment variable). Without a grant, a DurableJob may use the operator's namespace only.
    #[arg(
        long = "temporal-namespace-grant",
        env = "DURABLEJOB_TEMPORAL_NAMESPACE_GRANTS",
        value_delimiter = ';',
        value_name = "NS=TEMPORAL_NS,..."
    )]
    pub temporal_namespace_grants: Vec<String>,
    /// Reconciles running at once, across the DurableJob and handover controllers and every
    /// watched namespace; bounds the Temporal calls in flight and the memory of a burst.
    #[arg(long, env = "DURABLEJOB_MAX_CONCURRENT_RECONCILES", default_value_t = crate::operator::DEFAULT_MAX_CONCURRENT_RECONCILES, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_concurrent_reconciles: u16,
    /// How often the schedules are listed from Temporal (ListSchedules, a page per thousand) to
    /// find those changed there, and the longest wait of a DurableJob only a person can fix (Go duration).
    #[arg(long, env = "DURABLEJOB_RESYNC_INTERVAL", default_value = "5m", value_parser = crate::util::duration::parse_positive)]
    pub resync_interval: Duration,
    /// Longest time between two describes of one DurableJob's schedule, for what the list does
    /// not show (the action, the policies) (Go duration).
    #[arg(long, env = "DURABLEJOB_FULL_RESYNC_INTERVAL", default_value = "1h", value_parser = crate::util::duration::parse_positive)]
    pub full_resync_interval: Duration,
    /// Address of the /metrics endpoint.
    #[arg(long, env = "DURABLEJOB_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "DURABLEJOB_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "DURABLEJOB_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Time zone for CronJobs handed over (durablejob.dev/migrate) that have no spec.timeZone.
    #[arg(long, env = "DURABLEJOB_HANDOVER_TIME_ZONE", default_value = "UTC", value_parser = parse_time_zone)]
    pub handover_time_zone: String,
    /// Which ended runs get an Event on their DurableJob: failures (a Warning RunFailed for a
    /// failed or timed-out run), all (also a Normal RunSucceeded), or none.
    #[arg(long, env = "DURABLEJOB_RUN_EVENTS", value_enum, default_value = "failures")]
    pub run_events: crate::settings::RunEvents,
    /// Tell user workers to connect with TLS (TEMPORAL_TLS=true); on by default when a worker
    /// TLS Secret or API key Secret is named.
    #[arg(long, env = "DURABLEJOB_WORKER_TEMPORAL_TLS", value_name = "BOOL")]
    pub worker_temporal_tls: Option<bool>,
    /// A Secret in each user worker's namespace with ca.crt and, for mTLS, tls.crt and tls.key:
    /// mounted in every worker pod, its paths given as TEMPORAL_TLS_*_PATH.
    #[arg(long, env = "DURABLEJOB_WORKER_TEMPORAL_TLS_SECRET", value_name = "SECRET", value_parser = crate::settings::WorkerConnection::parse_secret_name)]
    pub worker_temporal_tls_secret: Option<String>,
    /// Server name user workers verify (TEMPORAL_TLS_SERVER_NAME).
    #[arg(long, env = "DURABLEJOB_WORKER_TEMPORAL_TLS_SERVER_NAME", value_name = "NAME")]
    pub worker_temporal_tls_server_name: Option<String>,
    /// A Secret in each user worker's namespace holding a Temporal API key, given to every worker
    /// container as TEMPORAL_API_KEY: `SECRET` or `SECRET:KEY` (key `api-key` by default).
    #[arg(long, env = "DURABLEJOB_WORKER_TEMPORAL_API_KEY_SECRET", value_name = "SECRET[:KEY]", value_parser = crate::settings::WorkerConnection::parse_secret_ref)]
    pub worker_temporal_api_key_secret: Option<(String, String)>,
    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,
    #[command(flatten)]
    pub temporal: TemporalArgs,
}

#[derive(Debug, Args)]
pub struct RunnerArgs {
    /// Temporal namespaces to poll, comma-separated (default: the configured namespace); list
    /// every namespace a DurableJob with a jobTemplate names in spec.temporal.namespace.
    #[arg(
        long,
        env = "DURABLEJOB_TEMPORAL_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,..."
    )]
    pub temporal_namespaces: Vec<String>,
    /// Task queue to poll (the operator sends built-in runs here).
    #[arg(long, env = "DURABLEJOB_RUNNER_TASK_QUEUE", default_value = DEFAULT_RUNNER_TASK_QUEUE)]
    pub runner_task_queue: String,
    /// A run's activity must report progress this often or Temporal retries it on another runner (Go duration).
    #[arg(long, env = "DURABLEJOB_HEARTBEAT_TIMEOUT", default_value = "30s", value_parser = crate::util::duration::parse_positive)]
    pub heartbeat_timeout: Duration,
    /// Longest wait between two looks at a running Job when the shared watch of the runner's
    /// Jobs shows no change (Go duration); the watch wakes a run as soon as its Job changes.
    #[arg(long, env = "DURABLEJOB_JOB_POLL_INTERVAL", default_value = "1s", value_parser = crate::util::duration::parse_positive)]
    pub job_poll_interval: Duration,
    /// Namespaces whose Jobs the runner watches, comma-separated (the chart sets the operator's
    /// watchNamespaces, where its Roles are); every namespace when empty.
    #[arg(
        long,
        env = "DURABLEJOB_WATCH_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,..."
    )]
    pub watch_namespaces: Vec<String>,
    /// Runs that may wait on their Jobs at once, per Temporal namespace (activity slots). A
    /// waiting run costs a task and its cached Job, not a thread.
    #[arg(long, env = "DURABLEJOB_MAX_CONCURRENT_RUNS", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrent_runs: u32,
    /// Workflow tasks processed at once, per Temporal namespace (each takes milliseconds).
    #[arg(long, env = "DURABLEJOB_MAX_CONCURRENT_WORKFLOW_TASKS", default_value_t = 200, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub max_concurrent_workflow_tasks: u32,
    /// Address of the /metrics endpoint (runs, Jobs, start delays).
    #[arg(long, env = "DURABLEJOB_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Address where the Temporal SDK serves its worker metrics (temporal_*) on /metrics; `off` turns them off.
    #[arg(long, env = "DURABLEJOB_SDK_METRICS_ADDR", default_value = "0.0.0.0:9464", value_parser = parse_optional_addr)]
    pub sdk_metrics_addr: OptionalAddr,
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "DURABLEJOB_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
    pub health_addr: SocketAddr,
    /// Log format.
    #[arg(long, env = "DURABLEJOB_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub temporal: TemporalArgs,
}

/// Leader election among operator replicas (client-go's flags and defaults).
#[derive(Debug, Args)]
pub struct LeaderElectionArgs {
    /// Elect a leader through a Lease so several replicas are safe; only the leader reconciles.
    #[arg(long, env = "DURABLEJOB_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "DURABLEJOB_LEADER_ELECTION_ID", default_value = crate::metrics::LEADER_ELECTION_ID)]
    pub leader_election_id: String,
    /// Namespace of the Lease (default: the pod's namespace, else the kubeconfig's).
    #[arg(long, env = "DURABLEJOB_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// How long standbys wait after the last renewal before taking over (Go duration).
    #[arg(long, env = "DURABLEJOB_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = crate::util::duration::parse_positive)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading (Go duration).
    #[arg(long, env = "DURABLEJOB_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = crate::util::duration::parse_positive)]
    pub leader_election_renew_deadline: Duration,
    /// How often the leader renews and standbys try to take over (Go duration).
    #[arg(long, env = "DURABLEJOB_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = crate::util::duration::parse_positive)]
    pub leader_election_retry_period: Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReplaceAs {
    TerminateOther,
    CancelOther,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ForbidAs {
    Skip,
    BufferOne,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Manifest files or folders (read recursively); none or `-` reads stdin.
    pub paths: Vec<PathBuf>,
    /// Write to this file, or to this folder mirroring the input tree (an existing folder or a path ending in /).
    #[arg(short = 'o', long, conflicts_with = "in_place")]
    pub output: Option<PathBuf>,
    /// Rewrite the input files: CronJobs become DurableJobs, other documents stay byte for byte.
    #[arg(long)]
    pub in_place: bool,
    /// Overwrite output files that exist.
    #[arg(long)]
    pub force: bool,
    /// Write documents that are not CronJobs too, byte for byte (default: skip them).
    #[arg(long)]
    pub passthrough: bool,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Time zone for CronJobs without spec.timeZone (they ran in the controller manager's zone).
    #[arg(long, default_value = "UTC")]
    pub default_time_zone: String,
    /// What concurrencyPolicy Replace becomes.
    #[arg(long, value_enum, default_value = "terminate-other")]
    pub replace_as: ReplaceAs,
    /// What concurrencyPolicy Forbid becomes.
    #[arg(long, value_enum, default_value = "skip")]
    pub forbid_as: ForbidAs,
    /// Retry failed runs up to N attempts in total (default: no cross-run retries, as with CronJob).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub retries: Option<u32>,
    /// Give schedules that start at minute 0 a minute hashed from the DurableJob's name (`H`),
    /// so the converted jobs do not all start in the same second; each change is reported.
    #[arg(long)]
    pub stagger: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
}

/// Parses a Go duration such as `30s` or `5m`.
fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a usable prefix: use 1-63 letters, digits, '-', '_' or '.' (no ':' or '/', which separate the id's parts)"
        ))
    }
}

/// An address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalAddr(pub Option<SocketAddr>);

fn parse_optional_addr(s: &str) -> Result<OptionalAddr, String> {
    if s == "off" {
        return Ok(OptionalAddr(None));
    }
    s.parse()
        .map(|a| OptionalAddr(Some(a)))
        .map_err(|_| format!("{s:?} is not an address: use host:port such as 0.0.0.0:9464, or off"))
}

fn parse_time_zone(s: &str) -> Result<String, String> {
    match s.parse::<chrono_tz::Tz>() {
        Ok(_) => Ok(s.to_string()),
        Err(_) => Err(format!(
            "{s:?} is not an IANA time zone: use a name such as UTC or Europe/Berlin"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        assert!(parse_prefix("a:b").unwrap_err().contains("no ':'"));
        assert_eq!(parse_prefix("prod-eu"), Ok("prod-eu".into()));
        assert!(
            parse_time_zone("CEST")
                .unwrap_err()
                .contains("not an IANA time zone")
        );
        assert_eq!(parse_time_zone("Europe/Berlin"), Ok("Europe/Berlin".into()));
    }

    #[test]
    fn runner_flags_parse_into_their_types() {
        let cli = Cli::try_parse_from(["durablejob", "runner", "--sdk-metrics-addr", "off"]).unwrap();
        let Command::Runner(args) = cli.command else {
            panic!("a runner command");
        };
        assert_eq!(args.sdk_metrics_addr, OptionalAddr(None));
        let cli = Cli::try_parse_from(["durablejob", "operator", "--leader-elect"]).unwrap();
        let Command::Operator(args) = cli.command else {
            panic!("an operator command");
        };
        assert!(args.leader_election.leader_elect);
        let err = Cli::try_parse_from(["durablejob", "runner", "--sdk-metrics-addr", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("or off"), "{err}");
    }

    #[test]
    fn the_worker_connection_flags_take_what_the_chart_renders_and_name_a_bad_one() {
        let cli = Cli::try_parse_from([
            "durablejob",
            "operator",
            "--worker-temporal-tls=true",
            "--worker-temporal-tls-secret=worker-mtls",
            "--worker-temporal-api-key-secret=worker-key:api-key",
        ])
        .unwrap();
        let Command::Operator(args) = cli.command else {
            panic!("an operator command");
        };
        assert_eq!(args.worker_temporal_tls, Some(true));
        assert_eq!(args.worker_temporal_tls_secret.as_deref(), Some("worker-mtls"));
        assert_eq!(
            args.worker_temporal_api_key_secret,
            Some(("worker-key".into(), "api-key".into()))
        );
        let err = Cli::try_parse_from([
            "durablejob",
            "operator",
            "--worker-temporal-api-key-secret",
            "Key",
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("--worker-temporal-api-key-secret"),
            "{err}"
        );
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn the_runners_old_name_still_starts_it() {
        let cli = Cli::try_parse_from(["durablejob", "worker", "--sdk-metrics-addr", "off"]).unwrap();
        assert!(matches!(cli.command, Command::Runner(_)));
    }
}
