//! The CRDs as YAML: what `durablejob crd` prints and `crds/` holds.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, ValidationRule,
};
use kube::CustomResourceExt;

use crate::api::{DurableJob, DurableJobCalendar, MAX_NAME_LENGTH};

/// The DurableJob CRD: the derived one, plus the rule on the object's name that only the
/// schema's root can state.
fn durablejob() -> CustomResourceDefinition {
    let mut crd = DurableJob::crd();
    let rule = ValidationRule {
        rule: format!("self.metadata.name.size() <= {MAX_NAME_LENGTH}"),
        message: Some(format!(
            "metadata.name may have at most {MAX_NAME_LENGTH} characters: a DurableJob's Jobs carry its name in the label durablejob.dev/name, and a label value is at most 63 characters"
        )),
        reason: Some("FieldValueInvalid".into()),
        ..Default::default()
    };
    for version in &mut crd.spec.versions {
        if let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            root.x_kubernetes_validations
                .get_or_insert_with(Vec::new)
                .push(rule.clone());
        }
    }
    crd
}

/// Each CRD as the file it is committed as (`<plural>.<group>.yaml`) and its YAML.
pub fn files() -> Vec<(String, String)> {
    [durablejob(), DurableJobCalendar::crd()]
        .into_iter()
        .map(|crd| {
            let file = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
            let yaml = format!(
                "---\n{}",
                serde_saphyr::to_string(&crd).expect("a CRD always serializes")
            );
            (file, yaml)
        })
        .collect()
}

/// Every CRD of the product, one YAML document each, in a stable order.
pub fn all_yaml() -> String {
    files().into_iter().map(|(_, yaml)| yaml).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the generated CRD is committed: for kubectl, for the CRD chart, for kustomize.
    const COPIES: [&str; 3] = ["crds", "charts/durablejob-crds/files", "config/crd"];

    #[test]
    fn every_committed_copy_of_the_crd_matches_the_code() {
        for dir in COPIES {
            for (file, yaml) in files() {
                let path = format!("{}/{dir}/{file}", env!("CARGO_MANIFEST_DIR"));
                let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                assert!(
                    on_disk == yaml,
                    "{dir}/{file} is stale: run `make crds` and commit the result"
                );
            }
        }
    }

    #[test]
    fn each_crd_stays_small_enough_for_client_side_apply() {
        // kubectl's last-applied annotation and Argo CD both break above 256 KiB.
        for doc in all_yaml().split("\n---\n") {
            assert!(doc.len() < 256 * 1024, "a CRD is {} bytes", doc.len());
        }
        assert!(
            all_yaml().len() < 64 * 1024,
            "embedded templates must stay preserve-unknown-fields"
        );
    }
}
