//! A user worker's versions, in Temporal's Worker Deployment Versioning: the Temporal
//! deployment name of a DurableJob's worker, the build id of one worker pod template, and the
//! Kubernetes Deployment that runs that version. Pure. The rules, as docs/workers.md states them:
//!
//! - deployment name: `<namespace>/<name>` of the DurableJob, with `.` written `_` (Temporal
//!   refuses `.` in deployment names; Kubernetes names never hold `_`, so no two DurableJobs
//!   share one);
//! - build id: `<image tag>-<10 hex of the pod template's hash>` (a digest image uses
//!   `sha256-<12 hex>` as its tag, an untagged one `latest`), at most 63 characters of
//!   `A-Z a-z 0-9 . _ -` so it can label the Deployment; `spec.worker.buildId` replaces it;
//! - the version's Deployment: `<name>-<build id>` when that is a DNS label of at most 47
//!   characters (so its pods' names stay within 63), else `<name, cut>-<8 hex of the build id>`.

use std::time::Duration;

use crate::util::digest::hex_sha256;

/// The longest build id: it is a label value.
pub const MAX_BUILD_ID: usize = 63;
/// The longest version Deployment name, so that pod names (Deployment, ReplicaSet hash and
/// pod suffix) stay within 63 characters.
pub const MAX_DEPLOYMENT_NAME: usize = 47;

/// The Temporal Worker Deployment of a DurableJob's worker.
pub fn deployment_name(namespace: &str, name: &str) -> String {
    format!("{namespace}/{}", name.replace('.', "_"))
}

/// The tag part of an image reference: its tag, a digest's first 12 hex as `sha256-…`, or
/// `latest`.
fn image_tag(image: &str) -> String {
    if let Some((_, digest)) = image.split_once('@') {
        let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        return format!("{algorithm}-{}", hex.chars().take(12).collect::<String>());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.to_string(),
        _ => "latest".into(),
    }
}

fn label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The build id of a worker pod template: the image's tag and a short hash of the whole
/// template (`template_hash`, hex), so a change of env or resources is a new version too.
pub fn build_id(image: &str, template_hash: &str) -> String {
    let hash: String = template_hash.chars().take(10).collect();
    let tag: String = image_tag(image)
        .chars()
        .map(|c| if label_char(c) { c } else { '-' })
        .collect();
    let room = MAX_BUILD_ID - hash.len() - 1;
    let mut tag: String = tag.chars().take(room).collect();
    // a label value starts and ends with a letter or digit
    while tag.ends_with(['.', '_', '-']) {
        tag.pop();
    }
    let tag = tag.trim_start_matches(['.', '_', '-']);
    if tag.is_empty() {
        hash
    } else {
        format!("{tag}-{hash}")
    }
}

/// Checks a build id a team stamps itself (`spec.worker.buildId`): a label value of at most
/// 63 characters that does not start with `__` (reserved by Temporal).
pub fn check_build_id(id: &str) -> Result<(), String> {
    let starts_ends = id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.ends_with(|c: char| c.is_ascii_alphanumeric());
    if id.is_empty() || id.len() > MAX_BUILD_ID || !starts_ends || !id.chars().all(label_char) {
        return Err(format!(
            "{id:?} is not a usable build id: write 1-{MAX_BUILD_ID} letters, digits, '.', '_' or '-', starting and ending with a letter or digit (it labels the version's Deployment)"
        ));
    }
    Ok(())
}

/// The Kubernetes Deployment that runs version `build_id` of DurableJob `name`'s worker.
pub fn version_deployment_name(name: &str, build_id: &str) -> String {
    let readable = format!("{name}-{build_id}");
    let dns_label = readable
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if dns_label && readable.len() <= MAX_DEPLOYMENT_NAME {
        return readable;
    }
    let hash = &hex_sha256(build_id.as_bytes())[..8];
    let mut base: String = name
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .take(MAX_DEPLOYMENT_NAME - hash.len() - 1)
        .collect();
    while base.ends_with('-') {
        base.pop();
    }
    format!("{base}-{hash}")
}

/// How long after a version drained it is scaled down, then deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sunset {
    pub scaledown_delay: Duration,
    pub delete_delay: Duration,
}

impl Default for Sunset {
    fn default() -> Self {
        Self {
            scaledown_delay: Duration::from_secs(3600),
            delete_delay: Duration::from_secs(24 * 3600),
        }
    }
}

/// One step of a Progressive rollout: the percent of new runs, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RampStep {
    pub percentage: u8,
    pub pause: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "0123456789abcdef0123";

    #[test]
    fn the_deployment_name_is_namespace_and_name_without_dots() {
        assert_eq!(deployment_name("apps", "report"), "apps/report");
        assert_eq!(deployment_name("apps", "eu.report"), "apps/eu_report");
    }

    #[test]
    fn the_build_id_is_the_image_tag_and_the_template_hash() {
        let cases = [
            ("example.com/report:1.4.2", "1.4.2-0123456789"),
            ("registry:5000/team/report:v2", "v2-0123456789"),
            ("registry:5000/team/report", "latest-0123456789"),
            (
                "report@sha256:aabbccddeeff00112233",
                "sha256-aabbccddeeff-0123456789",
            ),
            ("report:-weird+tag", "weird-tag-0123456789"),
        ];
        for (image, want) in cases {
            assert_eq!(build_id(image, HASH), want, "{image}");
            assert_eq!(check_build_id(want), Ok(()), "{want}");
        }
    }

    #[test]
    fn a_long_tag_is_cut_so_the_build_id_labels_a_deployment() {
        let image = format!("report:{}", "x".repeat(100));
        let id = build_id(&image, HASH);
        assert_eq!(id.len(), MAX_BUILD_ID);
        assert!(id.ends_with("-0123456789"), "{id}");
        assert_eq!(check_build_id(&id), Ok(()));
    }

    #[test]
    fn a_stamped_build_id_must_be_a_label_value() {
        for good in ["v1", "2026.12.03-rc_1", "A"] {
            assert_eq!(check_build_id(good), Ok(()), "{good}");
        }
        for bad in ["", "__internal", "-v1", "v1.", "v 1", "v/1", &"x".repeat(64)] {
            let e = check_build_id(bad).unwrap_err();
            assert!(e.contains("not a usable build id"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_version_deployment_is_readable_when_it_can_be_and_short_always() {
        assert_eq!(
            version_deployment_name("report", "v2-0123456789"),
            "report-v2-0123456789"
        );
        for (name, id) in [
            ("report", "1.4.2-0123456789"),
            ("report", "V2"),
            (&"a".repeat(63)[..], "v2-0123456789"),
            ("eu.report", "v2"),
        ] {
            let d = version_deployment_name(name, id);
            assert!(d.len() <= MAX_DEPLOYMENT_NAME, "{d}");
            assert!(
                d.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{d}"
            );
            assert_ne!(
                d,
                version_deployment_name(name, &format!("{id}x")),
                "another build id, another Deployment"
            );
        }
    }
}
