//! The CRDs as YAML: what `durablejob crd` prints and `crds/` holds.

use kube::CustomResourceExt;

use crate::api::DurableJob;

/// Every CRD of the product, one YAML document each, in a stable order.
pub fn all_yaml() -> String {
    let crd = DurableJob::crd();
    let mut out = String::from("---\n");
    out.push_str(&serde_saphyr::to_string(&crd).expect("a CRD always serializes"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the generated CRD is committed: for kubectl, for the CRD chart, for kustomize.
    const COPIES: [&str; 3] = ["crds", "charts/durablejob-crds/files", "config/crd"];

    #[test]
    fn every_committed_copy_of_the_crd_matches_the_code() {
        for dir in COPIES {
            let path = format!(
                "{}/{dir}/durablejobs.durablejob.dev.yaml",
                env!("CARGO_MANIFEST_DIR")
            );
            let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(
                on_disk == all_yaml(),
                "{dir}/durablejobs.durablejob.dev.yaml is stale: run `make crds` and commit the result"
            );
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
