//! One cluster per test binary: the local control plane started by `hack/cluster.sh` (stopped
//! by its watchdog when the test binary ends, however it ends), or the user's own cluster.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::{AuditLog, Kubectl, repo_root};

/// The cluster this test binary runs against.
#[derive(Debug)]
pub struct Cluster {
    kubeconfig: PathBuf,
    /// The local cluster's folder; `None` for a user's own cluster.
    dir: Option<PathBuf>,
    kubectl: Kubectl,
    /// The API server's version, e.g. `v1.37.2`.
    pub version: String,
}

static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();

impl Cluster {
    /// The binary's cluster, started on first use with the CRDs and the shipped RBAC
    /// (`crds/`, `config/rbac/`) installed. Blocks while it starts; panics with the
    /// components' logs when it cannot.
    pub fn shared() -> &'static Cluster {
        match SHARED.get_or_init(|| Self::start().map_err(|e| format!("{e:#}"))) {
            Ok(c) => c,
            Err(e) => panic!("cannot start the test cluster: {e}"),
        }
    }

    fn start() -> anyhow::Result<Self> {
        let (kubeconfig, dir) = match std::env::var_os("DURABLEJOB_TEST_KUBECONFIG") {
            Some(kc) if !kc.is_empty() => (PathBuf::from(kc), None),
            _ => {
                let dir = std::env::temp_dir().join(format!("durablejob-cluster-{}", std::process::id()));
                start_local(&dir, &[], true)?;
                (dir.join("kubeconfig"), Some(dir))
            }
        };
        let kubectl = Kubectl::find(&kubeconfig);
        let version_json = kubectl.ok(&["version", "-o", "json"], None)?;
        let version = serde_json::from_str::<Value>(&version_json)
            .ok()
            .and_then(|v| v["serverVersion"]["gitVersion"].as_str().map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        if dir.is_none() {
            eprintln!("tests run against the cluster in DURABLEJOB_TEST_KUBECONFIG (Kubernetes {version})");
        }
        let cluster = Self {
            kubeconfig,
            dir,
            kubectl,
            version,
        };
        install(&cluster.kubectl)?;
        Ok(cluster)
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A client with the admin identity, on the caller's runtime.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_for(&self.kubeconfig).await
    }

    /// kubectl as the admin.
    pub fn kubectl(&self) -> &Kubectl {
        &self.kubectl
    }

    /// The audit log; `None` on a user's own cluster.
    pub fn audit(&self) -> Option<AuditLog> {
        self.dir.as_ref().map(|d| AuditLog {
            path: d.join("audit.log"),
        })
    }

    /// The local cluster's folder (`None` on a user's own cluster).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Copies the local cluster's component logs and audit log into `to` (created), for a look
    /// after a failed run: the cluster's own folder goes when the test binary ends. Returns
    /// what could not be copied; nothing to do on a user's own cluster.
    pub fn keep_logs(&self, to: &Path) -> Vec<String> {
        let Some(dir) = &self.dir else { return vec![] };
        let mut problems = vec![];
        let mut copy = |from: PathBuf| {
            let target = to.join(from.file_name().unwrap_or_default());
            if let Err(e) = std::fs::create_dir_all(to).and_then(|()| std::fs::copy(&from, &target)) {
                problems.push(format!("{}: {e}", from.display()));
            }
        };
        copy(dir.join("audit.log"));
        match std::fs::read_dir(dir.join("logs")) {
            Ok(entries) => entries.flatten().for_each(|e| copy(e.path())),
            Err(e) => problems.push(format!("{}: {e}", dir.join("logs").display())),
        }
        problems
    }

    /// A local cluster of the test's own, with `hack/cluster.sh start` options such as
    /// `--no-watch-cache`; stopped when dropped. Nothing is installed in it.
    pub fn private(name: &str, options: &[&str]) -> anyhow::Result<PrivateCluster> {
        start_private(name, options, false)
    }

    /// Like [`Cluster::private`], with what [`Cluster::shared`] comes with: the CRDs (applied
    /// before the controller manager starts, so its garbage collector knows DurableJobs as
    /// owners from the first second) and the shipped ClusterRoles.
    pub fn private_with_durablejob(name: &str, options: &[&str]) -> anyhow::Result<PrivateCluster> {
        let cluster = start_private(name, options, true)?;
        install(&cluster.kubectl)?;
        Ok(cluster)
    }

    /// A fresh namespace, deleted when the guard is dropped; returns once its `default`
    /// ServiceAccount exists (pods cannot be created before).
    pub fn namespace(&self, name: &str) -> anyhow::Result<Namespace> {
        new_namespace(&self.kubectl, name)
    }
}

/// A cluster one test has to itself.
#[derive(Debug)]
pub struct PrivateCluster {
    pub kubeconfig: PathBuf,
    pub dir: PathBuf,
    pub kubectl: Kubectl,
}

impl PrivateCluster {
    /// A fresh namespace, as [`Cluster::namespace`] gives.
    pub fn namespace(&self, name: &str) -> anyhow::Result<Namespace> {
        new_namespace(&self.kubectl, name)
    }

    pub fn audit(&self) -> AuditLog {
        AuditLog {
            path: self.dir.join("audit.log"),
        }
    }

