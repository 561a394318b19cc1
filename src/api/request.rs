//! Run-control requests: the annotations `kubectl durablejob trigger|backfill|cancel|resume|retry`
//! write on a DurableJob, and their format. The value is a JSON object with the request's id
//! and its parameters, e.g. `{"id":"20261201-130501-4f2a","overlap":"AllowAll"}`; a bare
//! token is an id without parameters, so `kubectl annotate dj x durablejob.dev/trigger=$(date +%s)`
//! works too. The operator acts on each id once and records it in `status.requests`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::OverlapPolicy;

/// What a request asks for.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestVerb {
    Trigger,
    Backfill,
    Cancel,
    Resume,
    /// A versioned worker's new version made current now (Manual, or skipping ramp steps).
    Promote,
    /// New runs routed back to the version before; the new one is held until the spec changes.
    Rollback,
    /// A rollout held where it stands (no routing change) until resumed.
    PauseRollout,
    ResumeRollout,
    /// A new run of a multi-step run that failed (or partially failed): only what failed or
    /// never ran runs again.
    Retry,
}

impl RequestVerb {
    pub const ALL: [RequestVerb; 9] = [
        Self::Trigger,
        Self::Backfill,
        Self::Cancel,
        Self::Resume,
        Self::Promote,
        Self::Rollback,
        Self::PauseRollout,
        Self::ResumeRollout,
        Self::Retry,
    ];

    /// Whether the worker's rollout step (not the schedule's) acts on this verb.
    pub fn is_rollout(self) -> bool {
        matches!(
            self,
            Self::Promote | Self::Rollback | Self::PauseRollout | Self::ResumeRollout
        )
    }

    /// The annotation that carries this request.
    pub fn annotation(self) -> &'static str {
        match self {
            Self::Trigger => "durablejob.dev/trigger",
            Self::Backfill => "durablejob.dev/backfill",
            Self::Cancel => "durablejob.dev/cancel",
            Self::Resume => super::RESUME_ANNOTATION,
            Self::Promote => "durablejob.dev/promote",
            Self::Rollback => "durablejob.dev/rollback",
            Self::PauseRollout => "durablejob.dev/pause-rollout",
            Self::ResumeRollout => "durablejob.dev/resume-rollout",
            Self::Retry => "durablejob.dev/retry",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Backfill => "backfill",
            Self::Cancel => "cancel",
            Self::Resume => "resume",
            Self::Promote => "promote",
            Self::Rollback => "rollback",
            Self::PauseRollout => "pause-rollout",
            Self::ResumeRollout => "resume-rollout",
            Self::Retry => "retry",
        }
    }
}

/// A request's parameters, by verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestParams {
    /// One run now; `overlap` overrides the schedule's policy for it.
    Trigger { overlap: Option<OverlapPolicy> },
    /// Every slot with `from <= slot <= to`; refused when there are more than `max_slots`
    /// (default [`BACKFILL_MAX_SLOTS`]).
    Backfill {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        overlap: Option<OverlapPolicy>,
        max_slots: Option<u32>,
    },
    /// The running run(s): one workflow id, or all; gracefully or terminated.
    Cancel { run: Option<String>, terminate: bool },
    /// Unpause after Temporal paused the schedule on a failed run.
    Resume,
    /// The rollout verbs take no parameters.
    Rollout,
    /// A new run that reuses what run `run` (a workflow id) finished.
    Retry { run: String },
}

/// A request read from an annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub verb: RequestVerb,
    pub id: String,
    pub params: RequestParams,
}

/// The JSON form of an annotation value (every verb's fields; unknown fields are refused).
#[derive(Serialize, Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Wire {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overlap: Option<OverlapPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    terminate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_slots: Option<u32>,
}

/// A backfill over more slots than this is refused before it reaches Temporal, unless the
/// request raises it (`maxSlots`, `kubectl durablejob backfill --max-slots`): a mistyped year
/// would otherwise start thousands of runs.
pub const BACKFILL_MAX_SLOTS: u32 = 1000;

/// An annotation value that is not a request; the id stands for it in `status.requests`, so it
/// is reported once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub verb: RequestVerb,
    pub id: String,
    pub message: String,
}

const MAX_ID: usize = 63;

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Parses an RFC 3339 time, naming the field and what to write on error.
pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{field} {value:?} is not an RFC 3339 time ({e}); write e.g. 2026-12-01T09:00:00Z or 2026-12-01T10:00:00+01:00")
        })
}

