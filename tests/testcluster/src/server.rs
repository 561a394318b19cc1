//! The HTTP layer: authentication, path parsing, the verbs, list and watch, discovery and
//! the request log. All state changes go through [`crate::store::State`].

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State as AxumState,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::{broadcast::error::RecvError, mpsc};

use crate::errors::{ApiError, ApiResult};
use crate::registry::ResourceType;
use crate::requestlog::{LoggedRequest, RequestLog};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Change, ChangeKind, State, WriteOptions, list_page, present};
use crate::{discovery, table};

/// Shared by all requests.
pub struct Server {
    pub state: Mutex<State>,
    pub faults: crate::faults::Faults,
    pub(crate) control: tokio::sync::mpsc::UnboundedSender<crate::Control>,
    pub token: String,
    pub log: RequestLog,
    pub bookmark_interval: Duration,
    pub address: String,
}

pub fn router(server: Arc<Server>) -> Router {
    Router::new().fallback(handle).with_state(server)
}

/// A parsed resource path.
#[derive(Debug, Clone, Default)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: String,
}

enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    Resource(Target),
    OpenApi(Vec<String>),
    Admin(String),
}

fn parse_path(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Some(Route::Version),
        ["openapi", rest @ ..] => return Some(Route::OpenApi(rest.iter().map(|s| s.to_string()).collect())),
        ["testcluster", rest @ ..] => return Some(Route::Admin(rest.join("/"))),
        ["healthz" | "readyz" | "livez", ..] => return Some(Route::Health),
        ["api"] => return Some(Route::CoreVersions),
        ["apis"] => return Some(Route::Groups),
        ["apis", g] => return Some(Route::Group(g.to_string())),
        ["api", v] => return Some(Route::Resources(String::new(), v.to_string())),
        ["apis", g, v] => return Some(Route::Resources(g.to_string(), v.to_string())),
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let mut t = Target {
        group,
        version,
        ..Default::default()
    };
    let rest: Vec<&str> = if rest.first() == Some(&"watch") {
        rest[1..].to_vec()
    } else {
        rest.to_vec()
    };
    match rest.as_slice() {
        ["namespaces", ns, plural, tail @ ..] if !matches!(*plural, "status" | "finalize") => {
            t.namespace = Some(ns.to_string());
            t.plural = plural.to_string();
            match tail {
                [] => {}
                [name] => t.name = Some(name.to_string()),
                [name, sub] => {
                    t.name = Some(name.to_string());
                    t.subresource = sub.to_string();
                }
                _ => return None,
            }
        }
        [plural] => t.plural = plural.to_string(),
        [plural, name] => {
            t.plural = plural.to_string();
            t.name = Some(name.to_string());
        }
        [plural, name, sub] => {
            t.plural = plural.to_string();
            t.name = Some(name.to_string());
            t.subresource = sub.to_string();
        }
        _ => return None,
    }
    Some(Route::Resource(t))
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(code: StatusCode, v: &Value, warnings: &[String]) -> Response {
    let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response();
    for w in warnings {
        if let Ok(h) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "\\\""))) {
            resp.headers_mut().append("warning", h);
        }
    }
    resp
}

