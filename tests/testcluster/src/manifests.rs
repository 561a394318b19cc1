//! Reading manifests from files and folders: multi-document YAML and `List` kinds.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One document of a manifest file.
#[derive(Debug, Clone)]
pub struct Doc {
    pub file: String,
    /// 1-based position in its file.
    pub index: usize,
    pub value: Value,
}

impl Doc {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{file}: not valid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}: document {index} has no kind")]
    NoKind { file: String, index: usize },
}

/// Loads every `.yaml`/`.yml`/`.json` file under the given paths (folders recursively, sorted).
pub fn load_manifests(paths: &[PathBuf]) -> Result<Vec<Doc>, ManifestError> {
    let mut files = vec![];
    for p in paths {
        collect(p, &mut files)?;
    }
    let mut docs = vec![];
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| ManifestError::Read {
            path: f.clone(),
            source,
        })?;
        let file = f.display().to_string();
        let values: Vec<Value> = serde_saphyr::from_multiple(&text).map_err(|e| ManifestError::Yaml {
            file: file.clone(),
            message: e.to_string(),
        })?;
        for (i, v) in values.into_iter().filter(|v| !v.is_null()).enumerate() {
            let index = i + 1;
            if v["kind"].as_str().is_some_and(|k| k.ends_with("List")) && v["items"].is_array() {
                for item in v["items"].as_array().cloned().unwrap_or_default() {
                    docs.push(Doc {
                        file: file.clone(),
                        index,
                        value: item,
                    });
                }
                continue;
            }
            if v["kind"].as_str().is_none() {
                return Err(ManifestError::NoKind { file, index });
            }
            docs.push(Doc {
                file: file.clone(),
                index,
                value: v,
            });
        }
    }
    Ok(docs)
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), ManifestError> {
    let meta = std::fs::metadata(p).map_err(|source| ManifestError::Read {
        path: p.to_path_buf(),
        source,
    })?;
    if meta.is_file() {
        out.push(p.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|source| ManifestError::Read {
            path: p.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            collect(&e, out)?;
        } else if e
            .extension()
            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        {
            out.push(e);
        }
    }
    Ok(())
}