/// The annotation's value as the wire form: a JSON object, or a bare id; the id checked.
fn read_wire(verb: RequestVerb, value: &str) -> Result<Wire, String> {
    let wire: Wire = if value.starts_with('{') {
        serde_json::from_str(value).map_err(|e| {
            format!(
                "{value:?} is not a request ({e}); write {{\"id\": \"...\"}} with the verb's fields, or use `kubectl durablejob {}`",
                verb.as_str()
            )
        })?
    } else {
        Wire {
            id: value.to_string(),
            ..Default::default()
        }
    };
    if !valid_id(&wire.id) {
        return Err(format!(
            "id {:?} is not usable: write 1-{MAX_ID} letters, digits, '-', '_', '.' or ':'",
            wire.id
        ));
    }
    Ok(wire)
}

/// The fields each verb takes; any other field set is refused.
fn takes(verb: RequestVerb) -> &'static [&'static str] {
    match verb {
        RequestVerb::Trigger => &["overlap"],
        RequestVerb::Backfill => &["from", "to", "overlap", "maxSlots"],
        RequestVerb::Cancel => &["run", "terminate"],
        RequestVerb::Retry => &["run"],
        RequestVerb::Resume
        | RequestVerb::Promote
        | RequestVerb::Rollback
        | RequestVerb::PauseRollout
        | RequestVerb::ResumeRollout => &[],
    }
}

/// The verb's parameters from the wire form, refusing the first field set that the verb does
/// not take.
fn params(verb: RequestVerb, wire: Wire) -> Result<RequestParams, String> {
    let set = [
        ("from", wire.from.is_some()),
        ("to", wire.to.is_some()),
        ("run", wire.run.is_some()),
        ("terminate", wire.terminate),
        ("overlap", wire.overlap.is_some()),
        ("maxSlots", wire.max_slots.is_some()),
    ];
    if let Some((name, _)) = set.iter().find(|(name, set)| *set && !takes(verb).contains(name)) {
        return Err(format!("{name:?} does not apply to {}", verb.as_str()));
    }
    Ok(match verb {
        RequestVerb::Trigger => RequestParams::Trigger {
            overlap: wire.overlap,
        },
        RequestVerb::Backfill => {
            let (from, to) = backfill_window(&wire)?;
            if wire.max_slots == Some(0) {
                return Err("\"maxSlots\" is 0; write at least 1 (the default is 1000)".into());
            }
            RequestParams::Backfill {
                from,
                to,
                overlap: wire.overlap,
                max_slots: wire.max_slots,
            }
        }
        RequestVerb::Cancel => RequestParams::Cancel {
            run: wire.run.filter(|r| !r.is_empty()),
            terminate: wire.terminate,
        },
        RequestVerb::Resume => RequestParams::Resume,
        RequestVerb::Retry => RequestParams::Retry {
            run: wire
                .run
                .filter(|r| !r.trim().is_empty())
                .ok_or("\"run\" is required: the workflow id of the run to retry (kubectl durablejob runs NAME lists them)")?,
        },
        _ => RequestParams::Rollout,
    })
}

/// A backfill's `from` and `to`: both required, RFC 3339, in order.
fn backfill_window(wire: &Wire) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let time = |field: &str, v: &Option<String>| match v {
        None => Err(format!(
            "{field:?} is required: the RFC 3339 time the backfill {}",
            if field == "from" { "starts at" } else { "ends at" }
        )),
        Some(v) => parse_time(field, v),
    };
    let (from, to) = (time("from", &wire.from)?, time("to", &wire.to)?);
    if from > to {
        return Err(format!("from ({from}) is after to ({to}); swap them"));
    }
    Ok((from, to))
}

impl Request {
    /// Reads the annotation value of `verb`.
    pub fn parse(verb: RequestVerb, value: &str) -> Result<Request, BadRequest> {
        let value = value.trim();
        let bad = |id: String, message: String| BadRequest {
            verb,
            id,
            message: format!("annotation {}: {message}", verb.annotation()),
        };
        // a value without a usable id is recorded under one derived from the value
        let invalid = || {
            let digest = crate::util::digest::hex_sha256(value.as_bytes());
            format!("invalid-{}", &digest[..12])
        };
        let wire = read_wire(verb, value).map_err(|m| bad(invalid(), m))?;
        let id = wire.id.clone();
        let params = params(verb, wire).map_err(|m| bad(id.clone(), m))?;
        Ok(Request { verb, id, params })
    }