async fn handle(
    AxumState(server): AxumState<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let route = parse_path(&path);
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut entry = LoggedRequest {
        method: method.to_string(),
        path: path.clone(),
        verb: "discovery".into(),
        group: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        code: 200,
        user_agent: user_agent.clone(),
    };
    let public = matches!(route, Some(Route::Version | Route::Health));
    // kubectl does not send bearer tokens to plain-http servers, so a request without
    // credentials is served; a request with wrong credentials is refused.
    let authorized = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(v) => v.strip_prefix("Bearer ").is_some_and(|t| t == server.token),
    };
    let latency = server.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let resp = if !public && !authorized {
        ApiError::unauthorized().into_response()
    } else {
        match route {
            None => ApiError::no_route(&path).into_response(),
            Some(Route::OpenApi(rest)) => {
                let state = server.state.lock().expect("state lock");
                let accept = headers
                    .get(header::ACCEPT)
                    .and_then(|a| a.to_str().ok())
                    .unwrap_or_default();
                use crate::openapi_proto::{CONTENT_TYPE, Format, encode, negotiate};
                match crate::openapi::document(&state.registry, &rest) {
                    Some(doc) if rest == ["v2"] => match negotiate(accept) {
                        Some(Format::Protobuf) => (
                            StatusCode::OK,
                            [(header::CONTENT_TYPE, CONTENT_TYPE)],
                            encode(&doc),
                        )
                            .into_response(),
                        Some(Format::Json) => json_response(StatusCode::OK, &doc, &[]),
                        None => StatusCode::NOT_ACCEPTABLE.into_response(),
                    },
                    Some(doc) => json_response(StatusCode::OK, &doc, &[]),
                    None => ApiError::no_route(&path).into_response(),
                }
            }
            Some(Route::Admin(what)) => admin(&server, &method, &what, &body),
            Some(Route::Version) => json_response(StatusCode::OK, &discovery::version(), &[]),
            Some(Route::Health) => (StatusCode::OK, "ok").into_response(),
            Some(Route::CoreVersions) => discovery_response(&server, &headers, true),
            Some(Route::Groups) => discovery_response(&server, &headers, false),
            Some(Route::Group(g)) => {
                let state = server.state.lock().expect("state lock");
                match discovery::group(&state.registry, &g) {
                    Some(v) => json_response(StatusCode::OK, &v, &[]),
                    None => ApiError::no_route(&path).into_response(),
                }
            }
            Some(Route::Resources(g, v)) => {
                let state = server.state.lock().expect("state lock");
                match discovery::resource_list(&state.registry, &g, &v) {
                    Some(list) => json_response(StatusCode::OK, &list, &[]),
                    None => ApiError::no_route(&path).into_response(),
                }
            }
            Some(Route::Resource(t)) => {
                entry.group = t.group.clone();
                entry.resource = t.plural.clone();
                entry.subresource = t.subresource.clone();
                entry.namespace = t.namespace.clone().unwrap_or_default();
                entry.name = t.name.clone().unwrap_or_default();
                let q = query_map(&uri);
                let is_watch =
                    q.get("watch").is_some_and(|w| w == "true" || w == "1") || path.contains("/watch/");
                entry.verb = verb_of(&method, &t, is_watch).into();
                if let Some(code) = server.faults.take(&entry.verb, &path) {
                    let resp = ApiError::with_code(
                        code,
                        format!("injected fault ({code}) for {} {path}", entry.verb),
                    )
                    .into_response();
                    entry.code = resp.status().as_u16();
                    server.log.push(entry);
                    return resp;
                }
                let ctx = RequestCtx {
                    server: server.clone(),
                    t,
                    q,
                    headers,
                    body,
                    user_agent,
                };
                match resource_request(ctx, &method, is_watch).await {
                    Ok(r) => r,
                    Err(e) => e.into_response(),
                }
            }
        }
    };
    entry.code = resp.status().as_u16();
    server.log.push(entry);
    resp
}

fn admin(server: &Server, method: &Method, what: &str, body: &Bytes) -> Response {
    match (method.as_str(), what) {
        ("GET", "requests") => {
            let summary: Vec<Value> = server
                .log
                .summary()
                .into_iter()
                .map(|(k, n)| json!({"request": k, "count": n}))
                .collect();
            json_response(StatusCode::OK, &json!({"requests": summary}), &[])
        }
        ("POST", "faults") => {
            let req: crate::faults::FaultRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return ApiError::bad_request(format!("fault request: {e}; send {{\"failNext\": {{\"verb\", \"path\", \"code\", \"count\"}}, \"latencyMs\", \"dropWatches\", \"forgetHistory\", \"clear\"}}")).into_response(),
            };
            if req.clear {
                server.faults.clear();
            }
            if let Some(rule) = req.fail_next {
                server.faults.add(rule);
            }
            if let Some(ms) = req.latency_ms {
                server.faults.set_latency(Duration::from_millis(ms));
            }
            if req.forget_history {
                server.state.lock().expect("state lock").forget_history();
            }
            if req.drop_watches {
                server.faults.drop_watches();
            }
            if let Some(ms) = req.restart_ms {
                // answer first, then restart
                let control = server.control.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let _ = control.send(crate::Control::Restart {
                        downtime: Duration::from_millis(ms),
                        done: None,
                    });
                });
            }
            json_response(StatusCode::OK, &json!({"status": "ok"}), &[])
        }
        _ => ApiError::no_route(&format!("/testcluster/{what}")).into_response(),
    }
}

fn verb_of(method: &Method, t: &Target, watch: bool) -> &'static str {
    match (method.as_str(), t.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn discovery_response(server: &Server, headers: &HeaderMap, core: bool) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let state = server.state.lock().expect("state lock");
    if discovery::wants_aggregated(accept) {
        let v = discovery::aggregated(&state.registry, core);
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, discovery::AGGREGATED_CONTENT_TYPE)],
            v.to_string(),
        )
            .into_response();
    }
    let v = if core {
        discovery::core_versions(&server.address)
    } else {
        discovery::group_list(&state.registry)
    };
    json_response(StatusCode::OK, &v, &[])
}

