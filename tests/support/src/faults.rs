//! Faults a real cluster does not offer on demand, from a small proxy between a client (the
//! operator, the runner) and the API server: requests failing with a chosen code, latency, and
//! watches dropped mid-stream. Everything else passes through untouched, the client's own
//! credentials included, so RBAC still judges every request.
//!
//! The client talks plain HTTP to the proxy on loopback; the proxy talks TLS to the API server,
//! trusting the cluster's CA. (Forced 410s do not come from here: they come from the real API
//! server, with its watch cache off and etcd compacted; see `hack/cluster.sh --no-watch-cache`.)

use std::{
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::{Request, Response, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

type ProxyBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Which requests a rule fails.
#[derive(Debug, Clone)]
pub struct FailRule {
    /// HTTP method (`GET`, `PATCH`, ...); any when `None`.
    pub method: Option<String>,
    /// A substring of the request path and query, e.g. `/durablejobs/` or `/status`.
    pub path_contains: String,
    /// The status code the proxy answers with.
    pub code: u16,
    /// How many matching requests to fail; unbounded when `None`.
    pub count: Option<u32>,
    /// The share of matching requests to fail (1.0: all).
    pub ratio: f64,
}

impl FailRule {
    /// Fails the next `count` requests with `method` whose path contains `path`.
    pub fn next(method: &str, path: &str, code: u16, count: u32) -> Self {
        Self {
            method: Some(method.to_string()),
            path_contains: path.to_string(),
            code,
            count: Some(count),
            ratio: 1.0,
        }
    }

    /// Fails a share of all requests, for as long as the rule stands.
    pub fn ratio(ratio: f64, code: u16) -> Self {
        Self {
            method: None,
            path_contains: String::new(),
            code,
            count: None,
            ratio,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<FailRule>,
    latency: Duration,
    injected: u64,
    seed: u64,
}

impl State {
    /// The code to answer with, if a rule fails this request.
    fn decide(&mut self, method: &str, path: &str) -> Option<u16> {
        // xorshift: the share of failures only needs to be roughly right
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let roll = (self.seed % 10_000) as f64 / 10_000.0;
        let rule = self.rules.iter_mut().find(|r| {
            r.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
                && path.contains(&r.path_contains)
                && r.count != Some(0)
        })?;
        if roll >= rule.ratio {
            return None;
        }
        if let Some(n) = rule.count.as_mut() {
            *n -= 1;
        }
        self.injected += 1;
        Some(rule.code)
    }
}

/// A running fault proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    drops: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of the API server `kubeconfig` names, on the
    /// caller's runtime.
    pub async fn start(kubeconfig: &Path) -> anyhow::Result<Self> {
        let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        // the proxy forwards the client's own credentials, never its own
        config.auth_info = Default::default();
        config.read_timeout = None;
        let upstream = kube::Client::try_from(config)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 | 1)
            .unwrap_or(1);
        let state = Arc::new(Mutex::new(State {
            seed,
            ..Default::default()
        }));
        let (drops, _) = tokio::sync::watch::channel(0u64);
        let (st, tx) = (state.clone(), drops.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (upstream, st, tx) = (upstream.clone(), st.clone(), tx.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |req| forward(req, upstream.clone(), st.clone(), tx.subscribe()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            state,
            drops,
            task,
        })
    }

    /// A copy of `identity` (a kubeconfig with a bearer token) that goes through the proxy.
    pub fn kubeconfig_for(&self, identity: &Path, out: &Path) -> anyhow::Result<PathBuf> {
        let text = std::fs::read_to_string(identity)?;
        let mut kc: Value = serde_json::from_str(&text)
            .context("a kubeconfig in JSON, as Namespace::service_account writes them")?;
        for c in kc["clusters"].as_array_mut().into_iter().flatten() {
            c["cluster"] = json!({"server": format!("http://{}", self.addr)});
        }
        std::fs::write(out, serde_json::to_vec_pretty(&kc)?)?;
        Ok(out.to_path_buf())
    }

    /// Adds a rule; the first matching rule decides.
    pub fn fail(&self, rule: FailRule) {
        self.state.lock().expect("fault state").rules.push(rule);
    }

    /// Delays every request by `latency`.
    pub fn latency(&self, latency: Duration) {
        self.state.lock().expect("fault state").latency = latency;
    }

    /// Ends every open watch now, as a dropped connection would.
    pub fn drop_watches(&self) {
        self.drops.send_modify(|n| *n += 1);
    }

    /// Removes every rule and the latency.
    pub fn clear(&self) {
        let mut s = self.state.lock().expect("fault state");
        s.rules.clear();
        s.latency = Duration::ZERO;
    }

    /// How many requests the proxy failed so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().expect("fault state").injected
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status(code: u16) -> Response<ProxyBody> {
    let reason = match code {
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("injected by the test's fault proxy ({code})"), "reason": reason, "code": code});
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn forward(
    req: Request<hyper::body::Incoming>,
    upstream: kube::Client,
    state: Arc<Mutex<State>>,
    mut drops: tokio::sync::watch::Receiver<u64>,
) -> Result<Response<ProxyBody>, Infallible> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let (decision, latency) = {
        let mut s = state.lock().expect("fault state");
        (s.decide(req.method().as_str(), &path), s.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(code) = decision {
        return Ok(status(code));
    }
    let is_watch = path.contains("watch=true") || path.contains("watch=1");
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(400)),
    };
    let mut out = Request::builder().method(parts.method).uri(path);
    for (k, v) in parts.headers.iter() {
        if k != http::header::HOST && k != http::header::CONTENT_LENGTH {
            out = out.header(k, v);
        }
    }
    let Ok(out) = out.body(kube::client::Body::from(bytes.to_vec())) else {
        return Ok(status(400));
    };
    let resp = match upstream.send(out).await {
        Ok(r) => r,
        Err(_) => return Ok(status(503)),
    };
    let (parts, body) = resp.into_parts();
    drops.mark_unchanged();
    let frames = http_body_util::BodyStream::new(body)
        .map(|f| f.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>));
    let body: ProxyBody = if is_watch {
        // a watch ends when the test drops watches, as if the connection broke
        let stopped = async move {
            let _ = drops.changed().await;
        };
        BodyExt::boxed_unsync(StreamBody::new(frames.take_until(Box::pin(stopped))))
    } else {
        BodyExt::boxed_unsync(StreamBody::new(frames))
    };
    Ok(Response::from_parts(parts, body))
}
