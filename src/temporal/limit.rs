//! A client-side limit on the operator's Temporal calls: at most so many in flight, and when
//! Temporal answers `ResourceExhausted` (its per-namespace rate limits, e.g. on visibility) every
//! call waits out a shared cool-down that doubles while the answer repeats, and the call is
//! retried, instead of failing the reconcile as if Temporal were down.
//!
//! One `ResourceExhausted` is about a single workflow, not the namespace: cause `BUSY_WORKFLOW`,
//! e.g. "consistent query buffer is full" when a schedule is described while its scheduler
//! workflow is busy (just created, or starting many runs in a fire storm). Only that call waits
//! and is retried; the other calls go on.

use std::{
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

use temporalio_client::tonic::{Code, Status};
use temporalio_common::protos::{
    temporal::api::{enums::v1::ResourceExhaustedCause, errordetails::v1::ResourceExhaustedFailure},
    utilities::decode_status_detail,
};
use tokio::sync::Semaphore;

/// First cool-down after a `ResourceExhausted`, and its cap.
pub const FIRST_COOLDOWN: Duration = Duration::from_millis(500);
pub const MAX_COOLDOWN: Duration = Duration::from_secs(30);
/// Tries of one call before its `ResourceExhausted` is returned.
pub const TRIES: u32 = 5;

/// The next cool-down after `previous` (none: the first).
pub fn next_cooldown(previous: Option<Duration>) -> Duration {
    match previous {
        None => FIRST_COOLDOWN,
        Some(d) => (d * 2).min(MAX_COOLDOWN),
    }
}

/// Whether a `ResourceExhausted` is about one busy workflow rather than the namespace's limits.
pub fn is_busy_workflow(s: &Status) -> bool {
    s.code() == Code::ResourceExhausted
        && decode_status_detail::<ResourceExhaustedFailure>(s.details())
            .is_some_and(|f| f.cause() == ResourceExhaustedCause::BusyWorkflow)
}

#[derive(Debug, Default)]
struct Cooldown {
    until: Option<Instant>,
    length: Option<Duration>,
}

/// The limit, shared by every call of one operator.
#[derive(Debug)]
pub struct Limiter {
    in_flight: Semaphore,
    cooldown: Mutex<Cooldown>,
}

impl Limiter {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            in_flight: Semaphore::new(max_in_flight.max(1)),
            cooldown: Mutex::new(Cooldown::default()),
        }
    }

    fn wait_time(&self) -> Option<Duration> {
        let c = self.cooldown.lock().expect("cooldown lock");
        c.until.and_then(|u| u.checked_duration_since(Instant::now()))
    }

    fn throttled(&self) {
        let mut c = self.cooldown.lock().expect("cooldown lock");
        let length = next_cooldown(c.length);
        c.length = Some(length);
        c.until = Some(Instant::now() + length);
    }

    fn succeeded(&self) {
        let mut c = self.cooldown.lock().expect("cooldown lock");
        if c.until.is_none_or(|u| u <= Instant::now()) {
            *c = Cooldown::default();
        }
    }

    /// Runs `call` within the limit; `ResourceExhausted` is waited out and retried. A call
    /// holds its place among those in flight only while it is in flight, not while it waits.
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut tries = 0;
        let mut busy: Option<Duration> = None;
        loop {
            if let Some(wait) = self.wait_time() {
                tokio::time::sleep(wait).await;
            }
            tries += 1;
            let answer = {
                let _permit = self
                    .in_flight
                    .acquire()
                    .await
                    .expect("the limiter is never closed");
                call().await
            };
            match answer {
                Err(s) if is_busy_workflow(&s) && tries < TRIES => {
                    let wait = next_cooldown(busy);
                    tracing::debug!(message = s.message(), ?wait, "the workflow is busy; waiting");
                    busy = Some(wait);
                    tokio::time::sleep(wait).await;
                }
                Err(s) if is_busy_workflow(&s) => return Err(s),
                Err(s) if s.code() == Code::ResourceExhausted && tries < TRIES => {
                    tracing::debug!(message = s.message(), "Temporal is rate limiting; waiting");
                    self.throttled();
                }
                Err(s) if s.code() == Code::ResourceExhausted => {
                    self.throttled();
                    return Err(s);
                }
                other => {
                    self.succeeded();
                    return other;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_cooldown_doubles_up_to_its_cap() {
        let mut d = None;
        let mut seen = vec![];
        for _ in 0..8 {
            let next = next_cooldown(d);
            seen.push(next.as_millis());
            d = Some(next);
        }
        assert_eq!(seen, vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    }

    #[tokio::test(start_paused = true)]
    async fn resource_exhausted_is_waited_out_and_retried_not_returned() {
        let limiter = Limiter::new(4);
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let r = limiter
            .call(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(Status::resource_exhausted("namespace rate limit exceeded"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(r.unwrap(), 2);
        assert!(started.elapsed() >= Duration::from_millis(1500), "500ms, then 1s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_that_persists_is_returned_after_the_tries_and_other_errors_at_once() {
        let limiter = Limiter::new(1);
        let calls = AtomicU32::new(0);
        let r: Result<(), Status> = limiter
            .call(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(Status::resource_exhausted("busy")) }
            })
            .await;
        assert_eq!(r.unwrap_err().code(), Code::ResourceExhausted);
        assert_eq!(calls.load(Ordering::SeqCst), TRIES);
        let calls = AtomicU32::new(0);
        let r: Result<(), Status> = limiter
            .call(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(Status::unavailable("down")) }
            })
            .await;
        assert_eq!(r.unwrap_err().code(), Code::Unavailable);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "only rate limits are retried here"
        );
    }

    fn busy_workflow() -> Status {
        use temporalio_common::protos::{
            google::rpc::Status as RpcStatus,
            utilities::{encode_status_details, pack_any},
        };
        let failure = ResourceExhaustedFailure {
            cause: ResourceExhaustedCause::BusyWorkflow as i32,
            ..Default::default()
        };
        let any = pack_any(
            "type.googleapis.com/temporal.api.errordetails.v1.ResourceExhaustedFailure".into(),
            &failure,
        )
        .expect("encodes");
        let message = "consistent query buffer is full";
        let details = encode_status_details(&RpcStatus {
            code: Code::ResourceExhausted as i32,
            message: message.into(),
            details: vec![any],
        });
        Status::with_details(Code::ResourceExhausted, message, details.into())
    }

    #[test]
    fn only_the_busy_workflow_cause_is_about_one_workflow() {
        assert!(is_busy_workflow(&busy_workflow()));
        assert!(!is_busy_workflow(&Status::resource_exhausted(
            "namespace rate limit exceeded"
        )));
        assert!(!is_busy_workflow(&Status::unavailable("down")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_workflow_delays_its_own_call_and_not_the_others() {
        let limiter = Limiter::new(4);
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let r = limiter
            .call(|| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { if n < 2 { Err(busy_workflow()) } else { Ok(n) } }
            })
            .await;
        assert_eq!(r.unwrap(), 2);
        assert!(started.elapsed() >= Duration::from_millis(1500), "500ms, then 1s");
        assert_eq!(
            limiter.wait_time(),
            None,
            "no shared cool-down for one busy workflow"
        );
        // a workflow busy for longer than the tries gives its error back
        let calls = AtomicU32::new(0);
        let r: Result<(), Status> = limiter
            .call(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(busy_workflow()) }
            })
            .await;
        assert!(is_busy_workflow(&r.unwrap_err()));
        assert_eq!(calls.load(Ordering::SeqCst), TRIES);
        assert_eq!(limiter.wait_time(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waiting_on_a_busy_workflow_leaves_its_place_to_another() {
        let limiter = Limiter::new(1);
        let calls = AtomicU32::new(0);
        let waiting = limiter.call(|| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 1 {
                    Err(busy_workflow())
                } else {
                    Ok("described")
                }
            }
        });
        let other = async {
            // starts while the first waits out its 500 ms
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = tokio::time::Instant::now();
            let r = limiter.call(|| async { Ok::<_, Status>("listed") }).await;
            (r, started.elapsed())
        };
        let (first, (second, took)) = tokio::join!(waiting, other);
        assert_eq!((first.unwrap(), second.unwrap()), ("described", "listed"));
        assert!(
            took < Duration::from_millis(100),
            "the other call went ahead at once, not after the wait: {took:?}"
        );
    }
}
