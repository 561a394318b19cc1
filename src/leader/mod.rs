//! Leader election through a `coordination.k8s.io` Lease, so several operator replicas are
//! safe: only the leader runs the controllers (and so only it writes). The rule is
//! in `decide.rs`; this file reads and writes the Lease.
//!
//! Timings follow client-go's: the leader renews every retry period; if it cannot renew within
//! the renew deadline it stops leading and the process exits, so it never acts on a Lease that
//! another replica may already hold. A standby takes a Lease that has not changed for a lease
//! duration. A leader that stops cleanly releases the Lease, so a standby takes over at once.

mod decide;

use std::{
    future::Future,
    hash::{BuildHasher, Hasher},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, PostParams},
};
use prometheus_client::metrics::gauge::Gauge;
use tracing::{info, warn};

use decide::{Decision, decide, released};

/// The election's settings (`--leader-election-*` flags).
#[derive(Debug, Clone)]
pub struct Election {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Election {
    /// Refuses timings that cannot work, as client-go does.
    pub fn check(&self) -> Result<(), String> {
        if self.lease_duration <= self.renew_deadline {
            return Err(format!(
                "--leader-election-lease-duration ({:?}) must be longer than --leader-election-renew-deadline ({:?})",
                self.lease_duration, self.renew_deadline
            ));
        }
        if self.renew_deadline <= self.retry_period {
            return Err(format!(
                "--leader-election-renew-deadline ({:?}) must be longer than --leader-election-retry-period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        Ok(())
    }
}

/// A unique identity for this process: the pod (or host) name and a random suffix, so a
/// restarted process never mistakes its predecessor's Lease for its own.
pub fn identity(who: &str) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{who}_{:016x}", h.finish())
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "lost the leader Lease {namespace}/{name}: {why}; exiting so that a restart rejoins the election"
    )]
    Lost {
        namespace: String,
        name: String,
        why: String,
    },
}

enum Attempt {
    Holding,
    HeldBy(String),
    Failed(String),
}

/// Runs `work` only while this process holds the Lease.
pub struct Elector {
    api: Api<Lease>,
    election: Election,
    /// The Lease as last read, and when this process first saw it that way.
    observed: Option<(LeaseSpec, Instant)>,
    leading: Gauge,
}

impl Elector {
    /// `leading` is set to 1 while this process leads, 0 otherwise.
    pub fn new(client: Client, election: Election, leading: Gauge) -> Self {
        leading.set(0);
        Self {
            api: Api::namespaced(client, &election.namespace),
            election,
            observed: None,
            leading,
        }
    }

    /// Waits for the Lease (or `shutdown`), then runs `work` while renewing it. Returns when
    /// `work` ends (releasing the Lease) or fails when the Lease is lost.
    pub async fn lead<W, S>(mut self, work: W, shutdown: S) -> Result<(), LeaderError>
    where
        W: Future<Output = ()>,
        S: Future<Output = ()>,
    {
        let e = self.election.clone();
        info!(lease = %format!("{}/{}", e.namespace, e.lease_name), identity = %e.identity,
            "waiting to become the leader");
        tokio::pin!(shutdown);
        let mut last_holder = String::new();
        loop {
            match self.attempt().await {
                Attempt::Holding => break,
                Attempt::HeldBy(holder) if holder != last_holder => {
                    info!(%holder, "another replica leads; standing by");
                    last_holder = holder;
                }
                Attempt::HeldBy(_) => {}
                Attempt::Failed(why) => warn!(error = %why, "cannot take the leader Lease; retrying"),
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(jittered(e.retry_period)) => {}
            }
        }
        info!(identity = %e.identity, "became the leader");
        self.leading.set(1);
        let lost = {
            let renew = self.keep_renewing();
            tokio::pin!(work, renew);
            tokio::select! {
                () = &mut work => None,
                why = &mut renew => Some(why),
            }
        };
        self.leading.set(0);
        match lost {
            Some(why) => Err(LeaderError::Lost {
                namespace: e.namespace,
                name: e.lease_name,
                why,
            }),
            None => {
                self.release().await;
                Ok(())
            }
        }
    }

