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