    /// The annotation value for this request.
    pub fn to_value(&self) -> String {
        let mut wire = Wire {
            id: self.id.clone(),
            ..Default::default()
        };
        let rfc = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match &self.params {
            RequestParams::Trigger { overlap } => wire.overlap = *overlap,
            RequestParams::Backfill {
                from,
                to,
                overlap,
                max_slots,
            } => {
                wire.from = Some(rfc(from));
                wire.to = Some(rfc(to));
                wire.overlap = *overlap;
                wire.max_slots = *max_slots;
            }
            RequestParams::Cancel { run, terminate } => {
                wire.run = run.clone();
                wire.terminate = *terminate;
            }
            RequestParams::Retry { run } => wire.run = Some(run.clone()),
            RequestParams::Resume | RequestParams::Rollout => {}
        }
        serde_json::to_string(&wire).expect("a request serializes")
    }
}

/// How a request ended.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestResult {
    /// Done: the run was started, the backfill accepted, the runs cancelled, the schedule resumed.
    Succeeded,
    /// Temporal refused it, or there was nothing it could act on.
    Failed,
    /// The request itself is wrong (bad annotation, unknown run); nothing was done.
    Rejected,
}

/// One handled request, in `status.requests`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    pub id: String,
    pub verb: RequestVerb,
    /// When the operator acted on it.
    pub handled_time: DateTime<Utc>,
    pub result: RequestResult,
    #[serde(default)]
    pub message: String,
    /// Workflow ids the request started or stopped, when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workflow_ids: Vec<String>,
    /// The run ids of the runs the request started, when the operator started them itself
    /// (a retry): the built-in runner acts for exactly these runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub run_ids: Vec<String>,
}

/// How many handled requests `status.requests` keeps (the newest of each verb always stays,
/// since its annotation may still be on the resource).
pub const KEPT_REQUESTS: usize = 10;

/// Adds `new` records (newest last) to the ledger and trims it: newest first, at most
/// [`KEPT_REQUESTS`], but never dropping the newest record of a verb.
pub fn record(ledger: &[RequestRecord], new: Vec<RequestRecord>) -> Vec<RequestRecord> {
    let mut all: Vec<RequestRecord> = new.into_iter().rev().chain(ledger.iter().cloned()).collect();
    let newest_of_verb: Vec<usize> = RequestVerb::ALL
        .iter()
        .filter_map(|v| all.iter().position(|r| r.verb == *v))
        .collect();
    let mut kept = 0;
    let mut i = 0;
    all.retain(|_| {
        let keep = kept < KEPT_REQUESTS || newest_of_verb.contains(&i);
        if keep {
            kept += 1;
        }
        i += 1;
        keep
    });
    all
}