struct RequestCtx {
    server: Arc<Server>,
    t: Target,
    q: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    user_agent: String,
}

impl RequestCtx {
    fn write_options(&self) -> WriteOptions {
        let manager = self.q.get("fieldManager").cloned().unwrap_or_else(|| {
            self.user_agent
                .split('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_string()
        });
        WriteOptions {
            field_manager: manager,
            dry_run: self.q.get("dryRun").is_some_and(|d| d == "All"),
            field_validation: self
                .q
                .get("fieldValidation")
                .cloned()
                .unwrap_or_else(|| "Warn".into()),
            force: self.q.get("force").is_some_and(|f| f == "true"),
        }
    }

    fn body_value(&self) -> ApiResult<Value> {
        let ct = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json");
        if ct.starts_with("application/yaml") {
            let text =
                std::str::from_utf8(&self.body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
            return serde_saphyr::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
        }
        if ct.starts_with("application/vnd.kubernetes.protobuf") {
            return Err(ApiError::unsupported_media_type(
                "protobuf bodies are not supported by testcluster; send JSON",
            ));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding body: {e}")))
    }
}

fn resolve(state: &State, t: &Target) -> ApiResult<ResourceType> {
    let rt = state
        .registry
        .get(&t.group, &t.version, &t.plural)
        .cloned()
        .ok_or_else(|| ApiError::no_route(&format!("{} {}/{}", t.plural, t.group, t.version)))?;
    if !rt.namespaced && t.namespace.is_some() {
        return Err(ApiError::no_route(&format!("{} is cluster-scoped", rt.plural)));
    }
    if !(t.subresource.is_empty() || t.subresource == "status" && rt.status_subresource) {
        return Err(ApiError::no_route(&format!("{}/{}", rt.plural, t.subresource)));
    }
    Ok(rt)
}

async fn resource_request(ctx: RequestCtx, method: &Method, is_watch: bool) -> ApiResult<Response> {
    let server = ctx.server.clone();
    if is_watch {
        return watch(ctx).await;
    }
    let t = ctx.t.clone();
    let mut state = server.state.lock().expect("state lock");
    let rt = resolve(&state, &t)?;
    let ns = t.namespace.as_deref();
    match (method.as_str(), &t.name) {
        ("GET", Some(name)) => {
            let obj = state.get(&rt, ns, name)?;
            if wants_table(&ctx.headers) {
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                return Ok(table_response(&table::table(
                    &rt,
                    &[obj],
                    &rv,
                    chrono::Utc::now(),
                )));
            }
            Ok(json_response(StatusCode::OK, &obj, &[]))
        }
        ("GET", None) => {
            let l = list(&state, &rt, ns, &ctx.q)?;
            if wants_table(&ctx.headers) {
                let items = l["items"].as_array().cloned().unwrap_or_default();
                let rv = l["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut t = table::table(&rt, &items, &rv, chrono::Utc::now());
                if let Some(c) = l["metadata"].get("continue") {
                    t["metadata"]["continue"] = c.clone();
                }
                return Ok(table_response(&t));
            }
            Ok(json_response(StatusCode::OK, &l, &[]))
        }
        ("POST", None) => {
            let w = state.create(&rt, ns, ctx.body_value()?, &ctx.write_options())?;
            Ok(json_response(StatusCode::CREATED, &w.object, &w.warnings))
        }
        ("PUT", Some(name)) => {
            let w = state.update(
                &rt,
                ns,
                name,
                &t.subresource,
                ctx.body_value()?,
                &ctx.write_options(),
            )?;
            Ok(json_response(StatusCode::OK, &w.object, &w.warnings))
        }
        ("PATCH", Some(name)) => {
            let ct = ctx
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let w = state.patch(
                &rt,
                ns,
                name,
                &t.subresource,
                &ct,
                &ctx.body,
                &ctx.write_options(),
            )?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_response(code, &w.object, &w.warnings))
        }
        ("DELETE", Some(name)) => {
            let opts: Value = if ctx.body.is_empty() {
                json!({})
            } else {
                ctx.body_value()?
            };
            let dry = ctx.q.get("dryRun").is_some_and(|d| d == "All")
                || opts["dryRun"].as_array().is_some_and(|a| !a.is_empty());
            let mut opts = opts;
            if let Some(p) = ctx.q.get("propagationPolicy") {
                opts["propagationPolicy"] = Value::from(p.clone());
            }
            let obj = state.delete(&rt, ns, name, &opts, dry)?;
            Ok(json_response(StatusCode::OK, &obj, &[]))
        }
        ("DELETE", None) => {
            let items = matching(&state, &rt, ns, &ctx.q)?;
            let opts: Value = if ctx.body.is_empty() {
                json!({})
            } else {
                ctx.body_value()?
            };
            for o in &items {
                let name = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
                let ons = o["metadata"]["namespace"].as_str().map(String::from);
                state.delete(&rt, ons.as_deref(), &name, &opts, false)?;
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                &[],
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on this path",
            method
        ))),
    }
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(table::wants_table)
}

fn table_response(t: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, table::CONTENT_TYPE)],
        t.to_string(),
    )
        .into_response()
}

