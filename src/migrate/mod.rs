//! `durablejob migrate`: CronJob manifests → DurableJob manifests, and a report of every
//! difference in meaning. Reads files, folders (recursively, as a GitOps repository is laid
//! out) or stdin; writes to stdout, a file, a mirrored folder, or in place.

pub mod convert;
pub mod docs;
pub mod report;
pub mod schedule;

use std::{
    io::{Read, Write},
    path::PathBuf,
};

use serde_json::Value;

use self::convert::Options;
use self::report::{DocumentOutcome, FileReport, Report};

/// Where converted manifests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    /// One file with every converted document.
    File(PathBuf),
    /// A folder mirroring the input tree.
    Dir(PathBuf),
    /// Rewrite the input files.
    InPlace,
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// Files or folders; empty (or `-`) reads stdin.
    pub paths: Vec<PathBuf>,
    pub output: Output,
    /// Overwrite existing output files.
    pub force: bool,
    /// Write documents that are not CronJobs too (byte for byte) instead of skipping them.
    pub passthrough: bool,
    pub options: Options,
}

fn is_cronjob(v: &Value) -> bool {
    v["kind"] == "CronJob" && matches!(v["apiVersion"].as_str(), Some("batch/v1" | "batch/v1beta1"))
}

fn to_yaml(v: &Value) -> String {
    let mut s = serde_saphyr::to_string(v).expect("JSON values serialize to YAML");
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// What one document becomes in the output.
enum Piece {
    /// Converted: the DurableJob's YAML.
    Converted(String),
    /// Kept as it was (not a CronJob, or could not be converted).
    Original,
}

/// Converts one file's text; returns its pieces (one per document) and the file's report.
fn convert_file(name: &str, text: &str, opts: &Options) -> (Vec<docs::RawDoc>, Vec<Piece>, FileReport) {
    let raw = docs::split(text);
    let mut pieces = Vec::with_capacity(raw.len());
    let mut report = FileReport {
        file: name.to_string(),
        documents: vec![],
    };
    let mut index = 0;
    for doc in &raw {
        if docs::is_empty(&doc.body) {
            pieces.push(Piece::Original);
            continue;
        }
        index += 1;
        pieces.push(convert_document(index, &doc.body, opts, &mut report.documents));
    }
    (raw, pieces, report)
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap_or_default().to_string()
}

/// One document (number `index` in its file): a CronJob converted, a List's CronJobs
/// converted, anything else kept; what happened goes to `outcomes`.
fn convert_document(index: usize, body: &str, opts: &Options, outcomes: &mut Vec<DocumentOutcome>) -> Piece {
    let value = match crate::yaml::documents::<Value>(body) {
        Ok(mut v) if v.len() == 1 => v.remove(0),
        Ok(v) => {
            let why = format!("holds {} YAML documents where one was expected", v.len());
            outcomes.push(DocumentOutcome::error(index, "", "", why));
            return Piece::Original;
        }
        Err(e) => {
            outcomes.push(DocumentOutcome::error(
                index,
                "",
                "",
                format!("not valid YAML: {e}"),
            ));
            return Piece::Original;
        }
    };
    let kind = value["kind"].as_str().unwrap_or_default().to_string();
    if kind.ends_with("List") && value["items"].is_array() {
        return convert_list(index, &value, &kind, opts, outcomes);
    }
    if !is_cronjob(&value) {
        let kind = if kind.is_empty() { "<no kind>" } else { &kind };
        outcomes.push(DocumentOutcome::skipped(index, kind));
        return Piece::Original;
    }
    match convert::convert(&value, opts) {
        Ok((dj, diffs)) => {
            outcomes.push(DocumentOutcome::converted(index, "", &name_of(&value), diffs));
            Piece::Converted(to_yaml(&dj))
        }
        Err(e) => {
            outcomes.push(DocumentOutcome::error(index, "", &name_of(&value), e));
            Piece::Original
        }
    }
}

/// A List: its CronJob items converted in place, the other items kept; kept whole when none
/// converted.
fn convert_list(
    index: usize,
    list: &Value,
    kind: &str,
    opts: &Options,
    outcomes: &mut Vec<DocumentOutcome>,
) -> Piece {
    let mut items = vec![];
    let mut converted_any = false;
    for (i, item) in list["items"].as_array().into_iter().flatten().enumerate() {
        if !is_cronjob(item) {
            items.push(item.clone());
            continue;
        }
        let at = format!("items[{i}]");
        match convert::convert(item, opts) {
            Ok((dj, diffs)) => {
                converted_any = true;
                outcomes.push(DocumentOutcome::converted(index, &at, &name_of(item), diffs));
                items.push(dj);
            }
            Err(e) => {
                outcomes.push(DocumentOutcome::error(index, &at, &name_of(item), e));
                items.push(item.clone());
            }
        }
    }
    if !converted_any {
        outcomes.push(DocumentOutcome::skipped(index, kind));
        return Piece::Original;
    }
    let mut converted = list.clone();
    converted["items"] = Value::Array(items);
    Piece::Converted(to_yaml(&converted))
}

/// The file written back: converted documents replaced, the others byte for byte.
fn rewrite(raw: &[docs::RawDoc], pieces: &[Piece], keep_others: bool) -> String {
    let mut out = String::new();
    for (doc, piece) in raw.iter().zip(pieces) {
        match piece {
            Piece::Converted(yaml) => {
                let sep = if doc.separator.is_empty() && out.is_empty() {
                    String::new()
                } else if doc.separator.is_empty() {
                    "---\n".into()
                } else {
                    doc.separator.clone()
                };
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&sep);
                out.push_str(yaml);
            }
            Piece::Original if keep_others => {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                let sep = if doc.separator.is_empty() && !out.is_empty() {
                    "---\n".to_string()
                } else {
                    doc.separator.clone()
                };
                out.push_str(&sep);
                out.push_str(&doc.body);
            }
            Piece::Original => {}
        }
    }
    out
}