/// Whether the ledger already holds this request.
pub fn handled(ledger: &[RequestRecord], verb: RequestVerb, id: &str) -> bool {
    ledger.iter().any(|r| r.verb == verb && r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_verb_round_trips_through_its_annotation() {
        let t = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
        for r in [
            Request {
                verb: RequestVerb::Trigger,
                id: "a1".into(),
                params: RequestParams::Trigger {
                    overlap: Some(OverlapPolicy::AllowAll),
                },
            },
            Request {
                verb: RequestVerb::Backfill,
                id: "b1".into(),
                params: RequestParams::Backfill {
                    from: t(1),
                    to: t(3),
                    overlap: None,
                    max_slots: Some(5000),
                },
            },
            Request {
                verb: RequestVerb::Cancel,
                id: "c1".into(),
                params: RequestParams::Cancel {
                    run: Some("durablejob:ns/x-2026-12-01T01:00:00Z".into()),
                    terminate: true,
                },
            },
            Request {
                verb: RequestVerb::Resume,
                id: "r1".into(),
                params: RequestParams::Resume,
            },
        ] {
            assert_eq!(Request::parse(r.verb, &r.to_value()), Ok(r.clone()));
        }
        assert_eq!(
            Request::parse(
                RequestVerb::Backfill,
                r#"{"id":"b","from":"2026-12-01T01:00:00Z","to":"2026-12-01T03:00:00+01:00"}"#
            )
            .unwrap()
            .params,
            RequestParams::Backfill {
                from: t(1),
                to: t(2),
                overlap: None,
                max_slots: None
            },
            "offsets are honoured"
        );
    }

    #[test]
    fn a_bare_value_is_an_id_without_parameters() {
        let r = Request::parse(RequestVerb::Trigger, "1764594301").unwrap();
        assert_eq!(
            (r.id.as_str(), r.params),
            ("1764594301", RequestParams::Trigger { overlap: None })
        );
        assert_eq!(Request::parse(RequestVerb::Resume, "again").unwrap().id, "again");
    }

    #[test]
    fn bad_requests_name_the_annotation_and_say_what_to_write() {
        let msg = |verb, v: &str| Request::parse(verb, v).unwrap_err().message;
        let m = msg(
            RequestVerb::Backfill,
            r#"{"id":"b","from":"yesterday","to":"2026-12-01T03:00:00Z"}"#,
        );
        assert!(
            m.contains("durablejob.dev/backfill") && m.contains("RFC 3339") && m.contains("\"yesterday\""),
            "{m}"
        );
        let m = msg(RequestVerb::Backfill, r#"{"id":"b","to":"2026-12-01T03:00:00Z"}"#);
        assert!(m.contains("\"from\" is required"), "{m}");
        let m = msg(
            RequestVerb::Backfill,
            r#"{"id":"b","from":"2026-12-02T00:00:00Z","to":"2026-12-01T03:00:00Z"}"#,
        );
        assert!(m.contains("swap"), "{m}");
        let m = msg(RequestVerb::Trigger, r#"{"id":"t","run":"x"}"#);
        assert!(m.contains("\"run\" does not apply to trigger"), "{m}");
        let m = msg(RequestVerb::Trigger, r#"{"id":"t","overlap":"Sometimes"}"#);
        assert!(m.contains("not a request") && m.contains("Sometimes"), "{m}");
        let m = msg(RequestVerb::Cancel, "has spaces");
        assert!(m.contains("not usable"), "{m}");
        let bad = Request::parse(RequestVerb::Trigger, "{oops").unwrap_err();
        assert_eq!(
            bad.id,
            Request::parse(RequestVerb::Trigger, "{oops").unwrap_err().id,
            "the same bad value has the same id, so it is reported once"
        );
    }

    fn rec(verb: RequestVerb, id: &str) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            verb,
            handled_time: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            result: RequestResult::Succeeded,
            message: String::new(),
            workflow_ids: vec![],
            run_ids: vec![],
        }
    }

    #[test]
    fn the_ledger_keeps_the_newest_requests_and_the_newest_of_each_verb() {
        let mut ledger = record(&[], vec![rec(RequestVerb::Resume, "r")]);
        for i in 0..15 {
            ledger = record(&ledger, vec![rec(RequestVerb::Trigger, &format!("t{i}"))]);
        }
        assert_eq!(ledger.len(), KEPT_REQUESTS + 1);
        assert_eq!(ledger[0].id, "t14", "newest first");
        assert!(
            handled(&ledger, RequestVerb::Resume, "r"),
            "the resume annotation is still answered"
        );
        assert!(!handled(&ledger, RequestVerb::Trigger, "t0"));
        assert!(!handled(&ledger, RequestVerb::Cancel, "r"));
    }

    #[test]
    fn each_verb_takes_its_own_fields_and_refuses_every_other_by_name() {
        let fields = [
            ("from", r#""from":"2026-12-01T00:00:00Z""#),
            ("to", r#""to":"2026-12-01T03:00:00Z""#),
            ("run", r#""run":"r1""#),
            ("terminate", r#""terminate":true"#),
            ("overlap", r#""overlap":"AllowAll""#),
            ("maxSlots", r#""maxSlots":5000"#),
        ];
        let backfill_window = r#""from":"2026-12-01T00:00:00Z","to":"2026-12-01T03:00:00Z""#;
        for verb in RequestVerb::ALL {
            for (field, json) in fields {
                // a backfill always needs its window; the field under test is added to it
                let body = match verb {
                    RequestVerb::Backfill if field != "from" && field != "to" => {
                        format!("{backfill_window},{json}")
                    }
                    RequestVerb::Backfill => backfill_window.to_string(),
                    _ => json.to_string(),
                };
                let parsed = Request::parse(verb, &format!(r#"{{"id":"x",{body}}}"#));
                let taken = matches!(
                    (verb, field),
                    (RequestVerb::Trigger, "overlap")
                        | (RequestVerb::Backfill, "from" | "to" | "overlap" | "maxSlots")
                        | (RequestVerb::Cancel, "run" | "terminate")
                        | (RequestVerb::Retry, "run")
                );
                match parsed {
                    Ok(_) => assert!(taken, "{verb:?} took {field:?}"),
                    Err(e) => {
                        assert!(!taken, "{verb:?} refused {field:?}: {}", e.message);
                        let says = format!("\"{field}\" does not apply to {}", verb.as_str());
                        assert!(e.message.contains(&says), "{}", e.message);
                    }
                }
            }
        }
    }

    #[test]
    fn a_backfill_limit_of_zero_is_refused_saying_what_to_write() {
        let e = Request::parse(
            RequestVerb::Backfill,
            r#"{"id":"b","from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","maxSlots":0}"#,
        )
        .unwrap_err();
        assert!(
            e.message.contains("\"maxSlots\" is 0; write at least 1"),
            "{}",
            e.message
        );
    }
}
