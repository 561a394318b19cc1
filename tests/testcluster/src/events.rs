//! core/v1 Events and events.k8s.io/v1 Events are two views of one stored object, as in a
//! real cluster: the operator records through events.k8s.io/v1 and `kubectl describe` reads
//! core/v1. Stored in the core/v1 shape.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 name, core/v1 name) of the fields that differ.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, from_events: bool) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        let key = RENAMED
            .iter()
            .find_map(|(e, c)| {
                if from_events && k == e {
                    Some(*c)
                } else if !from_events && k == c {
                    Some(*e)
                } else {
                    None
                }
            })
            .unwrap_or(k.as_str());
        out.insert(key.to_string(), v.clone());
    }
    out
}

/// events.k8s.io/v1 → core/v1 (the stored shape).
pub fn to_core(ev: &Value) -> Value {
    let mut m = rename(ev, true);
    m.insert("apiVersion".into(), "v1".into());
    m.insert("kind".into(), "Event".into());
    Value::Object(m)
}

/// core/v1 → events.k8s.io/v1.
pub fn to_events_v1(ev: &Value) -> Value {
    let mut m = rename(ev, false);
    m.insert("apiVersion".into(), "events.k8s.io/v1".into());
    m.insert("kind".into(), "Event".into());
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_two_event_apis_are_views_of_one_object() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "DurableJob", "name": "x"}, "note": "hello", "reason": "R", "type": "Normal",
            "reportingController": "ctl", "reportingInstance": "i", "action": "A", "eventTime": "2026-01-01T00:00:00.000000Z"});
        let core = to_core(&v1);
        assert_eq!(core["involvedObject"]["name"], "x");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["reportingComponent"], "ctl");
        assert_eq!(to_events_v1(&core), v1);
    }
}
