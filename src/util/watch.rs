//! How the operator's and the runner's watches ride out a failing API server and come back.
//!
//! kube-runtime's default backoff grows to 30 s, and a watch resumed from a version etcd has
//! compacted away (410 Gone) is one more error to back off from before the relist that cures
//! it: after an outage of the API server's watches, a change could wait a minute to be seen.
//! Here a 410 relists at once (the watcher has already dropped its stale version; backing
//! off only delays the list), and other errors back off from 0.5 s to at most 10 s: a watch
//! that fails costs one request per 10 s.

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::{WatchStreamExt, utils::Backoff, watcher};
use tracing::info;

/// Longest wait between two attempts of a failing watch.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Doubling from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`]; back to the start after any event.
#[derive(Debug, Default)]
pub(crate) struct WatchBackoff {
    last: Option<Duration>,
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let next = self.last.map_or(FIRST_BACKOFF, |d| (d * 2).min(MAX_BACKOFF));
        self.last = Some(next);
        Some(next)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.last = None;
    }
}

/// Whether a watch error is a 410: the watch's version is gone and the watcher relists.
fn expired(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchError(s) if s.code == 410)
}

/// A watcher's stream with a 410 turned into an immediate relist and other errors backed off
/// by [`WatchBackoff`].
pub(crate) fn resilient<K, S>(
    events: S,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    K: Send,
{
    events
        .filter(|r| {
            let keep = !matches!(r, Err(e) if expired(e));
            if !keep {
                info!("a watch's resourceVersion expired (410 Gone): relisting now");
            }
            futures::future::ready(keep)
        })
        .backoff(WatchBackoff::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn the_backoff_doubles_to_ten_seconds_and_starts_over_after_an_event() {
        let mut b = WatchBackoff::default();
        let waits: Vec<u64> = (0..7).map(|_| b.next().unwrap().as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        b.reset();
        assert_eq!(b.next(), Some(FIRST_BACKOFF));
    }

    fn status(code: u16) -> watcher::Error {
        watcher::Error::WatchError(Box::new(kube::core::Status {
            code,
            ..Default::default()
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_410_is_passed_over_at_once_and_other_errors_wait() {
        let events: Vec<Result<watcher::Event<ConfigMap>, watcher::Error>> = vec![
            Err(status(410)),
            Ok(watcher::Event::Init),
            Err(status(500)),
            Ok(watcher::Event::InitDone),
        ];
        let started = tokio::time::Instant::now();
        let out: Vec<_> = resilient(futures::stream::iter(events)).collect().await;
        assert_eq!(out.len(), 3, "the 410 is not an error the stream backs off from");
        assert!(matches!(out[0], Ok(watcher::Event::Init)));
        assert!(matches!(&out[1], Err(e) if !expired(e)));
        assert_eq!(started.elapsed(), FIRST_BACKOFF, "only the 500 waited");
    }
}
