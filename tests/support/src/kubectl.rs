//! The real `kubectl` (built with the cluster into `.tools/bin/`, or from PATH for a user's
//! own cluster), run as a user would.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

/// kubectl with a kubeconfig.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Kubectl {
    /// The binary `make cluster-tools` built, else `kubectl` from PATH.
    pub fn find(kubeconfig: &Path) -> Self {
        let built = crate::repo_root().join(".tools/bin/kubectl");
        let bin = if built.is_file() {
            built
        } else {
            PathBuf::from("kubectl")
        };
        Self {
            bin,
            kubeconfig: kubeconfig.to_path_buf(),
        }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("KUBECONFIG", &self.kubeconfig);
        cmd
    }

    /// Runs kubectl with `args` (and `stdin`), giving whether it succeeded and what it printed
    /// on stdout and stderr together.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String) {
        let mut cmd = self.command();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return (false, format!("cannot run {}: {e}", self.bin.display())),
        };
        if let Some(text) = stdin {
            let _ = child.stdin.take().expect("stdin").write_all(text.as_bytes());
        }
        match child.wait_with_output() {
            Ok(out) => (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ),
            Err(e) => (false, e.to_string()),
        }
    }

    /// Like [`Kubectl::run`], failing with kubectl's output when it fails.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
        let (ok, out) = self.run(args, stdin);
        if !ok {
            bail!("kubectl {} failed:\n{out}", args.join(" "));
        }
        Ok(out)
    }

    /// `kubectl apply -R -f` for each path, into `namespace` where the manifests name none;
    /// the lines kubectl printed.
    pub fn apply_paths(&self, paths: &[PathBuf], namespace: Option<&str>) -> anyhow::Result<Vec<String>> {
        let mut lines = vec![];
        for p in paths {
            let path = p.to_str().context("a UTF-8 path")?;
            let mut args = vec!["apply", "-R", "-f", path];
            if let Some(ns) = namespace {
                args.extend(["-n", ns]);
            }
            let out = self.ok(&args, None)?;
            lines.extend(out.lines().map(str::to_string));
        }
        Ok(lines)
    }
}
