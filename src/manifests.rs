//! Manifest files as users give them to `migrate` and `preview`: files, folders (read
//! recursively, as a GitOps repository lays them out: `.yaml`, `.yml` and kustomizations,
//! hidden entries skipped) or stdin (none, or `-`). An unreadable one is kept with its error,
//! so the others are still read.

use std::{
    io::Read,
    path::{Path, PathBuf},
};

/// One input file (or stdin) and where its mirrored copy would go.
pub(crate) struct ManifestFile {
    pub(crate) display: String,
    pub(crate) path: Option<PathBuf>,
    /// Path relative to the input root, for `Output::Dir`.
    pub(crate) relative: PathBuf,
    pub(crate) text: Result<String, String>,
}

pub(crate) fn is_kustomization(p: &Path) -> bool {
    matches!(
        p.file_name().and_then(|n| n.to_str()),
        Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
    )
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        let hidden = e
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if e.is_dir() {
            collect(root, &e, out)?;
        } else if e.extension().is_some_and(|x| x == "yaml" || x == "yml") || is_kustomization(&e) {
            out.push((e.clone(), e.strip_prefix(root).unwrap_or(&e).to_path_buf()));
        }
    }
    Ok(())
}

/// Every file the paths name, in order; `-` (or no path at all) is stdin.
pub(crate) fn read(paths: &[PathBuf], stdin: &mut dyn Read) -> Vec<ManifestFile> {
    let from_stdin = |stdin: &mut dyn Read| {
        let mut text = String::new();
        let text = stdin
            .read_to_string(&mut text)
            .map(|_| text)
            .map_err(|e| format!("cannot read stdin: {e}"));
        ManifestFile {
            display: "<stdin>".into(),
            path: None,
            relative: PathBuf::from("stdin.yaml"),
            text,
        }
    };
    if paths.is_empty() {
        return vec![from_stdin(stdin)];
    }
    let mut inputs = vec![];
    for p in paths {
        if p.as_os_str() == "-" {
            inputs.push(from_stdin(stdin));
            continue;
        }
        let mut files = vec![];
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                if let Err(e) = collect(p, p, &mut files) {
                    inputs.push(ManifestFile {
                        display: p.display().to_string(),
                        path: None,
                        relative: p.clone(),
                        text: Err(format!("cannot read folder: {e}")),
                    });
                }
            }
            Ok(_) => files.push((p.clone(), PathBuf::from(p.file_name().unwrap_or(p.as_os_str())))),
            Err(e) => inputs.push(ManifestFile {
                display: p.display().to_string(),
                path: None,
                relative: p.clone(),
                text: Err(format!("cannot read: {e}")),
            }),
        }
        for (file, relative) in files {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read: {e}"));
            inputs.push(ManifestFile {
                display: file.display().to_string(),
                path: Some(file),
                relative,
                text,
            });
        }
    }
    inputs
}
