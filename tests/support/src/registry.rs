//! Scenario files and the registry that runs them: an end-to-end scenario file that nobody lists
//! would never run, and nothing would say so.

use std::path::Path;

/// The `.rs` files in `dir` (by module name, sorted) that define scenarios, that is contain
/// `marker`, but are not in `registered`. `main.rs`, the registry itself, is never reported.
pub fn unregistered_scenario_files(dir: &Path, marker: &str, registered: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let module = path.file_stem()?.to_str()?.to_string();
            let defines = path.extension()? == "rs"
                && module != "main"
                && std::fs::read_to_string(&path).ok()?.contains(marker);
            (defines && !registered.contains(&module.as_str())).then_some(module)
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_file_missing_from_the_registry_is_named() {
        let dir = std::env::temp_dir().join(format!("durablejob-registry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in [
            ("main.rs", "scenarios!(listed)"),
            ("listed.rs", "scenarios!(a, b);"),
            ("forgotten.rs", "scenarios!(c);"),
            ("helpers.rs", "pub fn help() {}"),
            ("notes.txt", "scenarios!(d);"),
        ] {
            std::fs::write(dir.join(file), text).unwrap();
        }
        let missing = unregistered_scenario_files(&dir, "scenarios!(", &["listed"]);
        let all_listed = unregistered_scenario_files(&dir, "scenarios!(", &["listed", "forgotten"]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(missing, vec!["forgotten"]);
        assert!(all_listed.is_empty());
    }
}