    /// Renews every retry period; returns why leadership ended.
    async fn keep_renewing(&mut self) -> String {
        let e = self.election.clone();
        loop {
            tokio::time::sleep(e.retry_period).await;
            let deadline = Instant::now() + e.renew_deadline;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, self.attempt()).await {
                    Ok(Attempt::Holding) => break,
                    Ok(Attempt::HeldBy(holder)) => return format!("{holder} holds it now"),
                    Ok(Attempt::Failed(why)) => {
                        warn!(error = %why, "cannot renew the leader Lease; retrying");
                    }
                    Err(_) => {}
                }
                if Instant::now() + e.retry_period >= deadline {
                    return format!("it could not be renewed within {:?}", e.renew_deadline);
                }
                tokio::time::sleep(e.retry_period).await;
            }
        }
    }

    /// One read and, when the rule says so, one write of the Lease.
    async fn attempt(&mut self) -> Attempt {
        let name = &self.election.lease_name;
        let lease = match self.api.get_opt(name).await {
            Ok(l) => l,
            Err(err) => return Attempt::Failed(err.to_string()),
        };
        // A Lease created empty (the Helm chart creates it) is free.
        let spec = lease.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        let now = Instant::now();
        match (&self.observed, &spec) {
            (Some((seen, _)), Some(current)) if seen == current => {}
            (_, Some(current)) => self.observed = Some((current.clone(), now)),
            (_, None) => self.observed = None,
        }
        let unchanged_for = self
            .observed
            .as_ref()
            .map_or(Duration::ZERO, |(_, since)| now - *since);
        let e = &self.election;
        let decision = decide(
            spec.as_ref(),
            unchanged_for,
            &e.identity,
            e.lease_duration,
            Timestamp::now(),
        );
        let written = match decision {
            Decision::HeldBy(holder) => return Attempt::HeldBy(holder),
            Decision::Create(spec) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(e.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Decision::Take(spec) | Decision::Renew(spec) => {
                let mut lease = lease.expect("a take or renew has a Lease");
                lease.spec = Some(spec);
                // A replace carries the resourceVersion read: a concurrent writer gets a 409.
                self.api.replace(name, &PostParams::default(), &lease).await
            }
        };
        match written {
            Ok(lease) => {
                self.observed = lease.spec.map(|s| (s, Instant::now()));
                Attempt::Holding
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Attempt::Failed("another replica wrote the Lease first".into())
            }
            Err(err) => Attempt::Failed(err.to_string()),
        }
    }

    /// Gives the Lease up so that a standby takes it without waiting for it to expire.
    async fn release(&mut self) {
        let name = &self.election.lease_name;
        let Ok(Some(mut lease)) = self.api.get_opt(name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_ref() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.election.identity.as_str()) {
            return;
        }
        lease.spec = Some(released(spec, Timestamp::now()));
        match self.api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) => info!("released the leader Lease"),
            Err(err) => {
                warn!(error = %err, "cannot release the leader Lease; a standby takes it once it expires")
            }
        }
    }
}

/// Up to 20% later than `period`, so standbys do not all ask at the same instant.
fn jittered(period: Duration) -> Duration {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    let fraction = (h.finish() % 1000) as f64 / 5000.0;
    period.mul_f64(1.0 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn election(lease: u64, renew: u64, retry: u64) -> Election {
        Election {
            lease_name: "durablejob-operator".into(),
            namespace: "durablejob-system".into(),
            identity: identity("pod-0"),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn timings_that_cannot_work_are_refused_with_the_flags_named() {
        assert!(election(15, 10, 2).check().is_ok());
        let e = election(10, 10, 2).check().unwrap_err();
        assert!(
            e.contains("--leader-election-lease-duration") && e.contains("renew-deadline"),
            "{e}"
        );
        let e = election(15, 2, 2).check().unwrap_err();
        assert!(e.contains("--leader-election-retry-period"), "{e}");
    }

    #[test]
    fn identities_are_unique_per_process_start() {
        let (a, b) = (identity("pod-0"), identity("pod-0"));
        assert!(a.starts_with("pod-0_") && a != b, "{a} {b}");
    }
}
