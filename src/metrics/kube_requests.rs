//! Requests to the Kubernetes API by HTTP method and status code, counted by a tower layer on
//! the kube client (`durablejob_kubernetes_requests_total{method,code}`; `code="error"` when no
//! answer came: a refused connection, a timeout). A watch counts once, when it is opened.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    pub method: String,
    pub code: String,
}

/// The counts, and the layer that keeps them.
#[derive(Clone, Debug, Default)]
pub struct KubeRequests {
    counts: Family<RequestLabel, Counter>,
}

impl KubeRequests {
    /// The counter family, registered as `durablejob_kubernetes_requests_total`.
    pub fn register(registry: &mut Registry) -> Self {
        let this = Self::default();
        registry.sub_registry_with_prefix("durablejob").register(
            "kubernetes_requests",
            "Requests to the Kubernetes API by HTTP method and status code (error: no answer)",
            this.counts.clone(),
        );
        this
    }

    fn record(&self, method: &http::Method, code: Option<u16>) {
        let code = code.map_or_else(|| "error".to_string(), |c| c.to_string());
        self.counts
            .get_or_create(&RequestLabel {
                method: method.as_str().to_string(),
                code,
            })
            .inc();
    }
}

impl<S> tower::Layer<S> for KubeRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            requests: self.clone(),
        }
    }
}

/// The kube client's service, counting each request as its answer arrives.
pub struct Counted<S> {
    inner: S,
    requests: KubeRequests,
}

impl<S, B, R> tower::Service<http::Request<B>> for Counted<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method().clone();
        let answer = self.inner.call(request);
        let requests = self.requests.clone();
        Box::pin(async move {
            let answer = answer.await;
            requests.record(&method, answer.as_ref().ok().map(|r| r.status().as_u16()));
            answer
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service};

    #[tokio::test]
    async fn each_answer_is_counted_by_method_and_code_and_no_answer_as_error() {
        let mut registry = Registry::default();
        let requests = KubeRequests::register(&mut registry);
        let answer = |code: u16| -> Result<http::Response<()>, &'static str> {
            if code == 0 {
                Err("connection refused")
            } else {
                Ok(http::Response::builder().status(code).body(()).unwrap())
            }
        };
        let inner = tower::service_fn(move |r: http::Request<u16>| {
            let code = *r.body();
            async move { answer(code) }
        });
        let mut svc = requests.layer(inner);
        for (method, code) in [("GET", 200), ("GET", 200), ("PATCH", 409), ("POST", 0)] {
            let r = http::Request::builder().method(method).body(code).unwrap();
            let _ = svc.call(r).await;
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "durablejob_kubernetes_requests_total{method=\"GET\",code=\"200\"} 2",
            "durablejob_kubernetes_requests_total{method=\"PATCH\",code=\"409\"} 1",
            "durablejob_kubernetes_requests_total{method=\"POST\",code=\"error\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
