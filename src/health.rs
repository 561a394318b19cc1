//! Liveness, readiness and metrics endpoints.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::body::Bytes;
use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::registry::Registry;

/// Set once the process can do its job (the controller's caches are synced).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    ready: Readiness,
    registry: Arc<Registry>,
}

/// Serves `/healthz` and `/readyz` on `health_addr`, and `/metrics` on `metrics_addr`
/// (the same listener when the addresses are equal).
pub async fn serve(
    health_addr: SocketAddr,
    metrics_addr: SocketAddr,
    ready: Readiness,
    registry: Arc<Registry>,
) -> std::io::Result<()> {
    let state = AppState { ready, registry };
    let health = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz));
    let metrics = Router::new().route("/metrics", get(metrics));
    if health_addr == metrics_addr {
        let listener = tokio::net::TcpListener::bind(health_addr).await?;
        return axum::serve(listener, health.merge(metrics).with_state(state)).await;
    }
    let hl = tokio::net::TcpListener::bind(health_addr).await?;
    let ml = tokio::net::TcpListener::bind(metrics_addr).await?;
    let a = axum::serve(hl, health.with_state(state.clone()));
    let b = axum::serve(ml, metrics.with_state(state));
    tokio::try_join!(async { a.await }, async { b.await })?;
    Ok(())
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: caches are syncing")
    }
}

/// Bytes of text the /metrics body is sent in.
const CHUNK: usize = 64 * 1024;

/// A `fmt::Write` that hands the text on in chunks as it is encoded, so a scrape holds a few
/// chunks, not the whole page (at 10,000 DurableJobs the page is tens of megabytes).
struct Chunks {
    buf: String,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Chunks {
    fn flush(&mut self) -> std::fmt::Result {
        let full = std::mem::replace(&mut self.buf, String::with_capacity(CHUNK + 1024));
        // the scraper went away: stop encoding
        self.tx
            .blocking_send(Ok(Bytes::from(full)))
            .map_err(|_| std::fmt::Error)
    }
}

impl std::fmt::Write for Chunks {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= CHUNK {
            self.flush()
        } else {
            Ok(())
        }
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let registry = s.registry.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Chunks {
            buf: String::with_capacity(CHUNK + 1024),
            tx,
        };
        let done = prometheus_client::encoding::text::encode(&mut out, &registry).and_then(|()| out.flush());
        if done.is_err() {
            // a failed encode ends the body with an error, so the scrape fails rather than
            // reading a page cut short
            let _ = out
                .tx
                .blocking_send(Err(std::io::Error::other("cannot encode the metrics")));
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (
        StatusCode::OK,
        [(
            "content-type",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        axum::body::Body::from_stream(body),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::{counter::Counter, family::Family};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_page_larger_than_a_chunk_arrives_whole_and_in_order() {
        let mut registry = Registry::default();
        let family = Family::<Vec<(String, String)>, Counter>::default();
        registry.register("many", "Many series", family.clone());
        for i in 0..5_000 {
            family
                .get_or_create(&vec![("n".into(), format!("{i:05}"))])
                .inc_by(i);
        }
        let mut expected = String::new();
        prometheus_client::encoding::text::encode(&mut expected, &registry).unwrap();
        assert!(
            expected.len() > 2 * CHUNK,
            "the page spans chunks: {}",
            expected.len()
        );

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let health = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let health_addr = health.local_addr().unwrap();
        drop(health);
        let server = tokio::spawn(serve(health_addr, addr, Readiness::default(), Arc::new(registry)));
        let mut text = String::new();
        for _ in 0..50 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
                s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
                s.read_to_string(&mut text).await.unwrap();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        server.abort();
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        assert_eq!(body.len(), expected.len());
        assert!(body == expected, "the streamed page equals the encoded one");
    }
}
