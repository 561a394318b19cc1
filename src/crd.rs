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

    const CRD_FILE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crds/durablejobs.durablejob.dev.yaml"
    );

    #[test]
    fn crds_folder_matches_the_code() {
        let on_disk = std::fs::read_to_string(CRD_FILE).expect("crds/durablejobs.durablejob.dev.yaml exists");
        assert!(
            on_disk == all_yaml(),
            "crds/ is stale: run `cargo run -- crd > crds/durablejobs.durablejob.dev.yaml` and commit it"
        );
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
