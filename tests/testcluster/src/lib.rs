#![forbid(unsafe_code)]
//! A strict, in-process Kubernetes API server for durablejob's tests and playground.
//!
//! It speaks the real HTTP wire protocol (discovery, CRDs, list/watch with resourceVersions
//! and bookmarks, Status errors, the status subresource, merge/JSON/strategic/apply patches,
//! finalizers), so the operator runs against it through an ordinary kubeconfig exactly as
//! against a cluster. See the README's "testcluster" section for what it simplifies.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};

mod builtin;
mod builtin_defaults;
mod controllers;
mod crd;
mod discovery;
mod errors;
mod events;
mod faults;
mod fields;
mod manifests;
mod openapi;
mod openapi_proto;
mod patch;
mod registry;
mod requestlog;
mod schema;
mod selectors;
mod server;
mod store;
mod table;
mod validation;

pub use faults::{FailRule, Faults};
pub use manifests::{ManifestError, load_manifests};
pub use requestlog::{LoggedRequest, RequestLog};

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// Loopback port; 0 picks a free one.
    pub port: u16,
    /// Where to write the kubeconfig; a temporary file when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// Watch events kept for resuming watches; older resourceVersions get 410 Gone.
    pub watch_history: usize,
    /// How often watches that allow bookmarks receive one.
    pub bookmark_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 0,
            kubeconfig: None,
            watch_history: 1_000,
            bookmark_interval: Duration::from_secs(2),
        }
    }
}

/// A running test cluster; stops when dropped.
pub struct TestCluster {
    addr: SocketAddr,
    kubeconfig: PathBuf,
    _tempdir: Option<TempDir>,
    server: Arc<server::Server>,
    controllers: tokio::task::JoinHandle<()>,
    token: String,
}

/// What the task that owns the listener is asked to do.
pub(crate) enum Control {
    Restart {
        downtime: Duration,
        done: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    },
    Stop,
}

/// Serves on the listener; restarts it on request (same port, every object kept).
async fn supervise(
    mut listener: tokio::net::TcpListener,
    addr: SocketAddr,
    server: Arc<server::Server>,
    mut control: tokio::sync::mpsc::UnboundedReceiver<Control>,
) {
    loop {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(server.clone());
        let serving = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        let command = control.recv().await;
        server.faults.drop_watches();
        let _ = tx.send(());
        if tokio::time::timeout(Duration::from_secs(5), serving)
            .await
            .is_err()
        {
            tracing::warn!("connections did not close within 5s");
        }
        match command {
            Some(Control::Restart { downtime, done }) => {
                tokio::time::sleep(downtime).await;
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => {
                        listener = l;
                        if let Some(d) = done {
                            let _ = d.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        if let Some(d) = done {
                            let _ = d.send(Err(e.to_string()));
                        }
                        return;
                    }
                }
            }
            Some(Control::Stop) | None => return,
        }
    }
}