fn selectors(rt: &ResourceType, q: &HashMap<String, String>) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let allowed = selectable_fields(rt);
    let fields = FieldSelector::parse(
        q.get("fieldSelector").map(String::as_str).unwrap_or_default(),
        &allowed,
    )
    .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn selectable_fields(rt: &ResourceType) -> Vec<String> {
    use crate::builtin::BuiltinKind::*;
    let mut f: Vec<String> = match rt.builtin {
        Some(CoreEvent) => [
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        Some(Event) => [
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "reportingController",
            "type",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        Some(Pod) => vec![
            "spec.nodeName".into(),
            "spec.restartPolicy".into(),
            "status.phase".into(),
            "spec.serviceAccountName".into(),
        ],
        Some(Job) => vec!["status.successful".into()],
        Some(Secret) => vec!["type".into()],
        Some(Namespace) => vec!["status.phase".into()],
        _ => vec![],
    };
    f.extend(rt.selectable_fields.iter().cloned());
    f
}

fn matches(obj: &Value, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    labels.matches(&obj["metadata"]["labels"]) && fields.matches(obj)
}

fn matching(
    state: &State,
    rt: &ResourceType,
    ns: Option<&str>,
    q: &HashMap<String, String>,
) -> ApiResult<Vec<Value>> {
    let (labels, fields) = selectors(rt, q)?;
    Ok(state
        .bucket(rt)
        .map(|b| {
            b.iter()
                .filter(|((ons, _), _)| ns.is_none_or(|n| n == ons))
                .map(|(_, o)| present(o, rt))
                .filter(|o| matches(o, &labels, &fields))
                .collect()
        })
        .unwrap_or_default())
}

fn list(state: &State, rt: &ResourceType, ns: Option<&str>, q: &HashMap<String, String>) -> ApiResult<Value> {
    if q.get("resourceVersionMatch").is_some_and(|m| m == "Exact")
        && let Some(rv) = q.get("resourceVersion")
        && rv.parse::<u64>().ok() != Some(state.rv)
    {
        return Err(ApiError::gone(format!(
            "too old resource version: {rv} ({})",
            state.rv
        )));
    }
    let items = matching(state, rt, ns, q)?;
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok());
    let start = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => Some(decode_continue(token)?),
        None => None,
    };
    let (page, last, remaining) = list_page(items, limit, start.as_ref());
    let mut meta = json!({"resourceVersion": state.rv.to_string()});
    if let Some(last) = last {
        meta["continue"] = Value::from(encode_continue(&last, state.rv));
        meta["remainingItemCount"] = Value::from(remaining);
    }
    Ok(
        json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": meta, "items": page}),
    )
}

fn encode_continue(last: &(String, String), rv: u64) -> String {
    let raw = json!({"rv": rv, "ns": last.0, "name": last.1}).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect();
    let v: Value = serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    Ok((
        v["ns"].as_str().ok_or_else(bad)?.to_string(),
        v["name"].as_str().ok_or_else(bad)?.to_string(),
    ))
}

/// A watch event; with `as=Table` the object is a one-row Table, as `kubectl get -w` expects.
fn encode_event(kind: &str, obj: &Value, rt: &ResourceType, as_table: bool) -> Bytes {
    if as_table {
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        return watch_event(
            kind,
            &table::table(rt, std::slice::from_ref(obj), &rv, chrono::Utc::now()),
        );
    }
    watch_event(kind, obj)
}

fn watch_event(kind: &str, obj: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": obj}).to_string();
    line.push('\n');
    Bytes::from(line)
}

