//! Reading the YAML users write, the way Kubernetes reads it. `kubectl apply` turns a manifest
//! into JSON with sigs.k8s.io/yaml over go-yaml v2, which resolves plain scalars by YAML 1.1
//! rules: `0400` and `0o400` are the octal integer 256, `0x1F` is 31, underscores in numbers are
//! dropped (`1_000`), and `yes`/`no`/`on`/`off`/`y`/`n` (any of their case spellings) are
//! booleans. Quoted scalars stay strings. Every place the product reads user YAML (`migrate`,
//! the test fixtures) reads it here, so no second interpretation creeps in; what the product
//! writes is JSON-compatible YAML 1.2 either way.

use serde::de::DeserializeOwned;

/// serde-saphyr configured for the YAML 1.1 scalars go-yaml v2 resolves.
fn options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.legacy_octal_numbers = true;
    o.strict_booleans = false;
    o.leading_zero_numbers_as_strings = false;
    o.underscored_numbers_as_strings = false;
    o
}

/// Every document of a (multi-document) YAML text.
pub fn documents<T: DeserializeOwned>(text: &str) -> Result<Vec<T>, serde_saphyr::Error> {
    serde_saphyr::from_multiple_with_options(text, options())
}

/// The one document of a YAML text.
pub fn document<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, options())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn read(scalar: &str) -> Value {
        let v: Value = document(&format!("v: {scalar}\n")).unwrap();
        v["v"].clone()
    }

    #[test]
    fn plain_scalars_resolve_as_kubectl_apply_reads_them() {
        for (written, kubernetes) in [
            ("0400", json!(256)),
            ("0555", json!(365)),
            ("0o400", json!(256)),
            ("0x1F", json!(31)),
            ("1_000", json!(1000)),
            ("-0400", json!(-256)),
            ("0", json!(0)),
            ("400", json!(400)),
            ("1.5", json!(1.5)),
            ("yes", json!(true)),
            ("Yes", json!(true)),
            ("ON", json!(true)),
            ("y", json!(true)),
            ("no", json!(false)),
            ("off", json!(false)),
            ("N", json!(false)),
            ("true", json!(true)),
            ("~", json!(null)),
            ("null", json!(null)),
            ("\"0400\"", json!("0400")),
            ("'yes'", json!("yes")),
            ("08", json!(8.0)),
            ("nightly", json!("nightly")),
        ] {
            assert_eq!(read(written), kubernetes, "{written}");
        }
    }
}
