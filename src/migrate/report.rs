//! The migration report: per CronJob, each difference in meaning and each thing that could not
//! be converted, with file and document index; as text for people, JSON for CI.

use serde::Serialize;

use super::convert::Difference;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub files: Vec<FileReport>,
    /// Files not parsed as manifests (kustomization files).
    pub left_alone: Vec<String>,
    /// Files written.
    pub written: Vec<String>,
    /// Failures not tied to one document (unreadable files, refused overwrites).
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    pub file: String,
    pub documents: Vec<DocumentOutcome>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentOutcome {
    /// 1-based position of the document in its file.
    pub document: usize,
    /// `items[i]` inside a List document.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub item: String,
    /// converted, skipped or failed.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DocumentOutcome {
    pub fn converted(document: usize, item: &str, name: &str, differences: Vec<Difference>) -> Self {
        Self {
            document,
            item: item.into(),
            outcome: "converted",
            kind: "CronJob".into(),
            name: name.into(),
            differences,
            error: None,
        }
    }
    pub fn skipped(document: usize, kind: &str) -> Self {
        Self {
            document,
            item: String::new(),
            outcome: "skipped",
            kind: kind.into(),
            name: String::new(),
            differences: vec![],
            error: None,
        }
    }
    pub fn error(document: usize, item: &str, name: &str, error: String) -> Self {
        Self {
            document,
            item: item.into(),
            outcome: "failed",
            kind: String::new(),
            name: name.into(),
            differences: vec![],
            error: Some(error),
        }
    }
}

impl Report {
    pub fn failed(&self) -> bool {
        !self.errors.is_empty()
            || self.files.iter().flat_map(|f| &f.documents).any(|d| {
                d.outcome == "failed"
                    || d.differences
                        .iter()
                        .any(|x| x.severity == super::convert::Severity::Error)
            })
    }

    pub fn counts(&self) -> (usize, usize, usize) {
        let docs = self.files.iter().flat_map(|f| &f.documents);
        let mut c = (0, 0, 0);
        for d in docs {
            match d.outcome {
                "converted" => c.0 += 1,
                "skipped" => c.1 += 1,
                _ => c.2 += 1,
            }
        }
        c
    }

    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for f in &self.files {
            for d in &f.documents {
                let at = if d.item.is_empty() {
                    format!("{}#{}", f.file, d.document)
                } else {
                    format!("{}#{} {}", f.file, d.document, d.item)
                };
                match d.outcome {
                    "converted" => {
                        out.push_str(&format!("{at}: CronJob {} converted\n", d.name));
                        for x in &d.differences {
                            out.push_str(&format!("  {:<8} {}: {}\n", x.severity, x.field, x.message));
                        }
                    }
                    "skipped" => out.push_str(&format!(
                        "{at}: {} skipped (not a CronJob; --passthrough keeps it)\n",
                        d.kind
                    )),
                    _ => out.push_str(&format!(
                        "{at}: FAILED{}: {}\n",
                        if d.name.is_empty() {
                            String::new()
                        } else {
                            format!(" (CronJob {})", d.name)
                        },
                        d.error.clone().unwrap_or_default()
                    )),
                }
            }
        }
        for f in &self.left_alone {
            out.push_str(&format!("{f}: left alone (kustomization)\n"));
        }
        for e in &self.errors {
            out.push_str(&format!("error: {e}\n"));
        }
        let (converted, skipped, failed) = self.counts();
        out.push_str(&format!(
            "{converted} converted, {skipped} skipped, {failed} failed"
        ));
        if !self.written.is_empty() {
            out.push_str(&format!("; wrote {}", self.written.join(", ")));
        }
        out.push('\n');
        out
    }
}