async fn watch(ctx: RequestCtx) -> ApiResult<Response> {
    let server = ctx.server.clone();
    let q = ctx.q.clone();
    let ns = ctx.t.namespace.clone();
    let allow_bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let send_initial = q.get("sendInitialEvents").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let as_table = wants_table(&ctx.headers);
    let mut epoch = server.faults.watch_epoch();

    let (rt, labels, fields, initial, mut live, start_rv) = {
        let state = server.state.lock().expect("state lock");
        let rt = resolve(&state, &ctx.t)?;
        let (labels, fields) = selectors(&rt, &q)?;
        if let Some(name) = &ctx.t.name {
            return Err(ApiError::bad_request(format!(
                "watch on a single object ({name}) is done with fieldSelector=metadata.name={name}"
            )));
        }
        let mut initial: Vec<Bytes> = vec![];
        if send_initial {
            if q.get("resourceVersionMatch").is_none_or(|m| m != "NotOlderThan") {
                return Err(ApiError::invalid(
                    "WatchOptions",
                    "",
                    "",
                    vec![crate::errors::Cause::new(
                        "FieldValueForbidden",
                        "resourceVersionMatch",
                        "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    )],
                ));
            }
            for o in matching(&state, &rt, ns.as_deref(), &q)? {
                initial.push(encode_event("ADDED", &o, &rt, as_table));
            }
            let mut bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": state.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            if !allow_bookmarks {
                bm = Value::Null;
            }
            if !bm.is_null() {
                initial.push(watch_event("BOOKMARK", &bm));
            }
        } else if rv_param.is_empty() || rv_param == "0" {
            for o in matching(&state, &rt, ns.as_deref(), &q)? {
                initial.push(encode_event("ADDED", &o, &rt, as_table));
            }
        } else {
            let from: u64 = rv_param
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {rv_param:?}")))?;
            if from < state.compacted_rv {
                let e = ApiError::gone(format!(
                    "too old resource version: {from} ({})",
                    state.compacted_rv + 1
                ));
                initial.push(watch_event("ERROR", &e.status()));
                let body = Body::from_stream(futures::stream::iter(
                    initial.into_iter().map(Ok::<_, Infallible>),
                ));
                return Ok(
                    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
                );
            }
            for c in state.history.iter().filter(|c| c.rv > from) {
                if let Some(kind) = filter_change(c, &rt, ns.as_deref(), &labels, &fields) {
                    initial.push(change_event(c, kind, &rt, as_table));
                }
            }
        }
        let live = state.changes.subscribe();
        (rt, labels, fields, initial, live, state.rv)
    };

    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let interval = server.bookmark_interval;
    tokio::spawn(async move {
        for b in initial {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        let mut last_rv = start_rv;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                r = live.recv() => match r {
                    Ok(change) => {
                        last_rv = change.rv;
                        if let Some(kind) = filter_change(&change, &rt, ns.as_deref(), &labels, &fields)
                            && tx.send(change_event(&change, kind, &rt, as_table)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let e = ApiError::gone("watch fell too far behind; restart it from a fresh list");
                        let _ = tx.send(watch_event("ERROR", &e.status())).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = ticker.tick(), if allow_bookmarks => {
                    let bm = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(watch_event("BOOKMARK", &bm)).await.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return,
                _ = epoch.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// How one committed change looks to one watch, if it sees it at all.
fn filter_change(
    c: &Change,
    rt: &ResourceType,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Option<&'static str> {
    if c.key != rt.storage_key() || ns.is_some_and(|n| n != c.namespace) {
        return None;
    }
    // Selectors see the object as this watch's version shows it; only Events differ in shape.
    let sees = |o: &Value| {
        if rt.is_events_v1() {
            matches(&present(o, rt), labels, fields)
        } else {
            matches(o, labels, fields)
        }
    };
    let now = sees(&c.object);
    let before = c.old.as_ref().is_some_and(sees);
    match c.kind {
        ChangeKind::Added if now => Some("ADDED"),
        ChangeKind::Deleted if now || before => Some("DELETED"),
        ChangeKind::Modified if now && before => Some("MODIFIED"),
        ChangeKind::Modified if now => Some("ADDED"),
        ChangeKind::Modified if before => Some("DELETED"),
        _ => None,
    }
}

/// The encoded event for one change, shared by every watch that sees it the same way.
fn change_event(c: &Change, kind: &'static str, rt: &ResourceType, as_table: bool) -> Bytes {
    let plain = !as_table
        && !rt.is_events_v1()
        && c.object["apiVersion"].as_str() == Some(rt.api_version().as_str())
        && c.object["kind"].as_str() == Some(rt.kind.as_str());
    if !plain {
        return encode_event(kind, &present(&c.object, rt), rt, as_table);
    }
    let mut cache = c.encoded.lock().expect("event cache lock");
    if let Some((_, b)) = cache.iter().find(|(k, _)| *k == kind) {
        return b.clone();
    }
    let b = watch_event(kind, &c.object);
    cache.push((kind, b.clone()));
    b
}