/// Errors starting a cluster or loading manifests into it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("cannot write the kubeconfig {path}: {source}")]
    Kubeconfig { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{file}: document {index} ({kind} {name}): {message}")]
    Apply {
        file: String,
        index: usize,
        kind: String,
        name: String,
        message: String,
    },
    #[error("kube client: {0}")]
    Client(String),
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TestCluster {
    /// Starts a cluster on a free loopback port with a temporary kubeconfig.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(Config::default()).await
    }

    pub async fn start_with(config: Config) -> Result<Self, Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| Error::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            port: config.port,
            source,
        })?;
        let token = format!("testcluster-{:016x}", store::rand_u64());
        let (kubeconfig, tempdir) = match config.kubeconfig {
            Some(p) => (p, None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "testcluster-{}-{:x}",
                    std::process::id(),
                    store::rand_u64()
                ));
                std::fs::create_dir_all(&dir).map_err(|source| Error::Kubeconfig {
                    path: dir.clone(),
                    source,
                })?;
                (dir.join("kubeconfig"), Some(TempDir(dir)))
            }
        };
        let (control, control_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = Arc::new(server::Server {
            state: Mutex::new(store::State::new(config.watch_history)),
            faults: Faults::default(),
            control,
            token: token.clone(),
            log: RequestLog::default(),
            bookmark_interval: config.bookmark_interval,
            address: addr.to_string(),
        });
        write_kubeconfig(&kubeconfig, addr, &token)?;
        tokio::spawn(supervise(listener, addr, server.clone(), control_rx));
        let ticking = server.clone();
        let controllers = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(50));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let mut state = ticking.state.lock().expect("state lock");
                controllers::tick(&mut state, std::time::Instant::now());
            }
        });
        Ok(Self {
            addr,
            kubeconfig,
            _tempdir: tempdir,
            server,
            controllers,
            token,
        })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token the kubeconfig carries.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Every request answered so far.
    pub fn requests(&self) -> &RequestLog {
        &self.server.log
    }

    /// A kube client for this cluster.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| Error::Client(e.to_string()))?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .map_err(|e| Error::Client(e.to_string()))?;
        kube::Client::try_from(cfg).map_err(|e| Error::Client(e.to_string()))
    }

    /// Creates (or, if present, replaces) the objects in these files or folders, CRDs first.
    pub fn apply_paths(&self, paths: &[PathBuf]) -> Result<Vec<String>, Error> {
        let docs = load_manifests(paths)?;
        let mut ordered: Vec<&manifests::Doc> = docs
            .iter()
            .filter(|d| d.kind() == "CustomResourceDefinition")
            .collect();
        ordered.extend(docs.iter().filter(|d| d.kind() == "Namespace"));
        ordered.extend(
            docs.iter()
                .filter(|d| !matches!(d.kind(), "CustomResourceDefinition" | "Namespace")),
        );
        let mut applied = vec![];
        for d in ordered {
            self.apply_value(&d.value).map_err(|message| Error::Apply {
                file: d.file.clone(),
                index: d.index,
                kind: d.kind().to_string(),
                name: d.value["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                message,
            })?;
            applied.push(format!(
                "{}/{}",
                d.kind().to_lowercase(),
                d.value["metadata"]["name"].as_str().unwrap_or_default()
            ));
        }
        Ok(applied)
    }

    /// Server-side applies one object with field manager `testcluster`.
    pub fn apply_value(&self, obj: &Value) -> Result<Value, String> {
        let mut state = self.server.state.lock().expect("state lock");
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let rt = state
            .registry
            .by_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| {
                format!("no resource type for apiVersion {api_version:?} kind {kind:?} (is its CRD applied?)")
            })?;
        let name = obj["metadata"]["name"]
            .as_str()
            .ok_or("metadata.name is required")?
            .to_string();
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .map(String::from)
            .or_else(|| rt.namespaced.then(|| "default".into()));
        let body = serde_json::to_vec(obj).map_err(|e| e.to_string())?;
        let opts = store::WriteOptions {
            field_manager: "testcluster".into(),
            force: true,
            field_validation: "Strict".into(),
            dry_run: false,
        };
        state
            .patch(
                &rt,
                ns.as_deref(),
                &name,
                "",
                "application/apply-patch+yaml",
                &body,
                &opts,
            )
            .map(|w| w.object)
            .map_err(|e| e.message)
    }

    /// Fault injection: failing requests, latency, dropped watches.
    pub fn faults(&self) -> &Faults {
        &self.server.faults
    }

    /// Forgets the watch history: clients resuming from an earlier resourceVersion get 410 Gone.
    pub fn forget_watch_history(&self) {
        self.server.state.lock().expect("state lock").forget_history();
    }

    /// Restarts the HTTP server on the same port, keeping every object (as an API server
    /// restart keeps etcd): open watches and connections end, and nothing answers for `downtime`.
    /// Also available as `POST /testcluster/faults` with `{"restartMs": N}`.
    pub async fn restart(&self, downtime: Duration) -> Result<(), Error> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let _ = self.server.control.send(Control::Restart {
            downtime,
            done: Some(done),
        });
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Bind {
                port: self.addr.port(),
                source: std::io::Error::other(e),
            }),
            Err(_) => Err(Error::Bind {
                port: self.addr.port(),
                source: std::io::Error::other("the server has stopped"),
            }),
        }
    }

    /// Stops serving (also done on drop).
    pub fn stop(&mut self) {
        self.server.faults.drop_watches();
        let _ = self.server.control.send(Control::Stop);
        self.controllers.abort();
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_kubeconfig(path: &Path, addr: SocketAddr, token: &str) -> Result<(), Error> {
    let cfg = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testcluster", "cluster": {"server": format!("http://{addr}")}}],
        "users": [{"name": "testcluster-admin", "user": {"token": token}}],
        "contexts": [{"name": "testcluster", "context": {"cluster": "testcluster", "user": "testcluster-admin", "namespace": "default"}}],
        "current-context": "testcluster",
        "preferences": {},
    });
    let text = serde_saphyr::to_string(&cfg).expect("kubeconfig serializes");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| Error::Kubeconfig {
        path: path.to_path_buf(),
        source,
    })
}