/// Runs the migration; returns the exit code (0: everything converted; 1: something failed).
pub fn run(req: &Request, stdin: &mut dyn Read, stdout: &mut dyn Write, report_out: &mut Report) -> i32 {
    if req.output == Output::InPlace && (req.paths.is_empty() || req.paths == [PathBuf::from("-")]) {
        report_out
            .errors
            .push("--in-place needs files or folders, not stdin".into());
        return 1;
    }
    let inputs = crate::manifests::read(&req.paths, stdin);
    let mut writes: Vec<(PathBuf, String)> = vec![];
    let mut combined = String::new();
    for input in &inputs {
        let text = match &input.text {
            Ok(t) => t,
            Err(e) => {
                report_out.errors.push(format!("{}: {e}", input.display));
                continue;
            }
        };
        if input
            .path
            .as_deref()
            .is_some_and(crate::manifests::is_kustomization)
        {
            report_out.left_alone.push(input.display.clone());
            if req.passthrough
                && let Output::Dir(d) = &req.output
            {
                writes.push((d.join(&input.relative), text.clone()));
            }
            continue;
        }
        let (raw, pieces, file_report) = convert_file(&input.display, text, &req.options);
        let converted = pieces.iter().any(|p| matches!(p, Piece::Converted(_)));
        report_out.files.push(file_report);
        match &req.output {
            Output::Stdout | Output::File(_) => {
                let part = rewrite(&raw, &pieces, req.passthrough);
                if !part.trim().is_empty() {
                    if !combined.is_empty() {
                        if !combined.ends_with('\n') {
                            combined.push('\n');
                        }
                        if !part.starts_with("---") {
                            combined.push_str("---\n");
                        }
                    }
                    combined.push_str(&part);
                }
            }
            Output::Dir(d) => {
                if converted || req.passthrough {
                    writes.push((d.join(&input.relative), rewrite(&raw, &pieces, true)));
                }
            }
            Output::InPlace => {
                if converted && let Some(p) = &input.path {
                    writes.push((p.clone(), rewrite(&raw, &pieces, true)));
                }
            }
        }
    }
    if let Output::File(f) = &req.output {
        writes.push((f.clone(), combined.clone()));
    }
    // nothing is overwritten unless asked: check every target before writing any
    if req.output != Output::InPlace && !req.force {
        let existing: Vec<String> = writes
            .iter()
            .filter(|(p, _)| p.exists())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            report_out.errors.push(format!(
                "not overwriting existing files (use --force): {}",
                existing.join(", ")
            ));
            return 1;
        }
    }
    for (path, text) in &writes {
        if let Some(parent) = path.parent()
            && let Err(e) = std::fs::create_dir_all(parent)
        {
            report_out
                .errors
                .push(format!("{}: cannot create folder: {e}", parent.display()));
            continue;
        }
        if let Err(e) = std::fs::write(path, text) {
            report_out
                .errors
                .push(format!("{}: cannot write: {e}", path.display()));
        } else {
            report_out.written.push(path.display().to_string());
        }
    }
    if req.output == Output::Stdout
        && let Err(e) = stdout.write_all(combined.as_bytes())
    {
        report_out.errors.push(format!("cannot write to stdout: {e}"));
    }
    if report_out.failed() { 1 } else { 0 }
}
