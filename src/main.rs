use std::{process::ExitCode, sync::Arc};

use durablejob::{
    cli::{
        Cli, Command, ForbidAs, LeaderElectionArgs, LogFormat, MigrateArgs, OperatorArgs, ReplaceAs,
        RunnerArgs,
    },
    controller, crd, get, health, leader,
    metrics::{Metrics, resources::DurableJobCollector},
    operator::Core,
    runner,
    settings::Settings,
    telemetry,
    temporal::{
        connect::{ClientPool, TemporalArgs, TemporalConfig},
        sdk::SdkSchedules,
    },
};
use tracing::{error, info, warn};

/// Parses the command line; as `kubectl-durablejob` (a kubectl plugin) the help says
/// `kubectl durablejob`.
fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let plugin = named("kubectl-durablejob");
    let mut command = Cli::command();
    if plugin {
        command = command.name("kubectl durablejob").bin_name("kubectl durablejob");
    }
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Whether the binary runs under a name starting with `prefix` (a link or copy of it).
fn named(prefix: &str) -> bool {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
}

/// Prints what may come next after `words` (`durablejob __complete`, or the binary named
/// `kubectl_complete-durablejob`, as kubectl's plugin completion runs it).
async fn complete(words: &[String], plugin: bool) -> ExitCode {
    use clap::CommandFactory;
    use durablejob::control::complete;
    let next = complete::next(&Cli::command(), words, plugin);
    let (candidates, directive) = complete::answer(next).await;
    print!("{}", complete::render(&candidates, directive));
    ExitCode::SUCCESS
}

