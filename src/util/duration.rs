//! Durations in Go/Kubernetes syntax (`90s`, `1h30m`), as DurableJobs, Temporal's CLI and
//! kubectl write them.

use std::time::Duration;

/// Formats a duration in Go syntax without zero parts: `1h30m`, `1m30s`, `500ms`.
pub(crate) fn format(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let total_ms = d.as_millis();
    let (h, m, s, ms) = (
        total_ms / 3_600_000,
        (total_ms / 60_000) % 60,
        (total_ms / 1000) % 60,
        total_ms % 1000,
    );
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        format!("{}ns", d.as_nanos())
    } else {
        out
    }
}

/// Serde for `Duration` as a Go duration string, for the run contract's JSON.
pub(crate) mod go_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        let parsed: kube::core::Duration = text
            .parse()
            .map_err(|e| D::Error::custom(format!("{text:?}: {e}")))?;
        Ok(parsed.into())
    }

    /// The same for an optional duration (with `default` and `skip_serializing_if`).
    pub(crate) mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(deserialize_with = "super::deserialize")] Duration);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(d)| d))
        }
    }
}

/// Parses a Go duration that must be longer than zero; the error says what to write.
pub(crate) fn parse_positive(s: &str) -> Result<Duration, String> {
    let d: kube::core::Duration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration ({e}); write e.g. 30s, 5m or 1h"))?;
    if d.is_negative() || Duration::from(d).is_zero() {
        return Err(format!("{s:?} must be longer than zero"));
    }
    Ok(d.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_in_go_syntax() {
        for (secs, text) in [
            (0, "0s"),
            (90, "1m30s"),
            (3600, "1h"),
            (5400, "1h30m"),
            (86_400 * 2, "48h"),
        ] {
            assert_eq!(format(Duration::from_secs(secs)), text);
        }
        assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
    }

    #[test]
    fn only_positive_durations_parse() {
        assert_eq!(parse_positive("90s"), Ok(Duration::from_secs(90)));
        assert!(
            parse_positive("5 minutes")
                .unwrap_err()
                .contains("not a duration")
        );
        assert!(parse_positive("0s").unwrap_err().contains("longer than zero"));
    }
}
