//! Metadata rules every object must pass: names, labels, annotations, finalizers, owner
//! references.

use serde_json::Value;

use crate::builtin::BuiltinKind;
use crate::errors::Cause;

fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// Qualified name: `[prefix/]name`, name ≤ 63 of `[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]`.
pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        return false;
    }
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()))
}

/// Name rule of a kind.
pub fn check_name(kind: Option<BuiltinKind>, name: &str) -> Option<String> {
    let ok = match kind {
        Some(BuiltinKind::Namespace) => is_dns1123_label(name),
        Some(BuiltinKind::Service) => is_dns1035_label(name),
        Some(
            BuiltinKind::Role
            | BuiltinKind::ClusterRole
            | BuiltinKind::RoleBinding
            | BuiltinKind::ClusterRoleBinding,
        ) => !name.is_empty() && !name.contains('/') && !name.contains('%') && name != "." && name != "..",
        _ => is_dns1123_subdomain(name),
    };
    if ok {
        None
    } else {
        Some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
                .into(),
        )
    }
}

pub fn check_metadata(kind: Option<BuiltinKind>, meta: &Value, causes: &mut Vec<Cause>) {
    if let Some(name) = meta["name"].as_str()
        && let Some(why) = check_name(kind, name)
    {
        causes.push(Cause::invalid("metadata.name", &meta["name"], why));
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                causes.push(Cause::invalid("metadata.labels", &Value::from(k.clone()), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            match v.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => causes.push(Cause::invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")),
            }
        }
    } else if !meta["labels"].is_null() {
        causes.push(Cause::invalid(
            "metadata.labels",
            &meta["labels"],
            "must be a map of strings",
        ));
    }
    if let Some(ann) = meta["annotations"].as_object() {
        let mut total = 0;
        for (k, v) in ann {
            if !is_qualified_name(k) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &Value::from(k.clone()),
                    "name part must consist of alphanumeric characters, '-', '_' or '.'",
                ));
            }
            match v.as_str() {
                Some(s) => total += k.len() + s.len(),
                None => causes.push(Cause::invalid(
                    format!("metadata.annotations.{k}"),
                    v,
                    "must be a string",
                )),
            }
        }
        if total > 256 * 1024 {
            causes.push(Cause::new(
                "FieldValueTooLong",
                "metadata.annotations",
                "Too long: must have at most 262144 bytes",
            ));
        }
    }
    for (i, f) in meta["finalizers"].as_array().into_iter().flatten().enumerate() {
        if !f.as_str().is_some_and(|s| {
            is_qualified_name(s)
                && (s.contains('/')
                    || s.starts_with("kubernetes")
                    || matches!(s, "orphan" | "foregroundDeletion"))
        }) {
            causes.push(Cause::invalid(
                format!("metadata.finalizers[{i}]"),
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    for (i, o) in meta["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for f in ["apiVersion", "kind", "name", "uid"] {
            if o[f].as_str().is_none_or(str::is_empty) {
                causes.push(Cause::required(format!("metadata.ownerReferences[{i}].{f}")));
            }
        }
    }
    let controllers = meta["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["controller"] == Value::Bool(true))
        .count();
    if controllers > 1 {
        causes.push(Cause::invalid(
            "metadata.ownerReferences",
            &meta["ownerReferences"],
            "Only one reference can have Controller set to true",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kind_rules() {
        assert!(check_name(None, "nightly-backup.v2").is_none());
        assert!(check_name(None, "Nightly").is_some());
        assert!(check_name(Some(BuiltinKind::Namespace), "a.b").is_some());
        assert!(check_name(Some(BuiltinKind::Service), "1svc").is_some());
        assert!(is_qualified_name("durablejob.dev/name"));
        assert!(!is_qualified_name("-bad"));
    }
}