/// Runs a run-control verb: its output on stdout, errors on stderr, exit 1 on any failure.
async fn control(
    verb: impl std::future::Future<Output = Result<String, durablejob::control::ControlError>>,
) -> ExitCode {
    match verb.await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    if named("kubectl_complete-durablejob") {
        let words: Vec<String> = std::env::args().skip(1).collect();
        return complete(&words, true).await;
    }
    let cli = parse();
    use durablejob::api::{RequestParams, RequestVerb};
    use durablejob::control;
    match cli.command {
        Command::Trigger(a) => {
            let params = RequestParams::Trigger {
                overlap: a.overlap.map(Into::into),
            };
            control(control::request(&a.target, RequestVerb::Trigger, params, &a.wait)).await
        }
        Command::Backfill(a) => {
            if a.from > a.to {
                return fail(&format!(
                    "--from ({}) is after --to ({}); swap them",
                    a.from, a.to
                ));
            }
            let params = RequestParams::Backfill {
                from: a.from,
                to: a.to,
                overlap: a.overlap.map(Into::into),
                max_slots: a.max_slots,
            };
            control(control::request(
                &a.target,
                RequestVerb::Backfill,
                params,
                &a.wait,
            ))
            .await
        }
        Command::Retry(a) => {
            let params = RequestParams::Retry { run: a.run.clone() };
            control(control::request(&a.target, RequestVerb::Retry, params, &a.wait)).await
        }
        Command::Cancel(a) => {
            let params = RequestParams::Cancel {
                run: a.run.clone(),
                terminate: a.terminate,
            };
            control(control::request(&a.target, RequestVerb::Cancel, params, &a.wait)).await
        }
        Command::Resume(a) => {
            control(control::request(
                &a.target,
                RequestVerb::Resume,
                RequestParams::Resume,
                &a.wait,
            ))
            .await
        }
        Command::Runs(a) => control(control::runs(&a)).await,
        Command::Status(a) => control(control::status(&a)).await,
        Command::Signal(a) => control(control::signal(&a)).await,
        Command::Query(a) => control(control::query(&a)).await,
        Command::Logs(a) => control(control::logs(&a)).await,
        Command::Preview(a) => control(control::preview(&a, &mut std::io::stdin())).await,
        Command::Completion(a) => {
            use durablejob::cli::Shell;
            let shell = match a.shell {
                Shell::Bash => "bash",
                Shell::Zsh => "zsh",
                Shell::Fish => "fish",
                Shell::Kubectl => "kubectl",
            };
            print!("{}", control::complete::script(shell).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Command::Complete(a) => complete(&a.words, named("kubectl-durablejob")).await,
        Command::Rollout(a) => {
            use durablejob::control::args::RolloutCommand as R;
            let (verb, a) = match a.command {
                R::Status(s) => return control(control::rollout_status(&s)).await,
                R::Promote(a) => (RequestVerb::Promote, a),
                R::Rollback(a) => (RequestVerb::Rollback, a),
                R::Pause(a) => (RequestVerb::PauseRollout, a),
                R::Resume(a) => (RequestVerb::ResumeRollout, a),
            };
            control(control::request(&a.target, verb, RequestParams::Rollout, &a.wait)).await
        }
        Command::Crd(args) => {
            let Some(dir) = args.out_dir else {
                print!("{}", crd::all_yaml());
                return ExitCode::SUCCESS;
            };
            for (file, yaml) in crd::files() {
                let path = dir.join(file);
                if let Err(e) = std::fs::write(&path, yaml) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Command::Get(args) => {
            telemetry::init(LogFormat::Text);
            let client = match kube_client("cli", None).await {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            match get::run(client, args.namespace, args.all_namespaces).await {
                Ok(table) => {
                    print!("{table}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&format!("cannot list DurableJobs: {e}")),
            }
        }
        Command::Operator(args) => operator(*args).await,
        Command::Runner(args) => runner(*args).await,
        Command::Migrate(args) => migrate(*args),
    }
}

/// Who this process is in Temporal's history: the role and the pod (or process id).
fn identity(role: &str) -> String {
    let who = std::env::var("POD_NAME").unwrap_or_else(|_| std::process::id().to_string());
    format!("durablejob-{role}@{who}")
}

/// A client from the kubeconfig or the in-cluster config. Its User-Agent names the binary, the
/// role and the process (`durablejob/0.1.0 (operator; <pod or pid>)`), so audit logs tell
/// replicas apart.
async fn kube_client(
    role: &str,
    requests: Option<&durablejob::metrics::kube_requests::KubeRequests>,
) -> Result<kube::Client, String> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| format!("cannot load a kubeconfig or in-cluster config: {e}"))?;
    let who = std::env::var("POD_NAME").unwrap_or_else(|_| format!("pid {}", std::process::id()));
    let agent = format!("durablejob/{} ({role}; {who})", env!("CARGO_PKG_VERSION"));
    if let Ok(value) = agent.parse() {
        config.headers.push((http::header::USER_AGENT, value));
    }
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| format!("cannot create the Kubernetes client: {e}"))?;
    Ok(match requests {
        Some(counted) => builder.with_layer(counted).build(),
        None => builder.build(),
    })
}

/// Temporal's settings (environment, then flags) and the Kubernetes client, for a long-running role.
async fn connections(
    temporal: &TemporalArgs,
    identity: &str,
    role: &str,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<(TemporalConfig, kube::Client), String> {
    let temporal = temporal.resolve(identity).map_err(|e| e.to_string())?;
    let requests = durablejob::metrics::kube_requests::KubeRequests::register(registry);
    Ok((temporal, kube_client(role, Some(&requests)).await?))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn operator(args: OperatorArgs) -> ExitCode {
    telemetry::init(args.log_format);
    let identity = identity("operator");
    let mut registry = prometheus_client::registry::Registry::default();
    let (temporal, client) = match connections(&args.temporal, &identity, "operator", &mut registry).await {
        Ok(both) => both,
        Err(e) => return fail(&e),
    };
    let election = match election(&args.leader_election, &client) {
        Ok(e) => e,
        Err(e) => return fail(&e),
    };
    if let Err(e) = controller::check_crd_installed(&client, &args.watch_namespaces).await {
        error!("{e}");
        return fail(&e);
    }
    let namespace_grants = match durablejob::settings::NamespaceGrants::parse(&args.temporal_namespace_grants)
    {
        Ok(g) => g,
        Err(e) => return fail(&e),
    };
    let worker_connection = worker_connection(&args);
    let settings = Settings {
        namespace_grants,
        schedule_id_prefix: args.schedule_id_prefix,
        runner_task_queue: args.runner_task_queue,
        runner_namespaces: if args.no_builtin_runner {
            vec![]
        } else if args.runner_namespaces.is_empty() {
            vec![temporal.namespace.clone()]
        } else {
            args.runner_namespaces.clone()
        },
        default_temporal_namespace: temporal.namespace.clone(),
        resync_interval: args.resync_interval,
        full_resync_interval: args.full_resync_interval,
        temporal_address: temporal.address.clone(),
        handover_time_zone: args.handover_time_zone.clone(),
        run_events: args.run_events,
        worker_connection,
    };
    info!(temporal_address = %temporal.address, temporal_namespace = %temporal.namespace,
        prefix = %settings.schedule_id_prefix, temporal_namespace_grants = ?settings.namespace_grants.describe(),
        "starting operator");
    let metrics = Metrics::register(&mut registry);
    let collector = DurableJobCollector::default();
    registry.register_collector(Box::new(collector.clone()));
    let pool = Arc::new(ClientPool::new(temporal));
    let schedules = SdkSchedules::new(pool, identity, Some(metrics.clone()));
    let leading = metrics.leader_gauge();
    let ctx = Arc::new(
        Core::new(client.clone(), schedules, settings, metrics)
            .with_max_concurrent_reconciles(args.max_concurrent_reconciles),
    );
    let ready = health::Readiness::default();
    let server = health::serve(
        args.health_addr,
        args.metrics_addr,
        ready.clone(),
        Arc::new(registry),
    );
    let work = async {
        match election {
            None => {
                run_controllers(ctx, args.watch_namespaces, ready, collector).await;
                Ok(())
            }
            Some(election) => {
                // A standby is ready: it serves its purpose by waiting.
                ready.set_ready();
                leader::Elector::new(client, election, leading)
                    .lead(
                        run_controllers(ctx, args.watch_namespaces, ready.clone(), collector),
                        durablejob::signal::shutdown(),
                    )
                    .await
            }
        }
    };
    tokio::select! {
        r = server => {
            if let Err(e) = r {
                return fail(&format!("cannot serve health/metrics endpoints on {} / {}: {e}", args.health_addr, args.metrics_addr));
            }
            ExitCode::SUCCESS
        }
        r = work => match r {
            Ok(()) => {
                info!("operator stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                error!("{e}");
                fail(&e.to_string())
            }
        }
    }
}

/// The election settings, or `None` without `--leader-elect`.
fn election(args: &LeaderElectionArgs, client: &kube::Client) -> Result<Option<leader::Election>, String> {
    if !args.leader_elect {
        return Ok(None);
    }
    let namespace = args
        .leader_election_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| client.default_namespace().to_string());
    let who = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "operator".into());
    let election = leader::Election {
        lease_name: args.leader_election_id.clone(),
        namespace,
        identity: leader::identity(&who),
        lease_duration: args.leader_election_lease_duration,
        renew_deadline: args.leader_election_renew_deadline,
        retry_period: args.leader_election_retry_period,
    };
    election.check()?;
    Ok(Some(election))
}

async fn runner(args: RunnerArgs) -> ExitCode {
    telemetry::init(args.log_format);
    // "worker" names a user's worker everywhere else; the runner's old name still starts it
    if std::env::args().skip(1).find(|a| !a.starts_with('-')).as_deref() == Some("worker") {
        warn!(
            "`durablejob worker` is the old name of `durablejob runner`; change the command to `runner` (the old name will be removed)"
        );
    }
    let identity = identity("runner");
    let mut registry = prometheus_client::registry::Registry::default();
    let (temporal, client) = match connections(&args.temporal, &identity, "runner", &mut registry).await {
        Ok(both) => both,
        Err(e) => return fail(&e),
    };
    let ready = health::Readiness::default();
    let metrics = durablejob::metrics::runner::RunnerMetrics::register(&mut registry);
    let server = health::serve(
        args.health_addr,
        args.metrics_addr,
        ready.clone(),
        Arc::new(registry),
    );
    let config = runner::RunnerConfig {
        temporal,
        namespaces: args.temporal_namespaces,
        identity,
        task_queue: args.runner_task_queue,
        watch_namespaces: args.watch_namespaces,
        max_concurrent_activities: args.max_concurrent_runs as usize,
        max_concurrent_workflow_tasks: args.max_concurrent_workflow_tasks as usize,
        heartbeat_timeout: args.heartbeat_timeout,
        poll_interval: args.job_poll_interval,
        metrics,
        sdk_metrics_addr: args.sdk_metrics_addr.0,
    };
    tokio::select! {
        r = server => match r {
            Err(e) => fail(&format!("cannot serve health/metrics endpoints on {} / {}: {e}", args.health_addr, args.metrics_addr)),
            Ok(()) => ExitCode::SUCCESS,
        },
        r = runner::run(config, client, ready) => match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e.to_string()),
        },
    }
}

fn migrate(args: MigrateArgs) -> ExitCode {
    use durablejob::{
        api::OverlapPolicy,
        migrate::{self, Output, Request, convert::Options, report::Report},
    };
    if args.default_time_zone.parse::<chrono_tz::Tz>().is_err() {
        return fail(&format!(
            "--default-time-zone {:?} is not an IANA time zone (e.g. UTC, Europe/Berlin)",
            args.default_time_zone
        ));
    }
    let output = match (&args.output, args.in_place) {
        (_, true) => Output::InPlace,
        (None, false) => Output::Stdout,
        (Some(p), false) if p.is_dir() || p.to_string_lossy().ends_with('/') => Output::Dir(p.clone()),
        (Some(p), false) => Output::File(p.clone()),
    };
    let request = Request {
        paths: args.paths,
        output,
        force: args.force,
        passthrough: args.passthrough,
        options: Options {
            default_time_zone: args.default_time_zone,
            replace_as: match args.replace_as {
                ReplaceAs::TerminateOther => OverlapPolicy::TerminateOther,
                ReplaceAs::CancelOther => OverlapPolicy::CancelOther,
            },
            forbid_as: match args.forbid_as {
                ForbidAs::Skip => OverlapPolicy::Skip,
                ForbidAs::BufferOne => OverlapPolicy::BufferOne,
            },
            retries: args.retries,
            stagger: args.stagger,
        },
    };
    let mut report = Report::default();
    let code = migrate::run(
        &request,
        &mut std::io::stdin(),
        &mut std::io::stdout(),
        &mut report,
    );
    eprint!("{}", report.text());
    if let Some(path) = args.report {
        let json = serde_json::to_string_pretty(&report).expect("the report serializes");
        if let Err(e) = std::fs::write(&path, json) {
            return fail(&format!("cannot write the report to {}: {e}", path.display()));
        }
    }
    if code == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The DurableJob controller (with the calendar controller it starts) and the CronJob
/// handover controller, side by side over the shared core.
async fn run_controllers<S: durablejob::temporal::Schedules>(
    ctx: Arc<Core<S>>,
    namespaces: Vec<String>,
    ready: health::Readiness,
    collector: DurableJobCollector,
) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    };
    let handovers = futures::future::join_all(
        scopes
            .into_iter()
            .map(|ns| durablejob::handover::run(ctx.clone(), ns)),
    );
    tokio::join!(
        controller::run(ctx.clone(), namespaces, ready, collector),
        handovers
    );
}

/// What user workers are told about the connection (`--worker-temporal-*`): TLS on when asked,
/// or when a worker Secret is named.
fn worker_connection(args: &durablejob::cli::OperatorArgs) -> durablejob::settings::WorkerConnection {
    durablejob::settings::WorkerConnection {
        tls: args.worker_temporal_tls.unwrap_or(
            args.worker_temporal_tls_secret.is_some() || args.worker_temporal_api_key_secret.is_some(),
        ),
        tls_server_name: args.worker_temporal_tls_server_name.clone(),
        tls_secret: args.worker_temporal_tls_secret.clone(),
        api_key_secret: args.worker_temporal_api_key_secret.clone(),
    }
}