    /// A client with the admin identity, on the caller's runtime.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_for(&self.kubeconfig).await
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("hack/cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The CRDs (`crds/`) and the shipped ClusterRoles (`config/rbac/`), applied server-side.
fn install(kubectl: &Kubectl) -> anyhow::Result<()> {
    let root = repo_root();
    kubectl.ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            path(&root.join("crds"))?,
        ],
        None,
    )?;
    kubectl.ok(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/durablejobs.durablejob.dev",
            "crd/durablejobcalendars.durablejob.dev",
        ],
        None,
    )?;
    for role in [
        "operator-clusterrole.yaml",
        "runner-clusterrole.yaml",
        "user-clusterroles.yaml",
    ] {
        let file = root.join("config/rbac").join(role);
        kubectl.ok(
            &["apply", "--server-side", "--force-conflicts", "-f", path(&file)?],
            None,
        )?;
    }
    Ok(())
}

/// A fresh namespace, deleted when the guard is dropped; returns once its `default`
/// ServiceAccount exists (pods cannot be created before).
fn new_namespace(k: &Kubectl, name: &str) -> anyhow::Result<Namespace> {
    if k.run(&["get", "namespace", name], None).0 {
        k.ok(&["delete", "namespace", name, "--timeout=120s"], None)?;
    }
    k.ok(&["create", "namespace", name], None)?;
    wait(
        &format!("the default ServiceAccount in {name}"),
        Duration::from_secs(60),
        || k.run(&["get", "serviceaccount", "default", "-n", name], None).0,
    )?;
    Ok(Namespace {
        name: name.to_string(),
        kubectl: k.clone(),
        bindings: vec![],
    })
}

/// Starts the local control plane in `dir`, watched by this process (it stops when the test
/// binary ends, however it ends).
fn start_private(name: &str, options: &[&str], crds: bool) -> anyhow::Result<PrivateCluster> {
    let dir = std::env::temp_dir().join(format!("durablejob-cluster-{}-{name}", std::process::id()));
    start_local(&dir, options, crds)?;
    let kubeconfig = dir.join("kubeconfig");
    Ok(PrivateCluster {
        kubectl: Kubectl::find(&kubeconfig),
        kubeconfig,
        dir,
    })
}

/// Starts `hack/cluster.sh` in `dir`; with `crds`, the repository's CRDs are applied before
/// the controller manager starts (see `--crds` there: a CRD installed later is unknown to
/// the garbage collector for up to 30 seconds).
fn start_local(dir: &Path, options: &[&str], crds: bool) -> anyhow::Result<()> {
    let crds_dir = repo_root().join("crds");
    let mut command = Command::new(repo_root().join("hack/cluster.sh"));
    command
        .arg("start")
        .arg(dir)
        .arg("--watch")
        .arg(std::process::id().to_string())
        .args(options);
    if crds {
        command.arg("--crds").arg(&crds_dir);
    }
    let out = command.output().context("cannot run hack/cluster.sh")?;
    eprint!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        bail!(
            "hack/cluster.sh start failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A namespace owned by one test; dropping it deletes the namespace and the
/// ClusterRoleBindings made for its ServiceAccounts.
#[derive(Debug)]
pub struct Namespace {
    pub name: String,
    kubectl: Kubectl,
    bindings: Vec<String>,
}

impl Namespace {
    /// A kubeconfig for ServiceAccount `sa` in this namespace, bound to `cluster_role` (one
    /// of the roles in `config/rbac/`), with a token from the TokenRequest API. The file is
    /// written to `dir`.
    pub fn service_account(&mut self, sa: &str, cluster_role: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        let ns = &self.name;
        let binding = format!("{ns}-{sa}");
        let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": binding},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
             "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
        ]});
        self.kubectl
            .ok(&["apply", "-f", "-"], Some(&objects.to_string()))?;
        self.bindings.push(binding);
        service_account_kubeconfig(&self.kubectl, ns, sa, dir)
    }
}

/// A kubeconfig for the existing ServiceAccount `ns/sa` (a token from the TokenRequest API, the
/// cluster of `kubectl`'s kubeconfig), written to `dir/<sa>.kubeconfig`.
pub fn service_account_kubeconfig(
    kubectl: &Kubectl,
    ns: &str,
    sa: &str,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    {
        let token = kubectl
            .ok(&["create", "token", sa, "-n", ns, "--duration=24h"], None)?
            .trim()
            .to_string();
        let raw = kubectl.ok(&["config", "view", "--raw", "--minify", "-o", "json"], None)?;
        let admin: Value = serde_json::from_str(&raw)?;
        let cluster = admin["clusters"][0]["cluster"].clone();
        let user = format!("system:serviceaccount:{ns}:{sa}");
        let kubeconfig = json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "test", "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user, "namespace": ns}}],
            "current-context": "test",
        });
        let file = dir.join(format!("{sa}.kubeconfig"));
        std::fs::write(&file, serde_json::to_vec_pretty(&kubeconfig)?)?;
        Ok(file)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self
            .kubectl
            .run(&["delete", "namespace", &self.name, "--wait=false"], None);
        for b in &self.bindings {
            let _ = self
                .kubectl
                .run(&["delete", "clusterrolebinding", b, "--ignore-not-found"], None);
        }
    }
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str().context("a UTF-8 path")
}

/// Polls `probe` every 200 ms until it holds or `timeout` passes.
fn wait(what: &str, timeout: Duration, probe: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !probe() {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}
