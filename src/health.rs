//! Liveness, readiness and metrics endpoints.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

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
    /// Length of the last /metrics body: the next one is allocated once at about that size
    /// instead of doubling its way there (which briefly holds two copies).
    last_size: Arc<AtomicUsize>,
}

/// Serves `/healthz` and `/readyz` on `health_addr`, and `/metrics` on `metrics_addr`
/// (the same listener when the addresses are equal).
pub async fn serve(
    health_addr: SocketAddr,
    metrics_addr: SocketAddr,
    ready: Readiness,
    registry: Arc<Registry>,
) -> std::io::Result<()> {
    let state = AppState {
        ready,
        registry,
        last_size: Arc::new(AtomicUsize::new(0)),
    };
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

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut body = String::with_capacity(s.last_size.load(Ordering::Relaxed) * 9 / 8);
    match prometheus_client::encoding::text::encode(&mut body, &s.registry) {
        Ok(()) => {
            s.last_size.store(body.len(), Ordering::Relaxed);
            (
                StatusCode::OK,
                [(
                    "content-type",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                body,
            )
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            String::new(),
        ),
    }
}
